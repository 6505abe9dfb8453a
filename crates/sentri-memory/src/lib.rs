//! In-memory stores for sentri (F-31): every store trait of
//! [`sentri_core::store`] in one [`MemoryStore`], for tests, demos and
//! single-process deployments.
//!
//! ```
//! use std::sync::Arc;
//!
//! use chrono::Utc;
//! use sentri_core::model::{NewUser, PasswordHash, UserId};
//! use sentri_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(MemoryStore::builder().idempotency_capacity(1_000).build()?);
//! // One backend in every slot of `Stores`, ready for the `Sentri` facade.
//! let stores = store.clone().stores();
//!
//! let user = stores
//!     .users
//!     .create_user(NewUser {
//!         id: UserId::new(),
//!         identifier: "Ada@Example.com".into(),
//!         identifier_key: "ada@example.com".into(),
//!         password_hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$..."),
//!         roles: vec!["user".into()],
//!         name: None,
//!         created_at: Utc::now(),
//!     })
//!     .await?;
//! let found = stores.users.find_user_by_identifier("ada@example.com").await?;
//! assert_eq!(found.map(|r| r.user.id), Some(user.id));
//! # Ok(())
//! # }
//! ```
//!
//! # What it keeps, and how much
//!
//! Everything lives in the process and is lost when it exits; several
//! processes do not share it (use `sentri-sea-orm` and `sentri-redis` for
//! that).
//!
//! - **Users**: a map by id and a unique index by normalised identifier,
//!   under one lock; roles are kept sorted and without duplicates.
//! - **Sessions**: a map by id and an index by user; user agents and client
//!   addresses are interned. A million sessions take about 320 MiB (the
//!   target is under 1 GiB; `cargo run --release -p sentri-memory --example
//!   million_sessions` measures it). Refresh hashes are compared in
//!   constant time.
//! - **Keys**: a list, oldest first.
//! - **Idempotency**: a [`moka`] cache with per-entry expiry (`lock_ttl`
//!   for running requests, `ttl` for stored responses), bounded at
//!   [`DEFAULT_IDEMPOTENCY_CAPACITY`] entries by default; when full, the
//!   least recently used entry goes.
//! - **Throttling**: a sliding-window log per key, bounded by the caller's
//!   `keep`, and at most [`DEFAULT_THROTTLE_MAX_KEYS`] keys by default; when
//!   full, the key whose last failure is oldest goes, so nobody can exhaust
//!   memory by failing logins under ever new identifiers.
//! - **One-time tokens**: a map by purpose and hash and an index by user
//!   and purpose. Expired tokens stay until
//!   [`purge_expired_tokens`](sentri_core::store::OneTimeTokenStore::purge_expired_tokens);
//!   how many are minted is up to the flows' rate limits.
//!
//! Every operation takes a short [`parking_lot`] lock (or moka's per-key
//! lock) and never awaits while holding it, so the atomic operations of the
//! contract (unique identifier, refresh rotation, role merge, idempotency
//! lock, key rotation, one-time token consumption) are atomic here.
//!
//! # Conformance
//!
//! This crate runs the whole store conformance suite of `sentri-testkit` in
//! `tests/conformance.rs`, once with a fresh
//! store per check and once with one store shared by every check:
//!
//! ```
//! // tests/conformance.rs
//! use sentri_memory::MemoryStore;
//!
//! sentri_testkit::user_store_tests!(async { MemoryStore::new() });
//! sentri_testkit::session_store_tests!(async { MemoryStore::new() });
//! sentri_testkit::key_store_tests!(async { MemoryStore::new() });
//! sentri_testkit::idempotency_store_tests!(async { MemoryStore::new() });
//! sentri_testkit::throttle_store_tests!(async { MemoryStore::new() });
//! sentri_testkit::one_time_token_store_tests!(async { MemoryStore::new() });
//! # fn main() {}
//! ```
#![deny(missing_docs)]

use std::fmt;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use sentri_core::store::Stores;

mod bus;
mod idempotency;
mod keys;
mod one_time;
mod sessions;
mod throttle;
mod users;

pub use bus::MemoryRevocationBus;

use idempotency::IdempotencyCache;
use keys::Keys;
use one_time::OneTimeTokens;
use sessions::Sessions;
use throttle::Throttle;
use users::Users;

/// The default bound of the idempotency cache (entries).
pub const DEFAULT_IDEMPOTENCY_CAPACITY: u64 = 10_000;

/// The default bound of the number of throttled keys.
///
/// With the default limits (10 and 100 failures kept per key) this is at
/// most a few hundred MiB in the worst case, and usually far less.
pub const DEFAULT_THROTTLE_MAX_KEYS: usize = 100_000;

/// An error building a [`MemoryStore`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid memory store configuration: {0}")]
    Config(&'static str),
}

/// Users, sessions, signing keys, idempotent responses, throttling
/// counters and one-time tokens, all in memory.
///
/// Implements [`UserStore`](sentri_core::store::UserStore),
/// [`SessionStore`](sentri_core::store::SessionStore),
/// [`KeyStore`](sentri_core::store::KeyStore),
/// [`IdempotencyStore`](sentri_core::store::IdempotencyStore),
/// [`ThrottleStore`](sentri_core::store::ThrottleStore) and
/// [`OneTimeTokenStore`](sentri_core::store::OneTimeTokenStore). It is `Send +
/// Sync`, and a clone is another handle to the same data (like an [`Arc`],
/// which it holds), so it is cheap to share.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    users: RwLock<Users>,
    sessions: RwLock<Sessions>,
    keys: Mutex<Keys>,
    idempotency: IdempotencyCache,
    throttle: Mutex<Throttle>,
    one_time: Mutex<OneTimeTokens>,
}

impl MemoryStore {
    /// An empty store with the default bounds.
    pub fn new() -> Self {
        Self::with_config(DEFAULT_IDEMPOTENCY_CAPACITY, DEFAULT_THROTTLE_MAX_KEYS)
    }

    /// A builder to change the bounds.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    fn with_config(idempotency_capacity: u64, throttle_max_keys: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                users: RwLock::new(Users::default()),
                sessions: RwLock::new(Sessions::default()),
                keys: Mutex::new(Keys::default()),
                idempotency: IdempotencyCache::new(idempotency_capacity),
                throttle: Mutex::new(Throttle::new(throttle_max_keys)),
                one_time: Mutex::new(OneTimeTokens::default()),
            }),
        }
    }

    /// This store in every slot of [`Stores`]: [`Stores::from_backend`]
    /// and the one-time tokens.
    pub fn stores(self: Arc<Self>) -> Stores {
        Stores::from_backend(self.clone()).with_one_time_tokens(self)
    }

    /// How many users the store holds.
    pub fn user_count(&self) -> usize {
        self.inner.users.read().len()
    }

    /// How many sessions the store holds, expired ones included until they
    /// are purged.
    pub fn session_count(&self) -> usize {
        self.inner.sessions.read().len()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("users", &self.user_count())
            .field("sessions", &self.session_count())
            .finish_non_exhaustive()
    }
}

/// Builds a [`MemoryStore`] with other bounds than the defaults.
///
/// ```
/// let store = sentri_memory::MemoryStore::builder()
///     .idempotency_capacity(50_000)
///     .throttle_max_keys(10_000)
///     .build()?;
/// # Ok::<(), sentri_memory::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStoreBuilder {
    idempotency_capacity: u64,
    throttle_max_keys: usize,
}

impl Default for MemoryStoreBuilder {
    fn default() -> Self {
        Self {
            idempotency_capacity: DEFAULT_IDEMPOTENCY_CAPACITY,
            throttle_max_keys: DEFAULT_THROTTLE_MAX_KEYS,
        }
    }
}

impl MemoryStoreBuilder {
    /// The most idempotency entries (running requests and stored responses)
    /// kept at once; the least recently used goes first. Default
    /// [`DEFAULT_IDEMPOTENCY_CAPACITY`] (10 000, SPEC F-26); at least 1.
    #[must_use]
    pub fn idempotency_capacity(mut self, entries: u64) -> Self {
        self.idempotency_capacity = entries;
        self
    }

    /// The most keys (identifiers, client addresses) with throttling
    /// counters kept at once; the key whose last failure is oldest goes
    /// first. Default [`DEFAULT_THROTTLE_MAX_KEYS`] (100 000); at least 1.
    #[must_use]
    pub fn throttle_max_keys(mut self, keys: usize) -> Self {
        self.throttle_max_keys = keys;
        self
    }

    /// The store.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a bound is zero.
    pub fn build(self) -> Result<MemoryStore, Error> {
        if self.idempotency_capacity == 0 {
            return Err(Error::Config("idempotency_capacity must be at least 1"));
        }
        if self.throttle_max_keys == 0 {
            return Err(Error::Config("throttle_max_keys must be at least 1"));
        }
        Ok(MemoryStore::with_config(
            self.idempotency_capacity,
            self.throttle_max_keys,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_rejects_zero_bounds() {
        let err = MemoryStore::builder()
            .idempotency_capacity(0)
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        assert_eq!(
            err.to_string(),
            "invalid memory store configuration: idempotency_capacity must be at least 1"
        );
        assert!(MemoryStore::builder().throttle_max_keys(0).build().is_err());
        assert!(MemoryStore::builder().build().is_ok());
    }

    #[test]
    fn store_is_send_sync_and_debug_shows_no_data() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<MemoryStore>();
        let debug = format!("{:?}", MemoryStore::new());
        assert_eq!(debug, "MemoryStore { users: 0, sessions: 0, .. }");
    }

    #[test]
    fn stores_wires_every_slot() {
        let stores = Arc::new(MemoryStore::new()).stores();
        assert_eq!(format!("{stores:?}"), "Stores { .. }");
    }
}
