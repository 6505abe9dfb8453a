//! [`OneTimeTokenStore`] for [`SeaOrmStore`]: one row per token in
//! `sentri_one_time_tokens`, keyed by `(purpose, token_hash)`.
//!
//! Consuming is the one operation that must be atomic, and the database
//! makes it so:
//!
//! - **PostgreSQL and SQLite**: one statement, `DELETE … WHERE purpose = ?
//!   AND token_hash = ? AND expires_at > ? RETURNING …`. Of concurrent
//!   deletes of one row exactly one deletes it (PostgreSQL re-checks the row
//!   after waiting for its lock and finds it gone; SQLite runs writers one
//!   at a time) and only that one gets a row back.
//! - **MySQL/MariaDB**: MariaDB has `DELETE … RETURNING` (10.0.5 and later)
//!   but MySQL has none, and the `mysql` backend serves both; so one
//!   transaction: a locking read (`SELECT … FOR UPDATE`) of the live row,
//!   then its `DELETE`. The row lock queues concurrent consumers behind the
//!   first; when it commits, their locking reads (which read the latest
//!   committed version, whatever the snapshot) find no row. A deadlock is
//!   retried (up to three times in all).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryResult, Statement,
};
use sentri_core::model::{TokenHash, UserId};
use sentri_core::one_time::{OneTimePayload, OneTimeRecord, TokenPurpose};
use sentri_core::store::{OneTimeTokenStore, StoreError, StoreResult};

use crate::entity::one_time_tokens;
use crate::error::map_db_err;
use crate::{SeaOrmStore, micros, retry};

/// The record of a consumed row: `user_id, payload, created_at,
/// expires_at`, in that order (the `RETURNING` / `SELECT` list).
fn to_record(
    row: &QueryResult,
    purpose: &TokenPurpose,
    hash: &TokenHash,
) -> StoreResult<OneTimeRecord> {
    let payload: Option<String> = row.try_get_by_index(1).map_err(map_db_err)?;
    let payload = payload
        .map(OneTimePayload::new)
        .transpose()
        .map_err(|_| StoreError::other("a stored one-time token payload is not valid"))?;
    Ok(OneTimeRecord {
        purpose: purpose.clone(),
        token_hash: *hash,
        user_id: UserId(row.try_get_by_index(0).map_err(map_db_err)?),
        payload,
        created_at: row.try_get_by_index(2).map_err(map_db_err)?,
        expires_at: row.try_get_by_index(3).map_err(map_db_err)?,
    })
}

#[async_trait]
impl OneTimeTokenStore for SeaOrmStore {
    async fn insert_token(&self, record: OneTimeRecord) -> StoreResult<()> {
        one_time_tokens::Entity::insert(one_time_tokens::ActiveModel {
            purpose: Set(record.purpose.as_str().to_owned()),
            token_hash: Set(record.token_hash.as_bytes().to_vec()),
            user_id: Set(record.user_id.0),
            payload: Set(record.payload.map(OneTimePayload::into_string)),
            created_at: Set(micros(record.created_at)),
            expires_at: Set(micros(record.expires_at)),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(map_db_err)?;
        Ok(())
    }

    async fn consume_token(
        &self,
        purpose: &TokenPurpose,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<OneTimeRecord>> {
        let backend = self.backend();
        let values = || {
            [
                purpose.as_str().into(),
                hash.as_bytes().to_vec().into(),
                micros(now).into(),
            ]
        };
        match backend {
            DbBackend::MySql => {
                retry(|| async {
                    let txn = self.begin().await?;
                    let row = txn
                        .query_one_raw(Statement::from_sql_and_values(
                            backend,
                            "SELECT user_id, payload, created_at, expires_at \
                             FROM sentri_one_time_tokens \
                             WHERE purpose = ? AND token_hash = ? AND expires_at > ? \
                             FOR UPDATE",
                            values(),
                        ))
                        .await
                        .map_err(map_db_err)?;
                    let Some(row) = row else {
                        sea_orm::TransactionSession::rollback(txn)
                            .await
                            .map_err(map_db_err)?;
                        return Ok(None);
                    };
                    let record = to_record(&row, purpose, hash)?;
                    let deleted = one_time_tokens::Entity::delete_many()
                        .filter(one_time_tokens::Column::Purpose.eq(purpose.as_str()))
                        .filter(one_time_tokens::Column::TokenHash.eq(hash.as_bytes().to_vec()))
                        .exec(&txn)
                        .await
                        .map_err(map_db_err)?;
                    sea_orm::TransactionSession::commit(txn)
                        .await
                        .map_err(map_db_err)?;
                    // Under the row lock the delete cannot miss; if it
                    // somehow did, nobody consumed the token here.
                    Ok((deleted.rows_affected == 1).then_some(record))
                })
                .await
            }
            _ => {
                const PG: &str = "DELETE FROM sentri_one_time_tokens \
                    WHERE purpose = $1 AND token_hash = $2 AND expires_at > $3 \
                    RETURNING user_id, payload, created_at, expires_at";
                const SQLITE: &str = "DELETE FROM sentri_one_time_tokens \
                    WHERE purpose = ? AND token_hash = ? AND expires_at > ? \
                    RETURNING user_id, payload, created_at, expires_at";
                let sql = if backend == DbBackend::Postgres {
                    PG
                } else {
                    SQLITE
                };
                let row = self
                    .db
                    .query_one_raw(Statement::from_sql_and_values(backend, sql, values()))
                    .await
                    .map_err(map_db_err)?;
                row.map(|row| to_record(&row, purpose, hash)).transpose()
            }
        }
    }

    async fn delete_user_tokens(&self, user: UserId, purpose: &TokenPurpose) -> StoreResult<u64> {
        let res = one_time_tokens::Entity::delete_many()
            .filter(one_time_tokens::Column::UserId.eq(user.0))
            .filter(one_time_tokens::Column::Purpose.eq(purpose.as_str()))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(res.rows_affected)
    }

    async fn purge_expired_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let res = one_time_tokens::Entity::delete_many()
            .filter(one_time_tokens::Column::ExpiresAt.lte(micros(now)))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(res.rows_affected)
    }
}
