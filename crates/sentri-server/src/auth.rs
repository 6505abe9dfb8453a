//! The auth routes, served by the adapter `SENTRI_FRAMEWORK` names.

use axum::Router;
use sentri_core::Sentri;

use crate::error::ServerError;
use crate::settings::Settings;

/// The auth routes (mounted under `/auth` by the caller).
///
/// # Errors
/// [`ServerError::Settings`] when the adapter rejects the settings.
pub fn router(_sentri: Sentri, _settings: &Settings) -> Result<Router, ServerError> {
    Ok(Router::new())
}
