//! [`KeyStore`] for [`SeaOrmStore`].
//!
//! At most one active key per algorithm is a database constraint: the
//! `active_algorithm` column holds the algorithm while the key is active and
//! `NULL` once it is retired, under a unique index. So of several instances
//! inserting their freshly generated key at once, exactly one insert
//! succeeds, and the others read the winner.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, Statement,
};
use sentri_core::model::KeyRecord;
use sentri_core::store::{KeyStore, StoreErrorKind, StoreResult};
use zeroize::Zeroizing;

use crate::entity::keys;
use crate::error::map_db_err;
use crate::{SeaOrmStore, micros, retry};

fn to_record(m: keys::Model) -> KeyRecord {
    KeyRecord {
        kid: m.kid,
        algorithm: m.algorithm,
        private_key_pem: Zeroizing::new(m.private_key_pem),
        created_at: m.created_at,
        retired_at: m.retired_at,
    }
}

fn active_model(key: &KeyRecord) -> keys::ActiveModel {
    keys::ActiveModel {
        kid: Set(key.kid.clone()),
        algorithm: Set(key.algorithm.clone()),
        active_algorithm: Set(Some(key.algorithm.clone())),
        private_key_pem: Set(key.private_key_pem.as_str().to_owned()),
        created_at: Set(micros(key.created_at)),
        retired_at: Set(None),
    }
}

async fn active_key(
    conn: &impl ConnectionTrait,
    algorithm: &str,
) -> StoreResult<Option<KeyRecord>> {
    let model = keys::Entity::find()
        .filter(keys::Column::ActiveAlgorithm.eq(algorithm))
        .one(conn)
        .await
        .map_err(map_db_err)?;
    Ok(model.map(to_record))
}

#[async_trait]
impl KeyStore for SeaOrmStore {
    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>> {
        let models = keys::Entity::find()
            .order_by_asc(keys::Column::CreatedAt)
            .order_by_asc(keys::Column::Kid)
            .all(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(models.into_iter().map(to_record).collect())
    }

    async fn insert_key_if_none(&self, key: KeyRecord) -> StoreResult<KeyRecord> {
        if let Some(active) = active_key(&self.db, &key.algorithm).await? {
            return Ok(active);
        }
        match keys::Entity::insert(active_model(&key))
            .exec_without_returning(&self.db)
            .await
            .map_err(map_db_err)
        {
            Ok(_) => Ok(KeyRecord {
                created_at: micros(key.created_at),
                retired_at: None,
                ..key
            }),
            // Another instance won the race: use its key.
            Err(e) if e.kind() == StoreErrorKind::Conflict => {
                active_key(&self.db, &key.algorithm).await?.ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn rotate_key(&self, key: KeyRecord, now: DateTime<Utc>) -> StoreResult<()> {
        let now = micros(now);
        let mut attempts = 0u64;
        loop {
            attempts += 1;
            let result = retry(|| async {
                let txn = self.begin().await?;
                if self.backend() == DbBackend::Postgres {
                    // Serialise rotations of one algorithm (SQLite's
                    // `BEGIN IMMEDIATE` already does; MySQL retries).
                    txn.execute_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                        [format!("sentri_keys:{}", key.algorithm).into()],
                    ))
                    .await
                    .map_err(map_db_err)?;
                }
                keys::Entity::update_many()
                    .col_expr(keys::Column::RetiredAt, Expr::value(now))
                    .col_expr(
                        keys::Column::ActiveAlgorithm,
                        Expr::value(Option::<String>::None),
                    )
                    .filter(keys::Column::ActiveAlgorithm.eq(key.algorithm.as_str()))
                    .exec(&txn)
                    .await
                    .map_err(map_db_err)?;
                keys::Entity::insert(active_model(&key))
                    .exec_without_returning(&txn)
                    .await
                    .map_err(map_db_err)?;
                txn.commit().await.map_err(map_db_err)
            })
            .await;
            match result {
                // A concurrent rotation inserted its key after our update:
                // run again, retiring that one.
                Err(e) if e.kind() == StoreErrorKind::Conflict && attempts < 16 => {
                    if keys::Entity::find_by_id(key.kid.as_str())
                        .one(&self.db)
                        .await
                        .map_err(map_db_err)?
                        .is_some()
                    {
                        return Err(e);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(2 * attempts)).await;
                }
                // MySQL: concurrent rotations can deadlock on the unique
                // index's gap locks even after the transaction retries;
                // the victim was rolled back, so running again is safe.
                // Jittered by the (random) kid so racers spread out.
                Err(e)
                    if e.kind() == StoreErrorKind::Unavailable
                        && self.backend() == DbBackend::MySql
                        && attempts < 16 =>
                {
                    let jitter = key
                        .kid
                        .bytes()
                        .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b))
                        % 7;
                    tokio::time::sleep(std::time::Duration::from_millis(
                        (jitter + 1) * 3 * attempts,
                    ))
                    .await;
                }
                other => return other,
            }
        }
    }

    async fn delete_keys_retired_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let res = keys::Entity::delete_many()
            .filter(keys::Column::RetiredAt.is_not_null())
            .filter(keys::Column::RetiredAt.lt(before))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(res.rows_affected)
    }

    async fn replace_private_key(&self, kid: &str, current: &str, new: &str) -> StoreResult<bool> {
        // One conditional UPDATE: the row changes only while it still holds
        // `current`, so of concurrent replacements exactly one matches.
        let res = keys::Entity::update_many()
            .col_expr(keys::Column::PrivateKeyPem, Expr::value(new))
            .filter(keys::Column::Kid.eq(kid))
            .filter(keys::Column::PrivateKeyPem.eq(current))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(res.rows_affected == 1)
    }
}
