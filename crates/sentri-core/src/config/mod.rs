//! Configuration (F-01): built once, validated at [`ConfigBuilder::build`].
//!
//! Every setter is infallible and records what it was given; `build()`
//! checks everything at once and reports the first bad value as a
//! `CONFIGURATION_ERROR` naming the field. A bad configuration therefore
//! fails at startup, never at the first request.
//!
//! ```
//! use sentri_core::config::{Config, SessionCheck};
//!
//! let config = Config::builder()
//!     .hs256("an HMAC secret of at least thirty-two bytes")
//!     .valid_roles(["user", "admin"])
//!     .access_ttl("15m")
//!     .refresh_ttl("7d")
//!     .session_check(SessionCheck::Always)
//!     .build()?;
//! assert_eq!(config.access_ttl().as_secs(), 900);
//! assert_eq!(config.default_role(), "user");
//!
//! let err = Config::builder().hs256("short").valid_roles(["user"]).build().unwrap_err();
//! assert_eq!(err.code().as_str(), "CONFIGURATION_ERROR");
//! assert!(err.message().starts_with("secret"));
//! # Ok::<(), sentri_core::Error>(())
//! ```

use crate::net::IpNet;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::cipher::{Aes256GcmCipher, SecretCipher, SharedCipher};
use crate::error::{Error, Result};
use crate::hooks::{Hooks, Overrides, RevocationCheck};
use crate::password::PasswordPolicy;

/// JWS algorithms sentri signs access tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC with SHA-256 (shared secret, ≥ 32 bytes).
    HS256,
    /// HMAC with SHA-384 (shared secret, ≥ 48 bytes).
    HS384,
    /// HMAC with SHA-512 (shared secret, ≥ 64 bytes).
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// The JWS name (`"HS256"`, `"EdDSA"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Parse a JWS name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "HS256" => Self::HS256,
            "HS384" => Self::HS384,
            "HS512" => Self::HS512,
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "ES256" => Self::ES256,
            "EdDSA" => Self::EdDSA,
            _ => return None,
        })
    }

    /// Whether the algorithm uses a shared secret.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    /// The shortest HMAC secret accepted, in bytes: the hash's output size
    /// (RFC 7518 §3.2): 32 for HS256, 48 for HS384, 64 for HS512; 0 for
    /// asymmetric algorithms.
    pub fn min_secret_len(self) -> usize {
        match self {
            Self::HS256 => 32,
            Self::HS384 => 48,
            Self::HS512 => 64,
            _ => 0,
        }
    }

    pub(crate) fn to_jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as J;
        match self {
            Self::HS256 => J::HS256,
            Self::HS384 => J::HS384,
            Self::HS512 => J::HS512,
            Self::RS256 => J::RS256,
            Self::RS384 => J::RS384,
            Self::RS512 => J::RS512,
            Self::ES256 => J::ES256,
            Self::EdDSA => J::EdDSA,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the signing key comes from.
#[derive(Clone)]
pub(crate) enum KeySource {
    /// HMAC secret.
    Secret(Zeroizing<Vec<u8>>),
    /// A private key PEM given by the application.
    Pem(Zeroizing<String>),
    /// Generate once and persist through the KeyStore.
    Generate,
}

/// How `protect` checks the session behind an access token (F-13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SessionCheck {
    /// Look the session up on every request; the user's current roles come
    /// from the store, and a logout takes effect at once. The default.
    #[default]
    Always,
    /// Signature and expiry only: no store access. A logout takes effect
    /// when the access token expires.
    Stateless,
    /// Like `Always`, but a looked-up session is remembered for at most
    /// this long (1 s … 1 h). Revocations made by this instance take effect
    /// at once; those made by another instance take effect at once when a
    /// [`RevocationBus`](crate::store::RevocationBus) is configured, and
    /// otherwise within this bound. While a configured bus is not live
    /// (it may miss events) the cache is not used: sessions are read from
    /// the store, and what was cached before is not used after (see
    /// [`RevocationBus::live_epoch`](crate::store::RevocationBus::live_epoch)).
    Cached(std::time::Duration),
}

/// Throttling of logins and self-registrations (F-27); see
/// [`crate::throttle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures per identifier in `window` before logins are refused.
    /// Default 10. `0` turns the per-identifier limit off.
    pub max_failures_per_identifier: u32,
    /// Failures per client address (an IPv6 client: its /64) in `window`.
    /// Default 100. `0` turns it off.
    pub max_failures_per_ip: u32,
    /// The sliding window of login failures. Default 15 minutes; at most
    /// 1 day.
    pub window: Duration,
    /// Self-registrations (`POST /register` without a configured API key)
    /// per client address in `registration_window`. Default 10. `0` turns
    /// the limit off.
    pub max_registrations_per_ip: u32,
    /// The sliding window of self-registrations. Default 1 hour; at most
    /// 1 day.
    pub registration_window: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            max_failures_per_identifier: 10,
            max_failures_per_ip: 100,
            window: Duration::from_secs(15 * 60),
            max_registrations_per_ip: 10,
            registration_window: Duration::from_secs(60 * 60),
        }
    }
}

/// The idempotency layer (F-26).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyConfig {
    /// The request header carrying the key. Default `X-Idempotency-Key`.
    pub header: String,
    /// How long a completed response is replayed. Default 5 minutes.
    pub ttl: Duration,
    /// How long a running request holds its key before another may take
    /// it (covers a process that died mid-request). Default 60 seconds
    /// ([`IdempotencyConfig::DEFAULT_LOCK_TTL`]).
    ///
    /// Requests must finish within it: a request still running when its
    /// lock lapses may be joined by a repeat that takes the key over (the
    /// late one then stores and frees nothing, its lease being stale). Bound
    /// request time below it (`sentri-server` refuses a request timeout
    /// that is not shorter), or raise it for slow handlers.
    pub lock_ttl: Duration,
    /// Methods the layer applies to. Default `POST`, `PUT`, `PATCH`.
    pub methods: Vec<String>,
}

impl IdempotencyConfig {
    /// The default [`IdempotencyConfig::lock_ttl`]: 60 seconds.
    pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(60);
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self {
            header: "X-Idempotency-Key".to_owned(),
            ttl: Duration::from_secs(300),
            lock_ttl: Self::DEFAULT_LOCK_TTL,
            methods: vec!["POST".into(), "PUT".into(), "PATCH".into()],
        }
    }
}

mod cookies;
pub use cookies::*;

/// A duration given as `"30s" "15m" "1h" "7d"`, whole seconds, or a
/// [`Duration`].
///
/// ```
/// use sentri_core::config::parse_duration;
/// use std::time::Duration;
///
/// assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
/// assert_eq!(parse_duration("3600"), Ok(Duration::from_secs(3600)));
/// assert!(parse_duration("15 minutes").is_err());
/// ```
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "{text:?} is not a duration (use e.g. \"30s\", \"15m\", \"1h\", \"7d\" or whole seconds)"
        )
    };
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).map(Duration::from_secs).ok_or_else(bad)
}

/// Anything a duration setter accepts.
pub trait IntoDuration {
    /// Convert, or explain why not.
    fn into_duration(self) -> std::result::Result<Duration, String>;
}

impl IntoDuration for Duration {
    fn into_duration(self) -> std::result::Result<Duration, String> {
        Ok(self)
    }
}

impl IntoDuration for &str {
    fn into_duration(self) -> std::result::Result<Duration, String> {
        parse_duration(self)
    }
}

impl IntoDuration for String {
    fn into_duration(self) -> std::result::Result<Duration, String> {
        parse_duration(&self)
    }
}

impl IntoDuration for u64 {
    fn into_duration(self) -> std::result::Result<Duration, String> {
        Ok(Duration::from_secs(self))
    }
}

/// The validated configuration. Build it with [`Config::builder`].
#[derive(Clone)]
pub struct Config {
    pub(crate) algorithm: Algorithm,
    pub(crate) key_source: KeySource,
    pub(crate) valid_roles: BTreeSet<String>,
    pub(crate) default_role: String,
    pub(crate) admin_role: String,
    pub(crate) access_ttl: Duration,
    pub(crate) refresh_ttl: Duration,
    pub(crate) reuse_grace: Duration,
    pub(crate) touch_interval: Duration,
    pub(crate) session_idle_timeout: Option<Duration>,
    pub(crate) issuer: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) password_policy: PasswordPolicy,
    pub(crate) api_key: Option<Zeroizing<String>>,
    pub(crate) session_check: SessionCheck,
    pub(crate) throttle: ThrottleConfig,
    pub(crate) idempotency: IdempotencyConfig,
    pub(crate) verified_token_cache: u64,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) hooks: Hooks,
    pub(crate) hook_timeout: Duration,
    pub(crate) overrides: Overrides,
    pub(crate) revocation_check: Option<RevocationCheck>,
    pub(crate) cookies: CookieConfig,
    pub(crate) body_limit: usize,
    /// Encrypts secrets at rest (stored signing keys); `None`: plaintext.
    pub(crate) cipher: Option<SharedCipher>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("algorithm", &self.algorithm)
            .field("valid_roles", &self.valid_roles)
            .field("default_role", &self.default_role)
            .field("admin_role", &self.admin_role)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("reuse_grace", &self.reuse_grace)
            .field("session_idle_timeout", &self.session_idle_timeout)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("session_check", &self.session_check)
            .field("throttle", &self.throttle)
            .field("idempotency", &self.idempotency)
            .field("cookies", &self.cookies)
            .field("body_limit", &self.body_limit)
            .field(
                "secret_cipher",
                &self.cipher.as_ref().map(|_| "<configured>"),
            )
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Start building a configuration.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    /// The roles users may hold.
    pub fn valid_roles(&self) -> &BTreeSet<String> {
        &self.valid_roles
    }
    /// Whether `role` is one of the valid roles.
    pub fn is_valid_role(&self, role: &str) -> bool {
        self.valid_roles.contains(role)
    }
    /// The role self-registration grants.
    pub fn default_role(&self) -> &str {
        &self.default_role
    }
    /// The role allowed to manage other users' roles.
    pub fn admin_role(&self) -> &str {
        &self.admin_role
    }
    /// Lifetime of access tokens.
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }
    /// Lifetime of sessions and refresh tokens.
    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }
    /// Window after a rotation in which the replaced refresh token is only
    /// refused, not treated as reuse.
    pub fn reuse_grace(&self) -> Duration {
        self.reuse_grace
    }
    /// How long a hook or event subscriber may hold a response.
    pub fn hook_timeout(&self) -> Duration {
        self.hook_timeout
    }

    /// The `iss` set in access tokens and required of them, if any.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }
    /// The `aud` set in access tokens and required of them, if any.
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }
    /// Inactivity timeout of sessions: a session unused for longer ends.
    /// `None` (the default): sessions end only at `refresh_ttl`.
    pub fn session_idle_timeout(&self) -> Option<Duration> {
        self.session_idle_timeout
    }
    /// How `protect` checks sessions.
    pub fn session_check(&self) -> SessionCheck {
        self.session_check
    }
    /// Throttling settings.
    pub fn throttle(&self) -> &ThrottleConfig {
        &self.throttle
    }
    /// Idempotency settings.
    pub fn idempotency(&self) -> &IdempotencyConfig {
        &self.idempotency
    }
    /// Whether an API key is required for registration.
    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }
    /// The password policy.
    pub fn password_policy(&self) -> &PasswordPolicy {
        &self.password_policy
    }
    /// Proxies whose `X-Forwarded-For` is believed (addresses or networks).
    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.trusted_proxies
    }
    /// Cookie transport and CSRF settings.
    pub fn cookies(&self) -> &CookieConfig {
        &self.cookies
    }
    /// The largest request body the built-in routes accept, in bytes.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// The cipher of secrets at rest, when one is configured
    /// ([`ConfigBuilder::key_encryption_key`],
    /// [`ConfigBuilder::secret_cipher`]).
    pub fn secret_cipher(&self) -> Option<&Arc<dyn SecretCipher>> {
        self.cipher.as_ref()
    }
}

/// Builder of [`Config`]. Every setter documents its default.
#[derive(Default)]
#[must_use]
pub struct ConfigBuilder {
    algorithm: Option<Algorithm>,
    secret: Option<Zeroizing<Vec<u8>>>,
    private_key_pem: Option<Zeroizing<String>>,
    valid_roles: Option<Vec<String>>,
    default_role: Option<String>,
    admin_role: Option<String>,
    access_ttl: Option<std::result::Result<Duration, String>>,
    refresh_ttl: Option<std::result::Result<Duration, String>>,
    reuse_grace: Option<std::result::Result<Duration, String>>,
    touch_interval: Option<std::result::Result<Duration, String>>,
    session_idle_timeout: Option<std::result::Result<Duration, String>>,
    issuer: Option<String>,
    audience: Option<String>,
    password_policy: Option<PasswordPolicy>,
    api_key: Option<Zeroizing<String>>,
    session_check: SessionCheck,
    throttle: Option<ThrottleConfig>,
    idempotency: Option<IdempotencyConfig>,
    verified_token_cache: Option<u64>,
    trusted_proxies: Vec<IpNet>,
    hooks: Hooks,
    overrides: Overrides,
    revocation_check: Option<RevocationCheck>,
    cookies: Option<CookieConfig>,
    body_limit: Option<usize>,
    key_encryption_key: Option<Zeroizing<Vec<u8>>>,
    cipher: Option<SharedCipher>,
    hook_timeout: Option<Duration>,
}

impl ConfigBuilder {
    /// Sign with HS256 and `secret` (at least 32 bytes).
    pub fn hs256(self, secret: impl AsRef<[u8]>) -> Self {
        self.algorithm(Algorithm::HS256).secret(secret)
    }

    /// The signing algorithm. Default: `HS256` when a secret is set,
    /// otherwise `EdDSA` with a generated, persisted key.
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = Some(algorithm);
        self
    }

    /// The HMAC secret: at least 32 bytes for HS256, 48 for HS384, 64 for
    /// HS512.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(Zeroizing::new(secret.as_ref().to_vec()));
        self
    }

    /// A PKCS#8 (or, for RSA, PKCS#1) private key PEM for an asymmetric
    /// algorithm. Without one, a key is generated once and persisted
    /// through the KeyStore.
    pub fn private_key_pem(mut self, pem: impl Into<String>) -> Self {
        self.private_key_pem = Some(Zeroizing::new(pem.into()));
        self
    }

    /// The roles users may hold (required, non-empty). Names are 1–64
    /// characters of `[A-Za-z0-9_.:-]`.
    pub fn valid_roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.valid_roles = Some(roles.into_iter().map(Into::into).collect());
        self
    }

    /// The role self-registration grants. Default: the first valid role.
    pub fn default_role(mut self, role: impl Into<String>) -> Self {
        self.default_role = Some(role.into());
        self
    }

    /// The role that may manage other users' roles. Default `admin` (it must
    /// be a valid role when the default is used only if present; an explicit
    /// value must be valid).
    pub fn admin_role(mut self, role: impl Into<String>) -> Self {
        self.admin_role = Some(role.into());
        self
    }

    /// Access token lifetime. Default `15m`. At least 1 second.
    pub fn access_ttl(mut self, ttl: impl IntoDuration) -> Self {
        self.access_ttl = Some(ttl.into_duration());
        self
    }

    /// Session and refresh token lifetime. Default `7d`. Must exceed the
    /// access token lifetime.
    pub fn refresh_ttl(mut self, ttl: impl IntoDuration) -> Self {
        self.refresh_ttl = Some(ttl.into_duration());
        self
    }

    /// Grace after a rotation in which presenting the replaced refresh token
    /// is refused (`TOKEN_INVALID`) without revoking the session, and
    /// accepted by `protect`'s silent refresh as the session's user (two
    /// browser tabs racing, a response lost on the way back). Default
    /// `10s` (as Supabase Auth's reuse interval); at most `1m`.
    pub fn reuse_grace(mut self, grace: impl IntoDuration) -> Self {
        self.reuse_grace = Some(grace.into_duration());
        self
    }

    /// Least time between two writes of a session's `last_active_at` by
    /// `protect`. Default `5m`.
    pub fn touch_interval(mut self, interval: impl IntoDuration) -> Self {
        self.touch_interval = Some(interval.into_duration());
        self
    }

    /// End a session that has not been used (`last_active_at`: a refresh,
    /// or a request `protect` touched) for longer than `timeout`: its
    /// refresh token and, in [`SessionCheck::Always`] mode, its access
    /// tokens are refused from then on. Default: off (a session lasts
    /// `refresh_ttl`). Must be longer than `access_ttl` and
    /// `touch_interval`, so that a session in use is never taken for idle.
    pub fn session_idle_timeout(mut self, timeout: impl IntoDuration) -> Self {
        self.session_idle_timeout = Some(timeout.into_duration());
        self
    }

    /// Set and require the `iss` claim. Default: none.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Set and require the `aud` claim. Default: none.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The password policy. Default: argon2id m=19456 KiB, t=2, p=1, length
    /// 8 characters to 1024 bytes.
    pub fn password_policy(mut self, policy: PasswordPolicy) -> Self {
        self.password_policy = Some(policy);
        self
    }

    /// Require this key in `X-Api-Key` for `POST /register` (at least 16
    /// bytes). Default: none, and self-registration may request only the
    /// default role.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Zeroizing::new(key.into()));
        self
    }

    /// How `protect` checks sessions. Default [`SessionCheck::Always`].
    pub fn session_check(mut self, mode: SessionCheck) -> Self {
        self.session_check = mode;
        self
    }

    /// Throttling. Default: 10 failed logins per identifier and 100 per
    /// client address in 15 minutes; 10 self-registrations per client
    /// address in an hour.
    pub fn throttle(mut self, throttle: ThrottleConfig) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// Idempotency settings. Default: see [`IdempotencyConfig`].
    pub fn idempotency(mut self, idempotency: IdempotencyConfig) -> Self {
        self.idempotency = Some(idempotency);
        self
    }

    /// How many verified access tokens to remember, so a token seen again
    /// skips its signature check (expiry is still checked on every use).
    /// Default 10 000; `0` turns the cache off.
    pub fn verified_token_cache(mut self, capacity: u64) -> Self {
        self.verified_token_cache = Some(capacity);
        self
    }

    /// Proxies whose `X-Forwarded-For` header is believed: single addresses
    /// or CIDR networks ([`IpNet`]; `"10.0.0.0/8".parse()`, or
    /// `IpNet::from(addr)` for an `IpAddr`). Default: none (the socket peer
    /// is the client). See [`crate::net::client_ip`] for how the client is
    /// found behind them.
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpNet>) -> Self {
        self.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// Lifecycle hooks (F-07). Default: none.
    pub fn hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// The longest a hook may hold a response: a hook still running after
    /// it is logged and abandoned. Default 5 s
    /// ([`crate::hooks::DEFAULT_HOOK_TIMEOUT`]); from 1 ms to 5 minutes.
    pub fn hook_timeout(mut self, timeout: Duration) -> Self {
        self.hook_timeout = Some(timeout);
        self
    }

    /// Replacements for built-in services (F-08). Default: none.
    pub fn overrides(mut self, overrides: Overrides) -> Self {
        self.overrides = overrides;
        self
    }

    /// An extra revocation check run by `protect` in every mode with the
    /// token's session id; `Ok(true)` rejects the token. Default: none.
    pub fn is_token_revoked<F, Fut>(mut self, check: F) -> Self
    where
        F: Fn(crate::model::SessionId) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = std::result::Result<bool, crate::BoxError>>
            + Send
            + 'static,
    {
        self.revocation_check = Some(RevocationCheck::new(check));
        self
    }

    /// Cookie transport and CSRF settings of the HTTP surface (F-23).
    /// Default: see [`CookieConfig`] (transport off, Secure,
    /// SameSite=Strict).
    pub fn cookies(mut self, cookies: CookieConfig) -> Self {
        self.cookies = Some(cookies);
        self
    }

    /// The largest request body the built-in routes accept; a larger one is
    /// `PAYLOAD_TOO_LARGE`. Default 16 KiB ([`DEFAULT_BODY_LIMIT`]); from
    /// 1 KiB to 1 MiB.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = Some(bytes);
        self
    }

    /// Encrypt stored signing keys (and later other secrets at rest) with
    /// the built-in AES-256-GCM [`Aes256GcmCipher`] under this 32-byte
    /// key-encryption key, which must not live in the database. Default:
    /// none (stored keys are plaintext). For a key given as text (hex or
    /// base64) use [`Aes256GcmCipher::from_encoded`] with
    /// [`ConfigBuilder::secret_cipher`].
    ///
    /// On start, plaintext keys already stored are encrypted in place;
    /// stored keys that are encrypted need the same key again (`Sentri::new`
    /// refuses to start without it, or with another one).
    pub fn key_encryption_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.key_encryption_key = Some(Zeroizing::new(key.as_ref().to_vec()));
        self
    }

    /// Encrypt secrets at rest with an application's own cipher (e.g. one
    /// that calls a KMS); see [`crate::cipher`]. Default: none. Exclusive
    /// with [`ConfigBuilder::key_encryption_key`].
    pub fn secret_cipher(mut self, cipher: impl SecretCipher) -> Self {
        self.cipher = Some(Arc::new(cipher));
        self
    }

    /// Validate everything and build.
    ///
    /// # Errors
    /// `CONFIGURATION_ERROR` naming the first bad field.
    pub fn build(self) -> Result<Config> {
        let cfg = |field: &str, problem: &str| Error::configuration(field, problem);

        let algorithm = self.algorithm.unwrap_or(if self.secret.is_some() {
            Algorithm::HS256
        } else {
            Algorithm::EdDSA
        });
        let key_source = if algorithm.is_hmac() {
            if self.private_key_pem.is_some() {
                return Err(cfg(
                    "private_key_pem",
                    "HMAC algorithms use a secret, not a private key",
                ));
            }
            let secret = self
                .secret
                .ok_or_else(|| cfg("secret", "required for HMAC algorithms"))?;
            // RFC 7518 §3.2: a key at least as long as the hash output.
            let min = algorithm.min_secret_len();
            if secret.len() < min {
                return Err(Error::configuration(
                    "secret",
                    &format!("must be at least {min} bytes for {algorithm}"),
                ));
            }
            KeySource::Secret(secret)
        } else {
            if self.secret.is_some() {
                return Err(cfg(
                    "secret",
                    "asymmetric algorithms use a private key, not a secret",
                ));
            }
            match self.private_key_pem {
                Some(pem) => {
                    crate::keys::SigningKey::from_pem(algorithm, "configured", &pem).map_err(
                        |_| {
                            cfg(
                                "private_key_pem",
                                "not a valid private key for the algorithm",
                            )
                        },
                    )?;
                    KeySource::Pem(pem)
                }
                None => KeySource::Generate,
            }
        };

        let roles = self
            .valid_roles
            .ok_or_else(|| cfg("valid_roles", "required"))?;
        if roles.is_empty() {
            return Err(cfg("valid_roles", "must not be empty"));
        }
        for role in &roles {
            if !is_role_name(role) {
                return Err(cfg(
                    "valid_roles",
                    "role names are 1-64 characters of A-Z a-z 0-9 _ . : -",
                ));
            }
        }
        let default_role = self.default_role.unwrap_or_else(|| roles[0].clone());
        let valid_roles: BTreeSet<String> = roles.into_iter().collect();
        if !valid_roles.contains(&default_role) {
            return Err(cfg("default_role", "must be one of valid_roles"));
        }
        let admin_role = match self.admin_role {
            Some(role) if !valid_roles.contains(&role) => {
                return Err(cfg("admin_role", "must be one of valid_roles"));
            }
            Some(role) => role,
            None => "admin".to_owned(),
        };

        let dur =
            |field: &str, v: Option<std::result::Result<Duration, String>>, default: u64| match v {
                None => Ok(Duration::from_secs(default)),
                Some(Ok(d)) => Ok(d),
                Some(Err(e)) => Err(cfg(field, &e)),
            };
        let access_ttl = dur("access_ttl", self.access_ttl, 15 * 60)?;
        let refresh_ttl = dur("refresh_ttl", self.refresh_ttl, 7 * 86_400)?;
        let reuse_grace = dur("reuse_grace", self.reuse_grace, 10)?;
        let touch_interval = dur("touch_interval", self.touch_interval, 5 * 60)?;
        if access_ttl < Duration::from_secs(1) {
            return Err(cfg("access_ttl", "must be at least 1 second"));
        }
        if access_ttl > Duration::from_secs(86_400) {
            return Err(cfg("access_ttl", "must be at most 1 day"));
        }
        if refresh_ttl <= access_ttl {
            return Err(cfg("refresh_ttl", "must be longer than access_ttl"));
        }
        if refresh_ttl > Duration::from_secs(400 * 86_400) {
            return Err(cfg("refresh_ttl", "must be at most 400 days"));
        }
        if let SessionCheck::Cached(ttl) = self.session_check
            && (ttl < Duration::from_secs(1) || ttl > Duration::from_secs(3600))
        {
            return Err(cfg(
                "session_check",
                "the Cached bound must be 1 second to 1 hour",
            ));
        }
        if reuse_grace > Duration::from_secs(60) {
            return Err(cfg("reuse_grace", "must be at most 1 minute"));
        }
        let session_idle_timeout = match self.session_idle_timeout {
            None => None,
            Some(Err(e)) => return Err(cfg("session_idle_timeout", &e)),
            Some(Ok(t)) if t <= access_ttl || t <= touch_interval => {
                return Err(cfg(
                    "session_idle_timeout",
                    "must be longer than access_ttl and touch_interval",
                ));
            }
            Some(Ok(t)) => Some(t),
        };

        if matches!(&self.issuer, Some(s) if s.trim().is_empty()) {
            return Err(cfg("issuer", "must not be empty"));
        }
        if matches!(&self.audience, Some(s) if s.trim().is_empty()) {
            return Err(cfg("audience", "must not be empty"));
        }

        let password_policy = self.password_policy.unwrap_or_default();
        password_policy.validate()?;

        if let Some(key) = &self.api_key
            && key.len() < 16
        {
            return Err(cfg("api_key", "must be at least 16 bytes"));
        }

        let throttle = self.throttle.unwrap_or_default();
        if throttle.window.is_zero() {
            return Err(cfg("throttle.window", "must be positive"));
        }
        if throttle.window > Duration::from_secs(86_400) {
            return Err(cfg("throttle.window", "must be at most 1 day"));
        }
        if throttle.registration_window.is_zero() {
            return Err(cfg("throttle.registration_window", "must be positive"));
        }
        if throttle.registration_window > Duration::from_secs(86_400) {
            return Err(cfg("throttle.registration_window", "must be at most 1 day"));
        }

        let idempotency = self.idempotency.unwrap_or_default();
        if idempotency.header.is_empty()
            || !idempotency
                .header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(cfg("idempotency.header", "must be a valid header name"));
        }
        if idempotency.ttl.is_zero() {
            return Err(cfg("idempotency.ttl", "must be positive"));
        }
        if idempotency.lock_ttl.is_zero() {
            return Err(cfg("idempotency.lock_ttl", "must be positive"));
        }
        let methods: Vec<String> = idempotency
            .methods
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        if methods.is_empty()
            || methods
                .iter()
                .any(|m| !matches!(m.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        {
            return Err(cfg(
                "idempotency.methods",
                "must be a non-empty subset of POST, PUT, PATCH, DELETE",
            ));
        }
        let idempotency = IdempotencyConfig {
            methods,
            ..idempotency
        };

        let cookies = self.cookies.unwrap_or_default();
        cookies.validate()?;
        let body_limit = self.body_limit.unwrap_or(DEFAULT_BODY_LIMIT);
        if !(1024..=1024 * 1024).contains(&body_limit) {
            return Err(cfg("body_limit", "must be from 1 KiB to 1 MiB"));
        }

        let hook_timeout = self
            .hook_timeout
            .unwrap_or(crate::hooks::DEFAULT_HOOK_TIMEOUT);
        if !(Duration::from_millis(1)..=Duration::from_secs(300)).contains(&hook_timeout) {
            return Err(cfg("hook_timeout", "must be from 1 ms to 5 minutes"));
        }
        let mut hooks = self.hooks;
        hooks.set_timeout(hook_timeout);

        let cipher = match (self.key_encryption_key, self.cipher) {
            (Some(_), Some(_)) => {
                return Err(cfg(
                    "key_encryption_key",
                    "set either a key-encryption key or a secret cipher, not both",
                ));
            }
            (Some(key), None) => Some(Arc::new(Aes256GcmCipher::new(&key)?) as SharedCipher),
            (None, cipher) => cipher,
        };

        Ok(Config {
            algorithm,
            key_source,
            valid_roles,
            default_role,
            admin_role,
            access_ttl,
            refresh_ttl,
            reuse_grace,
            touch_interval,
            session_idle_timeout,
            issuer: self.issuer,
            audience: self.audience,
            password_policy,
            api_key: self.api_key,
            session_check: self.session_check,
            throttle,
            idempotency,
            verified_token_cache: self.verified_token_cache.unwrap_or(10_000),
            trusted_proxies: self.trusted_proxies,
            hooks,
            hook_timeout,
            overrides: self.overrides,
            revocation_check: self.revocation_check,
            cookies,
            body_limit,
            cipher,
        })
    }
}

/// Whether `name` is a well-formed role name.
pub(crate) fn is_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Config>();
    let _ = Arc::new(());
}

#[cfg(test)]
mod tests;
