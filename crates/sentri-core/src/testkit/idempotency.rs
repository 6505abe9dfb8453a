//! Checks of [`IdempotencyStore`]; run them all with
//! [`idempotency_store_tests!`](crate::idempotency_store_tests).
//!
//! The store reads the clock itself, so the checks of `lock_ttl` and `ttl`
//! sleep for real (1.5 s each, with 1 s time-to-lives).

use std::sync::Arc;
use std::time::Duration;

use crate::model::{IdempotencyBegin, StoredResponse};
use crate::store::IdempotencyStore;

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
        IdempotencyBegin::Acquired => "Acquired",
        IdempotencyBegin::InProgress => "InProgress",
        IdempotencyBegin::Completed(_) => "Completed",
        IdempotencyBegin::Mismatch => "Mismatch",
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
    expect(
        &begin(&*store, &k, &fingerprint(), LOCK_TTL).await,
        &IdempotencyBegin::Acquired,
        "begin on a free key",
    );
}

/// While the holder runs, `begin` with the same fingerprint is `InProgress`
/// and with another fingerprint `Mismatch`.
pub async fn begin_in_progress_and_mismatch<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let fp = fingerprint();
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Acquired,
        "begin on a free key",
    );
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
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Acquired,
        "begin",
    );
    ok(store.complete(&k, &fp, response(), TTL).await, "complete");
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
    expect(
        &begin(&*store, &empty, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Acquired,
        "begin",
    );
    let no_content = StoredResponse {
        status: 204,
        headers: Vec::new(),
        body: Vec::new(),
    };
    ok(
        store.complete(&empty, &fp, no_content.clone(), TTL).await,
        "complete",
    );
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
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Acquired,
        "begin",
    );
    ok(store.complete(&k, &fp, response(), TTL).await, "complete");
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
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Acquired,
        "begin",
    );
    ok(store.release(&k).await, "release");
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Acquired,
        "begin after release with the same fingerprint",
    );
    ok(store.release(&k).await, "release");
    expect(
        &begin(&*store, &k, &fingerprint(), LOCK_TTL).await,
        &IdempotencyBegin::Acquired,
        "begin after release with another fingerprint",
    );
}

/// `release` of a key nobody holds is `Ok` and changes nothing.
pub async fn release_unknown_key<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let k = key();
    ok(store.release(&k).await, "release of an unknown key");
    expect(
        &begin(&*store, &k, &fingerprint(), LOCK_TTL).await,
        &IdempotencyBegin::Acquired,
        "begin after releasing an unknown key",
    );
}

/// A lock older than `lock_ttl` counts as free (its holder died): `begin`
/// is `Acquired` again, even with another fingerprint.
pub async fn expired_lock_is_free<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let k = key();
    let fp = fingerprint();
    expect(
        &begin(&*store, &k, &fp, SHORT).await,
        &IdempotencyBegin::Acquired,
        "begin",
    );
    expect(
        &begin(&*store, &k, &fp, SHORT).await,
        &IdempotencyBegin::InProgress,
        "begin within lock_ttl",
    );
    tokio::time::sleep(PAST_SHORT).await;
    expect(
        &begin(&*store, &k, &fingerprint(), SHORT).await,
        &IdempotencyBegin::Acquired,
        "begin after lock_ttl has passed",
    );
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
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Acquired,
        "begin",
    );
    ok(store.complete(&k, &fp, response(), SHORT).await, "complete");
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Completed(response()),
        "begin within ttl",
    );
    tokio::time::sleep(PAST_SHORT).await;
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Acquired,
        "begin after ttl has passed",
    );
}

/// Keys are independent: holding, completing or releasing one key does not
/// affect another, even one that extends it.
pub async fn keys_are_independent<S: IdempotencyStore + ?Sized>(store: Arc<S>) {
    let a = key();
    let b = format!("{a}:b");
    let fp = fingerprint();
    expect(
        &begin(&*store, &a, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Acquired,
        "begin a",
    );
    expect(
        &begin(&*store, &b, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Acquired,
        "begin b while a is held",
    );
    ok(store.complete(&a, &fp, response(), TTL).await, "complete a");
    expect(
        &begin(&*store, &b, &fp, LOCK_TTL).await,
        &IdempotencyBegin::InProgress,
        "b stays held when a completes",
    );
    ok(store.release(&b).await, "release b");
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
            IdempotencyBegin::Acquired => acquired += 1,
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
    expect(
        &begin(&*store, &k, &fp, LOCK_TTL).await,
        &IdempotencyBegin::Acquired,
        "begin",
    );
    ok(store.complete(&k, &fp, response(), TTL).await, "complete");
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
