//! Who the client is: the socket peer, or the first untrusted hop of
//! `X-Forwarded-For` when the peer is a trusted proxy (F-27).

use std::net::IpAddr;

/// The client address of a request.
///
/// `X-Forwarded-For` is spoofable by anyone, so it is believed only when the
/// socket peer is one of `trusted_proxies`; then the right-most address that
/// is not itself a trusted proxy is the client.
///
/// ```
/// use sentri_core::net::client_ip;
/// use std::net::IpAddr;
///
/// let proxy: IpAddr = "10.0.0.1".parse().unwrap();
/// let peer: IpAddr = "203.0.113.9".parse().unwrap();
/// // Untrusted peer: the header is ignored.
/// assert_eq!(client_ip(peer, Some("1.2.3.4"), &[proxy]), peer);
/// // Trusted proxy: the last untrusted hop.
/// assert_eq!(
///     client_ip(proxy, Some("1.2.3.4, 198.51.100.7"), &[proxy]),
///     "198.51.100.7".parse::<IpAddr>().unwrap()
/// );
/// ```
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted_proxies: &[IpAddr]) -> IpAddr {
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    for hop in header.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if trusted_proxies.contains(&ip) => continue,
            Ok(ip) => return ip,
            Err(_) => return peer,
        }
    }
    peer
}
