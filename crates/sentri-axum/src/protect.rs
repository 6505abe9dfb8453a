//! `protect` (F-20) as a tower layer, with silent refresh (F-24).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use http::header::SET_COOKIE;
use sentri_core::Sentri;
use sentri_core::http::{Api, Head};
use tower::{Layer, Service};

use crate::error::SentriError;
use crate::router::peer;

/// Marks a request that went through a [`ProtectLayer`].
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

impl<S> Service<Request> for ProtectService<S>
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
                peer: peer(&parts.extensions),
            };
            let outcome = if layer.optional {
                layer.api.authenticate_optional(head).await
            } else {
                layer.api.authenticate(head).await.map(Some)
            };
            let auth = match outcome {
                Ok(auth) => auth,
                Err(err) => {
                    return Ok(axum::response::IntoResponse::into_response(SentriError(
                        err,
                    )));
                }
            };
            parts.extensions.insert(Protected);
            parts.extensions.insert(layer.api.sentri().clone());
            let cookies = match auth {
                Some(auth) => {
                    parts.extensions.insert(auth.user);
                    auth.set_cookies
                }
                None => Vec::new(),
            };
            let mut res = inner.call(Request::from_parts(parts, body)).await?;
            for cookie in cookies {
                res.headers_mut().append(SET_COOKIE, cookie);
            }
            Ok(res)
        })
    }
}
