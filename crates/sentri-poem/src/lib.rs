//! # sentri-poem
//!
//! The poem 3 adapter of sentri: the auth routes of SPEC §6 as one
//! endpoint to nest under any prefix, `protect` and the authorization
//! guards as middleware, extractors, the idempotency middleware and error
//! responses. It holds no auth logic: everything is in
//! [`sentri_core::http`], so it answers byte for byte as `sentri-axum`
//! does.
//!
//! ```
//! use std::sync::Arc;
//! use poem::{EndpointExt, Route, get, handler};
//! use sentri_poem::{AuthUser, EnvelopeErrors, SentriError, authorize, protect};
//! use sentri_core::{Config, Sentri, store::Stores};
//! use sentri_memory::MemoryStore;
//!
//! #[handler]
//! async fn profile(user: AuthUser) -> Result<String, SentriError> {
//!     Ok(format!("hello {}", user.identifier()))
//! }
//!
//! #[handler]
//! fn admin_area() -> &'static str {
//!     "admin area"
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
//! let app = Route::new()
//!     .nest("/auth", sentri_poem::routes(sentri.clone()))
//!     .at("/api/profile", get(profile).with(protect(&sentri)))
//!     .at(
//!         "/api/admin",
//!         get(admin_area)
//!             .with(authorize(&sentri, ["admin"]))
//!             .with(protect(&sentri)),
//!     )
//!     .with(EnvelopeErrors)
//!     .with(sentri_poem::catch_panic(&sentri));
//! # let _ = app;
//! // poem::Server::new(poem::listener::TcpListener::bind("127.0.0.1:3000")).run(app).await
//! # Ok(()) }
//! ```
//!
//! ## What is where
//!
//! | item | |
//! |---|---|
//! | [`routes`] | `POST /register /login /refresh /logout /logout-all`, `GET /me`, `PUT /me/identifier /me/password`, `GET /sessions`, `DELETE /sessions/{id}`, `POST`/`DELETE /users/{userId}/roles`, `GET /keys` |
//! | [`protect`], [`protect_optional`] | F-20, CSRF (F-23), silent refresh (F-24) |
//! | [`AuthUser`], [`MaybeAuthUser`] | the user the protect middleware found |
//! | [`authorize`], [`permit`], [`permit_roles`], [`require_self`], [`require_verified_email`] | F-21, F-22 |
//! | [`SentriError`], [`envelope`], [`EnvelopeErrors`], [`Json`], [`Path`], [`Query`], [`catch_panic`] | F-25: every error and rejection is the envelope; SPEC §3: panics reach `on_unhandled` |
//! | [`idempotency`] | F-26 for the application's routes |
//!
//! Middleware added with `.with` runs in reverse order of the calls:
//! write the guards and the idempotency middleware *before* `protect`.
//! Guards read path parameters, so put them on the endpoint given to
//! `Route::at`, not around the whole `Route`.
//!
//! The client address is the socket peer poem's server records
//! (`Request::remote_addr`), or `X-Forwarded-For` when the peer is a
//! configured trusted proxy.
//!
//! This crate has no features of its own; it depends on poem with its
//! default features off.
#![deny(missing_docs)]

mod error;
mod extract;
mod guards;
mod idempotency;
mod protect;
mod routes;

pub use error::{
    EnvelopeErrors, EnvelopeErrorsEndpoint, PanicEnvelope, PanicEnvelopeEndpoint, SentriError,
    catch_panic, envelope, error_to_response, to_sentri_error,
};
pub use extract::{AuthUser, BodyLimit, DEFAULT_BODY_LIMIT, Json, MaybeAuthUser, Path, Query};
pub use guards::{
    Guard, GuardEndpoint, PermitRequest, authorize, authorize_roles, permit, permit_roles,
    require_amr, require_recent_auth, require_self, require_verified_email, try_authorize,
};
pub use idempotency::{Idempotency, IdempotencyEndpoint, idempotency};
pub use protect::{
    Protect, ProtectEndpoint, VerifierProtect, VerifierProtectEndpoint, protect, protect_optional,
    protect_with_verifier,
};
pub use routes::{SentriRoutes, routes, routes_with};
pub use sentri_core::http::IdempotencyKey;
