//! Checks of [`UserStore`]; run them all with
//! [`user_store_tests!`](crate::user_store_tests).

use std::sync::Arc;

use sentri_core::model::{User, UserId};
use sentri_core::store::{StoreErrorKind, UserStore};

use super::{create_user, expect_err, new_user, now, ok, password_hash, plus, race, unique};

fn strings(roles: &[&str]) -> Vec<String> {
    roles.iter().map(|r| (*r).to_owned()).collect()
}

/// `create_user` returns the user as given (no email verification, no login
/// yet, `updated_at == created_at`); `find_user` and
/// `find_user_by_identifier` return the full record with the normalised
/// identifier and the password hash.
pub async fn create_and_find<S: UserStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let new = new_user(&["admin", "user"], at);
    let created = ok(store.create_user(new.clone()).await, "create_user");
    let expected = User {
        id: new.id,
        identifier: new.identifier.clone(),
        roles: new.roles.clone(),
        name: new.name.clone(),
        email_verified_at: None,
        last_login_at: None,
        created_at: at,
        updated_at: at,
    };
    assert_eq!(
        created, expected,
        "create_user must return the new user as given"
    );

    let by_id = ok(store.find_user(new.id).await, "find_user")
        .expect("find_user must find a user just created");
    assert_eq!(by_id.user, expected, "find_user returned different fields");
    assert_eq!(
        by_id.identifier_key, new.identifier_key,
        "find_user: identifier_key"
    );
    assert!(
        by_id.password_hash == new.password_hash,
        "find_user must return the stored password hash unchanged"
    );

    let by_key = ok(
        store.find_user_by_identifier(&new.identifier_key).await,
        "find_user_by_identifier",
    )
    .expect("find_user_by_identifier must find a user just created");
    assert_eq!(
        by_key, by_id,
        "find_user_by_identifier and find_user disagree"
    );

    let no_roles = new_user(&[], at);
    let created = ok(
        store.create_user(no_roles.clone()).await,
        "create_user without roles",
    );
    assert!(
        created.roles.is_empty(),
        "a user created without roles has none"
    );
    assert_eq!(created.name, no_roles.name);
}

/// A second user with a taken `identifier_key` is `Conflict`, and the first
/// user is unchanged.
pub async fn create_conflict<S: UserStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let first = new_user(&["user"], at);
    ok(store.create_user(first.clone()).await, "create_user");

    let mut second = new_user(&["admin"], plus(at, 1));
    second.identifier_key = first.identifier_key.clone();
    expect_err(
        store.create_user(second.clone()).await,
        StoreErrorKind::Conflict,
        "create_user with a taken identifier_key",
    );

    let found = ok(
        store.find_user_by_identifier(&first.identifier_key).await,
        "find_user_by_identifier",
    )
    .expect("the first user must still exist");
    assert_eq!(
        found.user.id, first.id,
        "a conflicting create must not replace the first user"
    );
    assert_eq!(found.user.roles, first.roles);
    assert!(
        ok(store.find_user(second.id).await, "find_user").is_none(),
        "a conflicting create must not leave a user behind"
    );
}

/// Unknown ids and identifier keys are `Ok(None)`, not errors.
pub async fn find_missing<S: UserStore + ?Sized>(store: Arc<S>) {
    assert!(
        ok(store.find_user(UserId::new()).await, "find_user").is_none(),
        "find_user of an unknown id must be Ok(None)"
    );
    let key = format!("{}@example.test", unique("nobody"));
    assert!(
        ok(
            store.find_user_by_identifier(&key).await,
            "find_user_by_identifier"
        )
        .is_none(),
        "find_user_by_identifier of an unknown key must be Ok(None)"
    );
}

/// `update_identifier` changes both values and `updated_at`; the old key no
/// longer finds the user and is free for someone else.
pub async fn update_identifier<S: UserStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let new = new_user(&["user"], at);
    ok(store.create_user(new.clone()).await, "create_user");

    let key = format!("{}@example.test", unique("renamed"));
    let display = key.to_uppercase();
    let later = plus(at, 5);
    let user = ok(
        store.update_identifier(new.id, &display, &key, later).await,
        "update_identifier",
    );
    assert_eq!(
        user.identifier, display,
        "update_identifier must return the new identifier"
    );
    assert_eq!(
        user.updated_at, later,
        "update_identifier must set updated_at = now"
    );
    assert_eq!(
        user.created_at, at,
        "update_identifier must keep created_at"
    );
    assert_eq!(
        user.roles, new.roles,
        "update_identifier must keep the roles"
    );

    let found = ok(
        store.find_user_by_identifier(&key).await,
        "find_user_by_identifier",
    )
    .expect("the new identifier_key must find the user");
    assert_eq!(found.user.id, new.id);
    assert_eq!(found.identifier_key, key);
    assert_eq!(
        found.user, user,
        "find_user_by_identifier must return the updated user"
    );
    assert!(
        ok(
            store.find_user_by_identifier(&new.identifier_key).await,
            "find_user_by_identifier"
        )
        .is_none(),
        "the old identifier_key must no longer find the user"
    );

    // The old key is free again.
    let mut reuse = new_user(&[], at);
    reuse.identifier_key = new.identifier_key.clone();
    ok(
        store.create_user(reuse).await,
        "create_user with a freed identifier_key",
    );

    // Changing only the display form (same key) is not a conflict with oneself.
    let display2 = key.clone();
    let user = ok(
        store
            .update_identifier(new.id, &display2, &key, plus(at, 6))
            .await,
        "update_identifier to the user's own key",
    );
    assert_eq!(user.identifier, display2);
}

/// `update_identifier` to another user's key is `Conflict` and changes
/// neither user.
pub async fn update_identifier_conflict<S: UserStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let a = new_user(&[], at);
    let b = new_user(&[], at);
    ok(store.create_user(a.clone()).await, "create_user");
    ok(store.create_user(b.clone()).await, "create_user");

    expect_err(
        store
            .update_identifier(a.id, "TAKEN", &b.identifier_key, plus(at, 1))
            .await,
        StoreErrorKind::Conflict,
        "update_identifier to another user's key",
    );
    let a_now = ok(store.find_user(a.id).await, "find_user").expect("user a exists");
    assert_eq!(
        a_now.identifier_key, a.identifier_key,
        "a failed update must not change the key"
    );
    assert_eq!(a_now.user.identifier, a.identifier);
    let owner = ok(
        store.find_user_by_identifier(&b.identifier_key).await,
        "find_user_by_identifier",
    )
    .expect("user b exists");
    assert_eq!(
        owner.user.id, b.id,
        "the key must still belong to its owner"
    );
}

/// `update_identifier` to a new key clears `email_verified_at` in the same
/// operation (and `find_user`, `find_user_by_identifier` and
/// `find_active_session` see it cleared); a change of the display form only
/// keeps it, and a `Conflict` keeps it too.
pub async fn update_identifier_clears_email_verification<S: UserStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let a = new_user(&[], at);
    let b = new_user(&[], at);
    ok(store.create_user(a.clone()).await, "create_user");
    ok(store.create_user(b.clone()).await, "create_user");
    let verified_at = plus(at, 1);
    ok(
        store.set_email_verified(a.id, verified_at).await,
        "set_email_verified",
    );

    // Conflict: nothing changes, the verification stays.
    expect_err(
        store
            .update_identifier(a.id, "TAKEN", &b.identifier_key, plus(at, 2))
            .await,
        StoreErrorKind::Conflict,
        "update_identifier to another user's key",
    );
    let found = ok(store.find_user(a.id).await, "find_user").expect("user a exists");
    assert_eq!(
        found.user.email_verified_at,
        Some(verified_at),
        "a failed update_identifier must keep email_verified_at"
    );

    // The same key in another display form: still the verified address.
    let upper = a.identifier_key.to_uppercase();
    let user = ok(
        store
            .update_identifier(a.id, &upper, &a.identifier_key, plus(at, 3))
            .await,
        "update_identifier to the same key",
    );
    assert_eq!(
        user.email_verified_at,
        Some(verified_at),
        "update_identifier to the same key must keep email_verified_at"
    );

    // A new key: nobody verified it.
    let key = format!("{}@example.test", unique("unverified"));
    let user = ok(
        store.update_identifier(a.id, &key, &key, plus(at, 4)).await,
        "update_identifier",
    );
    assert_eq!(
        user.email_verified_at, None,
        "update_identifier to a new key must clear email_verified_at (in the returned user)"
    );
    let found = ok(store.find_user(a.id).await, "find_user").expect("user a exists");
    assert_eq!(
        found.user.email_verified_at, None,
        "update_identifier to a new key must clear the stored email_verified_at"
    );
    let by_key = ok(
        store.find_user_by_identifier(&key).await,
        "find_user_by_identifier",
    )
    .expect("the new key finds the user");
    assert_eq!(by_key.user.email_verified_at, None);
}

/// `update_identifier` of an unknown user is `NotFound`.
pub async fn update_identifier_not_found<S: UserStore + ?Sized>(store: Arc<S>) {
    let key = format!("{}@example.test", unique("ghost"));
    expect_err(
        store
            .update_identifier(UserId::new(), &key, &key, now())
            .await,
        StoreErrorKind::NotFound,
        "update_identifier of an unknown user",
    );
    assert!(
        ok(
            store.find_user_by_identifier(&key).await,
            "find_user_by_identifier"
        )
        .is_none(),
        "a failed update_identifier must not reserve the key"
    );
}

/// `replace_password_hash` is a compare-and-set: `true` and replaced when
/// `current` matches, `Ok(false)` and unchanged when it does not, `NotFound`
/// for an unknown user.
pub async fn replace_password_hash<S: UserStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let new = new_user(&[], at);
    ok(store.create_user(new.clone()).await, "create_user");

    let next = password_hash();
    let later = plus(at, 3);
    assert!(
        ok(
            store
                .replace_password_hash(new.id, &new.password_hash, &next, later)
                .await,
            "replace_password_hash",
        ),
        "replace_password_hash from the current hash must return true"
    );
    let record = ok(store.find_user(new.id).await, "find_user").expect("user exists");
    assert!(
        record.password_hash == next,
        "the new password hash must be stored"
    );
    assert_eq!(
        record.user.updated_at, later,
        "replace_password_hash must set updated_at"
    );

    // The old hash is no longer current.
    let other = password_hash();
    assert!(
        !ok(
            store
                .replace_password_hash(new.id, &new.password_hash, &other, plus(at, 4))
                .await,
            "replace_password_hash",
        ),
        "replace_password_hash from a stale hash must return false"
    );
    let record = ok(store.find_user(new.id).await, "find_user").expect("user exists");
    assert!(
        record.password_hash == next,
        "a failed compare-and-set must not write"
    );

    expect_err(
        store
            .replace_password_hash(UserId::new(), &next, &other, at)
            .await,
        StoreErrorKind::NotFound,
        "replace_password_hash of an unknown user",
    );
}

/// `add_roles` merges (sorted, no duplicates, input order and duplicates
/// ignored) and `remove_roles` removes; both set `updated_at` and are
/// `NotFound` for an unknown user.
pub async fn add_and_remove_roles<S: UserStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &["beta"], at).await;

    let t1 = plus(at, 1);
    let added = ok(
        store
            .add_roles(user.id, &strings(&["delta", "alpha", "beta", "alpha"]), t1)
            .await,
        "add_roles",
    );
    assert_eq!(
        added.roles,
        strings(&["alpha", "beta", "delta"]),
        "add_roles must keep existing roles and return them sorted without duplicates"
    );
    assert_eq!(added.updated_at, t1, "add_roles must set updated_at = now");
    let record = ok(store.find_user(user.id).await, "find_user").expect("user exists");
    assert_eq!(
        record.user.roles, added.roles,
        "find_user must see the added roles"
    );

    let same = ok(
        store.add_roles(user.id, &[], plus(at, 2)).await,
        "add_roles(empty)",
    );
    assert_eq!(same.roles, added.roles, "adding no roles changes nothing");

    let t3 = plus(at, 3);
    let removed = ok(
        store
            .remove_roles(user.id, &strings(&["beta", "not-held"]), t3)
            .await,
        "remove_roles",
    );
    assert_eq!(
        removed.roles,
        strings(&["alpha", "delta"]),
        "remove_roles must remove the given roles and ignore roles not held"
    );
    assert_eq!(
        removed.updated_at, t3,
        "remove_roles must set updated_at = now"
    );

    let removed = ok(
        store
            .remove_roles(user.id, &strings(&["alpha", "delta"]), plus(at, 4))
            .await,
        "remove_roles",
    );
    assert!(removed.roles.is_empty(), "removing every role leaves none");
    let record = ok(store.find_user(user.id).await, "find_user").expect("user exists");
    assert!(
        record.user.roles.is_empty(),
        "find_user must see the removed roles"
    );

    expect_err(
        store.add_roles(UserId::new(), &strings(&["x"]), at).await,
        StoreErrorKind::NotFound,
        "add_roles of an unknown user",
    );
    expect_err(
        store
            .remove_roles(UserId::new(), &strings(&["x"]), at)
            .await,
        StoreErrorKind::NotFound,
        "remove_roles of an unknown user",
    );
}

/// `set_email_verified` sets `email_verified_at` once and keeps the first
/// time; `NotFound` for an unknown user.
pub async fn set_email_verified<S: UserStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &[], at).await;
    let t1 = plus(at, 10);
    let verified = ok(
        store.set_email_verified(user.id, t1).await,
        "set_email_verified",
    );
    assert_eq!(
        verified.email_verified_at,
        Some(t1),
        "set_email_verified must set the time"
    );

    let again = ok(
        store.set_email_verified(user.id, plus(at, 20)).await,
        "set_email_verified",
    );
    assert_eq!(
        again.email_verified_at,
        Some(t1),
        "set_email_verified must keep the first verification time"
    );
    let record = ok(store.find_user(user.id).await, "find_user").expect("user exists");
    assert_eq!(record.user.email_verified_at, Some(t1));

    expect_err(
        store.set_email_verified(UserId::new(), at).await,
        StoreErrorKind::NotFound,
        "set_email_verified of an unknown user",
    );
}

/// `any_user_with_role` is `false` until some user holds the role, and
/// `false` again when nobody does.
pub async fn any_user_with_role<S: UserStore + ?Sized>(store: Arc<S>) {
    let role = unique("role");
    assert!(
        !ok(store.any_user_with_role(&role).await, "any_user_with_role"),
        "no user holds a fresh role"
    );
    let at = now();
    let user = create_user(&*store, &[role.as_str(), "user"], at).await;
    assert!(
        ok(store.any_user_with_role(&role).await, "any_user_with_role"),
        "any_user_with_role must see a role given at creation"
    );
    ok(
        store
            .remove_roles(user.id, std::slice::from_ref(&role), plus(at, 1))
            .await,
        "remove_roles",
    );
    assert!(
        !ok(store.any_user_with_role(&role).await, "any_user_with_role"),
        "any_user_with_role must be false once the role is removed"
    );
    let other = create_user(&*store, &["user"], at).await;
    ok(
        store
            .add_roles(other.id, std::slice::from_ref(&role), plus(at, 2))
            .await,
        "add_roles",
    );
    assert!(
        ok(store.any_user_with_role(&role).await, "any_user_with_role"),
        "any_user_with_role must see a role given by add_roles"
    );
    // A role name that is a prefix of a held one is not held.
    let prefix = &role[..role.len() - 1];
    assert!(
        !ok(store.any_user_with_role(prefix).await, "any_user_with_role"),
        "any_user_with_role must match the whole role name"
    );
}

/// 16 concurrent `create_user` with one `identifier_key`: exactly one `Ok`,
/// 15 `Conflict`, and the key belongs to the winner.
pub async fn concurrent_create_user<S: UserStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let key = format!("{}@example.test", unique("race"));
    let results = race(&store, 16, |store, _| {
        let mut user = new_user(&["user"], at);
        user.identifier_key = key.clone();
        async move { (user.id, store.create_user(user).await) }
    })
    .await;

    let mut winners = Vec::new();
    for (id, result) in results {
        match result {
            Ok(user) => {
                assert_eq!(user.id, id);
                winners.push(id);
            }
            Err(err) => assert_eq!(
                err.kind(),
                StoreErrorKind::Conflict,
                "concurrent create_user: a loser must get Conflict, got {err:?}"
            ),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "of 16 concurrent create_user with one identifier_key exactly one must succeed"
    );
    let owner = ok(
        store.find_user_by_identifier(&key).await,
        "find_user_by_identifier",
    )
    .expect("the winner must be stored");
    assert_eq!(
        owner.user.id, winners[0],
        "the key must belong to the winner"
    );
}

/// 16 concurrent `add_roles`, each with its own role: no role is lost.
pub async fn concurrent_add_roles<S: UserStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &["base"], at).await;
    let id = user.id;
    let results = race(&store, 16, |store, i| async move {
        store
            .add_roles(id, &[format!("role-{i:02}")], plus(at, 1))
            .await
    })
    .await;
    for result in results {
        ok(result, "concurrent add_roles");
    }
    let mut expected: Vec<String> = (0..16).map(|i| format!("role-{i:02}")).collect();
    expected.push("base".to_owned());
    expected.sort();
    let record = ok(store.find_user(id).await, "find_user").expect("user exists");
    assert_eq!(
        record.user.roles, expected,
        "16 concurrent add_roles must lose no role (and keep the existing one)"
    );
}

/// 16 concurrent `replace_password_hash` from the same current hash, each to
/// its own new hash: exactly one `true`, and its hash is stored.
pub async fn concurrent_replace_password_hash<S: UserStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let new = new_user(&[], at);
    ok(store.create_user(new.clone()).await, "create_user");
    let current = new.password_hash.clone();
    let id = new.id;
    let results = race(&store, 16, |store, _| {
        let current = current.clone();
        async move {
            let next = password_hash();
            let won = store
                .replace_password_hash(id, &current, &next, plus(at, 1))
                .await;
            (next, won)
        }
    })
    .await;
    let mut winners = Vec::new();
    for (next, won) in results {
        if ok(won, "concurrent replace_password_hash") {
            winners.push(next);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "of 16 concurrent replace_password_hash from one current hash exactly one must win"
    );
    let record = ok(store.find_user(id).await, "find_user").expect("user exists");
    assert!(
        record.password_hash == winners[0],
        "the stored hash must be the winner's"
    );
}

/// 16 concurrent `update_identifier` of two users (8 tasks each) to one
/// free key: one user gets it (all of its tasks succeed), every task of the
/// other user gets `Conflict`, and the loser keeps its old key.
pub async fn concurrent_update_identifier<S: UserStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let a = new_user(&[], at);
    let b = new_user(&[], at);
    ok(store.create_user(a.clone()).await, "create_user");
    ok(store.create_user(b.clone()).await, "create_user");
    let ids = [a.id, b.id];
    let key = format!("{}@example.test", unique("contested"));
    let results = race(&store, 16, |store, i| {
        let key = key.clone();
        let id = ids[i % 2];
        async move {
            let result = store.update_identifier(id, &key, &key, plus(at, 1)).await;
            (id, result)
        }
    })
    .await;

    let mut ok_ids = Vec::new();
    for (id, result) in results {
        match result {
            Ok(user) => {
                assert_eq!(user.id, id);
                ok_ids.push(id);
            }
            Err(err) => {
                assert_eq!(
                    err.kind(),
                    StoreErrorKind::Conflict,
                    "concurrent update_identifier: a loser must get Conflict, got {err:?}"
                );
            }
        }
    }
    assert!(!ok_ids.is_empty(), "one user must get the contested key");
    let winner = ok_ids[0];
    assert!(
        ok_ids.iter().all(|id| *id == winner),
        "only one of two users may get the contested key"
    );
    assert_eq!(
        ok_ids.len(),
        8,
        "every update of the winner to its own key must succeed"
    );
    let owner = ok(
        store.find_user_by_identifier(&key).await,
        "find_user_by_identifier",
    )
    .expect("the key must belong to the winner");
    assert_eq!(owner.user.id, winner);
    let (loser, loser_key) = if winner == a.id {
        (b.id, &b.identifier_key)
    } else {
        (a.id, &a.identifier_key)
    };
    let record = ok(store.find_user(loser).await, "find_user").expect("the loser exists");
    assert_eq!(
        &record.identifier_key, loser_key,
        "the loser must keep its old key"
    );
}
