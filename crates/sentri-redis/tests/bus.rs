//! The revocation bus on the shared Redis at 127.0.0.1:6379, each test on
//! its own random prefix (so its own channel).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{SHARED_ADDR, shared_url, unique_prefix};
use sentri_core::model::{SessionId, UserId};
use sentri_core::password::PasswordPolicy;
use sentri_core::store::{Revocation, RevocationBus, Stores};
use sentri_core::{
    ClientInfo, Config, ErrorCode, LoginInput, LogoutInput, RegisterInput, Sentri, SessionCheck,
};
use sentri_memory::MemoryStore;
use sentri_redis::RedisRevocationBus;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

async fn bus(prefix: &str) -> RedisRevocationBus {
    RedisRevocationBus::connect(&shared_url(), prefix)
        .await
        .unwrap_or_else(|err| {
            panic!("the shared Redis at {SHARED_ADDR} is unreachable ({err:?}); start it, these tests never skip")
        })
}

async fn next(rx: &mut Receiver<Revocation>) -> Revocation {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no revocation arrived within 5 s")
        .expect("the receiver failed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_on_one_bus_arrives_on_the_other() {
    let prefix = unique_prefix();
    let a = bus(&prefix).await;
    let b = bus(&prefix).await;
    assert_eq!(a.channel(), format!("{prefix}revocations"));
    let mut on_a = a.subscribe();
    let mut on_b = b.subscribe();

    let session = Revocation::Session(SessionId::new());
    let user = Revocation::User(UserId::new());
    a.publish(session).await.unwrap();
    b.publish(user).await.unwrap();

    assert_eq!(next(&mut on_b).await, session);
    assert_eq!(next(&mut on_b).await, user);
    // The publisher hears itself too (the trait allows both).
    assert_eq!(next(&mut on_a).await, session);
    assert_eq!(next(&mut on_a).await, user);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buses_under_other_prefixes_hear_nothing() {
    let prefix = unique_prefix();
    let a = bus(&prefix).await;
    let stranger = bus(&unique_prefix()).await;
    let mut theirs = stranger.subscribe();
    let mut ours = a.subscribe();
    let event = Revocation::Session(SessionId::new());
    a.publish(event).await.unwrap();
    assert_eq!(next(&mut ours).await, event);
    let heard = tokio::time::timeout(Duration::from_millis(300), theirs.recv()).await;
    assert!(heard.is_err(), "another prefix received {heard:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_from_a_store_shares_its_prefix() {
    let prefix = unique_prefix();
    let store = common::shared_store(&prefix).await;
    let from_store = store.revocation_bus().await.unwrap();
    let standalone = bus(&prefix).await;
    assert_eq!(from_store.channel(), standalone.channel());
    let mut rx = standalone.subscribe();
    let event = Revocation::User(UserId::new());
    from_store.publish(event).await.unwrap();
    assert_eq!(next(&mut rx).await, event);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_bus_ends_its_receivers() {
    let b = bus(&unique_prefix()).await;
    let mut rx = b.subscribe();
    drop(b);
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the receiver of a dropped bus must end");
    assert!(matches!(got, Err(RecvError::Closed)), "{got:?}");
}

const SECRET: &str = "test-secret-test-secret-test-secret!";
const PASSWORD: &str = "correct horse battery staple";

fn cached_config() -> Config {
    Config::builder()
        .hs256(SECRET)
        .valid_roles(["user", "editor"])
        .password_policy(PasswordPolicy::argon2id(256, 1, 1))
        .session_check(SessionCheck::Cached(Duration::from_secs(600)))
        .build()
        .unwrap()
}

/// Two `Sentri` instances ("servers") in `Cached` mode on one store, each
/// with its own Redis bus on one prefix.
pub async fn two_instances(url: &str, prefix: &str) -> (Sentri, Sentri) {
    let stores = Stores::from_backend(Arc::new(MemoryStore::new()));
    let mut instances = Vec::new();
    for _ in 0..2 {
        let bus = RedisRevocationBus::connect(url, prefix)
            .await
            .unwrap_or_else(|err| panic!("Redis at {url} is unreachable ({err:?})"));
        let stores = stores.clone().with_revocation_bus(Arc::new(bus));
        instances.push(Sentri::new(cached_config(), stores).await.unwrap());
    }
    let b = instances.pop().unwrap();
    let a = instances.pop().unwrap();
    (a, b)
}

pub async fn signed_in(sentri: &Sentri, identifier: &str) -> sentri_core::AuthOutput {
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
                user_agent: Some("test-agent/1.0".to_owned()),
                ip: Some("192.0.2.10".parse().unwrap()),
            },
        })
        .await
        .unwrap()
        .authenticated()
        .unwrap()
}

/// Poll `check` every 5 ms for up to 2 s.
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..400 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_instance_rejects_the_token_on_the_other_at_once() {
    let (a, b) = two_instances(&shared_url(), &unique_prefix()).await;
    let out = signed_in(&a, "redis-bus@example.com").await;
    let token = out.tokens.access_token.clone();
    // B caches the session.
    b.verify_access(&token).await.unwrap();
    b.verify_access(&token).await.unwrap();

    a.logout(LogoutInput::Session(out.session_id))
        .await
        .unwrap();
    let rejected = eventually(async || {
        b.verify_access(&token)
            .await
            .is_err_and(|e| e.code() == ErrorCode::TokenInvalid)
    })
    .await;
    assert!(rejected, "instance B kept serving a session revoked on A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_changes_reach_the_other_instance() {
    let (a, b) = two_instances(&shared_url(), &unique_prefix()).await;
    let out = signed_in(&a, "redis-roles@example.com").await;
    let token = out.tokens.access_token.clone();
    assert!(!b.verify_access(&token).await.unwrap().has_role("editor"));
    a.assign_roles(out.user.id, vec!["editor".into()])
        .await
        .unwrap();
    let seen = eventually(async || {
        b.verify_access(&token)
            .await
            .is_ok_and(|u| u.has_role("editor"))
    })
    .await;
    assert!(seen, "instance B kept serving stale roles");
}
