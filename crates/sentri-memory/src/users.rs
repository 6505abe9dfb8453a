//! [`UserStore`] in memory.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sentri_core::model::{NewUser, PasswordHash, User, UserId, UserRecord};
use sentri_core::store::{StoreError, StoreResult, UserStore};

use crate::MemoryStore;

/// Users by id, with a unique index by normalised identifier.
#[derive(Default)]
pub(crate) struct Users {
    by_id: HashMap<UserId, UserRecord>,
    by_key: HashMap<String, UserId>,
}

impl Users {
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn get(&self, id: &UserId) -> Option<&User> {
        self.by_id.get(id).map(|r| &r.user)
    }

    pub(crate) fn get_mut(&mut self, id: &UserId) -> StoreResult<&mut User> {
        self.by_id
            .get_mut(id)
            .map(|r| &mut r.user)
            .ok_or_else(StoreError::not_found)
    }
}

/// Sort and deduplicate `roles` in place.
fn normalise(roles: &mut Vec<String>) {
    roles.sort_unstable();
    roles.dedup();
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        let mut roles = new.roles;
        normalise(&mut roles);
        let user = User {
            id: new.id,
            identifier: new.identifier,
            roles,
            name: new.name,
            email_verified_at: None,
            last_login_at: None,
            created_at: new.created_at,
            updated_at: new.created_at,
        };
        let mut users = self.inner.users.write();
        if users.by_key.contains_key(&new.identifier_key) || users.by_id.contains_key(&new.id) {
            return Err(StoreError::conflict());
        }
        users.by_key.insert(new.identifier_key.clone(), new.id);
        users.by_id.insert(
            new.id,
            UserRecord {
                user: user.clone(),
                identifier_key: new.identifier_key,
                password_hash: new.password_hash,
            },
        );
        Ok(user)
    }

    async fn find_user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        Ok(self.inner.users.read().by_id.get(&id).cloned())
    }

    async fn find_user_by_identifier(
        &self,
        identifier_key: &str,
    ) -> StoreResult<Option<UserRecord>> {
        let users = self.inner.users.read();
        Ok(users
            .by_key
            .get(identifier_key)
            .and_then(|id| users.by_id.get(id))
            .cloned())
    }

    async fn update_identifier(
        &self,
        id: UserId,
        identifier: &str,
        identifier_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<User> {
        let mut guard = self.inner.users.write();
        let users = &mut *guard;
        let record = users.by_id.get_mut(&id).ok_or_else(StoreError::not_found)?;
        match users.by_key.get(identifier_key) {
            Some(owner) if *owner != id => return Err(StoreError::conflict()),
            Some(_) => {}
            None => {
                users.by_key.remove(&record.identifier_key);
                users.by_key.insert(identifier_key.to_owned(), id);
                record.identifier_key = identifier_key.to_owned();
                // Nobody verified the new address.
                record.user.email_verified_at = None;
            }
        }
        record.user.identifier = identifier.to_owned();
        record.user.updated_at = now;
        Ok(record.user.clone())
    }

    async fn replace_password_hash(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: &PasswordHash,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut users = self.inner.users.write();
        let record = users.by_id.get_mut(&id).ok_or_else(StoreError::not_found)?;
        if record.password_hash != *current {
            return Ok(false);
        }
        record.password_hash = new.clone();
        record.user.updated_at = now;
        Ok(true)
    }

    async fn add_roles(
        &self,
        id: UserId,
        roles: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<User> {
        let mut users = self.inner.users.write();
        let user = users.get_mut(&id)?;
        user.roles.extend(roles.iter().cloned());
        normalise(&mut user.roles);
        user.updated_at = now;
        Ok(user.clone())
    }

    async fn remove_roles(
        &self,
        id: UserId,
        roles: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<User> {
        let mut users = self.inner.users.write();
        let user = users.get_mut(&id)?;
        user.roles.retain(|r| !roles.contains(r));
        user.updated_at = now;
        Ok(user.clone())
    }

    async fn set_email_verified(&self, id: UserId, at: DateTime<Utc>) -> StoreResult<User> {
        let mut users = self.inner.users.write();
        let user = users.get_mut(&id)?;
        if user.email_verified_at.is_none() {
            user.email_verified_at = Some(at);
            user.updated_at = at;
        }
        Ok(user.clone())
    }

    async fn any_user_with_role(&self, role: &str) -> StoreResult<bool> {
        Ok(self
            .inner
            .users
            .read()
            .by_id
            .values()
            .any(|r| r.user.has_role(role)))
    }
}
