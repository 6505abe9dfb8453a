//! The storage traits every backend implements (F-30).
//!
//! sentri's services never read-then-write: everything that must be atomic
//! (a unique identifier, a refresh rotation, a role merge, an idempotency
//! lock, a one-time token's consumption) is one operation of these traits, and the backend makes it atomic
//! (a unique index, a conditional update, a lock). A backend's only other job
//! is to map its failures into [`StoreError`] with the right
//! [`StoreErrorKind`].
//!
//! The traits are object-safe and held as `Arc<dyn …>`, so a server can pick
//! its backend at run time. The `sentri-testkit` crate has a conformance
//! suite that every implementation runs.
//!
//! Times are passed in by the caller (`now`), never read by the store, so the
//! services (and tests) decide what "now" is.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::BoxError;
use crate::model::{
    ActiveSession, IdempotencyBegin, IdempotencyLease, KeyRecord, NewSession, NewUser,
    PasswordHash, Rotation, Session, SessionId, StoredResponse, TokenHash, User, UserId,
    UserRecord,
};
use crate::one_time::{OneTimeRecord, TokenPurpose};

/// What kind of failure a store had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// A uniqueness constraint was violated (e.g. the identifier is taken).
    Conflict,
    /// The record the operation needs does not exist.
    NotFound,
    /// The backend cannot be reached or timed out; the request may succeed
    /// later. Clients see `SERVICE_UNAVAILABLE`.
    Unavailable,
    /// Anything else: corrupt data, a bug, an unexpected backend answer.
    Other,
}

/// The one error type of every store.
///
/// ```
/// use sentri_core::store::{StoreError, StoreErrorKind};
///
/// let err = StoreError::unavailable("connection refused");
/// assert_eq!(err.kind(), StoreErrorKind::Unavailable);
/// ```
pub struct StoreError {
    kind: StoreErrorKind,
    source: Option<BoxError>,
}

impl StoreError {
    /// An error of `kind` with no further cause.
    pub fn new(kind: StoreErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// An error of `kind` caused by `source`.
    pub fn with_source(kind: StoreErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// `Conflict`.
    pub fn conflict() -> Self {
        Self::new(StoreErrorKind::Conflict)
    }

    /// `NotFound`.
    pub fn not_found() -> Self {
        Self::new(StoreErrorKind::NotFound)
    }

    /// `Unavailable`, caused by `source`.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::with_source(StoreErrorKind::Unavailable, source)
    }

    /// `Other`, caused by `source`.
    pub fn other(source: impl Into<BoxError>) -> Self {
        Self::with_source(StoreErrorKind::Other, source)
    }

    /// The kind.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("StoreError");
        d.field("kind", &self.kind);
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            StoreErrorKind::Conflict => f.write_str("store conflict"),
            StoreErrorKind::NotFound => f.write_str("store record not found"),
            StoreErrorKind::Unavailable => f.write_str("store unavailable"),
            StoreErrorKind::Other => f.write_str("store error"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Users and their credentials.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Create a user. `Conflict` when `identifier_key` is taken, atomically:
    /// of any number of concurrent creations with one key, exactly one wins.
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;

    /// The user with `id`, if any.
    async fn find_user(&self, id: UserId) -> StoreResult<Option<UserRecord>>;

    /// The user whose normalised identifier is `identifier_key`, if any.
    async fn find_user_by_identifier(
        &self,
        identifier_key: &str,
    ) -> StoreResult<Option<UserRecord>>;

    /// Change the identifier. When `identifier_key` differs from the
    /// current key, also clear `email_verified_at` in the same atomic
    /// operation (nobody verified the new address); a change of the display
    /// form only (same key) keeps it. `Conflict` when the new key belongs to
    /// another user, `NotFound` when the user does not exist; either way
    /// nothing changes.
    async fn update_identifier(
        &self,
        id: UserId,
        identifier: &str,
        identifier_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<User>;

    /// Replace the password hash only if it is still `current`
    /// (compare-and-set). `Ok(false)` when it changed meanwhile, `NotFound`
    /// when the user does not exist.
    async fn replace_password_hash(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: &PasswordHash,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Add roles, keeping the existing ones, atomically (concurrent merges
    /// lose nothing). `NotFound` when the user does not exist.
    async fn add_roles(
        &self,
        id: UserId,
        roles: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<User>;

    /// Remove roles atomically. `NotFound` when the user does not exist.
    async fn remove_roles(
        &self,
        id: UserId,
        roles: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<User>;

    /// Set `email_verified_at` (kept if already set). `NotFound` when the
    /// user does not exist.
    async fn set_email_verified(&self, id: UserId, at: DateTime<Utc>) -> StoreResult<User>;

    /// Whether any user holds `role` (used by bootstrap).
    async fn any_user_with_role(&self, role: &str) -> StoreResult<bool>;
}

/// How many replaced refresh hashes of a session, older than the previous
/// one, a [`SessionStore`] remembers at least, so that presenting one of
/// them is recognised as reuse ([`Rotation::Reused`]) rather than as a
/// secret the session never issued ([`Rotation::Mismatch`]).
pub const ROTATION_HISTORY: usize = 16;

/// Login sessions and their refresh tokens.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Create the session of a successful login and set its user's
    /// `last_login_at` to `session.created_at`, as one atomic write (a login
    /// costs one commit). `NotFound` if the user does not exist, `Conflict`
    /// if the id exists; either way nothing is changed.
    async fn create_session(&self, session: NewSession) -> StoreResult<Session>;

    /// The session if it exists and has not expired at `now`, joined with
    /// its user's current identifier, roles and email verification.
    async fn find_active_session(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ActiveSession>>;

    /// Atomically replace the refresh hash `presented` by `next` if
    /// `presented` is the current one and the session is live at `now`;
    /// on success also set `last_active_at = now`, remember `presented`
    /// as the previous hash with `rotated_at = now`, and push the hash
    /// that was previous until now onto the session's history of replaced
    /// hashes, keeping the newest [`ROTATION_HISTORY`]. Of any number of
    /// concurrent calls with the same `presented`, exactly one gets
    /// [`Rotation::Rotated`].
    ///
    /// The session is live if it has not expired at `now` and, when
    /// `idle_since` is given (the inactivity timeout), its `last_active_at`
    /// is at or after `idle_since`; otherwise the answer is
    /// [`Rotation::Missing`] and nothing changes. When `presented` is not
    /// current nothing changes either, and the answer says which hash it
    /// is: the previous one ([`Rotation::Stale`]), one of the history
    /// ([`Rotation::Reused`]), or none this session issued
    /// ([`Rotation::Mismatch`]).
    async fn rotate_refresh(
        &self,
        id: SessionId,
        presented: &TokenHash,
        next: &TokenHash,
        now: DateTime<Utc>,
        idle_since: Option<DateTime<Utc>>,
    ) -> StoreResult<Rotation>;

    /// Set `last_active_at = now` if it is older than `now - min_interval`.
    /// Returns whether it wrote. A missing session is `Ok(false)`.
    async fn touch_session(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
        min_interval: Duration,
    ) -> StoreResult<bool>;

    /// Delete a session; returns it, or `None` if it did not exist.
    async fn delete_session(&self, id: SessionId) -> StoreResult<Option<Session>>;

    /// Delete a session only if `presented` is its current refresh hash, or
    /// its previous one replaced at or after `previous_since` (the reuse
    /// grace), as one atomic operation: logout by refresh token (F-12).
    /// Returns the deleted session; `None` (and nothing changed) when the
    /// session does not exist or does not hold that hash. Compare hashes in
    /// constant time where the comparison runs in process.
    async fn delete_session_by_refresh(
        &self,
        id: SessionId,
        presented: &TokenHash,
        previous_since: DateTime<Utc>,
    ) -> StoreResult<Option<Session>>;

    /// Delete a session only if `user` owns it. Returns whether it did.
    async fn delete_user_session(&self, user: UserId, id: SessionId) -> StoreResult<bool>;

    /// Delete every session of `user`; returns how many.
    async fn delete_user_sessions(&self, user: UserId) -> StoreResult<u64>;

    /// Delete every session of `user` except `keep` (the caller's own, after
    /// an identifier change), as one atomic operation; returns how many.
    /// `keep` is kept only if it belongs to `user`.
    async fn delete_user_sessions_except(&self, user: UserId, keep: SessionId) -> StoreResult<u64>;

    /// The sessions of `user` that are live at `now`, newest first.
    async fn list_user_sessions(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Session>>;

    /// Delete every session expired at `now`; returns how many.
    async fn purge_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64>;
}

/// Persisted asymmetric signing keys (F-15).
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Every key, active and retired, oldest first.
    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>>;

    /// Insert `key` as the active key for its algorithm unless an active key
    /// for that algorithm exists; return the active key either way. Several
    /// instances starting at once all end up with the same key.
    async fn insert_key_if_none(&self, key: KeyRecord) -> StoreResult<KeyRecord>;

    /// Atomically retire (set `retired_at = now`) every active key of
    /// `key.algorithm` and insert `key` as the new active one.
    async fn rotate_key(&self, key: KeyRecord, now: DateTime<Utc>) -> StoreResult<()>;

    /// Delete keys retired before `before`; returns how many.
    async fn delete_keys_retired_before(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// Replace the stored private key of `kid` by `new` only if it is still
    /// `current` (compare-and-set; nothing else of the row changes). Used to
    /// encrypt keys stored in plaintext: of several instances doing it at
    /// once, exactly one gets `Ok(true)`, the others `Ok(false)` and read
    /// the winner's value. `Ok(false)` too when no key has this `kid`.
    async fn replace_private_key(&self, kid: &str, current: &str, new: &str) -> StoreResult<bool>;
}

/// Responses kept for idempotent replay (F-26). Keys arrive already scoped
/// to the caller.
///
/// A key is in one of three states: free, *held* by one running request
/// (for at most `lock_ttl`), or *completed* (its response kept for `ttl`).
/// A hold is a lease: `begin` stores a fresh [`IdempotencyLease`] with it
/// and returns it, and `complete` and `release` are compare-and-set on that
/// lease. A request whose lock lapsed (it ran longer than `lock_ttl`, and
/// another request with the key may have taken over) is a *stale holder*:
/// its `complete` and `release` change nothing and return `Ok(false)`.
///
/// The store reads its own clock for these lifetimes (the trait passes no
/// `now`); instances sharing a store should keep their clocks in sync.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Take `key` for a request with `fingerprint`, atomically. A held key
    /// whose lock is older than `lock_ttl` counts as free (its holder died
    /// or outlived its lock): it is taken over under a new lease.
    ///
    /// Of concurrent `begin` on one free key exactly one is
    /// [`IdempotencyBegin::Acquired`], with a lease generated for it
    /// ([`IdempotencyLease::generate`]) and stored with the hold.
    async fn begin(
        &self,
        key: &str,
        fingerprint: &[u8; 32],
        lock_ttl: Duration,
    ) -> StoreResult<IdempotencyBegin>;

    /// Store the response of the request holding `key` under `lease`, kept
    /// for `ttl` (replayed to a `begin` with the hold's fingerprint).
    ///
    /// Compare-and-set: only when `key` is still held under `lease`.
    /// Otherwise (taken over, completed, released) nothing changes and the
    /// answer is `Ok(false)`. A hold whose lock lapsed without a takeover
    /// may still be completed, or may already be gone (stores that expire
    /// records by themselves drop it with its lock): then `Ok(false)`.
    async fn complete(
        &self,
        key: &str,
        lease: &IdempotencyLease,
        response: StoredResponse,
        ttl: Duration,
    ) -> StoreResult<bool>;

    /// Free `key` without storing anything (the request failed), when it is
    /// still held under `lease`; `Ok(false)` and no change otherwise (a
    /// takeover's hold and a stored response are not the caller's to drop).
    async fn release(&self, key: &str, lease: &IdempotencyLease) -> StoreResult<bool>;

    /// Delete the records whose stored response or lock has expired;
    /// returns how many were deleted. Stores that expire records by
    /// themselves (Redis, the bounded memory cache) may return `0`. An
    /// expired record already behaves as free; purging only reclaims space.
    async fn purge_expired_idempotency(&self) -> StoreResult<u64>;
}

/// Names one counted attempt, for [`ThrottleStore::refund`]. Made by the
/// store (a row id, a sorted-set member, a counter); opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttemptId(String);

impl AttemptId {
    /// Wrap a store's own name for an attempt.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The store's name for the attempt.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The outcome of [`ThrottleStore::reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reservation {
    /// Fewer than `limit` attempts were counted in the window: this one is
    /// now counted too, at `now`, under `id`.
    Admitted {
        /// The attempt, for [`ThrottleStore::refund`].
        id: AttemptId,
    },
    /// `limit` or more attempts are counted in the window: nothing was
    /// recorded.
    Refused {
        /// When the attempt that must leave the window for one more to fit
        /// does leave it (its time plus `window`): the earliest time a
        /// retry can be admitted.
        retry_at: DateTime<Utc>,
    },
}

/// One counter a reservation is held to, for [`ThrottleStore::reserve_all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit<'a> {
    /// The counter's key.
    pub key: &'a str,
    /// Its sliding window.
    pub window: Duration,
    /// At most this many attempts in the window.
    pub limit: u32,
}

/// The outcome of [`ThrottleStore::reserve_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reservations {
    /// Every counter had room: one attempt is now counted under each, at
    /// `now`.
    Admitted {
        /// The attempts, in the order of the limits (for
        /// [`ThrottleStore::refund`] and [`ThrottleStore::forget`]).
        ids: Vec<AttemptId>,
    },
    /// A counter had no room: nothing was recorded under any of them.
    Refused {
        /// The first counter, in the order of the limits, without room.
        index: usize,
        /// As [`Reservation::Refused::retry_at`], for that counter.
        retry_at: DateTime<Utc>,
    },
}

/// One thing [`ThrottleStore::forget`] forgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forget<'a> {
    /// One attempt, as [`ThrottleStore::refund`].
    Attempt {
        /// The counter's key.
        key: &'a str,
        /// The attempt.
        id: &'a AttemptId,
    },
    /// Every attempt of a key, as [`ThrottleStore::clear_failures`].
    Key(&'a str),
}

/// Counters of attempts (failed logins, registrations) in a sliding window
/// (F-27).
///
/// An attempt counts at the time it was recorded for `window` after it
/// (failures at or before `now - window` are out). Callers reserve an
/// attempt *before* the work it guards (the password check), so concurrent
/// attempts can never overshoot the limit, and give it back afterwards when
/// it should not count ([`ThrottleStore::refund`],
/// [`ThrottleStore::clear_failures`], [`ThrottleStore::forget`]).
///
/// # Atomicity
///
/// [`ThrottleStore::reserve_all`] is one atomic operation, and one round
/// trip to the backend: count the attempts of each key in its window and,
/// when every key has room, record one more under each. Of N concurrent
/// reservations of one key with room for k, exactly k are admitted, on
/// every instance sharing the store (a Lua script in Redis, a transaction
/// holding the keys' row locks in SQL, one critical section in memory); a
/// reservation refused by one key never holds a place in another's count.
/// The other operations need only be atomic on their own.
#[async_trait]
pub trait ThrottleStore: Send + Sync + 'static {
    /// Atomically, for distinct keys: count the attempts of each key in its
    /// window before `now`; if every key has fewer than its limit, record
    /// one attempt at `now` under each and return
    /// [`Reservations::Admitted`] with their ids (in the order of
    /// `limits`), else record nothing and return [`Reservations::Refused`]
    /// naming the first key without room, with the time the oldest attempt
    /// that keeps its count at the limit leaves its window. The store keeps
    /// each attempt until `now + window` (then
    /// [`ThrottleStore::purge_expired`] may delete it). A `limit` of 0
    /// refuses every attempt. No limits: admitted, with no ids.
    async fn reserve_all(
        &self,
        limits: &[Limit<'_>],
        now: DateTime<Utc>,
    ) -> StoreResult<Reservations>;

    /// [`ThrottleStore::reserve_all`] for one key.
    async fn reserve(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
        limit: u32,
    ) -> StoreResult<Reservation> {
        let limits = [Limit { key, window, limit }];
        Ok(match self.reserve_all(&limits, now).await? {
            Reservations::Admitted { mut ids } => match ids.pop() {
                Some(id) => Reservation::Admitted { id },
                None => return Err(StoreError::other("reserve_all admitted without an id")),
            },
            Reservations::Refused { retry_at, .. } => Reservation::Refused { retry_at },
        })
    }

    /// Forget what `items` name, in one round trip where the backend allows
    /// (a successful login clears its identifier and refunds its address).
    /// Each item is atomic on its own, as the method it stands for; the
    /// default runs them one after the other.
    async fn forget(&self, items: &[Forget<'_>]) -> StoreResult<()> {
        for item in items {
            match *item {
                Forget::Attempt { key, id } => self.refund(key, id).await?,
                Forget::Key(key) => self.clear_failures(key).await?,
            }
        }
        Ok(())
    }

    /// Forget the one attempt `id` of `key` (a reservation that should not
    /// count after all, e.g. a successful login). Unknown ids (already
    /// purged or cleared) are `Ok`.
    async fn refund(&self, key: &str, id: &AttemptId) -> StoreResult<()>;

    /// Record one failure of `key` at `now`, without a limit. Failures older
    /// than `window` may be dropped; at most `keep` most recent failures
    /// need be kept.
    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
        keep: u32,
    ) -> StoreResult<()>;

    /// The times of the failures of `key` within `window` before `now`,
    /// oldest first.
    async fn recent_failures(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StoreResult<Vec<DateTime<Utc>>>;

    /// Forget every failure of `key`.
    async fn clear_failures(&self, key: &str) -> StoreResult<()>;

    /// Delete what no window can count any more as of `now`: every attempt
    /// recorded with a `window` that has passed (of every key). Returns how
    /// many attempts (or keys, for a store that expires whole keys) were
    /// deleted; a store that expires its data by itself (Redis) returns 0.
    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<u64>;
}

/// One-time tokens (SPEC §10): the hashed, single-use secrets of e-mail
/// verification, password reset, magic links, e-mail change and MFA
/// challenges. [`OneTimeTokens`](crate::one_time::OneTimeTokens) mints and
/// redeems them over this store; the store only keeps records.
///
/// A record is found by its purpose *and* its hash, never by the hash
/// alone, so a token of one purpose does not exist for another. A token is
/// expired at `now` when `expires_at <= now`; an expired record is never
/// returned, whether or not it has been purged.
///
/// # Atomicity
///
/// [`OneTimeTokenStore::consume_token`] is one atomic operation: find the
/// live record and delete it. Of N concurrent consumptions of one token
/// exactly one returns the record, on every instance sharing the store (a
/// `DELETE … RETURNING` in SQL, or a transaction holding the row's lock; one
/// critical section in memory). The other operations need only be atomic on
/// their own.
///
/// # Example
///
/// A complete store: a map under one lock. (`sentri-memory` adds an index
/// by user; the conformance suite, `sentri_testkit::one_time_token_store_tests!`,
/// checks any implementation.)
///
/// ```
/// use std::collections::HashMap;
///
/// use async_trait::async_trait;
/// use chrono::{DateTime, Utc};
/// use parking_lot::Mutex;
/// use sentri_core::model::{TokenHash, UserId};
/// use sentri_core::one_time::{OneTimeRecord, TokenPurpose};
/// use sentri_core::store::{OneTimeTokenStore, StoreError, StoreResult};
///
/// #[derive(Default)]
/// struct MapStore(Mutex<HashMap<(TokenPurpose, TokenHash), OneTimeRecord>>);
///
/// #[async_trait]
/// impl OneTimeTokenStore for MapStore {
///     async fn insert_token(&self, record: OneTimeRecord) -> StoreResult<()> {
///         let mut map = self.0.lock();
///         let key = (record.purpose.clone(), record.token_hash);
///         if map.contains_key(&key) {
///             return Err(StoreError::conflict());
///         }
///         map.insert(key, record);
///         Ok(())
///     }
///
///     async fn consume_token(
///         &self,
///         purpose: &TokenPurpose,
///         hash: &TokenHash,
///         now: DateTime<Utc>,
///     ) -> StoreResult<Option<OneTimeRecord>> {
///         // One lock: the check and the removal are one step.
///         let mut map = self.0.lock();
///         let key = (purpose.clone(), *hash);
///         match map.get(&key) {
///             Some(record) if !record.is_expired_at(now) => Ok(map.remove(&key)),
///             _ => Ok(None),
///         }
///     }
///
///     async fn delete_user_tokens(&self, user: UserId, purpose: &TokenPurpose) -> StoreResult<u64> {
///         let mut map = self.0.lock();
///         let before = map.len();
///         map.retain(|_, r| r.user_id != user || r.purpose != *purpose);
///         Ok((before - map.len()) as u64)
///     }
///
///     async fn purge_expired_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64> {
///         let mut map = self.0.lock();
///         let before = map.len();
///         map.retain(|_, r| !r.is_expired_at(now));
///         Ok((before - map.len()) as u64)
///     }
/// }
/// ```
#[async_trait]
pub trait OneTimeTokenStore: Send + Sync + 'static {
    /// Store `record`. `Conflict` (and nothing changed) when a record with
    /// its purpose and hash exists, expired or not.
    async fn insert_token(&self, record: OneTimeRecord) -> StoreResult<()>;

    /// Atomically delete and return the record of `purpose` with `hash` if
    /// it is live at `now` (`expires_at > now`); `None` when there is none
    /// (never stored, consumed, deleted, of another purpose) or it has
    /// expired, and then nothing changes. Of concurrent calls for one
    /// record exactly one gets it.
    async fn consume_token(
        &self,
        purpose: &TokenPurpose,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<OneTimeRecord>>;

    /// Delete every record of `purpose` issued to `user`, expired or not
    /// (a new request voids the older tokens); returns how many.
    async fn delete_user_tokens(&self, user: UserId, purpose: &TokenPurpose) -> StoreResult<u64>;

    /// Delete every record expired at `now`, of every purpose; returns how
    /// many.
    async fn purge_expired_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64>;
}

/// What a revocation event names (F-13): one session, or every session of
/// a user (logout-all, password change, role change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Revocation {
    /// One session ended.
    Session(SessionId),
    /// Something about a user changed: every cached session of theirs is
    /// stale.
    User(UserId),
}

/// Fan-out of revocations between instances, for
/// [`SessionCheck::Cached`](crate::SessionCheck::Cached).
///
/// Each instance publishes what it revokes and drops from its session cache
/// what any instance published. Without a bus an instance only invalidates
/// locally, and another instance may serve a revoked session until its
/// cache entry expires.
#[async_trait]
pub trait RevocationBus: Send + Sync + 'static {
    /// Tell every instance (this one included, or not: both are fine).
    async fn publish(&self, event: Revocation) -> StoreResult<()>;

    /// Receive what any instance publishes. Called once per `Sentri`.
    /// A lagging receiver must make the caller drop its whole cache, which
    /// `Sentri` does on `RecvError::Lagged`.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Revocation>;

    /// Whether this instance hears, now, every event any instance
    /// publishes: `Some(epoch)` while it does, `None` while events may be
    /// missed (the subscription is not yet confirmed, its connection is
    /// down, or it cannot be confirmed).
    ///
    /// The epoch must change every time the bus becomes live again after
    /// it was not (or after it dropped events): `Sentri` trusts a cached
    /// session only while the epoch it was cached in is the current one, so
    /// a cache filled before a gap is never read after it. While this is
    /// `None`, `Sentri` in `Cached` mode reads every session from the store
    /// and caches nothing.
    ///
    /// Called on every cached lookup: keep it to an atomic load. The
    /// default, for a bus that cannot miss events (in-process), is always
    /// `Some(0)`.
    fn live_epoch(&self) -> Option<u64> {
        Some(0)
    }
}

/// The stores a [`Sentri`](crate::Sentri) runs on.
///
/// One backend often implements every trait; [`Stores::from_backend`] wires
/// such a backend into all slots, and each slot can be replaced (e.g. SQL for
/// users and sessions, Redis for idempotency and throttling).
///
/// Beyond the built-in slots, the one-time token store
/// ([`Stores::with_one_time_tokens`]) and any store a feature brings
/// ([`Stores::with_extension`], typed by what is stored, usually an
/// `Arc<dyn SomeStore>`) travel with the others; a feature asks for what it
/// needs with [`Stores::require`] and startup fails with a
/// `CONFIGURATION_ERROR` naming the feature and the store when it is
/// missing.
///
/// ```
/// use std::sync::Arc;
/// use sentri_core::store::Stores;
/// use sentri_memory::MemoryStore;
///
/// trait NotesStore: Send + Sync {}
/// struct MemoryNotes;
/// impl NotesStore for MemoryNotes {}
///
/// let memory = Arc::new(MemoryStore::new());
/// let stores = Stores::from_backend(memory.clone())
///     .with_one_time_tokens(memory)
///     .with_extension::<Arc<dyn NotesStore>>(Arc::new(MemoryNotes));
/// assert!(stores.require::<Arc<dyn NotesStore>>("notes", "notes").is_ok());
/// let missing = stores.require::<Arc<String>>("greetings", "greeting").unwrap_err();
/// assert_eq!(missing.to_string(), "greetings: needs a greeting store, and none was configured");
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Stores {
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Signing keys.
    pub keys: Arc<dyn KeyStore>,
    /// Idempotent responses.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Throttling counters.
    pub throttle: Arc<dyn ThrottleStore>,
    /// Revocation fan-out between instances (optional).
    pub revocations: Option<Arc<dyn RevocationBus>>,
    /// One-time tokens (optional): e-mail verification, password resets,
    /// magic links, second-factor challenges.
    pub one_time: Option<Arc<dyn OneTimeTokenStore>>,
    extensions: Extensions,
}

/// The stores features bring, one per type.
#[derive(Clone, Default)]
struct Extensions(
    std::collections::HashMap<std::any::TypeId, Arc<dyn std::any::Any + Send + Sync>>,
);

impl Stores {
    /// Use one backend for every store.
    pub fn from_backend<B>(backend: Arc<B>) -> Self
    where
        B: UserStore + SessionStore + KeyStore + IdempotencyStore + ThrottleStore,
    {
        Self {
            users: backend.clone(),
            sessions: backend.clone(),
            keys: backend.clone(),
            idempotency: backend.clone(),
            throttle: backend,
            revocations: None,
            one_time: None,
            extensions: Extensions::default(),
        }
    }

    /// Fan revocations out through `bus` (for `SessionCheck::Cached`).
    #[must_use]
    pub fn with_revocation_bus(mut self, bus: Arc<dyn RevocationBus>) -> Self {
        self.revocations = Some(bus);
        self
    }

    /// Replace the idempotency store.
    #[must_use]
    pub fn with_idempotency(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.idempotency = store;
        self
    }

    /// Replace the throttling counters.
    #[must_use]
    pub fn with_throttle(mut self, store: Arc<dyn ThrottleStore>) -> Self {
        self.throttle = store;
        self
    }

    /// Keep one-time tokens in `store` (expired ones are purged with the
    /// expired sessions).
    #[must_use]
    pub fn with_one_time_tokens(mut self, store: Arc<dyn OneTimeTokenStore>) -> Self {
        self.one_time = Some(store);
        self
    }

    /// Add the store of a feature, found again by its type `T` (usually
    /// `Arc<dyn TheFeaturesStore>`); a second value of the same type
    /// replaces the first.
    #[must_use]
    pub fn with_extension<T: Clone + Send + Sync + 'static>(mut self, store: T) -> Self {
        self.extensions
            .0
            .insert(std::any::TypeId::of::<T>(), Arc::new(store));
        self
    }

    /// The store of type `T`, if one was added.
    pub fn extension<T: Clone + Send + Sync + 'static>(&self) -> Option<&T> {
        self.extensions
            .0
            .get(&std::any::TypeId::of::<T>())
            .and_then(|s| s.downcast_ref::<T>())
    }

    /// The store of type `T` that `feature` needs (`what` names it in the
    /// error).
    ///
    /// # Errors
    /// `CONFIGURATION_ERROR`: "`feature`: needs a `what` store, and none was
    /// configured".
    pub fn require<T: Clone + Send + Sync + 'static>(
        &self,
        feature: &str,
        what: &str,
    ) -> crate::Result<&T> {
        self.extension::<T>().ok_or_else(|| missing(feature, what))
    }

    /// The one-time token store that `feature` needs.
    ///
    /// # Errors
    /// `CONFIGURATION_ERROR` when none was configured.
    pub fn require_one_time_tokens(
        &self,
        feature: &str,
    ) -> crate::Result<&Arc<dyn OneTimeTokenStore>> {
        self.one_time
            .as_ref()
            .ok_or_else(|| missing(feature, "one-time token"))
    }
}

fn missing(feature: &str, what: &str) -> crate::Error {
    crate::Error::with_message(
        crate::ErrorCode::ConfigurationError,
        format!("{feature}: needs a {what} store, and none was configured"),
    )
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

#[allow(dead_code)]
fn _object_safe(
    _: &dyn UserStore,
    _: &dyn SessionStore,
    _: &dyn KeyStore,
    _: &dyn IdempotencyStore,
    _: &dyn ThrottleStore,
    _: &dyn RevocationBus,
) {
}

#[allow(dead_code)]
fn _one_time_object_safe(_: &dyn OneTimeTokenStore) {}
