//! [`ThrottleStore`] for [`SeaOrmStore`]: one row per failure, indexed by
//! `(key, at)`; old rows are pruned as new ones arrive.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use sentri_core::store::{StoreResult, ThrottleStore};
use uuid::Uuid;

use crate::entity::throttle;
use crate::error::map_db_err;
use crate::{SeaOrmStore, chrono_duration, micros};

fn window_start(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    now.checked_sub_signed(chrono_duration(window))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[async_trait]
impl ThrottleStore for SeaOrmStore {
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
