//! Redis failures, on throwaway `redis-server` processes this file starts on
//! free loopback ports (never the shared Redis on 6379): a dead Redis gives
//! `Unavailable` promptly, never a wrong answer, a hung one times out, and
//! everything recovers when Redis is back on the same port.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::RedisServer;
use sentri_core::model::{IdempotencyBegin, IdempotencyLease, SessionId, StoredResponse};
use sentri_core::store::{
    IdempotencyStore, Revocation, RevocationBus, StoreErrorKind, StoreResult, ThrottleStore,
};
use sentri_core::{ErrorCode, LogoutInput};
use sentri_redis::{RedisRevocationBus, RedisStore};
use tokio::sync::broadcast::error::RecvError;

const LOCK_TTL: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(300);
const WINDOW: Duration = Duration::from_secs(900);

/// How long an operation on a dead Redis may take to fail.
const FAIL_WITHIN: Duration = Duration::from_secs(3);

/// How long the store may take to recover once Redis is back (the reconnect
/// backoff is at most 2 s).
const RECOVER_WITHIN: Duration = Duration::from_secs(15);

async fn connect(server: &RedisServer, timeout: Duration) -> RedisStore {
    RedisStore::builder()
        .key_prefix("sentri-fault:")
        .command_timeout(timeout)
        .connect(&server.url())
        .await
        .unwrap_or_else(|err| {
            panic!(
                "the test Redis at {} is unreachable: {err:?}",
                server.addr()
            )
        })
}

fn response() -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![("content-type".into(), "application/json".into())],
        body: b"{\"token\":\"secret\"}".to_vec(),
    }
}

/// Run `op`, expect `Unavailable` within `within`; returns how long it took.
async fn unavailable<T: std::fmt::Debug>(
    what: &str,
    within: Duration,
    op: impl Future<Output = StoreResult<T>>,
) -> Duration {
    let started = Instant::now();
    let result = tokio::time::timeout(within + Duration::from_secs(2), op)
        .await
        .unwrap_or_else(|_| panic!("{what} hung on a dead Redis"));
    let took = started.elapsed();
    match result {
        Err(err) => assert_eq!(
            err.kind(),
            StoreErrorKind::Unavailable,
            "{what}: expected Unavailable, got {err:?}"
        ),
        Ok(value) => panic!("{what} answered {value:?} while Redis is down"),
    }
    assert!(
        took <= within,
        "{what} took {took:?} to fail (bound {within:?})"
    );
    eprintln!("{what}: Unavailable after {took:?}");
    took
}

/// Every store operation against `store`, each expected `Unavailable`.
async fn all_unavailable(store: &RedisStore, within: Duration) {
    let fp = [7u8; 32];
    unavailable("begin", within, store.begin("k", &fp, LOCK_TTL)).await;
    unavailable(
        "complete",
        within,
        store.complete("k", &IdempotencyLease::generate(), response(), TTL),
    )
    .await;
    unavailable(
        "release",
        within,
        store.release("k", &IdempotencyLease::generate()),
    )
    .await;
    unavailable(
        "record_failure",
        within,
        store.record_failure("login:x", Utc::now(), WINDOW, 10),
    )
    .await;
    unavailable(
        "recent_failures",
        within,
        store.recent_failures("login:x", Utc::now(), WINDOW),
    )
    .await;
    unavailable("clear_failures", within, store.clear_failures("login:x")).await;
}

/// Poll until `begin` on a fresh key works again; returns how long it took.
async fn recovery_time(store: &RedisStore, server: &RedisServer) -> Duration {
    let started = Instant::now();
    loop {
        let key = format!("probe-{}", uuid::Uuid::new_v4().simple());
        match store.begin(&key, &[0; 32], LOCK_TTL).await {
            Ok(IdempotencyBegin::Acquired(_)) => return started.elapsed(),
            Ok(other) => panic!("a fresh key after the restart: {other:?}"),
            Err(err) => assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err:?}"),
        }
        assert!(
            started.elapsed() < RECOVER_WITHIN,
            "the store did not recover within {RECOVER_WITHIN:?} after Redis came back on {}",
            server.addr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_is_unavailable_at_once_and_the_store_recovers() {
    let mut server = RedisServer::start();
    let store = connect(&server, Duration::from_secs(2)).await;

    let fp = [1u8; 32];
    assert!(matches!(
        store.begin("held", &fp, LOCK_TTL).await.unwrap(),
        IdempotencyBegin::Acquired(_)
    ));
    store
        .record_failure("login:a", Utc::now(), WINDOW, 10)
        .await
        .unwrap();

    server.kill();
    all_unavailable(&store, FAIL_WITHIN).await;
    // Still no wrong answer on a second round (the client is reconnecting).
    all_unavailable(&store, FAIL_WITHIN).await;

    server.restart();
    let took = recovery_time(&store, &server).await;
    eprintln!("recovered {took:?} after redis-server came back");

    // Everything works again. (The restarted Redis kept nothing: it runs
    // without persistence, so the old lock and failure are gone.)
    let IdempotencyBegin::Acquired(lease) = store.begin("held", &fp, LOCK_TTL).await.unwrap()
    else {
        panic!("a fresh key after the restart must be acquired");
    };
    assert!(
        store
            .complete("held", &lease, response(), TTL)
            .await
            .unwrap()
    );
    assert_eq!(
        store.begin("held", &fp, LOCK_TTL).await.unwrap(),
        IdempotencyBegin::Completed(response())
    );
    let now = Utc::now();
    store
        .record_failure("login:a", now, WINDOW, 10)
        .await
        .unwrap();
    assert_eq!(
        store
            .recent_failures("login:a", now, WINDOW)
            .await
            .unwrap()
            .len(),
        1
    );
    store.clear_failures("login:a").await.unwrap();
    assert!(
        !store
            .release("other", &IdempotencyLease::generate())
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_times_out_after_the_command_timeout() {
    let server = RedisServer::start();
    let timeout = Duration::from_millis(300);
    let store = connect(&server, timeout).await;
    store.clear_failures("login:h").await.unwrap();

    server.signal("STOP");
    let fp = [2u8; 32];
    let took = unavailable(
        "begin on a hung redis",
        Duration::from_secs(2),
        store.begin("h", &fp, LOCK_TTL),
    )
    .await;
    assert!(
        took >= timeout - Duration::from_millis(50),
        "failed after {took:?}, before the command timeout"
    );
    unavailable(
        "recent_failures on a hung redis",
        Duration::from_secs(2),
        store.recent_failures("login:h", Utc::now(), WINDOW),
    )
    .await;

    server.signal("CONT");
    let started = Instant::now();
    loop {
        match store.recent_failures("login:h", Utc::now(), WINDOW).await {
            Ok(times) => {
                assert!(times.is_empty());
                break;
            }
            Err(err) => {
                assert_eq!(err.kind(), StoreErrorKind::Unavailable);
                assert!(
                    started.elapsed() < RECOVER_WITHIN,
                    "no recovery after SIGCONT"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    eprintln!("answered again {:?} after SIGCONT", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_dead_redis_fails_promptly() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let started = Instant::now();
    let err = RedisStore::connect(&url, "sentri-fault:")
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = RedisRevocationBus::connect(&url, "sentri-fault:")
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let took = started.elapsed();
    eprintln!("connect to a dead redis failed after {took:?}");
    assert!(took < Duration::from_secs(6), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_fails_publish_while_down_and_signals_a_lost_subscription() {
    let mut server = RedisServer::start();
    let store = connect(&server, Duration::from_secs(2)).await;
    let bus = store.revocation_bus().await.unwrap();
    let mut old = bus.subscribe();
    let first = Revocation::Session(SessionId::new());
    bus.publish(first).await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), old.recv())
            .await
            .unwrap()
            .unwrap(),
        first
    );

    server.kill();
    unavailable(
        "publish",
        FAIL_WITHIN,
        bus.publish(Revocation::Session(SessionId::new())),
    )
    .await;

    server.restart();
    // Events may have been lost while the subscription was down: the old
    // receiver is closed (Sentri drops its whole cache on that)...
    let started = Instant::now();
    let got = tokio::time::timeout(RECOVER_WITHIN, old.recv())
        .await
        .expect("the lost subscription was never signalled");
    assert!(matches!(got, Err(RecvError::Closed)), "{got:?}");
    eprintln!(
        "lost subscription signalled {:?} after redis-server came back",
        started.elapsed()
    );

    // ...and a new receiver hears what is published from then on.
    let mut new = bus.subscribe();
    recovery_time(&store, &server).await;
    let later = Revocation::Session(SessionId::new());
    bus.publish(later).await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), new.recv())
            .await
            .expect("no event after the subscription came back")
            .unwrap(),
        later
    );
}

/// How long an instance may take to notice that its subscription is gone
/// and stop answering from its cache: the bound the crate docs state (one
/// heartbeat and one command timeout, for a connection that died silently;
/// a killed Redis closes it at once), plus slack for a loaded machine.
const STALE_WITHIN: Duration = Duration::from_secs(
    sentri_redis::BUS_HEARTBEAT_INTERVAL.as_secs()
        + sentri_redis::DEFAULT_COMMAND_TIMEOUT.as_secs()
        + 3,
);

/// The epoch of `sentri`'s bus, `None` while it is not live.
fn bus_epoch(sentri: &sentri_core::Sentri) -> Option<u64> {
    sentri
        .stores()
        .revocations
        .as_ref()
        .expect("the instance has a bus")
        .live_epoch()
}

/// Poll `check` every 10 ms until it holds, for at most `within`; returns
/// how long it took.
async fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < within, "{what} not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_its_bus_is_down_an_instance_reads_sessions_from_the_store() {
    let mut server = RedisServer::start();
    let (a, b) = bus_instances(&server).await;
    let out = signed_in(&a, "redis-outage@example.com").await;
    let token = out.tokens.access_token.clone();
    let kept = signed_in(&a, "redis-outage-kept@example.com").await;
    for token in [&token, &kept.tokens.access_token] {
        b.verify_access(token).await.unwrap();
        assert!(
            b.try_verify_access(token).is_some(),
            "B caches sessions while its bus is live"
        );
    }

    server.kill();
    let killed = Instant::now();
    // The logout is in the (memory) store; its event cannot be published.
    a.logout(LogoutInput::Session(out.session_id))
        .await
        .unwrap();
    // B may answer from its cache only until it notices the loss...
    let mut accepted = 0u32;
    loop {
        match b.verify_access(&token).await {
            Err(err) if err.code() == ErrorCode::TokenInvalid => break,
            Ok(_) => accepted += 1,
            Err(err) => panic!("unexpected {err:?}"),
        }
        assert!(
            killed.elapsed() < STALE_WITHIN,
            "B accepted a revoked session {accepted} times, for {:?} after Redis died",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "B refused the revoked session {:?} after Redis died ({accepted} stale answers)",
        killed.elapsed()
    );
    until("B's bus going down", STALE_WITHIN, || {
        bus_epoch(&b).is_none()
    })
    .await;
    // ...then it reads through: never the revoked session, still the live
    // one (from the store, not the cache).
    for _ in 0..3 {
        let err = b.verify_access(&token).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenInvalid);
        assert!(b.try_verify_access(&kept.tokens.access_token).is_none());
        b.verify_access(&kept.tokens.access_token).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_nothing_cached_before_it_answers_and_events_arrive_again() {
    let mut server = RedisServer::start();
    let (a, b) = bus_instances(&server).await;
    let out = signed_in(&a, "redis-gap@example.com").await;
    let token = out.tokens.access_token.clone();
    b.verify_access(&token).await.unwrap();
    let before = bus_epoch(&b).expect("B's bus is live after connect");

    server.kill();
    // A revocation B cannot hear, and B is not asked during the outage.
    a.logout(LogoutInput::Session(out.session_id))
        .await
        .unwrap();
    server.restart();
    let took = until("B's bus live again", RECOVER_WITHIN, || {
        bus_epoch(&b).is_some_and(|epoch| epoch != before)
    })
    .await;
    eprintln!("B's subscription confirmed again {took:?} after redis-server came back");
    // The entry cached before the outage is not used: the store answers.
    assert!(b.try_verify_access(&token).is_none());
    let err = b.verify_access(&token).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);

    // A revocation published once both buses are back reaches B's cache.
    until("A's bus live again", RECOVER_WITHIN, || {
        bus_epoch(&a).is_some()
    })
    .await;
    let started = Instant::now();
    let bus = a.stores().revocations.clone().unwrap();
    while bus
        .publish(Revocation::Session(SessionId::new()))
        .await
        .is_err()
    {
        assert!(started.elapsed() < RECOVER_WITHIN, "A cannot publish again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let later = signed_in(&a, "redis-gap-later@example.com").await;
    let token = later.tokens.access_token.clone();
    b.verify_access(&token).await.unwrap();
    assert!(b.try_verify_access(&token).is_some(), "B caches again");
    a.logout(LogoutInput::Session(later.session_id))
        .await
        .unwrap();
    until("B hearing the logout", Duration::from_secs(5), || {
        b.try_verify_access(&token).is_none()
    })
    .await;
    let err = b.verify_access(&token).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
}

const SECRET: &str = "test-secret-test-secret-test-secret!";
const PASSWORD: &str = "correct horse battery staple";

async fn bus_instances(server: &RedisServer) -> (sentri_core::Sentri, sentri_core::Sentri) {
    use sentri_core::password::PasswordPolicy;
    use sentri_core::store::Stores;
    use sentri_core::{Config, SessionCheck};

    let stores = Stores::from_backend(Arc::new(sentri_memory::MemoryStore::new()));
    let mut instances = Vec::new();
    for _ in 0..2 {
        let bus = RedisRevocationBus::connect(&server.url(), "sentri-fault:")
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "the test Redis at {} is unreachable: {err:?}",
                    server.addr()
                )
            });
        let config = Config::builder()
            .hs256(SECRET)
            .valid_roles(["user"])
            .password_policy(PasswordPolicy::argon2id(256, 1, 1))
            .session_check(SessionCheck::Cached(Duration::from_secs(600)))
            .build()
            .unwrap();
        let stores = stores.clone().with_revocation_bus(Arc::new(bus));
        instances.push(sentri_core::Sentri::new(config, stores).await.unwrap());
    }
    let b = instances.pop().unwrap();
    (instances.pop().unwrap(), b)
}

async fn signed_in(sentri: &sentri_core::Sentri, identifier: &str) -> sentri_core::AuthOutput {
    use sentri_core::{ClientInfo, LoginInput, RegisterInput};
    sentri
        .register(RegisterInput {
            identifier: identifier.to_owned(),
            password: PASSWORD.to_owned(),
            roles: None,
            name: None,
        })
        .await
        .unwrap();
    sentri
        .login(LoginInput {
            identifier: identifier.to_owned(),
            password: PASSWORD.to_owned(),
            client: ClientInfo {
                user_agent: None,
                ip: None,
            },
        })
        .await
        .unwrap()
        .authenticated()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_takes_the_bus_down_within_the_heartbeat_bound() {
    let server = RedisServer::start();
    let (a, b) = bus_instances(&server).await;
    let out = signed_in(&a, "redis-frozen@example.com").await;
    let token = out.tokens.access_token.clone();
    b.verify_access(&token).await.unwrap();
    let before = bus_epoch(&b).expect("B's bus is live after connect");

    // The connection stays open, nothing is delivered: only the heartbeat
    // can tell.
    server.signal("STOP");
    let took = until("B's bus going down", STALE_WITHIN, || {
        bus_epoch(&b).is_none()
    })
    .await;
    eprintln!("B's bus went down {took:?} after Redis froze");
    assert!(b.try_verify_access(&token).is_none());
    b.verify_access(&token).await.unwrap();

    server.signal("CONT");
    let took = until("B's bus live again", RECOVER_WITHIN, || {
        bus_epoch(&b).is_some_and(|epoch| epoch != before)
    })
    .await;
    eprintln!("B's subscription confirmed again {took:?} after SIGCONT");
}
