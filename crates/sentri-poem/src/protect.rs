//! `protect` (F-20) as poem middleware, with silent refresh (F-24).

use http::header::SET_COOKIE;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use std::sync::Arc;

use sentri_core::config::CookieConfig;
use sentri_core::http::{Api, Head, verify_request};
use sentri_core::{AccessVerifier, Sentri};

use crate::error::{SentriError, error_to_response};
use crate::routes::peer;

/// Marks a request that went through a [`Protect`] middleware without a
/// user (an optional one); a request with a user carries the user instead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Protected;

/// Require an access token: `Authorization: Bearer`, else the access
/// cookie (F-20). The user is put in the request's extensions for the
/// [`crate::AuthUser`] extractor and the guards; a missing token is
/// `UNAUTHORIZED`, a bad one `TOKEN_INVALID`, an expired one
/// `TOKEN_EXPIRED`, all as the envelope. A state-changing request
/// authenticated by a cookie must come from an allowed origin (CSRF,
/// F-23). With the access cookie configured, an expired access token and a
/// valid refresh cookie rotate the pair and the new cookies are set on the
/// same response (F-24).
///
/// ```
/// # use sentri_core::Sentri;
/// use poem::{EndpointExt, Route, get, handler};
/// use sentri_poem::{AuthUser, protect};
///
/// #[handler]
/// fn profile(user: AuthUser) -> String {
///     user.identifier().to_owned()
/// }
///
/// # fn demo(sentri: Sentri) -> Route {
/// Route::new().at("/api/profile", get(profile).with(protect(&sentri)))
/// # }
/// ```
pub fn protect(sentri: &Sentri) -> Protect {
    Protect {
        api: Api::new(sentri.clone(), ""),
        optional: false,
    }
}

/// The optional variant of [`protect`]: a request without a valid token
/// goes on without a user ([`crate::MaybeAuthUser`] is `None`) instead of
/// being refused.
pub fn protect_optional(sentri: &Sentri) -> Protect {
    Protect {
        api: Api::new(sentri.clone(), ""),
        optional: true,
    }
}

/// The middleware of [`protect`] and [`protect_optional`].
#[derive(Debug, Clone)]
pub struct Protect {
    api: Api,
    optional: bool,
}

impl Protect {
    /// Where the auth routes are mounted (e.g. `/auth`): the path of the
    /// refresh cookie a silent refresh sets, when the configuration does
    /// not name one (`CookieConfig::refresh_path`). Default: `/`.
    #[must_use]
    pub fn auth_prefix(mut self, prefix: &str) -> Self {
        self.api = self.api.with_prefix(prefix);
        self
    }
}

impl<E: Endpoint> Middleware<E> for Protect {
    type Output = ProtectEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        ProtectEndpoint {
            inner: ep,
            layer: self.clone(),
        }
    }
}

/// The endpoint of [`Protect`].
#[derive(Debug)]
pub struct ProtectEndpoint<E> {
    inner: E,
    layer: Protect,
}

impl<E: Endpoint> Endpoint for ProtectEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let head = Head {
            method: req.method(),
            uri: req.original_uri(),
            headers: req.headers(),
            peer: peer(&req),
        };
        let api = &self.layer.api;
        // First without waiting (a token verified from what is in memory),
        // else through the store or a silent refresh.
        let optional = self.layer.optional;
        let outcome = match api.try_protect(head, optional) {
            Some(outcome) => outcome,
            None => api.protect(head, optional).await,
        };
        let auth = outcome.map_err(SentriError)?;
        let cookies = match auth {
            Some(auth) => {
                req.extensions_mut().insert(auth.user);
                auth.set_cookies
            }
            None => {
                req.extensions_mut().insert(Protected);
                Vec::new()
            }
        };
        let mut res = match self.inner.call(req).await {
            Ok(out) => out.into_response(),
            Err(err) if cookies.is_empty() => return Err(err),
            // The rotated cookies must reach the client whatever the status.
            Err(err) => error_to_response(err),
        };
        for cookie in cookies {
            res.headers_mut().append(SET_COOKIE, cookie);
        }
        Ok(res)
    }
}

/// `protect` backed by any [`AccessVerifier`]: in a resource server, a
/// [`JwksVerifier`](sentri_core::client::JwksVerifier) that checks the auth
/// server's tokens against its published keys, with no database (client
/// mode, F-16). The token is read and checked by
/// [`sentri_core::http::verify_request`], as in `sentri-axum`; the user goes
/// into the request's extensions, so [`crate::AuthUser`],
/// [`crate::authorize_roles`], [`crate::permit`] and [`crate::require_self`]
/// work as behind [`protect`]. There is no silent refresh.
///
/// ```
/// use std::sync::Arc;
/// use poem::{EndpointExt, Route, get, handler};
/// use sentri_poem::{AuthUser, authorize_roles, protect_with_verifier};
/// use sentri_core::AccessVerifier;
///
/// #[handler]
/// fn admin(user: AuthUser) -> String {
///     user.identifier().to_owned()
/// }
///
/// fn app(verifier: Arc<dyn AccessVerifier>) -> Route {
///     Route::new().at(
///         "/admin",
///         get(admin).with(authorize_roles(["admin"])).with(protect_with_verifier(verifier)),
///     )
/// }
/// ```
pub fn protect_with_verifier(verifier: Arc<dyn AccessVerifier>) -> VerifierProtect {
    VerifierProtect {
        verifier,
        cookies: Arc::new(CookieConfig::default()),
        optional: false,
    }
}

/// The middleware of [`protect_with_verifier`].
#[derive(Clone)]
pub struct VerifierProtect {
    verifier: Arc<dyn AccessVerifier>,
    cookies: Arc<CookieConfig>,
    optional: bool,
}

impl std::fmt::Debug for VerifierProtect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierProtect")
            .field("cookies", &self.cookies)
            .field("optional", &self.optional)
            .finish_non_exhaustive()
    }
}

impl VerifierProtect {
    /// Read the access cookie too, as the auth server sets it; a
    /// state-changing request authenticated by it must then come from one
    /// of `allowed_origins` (CSRF). Default: the bearer header only.
    #[must_use]
    pub fn cookies(mut self, cookies: CookieConfig) -> Self {
        self.cookies = Arc::new(cookies);
        self
    }

    /// The optional variant: a request without a valid token goes on
    /// without a user; only `SERVICE_UNAVAILABLE` is still answered.
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
}

impl<E: Endpoint> Middleware<E> for VerifierProtect {
    type Output = VerifierProtectEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        VerifierProtectEndpoint {
            inner: ep,
            layer: self.clone(),
        }
    }
}

/// The endpoint of [`VerifierProtect`].
#[derive(Debug)]
pub struct VerifierProtectEndpoint<E> {
    inner: E,
    layer: VerifierProtect,
}

impl<E: Endpoint> Endpoint for VerifierProtectEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<E::Output> {
        let head = Head {
            method: req.method(),
            uri: req.original_uri(),
            headers: req.headers(),
            peer: peer(&req),
        };
        let user = verify_request(
            &*self.layer.verifier,
            &self.layer.cookies,
            head,
            self.layer.optional,
        )
        .await
        .map_err(SentriError)?;
        match user {
            Some(user) => {
                req.extensions_mut().insert(user);
            }
            None => {
                req.extensions_mut().insert(Protected);
            }
        }
        self.inner.call(req).await
    }
}
