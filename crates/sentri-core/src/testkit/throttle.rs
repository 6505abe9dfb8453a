//! Checks of [`ThrottleStore`]; run them all with
//! [`throttle_store_tests!`](crate::throttle_store_tests).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::ThrottleStore;

use super::{now, ok, plus, race, unique};

const WINDOW: Duration = Duration::from_secs(900);
const KEEP: u32 = 100;

fn key() -> String {
    format!("login:{}", unique("throttle"))
}

async fn recent<S: ThrottleStore + ?Sized>(
    store: &S,
    key: &str,
    at: DateTime<Utc>,
    window: Duration,
) -> Vec<DateTime<Utc>> {
    ok(
        store.recent_failures(key, at, window).await,
        "recent_failures",
    )
}

async fn record<S: ThrottleStore + ?Sized>(store: &S, key: &str, at: DateTime<Utc>, keep: u32) {
    ok(
        store.record_failure(key, at, WINDOW, keep).await,
        "record_failure",
    );
}

/// Recorded failures come back from `recent_failures`, exactly, oldest
/// first (even when recorded out of order).
pub async fn record_and_recent_oldest_first<S: ThrottleStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let at = now();
    for offset in [0, 1, 2, 5] {
        record(&*store, &k, plus(at, offset), KEEP).await;
    }
    record(&*store, &k, plus(at, 3), KEEP).await;
    assert_eq!(
        recent(&*store, &k, plus(at, 10), WINDOW).await,
        vec![
            plus(at, 0),
            plus(at, 1),
            plus(at, 2),
            plus(at, 3),
            plus(at, 5)
        ],
        "recent_failures must return every failure in the window, oldest first"
    );
}

/// `recent_failures` returns only failures within `window` before `now`,
/// and a shorter window sees fewer.
pub async fn recent_within_window_only<S: ThrottleStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let at = now();
    for offset in [0, 300, 600, 1_000] {
        record(&*store, &k, plus(at, offset), KEEP).await;
    }
    // Window (1_010 - 900, 1_010] = (110, 1_010].
    assert_eq!(
        recent(&*store, &k, plus(at, 1_010), WINDOW).await,
        vec![plus(at, 300), plus(at, 600), plus(at, 1_000)],
        "recent_failures must leave out failures older than the window"
    );
    assert_eq!(
        recent(&*store, &k, plus(at, 1_010), Duration::from_secs(100)).await,
        vec![plus(at, 1_000)],
        "recent_failures must honour the window it is given"
    );
    assert!(
        recent(&*store, &k, plus(at, 5_000), WINDOW)
            .await
            .is_empty(),
        "long after the last failure the window is empty"
    );
}

/// With `keep = 3`, the three most recent failures are always kept (a store
/// may keep more, but never more than were recorded).
pub async fn keep_bound<S: ThrottleStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let at = now();
    for offset in 0..10 {
        record(&*store, &k, plus(at, offset), 3).await;
    }
    let got = recent(&*store, &k, plus(at, 10), WINDOW).await;
    assert!(
        (3..=10).contains(&got.len()),
        "recent_failures must keep at least `keep` and at most the recorded failures (got {})",
        got.len()
    );
    assert_eq!(
        &got[got.len() - 3..],
        &[plus(at, 7), plus(at, 8), plus(at, 9)],
        "the `keep` most recent failures must be kept"
    );
    let expected: Vec<_> = (10 - got.len() as i64..10).map(|o| plus(at, o)).collect();
    assert_eq!(
        got, expected,
        "the failures kept must be the most recent ones, oldest first"
    );
}

/// `clear_failures` forgets every failure of the key; later failures count
/// again; clearing an unknown key is `Ok`.
pub async fn clear_failures<S: ThrottleStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let at = now();
    for offset in 0..4 {
        record(&*store, &k, plus(at, offset), KEEP).await;
    }
    ok(store.clear_failures(&k).await, "clear_failures");
    assert!(
        recent(&*store, &k, plus(at, 5), WINDOW).await.is_empty(),
        "clear_failures must forget every failure"
    );
    record(&*store, &k, plus(at, 6), KEEP).await;
    assert_eq!(
        recent(&*store, &k, plus(at, 7), WINDOW).await,
        vec![plus(at, 6)],
        "failures after clear_failures count again"
    );
    ok(
        store.clear_failures(&key()).await,
        "clear_failures of an unknown key",
    );
}

/// Failures of one key never show up under another (not even one that
/// extends it), and clearing one key keeps the other's.
pub async fn keys_are_independent<S: ThrottleStore + ?Sized>(store: Arc<S>) {
    let a = key();
    let b = format!("{a}x");
    let at = now();
    record(&*store, &a, at, KEEP).await;
    record(&*store, &a, plus(at, 1), KEEP).await;
    record(&*store, &b, plus(at, 2), KEEP).await;
    assert_eq!(
        recent(&*store, &a, plus(at, 3), WINDOW).await,
        vec![at, plus(at, 1)]
    );
    assert_eq!(
        recent(&*store, &b, plus(at, 3), WINDOW).await,
        vec![plus(at, 2)]
    );
    ok(store.clear_failures(&a).await, "clear_failures");
    assert!(recent(&*store, &a, plus(at, 3), WINDOW).await.is_empty());
    assert_eq!(
        recent(&*store, &b, plus(at, 3), WINDOW).await,
        vec![plus(at, 2)],
        "clear_failures must keep other keys' failures"
    );
}

/// A key with no failures has an empty window.
pub async fn unknown_key_is_empty<S: ThrottleStore + ?Sized>(store: Arc<S>) {
    assert!(
        recent(&*store, &key(), now(), WINDOW).await.is_empty(),
        "an unknown key has no failures"
    );
}

/// Two failures at the same instant are two failures.
pub async fn same_instant_failures_count<S: ThrottleStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let at = now();
    for _ in 0..3 {
        record(&*store, &k, at, KEEP).await;
    }
    assert_eq!(
        recent(&*store, &k, plus(at, 1), WINDOW).await,
        vec![at, at, at],
        "each record_failure counts, even at the same time"
    );
}

/// 16 concurrent `record_failure` on one key lose nothing.
pub async fn concurrent_record_failure<S: ThrottleStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let at = now();
    let results = race(&store, 16, |store, i| {
        let k = k.clone();
        async move {
            store
                .record_failure(&k, plus(at, i as i64), WINDOW, KEEP)
                .await
        }
    })
    .await;
    for result in results {
        ok(result, "concurrent record_failure");
    }
    let expected: Vec<_> = (0..16).map(|i| plus(at, i)).collect();
    assert_eq!(
        recent(&*store, &k, plus(at, 20), WINDOW).await,
        expected,
        "16 concurrent record_failure must all be counted"
    );
}
