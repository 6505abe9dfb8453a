//! `SessionCheck::Cached`: bounded staleness, local invalidation, fan-out
//! between instances through a revocation bus (F-13).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use sentri_core::store::Stores;
use sentri_core::{ErrorCode, LogoutInput, SessionCheck};
use sentri_memory::{MemoryRevocationBus, MemoryStore};

fn cached(ttl: Duration) -> sentri_core::config::ConfigBuilder {
    base().session_check(SessionCheck::Cached(ttl))
}

/// Two instances ("servers") on one store.
async fn two_instances(ttl: Duration, bus: bool) -> (Env, Env) {
    let mut stores = Stores::from_backend(Arc::new(MemoryStore::new()));
    if bus {
        stores = stores.with_revocation_bus(Arc::new(MemoryRevocationBus::new()));
    }
    let a = env_on(cached(ttl), stores.clone()).await;
    let b = env_on(cached(ttl), stores).await;
    (a, b)
}

/// Wait (bounded) until `check` holds; the bus delivers asynchronously.
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..200 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

#[tokio::test]
async fn a_logout_on_this_instance_takes_effect_at_once() {
    let env = env_with(cached(Duration::from_secs(60))).await;
    let out = signed_in(&env, "cache-local@example.com").await;
    env.sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    env.sentri
        .logout(LogoutInput::Session(out.session_id))
        .await
        .unwrap();
    let err = env
        .sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
}

#[tokio::test]
async fn without_a_bus_another_instance_sees_a_logout_within_the_bound() {
    let (a, b) = two_instances(Duration::from_secs(1), false).await;
    let out = signed_in(&a, "cache-bound@example.com").await;
    b.sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    a.sentri
        .logout(LogoutInput::Session(out.session_id))
        .await
        .unwrap();
    // B still serves its cached session: that is the documented staleness...
    b.sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    // ...bounded by the configured time.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let err = b
        .sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_bus_another_instance_sees_a_logout_at_once() {
    let (a, b) = two_instances(Duration::from_secs(600), true).await;
    let out = signed_in(&a, "cache-bus@example.com").await;
    b.sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    a.sentri
        .logout(LogoutInput::Session(out.session_id))
        .await
        .unwrap();
    let token = out.tokens.access_token.clone();
    let seen = eventually(async || b.sentri.verify_access(&token).await.is_err()).await;
    assert!(seen, "instance B kept serving a revoked session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_bus_role_changes_reach_every_instance() {
    let (a, b) = two_instances(Duration::from_secs(600), true).await;
    let out = signed_in(&a, "cache-roles@example.com").await;
    assert!(
        !b.sentri
            .verify_access(&out.tokens.access_token)
            .await
            .unwrap()
            .has_role("editor")
    );
    a.sentri
        .assign_roles(out.user.id, vec!["editor".into()])
        .await
        .unwrap();
    let token = out.tokens.access_token.clone();
    let seen = eventually(async || {
        b.sentri
            .verify_access(&token)
            .await
            .is_ok_and(|u| u.has_role("editor"))
    })
    .await;
    assert!(seen, "instance B kept serving stale roles");
}

#[test]
fn the_cached_bound_is_validated() {
    for bad in [
        Duration::ZERO,
        Duration::from_millis(500),
        Duration::from_secs(3601),
    ] {
        let err = cached(bad).build().unwrap_err();
        assert!(err.message().starts_with("session_check"), "{bad:?}");
    }
}

/// A bus whose channel can be closed and replaced, as a Redis bus does after
/// its connection came back.
struct ResettableBus(
    parking_lot::Mutex<tokio::sync::broadcast::Sender<sentri_core::store::Revocation>>,
);

impl ResettableBus {
    fn new() -> Self {
        Self(parking_lot::Mutex::new(
            tokio::sync::broadcast::channel(64).0,
        ))
    }

    fn reset(&self) {
        *self.0.lock() = tokio::sync::broadcast::channel(64).0;
    }
}

#[async_trait::async_trait]
impl sentri_core::store::RevocationBus for ResettableBus {
    async fn publish(
        &self,
        event: sentri_core::store::Revocation,
    ) -> sentri_core::store::StoreResult<()> {
        let _ = self.0.lock().send(event);
        Ok(())
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<sentri_core::store::Revocation> {
        self.0.lock().subscribe()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_keep_listening_after_the_bus_reconnects() {
    let bus = Arc::new(ResettableBus::new());
    let stores =
        Stores::from_backend(Arc::new(MemoryStore::new())).with_revocation_bus(bus.clone());
    let a = env_on(cached(Duration::from_secs(600)), stores.clone()).await;
    let b = env_on(cached(Duration::from_secs(600)), stores).await;
    let out = signed_in(&a, "cache-reconnect@example.com").await;
    b.sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    // The bus's connection drops and comes back: old receivers see Closed.
    bus.reset();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // B caches the session again, then A logs out.
    b.sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    a.sentri
        .logout(LogoutInput::Session(out.session_id))
        .await
        .unwrap();
    let token = out.tokens.access_token.clone();
    let seen = eventually(async || b.sentri.verify_access(&token).await.is_err()).await;
    assert!(
        seen,
        "instance B stopped listening after the bus reconnected"
    );
}

/// A bus whose liveness the test sets, as a Redis bus's changes when its
/// connection drops and its subscription is confirmed again.
struct GatedBus {
    events: tokio::sync::broadcast::Sender<sentri_core::store::Revocation>,
    /// The epoch while live, 0 while not.
    live: std::sync::atomic::AtomicU64,
}

impl GatedBus {
    fn live_in(epoch: u64) -> Self {
        Self {
            events: tokio::sync::broadcast::channel(64).0,
            live: std::sync::atomic::AtomicU64::new(epoch),
        }
    }

    fn set(&self, epoch: u64) {
        self.live.store(epoch, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl sentri_core::store::RevocationBus for GatedBus {
    /// Delivers nothing: every revocation of these tests is "lost".
    async fn publish(
        &self,
        _: sentri_core::store::Revocation,
    ) -> sentri_core::store::StoreResult<()> {
        Ok(())
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<sentri_core::store::Revocation> {
        self.events.subscribe()
    }

    fn live_epoch(&self) -> Option<u64> {
        match self.live.load(std::sync::atomic::Ordering::SeqCst) {
            0 => None,
            epoch => Some(epoch),
        }
    }
}

/// A session ended in the store behind this instance's back (another
/// instance's revocation whose event never arrived).
async fn ended_elsewhere(store: &MemoryStore, out: &sentri_core::AuthOutput) {
    use sentri_core::store::SessionStore;
    store.delete_session(out.session_id).await.unwrap();
}

/// One instance on a gated bus (live in epoch 1) and its store, with
/// `identifier` signed in and its session cached.
async fn gated_instance(
    identifier: &str,
) -> (
    Arc<GatedBus>,
    Arc<MemoryStore>,
    Env,
    sentri_core::AuthOutput,
) {
    let bus = Arc::new(GatedBus::live_in(1));
    let store = Arc::new(MemoryStore::new());
    let stores = Stores::from_backend(store.clone()).with_revocation_bus(bus.clone());
    let env = env_on(cached(Duration::from_secs(600)), stores).await;
    let out = signed_in(&env, identifier).await;
    env.sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    (bus, store, env, out)
}

#[tokio::test]
async fn while_the_bus_is_not_live_sessions_are_read_from_the_store() {
    let (bus, store, env, out) = gated_instance("cache-gated@example.com").await;
    let token = out.tokens.access_token.clone();
    assert!(
        env.sentri.try_verify_access(&token).is_some(),
        "a live bus serves the session from the cache"
    );

    bus.set(0);
    // Not from the cache, but still accepted: the store is asked.
    assert!(env.sentri.try_verify_access(&token).is_none());
    env.sentri.verify_access(&token).await.unwrap();
    ended_elsewhere(&store, &out).await;
    let err = env.sentri.verify_access(&token).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
}

#[tokio::test]
async fn what_was_cached_before_the_bus_went_down_is_not_used_after_it_is_back() {
    let (bus, store, env, out) = gated_instance("cache-epoch@example.com").await;
    let token = out.tokens.access_token.clone();

    // Down, the session ends elsewhere unheard, and the bus is back: the
    // entry of the old epoch must not answer.
    bus.set(0);
    ended_elsewhere(&store, &out).await;
    bus.set(2);
    assert!(env.sentri.try_verify_access(&token).is_none());
    let err = env.sentri.verify_access(&token).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);

    // Sessions read in the new epoch are cached again.
    let other = signed_in(&env, "cache-epoch-2@example.com").await;
    env.sentri
        .verify_access(&other.tokens.access_token)
        .await
        .unwrap();
    assert!(
        env.sentri
            .try_verify_access(&other.tokens.access_token)
            .is_some()
    );
}
