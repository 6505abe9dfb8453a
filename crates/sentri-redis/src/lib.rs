//! Redis stores for sentri (F-33), on [`fred`]: what several instances of a
//! server must share beyond the database.
//!
//! - [`RedisStore`] implements
//!   [`IdempotencyStore`](sentri_core::store::IdempotencyStore) (replayed
//!   responses and the lock of a running request, F-26) and
//!   [`ThrottleStore`](sentri_core::store::ThrottleStore) (failed-login
//!   counters, F-27), so a duplicate request or a password-guessing client
//!   is recognised whichever instance it reaches.
//! - [`RedisRevocationBus`] implements
//!   [`RevocationBus`](sentri_core::store::RevocationBus) with pub/sub, so a
//!   logout on one instance reaches the session caches of all of them in
//!   [`SessionCheck::Cached`](sentri_core::SessionCheck::Cached) (F-13).
//!
//! Users, sessions and keys stay in a database (`sentri-sea-orm`); Redis
//! takes the idempotency and throttling slots of [`Stores`]:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use chrono::Utc;
//! use sentri_core::store::{Stores, ThrottleStore};
//! use sentri_memory::MemoryStore;
//! use sentri_redis::RedisStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Arc::new(RedisStore::connect("redis://127.0.0.1:6379", "sentri-doc:").await?);
//! let bus = Arc::new(redis.revocation_bus().await?);
//!
//! // The SQL store in a real server; the memory store keeps this short.
//! let stores = Stores::from_backend(Arc::new(MemoryStore::new()))
//!     .with_idempotency(redis.clone())
//!     .with_throttle(redis.clone())
//!     .with_revocation_bus(bus);
//!
//! // Every instance on this Redis sees the same counters.
//! let window = Duration::from_secs(900);
//! stores.throttle.record_failure("doc:ada", Utc::now(), window, 10).await?;
//! assert_eq!(stores.throttle.recent_failures("doc:ada", Utc::now(), window).await?.len(), 1);
//! stores.throttle.clear_failures("doc:ada").await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Keys
//!
//! Every key and the pub/sub channel live under one prefix (default
//! `sentri:`), so several applications can share a Redis:
//!
//! | key | type | what | expires |
//! |---|---|---|---|
//! | `<prefix>idem:<key>` | hash | an idempotency key: held (fingerprint, lock) or done (fingerprint, response) | after `lock_ttl` while held, `ttl` once done |
//! | `<prefix>thr:<key>` | sorted set | failure times of a throttle key | after the window |
//! | `<prefix>revocations` | channel | revocation events, `s:<session id>` / `u:<user id>` | — |
//!
//! Idempotency keys arrive already scoped to the caller by `sentri-core`,
//! and responses may hold tokens: they are stored in Redis (protect it
//! like the database) but never logged. Throttle times are kept in
//! milliseconds.
//!
//! # Atomicity
//!
//! Every operation that reads and writes is one Lua script, so it is atomic
//! on the server: of any number of instances racing on `begin`, exactly one
//! acquires the key; `complete` never overwrites a lock another request has
//! taken over since; concurrent failures are all counted.
//!
//! # When Redis is down
//!
//! Store operations then fail with
//! [`StoreErrorKind::Unavailable`](sentri_core::store::StoreErrorKind::Unavailable)
//! (clients see `SERVICE_UNAVAILABLE`), never with a wrong answer: never a
//! replay of another key, never a throttle count that is silently zero.
//! They fail fast:
//!
//! - every command has a timeout (default 2 s, [`RedisStoreBuilder::command_timeout`]);
//! - while the connection is down, commands fail at once instead of
//!   queueing;
//! - a command is written once: if its connection closes before the answer,
//!   it is not sent again (running `begin` twice would lock the caller out
//!   of its own key);
//! - the connections created by [`RedisStore::connect`] reconnect forever,
//!   with a backoff from 100 ms up to 2 s, so the store recovers by itself
//!   when Redis is back (in the fault tests, about 1.3 s after a restart).
//!
//! A command already in flight when the connection drops fails at the
//! command timeout; the following ones fail at once. A command that timed
//! out on a hung (not dead) Redis may still run when Redis wakes up: a
//! `begin` that answered `Unavailable` can then hold its key until
//! `lock_ttl`, and the client's retry sees `IDEMPOTENCY_IN_PROGRESS` until
//! then. Redis without persistence forgets locks, responses and counters
//! when it restarts.
//!
//! The revocation bus fails safe instead: while its subscription is lost
//! (or cannot be confirmed), `Sentri` in `Cached` mode reads every session
//! from the store rather than from its cache, and drops the cache when the
//! subscription is confirmed again; see [`RedisRevocationBus`] for the
//! bound on how long a revoked session can still be accepted.
//!
//! Fred errors of kind `IO`, `Timeout`, `Backpressure`, `Canceled` and
//! `Routing` (and Redis's `LOADING`, `BUSY`, …) are `Unavailable`; anything
//! else is `Other`.
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `rustls` | no | TLS to Redis (`rediss://` URLs) with rustls, forwarded to fred's `enable-rustls` |
//!
//! # Conformance
//!
//! `tests/conformance.rs` runs the `sentri-testkit` conformance suites
//! (`idempotency_store_tests!`, `throttle_store_tests!`) against a real
//! Redis, each check under its own random key prefix.
#![deny(missing_docs)]

mod bus;
mod conn;
mod error;
mod idempotency;
mod throttle;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use fred::clients::{Client, Pool};
use fred::interfaces::ClientLike;
use fred::types::Builder;
use fred::types::config::{Config, ReconnectPolicy};

pub use bus::{BUS_HEARTBEAT_INTERVAL, RedisRevocationBus};
pub use error::Error;
/// The Redis client this crate is built on, re-exported so applications
/// build their [`Pool`](fred::clients::Pool) with the same version.
pub use fred;

use conn::{Conn, Handle, Owned, command_options};

/// The key prefix used unless one is set.
pub const DEFAULT_KEY_PREFIX: &str = "sentri:";

/// The command timeout used unless one is set.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// The number of connections [`RedisStore::connect`] opens unless set.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// The longest key prefix accepted.
const MAX_PREFIX_LEN: usize = 256;

/// The longest command timeout accepted.
const MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The reconnect policy of the connections this crate opens: forever, with
/// an exponential backoff from 100 ms to 2 s.
fn reconnect_policy() -> ReconnectPolicy {
    ReconnectPolicy::new_exponential(0, 100, 2_000, 2)
}

/// A fred builder for `config` with this crate's bounded settings.
fn fred_builder(config: Config, command_timeout: Duration) -> Builder {
    let mut builder = Builder::from_config(config);
    builder
        .with_connection_config(|c| {
            c.connection_timeout = command_timeout;
            c.internal_command_timeout = command_timeout;
            c.max_command_attempts = 1;
            c.tcp.nodelay = Some(true);
        })
        .with_performance_config(|p| {
            p.default_command_timeout = command_timeout;
        })
        .set_policy(reconnect_policy());
    builder
}

/// Idempotency and throttling on Redis; see the [crate docs](crate).
///
/// Cheap to clone (the connections are shared). Build one with
/// [`RedisStore::connect`] or, to set more than the prefix or to use your
/// own fred [`Pool`] or [`Client`], with [`RedisStore::builder`].
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    prefix: String,
    command_timeout: Duration,
    idempotency: idempotency::Scripts,
    throttle: throttle::Scripts,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.inner.prefix)
            .field("command_timeout", &self.inner.command_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connect to `url` (`redis://[user:password@]host:port[/db]`, or
    /// `rediss://` with the `rustls` feature) with the default settings,
    /// keeping every key under `key_prefix`.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad URL or prefix, [`Error::Redis`] when
    /// Redis cannot be reached (within the command timeout) or refuses the
    /// credentials.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, Error> {
        Self::builder().key_prefix(key_prefix).connect(url).await
    }

    /// A builder, with the default settings.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// The prefix of every key and of the channel.
    pub fn key_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// A revocation bus on this store's Redis and key prefix: it publishes
    /// on the store's connections and opens one more, for the
    /// subscription, with the store's server settings. That connection
    /// reconnects forever, whatever the store's own policy.
    ///
    /// Returns once Redis has confirmed the subscription (see
    /// [`RedisRevocationBus`] on when the bus is live).
    ///
    /// # Errors
    /// [`Error::Redis`] when the subscription cannot be made.
    pub async fn revocation_bus(&self) -> Result<RedisRevocationBus, Error> {
        let client = self.inner.conn.handle.client();
        let mut builder = Builder::from_config(client.client_config());
        let mut connection = client.connection_config().clone();
        connection.connection_timeout = self.inner.command_timeout;
        connection.internal_command_timeout = self.inner.command_timeout;
        let mut performance = client.perf_config();
        performance.default_command_timeout = self.inner.command_timeout;
        // The subscription task reads every message; a burst of revocations
        // must not overflow fred's channel (overflowing it drops caches).
        performance.broadcast_channel_capacity = performance.broadcast_channel_capacity.max(4096);
        builder
            .set_connection_config(connection)
            .set_performance_config(performance)
            .set_policy(reconnect_policy());
        let subscriber = builder.build_subscriber_client().map_err(Error::Redis)?;
        RedisRevocationBus::start(
            self.inner.conn.clone(),
            subscriber,
            format!("{}revocations", self.inner.prefix),
            self.inner.command_timeout,
        )
        .await
    }
}

/// Settings of a [`RedisStore`]; every setter documents its default.
///
/// ```no_run
/// use std::time::Duration;
///
/// use sentri_redis::RedisStore;
/// use sentri_redis::fred::prelude::*;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Your own fred pool, initialised.
/// let pool = Builder::from_config(Config::from_url("redis://127.0.0.1:6379")?).build_pool(2)?;
/// pool.init().await?;
///
/// let store = RedisStore::builder()
///     .key_prefix("myapp:auth:")
///     .command_timeout(Duration::from_millis(500))
///     .build_with_pool(pool)?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RedisStoreBuilder {
    key_prefix: String,
    command_timeout: Duration,
    pool_size: usize,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        Self {
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            pool_size: DEFAULT_POOL_SIZE,
        }
    }
}

impl RedisStoreBuilder {
    /// The prefix of every key and of the revocation channel. Default
    /// `sentri:`. Must not be empty; at most 256 bytes.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How long one command may take before it fails with `Unavailable`.
    /// Default 2 s; between 1 ms and 60 s. [`connect`](Self::connect) also
    /// uses it as the connection timeout.
    #[must_use]
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How many connections [`connect`](Self::connect) opens. Default 4;
    /// between 1 and 64. (Fred pipelines commands on each connection.)
    #[must_use]
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        if self.key_prefix.is_empty() {
            return Err(Error::Config("key_prefix must not be empty"));
        }
        if self.key_prefix.len() > MAX_PREFIX_LEN {
            return Err(Error::Config("key_prefix must be at most 256 bytes"));
        }
        if self.command_timeout < Duration::from_millis(1)
            || self.command_timeout > MAX_COMMAND_TIMEOUT
        {
            return Err(Error::Config(
                "command_timeout must be between 1 ms and 60 s",
            ));
        }
        if !(1..=64).contains(&self.pool_size) {
            return Err(Error::Config("pool_size must be between 1 and 64"));
        }
        Ok(())
    }

    fn finish(self, handle: Handle, owned: bool) -> RedisStore {
        RedisStore {
            inner: Arc::new(Inner {
                conn: Conn {
                    _owned: owned.then(|| Arc::new(Owned(handle.clone()))),
                    handle,
                    options: command_options(self.command_timeout),
                },
                prefix: self.key_prefix,
                command_timeout: self.command_timeout,
                idempotency: idempotency::Scripts::new(),
                throttle: throttle::Scripts::new(),
            }),
        }
    }

    /// Open a pool of connections to `url` and build the store. The
    /// connections reconnect forever (backoff 100 ms to 2 s) and close when
    /// the last clone of the store is dropped.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid setting or URL (the URL is not
    /// repeated: it may hold a password), [`Error::Redis`] when Redis
    /// cannot be reached within the command timeout or refuses the
    /// credentials.
    pub async fn connect(self, url: &str) -> Result<RedisStore, Error> {
        self.validate()?;
        let config =
            Config::from_url(url).map_err(|_| Error::Config("url is not a valid redis url"))?;
        let pool = fred_builder(config, self.command_timeout)
            .build_pool(self.pool_size)
            .map_err(Error::Redis)?;
        // Bound the whole handshake, whatever fred does inside.
        let connected = tokio::time::timeout(self.command_timeout * 2, pool.init()).await;
        match connected {
            Ok(Ok(_)) => Ok(self.finish(Handle::Pool(pool), true)),
            Ok(Err(err)) => {
                let _ = pool.quit().await;
                Err(Error::Redis(err))
            }
            Err(_) => {
                let _ = tokio::time::timeout(self.command_timeout, pool.quit()).await;
                Err(Error::Redis(fred::error::Error::new(
                    fred::error::ErrorKind::Timeout,
                    "timed out connecting to redis",
                )))
            }
        }
    }

    /// Build the store on your own fred [`Pool`], which you initialise
    /// (`init().await`) and close. Its reconnect policy is yours: without
    /// one, the store stays unavailable after Redis restarts. The store's
    /// commands carry their own timeout and never queue while disconnected.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid setting.
    pub fn build_with_pool(self, pool: Pool) -> Result<RedisStore, Error> {
        self.validate()?;
        Ok(self.finish(Handle::Pool(pool), false))
    }

    /// Build the store on your own fred [`Client`], like
    /// [`build_with_pool`](Self::build_with_pool).
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid setting.
    pub fn build_with_client(self, client: Client) -> Result<RedisStore, Error> {
        self.validate()?;
        Ok(self.finish(Handle::Client(client), false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_validates() {
        for (builder, field) in [
            (RedisStore::builder().key_prefix(""), "key_prefix"),
            (
                RedisStore::builder().key_prefix("x".repeat(257)),
                "key_prefix",
            ),
            (
                RedisStore::builder().command_timeout(Duration::ZERO),
                "command_timeout",
            ),
            (
                RedisStore::builder().command_timeout(Duration::from_secs(61)),
                "command_timeout",
            ),
            (RedisStore::builder().pool_size(0), "pool_size"),
            (RedisStore::builder().pool_size(65), "pool_size"),
        ] {
            match builder.validate() {
                Err(Error::Config(message)) => assert!(message.starts_with(field), "{message}"),
                other => panic!("{field}: expected a config error, got {other:?}"),
            }
        }
        assert!(RedisStore::builder().validate().is_ok());
    }

    #[tokio::test]
    async fn a_bad_url_is_a_config_error_that_hides_the_url() {
        let err = RedisStore::connect("redis://user:hunter2@127.0.0.1:notaport/", "p:")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(!format!("{err:?} {err}").contains("hunter2"));
    }
}
