//! Checks of [`SessionStore`] (on a store that is also a [`UserStore`]); run
//! them all with [`session_store_tests!`](crate::session_store_tests).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use sentri_core::model::{
    ActiveSession, NewSession, Rotation, Session, SessionId, TokenHash, User, UserId,
};
use sentri_core::store::{ROTATION_HISTORY, SessionStore, StoreErrorKind, UserStore};

use super::{create_user, era_2001, expect_err, now, ok, plus, race, token_hash};

/// A fresh [`NewSession`] of `user`, created at `at`, ending at `expires`.
fn new_session(user: UserId, at: DateTime<Utc>, expires: DateTime<Utc>) -> NewSession {
    NewSession {
        id: SessionId::new(),
        user_id: user,
        refresh_hash: token_hash(),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) sentri-testkit".to_owned()),
        ip: Some("203.0.113.7".to_owned()),
        created_at: at,
        expires_at: expires,
        amr: vec!["pwd".to_owned(), "otp".to_owned()],
    }
}

/// The [`Session`] a store must return for `new`.
fn expected(new: &NewSession) -> Session {
    Session {
        id: new.id,
        user_id: new.user_id,
        user_agent: new.user_agent.clone(),
        ip: new.ip.clone(),
        created_at: new.created_at,
        last_active_at: new.created_at,
        expires_at: new.expires_at,
        amr: new.amr.clone(),
    }
}

async fn create<S: SessionStore + ?Sized>(store: &S, new: &NewSession) -> Session {
    ok(store.create_session(new.clone()).await, "create_session")
}

async fn active<S: SessionStore + ?Sized>(
    store: &S,
    id: SessionId,
    at: DateTime<Utc>,
) -> Option<ActiveSession> {
    ok(
        store.find_active_session(id, at).await,
        "find_active_session",
    )
}

async fn rotate<S: SessionStore + ?Sized>(
    store: &S,
    id: SessionId,
    presented: &TokenHash,
    next: &TokenHash,
    at: DateTime<Utc>,
) -> Rotation {
    ok(
        store.rotate_refresh(id, presented, next, at, None).await,
        "rotate_refresh",
    )
}

fn describe(rotation: &Rotation) -> &'static str {
    match rotation {
        Rotation::Rotated(_) => "Rotated",
        Rotation::Stale { .. } => "Stale",
        Rotation::Reused => "Reused",
        Rotation::Mismatch => "Mismatch",
        Rotation::Missing => "Missing",
        _ => "an outcome this kit does not know",
    }
}

#[track_caller]
fn expect_rotated(rotation: Rotation, what: &str) -> ActiveSession {
    match rotation {
        Rotation::Rotated(active) => active,
        other => panic!("{what}: expected Rotated, got {}", describe(&other)),
    }
}

#[track_caller]
fn expect_rotation(rotation: &Rotation, want: &Rotation, what: &str) {
    assert!(
        rotation == want,
        "{what}: expected {}, got {} ({rotation:?})",
        describe(want),
        describe(rotation)
    );
}

fn joined(user: &User, session: Session) -> ActiveSession {
    ActiveSession {
        session,
        identifier: user.identifier.clone(),
        roles: user.roles.clone(),
        email_verified_at: user.email_verified_at,
    }
}

/// `create_session` returns the session as given (`last_active_at ==
/// created_at`); `find_active_session` returns it joined with its user's
/// identifier, roles and email verification while it is live, and `None`
/// once it has expired.
pub async fn create_and_find_active<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &["admin", "user"], at).await;
    let new = new_session(user.id, at, plus(at, 3600));
    let session = create(&*store, &new).await;
    assert_eq!(
        session,
        expected(&new),
        "create_session must return the session as given"
    );

    let found = active(&*store, new.id, plus(at, 10))
        .await
        .expect("a live session must be found");
    assert_eq!(
        found,
        joined(&user, expected(&new)),
        "find_active_session must join the session with its user"
    );

    let mut bare = new_session(user.id, at, plus(at, 3600));
    bare.user_agent = None;
    bare.ip = None;
    let session = create(&*store, &bare).await;
    assert_eq!(
        session,
        expected(&bare),
        "sessions without user agent and ip"
    );
    let found = active(&*store, bare.id, at).await.expect("a live session");
    assert_eq!(found.session, expected(&bare));

    assert!(
        active(&*store, new.id, plus(at, 3601)).await.is_none(),
        "a session past expires_at is not active"
    );
    assert!(
        active(&*store, new.id, plus(at, 86_400)).await.is_none(),
        "a session past expires_at is not active"
    );
    assert!(
        active(&*store, new.id, plus(at, 3599)).await.is_some(),
        "a session before expires_at is active"
    );
}

/// The `amr` a session was created with comes back, in order, from
/// `create_session`, `find_active_session`, `rotate_refresh`,
/// `list_user_sessions` and `delete_session`: none, one and several values.
pub async fn session_keeps_amr<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &["user"], at).await;
    for amr in [
        &[][..],
        &["pwd"],
        &["pwd", "otp"],
        &["email"],
        &["passkey", "mfa", "key"],
    ] {
        let mut new = new_session(user.id, at, plus(at, 3600));
        new.amr = amr.iter().map(|m| (*m).to_owned()).collect();
        let created = create(&*store, &new).await;
        assert_eq!(created.amr, new.amr, "create_session must return the amr");
        let found = active(&*store, new.id, at).await.expect("live");
        assert_eq!(
            found.session.amr, new.amr,
            "find_active_session must keep the amr"
        );
        let rotated = expect_rotated(
            rotate(
                &*store,
                new.id,
                &new.refresh_hash,
                &token_hash(),
                plus(at, 1),
            )
            .await,
            "rotate_refresh with the current hash",
        );
        assert_eq!(
            rotated.session.amr, new.amr,
            "rotate_refresh must keep the amr"
        );
        let listed = ok(
            store.list_user_sessions(user.id, at).await,
            "list_user_sessions",
        );
        let listed = listed.iter().find(|s| s.id == new.id).expect("listed");
        assert_eq!(listed.amr, new.amr, "list_user_sessions must keep the amr");
        let deleted = ok(store.delete_session(new.id).await, "delete_session");
        assert_eq!(
            deleted.map(|s| s.amr),
            Some(new.amr.clone()),
            "delete_session must return the amr"
        );
    }
}

/// A second `create_session` with an existing id is `Conflict`; the first
/// session is unchanged.
pub async fn create_session_conflict<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &[], at).await;
    let first = new_session(user.id, at, plus(at, 3600));
    create(&*store, &first).await;
    let mut second = new_session(user.id, plus(at, 5), plus(at, 7200));
    second.id = first.id;
    expect_err(
        store.create_session(second.clone()).await,
        StoreErrorKind::Conflict,
        "create_session with an existing id",
    );
    let found = active(&*store, first.id, at)
        .await
        .expect("the first session");
    assert_eq!(
        found.session,
        expected(&first),
        "a conflicting create must not overwrite"
    );
    expect_rotation(
        &rotate(&*store, first.id, &second.refresh_hash, &token_hash(), at).await,
        &Rotation::Mismatch,
        "the refresh hash of a conflicting create must not be stored",
    );
}

/// `create_session` sets the user's `last_login_at` to the session's
/// `created_at` (each time); for an unknown user it is `NotFound` and
/// creates nothing; a conflicting id leaves `last_login_at` alone.
pub async fn create_session_records_login<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &[], at).await;
    let last_login = |store: Arc<S>| async move {
        ok(store.find_user(user.id).await, "find_user")
            .expect("user exists")
            .user
            .last_login_at
    };
    assert_eq!(
        last_login(store.clone()).await,
        None,
        "a new user never logged in"
    );

    let first = new_session(user.id, plus(at, 30), plus(at, 3600));
    create(&*store, &first).await;
    assert_eq!(
        last_login(store.clone()).await,
        Some(first.created_at),
        "create_session must set last_login_at"
    );
    let second = new_session(user.id, plus(at, 60), plus(at, 3600));
    create(&*store, &second).await;
    assert_eq!(
        last_login(store.clone()).await,
        Some(second.created_at),
        "create_session must overwrite last_login_at"
    );

    let mut conflicting = new_session(user.id, plus(at, 90), plus(at, 3600));
    conflicting.id = first.id;
    expect_err(
        store.create_session(conflicting).await,
        StoreErrorKind::Conflict,
        "create_session with an existing id",
    );
    assert_eq!(
        last_login(store.clone()).await,
        Some(second.created_at),
        "a conflicting create_session must not record a login"
    );

    let orphan = new_session(UserId::new(), at, plus(at, 3600));
    expect_err(
        store.create_session(orphan.clone()).await,
        StoreErrorKind::NotFound,
        "create_session for an unknown user",
    );
    assert!(
        active(&*store, orphan.id, at).await.is_none(),
        "a session for an unknown user must not be created"
    );
}

/// Unknown session ids are `Ok(None)`.
pub async fn find_active_missing<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    assert!(
        active(&*store, SessionId::new(), now()).await.is_none(),
        "find_active_session of an unknown id must be Ok(None)"
    );
}

/// `find_active_session` sees role changes, email verification and a new
/// identifier of its user at once (nothing cached).
pub async fn find_active_reflects_user_changes<S: UserStore + SessionStore + ?Sized>(
    store: Arc<S>,
) {
    let at = now();
    let user = create_user(&*store, &["user"], at).await;
    let new = new_session(user.id, at, plus(at, 3600));
    create(&*store, &new).await;
    let first = active(&*store, new.id, at).await.expect("live");
    assert_eq!(first.roles, vec!["user".to_owned()]);
    assert_eq!(first.email_verified_at, None);

    ok(
        store
            .add_roles(user.id, &["admin".to_owned()], plus(at, 1))
            .await,
        "add_roles",
    );
    let found = active(&*store, new.id, plus(at, 1)).await.expect("live");
    assert_eq!(
        found.roles,
        vec!["admin".to_owned(), "user".to_owned()],
        "find_active_session must return the user's current roles"
    );

    ok(
        store
            .remove_roles(user.id, &["user".to_owned()], plus(at, 2))
            .await,
        "remove_roles",
    );
    let found = active(&*store, new.id, plus(at, 2)).await.expect("live");
    assert_eq!(
        found.roles,
        vec!["admin".to_owned()],
        "find_active_session must not return a revoked role"
    );

    let verified = plus(at, 3);
    ok(
        store.set_email_verified(user.id, verified).await,
        "set_email_verified",
    );
    let found = active(&*store, new.id, plus(at, 3)).await.expect("live");
    assert_eq!(
        found.email_verified_at,
        Some(verified),
        "find_active_session must return the current email verification"
    );

    let key = format!("{}@example.test", super::unique("renamed"));
    ok(
        store
            .update_identifier(user.id, &key, &key, plus(at, 4))
            .await,
        "update_identifier",
    );
    let found = active(&*store, new.id, plus(at, 4)).await.expect("live");
    assert_eq!(
        found.identifier, key,
        "find_active_session must return the current identifier"
    );
    assert_eq!(
        found.session,
        expected(&new),
        "user changes must not alter the session"
    );
}

/// The rotation protocol: the current hash rotates (`Rotated` with the
/// joined session, current roles and `last_active_at = now`); the replaced
/// hash is then `Stale` with `rotated_at`; an unrelated hash is `Mismatch`;
/// the new hash rotates again, after which the first hash is `Mismatch` and
/// the second is `Stale` with the second rotation's time.
pub async fn rotate_refresh<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &["user"], at).await;
    let new = new_session(user.id, at, plus(at, 3600));
    create(&*store, &new).await;
    let user = ok(
        store
            .add_roles(user.id, &["editor".to_owned()], plus(at, 1))
            .await,
        "add_roles",
    );

    let h0 = new.refresh_hash;
    let h1 = token_hash();
    let h2 = token_hash();
    let t1 = plus(at, 60);
    let rotated = expect_rotated(
        rotate(&*store, new.id, &h0, &h1, t1).await,
        "rotate_refresh with the current hash",
    );
    let mut session = expected(&new);
    session.last_active_at = t1;
    assert_eq!(
        rotated,
        joined(&user, session.clone()),
        "Rotated must carry the session (last_active_at = now) joined with the user's current roles"
    );
    let found = active(&*store, new.id, t1).await.expect("live");
    assert_eq!(
        found.session.last_active_at, t1,
        "rotate_refresh must set last_active_at"
    );

    expect_rotation(
        &rotate(&*store, new.id, &h0, &token_hash(), plus(at, 61)).await,
        &Rotation::Stale { rotated_at: t1 },
        "rotate_refresh with the just-replaced hash",
    );
    expect_rotation(
        &rotate(&*store, new.id, &token_hash(), &token_hash(), plus(at, 61)).await,
        &Rotation::Mismatch,
        "rotate_refresh with an unrelated hash",
    );
    // A refused rotation changes nothing: h1 is still current.
    let t2 = plus(at, 120);
    let rotated = expect_rotated(
        rotate(&*store, new.id, &h1, &h2, t2).await,
        "rotate_refresh with the hash of the first rotation",
    );
    assert_eq!(rotated.session.last_active_at, t2);
    expect_rotation(
        &rotate(&*store, new.id, &h0, &token_hash(), plus(at, 121)).await,
        &Rotation::Reused,
        "after a second rotation the first hash (issued by this session)",
    );
    expect_rotation(
        &rotate(&*store, new.id, &h1, &token_hash(), plus(at, 121)).await,
        &Rotation::Stale { rotated_at: t2 },
        "after a second rotation the second hash",
    );
    // The hash of another session does not rotate this one.
    let other = new_session(user.id, at, plus(at, 3600));
    create(&*store, &other).await;
    expect_rotation(
        &rotate(
            &*store,
            new.id,
            &other.refresh_hash,
            &token_hash(),
            plus(at, 122),
        )
        .await,
        &Rotation::Mismatch,
        "rotate_refresh with another session's hash",
    );
    expect_rotated(
        rotate(&*store, new.id, &h2, &token_hash(), plus(at, 123)).await,
        "rotate_refresh with the current hash after refused attempts",
    );
}

/// `rotate_refresh` tells the hashes a session issued from any other: after
/// `ROTATION_HISTORY + 1` rotations the previous hash is `Stale`, each of
/// the `ROTATION_HISTORY` before it `Reused`, and a hash the session never
/// issued (random, or another session's) `Mismatch`. None of these
/// answers changes anything: the current hash still rotates.
pub async fn rotate_refresh_remembers_issued_hashes<S: UserStore + SessionStore + ?Sized>(
    store: Arc<S>,
) {
    let at = now();
    let user = create_user(&*store, &[], at).await;
    let new = new_session(user.id, at, plus(at, 3600));
    create(&*store, &new).await;
    let other = new_session(user.id, at, plus(at, 3600));
    create(&*store, &other).await;

    // issued[0] is the login's hash; the last one is current.
    let mut issued = vec![new.refresh_hash];
    let rotations = ROTATION_HISTORY + 1;
    for i in 0..rotations {
        let next = token_hash();
        expect_rotated(
            rotate(&*store, new.id, &issued[i], &next, plus(at, 10 + i as i64)).await,
            "rotate_refresh with the current hash",
        );
        issued.push(next);
    }
    let current = issued[rotations];
    let previous = issued[rotations - 1];
    let t = plus(at, 100);
    expect_rotation(
        &rotate(&*store, new.id, &previous, &token_hash(), t).await,
        &Rotation::Stale {
            rotated_at: plus(at, 10 + rotations as i64 - 1),
        },
        "the hash replaced by the last rotation",
    );
    for (age, old) in issued[..rotations - 1].iter().rev().enumerate() {
        expect_rotation(
            &rotate(&*store, new.id, old, &token_hash(), t).await,
            &Rotation::Reused,
            &format!(
                "a hash this session issued {} rotations before the previous one (the store must remember ROTATION_HISTORY = {ROTATION_HISTORY})",
                age + 1
            ),
        );
    }
    for forged in [token_hash(), other.refresh_hash] {
        expect_rotation(
            &rotate(&*store, new.id, &forged, &token_hash(), t).await,
            &Rotation::Mismatch,
            "a hash this session never issued (random or another session's)",
        );
    }
    expect_rotated(
        rotate(&*store, new.id, &current, &token_hash(), plus(at, 101)).await,
        "after Stale, Reused and Mismatch answers the current hash must still rotate",
    );
    expect_rotated(
        rotate(&*store, other.id, &other.refresh_hash, &token_hash(), t).await,
        "the other session is untouched",
    );
}

/// With `idle_since` (the inactivity timeout) a session last active before
/// it is not live: `rotate_refresh` is `Missing`, whatever the hash, and
/// changes nothing; at or after it the rotation goes ahead.
pub async fn rotate_refresh_idle<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &[], at).await;
    let new = new_session(user.id, at, plus(at, 3600));
    create(&*store, &new).await;
    let h1 = token_hash();
    let t = plus(at, 600);
    for presented in [new.refresh_hash, token_hash()] {
        expect_rotation(
            &ok(
                store
                    .rotate_refresh(new.id, &presented, &h1, t, Some(plus(at, 1)))
                    .await,
                "rotate_refresh",
            ),
            &Rotation::Missing,
            "rotate_refresh of a session last active before idle_since",
        );
    }
    let found = active(&*store, new.id, t).await.expect("still stored");
    assert_eq!(
        found.session.last_active_at, at,
        "a refused idle rotation must not record activity"
    );
    let rotated = expect_rotated(
        ok(
            store
                .rotate_refresh(new.id, &new.refresh_hash, &h1, t, Some(at))
                .await,
            "rotate_refresh",
        ),
        "rotate_refresh of a session last active exactly at idle_since",
    );
    assert_eq!(rotated.session.last_active_at, t);
    expect_rotation(
        &ok(
            store
                .rotate_refresh(new.id, &new.refresh_hash, &token_hash(), t, Some(at))
                .await,
            "rotate_refresh",
        ),
        &Rotation::Stale { rotated_at: t },
        "the replaced hash of a session active since idle_since",
    );
}

/// `delete_session_by_refresh` deletes only with the current hash, or the
/// previous one replaced at or after `previous_since`; a hash the session
/// never issued, an older one, or another session's leaves it alone and is
/// `None`.
pub async fn delete_session_by_refresh<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &[], at).await;
    let by_current = new_session(user.id, at, plus(at, 3600));
    let by_previous = new_session(user.id, at, plus(at, 3600));
    let other = new_session(user.id, at, plus(at, 3600));
    for s in [&by_current, &by_previous, &other] {
        create(&*store, s).await;
    }
    let delete = |id: SessionId, hash: TokenHash, since: DateTime<Utc>| {
        let store = store.clone();
        async move {
            ok(
                store.delete_session_by_refresh(id, &hash, since).await,
                "delete_session_by_refresh",
            )
        }
    };

    // Two rotations: h0 is history, h1 previous (rotated at +20), h2 current.
    let (h0, h1, h2) = (by_current.refresh_hash, token_hash(), token_hash());
    expect_rotated(
        rotate(&*store, by_current.id, &h0, &h1, plus(at, 10)).await,
        "rotate",
    );
    expect_rotated(
        rotate(&*store, by_current.id, &h1, &h2, plus(at, 20)).await,
        "rotate",
    );
    for (hash, since, what) in [
        (token_hash(), at, "a hash the session never issued"),
        (other.refresh_hash, at, "another session's hash"),
        (h0, at, "a hash older than the previous one"),
        (
            h1,
            plus(at, 21),
            "the previous hash replaced before previous_since",
        ),
    ] {
        assert!(
            delete(by_current.id, hash, since).await.is_none(),
            "delete_session_by_refresh with {what} must delete nothing"
        );
        assert!(
            active(&*store, by_current.id, plus(at, 30)).await.is_some(),
            "delete_session_by_refresh with {what} must leave the session"
        );
    }
    assert!(
        delete(SessionId::new(), token_hash(), at).await.is_none(),
        "an unknown session is None"
    );
    let mut session = expected(&by_current);
    session.last_active_at = plus(at, 20);
    assert_eq!(
        delete(by_current.id, h2, plus(at, 30)).await,
        Some(session),
        "the current hash deletes the session and returns it"
    );
    assert!(active(&*store, by_current.id, plus(at, 30)).await.is_none());
    assert!(
        delete(by_current.id, h2, plus(at, 30)).await.is_none(),
        "a deleted session is None"
    );

    let next = token_hash();
    expect_rotated(
        rotate(
            &*store,
            by_previous.id,
            &by_previous.refresh_hash,
            &next,
            plus(at, 10),
        )
        .await,
        "rotate",
    );
    assert!(
        delete(by_previous.id, by_previous.refresh_hash, plus(at, 10))
            .await
            .is_some(),
        "the previous hash replaced at previous_since deletes the session"
    );
    assert!(
        active(&*store, by_previous.id, plus(at, 11))
            .await
            .is_none()
    );
    assert!(
        active(&*store, other.id, plus(at, 11)).await.is_some(),
        "other sessions are untouched"
    );
}

/// 16 concurrent `delete_session_by_refresh` with the current hash: exactly
/// one returns the session.
pub async fn concurrent_delete_session_by_refresh<S: UserStore + SessionStore + ?Sized>(
    store: Arc<S>,
) {
    let at = now();
    let user = create_user(&*store, &[], at).await;
    let new = new_session(user.id, at, plus(at, 3600));
    create(&*store, &new).await;
    let (id, hash) = (new.id, new.refresh_hash);
    let results = race(&store, 16, |store, _| async move {
        store.delete_session_by_refresh(id, &hash, at).await
    })
    .await;
    let deleted = results
        .into_iter()
        .map(|r| ok(r, "concurrent delete_session_by_refresh"))
        .filter(Option::is_some)
        .count();
    assert_eq!(
        deleted, 1,
        "of 16 concurrent delete_session_by_refresh exactly one must return the session"
    );
    assert!(active(&*store, id, at).await.is_none());
}

/// `rotate_refresh` of an unknown, deleted or expired session is `Missing`,
/// whatever hash is presented.
pub async fn rotate_refresh_missing<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    expect_rotation(
        &rotate(&*store, SessionId::new(), &token_hash(), &token_hash(), at).await,
        &Rotation::Missing,
        "rotate_refresh of an unknown session",
    );

    let user = create_user(&*store, &[], at).await;
    let deleted = new_session(user.id, at, plus(at, 3600));
    create(&*store, &deleted).await;
    ok(store.delete_session(deleted.id).await, "delete_session");
    expect_rotation(
        &rotate(
            &*store,
            deleted.id,
            &deleted.refresh_hash,
            &token_hash(),
            at,
        )
        .await,
        &Rotation::Missing,
        "rotate_refresh of a deleted session",
    );

    let expiring = new_session(user.id, at, plus(at, 100));
    create(&*store, &expiring).await;
    let h1 = token_hash();
    expect_rotated(
        rotate(
            &*store,
            expiring.id,
            &expiring.refresh_hash,
            &h1,
            plus(at, 10),
        )
        .await,
        "rotate_refresh of a live session",
    );
    expect_rotation(
        &rotate(&*store, expiring.id, &h1, &token_hash(), plus(at, 101)).await,
        &Rotation::Missing,
        "rotate_refresh of an expired session with its current hash",
    );
    expect_rotation(
        &rotate(
            &*store,
            expiring.id,
            &expiring.refresh_hash,
            &token_hash(),
            plus(at, 101),
        )
        .await,
        &Rotation::Missing,
        "rotate_refresh of an expired session with its previous hash",
    );
    assert!(
        active(&*store, expiring.id, plus(at, 101)).await.is_none(),
        "a refused rotation must not revive an expired session"
    );
}

/// `touch_session` writes `last_active_at = now` only when the stored value
/// is older than `now - min_interval`, and says whether it wrote; an unknown
/// session is `Ok(false)`.
pub async fn touch_session<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &[], at).await;
    let new = new_session(user.id, at, plus(at, 3600));
    create(&*store, &new).await;
    let minute = Duration::from_secs(60);

    assert!(
        !ok(
            store.touch_session(new.id, plus(at, 10), minute).await,
            "touch_session"
        ),
        "touch_session within min_interval must not write"
    );
    let found = active(&*store, new.id, plus(at, 10)).await.expect("live");
    assert_eq!(
        found.session.last_active_at, at,
        "a refused touch must not write"
    );

    let t1 = plus(at, 61);
    assert!(
        ok(
            store.touch_session(new.id, t1, minute).await,
            "touch_session"
        ),
        "touch_session after min_interval must write"
    );
    let found = active(&*store, new.id, t1).await.expect("live");
    assert_eq!(
        found.session.last_active_at, t1,
        "touch_session must set last_active_at = now"
    );

    assert!(
        !ok(
            store.touch_session(new.id, plus(at, 62), minute).await,
            "touch_session"
        ),
        "min_interval counts from the last touch"
    );
    let t2 = plus(at, 63);
    assert!(
        ok(
            store.touch_session(new.id, t2, Duration::ZERO).await,
            "touch_session"
        ),
        "touch_session with a zero min_interval writes when time has passed"
    );
    let listed = ok(
        store.list_user_sessions(user.id, t2).await,
        "list_user_sessions",
    );
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].last_active_at, t2,
        "list_user_sessions must see the touch"
    );

    assert!(
        !ok(
            store.touch_session(SessionId::new(), at, minute).await,
            "touch_session of an unknown session",
        ),
        "touch_session of an unknown session must be Ok(false)"
    );
}

/// `delete_session` returns the deleted session, then `None`; the session
/// is gone for every other operation.
pub async fn delete_session<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &[], at).await;
    let new = new_session(user.id, at, plus(at, 3600));
    let keep = new_session(user.id, at, plus(at, 3600));
    create(&*store, &new).await;
    create(&*store, &keep).await;

    let deleted = ok(store.delete_session(new.id).await, "delete_session")
        .expect("delete_session must return the deleted session");
    assert_eq!(
        deleted,
        expected(&new),
        "delete_session must return the session"
    );
    assert!(
        ok(store.delete_session(new.id).await, "delete_session").is_none(),
        "deleting a deleted session must be Ok(None)"
    );
    assert!(
        active(&*store, new.id, at).await.is_none(),
        "a deleted session is not active"
    );
    assert!(
        !ok(
            store
                .touch_session(new.id, plus(at, 600), Duration::ZERO)
                .await,
            "touch_session"
        ),
        "touch_session of a deleted session must be Ok(false)"
    );
    let listed = ok(
        store.list_user_sessions(user.id, at).await,
        "list_user_sessions",
    );
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![keep.id],
        "only the other session remains"
    );
    assert!(
        ok(
            store.delete_session(SessionId::new()).await,
            "delete_session"
        )
        .is_none(),
        "deleting an unknown session must be Ok(None)"
    );
}

/// `delete_user_session` deletes only a session the user owns: another
/// user's session is refused (`false`) and kept.
pub async fn delete_user_session<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let owner = create_user(&*store, &[], at).await;
    let intruder = create_user(&*store, &[], at).await;
    let new = new_session(owner.id, at, plus(at, 3600));
    create(&*store, &new).await;

    assert!(
        !ok(
            store.delete_user_session(intruder.id, new.id).await,
            "delete_user_session"
        ),
        "delete_user_session must refuse another user's session"
    );
    assert!(
        active(&*store, new.id, at).await.is_some(),
        "a refused delete_user_session must keep the session"
    );
    assert!(
        !ok(
            store.delete_user_session(UserId::new(), new.id).await,
            "delete_user_session"
        ),
        "delete_user_session must refuse an unknown user"
    );
    assert!(
        ok(
            store.delete_user_session(owner.id, new.id).await,
            "delete_user_session"
        ),
        "delete_user_session must delete the owner's session"
    );
    assert!(
        active(&*store, new.id, at).await.is_none(),
        "the session is gone"
    );
    assert!(
        !ok(
            store.delete_user_session(owner.id, new.id).await,
            "delete_user_session"
        ),
        "deleting it again must be Ok(false)"
    );
}

/// `delete_user_sessions` deletes every session of one user (live or
/// expired) and returns how many; other users' sessions are kept.
pub async fn delete_user_sessions<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &[], at).await;
    let other = create_user(&*store, &[], at).await;
    let mut mine = Vec::new();
    for i in 0..3 {
        let new = new_session(user.id, plus(at, i), plus(at, 3600));
        create(&*store, &new).await;
        mine.push(new);
    }
    let expired = new_session(user.id, plus(at, -7200), plus(at, -3600));
    create(&*store, &expired).await;
    let theirs = new_session(other.id, at, plus(at, 3600));
    create(&*store, &theirs).await;

    let n = ok(
        store.delete_user_sessions(user.id).await,
        "delete_user_sessions",
    );
    assert_eq!(
        n, 4,
        "delete_user_sessions must delete and count every session of the user"
    );
    for new in &mine {
        assert!(
            active(&*store, new.id, at).await.is_none(),
            "the user's sessions are gone"
        );
    }
    assert!(
        ok(
            store.list_user_sessions(user.id, at).await,
            "list_user_sessions"
        )
        .is_empty(),
        "no session of the user is left"
    );
    assert!(
        active(&*store, theirs.id, at).await.is_some(),
        "delete_user_sessions must keep other users' sessions"
    );
    assert_eq!(
        ok(
            store.delete_user_sessions(user.id).await,
            "delete_user_sessions"
        ),
        0,
        "a second delete_user_sessions deletes nothing"
    );
    assert_eq!(
        ok(
            store.delete_user_sessions(UserId::new()).await,
            "delete_user_sessions"
        ),
        0,
        "delete_user_sessions of an unknown user deletes nothing"
    );
}

/// `delete_user_sessions_except` deletes every session of the user but the
/// one kept, counts them, and keeps other users' sessions; a `keep` of
/// another user protects nothing of this one.
pub async fn delete_user_sessions_except<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &[], at).await;
    let other = create_user(&*store, &[], at).await;
    let mut mine = Vec::new();
    for i in 0..3 {
        let new = new_session(user.id, plus(at, i), plus(at, 3600));
        create(&*store, &new).await;
        mine.push(new);
    }
    let theirs = new_session(other.id, at, plus(at, 3600));
    create(&*store, &theirs).await;

    let keep = mine[1].id;
    let n = ok(
        store.delete_user_sessions_except(user.id, keep).await,
        "delete_user_sessions_except",
    );
    assert_eq!(
        n, 2,
        "delete_user_sessions_except must delete and count the other sessions"
    );
    assert!(
        active(&*store, keep, at).await.is_some(),
        "delete_user_sessions_except must keep the kept session"
    );
    for gone in [&mine[0], &mine[2]] {
        assert!(
            active(&*store, gone.id, at).await.is_none(),
            "delete_user_sessions_except must delete the user's other sessions"
        );
    }
    assert!(
        active(&*store, theirs.id, at).await.is_some(),
        "delete_user_sessions_except must keep other users' sessions"
    );
    assert_eq!(
        ok(
            store.delete_user_sessions_except(user.id, keep).await,
            "delete_user_sessions_except"
        ),
        0,
        "nothing else is left to delete"
    );
    // Keeping a session of someone else keeps nothing of this user.
    assert_eq!(
        ok(
            store.delete_user_sessions_except(user.id, theirs.id).await,
            "delete_user_sessions_except"
        ),
        1
    );
    assert!(active(&*store, keep, at).await.is_none());
    assert!(active(&*store, theirs.id, at).await.is_some());
}

/// `list_user_sessions` returns only the user's sessions that are live at
/// `now`, newest (by `created_at`) first.
pub async fn list_user_sessions<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &[], at).await;
    let other = create_user(&*store, &[], at).await;
    // Created out of order on purpose.
    let middle = new_session(user.id, plus(at, -200), plus(at, 3600));
    let oldest = new_session(user.id, plus(at, -300), plus(at, 7200));
    let newest = new_session(user.id, plus(at, -100), plus(at, 600));
    let expired = new_session(user.id, plus(at, -50), plus(at, -1));
    let theirs = new_session(other.id, plus(at, -10), plus(at, 3600));
    for new in [&middle, &oldest, &newest, &expired, &theirs] {
        create(&*store, new).await;
    }

    let listed = ok(
        store.list_user_sessions(user.id, at).await,
        "list_user_sessions",
    );
    assert_eq!(
        listed,
        vec![expected(&newest), expected(&middle), expected(&oldest)],
        "list_user_sessions must return the live sessions of the user, newest first"
    );

    let later = ok(
        store.list_user_sessions(user.id, plus(at, 601)).await,
        "list_user_sessions",
    );
    assert_eq!(
        later.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![middle.id, oldest.id],
        "list_user_sessions must leave out sessions expired at now"
    );
    assert!(
        ok(
            store.list_user_sessions(UserId::new(), at).await,
            "list_user_sessions"
        )
        .is_empty(),
        "an unknown user has no sessions"
    );
}

/// `purge_expired_sessions` deletes the sessions expired at `now` (of every
/// user), keeps live ones, and counts what it deleted. Runs in the year 2001
/// so it cannot see other checks' sessions as expired.
pub async fn purge_expired_sessions<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let base = era_2001(0);
    let a = create_user(&*store, &[], base).await;
    let b = create_user(&*store, &[], base).await;
    let gone = [
        new_session(a.id, base, plus(base, 100)),
        new_session(a.id, base, plus(base, 200)),
        new_session(b.id, base, plus(base, 300)),
    ];
    let kept = [
        new_session(a.id, base, plus(base, 10_000)),
        new_session(b.id, base, plus(base, 20_000)),
    ];
    for new in gone.iter().chain(kept.iter()) {
        create(&*store, new).await;
    }
    let now = plus(base, 1_000);
    let n = ok(
        store.purge_expired_sessions(now).await,
        "purge_expired_sessions",
    );
    assert!(
        n >= gone.len() as u64,
        "purge_expired_sessions must count the sessions it deleted (expected at least {}, got {n})",
        gone.len()
    );
    for new in &gone {
        assert!(
            ok(store.delete_session(new.id).await, "delete_session").is_none(),
            "purge_expired_sessions must delete every expired session"
        );
    }
    for new in &kept {
        assert!(
            active(&*store, new.id, now).await.is_some(),
            "purge_expired_sessions must keep live sessions"
        );
    }
    assert_eq!(
        ok(
            store.list_user_sessions(a.id, now).await,
            "list_user_sessions"
        )
        .len(),
        1
    );
    assert_eq!(
        ok(
            store.purge_expired_sessions(era_2001(-1)).await,
            "purge_expired_sessions"
        ),
        0,
        "nothing had expired before the sessions were created"
    );
}

/// 16 concurrent `rotate_refresh` with one presented hash, each with its own
/// next hash: exactly one `Rotated`; every other sees `Stale` with the
/// winner's `rotated_at` (a `Mismatch` would make the service revoke the
/// session as reused when two tabs race); the stored current hash is the
/// winner's.
pub async fn concurrent_rotate_refresh<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &["user"], at).await;
    let new = new_session(user.id, at, plus(at, 3600));
    create(&*store, &new).await;
    let id = new.id;
    let presented = new.refresh_hash;
    let t1 = plus(at, 5);
    let results = race(&store, 16, |store, _| async move {
        let next = token_hash();
        let rotation = store.rotate_refresh(id, &presented, &next, t1, None).await;
        (next, rotation)
    })
    .await;

    let mut winners = Vec::new();
    for (next, rotation) in results {
        match ok(rotation, "concurrent rotate_refresh") {
            Rotation::Rotated(_) => winners.push(next),
            Rotation::Stale { rotated_at } => assert_eq!(
                rotated_at, t1,
                "concurrent rotate_refresh: Stale must carry the winner's rotated_at"
            ),
            other => panic!(
                "concurrent rotate_refresh: a loser must see Stale, got {}",
                describe(&other)
            ),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "of 16 concurrent rotate_refresh with one hash exactly one must rotate"
    );
    let winner = winners[0];
    expect_rotation(
        &rotate(&*store, id, &presented, &token_hash(), plus(at, 6)).await,
        &Rotation::Stale { rotated_at: t1 },
        "after the race the presented hash",
    );
    expect_rotated(
        rotate(&*store, id, &winner, &token_hash(), plus(at, 7)).await,
        "after the race the winner's hash must be current",
    );
}

/// 16 concurrent `touch_session` at one `now` with a positive
/// `min_interval`: exactly one writes.
pub async fn concurrent_touch_session<S: UserStore + SessionStore + ?Sized>(store: Arc<S>) {
    let at = now();
    let user = create_user(&*store, &[], at).await;
    let new = new_session(user.id, at, plus(at, 3600));
    create(&*store, &new).await;
    let id = new.id;
    let t1 = plus(at, 120);
    let results = race(&store, 16, |store, _| async move {
        store.touch_session(id, t1, Duration::from_secs(60)).await
    })
    .await;
    let wrote = results
        .into_iter()
        .map(|r| ok(r, "concurrent touch_session"))
        .filter(|w| *w)
        .count();
    assert_eq!(
        wrote, 1,
        "of 16 concurrent touch_session exactly one must write"
    );
    let found = active(&*store, id, t1).await.expect("live");
    assert_eq!(found.session.last_active_at, t1);
}
