//! Authorization guards after `protect`: `authorize` (F-21), `permit`,
//! `require_self`, `require_verified_email` (F-22), `require_recent_auth`
//! and `require_amr` (step-up). Apply them with
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
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use sentri_core::http::guard::Guard;
use sentri_core::{AuthUser, Error, ErrorCode, Sentri};
use tower::{Layer, Service};

use crate::error::SentriError;

pub use sentri_core::http::guard::PermitRequest;

/// A guard layer: runs a core [`Guard`] on the authenticated user and the
/// request; `UNAUTHORIZED` without a user, the guard's error (usually
/// `FORBIDDEN`) otherwise.
#[derive(Clone, Debug)]
pub struct GuardLayer {
    guard: Guard,
}

impl From<Guard> for GuardLayer {
    fn from(guard: Guard) -> Self {
        Self { guard }
    }
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
    Guard::authorize(sentri, &roles).map(GuardLayer::from)
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
    Guard::permit(check).into()
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
    Guard::permit_roles(sentri, &roles, check).map(GuardLayer::from)
}

/// `FORBIDDEN` unless the path parameter `param` is the user's own id
/// (F-22, e.g. `require_self("userId")` on `/users/{userId}`).
pub fn require_self(param: &'static str) -> GuardLayer {
    Guard::require_self(param).into()
}

/// `FORBIDDEN` unless the user's email is verified (F-22).
pub fn require_verified_email() -> GuardLayer {
    Guard::require_verified_email().into()
}

/// `REAUTH_REQUIRED` unless the user authenticated at most `max_age` ago
/// (the token's `auth_time`; step-up for sensitive routes, SPEC §10).
pub fn require_recent_auth(max_age: std::time::Duration) -> GuardLayer {
    Guard::require_recent_auth(max_age).into()
}

/// `REAUTH_REQUIRED` unless the session was opened with one of `methods`
/// (the token's `amr`).
///
/// # Panics
/// At build time, for an empty list.
pub fn require_amr(methods: &[sentri_core::AuthMethod]) -> GuardLayer {
    match Guard::require_amr(methods) {
        Ok(guard) => guard.into(),
        Err(err) => panic!("{err}"),
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            guard: self.guard.clone(),
        }
    }
}

/// The service of [`GuardLayer`].
#[derive(Clone)]
pub struct GuardService<S> {
    inner: S,
    guard: Guard,
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
        let guard = self.guard.clone();
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
            if let Err(err) = guard.check(permit).await {
                return Ok(SentriError(err).into_response());
            }
            inner.call(Request::from_parts(parts, body)).await
        })
    }
}
