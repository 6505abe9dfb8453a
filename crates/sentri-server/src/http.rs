//! The server's HTTP application: the auth routes of `sentri-axum` under
//! `/auth`, and the server's own `/healthz`, `/readyz` and `/openapi.json`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use bytes::Bytes;
use sentri_axum::CatchPanicLayer;
use sentri_core::http::{Api, envelope_response, error_response};
use sentri_core::store::ThrottleStore;
use sentri_core::{Error, ErrorCode, Sentri};
use sentri_redis::RedisStore;
use sentri_sea_orm::SeaOrmStore;

use crate::error::ServerError;
use crate::settings::Settings;

/// Where the auth routes are mounted.
pub const AUTH_PREFIX: &str = "/auth";

/// How long `/readyz` waits for the database (and for Redis).
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Shared state of the server's own routes.
#[derive(Clone)]
pub struct AppState {
    sentri: Sentri,
    store: Arc<SeaOrmStore>,
    redis: Option<Arc<RedisStore>>,
    api: Api,
    openapi: Arc<[u8]>,
}

impl AppState {
    /// State over the services and the SQL store they use. The auth
    /// routes are the route table of one [`Api`] under [`AUTH_PREFIX`]:
    /// the adapters mount it and `/openapi.json` documents it.
    pub fn new(sentri: Sentri, store: Arc<SeaOrmStore>) -> Self {
        let api = Api::new(sentri.clone(), AUTH_PREFIX);
        let openapi = serde_json::to_vec(&crate::openapi::document(&api))
            .unwrap_or_default()
            .into();
        Self {
            sentri,
            store,
            redis: None,
            api,
            openapi,
        }
    }

    /// The Redis store `/readyz` checks too, when configured.
    #[must_use]
    pub fn with_redis(mut self, redis: Option<Arc<RedisStore>>) -> Self {
        self.redis = redis;
        self
    }

    /// The services.
    pub fn sentri(&self) -> &Sentri {
        &self.sentri
    }

    /// The auth routes (under [`AUTH_PREFIX`]), as served and documented.
    pub fn api(&self) -> &Api {
        &self.api
    }
}

/// The whole application: auth routes under [`AUTH_PREFIX`], the server's
/// routes, and an access log (method, path, status, time; never a header,
/// a query string or a body).
///
/// # Errors
/// [`ServerError::Settings`] when the adapter rejects the settings.
pub fn app(state: AppState, settings: &Settings) -> Result<Router, ServerError> {
    let auth = crate::auth::router(state.api(), settings)?;
    let catch_panic = CatchPanicLayer::new(&state.sentri);
    Ok(server_routes(state)
        .nest(AUTH_PREFIX, auth)
        .fallback(|| async { sentri_core::http::not_found_response().map(axum::body::Body::from) })
        .layer(catch_panic)
        .layer(middleware::from_fn(access_log)))
}

/// The server's own routes (outside `/auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerRoute {
    /// `GET /healthz`
    Healthz,
    /// `GET /readyz`
    Readyz,
    /// `GET /openapi.json`
    OpenApi,
}

impl ServerRoute {
    /// Every server route: what [`server_routes`] registers and the OpenAPI
    /// document describes.
    pub const ALL: [ServerRoute; 3] = [Self::Healthz, Self::Readyz, Self::OpenApi];

    /// The method.
    pub fn method(self) -> Method {
        Method::GET
    }

    /// The path.
    pub fn path(self) -> &'static str {
        match self {
            Self::Healthz => "/healthz",
            Self::Readyz => "/readyz",
            Self::OpenApi => "/openapi.json",
        }
    }

    fn handler(self) -> MethodRouter<AppState> {
        match self {
            Self::Healthz => get(healthz),
            Self::Readyz => get(readyz),
            Self::OpenApi => get(openapi),
        }
    }
}

/// The server's own routes, without the auth routes.
pub fn server_routes(state: AppState) -> Router {
    let mut router = Router::new();
    for route in ServerRoute::ALL {
        router = router.route(route.path(), route.handler());
    }
    router.with_state(state)
}

/// `GET /healthz`: the process is up. Framework-free, so both adapters
/// answer it byte for byte alike.
pub fn healthz_response() -> http::Response<Bytes> {
    envelope_response(
        StatusCode::OK,
        "ok",
        Some(serde_json::json!({ "status": "up" })),
    )
}

/// `GET /readyz`: the stores answer (one cheap query each, bounded in
/// time): the database, and Redis when configured.
pub async fn readyz_response(state: &AppState) -> http::Response<Bytes> {
    let database = async {
        match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "readiness check: database unavailable");
                false
            }
            Err(_) => {
                tracing::warn!(timeout = ?READY_TIMEOUT, "readiness check: database timed out");
                false
            }
        }
    };
    let redis = async {
        let redis = state.redis.as_ref()?;
        // A read of a key that never exists: one round trip, no write.
        let probe =
            redis.recent_failures("readyz-probe", chrono::Utc::now(), Duration::from_secs(1));
        Some(match tokio::time::timeout(READY_TIMEOUT, probe).await {
            Ok(Ok(_)) => true,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "readiness check: redis unavailable");
                false
            }
            Err(_) => {
                tracing::warn!(timeout = ?READY_TIMEOUT, "readiness check: redis timed out");
                false
            }
        })
    };
    let (database, redis) = tokio::join!(database, redis);
    match (database, redis) {
        (false, _) => unavailable("database unavailable"),
        (true, Some(false)) => unavailable("redis unavailable"),
        (true, None) => envelope_response(
            StatusCode::OK,
            "ready",
            Some(serde_json::json!({ "database": "up" })),
        ),
        (true, Some(true)) => envelope_response(
            StatusCode::OK,
            "ready",
            Some(serde_json::json!({ "database": "up", "redis": "up" })),
        ),
    }
}

fn unavailable(message: &'static str) -> http::Response<Bytes> {
    error_response(&Error::with_message(ErrorCode::ServiceUnavailable, message))
}

/// `GET /openapi.json`.
pub fn openapi_response(state: &AppState) -> http::Response<Bytes> {
    let mut res = http::Response::new(Bytes::copy_from_slice(&state.openapi));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

async fn healthz() -> Response {
    healthz_response().map(Body::from)
}

async fn readyz(State(state): State<AppState>) -> Response {
    readyz_response(&state).await.map(Body::from)
}

async fn openapi(State(state): State<AppState>) -> Response {
    openapi_response(&state).map(Body::from)
}

/// One access-log line (method, path, status, time; never a header value,
/// a query string or a body), shared by both adapters.
pub(crate) fn log_request(method: &Method, path: &str, status: u16, started: Instant) {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    // Probes would drown the log at `info`.
    if matches!(path, "/healthz" | "/readyz") && status < 400 {
        tracing::debug!(target: "sentri_server::access", %method, path = %path, status, elapsed_ms, "request");
    } else {
        tracing::info!(target: "sentri_server::access", %method, path = %path, status, elapsed_ms, "request");
    }
}

/// At `trace`: the header names of a request (values carry tokens,
/// cookies and API keys).
pub(crate) fn trace_request(method: &Method, path: &str, headers: &http::HeaderMap) {
    if tracing::enabled!(target: "sentri_server::access", tracing::Level::TRACE) {
        let names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        tracing::trace!(target: "sentri_server::access", %method, path = %path, headers = ?names, "request received");
    }
}

async fn access_log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    trace_request(&method, &path, request.headers());
    let started = Instant::now();
    let response = next.run(request).await;
    log_request(&method, &path, response.status().as_u16(), started);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use sentri_core::store::Stores;
    use tower::ServiceExt;

    async fn state() -> AppState {
        let db = sentri_sea_orm::connect("sqlite::memory:").await.unwrap();
        sentri_sea_orm::migrate(&db).await.unwrap();
        let store = Arc::new(SeaOrmStore::new(db));
        let config = sentri_core::Config::builder()
            .hs256("an HMAC secret of at least thirty-two bytes")
            .valid_roles(["user", "admin"])
            .build()
            .unwrap();
        let sentri = Sentri::new(config, Stores::from_backend(store.clone()))
            .await
            .unwrap();
        AppState::new(sentri, store)
    }

    async fn get(router: Router, path: &str) -> (StatusCode, serde_json::Value) {
        let res = router
            .oneshot(axum::http::Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = to_bytes(res.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn readyz_is_503_envelope_when_the_database_is_gone() {
        let state = state().await;
        let router = server_routes(state.clone());
        let (status, body) = get(router.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["data"]["database"], "up");

        state.store.connection().clone().close().await.unwrap();
        let (status, body) = get(router.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["code"], "SERVICE_UNAVAILABLE");
        assert_eq!(body["error"], true);
        // Liveness does not depend on the database.
        let (status, _) = get(router, "/healthz").await;
        assert_eq!(status, StatusCode::OK);
    }
}
