//! sentri-core: the storage- and framework-agnostic heart of sentri.
#![deny(missing_docs)]

pub mod clock;
pub mod config;
pub mod error;
pub mod hooks;
pub mod idempotency;
pub mod identifier;
mod keys;
pub mod model;
pub mod net;
pub mod password;
mod service;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod throttle;
pub mod tokens;

pub use config::{Algorithm, Config, SessionCheck};
pub use error::{BoxError, Envelope, Error, ErrorCode, Result};
pub use service::{
    AuthOutput, ChangePasswordInput, ClientInfo, LoginInput, LogoutInput, RefreshInput,
    RegisterInput, Sentri, SessionInfo,
};
pub use tokens::{AuthUser, TokenPair};
