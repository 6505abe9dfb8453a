//! Responses: the envelope as `http::Response<Bytes>`, errors, panics.

use std::any::Any;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, REFERRER_POLICY, RETRY_AFTER,
    STRICT_TRANSPORT_SECURITY, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{Method, Response, StatusCode};
use serde::Serialize;

use crate::config::{CookieConfig, CookieTransport};
use crate::error::{Envelope, Error, ErrorCode};
use crate::hooks::{Unhandled, UnhandledKind, fire};
use crate::service::Sentri;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
/// RFC 6750 §3: no token was presented.
const BEARER: HeaderValue = HeaderValue::from_static("Bearer");
/// RFC 6750 §3.1: the token presented is malformed, forged or revoked.
const BEARER_INVALID: HeaderValue = HeaderValue::from_static(r#"Bearer error="invalid_token""#);
/// RFC 6750 §3.1: the token presented has expired.
const BEARER_EXPIRED: HeaderValue = HeaderValue::from_static(
    r#"Bearer error="invalid_token", error_description="The access token expired""#,
);
/// RFC 9470 §3: the token is fine, the authentication behind it is too old
/// or too weak.
const BEARER_STEP_UP: HeaderValue = HeaderValue::from_static(
    r#"Bearer error="insufficient_user_authentication", error_description="A more recent or stronger authentication is required""#,
);

/// The `WWW-Authenticate` challenge of an error, for the 401s of bearer
/// authentication (RFC 6750 §3): `UNAUTHORIZED` (no token) asks for one,
/// `TOKEN_INVALID` and `TOKEN_EXPIRED` add `error="invalid_token"`,
/// `REAUTH_REQUIRED` `error="insufficient_user_authentication"` (RFC 9470).
fn challenge(code: &ErrorCode) -> Option<HeaderValue> {
    match code {
        ErrorCode::Unauthorized => Some(BEARER),
        ErrorCode::TokenInvalid => Some(BEARER_INVALID),
        ErrorCode::TokenExpired => Some(BEARER_EXPIRED),
        ErrorCode::ReauthRequired => Some(BEARER_STEP_UP),
        _ => None,
    }
}

/// The headers every sentri response carries: the body is never sniffed
/// as another type, no `Referer` leaks a URL (which may hold a token), and
/// no page may frame a response.
pub const BASELINE_HEADERS: [(HeaderName, HeaderValue); 3] = [
    (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
];

/// The `Strict-Transport-Security` value sent when cookies are `Secure`
/// (one year; subdomains are left to the operator).
pub const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

/// Add [`BASELINE_HEADERS`] where absent.
pub fn baseline_headers(headers: &mut HeaderMap) {
    for (name, value) in BASELINE_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, value);
        }
    }
}

/// [`baseline_headers`], and `Strict-Transport-Security` ([`HSTS`]) when
/// tokens travel in cookies marked `Secure` (the service is then served
/// over HTTPS), where absent. The built-in routes and the idempotency
/// layer call it; servers call it on their own routes.
pub fn security_headers(headers: &mut HeaderMap, cookies: &CookieConfig) {
    baseline_headers(headers);
    if cookies.secure
        && cookies.transport != CookieTransport::Off
        && !headers.contains_key(STRICT_TRANSPORT_SECURITY)
    {
        headers.insert(STRICT_TRANSPORT_SECURITY, HSTS);
    }
}

/// A JSON response with `Content-Type: application/json`,
/// `Cache-Control: no-store` (responses of an auth service are private)
/// and the [`BASELINE_HEADERS`].
pub fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Bytes> {
    let mut res = Response::new(body.into());
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, JSON);
    res.headers_mut().insert(CACHE_CONTROL, NO_STORE);
    baseline_headers(res.headers_mut());
    res
}

/// A success envelope: `{"error":false,"statusCode":…,"message":…,"data":…}`.
///
/// ```
/// use sentri_core::http::envelope_response;
/// use http::StatusCode;
///
/// let res = envelope_response(StatusCode::OK, "ok", Some(serde_json::json!({"n": 1})));
/// assert_eq!(
///     &res.body()[..],
///     br#"{"error":false,"statusCode":200,"message":"ok","data":{"n":1}}"#
/// );
/// ```
pub fn envelope_response<T: Serialize>(
    status: StatusCode,
    message: &str,
    data: Option<T>,
) -> Response<Bytes> {
    let envelope = match data {
        Some(data) => Envelope::ok(status.as_u16(), message, data),
        None => Envelope::empty(status.as_u16(), message),
    };
    match serde_json::to_vec(&envelope) {
        Ok(body) => json_response(status, body),
        Err(err) => error_response(&Error::internal(err)),
    }
}

/// The envelope of an error, with its status, `Retry-After` when set
/// (F-25), and a `WWW-Authenticate: Bearer` challenge on the 401s of
/// bearer authentication (RFC 6750 §3; `error="invalid_token"` for a bad or
/// expired token, not for a missing one). Unexpected errors (500) are
/// logged with their cause; the client sees only the code and the safe
/// message.
///
/// ```
/// use sentri_core::http::error_response;
/// use sentri_core::{Error, ErrorCode};
/// use std::time::Duration;
///
/// let res = error_response(&Error::rate_limited(Duration::from_secs(30)));
/// assert_eq!(res.status(), 429);
/// assert_eq!(res.headers()["retry-after"], "30");
///
/// let res = error_response(&Error::new(ErrorCode::Unauthorized));
/// assert_eq!(res.headers()["www-authenticate"], "Bearer");
/// let res = error_response(&Error::new(ErrorCode::TokenInvalid));
/// assert_eq!(res.headers()["www-authenticate"], r#"Bearer error="invalid_token""#);
/// ```
pub fn error_response(err: &Error) -> Response<Bytes> {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = json_response(status, err.to_json());
    if err.is_unhandled() {
        tracing::error!(error = ?err, "request failed unexpectedly");
        // For `Api::call`, which reports it to `on_unhandled` and removes
        // the mark; never serialised.
        res.extensions_mut()
            .insert(UnhandledError(error_chain(err)));
    }
    if let Some(secs) = err.retry_after_secs() {
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(value) = challenge(err.code_ref()) {
        res.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    res
}

/// The generic 500 envelope sent when a handler panicked. Nothing is
/// logged here; [`panic_caught`] logs and reports the panic.
pub fn panic_response() -> Response<Bytes> {
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        Error::new(ErrorCode::InternalError).to_json(),
    )
}

/// What a panic layer answers for a panic caught around a handler
/// (`method path`): the generic 500 envelope ([`panic_response`]; the
/// payload never reaches the client), the panic message logged once, and,
/// when `sentri` is given, reported to its `on_unhandled` hook. Both
/// adapters' panic layers and [`Api::call`](super::Api::call) use it.
pub async fn panic_caught(
    sentri: Option<&Sentri>,
    panic: Box<dyn Any + Send>,
    method: &Method,
    path: &str,
) -> Response<Bytes> {
    let message = panic_message(&*panic);
    drop(panic);
    tracing::error!(panic = %message, %method, path, "handler panicked");
    if let Some(sentri) = sentri {
        report_unhandled(sentri, UnhandledKind::Panic, message, method, path).await;
    }
    panic_response()
}

/// Hand an unexpected failure of `method path` to the `on_unhandled` hook.
pub(crate) async fn report_unhandled(
    sentri: &Sentri,
    kind: UnhandledKind,
    detail: String,
    method: &Method,
    path: &str,
) {
    let unhandled = Unhandled {
        kind,
        detail,
        method: method.to_string(),
        path: path.to_owned(),
    };
    fire(
        "on_unhandled",
        &sentri.config().hooks.on_unhandled,
        unhandled,
    )
    .await;
}

/// The text of a panic payload (`&str` or `String`), for logs.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// The mark an unexpected error leaves on its response: its message and
/// causes, for the `on_unhandled` hook.
#[derive(Clone)]
pub(crate) struct UnhandledError(pub(crate) String);

fn error_chain(err: &Error) -> String {
    let mut out = format!("{}: {}", err.code(), err.message());
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `404 NOT_FOUND` in the envelope, for unknown paths under the mount
/// prefix.
pub fn not_found_response() -> Response<Bytes> {
    error_response(&Error::app("NOT_FOUND", 404, "route not found"))
}

/// `405 METHOD_NOT_ALLOWED` in the envelope.
pub fn method_not_allowed_response() -> Response<Bytes> {
    error_response(&Error::app("METHOD_NOT_ALLOWED", 405, "method not allowed"))
}
