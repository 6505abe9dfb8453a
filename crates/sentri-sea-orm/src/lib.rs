//! SQL storage for sentri through SeaORM: PostgreSQL, MySQL/MariaDB and
//! SQLite with one implementation.
//!
//! [`SeaOrmStore`] wraps a [`sea_orm::DatabaseConnection`] (a connection
//! pool) and implements sentri's [`UserStore`], [`SessionStore`],
//! [`KeyStore`], [`IdempotencyStore`], [`ThrottleStore`] and
//! [`OneTimeTokenStore`]. Everything the traits require to be atomic is done
//! by the database: a unique index on the normalised identifier, a
//! conditional `UPDATE` for refresh rotation and password compare-and-set,
//! `INSERT … ON CONFLICT DO NOTHING` for role merges, a unique "active key
//! per algorithm" column for signing keys, primary-key inserts for
//! idempotency locks, and `DELETE … RETURNING` (a locking read and a delete
//! on MySQL/MariaDB) for consuming a one-time token.
//!
//! The schema lives in the `sentri-migration` crate; [`migrate`] applies it
//! and is safe to call on every startup, also when several instances start at
//! once (it takes `pg_advisory_xact_lock` on PostgreSQL, `GET_LOCK` on
//! MySQL/MariaDB and a write transaction on SQLite).
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use sentri_core::store::{Stores, UserStore};
//! use sentri_sea_orm::SeaOrmStore;
//!
//! let dir = std::env::temp_dir().join(format!("sentri-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let url = format!("sqlite://{}?mode=rwc", dir.join("auth.db").display());
//!
//! let db = sentri_sea_orm::connect(&url).await?;
//! sentri_sea_orm::migrate(&db).await?;
//! let store = Arc::new(SeaOrmStore::new(db));
//!
//! assert!(store.find_user_by_identifier("nobody@example.com").await?.is_none());
//! let stores = Stores::from_backend(store);
//! # let _ = stores;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! # #[cfg(feature = "sqlite")]
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
//! ```
//!
//! # Connection URLs
//!
//! | backend | URL |
//! |---|---|
//! | PostgreSQL | `postgres://user:password@host:5432/database` |
//! | MySQL / MariaDB | `mysql://user:password@host:3306/database` |
//! | SQLite | `sqlite://path/to/file.db?mode=rwc` (creates the file) |
//!
//! [`connect`] applies sentri's pool defaults; build your own
//! [`sea_orm::ConnectOptions`] and use [`connect_with`] to change them.
//!
//! # Errors
//!
//! Every operation returns [`StoreError`](sentri_core::store::StoreError):
//! `Conflict` for a unique violation, `NotFound` for a missing user or
//! session where the trait says so, `Unavailable` when the database cannot be
//! reached, times out, is shutting down or stays deadlocked after retries,
//! and `Other` for anything unexpected. No operation panics on a database
//! failure.
//!
//! # Features
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `sqlite` | yes | SQLite through sqlx (bundled `libsqlite3`) |
//! | `postgres` | no | PostgreSQL through sqlx |
//! | `mysql` | no | MySQL and MariaDB through sqlx |
//! | `rustls` | no | TLS to the database server with rustls (`sslmode=…` in the URL) |
//!
//! Features are additive; enable every backend your deployment may choose at
//! run time.
#![deny(missing_docs)]

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sentri_core::store::{StoreError, StoreResult};
use sentri_migration::{Migrator, MigratorTrait};

mod entity;
mod error;
mod idempotency;
mod keys;
mod one_time;
mod sessions;
mod throttle;
mod users;

/// The guide `docs/stores.md`, doctested with this crate.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/stores.md")]
pub struct StoresGuide;

pub use sea_orm;
pub use sentri_core::store::{
    IdempotencyStore, KeyStore, OneTimeTokenStore, SessionStore, ThrottleStore, UserStore,
};
pub use sentri_migration;

use error::map_db_err;

/// sentri's stores on a SQL database through SeaORM.
///
/// Cheap to clone (the pool is shared). Implements every store trait of
/// `sentri-core`; wire it with
/// [`Stores::from_backend`](sentri_core::store::Stores::from_backend).
#[derive(Debug, Clone)]
pub struct SeaOrmStore {
    db: DatabaseConnection,
}

impl SeaOrmStore {
    /// Wrap a connection pool whose database has been migrated with
    /// [`migrate`].
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// The underlying connection pool.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Check that the database answers (for a readiness probe).
    ///
    /// # Errors
    ///
    /// `Unavailable` when it does not.
    pub async fn ping(&self) -> StoreResult<()> {
        self.db.ping().await.map_err(map_db_err)
    }

    pub(crate) fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Begin a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so
    /// concurrent writers queue on the busy timeout instead of failing when
    /// they upgrade from a read lock.
    pub(crate) async fn begin(&self) -> StoreResult<DatabaseTransaction> {
        let options = TransactionOptions {
            sqlite_transaction_mode: (self.backend() == DbBackend::Sqlite)
                .then_some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        self.db
            .begin_with_options(options)
            .await
            .map_err(map_db_err)
    }
}

impl From<DatabaseConnection> for SeaOrmStore {
    fn from(db: DatabaseConnection) -> Self {
        Self::new(db)
    }
}

/// Run a transactional operation, again (up to three times in all) when the
/// database aborted it as a deadlock or serialization failure.
pub(crate) async fn retry<T, F, Fut>(mut op: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match op().await {
            Err(e) if attempt < 3 && error::is_retryable(&e) => {
                tracing::debug!(attempt, "retrying a transaction aborted by the database");
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

/// Connect to `url` with sentri's pool defaults: at most 10 connections,
/// 5 s to connect or to get a connection from the pool (then the operation
/// fails as `Unavailable` instead of hanging), idle connections closed after
/// 10 min, SQL statement logging off. An in-memory SQLite URL gets a single
/// connection, since each connection would otherwise see its own database.
///
/// # Errors
///
/// `Unavailable` when the server cannot be reached, `Other` for a malformed
/// URL or a backend whose feature is not enabled.
pub async fn connect(url: &str) -> StoreResult<DatabaseConnection> {
    connect_with(connect_options(url)).await
}

/// The [`ConnectOptions`] that [`connect`] uses, to adjust before
/// [`connect_with`].
pub fn connect_options(url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(10)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(600))
        .sqlx_logging(false);
    if url.starts_with("sqlite") && url.contains(":memory:") {
        options.max_connections(1);
    }
    options
}

/// Connect with explicit options.
///
/// # Errors
///
/// As [`connect`].
pub async fn connect_with(options: ConnectOptions) -> StoreResult<DatabaseConnection> {
    Database::connect(options).await.map_err(map_db_err)
}

/// Apply every pending migration of `sentri-migration`, under a lock.
///
/// Safe on every startup (nothing happens when the schema is current) and
/// when several instances start at once: the first one migrates while the
/// others wait for it, then find nothing to do. The lock is
/// `pg_advisory_xact_lock` on PostgreSQL (per database, released at commit),
/// `GET_LOCK` on MySQL/MariaDB (per database name, released at the end) and
/// a `BEGIN IMMEDIATE` write transaction on SQLite.
///
/// # Errors
///
/// `Unavailable` when the database cannot be reached or the lock is not
/// obtained within 60 s; `Other` when a migration fails (on PostgreSQL and
/// SQLite nothing of it is left behind).
pub async fn migrate(db: &DatabaseConnection) -> StoreResult<()> {
    let backend = db.get_database_backend();
    let options = TransactionOptions {
        sqlite_transaction_mode: (backend == DbBackend::Sqlite)
            .then_some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    // The transaction pins one connection: the lock and the migrations run
    // on the same session.
    let txn = db.begin_with_options(options).await.map_err(map_db_err)?;
    match backend {
        DbBackend::Postgres => {
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATE_LOCK_ID})"))
                .await
                .map_err(map_db_err)?;
            Migrator::up(&txn, None).await.map_err(migration_err)?;
        }
        DbBackend::MySql => {
            let row = txn
                .query_one_raw(sea_orm::Statement::from_string(
                    backend,
                    format!("SELECT GET_LOCK({MYSQL_LOCK_NAME}, 60) AS locked"),
                ))
                .await
                .map_err(map_db_err)?;
            let locked: Option<i64> = match row {
                Some(row) => row.try_get("", "locked").map_err(map_db_err)?,
                None => None,
            };
            if locked != Some(1) {
                return Err(StoreError::unavailable(
                    "timed out waiting for the migration lock",
                ));
            }
            let result = Migrator::up(&txn, None).await.map_err(migration_err);
            let released = txn
                .execute_unprepared(&format!("DO RELEASE_LOCK({MYSQL_LOCK_NAME})"))
                .await
                .map_err(map_db_err);
            result?;
            released?;
        }
        _ => {
            Migrator::up(&txn, None).await.map_err(migration_err)?;
        }
    }
    txn.commit().await.map_err(map_db_err)
}

/// The advisory lock id of `migrate` on PostgreSQL ("sentri" in ASCII).
const MIGRATE_LOCK_ID: i64 = 0x7365_6e74_7269;
/// The `GET_LOCK` name of `migrate` on MySQL/MariaDB: per database, at most
/// 64 characters.
const MYSQL_LOCK_NAME: &str = "LEFT(CONCAT('sentri_migrate:', DATABASE()), 64)";

fn migration_err(err: sea_orm::DbErr) -> StoreError {
    tracing::error!(error = %err, "sentri migration failed");
    map_db_err(err)
}

/// Timestamps are kept with microsecond precision on every backend (the
/// precision of PostgreSQL and of MySQL's `DATETIME(6)`), so that what a
/// store returns equals what it later reads back.
pub(crate) fn micros(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::{DurationRound, TimeDelta};
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

pub(crate) fn chrono_duration(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}
