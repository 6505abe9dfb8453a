//! sentri-poem through `poem::test::TestClient`: the routes, rejections,
//! protect and the guards, idempotency, cookies with silent refresh,
//! panics and application errors. (Parity with sentri-axum over real
//! sockets is checked by the `sentri-contract-tests` crate.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::endpoint::BoxEndpoint;
use poem::test::{TestClient, TestResponse};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt, Request, RequestParts, Route, get, handler, post};
use sentri_core::clock::Clock;
use sentri_core::config::{ConfigBuilder, CookieConfig, CookieTransport};
use sentri_core::password::PasswordPolicy;
use sentri_core::store::Stores;
use sentri_core::{Config, Sentri};
use sentri_memory::MemoryStore;
use sentri_poem::{
    AuthUser, EnvelopeErrors, Json, MaybeAuthUser, PermitRequest, Query, SentriError, authorize,
    idempotency, permit, protect, protect_optional, require_self, require_verified_email,
};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

fn base() -> ConfigBuilder {
    Config::builder()
        .hs256("test-secret-test-secret-test-secret!")
        .valid_roles(["user", "admin"])
        .password_policy(PasswordPolicy::argon2id(256, 1, 1))
}

#[derive(serde::Deserialize)]
struct Page {
    page: u32,
}

#[handler]
fn me(u: AuthUser) -> String {
    u.identifier().to_owned()
}
#[handler]
fn feed(u: MaybeAuthUser) -> String {
    u.0.map_or("anonymous".to_owned(), |u| u.identifier().to_owned())
}
#[handler]
fn ok() -> &'static str {
    "ok"
}
#[handler]
fn echo(Json(v): Json<Value>) -> Json<Value> {
    Json(v)
}
#[handler]
fn page(Query(p): Query<Page>) -> String {
    p.page.to_string()
}
#[handler]
fn boom() -> &'static str {
    let b = true;
    if b {
        panic!("boom: secret detail");
    }
    "unreachable"
}
#[handler]
fn payment() -> Result<(), SentriError> {
    Err(SentriError::app("PAYMENT_FAILED", 402, "card declined"))
}
#[handler]
fn created(req: &Request) -> poem::Response {
    let key = req
        .extensions()
        .get::<sentri_poem::IdempotencyKey>()
        .map(|k| k.0.clone());
    sentri_poem::envelope(http::StatusCode::CREATED, "created", json!({"key": key}))
}

/// Give every request the socket peer 192.0.2.10 (TestClient has none).
fn with_peer(ep: impl Endpoint + 'static) -> BoxEndpoint<'static> {
    ep.around(|ep, req| async move {
        let (parts, body) = req.into_parts();
        let (mut head, ()) = http::Request::builder()
            .method(parts.method)
            .uri(parts.uri)
            .body(())
            .unwrap()
            .into_parts();
        head.headers = parts.headers;
        head.extensions = parts.extensions;
        let peer: SocketAddr = "192.0.2.10:4000".parse().unwrap();
        let parts = RequestParts::from((
            head,
            LocalAddr(Addr::SocketAddr("127.0.0.1:80".parse().unwrap())),
            RemoteAddr(Addr::SocketAddr(peer)),
            poem::http::uri::Scheme::HTTP,
        ));
        ep.call(Request::from_parts(parts, body)).await
    })
    .map_to_response()
    .boxed()
}

async fn setup(builder: ConfigBuilder) -> (Sentri, Clock, TestClient<BoxEndpoint<'static>>) {
    let clock = Clock::manual_at_now();
    let stores = Stores::from_backend(Arc::new(MemoryStore::new()));
    let s = Sentri::with_clock(builder.build().unwrap(), stores, clock.clone())
        .await
        .unwrap();
    let app = Route::new()
        .nest("/auth", sentri_poem::routes(s.clone()))
        .at("/me", get(me).with(protect(&s).auth_prefix("/auth")))
        .at("/feed", get(feed).with(protect_optional(&s)))
        .at(
            "/admin",
            get(ok).with(authorize(&s, ["admin"])).with(protect(&s)),
        )
        .at(
            "/users/:userId/private",
            get(ok)
                .with(require_self("userId"))
                .with(permit(|r: PermitRequest| async move {
                    !r.headers.contains_key("x-deny")
                }))
                .with(protect(&s)),
        )
        .at(
            "/verified",
            get(ok).with(require_verified_email()).with(protect(&s)),
        )
        .at(
            "/orders",
            post(created).with(idempotency(&s)).with(protect(&s)),
        )
        .at("/echo", post(echo))
        .at("/page", get(page))
        .at("/panic", get(boom))
        .at("/payment", get(payment))
        .with(EnvelopeErrors)
        .with(sentri_poem::catch_panic(&s));
    (s, clock, TestClient::new(with_peer(app)))
}

async fn body(res: TestResponse) -> (u16, http::HeaderMap, Value, String) {
    let status = res.0.status().as_u16();
    let headers = res.0.headers().clone();
    let text = res.0.into_body().into_string().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, headers, json, text)
}

fn assert_error(
    got: &(u16, http::HeaderMap, Value, String),
    status: u16,
    code: &str,
    message: &str,
) {
    assert_eq!(
        got.2,
        json!({"error": true, "statusCode": status, "code": code, "message": message, "data": null}),
        "{}",
        got.3
    );
    assert_eq!(got.0, status);
    assert_eq!(got.1["content-type"], "application/json");
}

type Client = TestClient<BoxEndpoint<'static>>;

async fn signed_in(cli: &Client, id: &str) -> Value {
    let creds = json!({"identifier": id, "password": PASSWORD});
    let r = body(cli.post("/auth/register").body_json(&creds).send().await).await;
    assert_eq!(r.0, 201, "{}", r.3);
    let r = body(cli.post("/auth/login").body_json(&creds).send().await).await;
    assert_eq!(r.0, 200, "{}", r.3);
    r.2["data"].clone()
}

#[tokio::test]
async fn routes_and_rejections() {
    let (_, _, cli) = setup(base()).await;
    let data = signed_in(&cli, "alice@example.com").await;
    let at = data["accessToken"].as_str().unwrap();
    let r = body(
        cli.get("/auth/me")
            .header("authorization", format!("Bearer {at}"))
            .send()
            .await,
    )
    .await;
    assert_eq!(r.2["data"]["user"]["identifier"], "alice@example.com");
    assert_eq!(r.1["cache-control"], "no-store");
    assert_error(
        &body(cli.get("/auth/me").send().await).await,
        401,
        "UNAUTHORIZED",
        "authentication required",
    );
    let login = |b: &'static str| {
        cli.post("/auth/login")
            .content_type("application/json")
            .body(b)
    };
    assert_error(
        &body(login("{nope}").send().await).await,
        400,
        "VALIDATION_ERROR",
        "body: malformed JSON (line 1, column 2)",
    );
    assert_error(
        &body(login(r#"{"identifier":"x"}"#).send().await).await,
        400,
        "VALIDATION_ERROR",
        "password: is required",
    );
    assert_error(
        &body(
            cli.post("/auth/login")
                .content_type("text/plain")
                .body("{}")
                .send()
                .await,
        )
        .await,
        400,
        "VALIDATION_ERROR",
        "Content-Type: must be application/json",
    );
    let huge = format!(
        r#"{{"identifier":"{}","password":"y"}}"#,
        "a".repeat(20_000)
    );
    assert_error(
        &body(
            cli.post("/auth/login")
                .content_type("application/json")
                .body(huge)
                .send()
                .await,
        )
        .await,
        413,
        "PAYLOAD_TOO_LARGE",
        "request body larger than 16384 bytes",
    );
    assert_error(
        &body(cli.get("/auth/nope").send().await).await,
        404,
        "NOT_FOUND",
        "route not found",
    );
    assert_error(
        &body(cli.get("/nope").send().await).await,
        404,
        "NOT_FOUND",
        "route not found",
    );
    let r = body(cli.get("/auth/login").send().await).await;
    assert_error(&r, 405, "METHOD_NOT_ALLOWED", "method not allowed");
    assert_eq!(r.1["allow"], "POST");
    assert_error(
        &body(cli.get("/echo").send().await).await,
        405,
        "METHOD_NOT_ALLOWED",
        "method not allowed",
    );
    assert_error(
        &body(
            cli.delete("/auth/sessions/nope")
                .header("authorization", format!("Bearer {at}"))
                .send()
                .await,
        )
        .await,
        400,
        "VALIDATION_ERROR",
        "id: must be a session id",
    );
    // The application's extractors.
    assert_eq!(
        body(cli.post("/echo").body_json(&json!({"a": 1})).send().await)
            .await
            .2,
        json!({"a": 1})
    );
    assert_error(
        &body(
            cli.post("/echo")
                .content_type("application/json")
                .body("{")
                .send()
                .await,
        )
        .await,
        400,
        "VALIDATION_ERROR",
        "body: malformed JSON (unexpected end of input)",
    );
    let big = format!("\"{}\"", "a".repeat(3 * 1024 * 1024));
    assert_error(
        &body(
            cli.post("/echo")
                .content_type("application/json")
                .body(big)
                .send()
                .await,
        )
        .await,
        413,
        "PAYLOAD_TOO_LARGE",
        "request body too large",
    );
    assert_eq!(body(cli.get("/page?page=3").send().await).await.3, "3");
    assert_error(
        &body(cli.get("/page?page=x").send().await).await,
        400,
        "VALIDATION_ERROR",
        "query: Failed to deserialize query string: page: invalid digit found in string",
    );
    let r = body(cli.get("/panic").send().await).await;
    assert_error(&r, 500, "INTERNAL_ERROR", "internal server error");
    assert!(!r.3.contains("secret"));
    assert_error(
        &body(cli.get("/payment").send().await).await,
        402,
        "PAYMENT_FAILED",
        "card declined",
    );
}

#[tokio::test]
async fn protect_guards_and_idempotency() {
    let (s, _, cli) = setup(base()).await;
    let data = signed_in(&cli, "bob@example.com").await;
    let uid = data["user"]["id"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {}", data["accessToken"].as_str().unwrap());
    assert_eq!(
        body(cli.get("/me").header("authorization", &bearer).send().await)
            .await
            .3,
        "bob@example.com"
    );
    assert_error(
        &body(
            cli.get("/me")
                .header("authorization", "Bearer x.y.z")
                .send()
                .await,
        )
        .await,
        401,
        "TOKEN_INVALID",
        "token invalid",
    );
    assert_eq!(body(cli.get("/feed").send().await).await.3, "anonymous");
    assert_eq!(
        body(
            cli.get("/feed")
                .header("authorization", &bearer)
                .send()
                .await
        )
        .await
        .3,
        "bob@example.com"
    );
    assert_error(
        &body(
            cli.get("/admin")
                .header("authorization", &bearer)
                .send()
                .await,
        )
        .await,
        403,
        "FORBIDDEN",
        "forbidden",
    );
    let own = format!("/users/{uid}/private");
    assert_eq!(
        body(cli.get(&own).header("authorization", &bearer).send().await)
            .await
            .0,
        200
    );
    assert_error(
        &body(
            cli.get(&own)
                .header("authorization", &bearer)
                .header("x-deny", "1")
                .send()
                .await,
        )
        .await,
        403,
        "FORBIDDEN",
        "forbidden",
    );
    let other = format!("/users/{}/private", sentri_core::model::UserId::new());
    assert_error(
        &body(
            cli.get(&other)
                .header("authorization", &bearer)
                .send()
                .await,
        )
        .await,
        403,
        "FORBIDDEN",
        "forbidden",
    );
    assert_error(
        &body(
            cli.get("/verified")
                .header("authorization", &bearer)
                .send()
                .await,
        )
        .await,
        403,
        "FORBIDDEN",
        "email address not verified",
    );
    assert!(sentri_poem::try_authorize(&s, ["root"]).is_err());

    let order = || {
        cli.post("/orders")
            .header("authorization", &bearer)
            .header("x-idempotency-key", "k-1")
            .body_json(&json!({"n": 1}))
    };
    let first = body(order().send().await).await;
    assert_eq!(first.0, 201);
    assert_eq!(first.2["data"]["key"], "k-1");
    assert_eq!(first.1["x-request-id"], "k-1");
    let again = body(order().send().await).await;
    assert_eq!(again.3, first.3);
    assert_eq!(again.1["x-idempotent-replayed"], "true");
    assert_error(
        &body(
            cli.post("/orders")
                .header("authorization", &bearer)
                .header("x-idempotency-key", "k-1")
                .body_json(&json!({"n": 2}))
                .send()
                .await,
        )
        .await,
        422,
        "IDEMPOTENCY_KEY_REUSED",
        "this idempotency key was used for a different request",
    );
}

#[tokio::test]
async fn cookies_csrf_and_silent_refresh() {
    let cookies = CookieConfig {
        transport: CookieTransport::Both,
        ..Default::default()
    };
    let (_, clock, cli) = setup(base().cookies(cookies)).await;
    let creds = json!({"identifier": "c@example.com", "password": PASSWORD});
    body(cli.post("/auth/register").body_json(&creds).send().await).await;
    let login = body(cli.post("/auth/login").body_json(&creds).send().await).await;
    let set: Vec<String> = login
        .1
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        set[0].starts_with("refresh_token=")
            && set[0].ends_with("; Max-Age=604800; Path=/auth; HttpOnly; Secure; SameSite=Strict"),
        "{set:?}"
    );
    assert!(
        set[1].starts_with("access_token=")
            && set[1].ends_with("; Max-Age=900; Path=/; Secure; SameSite=Strict")
    );
    assert!(login.2["data"].get("refreshToken").is_none());
    let jar: String = set
        .iter()
        .map(|c| c.split(';').next().unwrap())
        .collect::<Vec<_>>()
        .join("; ");
    assert_eq!(
        body(cli.get("/me").header("cookie", &jar).send().await)
            .await
            .3,
        "c@example.com"
    );
    assert_error(
        &body(
            cli.post("/auth/logout")
                .header("cookie", &jar)
                .header("host", "api.example.com")
                .header("origin", "https://evil.example")
                .send()
                .await,
        )
        .await,
        403,
        "FORBIDDEN",
        "cross-origin request refused",
    );
    clock.advance(Duration::from_secs(16 * 60));
    let r = body(cli.get("/me").header("cookie", &jar).send().await).await;
    assert_eq!(r.3, "c@example.com");
    let rotated: Vec<String> =
        r.1.get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
    assert_eq!(rotated.len(), 2);
    assert!(rotated[0].contains("Path=/auth"), "{rotated:?}");
}
