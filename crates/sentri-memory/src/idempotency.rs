//! [`IdempotencyStore`] in memory: a bounded [`moka`] cache whose entries
//! expire after their own time-to-live (`lock_ttl` while the request runs,
//! `ttl` once its response is stored).
//!
//! Every operation on a key runs inside moka's per-key compute lock
//! (`and_compute_with`), which makes `begin` atomic and `complete` and
//! `release` compare-and-set on the hold's lease. Expired slots are dropped
//! by moka itself; `purge_expired_idempotency` only runs its pending
//! maintenance.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use sentri_core::model::{IdempotencyBegin, IdempotencyLease, StoredResponse};
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
        lease: IdempotencyLease,
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
        let lease = IdempotencyLease::generate();
        let mut outcome = IdempotencyBegin::Acquired(lease);
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
                        ..
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
                        lease,
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
        lease: &IdempotencyLease,
        response: StoredResponse,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let mut stored = false;
        self.inner
            .idempotency
            .cache
            .entry(key.to_owned())
            .and_compute_with(|existing| match existing.map(|e| e.into_value()) {
                // Still our hold (even past its lock, if nobody took over).
                Some(Slot::Held {
                    fingerprint,
                    lease: held,
                    ..
                }) if held == *lease => {
                    stored = true;
                    let ttl = ttl.min(MAX_TTL);
                    Op::Put(Slot::Done {
                        fingerprint,
                        response: Arc::new(response),
                        ttl,
                        until: Instant::now() + ttl,
                    })
                }
                // Taken over, completed, released or expired: not ours.
                _ => Op::Nop,
            });
        Ok(stored)
    }

    async fn release(&self, key: &str, lease: &IdempotencyLease) -> StoreResult<bool> {
        let mut freed = false;
        self.inner
            .idempotency
            .cache
            .entry(key.to_owned())
            .and_compute_with(|existing| match existing.map(|e| e.into_value()) {
                Some(Slot::Held { lease: held, .. }) if held == *lease => {
                    freed = true;
                    Op::Remove
                }
                // A takeover's hold or a stored response is not the failed
                // request's to drop.
                _ => Op::Nop,
            });
        Ok(freed)
    }

    async fn purge_expired_idempotency(&self) -> StoreResult<u64> {
        // moka drops expired slots itself; let it catch up now.
        self.inner.idempotency.cache.run_pending_tasks();
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sentri_core::model::{IdempotencyBegin, IdempotencyLease, StoredResponse};
    use sentri_core::store::IdempotencyStore;

    use crate::MemoryStore;

    fn response(i: u32) -> StoredResponse {
        StoredResponse {
            status: 200,
            headers: vec![],
            body: i.to_be_bytes().to_vec(),
        }
    }

    async fn acquire(
        store: &MemoryStore,
        key: &str,
        fp: &[u8; 32],
        ttl: Duration,
    ) -> IdempotencyLease {
        match store.begin(key, fp, ttl).await.unwrap() {
            IdempotencyBegin::Acquired(lease) => lease,
            other => panic!("{key}: expected Acquired, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn capacity_bounds_entries() {
        let store = MemoryStore::builder()
            .idempotency_capacity(100)
            .build()
            .unwrap();
        let ttl = Duration::from_secs(300);
        for i in 0..1_000u32 {
            let key = format!("k{i}");
            let fp = [i as u8; 32];
            let lease = acquire(&store, &key, &fp, ttl).await;
            assert!(
                store
                    .complete(&key, &lease, response(i), ttl)
                    .await
                    .unwrap()
            );
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
        acquire(&store, "k0", &[0; 32], ttl).await;
    }

    #[tokio::test]
    async fn default_capacity_is_ten_thousand() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(300);
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
        let ttl = Duration::from_secs(300);
        let lease = acquire(&store, "k", &[1; 32], ttl).await;
        assert!(store.complete("k", &lease, response(7), ttl).await.unwrap());
        assert!(!store.release("k", &lease).await.unwrap());
        assert_eq!(
            store.begin("k", &[1; 32], ttl).await.unwrap(),
            IdempotencyBegin::Completed(response(7))
        );
    }

    #[tokio::test]
    async fn stale_holder_does_not_clobber_a_takeover() {
        let store = MemoryStore::new();
        let short = Duration::from_millis(50);
        let ttl = Duration::from_secs(300);
        let stale = acquire(&store, "k", &[1; 32], short).await;
        tokio::time::sleep(Duration::from_millis(120)).await;
        // The first holder is presumed dead; an exact repeat takes over.
        let takeover = acquire(&store, "k", &[1; 32], ttl).await;
        // The first holder finishes late, or fails: neither touches the
        // new holder's lock.
        assert!(!store.complete("k", &stale, response(1), ttl).await.unwrap());
        assert!(!store.release("k", &stale).await.unwrap());
        assert_eq!(
            store.begin("k", &[1; 32], ttl).await.unwrap(),
            IdempotencyBegin::InProgress
        );
        assert!(
            store
                .complete("k", &takeover, response(2), ttl)
                .await
                .unwrap()
        );
        assert_eq!(
            store.begin("k", &[1; 32], ttl).await.unwrap(),
            IdempotencyBegin::Completed(response(2))
        );
    }
}
