//! `SENTRI_FRAMEWORK=poem` answers exactly like the axum default: the same
//! script of requests against both binaries, comparing status, the headers
//! that matter and the bodies (with per-run values — ids, tokens, times —
//! normalised).

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// Replace what legitimately differs between two runs.
fn normalise(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "id" | "createdAt" | "updatedAt" | "lastLoginAt" | "accessToken"
                        | "refreshToken" | "accessExpiresAt" | "refreshExpiresAt" | "kid"
                        | "userId" | "expiresAt" | "lastActiveAt" | "x" => {
                            Value::String("<varies>".into())
                        }
                        _ => normalise(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        other => other.clone(),
    }
}

/// What a step shows: status, the headers that matter, the body.
fn shown(r: &Reply) -> Value {
    let header = |n: &str| r.header(n).map(str::to_owned);
    json!({
        "status": r.status,
        "content-type": header("content-type"),
        "cache-control": header("cache-control"),
        "retry-after": header("retry-after"),
        "x-idempotent-replayed": header("x-idempotent-replayed"),
        "x-request-id": header("x-request-id"),
        "x-content-type-options": header("x-content-type-options"),
        "referrer-policy": header("referrer-policy"),
        "x-frame-options": header("x-frame-options"),
        "strict-transport-security": header("strict-transport-security"),
        "body": normalise(&r.body),
    })
}

/// Run the script against one server; returns what each step showed.
async fn script(server: &Server) -> Vec<(String, Value)> {
    let c = client();
    let mut seen = Vec::new();
    let url = |p: &str| server.url(p);
    let mut step = |name: &str, r: Reply| seen.push((name.to_owned(), shown(&r)));

    step(
        "healthz",
        send(&c, Method::GET, &url("/healthz"), &[], None).await,
    );
    step(
        "readyz",
        send(&c, Method::GET, &url("/readyz"), &[], None).await,
    );
    step(
        "unknown route",
        send(&c, Method::GET, &url("/nope"), &[], None).await,
    );
    step(
        "unknown auth route",
        send(&c, Method::GET, &url("/auth/nope"), &[], None).await,
    );
    step(
        "wrong method",
        send(&c, Method::GET, &url("/auth/login"), &[], None).await,
    );
    let reg = json!({ "identifier": "Same@Example.com", "password": PASSWORD });
    let key = [("x-idempotency-key", "reg-1")];
    step(
        "register",
        send(
            &c,
            Method::POST,
            &url("/auth/register"),
            &key,
            Some(reg.clone()),
        )
        .await,
    );
    step(
        "register replay",
        send(
            &c,
            Method::POST,
            &url("/auth/register"),
            &key,
            Some(reg.clone()),
        )
        .await,
    );
    step(
        "register duplicate",
        post(&c, server, "/auth/register", reg).await,
    );
    step(
        "bad json",
        send(
            &c,
            Method::POST,
            &url("/auth/login"),
            &[("content-type", "application/json")],
            None,
        )
        .await,
    );
    step(
        "missing field",
        post(&c, server, "/auth/login", json!({ "identifier": "x" })).await,
    );
    step(
        "wrong password",
        post(
            &c,
            server,
            "/auth/login",
            json!({ "identifier": "same@example.com", "password": "not the password" }),
        )
        .await,
    );
    let login = login(&c, server, "same@example.com").await;
    step("login", login.clone());
    let access = login.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = login.body["data"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = format!("Bearer {access}");
    step(
        "me",
        send(
            &c,
            Method::GET,
            &url("/auth/me"),
            &[("authorization", &bearer)],
            None,
        )
        .await,
    );
    step(
        "me without token",
        send(&c, Method::GET, &url("/auth/me"), &[], None).await,
    );
    step(
        "me with garbage",
        send(
            &c,
            Method::GET,
            &url("/auth/me"),
            &[("authorization", "Bearer a.b.c")],
            None,
        )
        .await,
    );
    step(
        "sessions",
        send(
            &c,
            Method::GET,
            &url("/auth/sessions"),
            &[("authorization", &bearer)],
            None,
        )
        .await,
    );
    step(
        "roles as non-admin",
        send(
            &c,
            Method::POST,
            &url("/auth/users/00000000-0000-0000-0000-000000000000/roles"),
            &[("authorization", &bearer)],
            Some(json!({ "roles": ["admin"] })),
        )
        .await,
    );
    step(
        "refresh",
        post(
            &c,
            server,
            "/auth/refresh",
            json!({ "refreshToken": refresh }),
        )
        .await,
    );
    step(
        "refresh reuse",
        post(
            &c,
            server,
            "/auth/refresh",
            json!({ "refreshToken": refresh }),
        )
        .await,
    );
    step(
        "keys",
        send(&c, Method::GET, &url("/auth/keys"), &[], None).await,
    );
    step(
        "logout-all",
        send(
            &c,
            Method::POST,
            &url("/auth/logout-all"),
            &[("authorization", &bearer)],
            None,
        )
        .await,
    );
    step(
        "me after logout",
        send(
            &c,
            Method::GET,
            &url("/auth/me"),
            &[("authorization", &bearer)],
            None,
        )
        .await,
    );
    let openapi = send(&c, Method::GET, &url("/openapi.json"), &[], None).await;
    step("openapi", openapi);
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poem_answers_exactly_like_axum() {
    let axum_dir = TestDir::new("fw-axum");
    let poem_dir = TestDir::new("fw-poem");
    let axum = Server::start(&axum_dir, &[("SENTRI_FRAMEWORK", "axum")]);
    let poem = Server::start(&poem_dir, &[("SENTRI_FRAMEWORK", "poem")]);
    let (a, p) = tokio::join!(script(&axum), script(&poem));
    assert_eq!(a.len(), p.len());
    for ((name, a), (_, p)) in a.iter().zip(&p) {
        assert_eq!(
            a, p,
            "step {name:?} differs between axum (left) and poem (right)"
        );
    }
    // The script did reach the interesting paths.
    let status = |name: &str| a.iter().find(|(n, _)| n == name).unwrap().1["status"].clone();
    assert_eq!(status("register"), 201);
    assert_eq!(status("register replay"), 201);
    assert_eq!(status("me after logout"), 401);
    assert_eq!(status("unknown route"), 404);
    assert!(
        poem.output().contains("framework=Poem"),
        "{}",
        poem.output()
    );
}
