//! The idempotency logic adapters call (F-26), on the memory store.

mod common;

use common::*;
use sentri_core::ErrorCode;
use sentri_core::idempotency::{CallerScope, IdempotencyStart, IdempotentRequest, validate_key};
use sentri_core::model::{StoredResponse, UserId};

fn req<'a>(scope: &'a CallerScope, key: &'a str, body: &'a [u8]) -> IdempotentRequest<'a> {
    IdempotentRequest {
        key,
        scope,
        method: "POST",
        path: "/auth/register",
        body,
    }
}

fn created(body: &str) -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn a_completed_request_replays_with_the_replay_header() {
    let env = env().await;
    let scope = CallerScope::of(Some(UserId::new()), None, None);
    let IdempotencyStart::Proceed(ticket) = env
        .sentri
        .idempotency_begin(req(&scope, "k1", b"{}"))
        .await
        .unwrap()
    else {
        panic!("first request must run");
    };
    ticket.complete(created(r#"{"ok":true}"#)).await.unwrap();
    let IdempotencyStart::Replay(resp) = env
        .sentri
        .idempotency_begin(req(&scope, "k1", b"{}"))
        .await
        .unwrap()
    else {
        panic!("second request must replay");
    };
    assert_eq!(resp.status, 201);
    assert_eq!(resp.body, br#"{"ok":true}"#);
    assert!(
        resp.headers
            .contains(&("X-Idempotent-Replayed".into(), "true".into()))
    );
    assert!(resp.headers.contains(&("X-Request-Id".into(), "k1".into())));
    assert!(
        resp.headers
            .contains(&("content-type".into(), "application/json".into()))
    );
}

#[tokio::test]
async fn in_progress_and_reused_keys_are_refused() {
    let env = env().await;
    let scope = CallerScope::of(None, Some("an-api-key-value"), None);
    let first = env
        .sentri
        .idempotency_begin(req(&scope, "k2", b"a"))
        .await
        .unwrap();
    let err = env
        .sentri
        .idempotency_begin(req(&scope, "k2", b"a"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::IdempotencyInProgress);
    let err = env
        .sentri
        .idempotency_begin(req(&scope, "k2", b"b"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::IdempotencyKeyReused);
    let IdempotencyStart::Proceed(ticket) = first else {
        panic!()
    };
    ticket.complete(created("{}")).await.unwrap();
    let err = env
        .sentri
        .idempotency_begin(req(&scope, "k2", b"b"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::IdempotencyKeyReused);
    let mut other_path = req(&scope, "k2", b"a");
    other_path.path = "/auth/other";
    let err = env.sentri.idempotency_begin(other_path).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::IdempotencyKeyReused);
}

#[tokio::test]
async fn only_success_is_stored_and_a_dropped_ticket_frees_the_key() {
    let env = env().await;
    let scope = CallerScope::of(None, None, Some("198.51.100.1".parse().unwrap()));
    let IdempotencyStart::Proceed(ticket) = env
        .sentri
        .idempotency_begin(req(&scope, "k3", b"x"))
        .await
        .unwrap()
    else {
        panic!()
    };
    ticket
        .complete(StoredResponse {
            status: 409,
            headers: vec![],
            body: b"conflict".to_vec(),
        })
        .await
        .unwrap();
    // Not stored: the retry runs again.
    let IdempotencyStart::Proceed(ticket) = env
        .sentri
        .idempotency_begin(req(&scope, "k3", b"x"))
        .await
        .unwrap()
    else {
        panic!("a failed response must not be replayed");
    };
    drop(ticket);
    // The release runs in the background; wait for it.
    for _ in 0..100 {
        if let Ok(IdempotencyStart::Proceed(_)) =
            env.sentri.idempotency_begin(req(&scope, "k3", b"x")).await
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("a dropped ticket must free its key");
}

#[tokio::test]
async fn keys_are_scoped_to_the_caller() {
    let env = env().await;
    let alice = CallerScope::of(Some(UserId::new()), None, None);
    let bob = CallerScope::of(Some(UserId::new()), None, None);
    let IdempotencyStart::Proceed(t) = env
        .sentri
        .idempotency_begin(req(&alice, "same", b"{}"))
        .await
        .unwrap()
    else {
        panic!()
    };
    t.complete(created("alice's secret response"))
        .await
        .unwrap();
    // Bob with the same key and body never sees Alice's response.
    match env
        .sentri
        .idempotency_begin(req(&bob, "same", b"{}"))
        .await
        .unwrap()
    {
        IdempotencyStart::Proceed(_) => {}
        IdempotencyStart::Replay(_) => panic!("another caller's response was replayed"),
        _ => panic!("unexpected"),
    }
}

#[test]
fn keys_must_be_visible_ascii_up_to_255() {
    assert!(validate_key(&[b'a'; 255]).is_ok());
    for bad in [&b""[..], &[b'a'; 256][..], b"caf\xc3\xa9", b"a b", b"a\tb"] {
        assert_eq!(
            validate_key(bad).unwrap_err().code(),
            ErrorCode::ValidationError
        );
    }
}
