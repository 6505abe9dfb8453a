//! The auth routes, served by the adapter `SENTRI_FRAMEWORK` names. The
//! server holds no HTTP logic of its own for them: routing, bodies,
//! cookies, CSRF, silent refresh, idempotency and error rendering are
//! `sentri-axum` over `sentri_core::http`.

use axum::Router;
use sentri_core::http::Api;

use crate::error::ServerError;
use crate::settings::{Framework, Settings};

/// The axum auth routes of `api`'s table, to nest under `/auth`
/// (`SENTRI_FRAMEWORK=axum`; with `poem` the server builds
/// `crate::poem_app` instead).
///
/// # Errors
/// [`ServerError::Settings`]-free today; kept for adapters whose
/// construction can fail.
pub fn router(api: &Api, settings: &Settings) -> Result<Router, ServerError> {
    debug_assert_eq!(settings.framework, Framework::Axum);
    Ok(sentri_axum::router_with(api.with_prefix("")))
}
