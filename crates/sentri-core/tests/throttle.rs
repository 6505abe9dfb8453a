//! Login and registration throttling under real concurrency (F-27): many
//! tasks at once on the multi-threaded runtime, on the memory store.

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use sentri_core::config::ThrottleConfig;
use sentri_core::hooks::Overrides;
use sentri_core::store::{AttemptId, Limit, Reservations, StoreResult, Stores, ThrottleStore};
use sentri_core::{ClientInfo, ErrorCode, LoginInput, Sentri};

/// Counts the password checks a login makes: the `login` override runs
/// only for an admitted attempt, and the default login does exactly one
/// password check. Also records how many ran at once per identifier.
#[derive(Default)]
struct Checks {
    total: AtomicUsize,
    inside: AtomicUsize,
    peak: AtomicUsize,
}

fn counting(checks: Arc<Checks>) -> Overrides {
    Overrides::new().login(move |sentri: Sentri, input| {
        let checks = checks.clone();
        async move {
            checks.total.fetch_add(1, Ordering::SeqCst);
            let now = checks.inside.fetch_add(1, Ordering::SeqCst) + 1;
            checks.peak.fetch_max(now, Ordering::SeqCst);
            let out = sentri.default_login(input).await;
            checks.inside.fetch_sub(1, Ordering::SeqCst);
            out
        }
    })
}

fn from(identifier: &str, password: &str, ip: &str) -> LoginInput {
    LoginInput {
        identifier: identifier.to_owned(),
        password: password.to_owned(),
        client: ClientInfo {
            user_agent: None,
            ip: Some(ip.parse::<IpAddr>().unwrap()),
        },
    }
}

/// `n` logins at once; the error codes of the failures.
async fn burst(sentri: &Sentri, inputs: Vec<LoginInput>) -> Vec<Result<(), ErrorCode>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(inputs.len()));
    let tasks: Vec<_> = inputs
        .into_iter()
        .map(|input| {
            let (sentri, barrier) = (sentri.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                sentri.login(input).await.map(|_| ()).map_err(|e| e.code())
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn count(results: &[Result<(), ErrorCode>], code: ErrorCode) -> usize {
    results
        .iter()
        .filter(|r| r.as_ref().err() == Some(&code))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_passwords_for_one_identifier_cost_at_most_the_limit() {
    let checks = Arc::new(Checks::default());
    let env = env_with(base().overrides(counting(checks.clone()))).await;
    env.sentri
        .register(register_input("ada@example.com"))
        .await
        .unwrap();
    let inputs = (0..200)
        .map(|i| from("ada@example.com", &format!("guess {i}"), "192.0.2.10"))
        .collect();
    let results = burst(&env.sentri, inputs).await;
    let checked = checks.total.load(Ordering::SeqCst);
    assert!(
        checked <= 10,
        "200 concurrent guesses reached {checked} password checks; the limit is 10"
    );
    assert_eq!(count(&results, ErrorCode::InvalidCredentials), checked);
    assert_eq!(count(&results, ErrorCode::RateLimited), 200 - checked);
    assert_eq!(
        checks.peak.load(Ordering::SeqCst),
        1,
        "two password checks of one identifier ran at once"
    );
    // The limit is reached (nothing was lost), and the right password is
    // refused too until the window passes.
    assert_eq!(checked, 10);
    let err = env
        .sentri
        .login(login_input("ada@example.com", PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited);
    assert!(err.retry_after_secs().is_some());
    assert_eq!(checks.total.load(Ordering::SeqCst), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_passwords_without_override_are_throttled_too() {
    let env = env().await;
    env.sentri
        .register(register_input("bea@example.com"))
        .await
        .unwrap();
    let inputs = (0..200)
        .map(|i| from("bea@example.com", &format!("guess {i}"), "192.0.2.11"))
        .collect();
    let results = burst(&env.sentri, inputs).await;
    // Every INVALID_CREDENTIALS is one password check.
    assert_eq!(count(&results, ErrorCode::InvalidCredentials), 10);
    assert_eq!(count(&results, ErrorCode::RateLimited), 190);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_passwords_from_one_address_cost_at_most_its_limit() {
    let checks = Arc::new(Checks::default());
    let env = env_with(
        base()
            .overrides(counting(checks.clone()))
            .throttle(ThrottleConfig {
                max_failures_per_ip: 40,
                ..ThrottleConfig::default()
            }),
    )
    .await;
    // 120 different identifiers (known or not), one IPv6 /64 from many
    // addresses.
    let inputs = (0..120)
        .map(|i| {
            from(
                &format!("user{i}@example.com"),
                "a wrong password",
                &format!("2001:db8:5:6::{:x}", i + 1),
            )
        })
        .collect();
    let results = burst(&env.sentri, inputs).await;
    let checked = checks.total.load(Ordering::SeqCst);
    assert_eq!(checked, 40, "the per-address limit is 40");
    assert_eq!(count(&results, ErrorCode::InvalidCredentials), 40);
    assert_eq!(count(&results, ErrorCode::RateLimited), 80);
    // Another /64 is not affected.
    let err = env
        .sentri
        .login(from("user0@example.com", "nope nope", "2001:db8:5:7::1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidCredentials);
}

/// Wraps the memory store and counts the throttle calls.
struct Counting {
    inner: Arc<sentri_memory::MemoryStore>,
    clears: AtomicUsize,
    refunds: AtomicUsize,
}

#[async_trait::async_trait]
impl ThrottleStore for Counting {
    async fn reserve_all(
        &self,
        limits: &[Limit<'_>],
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Reservations> {
        self.inner.reserve_all(limits, now).await
    }
    async fn refund(&self, key: &str, id: &AttemptId) -> StoreResult<()> {
        self.refunds.fetch_add(1, Ordering::SeqCst);
        self.inner.refund(key, id).await
    }
    async fn record_failure(
        &self,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
        window: Duration,
        keep: u32,
    ) -> StoreResult<()> {
        self.inner.record_failure(key, now, window, keep).await
    }
    async fn recent_failures(
        &self,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
        window: Duration,
    ) -> StoreResult<Vec<chrono::DateTime<chrono::Utc>>> {
        self.inner.recent_failures(key, now, window).await
    }
    async fn clear_failures(&self, key: &str) -> StoreResult<()> {
        self.clears.fetch_add(1, Ordering::SeqCst);
        self.inner.clear_failures(key).await
    }
    async fn purge_expired(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<u64> {
        self.inner.purge_expired(now).await
    }
}

/// A success clears the identifier's count and gives the address its
/// attempt back: successes never use up an address's limit.
#[tokio::test]
async fn a_success_clears_the_identifier_and_refunds_the_address() {
    let memory = Arc::new(sentri_memory::MemoryStore::new());
    let counting = Arc::new(Counting {
        inner: memory.clone(),
        clears: AtomicUsize::new(0),
        refunds: AtomicUsize::new(0),
    });
    let mut stores = Stores::from_backend(memory);
    stores.throttle = counting.clone();
    let env = env_on(
        base().throttle(ThrottleConfig {
            max_failures_per_ip: 3,
            ..ThrottleConfig::default()
        }),
        stores,
    )
    .await;
    env.sentri
        .register(register_input("ivy@example.com"))
        .await
        .unwrap();
    for _ in 0..5 {
        env.sentri
            .login(login_input("ivy@example.com", PASSWORD))
            .await
            .unwrap();
    }
    // Five successes used none of the address's 3 attempts: each was
    // settled (in the background, after it answered) before the next
    // reservation of its keys.
    for i in 0..3 {
        let err = env
            .sentri
            .login(login_input("ivy@example.com", "bad password"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidCredentials);
        if i == 0 {
            assert_eq!(counting.clears.load(Ordering::SeqCst), 5);
            assert_eq!(counting.refunds.load(Ordering::SeqCst), 5);
        }
    }
    let err = env
        .sentri
        .login(login_input("ivy@example.com", PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited);
    // Refused by its address first, it never touched the identifier's
    // count: nothing to refund.
    assert_eq!(counting.refunds.load(Ordering::SeqCst), 5);
}

/// A login the server could not conclude (the hashing slot stayed busy
/// beyond `max_wait`) gives its reservations back; concluded failures stay
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_hasher_refunds_the_attempt() {
    // One slot, a hash of several milliseconds, a wait of 1 ms.
    let policy = sentri_core::password::PasswordPolicy::argon2id(8192, 2, 1)
        .max_concurrent(1)
        .max_wait(Duration::from_millis(1));
    let env = env_with(base().password_policy(policy).throttle(ThrottleConfig {
        max_failures_per_ip: 40,
        ..ThrottleConfig::default()
    }))
    .await;
    let inputs = (0..40)
        .map(|i| from(&format!("x{i}@example.com"), "wrong password", "192.0.2.77"))
        .collect();
    let results = burst(&env.sentri, inputs).await;
    let busy = count(&results, ErrorCode::ServiceUnavailable);
    let failed = count(&results, ErrorCode::InvalidCredentials);
    assert_eq!(busy + failed, 40, "{results:?}");
    assert!(
        busy > 0,
        "40 logins on one slot with a 1 ms wait: some are busy"
    );
    // Exactly the concluded failures count toward the address.
    for i in 0..40 - failed {
        let err = env
            .sentri
            .login(from(
                &format!("y{i}@example.com"),
                "wrong password",
                "192.0.2.77",
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidCredentials, "attempt {i}");
    }
    let err = env
        .sentri
        .login(from("z@example.com", "wrong password", "192.0.2.77"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited);
}

/// A success clears the identifier's failures before the next login of it
/// is reserved, though it answers before its settling: with one failure to
/// spare, a success, then the full limit of failures again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_success_clears_the_count_before_the_next_login() {
    let env = env_with(base().throttle(ThrottleConfig {
        max_failures_per_identifier: 3,
        ..ThrottleConfig::default()
    }))
    .await;
    env.sentri
        .register(register_input("kim@example.com"))
        .await
        .unwrap();
    for round in 0..3 {
        for _ in 0..2 {
            let err = env
                .sentri
                .login(from("kim@example.com", "bad password", "192.0.2.90"))
                .await
                .unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidCredentials, "round {round}");
        }
        // The third attempt in the window: admitted, and it clears.
        env.sentri
            .login(from("kim@example.com", PASSWORD, "192.0.2.90"))
            .await
            .unwrap();
    }
    for _ in 0..3 {
        let err = env
            .sentri
            .login(from("kim@example.com", "bad password", "192.0.2.90"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidCredentials);
    }
    let err = env
        .sentri
        .login(from("kim@example.com", PASSWORD, "192.0.2.90"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited);
}
