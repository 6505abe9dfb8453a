//! The route table (the built-in routes of SPEC §6, and any added) as an
//! axum [`Router`].

use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::FromRequestParts;
use axum::extract::connect_info::{ConnectInfo, MockConnectInfo};
use axum::extract::{NestedPath, OriginalUri, RawPathParams, Request};
use axum::response::Response;
use axum::routing::{MethodFilter, on};
use sentri_core::http::{
    Api, PathParams, check_content_length, method_not_allowed_response, not_found_response,
    payload_too_large,
};
use sentri_core::{Error, Sentri};

use crate::error::into_axum;
use crate::panic::CatchPanicLayer;

/// Every route of the table (the built-in routes of SPEC §6), to mount
/// under any prefix:
///
/// ```
/// # use sentri_core::Sentri;
/// # fn demo(sentri: Sentri) {
/// let app: axum::Router = axum::Router::new().nest("/auth", sentri_axum::router(sentri));
/// # }
/// ```
///
/// Every response is the envelope (`GET /keys` answers the plain JWKS);
/// unknown paths and methods below the prefix are 404/405 envelopes, and a
/// panic is the generic 500 envelope. The mount prefix (from
/// `Router::nest`) is the default path of the refresh cookie. The client
/// address is the socket peer from `ConnectInfo<SocketAddr>` (serve with
/// `into_make_service_with_connect_info`), or `X-Forwarded-For` through a
/// configured trusted proxy.
pub fn router(sentri: Sentri) -> Router {
    router_with(Api::new(sentri, ""))
}

/// As [`router`], with a configured [`Api`] (e.g. without the idempotency
/// layer on the built-in routes, or with routes added by
/// [`Api::with_route`]): every route of [`Api::routes`] is mounted. The
/// prefix of `api` is used when the router is not nested.
///
/// # Panics
/// When a route's method is one axum cannot route (a custom method).
pub fn router_with(api: Api) -> Router {
    let catch_panic = CatchPanicLayer::new(api.sentri());
    let mut router = Router::new();
    for (index, spec) in api.routes().iter().enumerate() {
        let filter = MethodFilter::try_from(spec.method().clone())
            .unwrap_or_else(|_| panic!("route {}: axum cannot route {}", spec.id(), spec.method()));
        let api = api.clone();
        router = router.route(
            spec.path(),
            on(filter, move |req: Request| handle(api.clone(), index, req)),
        );
    }
    let fallback_api = api.clone();
    router
        .fallback(|| async { into_axum(not_found_response()) })
        .method_not_allowed_fallback(move |req: Request| {
            let api = fallback_api.clone();
            async move { method_not_allowed(&api, &req) }
        })
        .layer(catch_panic)
}

/// 405 with the `Allow` header of the route table, as on every adapter.
fn method_not_allowed(api: &Api, req: &Request) -> Response {
    let mut res = method_not_allowed_response();
    if let Some(allow) = api.allow_header(req.uri().path()) {
        res.headers_mut().insert(http::header::ALLOW, allow);
    }
    into_axum(res)
}

pub(crate) fn peer(req: &http::Extensions) -> Option<SocketAddr> {
    req.get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .or_else(|| req.get::<MockConnectInfo<SocketAddr>>().map(|m| m.0))
}

async fn handle(api: Api, index: usize, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let api = match parts.extensions.get::<NestedPath>() {
        Some(nested) => api.with_prefix(nested.as_str()),
        None => api,
    };
    let spec = &api.routes()[index];
    let mut params = PathParams::new();
    if let Some(name) = spec.params().next() {
        match RawPathParams::from_request_parts(&mut parts, &()).await {
            Ok(raw) => {
                for (n, v) in raw.iter() {
                    params.push(n.to_owned(), v);
                }
            }
            Err(_) => {
                return crate::error::SentriError(Error::validation(name, "is not valid UTF-8"))
                    .into_response_axum();
            }
        }
    }
    let limit = api.body_limit();
    let body = match read_body(&parts.headers, body, limit).await {
        Ok(body) => body,
        Err(err) => return crate::error::SentriError(err).into_response_axum(),
    };
    let peer = peer(&parts.extensions);
    // The path as the client sent it, before `Router::nest` (as poem's
    // `original_uri`): what the idempotency fingerprint and reports see.
    let uri = match parts.extensions.remove::<OriginalUri>() {
        Some(original) => original.0,
        None => parts.uri,
    };
    let request = sentri_core::http::Request {
        method: parts.method,
        uri,
        headers: parts.headers,
        body,
        peer,
    };
    into_axum(api.call_spec(spec, &request, &params).await)
}

/// Read a body up to `limit` bytes: `PAYLOAD_TOO_LARGE` beyond.
pub(crate) async fn read_body(
    headers: &http::HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, Error> {
    check_content_length(headers, limit)?;
    to_bytes(body, limit).await.map_err(|err| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = source {
            if e.to_string().contains("length limit") {
                return payload_too_large(limit);
            }
            source = e.source();
        }
        Error::validation("body", "could not be read")
    })
}

impl crate::error::SentriError {
    pub(crate) fn into_response_axum(self) -> Response {
        axum::response::IntoResponse::into_response(self)
    }
}
