//! The idempotency middleware (F-26) for the application's routes.

use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use sentri_core::http::{Head, caller_scope, error_response, idempotent};
use sentri_core::{AuthUser, Error, Sentri};

use crate::error::{SentriError, error_to_response, into_poem};
use crate::routes::{peer, read_body};

/// Make POST/PUT/PATCH requests carrying `X-Idempotency-Key` (the header
/// and methods are configurable in `IdempotencyConfig`) idempotent:
/// a repeat with the same method, path and body replays the first 2xx
/// response with `X-Idempotent-Replayed: true`; a repeat while the first
/// runs is `IDEMPOTENCY_IN_PROGRESS`; the key with another request is
/// `IDEMPOTENCY_KEY_REUSED`. Keys are scoped to the caller: put this
/// middleware inside (before, in code order) [`crate::protect`] so the
/// user is known; otherwise the `X-Api-Key` or the client address scope
/// them. The key is echoed as `X-Request-Id` and handed to the handler as
/// the [`sentri_core::http::IdempotencyKey`] extension. Responses that set
/// cookies or carry tokens are never stored.
///
/// ```
/// # use sentri_core::Sentri;
/// use poem::{EndpointExt, Route, handler, post};
/// use sentri_poem::{idempotency, protect};
///
/// #[handler]
/// fn create() -> &'static str { "created" }
///
/// # fn demo(sentri: Sentri) -> Route {
/// Route::new().at(
///     "/orders",
///     post(create).with(idempotency(&sentri)).with(protect(&sentri)),
/// )
/// # }
/// ```
pub fn idempotency(sentri: &Sentri) -> Idempotency {
    Idempotency {
        sentri: sentri.clone(),
        max_body: 1024 * 1024,
    }
}

/// The middleware of [`idempotency`].
#[derive(Debug, Clone)]
pub struct Idempotency {
    sentri: Sentri,
    max_body: usize,
}

impl Idempotency {
    /// The largest request body the middleware reads (to fingerprint it);
    /// a larger one is `PAYLOAD_TOO_LARGE`. Default 1 MiB.
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }
}

impl<E: Endpoint> Middleware<E> for Idempotency {
    type Output = IdempotencyEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        IdempotencyEndpoint {
            inner: ep,
            layer: self.clone(),
        }
    }
}

/// The endpoint of [`Idempotency`].
#[derive(Debug)]
pub struct IdempotencyEndpoint<E> {
    inner: E,
    layer: Idempotency,
}

impl<E: Endpoint> Endpoint for IdempotencyEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let sentri = &self.layer.sentri;
        let header = sentri.config().idempotency().header.as_str();
        if !sentri.idempotency_applies(req.method().as_str()) || !req.headers().contains_key(header)
        {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        let body = read_body(&mut req, self.layer.max_body)
            .await
            .map_err(SentriError)?;
        let method = req.method().clone();
        let uri = req.original_uri().clone();
        let headers = req.headers().clone();
        let head = Head {
            method: &method,
            uri: &uri,
            headers: &headers,
            peer: peer(&req),
        };
        let scope = caller_scope(sentri, req.extensions().get::<AuthUser>(), head);
        let res = idempotent(sentri, head, &body, scope, |key| {
            req.set_body(body.clone());
            if let Some(key) = key {
                req.extensions_mut().insert(key);
            }
            async move {
                let res = match self.inner.call(req).await {
                    Ok(out) => out.into_response(),
                    Err(err) => error_to_response(err),
                };
                let (parts, body) = res.into_parts();
                match body.into_bytes().await {
                    Ok(bytes) => {
                        let mut out = http::Response::new(bytes);
                        *out.status_mut() = parts.status;
                        *out.headers_mut() = parts.headers;
                        out
                    }
                    Err(err) => error_response(&Error::internal(err)),
                }
            }
        })
        .await;
        Ok(into_poem(res))
    }
}
