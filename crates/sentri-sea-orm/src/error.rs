//! Mapping of SeaORM / sqlx failures into [`StoreError`].
//!
//! The only job of this module: a unique violation is `Conflict`, a missing
//! parent row is `NotFound`, anything that says "the database cannot be
//! reached right now" (connection refused or lost, pool timeout, server
//! shutting down, lock timeout, deadlock after retries, SQLite busy) is
//! `Unavailable`, and the rest is `Other`. The `DbErr` is kept as the
//! source; it carries no bound values, so no hash or key reaches a log
//! through it.

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
use std::ops::Deref;

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
use sea_orm::RuntimeErr;
use sea_orm::{DbErr, SqlErr};
use sentri_core::store::{StoreError, StoreErrorKind};

/// Convert a SeaORM error into the store error with the right kind.
pub(crate) fn map_db_err(err: DbErr) -> StoreError {
    let kind = classify(&err);
    StoreError::with_source(kind, err)
}

fn classify(err: &DbErr) -> StoreErrorKind {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => return StoreErrorKind::Conflict,
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => return StoreErrorKind::NotFound,
        _ => {}
    }
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => StoreErrorKind::Unavailable,
        #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            if sqlx_unavailable(e) {
                StoreErrorKind::Unavailable
            } else {
                StoreErrorKind::Other
            }
        }
        _ => StoreErrorKind::Other,
    }
}

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
fn sqlx_unavailable(e: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match e {
        Error::Io(_)
        | Error::Tls(_)
        | Error::Protocol(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed
        | Error::BeginFailed => true,
        Error::Database(db) => transient_db_error(db.deref()),
        _ => false,
    }
}

/// Database errors that mean "try again later", per backend.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
fn transient_db_error(db: &dyn sea_orm::sqlx::error::DatabaseError) -> bool {
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>() {
        // 1040 too many connections, 1053 server shutdown, 1205 lock wait
        // timeout, 1213 deadlock, 1927 connection killed, 2006/2013 gone away.
        return matches!(my.number(), 1040 | 1053 | 1205 | 1213 | 1927 | 2006 | 2013);
    }
    #[cfg(feature = "postgres")]
    if db
        .try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        let code = db.code().unwrap_or_default();
        // 08xxx connection exception, 53xxx insufficient resources,
        // 57P0x shutdown / cannot connect now, 40001/40P01 serialization
        // failure / deadlock (after our retries), 55P03 lock not available.
        return code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57P")
            || matches!(code.as_ref(), "40001" | "40P01" | "55P03");
    }
    #[cfg(feature = "sqlite")]
    if db
        .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
        .is_some()
    {
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6) with their extended codes.
        let code: i64 = db.code().and_then(|c| c.parse().ok()).unwrap_or(0);
        return matches!(code & 0xff, 5 | 6);
    }
    let _ = db;
    false
}

/// Whether a failed transaction is worth running again: a deadlock or a
/// serialization failure, which the database resolved by aborting us.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
pub(crate) fn is_retryable(err: &StoreError) -> bool {
    let Some(db) = std::error::Error::source(err).and_then(|s| s.downcast_ref::<DbErr>()) else {
        return false;
    };
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = db
    else {
        return false;
    };
    let sea_orm::sqlx::Error::Database(db) = e.deref() else {
        return false;
    };
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>() {
        return my.number() == 1213;
    }
    matches!(db.code().as_deref(), Some("40001" | "40P01"))
}

/// Without a driver there is no database error to retry.
#[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
pub(crate) fn is_retryable(_: &StoreError) -> bool {
    false
}
