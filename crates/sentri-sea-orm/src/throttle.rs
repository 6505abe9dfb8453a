//! [`ThrottleStore`] for [`SeaOrmStore`]: one row per attempt in
//! `sentri_throttle`, indexed by `(key, at)`; old rows are pruned as new
//! ones arrive and purged by `expires_at`.
//!
//! A reservation is one transaction on every backend, serialised per key
//! by the key's row in `sentri_throttle_keys`:
//!
//! 1. `INSERT … ON CONFLICT (key) DO UPDATE SET expires_at = …` (`ON
//!    DUPLICATE KEY UPDATE` on MySQL) of the key's row (its `expires_at`
//!    only tells the purge when the lock row may go). Inserting or updating it takes its row lock
//!    (PostgreSQL, InnoDB) until the transaction ends, so concurrent
//!    reservations of one key run one after the other; on SQLite the
//!    transaction is `BEGIN IMMEDIATE`, which holds the database's write
//!    lock throughout.
//! 2. Count the key's attempts in the window, with the lock held. On
//!    PostgreSQL (read committed) the statement sees everything the previous
//!    holder committed; on MySQL the read is a locking read (`FOR UPDATE`),
//!    which reads the latest committed rows whatever the snapshot.
//! 3. Below the limit: insert the attempt (and prune the key's rows that
//!    left the window). Commit.
//!
//! So no two reservations of a key ever count at the same time, and none
//! can overshoot the limit. MariaDB has no `UPDATE … RETURNING`, and a
//! single statement cannot see rows a concurrent statement committed in
//! PostgreSQL's read committed mode, hence the lock row rather than one
//! statement. A deadlock or serialisation failure is retried (up to three
//! times in all).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DbBackend, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use sentri_core::store::{AttemptId, Reservation, StoreResult, ThrottleStore};
use uuid::Uuid;

use crate::entity::{throttle, throttle_key};
use crate::error::map_db_err;
use crate::{SeaOrmStore, chrono_duration, micros, retry};

fn window_start(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    now.checked_sub_signed(chrono_duration(window))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn window_end(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    // Far enough for any window, and representable by every backend.
    const YEAR_9000: i64 = 221_845_392_000;
    let max = DateTime::from_timestamp(YEAR_9000, 0).unwrap_or(DateTime::<Utc>::MAX_UTC);
    now.checked_add_signed(chrono_duration(window))
        .unwrap_or(max)
        .min(max)
}

/// Rows written before `expires_at` existed hold no expiry; they came from
/// login windows, at most one day long.
const LEGACY_MAX_WINDOW: Duration = Duration::from_secs(86_400);

#[async_trait]
impl ThrottleStore for SeaOrmStore {
    async fn reserve(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
        limit: u32,
    ) -> StoreResult<Reservation> {
        let now = micros(now);
        let start = window_start(now, window);
        let expires = micros(window_end(now, window));
        let mysql = self.backend() == DbBackend::MySql;
        retry(|| async {
            let txn = self.begin().await?;
            // 1. The key's row, locked until the end of the transaction.
            throttle_key::Entity::insert(throttle_key::ActiveModel {
                key: Set(key.to_owned()),
                expires_at: Set(expires),
            })
            .on_conflict(
                OnConflict::column(throttle_key::Column::Key)
                    .update_column(throttle_key::Column::ExpiresAt)
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(map_db_err)?;
            // 2. The attempts in the window (later than `now` counts too:
            // another instance's clock may run ahead).
            let mut counted = throttle::Entity::find()
                .select_only()
                .column(throttle::Column::At)
                .filter(throttle::Column::Key.eq(key))
                .filter(throttle::Column::At.gt(start))
                .order_by_asc(throttle::Column::At)
                .order_by_asc(throttle::Column::Id);
            if mysql {
                counted = counted.lock_exclusive();
            }
            let counted: Vec<DateTime<Utc>> =
                counted.into_tuple().all(&txn).await.map_err(map_db_err)?;
            let limit = limit as usize;
            if counted.len() >= limit {
                let retry_at = match counted.get(counted.len() - limit) {
                    Some(pivot) => window_end(*pivot, window),
                    None => expires,
                };
                sea_orm::TransactionSession::rollback(txn)
                    .await
                    .map_err(map_db_err)?;
                return Ok(Reservation::Refused { retry_at });
            }
            // 3. Record the attempt; forget what left the window.
            let id = Uuid::now_v7();
            throttle::Entity::insert(throttle::ActiveModel {
                id: Set(id),
                key: Set(key.to_owned()),
                at: Set(now),
                expires_at: Set(Some(expires)),
            })
            .exec_without_returning(&txn)
            .await
            .map_err(map_db_err)?;
            throttle::Entity::delete_many()
                .filter(throttle::Column::Key.eq(key))
                .filter(throttle::Column::At.lte(start))
                .exec(&txn)
                .await
                .map_err(map_db_err)?;
            sea_orm::TransactionSession::commit(txn)
                .await
                .map_err(map_db_err)?;
            Ok(Reservation::Admitted {
                id: AttemptId::new(id.to_string()),
            })
        })
        .await
    }

    async fn refund(&self, key: &str, id: &AttemptId) -> StoreResult<()> {
        // An id this store never made names nothing.
        let Ok(id) = Uuid::parse_str(id.as_str()) else {
            return Ok(());
        };
        throttle::Entity::delete_many()
            .filter(throttle::Column::Id.eq(id))
            .filter(throttle::Column::Key.eq(key))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let now = micros(now);
        let attempts = throttle::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(throttle::Column::ExpiresAt.lte(now))
                    .add(
                        Condition::all()
                            .add(throttle::Column::ExpiresAt.is_null())
                            .add(throttle::Column::At.lte(window_start(now, LEGACY_MAX_WINDOW))),
                    ),
            )
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        // A key row is only a lock; one whose attempts all expired goes too
        // (a reservation holding it makes the delete wait, and then its
        // later `expires_at` keeps it).
        throttle_key::Entity::delete_many()
            .filter(throttle_key::Column::ExpiresAt.lte(now))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(attempts.rows_affected)
    }

    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
        keep: u32,
    ) -> StoreResult<()> {
        let now = micros(now);
        throttle::Entity::insert(throttle::ActiveModel {
            id: Set(Uuid::now_v7()),
            key: Set(key.to_owned()),
            at: Set(now),
            expires_at: Set(Some(micros(window_end(now, window)))),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(map_db_err)?;
        // Pruning: failures outside the window, then all but the `keep`
        // newest. Not atomic with the insert, and need not be: it only
        // forgets what the trait allows to forget.
        throttle::Entity::delete_many()
            .filter(throttle::Column::Key.eq(key))
            .filter(throttle::Column::At.lte(window_start(now, window)))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        let count = throttle::Entity::find()
            .filter(throttle::Column::Key.eq(key))
            .count(&self.db)
            .await
            .map_err(map_db_err)?;
        if keep > 0 && count > u64::from(keep) {
            let oldest_kept = throttle::Entity::find()
                .select_only()
                .column(throttle::Column::At)
                .filter(throttle::Column::Key.eq(key))
                .order_by_desc(throttle::Column::At)
                .offset(u64::from(keep) - 1)
                .limit(1)
                .into_tuple::<DateTime<Utc>>()
                .one(&self.db)
                .await
                .map_err(map_db_err)?;
            if let Some(oldest_kept) = oldest_kept {
                throttle::Entity::delete_many()
                    .filter(throttle::Column::Key.eq(key))
                    .filter(throttle::Column::At.lt(oldest_kept))
                    .exec(&self.db)
                    .await
                    .map_err(map_db_err)?;
            }
        }
        Ok(())
    }

    async fn recent_failures(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        throttle::Entity::find()
            .select_only()
            .column(throttle::Column::At)
            .filter(throttle::Column::Key.eq(key))
            .filter(throttle::Column::At.gt(window_start(now, window)))
            .filter(throttle::Column::At.lte(now))
            .order_by_asc(throttle::Column::At)
            .order_by_asc(throttle::Column::Id)
            .into_tuple::<DateTime<Utc>>()
            .all(&self.db)
            .await
            .map_err(map_db_err)
    }

    async fn clear_failures(&self, key: &str) -> StoreResult<()> {
        throttle::Entity::delete_many()
            .filter(throttle::Column::Key.eq(key))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(())
    }
}
