//! Error rendering (F-25): [`SentriError`] turns any sentri or application
//! error into the envelope.

use std::fmt;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use sentri_core::Error;
use sentri_core::http::{envelope_response, error_response};
use serde::Serialize;

/// An error as a response: the envelope with the error's status, and
/// `Retry-After` when set. Return it from handlers
/// (`Result<T, SentriError>`); `?` converts a [`sentri_core::Error`].
///
/// ```
/// use axum::response::IntoResponse;
/// use sentri_axum::SentriError;
///
/// let res = SentriError::app("PAYMENT_FAILED", 402, "card declined").into_response();
/// assert_eq!(res.status(), 402);
/// ```
pub struct SentriError(pub Error);

impl SentriError {
    /// An application error with its own code and status (500 when the
    /// status is not a valid HTTP status).
    pub fn app(
        code: impl Into<std::borrow::Cow<'static, str>>,
        status: u16,
        message: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Self {
        Self(Error::app(code, status, message))
    }

    /// The error inside.
    pub fn into_inner(self) -> Error {
        self.0
    }
}

impl From<Error> for SentriError {
    fn from(err: Error) -> Self {
        Self(err)
    }
}

impl fmt::Debug for SentriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for SentriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for SentriError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}

impl IntoResponse for SentriError {
    fn into_response(self) -> Response {
        into_axum(error_response(&self.0))
    }
}

/// A success envelope as a response:
/// `{"error":false,"statusCode":…,"message":…,"data":…}`.
///
/// ```
/// use http::StatusCode;
/// let res = sentri_axum::envelope(StatusCode::CREATED, "created", serde_json::json!({"id": 7}));
/// assert_eq!(res.status(), 201);
/// ```
pub fn envelope<T: Serialize>(status: StatusCode, message: &str, data: T) -> Response {
    into_axum(envelope_response(status, message, Some(data)))
}

pub(crate) fn into_axum(res: http::Response<bytes::Bytes>) -> Response {
    res.map(Body::from)
}
