//! [`KeyStore`] in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sentri_core::model::KeyRecord;
use sentri_core::store::{KeyStore, StoreError, StoreResult};

use crate::MemoryStore;

/// Every key, in insertion order.
#[derive(Default)]
pub(crate) struct Keys {
    keys: Vec<KeyRecord>,
}

impl Keys {
    fn active(&self, algorithm: &str) -> Option<&KeyRecord> {
        self.keys
            .iter()
            .find(|k| k.retired_at.is_none() && k.algorithm == algorithm)
    }

    fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid == kid)
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>> {
        let mut keys = self.inner.keys.lock().keys.clone();
        // Stable: keys created at the same time stay in insertion order.
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    async fn insert_key_if_none(&self, mut key: KeyRecord) -> StoreResult<KeyRecord> {
        let mut keys = self.inner.keys.lock();
        if let Some(active) = keys.active(&key.algorithm) {
            return Ok(active.clone());
        }
        if keys.has_kid(&key.kid) {
            return Err(StoreError::conflict());
        }
        key.retired_at = None;
        keys.keys.push(key.clone());
        Ok(key)
    }

    async fn rotate_key(&self, mut key: KeyRecord, now: DateTime<Utc>) -> StoreResult<()> {
        let mut keys = self.inner.keys.lock();
        if keys.has_kid(&key.kid) {
            return Err(StoreError::conflict());
        }
        for old in keys
            .keys
            .iter_mut()
            .filter(|k| k.retired_at.is_none() && k.algorithm == key.algorithm)
        {
            old.retired_at = Some(now);
        }
        key.retired_at = None;
        keys.keys.push(key);
        Ok(())
    }

    async fn delete_keys_retired_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut keys = self.inner.keys.lock();
        let n = keys.keys.len();
        keys.keys
            .retain(|k| !matches!(k.retired_at, Some(at) if at < before));
        Ok((n - keys.keys.len()) as u64)
    }

    async fn replace_private_key(&self, kid: &str, current: &str, new: &str) -> StoreResult<bool> {
        let mut keys = self.inner.keys.lock();
        match keys
            .keys
            .iter_mut()
            .find(|k| k.kid == kid && k.private_key_pem.as_str() == current)
        {
            Some(key) => {
                // The old value is zeroized as it drops.
                key.private_key_pem = new.to_owned().into();
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
