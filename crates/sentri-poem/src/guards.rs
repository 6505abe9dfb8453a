//! Authorization guards after `protect`: `authorize` (F-21), `permit`,
//! `require_self`, `require_verified_email` (F-22). Apply them with `.with`
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
use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::{HeaderMap, Method, Uri};
use poem::{Endpoint, Middleware, Request};
use sentri_core::{AuthUser, Error, ErrorCode, Sentri};

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

/// A guard middleware: runs a check on the authenticated user and the
/// request; `UNAUTHORIZED` without a user, the check's error (usually
/// `FORBIDDEN`) otherwise.
#[derive(Clone)]
pub struct Guard {
    check: Check,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

impl Guard {
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
pub fn authorize<const N: usize>(sentri: &Sentri, roles: [&str; N]) -> Guard {
    match try_authorize(sentri, roles) {
        Ok(guard) => guard,
        Err(err) => panic!("{err}"),
    }
}

/// As [`authorize`], returning the error instead of panicking.
///
/// # Errors
/// `CONFIGURATION_ERROR` naming the unknown role.
pub fn try_authorize<const N: usize>(sentri: &Sentri, roles: [&str; N]) -> Result<Guard, Error> {
    let roles = Arc::new(check_roles(sentri, &roles)?);
    Ok(Guard::new(move |req: PermitRequest| {
        let roles = roles.clone();
        async move { req.user.require_any_role(&roles) }
    }))
}

/// A resource-level check (F-22): `FORBIDDEN` when `check` answers
/// `false`.
///
/// ```
/// use sentri_poem::{permit, PermitRequest};
/// let guard = permit(|req: PermitRequest| async move {
///     req.param("ownerId") == Some(req.user.id().to_string().as_str())
/// });
/// ```
pub fn permit<F, Fut>(check: F) -> Guard
where
    F: Fn(PermitRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let check = Arc::new(check);
    Guard::new(move |req| {
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
) -> Result<Guard, Error>
where
    F: Fn(PermitRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let roles = Arc::new(check_roles(sentri, &roles)?);
    let check = Arc::new(check);
    Ok(Guard::new(move |req: PermitRequest| {
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
pub fn require_self(param: &'static str) -> Guard {
    Guard::new(move |req: PermitRequest| async move {
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
pub fn require_verified_email() -> Guard {
    Guard::new(|req: PermitRequest| async move { req.user.require_verified_email() })
}

impl<E: Endpoint> Middleware<E> for Guard {
    type Output = GuardEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        GuardEndpoint {
            inner: ep,
            check: self.check.clone(),
        }
    }
}

/// The endpoint of [`Guard`].
pub struct GuardEndpoint<E> {
    inner: E,
    check: Check,
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
        (self.check)(permit).await.map_err(SentriError)?;
        self.inner.call(req).await
    }
}
