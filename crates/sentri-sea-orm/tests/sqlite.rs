//! The store conformance suite of sentri-testkit on sqlite, one fresh
//! database per test, plus the backend's own checks.

mod common;

sentri_testkit::user_store_tests!(common::sqlite_store());
sentri_testkit::session_store_tests!(common::sqlite_store());
sentri_testkit::key_store_tests!(common::sqlite_store());
sentri_testkit::idempotency_store_tests!(common::sqlite_store());
sentri_testkit::throttle_store_tests!(common::sqlite_store());
sentri_testkit::one_time_token_store_tests!(common::sqlite_store());

/// A session row of a release before `sentri_sessions.amr` (the column is
/// `NULL`) was opened by a password login: it reads as `["pwd"]`, so its
/// refreshed tokens keep carrying `amr: ["pwd"]`.
#[tokio::test]
async fn a_session_without_amr_reads_as_a_password_session() {
    use chrono::{TimeDelta, Utc};
    use sentri_core::model::{NewSession, NewUser, PasswordHash, SessionId, TokenHash, UserId};
    use sentri_core::store::{SessionStore, UserStore};
    use sentri_sea_orm::sea_orm::ConnectionTrait;

    let store = common::sqlite_store().await;
    let now = Utc::now();
    let user = store
        .create_user(NewUser {
            id: UserId::new(),
            identifier: "old@example.com".into(),
            identifier_key: "old@example.com".into(),
            password_hash: PasswordHash::new("x"),
            roles: vec!["user".into()],
            name: None,
            created_at: now,
        })
        .await
        .unwrap();
    let id = SessionId::new();
    store
        .create_session(NewSession {
            id,
            user_id: user.id,
            refresh_hash: TokenHash([1; 32]),
            user_agent: None,
            ip: None,
            created_at: now,
            expires_at: now + TimeDelta::hours(1),
            amr: vec!["otp".into()],
        })
        .await
        .unwrap();
    store
        .connection()
        .execute_unprepared("UPDATE sentri_sessions SET amr = NULL")
        .await
        .unwrap();
    let found = store.find_active_session(id, now).await.unwrap().unwrap();
    assert_eq!(found.session.amr, ["pwd"]);
    let listed = store.list_user_sessions(user.id, now).await.unwrap();
    assert_eq!(listed[0].amr, ["pwd"]);
}
