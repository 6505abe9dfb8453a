//! Checks of [`KeyStore`]; run them all with
//! [`key_store_tests!`](crate::key_store_tests).
//!
//! Every check uses its own made-up algorithm names (`T` and 15 hex digits),
//! so checks sharing one store never see each other's active keys.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zeroize::Zeroizing;

use sentri_core::model::KeyRecord;
use sentri_core::store::KeyStore;

use super::{era_2001, now, ok, plus, race};

/// A fresh algorithm name, unique to one check.
fn algorithm() -> String {
    let hex = Uuid::new_v4().simple().to_string();
    format!("T{}", &hex[..15])
}

/// A fresh active key of `algorithm`, created at `at`.
fn key(algorithm: &str, at: DateTime<Utc>) -> KeyRecord {
    let kid = Uuid::new_v4().simple().to_string();
    KeyRecord {
        private_key_pem: Zeroizing::new(format!(
            "-----BEGIN PRIVATE KEY-----\nTEST{kid}\n-----END PRIVATE KEY-----\n"
        )),
        kid,
        algorithm: algorithm.to_owned(),
        created_at: at,
        retired_at: None,
    }
}

/// The keys of `algorithm`, in the store's order.
async fn keys_of<S: KeyStore + ?Sized>(store: &S, algorithm: &str) -> Vec<KeyRecord> {
    ok(store.list_keys().await, "list_keys")
        .into_iter()
        .filter(|k| k.algorithm == algorithm)
        .collect()
}

fn kids(keys: &[KeyRecord]) -> Vec<&str> {
    keys.iter().map(|k| k.kid.as_str()).collect()
}

/// `insert_key_if_none` with no active key stores the key and returns it
/// unchanged (private key included); `list_keys` then has it, active.
pub async fn insert_key_if_none_inserts<S: KeyStore + ?Sized>(store: Arc<S>) {
    let alg = algorithm();
    let k1 = key(&alg, now());
    let active = ok(
        store.insert_key_if_none(k1.clone()).await,
        "insert_key_if_none",
    );
    assert!(
        active == k1,
        "insert_key_if_none must return the key it inserted unchanged"
    );
    let listed = keys_of(&*store, &alg).await;
    assert_eq!(listed.len(), 1, "list_keys must have the inserted key");
    assert!(
        listed[0] == k1,
        "list_keys must return the key unchanged (private key included)"
    );
}

/// `insert_key_if_none` with an active key returns that key and stores
/// nothing.
pub async fn insert_key_if_none_returns_existing<S: KeyStore + ?Sized>(store: Arc<S>) {
    let alg = algorithm();
    let at = now();
    let k1 = key(&alg, at);
    ok(
        store.insert_key_if_none(k1.clone()).await,
        "insert_key_if_none",
    );
    let k2 = key(&alg, plus(at, 10));
    let active = ok(store.insert_key_if_none(k2).await, "insert_key_if_none");
    assert!(
        active == k1,
        "insert_key_if_none must return the existing active key (got kid {})",
        active.kid
    );
    let listed = keys_of(&*store, &alg).await;
    assert_eq!(
        kids(&listed),
        vec![k1.kid.as_str()],
        "insert_key_if_none must not store a key when one is active"
    );
}

/// An active key of one algorithm does not stop `insert_key_if_none` or
/// `rotate_key` of another.
pub async fn algorithms_are_independent<S: KeyStore + ?Sized>(store: Arc<S>) {
    let (a, b) = (algorithm(), algorithm());
    let at = now();
    let ka = key(&a, at);
    let kb = key(&b, at);
    assert!(
        ok(
            store.insert_key_if_none(ka.clone()).await,
            "insert_key_if_none"
        ) == ka
    );
    assert!(
        ok(
            store.insert_key_if_none(kb.clone()).await,
            "insert_key_if_none"
        ) == kb,
        "an active key of another algorithm must not count"
    );
    let kb2 = key(&b, plus(at, 1));
    ok(
        store.rotate_key(kb2.clone(), plus(at, 1)).await,
        "rotate_key",
    );
    let listed_a = keys_of(&*store, &a).await;
    assert_eq!(listed_a.len(), 1);
    assert_eq!(
        listed_a[0].retired_at, None,
        "rotate_key must not retire keys of another algorithm"
    );
    assert!(
        ok(
            store.insert_key_if_none(key(&a, at)).await,
            "insert_key_if_none"
        ) == ka
    );
}

/// `rotate_key` retires every active key of the algorithm with
/// `retired_at = now` and makes the new key the active one; `list_keys` is
/// oldest first and keeps the retired keys.
pub async fn rotate_key<S: KeyStore + ?Sized>(store: Arc<S>) {
    let alg = algorithm();
    let at = now();
    let k1 = key(&alg, at);
    ok(
        store.insert_key_if_none(k1.clone()).await,
        "insert_key_if_none",
    );

    let t1 = plus(at, 100);
    let k2 = key(&alg, t1);
    ok(store.rotate_key(k2.clone(), t1).await, "rotate_key");
    let listed = keys_of(&*store, &alg).await;
    assert_eq!(
        kids(&listed),
        vec![k1.kid.as_str(), k2.kid.as_str()],
        "list_keys must keep the retired key and list keys oldest first"
    );
    assert_eq!(
        listed[0].retired_at,
        Some(t1),
        "rotate_key must retire the old key at now"
    );
    assert!(
        listed[1] == k2,
        "rotate_key must store the new key active and unchanged"
    );
    assert!(
        ok(
            store.insert_key_if_none(key(&alg, t1)).await,
            "insert_key_if_none"
        ) == k2,
        "after rotate_key the new key is the active one"
    );

    let t2 = plus(at, 200);
    let k3 = key(&alg, t2);
    ok(store.rotate_key(k3.clone(), t2).await, "rotate_key");
    let listed = keys_of(&*store, &alg).await;
    assert_eq!(kids(&listed), vec![&*k1.kid, &*k2.kid, &*k3.kid]);
    assert_eq!(
        listed[0].retired_at,
        Some(t1),
        "an already retired key keeps its retired_at"
    );
    assert_eq!(
        listed[1].retired_at,
        Some(t2),
        "rotate_key must retire the active key at now"
    );
    assert_eq!(listed[2].retired_at, None, "the newest key is active");
    let active: Vec<_> = listed.iter().filter(|k| k.retired_at.is_none()).collect();
    assert_eq!(active.len(), 1, "exactly one key of an algorithm is active");
}

/// `rotate_key` when no key of the algorithm is active just inserts the key.
pub async fn rotate_key_without_active_key<S: KeyStore + ?Sized>(store: Arc<S>) {
    let alg = algorithm();
    let at = now();
    let k1 = key(&alg, at);
    ok(store.rotate_key(k1.clone(), at).await, "rotate_key");
    let listed = keys_of(&*store, &alg).await;
    assert_eq!(listed.len(), 1, "rotate_key must insert the key");
    assert!(
        listed[0] == k1,
        "rotate_key must store the key active and unchanged"
    );
    assert!(
        ok(
            store.insert_key_if_none(key(&alg, at)).await,
            "insert_key_if_none"
        ) == k1
    );
}

/// `delete_keys_retired_before` deletes only keys retired before the given
/// time (never active ones) and counts them. Runs in the year 2001 so it
/// cannot touch other checks' keys.
pub async fn delete_keys_retired_before<S: KeyStore + ?Sized>(store: Arc<S>) {
    let alg = algorithm();
    let base = era_2001(0);
    let k1 = key(&alg, base);
    let k2 = key(&alg, plus(base, 10));
    let k3 = key(&alg, plus(base, 20));
    let k4 = key(&alg, plus(base, 30));
    ok(
        store.insert_key_if_none(k1.clone()).await,
        "insert_key_if_none",
    );
    ok(
        store.rotate_key(k2.clone(), plus(base, 10)).await,
        "rotate_key",
    );
    ok(
        store.rotate_key(k3.clone(), plus(base, 20)).await,
        "rotate_key",
    );
    ok(
        store.rotate_key(k4.clone(), plus(base, 30)).await,
        "rotate_key",
    );
    // k1 retired at +10, k2 at +20, k3 at +30, k4 active.

    let n = ok(
        store.delete_keys_retired_before(plus(base, 25)).await,
        "delete_keys_retired_before",
    );
    assert!(
        n >= 2,
        "delete_keys_retired_before must count the keys it deleted (expected at least 2, got {n})"
    );
    let listed = keys_of(&*store, &alg).await;
    assert_eq!(
        kids(&listed),
        vec![&*k3.kid, &*k4.kid],
        "delete_keys_retired_before must delete only keys retired before the time"
    );
    assert_eq!(
        ok(
            store.delete_keys_retired_before(plus(base, 25)).await,
            "delete_keys_retired_before"
        ),
        0,
        "nothing is left to delete"
    );
    ok(
        store.delete_keys_retired_before(plus(base, 10_000)).await,
        "delete_keys_retired_before",
    );
    let listed = keys_of(&*store, &alg).await;
    assert_eq!(
        kids(&listed),
        vec![&*k4.kid],
        "delete_keys_retired_before must never delete the active key"
    );
}

/// 8 concurrent `insert_key_if_none` with different kids: all get the same
/// key back and only one key of the algorithm is stored.
pub async fn concurrent_insert_key_if_none<S: KeyStore + ?Sized>(store: Arc<S>) {
    let alg = algorithm();
    let at = now();
    let results = race(&store, 8, |store, _| {
        let k = key(&alg, at);
        async move { store.insert_key_if_none(k).await }
    })
    .await;
    let results: Vec<KeyRecord> = results
        .into_iter()
        .map(|r| ok(r, "concurrent insert_key_if_none"))
        .collect();
    let kid = results[0].kid.clone();
    assert!(
        results.iter().all(|k| k.kid == kid),
        "every concurrent insert_key_if_none must return the same key"
    );
    let listed = keys_of(&*store, &alg).await;
    assert_eq!(
        kids(&listed),
        vec![kid.as_str()],
        "of 8 concurrent insert_key_if_none exactly one key must be stored"
    );
}

/// 8 concurrent `rotate_key` with different kids: every new key is stored
/// and exactly one key of the algorithm is active afterwards.
pub async fn concurrent_rotate_key<S: KeyStore + ?Sized>(store: Arc<S>) {
    let alg = algorithm();
    let at = now();
    let k0 = key(&alg, at);
    ok(store.insert_key_if_none(k0).await, "insert_key_if_none");
    let results = race(&store, 8, |store, i| {
        let k = key(&alg, plus(at, 1 + i as i64));
        async move { store.rotate_key(k, plus(at, 100)).await }
    })
    .await;
    for result in results {
        ok(result, "concurrent rotate_key");
    }
    let listed = keys_of(&*store, &alg).await;
    assert_eq!(listed.len(), 9, "every rotated-in key must be stored");
    let active: Vec<_> = listed.iter().filter(|k| k.retired_at.is_none()).collect();
    assert_eq!(
        active.len(),
        1,
        "after 8 concurrent rotate_key exactly one key must be active"
    );
    let returned = ok(
        store.insert_key_if_none(key(&alg, at)).await,
        "insert_key_if_none",
    );
    assert_eq!(
        returned.kid, active[0].kid,
        "insert_key_if_none returns the active key"
    );
}

/// `replace_private_key` changes the private key only while it still holds
/// `current`, changes nothing else of the row, and is `Ok(false)` for a
/// stale `current` or an unknown `kid`.
pub async fn replace_private_key_compares_and_sets<S: KeyStore + ?Sized>(store: Arc<S>) {
    let alg = algorithm();
    let at = now();
    let k1 = key(&alg, at);
    ok(
        store.insert_key_if_none(k1.clone()).await,
        "insert_key_if_none",
    );
    let sealed = format!("enc:v1:{}", Uuid::new_v4().simple());
    assert!(
        ok(
            store
                .replace_private_key(&k1.kid, &k1.private_key_pem, &sealed)
                .await,
            "replace_private_key"
        ),
        "replace_private_key with the current value must replace it"
    );
    let listed = keys_of(&*store, &alg).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].private_key_pem.as_str(),
        sealed,
        "list_keys must return the replaced private key"
    );
    assert!(
        listed[0].kid == k1.kid
            && listed[0].created_at == k1.created_at
            && listed[0].retired_at.is_none(),
        "replace_private_key must change nothing but the private key"
    );
    assert!(
        !ok(
            store
                .replace_private_key(&k1.kid, &k1.private_key_pem, "enc:v1:other")
                .await,
            "replace_private_key"
        ),
        "replace_private_key with a stale current value must be Ok(false)"
    );
    assert_eq!(
        keys_of(&*store, &alg).await[0].private_key_pem.as_str(),
        sealed,
        "a stale replace_private_key must change nothing"
    );
    assert!(
        !ok(
            store
                .replace_private_key(&Uuid::new_v4().simple().to_string(), &sealed, "x")
                .await,
            "replace_private_key"
        ),
        "replace_private_key of an unknown kid must be Ok(false)"
    );
    // A retired key can be replaced too (its public part is still published).
    let t1 = plus(at, 10);
    ok(store.rotate_key(key(&alg, t1), t1).await, "rotate_key");
    assert!(ok(
        store
            .replace_private_key(&k1.kid, &sealed, "enc:v1:again")
            .await,
        "replace_private_key"
    ));
    let listed = keys_of(&*store, &alg).await;
    assert_eq!(listed[0].private_key_pem.as_str(), "enc:v1:again");
    assert_eq!(
        listed[0].retired_at,
        Some(t1),
        "replace_private_key must keep retired_at"
    );
}

/// 8 concurrent `replace_private_key` of one key from the same current
/// value to different values: exactly one gets `Ok(true)`, and its value is
/// the one stored.
pub async fn concurrent_replace_private_key<S: KeyStore + ?Sized>(store: Arc<S>) {
    let alg = algorithm();
    let k1 = key(&alg, now());
    ok(
        store.insert_key_if_none(k1.clone()).await,
        "insert_key_if_none",
    );
    let current = k1.private_key_pem.to_string();
    let kid = k1.kid.clone();
    let results = race(&store, 8, |store, i| {
        let (kid, current) = (kid.clone(), current.clone());
        async move {
            let new = format!("enc:v1:racer-{i}");
            store
                .replace_private_key(&kid, &current, &new)
                .await
                .map(|won| won.then_some(new))
        }
    })
    .await;
    let winners: Vec<String> = results
        .into_iter()
        .filter_map(|r| ok(r, "concurrent replace_private_key"))
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "of 8 concurrent replace_private_key from one value exactly one must win"
    );
    assert_eq!(
        keys_of(&*store, &alg).await[0].private_key_pem.as_str(),
        winners[0],
        "the winner's value must be the one stored"
    );
}
