//! [`ThrottleStore`] for [`SeaOrmStore`]: one row per attempt in
//! `sentri_throttle`, indexed by `(key, at)`; old rows are pruned as new
//! ones arrive and purged by `expires_at`.
//!
//! A reservation ([`ThrottleStore::reserve_all`], every key of a login at
//! once) is serialised per key by the key's row in `sentri_throttle_keys`:
//!
//! 1. `INSERT … ON CONFLICT (key) DO UPDATE SET expires_at = …` (`ON
//!    DUPLICATE KEY UPDATE` on MySQL) of every key's row, in key order (so
//!    two reservations never wait on each other in a circle; its
//!    `expires_at` only tells the purge when the lock row may go).
//!    Inserting or updating a row takes its row lock (PostgreSQL, InnoDB)
//!    until the transaction ends, so concurrent reservations of one key run
//!    one after the other; on SQLite the transaction is `BEGIN IMMEDIATE`,
//!    which holds the database's write lock throughout.
//! 2. Count each key's attempts in its window, with the locks held.
//! 3. When every key has room: insert one attempt under each (and prune the
//!    rows that left the window). Commit.
//!
//! So no two reservations of a key ever count at the same time, and none
//! can overshoot the limit.
//!
//! On PostgreSQL the three steps are one call of the function
//! `sentri_throttle_reserve` (one statement, one round trip, its own
//! transaction): each statement of a `VOLATILE` PL/pgSQL function takes a
//! fresh snapshot, so the count sees what the previous holder of the lock
//! committed, which the sub-statements of one plain SQL statement (a CTE)
//! would not in read committed mode. The throttle tables are `UNLOGGED` on
//! PostgreSQL (migration `m20261204_000010_throttle_unlogged`): a
//! reservation's commit writes no WAL and waits for no disk flush; a crash
//! of the database server empties them, which only restarts the windows.
//! On MySQL (no `UPDATE … RETURNING`, no function returning rows through
//! the driver) and SQLite it is one transaction of five statements at most,
//! the count being a locking read (`FOR UPDATE`) on MySQL, which reads the
//! latest committed rows whatever the snapshot. A deadlock or serialisation
//! failure is retried (up to three times in all).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use sentri_core::store::{
    AttemptId, Forget, Limit, Reservations, StoreError, StoreResult, ThrottleStore,
};
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

/// The JSON of the limits for `sentri_throttle_reserve`: per key, its
/// position `n`, the key `k`, the window's start `s` (attempts at or before
/// it are out), the attempt's expiry `e`, the limit `l` and the new
/// attempt's id `i`.
fn pg_limits(limits: &[Limit<'_>], now: DateTime<Utc>, ids: &[Uuid]) -> String {
    let rows: Vec<serde_json::Value> = limits
        .iter()
        .zip(ids)
        .enumerate()
        .map(|(n, (l, id))| {
            serde_json::json!({
                "n": n,
                "k": l.key,
                "s": window_start(now, l.window).to_rfc3339_opts(SecondsFormat::Micros, true),
                "e": micros(window_end(now, l.window)).to_rfc3339_opts(SecondsFormat::Micros, true),
                "l": l.limit,
                "i": id.to_string(),
            })
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// `retry_at` of a refusal by `limit`, from its pivot (the attempt that
/// must leave the window for one more to fit; none for a limit of 0).
fn retry_at(pivot: Option<DateTime<Utc>>, now: DateTime<Utc>, limit: &Limit<'_>) -> DateTime<Utc> {
    window_end(pivot.unwrap_or(now), limit.window)
}

impl SeaOrmStore {
    /// [`ThrottleStore::reserve_all`] on PostgreSQL: one function call.
    async fn reserve_all_pg(
        &self,
        limits: &[Limit<'_>],
        now: DateTime<Utc>,
        ids: &[Uuid],
    ) -> StoreResult<Option<(usize, Option<DateTime<Utc>>)>> {
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT refused, pivot FROM sentri_throttle_reserve($1::jsonb, $2)",
            [pg_limits(limits, now, ids).into(), now.into()],
        );
        let row = self.db.query_one_raw(statement).await.map_err(map_db_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let index: i32 = row.try_get_by_index(0).map_err(map_db_err)?;
        let pivot: Option<DateTime<Utc>> = row.try_get_by_index(1).map_err(map_db_err)?;
        let index = usize::try_from(index)
            .ok()
            .filter(|i| *i < limits.len())
            .ok_or_else(|| StoreError::other("sentri_throttle_reserve named no such key"))?;
        Ok(Some((index, pivot)))
    }

    /// [`ThrottleStore::reserve_all`] as one transaction (MySQL, SQLite).
    async fn reserve_all_txn(
        &self,
        limits: &[Limit<'_>],
        now: DateTime<Utc>,
        ids: &[Uuid],
    ) -> StoreResult<Option<(usize, Option<DateTime<Utc>>)>> {
        let txn = self.begin().await?;
        // 1. Every key's row, locked until the end of the transaction, in
        // key order.
        let mut rows: Vec<throttle_key::ActiveModel> = limits
            .iter()
            .map(|l| throttle_key::ActiveModel {
                key: Set(l.key.to_owned()),
                expires_at: Set(micros(window_end(now, l.window))),
            })
            .collect();
        rows.sort_by(|a, b| a.key.as_ref().cmp(b.key.as_ref()));
        throttle_key::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(throttle_key::Column::Key)
                    .update_column(throttle_key::Column::ExpiresAt)
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(map_db_err)?;
        // 2. Every attempt of these keys, the locks held (later than `now`
        // counts too: another instance's clock may run ahead).
        let mut counted = throttle::Entity::find()
            .select_only()
            .column(throttle::Column::Id)
            .column(throttle::Column::Key)
            .column(throttle::Column::At)
            .filter(throttle::Column::Key.is_in(limits.iter().map(|l| l.key)))
            .order_by_asc(throttle::Column::At)
            .order_by_asc(throttle::Column::Id);
        if self.backend() == DbBackend::MySql {
            counted = counted.lock_exclusive();
        }
        let counted: Vec<(Uuid, String, DateTime<Utc>)> =
            counted.into_tuple().all(&txn).await.map_err(map_db_err)?;
        let mut stale = Vec::new();
        for (index, l) in limits.iter().enumerate() {
            let start = window_start(now, l.window);
            let mut within = Vec::new();
            for (id, key, at) in &counted {
                if key == l.key {
                    if *at > start {
                        within.push(*at);
                    } else {
                        stale.push(*id);
                    }
                }
            }
            let limit = l.limit as usize;
            if within.len() >= limit {
                let pivot = within.get(within.len() - limit).copied();
                sea_orm::TransactionSession::rollback(txn)
                    .await
                    .map_err(map_db_err)?;
                return Ok(Some((index, pivot)));
            }
        }
        // 3. Record the attempts; forget what left the window.
        let attempts = limits.iter().zip(ids).map(|(l, id)| throttle::ActiveModel {
            id: Set(*id),
            key: Set(l.key.to_owned()),
            at: Set(now),
            expires_at: Set(Some(micros(window_end(now, l.window)))),
        });
        throttle::Entity::insert_many(attempts)
            .exec_without_returning(&txn)
            .await
            .map_err(map_db_err)?;
        if !stale.is_empty() {
            throttle::Entity::delete_many()
                .filter(throttle::Column::Id.is_in(stale))
                .exec(&txn)
                .await
                .map_err(map_db_err)?;
        }
        sea_orm::TransactionSession::commit(txn)
            .await
            .map_err(map_db_err)?;
        Ok(None)
    }
}

#[async_trait]
impl ThrottleStore for SeaOrmStore {
    async fn reserve_all(
        &self,
        limits: &[Limit<'_>],
        now: DateTime<Utc>,
    ) -> StoreResult<Reservations> {
        if limits.is_empty() {
            return Ok(Reservations::Admitted { ids: Vec::new() });
        }
        let now = micros(now);
        let ids: Vec<Uuid> = limits.iter().map(|_| Uuid::now_v7()).collect();
        let refused = retry(|| async {
            if self.backend() == DbBackend::Postgres {
                self.reserve_all_pg(limits, now, &ids).await
            } else {
                self.reserve_all_txn(limits, now, &ids).await
            }
        })
        .await?;
        Ok(match refused {
            None => Reservations::Admitted {
                ids: ids
                    .iter()
                    .map(|id| AttemptId::new(id.to_string()))
                    .collect(),
            },
            Some((index, pivot)) => Reservations::Refused {
                index,
                retry_at: retry_at(pivot, now, &limits[index]),
            },
        })
    }

    async fn forget(&self, items: &[Forget<'_>]) -> StoreResult<()> {
        let mut any = Condition::any();
        for item in items {
            any = match *item {
                Forget::Key(key) => any.add(throttle::Column::Key.eq(key)),
                // An id this store never made names nothing.
                Forget::Attempt { key, id } => match Uuid::parse_str(id.as_str()) {
                    Ok(id) => any.add(
                        Condition::all()
                            .add(throttle::Column::Id.eq(id))
                            .add(throttle::Column::Key.eq(key)),
                    ),
                    Err(_) => any,
                },
            };
        }
        if any.is_empty() {
            return Ok(());
        }
        throttle::Entity::delete_many()
            .filter(any)
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(())
    }

    async fn refund(&self, key: &str, id: &AttemptId) -> StoreResult<()> {
        self.forget(&[Forget::Attempt { key, id }]).await
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
        self.forget(&[Forget::Key(key)]).await
    }
}
