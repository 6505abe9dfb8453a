//! The auth routes, served by the adapter `SENTRI_FRAMEWORK` names. The
//! server holds no HTTP logic of its own for them: routing, bodies,
//! cookies, CSRF, silent refresh, idempotency and error rendering are
//! `sentri-axum` over `sentri_core::http`.

use axum::Router;
use sentri_core::Sentri;

use crate::error::ServerError;
use crate::settings::{Framework, Settings};

/// The auth routes, to nest under `/auth`.
///
/// # Errors
/// None today; kept for adapters whose construction can fail.
pub fn router(sentri: Sentri, settings: &Settings) -> Result<Router, ServerError> {
    match settings.framework {
        Framework::Axum => Ok(sentri_axum::router(sentri)),
    }
}
