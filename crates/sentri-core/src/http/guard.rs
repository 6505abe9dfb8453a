//! Authorization guards, shared by both adapters: `authorize` (F-21),
//! `permit`, `permit_roles`, `require_self`, `require_verified_email`
//! (F-22), and the step-up guards `require_recent_auth` and `require_amr`
//! (SPEC §10). An adapter runs a [`Guard`] after protect with the user and the
//! request it knows; the rules live here once.
//!
//! ```
//! use sentri_core::http::guard::{Guard, PermitRequest};
//!
//! let owner_only = Guard::permit(|req: PermitRequest| async move {
//!     req.param("ownerId") == Some(req.user.id().to_string().as_str())
//! });
//! # let _ = owner_only;
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::{HeaderMap, Method, Uri};

use crate::clock::Clock;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Sentri;
use crate::tokens::{AuthMethod, AuthUser};

/// What a guard sees of the request.
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

type Check = Arc<dyn Fn(PermitRequest) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// A check of the authenticated user and the request: `Ok` lets the
/// request through, an error (usually `FORBIDDEN`) answers it. Cheap to
/// clone.
#[derive(Clone)]
pub struct Guard(Check);

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard running `check`.
    pub fn new<F, Fut>(check: F) -> Self
    where
        F: Fn(PermitRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        Self(Arc::new(move |req| Box::pin(check(req))))
    }

    /// Run the guard.
    ///
    /// # Errors
    /// What the guard refuses with, usually `FORBIDDEN`.
    pub async fn check(&self, req: PermitRequest) -> Result<()> {
        (self.0)(req).await
    }

    /// Require at least one of `roles` (F-21), else `FORBIDDEN`.
    ///
    /// # Errors
    /// `CONFIGURATION_ERROR`, at build time, for an empty list or a role not
    /// in `valid_roles`.
    pub fn authorize(sentri: &Sentri, roles: &[&str]) -> Result<Self> {
        let roles = Arc::new(check_roles(sentri, roles)?);
        Ok(Self::new(move |req: PermitRequest| {
            let roles = roles.clone();
            async move { req.user.require_any_role(&roles) }
        }))
    }

    /// Require at least one of `roles`, without checking them against a
    /// configuration: `authorize` for a resource server, which has no
    /// [`Sentri`] whose `valid_roles` it could check at build time.
    pub fn require_roles(roles: &[&str]) -> Self {
        let roles: Arc<Vec<String>> = Arc::new(roles.iter().map(|r| (*r).to_owned()).collect());
        Self::new(move |req: PermitRequest| {
            let roles = roles.clone();
            async move { req.user.require_any_role(&roles) }
        })
    }

    /// A resource-level check (F-22): `FORBIDDEN` when `check` answers
    /// `false`.
    pub fn permit<F, Fut>(check: F) -> Self
    where
        F: Fn(PermitRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let check = Arc::new(check);
        Self::new(move |req| {
            let check = check.clone();
            async move { allow(check(req).await) }
        })
    }

    /// As [`Guard::permit`], where users with one of `roles` bypass the
    /// check (the predecessor's `permit({roles, check})`).
    ///
    /// # Errors
    /// `CONFIGURATION_ERROR`, at build time, for a role not in `valid_roles`.
    pub fn permit_roles<F, Fut>(sentri: &Sentri, roles: &[&str], check: F) -> Result<Self>
    where
        F: Fn(PermitRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let roles = Arc::new(check_roles(sentri, roles)?);
        let check = Arc::new(check);
        Ok(Self::new(move |req: PermitRequest| {
            let check = check.clone();
            let roles = roles.clone();
            async move { allow(req.user.has_any_role(&roles) || check(req).await) }
        }))
    }

    /// `FORBIDDEN` unless the path parameter `param` is the user's own id
    /// (e.g. `require_self("userId")` on `/users/{userId}`).
    pub fn require_self(param: &'static str) -> Self {
        Self::new(move |req: PermitRequest| async move {
            match req.param(param) {
                Some(value) => req.user.require_self(value),
                None => {
                    tracing::error!(param, "require_self: the route has no such path parameter");
                    Err(Error::new(ErrorCode::Forbidden))
                }
            }
        })
    }

    /// `FORBIDDEN` unless the user's email is verified.
    pub fn require_verified_email() -> Self {
        Self::new(|req: PermitRequest| async move { req.user.require_verified_email() })
    }

    /// `REAUTH_REQUIRED` (401, with an RFC 9470
    /// `insufficient_user_authentication` challenge) unless the user
    /// authenticated at most `max_age` ago: the token's `auth_time`, which
    /// a refresh keeps, against the system clock. For sensitive routes
    /// (step-up): the client authenticates again, then retries. A token
    /// without `auth_time` (earlier releases) is never recent.
    pub fn require_recent_auth(max_age: Duration) -> Self {
        Self::require_recent_auth_by(max_age, Clock::system())
    }

    /// As [`Guard::require_recent_auth`], against `clock` (e.g. the
    /// [`Sentri::clock`] of a test that moves time).
    pub fn require_recent_auth_by(max_age: Duration, clock: Clock) -> Self {
        Self::new(move |req: PermitRequest| {
            let now = clock.unix_seconds();
            async move { req.user.require_recent_auth(max_age, now) }
        })
    }

    /// `REAUTH_REQUIRED` unless the session was opened with at least one of
    /// `methods` (its `amr`), e.g. `require_amr(&[AuthMethod::Otp])` before
    /// an administrative action.
    ///
    /// # Errors
    /// `CONFIGURATION_ERROR`, at build time, for an empty list.
    pub fn require_amr(methods: &[AuthMethod]) -> Result<Self> {
        if methods.is_empty() {
            return Err(Error::configuration(
                "require_amr",
                "at least one method is required",
            ));
        }
        let methods: Arc<[AuthMethod]> = methods.into();
        Ok(Self::new(move |req: PermitRequest| {
            let methods = methods.clone();
            async move { req.user.require_amr(&methods) }
        }))
    }
}

fn allow(ok: bool) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::new(ErrorCode::Forbidden))
    }
}

fn check_roles(sentri: &Sentri, roles: &[&str]) -> Result<Vec<String>> {
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
