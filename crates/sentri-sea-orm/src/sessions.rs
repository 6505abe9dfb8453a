//! [`SessionStore`] for [`SeaOrmStore`].

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use sentri_core::model::{
    ActiveSession, NewSession, Rotation, Session, SessionId, TokenHash, UserId,
};
use sentri_core::store::{ROTATION_HISTORY, SessionStore, StoreError, StoreResult};

use crate::entity::{sessions, users};
use crate::error::map_db_err;
use crate::{SeaOrmStore, chrono_duration, micros, retry};

fn to_session(m: &sessions::Model) -> Session {
    Session {
        id: SessionId(m.id),
        user_id: UserId(m.user_id),
        user_agent: m.user_agent.clone(),
        ip: m.ip.clone(),
        created_at: m.created_at,
        last_active_at: m.last_active_at,
        expires_at: m.expires_at,
        amr: amr_from_column(m.amr.as_deref()),
    }
}

/// The `amr` column: the values joined by spaces. `NULL` is a session of a
/// release before the column, all opened by password; `""` is none.
fn amr_from_column(column: Option<&str>) -> Vec<String> {
    match column {
        None => vec!["pwd".to_owned()],
        Some(joined) => joined.split_whitespace().map(str::to_owned).collect(),
    }
}

fn amr_column(amr: &[String]) -> String {
    amr.join(" ")
}

/// The live session joined with its user and the user's roles.
///
/// This runs on every protected request in [`SessionCheck::Always`] mode, so
/// it is one fixed statement (the same SQL text every call, which the
/// driver keeps prepared), primary-key lookups on all three tables, only
/// the columns an [`ActiveSession`] needs (never the refresh hashes), and
/// one row per role; roles are sorted here rather than by the database.
///
/// [`SessionCheck::Always`]: sentri_core::SessionCheck::Always
pub(crate) async fn active_session(
    conn: &impl ConnectionTrait,
    id: SessionId,
    now: DateTime<Utc>,
) -> StoreResult<Option<ActiveSession>> {
    macro_rules! sql {
        ($where:literal) => {
            concat!(
                "SELECT s.user_id, s.user_agent, s.ip, s.created_at, s.last_active_at, ",
                "s.expires_at, s.amr, u.identifier, u.email_verified_at, r.role ",
                "FROM sentri_sessions s ",
                "JOIN sentri_users u ON u.id = s.user_id ",
                "LEFT JOIN sentri_user_roles r ON r.user_id = s.user_id ",
                $where
            )
        };
    }
    const PG: &str = sql!("WHERE s.id = $1 AND s.expires_at > $2");
    const OTHER: &str = sql!("WHERE s.id = ? AND s.expires_at > ?");
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => PG,
        _ => OTHER,
    };
    let statement = Statement::from_sql_and_values(backend, sql, [id.0.into(), now.into()]);
    let rows = conn.query_all_raw(statement).await.map_err(map_db_err)?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let session = Session {
        id,
        user_id: UserId(first.try_get_by_index(0).map_err(map_db_err)?),
        user_agent: first.try_get_by_index(1).map_err(map_db_err)?,
        ip: first.try_get_by_index(2).map_err(map_db_err)?,
        created_at: first.try_get_by_index(3).map_err(map_db_err)?,
        last_active_at: first.try_get_by_index(4).map_err(map_db_err)?,
        expires_at: first.try_get_by_index(5).map_err(map_db_err)?,
        amr: amr_from_column(
            first
                .try_get_by_index::<Option<String>>(6)
                .map_err(map_db_err)?
                .as_deref(),
        ),
    };
    let identifier: String = first.try_get_by_index(7).map_err(map_db_err)?;
    let email_verified_at: Option<DateTime<Utc>> = first.try_get_by_index(8).map_err(map_db_err)?;
    let mut roles = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(role) = row
            .try_get_by_index::<Option<String>>(9)
            .map_err(map_db_err)?
        {
            roles.push(role);
        }
    }
    roles.sort_unstable();
    roles.dedup();
    Ok(Some(ActiveSession {
        session,
        identifier,
        roles,
        email_verified_at,
    }))
}

#[async_trait]
impl SessionStore for SeaOrmStore {
    async fn create_session(&self, session: NewSession) -> StoreResult<Session> {
        let created_at = micros(session.created_at);
        let expires_at = micros(session.expires_at);
        if self.backend() == DbBackend::Postgres {
            // One statement, so one round trip and one commit: the INSERT
            // takes its user id from the UPDATE, so an unknown user inserts
            // nothing, and a conflicting id undoes the UPDATE with it.
            const SQL: &str = "WITH login AS (\
                UPDATE sentri_users SET last_login_at = $3 WHERE id = $2 RETURNING id) \
                INSERT INTO sentri_sessions (id, user_id, refresh_hash, user_agent, ip, \
                created_at, last_active_at, expires_at, amr) \
                SELECT $1, login.id, $4, $5, $6, $3, $3, $7, $8 FROM login";
            let res = self
                .db
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    SQL,
                    [
                        session.id.0.into(),
                        session.user_id.0.into(),
                        created_at.into(),
                        session.refresh_hash.as_bytes().to_vec().into(),
                        session.user_agent.clone().into(),
                        session.ip.clone().into(),
                        expires_at.into(),
                        amr_column(&session.amr).into(),
                    ],
                ))
                .await
                .map_err(map_db_err)?;
            if res.rows_affected() == 0 {
                return Err(StoreError::not_found());
            }
        } else {
            retry(|| async {
                let txn = self.begin().await?;
                let login = users::Entity::update_many()
                    .col_expr(users::Column::LastLoginAt, Expr::value(created_at))
                    .filter(users::Column::Id.eq(session.user_id.0))
                    .exec(&txn)
                    .await
                    .map_err(map_db_err)?;
                if login.rows_affected == 0 {
                    return Err(StoreError::not_found());
                }
                sessions::Entity::insert(sessions::ActiveModel {
                    id: Set(session.id.0),
                    user_id: Set(session.user_id.0),
                    refresh_hash: Set(session.refresh_hash.as_bytes().to_vec()),
                    previous_refresh_hash: Set(None),
                    rotated_at: Set(None),
                    refresh_history: Set(None),
                    user_agent: Set(session.user_agent.clone()),
                    ip: Set(session.ip.clone()),
                    amr: Set(Some(amr_column(&session.amr))),
                    created_at: Set(created_at),
                    last_active_at: Set(created_at),
                    expires_at: Set(expires_at),
                })
                .exec_without_returning(&txn)
                .await
                .map_err(map_db_err)?;
                sea_orm::TransactionSession::commit(txn)
                    .await
                    .map_err(map_db_err)
            })
            .await?;
        }
        Ok(Session {
            id: session.id,
            user_id: session.user_id,
            user_agent: session.user_agent,
            ip: session.ip,
            created_at,
            last_active_at: created_at,
            expires_at,
            amr: session.amr,
        })
    }

    async fn find_active_session(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ActiveSession>> {
        active_session(&self.db, id, now).await
    }

    async fn rotate_refresh(
        &self,
        id: SessionId,
        presented: &TokenHash,
        next: &TokenHash,
        now: DateTime<Utc>,
        idle_since: Option<DateTime<Utc>>,
    ) -> StoreResult<Rotation> {
        let now = micros(now);
        // Without an inactivity timeout every session qualifies; one
        // constant statement either way.
        let idle_since = micros(idle_since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH));
        // The single winner: a conditional update whose affected-row count
        // says whether `presented` was still current. The hash that was
        // previous joins the front of the history, cut to
        // ROTATION_HISTORY hashes. `refresh_history` is assigned first:
        // MySQL evaluates SET left to right with the new values.
        const PG: &str = "UPDATE sentri_sessions SET \
            refresh_history = substring(coalesce(previous_refresh_hash, ''::bytea) \
            || coalesce(refresh_history, ''::bytea) from 1 for $1), \
            previous_refresh_hash = $2, refresh_hash = $3, rotated_at = $4, last_active_at = $4 \
            WHERE id = $5 AND refresh_hash = $2 AND expires_at > $4 AND last_active_at >= $6";
        const MYSQL: &str = "UPDATE sentri_sessions SET \
            refresh_history = SUBSTRING(CONCAT(COALESCE(previous_refresh_hash, ''), \
            COALESCE(refresh_history, '')), 1, ?), \
            previous_refresh_hash = ?, refresh_hash = ?, rotated_at = ?, last_active_at = ? \
            WHERE id = ? AND refresh_hash = ? AND expires_at > ? AND last_active_at >= ?";
        // SQLite's `||` makes text of blobs; the cast makes it bytes again.
        const SQLITE: &str = "UPDATE sentri_sessions SET \
            refresh_history = substr(CAST(coalesce(previous_refresh_hash, x'') \
            || coalesce(refresh_history, x'') AS BLOB), 1, ?), \
            previous_refresh_hash = ?, refresh_hash = ?, rotated_at = ?, last_active_at = ? \
            WHERE id = ? AND refresh_hash = ? AND expires_at > ? AND last_active_at >= ?";
        let keep = (ROTATION_HISTORY * 32) as i32;
        let presented_bytes = presented.as_bytes().to_vec();
        let backend = self.backend();
        let statement = match backend {
            DbBackend::Postgres => Statement::from_sql_and_values(
                backend,
                PG,
                [
                    keep.into(),
                    presented_bytes.clone().into(),
                    next.as_bytes().to_vec().into(),
                    now.into(),
                    id.0.into(),
                    idle_since.into(),
                ],
            ),
            _ => Statement::from_sql_and_values(
                backend,
                if backend == DbBackend::MySql {
                    MYSQL
                } else {
                    SQLITE
                },
                [
                    keep.into(),
                    presented_bytes.clone().into(),
                    next.as_bytes().to_vec().into(),
                    now.into(),
                    now.into(),
                    id.0.into(),
                    presented_bytes.into(),
                    now.into(),
                    idle_since.into(),
                ],
            ),
        };
        let res = self.db.execute_raw(statement).await.map_err(map_db_err)?;
        if res.rows_affected() > 0 {
            return Ok(match active_session(&self.db, id, now).await? {
                Some(active) => Rotation::Rotated(active),
                // Deleted (logout, user removed) right after the rotation.
                None => Rotation::Missing,
            });
        }
        let row = sessions::Entity::find_by_id(id.0)
            .select_only()
            .column(sessions::Column::PreviousRefreshHash)
            .column(sessions::Column::RotatedAt)
            .column(sessions::Column::RefreshHistory)
            .filter(sessions::Column::ExpiresAt.gt(now))
            .filter(sessions::Column::LastActiveAt.gte(idle_since))
            .into_tuple::<(Option<Vec<u8>>, Option<DateTime<Utc>>, Option<Vec<u8>>)>()
            .one(&self.db)
            .await
            .map_err(map_db_err)?;
        let Some((previous, rotated_at, history)) = row else {
            return Ok(Rotation::Missing);
        };
        let matches =
            |bytes: &[u8]| TokenHash::from_slice(bytes).is_some_and(|h| h.ct_eq(presented));
        Ok(match (previous, rotated_at) {
            (Some(previous), Some(rotated_at)) if matches(&previous) => {
                Rotation::Stale { rotated_at }
            }
            // Every remembered hash is compared, so the time does not say which.
            _ if history
                .unwrap_or_default()
                .chunks(32)
                .fold(false, |found, h| found | matches(h)) =>
            {
                Rotation::Reused
            }
            _ => Rotation::Mismatch,
        })
    }

    async fn touch_session(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
        min_interval: Duration,
    ) -> StoreResult<bool> {
        let now = micros(now);
        let threshold = now
            .checked_sub_signed(chrono_duration(min_interval))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let res = sessions::Entity::update_many()
            .col_expr(sessions::Column::LastActiveAt, Expr::value(now))
            .filter(sessions::Column::Id.eq(id.0))
            .filter(sessions::Column::LastActiveAt.lt(threshold))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(res.rows_affected > 0)
    }

    async fn delete_session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        let Some(model) = sessions::Entity::find_by_id(id.0)
            .one(&self.db)
            .await
            .map_err(map_db_err)?
        else {
            return Ok(None);
        };
        let res = sessions::Entity::delete_by_id(id.0)
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        // Of concurrent deletions, only the one that removed the row reports it.
        Ok((res.rows_affected > 0).then(|| to_session(&model)))
    }

    async fn delete_session_by_refresh(
        &self,
        id: SessionId,
        presented: &TokenHash,
        previous_since: DateTime<Utc>,
    ) -> StoreResult<Option<Session>> {
        let Some(model) = sessions::Entity::find_by_id(id.0)
            .one(&self.db)
            .await
            .map_err(map_db_err)?
        else {
            return Ok(None);
        };
        let matches =
            |bytes: &[u8]| TokenHash::from_slice(bytes).is_some_and(|h| h.ct_eq(presented));
        let previous = model.previous_refresh_hash.as_deref().is_some_and(matches)
            & model.rotated_at.is_some_and(|at| at >= previous_since);
        if !(matches(&model.refresh_hash) | previous) {
            return Ok(None);
        }
        // The hash is checked again by the DELETE itself: a rotation
        // between the read and here makes it delete nothing.
        let hash = presented.as_bytes().to_vec();
        let res = sessions::Entity::delete_many()
            .filter(sessions::Column::Id.eq(id.0))
            .filter(
                Condition::any()
                    .add(sessions::Column::RefreshHash.eq(hash.clone()))
                    .add(
                        Condition::all()
                            .add(sessions::Column::PreviousRefreshHash.eq(hash))
                            .add(sessions::Column::RotatedAt.gte(micros(previous_since))),
                    ),
            )
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok((res.rows_affected > 0).then(|| to_session(&model)))
    }

    async fn delete_user_session(&self, user: UserId, id: SessionId) -> StoreResult<bool> {
        let res = sessions::Entity::delete_many()
            .filter(sessions::Column::Id.eq(id.0))
            .filter(sessions::Column::UserId.eq(user.0))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(res.rows_affected > 0)
    }

    async fn delete_user_sessions(&self, user: UserId) -> StoreResult<u64> {
        let res = sessions::Entity::delete_many()
            .filter(sessions::Column::UserId.eq(user.0))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(res.rows_affected)
    }

    async fn delete_user_sessions_except(&self, user: UserId, keep: SessionId) -> StoreResult<u64> {
        let res = sessions::Entity::delete_many()
            .filter(sessions::Column::UserId.eq(user.0))
            .filter(sessions::Column::Id.ne(keep.0))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(res.rows_affected)
    }

    async fn list_user_sessions(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Session>> {
        let models = sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user.0))
            .filter(sessions::Column::ExpiresAt.gt(now))
            .order_by_desc(sessions::Column::CreatedAt)
            .order_by_desc(sessions::Column::Id)
            .all(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(models.iter().map(to_session).collect())
    }

    async fn purge_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let res = sessions::Entity::delete_many()
            .filter(sessions::Column::ExpiresAt.lte(now))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(res.rows_affected)
    }
}
