//! A resource server: an axum application with no database of its own
//! that verifies the access tokens a running `sentri-server` issues,
//! against the keys the server publishes at `GET /auth/keys` (client mode,
//! F-16), and protects its routes with the same layers as an auth server.
//!
//! ```text
//! cargo run -p sentri-server &            # the auth server on 127.0.0.1:3000 (EdDSA)
//! printf '%s\n' 'correct horse battery staple' | cargo run -p sentri-server -- \
//!     user create --identifier admin@example.com --password-stdin --roles admin
//! cargo run -p sentri-examples --example resource-server   # on 127.0.0.1:4000
//!
//! TOKEN=$(curl -s localhost:3000/auth/login -H 'content-type: application/json' \
//!     -d '{"identifier":"admin@example.com","password":"correct horse battery staple"}' \
//!     | jq -r .data.accessToken)
//! curl -s localhost:4000/hello -H "authorization: Bearer $TOKEN"
//! curl -s localhost:4000/admin/report -H "authorization: Bearer $TOKEN"
//! ```
//!
//! `SENTRI_JWKS_URL` names the key set (default
//! `http://127.0.0.1:3000/auth/keys`), `RESOURCE_BIND` the address to
//! listen on (default `127.0.0.1:4000`). The auth server must run when this
//! one starts (the first key set is fetched then); afterwards the keys are
//! kept for the server's `Cache-Control: max-age` and fetched again when a
//! token names a key not seen yet (after `sentri-server keys rotate`).

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use sentri_axum::{
    AuthUser, CatchPanicLayer, authorize_roles, envelope, protect_with_verifier, require_self,
};
use sentri_core::AccessVerifier;
use sentri_core::client::{HttpJwksSource, JwksVerifier, VerifierConfig};

/// Where the auth server publishes its keys unless `SENTRI_JWKS_URL` says.
const DEFAULT_JWKS_URL: &str = "http://127.0.0.1:3000/auth/keys";

/// Where this server listens unless `RESOURCE_BIND` says.
const DEFAULT_BIND: &str = "127.0.0.1:4000";

async fn hello(user: AuthUser) -> Response {
    envelope(
        StatusCode::OK,
        "hello",
        serde_json::json!({ "identifier": user.identifier(), "roles": user.roles() }),
    )
}

async fn report(user: AuthUser) -> Response {
    envelope(
        StatusCode::OK,
        "the admin report",
        serde_json::json!({ "requestedBy": user.id().to_string() }),
    )
}

async fn profile(user: AuthUser) -> Response {
    envelope(
        StatusCode::OK,
        "your profile",
        serde_json::json!({ "id": user.id().to_string(), "identifier": user.identifier() }),
    )
}

/// The application's routes, every one behind `protect_with_verifier`.
fn app(verifier: Arc<dyn AccessVerifier>) -> Router {
    Router::new()
        .route("/hello", get(hello))
        .route(
            "/admin/report",
            get(report).route_layer(authorize_roles(["admin"])),
        )
        .route(
            "/users/{userId}/profile",
            get(profile).route_layer(require_self("userId")),
        )
        .route_layer(protect_with_verifier(verifier))
        .layer(CatchPanicLayer::default())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jwks_url = std::env::var("SENTRI_JWKS_URL").unwrap_or_else(|_| DEFAULT_JWKS_URL.into());
    let bind = std::env::var("RESOURCE_BIND").unwrap_or_else(|_| DEFAULT_BIND.into());

    let source = HttpJwksSource::new(&jwks_url)?;
    let verifier = JwksVerifier::new(Arc::new(source), VerifierConfig::default())
        .await
        .map_err(|e| {
            format!("cannot fetch the key set from {jwks_url}: {e} (is sentri-server running?)")
        })?;
    println!("trusting keys {:?} from {jwks_url}", verifier.kids());

    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("resource server on http://{}", listener.local_addr()?);
    axum::serve(listener, app(Arc::new(verifier))).await?;
    Ok(())
}
