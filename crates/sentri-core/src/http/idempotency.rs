//! The idempotency layer (F-26) around any handler.

use std::future::Future;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, SET_COOKIE};
use http::{Response, StatusCode};

use super::Head;
use super::response::error_response;
use crate::idempotency::{
    CallerScope, IdempotencyStart, IdempotentRequest, log_stale, validate_key,
};
use crate::model::StoredResponse;
use crate::service::Sentri;
use crate::tokens::AuthUser;

/// The idempotency key of the request being run, handed to the handler
/// (adapters put it in the request's extensions).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(pub String);

const REPLAYED_HEADER: HeaderName = HeaderName::from_static("x-idempotent-replayed");
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Responses larger than this are sent but not stored for replay.
const MAX_STORED_BODY: usize = 1024 * 1024;

/// Headers never stored for replay.
const NOT_STORED: [&str; 6] = [
    "set-cookie",
    "date",
    "content-length",
    "transfer-encoding",
    "connection",
    "x-idempotent-replayed",
];

/// Who is calling, for scoping keys: the user, else the `X-Api-Key`
/// presented, else the client address ([`Head::client_ip`], the same
/// address throttling uses).
pub fn caller_scope(sentri: &Sentri, user: Option<&AuthUser>, head: Head<'_>) -> CallerScope {
    let api_key = head.headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let ip = head.client_ip(sentri.config().trusted_proxies());
    CallerScope::of(user.map(AuthUser::id), api_key, ip)
}

/// Whether a response carries tokens (then it is never stored).
fn carries_tokens(res: &Response<Bytes>) -> bool {
    res.headers().contains_key(SET_COOKIE)
        || [b"\"accessToken\"".as_slice(), b"\"refreshToken\""]
            .iter()
            .any(|needle| res.body().windows(needle.len()).any(|w| w == *needle))
}

/// Run `handler` under the idempotency layer (F-26).
///
/// Requests whose method the layer does not cover, or without the key
/// header, just run. Otherwise the key is validated (`VALIDATION_ERROR`),
/// scoped to `scope` and taken: a completed request with the same method,
/// path and body is replayed with `X-Idempotent-Replayed: true`; one still
/// running is `IDEMPOTENCY_IN_PROGRESS`; another request under the key is
/// `IDEMPOTENCY_KEY_REUSED`. The handler receives the key; its response
/// gets `X-Request-Id` and is stored when it is 2xx and carries no token
/// (no `Set-Cookie`, no `accessToken`/`refreshToken`); otherwise the key is
/// freed. A panic in the handler frees the key too.
pub async fn idempotent<F, Fut>(
    sentri: &Sentri,
    head: Head<'_>,
    body: &[u8],
    scope: CallerScope,
    handler: F,
) -> Response<Bytes>
where
    F: FnOnce(Option<IdempotencyKey>) -> Fut,
    Fut: Future<Output = Response<Bytes>>,
{
    let config = sentri.config().idempotency();
    let raw = match head.headers.get(config.header.as_str()) {
        Some(raw) if sentri.idempotency_applies(head.method.as_str()) => raw,
        _ => return handler(None).await,
    };
    let key = match validate_key(raw.as_bytes()) {
        Ok(key) => key.to_owned(),
        Err(err) => return error_response(&err),
    };
    let path = head
        .uri
        .path_and_query()
        .map_or_else(|| head.uri.path(), |p| p.as_str());
    let start = sentri
        .idempotency_begin(IdempotentRequest {
            key: &key,
            scope: &scope,
            method: head.method.as_str(),
            path,
            body,
        })
        .await;
    let request_id = HeaderValue::from_str(&key).ok();
    let ticket = match start {
        Ok(IdempotencyStart::Proceed(ticket)) => ticket,
        // The stored response as it was sent (the security headers are
        // added once, by whoever adds them to the live response).
        Ok(IdempotencyStart::Replay(stored)) => return replay(stored),
        Err(err) => {
            let mut res = error_response(&err);
            if let Some(id) = request_id {
                res.headers_mut().insert(REQUEST_ID_HEADER, id);
            }
            return res;
        }
    };
    let mut res = handler(Some(IdempotencyKey(key))).await;
    if let Some(id) = request_id {
        res.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    let store =
        res.status().is_success() && !carries_tokens(&res) && res.body().len() <= MAX_STORED_BODY;
    let outcome = if store {
        ticket.complete(to_stored(&res)).await
    } else {
        ticket.release().await
    };
    match outcome {
        Ok(true) => {}
        // The hold lapsed under this request and another one may have
        // taken the key over: nothing was stored or freed; the response
        // still goes out.
        Ok(false) => {
            let skipped = if store {
                "storing the response"
            } else {
                "freeing the key"
            };
            // The path without its query (which may carry secrets).
            log_stale(skipped, &format!("{} {}", head.method, head.uri.path()));
        }
        Err(err) => tracing::warn!(error = %err, "could not record an idempotent response"),
    }
    res
}

fn to_stored(res: &Response<Bytes>) -> StoredResponse {
    StoredResponse {
        status: res.status().as_u16(),
        headers: res
            .headers()
            .iter()
            .filter(|(n, _)| !NOT_STORED.contains(&n.as_str()))
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: res.body().to_vec(),
    }
}

fn replay(stored: StoredResponse) -> Response<Bytes> {
    let mut res = Response::new(Bytes::from(stored.body));
    *res.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (name, value) in stored.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            res.headers_mut().append(n, v);
        }
    }
    if !res.headers().contains_key(&REPLAYED_HEADER) {
        res.headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    res
}
