//! Who the client is: the socket peer, or the first untrusted hop of
//! `X-Forwarded-For` when the peer is a trusted proxy (F-27).
//!
//! [`client_ip`] is the one rule every feature uses (login and registration
//! throttling, the anonymous idempotency scope, session metadata): adapters
//! reach it through `http::Head::client_ip`, which reads every
//! `X-Forwarded-For` header line in order. Trusted proxies are addresses or
//! CIDR networks ([`IpNet`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`), or one address
/// (`10.0.0.1`, the same as `10.0.0.1/32`): a set of trusted proxies.
///
/// ```
/// use sentri_core::net::IpNet;
/// use std::net::IpAddr;
///
/// let net: IpNet = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.20.30.40".parse().unwrap()));
/// assert!(!net.contains("11.0.0.1".parse().unwrap()));
/// // A plain address is a network of one.
/// let one: IpNet = "192.0.2.1".parse().unwrap();
/// assert_eq!(one, IpNet::from("192.0.2.1".parse::<IpAddr>().unwrap()));
/// assert!("10.0.0.1/8".parse::<IpNet>().is_err()); // host bits set
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a string is not an [`IpNet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IpNetError(String);

impl IpNet {
    /// The network of `addr` with `prefix` leading bits.
    ///
    /// # Errors
    /// When `prefix` is longer than the address (32 for IPv4, 128 for IPv6)
    /// or `addr` has bits set beyond it. An IPv4-mapped IPv6 network
    /// (`::ffff:10.0.0.0/104`) is its IPv4 network (`10.0.0.0/8`).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, IpNetError> {
        // An IPv4-mapped network is the IPv4 network it maps.
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
                if prefix < 96 {
                    return Err(IpNetError(format!(
                        "{addr}/{prefix}: an IPv4-mapped network needs a prefix of at least 96"
                    )));
                }
                (addr.to_canonical(), prefix - 96)
            }
            _ => (addr, prefix),
        };
        let max = max_prefix(addr);
        if prefix > max {
            return Err(IpNetError(format!(
                "{addr}/{prefix}: the prefix length is at most {max}"
            )));
        }
        let net = Self { addr, prefix };
        if net.network() != addr {
            return Err(IpNetError(format!(
                "{addr}/{prefix} has host bits set (the network is {}/{prefix})",
                net.network()
            )));
        }
        Ok(net)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the network. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.0.0.1`) count as their IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask32(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask128(u128::from(ip), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(mask32(u32::from(a), self.prefix).into()),
            IpAddr::V6(a) => IpAddr::V6(mask128(u128::from(a), self.prefix).into()),
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// The first `prefix` bits of `bits` (`prefix` ≤ 32, as every `IpNet`
/// keeps it; 0 keeps none).
fn mask32(bits: u32, prefix: u8) -> u32 {
    bits & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// The first `prefix` bits of `bits` (`prefix` ≤ 128).
fn mask128(bits: u128, prefix: u8) -> u128 {
    bits & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl From<IpAddr> for IpNet {
    /// The network of exactly `addr`.
    fn from(addr: IpAddr) -> Self {
        let addr = addr.to_canonical();
        Self {
            addr,
            prefix: max_prefix(addr),
        }
    }
}

impl FromStr for IpNet {
    type Err = IpNetError;

    /// `addr` or `addr/prefix`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            IpNetError(format!(
                "{s:?} is not an IP address or CIDR network (e.g. 10.0.0.1, 10.0.0.0/8, fd00::/8)"
            ))
        })?;
        match prefix {
            None => Ok(Self::from(addr)),
            Some(p) => {
                let prefix: u8 = p
                    .parse()
                    .ok()
                    .filter(|_| p.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        IpNetError(format!(
                            "{s:?}: the prefix length must be a number (at most 32 for IPv4, 128 for IPv6)"
                        ))
                    })?;
                Self::new(addr, prefix)
            }
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == max_prefix(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// Whether `ip` is one of `trusted`.
fn trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(ip))
}

/// The client address of a request.
///
/// `X-Forwarded-For` is spoofable by anyone, so it is believed only when the
/// socket peer is one of `trusted_proxies`. Then the list is walked from the
/// right (the entries the trusted proxies appended) and the first address
/// that is not itself a trusted proxy is the client; whatever a client wrote
/// to the left of it is never read. An entry that is not an IP address
/// stops the walk at the last trusted hop (the peer), and when every entry
/// is a trusted proxy the left-most one is the client. IPv4-mapped IPv6
/// addresses are returned as IPv4.
///
/// `forwarded_for` is the comma-separated list of `X-Forwarded-For`; a
/// request with several header lines is [`client_ip_of_lines`] (what
/// `http::Head::client_ip` calls).
///
/// ```
/// use sentri_core::net::{IpNet, client_ip};
/// use std::net::IpAddr;
///
/// let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
/// let proxy: IpAddr = "10.0.0.1".parse().unwrap();
/// let peer: IpAddr = "203.0.113.9".parse().unwrap();
/// // Untrusted peer: the header is ignored.
/// assert_eq!(client_ip(peer, Some("1.2.3.4"), &proxies), peer);
/// // Trusted proxy: the last untrusted hop; the spoofed left-most entry is
/// // never read.
/// assert_eq!(
///     client_ip(proxy, Some("1.2.3.4, 198.51.100.7, 10.0.0.2"), &proxies),
///     "198.51.100.7".parse::<IpAddr>().unwrap()
/// );
/// ```
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted_proxies: &[IpNet]) -> IpAddr {
    client_ip_of_lines(peer, forwarded_for.into_iter(), trusted_proxies)
}

/// [`client_ip`] for a request with any number of `X-Forwarded-For`
/// header lines, in the order received (they form one list, RFC 9110
/// §5.3).
pub fn client_ip_of_lines<'a>(
    peer: IpAddr,
    lines: impl DoubleEndedIterator<Item = &'a str>,
    trusted_proxies: &[IpNet],
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted(peer, trusted_proxies) {
        return peer;
    }
    let mut last_trusted = peer;
    for hop in lines.rev().flat_map(|line| line.rsplit(',')) {
        let hop = hop.trim();
        if hop.is_empty() {
            continue;
        }
        match hop.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(ip) if trusted(ip, trusted_proxies) => last_trusted = ip,
            Ok(ip) => return ip,
            Err(_) => return last_trusted,
        }
    }
    last_trusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn parses_addresses_and_networks() {
        let n: IpNet = "10.0.0.0/8".parse().unwrap();
        assert_eq!((n.addr(), n.prefix_len()), (ip("10.0.0.0"), 8));
        assert_eq!(n.to_string(), "10.0.0.0/8");
        let one: IpNet = " 192.0.2.1 ".parse().unwrap();
        assert_eq!(one.prefix_len(), 32);
        assert_eq!(one.to_string(), "192.0.2.1");
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12:3456::1")));
        assert!(!v6.contains(ip("fe80::1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")));
        assert!(
            !all.contains(ip("::1")),
            "an IPv4 network holds no IPv6 address"
        );
        let host: IpNet = "2001:db8::1/128".parse().unwrap();
        assert!(host.contains(ip("2001:db8::1")));
        assert!(!host.contains(ip("2001:db8::2")));
        // A mapped IPv4 network is the IPv4 network.
        let mapped: IpNet = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped, "10.0.0.0/8".parse().unwrap());
        assert!(mapped.contains(ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn refuses_bad_networks_with_a_reason() {
        for (bad, says) in [
            ("", "not an IP address"),
            ("10.0.0", "not an IP address"),
            ("10.0.0.0/", "prefix length must be a number"),
            ("10.0.0.0/+8", "prefix length must be a number"),
            ("10.0.0.0/x", "prefix length must be a number"),
            ("10.0.0.0/33", "at most 32"),
            ("fd00::/129", "at most 128"),
            ("10.0.0.1/8", "host bits set (the network is 10.0.0.0/8)"),
            ("10.0.0.0/8/8", "prefix length must be a number"),
            ("example.com", "not an IP address"),
            ("::ffff:10.0.0.0/8", "at least 96"),
        ] {
            let err = bad.parse::<IpNet>().unwrap_err().to_string();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let t = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &t),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("203.0.113.9"), None, &t), ip("203.0.113.9"));
    }

    #[test]
    fn several_header_lines_are_one_list() {
        let t = nets(&["10.0.0.0/8"]);
        let lines = ["6.6.6.6, 198.51.100.7", "10.2.2.2", " 10.3.3.3 "];
        let got = client_ip_of_lines(ip("10.1.1.1"), lines.into_iter(), &t);
        assert_eq!(got, ip("198.51.100.7"));
        let spoofed_last = ["198.51.100.7", "6.6.6.6"];
        let got = client_ip_of_lines(ip("10.1.1.1"), spoofed_last.into_iter(), &t);
        assert_eq!(got, ip("6.6.6.6"), "the last line is the nearest hop");
        assert_eq!(mask32(u32::MAX, 0), 0);
        assert_eq!(mask32(u32::MAX, 32), u32::MAX);
        assert_eq!(mask128(u128::MAX, 0), 0);
        assert_eq!(mask128(u128::MAX, 128), u128::MAX);
    }

    #[test]
    fn walks_from_the_right_skipping_trusted_proxies() {
        let t = nets(&["10.0.0.0/8", "192.0.2.7"]);
        let proxy = ip("10.1.1.1");
        // The spoofed left-most entry is never the answer.
        assert_eq!(
            client_ip(proxy, Some("6.6.6.6, 198.51.100.7"), &t),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(proxy, Some("6.6.6.6,198.51.100.7, 192.0.2.7 ,10.2.2.2"), &t),
            ip("198.51.100.7")
        );
        // No header, or only trusted hops: the left-most trusted hop.
        assert_eq!(client_ip(proxy, None, &t), proxy);
        assert_eq!(
            client_ip(proxy, Some("10.9.9.9, 10.2.2.2"), &t),
            ip("10.9.9.9")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            client_ip(proxy, Some("198.51.100.7, unknown, 10.2.2.2"), &t),
            ip("10.2.2.2")
        );
        assert_eq!(client_ip(proxy, Some("junk"), &t), proxy);
        // Mapped addresses are their IPv4 address, on either side.
        assert_eq!(
            client_ip(ip("::ffff:10.1.1.1"), Some("::ffff:198.51.100.7"), &t),
            ip("198.51.100.7")
        );
    }
}
