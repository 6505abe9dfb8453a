//! The idempotency layer (F-26) for the application's routes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use sentri_core::http::{Head, caller_scope, idempotent};
use sentri_core::{AuthUser, Error, Sentri};
use tower::{Layer, Service};

use crate::error::{SentriError, into_axum};
use crate::router::{peer, read_body};

/// Make POST/PUT/PATCH requests carrying `X-Idempotency-Key` (the header
/// and methods are configurable in `IdempotencyConfig`) idempotent:
/// a repeat with the same method, path and body replays the first 2xx
/// response with `X-Idempotent-Replayed: true`; a repeat while the first
/// runs is `IDEMPOTENCY_IN_PROGRESS`; the key with another request is
/// `IDEMPOTENCY_KEY_REUSED`. Keys are scoped to the caller: put this layer
/// inside (before, in code order) [`crate::protect`] so the user is known;
/// otherwise the `X-Api-Key` or the client address scope them. The key is
/// echoed as `X-Request-Id` and handed to the handler as the
/// [`sentri_core::http::IdempotencyKey`] extension. Responses that set
/// cookies or carry tokens are never stored.
///
/// ```
/// # use sentri_core::Sentri;
/// use axum::{Router, routing::post};
/// use sentri_axum::{idempotency, protect};
///
/// # fn demo(sentri: Sentri) -> Router {
/// Router::new()
///     .route("/orders", post(|| async { "created" }))
///     .route_layer(idempotency(&sentri))
///     .route_layer(protect(&sentri))
/// # }
/// ```
pub fn idempotency(sentri: &Sentri) -> IdempotencyLayer {
    IdempotencyLayer {
        sentri: sentri.clone(),
        max_body: 1024 * 1024,
    }
}

/// The layer of [`idempotency`].
#[derive(Debug, Clone)]
pub struct IdempotencyLayer {
    sentri: Sentri,
    max_body: usize,
}

impl IdempotencyLayer {
    /// The largest request body the layer reads (to fingerprint it); a
    /// larger one is `PAYLOAD_TOO_LARGE`. Default 1 MiB.
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = IdempotencyService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        IdempotencyService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`IdempotencyLayer`].
#[derive(Debug, Clone)]
pub struct IdempotencyService<S> {
    inner: S,
    layer: IdempotencyLayer,
}

impl<S> Service<Request> for IdempotencyService<S>
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
        let IdempotencyLayer { sentri, max_body } = self.layer.clone();
        let header = sentri.config().idempotency().header.as_str();
        if !sentri.idempotency_applies(req.method().as_str()) || !req.headers().contains_key(header)
        {
            return Box::pin(inner.call(req));
        }
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = match read_body(&parts.headers, body, max_body).await {
                Ok(b) => b,
                Err(err) => return Ok(SentriError(err).into_response()),
            };
            let head = Head {
                method: &parts.method,
                uri: &parts.uri,
                headers: &parts.headers,
                peer: peer(&parts.extensions),
            };
            let scope = caller_scope(&sentri, parts.extensions.get::<AuthUser>(), head);
            let res = idempotent(&sentri, head, &body, scope, |key| {
                let mut req = Request::from_parts(parts.clone(), Body::from(body.clone()));
                if let Some(key) = key {
                    req.extensions_mut().insert(key);
                }
                async move {
                    let Ok(res) = inner.call(req).await;
                    let (res_parts, res_body) = res.into_parts();
                    match to_bytes(res_body, usize::MAX).await {
                        Ok(bytes) => http::Response::from_parts(res_parts, bytes),
                        Err(err) => sentri_core::http::error_response(&Error::internal(err)),
                    }
                }
            })
            .await;
            Ok(into_axum(res))
        })
    }
}
