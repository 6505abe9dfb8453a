//! Checks of [`ThrottleStore`]; run them all with
//! [`throttle_store_tests!`](crate::throttle_store_tests).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use sentri_core::store::{AttemptId, Forget, Limit, Reservation, Reservations, ThrottleStore};

use super::{era_2001, now, ok, plus, race, unique};

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

async fn reserve<S: ThrottleStore + ?Sized>(
    store: &S,
    key: &str,
    at: DateTime<Utc>,
    window: Duration,
    limit: u32,
) -> Reservation {
    ok(store.reserve(key, at, window, limit).await, "reserve")
}

#[track_caller]
fn admitted(r: Reservation, what: &str) -> AttemptId {
    match r {
        Reservation::Admitted { id } => id,
        other => panic!("{what}: expected the attempt to be admitted, got {other:?}"),
    }
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

/// `reserve` admits attempts while fewer than `limit` are counted in the
/// window, then refuses without recording, with `retry_at` the time the
/// attempt keeping the count at the limit leaves the window; once it has,
/// one more is admitted. Failures recorded by `record_failure` count too.
pub async fn reserve_admits_up_to_the_limit<S: ThrottleStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let at = now();
    record(&*store, &k, at, KEEP).await;
    for offset in 1..3 {
        admitted(
            reserve(&*store, &k, plus(at, offset), WINDOW, 3).await,
            "reserve below the limit",
        );
    }
    for offset in [3, 4] {
        match reserve(&*store, &k, plus(at, offset), WINDOW, 3).await {
            Reservation::Refused { retry_at } => assert_eq!(
                retry_at,
                plus(at, WINDOW.as_secs() as i64),
                "retry_at must be when the oldest counted attempt leaves the window"
            ),
            other => panic!("reserve at the limit must be refused, got {other:?}"),
        }
    }
    assert_eq!(
        recent(&*store, &k, plus(at, 5), WINDOW).await,
        vec![at, plus(at, 1), plus(at, 2)],
        "a refused reservation must not be recorded"
    );
    // A limit of 5 has room for two more; then the second oldest is the pivot.
    admitted(
        reserve(&*store, &k, plus(at, 6), WINDOW, 5).await,
        "reserve under a larger limit",
    );
    match reserve(&*store, &k, plus(at, 7), WINDOW, 3).await {
        Reservation::Refused { retry_at } => assert_eq!(
            retry_at,
            plus(at, 1 + WINDOW.as_secs() as i64),
            "with 4 counted and a limit of 3, the second oldest must leave first"
        ),
        other => panic!("reserve over the limit must be refused, got {other:?}"),
    }
    // The window moves on: the two oldest left, there is room for one again.
    let later = plus(at, WINDOW.as_secs() as i64 + 1);
    admitted(
        reserve(&*store, &k, later, WINDOW, 3).await,
        "reserve after the oldest left the window",
    );
    assert!(
        matches!(
            reserve(&*store, &k, later, WINDOW, 3).await,
            Reservation::Refused { .. }
        ),
        "the window is full again"
    );
    assert!(
        matches!(
            reserve(&*store, &key(), at, WINDOW, 0).await,
            Reservation::Refused { .. }
        ),
        "a limit of 0 refuses every attempt"
    );
}

/// `refund` forgets exactly the one attempt it names, making room for one
/// more; refunding it again, or an attempt of an unknown key, is `Ok`.
pub async fn refund_forgets_one_attempt<S: ThrottleStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let at = now();
    let first = admitted(reserve(&*store, &k, at, WINDOW, 2).await, "first");
    let _second = admitted(reserve(&*store, &k, plus(at, 1), WINDOW, 2).await, "second");
    assert!(matches!(
        reserve(&*store, &k, plus(at, 2), WINDOW, 2).await,
        Reservation::Refused { .. }
    ));
    ok(store.refund(&k, &first).await, "refund");
    assert_eq!(
        recent(&*store, &k, plus(at, 3), WINDOW).await,
        vec![plus(at, 1)],
        "refund must forget the one attempt it names, and only it"
    );
    admitted(
        reserve(&*store, &k, plus(at, 4), WINDOW, 2).await,
        "a refund makes room for one more",
    );
    ok(store.refund(&k, &first).await, "refund twice");
    ok(
        store.refund(&key(), &first).await,
        "refund under an unknown key",
    );
    assert_eq!(
        recent(&*store, &k, plus(at, 5), WINDOW).await,
        vec![plus(at, 1), plus(at, 4)],
        "a repeated refund must change nothing"
    );
    ok(store.clear_failures(&k).await, "clear_failures");
    assert!(
        recent(&*store, &k, plus(at, 6), WINDOW).await.is_empty(),
        "clear_failures must forget reserved attempts too"
    );
}

/// Of 24 concurrent reservations of one key with a limit of 5, exactly 5
/// are admitted (count and record are one atomic operation): the
/// login-guessing race of F-27.
pub async fn concurrent_reserve_admits_at_most_the_limit<S: ThrottleStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let at = now();
    let results = race(&store, 24, |store, _| {
        let k = k.clone();
        async move { store.reserve(&k, at, WINDOW, 5).await }
    })
    .await;
    let admitted = results
        .into_iter()
        .map(|r| ok(r, "concurrent reserve"))
        .filter(|r| matches!(r, Reservation::Admitted { .. }))
        .count();
    assert_eq!(
        admitted, 5,
        "24 concurrent reservations with a limit of 5 must admit exactly 5"
    );
    assert_eq!(
        recent(&*store, &k, plus(at, 1), WINDOW).await.len(),
        5,
        "exactly the admitted attempts must be recorded"
    );
}

/// Concurrent reservations of two keys at once (an identifier's and an
/// address's, as a login makes them) are each held to their own limit: of
/// 16 on each, 3 and 12 are admitted.
pub async fn concurrent_reserve_on_two_keys<S: ThrottleStore + ?Sized>(store: Arc<S>) {
    let id = key();
    let ip = key();
    let at = now();
    let results = race(&store, 32, |store, i| {
        let (key, limit) = if i % 2 == 0 {
            (id.clone(), 3)
        } else {
            (ip.clone(), 12)
        };
        async move { (i % 2, store.reserve(&key, at, WINDOW, limit).await) }
    })
    .await;
    let mut admitted = [0usize; 2];
    for (which, r) in results {
        if matches!(ok(r, "concurrent reserve"), Reservation::Admitted { .. }) {
            admitted[which] += 1;
        }
    }
    assert_eq!(
        admitted,
        [3, 12],
        "each key must admit exactly its limit under concurrency"
    );
}

fn limit(key: &str, limit: u32) -> Limit<'_> {
    Limit {
        key,
        window: WINDOW,
        limit,
    }
}

/// `reserve_all` of a login (an address's and an identifier's key) records
/// one attempt under each key when both have room, with an id per key (in
/// order) that refunds that key's attempt only; when one key is full it
/// names the first full key, with its `retry_at`, and records nothing under
/// either; a limit of 0 refuses; no limits admit with no ids.
pub async fn reserve_all_is_all_or_nothing<S: ThrottleStore + ?Sized>(store: Arc<S>) {
    let ip = key();
    let id = key();
    let at = now();
    let ids = match ok(
        store.reserve_all(&[limit(&ip, 3), limit(&id, 2)], at).await,
        "reserve_all",
    ) {
        Reservations::Admitted { ids } => ids,
        other => panic!("reserve_all with room must admit, got {other:?}"),
    };
    assert_eq!(ids.len(), 2, "one id per key");
    assert_eq!(recent(&*store, &ip, plus(at, 1), WINDOW).await, vec![at]);
    assert_eq!(recent(&*store, &id, plus(at, 1), WINDOW).await, vec![at]);
    // Fill the identifier's key.
    record(&*store, &id, plus(at, 1), KEEP).await;
    match ok(
        store
            .reserve_all(&[limit(&ip, 3), limit(&id, 2)], plus(at, 2))
            .await,
        "reserve_all",
    ) {
        Reservations::Refused { index, retry_at } => {
            assert_eq!(index, 1, "the identifier's key is the one without room");
            assert_eq!(
                retry_at,
                plus(at, WINDOW.as_secs() as i64),
                "retry_at is when the full key's oldest counted attempt leaves its window"
            );
        }
        other => panic!("reserve_all with a full key must refuse, got {other:?}"),
    }
    assert_eq!(
        recent(&*store, &ip, plus(at, 3), WINDOW).await,
        vec![at],
        "a reservation refused by one key must not be counted under another"
    );
    // The first full key in order is named.
    match ok(
        store
            .reserve_all(&[limit(&id, 2), limit(&ip, 0)], plus(at, 3))
            .await,
        "reserve_all",
    ) {
        Reservations::Refused { index, .. } => assert_eq!(index, 0),
        other => panic!("got {other:?}"),
    }
    match ok(
        store.reserve_all(&[limit(&ip, 0)], plus(at, 3)).await,
        "reserve_all",
    ) {
        Reservations::Refused { index, .. } => assert_eq!(index, 0, "a limit of 0 refuses"),
        other => panic!("a limit of 0 must refuse, got {other:?}"),
    }
    assert!(matches!(
        ok(store.reserve_all(&[], at).await, "reserve_all of nothing"),
        Reservations::Admitted { ids } if ids.is_empty()
    ));
    // Each id refunds its own key's attempt.
    ok(store.refund(&ip, &ids[0]).await, "refund");
    assert!(recent(&*store, &ip, plus(at, 4), WINDOW).await.is_empty());
    assert_eq!(
        recent(&*store, &id, plus(at, 4), WINDOW).await,
        vec![at, plus(at, 1)],
        "refunding the address's attempt must keep the identifier's"
    );
}

/// `forget` refunds the attempts and clears the keys it names, in one call,
/// and nothing else; forgetting nothing, or what is gone, is `Ok`.
pub async fn forget_refunds_and_clears<S: ThrottleStore + ?Sized>(store: Arc<S>) {
    let ip = key();
    let id = key();
    let other = key();
    let at = now();
    let ids = match ok(
        store.reserve_all(&[limit(&ip, 5), limit(&id, 5)], at).await,
        "reserve_all",
    ) {
        Reservations::Admitted { ids } => ids,
        r => panic!("got {r:?}"),
    };
    let kept = admitted(
        reserve(&*store, &ip, plus(at, 1), WINDOW, 5).await,
        "reserve",
    );
    record(&*store, &id, plus(at, 1), KEEP).await;
    record(&*store, &other, at, KEEP).await;
    // A login's success: clear the identifier, refund the address.
    let items = [
        Forget::Key(&id),
        Forget::Attempt {
            key: &ip,
            id: &ids[0],
        },
    ];
    ok(store.forget(&items).await, "forget");
    assert!(
        recent(&*store, &id, plus(at, 2), WINDOW).await.is_empty(),
        "forget must clear a key it names"
    );
    assert_eq!(
        recent(&*store, &ip, plus(at, 2), WINDOW).await,
        vec![plus(at, 1)],
        "forget must refund exactly the attempt it names"
    );
    assert_eq!(
        recent(&*store, &other, plus(at, 2), WINDOW).await,
        vec![at],
        "forget must keep other keys"
    );
    ok(store.forget(&items).await, "forget twice");
    ok(store.forget(&[]).await, "forget nothing");
    ok(
        store
            .forget(&[Forget::Attempt {
                key: &ip,
                id: &kept,
            }])
            .await,
        "forget",
    );
    assert!(recent(&*store, &ip, plus(at, 2), WINDOW).await.is_empty());
}

/// N concurrent logins for one identifier (each reserving the address's and
/// the identifier's key in one `reserve_all`) admit exactly the
/// identifier's limit, so at most that many password checks run; the
/// refused ones hold no place in the address's count.
pub async fn concurrent_logins_for_one_identifier_admit_its_limit<S: ThrottleStore + ?Sized>(
    store: Arc<S>,
) {
    let ip = key();
    let id = key();
    let at = now();
    let results = race(&store, 32, |store, _| {
        let (ip, id) = (ip.clone(), id.clone());
        async move {
            store
                .reserve_all(&[limit(&ip, 100), limit(&id, 4)], at)
                .await
        }
    })
    .await;
    let mut admitted = 0;
    for r in results {
        match ok(r, "concurrent reserve_all") {
            Reservations::Admitted { .. } => admitted += 1,
            Reservations::Refused { index, .. } => {
                assert_eq!(index, 1, "only the identifier's key is full")
            }
            other => panic!("concurrent reserve_all: unexpected outcome {other:?}"),
        }
    }
    assert_eq!(admitted, 4, "32 concurrent logins, identifier limit 4");
    assert_eq!(recent(&*store, &id, plus(at, 1), WINDOW).await.len(), 4);
    assert_eq!(
        recent(&*store, &ip, plus(at, 1), WINDOW).await.len(),
        4,
        "refused logins must not be counted under the address"
    );
}

/// N concurrent logins from one address for different identifiers admit
/// exactly the address's limit; the refused ones hold no place in their
/// identifier's count.
pub async fn concurrent_logins_from_one_address_admit_its_limit<S: ThrottleStore + ?Sized>(
    store: Arc<S>,
) {
    let ip = key();
    let ids: Arc<Vec<String>> = Arc::new((0..32).map(|_| key()).collect());
    let at = now();
    let results = race(&store, 32, |store, i| {
        let (ip, ids) = (ip.clone(), ids.clone());
        async move {
            store
                .reserve_all(&[limit(&ip, 6), limit(&ids[i], 10)], at)
                .await
        }
    })
    .await;
    let admitted = results
        .into_iter()
        .map(|r| ok(r, "concurrent reserve_all"))
        .filter(|r| matches!(r, Reservations::Admitted { .. }))
        .count();
    assert_eq!(admitted, 6, "32 concurrent logins, address limit 6");
    let mut counted = 0;
    for id in ids.iter() {
        counted += recent(&*store, id, plus(at, 1), WINDOW).await.len();
    }
    assert_eq!(
        counted, 6,
        "logins refused by the address must not be counted under their identifier"
    );
}

/// `purge_expired` deletes attempts whose window has passed and keeps the
/// others (a store that expires data by itself may delete nothing and
/// return 0). Run at times in 2001, before any other check's data.
pub async fn purge_expired_keeps_live_attempts<S: ThrottleStore + ?Sized>(store: Arc<S>) {
    let short = key();
    let long = key();
    let at = era_2001(0);
    admitted(
        reserve(&*store, &short, at, Duration::from_secs(60), 5).await,
        "reserve",
    );
    record(&*store, &short, plus(at, 1), KEEP).await;
    admitted(
        reserve(&*store, &long, at, Duration::from_secs(86_400), 5).await,
        "reserve",
    );
    // The short window (60 s) has passed; the long one (1 day) has not. The
    // record_failure of `short` at +1 lives for WINDOW (900 s).
    let purged = ok(store.purge_expired(plus(at, 120)).await, "purge_expired");
    let wide = Duration::from_secs(86_400);
    assert_eq!(
        recent(&*store, &long, plus(at, 120), wide).await,
        vec![at],
        "purge_expired must keep attempts within their window"
    );
    let left = recent(&*store, &short, plus(at, 120), wide).await;
    if purged > 0 {
        assert_eq!(
            left,
            vec![plus(at, 1)],
            "purge_expired must delete exactly the attempts whose window has passed"
        );
    } else {
        assert!(
            left.contains(&plus(at, 1)),
            "purge_expired must keep attempts within their window"
        );
    }
    // Much later everything of these keys is out.
    ok(
        store.purge_expired(plus(at, 2 * 86_400)).await,
        "purge_expired",
    );
    if purged > 0 {
        assert!(
            recent(&*store, &long, plus(at, 2 * 86_400), wide * 3)
                .await
                .is_empty(),
            "purge_expired must delete every expired attempt"
        );
    }
}
