//! sentri-core: the storage- and framework-agnostic heart of sentri.
#![deny(missing_docs)]

pub mod error;
pub mod identifier;
pub mod model;
pub mod password;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{BoxError, Envelope, Error, ErrorCode, Result};
