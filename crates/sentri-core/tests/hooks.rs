//! Hooks are bounded in time, and `on_unhandled` (SPEC §3) receives the
//! unexpected errors and panics of the built-in routes, which the client
//! never sees.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use sentri_core::ErrorCode;
use sentri_core::hooks::Hooks;
#[cfg(feature = "http")]
use sentri_core::{
    Error,
    hooks::{Overrides, Unhandled, UnhandledKind},
    http::{Api, Request, Route},
};

/// Fails the test instead of hanging it when a hook holds the response.
const HANG: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_hook_that_never_finishes_cannot_hold_the_response() {
    let hooks = Hooks::new()
        .on_register(|_| std::future::pending())
        .on_login(|_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        });
    let env = env_with(base().hooks(hooks).hook_timeout(Duration::from_millis(50))).await;
    let registered =
        tokio::time::timeout(HANG, env.sentri.register(register_input("h@example.com")))
            .await
            .expect("a hook held the response beyond its timeout");
    registered.unwrap();
    let login = tokio::time::timeout(
        HANG,
        env.sentri.login(login_input("h@example.com", PASSWORD)),
    )
    .await
    .expect("a hook held the response beyond its timeout");
    login.unwrap();
}

#[test]
fn the_hook_timeout_is_validated() {
    for bad in [Duration::ZERO, Duration::from_secs(301)] {
        let err = base().hook_timeout(bad).build().unwrap_err();
        assert_eq!(err.code(), ErrorCode::ConfigurationError);
        assert!(err.message().starts_with("hook_timeout"));
    }
}

#[cfg(feature = "http")]
fn register_request(identifier: &str) -> Request {
    Request::new(http::Method::POST, "/auth/register")
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"identifier":"{identifier}","password":"{PASSWORD}"}}"#
        ))
}

#[cfg(feature = "http")]
#[tokio::test]
async fn unexpected_errors_and_panics_reach_on_unhandled_never_the_client() {
    let seen = Arc::new(parking_lot::Mutex::new(Vec::<Unhandled>::new()));
    let sink = seen.clone();
    let hooks = Hooks::new().on_unhandled(move |u| {
        let sink = sink.clone();
        async move {
            sink.lock().push(u);
            Ok(())
        }
    });
    let overrides = Overrides::new().register(|sentri, input| async move {
        match input.identifier.as_str() {
            "panic@example.com" => panic!("boom: internal detail 10.0.0.5"),
            "error@example.com" => Err(Error::internal("db exploded at 10.0.0.5")),
            "taken@example.com" => Err(Error::new(ErrorCode::UserAlreadyExists)),
            _ => sentri.default_register(input).await,
        }
    });
    let env = env_with(base().hooks(hooks).overrides(overrides)).await;
    let api = Api::new(env.sentri.clone(), "/auth");

    for (who, kind, detail) in [
        (
            "panic@example.com",
            UnhandledKind::Panic,
            "boom: internal detail",
        ),
        ("error@example.com", UnhandledKind::Error, "db exploded"),
    ] {
        let res = api
            .call(Route::Register, &register_request(who), None)
            .await;
        assert_eq!(res.status(), 500, "{who}");
        let body = String::from_utf8(res.body().to_vec()).unwrap();
        assert!(!body.contains("10.0.0.5"), "the client never sees details");
        assert!(body.contains("INTERNAL_ERROR"), "{body}");
        let last = seen.lock().pop().expect("on_unhandled was called");
        assert_eq!(last.kind, kind, "{who}");
        assert!(last.detail.contains(detail), "{}", last.detail);
        assert_eq!(
            (last.method.as_str(), last.path.as_str()),
            ("POST", "/auth/register")
        );
    }
    // Expected errors and successes are not reported.
    let res = api
        .call(
            Route::Register,
            &register_request("taken@example.com"),
            None,
        )
        .await;
    assert_eq!(res.status(), 409);
    let res = api
        .call(Route::Register, &register_request("fine@example.com"), None)
        .await;
    assert_eq!(res.status(), 201);
    assert!(seen.lock().is_empty());
}

#[cfg(feature = "http")]
#[tokio::test]
async fn a_slow_on_unhandled_does_not_hold_the_500() {
    let hooks = Hooks::new().on_unhandled(|_| std::future::pending());
    let overrides = Overrides::new().register(|_, _| async { panic!("boom") });
    let env = env_with(
        base()
            .hooks(hooks)
            .overrides(overrides)
            .hook_timeout(Duration::from_millis(50)),
    )
    .await;
    let api = Api::new(env.sentri.clone(), "/auth");
    let res = tokio::time::timeout(
        HANG,
        api.call(Route::Register, &register_request("p@example.com"), None),
    )
    .await
    .expect("on_unhandled held the response beyond its timeout");
    assert_eq!(res.status(), 500);
}
