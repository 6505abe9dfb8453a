//! The auth routes, served by the adapter `SENTRI_FRAMEWORK` names. The
//! server holds no HTTP logic of its own for them: routing, bodies,
//! cookies, CSRF, silent refresh, idempotency and error rendering are
//! `sentri-axum` over `sentri_core::http`.

use axum::Router;
use sentri_core::Sentri;

use crate::error::ServerError;
use crate::settings::{Framework, Settings};

/// The axum auth routes, to nest under `/auth` (`SENTRI_FRAMEWORK=axum`;
/// with `poem` the server builds `crate::poem_app` instead).
///
/// # Errors
/// [`ServerError::Settings`]-free today; kept for adapters whose
/// construction can fail.
pub fn router(sentri: Sentri, settings: &Settings) -> Result<Router, ServerError> {
    debug_assert_eq!(settings.framework, Framework::Axum);
    Ok(sentri_axum::router(sentri))
}
