//! The layers and extractors on an application's own routes, error
//! rendering, idempotency, and concurrency.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::routing::{get as rget, post as rpost};
use axum::{Extension, Router};
use common::*;
use http::Request;
use sentri_axum::{
    AuthUser, CatchPanicLayer, IdempotencyKey, Json, MaybeAuthUser, Path, PermitRequest,
    SentriError, authorize, idempotency, permit, permit_roles, protect, protect_optional,
    require_self, require_verified_email, try_authorize,
};
use serde_json::{Value, json};

#[derive(serde::Deserialize)]
struct Order {
    item: String,
    quantity: u32,
}

fn app(env: &Env, counter: Arc<AtomicUsize>) -> Router {
    let s = &env.sentri;
    Router::new()
        .nest("/auth", sentri_axum::router(s.clone()))
        .route("/profile", rget(|u: AuthUser| async move { u.identifier().to_owned() }).route_layer(protect(s)))
        .route(
            "/feed",
            rget(|u: MaybeAuthUser| async move { u.0.map_or("anonymous".to_owned(), |u| u.identifier().to_owned()) })
                .route_layer(protect_optional(s)),
        )
        .route(
            "/admin",
            rget(|| async { "admin" }).route_layer(authorize(s, ["admin"])).route_layer(protect(s)),
        )
        .route(
            "/owners/{ownerId}",
            rget(|| async { "owned" })
                .route_layer(
                    permit_roles(s, ["admin"], |req: PermitRequest| async move {
                        req.param("ownerId") == Some(req.user.id().to_string().as_str())
                    })
                    .unwrap(),
                )
                .route_layer(protect(s)),
        )
        .route(
            "/odd/{n}",
            rget(|Path(n): Path<u32>| async move { n.to_string() })
                .route_layer(permit(|req: PermitRequest| async move { req.param("n") != Some("13") }))
                .route_layer(protect(s)),
        )
        .route(
            "/users/{userId}/private",
            rget(|| async { "mine" }).route_layer(require_self("userId")).route_layer(protect(s)),
        )
        .route(
            "/verified",
            rget(|| async { "verified" }).route_layer(require_verified_email()).route_layer(protect(s)),
        )
        .route(
            "/orders",
            rpost(move |key: Option<Extension<IdempotencyKey>>, Json(order): Json<Order>| {
                let counter = counter.clone();
                async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let key = key.map(|k| k.0.0.clone());
                    if order.item == "fail" {
                        return Err(SentriError::app("OUT_OF_STOCK", 409, "out of stock"));
                    }
                    Ok(sentri_axum::envelope(
                        http::StatusCode::CREATED,
                        "created",
                        json!({"n": n, "item": order.item, "quantity": order.quantity, "key": key}),
                    ))
                }
            })
            .route_layer(idempotency(s))
            .route_layer(protect(s)),
        )
        .route("/panic", rget(|| async {
            let boom = true;
            if boom {
                panic!("boom: secret detail");
            }
            "unreachable"
        }))
        .route(
            "/payment",
            rget(|| async { Err::<(), _>(SentriError::app("PAYMENT_FAILED", 402, "card declined")) }),
        )
        .route("/echo", rpost(|Json(v): Json<Value>| async move { Json(v) }))
        .layer(CatchPanicLayer::new(&env.sentri))
        .layer(MockConnectInfo(PEER.parse::<SocketAddr>().unwrap()))
}

async fn setup() -> (Env, Router, Arc<AtomicUsize>, String, String) {
    let env = env().await;
    let counter = Arc::new(AtomicUsize::new(0));
    let app = app(&env, counter.clone());
    let env = Env {
        app: app.clone(),
        ..env
    };
    let res = signed_in(&env, "alice@example.com").await;
    let uid = res.data()["user"]["id"].as_str().unwrap().to_owned();
    (env, app, counter, access(&res), uid)
}

#[tokio::test]
async fn protect_and_optional() {
    let (_env, app, _, token, _) = setup().await;
    assert_eq!(
        send(&app, get("/profile", Some(&token))).await.raw,
        "alice@example.com"
    );
    send(&app, get("/profile", None)).await.assert_error(
        401,
        "UNAUTHORIZED",
        "authentication required",
    );
    send(&app, get("/profile", Some("x.y.z")))
        .await
        .assert_error(401, "TOKEN_INVALID", "token invalid");
    assert_eq!(
        send(&app, get("/feed", Some(&token))).await.raw,
        "alice@example.com"
    );
    assert_eq!(send(&app, get("/feed", None)).await.raw, "anonymous");
    assert_eq!(send(&app, get("/feed", Some("bad"))).await.raw, "anonymous");
}

#[tokio::test]
async fn guards() {
    let (env, app, _, token, uid) = setup().await;
    send(&app, get("/admin", Some(&token)))
        .await
        .assert_error(403, "FORBIDDEN", "forbidden");
    env.sentri
        .bootstrap_admin("root@example.com", PASSWORD)
        .await
        .unwrap();
    let admin = access(&login(&env, "root@example.com").await);
    assert_eq!(send(&app, get("/admin", Some(&admin))).await.status, 200);

    assert_eq!(
        send(&app, get(&format!("/owners/{uid}"), Some(&token)))
            .await
            .status,
        200
    );
    let other = sentri_core::model::UserId::new();
    send(&app, get(&format!("/owners/{other}"), Some(&token)))
        .await
        .assert_error(403, "FORBIDDEN", "forbidden");
    assert_eq!(
        send(&app, get(&format!("/owners/{other}"), Some(&admin)))
            .await
            .status,
        200
    );

    assert_eq!(send(&app, get("/odd/7", Some(&token))).await.raw, "7");
    send(&app, get("/odd/13", Some(&token)))
        .await
        .assert_error(403, "FORBIDDEN", "forbidden");
    let res = send(&app, get("/odd/seven", Some(&token))).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.body["code"], "VALIDATION_ERROR");
    assert!(res.body["message"].as_str().unwrap().starts_with("path: "));

    assert_eq!(
        send(&app, get(&format!("/users/{uid}/private"), Some(&token)))
            .await
            .status,
        200
    );
    send(&app, get(&format!("/users/{other}/private"), Some(&token)))
        .await
        .assert_error(403, "FORBIDDEN", "forbidden");

    send(&app, get("/verified", Some(&token)))
        .await
        .assert_error(403, "FORBIDDEN", "email address not verified");
    env.sentri.verify_email(uid.parse().unwrap()).await.unwrap();
    let fresh = access(&login(&env, "alice@example.com").await);
    assert_eq!(send(&app, get("/verified", Some(&fresh))).await.status, 200);
}

#[test]
#[should_panic(expected = "unknown role")]
fn authorize_fails_at_build_time_for_unknown_roles() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let env = rt.block_on(env());
    let err = try_authorize(&env.sentri, ["root"]).unwrap_err();
    assert_eq!(err.code().as_str(), "CONFIGURATION_ERROR");
    let _ = authorize(&env.sentri, ["nobody"]);
}

#[tokio::test]
async fn errors_panics_and_rejections_are_envelopes() {
    let (_env, app, _, token, _) = setup().await;
    let res = send(&app, get("/panic", None)).await;
    res.assert_error(500, "INTERNAL_ERROR", "internal server error");
    assert!(!String::from_utf8_lossy(&res.raw).contains("secret"));
    send(&app, get("/payment", None))
        .await
        .assert_error(402, "PAYMENT_FAILED", "card declined");

    let raw = |ct: &str, body: &str| {
        Request::builder()
            .method("POST")
            .uri("/echo")
            .header("content-type", ct)
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    assert_eq!(
        send(&app, raw("application/json", r#"{"a":1}"#)).await.body,
        json!({"a": 1})
    );
    send(&app, raw("text/plain", "{}")).await.assert_error(
        400,
        "VALIDATION_ERROR",
        "Content-Type: must be application/json",
    );
    send(&app, raw("application/json", "{")).await.assert_error(
        400,
        "VALIDATION_ERROR",
        "body: malformed JSON (unexpected end of input)",
    );
    let big = format!("\"{}\"", "a".repeat(3 * 1024 * 1024));
    send(&app, raw("application/json", &big))
        .await
        .assert_error(413, "PAYLOAD_TOO_LARGE", "request body too large");
    // Typed extractor: missing field, wrong type.
    let order = |body: Value| with_body("POST", "/orders", Some(&token), body);
    send(&app, order(json!({"item": "x"}))).await.assert_error(
        400,
        "VALIDATION_ERROR",
        "body: missing field `quantity`",
    );
    send(&app, order(json!({"item": "x", "quantity": "many"})))
        .await
        .assert_error(
            400,
            "VALIDATION_ERROR",
            "body: invalid type: string \"…\", expected u32",
        );
    send(&app, order(json!({"item": "fail", "quantity": 1})))
        .await
        .assert_error(409, "OUT_OF_STOCK", "out of stock");
}

fn keyed(token: &str, key: &str, body: Value) -> Request<Body> {
    let mut req = with_body("POST", "/orders", Some(token), body);
    req.headers_mut()
        .insert("x-idempotency-key", key.parse().unwrap());
    req
}

#[tokio::test]
async fn idempotency_layer_replays_and_refuses() {
    let (env, app, counter, token, _) = setup().await;
    let body = json!({"item": "book", "quantity": 2});
    let first = send(&app, keyed(&token, "order-1", body.clone())).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.header("x-request-id"), Some("order-1"));
    assert_eq!(first.data()["key"], "order-1");
    assert!(first.header("x-idempotent-replayed").is_none());
    let again = send(&app, keyed(&token, "order-1", body.clone())).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.raw, first.raw);
    assert_eq!(again.header("x-idempotent-replayed"), Some("true"));
    assert_eq!(again.header("x-request-id"), Some("order-1"));
    assert_eq!(counter.load(Ordering::SeqCst), 1);

    send(
        &app,
        keyed(&token, "order-1", json!({"item": "pen", "quantity": 1})),
    )
    .await
    .assert_error(
        422,
        "IDEMPOTENCY_KEY_REUSED",
        "this idempotency key was used for a different request",
    );
    send(&app, keyed(&token, "bad key", body.clone()))
        .await
        .assert_error(
            400,
            "VALIDATION_ERROR",
            "X-Idempotency-Key: must be 1 to 255 visible ASCII characters",
        );

    // Another caller with the same key runs its own request.
    let bob = access(&signed_in(&env, "bob@example.com").await);
    let theirs = send(&app, keyed(&bob, "order-1", body.clone())).await;
    assert_eq!(theirs.status, 201);
    assert!(theirs.header("x-idempotent-replayed").is_none());

    // Errors are not stored: a retry runs again.
    let fail = json!({"item": "fail", "quantity": 1});
    send(&app, keyed(&token, "order-2", fail.clone()))
        .await
        .assert_error(409, "OUT_OF_STOCK", "out of stock");
    let before = counter.load(Ordering::SeqCst);
    send(&app, keyed(&token, "order-2", fail))
        .await
        .assert_error(409, "OUT_OF_STOCK", "out of stock");
    assert_eq!(counter.load(Ordering::SeqCst), before + 1);

    // In progress: two at once, one runs, one is refused.
    let (a, b) = tokio::join!(
        send(&app, keyed(&token, "order-3", body.clone())),
        send(&app, keyed(&token, "order-3", body.clone()))
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [201, 409]);
    let busy = if a.status == 409 { a } else { b };
    busy.assert_error(
        409,
        "IDEMPOTENCY_IN_PROGRESS",
        "a request with this idempotency key is in progress",
    );

    // Without a key, nothing is remembered.
    let n = counter.load(Ordering::SeqCst);
    send(
        &app,
        with_body("POST", "/orders", Some(&token), body.clone()),
    )
    .await;
    send(&app, with_body("POST", "/orders", Some(&token), body)).await;
    assert_eq!(counter.load(Ordering::SeqCst), n + 2);
}

#[tokio::test]
async fn builtin_routes_are_idempotent_but_never_store_tokens() {
    let (_env, app, _, token, _) = setup().await;
    let mut req = with_body(
        "PUT",
        "/auth/me/identifier",
        Some(&token),
        json!({"newIdentifier": "al@example.com", "currentPassword": PASSWORD}),
    );
    req.headers_mut()
        .insert("x-idempotency-key", "rename-1".parse().unwrap());
    let first = send(&app, req).await;
    assert_eq!(first.status, 200);
    let mut req = with_body(
        "PUT",
        "/auth/me/identifier",
        Some(&token),
        json!({"newIdentifier": "al@example.com", "currentPassword": PASSWORD}),
    );
    req.headers_mut()
        .insert("x-idempotency-key", "rename-1".parse().unwrap());
    let again = send(&app, req).await;
    assert_eq!(again.header("x-idempotent-replayed"), Some("true"));
    assert_eq!(again.raw, first.raw);
}

#[tokio::test]
async fn sixteen_concurrent_refreshes_of_one_token_one_wins() {
    let env = env().await;
    let res = signed_in(&env, "race@example.com").await;
    let rt = refresh_token(&res);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let app = env.app.clone();
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            send(&app, post("/auth/refresh", json!({"refreshToken": rt})))
                .await
                .status
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(status == 200 || status == 401, "{status}");
        ok += usize::from(status == 200);
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn sixteen_concurrent_registrations_of_one_identifier_one_wins() {
    // More registrations from one address than the default hourly limit.
    let env = env_with(base().throttle(sentri_core::config::ThrottleConfig {
        max_registrations_per_ip: 100,
        ..Default::default()
    }))
    .await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let app = env.app.clone();
        tasks.push(tokio::spawn(async move {
            send(
                &app,
                post(
                    "/auth/register",
                    json!({"identifier": "same@example.com", "password": PASSWORD}),
                ),
            )
            .await
            .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 15);
}
