//! `bench-serve <scenario> --port N`: one scenario's server, in a child
//! process of `bench-run`.
//!
//! The child binds `127.0.0.1:N` (N = 0: any free port), prepares what the
//! load needs (a user, a session, a token) and tells the parent on stdout,
//! one item a line, ending with `ready <port>`:
//!
//! | line | meaning |
//! |---|---|
//! | `header <line>` | the header that authenticates `GET /me` |
//! | `token <refresh token>` | one per session, for `refresh_pg` |
//! | `body <json>` | the body of `POST /auth/login`, for `login` |
//! | `metric <name> <value>` | a figure measured in the child (`memory_1m`) |
//!
//! It serves until its stdin is closed (the parent ended or died), so no
//! server outlives a run.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::{StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sentri_core::config::{Algorithm, Config, SessionCheck};
use sentri_core::store::Stores;
use sentri_core::{ClientInfo, LoginInput, RegisterInput, Sentri};
use sentri_sea_orm::SeaOrmStore;
use sentri_sea_orm::sea_orm::sqlx;
use serde::{Deserialize, Serialize};

/// The HMAC secret of every HS256 scenario.
const SECRET: &str = "sentri bench secret, at least thirty-two bytes long";
const PASSWORD: &str = "correct horse battery staple";

/// Arguments of `bench-serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario (see `bench-run`).
    scenario: String,
    /// Port on 127.0.0.1; 0 picks a free one (reported on stdout).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// PostgreSQL URL of the bench database.
    #[arg(long)]
    database_url: Option<String>,
    /// SQLite file for `sentri_always_sqlite`.
    #[arg(long)]
    sqlite_path: Option<std::path::PathBuf>,
    /// Sessions to open for `refresh_pg`.
    #[arg(long, default_value_t = 32)]
    sessions: usize,
}

/// The JSON every scenario answers on `GET /me`.
#[derive(Debug, Serialize)]
struct Me<'a> {
    id: String,
    identifier: &'a str,
}

pub fn run(args: Args) -> crate::Result {
    // The parent closes our stdin when it is done (or dies): exit then.
    std::thread::spawn(|| {
        let mut line = String::new();
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read_line(&mut line), Ok(n) if n > 0) {
            line.clear();
        }
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

fn say(line: &str) -> crate::Result {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

async fn serve(args: Args) -> crate::Result {
    if let Some(rest) = args.scenario.strip_prefix("poem_") {
        return poem_app::serve(&args, rest).await;
    }
    if args.scenario == "memory_1m" {
        let mib = memory_1m().await?;
        say(&format!("metric memory_1m_mib {mib:.1}"))?;
        say("ready 0")?;
        return park().await;
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let addr = listener.local_addr()?;
    let app = app(&args, addr).await?;
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    // Scenarios that log in over HTTP do it once the server runs.
    if args.scenario == "peer_axum_login" {
        let (status, head, _) = super::load::once(
            addr,
            &super::load::post_json("/login", r#"{"user":"bench@example.com"}"#),
        )
        .await
        .map_err(|e| e.to_string())?;
        let cookie = super::load::set_cookie(&head)
            .filter(|_| status == 200)
            .ok_or("axum-login did not set a session cookie")?;
        say(&format!("header Cookie: {cookie}"))?;
    }
    say(&format!("ready {}", addr.port()))?;
    server.await??;
    Ok(())
}

async fn park() -> crate::Result {
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

async fn app(args: &Args, _addr: SocketAddr) -> crate::Result<Router> {
    let pg = || {
        args.database_url
            .clone()
            .ok_or("this scenario needs --database-url")
    };
    let scenario = args.scenario.as_str();
    Ok(match scenario {
        "bare" => Router::new().route("/me", get(bare_me)),
        "peer_jwt" => {
            let keys = PeerKeys::new(None);
            let token = keys.sign(uuid::Uuid::new_v4(), uuid::Uuid::new_v4())?;
            say(&format!("header Authorization: Bearer {token}"))?;
            Router::new()
                .route("/me", get(peer_me))
                .with_state(Arc::new(keys))
        }
        "peer_jwt_pg" => {
            let db = sentri_sea_orm::connect(&pg()?).await?;
            // The session row is made by sentri (the schema is the same);
            // the request path below is all hand-written.
            let sentri = sentri(
                Config::builder().hs256(SECRET),
                Stores::from_backend(Arc::new(SeaOrmStore::new(db.clone()))),
            )
            .await?;
            let (user, sid) = {
                let out = login(&sentri, scenario).await?;
                (*out.user.id.as_uuid(), *out.session_id.as_uuid())
            };
            let keys = PeerKeys::new(Some(db.get_postgres_connection_pool().clone()));
            say(&format!(
                "header Authorization: Bearer {}",
                keys.sign(user, sid)?
            ))?;
            Router::new()
                .route("/me", get(peer_pg_me))
                .with_state(Arc::new(keys))
        }
        "peer_axum_login" => peer_axum_login::router(),
        "login_bare" => {
            let body = serde_json::json!({
                "identifier": identifier(scenario),
                "password": PASSWORD,
            });
            say(&format!("body {body}"))?;
            Router::new()
                .route("/auth/login", axum::routing::post(bare_login))
                .with_state(Arc::new(BareLogin::new()?))
        }
        "sentri_stateless_hs256" => {
            let s = sentri(
                Config::builder()
                    .hs256(SECRET)
                    .session_check(SessionCheck::Stateless),
                memory(),
            )
            .await?;
            sentri_me(&s, scenario).await?
        }
        "sentri_stateless_eddsa" => {
            let s = sentri(
                Config::builder()
                    .algorithm(Algorithm::EdDSA)
                    .session_check(SessionCheck::Stateless),
                memory(),
            )
            .await?;
            sentri_me(&s, scenario).await?
        }
        "sentri_always_sqlite" => {
            let path = args
                .sqlite_path
                .as_ref()
                .ok_or("this scenario needs --sqlite-path")?;
            let db =
                sentri_sea_orm::connect(&format!("sqlite://{}?mode=rwc", path.display())).await?;
            sentri_sea_orm::migrate(&db).await?;
            let s = sentri(
                Config::builder().hs256(SECRET),
                Stores::from_backend(Arc::new(SeaOrmStore::new(db))),
            )
            .await?;
            sentri_me(&s, scenario).await?
        }
        "sentri_always_pg" | "sentri_cached" => {
            let db = sentri_sea_orm::connect(&pg()?).await?;
            let check = if scenario == "sentri_cached" {
                SessionCheck::Cached(Duration::from_secs(30))
            } else {
                SessionCheck::Always
            };
            let s = sentri(
                Config::builder().hs256(SECRET).session_check(check),
                Stores::from_backend(Arc::new(SeaOrmStore::new(db))),
            )
            .await?;
            sentri_me(&s, scenario).await?
        }
        "login" | "login_memory" | "refresh_pg" => {
            let stores = if scenario == "login_memory" {
                memory()
            } else {
                let db = sentri_sea_orm::connect(&pg()?).await?;
                Stores::from_backend(Arc::new(SeaOrmStore::new(db)))
            };
            let s = sentri(Config::builder().hs256(SECRET), stores).await?;
            if scenario != "refresh_pg" {
                register(&s, scenario).await?;
                let body = serde_json::json!({
                    "identifier": identifier(scenario),
                    "password": PASSWORD,
                });
                say(&format!("body {body}"))?;
            } else {
                register(&s, scenario).await?;
                for _ in 0..args.sessions {
                    let out = login_only(&s, scenario).await?;
                    say(&format!("token {}", out.tokens.refresh_token))?;
                }
            }
            Router::new().nest("/auth", sentri_axum::router(s))
        }
        other => return Err(format!("unknown scenario {other}").into()),
    })
}

fn identifier(scenario: &str) -> String {
    format!("{scenario}@bench.example.com")
}

fn memory() -> Stores {
    Stores::from_backend(Arc::new(sentri_memory::MemoryStore::new()))
}

async fn sentri(
    builder: sentri_core::config::ConfigBuilder,
    stores: Stores,
) -> crate::Result<Sentri> {
    let config = builder.valid_roles(["user", "admin"]).build()?;
    Ok(Sentri::new(config, stores).await?)
}

async fn register(sentri: &Sentri, scenario: &str) -> crate::Result {
    sentri
        .register(RegisterInput {
            identifier: identifier(scenario),
            password: PASSWORD.into(),
            roles: None,
            name: None,
        })
        .await?;
    Ok(())
}

async fn login_only(sentri: &Sentri, scenario: &str) -> crate::Result<sentri_core::AuthOutput> {
    Ok(sentri
        .login(LoginInput {
            identifier: identifier(scenario),
            password: PASSWORD.into(),
            client: ClientInfo::default(),
        })
        .await?
        .authenticated()?)
}

async fn login(sentri: &Sentri, scenario: &str) -> crate::Result<sentri_core::AuthOutput> {
    register(sentri, scenario).await?;
    login_only(sentri, scenario).await
}

/// `GET /me` behind sentri's `protect`, and the access token to call it.
async fn sentri_me(sentri: &Sentri, scenario: &str) -> crate::Result<Router> {
    let out = login(sentri, scenario).await?;
    say(&format!(
        "header Authorization: Bearer {}",
        out.tokens.access_token
    ))?;
    Ok(Router::new().route(
        "/me",
        get(sentri_handler).route_layer(sentri_axum::protect(sentri)),
    ))
}

async fn sentri_handler(user: sentri_axum::AuthUser) -> Response {
    Json(Me {
        id: user.id().as_uuid().to_string(),
        identifier: user.identifier(),
    })
    .into_response()
}

async fn bare_me() -> Response {
    Json(Me {
        id: "0191e6f4-3b4c-7d2e-8f00-5a6b7c8d9e0f".to_owned(),
        identifier: "bare@bench.example.com",
    })
    .into_response()
}

// ---- the floor of a login: JSON in, argon2id verify, JSON out ----

/// One stored argon2id hash (m=19456 KiB, t=2, p=1: sentri's default
/// policy), verified the way a hand-written login handler would.
struct BareLogin {
    argon: argon2::Argon2<'static>,
    salt: [u8; 16],
    expected: [u8; 32],
}

impl BareLogin {
    fn new() -> crate::Result<Self> {
        let params = argon2::Params::new(19_456, 2, 1, Some(32)).map_err(|e| e.to_string())?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = *b"sentri-bare-salt";
        let mut expected = [0u8; 32];
        argon
            .hash_password_into(PASSWORD.as_bytes(), &salt, &mut expected)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            argon,
            salt,
            expected,
        })
    }
}

#[derive(Deserialize)]
struct Credentials {
    identifier: String,
    password: String,
}

async fn bare_login(
    State(login): State<Arc<BareLogin>>,
    Json(Credentials {
        identifier,
        password,
    }): Json<Credentials>,
) -> Response {
    let ok = tokio::task::spawn_blocking(move || {
        let mut out = [0u8; 32];
        login
            .argon
            .hash_password_into(password.as_bytes(), &login.salt, &mut out)
            .is_ok()
            && out == login.expected
    })
    .await
    .unwrap_or(false);
    if ok {
        Json(Me {
            id: "0191e6f4-3b4c-7d2e-8f00-5a6b7c8d9e0f".to_owned(),
            identifier: &identifier,
        })
        .into_response()
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

// ---- hand-written JWT (+ PostgreSQL), the way teams write it today ----

#[derive(Debug, Serialize, Deserialize)]
struct PeerClaims {
    sub: uuid::Uuid,
    sid: uuid::Uuid,
    identifier: String,
    exp: i64,
    iat: i64,
}

struct PeerKeys {
    encoding: jsonwebtoken::EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    pool: Option<sqlx::PgPool>,
}

impl PeerKeys {
    fn new(pool: Option<sqlx::PgPool>) -> Self {
        Self {
            encoding: jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
            decoding: jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
            validation: jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
            pool,
        }
    }

    fn sign(&self, user: uuid::Uuid, sid: uuid::Uuid) -> crate::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = PeerClaims {
            sub: user,
            sid,
            identifier: "peer@bench.example.com".to_owned(),
            iat: now,
            exp: now + 900,
        };
        Ok(jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }
}

/// The usual hand-written extractor: Bearer header, `jsonwebtoken::decode`.
struct PeerUser(PeerClaims);

impl FromRequestParts<Arc<PeerKeys>> for PeerUser {
    type Rejection = StatusCode;

    async fn from_request_parts(
        parts: &mut Parts,
        keys: &Arc<PeerKeys>,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(StatusCode::UNAUTHORIZED)?;
        let data = jsonwebtoken::decode::<PeerClaims>(token, &keys.decoding, &keys.validation)
            .map_err(|_| StatusCode::UNAUTHORIZED)?;
        Ok(PeerUser(data.claims))
    }
}

async fn peer_me(PeerUser(claims): PeerUser) -> Response {
    Json(Me {
        id: claims.sub.to_string(),
        identifier: &claims.identifier,
    })
    .into_response()
}

async fn peer_pg_me(State(keys): State<Arc<PeerKeys>>, PeerUser(claims): PeerUser) -> Response {
    let Some(pool) = &keys.pool else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let row: Result<Option<(uuid::Uuid,)>, _> =
        sqlx::query_as("SELECT user_id FROM sentri_sessions WHERE id = $1 AND expires_at > now()")
            .bind(claims.sid)
            .fetch_optional(pool)
            .await;
    match row {
        Ok(Some((user,))) if user == claims.sub => Json(Me {
            id: claims.sub.to_string(),
            identifier: &claims.identifier,
        })
        .into_response(),
        Ok(_) => StatusCode::UNAUTHORIZED.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

// ---- axum-login + tower-sessions (memory store), cookie session ----

mod peer_axum_login {
    use std::collections::HashMap;
    use std::sync::Arc;

    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use axum_login::{AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend, UserId};
    use serde::Deserialize;
    use tower_sessions::{MemoryStore, SessionManagerLayer};

    use super::Me;

    #[derive(Debug, Clone)]
    pub struct User {
        id: u64,
        identifier: String,
        /// What axum-login compares to invalidate sessions on a password
        /// change (usually the password hash).
        auth_hash: Vec<u8>,
    }

    impl AuthUser for User {
        type Id = u64;
        fn id(&self) -> u64 {
            self.id
        }
        fn session_auth_hash(&self) -> &[u8] {
            &self.auth_hash
        }
    }

    #[derive(Debug, Clone, Deserialize)]
    pub struct Credentials {
        user: String,
    }

    #[derive(Debug, Clone)]
    pub struct Backend {
        users: Arc<HashMap<u64, User>>,
    }

    impl AuthnBackend for Backend {
        type User = User;
        type Credentials = Credentials;
        type Error = std::convert::Infallible;

        async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, Self::Error> {
            Ok(self
                .users
                .values()
                .find(|u| u.identifier == creds.user)
                .cloned())
        }

        async fn get_user(&self, id: &UserId<Self>) -> Result<Option<User>, Self::Error> {
            Ok(self.users.get(id).cloned())
        }
    }

    async fn login(mut auth: AuthSession<Backend>, Json(creds): Json<Credentials>) -> Response {
        match auth.authenticate(creds).await {
            Ok(Some(user)) => match auth.login(&user).await {
                Ok(()) => StatusCode::OK.into_response(),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            },
            _ => StatusCode::UNAUTHORIZED.into_response(),
        }
    }

    async fn me(auth: AuthSession<Backend>) -> Response {
        match &auth.user {
            Some(user) => Json(Me {
                id: user.id.to_string(),
                identifier: &user.identifier,
            })
            .into_response(),
            None => StatusCode::UNAUTHORIZED.into_response(),
        }
    }

    pub fn router() -> Router {
        let user = User {
            id: 1,
            identifier: "bench@example.com".to_owned(),
            auth_hash: b"password hash".to_vec(),
        };
        let backend = Backend {
            users: Arc::new(HashMap::from([(user.id, user)])),
        };
        let sessions = SessionManagerLayer::new(MemoryStore::default()).with_secure(false);
        let auth = AuthManagerLayerBuilder::new(backend, sessions).build();
        Router::new()
            .route("/me", get(me))
            .route("/login", post(login))
            .layer(auth)
    }
}

// ---- memory_1m ----

/// Resident memory of this process, in bytes (`VmRSS`).
fn resident_bytes() -> crate::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(kib * 1024)
}

/// Fill a `MemoryStore` with 1 000 000 sessions (ten per user, as
/// `sentri-memory/examples/million_sessions.rs` does) and return the growth
/// of the resident set, in MiB.
async fn memory_1m() -> crate::Result<f64> {
    use chrono::{TimeDelta, Utc};
    use sentri_core::model::{NewSession, NewUser, PasswordHash, SessionId, TokenHash, UserId};
    use sentri_core::store::{SessionStore, UserStore};

    const COUNT: u64 = 1_000_000;
    let store = sentri_memory::MemoryStore::new();
    let now = Utc::now();
    let before = resident_bytes()?;
    let mut user = UserId::new();
    for i in 0..COUNT {
        if i % 10 == 0 {
            user = UserId::new();
            store
                .create_user(NewUser {
                    id: user,
                    identifier: format!("user{i}@example.com"),
                    identifier_key: format!("user{i}@example.com"),
                    password_hash: PasswordHash::new(
                        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
                    ),
                    roles: vec!["user".to_owned()],
                    name: None,
                    created_at: now,
                })
                .await?;
        }
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&i.to_le_bytes());
        store
            .create_session(NewSession {
                id: SessionId::new(),
                user_id: user,
                refresh_hash: TokenHash(hash),
                user_agent: Some(
                    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                     Chrome/131.0.0.0 Safari/537.36"
                        .to_owned(),
                ),
                ip: Some(format!("203.0.{}.{}", (i >> 8) % 256, i % 256)),
                created_at: now,
                expires_at: now + TimeDelta::days(7),
                amr: vec!["pwd".to_owned()],
            })
            .await?;
    }
    let after = resident_bytes()?;
    if store.session_count() as u64 != COUNT {
        return Err("the store does not hold every session".into());
    }
    let mib = after.saturating_sub(before) as f64 / (1024.0 * 1024.0);
    drop(store);
    Ok(mib)
}

// ---- poem: the same `GET /me` through sentri-poem ----

mod poem_app {
    use std::sync::Arc;

    use poem::listener::{Acceptor, Listener, TcpListener};
    use poem::web::Json;
    use poem::{EndpointExt, Route, get, handler};
    use sentri_core::config::{Config, SessionCheck};
    use sentri_core::store::Stores;
    use sentri_sea_orm::SeaOrmStore;

    use super::{Me, SECRET, login, memory, say, sentri};

    #[handler]
    fn bare_me() -> Json<Me<'static>> {
        Json(Me {
            id: "0191e6f4-3b4c-7d2e-8f00-5a6b7c8d9e0f".to_owned(),
            identifier: "bare@bench.example.com",
        })
    }

    #[handler]
    fn sentri_me(user: sentri_poem::AuthUser) -> poem::Response {
        use poem::IntoResponse;
        Json(Me {
            id: user.0.id().as_uuid().to_string(),
            identifier: user.0.identifier(),
        })
        .into_response()
    }

    pub async fn serve(args: &super::Args, kind: &str) -> crate::Result {
        let scenario = args.scenario.as_str();
        let app = match kind {
            "bare" => Route::new().at("/me", get(bare_me)).boxed(),
            "stateless_hs256" | "always_pg" => {
                let (builder, stores) = if kind == "always_pg" {
                    let url = args
                        .database_url
                        .as_deref()
                        .ok_or("this scenario needs --database-url")?;
                    let db = sentri_sea_orm::connect(url).await?;
                    (
                        Config::builder().hs256(SECRET),
                        Stores::from_backend(Arc::new(SeaOrmStore::new(db))),
                    )
                } else {
                    (
                        Config::builder()
                            .hs256(SECRET)
                            .session_check(SessionCheck::Stateless),
                        memory(),
                    )
                };
                let s = sentri(builder, stores).await?;
                let out = login(&s, scenario).await?;
                say(&format!(
                    "header Authorization: Bearer {}",
                    out.tokens.access_token
                ))?;
                Route::new()
                    .at("/me", get(sentri_me).with(sentri_poem::protect(&s)))
                    .boxed()
            }
            other => return Err(format!("unknown scenario poem_{other}").into()),
        };
        let acceptor = TcpListener::bind(format!("127.0.0.1:{}", args.port))
            .into_acceptor()
            .await?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().map(|s| s.port()))
            .ok_or("poem listener without an address")?;
        say(&format!("ready {port}"))?;
        poem::Server::new_with_acceptor(acceptor).run(app).await?;
        Ok(())
    }
}
