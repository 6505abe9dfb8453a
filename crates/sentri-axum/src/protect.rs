//! `protect` (F-20) as a tower layer, with silent refresh (F-24).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use http::header::SET_COOKIE;
use sentri_core::config::CookieConfig;
use sentri_core::http::{Api, Head, verify_request};
use sentri_core::{AccessVerifier, Sentri};
use tower::{Layer, Service};

use crate::error::SentriError;
use crate::guards::GuardLayer;
use crate::router::peer;

/// Marks a request that went through a [`ProtectLayer`] without a user
/// (an optional layer); a request with a user carries the user instead,
/// so the common case costs one extension insert.
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
/// use axum::{Router, routing::get};
/// use sentri_axum::{AuthUser, protect};
///
/// # fn demo(sentri: Sentri) -> Router {
/// Router::new()
///     .route("/api/profile", get(|user: AuthUser| async move { user.identifier().to_owned() }))
///     .route_layer(protect(&sentri))
/// # }
/// ```
pub fn protect(sentri: &Sentri) -> ProtectLayer {
    ProtectLayer {
        api: Api::new(sentri.clone(), ""),
        optional: false,
    }
}

/// The optional variant of [`protect`]: a request without a valid token
/// goes on without a user ([`crate::MaybeAuthUser`] is `None`) instead of
/// being refused.
pub fn protect_optional(sentri: &Sentri) -> ProtectLayer {
    ProtectLayer {
        api: Api::new(sentri.clone(), ""),
        optional: true,
    }
}

/// The layer of [`protect`] and [`protect_optional`].
#[derive(Debug, Clone)]
pub struct ProtectLayer {
    api: Api,
    optional: bool,
}

impl ProtectLayer {
    /// Where the auth routes are mounted (e.g. `/auth`): the path of the
    /// refresh cookie a silent refresh sets, when the configuration does
    /// not name one (`CookieConfig::refresh_path`). Default: `/`.
    #[must_use]
    pub fn auth_prefix(mut self, prefix: &str) -> Self {
        self.api = self.api.with_prefix(prefix);
        self
    }
}

impl<S> Layer<S> for ProtectLayer {
    type Service = ProtectService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ProtectService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`ProtectLayer`].
#[derive(Debug, Clone)]
pub struct ProtectService<S> {
    inner: S,
    layer: ProtectLayer,
}

type BoxedResponse = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

pin_project_lite::pin_project! {
    /// The future of [`ProtectService`]: the inner service's own future
    /// when the request was authenticated without waiting (the common
    /// case: no allocation), a ready refusal, or the boxed path that asks
    /// the store or renews the pair.
    pub struct ProtectFuture<F> {
        #[pin]
        state: ProtectState<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = ProtectStateProj]
    enum ProtectState<F> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response> },
        Boxed { future: BoxedResponse },
    }
}

impl<F> fmt::Debug for ProtectFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectFuture").finish_non_exhaustive()
    }
}

impl<F> Future for ProtectFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            ProtectStateProj::Inner { future } => future.poll(cx),
            ProtectStateProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("ProtectFuture polled after completion"))),
            ProtectStateProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<S> Service<Request> for ProtectService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ProtectFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // First without waiting: a token that verifies (or fails for good)
        // from what is in memory. The inner service was made ready by
        // `poll_ready`, so it is called in place.
        let head = Head {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            peer: peer(req.extensions()),
        };
        let state = match self.layer.api.try_protect(head, self.layer.optional) {
            Some(Ok(auth)) if auth.as_ref().is_none_or(|a| a.set_cookies.is_empty()) => {
                match auth {
                    Some(auth) => {
                        req.extensions_mut().insert(auth.user);
                    }
                    None => {
                        req.extensions_mut().insert(Protected);
                    }
                }
                ProtectState::Inner {
                    future: self.inner.call(req),
                }
            }
            Some(Err(err)) => ProtectState::Refused {
                response: Some(axum::response::IntoResponse::into_response(SentriError(
                    err,
                ))),
            },
            _ => ProtectState::Boxed {
                future: self.call_waiting(req),
            },
        };
        ProtectFuture { state }
    }
}

impl<S> ProtectService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    /// The path that waits: the session store, a silent refresh.
    fn call_waiting(&mut self, req: Request) -> BoxedResponse {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let head = Head {
                method: &parts.method,
                uri: &parts.uri,
                headers: &parts.headers,
                peer: peer(&parts.extensions),
            };
            let auth = match layer.api.protect(head, layer.optional).await {
                Ok(auth) => auth,
                Err(err) => {
                    return Ok(axum::response::IntoResponse::into_response(SentriError(
                        err,
                    )));
                }
            };
            let cookies = match auth {
                Some(auth) => {
                    parts.extensions.insert(auth.user);
                    auth.set_cookies
                }
                None => {
                    parts.extensions.insert(Protected);
                    Vec::new()
                }
            };
            let mut res = inner.call(Request::from_parts(parts, body)).await?;
            for cookie in cookies {
                res.headers_mut().append(SET_COOKIE, cookie);
            }
            Ok(res)
        })
    }
}

/// `protect` backed by any [`AccessVerifier`]: in a resource server, a
/// [`JwksVerifier`](sentri_core::client::JwksVerifier) that checks the
/// auth server's tokens against its published keys, with no database
/// (client mode, F-16).
///
/// The token is read exactly as [`protect`] reads it
/// ([`sentri_core::http::access_token`]): `Authorization: Bearer`, else the
/// access cookie when [`VerifierProtectLayer::cookies`] configures one. A
/// missing token is `UNAUTHORIZED`; the verifier's errors (`TOKEN_INVALID`,
/// `TOKEN_EXPIRED`, `SERVICE_UNAVAILABLE`) are answered as the envelope.
/// The user goes into the request's extensions, so [`crate::AuthUser`],
/// [`crate::authorize_roles`], [`crate::permit`] and
/// [`crate::require_self`] work as behind [`protect`]. There is no silent
/// refresh: a resource server holds no refresh token.
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
/// use sentri_axum::{AuthUser, authorize_roles, protect_with_verifier};
/// use sentri_core::AccessVerifier;
///
/// fn app(verifier: Arc<dyn AccessVerifier>) -> Router {
///     Router::new()
///         .route("/admin", get(|user: AuthUser| async move { user.identifier().to_owned() }))
///         .route_layer(authorize_roles(["admin"]))
///         .route_layer(protect_with_verifier(verifier))
/// }
/// ```
pub fn protect_with_verifier(verifier: Arc<dyn AccessVerifier>) -> VerifierProtectLayer {
    VerifierProtectLayer {
        verifier,
        cookies: Arc::new(CookieConfig::default()),
        optional: false,
    }
}

/// Require at least one of `roles` (F-21), else `FORBIDDEN`: `authorize`
/// for a resource server, which has no [`Sentri`] whose `valid_roles` the
/// roles could be checked against at build time.
pub fn authorize_roles<const N: usize>(roles: [&str; N]) -> GuardLayer {
    sentri_core::http::guard::Guard::require_roles(&roles).into()
}

/// The layer of [`protect_with_verifier`].
#[derive(Clone)]
pub struct VerifierProtectLayer {
    verifier: Arc<dyn AccessVerifier>,
    cookies: Arc<CookieConfig>,
    optional: bool,
}

impl fmt::Debug for VerifierProtectLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierProtectLayer")
            .field("cookies", &self.cookies)
            .field("optional", &self.optional)
            .finish_non_exhaustive()
    }
}

impl VerifierProtectLayer {
    /// Read the access cookie too, as the auth server sets it (its
    /// `transport` must be `Both`, and its names must match the auth
    /// server's). A state-changing request authenticated by the cookie must
    /// then come from one of `allowed_origins` (CSRF, F-23). Default: the
    /// bearer header only.
    #[must_use]
    pub fn cookies(mut self, cookies: CookieConfig) -> Self {
        self.cookies = Arc::new(cookies);
        self
    }

    /// The optional variant: a request without a valid token goes on
    /// without a user ([`crate::MaybeAuthUser`] is `None`); only
    /// `SERVICE_UNAVAILABLE` is still answered.
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
}

impl<S> Layer<S> for VerifierProtectLayer {
    type Service = VerifierProtectService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        VerifierProtectService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`VerifierProtectLayer`].
#[derive(Debug, Clone)]
pub struct VerifierProtectService<S> {
    inner: S,
    layer: VerifierProtectLayer,
}

impl<S> Service<Request> for VerifierProtectService<S>
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
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let head = Head {
                method: &parts.method,
                uri: &parts.uri,
                headers: &parts.headers,
                peer: None,
            };
            match verify_request(&*layer.verifier, &layer.cookies, head, layer.optional).await {
                Ok(Some(user)) => {
                    parts.extensions.insert(user);
                }
                Ok(None) => {
                    parts.extensions.insert(Protected);
                }
                Err(err) => {
                    return Ok(axum::response::IntoResponse::into_response(SentriError(
                        err,
                    )));
                }
            }
            inner.call(Request::from_parts(parts, body)).await
        })
    }
}
