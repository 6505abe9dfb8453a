//! The [`Sentri`] facade: every service of sentri behind one cheap-to-clone
//! handle.
//!
//! Adapters (axum, poem) and applications call these methods; all the
//! rules live here, so both adapters behave identically.

mod accounts;
#[cfg(feature = "http")]
pub(crate) use accounts::{MAX_LOGIN_PASSWORD_BYTES, MAX_NAME_CHARS};
mod inputs;
mod sessions;

#[cfg(feature = "http")]
pub(crate) use sessions::Renewal;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use crate::clock::Clock;
use crate::config::{Config, KeySource, SessionCheck};
use crate::error::{Error, ErrorCode, Result};
use crate::hooks::Event;
use crate::keys::{self, KeyRing, SigningKey};
use crate::model::{ActiveSession, SessionId};
use crate::password::Passwords;
use crate::store::{Revocation, Stores};
use crate::tokens::{self, AccessClaims, AuthUser, NewRefresh, TokenPair};
use crate::verified::VerifiedTokens;

pub use inputs::{
    AuthOutput, ChangeIdentifierInput, ChangePasswordInput, ClientInfo, LoginInput, LoginOutcome,
    LogoutInput, RefreshInput, RegisterInput, SecondStep, SessionInfo,
};

/// The entry point of sentri: configuration, stores, keys and services.
///
/// ```
/// use std::sync::Arc;
/// use sentri_core::{config::Config, Sentri};
/// # async fn demo(stores: sentri_core::store::Stores) -> sentri_core::Result<()> {
/// let config = Config::builder()
///     .hs256("an HMAC secret of at least thirty-two bytes")
///     .valid_roles(["user", "admin"])
///     .build()?;
/// let sentri = Sentri::new(config, stores).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Sentri(Arc<Inner>);

/// The session cache of `SessionCheck::Cached`.
type SessionCache = moka::sync::Cache<SessionId, CachedSession>;

/// A cached session and the revocation bus's epoch it was cached in (see
/// [`RevocationBus::live_epoch`](crate::store::RevocationBus::live_epoch)):
/// it is trusted only while that epoch is the current one.
#[derive(Clone)]
struct CachedSession {
    epoch: u64,
    active: ActiveSession,
}

struct Inner {
    config: Config,
    stores: Stores,
    passwords: Passwords,
    ring: RwLock<Arc<KeyRing>>,
    /// Tokens whose signature was checked (see [`VerifiedTokens`]).
    verified: Option<VerifiedTokens>,
    /// `SessionCheck::Cached`: sessions looked up recently.
    sessions: Option<SessionCache>,
    clock: Clock,
    /// One password check per identifier in flight (F-27).
    login_turns: crate::throttle::LoginTurns,
    /// What the plugins contributed (routes, claims).
    plugins: crate::plugin::PluginParts,
}

impl std::fmt::Debug for Sentri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sentri")
            .field("config", &self.0.config)
            .finish_non_exhaustive()
    }
}

impl Sentri {
    /// Build the services: load (or generate and persist) the signing key.
    ///
    /// With a key-encryption key (or secret cipher) configured, stored
    /// keys still in plaintext are encrypted in place first (see
    /// [`crate::cipher`]); the private keys are decrypted only into memory.
    ///
    /// # Errors
    /// `CONFIGURATION_ERROR` for a bad password policy or a stored key that
    /// cannot be read, and (field `key_encryption_key`) for a stored key
    /// that is encrypted while no key-encryption key is configured, or that
    /// the configured one cannot decrypt; `SERVICE_UNAVAILABLE` when the
    /// KeyStore (or the cipher's key service) is down.
    pub async fn new(config: Config, stores: Stores) -> Result<Self> {
        Self::with_clock(config, stores, Clock::system()).await
    }

    /// As [`Sentri::new`], with a given clock (tests move a manual clock).
    ///
    /// # Errors
    /// As [`Sentri::new`].
    pub async fn with_clock(config: Config, stores: Stores, clock: Clock) -> Result<Self> {
        Self::builder(config, stores).clock(clock).build().await
    }

    /// Build the services with plugins ([`crate::plugin`]):
    /// `Sentri::builder(config, stores).plugin(p).build().await`.
    pub fn builder(config: Config, stores: Stores) -> SentriBuilder {
        SentriBuilder {
            config,
            stores,
            clock: Clock::system(),
            plugins: Vec::new(),
        }
    }

    async fn assemble(
        config: Config,
        stores: Stores,
        clock: Clock,
        plugins: crate::plugin::PluginParts,
    ) -> Result<Self> {
        let passwords = Passwords::new(config.password_policy.clone())?;
        let ring = match &config.key_source {
            KeySource::Secret(secret) => KeyRing::hmac(config.algorithm, secret),
            KeySource::Pem(pem) => KeyRing::single(SigningKey::from_pem(
                config.algorithm,
                "private_key_pem",
                pem,
            )?),
            KeySource::Generate => load_or_create_ring(&config, &stores, clock.now()).await?,
        };
        let verified = (config.verified_token_cache > 0)
            .then(|| VerifiedTokens::new(config.verified_token_cache));
        let sessions = match config.session_check {
            SessionCheck::Cached(ttl) => Some(
                moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(ttl)
                    .support_invalidation_closures()
                    .build(),
            ),
            _ => None,
        };
        let bus = stores.revocations.clone();
        let sentri = Self(Arc::new(Inner {
            config,
            stores,
            passwords,
            ring: RwLock::new(Arc::new(ring)),
            verified,
            sessions,
            clock,
            login_turns: crate::throttle::LoginTurns::default(),
            plugins,
        }));
        if let (Some(bus), Some(_)) = (bus, &sentri.0.sessions) {
            spawn_revocation_listener(Arc::downgrade(&sentri.0), bus.subscribe());
        }
        Ok(sentri)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The names of the plugins, in the order they were added.
    pub fn plugins(&self) -> &[&'static str] {
        &self.0.plugins.names
    }

    /// The routes the plugins added, after the built-in ones in the table
    /// of [`crate::http::Api`].
    #[cfg(feature = "http")]
    pub(crate) fn plugin_routes(&self) -> impl Iterator<Item = &crate::http::RouteSpec> {
        self.0.plugins.routes.iter().map(|(_, spec)| spec)
    }

    /// The stores.
    pub fn stores(&self) -> &Stores {
        &self.0.stores
    }

    /// The per-identifier password-check turns of this process (F-27).
    pub fn login_turns(&self) -> &crate::throttle::LoginTurns {
        &self.0.login_turns
    }

    /// The password service.
    pub fn passwords(&self) -> &Passwords {
        &self.0.passwords
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.0.clock
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.0.clock.now()
    }

    fn ring(&self) -> Arc<KeyRing> {
        self.0.ring.read().clone()
    }

    /// The published key set (`GET /keys`). Empty for HMAC: secrets are
    /// never published.
    pub fn jwks(&self) -> Arc<jsonwebtoken::jwk::JwkSet> {
        self.ring().jwks.clone()
    }

    /// Verify an access token and return its user (F-13, F-20).
    ///
    /// Checks the signature with the key its `kid` names (algorithm pinned
    /// to that key), `typ`, `iss`/`aud`, then expiry against the clock. A
    /// token seen before skips the signature check (a bounded cache keyed by
    /// the whole token), never the expiry check. Then the application's
    /// `is_token_revoked` (every mode) and, in [`SessionCheck::Always`], the
    /// session: it must still exist, and roles come from the store.
    ///
    /// # Errors
    /// `TOKEN_INVALID` (malformed, forged, wrong type, revoked session),
    /// `TOKEN_EXPIRED`, `SERVICE_UNAVAILABLE` (store down).
    pub async fn verify_access(&self, token: &str) -> Result<AuthUser> {
        let user = self.verify_signature(token)?;
        if self.is_revoked_by_app(user.session_id()).await? {
            return Err(Error::new(ErrorCode::TokenInvalid));
        }
        match self.0.config.session_check {
            SessionCheck::Stateless => Ok(user),
            SessionCheck::Always | SessionCheck::Cached(_) => self.check_session(user).await,
        }
    }

    /// [`Sentri::verify_access`] when the answer needs no waiting: a token
    /// whose signature or expiry fails (every mode, unless the
    /// verified-token cache is off and the store must be asked anyway); a
    /// valid one in
    /// [`SessionCheck::Stateless`] mode, or in [`SessionCheck::Cached`]
    /// mode when its session is in the cache, unless an `is_token_revoked`
    /// check is configured. `None` when the store (or the application's
    /// check) must be asked: call `verify_access` then.
    ///
    /// Adapters call this first so that the common protected request runs
    /// without allocating a future; the answer is the one `verify_access`
    /// would give.
    ///
    /// ```
    /// # async fn demo(sentri: sentri_core::Sentri, token: &str) -> sentri_core::Result<()> {
    /// let user = match sentri.try_verify_access(token) {
    ///     Some(answer) => answer?,
    ///     None => sentri.verify_access(token).await?,
    /// };
    /// # let _ = user; Ok(()) }
    /// ```
    pub fn try_verify_access(&self, token: &str) -> Option<Result<AuthUser>> {
        let waits = self.0.config.revocation_check.is_some()
            || self.0.config.session_check == SessionCheck::Always;
        if waits && self.0.verified.is_none() {
            // `verify_access` will check the signature; without the cache,
            // checking it here too would double the cost.
            return None;
        }
        // A bad signature or an expired token is refused in every mode.
        let user = match self.verify_signature(token) {
            Ok(user) => user,
            Err(err) => return Some(Err(err)),
        };
        if self.0.config.revocation_check.is_some() {
            return None;
        }
        match self.0.config.session_check {
            SessionCheck::Stateless => Some(Ok(user)),
            SessionCheck::Always => None,
            SessionCheck::Cached(_) => {
                let active = self.cached_session(self.cache_epoch()?, user.session_id())?;
                (active.session.expires_at > self.now()).then(|| current_user(&user, active))
            }
        }
    }

    /// The application's `is_token_revoked(sid)`, when configured.
    pub(crate) async fn is_revoked_by_app(&self, sid: SessionId) -> Result<bool> {
        let Some(check) = &self.0.config.revocation_check else {
            return Ok(false);
        };
        check
            .is_revoked(sid)
            .await
            .map_err(|err| Error::new(ErrorCode::ServiceUnavailable).with_source(err))
    }

    /// Signature, claims and expiry, with the verified-token cache.
    fn verify_signature(&self, token: &str) -> Result<AuthUser> {
        let now = self.0.clock.unix_seconds();
        if let Some(cache) = &self.0.verified
            && let Some(user) = cache.get(token, now)
        {
            return if user.expires_at() <= now {
                Err(Error::new(ErrorCode::TokenExpired))
            } else {
                Ok(user)
            };
        }
        let config = &self.0.config;
        let claims = tokens::verify_access(
            &self.ring(),
            token,
            config.issuer.as_deref(),
            config.audience.as_deref(),
            now,
        )?;
        let user = AuthUser::from_claims(&claims);
        if let Some(cache) = &self.0.verified {
            cache.insert(token, user.clone(), now);
        }
        Ok(user)
    }

    async fn check_session(&self, user: AuthUser) -> Result<AuthUser> {
        let now = self.now();
        let sid = user.session_id();
        // Read before the store: a session read while the bus was live in
        // this epoch is cached in it, and ignored once the epoch changed.
        let epoch = self.cache_epoch();
        let cached = epoch.and_then(|epoch| self.cached_session(epoch, sid));
        let active = match cached {
            Some(active) if active.session.expires_at > now => active,
            _ => {
                let found = self
                    .0
                    .stores
                    .sessions
                    .find_active_session(sid, now)
                    .await?
                    .filter(|a| a.session.user_id == user.id())
                    .ok_or_else(|| {
                        Error::with_message(ErrorCode::TokenInvalid, "session revoked")
                    })?;
                // The inactivity timeout, before the touch that would renew it.
                if self.idle_expired(&found.session, now) {
                    return Err(Error::with_message(
                        ErrorCode::TokenInvalid,
                        "session ended: inactive too long",
                    ));
                }
                if let (Some(cache), Some(epoch)) = (&self.0.sessions, epoch) {
                    let active = found.clone();
                    cache.insert(sid, CachedSession { epoch, active });
                }
                self.touch_if_due(&found, now).await;
                found
            }
        };
        current_user(&user, active)
    }

    /// The epoch in which the session cache may be read and filled:
    /// `Some(0)` without a bus (revocations made elsewhere then reach the
    /// cache only through its time-to-live), the bus's epoch while it is
    /// live, `None` while it is not (events may be missed, so every lookup
    /// goes to the store). One atomic load in the Redis bus.
    fn cache_epoch(&self) -> Option<u64> {
        match &self.0.stores.revocations {
            None => Some(0),
            Some(bus) => bus.live_epoch(),
        }
    }

    /// The cached session `sid`, if it was cached in `epoch`.
    fn cached_session(&self, epoch: u64, sid: SessionId) -> Option<ActiveSession> {
        let entry = self.0.sessions.as_ref()?.get(&sid)?;
        (entry.epoch == epoch).then_some(entry.active)
    }

    /// Record activity at most once per `touch_interval`; failures are
    /// logged only (the request itself is fine).
    async fn touch_if_due(&self, active: &ActiveSession, now: DateTime<Utc>) {
        let interval = self.0.config.touch_interval;
        if now - active.session.last_active_at >= to_chrono(interval) {
            let sessions = &self.0.stores.sessions;
            if let Err(err) = sessions
                .touch_session(active.session.id, now, interval)
                .await
            {
                tracing::warn!(error = %err, "could not record session activity");
            }
        }
    }

    /// A session or a user changed: drop what the session cache holds of
    /// it, and tell the other instances. A failed publish is logged: the
    /// change itself is in the store, and other instances' caches expire
    /// within their bound.
    pub(crate) async fn revoked(&self, event: Revocation) {
        let Some(cache) = &self.0.sessions else {
            return;
        };
        invalidate(cache, event);
        if let Some(bus) = &self.0.stores.revocations
            && let Err(err) = bus.publish(event).await
        {
            tracing::warn!(error = %err, "could not publish a revocation to other instances");
        }
    }

    /// Deliver `event` to the subscribers ([`crate::hooks::Hooks::subscribe`]):
    /// each runs bounded by the hook timeout, and its error, panic or
    /// slowness is logged, never returned. Plugins emit their own events
    /// ([`Event::plugin`]) with it.
    pub async fn emit(&self, event: Event) {
        self.0.config.hooks.emit(event).await;
    }

    /// [`Event::LoginSucceeded`] for a session just opened.
    pub(crate) async fn login_succeeded(&self, out: &AuthOutput) {
        self.emit(Event::LoginSucceeded {
            user: out.user.clone(),
            session_id: out.session_id,
        })
        .await;
    }

    /// [`Event::LoginFailed`].
    pub(crate) async fn login_failed(&self, identifier: String, code: ErrorCode) {
        self.emit(Event::LoginFailed { identifier, code }).await;
    }

    /// Sign a new access token and pair it with `refresh`.
    pub(crate) fn issue_tokens(
        &self,
        claims_for: &TokenSubject<'_>,
        refresh: &NewRefresh,
        session_expires_at: DateTime<Utc>,
    ) -> Result<TokenPair> {
        let config = &self.0.config;
        let now = self.now();
        let access_expires_at = now + to_chrono(config.access_ttl);
        let claims = AccessClaims {
            sub: claims_for.user_id,
            sid: claims_for.session_id,
            identifier: claims_for.identifier.to_owned(),
            roles: claims_for.roles.to_vec(),
            iat: now.timestamp(),
            exp: access_expires_at.timestamp(),
            nbf: None,
            // Unique per token: two issued in one second still differ.
            jti: tokens::new_jti(),
            typ: tokens::ACCESS_TYP.to_owned(),
            auth_time: Some(claims_for.auth_time.timestamp()),
            amr: claims_for.amr.to_vec(),
            email_verified: claims_for.email_verified,
            iss: config.issuer.clone(),
            aud: config.audience.clone(),
        };
        let access_token = if self.0.plugins.claims.is_empty() {
            tokens::sign_access(&self.ring(), &claims)?
        } else {
            tokens::sign_access(&self.ring(), &self.with_plugin_claims(claims_for, &claims)?)?
        };
        Ok(TokenPair {
            access_token,
            refresh_token: refresh.token.to_string(),
            access_expires_at,
            refresh_expires_at: session_expires_at,
        })
    }

    /// `claims` with the plugins' claims added; sentri's own always win.
    fn with_plugin_claims(
        &self,
        subject: &TokenSubject<'_>,
        claims: &AccessClaims,
    ) -> Result<serde_json::Value> {
        let mut value = serde_json::to_value(claims).map_err(Error::internal)?;
        let serde_json::Value::Object(map) = &mut value else {
            return Err(Error::internal("access claims are not an object"));
        };
        let subject = crate::plugin::ClaimsSubject {
            user_id: subject.user_id,
            session_id: subject.session_id,
            identifier: subject.identifier,
            roles: subject.roles,
            amr: subject.amr,
        };
        for claims_fn in &self.0.plugins.claims {
            for (name, claim) in claims_fn(&subject) {
                if RESERVED_CLAIMS.contains(&name.as_str()) {
                    continue;
                }
                map.entry(name).or_insert(claim);
            }
        }
        Ok(value)
    }

    /// Generate a new signing key, make it the active one and keep the old
    /// public keys published until their tokens have expired (F-15).
    /// Returns the new `kid`.
    ///
    /// # Errors
    /// `CONFIGURATION_ERROR` when the key is an HMAC secret or a configured
    /// PEM (rotate those by changing the configuration);
    /// `SERVICE_UNAVAILABLE` when the KeyStore is down.
    pub async fn rotate_signing_key(&self) -> Result<String> {
        let config = &self.0.config;
        if !matches!(config.key_source, KeySource::Generate) {
            return Err(Error::configuration(
                "algorithm",
                "only generated, stored keys can be rotated",
            ));
        }
        let now = self.now();
        let (mut record, _) = keys::new_record(config.algorithm, now)?;
        let kid = record.kid.clone();
        keys::seal_record(config.cipher.as_ref(), &mut record).await?;
        self.0.stores.keys.rotate_key(record, now).await?;
        self.reload_keys().await?;
        Ok(kid)
    }

    /// Re-read the signing keys from the KeyStore (after another instance
    /// rotated them). No effect for HMAC or configured keys.
    ///
    /// # Errors
    /// `SERVICE_UNAVAILABLE` when the KeyStore is down.
    pub async fn reload_keys(&self) -> Result<()> {
        if matches!(self.0.config.key_source, KeySource::Generate) {
            let ring = load_or_create_ring(&self.0.config, &self.0.stores, self.now()).await?;
            *self.0.ring.write() = Arc::new(ring);
        }
        Ok(())
    }

    /// Delete stored keys retired long enough ago that no token they signed
    /// can still be valid. Returns how many were deleted.
    ///
    /// # Errors
    /// `SERVICE_UNAVAILABLE` when the KeyStore is down.
    pub async fn purge_retired_keys(&self) -> Result<u64> {
        let before =
            self.now() - to_chrono(self.0.config.access_ttl) - chrono::Duration::minutes(1);
        Ok(self
            .0
            .stores
            .keys
            .delete_keys_retired_before(before)
            .await?)
    }
}

fn invalidate(cache: &SessionCache, event: Revocation) {
    match event {
        Revocation::Session(sid) => cache.invalidate(&sid),
        Revocation::User(uid) => {
            if cache
                .invalidate_entries_if(move |_, e| e.active.session.user_id == uid)
                .is_err()
            {
                cache.invalidate_all();
            }
        }
    }
}

/// Apply other instances' revocations to this instance's session cache,
/// for as long as the `Sentri` lives.
///
/// When the bus closes the channel (its connection dropped and came back,
/// so events may have been missed), resubscribe first and then drop the
/// whole cache: in that order no event published after the drop is lost.
/// (Entries cached before the gap are never read after it anyway: they
/// carry an older bus epoch. The drop frees them.)
fn spawn_revocation_listener(
    inner: std::sync::Weak<Inner>,
    mut events: tokio::sync::broadcast::Receiver<Revocation>,
) {
    use tokio::sync::broadcast::error::RecvError;
    tokio::spawn(async move {
        let mut closed_in_a_row = 0u32;
        loop {
            let event = events.recv().await;
            let Some(strong) = inner.upgrade() else {
                return;
            };
            let Some(cache) = &strong.sessions else {
                return;
            };
            match event {
                Ok(event) => {
                    closed_in_a_row = 0;
                    invalidate(cache, event);
                }
                // Missed events: nothing cached can be trusted.
                Err(RecvError::Lagged(_)) => cache.invalidate_all(),
                Err(RecvError::Closed) => {
                    let Some(bus) = strong.stores.revocations.clone() else {
                        cache.invalidate_all();
                        return;
                    };
                    events = bus.subscribe();
                    cache.invalidate_all();
                    drop(strong);
                    // A bus that keeps closing at once must not spin.
                    closed_in_a_row = closed_in_a_row.saturating_add(1);
                    if closed_in_a_row > 1 {
                        let backoff = 50u64.saturating_mul(u64::from(closed_in_a_row)).min(5_000);
                        tokio::time::sleep(Duration::from_millis(backoff)).await;
                    }
                }
            }
        }
    });
}

/// What an access token is issued for.
pub(crate) struct TokenSubject<'a> {
    pub(crate) user_id: crate::model::UserId,
    pub(crate) session_id: crate::model::SessionId,
    pub(crate) identifier: &'a str,
    pub(crate) roles: &'a [String],
    pub(crate) email_verified: bool,
    /// When the user authenticated to open the session (`auth_time`).
    pub(crate) auth_time: DateTime<Utc>,
    /// How (`amr`, RFC 8176 values).
    pub(crate) amr: &'a [String],
}

pub(crate) fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

async fn load_or_create_ring(
    config: &Config,
    stores: &Stores,
    now: DateTime<Utc>,
) -> Result<KeyRing> {
    // Keys retired less than one access TTL ago may still have live tokens.
    let publish_after = now - to_chrono(config.access_ttl) - chrono::Duration::minutes(1);
    let cipher = config.cipher.as_ref();
    let records = keys::readable_records(cipher, &*stores.keys, publish_after).await?;
    if let Some(ring) = KeyRing::from_records(config.algorithm, &records, publish_after)? {
        return Ok(ring);
    }
    let (mut record, _) = keys::new_record(config.algorithm, now)?;
    keys::seal_record(cipher, &mut record).await?;
    stores.keys.insert_key_if_none(record).await?;
    // Read back: when several instances start at once, one key wins.
    let records = keys::readable_records(cipher, &*stores.keys, publish_after).await?;
    KeyRing::from_records(config.algorithm, &records, publish_after)?
        .ok_or_else(|| Error::internal("the key store kept no active key"))
}

/// The user of a token whose session is `active`: the identifier, roles
/// and email state are the session's current ones.
fn current_user(user: &AuthUser, active: ActiveSession) -> Result<AuthUser> {
    if active.session.user_id != user.id() {
        return Err(Error::new(ErrorCode::TokenInvalid));
    }
    Ok(AuthUser::with_current(
        user,
        active.identifier,
        active.roles,
        active.email_verified_at.is_some(),
    ))
}

/// Claims a plugin may not set: sentri's own, and the registered JWT
/// claims (RFC 7519 §4.1), present or not in a given token.
const RESERVED_CLAIMS: &[&str] = &[
    "sub",
    "sid",
    "identifier",
    "roles",
    "iat",
    "exp",
    "nbf",
    "jti",
    "typ",
    "auth_time",
    "amr",
    "email_verified",
    "iss",
    "aud",
];

/// Builds a [`Sentri`] with plugins: from [`Sentri::builder`].
#[must_use]
pub struct SentriBuilder {
    config: Config,
    stores: Stores,
    clock: Clock,
    plugins: Vec<Arc<dyn crate::plugin::Plugin>>,
}

impl std::fmt::Debug for SentriBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentriBuilder")
            .field(
                "plugins",
                &self.plugins.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl SentriBuilder {
    /// Use `clock` (tests move a manual clock). Default: the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Add a plugin; its setup runs at [`SentriBuilder::build`], in the
    /// order plugins were added.
    pub fn plugin(mut self, plugin: impl crate::plugin::Plugin) -> Self {
        self.plugins.push(Arc::new(plugin));
        self
    }

    /// Set the plugins up, then build the services as [`Sentri::new`]
    /// does.
    ///
    /// # Errors
    /// As [`Sentri::new`]; `CONFIGURATION_ERROR` from a plugin's setup
    /// (naming the plugin and the field or the missing store), for a
    /// plugin added twice, and for a plugin route whose id, or method and
    /// path, is taken.
    pub async fn build(self) -> Result<Sentri> {
        let (parts, subscribers) =
            crate::plugin::setup_all(&self.plugins, &self.config, &self.stores)?;
        let mut config = self.config;
        config.hooks.subscribers.extend(subscribers);
        Sentri::assemble(config, self.stores, self.clock, parts).await
    }
}
