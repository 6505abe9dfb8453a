//! One-time tokens through [`OneTimeTokens`] (SPEC §10): minting, redeeming
//! once, purposes, expiry, replacement, malformed input and store failures,
//! on the memory store behind a spy that sees what reaches the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use sentri_core::clock::Clock;
use sentri_core::model::{TokenHash, UserId};
use sentri_core::one_time::{
    OneTimePayload, OneTimeRecord, OneTimeSecret, OneTimeTokens, TokenPurpose, hash_secret,
};
use sentri_core::store::{OneTimeTokenStore, StoreError, StoreResult};
use sentri_core::{Error, ErrorCode};
use sentri_memory::MemoryStore;
use sha2::{Digest, Sha256};

const RESET: TokenPurpose = TokenPurpose::from_static("password_reset");
const MAGIC: TokenPurpose = TokenPurpose::from_static("magic_link");
const TTL: Duration = Duration::from_secs(30 * 60);

/// The memory store, with a record of every inserted record, a count of
/// `consume_token` calls, and a switch that makes every call unavailable.
#[derive(Default)]
struct Spy {
    inner: MemoryStore,
    inserted: Mutex<Vec<OneTimeRecord>>,
    consumes: AtomicUsize,
    down: AtomicBool,
}

impl Spy {
    fn check(&self) -> StoreResult<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::unavailable("the spy is down"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl OneTimeTokenStore for Spy {
    async fn insert_token(&self, record: OneTimeRecord) -> StoreResult<()> {
        self.check()?;
        self.inserted.lock().push(record.clone());
        self.inner.insert_token(record).await
    }

    async fn consume_token(
        &self,
        purpose: &TokenPurpose,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<OneTimeRecord>> {
        self.consumes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.consume_token(purpose, hash, now).await
    }

    async fn delete_user_tokens(&self, user: UserId, purpose: &TokenPurpose) -> StoreResult<u64> {
        self.check()?;
        self.inner.delete_user_tokens(user, purpose).await
    }

    async fn purge_expired_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.check()?;
        self.inner.purge_expired_tokens(now).await
    }
}

fn setup() -> (Arc<Spy>, OneTimeTokens, Clock) {
    let spy = Arc::new(Spy::default());
    let clock = Clock::manual_at_now();
    let tokens = OneTimeTokens::new(spy.clone()).with_clock(clock.clone());
    (spy, tokens, clock)
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    match result {
        Err(err) => assert_eq!(err.code(), ErrorCode::TokenInvalid, "{what}: {err:?}"),
        Ok(v) => panic!("{what}: expected TOKEN_INVALID, got Ok({v:?})"),
    }
}

async fn mint(tokens: &OneTimeTokens, purpose: &TokenPurpose, user: UserId) -> OneTimeSecret {
    tokens
        .mint(purpose, user, TTL, None)
        .await
        .expect("mint a token")
}

#[tokio::test]
async fn mint_stores_only_the_hash_and_redeem_returns_the_record_once() {
    let (spy, tokens, clock) = setup();
    let user = UserId::new();
    let payload = OneTimePayload::new("new@example.com").unwrap();
    let secret = tokens
        .mint(&RESET, user, TTL, Some(payload.clone()))
        .await
        .unwrap();
    let text = secret.expose_secret();

    // 43 URL-safe characters encoding 32 random bytes.
    assert_eq!(text.len(), 43);
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{text}"
    );
    let bytes = URL_SAFE_NO_PAD.decode(text).unwrap();
    assert_eq!(bytes.len(), 32);

    // What reached the store: the SHA-256 of the bytes, never the secret.
    let inserted = spy.inserted.lock().clone();
    assert_eq!(inserted.len(), 1);
    let stored = &inserted[0];
    assert_eq!(
        stored.token_hash.0,
        <[u8; 32]>::from(Sha256::digest(&bytes))
    );
    assert_eq!(hash_secret(text), Some(stored.token_hash));
    assert_ne!(stored.token_hash.0.as_slice(), bytes.as_slice());
    assert_eq!(stored.user_id, user);
    assert_eq!(stored.purpose, RESET);
    assert_eq!(stored.payload, Some(payload));
    assert_eq!(stored.created_at, clock.now());
    assert_eq!(
        stored.expires_at,
        clock.now() + chrono::TimeDelta::minutes(30)
    );
    assert_eq!(secret.expires_at(), stored.expires_at);

    let record = tokens.redeem(&RESET, text).await.unwrap();
    assert_eq!(&record, stored);
    assert_invalid(tokens.redeem(&RESET, text).await, "a second redeem");
}

#[tokio::test]
async fn a_token_is_worthless_for_another_purpose() {
    let (_, tokens, _) = setup();
    let secret = mint(&tokens, &MAGIC, UserId::new()).await;
    assert_invalid(
        tokens.redeem(&RESET, secret.expose_secret()).await,
        "a magic link redeemed as a reset token",
    );
    // The failed attempt did not use it up.
    tokens
        .redeem(&MAGIC, secret.expose_secret())
        .await
        .expect("the magic link under its own purpose");
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let (_, tokens, clock) = setup();
    let early = mint(&tokens, &RESET, UserId::new()).await;
    let late = mint(&tokens, &RESET, UserId::new()).await;
    clock.advance(TTL - Duration::from_secs(1));
    tokens
        .redeem(&RESET, early.expose_secret())
        .await
        .expect("a second before expiry");
    clock.advance(Duration::from_secs(1));
    assert_invalid(
        tokens.redeem(&RESET, late.expose_secret()).await,
        "at the expiry",
    );
}

#[tokio::test]
async fn mint_replacing_voids_the_older_tokens_of_the_purpose() {
    let (_, tokens, _) = setup();
    let (user, other) = (UserId::new(), UserId::new());
    let first = mint(&tokens, &RESET, user).await;
    let second = mint(&tokens, &RESET, user).await;
    let magic = mint(&tokens, &MAGIC, user).await;
    let neighbour = mint(&tokens, &RESET, other).await;
    let newest = tokens
        .mint_replacing(&RESET, user, TTL, None)
        .await
        .unwrap();
    for old in [&first, &second] {
        assert_invalid(
            tokens.redeem(&RESET, old.expose_secret()).await,
            "a token older than the replacing one",
        );
    }
    for (purpose, kept) in [(&RESET, &newest), (&MAGIC, &magic), (&RESET, &neighbour)] {
        tokens
            .redeem(purpose, kept.expose_secret())
            .await
            .expect("the newest token, other purposes and other users are kept");
    }
    // `mint` alone keeps the older ones (several challenges may be open).
    let a = mint(&tokens, &RESET, user).await;
    let b = mint(&tokens, &RESET, user).await;
    assert_eq!(tokens.revoke_user_tokens(user, &RESET).await.unwrap(), 2);
    for gone in [a, b] {
        assert_invalid(
            tokens.redeem(&RESET, gone.expose_secret()).await,
            "a revoked token",
        );
    }
}

#[tokio::test]
async fn malformed_secrets_are_refused_without_asking_the_store() {
    let (spy, tokens, _) = setup();
    let real = mint(&tokens, &RESET, UserId::new()).await;
    let real = real.expose_secret();
    let huge = "A".repeat(1 << 20);
    let malformed = [
        String::new(),
        " ".to_owned(),
        "not-a-token".to_owned(),
        real[..42].to_owned(),
        format!("{real}A"),
        format!("{real}="),
        format!("{}+", &real[..42]),
        format!("{}.", &real[..42]),
        format!("{}\0", &real[..42]),
        format!("{}é", &real[..41]),
        huge,
    ];
    for bad in &malformed {
        let err = tokens.redeem(&RESET, bad).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenInvalid);
        assert_eq!(err.to_string(), "token invalid");
    }
    assert_eq!(
        spy.consumes.load(Ordering::SeqCst),
        0,
        "a malformed secret must not reach the store"
    );
    // A well-formed but unknown secret is the same error, from the store.
    let unknown = URL_SAFE_NO_PAD.encode([0u8; 32]);
    assert_invalid(tokens.redeem(&RESET, &unknown).await, "an unknown secret");
    assert_eq!(spy.consumes.load(Ordering::SeqCst), 1);
    tokens
        .redeem(&RESET, real)
        .await
        .expect("the real token survives the malformed attempts");
}

#[tokio::test]
async fn secrets_are_distinct() {
    let (_, tokens, _) = setup();
    let user = UserId::new();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..500 {
        let secret = mint(&tokens, &MAGIC, user).await;
        assert!(seen.insert(secret.expose_secret().to_owned()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_redemptions_exactly_one_wins() {
    let (_, tokens, _) = setup();
    let secret = Arc::new(mint(&tokens, &RESET, UserId::new()).await);
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (tokens, secret, barrier) = (tokens.clone(), secret.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                tokens.redeem(&RESET, secret.expose_secret()).await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(err) => assert_eq!(err.code(), ErrorCode::TokenInvalid),
        }
    }
    assert_eq!(won, 1, "exactly one of 50 concurrent redemptions wins");
}

#[tokio::test]
async fn bad_ttls_and_store_failures_are_errors() {
    let (spy, tokens, clock) = setup();
    let user = UserId::new();
    for ttl in [Duration::ZERO, Duration::MAX] {
        let err = tokens.mint(&RESET, user, ttl, None).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::ConfigurationError);
        let err = tokens
            .mint_replacing(&RESET, user, ttl, None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::ConfigurationError);
    }
    let secret = mint(&tokens, &RESET, user).await;
    spy.down.store(true, Ordering::SeqCst);
    let unavailable = |err: Error| assert_eq!(err.code(), ErrorCode::ServiceUnavailable);
    unavailable(tokens.mint(&RESET, user, TTL, None).await.unwrap_err());
    unavailable(
        tokens
            .mint_replacing(&RESET, user, TTL, None)
            .await
            .unwrap_err(),
    );
    let err = tokens
        .redeem(&RESET, secret.expose_secret())
        .await
        .unwrap_err();
    assert!(!format!("{err:?}").contains(secret.expose_secret()));
    unavailable(err);
    unavailable(tokens.revoke_user_tokens(user, &RESET).await.unwrap_err());
    unavailable(tokens.purge_expired().await.unwrap_err());

    spy.down.store(false, Ordering::SeqCst);
    clock.advance(TTL);
    assert_eq!(tokens.purge_expired().await.unwrap(), 1);
    assert_invalid(
        tokens.redeem(&RESET, secret.expose_secret()).await,
        "a purged token",
    );
}

#[tokio::test]
async fn debug_output_shows_no_secret_or_hash() {
    let (spy, tokens, _) = setup();
    let payload = OneTimePayload::new("new@example.com").unwrap();
    let secret = tokens
        .mint(&RESET, UserId::new(), TTL, Some(payload))
        .await
        .unwrap();
    let text = secret.expose_secret().to_owned();
    let record = spy.inserted.lock()[0].clone();
    let hash_hex: String = record
        .token_hash
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let hash_b64 = URL_SAFE_NO_PAD.encode(record.token_hash.0);
    for shown in [
        format!("{secret:?}"),
        format!("{record:?}"),
        format!("{record:#?}"),
        format!("{tokens:?}"),
    ] {
        assert!(!shown.contains(&text), "{shown}");
        assert!(!shown.contains(&text[..12]), "{shown}");
        assert!(!shown.to_lowercase().contains(&hash_hex[..12]), "{shown}");
        assert!(!shown.contains(&hash_b64[..12]), "{shown}");
        assert!(!shown.contains("new@example.com"), "{shown}");
    }
}

/// The one-time token store travels in `Stores`, and `Sentri` purges its
/// expired tokens with the expired sessions; without one, nothing to do.
#[tokio::test]
async fn sentri_purges_expired_one_time_tokens_of_its_stores() {
    use sentri_core::store::Stores;
    let memory = Arc::new(MemoryStore::new());
    let stores = memory.clone().stores();
    let store = stores
        .require_one_time_tokens("the test")
        .expect("MemoryStore::stores carries one-time tokens")
        .clone();
    let clock = Clock::manual_at_now();
    let config = sentri_core::Config::builder()
        .hs256("test-secret-test-secret-test-secret!")
        .valid_roles(["user"])
        .build()
        .unwrap();
    let sentri = sentri_core::Sentri::with_clock(config, stores, clock.clone())
        .await
        .unwrap();
    let tokens = OneTimeTokens::new(store).with_clock(clock.clone());
    let user = UserId::new();
    let short = tokens.mint(&RESET, user, TTL, None).await.unwrap();
    let long = tokens.mint(&MAGIC, user, TTL * 4, None).await.unwrap();
    assert_eq!(sentri.purge_expired_one_time_tokens().await.unwrap(), 0);
    clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(sentri.purge_expired_one_time_tokens().await.unwrap(), 1);
    tokens
        .redeem(&RESET, short.expose_secret())
        .await
        .unwrap_err();
    tokens.redeem(&MAGIC, long.expose_secret()).await.unwrap();

    let bare = Stores::from_backend(memory);
    let Err(err) = bare.require_one_time_tokens("e-mail flows") else {
        panic!("a store without one-time tokens must say so");
    };
    assert_eq!(err.code(), ErrorCode::ConfigurationError);
    assert!(err.to_string().contains("e-mail flows"), "{err}");
}
