//! A panic in a handler becomes the generic 500 envelope (F-25).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::response::Response;
use futures_util::FutureExt;
use tower::{Layer, Service};

use crate::error::into_axum;

/// Catches panics of the inner service (in `call` and in its future) and
/// answers the generic 500 envelope; the panic message goes to `tracing`.
/// The [`crate::router`] has it already; add it to the application's
/// router as its outermost layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

/// The service of [`CatchPanicLayer`].
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

fn panic_to_response(panic: Box<dyn Any + Send>) -> Response {
    into_axum(sentri_core::http::panic_response_for(&*panic))
}

impl<S, R> Service<R> for CatchPanic<S>
where
    S: Service<R, Response = Response>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(fut) => Box::pin(async move {
                match AssertUnwindSafe(fut).catch_unwind().await {
                    Ok(res) => res,
                    Err(panic) => Ok(panic_to_response(panic)),
                }
            }),
            Err(panic) => {
                let res = panic_to_response(panic);
                Box::pin(async move { Ok(res) })
            }
        }
    }
}
