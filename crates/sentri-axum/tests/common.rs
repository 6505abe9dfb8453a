//! Shared setup: a `Sentri` on the memory store with a manual clock and
//! fast hashing, helpers to send requests and read envelopes.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::connect_info::MockConnectInfo;
use http::{Request, Response};
use sentri_core::clock::Clock;
use sentri_core::config::ConfigBuilder;
use sentri_core::password::PasswordPolicy;
use sentri_core::store::Stores;
use sentri_core::{Config, Sentri};
use sentri_memory::MemoryStore;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const SECRET: &str = "test-secret-test-secret-test-secret!";
pub const PASSWORD: &str = "correct horse battery staple";
pub const PEER: &str = "192.0.2.10:4000";

pub fn base() -> ConfigBuilder {
    Config::builder()
        .hs256(SECRET)
        .valid_roles(["user", "admin", "editor"])
        .password_policy(PasswordPolicy::argon2id(256, 1, 1))
}

pub struct Env {
    pub sentri: Sentri,
    pub clock: Clock,
    pub app: Router,
}

pub async fn env_with(builder: ConfigBuilder) -> Env {
    let stores = Stores::from_backend(Arc::new(MemoryStore::new()));
    let clock = Clock::manual_at_now();
    let sentri = Sentri::with_clock(builder.build().unwrap(), stores, clock.clone())
        .await
        .unwrap();
    let app = Router::new()
        .nest("/auth", sentri_axum::router(sentri.clone()))
        .layer(MockConnectInfo(PEER.parse::<SocketAddr>().unwrap()));
    Env { sentri, clock, app }
}

pub async fn env() -> Env {
    env_with(base()).await
}

pub struct Res {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Value,
    pub raw: bytes::Bytes,
}

impl Res {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    /// Assert an error envelope, exactly.
    pub fn assert_error(&self, status: u16, code: &str, message: &str) {
        assert_eq!(
            self.body,
            json!({"error": true, "statusCode": status, "code": code, "message": message, "data": null}),
            "raw: {}",
            String::from_utf8_lossy(&self.raw)
        );
        assert_eq!(self.status, status);
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}

pub async fn into_res(res: Response<Body>) -> Res {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let raw = to_bytes(res.into_body(), usize::MAX).await.unwrap();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Res {
        status,
        headers,
        body,
        raw,
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Res {
    into_res(app.clone().oneshot(req).await.unwrap()).await
}

pub fn json_req(method: &str, uri: &str, body: Value) -> http::request::Builder {
    let _ = body;
    Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
}

pub fn post(uri: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

pub fn with_body(method: &str, uri: &str, token: Option<&str>, body: Value) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_string())).unwrap()
}

pub fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method("GET").uri(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

pub async fn register(env: &Env, identifier: &str) -> Res {
    send(
        &env.app,
        post(
            "/auth/register",
            json!({"identifier": identifier, "password": PASSWORD}),
        ),
    )
    .await
}

pub async fn login(env: &Env, identifier: &str) -> Res {
    send(
        &env.app,
        post(
            "/auth/login",
            json!({"identifier": identifier, "password": PASSWORD}),
        ),
    )
    .await
}

/// Register and log in; returns the login response.
pub async fn signed_in(env: &Env, identifier: &str) -> Res {
    assert_eq!(register(env, identifier).await.status, 201);
    let res = login(env, identifier).await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    res
}

pub fn access(res: &Res) -> String {
    res.data()["accessToken"].as_str().unwrap().to_owned()
}

pub fn refresh_token(res: &Res) -> String {
    res.data()["refreshToken"].as_str().unwrap().to_owned()
}

/// The value of cookie `name` in a response's Set-Cookie headers.
pub fn cookie_value(res: &Res, name: &str) -> Option<String> {
    res.cookies().iter().find_map(|c| {
        let first = c.split(';').next()?;
        let (n, v) = first.split_once('=')?;
        (n == name).then(|| v.to_owned())
    })
}
