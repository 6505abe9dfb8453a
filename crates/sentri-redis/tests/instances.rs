//! Several instances on one Redis (separate connections, one prefix), key
//! lifetimes, and data this crate did not write — on the shared Redis at
//! 127.0.0.1:6379 under a random prefix per test.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::{PrefixGuard, shared_store, shared_url, unique_prefix};
use sentri_core::model::{IdempotencyBegin, IdempotencyLease, StoredResponse};
use sentri_core::store::{IdempotencyStore, StoreErrorKind, ThrottleStore};
use sentri_redis::RedisStore;
use sentri_redis::fred::prelude::*;
use sentri_redis::fred::types::{ClusterHash, CustomCommand};
use tokio::sync::Barrier;

const LOCK_TTL: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(300);
const WINDOW: Duration = Duration::from_secs(900);

fn response(n: u8) -> StoredResponse {
    StoredResponse {
        status: 200,
        headers: vec![],
        body: vec![n],
    }
}

/// The lease of an `Acquired` begin.
#[track_caller]
fn acquired(begin: IdempotencyBegin) -> IdempotencyLease {
    match begin {
        IdempotencyBegin::Acquired(lease) => lease,
        other => panic!("expected Acquired, got {other:?}"),
    }
}

/// Two stores with their own connections under one prefix: two servers.
async fn two(prefix: &str) -> (RedisStore, RedisStore) {
    (shared_store(prefix).await, shared_store(prefix).await)
}

/// A plain client on the shared Redis, for looking behind the store.
async fn raw() -> Client {
    let client = Builder::from_config(Config::from_url(&shared_url()).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    client
}

async fn raw_cmd<R: FromValue>(client: &Client, name: &'static str, args: Vec<&str>) -> R {
    client
        .custom(
            CustomCommand::new_static(name, ClusterHash::FirstKey, false),
            args,
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_many_begins_across_instances_exactly_one_acquires() {
    let prefix = unique_prefix();
    let _guard = PrefixGuard(prefix.clone());
    let (a, b) = two(&prefix).await;
    let stores = [Arc::new(a), Arc::new(b)];
    for round in 0..5 {
        let key = format!("user:1:race-{round}");
        let barrier = Arc::new(Barrier::new(16));
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = stores[i % 2].clone();
            let barrier = barrier.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store.begin(&key, &[9; 32], LOCK_TTL).await.unwrap()
            }));
        }
        let mut acquired = 0;
        for task in tasks {
            match task.await.unwrap() {
                IdempotencyBegin::Acquired(_) => acquired += 1,
                IdempotencyBegin::InProgress => {}
                other => panic!("a loser must see InProgress, got {other:?}"),
            }
        }
        assert_eq!(acquired, 1, "round {round}: exactly one instance acquires");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_completed_on_one_instance_replays_on_the_other() {
    let prefix = unique_prefix();
    let _guard = PrefixGuard(prefix.clone());
    let (a, b) = two(&prefix).await;
    let lease = acquired(a.begin("k", &[1; 32], LOCK_TTL).await.unwrap());
    assert_eq!(
        b.begin("k", &[1; 32], LOCK_TTL).await.unwrap(),
        IdempotencyBegin::InProgress
    );
    assert!(a.complete("k", &lease, response(1), TTL).await.unwrap());
    assert_eq!(
        b.begin("k", &[1; 32], LOCK_TTL).await.unwrap(),
        IdempotencyBegin::Completed(response(1))
    );
    assert_eq!(
        b.begin("k", &[2; 32], LOCK_TTL).await.unwrap(),
        IdempotencyBegin::Mismatch
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_on_two_instances_add_up() {
    let prefix = unique_prefix();
    let _guard = PrefixGuard(prefix.clone());
    let (a, b) = two(&prefix).await;
    let now = Utc::now();
    for _ in 0..3 {
        a.record_failure("login:ada", now, WINDOW, 10)
            .await
            .unwrap();
    }
    for _ in 0..2 {
        b.record_failure("login:ada", now, WINDOW, 10)
            .await
            .unwrap();
    }
    assert_eq!(
        a.recent_failures("login:ada", now, WINDOW)
            .await
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        b.recent_failures("login:ada", now, WINDOW)
            .await
            .unwrap()
            .len(),
        5
    );
    b.clear_failures("login:ada").await.unwrap();
    assert!(
        a.recent_failures("login:ada", now, WINDOW)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_complete_does_not_clobber_a_takeover() {
    let prefix = unique_prefix();
    let _guard = PrefixGuard(prefix.clone());
    let (a, b) = two(&prefix).await;
    let stale = acquired(
        a.begin("k", &[1; 32], Duration::from_millis(100))
            .await
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    // A is presumed dead; B takes the key over with the same body.
    let takeover = acquired(b.begin("k", &[1; 32], LOCK_TTL).await.unwrap());
    // A finishes late or fails: neither may touch B's lock.
    assert!(!a.complete("k", &stale, response(1), TTL).await.unwrap());
    assert!(!a.release("k", &stale).await.unwrap());
    assert_eq!(
        b.begin("k", &[1; 32], LOCK_TTL).await.unwrap(),
        IdempotencyBegin::InProgress
    );
    assert!(b.complete("k", &takeover, response(2), TTL).await.unwrap());
    assert_eq!(
        a.begin("k", &[1; 32], LOCK_TTL).await.unwrap(),
        IdempotencyBegin::Completed(response(2))
    );
    // A response stored first is kept: a second complete changes nothing.
    assert!(!b.complete("k", &takeover, response(3), TTL).await.unwrap());
    assert_eq!(
        a.begin("k", &[1; 32], LOCK_TTL).await.unwrap(),
        IdempotencyBegin::Completed(response(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_keeps_a_stored_response() {
    let prefix = unique_prefix();
    let _guard = PrefixGuard(prefix.clone());
    let store = shared_store(&prefix).await;
    let lease = acquired(store.begin("k", &[1; 32], LOCK_TTL).await.unwrap());
    assert!(store.complete("k", &lease, response(7), TTL).await.unwrap());
    assert!(!store.release("k", &lease).await.unwrap());
    assert_eq!(
        store.begin("k", &[1; 32], LOCK_TTL).await.unwrap(),
        IdempotencyBegin::Completed(response(7))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_stale_after_the_callers_lock_ttl() {
    let prefix = unique_prefix();
    let _guard = PrefixGuard(prefix.clone());
    let store = shared_store(&prefix).await;
    acquired(store.begin("k", &[1; 32], LOCK_TTL).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The holder asked for 30 s, but this caller's lock_ttl is 200 ms: to
    // it the lock is older than lock_ttl, so free.
    acquired(
        store
            .begin("k", &[2; 32], Duration::from_millis(200))
            .await
            .unwrap(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_lives_under_the_prefix_and_expires() {
    let prefix = unique_prefix();
    let _guard = PrefixGuard(prefix.clone());
    let store = shared_store(&prefix).await;
    assert_eq!(store.key_prefix(), prefix);
    let client = raw().await;
    let idem = format!("{prefix}idem:user:1:k");
    let thr = format!("{prefix}thr:login:ada");

    let lease = acquired(store.begin("user:1:k", &[1; 32], LOCK_TTL).await.unwrap());
    let pttl: i64 = raw_cmd(&client, "PTTL", vec![&idem]).await;
    assert!(
        (1..=30_000).contains(&pttl),
        "a held key expires after lock_ttl ({pttl})"
    );
    assert!(
        store
            .complete("user:1:k", &lease, response(1), TTL)
            .await
            .unwrap()
    );
    let pttl: i64 = raw_cmd(&client, "PTTL", vec![&idem]).await;
    assert!(
        (30_001..=300_000).contains(&pttl),
        "a done key expires after ttl ({pttl})"
    );

    store
        .record_failure("login:ada", Utc::now(), WINDOW, 10)
        .await
        .unwrap();
    let pttl: i64 = raw_cmd(&client, "PTTL", vec![&thr]).await;
    assert!(
        (1..=900_000).contains(&pttl),
        "a throttle key expires after the window ({pttl})"
    );

    assert_eq!(
        common::count_prefix(&prefix).await,
        2,
        "nothing else was written"
    );
    let _ = client.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_or_corrupt_data_is_an_error_never_an_answer() {
    let prefix = unique_prefix();
    let _guard = PrefixGuard(prefix.clone());
    let store = shared_store(&prefix).await;
    let client = raw().await;

    // A completed entry whose response is garbage.
    let corrupt = format!("{prefix}idem:corrupt");
    let fp = [3u8; 32];
    let fp_text = String::from_utf8(fp.to_vec()).unwrap();
    let _: i64 = raw_cmd(
        &client,
        "HSET",
        vec![&corrupt, "s", "d", "f", &fp_text, "r", "x"],
    )
    .await;
    let err = store.begin("corrupt", &fp, LOCK_TTL).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Other, "{err:?}");

    // Keys of the wrong type.
    let _: () = raw_cmd(&client, "SET", vec![&format!("{prefix}idem:string"), "v"]).await;
    let err = store.begin("string", &fp, LOCK_TTL).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Other, "{err:?}");
    let _: () = raw_cmd(&client, "SET", vec![&format!("{prefix}thr:string"), "v"]).await;
    let err = store
        .recent_failures("string", Utc::now(), WINDOW)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Other, "{err:?}");
    let err = store
        .record_failure("string", Utc::now(), WINDOW, 10)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Other, "{err:?}");
    // The error does not carry the stored bytes.
    assert!(!format!("{err:?}").contains("\"v\""));
    let _ = client.quit().await;
}
