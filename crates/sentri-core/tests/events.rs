//! One way to open a session (`open_session`, `amr`, `auth_time`), the
//! login outcome, and events (SPEC §10): each operation emits its event
//! once, events carry no secret, and a failing, panicking or slow
//! subscriber changes no answer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use parking_lot::Mutex;
use sentri_core::hooks::{Event, Hooks, Overrides};
use sentri_core::{
    AuthMethod, ChangeIdentifierInput, ChangePasswordInput, ClientInfo, ErrorCode, LoginOutcome,
    LogoutInput, RefreshInput, SecondStep,
};

/// Fails the test instead of hanging it when a subscriber holds a response.
const HANG: Duration = Duration::from_secs(60);

fn refresh_input(token: &str) -> RefreshInput {
    RefreshInput {
        refresh_token: token.to_owned(),
        client: ClientInfo::default(),
    }
}

/// A subscriber keeping every event it receives.
fn recorder() -> (Hooks, Arc<Mutex<Vec<Event>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let hooks = Hooks::new().subscribe(move |event| {
        let sink = sink.clone();
        async move {
            sink.lock().push(event);
            Ok(())
        }
    });
    (hooks, seen)
}

/// The events recorded since the last call.
fn drain(seen: &Mutex<Vec<Event>>) -> Vec<Event> {
    std::mem::take(&mut *seen.lock())
}

/// Exactly one event was recorded since the last call, named `name`.
#[track_caller]
fn one(seen: &Mutex<Vec<Event>>, name: &str) -> Event {
    let events = drain(seen);
    let names: Vec<_> = events.iter().map(Event::name).collect();
    assert_eq!(names, [name], "{events:?}");
    events.into_iter().next().unwrap()
}

#[tokio::test]
async fn open_session_records_amr_and_auth_time_across_refreshes() {
    let env = env().await;
    let user = env
        .sentri
        .register(register_input("otp@example.com"))
        .await
        .unwrap();
    let opened_at = env.clock.unix_seconds();
    let out = env
        .sentri
        .open_session(
            user.id,
            ClientInfo {
                user_agent: Some("x".repeat(600)),
                ip: Some("192.0.2.7".parse().unwrap()),
            },
            &[AuthMethod::Password, AuthMethod::Otp, AuthMethod::Password],
        )
        .await
        .unwrap();
    assert_eq!(out.user.id, user.id);
    assert!(out.user.last_login_at.is_some());
    // The verified claims carry both, in the order given, without repeats.
    let verified = env
        .sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(verified.amr(), ["pwd", "otp"]);
    assert_eq!(verified.auth_time(), Some(opened_at));
    assert!(verified.authenticated_with(AuthMethod::Otp));
    assert!(!verified.authenticated_with(AuthMethod::Passkey));
    // The session keeps the client, truncated.
    let sessions = env.sentri.list_sessions(user.id, None).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0].session.user_agent.as_deref().map(str::len),
        Some(512)
    );
    assert_eq!(sessions[0].session.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(sessions[0].session.amr, ["pwd", "otp"]);

    // Refreshed tokens keep the session's amr and the original auth_time.
    env.clock.advance(Duration::from_secs(600));
    let next = env
        .sentri
        .refresh(refresh_input(&out.tokens.refresh_token))
        .await
        .unwrap();
    let verified = env
        .sentri
        .verify_access(&next.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(verified.amr(), ["pwd", "otp"]);
    assert_eq!(verified.auth_time(), Some(opened_at));
    // The guard's check: 10 minutes old, so not within 5, within 15.
    let now = env.clock.unix_seconds();
    let err = verified
        .require_recent_auth(Duration::from_secs(300), now)
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ReauthRequired);
    verified
        .require_recent_auth(Duration::from_secs(900), now)
        .unwrap();
    verified.require_amr(&[AuthMethod::Otp]).unwrap();
    let err = verified.require_amr(&[AuthMethod::Passkey]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ReauthRequired);

    // A password login records `pwd` alone.
    let login = signed_in(&env, "pwd@example.com").await;
    let verified = env
        .sentri
        .verify_access(&login.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(verified.amr(), ["pwd"]);
}

#[tokio::test]
async fn open_session_refuses_an_unknown_user_and_no_method() {
    let env = env().await;
    let err = env
        .sentri
        .open_session(
            sentri_core::model::UserId::new(),
            ClientInfo::default(),
            &[AuthMethod::Email],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::UserNotFound);
    let user = env
        .sentri
        .register(register_input("none@example.com"))
        .await
        .unwrap();
    let err = env
        .sentri
        .open_session(user.id, ClientInfo::default(), &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationError);
    assert!(
        env.sentri
            .list_sessions(user.id, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_login_step_can_ask_for_a_second_factor() {
    let (hooks, seen) = recorder();
    let overrides = Overrides::new().login(|sentri, input| async move {
        match sentri.default_login(input).await? {
            LoginOutcome::Authenticated(out) if out.user.identifier == "mfa@example.com" => {
                // What a second-factor plugin will do: no session yet.
                sentri.logout(LogoutInput::Session(out.session_id)).await?;
                let expires = sentri.clock().now() + chrono::Duration::minutes(5);
                Ok(LoginOutcome::SecondStepRequired(SecondStep::new(
                    "challenge-secret",
                    [AuthMethod::Otp],
                    expires,
                )))
            }
            other => Ok(other),
        }
    });
    let env = env_with(base().hooks(hooks).overrides(overrides)).await;
    env.sentri
        .register(register_input("mfa@example.com"))
        .await
        .unwrap();
    drain(&seen);
    let outcome = env
        .sentri
        .login(login_input("mfa@example.com", PASSWORD))
        .await
        .unwrap();
    let LoginOutcome::SecondStepRequired(step) = &outcome else {
        panic!("expected a second step: {outcome:?}");
    };
    assert_eq!(step.methods, ["otp"]);
    assert!(outcome.as_authenticated().is_none());
    assert!(!format!("{outcome:?}").contains("challenge-secret"));
    // The override's logout is the only event: no LoginSucceeded.
    one(&seen, "logged_out");
    let err = outcome.authenticated().unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    // A wrong password is still INVALID_CREDENTIALS, never a second step.
    let err = env
        .sentri
        .login(login_input("mfa@example.com", "wrong password"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidCredentials);
}

#[tokio::test]
async fn each_operation_emits_its_event_once_without_secrets() {
    let (hooks, seen) = recorder();
    let env = env_with(base().hooks(hooks)).await;
    let s = &env.sentri;
    let mut secrets = vec![PASSWORD.to_owned()];

    let user = s.register(register_input("ev@example.com")).await.unwrap();
    assert!(
        matches!(one(&seen, "registered"), Event::Registered { user: u, .. } if u.id == user.id)
    );

    let out = s
        .login(login_input("ev@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
    secrets.extend([
        out.tokens.access_token.clone(),
        out.tokens.refresh_token.clone(),
    ]);
    assert!(matches!(
        one(&seen, "login_succeeded"),
        Event::LoginSucceeded { user: u, session_id, .. } if u.id == user.id && session_id == out.session_id
    ));

    s.login(login_input("ev@example.com", "a wrong password"))
        .await
        .unwrap_err();
    secrets.push("a wrong password".to_owned());
    assert!(matches!(
        one(&seen, "login_failed"),
        Event::LoginFailed { identifier, code, .. }
            if identifier == "ev@example.com" && code == ErrorCode::InvalidCredentials
    ));

    let next = s
        .refresh(refresh_input(&out.tokens.refresh_token))
        .await
        .unwrap();
    secrets.extend([
        next.tokens.access_token.clone(),
        next.tokens.refresh_token.clone(),
    ]);
    assert!(matches!(
        one(&seen, "refreshed"),
        Event::Refreshed { session_id, .. } if session_id == out.session_id
    ));

    // The replaced token, after the reuse grace: reuse.
    env.clock.advance(Duration::from_secs(11));
    s.refresh(refresh_input(&out.tokens.refresh_token))
        .await
        .unwrap_err();
    assert!(matches!(
        one(&seen, "token_reused"),
        Event::TokenReused { user_id, session_id, .. }
            if user_id == user.id && session_id == out.session_id
    ));

    let a = log_in(&env, "ev@example.com").await;
    drain(&seen);
    s.logout(LogoutInput::Session(a.session_id)).await.unwrap();
    assert!(matches!(
        one(&seen, "logged_out"),
        Event::LoggedOut { session_id: Some(sid), .. } if sid == a.session_id
    ));
    s.logout_all(user.id).await.unwrap();
    assert!(matches!(
        one(&seen, "logged_out"),
        Event::LoggedOut { session_id: None, user_id, .. } if user_id == user.id
    ));

    let b = log_in(&env, "ev@example.com").await;
    drain(&seen);
    s.revoke_session(user.id, b.session_id).await.unwrap();
    assert!(matches!(
        one(&seen, "session_revoked"),
        Event::SessionRevoked { session_id, .. } if session_id == b.session_id
    ));

    s.change_password(ChangePasswordInput {
        user_id: user.id,
        current_password: PASSWORD.to_owned(),
        new_password: "another good password".to_owned(),
    })
    .await
    .unwrap();
    secrets.push("another good password".to_owned());
    assert!(matches!(
        one(&seen, "password_changed"),
        Event::PasswordChanged { user_id, .. } if user_id == user.id
    ));

    s.change_identifier(ChangeIdentifierInput {
        user_id: user.id,
        new_identifier: "ev2@example.com".to_owned(),
        current_password: "another good password".to_owned(),
        session_id: None,
    })
    .await
    .unwrap();
    assert!(matches!(
        one(&seen, "identifier_changed"),
        Event::IdentifierChanged { old, new, .. } if old == "ev@example.com" && new == "ev2@example.com"
    ));

    s.assign_roles(user.id, vec!["editor".to_owned()])
        .await
        .unwrap();
    assert!(matches!(
        one(&seen, "roles_changed"),
        Event::RolesChanged { user: u, added, removed, .. }
            if u.has_role("editor") && added == ["editor"] && removed.is_empty()
    ));
    s.revoke_roles(user.id, vec!["editor".to_owned()])
        .await
        .unwrap();
    assert!(matches!(
        one(&seen, "roles_changed"),
        Event::RolesChanged { user: u, added, removed, .. }
            if !u.has_role("editor") && added.is_empty() && removed == ["editor"]
    ));

    let opened = s
        .open_session(user.id, ClientInfo::default(), &[AuthMethod::Email])
        .await
        .unwrap();
    secrets.push(opened.tokens.refresh_token.clone());
    assert!(matches!(
        one(&seen, "login_succeeded"),
        Event::LoginSucceeded { session_id, .. } if session_id == opened.session_id
    ));

    s.emit(Event::plugin(
        "audit-test",
        "factor_enrolled",
        serde_json::json!({"user": user.id}),
    ))
    .await;
    assert!(matches!(
        one(&seen, "factor_enrolled"),
        Event::Plugin {
            plugin: "audit-test",
            ..
        }
    ));

    // Operations that change nothing emit nothing.
    s.logout(LogoutInput::Session(a.session_id)).await.unwrap();
    assert!(drain(&seen).is_empty());

    // No event of the run carried a password or a token.
    let (hooks, all) = recorder();
    let env = env_with(base().hooks(hooks)).await;
    let out = signed_in(&env, "secret@example.com").await;
    env.sentri
        .login(login_input("secret@example.com", "a wrong password"))
        .await
        .unwrap_err();
    env.sentri
        .refresh(refresh_input(&out.tokens.refresh_token))
        .await
        .unwrap();
    let shown = format!("{:?}", drain(&all));
    let hash = env
        .stores
        .users
        .find_user(out.user.id)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    secrets.extend([out.tokens.access_token, out.tokens.refresh_token]);
    for secret in secrets.iter().chain([&hash.as_str().to_owned()]) {
        assert!(!shown.contains(secret.as_str()), "an event shows a secret");
    }
}

#[tokio::test]
async fn failing_panicking_and_slow_subscribers_change_no_answer() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let hooks = Hooks::new()
        .subscribe(|event| async move {
            if matches!(event, Event::LoginSucceeded { .. }) {
                panic!("subscriber panicked");
            }
            Ok(())
        })
        .subscribe(|_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .subscribe(|_| async { Err("subscriber failed".into()) })
        .on_login(|_| std::future::pending())
        // Panics while creating its future.
        .on_refresh(
            |_| -> std::future::Ready<Result<(), sentri_core::BoxError>> {
                panic!("typed hook panicked")
            },
        )
        // Behind the others, and given every event all the same.
        .subscribe(move |event| {
            let sink = sink.clone();
            async move {
                sink.lock().push(event);
                Ok(())
            }
        });
    let env = env_with(base().hooks(hooks).hook_timeout(Duration::from_millis(50))).await;
    let user = tokio::time::timeout(
        HANG,
        env.sentri.register(register_input("calm@example.com")),
    )
    .await
    .expect("a subscriber held the response")
    .unwrap();
    assert_eq!(user.identifier, "calm@example.com");
    let out = tokio::time::timeout(
        HANG,
        env.sentri.login(login_input("calm@example.com", PASSWORD)),
    )
    .await
    .expect("a subscriber held the response")
    .unwrap()
    .authenticated()
    .unwrap();
    env.sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    let err = tokio::time::timeout(
        HANG,
        env.sentri
            .login(login_input("calm@example.com", "wrong password")),
    )
    .await
    .expect("a subscriber held the response")
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidCredentials);
    tokio::time::timeout(
        HANG,
        env.sentri.refresh(refresh_input(&out.tokens.refresh_token)),
    )
    .await
    .expect("a subscriber held the response")
    .unwrap();
    // The well-behaved subscriber got every event all the same.
    let names: Vec<_> = drain(&seen).iter().map(Event::name).collect();
    assert_eq!(
        names,
        ["registered", "login_succeeded", "login_failed", "refreshed"]
    );
}
