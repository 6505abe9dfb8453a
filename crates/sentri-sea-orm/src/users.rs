//! [`UserStore`] for [`SeaOrmStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, JoinType, Order, Query, SelectStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, Iterable,
    QueryFilter, QuerySelect,
};
use sentri_core::model::{NewUser, PasswordHash, User, UserId, UserRecord};
use sentri_core::store::{StoreError, StoreResult, UserStore};
use uuid::Uuid;

use crate::entity::{user_roles, users};
use crate::error::map_db_err;
use crate::{SeaOrmStore, micros, retry};

/// `SELECT users.*, user_roles.role FROM users LEFT JOIN user_roles …`:
/// one indexed round trip for a user and its roles (one row per role).
fn select_user() -> SelectStatement {
    let mut q = Query::select();
    for col in users::Column::iter() {
        q.column((users::Entity, col));
    }
    q.column((user_roles::Entity, user_roles::Column::Role))
        .from(users::Entity)
        .join(
            JoinType::LeftJoin,
            user_roles::Entity,
            Expr::col((user_roles::Entity, user_roles::Column::UserId))
                .equals((users::Entity, users::Column::Id)),
        )
        .order_by((user_roles::Entity, user_roles::Column::Role), Order::Asc);
    q
}

async fn load_user(
    conn: &impl ConnectionTrait,
    filter: sea_orm::sea_query::SimpleExpr,
) -> StoreResult<Option<UserRecord>> {
    let mut q = select_user();
    q.and_where(filter);
    let rows = conn.query_all(&q).await.map_err(map_db_err)?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let model = users::Model::from_query_result(first, "").map_err(map_db_err)?;
    let mut roles = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(role) = row
            .try_get::<Option<String>>("", "role")
            .map_err(map_db_err)?
        {
            roles.push(role);
        }
    }
    Ok(Some(to_record(model, roles)))
}

async fn load_user_by_id(conn: &impl ConnectionTrait, id: Uuid) -> StoreResult<Option<UserRecord>> {
    load_user(conn, Expr::col((users::Entity, users::Column::Id)).eq(id)).await
}

async fn require_user(conn: &impl ConnectionTrait, id: Uuid) -> StoreResult<User> {
    load_user_by_id(conn, id)
        .await?
        .map(|r| r.user)
        .ok_or_else(StoreError::not_found)
}

async fn user_exists(conn: &impl ConnectionTrait, id: Uuid) -> StoreResult<bool> {
    let found = users::Entity::find_by_id(id)
        .select_only()
        .column(users::Column::Id)
        .into_tuple::<Uuid>()
        .one(conn)
        .await
        .map_err(map_db_err)?;
    Ok(found.is_some())
}

fn to_record(m: users::Model, mut roles: Vec<String>) -> UserRecord {
    roles.sort();
    roles.dedup();
    UserRecord {
        user: User {
            id: UserId(m.id),
            identifier: m.identifier,
            roles,
            name: m.name,
            email_verified_at: m.email_verified_at,
            last_login_at: m.last_login_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        },
        identifier_key: m.identifier_key,
        password_hash: PasswordHash::new(m.password_hash),
    }
}

fn sorted_roles(roles: &[String]) -> Vec<String> {
    let mut roles = roles.to_vec();
    roles.sort();
    roles.dedup();
    roles
}

/// Insert `roles` for `user`, ignoring the ones it already holds.
async fn insert_roles(
    conn: &impl ConnectionTrait,
    user: Uuid,
    roles: &[String],
) -> StoreResult<()> {
    if roles.is_empty() {
        return Ok(());
    }
    let rows = roles.iter().map(|role| user_roles::ActiveModel {
        user_id: Set(user),
        role: Set(role.clone()),
    });
    user_roles::Entity::insert_many(rows)
        .on_conflict_do_nothing()
        .exec_without_returning(conn)
        .await
        .map_err(map_db_err)?;
    Ok(())
}

/// Bump `updated_at`; this also takes the user's row lock, so concurrent role
/// changes of one user are serialised. `NotFound` when there is no such user.
async fn touch_user(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
    let res = users::Entity::update_many()
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(id))
        .exec(conn)
        .await
        .map_err(map_db_err)?;
    if res.rows_affected == 0 {
        return Err(StoreError::not_found());
    }
    Ok(())
}

#[async_trait]
impl UserStore for SeaOrmStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let created_at = micros(user.created_at);
        let roles = sorted_roles(&user.roles);
        let id = user.id.0;
        retry(|| async {
            let txn = self.begin().await?;
            users::Entity::insert(users::ActiveModel {
                id: Set(id),
                identifier: Set(user.identifier.clone()),
                identifier_key: Set(user.identifier_key.clone()),
                password_hash: Set(user.password_hash.as_str().to_owned()),
                name: Set(user.name.clone()),
                email_verified_at: Set(None),
                last_login_at: Set(None),
                created_at: Set(created_at),
                updated_at: Set(created_at),
            })
            .exec_without_returning(&txn)
            .await
            .map_err(map_db_err)?;
            insert_roles(&txn, id, &roles).await?;
            sea_orm::TransactionSession::commit(txn)
                .await
                .map_err(map_db_err)
        })
        .await?;
        Ok(User {
            id: user.id,
            identifier: user.identifier,
            roles,
            name: user.name,
            email_verified_at: None,
            last_login_at: None,
            created_at,
            updated_at: created_at,
        })
    }

    async fn find_user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        load_user_by_id(&self.db, id.0).await
    }

    async fn find_user_by_identifier(
        &self,
        identifier_key: &str,
    ) -> StoreResult<Option<UserRecord>> {
        load_user(
            &self.db,
            Expr::col((users::Entity, users::Column::IdentifierKey)).eq(identifier_key),
        )
        .await
    }

    async fn update_identifier(
        &self,
        id: UserId,
        identifier: &str,
        identifier_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<User> {
        // A new key is an address nobody verified: clear the verification in
        // the same statement. This assignment comes first because MySQL
        // evaluates SET left to right (later ones see the new key).
        let keep_verified = Expr::case(
            Expr::col(users::Column::IdentifierKey).eq(identifier_key),
            Expr::col(users::Column::EmailVerifiedAt),
        )
        .finally(Expr::value(Option::<DateTime<Utc>>::None));
        let res = users::Entity::update_many()
            .col_expr(users::Column::EmailVerifiedAt, keep_verified.into())
            .col_expr(users::Column::Identifier, Expr::value(identifier))
            .col_expr(users::Column::IdentifierKey, Expr::value(identifier_key))
            .col_expr(users::Column::UpdatedAt, Expr::value(micros(now)))
            .filter(users::Column::Id.eq(id.0))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        if res.rows_affected == 0 {
            return Err(StoreError::not_found());
        }
        require_user(&self.db, id.0).await
    }

    async fn replace_password_hash(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: &PasswordHash,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let res = users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(new.as_str()))
            .col_expr(users::Column::UpdatedAt, Expr::value(micros(now)))
            .filter(users::Column::Id.eq(id.0))
            .filter(users::Column::PasswordHash.eq(current.as_str()))
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        if res.rows_affected > 0 {
            return Ok(true);
        }
        if user_exists(&self.db, id.0).await? {
            Ok(false)
        } else {
            Err(StoreError::not_found())
        }
    }

    async fn add_roles(
        &self,
        id: UserId,
        roles: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<User> {
        let roles = sorted_roles(roles);
        let now = micros(now);
        retry(|| async {
            let txn = self.begin().await?;
            touch_user(&txn, id.0, now).await?;
            insert_roles(&txn, id.0, &roles).await?;
            let user = require_user(&txn, id.0).await?;
            sea_orm::TransactionSession::commit(txn)
                .await
                .map_err(map_db_err)?;
            Ok(user)
        })
        .await
    }

    async fn remove_roles(
        &self,
        id: UserId,
        roles: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<User> {
        let roles = sorted_roles(roles);
        let now = micros(now);
        retry(|| async {
            let txn = self.begin().await?;
            touch_user(&txn, id.0, now).await?;
            if !roles.is_empty() {
                user_roles::Entity::delete_many()
                    .filter(user_roles::Column::UserId.eq(id.0))
                    .filter(user_roles::Column::Role.is_in(roles.iter().cloned()))
                    .exec(&txn)
                    .await
                    .map_err(map_db_err)?;
            }
            let user = require_user(&txn, id.0).await?;
            sea_orm::TransactionSession::commit(txn)
                .await
                .map_err(map_db_err)?;
            Ok(user)
        })
        .await
    }

    async fn set_email_verified(&self, id: UserId, at: DateTime<Utc>) -> StoreResult<User> {
        let at = micros(at);
        users::Entity::update_many()
            .col_expr(users::Column::EmailVerifiedAt, Expr::value(at))
            .col_expr(users::Column::UpdatedAt, Expr::value(at))
            .filter(users::Column::Id.eq(id.0))
            .filter(users::Column::EmailVerifiedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(map_db_err)?;
        require_user(&self.db, id.0).await
    }

    async fn any_user_with_role(&self, role: &str) -> StoreResult<bool> {
        let found = user_roles::Entity::find()
            .select_only()
            .column(user_roles::Column::UserId)
            .filter(user_roles::Column::Role.eq(role))
            .limit(1)
            .into_tuple::<Uuid>()
            .one(&self.db)
            .await
            .map_err(map_db_err)?;
        Ok(found.is_some())
    }
}
