//! [`IdempotencyStore`] for [`SeaOrmStore`].
//!
//! Taking a key is an `INSERT` on its primary key: of concurrent requests
//! exactly one inserts. A key whose lock or stored response has lapsed is
//! taken over with a compare-and-set `UPDATE` on the row as it was read.
//! Either way the row gets a fresh random `lease`; `complete` and `release`
//! are one statement each, conditioned on `key`, `lease` and "still held",
//! so a request that lost its hold to a takeover changes nothing.
//! `purge_expired_idempotency` is one `DELETE` on the `expires_at` index.
//!
//! The trait passes no `now` here, so the store reads the clock of the
//! process; instances of one service should keep their clocks in sync.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use sentri_core::model::{IdempotencyBegin, IdempotencyLease, StoredResponse};
use sentri_core::store::{IdempotencyStore, StoreError, StoreErrorKind, StoreResult};

use crate::entity::idempotency;
use crate::error::map_db_err;
use crate::{SeaOrmStore, chrono_duration, micros};

fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_add_signed(chrono_duration(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn is_free(row: &idempotency::Model, now: DateTime<Utc>, lock_ttl: Duration) -> bool {
    if row.completed {
        row.expires_at <= now
    } else {
        add(row.locked_at, lock_ttl) <= now || row.expires_at <= now
    }
}

fn response(row: idempotency::Model) -> StoreResult<StoredResponse> {
    let headers = match row.headers.as_deref() {
        Some(json) => serde_json::from_str(json).map_err(StoreError::other)?,
        None => Vec::new(),
    };
    let status = row
        .status
        .and_then(|s| u16::try_from(s).ok())
        .ok_or_else(|| StoreError::other("stored idempotent response has no status"))?;
    Ok(StoredResponse {
        status,
        headers,
        body: row.body.unwrap_or_default(),
    })
}

#[async_trait]
impl IdempotencyStore for SeaOrmStore {
    async fn begin(
        &self,
        key: &str,
        fingerprint: &[u8; 32],
        lock_ttl: Duration,
    ) -> StoreResult<IdempotencyBegin> {
        let lease = IdempotencyLease::generate();
        for _ in 0..8 {
            let now = micros(Utc::now());
            let inserted = idempotency::Entity::insert(idempotency::ActiveModel {
                key: Set(key.to_owned()),
                fingerprint: Set(fingerprint.to_vec()),
                completed: Set(false),
                status: Set(None),
                headers: Set(None),
                body: Set(None),
                locked_at: Set(now),
                expires_at: Set(add(now, lock_ttl)),
                lease: Set(Some(lease.as_bytes().to_vec())),
            })
            .exec_without_returning(&self.db)
            .await
            .map_err(map_db_err);
            match inserted {
                Ok(_) => return Ok(IdempotencyBegin::Acquired(lease)),
                Err(e) if e.kind() == StoreErrorKind::Conflict => {}
                Err(e) => return Err(e),
            }
            let Some(row) = idempotency::Entity::find_by_id(key)
                .one(&self.db)
                .await
                .map_err(map_db_err)?
            else {
                continue; // released meanwhile: try to insert again
            };
            if is_free(&row, now, lock_ttl) {
                // Take over the lapsed key, unless someone else just did.
                let res = idempotency::Entity::update_many()
                    .col_expr(
                        idempotency::Column::Fingerprint,
                        Expr::value(fingerprint.to_vec()),
                    )
                    .col_expr(idempotency::Column::Completed, Expr::value(false))
                    .col_expr(
                        idempotency::Column::Status,
                        Expr::value(Option::<i32>::None),
                    )
                    .col_expr(
                        idempotency::Column::Headers,
                        Expr::value(Option::<String>::None),
                    )
                    .col_expr(
                        idempotency::Column::Body,
                        Expr::value(Option::<Vec<u8>>::None),
                    )
                    .col_expr(idempotency::Column::LockedAt, Expr::value(now))
                    .col_expr(
                        idempotency::Column::Lease,
                        Expr::value(Some(lease.as_bytes().to_vec())),
                    )
                    .col_expr(
                        idempotency::Column::ExpiresAt,
                        Expr::value(add(now, lock_ttl)),
                    )
                    .filter(idempotency::Column::Key.eq(key))
                    .filter(idempotency::Column::LockedAt.eq(row.locked_at))
                    .filter(idempotency::Column::ExpiresAt.eq(row.expires_at))
                    .filter(idempotency::Column::Completed.eq(row.completed))
                    .exec(&self.db)
                    .await
                    .map_err(map_db_err)?;
                if res.rows_affected > 0 {
                    return Ok(IdempotencyBegin::Acquired(lease));
                }
                continue;
            }
            if row.fingerprint.as_slice() != fingerprint.as_slice() {
                return Ok(IdempotencyBegin::Mismatch);
            }
            if !row.completed {
                return Ok(IdempotencyBegin::InProgress);
            }
            return Ok(IdempotencyBegin::Completed(response(row)?));
        }
        Err(StoreError::unavailable(
            "idempotency key contended beyond retries",
        ))
    }

    async fn complete(
        &self,
        key: &str,
        lease: &IdempotencyLease,
        response: StoredResponse,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let now = micros(Utc::now());
        let headers = serde_json::to_string(&response.headers).map_err(StoreError::other)?;
        // Only the hold carrying our lease; a takeover wrote another one.
        let res = idempotency::Entity::update_many()
            .col_expr(idempotency::Column::Completed, Expr::value(true))
            .col_expr(
                idempotency::Column::Status,
                Expr::value(Some(i32::from(response.status))),
            )
            .col_expr(idempotency::Column::Headers, Expr::value(Some(headers)))
            .col_expr(idempotency::Column::Body, Expr::value(Some(response.body)))
            .col_expr(idempotency::Column::ExpiresAt, Expr::value(add(now, ttl)))
            .filter(idempotency::Column::Key.eq(key))
            .filter(idempotency::Column::Lease.eq(lease.as_bytes().to_vec()))
            .filter(idempotency::Column::Completed.eq(false))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(res.rows_affected > 0)
    }

    async fn release(&self, key: &str, lease: &IdempotencyLease) -> StoreResult<bool> {
        let res = idempotency::Entity::delete_many()
            .filter(idempotency::Column::Key.eq(key))
            .filter(idempotency::Column::Lease.eq(lease.as_bytes().to_vec()))
            .filter(idempotency::Column::Completed.eq(false))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(res.rows_affected > 0)
    }

    async fn purge_expired_idempotency(&self) -> StoreResult<u64> {
        // A held row's `expires_at` is the end of its lock, a completed
        // row's the end of its replay: past either, the row is free anyway.
        let res = idempotency::Entity::delete_many()
            .filter(idempotency::Column::ExpiresAt.lte(micros(Utc::now())))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(res.rows_affected)
    }
}
