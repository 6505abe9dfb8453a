//! # sentri-axum
//!
//! The axum 0.8 adapter of sentri: the auth routes of SPEC §6 as a
//! [`Router`](axum::Router), `protect` and the authorization guards as
//! tower layers, extractors, the idempotency layer and error responses.
//! It holds no auth logic: everything is in [`sentri_core::http`], so the
//! poem adapter answers byte for byte alike.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use sentri_axum::{AuthUser, CatchPanicLayer, SentriError, protect, authorize};
//! use sentri_core::{Config, Sentri, store::Stores};
//! use sentri_memory::MemoryStore;
//!
//! async fn profile(user: AuthUser) -> Result<String, SentriError> {
//!     Ok(format!("hello {}", user.identifier()))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> sentri_core::Result<()> {
//! let config = Config::builder()
//!     .hs256("an HMAC secret of at least thirty-two bytes")
//!     .valid_roles(["user", "admin"])
//!     .build()?;
//! let sentri = Sentri::new(config, Stores::from_backend(Arc::new(MemoryStore::new()))).await?;
//!
//! let app: Router = Router::new()
//!     .nest("/auth", sentri_axum::router(sentri.clone()))
//!     .route("/api/profile", get(profile).route_layer(protect(&sentri)))
//!     .route(
//!         "/api/admin",
//!         get(|| async { "admin area" })
//!             .route_layer(authorize(&sentri, ["admin"]))
//!             .route_layer(protect(&sentri)),
//!     )
//!     .layer(CatchPanicLayer::new(&sentri));
//! # let _ = app;
//! // axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
//! # Ok(()) }
//! ```
//!
//! ## What is where
//!
//! | item | |
//! |---|---|
//! | [`router`] | `POST /register /login /refresh /logout /logout-all`, `GET /me`, `PUT /me/identifier /me/password`, `GET /sessions`, `DELETE /sessions/{id}`, `POST`/`DELETE /users/{userId}/roles`, `GET /keys` |
//! | [`protect`], [`protect_optional`] | F-20, CSRF (F-23), silent refresh (F-24) |
//! | [`protect_with_verifier`], [`authorize_roles`] | the same protect and guards in a resource server, on any `AccessVerifier` (client mode, F-16) |
//! | [`AuthUser`], [`MaybeAuthUser`] | the user the protect layer found |
//! | [`authorize`], [`permit`], [`permit_roles`], [`require_self`], [`require_verified_email`] | F-21, F-22 |
//! | [`SentriError`], [`envelope`], [`Json`], [`Path`], [`Query`], [`CatchPanicLayer`] | F-25: every error and rejection is the envelope; SPEC §3: panics reach `on_unhandled` |
//! | [`idempotency`] | F-26 for the application's routes |
//!
//! Layers added with `route_layer` run in reverse order of the calls:
//! write the guards and the idempotency layer *before* `protect`.
//!
//! This crate has no features of its own.
#![deny(missing_docs)]

mod error;
mod extract;
mod guards;
mod idempotency;
mod panic;
mod protect;
mod router;

pub use error::{SentriError, envelope};
pub use extract::{AuthUser, Json, MaybeAuthUser, Path, Query};
pub use guards::{
    GuardLayer, GuardService, PermitRequest, authorize, permit, permit_roles, require_amr,
    require_recent_auth, require_self, require_verified_email, try_authorize,
};
pub use idempotency::{IdempotencyLayer, IdempotencyService, idempotency};
pub use panic::{CatchPanic, CatchPanicLayer};
pub use protect::{
    ProtectFuture, ProtectLayer, ProtectService, VerifierProtectLayer, VerifierProtectService,
    authorize_roles, protect, protect_optional, protect_with_verifier,
};
pub use router::{router, router_with};
pub use sentri_core::http::IdempotencyKey;
