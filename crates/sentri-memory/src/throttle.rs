//! [`ThrottleStore`] in memory: a sliding-window log of failure times per
//! key.
//!
//! Each key keeps at most the caller's `keep` (or `limit`) most recent
//! failures, and drops those older than the window when it records.
//! [`ThrottleStore::reserve_all`] counts and records in one critical section
//! (the store's one throttle lock), so concurrent reservations never
//! overshoot the limit. The number of keys is
//! bounded: when a new key would exceed the bound, the key whose last
//! failure was recorded longest ago is evicted (least recently recorded), so
//! failing logins under ever new identifiers or addresses cannot exhaust
//! memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use sentri_core::store::{AttemptId, Forget, Limit, Reservations, StoreResult, ThrottleStore};

use crate::MemoryStore;

/// One counted attempt.
#[derive(Clone, Copy)]
struct Entry {
    at: DateTime<Utc>,
    /// When no window counts it any more (`at + window`).
    until: DateTime<Utc>,
    id: u64,
}

/// The failures of one key.
struct Log {
    /// Attempts, oldest first.
    times: VecDeque<Entry>,
    /// When (in record order) this key was last recorded.
    seq: u64,
}

/// Every key's log, with a recency order for eviction.
pub(crate) struct Throttle {
    logs: HashMap<Arc<str>, Log>,
    /// Keys by the sequence number of their last record, oldest first.
    order: BTreeMap<u64, Arc<str>>,
    next_seq: u64,
    max_keys: usize,
}

/// The start of the window: failures at or before it are out.
fn cutoff(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(window)
        .ok()
        .and_then(|w| now.checked_sub_signed(w))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The end of an attempt's life: `now + window`.
fn until(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(window)
        .ok()
        .and_then(|w| now.checked_add_signed(w))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Throttle {
    pub(crate) fn new(max_keys: usize) -> Self {
        Self {
            logs: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            max_keys,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.logs.len()
    }

    fn remove(&mut self, key: &str) {
        if let Some(log) = self.logs.remove(key) {
            self.order.remove(&log.seq);
        }
    }

    /// Count under every limit and, when each has room, record under each:
    /// the one critical section of [`ThrottleStore::reserve_all`].
    fn reserve_all(&mut self, limits: &[Limit<'_>], now: DateTime<Utc>) -> Reservations {
        for (index, l) in limits.iter().enumerate() {
            let counted = self.recent(l.key, now, l.window);
            let limit = l.limit as usize;
            if counted.len() >= limit {
                let retry_at = match counted.get(counted.len() - limit) {
                    Some(pivot) => until(*pivot, l.window),
                    None => until(now, l.window),
                };
                return Reservations::Refused { index, retry_at };
            }
        }
        let ids = limits
            .iter()
            .map(|l| AttemptId::new(self.record(l.key, now, l.window, l.limit).to_string()))
            .collect();
        Reservations::Admitted { ids }
    }

    fn refund(&mut self, key: &str, id: &AttemptId) {
        let Ok(id) = id.as_str().parse::<u64>() else {
            return;
        };
        let Some(log) = self.logs.get_mut(key) else {
            return;
        };
        log.times.retain(|e| e.id != id);
        if log.times.is_empty() {
            self.remove(key);
        }
    }

    /// Drop every attempt whose window has passed, and keys left empty.
    fn purge(&mut self, now: DateTime<Utc>) -> u64 {
        let mut purged = 0u64;
        let mut empty = Vec::new();
        for (key, log) in &mut self.logs {
            let before = log.times.len();
            log.times.retain(|e| e.until > now);
            purged += (before - log.times.len()) as u64;
            if log.times.is_empty() {
                empty.push(key.clone());
            }
        }
        for key in empty {
            self.remove(&key);
        }
        purged
    }

    /// Record one attempt; returns its id.
    fn record(&mut self, key: &str, now: DateTime<Utc>, window: Duration, keep: u32) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let log = match self.logs.get_key_value(key) {
            Some((name, log)) => {
                let (name, old) = (name.clone(), log.seq);
                self.order.remove(&old);
                self.order.insert(seq, name);
                let log = self.logs.get_mut(key).expect("the key is present");
                log.seq = seq;
                log
            }
            None => {
                while self.logs.len() >= self.max_keys {
                    match self.order.pop_first() {
                        Some((_, oldest)) => {
                            self.logs.remove(&oldest);
                        }
                        None => break,
                    }
                }
                let name: Arc<str> = Arc::from(key);
                self.order.insert(seq, name.clone());
                self.logs.entry(name).or_insert(Log {
                    times: VecDeque::new(),
                    seq,
                })
            }
        };

        // Insert in time order (usually at the back).
        let at = log.times.partition_point(|e| e.at <= now);
        let entry = Entry {
            at: now,
            until: until(now, window),
            id: seq,
        };
        log.times.insert(at, entry);
        let start = cutoff(now, window);
        while log.times.front().is_some_and(|e| e.at <= start) {
            log.times.pop_front();
        }
        let keep = keep as usize;
        while log.times.len() > keep {
            log.times.pop_front();
        }
        if log.times.is_empty() {
            self.remove(key);
        }
        seq
    }

    fn recent(&self, key: &str, now: DateTime<Utc>, window: Duration) -> Vec<DateTime<Utc>> {
        let start = cutoff(now, window);
        self.logs
            .get(key)
            .map(|log| {
                log.times
                    .iter()
                    .filter(|e| e.at > start)
                    .map(|e| e.at)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[async_trait]
impl ThrottleStore for MemoryStore {
    async fn reserve_all(
        &self,
        limits: &[Limit<'_>],
        now: DateTime<Utc>,
    ) -> StoreResult<Reservations> {
        Ok(self.inner.throttle.lock().reserve_all(limits, now))
    }

    async fn forget(&self, items: &[Forget<'_>]) -> StoreResult<()> {
        let mut throttle = self.inner.throttle.lock();
        for item in items {
            match *item {
                Forget::Attempt { key, id } => throttle.refund(key, id),
                Forget::Key(key) => throttle.remove(key),
            }
        }
        Ok(())
    }

    async fn refund(&self, key: &str, id: &AttemptId) -> StoreResult<()> {
        self.inner.throttle.lock().refund(key, id);
        Ok(())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        Ok(self.inner.throttle.lock().purge(now))
    }

    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
        keep: u32,
    ) -> StoreResult<()> {
        self.inner.throttle.lock().record(key, now, window, keep);
        Ok(())
    }

    async fn recent_failures(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        Ok(self.inner.throttle.lock().recent(key, now, window))
    }

    async fn clear_failures(&self, key: &str) -> StoreResult<()> {
        self.inner.throttle.lock().remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(900);

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[tokio::test]
    async fn key_count_is_bounded_and_oldest_goes_first() {
        let store = MemoryStore::builder().throttle_max_keys(3).build().unwrap();
        for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
            store
                .record_failure(key, at(i as i64), WINDOW, 10)
                .await
                .unwrap();
        }
        // "a" is recorded again, so "b" is now the least recently recorded.
        store.record_failure("a", at(3), WINDOW, 10).await.unwrap();
        store.record_failure("d", at(4), WINDOW, 10).await.unwrap();
        assert_eq!(store.inner.throttle.lock().len(), 3);
        assert!(
            store
                .recent_failures("b", at(5), WINDOW)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.recent_failures("a", at(5), WINDOW).await.unwrap(),
            vec![at(0), at(3)]
        );
        assert_eq!(
            store.recent_failures("c", at(5), WINDOW).await.unwrap(),
            vec![at(2)]
        );
        assert_eq!(
            store.recent_failures("d", at(5), WINDOW).await.unwrap(),
            vec![at(4)]
        );
    }

    #[tokio::test]
    async fn many_keys_stay_within_the_bound() {
        let store = MemoryStore::builder()
            .throttle_max_keys(1_000)
            .build()
            .unwrap();
        for i in 0..20_000 {
            store
                .record_failure(&format!("ip:{i}"), at(i), WINDOW, 100)
                .await
                .unwrap();
        }
        let throttle = store.inner.throttle.lock();
        assert_eq!(throttle.len(), 1_000);
        assert_eq!(
            throttle.order.len(),
            1_000,
            "the recency index matches the logs"
        );
        assert!(throttle.logs.contains_key("ip:19999"));
        assert!(!throttle.logs.contains_key("ip:18999"));
    }

    #[tokio::test]
    async fn log_per_key_is_bounded_by_keep_and_window() {
        let store = MemoryStore::new();
        for i in 0..1_000 {
            store.record_failure("k", at(i), WINDOW, 10).await.unwrap();
        }
        assert_eq!(store.inner.throttle.lock().logs["k"].times.len(), 10);
        // Old failures leave the log when a new one is recorded.
        store
            .record_failure("k", at(10_000), Duration::from_secs(60), 10)
            .await
            .unwrap();
        assert_eq!(store.inner.throttle.lock().logs["k"].times.len(), 1);
    }

    #[tokio::test]
    async fn clear_and_keep_zero_free_the_key() {
        let store = MemoryStore::new();
        store.record_failure("k", at(0), WINDOW, 10).await.unwrap();
        store.clear_failures("k").await.unwrap();
        assert_eq!(store.inner.throttle.lock().len(), 0);
        assert!(store.inner.throttle.lock().order.is_empty());
        store.record_failure("k", at(0), WINDOW, 0).await.unwrap();
        assert_eq!(store.inner.throttle.lock().len(), 0);
        assert!(store.inner.throttle.lock().order.is_empty());
    }
}
