//! Accounts through the `Sentri` facade on the memory store (F-03 … F-09).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use sentri_core::config::ThrottleConfig;
use sentri_core::hooks::{Hooks, Overrides};
use sentri_core::model::PasswordHash;
use sentri_core::model::UserId;
use sentri_core::password::PasswordPolicy;
use sentri_core::{ChangeIdentifierInput, ChangePasswordInput, Error, ErrorCode, RegisterInput};

fn rename(user_id: UserId, new_identifier: &str) -> ChangeIdentifierInput {
    ChangeIdentifierInput {
        user_id,
        new_identifier: new_identifier.to_owned(),
        current_password: PASSWORD.to_owned(),
        session_id: None,
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, Error>) -> ErrorCode {
    r.expect_err("expected an error").code()
}

#[tokio::test]
async fn register_grants_the_default_role_and_keeps_the_display_identifier() {
    let env = env().await;
    let user = env
        .sentri
        .register(register_input("  Alice@Example.com "))
        .await
        .unwrap();
    assert_eq!(user.identifier, "Alice@Example.com");
    assert_eq!(user.roles, vec!["user"]);
    let again = env.sentri.get_user(user.id).await.unwrap();
    assert_eq!(again, user);
}

#[tokio::test]
async fn duplicate_identifiers_differing_in_case_are_rejected() {
    let env = env().await;
    env.sentri
        .register(register_input("bob@example.com"))
        .await
        .unwrap();
    let err = env.sentri.register(register_input("BOB@example.com")).await;
    assert_eq!(code(err), ErrorCode::UserAlreadyExists);
}

#[tokio::test]
async fn bad_input_is_a_validation_error_and_stores_nothing() {
    let env = env().await;
    let cases = [
        ("", PASSWORD.to_owned()),
        ("   ", PASSWORD.to_owned()),
        (&*"x".repeat(255), PASSWORD.to_owned()),
        ("short@example.com", "1234567".to_owned()),
        ("long@example.com", "p".repeat(1025)),
    ];
    for (identifier, password) in cases {
        let input = RegisterInput {
            identifier: identifier.to_owned(),
            password,
            roles: None,
            name: None,
        };
        assert_eq!(
            code(env.sentri.register(input).await),
            ErrorCode::ValidationError
        );
    }
    // Nothing was created: the identifiers are still free.
    env.sentri
        .register(register_input("short@example.com"))
        .await
        .unwrap();
    env.sentri
        .register(register_input("long@example.com"))
        .await
        .unwrap();
    // Limits are inclusive: 254 characters and 1024 bytes are fine.
    let edge = RegisterInput {
        identifier: "y".repeat(254),
        password: "p".repeat(1024),
        roles: None,
        name: None,
    };
    env.sentri.register(edge).await.unwrap();
}

#[tokio::test]
async fn unknown_roles_are_invalid_role() {
    let env = env().await;
    let mut input = register_input("carol@example.com");
    input.roles = Some(vec!["root".into()]);
    assert_eq!(
        code(env.sentri.register(input).await),
        ErrorCode::InvalidRole
    );
}

#[tokio::test]
async fn registration_gate_without_api_key_allows_only_the_default_role() {
    let env = env().await;
    let s = &env.sentri;
    assert!(s.check_registration(None, None).is_ok());
    assert!(s.check_registration(None, Some(&["user".into()])).is_ok());
    assert_eq!(
        code(s.check_registration(None, Some(&["admin".into()]))),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(s.check_registration(None, Some(&["nope".into()]))),
        ErrorCode::InvalidRole
    );
}

#[tokio::test]
async fn registration_gate_with_api_key_requires_the_key() {
    let env = env_with(base().api_key("registration-api-key-123")).await;
    let s = &env.sentri;
    assert_eq!(
        code(s.check_registration(None, None)),
        ErrorCode::Unauthorized
    );
    assert_eq!(
        code(s.check_registration(Some("wrong-key"), None)),
        ErrorCode::Unauthorized
    );
    assert!(
        s.check_registration(Some("registration-api-key-123"), Some(&["admin".into()]))
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_registrations_of_one_identifier_one_wins() {
    let env = env().await;
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = env.sentri.clone();
            let b = barrier.clone();
            tokio::spawn(async move {
                b.wait().await;
                // Case variants of one identifier.
                let id = if i % 2 == 0 {
                    "race@example.com"
                } else {
                    "RACE@example.com"
                };
                s.register(register_input(id)).await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.code(), ErrorCode::UserAlreadyExists),
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn login_returns_tokens_and_records_the_session() {
    let env = env().await;
    let out = signed_in(&env, "dave@example.com").await;
    assert!(out.user.last_login_at.is_some());
    let me = env
        .sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(me.id(), out.user.id);
    assert_eq!(me.session_id(), out.session_id);
    let sessions = env
        .sentri
        .list_sessions(out.user.id, Some(out.session_id))
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].current);
    assert_eq!(
        sessions[0].session.user_agent.as_deref(),
        Some("test-agent/1.0")
    );
    assert_eq!(sessions[0].session.ip.as_deref(), Some("192.0.2.10"));
}

#[tokio::test]
async fn unknown_identifier_and_wrong_password_fail_alike() {
    let env = env().await;
    env.sentri
        .register(register_input("erin@example.com"))
        .await
        .unwrap();
    let a = env
        .sentri
        .login(login_input("erin@example.com", "wrong password"))
        .await
        .unwrap_err();
    let b = env
        .sentri
        .login(login_input("nobody@example.com", PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(a.code(), ErrorCode::InvalidCredentials);
    assert_eq!(a.code(), b.code());
    assert_eq!(a.message(), b.message());
    assert_eq!(a.to_json(), b.to_json());
}

#[tokio::test]
async fn legacy_hashes_are_upgraded_on_successful_login() {
    let env = env().await;
    let scrypt = sentri_core::password::Passwords::new(PasswordPolicy::scrypt(10, 8, 1)).unwrap();
    // A user whose hash was made under an older policy.
    let user = env
        .sentri
        .register(register_input("frank@example.com"))
        .await
        .unwrap();
    let record = env.stores.users.find_user(user.id).await.unwrap().unwrap();
    let legacy = scrypt.hash(PASSWORD).await.unwrap();
    let now = env.sentri.clock().now();
    assert!(
        env.stores
            .users
            .replace_password_hash(user.id, &record.password_hash, &legacy, now)
            .await
            .unwrap()
    );

    env.sentri
        .login(login_input("frank@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
    let after = env.stores.users.find_user(user.id).await.unwrap().unwrap();
    assert!(
        after.password_hash.as_str().starts_with("$argon2id$"),
        "re-hashed to the policy"
    );
    assert!(!env.sentri.passwords().needs_rehash(&after.password_hash));
    // And the new hash still verifies.
    env.sentri
        .login(login_input("frank@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
}

#[tokio::test]
async fn failed_logins_are_throttled_per_identifier_even_with_the_right_password() {
    let env = env().await;
    env.sentri
        .register(register_input("gina@example.com"))
        .await
        .unwrap();
    for _ in 0..10 {
        let err = env
            .sentri
            .login(login_input("gina@example.com", "bad password"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidCredentials);
    }
    let err = env
        .sentri
        .login(login_input("GINA@example.com", PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited);
    let retry = err.retry_after_secs().unwrap();
    assert!(retry > 0 && retry <= 15 * 60, "{retry}");
    // Once the window has passed, the right password works and clears the count.
    env.clock.advance(Duration::from_secs(15 * 60 + 1));
    env.sentri
        .login(login_input("gina@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
    for _ in 0..9 {
        let _ = env
            .sentri
            .login(login_input("gina@example.com", "bad password"))
            .await;
    }
    env.sentri
        .login(login_input("gina@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
}

#[tokio::test]
async fn failed_logins_are_throttled_per_client_address() {
    let env = env_with(base().throttle(ThrottleConfig {
        max_failures_per_ip: 3,
        ..ThrottleConfig::default()
    }))
    .await;
    for i in 0..3 {
        let id = format!("nobody{i}@example.com");
        let err = env
            .sentri
            .login(login_input(&id, PASSWORD))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidCredentials);
    }
    let err = env
        .sentri
        .login(login_input("someone@example.com", PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited);
}

#[tokio::test]
async fn change_password_checks_the_current_one_and_revokes_every_session() {
    let changed = Arc::new(AtomicUsize::new(0));
    let c = changed.clone();
    let hooks = Hooks::new().on_password_changed(move |_| {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let env = env_with(base().hooks(hooks)).await;
    let first = signed_in(&env, "hank@example.com").await;
    let second = env
        .sentri
        .login(login_input("hank@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
    let wrong = ChangePasswordInput {
        user_id: first.user.id,
        current_password: "not it at all".into(),
        new_password: "a brand new password".into(),
    };
    assert_eq!(
        code(env.sentri.change_password(wrong).await),
        ErrorCode::InvalidCredentials
    );
    let too_short = ChangePasswordInput {
        user_id: first.user.id,
        current_password: PASSWORD.into(),
        new_password: "short".into(),
    };
    assert_eq!(
        code(env.sentri.change_password(too_short).await),
        ErrorCode::ValidationError
    );
    // Both sessions still work after failed attempts.
    env.sentri
        .verify_access(&second.tokens.access_token)
        .await
        .unwrap();

    env.sentri
        .change_password(ChangePasswordInput {
            user_id: first.user.id,
            current_password: PASSWORD.into(),
            new_password: "a brand new password".into(),
        })
        .await
        .unwrap();
    for out in [&first, &second] {
        let err = env
            .sentri
            .verify_access(&out.tokens.access_token)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenInvalid);
    }
    assert_eq!(
        code(
            env.sentri
                .login(login_input("hank@example.com", PASSWORD))
                .await
        ),
        ErrorCode::InvalidCredentials
    );
    env.sentri
        .login(login_input("hank@example.com", "a brand new password"))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
    assert_eq!(changed.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn change_identifier_is_unique_like_registration() {
    let env = env().await;
    let ivy = env
        .sentri
        .register(register_input("ivy@example.com"))
        .await
        .unwrap();
    env.sentri
        .register(register_input("jay@example.com"))
        .await
        .unwrap();
    let err = env
        .sentri
        .change_identifier(rename(ivy.id, "JAY@example.com"))
        .await;
    assert_eq!(code(err), ErrorCode::UserAlreadyExists);
    let err = env.sentri.change_identifier(rename(ivy.id, " ")).await;
    assert_eq!(code(err), ErrorCode::ValidationError);
    let user = env
        .sentri
        .change_identifier(rename(ivy.id, "Ivy.New@example.com"))
        .await
        .unwrap();
    assert_eq!(user.identifier, "Ivy.New@example.com");
    env.sentri
        .login(login_input("ivy.new@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
    assert_eq!(
        code(
            env.sentri
                .login(login_input("ivy@example.com", PASSWORD))
                .await
        ),
        ErrorCode::InvalidCredentials
    );
    let missing = sentri_core::model::UserId::new();
    assert_eq!(
        code(
            env.sentri
                .change_identifier(rename(missing, "free@example.com"))
                .await
        ),
        ErrorCode::UserNotFound
    );
}

#[tokio::test]
async fn roles_merge_and_are_seen_by_protect_at_once() {
    let env = env().await;
    let out = signed_in(&env, "kim@example.com").await;
    let before = env
        .sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    assert!(!before.has_role("editor"));
    let user = env
        .sentri
        .assign_roles(out.user.id, vec!["editor".into()])
        .await
        .unwrap();
    assert_eq!(user.roles, vec!["editor", "user"]);
    // Always mode: the same token now carries the current roles.
    let after = env
        .sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    assert!(after.has_role("editor") && after.has_role("user"));
    assert!(after.require_any_role(&["admin", "editor"]).is_ok());
    assert_eq!(
        after.require_any_role(&["admin"]).unwrap_err().code(),
        ErrorCode::Forbidden
    );

    let user = env
        .sentri
        .revoke_roles(out.user.id, vec!["user".into()])
        .await
        .unwrap();
    assert_eq!(user.roles, vec!["editor"]);
    assert_eq!(
        code(
            env.sentri
                .assign_roles(out.user.id, vec!["root".into()])
                .await
        ),
        ErrorCode::InvalidRole
    );
    assert_eq!(
        code(env.sentri.assign_roles(out.user.id, vec![]).await),
        ErrorCode::ValidationError
    );
    let missing = sentri_core::model::UserId::new();
    assert_eq!(
        code(env.sentri.assign_roles(missing, vec!["user".into()]).await),
        ErrorCode::UserNotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_role_merges_lose_nothing() {
    let roles: Vec<String> = (0..16).map(|i| format!("r{i}")).collect();
    let env = env_with(
        sentri_core::Config::builder()
            .hs256(SECRET)
            .valid_roles(std::iter::once("user".to_owned()).chain(roles.clone()))
            .password_policy(fast_policy()),
    )
    .await;
    let user = env
        .sentri
        .register(register_input("lee@example.com"))
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = roles
        .iter()
        .cloned()
        .map(|role| {
            let s = env.sentri.clone();
            let b = barrier.clone();
            tokio::spawn(async move {
                b.wait().await;
                s.assign_roles(user.id, vec![role]).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let user = env.sentri.get_user(user.id).await.unwrap();
    assert_eq!(user.roles.len(), 17, "{:?}", user.roles);
}

#[tokio::test]
async fn verify_email_is_visible_to_guards() {
    let env = env().await;
    let out = signed_in(&env, "mia@example.com").await;
    let me = env
        .sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(
        me.require_verified_email().unwrap_err().code(),
        ErrorCode::Forbidden
    );
    let user = env.sentri.verify_email(out.user.id).await.unwrap();
    assert!(user.email_verified_at.is_some());
    let me = env
        .sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    me.require_verified_email().unwrap();
    me.require_self(&out.user.id.to_string()).unwrap();
    assert_eq!(
        me.require_self("someone-else").unwrap_err().code(),
        ErrorCode::Forbidden
    );
}

#[tokio::test]
async fn bootstrap_creates_the_first_admin_once() {
    let env = env().await;
    let admin = env
        .sentri
        .bootstrap_admin("root@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(admin.unwrap().roles, vec!["admin"]);
    assert!(
        env.sentri
            .bootstrap_admin("other@example.com", PASSWORD)
            .await
            .unwrap()
            .is_none()
    );
    env.sentri
        .login(login_input("root@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
}

#[tokio::test]
async fn a_failing_or_panicking_hook_never_changes_the_result() {
    let hooks = Hooks::new()
        .on_register(|_| async { Err("hook failed".into()) })
        .on_login(|_| async { panic!("hook panicked") })
        .on_failed_login(|_, _| async { Err("hook failed".into()) });
    let env = env_with(base().hooks(hooks)).await;
    let out = signed_in(&env, "ned@example.com").await;
    env.sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    let err = env
        .sentri
        .login(login_input("ned@example.com", "wrong password"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidCredentials);
}

#[tokio::test]
async fn failed_login_hook_sees_the_identifier_and_code() {
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let s = seen.clone();
    let hooks = Hooks::new().on_failed_login(move |identifier, code| {
        let s = s.clone();
        async move {
            s.lock().push((identifier, code));
            Ok(())
        }
    });
    let env = env_with(base().hooks(hooks)).await;
    let _ = env
        .sentri
        .login(login_input("Olga@example.com", PASSWORD))
        .await;
    assert_eq!(
        *seen.lock(),
        vec![("Olga@example.com".to_owned(), ErrorCode::InvalidCredentials)]
    );
}

#[tokio::test]
async fn overrides_replace_a_service_and_may_call_the_default() {
    let overrides = Overrides::new()
        .login(|sentri, input| async move {
            if input.identifier.ends_with("@blocked.example") {
                return Err(Error::app("ACCOUNT_BLOCKED", 403, "account blocked"));
            }
            sentri.default_login(input).await
        })
        .register(|sentri, mut input| async move {
            input.name = Some("From override".into());
            sentri.default_register(input).await
        });
    let env = env_with(base().overrides(overrides)).await;
    let user = env
        .sentri
        .register(register_input("pat@blocked.example"))
        .await
        .unwrap();
    assert_eq!(user.name.as_deref(), Some("From override"));
    let err = env
        .sentri
        .login(login_input("pat@blocked.example", PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "ACCOUNT_BLOCKED");
    assert_eq!(err.status(), 403);
    signed_in(&env, "quinn@example.com").await;
}

#[tokio::test]
async fn password_hashes_never_leave_the_store_layer() {
    let env = env().await;
    let out = signed_in(&env, "ray@example.com").await;
    let json = serde_json::to_string(&out).unwrap();
    let record = env
        .stores
        .users
        .find_user(out.user.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!json.contains(record.password_hash.as_str()));
    assert!(!format!("{record:?}").contains(record.password_hash.as_str()));
    let _unused: PasswordHash = record.password_hash;
}

#[tokio::test]
async fn change_identifier_needs_the_current_password_and_changes_nothing_without_it() {
    let env = env().await;
    let kim = env
        .sentri
        .register(register_input("kim@example.com"))
        .await
        .unwrap();
    for wrong in ["", "not the password"] {
        let mut input = rename(kim.id, "kim2@example.com");
        input.current_password = wrong.to_owned();
        let err = env.sentri.change_identifier(input).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidCredentials, "{wrong:?}");
    }
    assert_eq!(
        env.sentri.get_user(kim.id).await.unwrap().identifier,
        "kim@example.com"
    );
}

#[tokio::test]
async fn change_identifier_clears_verification_and_revokes_other_sessions() {
    let changes = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen = changes.clone();
    let hooks = Hooks::new().on_identifier_changed(move |user, old, new| {
        let seen = seen.clone();
        async move {
            seen.lock()
                .push((user.id, user.email_verified_at, old, new));
            Ok(())
        }
    });
    let env = env_with(base().hooks(hooks)).await;
    let mine = signed_in(&env, "lee@example.com").await;
    let other = env
        .sentri
        .login(login_input("lee@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
    let uid = mine.user.id;
    env.sentri.verify_email(uid).await.unwrap();

    // A change of the display form only keeps the verification.
    let mut input = rename(uid, "LEE@example.com");
    input.session_id = Some(mine.session_id);
    let user = env.sentri.change_identifier(input).await.unwrap();
    assert!(user.email_verified_at.is_some());

    let mut input = rename(uid, "lee@elsewhere.example");
    input.session_id = Some(mine.session_id);
    let user = env.sentri.change_identifier(input).await.unwrap();
    assert_eq!(
        user.email_verified_at, None,
        "nobody verified the new address"
    );
    assert_eq!(
        env.sentri.get_user(uid).await.unwrap().email_verified_at,
        None
    );
    // The caller's session stays; its user is no longer verified.
    let me = env
        .sentri
        .verify_access(&mine.tokens.access_token)
        .await
        .unwrap();
    assert!(!me.email_verified());
    assert_eq!(me.identifier(), "lee@elsewhere.example");
    // Every other session is gone.
    assert_eq!(
        env.sentri
            .verify_access(&other.tokens.access_token)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenInvalid
    );
    let listed = env
        .sentri
        .list_sessions(uid, Some(mine.session_id))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].current);

    let changes = changes.lock();
    assert_eq!(changes.len(), 2, "the hook runs on every change");
    assert_eq!(
        changes[1],
        (
            uid,
            None,
            "LEE@example.com".to_owned(),
            "lee@elsewhere.example".to_owned()
        )
    );
}

#[tokio::test]
async fn change_identifier_revocation_reaches_the_cached_mode() {
    let env =
        env_with(base().session_check(sentri_core::SessionCheck::Cached(Duration::from_secs(600))))
            .await;
    let mine = signed_in(&env, "max@example.com").await;
    let other = env
        .sentri
        .login(login_input("max@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
    // Both sessions cached.
    env.sentri
        .verify_access(&mine.tokens.access_token)
        .await
        .unwrap();
    env.sentri
        .verify_access(&other.tokens.access_token)
        .await
        .unwrap();
    let mut input = rename(mine.user.id, "max@new.example");
    input.session_id = Some(mine.session_id);
    env.sentri.change_identifier(input).await.unwrap();
    for answer in [
        env.sentri.try_verify_access(&other.tokens.access_token),
        Some(env.sentri.verify_access(&other.tokens.access_token).await),
    ]
    .into_iter()
    .flatten()
    {
        assert_eq!(answer.unwrap_err().code(), ErrorCode::TokenInvalid);
    }
    let me = env
        .sentri
        .verify_access(&mine.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(me.identifier(), "max@new.example");
}
