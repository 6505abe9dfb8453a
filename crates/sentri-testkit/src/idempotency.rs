//! Checks of [`IdempotencyStore`]; run them all with
//! [`idempotency_store_tests!`](crate::idempotency_store_tests).
//!
//! The store reads the clock itself, so the checks of `lock_ttl` and `ttl`
//! sleep for real (1.5 s each, with 1 s time-to-lives).
//!
//! The lease checks replay the sequence that let an exact repeat run twice:
//! a request outlives its lock, a repeat takes the key over, then the first
//! one fails (`release`) or finishes (`complete`) late. The stale holder
//! must change nothing.

use std::sync::Arc;
use std::time::Duration;

use sentri_core::model::{IdempotencyBegin, IdempotencyLease, StoredResponse};
use sentri_core::store::IdempotencyStore;

use super::{ok, race, unique};

const LOCK_TTL: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(300);
const SHORT: Duration = Duration::from_secs(1);
const PAST_SHORT: Duration = Duration::from_millis(1_500);

fn key() -> String {
    format!("user:{}:{}", unique("caller"), unique("request"))
}

fn fingerprint() -> [u8; 32] {
    rand::random()
}

fn response() -> StoredResponse {
    let mut body = b"{\"error\":false,\"statusCode\":201,\"data\":{\"id\":\"\xff\x00\"}}".to_vec();
    body.extend((0..=255u8).cycle().take(4096));
    StoredResponse {
        status: 201,
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("set-cookie".to_owned(), "a=1; Path=/".to_owned()),
            ("set-cookie".to_owned(), "b=2; Path=/".to_owned()),
            (
                "x-request-id".to_owned(),
                "réquest id with spaces".to_owned(),
            ),
        ],
        body,
    }
}

fn describe(begin: &IdempotencyBegin) -> &'static str {
    match begin {
        IdempotencyBegin::Acquired(_) => "Acquired",
        IdempotencyBegin::InProgress => "InProgress",
        IdempotencyBegin::Completed(_) => "Completed",
        IdempotencyBegin::Mismatch => "Mismatch",
        _ => "an outcome this kit does not know",
    }
}

async fn begin<S: IdempotencyStore + ?Sized>(
    store: &S,
    key: &str,
    fingerprint: &[u8; 32],
    lock_ttl: Duration,
) -> IdempotencyBegin {
    ok(store.begin(key, fingerprint, lock_ttl).await, "begin")
}

/// `begin`, which must be `Acquired`: its lease.
async fn acquire<S: IdempotencyStore + ?Sized>(
    store: &S,
    key: &str,
    fingerprint: &[u8; 32],
    lock_ttl: Duration,
    what: &str,
) -> IdempotencyLease {
    match begin(store, key, fingerprint, lock_ttl).await {
        IdempotencyBegin::Acquired(lease) => lease,
        other => panic!("{what}: expected Acquired, got {}", describe(&other)),
    }
}

/// `complete` by the holder of `lease`, which must store the response.
async fn complete<S: IdempotencyStore + ?Sized>(
    store: &S,
    key: &str,
    lease: &IdempotencyLease,
    response: StoredResponse,
    ttl: Duration,
    what: &str,
) {
    assert!(
        ok(store.complete(key, lease, response, ttl).await, what),
        "{what}: complete by the current holder must report that it stored the response"
    );
}

/// `release` by the holder of `lease`, which must free the key.
async fn release<S: IdempotencyStore + ?Sized>(
    store: &S,
    key: &str,
    lease: &IdempotencyLease,
    what: &str,
) {
    assert!(
        ok(store.release(key, lease).await, what),
        "{what}: release by the current holder must report that it freed the key"
    );
}

/// Whether `got` is `Acquired` (with any lease).
fn is_acquired(got: &IdempotencyBegin) -> bool {
    matches!(got, IdempotencyBegin::Acquired(_))
}

#[track_caller]
fn expect(got: &IdempotencyBegin, want: &IdempotencyBegin, what: &str) {
    assert!(
        got == want,
        "{what}: expected {}, got {}",
        describe(want),
        describe(got)
    );
}

/// `begin` on a free key is `Acquired`.
pub async fn begin_acquires_free_key<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let a = acquire(&*store, &k, &fingerprint(), LOCK_TTL, "begin on a free key").await;
    let b = acquire(
        &*store,
        &key(),
        &fingerprint(),
        LOCK_TTL,
        "begin on another free key",
    )
    .await;
    assert_ne!(a, b, "every hold must get a lease of its own");
}

/// While the holder runs, `begin` with the same fingerprint is `InProgress`
/// and with another fingerprint `Mismatch`.
pub async fn begin_in_progress_and_mismatch<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let fp = fingerprint();
    acquire(&*store, &k, &fp, LOCK_TTL, "begin on a free key").await;
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::InProgress,
        "begin on a held key with the same fingerprint",
    );
    expect(
        &begin(&*store, &k, &fingerprint(), LOCK_TTL).await,
        &IdempotencyBegin::Mismatch,
        "begin on a held key with another fingerprint",
    );
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::InProgress,
        "a refused begin must not take the key",
    );
}

/// After `complete`, `begin` with the same fingerprint is `Completed` with
/// exactly the stored status, headers (order and repeats kept) and body
/// (arbitrary bytes), every time.
pub async fn complete_replays_exact_response<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let fp = fingerprint();
    let lease = acquire(&*store, &k, &fp, LOCK_TTL, "begin").await;
    complete(&*store, &k, &lease, response(), TTL, "complete").await;
    for attempt in ["first", "second"] {
        match begin(&*store, &k, &fp, LOCK_TTL).await {
            IdempotencyBegin::Completed(stored) => {
                assert_eq!(stored.status, 201, "{attempt} replay: status");
                assert_eq!(
                    stored.headers,
                    response().headers,
                    "{attempt} replay: the headers must be replayed exactly, in order"
                );
                assert!(
                    stored.body == response().body,
                    "{attempt} replay: the body must be replayed byte for byte"
                );
            }
            other => panic!(
                "{attempt} replay: begin after complete with the same fingerprint: expected Completed, got {}",
                describe(&other)
            ),
        }
    }

    let empty = key();
    let fp = fingerprint();
    let lease = acquire(&*store, &empty, &fp, LOCK_TTL, "begin").await;
    let no_content = StoredResponse {
        status: 204,
        headers: Vec::new(),
        body: Vec::new(),
    };
    complete(&*store, &empty, &lease, no_content.clone(), TTL, "complete").await;
    expect(
        &begin(&*store, &empty, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Completed(no_content),
        "replay of an empty response",
    );
}

/// After `complete`, `begin` with another fingerprint is `Mismatch` and
/// does not disturb the stored response.
pub async fn completed_mismatch<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let fp = fingerprint();
    let lease = acquire(&*store, &k, &fp, LOCK_TTL, "begin").await;
    complete(&*store, &k, &lease, response(), TTL, "complete").await;
    expect(
        &begin(&*store, &k, &fingerprint(), LOCK_TTL).await,
        &IdempotencyBegin::Mismatch,
        "begin on a completed key with another fingerprint",
    );
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Completed(response()),
        "the stored response survives a mismatch",
    );
}

/// `release` frees a held key: the next `begin` (with any fingerprint) is
/// `Acquired`.
pub async fn release_frees_key<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let fp = fingerprint();
    let lease = acquire(&*store, &k, &fp, LOCK_TTL, "begin").await;
    release(&*store, &k, &lease, "release").await;
    let lease = acquire(
        &*store,
        &k,
        &fp,
        LOCK_TTL,
        "begin after release with the same fingerprint",
    )
    .await;
    release(&*store, &k, &lease, "release").await;
    acquire(
        &*store,
        &k,
        &fingerprint(),
        LOCK_TTL,
        "begin after release with another fingerprint",
    )
    .await;
}

/// `release` of a key nobody holds is `Ok` and changes nothing.
pub async fn release_unknown_key<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let freed = ok(
        store.release(&k, &IdempotencyLease::generate()).await,
        "release of an unknown key",
    );
    assert!(
        !freed,
        "release of an unknown key must report that it freed nothing"
    );
    acquire(
        &*store,
        &k,
        &fingerprint(),
        LOCK_TTL,
        "begin after releasing an unknown key",
    )
    .await;
}

/// A lock older than `lock_ttl` counts as free (its holder died): `begin`
/// is `Acquired` again, even with another fingerprint.
pub async fn expired_lock_is_free<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let fp = fingerprint();
    let first = acquire(&*store, &k, &fp, SHORT, "begin").await;
    expect(
        &begin(&*store, &k, &fp, SHORT).await,
        &IdempotencyBegin::InProgress,
        "begin within lock_ttl",
    );
    tokio::time::sleep(PAST_SHORT).await;
    let second = acquire(
        &*store,
        &k,
        &fingerprint(),
        SHORT,
        "begin after lock_ttl has passed",
    )
    .await;
    assert_ne!(first, second, "a takeover must get a new lease");
    expect(
        &begin(&*store, &k, &fp, SHORT).await,
        &IdempotencyBegin::Mismatch,
        "the new holder's fingerprint counts after a takeover",
    );
}

/// A completed response is replayed within `ttl` and forgotten after it:
/// `begin` is then `Acquired`.
pub async fn completed_expires_after_ttl<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let fp = fingerprint();
    let lease = acquire(&*store, &k, &fp, LOCK_TTL, "begin").await;
    complete(&*store, &k, &lease, response(), SHORT, "complete").await;
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Completed(response()),
        "begin within ttl",
    );
    tokio::time::sleep(PAST_SHORT).await;
    acquire(&*store, &k, &fp, LOCK_TTL, "begin after ttl has passed").await;
}

/// Keys are independent: holding, completing or releasing one key does not
/// affect another, even one that extends it.
pub async fn keys_are_independent<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let a = key();
    let b = format!("{a}:b");
    let fp = fingerprint();
    let lease_a = acquire(&*store, &a, &fp, LOCK_TTL, "begin a").await;
    let lease_b = acquire(&*store, &b, &fp, LOCK_TTL, "begin b while a is held").await;
    complete(&*store, &a, &lease_a, response(), TTL, "complete a").await;
    expect(
        &begin(&*store, &b, &fp, LOCK_TTL).await,
        &IdempotencyBegin::InProgress,
        "b stays held when a completes",
    );
    release(&*store, &b, &lease_b, "release b").await;
    expect(
        &begin(&*store, &a, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Completed(response()),
        "a stays completed when b is released",
    );
}

/// 16 concurrent `begin` on one key with one fingerprint: exactly one
/// `Acquired`, the rest `InProgress`.
pub async fn concurrent_begin<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let fp = fingerprint();
    let results = race(&store, 16, |store, _| {
        let k = k.clone();
        async move { store.begin(&k, &fp, LOCK_TTL).await }
    })
    .await;
    let mut acquired = 0;
    for result in results {
        match ok(result, "concurrent begin") {
            IdempotencyBegin::Acquired(_) => acquired += 1,
            IdempotencyBegin::InProgress => {}
            other => panic!(
                "concurrent begin: a loser must see InProgress, got {}",
                describe(&other)
            ),
        }
    }
    assert_eq!(
        acquired, 1,
        "of 16 concurrent begin on one key exactly one must acquire it"
    );
}

/// 16 concurrent `begin` on one completed key: every one replays, none
/// acquires.
pub async fn concurrent_begin_after_completion<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let fp = fingerprint();
    let lease = acquire(&*store, &k, &fp, LOCK_TTL, "begin").await;
    complete(&*store, &k, &lease, response(), TTL, "complete").await;
    let results = race(&store, 16, |store, _| {
        let k = k.clone();
        async move { store.begin(&k, &fp, LOCK_TTL).await }
    })
    .await;
    for result in results {
        expect(
            &ok(result, "concurrent begin"),
            &IdempotencyBegin::Completed(response()),
            "concurrent begin on a completed key",
        );
    }
}

/// `complete` and `release` with a lease that is not the hold's (a made-up
/// one, or the holder's after it finished) change nothing and answer
/// `false`; the holder's own lease still works.
pub async fn complete_and_release_need_the_lease<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let fp = fingerprint();
    let lease = acquire(&*store, &k, &fp, LOCK_TTL, "begin").await;
    let other = IdempotencyLease::generate();
    assert!(
        !ok(
            store.release(&k, &other).await,
            "release with another lease"
        ),
        "release with a lease that is not the hold's must report false"
    );
    assert!(
        !ok(
            store.complete(&k, &other, response(), TTL).await,
            "complete with another lease"
        ),
        "complete with a lease that is not the hold's must report false"
    );
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::InProgress,
        "the hold survives release and complete with another lease",
    );
    complete(
        &*store,
        &k,
        &lease,
        response(),
        TTL,
        "complete by the holder",
    )
    .await;
    assert!(
        !ok(store.release(&k, &lease).await, "release after complete"),
        "release after complete must report false"
    );
    let late = StoredResponse {
        status: 200,
        headers: Vec::new(),
        body: b"second answer".to_vec(),
    };
    assert!(
        !ok(
            store.complete(&k, &lease, late, TTL).await,
            "second complete"
        ),
        "a second complete must report false"
    );
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Completed(response()),
        "the first stored response stays",
    );
}

/// Release by a stale holder leaves the takeover's hold: A's lock lapses,
/// B (an exact repeat) takes the key over, then A fails and releases,
/// racing 16 more exact repeats. A frees nothing; every repeat is
/// `InProgress` (none runs a duplicate); B then completes and is replayed.
pub async fn release_by_stale_holder_leaves_takeovers_hold<S: IdempotencyStore + ?Sized>(
    store: Arc<S>,
) {
    let k = key();
    let fp = fingerprint();
    let stale = acquire(&*store, &k, &fp, SHORT, "begin (A)").await;
    tokio::time::sleep(PAST_SHORT).await;
    let takeover = acquire(
        &*store,
        &k,
        &fp,
        LOCK_TTL,
        "takeover (B) after A's lock lapsed",
    )
    .await;
    assert_ne!(stale, takeover, "the takeover must get a new lease");
    let results = race(&store, 17, |store, i| {
        let k = k.clone();
        async move {
            if i == 0 {
                Err(store.release(&k, &stale).await)
            } else {
                Ok(store.begin(&k, &fp, LOCK_TTL).await)
            }
        }
    })
    .await;
    for result in results {
        match result {
            Err(freed) => assert!(
                !ok(freed, "release by the stale holder"),
                "release by a stale holder must report false"
            ),
            Ok(got) => {
                let got = ok(got, "exact repeat");
                assert!(
                    !is_acquired(&got),
                    "an exact repeat acquired the key while the takeover runs: the stale \
                     holder's release freed the takeover's hold"
                );
                expect(
                    &got,
                    &IdempotencyBegin::InProgress,
                    "an exact repeat while the takeover runs",
                );
            }
        }
    }
    complete(
        &*store,
        &k,
        &takeover,
        response(),
        TTL,
        "complete by the takeover",
    )
    .await;
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Completed(response()),
        "the takeover's response is replayed",
    );
}

/// Complete by a stale holder does not overwrite the takeover: A's lock
/// lapses, B takes the key over, A finishes late. A's `complete` stores
/// nothing (the key stays held by B, not completed with A's response); B's
/// response is the one kept, and A finishing after B changes nothing
/// either.
pub async fn complete_by_stale_holder_does_not_overwrite_takeover<S: IdempotencyStore + ?Sized>(
    store: Arc<S>,
) {
    let k = key();
    let fp = fingerprint();
    let first = StoredResponse {
        status: 201,
        headers: vec![("x-run".to_owned(), "A".to_owned())],
        body: b"A".to_vec(),
    };
    let stale = acquire(&*store, &k, &fp, SHORT, "begin (A)").await;
    tokio::time::sleep(PAST_SHORT).await;
    let takeover = acquire(
        &*store,
        &k,
        &fp,
        LOCK_TTL,
        "takeover (B) after A's lock lapsed",
    )
    .await;
    assert!(
        !ok(
            store.complete(&k, &stale, first.clone(), TTL).await,
            "complete by the stale holder"
        ),
        "complete by a stale holder must report false"
    );
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::InProgress,
        "after the stale holder's complete the takeover still holds the key",
    );
    complete(
        &*store,
        &k,
        &takeover,
        response(),
        TTL,
        "complete by the takeover",
    )
    .await;
    assert!(
        !ok(
            store.complete(&k, &stale, first, TTL).await,
            "complete by the stale holder after the takeover completed"
        ),
        "complete by a stale holder must report false"
    );
    assert!(
        !ok(
            store.release(&k, &stale).await,
            "release by the stale holder after the takeover completed"
        ),
        "release by a stale holder must report false"
    );
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Completed(response()),
        "the takeover's response is the one replayed",
    );
}

/// After the lock lapses, 16 concurrent exact repeats: exactly one takes
/// the key over, the rest are `InProgress`.
pub async fn concurrent_takeover<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let fp = fingerprint();
    acquire(&*store, &k, &fp, SHORT, "begin").await;
    tokio::time::sleep(PAST_SHORT).await;
    let results = race(&store, 16, |store, _| {
        let k = k.clone();
        async move { store.begin(&k, &fp, LOCK_TTL).await }
    })
    .await;
    let mut acquired = 0;
    for result in results {
        match ok(result, "concurrent takeover") {
            IdempotencyBegin::Acquired(_) => acquired += 1,
            IdempotencyBegin::InProgress => {}
            other => panic!(
                "concurrent takeover: a loser must see InProgress, got {}",
                describe(&other)
            ),
        }
    }
    assert_eq!(
        acquired, 1,
        "of 16 concurrent begin on a lapsed lock exactly one must take it over"
    );
}

/// `purge_expired_idempotency` keeps live holds and live stored responses
/// and only drops what has expired (which already behaved as free).
pub async fn purge_keeps_live_records<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let (held, done, gone_lock, gone_done) = (key(), key(), key(), key());
    let fp = fingerprint();
    acquire(&*store, &held, &fp, LOCK_TTL, "begin (live hold)").await;
    let lease = acquire(&*store, &done, &fp, LOCK_TTL, "begin (live response)").await;
    complete(
        &*store,
        &done,
        &lease,
        response(),
        TTL,
        "complete (live response)",
    )
    .await;
    acquire(&*store, &gone_lock, &fp, SHORT, "begin (expiring hold)").await;
    let lease = acquire(
        &*store,
        &gone_done,
        &fp,
        LOCK_TTL,
        "begin (expiring response)",
    )
    .await;
    complete(
        &*store,
        &gone_done,
        &lease,
        response(),
        SHORT,
        "complete (expiring response)",
    )
    .await;
    tokio::time::sleep(PAST_SHORT).await;
    ok(
        store.purge_expired_idempotency().await,
        "purge_expired_idempotency",
    );
    expect(
        &begin(&*store, &held, &fp, LOCK_TTL).await,
        &IdempotencyBegin::InProgress,
        "a live hold survives the purge",
    );
    expect(
        &begin(&*store, &done, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Completed(response()),
        "a live stored response survives the purge",
    );
    acquire(&*store, &gone_lock, &fp, LOCK_TTL, "begin on a purged lock").await;
    acquire(
        &*store,
        &gone_done,
        &fp,
        LOCK_TTL,
        "begin on a purged response",
    )
    .await;
    ok(store.purge_expired_idempotency().await, "a second purge");
}
