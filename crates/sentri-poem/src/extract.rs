//! Extractors: the authenticated user, and `Json`/`Path`/`Query` whose
//! rejections are the envelope (F-25).

use std::ops::Deref;

use poem::error::ReadBodyError;
use poem::web::RequestBody;
use poem::{FromRequest, IntoResponse, Request, Response};
use sentri_core::http::{is_json_content_type, json_error};
use sentri_core::{Error, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::SentriError;
use crate::protect::Protected;

/// The largest body [`Json`] reads unless a [`BodyLimit`] is set: 2 MiB,
/// as axum's `DefaultBodyLimit`.
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The largest body [`Json`] reads, as request data
/// (`.data(BodyLimit(64 * 1024))` on an endpoint). Default
/// [`DEFAULT_BODY_LIMIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

/// The user authenticated by [`crate::protect`]. Rejects with
/// `UNAUTHORIZED` when there is none (after [`crate::protect_optional`]),
/// and with a 500 `CONFIGURATION_ERROR` when no protect middleware runs for
/// the endpoint (a programming error).
#[derive(Debug, Clone)]
pub struct AuthUser(pub sentri_core::AuthUser);

impl Deref for AuthUser {
    type Target = sentri_core::AuthUser;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

fn missing_layer() -> poem::Error {
    tracing::error!("the AuthUser extractor needs the protect middleware on the endpoint");
    SentriError(Error::with_message(
        ErrorCode::ConfigurationError,
        "internal server error",
    ))
    .into()
}

impl<'a> FromRequest<'a> for AuthUser {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        if let Some(user) = req.extensions().get::<sentri_core::AuthUser>() {
            return Ok(Self(user.clone()));
        }
        if req.extensions().get::<Protected>().is_none() {
            return Err(missing_layer());
        }
        Err(SentriError(Error::new(ErrorCode::Unauthorized)).into())
    }
}

/// The user, if [`crate::protect_optional`] (or [`crate::protect`])
/// authenticated one. Never rejects after a protect middleware.
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<sentri_core::AuthUser>);

impl<'a> FromRequest<'a> for MaybeAuthUser {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        if let Some(user) = req.extensions().get::<sentri_core::AuthUser>() {
            return Ok(Self(Some(user.clone())));
        }
        if req.extensions().get::<Protected>().is_none() {
            return Err(missing_layer());
        }
        Ok(Self(None))
    }
}

/// A JSON body whose every rejection is the envelope: wrong content type,
/// malformed JSON, a missing or mistyped field → `VALIDATION_ERROR`; a body
/// over the [`BodyLimit`] → `PAYLOAD_TOO_LARGE`. As a response, it is plain
/// JSON with status 200.
///
/// ```
/// use poem::handler;
/// use sentri_poem::{Json, SentriError};
///
/// #[derive(serde::Deserialize)]
/// struct Order { item: String, quantity: u32 }
///
/// #[handler]
/// async fn create(Json(order): Json<Order>) -> Result<Json<serde_json::Value>, SentriError> {
///     Ok(Json(serde_json::json!({ "item": order.item, "quantity": order.quantity })))
/// }
/// # let _ = poem::post(create);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<'a, T: DeserializeOwned> FromRequest<'a> for Json<T> {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        if !is_json_content_type(req.headers()) {
            return Err(SentriError(Error::validation(
                "Content-Type",
                "must be application/json",
            ))
            .into());
        }
        let limit = req.data::<BodyLimit>().map_or(DEFAULT_BODY_LIMIT, |l| l.0);
        let too_large = || SentriError(Error::new(ErrorCode::PayloadTooLarge));
        if sentri_core::http::check_content_length(req.headers(), limit).is_err() {
            return Err(too_large().into());
        }
        let bytes = body
            .take()
            .map_err(|_| SentriError(Error::validation("body", "could not be read")))?
            .into_bytes_limit(limit)
            .await
            .map_err(|err| match err {
                ReadBodyError::PayloadTooLarge => too_large(),
                _ => SentriError(Error::validation("body", "could not be read")),
            })?;
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|err| SentriError(json_error(&err)).into())
    }
}

impl<T: Serialize + Send> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::builder()
                .content_type("application/json")
                .body(body),
            Err(err) => SentriError(Error::internal(err)).into_response(),
        }
    }
}

/// Path parameters whose rejection is a `VALIDATION_ERROR` envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<'a, T: DeserializeOwned> FromRequest<'a> for Path<T> {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        req.path_params::<T>()
            .map(Path)
            .map_err(|_| SentriError(Error::validation("path", "invalid path parameters")).into())
    }
}

/// A query string whose rejection is a `VALIDATION_ERROR` envelope naming
/// the field (worded as `sentri-axum` words it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<'a, T: DeserializeOwned> FromRequest<'a> for Query<T> {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let query = req.uri().query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|err| {
                SentriError(Error::validation(
                    "query",
                    &format!("Failed to deserialize query string: {err}"),
                ))
                .into()
            })
    }
}
