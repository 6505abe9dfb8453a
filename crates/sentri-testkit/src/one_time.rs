//! Checks of [`OneTimeTokenStore`]; run them all with
//! [`one_time_token_store_tests!`](crate::one_time_token_store_tests).
//!
//! Every check uses fresh random hashes and user ids, and purposes made up
//! for it (`testkit.` and 16 hex digits), so checks sharing a store never
//! see each other's records. The one global operation,
//! `purge_expired_tokens`, runs at a time in 2001, before any other
//! check's expiry.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use sentri_core::model::{TokenHash, UserId};
use sentri_core::one_time::{OneTimePayload, OneTimeRecord, TokenPurpose};
use sentri_core::store::{OneTimeTokenStore, StoreErrorKind};

use super::{era_2001, expect_err, now, ok, plus, race, token_hash};

/// How many consumers race for one token.
const RACERS: usize = 50;

/// A purpose no other check uses.
fn purpose() -> TokenPurpose {
    let id = uuid::Uuid::new_v4().simple().to_string();
    TokenPurpose::new(format!("testkit.{}", &id[..16])).expect("a valid purpose")
}

/// A fresh record of `purpose` for `user`, minted at `at`, expiring at
/// `expires`, with an e-mail address as payload.
fn record(
    purpose: &TokenPurpose,
    user: UserId,
    at: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> OneTimeRecord {
    OneTimeRecord {
        purpose: purpose.clone(),
        token_hash: token_hash(),
        user_id: user,
        payload: Some(OneTimePayload::new("new.address@example.test").expect("payload")),
        created_at: at,
        expires_at: expires,
    }
}

async fn insert<S: OneTimeTokenStore + ?Sized>(store: &S, record: &OneTimeRecord) {
    ok(store.insert_token(record.clone()).await, "insert_token");
}

async fn consume<S: OneTimeTokenStore + ?Sized>(
    store: &S,
    purpose: &TokenPurpose,
    hash: &TokenHash,
    at: DateTime<Utc>,
) -> Option<OneTimeRecord> {
    ok(
        store.consume_token(purpose, hash, at).await,
        "consume_token",
    )
}

/// `consume_token` at `at` must return exactly `want`.
#[track_caller]
fn expect_record(got: Option<OneTimeRecord>, want: &OneTimeRecord, what: &str) {
    match got {
        Some(got) => assert!(
            got == *want,
            "{what}: consume_token must return the record as inserted \
             (purpose, hash, user, payload, times), got {got:?}, expected {want:?}"
        ),
        None => panic!("{what}: consume_token must return the live record, got None"),
    }
}

/// A record comes back from `consume_token` exactly as inserted: purpose,
/// hash, user, payload (none, empty, and the longest with multi-byte
/// characters) and both times.
pub async fn insert_and_consume<S: OneTimeTokenStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let p = purpose();
    // The longest payload: multi-byte characters, a quote and a newline.
    let longest = format!("{}\"\n", "é".repeat(OneTimePayload::MAX_LEN / 2 - 1));
    for payload in [
        None,
        Some(""),
        Some("new@example.test"),
        Some(longest.as_str()),
    ] {
        let mut r = record(&p, UserId::new(), at, plus(at, 900));
        r.payload = payload.map(|s| OneTimePayload::new(s).expect("payload"));
        insert(&*store, &r).await;
        expect_record(
            consume(&*store, &p, &r.token_hash, at).await,
            &r,
            &format!(
                "a live token with payload of {:?} bytes",
                payload.map(str::len)
            ),
        );
    }
}

/// Nothing is found for a hash never stored.
pub async fn consume_unknown<S: OneTimeTokenStore + ?Sized>(store: Arc<S>) {
    let at = now();
    assert!(
        consume(&*store, &purpose(), &token_hash(), at)
            .await
            .is_none(),
        "consume_token of a hash never stored must be None"
    );
}

/// A token is found only under its own purpose: consuming it under another
/// purpose returns nothing and leaves it redeemable under its own.
pub async fn wrong_purpose_finds_nothing<S: OneTimeTokenStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let (p, other) = (purpose(), purpose());
    let r = record(&p, UserId::new(), at, plus(at, 900));
    insert(&*store, &r).await;
    assert!(
        consume(&*store, &other, &r.token_hash, at).await.is_none(),
        "consume_token under another purpose must not return the token"
    );
    expect_record(
        consume(&*store, &p, &r.token_hash, at).await,
        &r,
        "a token after a consume_token under another purpose",
    );
}

/// The same hash under two purposes is two independent records.
pub async fn purposes_are_independent<S: OneTimeTokenStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let (p, q) = (purpose(), purpose());
    let a = record(&p, UserId::new(), at, plus(at, 900));
    let b = OneTimeRecord {
        purpose: q.clone(),
        user_id: UserId::new(),
        payload: None,
        ..a.clone()
    };
    insert(&*store, &a).await;
    insert(&*store, &b).await;
    expect_record(
        consume(&*store, &q, &b.token_hash, at).await,
        &b,
        "the second purpose's record of a shared hash",
    );
    expect_record(
        consume(&*store, &p, &a.token_hash, at).await,
        &a,
        "the first purpose's record after the second's was consumed",
    );
}

/// An expired token (`expires_at <= now`) is never returned, and consuming
/// it changes nothing; one second before expiry it is still live.
pub async fn expired_is_never_returned<S: OneTimeTokenStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let p = purpose();
    let r = record(&p, UserId::new(), plus(at, -900), at);
    insert(&*store, &r).await;
    assert!(
        consume(&*store, &p, &r.token_hash, at).await.is_none(),
        "consume_token at exactly expires_at must be None (expired)"
    );
    assert!(
        consume(&*store, &p, &r.token_hash, plus(at, 3600))
            .await
            .is_none(),
        "consume_token after expires_at must be None"
    );
    // The refusals did not delete it: at a time it was live it is there.
    expect_record(
        consume(&*store, &p, &r.token_hash, plus(at, -1)).await,
        &r,
        "a token one second before its expiry",
    );
}

/// A token is consumed once: the second `consume_token` returns nothing.
pub async fn consume_twice_fails<S: OneTimeTokenStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let p = purpose();
    let r = record(&p, UserId::new(), at, plus(at, 900));
    insert(&*store, &r).await;
    expect_record(
        consume(&*store, &p, &r.token_hash, at).await,
        &r,
        "the first consume_token",
    );
    assert!(
        consume(&*store, &p, &r.token_hash, at).await.is_none(),
        "a second consume_token of one token must be None"
    );
}

/// Inserting a second record with the purpose and hash of an existing one
/// (live, or expired and not purged) is `Conflict` and keeps the first.
pub async fn insert_conflict<S: OneTimeTokenStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let p = purpose();
    let r = record(&p, UserId::new(), at, plus(at, 900));
    insert(&*store, &r).await;
    let twin = OneTimeRecord {
        user_id: UserId::new(),
        payload: None,
        ..r.clone()
    };
    expect_err(
        store.insert_token(twin).await,
        StoreErrorKind::Conflict,
        "insert_token of an existing purpose and hash",
    );
    let expired = record(&p, UserId::new(), plus(at, -900), plus(at, -1));
    insert(&*store, &expired).await;
    expect_err(
        store.insert_token(expired.clone()).await,
        StoreErrorKind::Conflict,
        "insert_token of an expired, unpurged purpose and hash",
    );
    expect_record(
        consume(&*store, &p, &r.token_hash, at).await,
        &r,
        "the first record after a conflicting insert",
    );
}

/// `delete_user_tokens` deletes every token of the user with the purpose,
/// expired ones included, returns how many, and leaves other users' and
/// other purposes' tokens alone.
pub async fn delete_user_tokens_invalidates<S: OneTimeTokenStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let (p, other) = (purpose(), purpose());
    let (user, neighbour) = (UserId::new(), UserId::new());
    let gone = [
        record(&p, user, at, plus(at, 900)),
        record(&p, user, at, plus(at, 1800)),
        record(&p, user, plus(at, -900), plus(at, -1)),
    ];
    let kept = [
        record(&other, user, at, plus(at, 900)),
        record(&p, neighbour, at, plus(at, 900)),
    ];
    for r in gone.iter().chain(kept.iter()) {
        insert(&*store, r).await;
    }
    assert_eq!(
        ok(
            store.delete_user_tokens(user, &p).await,
            "delete_user_tokens"
        ),
        gone.len() as u64,
        "delete_user_tokens must count the tokens it deleted, expired ones included"
    );
    for r in &gone {
        assert!(
            consume(&*store, &p, &r.token_hash, plus(at, -2))
                .await
                .is_none(),
            "delete_user_tokens must delete every token of the user and purpose"
        );
    }
    for r in &kept {
        expect_record(
            consume(&*store, &r.purpose, &r.token_hash, at).await,
            r,
            "delete_user_tokens must keep other purposes' and other users' tokens",
        );
    }
    assert_eq!(
        ok(
            store.delete_user_tokens(user, &p).await,
            "delete_user_tokens"
        ),
        0,
        "delete_user_tokens of a user without tokens deletes nothing"
    );
}

/// `purge_expired_tokens` deletes the tokens expired at `now` (at or before
/// it) of every purpose, counts them, and keeps the live ones.
pub async fn purge_expired_tokens<S: OneTimeTokenStore + ?Sized>(store: Arc<S>) {
    let base = era_2001(0);
    let (p, q) = (purpose(), purpose());
    let now = plus(base, 1_000);
    let gone = [
        record(&p, UserId::new(), base, plus(base, 100)),
        record(&q, UserId::new(), base, plus(base, 200)),
        record(&p, UserId::new(), base, now),
    ];
    let kept = [
        record(&p, UserId::new(), base, plus(now, 1)),
        record(&q, UserId::new(), base, plus(base, 20_000)),
    ];
    for r in gone.iter().chain(kept.iter()) {
        insert(&*store, r).await;
    }
    let n = ok(
        store.purge_expired_tokens(now).await,
        "purge_expired_tokens",
    );
    assert!(
        n >= gone.len() as u64,
        "purge_expired_tokens must count the tokens it deleted (expected at least {}, got {n})",
        gone.len()
    );
    for r in &gone {
        // Re-inserting succeeds only if the purge really deleted the row.
        ok(
            store.insert_token(r.clone()).await,
            "insert_token of a purged token's purpose and hash",
        );
    }
    for r in &kept {
        expect_record(
            consume(&*store, &r.purpose, &r.token_hash, now).await,
            r,
            "purge_expired_tokens must keep live tokens",
        );
    }
    let purged_again = ok(
        store.purge_expired_tokens(now).await,
        "purge_expired_tokens",
    );
    assert!(
        purged_again >= gone.len() as u64,
        "purge_expired_tokens must delete the re-inserted expired tokens too"
    );
}

/// Of 50 concurrent `consume_token` of one token exactly one gets it; of
/// 50 concurrent consumers of an expired token none does.
pub async fn concurrent_consume<S: OneTimeTokenStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let p = purpose();
    let r = record(&p, UserId::new(), at, plus(at, 900));
    insert(&*store, &r).await;
    let (purpose, hash) = (p.clone(), r.token_hash);
    let won: Vec<OneTimeRecord> = race(&store, RACERS, |store, _| {
        let purpose = purpose.clone();
        async move { store.consume_token(&purpose, &hash, at).await }
    })
    .await
    .into_iter()
    .filter_map(|got| ok(got, "concurrent consume_token"))
    .collect();
    assert_eq!(
        won.len(),
        1,
        "of {RACERS} concurrent consume_token of one token exactly one must get it"
    );
    expect_record(won.into_iter().next(), &r, "the winner of the race");

    let expired = record(&p, UserId::new(), plus(at, -900), at);
    insert(&*store, &expired).await;
    let hash = expired.token_hash;
    let won = race(&store, RACERS, |store, _| {
        let purpose = purpose.clone();
        async move { store.consume_token(&purpose, &hash, at).await }
    })
    .await
    .into_iter()
    .filter_map(|got| ok(got, "concurrent consume_token of an expired token"))
    .count();
    assert_eq!(
        won, 0,
        "concurrent consume_token of an expired token must all be None"
    );
}
