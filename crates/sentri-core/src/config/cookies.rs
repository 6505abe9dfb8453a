//! Cookie transport and CSRF settings (F-23).

use super::*;

/// How the built-in routes carry tokens to browsers (F-23).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CookieTransport {
    /// Tokens travel in bodies and `Authorization` headers only. The default.
    #[default]
    Off,
    /// The refresh token travels in an `HttpOnly` cookie and is left out of
    /// response bodies.
    Refresh,
    /// As `Refresh`, and the access token is also set in a cookie (readable
    /// by scripts unless [`CookieConfig::access_http_only`]), which `protect` reads when no `Authorization` header is
    /// present; `protect` then also refreshes silently (F-24).
    Both,
}

/// The `SameSite` attribute of sentri's cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SameSite {
    /// Never sent on cross-site requests. The default.
    #[default]
    Strict,
    /// Sent on top-level cross-site navigations.
    Lax,
    /// Always sent; requires `Secure`.
    None,
}

impl SameSite {
    /// The attribute value: `Strict`, `Lax` or `None`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        }
    }
}

/// Cookie transport and CSRF settings of the HTTP surface (F-23).
///
/// ```
/// use sentri_core::config::{Config, CookieConfig, CookieTransport};
///
/// let config = Config::builder()
///     .hs256("an HMAC secret of at least thirty-two bytes")
///     .valid_roles(["user"])
///     .cookies(CookieConfig {
///         transport: CookieTransport::Both,
///         allowed_origins: vec!["https://app.example.com".into()],
///         ..CookieConfig::default()
///     })
///     .build()?;
/// assert_eq!(config.cookies().refresh_name, "refresh_token");
/// # Ok::<(), sentri_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    /// Which tokens travel in cookies. Default [`CookieTransport::Off`].
    pub transport: CookieTransport,
    /// The `Secure` attribute. Default `true`; turn it off only for plain
    /// HTTP during development.
    pub secure: bool,
    /// The `SameSite` attribute. Default [`SameSite::Strict`].
    pub same_site: SameSite,
    /// Name of the refresh cookie (`HttpOnly`). Default `refresh_token`.
    pub refresh_name: String,
    /// Path of the refresh cookie. Default `None`: the mount prefix of the
    /// routes (e.g. `/auth`), so the cookie reaches `/refresh` and
    /// `/logout` but not the application's routes. Silent refresh on the
    /// application's own routes needs a path covering them, e.g. `/`.
    pub refresh_path: Option<String>,
    /// Name of the access cookie (`Max-Age` = access TTL; readable by
    /// scripts unless [`CookieConfig::access_http_only`]). Default
    /// `access_token`.
    pub access_name: String,
    /// Path of the access cookie. Default `/`.
    pub access_path: String,
    /// Mark the access cookie `HttpOnly` too. Default `false` (scripts may
    /// read it, e.g. to send it as a Bearer token); turn it on when the
    /// browser only ever sends it as a cookie, so a script injected into
    /// the page cannot read the token.
    pub access_http_only: bool,
    /// The `Domain` attribute. Default none (host-only cookies).
    pub domain: Option<String>,
    /// Prefix both names with `__Host-`, which browsers accept only with
    /// `Secure`, `Path=/` and no `Domain` (validated at build). Default
    /// `false`.
    pub host_prefix: bool,
    /// Origins (`scheme://host[:port]`) allowed to send state-changing
    /// requests authenticated by a cookie. Default empty: only the
    /// request's own host.
    pub allowed_origins: Vec<String>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            transport: CookieTransport::Off,
            secure: true,
            same_site: SameSite::Strict,
            refresh_name: "refresh_token".to_owned(),
            refresh_path: None,
            access_name: "access_token".to_owned(),
            access_path: "/".to_owned(),
            access_http_only: false,
            domain: None,
            host_prefix: false,
            allowed_origins: Vec::new(),
        }
    }
}

impl CookieConfig {
    /// The refresh cookie's name as sent, with `__Host-` when configured.
    pub fn refresh_cookie_name(&self) -> String {
        self.prefixed(&self.refresh_name)
    }

    /// The access cookie's name as sent, with `__Host-` when configured.
    pub fn access_cookie_name(&self) -> String {
        self.prefixed(&self.access_name)
    }

    fn prefixed(&self, name: &str) -> String {
        if self.host_prefix && !name.starts_with("__Host-") {
            format!("__Host-{name}")
        } else {
            name.to_owned()
        }
    }

    /// Whether the refresh token travels in a cookie.
    pub fn refresh_in_cookie(&self) -> bool {
        matches!(
            self.transport,
            CookieTransport::Refresh | CookieTransport::Both
        )
    }

    /// Whether the access token travels in a cookie.
    pub fn access_in_cookie(&self) -> bool {
        self.transport == CookieTransport::Both
    }

    pub(super) fn validate(&self) -> Result<()> {
        let cfg = |field: &str, problem: &str| Error::configuration(field, problem);
        for (field, name) in [
            ("cookies.refresh_name", &self.refresh_name),
            ("cookies.access_name", &self.access_name),
        ] {
            if !is_cookie_name(name) {
                return Err(cfg(
                    field,
                    "must be a non-empty cookie name of visible ASCII without separators",
                ));
            }
        }
        if self.refresh_cookie_name() == self.access_cookie_name() {
            return Err(cfg("cookies.access_name", "must differ from refresh_name"));
        }
        if let Some(path) = &self.refresh_path
            && !is_cookie_path(path)
        {
            return Err(cfg(
                "cookies.refresh_path",
                "must start with / and contain no ; , or control characters",
            ));
        }
        if !is_cookie_path(&self.access_path) {
            return Err(cfg(
                "cookies.access_path",
                "must start with / and contain no ; , or control characters",
            ));
        }
        if let Some(domain) = &self.domain
            && (domain.is_empty()
                || domain.len() > 253
                || !domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')))
        {
            return Err(cfg("cookies.domain", "must be a host name"));
        }
        let host = self.host_prefix
            || self.refresh_name.starts_with("__Host-")
            || self.access_name.starts_with("__Host-");
        if host {
            if !self.secure {
                return Err(cfg("cookies.secure", "__Host- cookies must be Secure"));
            }
            if self.domain.is_some() {
                return Err(cfg(
                    "cookies.domain",
                    "__Host- cookies must not have a Domain",
                ));
            }
            if matches!(&self.refresh_path, Some(p) if p != "/") {
                return Err(cfg(
                    "cookies.refresh_path",
                    "__Host- cookies must have Path=/",
                ));
            }
            if self.access_path != "/" {
                return Err(cfg(
                    "cookies.access_path",
                    "__Host- cookies must have Path=/",
                ));
            }
        }
        let secure_prefix =
            self.refresh_name.starts_with("__Secure-") || self.access_name.starts_with("__Secure-");
        if secure_prefix && !self.secure {
            return Err(cfg("cookies.secure", "__Secure- cookies must be Secure"));
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(cfg("cookies.same_site", "SameSite=None requires Secure"));
        }
        for origin in &self.allowed_origins {
            if !is_origin(origin) {
                return Err(cfg(
                    "cookies.allowed_origins",
                    "each must be scheme://host[:port] with scheme http or https and no path",
                ));
            }
        }
        Ok(())
    }
}

fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

fn is_cookie_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 1024
        && path
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b';' && b != b',')
}

fn is_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    if scheme != "http" && scheme != "https" {
        return false;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    host_ok && port_ok
}

/// The default limit of request bodies of the built-in routes: 16 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;
