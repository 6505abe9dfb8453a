//! Errors, their stable codes and HTTP statuses, and the response envelope.
//!
//! Every failure a client can see is an [`Error`]: a stable machine-readable
//! [`ErrorCode`], an HTTP status derived from that code, and a message that is
//! safe to show. Details that are not safe to show (a database error, a panic
//! message) travel as the error's `source` and go to `tracing`, never to the
//! client. Both web adapters render an [`Error`] through [`Error::to_envelope`],
//! so they answer byte for byte alike.
//!
//! ```
//! use sentri_core::{Error, ErrorCode};
//!
//! let err = Error::validation("identifier", "must not be empty");
//! assert_eq!(err.code(), ErrorCode::ValidationError);
//! assert_eq!(err.status(), 400);
//! assert_eq!(err.to_string(), "identifier: must not be empty");
//!
//! // Applications define their own codes with their own status.
//! let app = Error::app("PAYMENT_FAILED", 402, "card declined");
//! assert_eq!(app.code().as_str(), "PAYMENT_FAILED");
//! assert_eq!(app.status(), 402);
//! ```

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{StoreError, StoreErrorKind};

/// A boxed error used as the hidden cause of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of every fallible sentri operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stable, machine-readable error code (SPEC §3).
///
/// The built-in codes have a fixed HTTP status; [`ErrorCode::Custom`] carries
/// an application's own code and status.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Unknown identifier or wrong password (401). Both look the same.
    InvalidCredentials,
    /// The user does not exist (404).
    UserNotFound,
    /// The identifier is already taken (409).
    UserAlreadyExists,
    /// The token's `exp` has passed (401).
    TokenExpired,
    /// The token is malformed, forged, revoked or of the wrong type (401).
    TokenInvalid,
    /// Authenticated, but not allowed (403).
    Forbidden,
    /// No credentials where some are required (401).
    Unauthorized,
    /// A role outside the configured `valid_roles` (400).
    InvalidRole,
    /// Bad input: malformed JSON, a missing or over-long field (400).
    ValidationError,
    /// A bad configuration value, reported at startup (500).
    ConfigurationError,
    /// Too many attempts; `Retry-After` says when to try again (429).
    RateLimited,
    /// A request with the same idempotency key is still running (409).
    IdempotencyInProgress,
    /// The idempotency key was used for a different request (422).
    IdempotencyKeyReused,
    /// The request body is over the size limit (413).
    PayloadTooLarge,
    /// A store the request needs is unreachable (503).
    ServiceUnavailable,
    /// An unexpected failure; the client sees a generic message (500).
    InternalError,
    /// Authenticated, but not recently enough or not with a required
    /// method (401): authenticate again (step-up, RFC 9470), then retry.
    ReauthRequired,
    /// An application-defined code with its own status.
    Custom {
        /// The code, e.g. `PAYMENT_FAILED`.
        code: Cow<'static, str>,
        /// The HTTP status it renders with.
        status: u16,
    },
}

impl ErrorCode {
    /// The code as it appears in the envelope's `code` field.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::UserNotFound => "USER_NOT_FOUND",
            Self::UserAlreadyExists => "USER_ALREADY_EXISTS",
            Self::TokenExpired => "TOKEN_EXPIRED",
            Self::TokenInvalid => "TOKEN_INVALID",
            Self::Forbidden => "FORBIDDEN",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::InvalidRole => "INVALID_ROLE",
            Self::ValidationError => "VALIDATION_ERROR",
            Self::ConfigurationError => "CONFIGURATION_ERROR",
            Self::RateLimited => "RATE_LIMITED",
            Self::IdempotencyInProgress => "IDEMPOTENCY_IN_PROGRESS",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::InternalError => "INTERNAL_ERROR",
            Self::ReauthRequired => "REAUTH_REQUIRED",
            Self::Custom { code, .. } => code,
        }
    }

    /// The HTTP status this code renders with.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidCredentials
            | Self::TokenExpired
            | Self::TokenInvalid
            | Self::Unauthorized
            | Self::ReauthRequired => 401,
            Self::UserNotFound => 404,
            Self::UserAlreadyExists | Self::IdempotencyInProgress => 409,
            Self::Forbidden => 403,
            Self::InvalidRole | Self::ValidationError => 400,
            Self::ConfigurationError | Self::InternalError => 500,
            Self::RateLimited => 429,
            Self::IdempotencyKeyReused => 422,
            Self::PayloadTooLarge => 413,
            Self::ServiceUnavailable => 503,
            Self::Custom { status, .. } => *status,
        }
    }

    /// The message used when none more specific is given.
    fn default_message(&self) -> &'static str {
        match self {
            Self::InvalidCredentials => "invalid credentials",
            Self::UserNotFound => "user not found",
            Self::UserAlreadyExists => "user already exists",
            Self::TokenExpired => "token expired",
            Self::TokenInvalid => "token invalid",
            Self::Forbidden => "forbidden",
            Self::Unauthorized => "authentication required",
            Self::InvalidRole => "invalid role",
            Self::ValidationError => "invalid request",
            Self::ConfigurationError => "invalid configuration",
            Self::RateLimited => "too many attempts, try again later",
            Self::IdempotencyInProgress => "a request with this idempotency key is in progress",
            Self::IdempotencyKeyReused => "this idempotency key was used for a different request",
            Self::PayloadTooLarge => "request body too large",
            Self::ServiceUnavailable => "service unavailable",
            Self::InternalError => "internal server error",
            Self::ReauthRequired => "recent authentication required",
            Self::Custom { .. } => "error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every failure of sentri, and the application errors it renders.
///
/// `Display` shows only the safe message. The cause, if any, is available
/// through [`std::error::Error::source`] for logs.
pub struct Error(Box<Inner>);

struct Inner {
    code: ErrorCode,
    message: Cow<'static, str>,
    /// The length of the field `message` starts with (`"{field}: …"`).
    field_len: Option<usize>,
    retry_after: Option<Duration>,
    source: Option<BoxError>,
}

impl Error {
    /// An error with a code and the code's default message.
    pub fn new(code: ErrorCode) -> Self {
        let message = Cow::Borrowed(code.default_message());
        Self(Box::new(Inner {
            code,
            message,
            field_len: None,
            retry_after: None,
            source: None,
        }))
    }

    /// An error with a code and a safe message of its own.
    pub fn with_message(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        let mut err = Self::new(code);
        err.0.message = message.into();
        err
    }

    /// An application-defined error rendered with its own code and status.
    ///
    /// A status outside 100..=599 renders as 500.
    pub fn app(
        code: impl Into<Cow<'static, str>>,
        status: u16,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        let status = if (100..=599).contains(&status) {
            status
        } else {
            500
        };
        Self::with_message(
            ErrorCode::Custom {
                code: code.into(),
                status,
            },
            message,
        )
    }

    /// `VALIDATION_ERROR` naming the offending field: the message is
    /// `"{field}: {problem}"`, and [`Error::field`] / [`Error::problem`]
    /// give each part.
    pub fn validation(field: &str, problem: &str) -> Self {
        Self::about(ErrorCode::ValidationError, field, problem)
    }

    /// `CONFIGURATION_ERROR` naming the offending setting (as
    /// [`Error::validation`]).
    pub fn configuration(field: &str, problem: &str) -> Self {
        Self::about(ErrorCode::ConfigurationError, field, problem)
    }

    fn about(code: ErrorCode, field: &str, problem: &str) -> Self {
        let mut err = Self::with_message(code, format!("{field}: {problem}"));
        err.0.field_len = Some(field.len());
        err
    }

    /// The field or setting the error is about, for errors made by
    /// [`Error::validation`] and [`Error::configuration`].
    ///
    /// ```
    /// let err = sentri_core::Error::configuration("reuse_grace", "must be at most 1 minute");
    /// assert_eq!(err.field(), Some("reuse_grace"));
    /// assert_eq!(err.problem(), "must be at most 1 minute");
    /// assert_eq!(err.message(), "reuse_grace: must be at most 1 minute");
    /// ```
    pub fn field(&self) -> Option<&str> {
        self.0.field_len.and_then(|n| self.0.message.get(..n))
    }

    /// The message without the [`Error::field`] it names (the whole
    /// message when it names none).
    pub fn problem(&self) -> &str {
        self.0
            .field_len
            .and_then(|n| self.0.message.get(n + 2..))
            .unwrap_or(&self.0.message)
    }

    /// `RATE_LIMITED` with the time after which a retry may succeed.
    pub fn rate_limited(retry_after: Duration) -> Self {
        let mut err = Self::new(ErrorCode::RateLimited);
        err.0.retry_after = Some(retry_after);
        err
    }

    /// Attach a `Retry-After` (e.g. to `SERVICE_UNAVAILABLE` when a queue
    /// is full).
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.0.retry_after = Some(retry_after);
        self
    }

    /// A generic 500 whose cause is kept for logs only.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self::new(ErrorCode::InternalError).with_source(source)
    }

    /// Attach a cause, for logs. It never reaches the client.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.0.source = Some(source.into());
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.0.code.clone()
    }

    /// The stable code, borrowed.
    pub fn code_ref(&self) -> &ErrorCode {
        &self.0.code
    }

    /// Whether this error has the given code.
    pub fn is(&self, code: &ErrorCode) -> bool {
        &self.0.code == code
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.0.code.status()
    }

    /// The message that is safe to show to a client.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// For `RATE_LIMITED` (and a busy `SERVICE_UNAVAILABLE`): how long until
    /// a retry may succeed.
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.0.retry_after.map(|d| {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            secs.max(1)
        })
    }

    /// Whether the error is an unexpected failure (a 5xx other than 503).
    pub fn is_unhandled(&self) -> bool {
        matches!(
            self.0.code,
            ErrorCode::InternalError | ErrorCode::ConfigurationError
        )
    }

    /// The envelope a client receives for this error.
    pub fn to_envelope(&self) -> Envelope<()> {
        Envelope {
            error: true,
            status_code: self.status(),
            code: Some(self.0.code.as_str().to_owned()),
            message: self.0.message.to_string(),
            data: None,
        }
    }

    /// The envelope serialised as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_envelope()).unwrap_or_else(|_| {
            br#"{"error":true,"statusCode":500,"code":"INTERNAL_ERROR","message":"internal server error","data":null}"#.to_vec()
        })
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("code", &self.0.code.as_str())
            .field("message", &self.0.message);
        if let Some(r) = self.0.retry_after {
            d.field("retry_after", &r);
        }
        if let Some(s) = &self.0.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

impl From<StoreError> for Error {
    /// A store's failure as a client sees it: unavailable → 503, anything
    /// else unexpected → 500. Conflict and not-found are decided by the
    /// services, which know what they mean; reaching this conversion with
    /// them means an unexpected state.
    fn from(err: StoreError) -> Self {
        match err.kind() {
            StoreErrorKind::Unavailable => {
                Self::new(ErrorCode::ServiceUnavailable).with_source(err)
            }
            _ => Self::internal(err),
        }
    }
}

/// The body of every response of the built-in routes and of every error.
///
/// ```
/// use sentri_core::Envelope;
///
/// let ok = Envelope::ok(200, "ok", serde_json::json!({"n": 1}));
/// assert_eq!(
///     serde_json::to_string(&ok).unwrap(),
///     r#"{"error":false,"statusCode":200,"message":"ok","data":{"n":1}}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    /// `true` for errors.
    pub error: bool,
    /// The HTTP status, repeated.
    pub status_code: u16,
    /// The stable error code; absent on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A human-readable message, safe to show.
    pub message: String,
    /// The payload; `null` for errors.
    pub data: Option<T>,
}

impl<T> Envelope<T> {
    /// A success envelope.
    pub fn ok(status_code: u16, message: impl Into<String>, data: T) -> Self {
        Self {
            error: false,
            status_code,
            code: None,
            message: message.into(),
            data: Some(data),
        }
    }

    /// A success envelope whose `data` is `null`.
    pub fn empty(status_code: u16, message: impl Into<String>) -> Self {
        Self {
            error: false,
            status_code,
            code: None,
            message: message.into(),
            data: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_code_has_the_spec_status() {
        let table = [
            (ErrorCode::InvalidCredentials, "INVALID_CREDENTIALS", 401),
            (ErrorCode::UserNotFound, "USER_NOT_FOUND", 404),
            (ErrorCode::UserAlreadyExists, "USER_ALREADY_EXISTS", 409),
            (ErrorCode::TokenExpired, "TOKEN_EXPIRED", 401),
            (ErrorCode::TokenInvalid, "TOKEN_INVALID", 401),
            (ErrorCode::Forbidden, "FORBIDDEN", 403),
            (ErrorCode::Unauthorized, "UNAUTHORIZED", 401),
            (ErrorCode::InvalidRole, "INVALID_ROLE", 400),
            (ErrorCode::ValidationError, "VALIDATION_ERROR", 400),
            (ErrorCode::ConfigurationError, "CONFIGURATION_ERROR", 500),
            (ErrorCode::RateLimited, "RATE_LIMITED", 429),
            (
                ErrorCode::IdempotencyInProgress,
                "IDEMPOTENCY_IN_PROGRESS",
                409,
            ),
            (
                ErrorCode::IdempotencyKeyReused,
                "IDEMPOTENCY_KEY_REUSED",
                422,
            ),
            (ErrorCode::PayloadTooLarge, "PAYLOAD_TOO_LARGE", 413),
            (ErrorCode::ServiceUnavailable, "SERVICE_UNAVAILABLE", 503),
            (ErrorCode::ReauthRequired, "REAUTH_REQUIRED", 401),
        ];
        for (code, name, status) in table {
            assert_eq!(code.as_str(), name);
            assert_eq!(code.status(), status, "{name}");
        }
    }

    #[test]
    fn error_envelope_has_null_data_and_the_code() {
        let json: serde_json::Value =
            serde_json::from_slice(&Error::new(ErrorCode::TokenExpired).to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "error": true, "statusCode": 401, "code": "TOKEN_EXPIRED",
                "message": "token expired", "data": null
            })
        );
    }

    #[test]
    fn internal_error_hides_its_cause_from_the_envelope() {
        let err = Error::internal("connection to db at 10.0.0.5 refused: password=hunter2");
        let body = String::from_utf8(err.to_json()).unwrap();
        assert!(!body.contains("hunter2"));
        assert!(body.contains("internal server error"));
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn app_errors_keep_their_code_and_default_bad_status_to_500() {
        let err = Error::app("PAYMENT_FAILED", 402, "card declined");
        let env = err.to_envelope();
        assert_eq!(env.code.as_deref(), Some("PAYMENT_FAILED"));
        assert_eq!(env.status_code, 402);
        assert_eq!(Error::app("X", 42, "m").status(), 500);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let err = Error::rate_limited(Duration::from_millis(1500));
        assert_eq!(err.retry_after_secs(), Some(2));
        assert_eq!(
            Error::rate_limited(Duration::ZERO).retry_after_secs(),
            Some(1)
        );
    }
}
