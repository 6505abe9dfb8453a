//! The same application served through poem (`SENTRI_FRAMEWORK=poem`):
//! the auth routes of `sentri-poem` under `/auth` and the server's own
//! routes, answering byte for byte like the axum application because both
//! call the same framework-free functions.

use std::time::Instant;

use poem::endpoint::make;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get};

use crate::http::{
    AUTH_PREFIX, AppState, ServerRoute, healthz_response, log_request, openapi_response,
    readyz_response, trace_request,
};

fn to_poem(res: http::Response<bytes::Bytes>) -> Response {
    let (parts, body) = res.into_parts();
    let mut out = Response::builder().status(parts.status).body(body);
    *out.headers_mut() = parts.headers;
    out
}

/// The whole application on poem: auth routes under [`AUTH_PREFIX`], the
/// server's routes, envelope errors, panics as the generic 500 envelope,
/// and the access log.
pub fn app(state: AppState) -> impl Endpoint {
    let catch_panic = sentri_poem::catch_panic(state.sentri());
    let mut route = Route::new().nest(
        AUTH_PREFIX,
        sentri_poem::routes_with(state.api().with_prefix("")),
    );
    for server_route in ServerRoute::ALL {
        let state = state.clone();
        let endpoint = get(make(move |_| {
            let state = state.clone();
            async move {
                to_poem(match server_route {
                    ServerRoute::Healthz => healthz_response(),
                    ServerRoute::Readyz => readyz_response(&state).await,
                    ServerRoute::OpenApi => openapi_response(&state),
                })
            }
        }));
        route = route.at(server_route.path(), endpoint);
    }
    route
        .with(sentri_poem::EnvelopeErrors)
        .with(catch_panic)
        .around(|ep, req: Request| async move {
            let method = req.method().clone();
            let path = req.uri().path().to_owned();
            trace_request(&method, &path, req.headers());
            let started = Instant::now();
            let res = ep.call(req).await.map(IntoResponse::into_response);
            let status = match &res {
                Ok(r) => r.status().as_u16(),
                Err(e) => e.status().as_u16(),
            };
            log_request(&method, &path, status, started);
            res
        })
}
