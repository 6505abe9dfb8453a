//! # sentri-server
//!
//! The ready-to-run sentri auth server: the HTTP routes of `sentri-axum`
//! under `/auth`, on SQL storage through `sentri-sea-orm`, configured by
//! environment variables. This crate is a binary; the library exists so that
//! its pieces are documented and tested.
//!
//! ```sh
//! cargo run -p sentri-server            # serve on 127.0.0.1:3000, SQLite file sentri.db
//! SENTRI_DATABASE_URL=postgres://… SENTRI_BIND=0.0.0.0:3000 sentri-server serve
//! printf %s "$PASSWORD" | sentri-server user create --identifier admin@example.com --password-stdin --roles admin
//! sentri-server keys rotate             # prints the new key id
//! sentri-server migrate                 # apply migrations and exit
//! ```
//!
//! With `SENTRI_REDIS_URL`, idempotency and login throttling live in Redis
//! (`sentri-redis`) and logouts are fanned out to every instance's session
//! cache (`SENTRI_SESSION_CHECK=cached:30s`), so several instances behind a
//! load balancer behave as one service.
//!
//! On start, `serve` migrates the database (safe when several instances
//! start at once), loads the signing key (an EdDSA key generated once and
//! persisted in the database unless `SENTRI_SECRET` sets an HMAC secret),
//! and serves until SIGTERM or Ctrl-C, letting in-flight requests finish.
//!
//! | route | |
//! |---|---|
//! | `/auth/…` | every route of sentri's HTTP surface (register, login, refresh, …) |
//! | `GET /healthz` | the process is up |
//! | `GET /readyz` | the database (and Redis, when configured) answers (503 envelope when not) |
//! | `GET /openapi.json` | the OpenAPI 3.1 document of all of the above |
//!
//! Every setting, default and subcommand is documented in `docs/server.md`;
//! [`settings::Key`] lists the variables. Settings are checked before
//! anything starts, and a bad one names its variable:
//!
//! ```
//! use sentri_server::Settings;
//!
//! let env = [("SENTRI_ROLES", "member,admin"), ("SENTRI_ACCESS_TTL", "5m")];
//! let settings = Settings::from_sources(env, None)?;
//! let config = settings.core_config()?;
//! assert_eq!(config.default_role(), "member");
//! assert_eq!(config.access_ttl().as_secs(), 300);
//!
//! let err = Settings::from_sources([("SENTRI_REFRESH_TTL", "1m")], None).unwrap_err();
//! assert_eq!(err.name(), "SENTRI_REFRESH_TTL");
//! # Ok::<(), sentri_server::settings::SettingsError>(())
//! ```
//!
//! ## Features
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `sqlite` | yes | `sqlite://…` databases |
//! | `postgres` | yes | `postgres://…` databases |
//! | `mysql` | yes | `mysql://…` (MySQL, MariaDB) databases |
//! | `rustls` | no | TLS to the database server |
#![deny(missing_docs)]

mod auth;
pub mod cli;
pub mod conn;
pub mod error;
pub mod http;
pub mod logging;
pub mod openapi;
mod poem_app;
pub mod run;
pub mod settings;

pub use error::ServerError;
pub use settings::Settings;
