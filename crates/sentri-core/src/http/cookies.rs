//! Cookies (F-23): reading them, writing `Set-Cookie` values, and the CSRF
//! origin check for cookie-authenticated requests.

use chrono::{DateTime, Utc};
use http::header::{COOKIE, HOST, HeaderValue, ORIGIN};
use http::{HeaderMap, Method, Uri};

use crate::config::CookieConfig;
use crate::error::{Error, ErrorCode, Result};
use crate::tokens::TokenPair;

/// The value of cookie `name` in the request's `Cookie` header(s).
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// Writes sentri's `Set-Cookie` values for one mount prefix.
#[derive(Debug, Clone)]
pub(crate) struct CookieWriter<'a> {
    cfg: &'a CookieConfig,
    refresh_path: String,
}

impl<'a> CookieWriter<'a> {
    pub(crate) fn new(cfg: &'a CookieConfig, prefix: &str) -> Self {
        let refresh_path = match &cfg.refresh_path {
            Some(p) => p.clone(),
            None if cfg.host_prefix => "/".to_owned(),
            None if prefix.is_empty() => "/".to_owned(),
            None => prefix.to_owned(),
        };
        Self { cfg, refresh_path }
    }

    fn attrs(&self, out: &mut String, path: &str, http_only: bool) {
        out.push_str("; Path=");
        out.push_str(path);
        if let Some(domain) = &self.cfg.domain {
            out.push_str("; Domain=");
            out.push_str(domain);
        }
        if http_only {
            out.push_str("; HttpOnly");
        }
        if self.cfg.secure {
            out.push_str("; Secure");
        }
        out.push_str("; SameSite=");
        out.push_str(self.cfg.same_site.as_str());
    }

    fn set(
        &self,
        name: &str,
        value: &str,
        path: &str,
        max_age: i64,
        http_only: bool,
    ) -> Option<HeaderValue> {
        let mut s = format!("{name}={value}; Max-Age={max_age}");
        if max_age == 0 {
            s.push_str("; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
        }
        self.attrs(&mut s, path, http_only);
        HeaderValue::from_str(&s).ok()
    }

    /// The cookies carrying a new token pair, as configured.
    pub(crate) fn token_cookies(&self, tokens: &TokenPair, now: DateTime<Utc>) -> Vec<HeaderValue> {
        let mut out = Vec::new();
        if self.cfg.refresh_in_cookie() {
            let age = seconds_until(tokens.refresh_expires_at, now);
            out.extend(self.set(
                &self.cfg.refresh_cookie_name(),
                &tokens.refresh_token,
                &self.refresh_path,
                age,
                true,
            ));
        }
        if self.cfg.access_in_cookie() {
            let age = seconds_until(tokens.access_expires_at, now);
            out.extend(self.set(
                &self.cfg.access_cookie_name(),
                &tokens.access_token,
                &self.cfg.access_path,
                age,
                self.cfg.access_http_only,
            ));
        }
        out
    }

    /// Cookies that delete both of sentri's cookies (logout). Empty when
    /// cookie transport is off.
    pub(crate) fn clear_cookies(&self) -> Vec<HeaderValue> {
        if !self.cfg.refresh_in_cookie() {
            return Vec::new();
        }
        let mut out = Vec::new();
        out.extend(self.set(
            &self.cfg.refresh_cookie_name(),
            "",
            &self.refresh_path,
            0,
            true,
        ));
        out.extend(self.set(
            &self.cfg.access_cookie_name(),
            "",
            &self.cfg.access_path,
            0,
            self.cfg.access_http_only,
        ));
        out
    }
}

/// Whole seconds from `now` to `at`, rounded up, at least 0.
fn seconds_until(at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let ms = (at - now).num_milliseconds().max(0);
    (ms + 999) / 1000
}

/// Whether a method changes state (anything but GET, HEAD, OPTIONS, TRACE).
pub fn is_state_changing(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The CSRF check of F-23 for a request authenticated by a cookie: a
/// state-changing request whose `Origin` is present and not allowed is
/// `FORBIDDEN`. Origins are compared as scheme, host and port (default
/// ports filled in, host case-insensitive).
///
/// Allowed are the configured `allowed_origins`, or, when none are
/// configured, the request's own origin: the host and port of its `Host`
/// header (or URI authority), and the scheme of its URI when it has one;
/// otherwise `https`, or `http` too when cookies are not `Secure` or the
/// host is a loopback name (`localhost`, `127.0.0.1`, `[::1]`, which
/// browsers treat as secure). `Origin: null` is never allowed; without an
/// `Origin`, a browser's `Sec-Fetch-Site: cross-site` is refused too.
///
/// # Errors
/// `FORBIDDEN`.
pub fn check_origin(
    cfg: &CookieConfig,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<()> {
    if !is_state_changing(method) {
        return Ok(());
    }
    let refuse = || Error::with_message(ErrorCode::Forbidden, "cross-origin request refused");
    let Some(origin) = headers.get(ORIGIN) else {
        let cross_site = headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
        return if cross_site { Err(refuse()) } else { Ok(()) };
    };
    let origin = origin
        .to_str()
        .map_err(|_| refuse())?
        .trim()
        .trim_end_matches('/');
    if origin.eq_ignore_ascii_case("null") {
        return Err(refuse());
    }
    let origin = Origin::parse(origin).ok_or_else(refuse)?;
    let allowed = if cfg.allowed_origins.is_empty() {
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()));
        host.is_some_and(|host| origin.is_own(host.trim(), uri.scheme_str(), cfg.secure))
    } else {
        cfg.allowed_origins
            .iter()
            .filter_map(|o| Origin::parse(o.trim().trim_end_matches('/')))
            .any(|o| o == origin)
    };
    if allowed { Ok(()) } else { Err(refuse()) }
}

/// An origin as compared by [`check_origin`]: lowercase scheme and host,
/// the port explicit.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `host[:port]` (IPv6 hosts in brackets) → (lowercase host, port).
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    if authority.is_empty() || authority.contains(['@', '/', '?', '#']) {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{inside}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    Some((host.to_ascii_lowercase(), port))
}

impl Origin {
    fn parse(text: &str) -> Option<Self> {
        let (scheme, authority) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default = default_port(&scheme)?;
        let (host, port) = split_authority(authority)?;
        Some(Self {
            scheme,
            host,
            port: port.unwrap_or(default),
        })
    }

    /// Whether this is the origin of a request to `host` (a `Host` value).
    fn is_own(&self, host: &str, uri_scheme: Option<&str>, secure: bool) -> bool {
        let Some((host, port)) = split_authority(host) else {
            return false;
        };
        let scheme_ok = match uri_scheme {
            Some(s) => s.eq_ignore_ascii_case(&self.scheme),
            None => {
                self.scheme == "https"
                    || !secure
                    || matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]")
            }
        };
        let port = port.or_else(|| default_port(&self.scheme));
        scheme_ok && host == self.host && port == Some(self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CookieTransport, SameSite};

    fn cfg(transport: CookieTransport) -> CookieConfig {
        CookieConfig {
            transport,
            ..Default::default()
        }
    }

    fn pair(now: DateTime<Utc>) -> TokenPair {
        TokenPair {
            access_token: "acc.ess.tok".into(),
            refresh_token: "ref.tok".into(),
            access_expires_at: now + chrono::Duration::seconds(900),
            refresh_expires_at: now + chrono::Duration::seconds(604_800),
        }
    }

    #[test]
    fn token_cookies_have_the_spec_attributes() {
        let now = Utc::now();
        let c = cfg(CookieTransport::Both);
        let w = CookieWriter::new(&c, "/auth");
        let got: Vec<_> = w
            .token_cookies(&pair(now), now)
            .into_iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            got,
            [
                "refresh_token=ref.tok; Max-Age=604800; Path=/auth; HttpOnly; Secure; SameSite=Strict",
                "access_token=acc.ess.tok; Max-Age=900; Path=/; Secure; SameSite=Strict",
            ]
        );
        let c = cfg(CookieTransport::Refresh);
        assert_eq!(
            CookieWriter::new(&c, "/auth")
                .token_cookies(&pair(now), now)
                .len(),
            1
        );
        let c = cfg(CookieTransport::Off);
        assert!(
            CookieWriter::new(&c, "/auth")
                .token_cookies(&pair(now), now)
                .is_empty()
        );
        assert!(CookieWriter::new(&c, "/auth").clear_cookies().is_empty());
    }

    #[test]
    fn access_cookie_can_be_http_only() {
        let now = Utc::now();
        let c = CookieConfig {
            transport: CookieTransport::Both,
            access_http_only: true,
            ..Default::default()
        };
        let w = CookieWriter::new(&c, "/auth");
        let set: Vec<_> = w
            .token_cookies(&pair(now), now)
            .into_iter()
            .chain(w.clear_cookies())
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(set.len(), 4);
        assert!(set.iter().all(|c| c.contains("; HttpOnly")), "{set:?}");
        assert_eq!(
            set[1],
            "access_token=acc.ess.tok; Max-Age=900; Path=/; HttpOnly; Secure; SameSite=Strict"
        );
    }

    #[test]
    fn clearing_and_host_prefix() {
        let c = CookieConfig {
            transport: CookieTransport::Both,
            host_prefix: true,
            same_site: SameSite::Lax,
            ..Default::default()
        };
        let got: Vec<_> = CookieWriter::new(&c, "/auth")
            .clear_cookies()
            .into_iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            got,
            [
                "__Host-refresh_token=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; Secure; SameSite=Lax",
                "__Host-access_token=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Secure; SameSite=Lax",
            ]
        );
        let c = CookieConfig {
            transport: CookieTransport::Refresh,
            secure: false,
            domain: Some("example.com".into()),
            ..Default::default()
        };
        let v = CookieWriter::new(&c, "").clear_cookies();
        assert_eq!(
            v[0].to_str().unwrap(),
            "refresh_token=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Domain=example.com; HttpOnly; SameSite=Strict"
        );
    }

    #[test]
    fn reads_cookies_from_every_header() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; refresh_token=xyz"));
        h.append(
            COOKIE,
            HeaderValue::from_static("access_token=\"q\"; empty="),
        );
        assert_eq!(read_cookie(&h, "refresh_token"), Some("xyz"));
        assert_eq!(read_cookie(&h, "access_token"), Some("q"));
        assert_eq!(read_cookie(&h, "empty"), None);
        assert_eq!(read_cookie(&h, "token"), None);
    }

    #[test]
    fn origin_check() {
        let c = CookieConfig::default();
        let uri: Uri = "/auth/refresh".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("api.example.com"));
        // No Origin: allowed.
        check_origin(&c, &Method::POST, &uri, &h).unwrap();
        h.insert(ORIGIN, HeaderValue::from_static("https://api.example.com"));
        check_origin(&c, &Method::POST, &uri, &h).unwrap();
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert_eq!(
            check_origin(&c, &Method::POST, &uri, &h)
                .unwrap_err()
                .code(),
            ErrorCode::Forbidden
        );
        // Safe methods are not checked.
        check_origin(&c, &Method::GET, &uri, &h).unwrap();
        h.insert(ORIGIN, HeaderValue::from_static("null"));
        assert!(check_origin(&c, &Method::DELETE, &uri, &h).is_err());
        // Configured origins replace the default.
        let c = CookieConfig {
            allowed_origins: vec!["https://app.example.com".into()],
            ..Default::default()
        };
        h.insert(ORIGIN, HeaderValue::from_static("https://app.example.com"));
        check_origin(&c, &Method::PUT, &uri, &h).unwrap();
        h.insert(ORIGIN, HeaderValue::from_static("https://api.example.com"));
        assert!(check_origin(&c, &Method::PUT, &uri, &h).is_err());
        h.remove(ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check_origin(&c, &Method::POST, &uri, &h).is_err());
    }

    fn origin_allowed(c: &CookieConfig, uri: &str, host: Option<&str>, origin: &str) -> bool {
        let uri: Uri = uri.parse().unwrap();
        let mut h = HeaderMap::new();
        if let Some(host) = host {
            h.insert(HOST, HeaderValue::from_str(host).unwrap());
        }
        h.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
        check_origin(c, &Method::POST, &uri, &h).is_ok()
    }

    #[test]
    fn origin_check_compares_scheme_host_and_port() {
        let secure = CookieConfig::default();
        let host = Some("api.example.com");
        let ok = |c: &CookieConfig, host: Option<&str>, origin: &str| {
            origin_allowed(c, "/auth/refresh", host, origin)
        };
        // Same host, wrong scheme: with Secure cookies only https is the
        // request's own origin (it used to pass on the host alone).
        assert!(ok(&secure, host, "https://api.example.com"));
        assert!(!ok(&secure, host, "http://api.example.com"));
        // Default ports are filled in; other ports differ.
        assert!(ok(&secure, host, "https://api.example.com:443"));
        assert!(ok(
            &secure,
            Some("api.example.com:443"),
            "https://api.example.com"
        ));
        assert!(!ok(&secure, host, "https://api.example.com:8443"));
        assert!(!ok(
            &secure,
            Some("api.example.com:8443"),
            "https://api.example.com"
        ));
        assert!(ok(
            &secure,
            Some("API.example.com:8443"),
            "https://api.example.COM:8443"
        ));
        // Look-alikes.
        assert!(!ok(&secure, host, "https://api.example.com.evil.example"));
        assert!(!ok(&secure, host, "https://evil@api.example.com"));
        assert!(!ok(&secure, host, "ftp://api.example.com"));
        assert!(!ok(&secure, None, "https://api.example.com"));
        // Loopback over plain HTTP counts as secure in browsers.
        assert!(ok(&secure, Some("127.0.0.1:3000"), "http://127.0.0.1:3000"));
        assert!(ok(&secure, Some("localhost:3000"), "http://localhost:3000"));
        assert!(!ok(
            &secure,
            Some("127.0.0.1:3000"),
            "http://127.0.0.1:3001"
        ));
        // Without Secure, http is the request's own scheme too.
        let insecure = CookieConfig {
            secure: false,
            ..Default::default()
        };
        assert!(ok(&insecure, host, "http://api.example.com"));
        assert!(!ok(&insecure, host, "http://api.example.com:8080"));
        // An absolute URI names the scheme.
        assert!(!origin_allowed(
            &insecure,
            "https://api.example.com/auth/refresh",
            host,
            "http://api.example.com"
        ));
        // IPv6.
        assert!(ok(
            &secure,
            Some("[2001:db8::1]:8443"),
            "https://[2001:DB8::1]:8443"
        ));
        assert!(!ok(
            &secure,
            Some("[2001:db8::1]:8443"),
            "https://[2001:db8::1]"
        ));

        // Configured origins: scheme, host and port must all match.
        let listed = CookieConfig {
            allowed_origins: vec![
                "https://app.example.com:8443".into(),
                "https://www.example.com/".into(),
            ],
            ..Default::default()
        };
        assert!(ok(&listed, host, "https://app.example.com:8443"));
        assert!(!ok(&listed, host, "https://app.example.com"));
        assert!(!ok(&listed, host, "http://app.example.com:8443"));
        assert!(ok(&listed, host, "https://WWW.example.com:443"));
        assert!(!ok(&listed, host, "http://www.example.com"));
    }
}
