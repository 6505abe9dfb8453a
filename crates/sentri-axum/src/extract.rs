//! Extractors: the authenticated user, and `Json`/`Path`/`Query` whose
//! rejections are the envelope (F-25).

use std::ops::Deref;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use sentri_core::http::{is_json_content_type, json_error};
use sentri_core::{Error, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::SentriError;
use crate::protect::Protected;

/// The user authenticated by [`crate::protect`]. Rejects with
/// `UNAUTHORIZED` when there is none (after [`crate::protect_optional`]),
/// and with a 500 `CONFIGURATION_ERROR` when no protect layer runs for the
/// route (a programming error).
#[derive(Debug, Clone)]
pub struct AuthUser(pub sentri_core::AuthUser);

impl Deref for AuthUser {
    type Target = sentri_core::AuthUser;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

fn missing_layer() -> SentriError {
    SentriError(Error::with_message(
        ErrorCode::ConfigurationError,
        "internal server error",
    ))
    .logged("the AuthUser extractor needs the protect layer on the route")
}

impl SentriError {
    fn logged(self, what: &'static str) -> Self {
        tracing::error!("{what}");
        self
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = SentriError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<sentri_core::AuthUser>() {
            return Ok(Self(user.clone()));
        }
        if parts.extensions.get::<Protected>().is_none() {
            return Err(missing_layer());
        }
        Err(SentriError(Error::new(ErrorCode::Unauthorized)))
    }
}

/// The user, if [`crate::protect_optional`] (or [`crate::protect`])
/// authenticated one. Never rejects after a protect layer.
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<sentri_core::AuthUser>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeAuthUser {
    type Rejection = SentriError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<sentri_core::AuthUser>() {
            return Ok(Self(Some(user.clone())));
        }
        if parts.extensions.get::<Protected>().is_none() {
            return Err(missing_layer());
        }
        Ok(Self(None))
    }
}

/// A JSON body whose every rejection is the envelope: wrong content type,
/// malformed JSON, a missing or mistyped field → `VALIDATION_ERROR`; a body
/// over axum's `DefaultBodyLimit` → `PAYLOAD_TOO_LARGE`. As a response, it
/// is plain JSON with status 200.
///
/// ```
/// use sentri_axum::{Json, SentriError};
///
/// #[derive(serde::Deserialize)]
/// struct Order { item: String, quantity: u32 }
///
/// async fn create(Json(order): Json<Order>) -> Result<Json<serde_json::Value>, SentriError> {
///     Ok(Json(serde_json::json!({ "item": order.item, "quantity": order.quantity })))
/// }
/// # let _: axum::routing::MethodRouter = axum::routing::post(create);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = SentriError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers()) {
            return Err(SentriError(Error::validation(
                "Content-Type",
                "must be application/json",
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                SentriError(Error::new(ErrorCode::PayloadTooLarge))
            } else {
                SentriError(Error::validation("body", "could not be read"))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|err| SentriError(json_error(&err)))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => {
                let mut res = Response::new(axum::body::Body::from(body));
                res.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                res
            }
            Err(err) => SentriError(Error::internal(err)).into_response(),
        }
    }
}

/// Path parameters whose rejection is a `VALIDATION_ERROR` envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = SentriError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|rej| {
                let status = rej.status();
                let text = rej.body_text();
                if status.is_server_error() {
                    tracing::error!(rejection = %text, "path extractor misconfigured");
                    SentriError(Error::new(ErrorCode::InternalError))
                } else {
                    SentriError(Error::validation("path", &text))
                }
            })
    }
}

/// A query string whose rejection is a `VALIDATION_ERROR` envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = SentriError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|rej| SentriError(Error::validation("query", &rej.body_text())))
    }
}
