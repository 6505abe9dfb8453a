//! Error rendering (F-25): [`SentriError`] and every `poem::Error` become
//! the envelope.

use std::any::Any;
use std::fmt;
use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use futures_util::FutureExt;
use http::StatusCode;
use poem::error::{ParseJsonError, ReadBodyError, ResponseError};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response, ResponseParts};
use sentri_core::http::{
    envelope_response, error_response, method_not_allowed_response, not_found_response,
    panic_caught,
};
use sentri_core::{Error, ErrorCode, Sentri};
use serde::Serialize;

/// An error as a response: the envelope with the error's status, and
/// `Retry-After` when set. Return it from handlers
/// (`Result<T, SentriError>`, or `poem::Result<T>` through `?`); `?`
/// converts a [`sentri_core::Error`].
///
/// ```
/// use poem::IntoResponse;
/// use sentri_poem::SentriError;
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

impl ResponseError for SentriError {
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn as_response(&self) -> Response {
        into_poem(error_response(&self.0))
    }
}

impl IntoResponse for SentriError {
    fn into_response(self) -> Response {
        into_poem(error_response(&self.0))
    }
}

/// A success envelope as a response:
/// `{"error":false,"statusCode":…,"message":…,"data":…}`.
///
/// ```
/// use http::StatusCode;
/// let res = sentri_poem::envelope(StatusCode::CREATED, "created", serde_json::json!({"id": 7}));
/// assert_eq!(res.status(), 201);
/// ```
pub fn envelope<T: Serialize>(status: StatusCode, message: &str, data: T) -> Response {
    into_poem(envelope_response(status, message, Some(data)))
}

pub(crate) fn into_poem(res: http::Response<Bytes>) -> Response {
    let (parts, body) = res.into_parts();
    Response::from_parts(
        ResponseParts {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            extensions: parts.extensions,
        },
        Body::from(body),
    )
}

/// The sentri error a `poem::Error` stands for: a [`SentriError`] as is;
/// poem's JSON rejections as `VALIDATION_ERROR` (content type, malformed
/// JSON, missing or mistyped field, worded as `sentri_core::http` words
/// them); a body over a limit as `PAYLOAD_TOO_LARGE`; 404 and 405 as
/// `NOT_FOUND` and `METHOD_NOT_ALLOWED`; any other client error as an
/// application error with its status; a server error as the generic 500
/// (the cause is logged).
pub fn to_sentri_error(err: poem::Error) -> Error {
    let err = match err.downcast::<SentriError>() {
        Ok(e) => return e.0,
        Err(err) => err,
    };
    if let Some(json) = err.downcast_ref::<ParseJsonError>() {
        return match json {
            ParseJsonError::Parse(e) => sentri_core::http::json_error(e),
            _ => Error::validation("Content-Type", "must be application/json"),
        };
    }
    if let Some(read) = err.downcast_ref::<ReadBodyError>() {
        return match read {
            ReadBodyError::PayloadTooLarge => Error::new(ErrorCode::PayloadTooLarge),
            _ => Error::validation("body", "could not be read"),
        };
    }
    let status = err.status();
    match status {
        StatusCode::NOT_FOUND => Error::app("NOT_FOUND", 404, "route not found"),
        StatusCode::METHOD_NOT_ALLOWED => {
            Error::app("METHOD_NOT_ALLOWED", 405, "method not allowed")
        }
        StatusCode::PAYLOAD_TOO_LARGE => Error::new(ErrorCode::PayloadTooLarge),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            Error::validation("Content-Type", "must be application/json")
        }
        s if s.is_client_error() => {
            let reason = s.canonical_reason().unwrap_or("bad request");
            let code = reason.to_ascii_uppercase().replace([' ', '-'], "_");
            Error::app(code, s.as_u16(), reason.to_ascii_lowercase())
        }
        _ => Error::internal(err),
    }
}

/// Render any `poem::Error` as the envelope (see [`to_sentri_error`]).
pub fn error_to_response(err: poem::Error) -> Response {
    if err.is::<SentriError>() {
        return err.into_response();
    }
    match err.status() {
        StatusCode::NOT_FOUND if !err.is::<ParseJsonError>() => into_poem(not_found_response()),
        StatusCode::METHOD_NOT_ALLOWED => into_poem(method_not_allowed_response()),
        _ => into_poem(error_response(&to_sentri_error(err))),
    }
}

/// Middleware turning every error of the endpoint (poem's own rejections,
/// unknown routes and methods, [`SentriError`]s) into the envelope, with
/// [`error_to_response`]. Put it on the application's route tree:
/// `Route::new()…​.with(EnvelopeErrors).with(sentri_poem::catch_panic(&sentri))`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvelopeErrors;

impl<E: Endpoint> Middleware<E> for EnvelopeErrors {
    type Output = EnvelopeErrorsEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        EnvelopeErrorsEndpoint { inner: ep }
    }
}

/// The endpoint of [`EnvelopeErrors`].
#[derive(Debug)]
pub struct EnvelopeErrorsEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for EnvelopeErrorsEndpoint<E> {
    type Output = Response;
    async fn call(&self, req: Request) -> poem::Result<Response> {
        Ok(match self.inner.call(req).await {
            Ok(out) => out.into_response(),
            Err(err) => error_to_response(err),
        })
    }
}

/// Middleware catching panics of the endpoint: the generic 500 envelope
/// through [`sentri_core::http::panic_caught`] (the panic message is logged
/// once and, with a [`Sentri`], reported to the `on_unhandled` hook; the
/// client never sees it). Build it with [`catch_panic`]; without a
/// [`Sentri`] (a resource server verifying with a JWKS),
/// `PanicEnvelope::default()` answers and logs alike, with no hook.
#[derive(Debug, Clone, Default)]
pub struct PanicEnvelope {
    sentri: Option<Sentri>,
}

impl<E: Endpoint> Middleware<E> for PanicEnvelope {
    type Output = PanicEnvelopeEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        PanicEnvelopeEndpoint {
            inner: ep,
            sentri: self.sentri.clone(),
        }
    }
}

/// The endpoint of [`PanicEnvelope`].
#[derive(Debug)]
pub struct PanicEnvelopeEndpoint<E> {
    inner: E,
    sentri: Option<Sentri>,
}

impl<E: Endpoint> Endpoint for PanicEnvelopeEndpoint<E> {
    type Output = Response;
    async fn call(&self, req: Request) -> poem::Result<Response> {
        let (method, uri) = (req.method().clone(), req.original_uri().clone());
        match AssertUnwindSafe(self.inner.call(req)).catch_unwind().await {
            Ok(out) => out.map(IntoResponse::into_response),
            Err(panic) => Ok(panicked(self.sentri.as_ref(), panic, &method, uri.path()).await),
        }
    }
}

/// The response to a caught panic of `method path`.
pub(crate) async fn panicked(
    sentri: Option<&Sentri>,
    panic: Box<dyn Any + Send>,
    method: &http::Method,
    path: &str,
) -> Response {
    into_poem(panic_caught(sentri, panic, method, path).await)
}

/// The panic middleware answering the generic 500 envelope (F-25) and
/// reporting to `on_unhandled` (SPEC §3). [`crate::routes`] has it
/// already; add it to the application as its outermost middleware.
pub fn catch_panic(sentri: &Sentri) -> PanicEnvelope {
    PanicEnvelope {
        sentri: Some(sentri.clone()),
    }
}
