//! Authorization guards after `protect`: `authorize` (F-21), `permit`,
//! `require_self`, `require_verified_email` (F-22), `require_recent_auth`
//! and `require_amr` (step-up). Apply them with `.with`
//! on the endpoint of a route *before* (inside) the protect middleware, so
//! the user and the path parameters are known:
//!
//! ```
//! # use sentri_core::Sentri;
//! use poem::{EndpointExt, Route, delete, handler};
//! use sentri_poem::{authorize, protect};
//!
//! #[handler]
//! fn remove() -> &'static str { "deleted" }
//!
//! # fn demo(sentri: Sentri) -> Route {
//! Route::new().at(
//!     "/posts/{id}",
//!     delete(remove).with(authorize(&sentri, ["admin"])).with(protect(&sentri)),
//! )
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use poem::{Endpoint, Middleware, Request};
use sentri_core::http::guard::Guard as CoreGuard;
use sentri_core::{AuthUser, Error, ErrorCode, Sentri};

use crate::error::SentriError;

pub use sentri_core::http::guard::PermitRequest;

/// A guard middleware: runs a core guard on the authenticated user and the
/// request; `UNAUTHORIZED` without a user, the guard's error (usually
/// `FORBIDDEN`) otherwise.
#[derive(Clone, Debug)]
pub struct Guard {
    guard: CoreGuard,
}

impl From<CoreGuard> for Guard {
    fn from(guard: CoreGuard) -> Self {
        Self { guard }
    }
}

/// Require at least one of `roles` (F-21), else `FORBIDDEN`.
///
/// # Panics
/// At build time, when a role is not one of the configured `valid_roles`
/// (SPEC F-01); see [`try_authorize`] for a `Result`.
pub fn authorize<const N: usize>(sentri: &Sentri, roles: [&str; N]) -> Guard {
    match try_authorize(sentri, roles) {
        Ok(layer) => layer,
        Err(err) => panic!("{err}"),
    }
}

/// As [`authorize`], returning the error instead of panicking.
///
/// # Errors
/// `CONFIGURATION_ERROR` naming the unknown role.
pub fn try_authorize<const N: usize>(sentri: &Sentri, roles: [&str; N]) -> Result<Guard, Error> {
    CoreGuard::authorize(sentri, &roles).map(Guard::from)
}

/// Require at least one of `roles` (F-21), else `FORBIDDEN`: `authorize`
/// for a resource server, which has no [`Sentri`] whose `valid_roles` the
/// roles could be checked against at build time.
pub fn authorize_roles<const N: usize>(roles: [&str; N]) -> Guard {
    CoreGuard::require_roles(&roles).into()
}

/// A resource-level check (F-22): `FORBIDDEN` when `check` answers
/// `false`.
///
/// ```
/// # use sentri_core::Sentri;
/// use sentri_poem::{permit, PermitRequest};
/// let layer = permit(|req: PermitRequest| async move {
///     req.param("ownerId") == Some(req.user.id().to_string().as_str())
/// });
/// ```
pub fn permit<F, Fut>(check: F) -> Guard
where
    F: Fn(PermitRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    CoreGuard::permit(check).into()
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
) -> Result<Guard, Error>
where
    F: Fn(PermitRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    CoreGuard::permit_roles(sentri, &roles, check).map(Guard::from)
}

/// `FORBIDDEN` unless the path parameter `param` is the user's own id
/// (F-22, e.g. `require_self("userId")` on `/users/{userId}`).
pub fn require_self(param: &'static str) -> Guard {
    CoreGuard::require_self(param).into()
}

/// `FORBIDDEN` unless the user's email is verified (F-22).
pub fn require_verified_email() -> Guard {
    CoreGuard::require_verified_email().into()
}

/// `REAUTH_REQUIRED` unless the user authenticated at most `max_age` ago
/// (the token's `auth_time`; step-up for sensitive routes, SPEC §10).
pub fn require_recent_auth(max_age: std::time::Duration) -> Guard {
    CoreGuard::require_recent_auth(max_age).into()
}

/// `REAUTH_REQUIRED` unless the session was opened with one of `methods`
/// (the token's `amr`).
///
/// # Panics
/// At build time, for an empty list.
pub fn require_amr(methods: &[sentri_core::AuthMethod]) -> Guard {
    match CoreGuard::require_amr(methods) {
        Ok(guard) => guard.into(),
        Err(err) => panic!("{err}"),
    }
}

impl<E: Endpoint> Middleware<E> for Guard {
    type Output = GuardEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        GuardEndpoint {
            inner: ep,
            guard: self.guard.clone(),
        }
    }
}

/// The endpoint of [`Guard`].
pub struct GuardEndpoint<E> {
    inner: E,
    guard: CoreGuard,
}

impl<E: fmt::Debug> fmt::Debug for GuardEndpoint<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardEndpoint")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<E: Endpoint> Endpoint for GuardEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, req: Request) -> poem::Result<E::Output> {
        let Some(user) = req.extensions().get::<AuthUser>().cloned() else {
            return Err(SentriError(Error::new(ErrorCode::Unauthorized)).into());
        };
        let params = req
            .path_params::<BTreeMap<String, String>>()
            .map(|p| p.into_iter().collect())
            .unwrap_or_default();
        let permit = PermitRequest {
            user,
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
            params,
        };
        self.guard.check(permit).await.map_err(SentriError)?;
        self.inner.call(req).await
    }
}
