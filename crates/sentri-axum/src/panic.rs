//! A panic in a handler becomes the generic 500 envelope (F-25) and
//! reaches the `on_unhandled` hook (SPEC §3).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::OriginalUri;
use axum::response::Response;
use futures_util::FutureExt;
use sentri_core::Sentri;
use tower::{Layer, Service};

use crate::error::into_axum;

/// Catches panics of the inner service (in `call` and in its future) and
/// answers the generic 500 envelope, through
/// [`sentri_core::http::panic_caught`]: the panic message is logged once
/// and, with [`CatchPanicLayer::new`], reported to the `on_unhandled` hook;
/// the client never sees it. The [`crate::router`] has it already; add it
/// to the application's router as its outermost layer:
///
/// ```
/// # fn demo(sentri: sentri_core::Sentri) {
/// let app: axum::Router = axum::Router::new()
///     .nest("/auth", sentri_axum::router(sentri.clone()))
///     .layer(sentri_axum::CatchPanicLayer::new(&sentri));
/// # }
/// ```
///
/// Without a [`Sentri`] (a resource server verifying with a JWKS),
/// `CatchPanicLayer::default()` answers and logs alike, with no hook.
#[derive(Debug, Clone, Default)]
pub struct CatchPanicLayer {
    sentri: Option<Sentri>,
}

impl CatchPanicLayer {
    /// Catch panics and report them to the `on_unhandled` hook of `sentri`.
    pub fn new(sentri: &Sentri) -> Self {
        Self {
            sentri: Some(sentri.clone()),
        }
    }
}

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic {
            inner,
            sentri: self.sentri.clone(),
        }
    }
}

/// The service of [`CatchPanicLayer`].
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
    sentri: Option<Sentri>,
}

impl<S, B> Service<http::Request<B>> for CatchPanic<S>
where
    S: Service<http::Request<B>, Response = Response>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // Cheap clones (no allocation for the standard methods, a shared
        // buffer for the URI), for the report of a panic; the path before
        // any `Router::nest` stripped it.
        let uri = match req.extensions().get::<OriginalUri>() {
            Some(original) => original.0.clone(),
            None => req.uri().clone(),
        };
        let method = req.method().clone();
        let sentri = self.sentri.clone();
        let called = std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req)));
        Box::pin(async move {
            let panic = match called {
                Ok(fut) => match AssertUnwindSafe(fut).catch_unwind().await {
                    Ok(res) => return res,
                    Err(panic) => panic,
                },
                Err(panic) => panic,
            };
            let res = sentri_core::http::panic_caught(sentri.as_ref(), panic, &method, uri.path());
            Ok(into_axum(res.await))
        })
    }
}
