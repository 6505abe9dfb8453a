//! The route table (the built-in routes of SPEC §6, and any added) as a
//! poem endpoint.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use futures_util::FutureExt;
use poem::error::ReadBodyError;
use poem::{Endpoint, Request, Response};
use sentri_core::http::{Api, RouteMiss, check_content_length, payload_too_large};
use sentri_core::{Error, Sentri};

use crate::error::{SentriError, into_poem, panicked};

/// Every route of the table (the built-in routes of SPEC §6) as one poem
/// endpoint, to mount under any prefix:
///
/// ```
/// # use sentri_core::Sentri;
/// # fn demo(sentri: Sentri) {
/// let app = poem::Route::new().nest("/auth", sentri_poem::routes(sentri));
/// # }
/// ```
///
/// Every response is the envelope (`GET /keys` answers the plain JWKS);
/// unknown paths and methods below the prefix are 404/405 envelopes, and a
/// panic is the generic 500 envelope. The mount prefix (from
/// `Route::nest`) is the default path of the refresh cookie. The client
/// address is the socket peer (`Request::remote_addr`), or
/// `X-Forwarded-For` through a configured trusted proxy.
pub fn routes(sentri: Sentri) -> SentriRoutes {
    routes_with(Api::new(sentri, ""))
}

/// As [`routes`], with a configured [`Api`] (e.g. without the idempotency
/// layer on the built-in routes). The prefix of `api` is used when the
/// endpoint is not nested.
pub fn routes_with(api: Api) -> SentriRoutes {
    SentriRoutes { api }
}

/// The endpoint of [`routes`]: matches the route table of its [`Api`]
/// ([`Api::routes`]) below its mount prefix and runs [`Api::call_spec`].
#[derive(Debug, Clone)]
pub struct SentriRoutes {
    api: Api,
}

/// The socket peer of a request, when the listener knows it.
pub(crate) fn peer(req: &Request) -> Option<SocketAddr> {
    req.remote_addr().as_socket_addr().copied()
}

/// Read a body up to `limit` bytes: `PAYLOAD_TOO_LARGE` beyond.
pub(crate) async fn read_body(req: &mut Request, limit: usize) -> Result<Bytes, Error> {
    check_content_length(req.headers(), limit)?;
    req.take_body()
        .into_bytes_limit(limit)
        .await
        .map_err(|err| match err {
            ReadBodyError::PayloadTooLarge => payload_too_large(limit),
            _ => Error::validation("body", "could not be read"),
        })
}

impl SentriRoutes {
    /// The mount prefix: what `Route::nest` stripped from the path.
    fn api_for(&self, req: &Request) -> Api {
        let original = req.original_uri().path();
        let rest = req.uri().path();
        match original.strip_suffix(rest) {
            Some(prefix) if original != rest => self.api.with_prefix(prefix),
            _ => self.api.clone(),
        }
    }

    async fn handle(&self, mut req: Request) -> Response {
        let api = self.api_for(&req);
        let (spec, params) = match api.match_route(req.method(), req.uri().path()) {
            Ok(found) => found,
            Err(miss) => {
                let mut res = into_poem(miss.into_response());
                if miss == RouteMiss::MethodNotAllowed
                    && let Some(allow) = api.allow_header(req.uri().path())
                {
                    res.headers_mut().insert(http::header::ALLOW, allow);
                }
                return res;
            }
        };
        let body = match read_body(&mut req, api.body_limit()).await {
            Ok(body) => body,
            Err(err) => return poem::IntoResponse::into_response(SentriError(err)),
        };
        let request = sentri_core::http::Request {
            method: req.method().clone(),
            uri: req.original_uri().clone(),
            headers: req.headers().clone(),
            body,
            peer: peer(&req),
        };
        into_poem(api.call_spec(spec, &request, &params).await)
    }
}

impl Endpoint for SentriRoutes {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let (method, uri) = (req.method().clone(), req.original_uri().clone());
        Ok(
            match AssertUnwindSafe(self.handle(req)).catch_unwind().await {
                Ok(res) => res,
                Err(panic) => panicked(Some(self.api.sentri()), panic, &method, uri.path()).await,
            },
        )
    }
}
