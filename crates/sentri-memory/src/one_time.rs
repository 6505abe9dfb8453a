//! [`OneTimeTokenStore`] in memory.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sentri_core::model::{TokenHash, UserId};
use sentri_core::one_time::{OneTimeRecord, TokenPurpose};
use sentri_core::store::{OneTimeTokenStore, StoreError, StoreResult};

use crate::MemoryStore;

/// The records by purpose and hash, and an index of their hashes by user
/// and purpose (what `delete_user_tokens` reads). Both change under one
/// lock, so they always agree.
#[derive(Default)]
pub(crate) struct OneTimeTokens {
    records: HashMap<(TokenPurpose, TokenHash), OneTimeRecord>,
    by_user: HashMap<(UserId, TokenPurpose), HashSet<TokenHash>>,
}

impl OneTimeTokens {
    /// Remove one record and its index entry.
    fn remove(&mut self, purpose: &TokenPurpose, hash: &TokenHash) -> Option<OneTimeRecord> {
        let record = self.records.remove(&(purpose.clone(), *hash))?;
        let key = (record.user_id, record.purpose.clone());
        if let Some(hashes) = self.by_user.get_mut(&key) {
            hashes.remove(hash);
            if hashes.is_empty() {
                self.by_user.remove(&key);
            }
        }
        Some(record)
    }
}

#[async_trait]
impl OneTimeTokenStore for MemoryStore {
    async fn insert_token(&self, record: OneTimeRecord) -> StoreResult<()> {
        let mut tokens = self.inner.one_time.lock();
        let key = (record.purpose.clone(), record.token_hash);
        if tokens.records.contains_key(&key) {
            return Err(StoreError::conflict());
        }
        tokens
            .by_user
            .entry((record.user_id, record.purpose.clone()))
            .or_default()
            .insert(record.token_hash);
        tokens.records.insert(key, record);
        Ok(())
    }

    async fn consume_token(
        &self,
        purpose: &TokenPurpose,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<OneTimeRecord>> {
        // The check and the removal under one lock: one winner.
        let mut tokens = self.inner.one_time.lock();
        let live = tokens
            .records
            .get(&(purpose.clone(), *hash))
            .is_some_and(|r| !r.is_expired_at(now));
        Ok(if live {
            tokens.remove(purpose, hash)
        } else {
            None
        })
    }

    async fn delete_user_tokens(&self, user: UserId, purpose: &TokenPurpose) -> StoreResult<u64> {
        let mut tokens = self.inner.one_time.lock();
        let Some(hashes) = tokens.by_user.remove(&(user, purpose.clone())) else {
            return Ok(0);
        };
        for hash in &hashes {
            tokens.records.remove(&(purpose.clone(), *hash));
        }
        Ok(hashes.len() as u64)
    }

    async fn purge_expired_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut tokens = self.inner.one_time.lock();
        let expired: Vec<(TokenPurpose, TokenHash)> = tokens
            .records
            .iter()
            .filter(|(_, r)| r.is_expired_at(now))
            .map(|(key, _)| key.clone())
            .collect();
        for (purpose, hash) in &expired {
            tokens.remove(purpose, hash);
        }
        Ok(expired.len() as u64)
    }
}
