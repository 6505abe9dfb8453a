//! Authorization guards after `protect`: `authorize` (F-21), `permit`,
//! `require_self`, `require_verified_email` (F-22). Apply them with
//! `route_layer` *inside* (before, in code order) the protect layer so the
//! user and the path parameters are known:
//!
//! ```
//! # use sentri_core::Sentri;
//! use axum::{Router, routing::delete};
//! use sentri_axum::{authorize, protect};
//!
//! # fn demo(sentri: Sentri) -> Router {
//! Router::new()
//!     .route("/posts/{id}", delete(|| async { "deleted" }))
//!     .route_layer(authorize(&sentri, ["admin"]))
//!     .route_layer(protect(&sentri))
//! # }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::{HeaderMap, Method, Uri};
use sentri_core::{AuthUser, Error, ErrorCode, Sentri};
use tower::{Layer, Service};

use crate::error::SentriError;

/// What a [`permit`] check sees of the request.
#[derive(Debug, Clone)]
pub struct PermitRequest {
    /// The authenticated user.
    pub user: AuthUser,
    /// The method.
    pub method: Method,
    /// The URI.
    pub uri: Uri,
    /// The headers.
    pub headers: HeaderMap,
    /// The route's path parameters, decoded.
    pub params: Vec<(String, String)>,
}

impl PermitRequest {
    /// The path parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Check = Arc<dyn Fn(PermitRequest) -> BoxFuture<'static, Result<(), Error>> + Send + Sync>;

/// A guard layer: runs a check on the authenticated user and the request;
/// `UNAUTHORIZED` without a user, the check's error (usually `FORBIDDEN`)
/// otherwise.
#[derive(Clone)]
pub struct GuardLayer {
    check: Check,
}

impl fmt::Debug for GuardLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardLayer").finish_non_exhaustive()
    }
}

impl GuardLayer {
    fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(PermitRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        Self {
            check: Arc::new(move |req| Box::pin(f(req))),
        }
    }
}

fn check_roles<const N: usize>(sentri: &Sentri, roles: &[&str; N]) -> Result<Vec<String>, Error> {
    if roles.is_empty() {
        return Err(Error::configuration(
            "authorize",
            "at least one role is required",
        ));
    }
    for role in roles {
        if !sentri.config().is_valid_role(role) {
            return Err(Error::configuration(
                "authorize",
                &format!("unknown role {role:?}: not one of valid_roles"),
            ));
        }
    }
    Ok(roles.iter().map(|r| (*r).to_owned()).collect())
}

/// Require at least one of `roles` (F-21), else `FORBIDDEN`.
///
/// # Panics
/// At build time, when a role is not one of the configured `valid_roles`
/// (SPEC F-01); see [`try_authorize`] for a `Result`.
pub fn authorize<const N: usize>(sentri: &Sentri, roles: [&str; N]) -> GuardLayer {
    match try_authorize(sentri, roles) {
        Ok(layer) => layer,
        Err(err) => panic!("{err}"),
    }
}

/// As [`authorize`], returning the error instead of panicking.
///
/// # Errors
/// `CONFIGURATION_ERROR` naming the unknown role.
pub fn try_authorize<const N: usize>(
    sentri: &Sentri,
    roles: [&str; N],
) -> Result<GuardLayer, Error> {
    let roles = Arc::new(check_roles(sentri, &roles)?);
    Ok(GuardLayer::new(move |req: PermitRequest| {
        let roles = roles.clone();
        async move { req.user.require_any_role(&roles) }
    }))
}

/// A resource-level check (F-22): `FORBIDDEN` when `check` answers
/// `false`.
///
/// ```
/// # use sentri_core::Sentri;
/// use sentri_axum::{permit, PermitRequest};
/// let layer = permit(|req: PermitRequest| async move {
///     req.param("ownerId") == Some(req.user.id().to_string().as_str())
/// });
/// ```
pub fn permit<F, Fut>(check: F) -> GuardLayer
where
    F: Fn(PermitRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let check = Arc::new(check);
    GuardLayer::new(move |req| {
        let check = check.clone();
        async move {
            if check(req).await {
                Ok(())
            } else {
                Err(Error::new(ErrorCode::Forbidden))
            }
        }
    })
}

/// As [`permit`], where users with one of `roles` bypass the check (the
/// seed's `permit({roles, check})`).
///
/// # Errors
/// `CONFIGURATION_ERROR` at build time for a role not in `valid_roles`.
pub fn permit_roles<const N: usize, F, Fut>(
    sentri: &Sentri,
    roles: [&str; N],
    check: F,
) -> Result<GuardLayer, Error>
where
    F: Fn(PermitRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let roles = Arc::new(check_roles(sentri, &roles)?);
    let check = Arc::new(check);
    Ok(GuardLayer::new(move |req: PermitRequest| {
        let check = check.clone();
        let roles = roles.clone();
        async move {
            if req.user.has_any_role(&roles) || check(req).await {
                Ok(())
            } else {
                Err(Error::new(ErrorCode::Forbidden))
            }
        }
    }))
}

/// `FORBIDDEN` unless the path parameter `param` is the user's own id
/// (F-22, e.g. `require_self("userId")` on `/users/{userId}`).
pub fn require_self(param: &'static str) -> GuardLayer {
    GuardLayer::new(move |req: PermitRequest| async move {
        match req.param(param) {
            Some(value) => req.user.require_self(value),
            None => {
                tracing::error!(param, "require_self: the route has no such path parameter");
                Err(Error::new(ErrorCode::Forbidden))
            }
        }
    })
}

/// `FORBIDDEN` unless the user's email is verified (F-22).
pub fn require_verified_email() -> GuardLayer {
    GuardLayer::new(|req: PermitRequest| async move { req.user.require_verified_email() })
}

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            check: self.check.clone(),
        }
    }
}

/// The service of [`GuardLayer`].
#[derive(Clone)]
pub struct GuardService<S> {
    inner: S,
    check: Check,
}

impl<S: fmt::Debug> fmt::Debug for GuardService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Service<Request> for GuardService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let check = self.check.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let Some(user) = parts.extensions.get::<AuthUser>().cloned() else {
                return Ok(SentriError(Error::new(ErrorCode::Unauthorized)).into_response());
            };
            let params = match RawPathParams::from_request_parts(&mut parts, &()).await {
                Ok(p) => p
                    .iter()
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .collect(),
                Err(_) => Vec::new(),
            };
            let permit = PermitRequest {
                user,
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                headers: parts.headers.clone(),
                params,
            };
            if let Err(err) = check(permit).await {
                return Ok(SentriError(err).into_response());
            }
            inner.call(Request::from_parts(parts, body)).await
        })
    }
}
