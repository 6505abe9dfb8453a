//! Client mode (F-16): verify sentri's access tokens in a resource server
//! that holds no database, from the auth server's published key set.
//!
//! [`JwksVerifier`] fetches the JWKS (`GET /auth/keys`) through a
//! [`JwksSource`], keeps it for the response's `Cache-Control: max-age`
//! (clamped to a sane range), and refetches when a token names an unknown
//! `kid`, at most once per [`VerifierConfig::min_refetch_interval`]. Each key
//! accepts only its own algorithm; symmetric (`oct`) keys in a key set are
//! ignored, so neither `none` nor HMAC with a published key can pass.
//!
//! Both [`Sentri`] and [`JwksVerifier`] implement [`AccessVerifier`], which
//! is what the adapters' `protect` needs: the same protect, authorize and
//! permit work in server mode and in client mode.
//!
//! ```
//! use std::sync::Arc;
//! use sentri_core::client::{JwksDocument, JwksSource, JwksVerifier, VerifierConfig};
//!
//! // Any source works; `HttpJwksSource` (feature `jwks-http`) fetches a URL.
//! struct Fixed(jsonwebtoken::jwk::JwkSet);
//!
//! #[async_trait::async_trait]
//! impl JwksSource for Fixed {
//!     async fn fetch(&self) -> sentri_core::Result<JwksDocument> {
//!         Ok(JwksDocument { keys: self.0.clone(), max_age: None })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> sentri_core::Result<()> {
//! let source = Fixed(jsonwebtoken::jwk::JwkSet { keys: vec![] });
//! let verifier = JwksVerifier::new(Arc::new(source), VerifierConfig::default()).await?;
//! let err = verifier.verify_access("not.a.token").await.unwrap_err();
//! assert_eq!(err.code().as_str(), "TOKEN_INVALID");
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use parking_lot::RwLock;

use crate::clock::Clock;
use crate::error::{Error, ErrorCode, Result};
use crate::keys::VerifyKey;
use crate::service::Sentri;
use crate::tokens::{self, AuthUser, UnknownKid};
use crate::verified::VerifiedTokens;

/// Anything that turns an access token into its user: the auth server
/// itself ([`Sentri`]) or a resource server's [`JwksVerifier`].
#[async_trait]
pub trait AccessVerifier: Send + Sync + 'static {
    /// Verify `token` (F-20 error codes: `TOKEN_INVALID`, `TOKEN_EXPIRED`,
    /// `SERVICE_UNAVAILABLE`).
    async fn verify_access(&self, token: &str) -> Result<AuthUser>;
}

#[async_trait]
impl AccessVerifier for Sentri {
    async fn verify_access(&self, token: &str) -> Result<AuthUser> {
        Sentri::verify_access(self, token).await
    }
}

/// A fetched key set and how long it may be kept.
#[derive(Debug, Clone)]
pub struct JwksDocument {
    /// The keys.
    pub keys: JwkSet,
    /// `Cache-Control: max-age`, if the response had one.
    pub max_age: Option<Duration>,
}

/// Where a [`JwksVerifier`] gets the key set.
#[async_trait]
pub trait JwksSource: Send + Sync + 'static {
    /// Fetch the current key set.
    ///
    /// # Errors
    /// `SERVICE_UNAVAILABLE` when the auth server cannot be reached.
    async fn fetch(&self) -> Result<JwksDocument>;
}

/// Settings of a [`JwksVerifier`].
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Require this `iss`. Default: none.
    pub issuer: Option<String>,
    /// Require this `aud`. Default: none.
    pub audience: Option<String>,
    /// How long to keep a key set whose response had no max-age.
    /// Default 5 minutes.
    pub default_max_age: Duration,
    /// Least time between two fetches, whatever max-age or unknown `kid`s
    /// ask for. Default 30 seconds.
    pub min_refetch_interval: Duration,
    /// Longest a key set is kept, whatever max-age says. Default 1 day.
    pub max_max_age: Duration,
    /// Verified tokens remembered (expiry still checked on every use).
    /// Default 10 000; 0 turns the cache off.
    pub verified_token_cache: u64,
    /// The clock for expiry checks.
    pub clock: Clock,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            default_max_age: Duration::from_secs(300),
            min_refetch_interval: Duration::from_secs(30),
            max_max_age: Duration::from_secs(86_400),
            verified_token_cache: 10_000,
            clock: Clock::system(),
        }
    }
}

struct KeySet {
    by_kid: HashMap<String, VerifyKey>,
    fresh_until: Instant,
}

struct Inner {
    source: Arc<dyn JwksSource>,
    config: VerifierConfig,
    keys: RwLock<Arc<KeySet>>,
    /// Held while fetching (single flight); holds when the last fetch began.
    last_fetch: tokio::sync::Mutex<Instant>,
    verified: Option<VerifiedTokens>,
}

/// Verifies access tokens against an auth server's published keys.
/// Cheap to clone.
#[derive(Clone)]
pub struct JwksVerifier(Arc<Inner>);

impl std::fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksVerifier")
            .field("config", &self.0.config)
            .finish_non_exhaustive()
    }
}

impl JwksVerifier {
    /// Fetch the key set once and build the verifier.
    ///
    /// # Errors
    /// `SERVICE_UNAVAILABLE` when the first fetch fails;
    /// `CONFIGURATION_ERROR` for a bad setting.
    pub async fn new(source: Arc<dyn JwksSource>, config: VerifierConfig) -> Result<Self> {
        if config.min_refetch_interval > config.max_max_age {
            return Err(Error::configuration(
                "min_refetch_interval",
                "must not exceed max_max_age",
            ));
        }
        let doc = source.fetch().await?;
        let keys = build_key_set(&doc, &config);
        // An entry is trusted for at most an hour, so a token signed by a
        // key the auth server has withdrawn is re-checked within that.
        let verified = (config.verified_token_cache > 0)
            .then(|| VerifiedTokens::new(config.verified_token_cache).max_age(3600));
        Ok(Self(Arc::new(Inner {
            source,
            config,
            keys: RwLock::new(Arc::new(keys)),
            last_fetch: tokio::sync::Mutex::new(Instant::now()),
            verified,
        })))
    }

    /// The `kid`s currently trusted.
    pub fn kids(&self) -> Vec<String> {
        self.0.keys.read().by_kid.keys().cloned().collect()
    }

    /// Verify an access token, with the checks of server mode: the key its
    /// `kid` names (algorithm pinned to it), no `crit` header, `typ:
    /// "at+jwt"` (or the legacy `typ: "access"` claim), the configured
    /// `iss`/`aud` (required when set), `exp`, and `nbf`/`iat` no more than
    /// [`CLOCK_LEEWAY_SECS`](crate::tokens::CLOCK_LEEWAY_SECS) ahead.
    ///
    /// # Errors
    /// `TOKEN_INVALID` (malformed, forged, unknown key, wrong algorithm,
    /// type, issuer or audience, not yet valid), `TOKEN_EXPIRED`.
    pub async fn verify_access(&self, token: &str) -> Result<AuthUser> {
        let now = self.0.config.clock.unix_seconds();
        if let Some(cache) = &self.0.verified
            && let Some(user) = cache.get(token, now)
        {
            return if user.expires_at() <= now {
                Err(Error::new(ErrorCode::TokenExpired))
            } else {
                Ok(user)
            };
        }
        if self.0.keys.read().fresh_until <= Instant::now() {
            self.refetch(false).await;
        }
        let claims = match self.verify_now(token, now) {
            Err(err) if is_unknown_kid(&err) && self.refetch(true).await => {
                self.verify_now(token, now)?
            }
            other => other?,
        };
        let user = AuthUser::from_claims(&claims);
        if let Some(cache) = &self.0.verified {
            cache.insert(token, user.clone(), now);
        }
        Ok(user)
    }

    fn verify_now(&self, token: &str, now: i64) -> Result<tokens::AccessClaims> {
        let keys = self.0.keys.read().clone();
        let c = &self.0.config;
        tokens::verify_with(
            &keys.by_kid,
            None,
            token,
            c.issuer.as_deref(),
            c.audience.as_deref(),
            now,
        )
    }

    /// Fetch the key set again unless one was fetched within the minimum
    /// interval. Returns whether new keys were installed. A failed fetch
    /// keeps the old keys (logged).
    async fn refetch(&self, unknown_kid: bool) -> bool {
        let mut last = self.0.last_fetch.lock().await;
        let min = self.0.config.min_refetch_interval;
        if last.elapsed() < min {
            return false;
        }
        if !unknown_kid && self.0.keys.read().fresh_until > Instant::now() {
            // Another task refreshed while this one waited.
            return false;
        }
        *last = Instant::now();
        match self.0.source.fetch().await {
            Ok(doc) => {
                let keys = build_key_set(&doc, &self.0.config);
                *self.0.keys.write() = Arc::new(keys);
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not refresh the JWKS; keeping the current keys");
                false
            }
        }
    }
}

#[async_trait]
impl AccessVerifier for JwksVerifier {
    async fn verify_access(&self, token: &str) -> Result<AuthUser> {
        JwksVerifier::verify_access(self, token).await
    }
}

fn is_unknown_kid(err: &Error) -> bool {
    std::error::Error::source(err).is_some_and(|s| s.is::<UnknownKid>())
}

fn build_key_set(doc: &JwksDocument, config: &VerifierConfig) -> KeySet {
    let max_age = doc
        .max_age
        .unwrap_or(config.default_max_age)
        .clamp(config.min_refetch_interval, config.max_max_age);
    let mut by_kid = HashMap::new();
    for jwk in &doc.keys.keys {
        match verify_key(jwk) {
            Some((kid, key)) => {
                by_kid.insert(kid, key);
            }
            None => tracing::debug!(kid = ?jwk.common.key_id, "ignoring an unusable JWK"),
        }
    }
    KeySet {
        by_kid,
        fresh_until: Instant::now() + max_age,
    }
}

/// The key and its one algorithm, or `None` for keys never to trust:
/// symmetric keys, keys without a `kid`, keys whose `alg` does not fit.
fn verify_key(jwk: &Jwk) -> Option<(String, VerifyKey)> {
    use jsonwebtoken::Algorithm as A;
    let kid = jwk.common.key_id.clone()?;
    let declared = jwk.common.key_algorithm;
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) => match (p.curve.clone(), declared) {
            (EllipticCurve::Ed25519, None | Some(KeyAlgorithm::EdDSA)) => A::EdDSA,
            _ => return None,
        },
        AlgorithmParameters::EllipticCurve(p) => match (p.curve.clone(), declared) {
            (EllipticCurve::P256, None | Some(KeyAlgorithm::ES256)) => A::ES256,
            (EllipticCurve::P384, None | Some(KeyAlgorithm::ES384)) => A::ES384,
            _ => return None,
        },
        AlgorithmParameters::RSA(_) => match declared? {
            KeyAlgorithm::RS256 => A::RS256,
            KeyAlgorithm::RS384 => A::RS384,
            KeyAlgorithm::RS512 => A::RS512,
            KeyAlgorithm::PS256 => A::PS256,
            KeyAlgorithm::PS384 => A::PS384,
            KeyAlgorithm::PS512 => A::PS512,
            _ => return None,
        },
        _ => return None,
    };
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, VerifyKey { algorithm, key }))
}

/// Parse `max-age` from a `Cache-Control` header value. `no-store` and
/// `no-cache` mean zero (the verifier then refetches at its minimum
/// interval).
///
/// ```
/// use sentri_core::client::cache_control_max_age;
/// use std::time::Duration;
///
/// assert_eq!(cache_control_max_age("public, max-age=600"), Some(Duration::from_secs(600)));
/// assert_eq!(cache_control_max_age("no-store"), Some(Duration::ZERO));
/// assert_eq!(cache_control_max_age("public"), None);
/// ```
pub fn cache_control_max_age(value: &str) -> Option<Duration> {
    let mut found = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            found = secs.trim_matches('"').parse().ok().map(Duration::from_secs);
        }
    }
    found
}

/// Fetches the key set over HTTP(S) (feature `jwks-http`; HTTPS with the
/// `rustls` feature).
#[cfg(feature = "jwks-http")]
#[derive(Debug, Clone)]
pub struct HttpJwksSource {
    client: reqwest::Client,
    url: String,
}

#[cfg(feature = "jwks-http")]
impl HttpJwksSource {
    /// A source for `url` (e.g. `https://auth.example.com/auth/keys`), with a
    /// 5 second timeout.
    ///
    /// # Errors
    /// `CONFIGURATION_ERROR` when the HTTP client cannot be built.
    pub fn new(url: impl Into<String>) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| {
                Error::configuration("jwks_url", "cannot build an HTTP client").with_source(e)
            })?;
        Ok(Self {
            client,
            url: url.into(),
        })
    }
}

#[cfg(feature = "jwks-http")]
#[async_trait]
impl JwksSource for HttpJwksSource {
    async fn fetch(&self) -> Result<JwksDocument> {
        let unavailable =
            |e: reqwest::Error| Error::new(ErrorCode::ServiceUnavailable).with_source(e);
        let response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status()
            .map_err(unavailable)?;
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(cache_control_max_age);
        let keys: JwkSet = response.json().await.map_err(unavailable)?;
        Ok(JwksDocument { keys, max_age })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_parsing() {
        assert_eq!(
            cache_control_max_age("max-age=60"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            cache_control_max_age("Public, Max-Age=\"7\""),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            cache_control_max_age("no-cache, max-age=60"),
            Some(Duration::ZERO)
        );
        assert_eq!(cache_control_max_age("max-age=soon"), None);
    }

    #[test]
    fn symmetric_and_kidless_keys_are_never_trusted() {
        let oct: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "oct", "kid": "h", "alg": "HS256", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
        }))
        .unwrap();
        assert!(verify_key(&oct).is_none());
        let okp: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }))
        .unwrap();
        assert!(verify_key(&okp).is_none(), "no kid");
        let mut with_kid = okp.clone();
        with_kid.common.key_id = Some("k".into());
        assert_eq!(
            verify_key(&with_kid).unwrap().1.algorithm,
            jsonwebtoken::Algorithm::EdDSA
        );
        // A key whose declared alg does not fit its type is refused.
        with_kid.common.key_algorithm = Some(KeyAlgorithm::HS256);
        assert!(verify_key(&with_kid).is_none());
    }
}
