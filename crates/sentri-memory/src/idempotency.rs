//! [`IdempotencyStore`] in memory: a bounded [`moka`] cache whose entries
//! expire after their own time-to-live (`lock_ttl` while the request runs,
//! `ttl` once its response is stored).
//!
//! Every operation on a key runs inside moka's per-key compute lock
//! (`and_compute_with`), which makes `begin` atomic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use sentri_core::model::{IdempotencyBegin, StoredResponse};
use sentri_core::store::{IdempotencyStore, StoreResult};

use crate::MemoryStore;

/// The longest time-to-live kept; longer ones are cut to it (so clock
/// arithmetic cannot overflow).
const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The state of one key.
#[derive(Clone)]
enum Slot {
    /// A request holds the key.
    Held {
        fingerprint: [u8; 32],
        since: Instant,
        lock_ttl: Duration,
    },
    /// A request completed; its response is kept until `until`.
    Done {
        fingerprint: [u8; 32],
        response: Arc<StoredResponse>,
        ttl: Duration,
        until: Instant,
    },
}

impl Slot {
    /// The slot's time-to-live from when it was written.
    fn ttl(&self) -> Duration {
        match self {
            Slot::Held { lock_ttl, .. } => *lock_ttl,
            Slot::Done { ttl, .. } => *ttl,
        }
    }
}

/// Expires each slot after its own time-to-live.
struct SlotExpiry;

impl Expiry<String, Slot> for SlotExpiry {
    fn expire_after_create(&self, _: &String, slot: &Slot, _: Instant) -> Option<Duration> {
        Some(slot.ttl())
    }

    fn expire_after_update(
        &self,
        _: &String,
        slot: &Slot,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot.ttl())
    }
}

/// The bounded cache of idempotency slots.
pub(crate) struct IdempotencyCache {
    cache: Cache<String, Slot>,
}

impl IdempotencyCache {
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                // Always admit a new key (TinyLFU may refuse one, which would
                // let a duplicate request run twice).
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(SlotExpiry)
                .build(),
        }
    }

    #[cfg(test)]
    pub(crate) fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn begin(
        &self,
        key: &str,
        fingerprint: &[u8; 32],
        lock_ttl: Duration,
    ) -> StoreResult<IdempotencyBegin> {
        let mut outcome = IdempotencyBegin::Acquired;
        self.inner
            .idempotency
            .cache
            .entry(key.to_owned())
            .and_compute_with(|existing| {
                let now = Instant::now();
                match existing.map(|e| e.into_value()) {
                    // Held, unless the lock is older than the holder's
                    // lock_ttl or ours (the contract speaks of ours).
                    Some(Slot::Held {
                        fingerprint: held,
                        since,
                        lock_ttl: held_ttl,
                    }) if now.saturating_duration_since(since) < held_ttl.min(lock_ttl) => {
                        outcome = if held == *fingerprint {
                            IdempotencyBegin::InProgress
                        } else {
                            IdempotencyBegin::Mismatch
                        };
                        Op::Nop
                    }
                    Some(Slot::Done {
                        fingerprint: done,
                        response,
                        until,
                        ..
                    }) if now < until => {
                        outcome = if done == *fingerprint {
                            IdempotencyBegin::Completed(StoredResponse::clone(&response))
                        } else {
                            IdempotencyBegin::Mismatch
                        };
                        Op::Nop
                    }
                    // Free, released, or its lock or response has expired.
                    _ => Op::Put(Slot::Held {
                        fingerprint: *fingerprint,
                        since: now,
                        lock_ttl: lock_ttl.min(MAX_TTL),
                    }),
                }
            });
        Ok(outcome)
    }

    async fn complete(
        &self,
        key: &str,
        fingerprint: &[u8; 32],
        response: StoredResponse,
        ttl: Duration,
    ) -> StoreResult<()> {
        self.inner
            .idempotency
            .cache
            .entry(key.to_owned())
            .and_compute_with(|existing| {
                let now = Instant::now();
                match existing.map(|e| e.into_value()) {
                    // Another request took the key over after our lock
                    // expired: leave it alone.
                    Some(Slot::Held {
                        fingerprint: held,
                        since,
                        lock_ttl,
                    }) if held != *fingerprint
                        && now.saturating_duration_since(since) < lock_ttl =>
                    {
                        Op::Nop
                    }
                    // Already completed (by a takeover): keep the first answer.
                    Some(Slot::Done { until, .. }) if now < until => Op::Nop,
                    _ => {
                        let ttl = ttl.min(MAX_TTL);
                        Op::Put(Slot::Done {
                            fingerprint: *fingerprint,
                            response: Arc::new(response),
                            ttl,
                            until: now + ttl,
                        })
                    }
                }
            });
        Ok(())
    }

    async fn release(&self, key: &str) -> StoreResult<()> {
        self.inner
            .idempotency
            .cache
            .entry(key.to_owned())
            .and_compute_with(|existing| match existing.map(|e| e.into_value()) {
                Some(Slot::Held { .. }) => Op::Remove,
                // A stored response is not the failed request's to drop.
                _ => Op::Nop,
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sentri_core::model::{IdempotencyBegin, StoredResponse};
    use sentri_core::store::IdempotencyStore;

    use crate::MemoryStore;

    fn response(i: u32) -> StoredResponse {
        StoredResponse {
            status: 200,
            headers: vec![],
            body: i.to_be_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn capacity_bounds_entries() {
        let store = MemoryStore::builder()
            .idempotency_capacity(100)
            .build()
            .unwrap();
        let ttl = std::time::Duration::from_secs(300);
        for i in 0..1_000u32 {
            let key = format!("k{i}");
            let fp = [i as u8; 32];
            assert_eq!(
                store.begin(&key, &fp, ttl).await.unwrap(),
                IdempotencyBegin::Acquired
            );
            store.complete(&key, &fp, response(i), ttl).await.unwrap();
        }
        let n = store.inner.idempotency.entry_count();
        assert!(
            n <= 100,
            "the cache holds {n} entries, more than its capacity"
        );
        // The newest entries survive (LRU), the oldest are gone.
        let fp = [(999u32 as u8); 32];
        assert_eq!(
            store.begin("k999", &fp, ttl).await.unwrap(),
            IdempotencyBegin::Completed(response(999))
        );
        assert_eq!(
            store.begin("k0", &[0; 32], ttl).await.unwrap(),
            IdempotencyBegin::Acquired
        );
    }

    #[tokio::test]
    async fn default_capacity_is_ten_thousand() {
        let store = MemoryStore::new();
        let ttl = std::time::Duration::from_secs(300);
        for i in 0..10_500u32 {
            store.begin(&format!("k{i}"), &[0; 32], ttl).await.unwrap();
        }
        let n = store.inner.idempotency.entry_count();
        assert!(n <= 10_000, "the default cache holds {n} entries");
        assert!(n >= 9_000, "the default cache holds only {n} entries");
    }

    #[tokio::test]
    async fn release_keeps_a_stored_response() {
        let store = MemoryStore::new();
        let ttl = std::time::Duration::from_secs(300);
        assert_eq!(
            store.begin("k", &[1; 32], ttl).await.unwrap(),
            IdempotencyBegin::Acquired
        );
        store
            .complete("k", &[1; 32], response(7), ttl)
            .await
            .unwrap();
        store.release("k").await.unwrap();
        assert_eq!(
            store.begin("k", &[1; 32], ttl).await.unwrap(),
            IdempotencyBegin::Completed(response(7))
        );
    }

    #[tokio::test]
    async fn complete_does_not_clobber_a_takeover() {
        let store = MemoryStore::new();
        let short = std::time::Duration::from_millis(50);
        let ttl = std::time::Duration::from_secs(300);
        assert_eq!(
            store.begin("k", &[1; 32], short).await.unwrap(),
            IdempotencyBegin::Acquired
        );
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        // The first holder is presumed dead; another request takes over.
        assert_eq!(
            store.begin("k", &[2; 32], ttl).await.unwrap(),
            IdempotencyBegin::Acquired
        );
        // The first holder finishes late: its response must not replace
        // the new holder's lock.
        store
            .complete("k", &[1; 32], response(1), ttl)
            .await
            .unwrap();
        assert_eq!(
            store.begin("k", &[2; 32], ttl).await.unwrap(),
            IdempotencyBegin::InProgress
        );
    }
}
