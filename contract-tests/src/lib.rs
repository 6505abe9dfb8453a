//! One HTTP contract for every sentri web adapter (SPEC §6: "identical in
//! axum and poem").
//!
//! [`start`] serves the same application — the auth routes under `/auth`
//! and a few routes of its own behind `protect`, the guards and the
//! idempotency layer — through one adapter, on a free loopback port, with
//! a manual clock, on its own `MemoryStore` or, with [`start_on`], on a
//! real [`Backend`] isolated for the test (a fresh PostgreSQL database, a
//! fresh Redis key prefix). A scenario drives a
//! [`Server`] with a real HTTP client and records every [`Outcome`]; the
//! tests run each scenario against every [`Adapter`] and require the
//! records to be equal, after [`normalize`] has replaced what legitimately
//! differs per run (ids, tokens, cookie values).
#![deny(missing_docs)]

mod apps;
mod backends;
pub mod plugin;

pub use apps::Gates;
pub use backends::Backend;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sentri_core::clock::Clock;
use sentri_core::config::ConfigBuilder;
use sentri_core::{Config, Sentri};
use serde_json::Value;

/// A web adapter under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// `sentri-axum`, served by `axum::serve`.
    Axum,
    /// `sentri-poem`, served by `poem::Server`.
    Poem,
}

/// The adapters every scenario runs against.
pub const ADAPTERS: [Adapter; 2] = [Adapter::Axum, Adapter::Poem];

/// The password of every account the scenarios create.
pub const PASSWORD: &str = "correct horse battery staple";

/// The configuration every server starts from: HS256, fast hashing, the
/// roles `user`, `admin`, `editor`.
pub fn base() -> ConfigBuilder {
    Config::builder()
        .hs256("contract-secret-contract-secret-contract!")
        .valid_roles(["user", "admin", "editor"])
        .password_policy(sentri_core::password::PasswordPolicy::argon2id(256, 1, 1))
}

/// What one request answered, as compared between adapters.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The status.
    pub status: u16,
    /// The headers that matter, lowercase names, values in order.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The body: JSON when it parses, else a string.
    pub body: Value,
}

impl Outcome {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// `data` of the envelope.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// The value of cookie `name` set by the response.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers.get("set-cookie")?.iter().find_map(|c| {
            let (n, v) = c.split(';').next()?.split_once('=')?;
            (n == name).then(|| v.to_owned())
        })
    }
}

/// The headers compared between adapters.
pub const COMPARED_HEADERS: [&str; 12] = [
    "content-type",
    "cache-control",
    "set-cookie",
    "retry-after",
    "www-authenticate",
    "x-idempotent-replayed",
    "x-request-id",
    "allow",
    "x-content-type-options",
    "referrer-policy",
    "x-frame-options",
    "strict-transport-security",
];

/// The security headers every sentri response carries (the auth routes
/// and every envelope), checked on each one the scenarios send.
pub const BASELINE_HEADERS: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
];

/// A request of a scenario.
#[derive(Debug, Clone)]
pub struct Req {
    method: reqwest::Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl Req {
    /// A request without a body.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.parse().expect("a method"),
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// `GET path`.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// A JSON request.
    pub fn json(method: &str, path: &str, body: &Value) -> Self {
        Self::new(method, path)
            .header("content-type", "application/json")
            .raw(body.to_string())
    }

    /// Add a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `Authorization: Bearer token`.
    #[must_use]
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// Set the body as is.
    #[must_use]
    pub fn raw(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
}

/// A running application behind one adapter.
pub struct Server {
    /// The adapter.
    pub adapter: Adapter,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The services, to prepare state (e.g. `bootstrap_admin`).
    pub sentri: Sentri,
    /// The manual clock of the services.
    pub clock: Clock,
    /// The gated runs of `POST /orders` (item `gated`).
    pub gates: Arc<Gates>,
    client: reqwest::Client,
    log: Mutex<Vec<(String, Outcome)>>,
    _isolation: backends::Isolation,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("adapter", &self.adapter)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The instant every manual clock starts at, so both adapters see the same
/// times.
fn epoch() -> DateTime<Utc> {
    static EPOCH: std::sync::OnceLock<DateTime<Utc>> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(|| {
        let now = Utc::now();
        DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
    })
}

/// Start the application of [`apps`] behind `adapter` on a free loopback
/// port, with the configuration `config`, on a `MemoryStore`.
///
/// # Panics
/// When the configuration is invalid or no port can be bound.
pub async fn start(adapter: Adapter, config: ConfigBuilder) -> Arc<Server> {
    start_on(adapter, config, Backend::Memory).await
}

/// As [`start`], on the stores of `backend`, prepared for this server
/// alone and cleaned up when the [`Server`] is dropped.
///
/// # Panics
/// As [`start`], and when the backend's server cannot be reached.
pub async fn start_on(adapter: Adapter, config: ConfigBuilder, backend: Backend) -> Arc<Server> {
    let clock = Clock::manual(epoch());
    let (stores, isolation) = backend.stores().await;
    // Every server runs the test plugin, with its store beside sentri's.
    let notes: Arc<dyn plugin::NotesStore> = Arc::new(plugin::MemoryNotes::default());
    let sentri = Sentri::builder(
        config.build().expect("config"),
        stores.with_extension(notes),
    )
    .clock(clock.clone())
    .plugin(plugin::NotesPlugin { key: "open".into() })
    .build()
    .await
    .expect("sentri");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let gates = Arc::new(Gates::default());
    match adapter {
        Adapter::Axum => {
            let app = apps::axum_app(&sentri, gates.clone());
            tokio::spawn(async move {
                let _ = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await;
            });
        }
        Adapter::Poem => {
            // poem binds itself: hand the port over.
            drop(listener);
            let app = apps::poem_app(&sentri, gates.clone());
            let listener = poem::listener::TcpListener::bind(addr.to_string());
            tokio::spawn(async move {
                let _ = poem::Server::new(listener).run(app).await;
            });
        }
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let server = Server {
        adapter,
        base: format!("http://{addr}"),
        sentri,
        clock,
        gates,
        client,
        log: Mutex::new(Vec::new()),
        _isolation: isolation,
    };
    server.wait_ready().await;
    Arc::new(server)
}

impl Server {
    async fn wait_ready(&self) {
        for _ in 0..200 {
            if self
                .client
                .get(format!("{}/auth/keys", self.base))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{:?} did not start", self.adapter);
    }

    /// Send `req` without recording it.
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub async fn fetch(&self, req: Req) -> Outcome {
        let mut b = self
            .client
            .request(req.method, format!("{}{}", self.base, req.path));
        for (n, v) in &req.headers {
            b = b.header(n, v);
        }
        if let Some(body) = req.body {
            b = b.body(body);
        }
        let res = b.send().await.expect("request");
        let status = res.status().as_u16();
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for name in COMPARED_HEADERS {
            let values: Vec<String> = res
                .headers()
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            if !values.is_empty() {
                headers.insert(name.to_owned(), values);
            }
        }
        let raw = res.bytes().await.expect("body");
        let body: Value = serde_json::from_slice(&raw)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()));
        // sentri's responses: its routes, and every envelope (errors of
        // protect, guards and the error handler on the application's routes).
        let sentri_made = req.path.starts_with("/auth") || body.get("statusCode").is_some();
        if sentri_made {
            for (name, value) in BASELINE_HEADERS {
                assert_eq!(
                    headers.get(name).map(|v| v.as_slice()),
                    Some(&[value.to_owned()][..]),
                    "{:?} {} {}: {name}",
                    self.adapter,
                    req.path,
                    status
                );
            }
        }
        Outcome {
            status,
            headers,
            body,
        }
    }

    /// Send `req`, record its outcome under `label` and check its status.
    ///
    /// # Panics
    /// When the status is not `status`.
    pub async fn send(&self, label: &str, req: Req, status: u16) -> Outcome {
        let out = self.fetch(req).await;
        assert_eq!(
            out.status, status,
            "{:?} {label}: {}",
            self.adapter, out.body
        );
        self.record(label, &out);
        out
    }

    /// Send `req` and record its outcome under `label`, whatever its
    /// status.
    pub async fn any(&self, label: &str, req: Req) -> Outcome {
        let out = self.fetch(req).await;
        self.record(label, &out);
        out
    }

    /// Record an outcome obtained otherwise (e.g. concurrently).
    ///
    /// # Panics
    /// When the log's lock is poisoned.
    pub fn record(&self, label: &str, out: &Outcome) {
        self.log
            .lock()
            .expect("log")
            .push((label.to_owned(), out.clone()));
    }

    /// Everything recorded, normalized.
    ///
    /// # Panics
    /// When the log's lock is poisoned.
    pub fn transcript(&self) -> Vec<(String, Outcome)> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .map(|(l, o)| (l.clone(), normalize(o)))
            .collect()
    }
}

/// Replace what differs per run: tokens (`accessToken`, `refreshToken`),
/// UUIDs anywhere in the body, and cookie values.
pub fn normalize(out: &Outcome) -> Outcome {
    let mut out = out.clone();
    normalize_value(&mut out.body, None);
    if let Some(cookies) = out.headers.get_mut("set-cookie") {
        for c in cookies.iter_mut() {
            if let Some((name, rest)) = c.split_once('=') {
                let attrs = rest.split_once(';').map_or("", |(_, a)| a);
                let value = rest.split(';').next().unwrap_or("");
                let value = if value.is_empty() { "" } else { "<value>" };
                *c = if attrs.is_empty() {
                    format!("{name}={value}")
                } else {
                    format!("{name}={value};{attrs}")
                };
            }
        }
    }
    out
}

fn normalize_value(v: &mut Value, key: Option<&str>) {
    match v {
        Value::String(s) => {
            if matches!(key, Some("accessToken" | "refreshToken")) {
                *s = "<token>".to_owned();
            } else if uuid::Uuid::parse_str(s).is_ok() {
                *s = "<uuid>".to_owned();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| normalize_value(v, key)),
        Value::Object(o) => o
            .iter_mut()
            .for_each(|(k, v)| normalize_value(v, Some(k.as_str()))),
        _ => {}
    }
}

/// Run `scenario` against every adapter, each on a fresh server with the
/// configuration `config()`, and require equal transcripts.
///
/// # Panics
/// On any difference between the adapters, naming the request.
pub async fn contract<C, S, F>(config: C, scenario: S)
where
    C: Fn() -> ConfigBuilder,
    S: Fn(Arc<Server>) -> F,
    F: std::future::Future<Output = ()>,
{
    contract_on(Backend::Memory, config, scenario).await;
}

/// As [`contract`], each server on fresh stores of `backend`.
///
/// # Panics
/// As [`contract`].
pub async fn contract_on<C, S, F>(backend: Backend, config: C, scenario: S)
where
    C: Fn() -> ConfigBuilder,
    S: Fn(Arc<Server>) -> F,
    F: std::future::Future<Output = ()>,
{
    let mut transcripts = Vec::new();
    for adapter in ADAPTERS {
        let server = start_on(adapter, config(), backend).await;
        scenario(server.clone()).await;
        transcripts.push((adapter, server.transcript()));
    }
    let (first, expected) = &transcripts[0];
    assert!(!expected.is_empty(), "the scenario sent no request");
    for (adapter, got) in &transcripts[1..] {
        assert_eq!(
            expected.len(),
            got.len(),
            "{first:?} vs {adapter:?}: request count"
        );
        for ((label, want), (_, have)) in expected.iter().zip(got) {
            assert_eq!(want, have, "{first:?} vs {adapter:?} differ on: {label}");
        }
    }
}
