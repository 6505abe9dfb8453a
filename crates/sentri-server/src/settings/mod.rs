//! Server settings: environment variables over an optional TOML file.
//!
//! Every setting has one environment variable (`SENTRI_BIND`, …) and one
//! key in the file (`bind`, …). Values from the environment override the
//! file. Every value is parsed and checked here, at startup; a bad one is a
//! [`SettingsError`] naming the variable, never a failure at the first
//! request.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sentri_core::config::{
    CookieConfig, CookieTransport, IdempotencyConfig, SameSite, ThrottleConfig, parse_duration,
};
use sentri_core::net::IpNet;
use sentri_core::password::PasswordPolicy;
use sentri_core::{Algorithm, Config, SessionCheck};
use zeroize::Zeroizing;

use crate::conn::Limits;

/// The database used when `SENTRI_DATABASE_URL` is not set: a SQLite file
/// in the working directory, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://sentri.db?mode=rwc";

/// The address served when `SENTRI_BIND` is not set.
pub const DEFAULT_BIND: &str = "127.0.0.1:3000";

/// The Redis key prefix used when `SENTRI_REDIS_PREFIX` is not set.
pub const DEFAULT_REDIS_PREFIX: &str = "sentri:";

/// The tracing filter used when `SENTRI_LOG` is not set.
pub const DEFAULT_LOG: &str = "info";

/// One setting of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Key {
    /// `SENTRI_BIND`: the socket address to listen on.
    Bind,
    /// `SENTRI_HEADER_READ_TIMEOUT`: time to receive a request head.
    HeaderReadTimeout,
    /// `SENTRI_BODY_READ_TIMEOUT`: time to receive a request body.
    BodyReadTimeout,
    /// `SENTRI_IDLE_TIMEOUT`: time a keep-alive connection may wait for
    /// its next request.
    IdleTimeout,
    /// `SENTRI_REQUEST_TIMEOUT`: time to answer a request.
    RequestTimeout,
    /// `SENTRI_MAX_CONNECTIONS`: open connections at most.
    MaxConnections,
    /// `SENTRI_DATABASE_URL`: the SQL database.
    DatabaseUrl,
    /// `SENTRI_REDIS_URL`: Redis for idempotency, throttling and
    /// revocation fan-out, shared by every instance.
    RedisUrl,
    /// `SENTRI_REDIS_PREFIX`: the prefix of every Redis key and channel.
    RedisPrefix,
    /// `SENTRI_SESSION_CHECK`: `always`, `stateless` or `cached:<duration>`.
    SessionCheck,
    /// `SENTRI_ROLES`: the valid roles, comma-separated.
    Roles,
    /// `SENTRI_DEFAULT_ROLE`: the role self-registration grants.
    DefaultRole,
    /// `SENTRI_API_KEY`: required in `X-Api-Key` by `POST /auth/register`.
    ApiKey,
    /// `SENTRI_SECRET`: HMAC signing secret.
    Secret,
    /// `SENTRI_ALGORITHM`: the JWS algorithm.
    Algorithm,
    /// `SENTRI_ISSUER`: the `iss` of access tokens, required when verifying.
    Issuer,
    /// `SENTRI_AUDIENCE`: the `aud` of access tokens, required when
    /// verifying.
    Audience,
    /// `SENTRI_KEY_ENCRYPTION_KEY`: the key that encrypts stored signing
    /// keys (32 bytes, hex or base64).
    KeyEncryptionKey,
    /// `SENTRI_ACCESS_TTL`: access token lifetime.
    AccessTtl,
    /// `SENTRI_REFRESH_TTL`: session and refresh token lifetime.
    RefreshTtl,
    /// `SENTRI_REUSE_GRACE`: refresh reuse grace.
    ReuseGrace,
    /// `SENTRI_SESSION_IDLE_TIMEOUT`: end sessions unused for longer.
    SessionIdleTimeout,
    /// `SENTRI_COOKIES`: cookie transport, `off|refresh|both`.
    Cookies,
    /// `SENTRI_COOKIE_SECURE`: the `Secure` cookie attribute.
    CookieSecure,
    /// `SENTRI_COOKIE_SAMESITE`: the `SameSite` cookie attribute.
    CookieSameSite,
    /// `SENTRI_COOKIE_HOST_PREFIX`: `__Host-` cookie names.
    CookieHostPrefix,
    /// `SENTRI_ACCESS_COOKIE_HTTPONLY`: the access cookie is `HttpOnly`.
    AccessCookieHttpOnly,
    /// `SENTRI_ALLOWED_ORIGINS`: origins allowed to send cookie-authenticated
    /// writes (CSRF).
    AllowedOrigins,
    /// `SENTRI_LOGIN_MAX_FAILURES`: failed logins per identifier in 15 min.
    LoginMaxFailures,
    /// `SENTRI_REGISTER_MAX_PER_HOUR`: self-registrations per client address
    /// in an hour.
    RegisterMaxPerHour,
    /// `SENTRI_HASH_MAX_WAIT`: the longest a request waits for a password
    /// hashing slot.
    HashMaxWait,
    /// `SENTRI_TRUSTED_PROXIES`: peers whose `X-Forwarded-For` is believed
    /// (addresses or CIDR networks).
    TrustedProxies,
    /// `SENTRI_IDEMPOTENCY_LOCK_TTL`: how long a running request holds its
    /// idempotency key.
    IdempotencyLockTtl,
    /// `SENTRI_LOG`: the tracing filter.
    Log,
    /// `SENTRI_FRAMEWORK`: the web adapter, `axum`.
    Framework,
}

impl Key {
    /// Every setting, in documentation order.
    pub const ALL: [Key; 35] = [
        Key::Bind,
        Key::HeaderReadTimeout,
        Key::BodyReadTimeout,
        Key::IdleTimeout,
        Key::RequestTimeout,
        Key::MaxConnections,
        Key::DatabaseUrl,
        Key::RedisUrl,
        Key::RedisPrefix,
        Key::SessionCheck,
        Key::Roles,
        Key::DefaultRole,
        Key::ApiKey,
        Key::Secret,
        Key::Algorithm,
        Key::Issuer,
        Key::Audience,
        Key::KeyEncryptionKey,
        Key::AccessTtl,
        Key::RefreshTtl,
        Key::ReuseGrace,
        Key::SessionIdleTimeout,
        Key::Cookies,
        Key::CookieSecure,
        Key::CookieSameSite,
        Key::CookieHostPrefix,
        Key::AccessCookieHttpOnly,
        Key::AllowedOrigins,
        Key::LoginMaxFailures,
        Key::RegisterMaxPerHour,
        Key::HashMaxWait,
        Key::TrustedProxies,
        Key::IdempotencyLockTtl,
        Key::Log,
        Key::Framework,
    ];

    /// The key in the TOML file (`bind`, `database_url`, …).
    pub fn file_key(self) -> &'static str {
        match self {
            Key::Bind => "bind",
            Key::HeaderReadTimeout => "header_read_timeout",
            Key::BodyReadTimeout => "body_read_timeout",
            Key::IdleTimeout => "idle_timeout",
            Key::RequestTimeout => "request_timeout",
            Key::MaxConnections => "max_connections",
            Key::DatabaseUrl => "database_url",
            Key::RedisUrl => "redis_url",
            Key::RedisPrefix => "redis_prefix",
            Key::SessionCheck => "session_check",
            Key::Roles => "roles",
            Key::DefaultRole => "default_role",
            Key::ApiKey => "api_key",
            Key::Secret => "secret",
            Key::Algorithm => "algorithm",
            Key::Issuer => "issuer",
            Key::Audience => "audience",
            Key::KeyEncryptionKey => "key_encryption_key",
            Key::AccessTtl => "access_ttl",
            Key::RefreshTtl => "refresh_ttl",
            Key::ReuseGrace => "reuse_grace",
            Key::SessionIdleTimeout => "session_idle_timeout",
            Key::Cookies => "cookies",
            Key::CookieSecure => "cookie_secure",
            Key::CookieSameSite => "cookie_samesite",
            Key::CookieHostPrefix => "cookie_host_prefix",
            Key::AccessCookieHttpOnly => "access_cookie_httponly",
            Key::AllowedOrigins => "allowed_origins",
            Key::LoginMaxFailures => "login_max_failures",
            Key::RegisterMaxPerHour => "register_max_per_hour",
            Key::HashMaxWait => "hash_max_wait",
            Key::TrustedProxies => "trusted_proxies",
            Key::IdempotencyLockTtl => "idempotency_lock_ttl",
            Key::Log => "log",
            Key::Framework => "framework",
        }
    }

    /// The environment variable (`SENTRI_BIND`, …).
    pub fn env_var(self) -> &'static str {
        match self {
            Key::Bind => "SENTRI_BIND",
            Key::HeaderReadTimeout => "SENTRI_HEADER_READ_TIMEOUT",
            Key::BodyReadTimeout => "SENTRI_BODY_READ_TIMEOUT",
            Key::IdleTimeout => "SENTRI_IDLE_TIMEOUT",
            Key::RequestTimeout => "SENTRI_REQUEST_TIMEOUT",
            Key::MaxConnections => "SENTRI_MAX_CONNECTIONS",
            Key::DatabaseUrl => "SENTRI_DATABASE_URL",
            Key::RedisUrl => "SENTRI_REDIS_URL",
            Key::RedisPrefix => "SENTRI_REDIS_PREFIX",
            Key::SessionCheck => "SENTRI_SESSION_CHECK",
            Key::Roles => "SENTRI_ROLES",
            Key::DefaultRole => "SENTRI_DEFAULT_ROLE",
            Key::ApiKey => "SENTRI_API_KEY",
            Key::Secret => "SENTRI_SECRET",
            Key::Algorithm => "SENTRI_ALGORITHM",
            Key::Issuer => "SENTRI_ISSUER",
            Key::Audience => "SENTRI_AUDIENCE",
            Key::KeyEncryptionKey => "SENTRI_KEY_ENCRYPTION_KEY",
            Key::AccessTtl => "SENTRI_ACCESS_TTL",
            Key::RefreshTtl => "SENTRI_REFRESH_TTL",
            Key::ReuseGrace => "SENTRI_REUSE_GRACE",
            Key::SessionIdleTimeout => "SENTRI_SESSION_IDLE_TIMEOUT",
            Key::Cookies => "SENTRI_COOKIES",
            Key::CookieSecure => "SENTRI_COOKIE_SECURE",
            Key::CookieSameSite => "SENTRI_COOKIE_SAMESITE",
            Key::CookieHostPrefix => "SENTRI_COOKIE_HOST_PREFIX",
            Key::AccessCookieHttpOnly => "SENTRI_ACCESS_COOKIE_HTTPONLY",
            Key::AllowedOrigins => "SENTRI_ALLOWED_ORIGINS",
            Key::LoginMaxFailures => "SENTRI_LOGIN_MAX_FAILURES",
            Key::RegisterMaxPerHour => "SENTRI_REGISTER_MAX_PER_HOUR",
            Key::HashMaxWait => "SENTRI_HASH_MAX_WAIT",
            Key::TrustedProxies => "SENTRI_TRUSTED_PROXIES",
            Key::IdempotencyLockTtl => "SENTRI_IDEMPOTENCY_LOCK_TTL",
            Key::Log => "SENTRI_LOG",
            Key::Framework => "SENTRI_FRAMEWORK",
        }
    }

    fn from_env_var(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.env_var() == name)
    }

    fn from_file_key(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.file_key() == name)
    }
}

/// The environment variable naming the configuration file.
pub const CONFIG_ENV_VAR: &str = "SENTRI_CONFIG";

/// A setting that could not be used: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    name: String,
    problem: String,
}

impl SettingsError {
    pub(crate) fn new(name: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn from_log_filter(problem: &str) -> Self {
        Self::new(
            Key::Log.env_var(),
            format!("not a tracing filter: {problem}"),
        )
    }

    /// The variable (or file) at fault, e.g. `SENTRI_ACCESS_TTL`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.problem)
    }
}

impl std::error::Error for SettingsError {}

/// Where a raw value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    Env,
    File(PathBuf),
}

/// The raw values, before parsing: env over file.
#[derive(Debug, Default)]
struct Raw {
    values: BTreeMap<Key, (Zeroizing<String>, Origin)>,
}

impl Raw {
    fn get(&self, key: Key) -> Option<&str> {
        self.values.get(&key).map(|(v, _)| v.as_str())
    }

    /// The name of the setting in an error: the variable, and the file key
    /// when the value came from the file.
    fn name(&self, key: Key) -> String {
        match self.values.get(&key) {
            Some((_, Origin::File(path))) => format!(
                "{} (`{}` in {})",
                key.env_var(),
                key.file_key(),
                path.display()
            ),
            _ => key.env_var().to_owned(),
        }
    }

    fn err(&self, key: Key, problem: impl Into<String>) -> SettingsError {
        SettingsError::new(self.name(key), problem)
    }
}

/// Cookie transport (F-23), `SENTRI_COOKIES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CookieMode {
    /// Tokens travel in bodies and the `Authorization` header only.
    #[default]
    Off,
    /// The refresh token travels in an HttpOnly cookie (and is left out of
    /// bodies).
    Refresh,
    /// The refresh cookie and an access-token cookie.
    Both,
}

impl CookieMode {
    /// `off`, `refresh` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Refresh => "refresh",
            Self::Both => "both",
        }
    }
}

/// The web adapter that serves the routes, `SENTRI_FRAMEWORK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Framework {
    /// `sentri-axum`.
    #[default]
    Axum,
    /// `sentri-poem`.
    Poem,
}

/// A secret value: zeroized on drop, never printed.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// The value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Every setting of the server, parsed and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen.
    pub bind: SocketAddr,
    /// The connection limit and the header-read, body-read, idle and
    /// request timeouts.
    pub limits: Limits,
    /// The database URL (it may hold a password: see
    /// [`Settings::database_url_redacted`]).
    pub database_url: Secret,
    /// The Redis URL (it may hold a password: see
    /// [`Settings::redis_url_redacted`]); `None`: idempotency and
    /// throttling use the database, and revocations reach only the
    /// instance that made them.
    pub redis_url: Option<Secret>,
    /// The prefix of every Redis key and of the revocation channel.
    pub redis_prefix: String,
    /// How `protect` checks the session behind an access token.
    pub session_check: SessionCheck,
    /// The valid roles.
    pub roles: Vec<String>,
    /// The self-registration role; `None` means the first role.
    pub default_role: Option<String>,
    /// The registration API key.
    pub api_key: Option<Secret>,
    /// The HMAC secret.
    pub secret: Option<Secret>,
    /// The signing algorithm; `None` means `HS256` with a secret, else
    /// `EdDSA` with a generated, persisted key.
    pub algorithm: Option<Algorithm>,
    /// The `iss` set in and required of access tokens (`None`: no `iss`).
    pub issuer: Option<String>,
    /// The `aud` set in and required of access tokens (`None`: no `aud`).
    pub audience: Option<String>,
    /// The key-encryption key of stored signing keys (checked: 32 bytes as
    /// hex or base64); `None`: stored keys are plaintext.
    pub key_encryption_key: Option<Secret>,
    /// Access token lifetime (`None`: the library default, 15m).
    pub access_ttl: Option<Duration>,
    /// Refresh lifetime (`None`: 7d).
    pub refresh_ttl: Option<Duration>,
    /// Reuse grace (`None`: 10s).
    pub reuse_grace: Option<Duration>,
    /// Inactivity timeout of sessions (`None`, the default, or `off`: none).
    pub session_idle_timeout: Option<Duration>,
    /// Cookie transport.
    pub cookies: CookieMode,
    /// The `Secure` attribute on cookies (default `true`).
    pub cookie_secure: bool,
    /// The `SameSite` attribute on cookies (default `Strict`).
    pub cookie_same_site: SameSite,
    /// `__Host-` cookie names (default `false`).
    pub cookie_host_prefix: bool,
    /// The access cookie is `HttpOnly` too (default `false`).
    pub access_cookie_http_only: bool,
    /// Origins allowed to send cookie-authenticated writes (default none:
    /// the request's own origin).
    pub allowed_origins: Vec<String>,
    /// Failed logins per identifier before throttling (`None`: 10).
    pub login_max_failures: Option<u32>,
    /// Self-registrations per client address in an hour (`None`: 10; `0`
    /// turns the limit off).
    pub register_max_per_hour: Option<u32>,
    /// The longest wait for a password hashing slot (`None`: 5s).
    pub hash_max_wait: Option<Duration>,
    /// Proxies whose `X-Forwarded-For` header is believed, as addresses or
    /// CIDR networks (default none: the socket peer is the client).
    pub trusted_proxies: Vec<IpNet>,
    /// How long a running request holds its idempotency key before a
    /// repeat may take it over (default 60 s,
    /// [`IdempotencyConfig::DEFAULT_LOCK_TTL`]). Requests must finish
    /// within it, so the server's request timeout has to be shorter.
    pub idempotency_lock_ttl: Duration,
    /// The tracing filter.
    pub log: String,
    /// The adapter.
    pub framework: Framework,
    /// Things worth a warning at startup (unknown `SENTRI_*` variables).
    pub warnings: Vec<String>,
}

impl Settings {
    /// Load the settings from the process environment and the file named by
    /// `config_file` (the `--config` argument), else by `SENTRI_CONFIG`.
    ///
    /// # Errors
    /// A [`SettingsError`] naming the first bad variable or file.
    pub fn load(config_file: Option<&Path>) -> Result<Self, SettingsError> {
        let mut env = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with("SENTRI_") {
                continue;
            }
            let value = value
                .into_string()
                .map_err(|_| SettingsError::new(name, "is not valid UTF-8"))?;
            env.push((name.to_owned(), value));
        }
        let file = match config_file {
            Some(path) => Some(path.to_owned()),
            None => env
                .iter()
                .find(|(n, _)| n == CONFIG_ENV_VAR)
                .map(|(_, v)| PathBuf::from(v)),
        };
        let file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    SettingsError::new(
                        format!("configuration file {}", path.display()),
                        format!("cannot be read: {e}"),
                    )
                })?;
                Some((path, text))
            }
            None => None,
        };
        Self::from_sources(env, file.as_ref().map(|(p, t)| (p.as_path(), t.as_str())))
    }

    /// Parse settings from explicit sources: `env` (name, value) pairs and an
    /// optional TOML file (path, contents). Environment values override
    /// the file.
    ///
    /// # Errors
    /// A [`SettingsError`] naming the first bad variable, file or file key.
    pub fn from_sources<I, K, V>(env: I, file: Option<(&Path, &str)>) -> Result<Self, SettingsError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut raw = Raw::default();
        let mut warnings = Vec::new();
        if let Some((path, text)) = file {
            read_file(&mut raw, path, text)?;
        }
        for (name, value) in env {
            let name = name.as_ref();
            match Key::from_env_var(name) {
                Some(key) => {
                    raw.values.insert(
                        key,
                        (Zeroizing::new(value.as_ref().to_owned()), Origin::Env),
                    );
                }
                None if name == CONFIG_ENV_VAR => {}
                None if name.starts_with("SENTRI_") => {
                    warnings.push(format!("{name} is not a setting of sentri-server; ignored"));
                }
                None => {}
            }
        }
        Self::parse(&raw, warnings)
    }

    fn parse(raw: &Raw, warnings: Vec<String>) -> Result<Self, SettingsError> {
        // A value given but empty (`SENTRI_SECRET=`) is a mistake, not "unset".
        for (key, (value, _)) in &raw.values {
            if value.trim().is_empty() {
                return Err(raw.err(*key, "is empty (unset it to use the default)"));
            }
        }
        let mut warnings = warnings;
        let redis_url = match raw.get(Key::RedisUrl).map(str::trim) {
            None => None,
            Some(url) => {
                check_redis_url(url).map_err(|p| raw.err(Key::RedisUrl, p))?;
                Some(Secret(Zeroizing::new(url.to_owned())))
            }
        };
        let redis_prefix = match raw.get(Key::RedisPrefix) {
            None => DEFAULT_REDIS_PREFIX.to_owned(),
            Some(prefix) => {
                if prefix.len() > 256 || prefix.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(raw.err(
                        Key::RedisPrefix,
                        "must be at most 256 bytes, without spaces or control characters",
                    ));
                }
                if redis_url.is_none() {
                    warnings.push(
                        "SENTRI_REDIS_PREFIX is set without SENTRI_REDIS_URL; ignored".to_owned(),
                    );
                }
                prefix.to_owned()
            }
        };
        let session_check = match raw.get(Key::SessionCheck).map(str::trim) {
            None | Some("always") => SessionCheck::Always,
            Some("stateless") => SessionCheck::Stateless,
            Some(other) => match other.strip_prefix("cached:") {
                Some(bound) => SessionCheck::Cached(
                    parse_duration(bound).map_err(|p| raw.err(Key::SessionCheck, p))?,
                ),
                None => {
                    return Err(raw.err(
                        Key::SessionCheck,
                        format!("{other:?} is not one of always, stateless, cached:<duration> (e.g. cached:30s)"),
                    ));
                }
            },
        };
        let framework = match raw.get(Key::Framework).map(str::trim) {
            None | Some("axum") => Framework::Axum,
            Some("poem") => Framework::Poem,
            Some(other) => {
                return Err(raw.err(
                    Key::Framework,
                    format!("{other:?} is not one of axum, poem"),
                ));
            }
        };
        let bind = raw.get(Key::Bind).unwrap_or(DEFAULT_BIND).trim();
        let bind: SocketAddr = bind.parse().map_err(|_| {
            raw.err(
                Key::Bind,
                format!("{bind:?} is not a socket address (e.g. 127.0.0.1:3000 or [::]:3000)"),
            )
        })?;

        let database_url = raw
            .get(Key::DatabaseUrl)
            .unwrap_or(DEFAULT_DATABASE_URL)
            .trim();
        check_database_url(database_url).map_err(|p| raw.err(Key::DatabaseUrl, p))?;

        let roles: Vec<String> = match raw.get(Key::Roles) {
            None => vec!["user".to_owned(), "admin".to_owned()],
            Some(list) => list
                .split(',')
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect(),
        };
        if roles.is_empty() {
            return Err(raw.err(Key::Roles, "must name at least one role"));
        }
        let default_role = raw.get(Key::DefaultRole).map(|r| r.trim().to_owned());

        let algorithm = match raw.get(Key::Algorithm) {
            None => None,
            Some(name) => Some(Algorithm::parse(name.trim()).ok_or_else(|| {
                raw.err(
                    Key::Algorithm,
                    format!(
                        "{:?} is not one of HS256, HS384, HS512, RS256, RS384, RS512, ES256, EdDSA",
                        name.trim()
                    ),
                )
            })?),
        };
        let claim = |key: Key| -> Result<Option<String>, SettingsError> {
            match raw.get(key).map(str::trim) {
                None => Ok(None),
                Some(v) if v.len() > 1024 || v.chars().any(char::is_control) => Err(raw.err(
                    key,
                    "must be at most 1024 bytes, without control characters",
                )),
                Some(v) => Ok(Some(v.to_owned())),
            }
        };
        let issuer = claim(Key::Issuer)?;
        let audience = claim(Key::Audience)?;
        let duration = |key: Key| -> Result<Option<Duration>, SettingsError> {
            raw.get(key)
                .map(|v| parse_duration(v).map_err(|p| raw.err(key, p)))
                .transpose()
        };
        let cookies = match raw.get(Key::Cookies).map(str::trim) {
            None | Some("off") => CookieMode::Off,
            Some("refresh") => CookieMode::Refresh,
            Some("both") => CookieMode::Both,
            Some(other) => {
                return Err(raw.err(
                    Key::Cookies,
                    format!("{other:?} is not one of off, refresh, both"),
                ));
            }
        };
        let cookie_secure = match raw.get(Key::CookieSecure) {
            None => true,
            Some(v) => parse_bool(v).ok_or_else(|| {
                raw.err(
                    Key::CookieSecure,
                    format!("{:?} is not true or false", v.trim()),
                )
            })?,
        };
        let flag = |key: Key, default: bool| -> Result<bool, SettingsError> {
            match raw.get(key) {
                None => Ok(default),
                Some(v) => parse_bool(v)
                    .ok_or_else(|| raw.err(key, format!("{:?} is not true or false", v.trim()))),
            }
        };
        let cookie_same_site = match raw.get(Key::CookieSameSite).map(str::trim) {
            None => SameSite::Strict,
            Some(v) if v.eq_ignore_ascii_case("strict") => SameSite::Strict,
            Some(v) if v.eq_ignore_ascii_case("lax") => SameSite::Lax,
            Some(v) if v.eq_ignore_ascii_case("none") => SameSite::None,
            Some(other) => {
                return Err(raw.err(
                    Key::CookieSameSite,
                    format!("{other:?} is not one of strict, lax, none"),
                ));
            }
        };
        let cookie_host_prefix = flag(Key::CookieHostPrefix, false)?;
        let access_cookie_http_only = flag(Key::AccessCookieHttpOnly, false)?;
        let allowed_origins: Vec<String> = raw
            .get(Key::AllowedOrigins)
            .unwrap_or("")
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        let timeout = |key: Key, default: Duration| -> Result<Duration, SettingsError> {
            match raw.get(key) {
                None => Ok(default),
                Some(v) => {
                    let d = parse_duration(v).map_err(|p| raw.err(key, p))?;
                    if d.is_zero() {
                        return Err(raw.err(key, "must be longer than 0s"));
                    }
                    Ok(d)
                }
            }
        };
        let limits = Limits {
            header_read_timeout: timeout(
                Key::HeaderReadTimeout,
                crate::conn::DEFAULT_HEADER_READ_TIMEOUT,
            )?,
            body_read_timeout: timeout(
                Key::BodyReadTimeout,
                crate::conn::DEFAULT_BODY_READ_TIMEOUT,
            )?,
            idle_timeout: timeout(Key::IdleTimeout, crate::conn::DEFAULT_IDLE_TIMEOUT)?,
            request_timeout: timeout(Key::RequestTimeout, crate::conn::DEFAULT_REQUEST_TIMEOUT)?,
            max_connections: match raw.get(Key::MaxConnections).map(str::trim) {
                None => crate::conn::DEFAULT_MAX_CONNECTIONS,
                Some(v) => match v.parse::<usize>() {
                    Ok(n) if (1..=1_000_000).contains(&n) => n,
                    _ => {
                        return Err(raw.err(
                            Key::MaxConnections,
                            format!("{v:?} is not a whole number from 1 to 1000000"),
                        ));
                    }
                },
            },
        };
        let login_max_failures = match raw.get(Key::LoginMaxFailures) {
            None => None,
            Some(v) => Some(v.trim().parse::<u32>().map_err(|_| {
                raw.err(
                    Key::LoginMaxFailures,
                    format!(
                        "{:?} is not a whole number (0 turns the limit off)",
                        v.trim()
                    ),
                )
            })?),
        };
        let register_max_per_hour = match raw.get(Key::RegisterMaxPerHour) {
            None => None,
            Some(v) => Some(v.trim().parse::<u32>().map_err(|_| {
                raw.err(
                    Key::RegisterMaxPerHour,
                    format!(
                        "{:?} is not a whole number (0 turns the limit off)",
                        v.trim()
                    ),
                )
            })?),
        };
        let mut trusted_proxies = Vec::new();
        for item in raw.get(Key::TrustedProxies).unwrap_or("").split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            trusted_proxies.push(
                item.parse::<IpNet>()
                    .map_err(|e| raw.err(Key::TrustedProxies, e.to_string()))?,
            );
        }
        let log = raw.get(Key::Log).unwrap_or(DEFAULT_LOG).trim().to_owned();
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&log) {
            return Err(raw.err(Key::Log, format!("not a tracing filter: {e}")));
        }
        let secret = |key: Key| raw.get(key).map(|v| Secret(Zeroizing::new(v.to_owned())));
        let key_encryption_key = secret(Key::KeyEncryptionKey);
        if let Some(kek) = &key_encryption_key {
            // The library's message names the format, never the value.
            sentri_core::cipher::Aes256GcmCipher::from_encoded(kek.expose()).map_err(|e| {
                let problem = e.message().split_once(": ").map_or(e.message(), |(_, p)| p);
                raw.err(Key::KeyEncryptionKey, problem)
            })?;
        }

        let settings = Self {
            bind,
            limits,
            database_url: Secret(Zeroizing::new(database_url.to_owned())),
            redis_url,
            redis_prefix,
            session_check,
            roles,
            default_role,
            api_key: secret(Key::ApiKey),
            secret: secret(Key::Secret),
            algorithm,
            issuer,
            audience,
            key_encryption_key,
            access_ttl: duration(Key::AccessTtl)?,
            refresh_ttl: duration(Key::RefreshTtl)?,
            reuse_grace: duration(Key::ReuseGrace)?,
            session_idle_timeout: match raw.get(Key::SessionIdleTimeout).map(str::trim) {
                None | Some("off") => None,
                Some(_) => duration(Key::SessionIdleTimeout)?,
            },
            cookies,
            cookie_secure,
            cookie_same_site,
            cookie_host_prefix,
            access_cookie_http_only,
            allowed_origins,
            login_max_failures,
            register_max_per_hour,
            hash_max_wait: duration(Key::HashMaxWait)?,
            trusted_proxies,
            idempotency_lock_ttl: duration(Key::IdempotencyLockTtl)?
                .unwrap_or(IdempotencyConfig::DEFAULT_LOCK_TTL),
            log,
            framework,
            warnings,
        };
        // Cross-field rules (secret length, roles, TTL order) live in the
        // library; run them now so they fail at startup, named by variable.
        let config = settings.core_config_with(raw)?;
        // A request must end before its idempotency hold lapses, or an
        // exact repeat could run concurrently with it.
        let lock_ttl = config.idempotency().lock_ttl;
        if settings.limits.request_timeout >= lock_ttl {
            return Err(raw.err(
                Key::RequestTimeout,
                format!(
                    "must be shorter than the idempotency lock TTL ({}s), so a request never outlives its idempotency hold",
                    lock_ttl.as_secs()
                ),
            ));
        }
        Ok(settings)
    }

    /// The library configuration these settings describe.
    ///
    /// # Errors
    /// A [`SettingsError`] naming the variable of the first bad value.
    pub fn core_config(&self) -> Result<Config, SettingsError> {
        self.core_config_with(&Raw::default())
    }

    fn core_config_with(&self, raw: &Raw) -> Result<Config, SettingsError> {
        let mut builder = Config::builder().valid_roles(self.roles.iter().cloned());
        if let Some(role) = &self.default_role {
            builder = builder.default_role(role.clone());
        }
        if self.roles.iter().any(|r| r == "admin") {
            builder = builder.admin_role("admin");
        }
        if let Some(alg) = self.algorithm {
            builder = builder.algorithm(alg);
        }
        if let Some(secret) = &self.secret {
            builder = builder.secret(secret.expose().as_bytes());
        }
        if let Some(key) = &self.api_key {
            builder = builder.api_key(key.expose());
        }
        if let Some(issuer) = &self.issuer {
            builder = builder.issuer(issuer.clone());
        }
        if let Some(audience) = &self.audience {
            builder = builder.audience(audience.clone());
        }
        if let Some(kek) = &self.key_encryption_key {
            let cipher = sentri_core::cipher::Aes256GcmCipher::from_encoded(kek.expose())
                .map_err(|e| raw.err(Key::KeyEncryptionKey, e.message()))?;
            builder = builder.secret_cipher(cipher);
        }
        if let Some(ttl) = self.access_ttl {
            builder = builder.access_ttl(ttl);
        }
        if let Some(ttl) = self.refresh_ttl {
            builder = builder.refresh_ttl(ttl);
        }
        if let Some(grace) = self.reuse_grace {
            builder = builder.reuse_grace(grace);
        }
        if let Some(idle) = self.session_idle_timeout {
            builder = builder.session_idle_timeout(idle);
        }
        builder = builder.session_check(self.session_check);
        if self.login_max_failures.is_some() || self.register_max_per_hour.is_some() {
            let defaults = ThrottleConfig::default();
            builder = builder.throttle(ThrottleConfig {
                max_failures_per_identifier: self
                    .login_max_failures
                    .unwrap_or(defaults.max_failures_per_identifier),
                max_registrations_per_ip: self
                    .register_max_per_hour
                    .unwrap_or(defaults.max_registrations_per_ip),
                registration_window: Duration::from_secs(60 * 60),
                ..defaults
            });
        }
        if let Some(wait) = self.hash_max_wait {
            builder = builder.password_policy(PasswordPolicy::default().max_wait(wait));
        }
        builder = builder.trusted_proxies(self.trusted_proxies.iter().copied());
        builder = builder.idempotency(IdempotencyConfig {
            lock_ttl: self.idempotency_lock_ttl,
            ..IdempotencyConfig::default()
        });
        builder = builder.cookies(CookieConfig {
            transport: match self.cookies {
                CookieMode::Off => CookieTransport::Off,
                CookieMode::Refresh => CookieTransport::Refresh,
                CookieMode::Both => CookieTransport::Both,
            },
            secure: self.cookie_secure,
            same_site: self.cookie_same_site,
            host_prefix: self.cookie_host_prefix,
            access_http_only: self.access_cookie_http_only,
            allowed_origins: self.allowed_origins.clone(),
            ..CookieConfig::default()
        });
        builder.build().map_err(|err| {
            let message = err.message();
            let (field, problem) = message.split_once(": ").unwrap_or(("", message));
            let key = match field {
                "secret" => Some(if self.secret.is_none() {
                    Key::Algorithm
                } else {
                    Key::Secret
                }),
                "algorithm" | "private_key_pem" => Some(Key::Algorithm),
                "valid_roles" => Some(Key::Roles),
                "default_role" => Some(Key::DefaultRole),
                "admin_role" => Some(Key::Roles),
                "access_ttl" => Some(Key::AccessTtl),
                "refresh_ttl" => Some(Key::RefreshTtl),
                "reuse_grace" => Some(Key::ReuseGrace),
                "session_idle_timeout" => Some(Key::SessionIdleTimeout),
                "session_check" => Some(Key::SessionCheck),
                "password.max_wait" => Some(Key::HashMaxWait),
                "api_key" => Some(Key::ApiKey),
                "issuer" => Some(Key::Issuer),
                "audience" => Some(Key::Audience),
                "idempotency.lock_ttl" => Some(Key::IdempotencyLockTtl),
                "cookies.secure" if self.cookie_host_prefix => Some(Key::CookieHostPrefix),
                "cookies.secure" => Some(Key::CookieSecure),
                "cookies.same_site" => Some(Key::CookieSameSite),
                "cookies.allowed_origins" => Some(Key::AllowedOrigins),
                f if f.starts_with("cookies") => Some(Key::Cookies),
                _ => None,
            };
            match key {
                Some(Key::Algorithm) if field == "secret" => raw.err(
                    Key::Algorithm,
                    format!(
                        "HMAC algorithms need SENTRI_SECRET (at least {} bytes)",
                        self.algorithm.map_or(32, Algorithm::min_secret_len)
                    ),
                ),
                Some(Key::Secret) if problem.contains("asymmetric") => raw.err(
                    Key::Secret,
                    format!(
                        "is an HMAC secret, but SENTRI_ALGORITHM is {}; unset one of them",
                        self.algorithm.map_or("asymmetric", Algorithm::as_str)
                    ),
                ),
                Some(key) => raw.err(key, problem),
                None => SettingsError::new("configuration", message),
            }
        })
    }

    /// The database URL with any password replaced by `***`, for logs and
    /// error messages.
    pub fn database_url_redacted(&self) -> String {
        redact_url(self.database_url.expose())
    }

    /// The Redis URL with any password replaced by `***`, if one is set.
    pub fn redis_url_redacted(&self) -> Option<String> {
        self.redis_url.as_ref().map(|url| redact_url(url.expose()))
    }
}

fn read_file(raw: &mut Raw, path: &Path, text: &str) -> Result<(), SettingsError> {
    let file_name = || format!("configuration file {}", path.display());
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        SettingsError::new(file_name(), format!("is not valid TOML: {}", e.message()))
    })?;
    for (name, value) in table {
        let key = Key::from_file_key(&name).ok_or_else(|| {
            SettingsError::new(
                file_name(),
                format!(
                    "unknown key `{name}` (known: {})",
                    Key::ALL.map(Key::file_key).join(", ")
                ),
            )
        })?;
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => {
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        toml::Value::String(s) => parts.push(s),
                        _ => {
                            return Err(SettingsError::new(
                                file_name(),
                                format!("`{name}` must be a list of strings"),
                            ));
                        }
                    }
                }
                parts.join(",")
            }
            _ => {
                return Err(SettingsError::new(
                    file_name(),
                    format!(
                        "`{name}` must be a string, a whole number, a boolean or a list of strings"
                    ),
                ));
            }
        };
        raw.values
            .insert(key, (Zeroizing::new(text), Origin::File(path.to_owned())));
    }
    Ok(())
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The URL schemes the server can connect to, with the feature each needs.
fn check_database_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    let compiled = match scheme {
        "sqlite" => cfg!(feature = "sqlite"),
        "postgres" | "postgresql" => cfg!(feature = "postgres"),
        "mysql" | "mariadb" => cfg!(feature = "mysql"),
        _ => {
            return Err(format!(
                "must start with sqlite:, postgres:// or mysql:// (got {:?})",
                redact_url(url)
            ));
        }
    };
    if compiled {
        Ok(())
    } else {
        Err(format!(
            "this build of sentri-server has no {scheme} support (enable its cargo feature)"
        ))
    }
}

/// `redis://…`, or `rediss://…` with the `rustls` feature.
fn check_redis_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    match scheme {
        "redis" => Ok(()),
        "rediss" if cfg!(feature = "rustls") => Ok(()),
        "rediss" => Err(
            "this build of sentri-server has no TLS to Redis (enable its rustls feature)"
                .to_owned(),
        ),
        _ => Err(format!(
            "must start with redis:// or rediss:// (got {:?})",
            redact_url(url)
        )),
    }
}

/// `scheme://user:password@host/db` → `scheme://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
