//! # sentri-core
//!
//! The storage- and framework-agnostic heart of sentri: configuration,
//! errors and the response envelope, password hashing, access and refresh
//! tokens, the store traits, and every service behind the [`Sentri`] facade.
//!
//! It depends on no web framework and no database driver. The web adapters
//! (`sentri-axum`, `sentri-poem`) translate HTTP to these calls; the stores
//! (`sentri-memory`, `sentri-sea-orm`, `sentri-redis`) implement the traits
//! of [`store`]. An application may also use this crate alone, with a store
//! of its own (the conformance suite of `sentri-testkit` checks it).
//!
//! ```
//! use std::sync::Arc;
//! use sentri_core::{ClientInfo, Config, LoginInput, RegisterInput, Sentri, store::Stores};
//! use sentri_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> sentri_core::Result<()> {
//! let config = Config::builder()
//!     .hs256("an HMAC secret of at least thirty-two bytes")
//!     .valid_roles(["user", "admin"])
//! #   .password_policy(sentri_core::password::PasswordPolicy::argon2id(1024, 1, 1))
//!     .build()?;
//! let sentri = Sentri::new(config, Stores::from_backend(Arc::new(MemoryStore::new()))).await?;
//!
//! sentri
//!     .register(RegisterInput {
//!         identifier: "alice@example.com".into(),
//!         password: "correct horse battery staple".into(),
//!         roles: None,
//!         name: None,
//!     })
//!     .await?;
//! let out = sentri
//!     .login(LoginInput {
//!         identifier: "Alice@Example.com".into(),
//!         password: "correct horse battery staple".into(),
//!         client: ClientInfo::default(),
//!     })
//!     .await?
//!     .authenticated()?;
//!
//! // What `protect` does on every request:
//! let user = sentri.verify_access(&out.tokens.access_token).await?;
//! assert_eq!(user.identifier(), "alice@example.com");
//! assert!(user.has_role("user"));
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `http` | [`http`]: the framework-free HTTP surface the web adapters call |
//! | `jwks-http` | [`client::HttpJwksSource`]: fetch a JWKS over HTTP (client mode) |
//! | `rustls` | HTTPS for `jwks-http`, with rustls |
//!
//! ## Where things live
//!
//! | module | |
//! |---|---|
//! | [`config`] | the builder, validated at `build()` (F-01) |
//! | [`error`] | codes, statuses, the envelope (F-02) |
//! | [`password`] | argon2id/scrypt, legacy bcrypt and `salt:key` (F-05) |
//! | [`tokens`] | access JWTs, opaque refresh tokens, [`AuthUser`] (F-10) |
//! | [`store`] | the store traits (F-30) |
//! | [`one_time`] | single-use, hashed tokens of a purpose: mint and redeem (§10) |
//! | [`cipher`] | secrets at rest: AES-256-GCM envelopes, the [`cipher::SecretCipher`] hook (F-15) |
//! | [`hooks`] | hooks (F-07) and overrides (F-08) |
//! | [`idempotency`], [`throttle`], [`net`] | framework-free pieces adapters call (F-26, F-27) |
#![deny(missing_docs)]

pub mod cipher;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod hooks;
#[cfg(feature = "http")]
pub mod http;
pub mod idempotency;
pub mod identifier;
mod keys;
pub mod model;
pub mod net;
pub mod one_time;
pub mod password;
pub mod plugin;
mod service;
pub mod store;
pub mod throttle;
pub mod tokens;
mod verified;

pub use client::AccessVerifier;
pub use config::{Algorithm, Config, SessionCheck};
pub use error::{BoxError, Envelope, Error, ErrorCode, Result};
pub use service::{
    AuthOutput, ChangeIdentifierInput, ChangePasswordInput, ClientInfo, LoginInput, LoginOutcome,
    LogoutInput, RefreshInput, RegisterInput, SecondStep, Sentri, SentriBuilder, SessionInfo,
};
pub use tokens::{AuthMethod, AuthUser, TokenPair};
