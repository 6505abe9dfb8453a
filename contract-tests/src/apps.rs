//! The same application in each adapter: the auth routes (with those of
//! the plugin of [`crate::plugin`]) under `/auth`, and routes of its own
//! behind the adapter's layers.
//!
//! | route | |
//! |---|---|
//! | `GET /profile` | protect → `{identifier}` |
//! | `GET /feed` | protect_optional → `{identifier|null}` |
//! | `GET /admin` | protect + authorize(admin) |
//! | `GET /recent` | protect + require_recent_auth(10 min, by the server's clock) |
//! | `GET /strong` | protect + require_amr(otp) |
//! | `POST /users/{userId}/notes` | protect + authorize(user, admin) + permit(no `X-Deny`) + require_self |
//! | `POST /orders` | protect + idempotency + `Json<Order>`; item `fail` → 409 `OUT_OF_STOCK`, `slow` sleeps, `gated` waits for its [`Gates`] run to be opened and fails (409) on its first run |
//! | `POST /echo` | `Json<Value>` echoed |
//! | `GET /search` | `Query<Search>` |
//! | `GET /panic` | panics |
//! | `GET /payment` | 402 `PAYMENT_FAILED` |

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use sentri_core::http::guard::Guard;
use sentri_core::http::{IdempotencyKey, method_not_allowed_response, not_found_response};
use sentri_core::{AuthMethod, Sentri};
use serde_json::{Value, json};

/// An order of `POST /orders`.
#[derive(Debug, serde::Deserialize)]
struct Order {
    item: String,
    quantity: u32,
}

/// The query of `GET /search`.
#[derive(Debug, serde::Deserialize)]
struct Search {
    q: String,
    page: u32,
}

/// Runs of the item `gated` of `POST /orders`: each run waits until the
/// test opens it, so a scenario decides when each request finishes.
#[derive(Debug, Default)]
pub struct Gates {
    runs: AtomicUsize,
    gates: std::sync::Mutex<Vec<Arc<tokio::sync::Semaphore>>>,
}

impl Gates {
    fn gate(&self, run: usize) -> Arc<tokio::sync::Semaphore> {
        let mut gates = self.gates.lock().expect("gates");
        while gates.len() < run {
            gates.push(Arc::new(tokio::sync::Semaphore::new(0)));
        }
        gates[run - 1].clone()
    }

    /// How many gated runs have started.
    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// Let gated run `run` (1-based) finish.
    pub fn open(&self, run: usize) {
        self.gate(run).add_permits(1);
    }

    /// Wait until `n` gated runs have started.
    ///
    /// # Panics
    /// After 30 s.
    pub async fn wait_runs(&self, n: usize) {
        for _ in 0..3000 {
            if self.runs() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("gated run {n} did not start");
    }

    /// In the handler: count the run and wait for its gate. The first run
    /// fails.
    async fn pass(&self) -> bool {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(permit) = self.gate(run).acquire().await {
            permit.forget();
        }
        run != 1
    }
}

fn order_data(n: usize, order: &Order, key: Option<String>) -> Value {
    json!({"n": n, "item": order.item, "quantity": order.quantity, "key": key})
}

async fn order_delay(order: &Order) {
    if order.item == "slow" {
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

fn denied(headers: &http::HeaderMap) -> bool {
    headers.contains_key("x-deny")
}

/// The step-up guard of `/recent`: authenticated at most 10 minutes ago by
/// the server's (manual) clock.
fn recent_auth(s: &Sentri) -> Guard {
    Guard::require_recent_auth_by(Duration::from_secs(600), s.clock().clone())
}

pub(crate) fn axum_app(s: &Sentri, gates: Arc<Gates>) -> axum::Router {
    use axum::body::Body;
    use axum::routing::{get, post};
    use axum::{Extension, Router};
    use sentri_axum::{
        AuthUser, CatchPanicLayer, Json, MaybeAuthUser, PermitRequest, Query, SentriError,
        authorize, envelope, idempotency, permit, protect, protect_optional, require_self,
    };

    let to_axum = |res: http::Response<bytes::Bytes>| res.map(Body::from);
    let counter = Arc::new(AtomicUsize::new(0));
    Router::new()
        .nest("/auth", sentri_axum::router(s.clone()))
        .route(
            "/profile",
            get(|u: AuthUser| async move {
                envelope(StatusCode::OK, "ok", json!({"identifier": u.identifier()}))
            })
            .route_layer(protect(s).auth_prefix("/auth")),
        )
        .route(
            "/feed",
            get(|u: MaybeAuthUser| async move {
                let who = u.0.map(|u| u.identifier().to_owned());
                envelope(StatusCode::OK, "ok", json!({"identifier": who}))
            })
            .route_layer(protect_optional(s).auth_prefix("/auth")),
        )
        .route(
            "/admin",
            get(|| async { envelope(StatusCode::OK, "admin area", json!({})) })
                .route_layer(authorize(s, ["admin"]))
                .route_layer(protect(s).auth_prefix("/auth")),
        )
        .route(
            "/users/{userId}/notes",
            post(|u: AuthUser, Json(v): Json<Value>| async move {
                envelope(
                    StatusCode::CREATED,
                    "noted",
                    json!({"by": u.id(), "note": v}),
                )
            })
            .route_layer(require_self("userId"))
            .route_layer(permit(
                |req: PermitRequest| async move { !denied(&req.headers) },
            ))
            .route_layer(authorize(s, ["user", "admin"]))
            .route_layer(protect(s).auth_prefix("/auth")),
        )
        .route(
            "/orders",
            post(
                move |key: Option<Extension<IdempotencyKey>>, Json(order): Json<Order>| {
                    let counter = counter.clone();
                    let gates = gates.clone();
                    async move {
                        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                        order_delay(&order).await;
                        if order.item == "gated" && !gates.pass().await {
                            return Err(SentriError::app("OUT_OF_STOCK", 409, "out of stock"));
                        }
                        if order.item == "fail" {
                            return Err(SentriError::app("OUT_OF_STOCK", 409, "out of stock"));
                        }
                        let key = key.map(|k| k.0.0.clone());
                        Ok(envelope(
                            StatusCode::CREATED,
                            "created",
                            order_data(n, &order, key),
                        ))
                    }
                },
            )
            .route_layer(idempotency(s))
            .route_layer(protect(s).auth_prefix("/auth")),
        )
        .route(
            "/recent",
            get(|| async { envelope(StatusCode::OK, "recent enough", json!({})) })
                .route_layer(sentri_axum::GuardLayer::from(recent_auth(s)))
                .route_layer(protect(s).auth_prefix("/auth")),
        )
        .route(
            "/strong",
            get(|| async { envelope(StatusCode::OK, "strong enough", json!({})) })
                .route_layer(sentri_axum::require_amr(&[AuthMethod::Otp]))
                .route_layer(protect(s).auth_prefix("/auth")),
        )
        .route("/echo", post(|Json(v): Json<Value>| async move { Json(v) }))
        .route(
            "/search",
            get(|Query(q): Query<Search>| async move {
                envelope(StatusCode::OK, "ok", json!({"q": q.q, "page": q.page}))
            }),
        )
        .route(
            "/panic",
            get(|| async {
                let boom = true;
                if boom {
                    panic!("boom: secret detail");
                }
                "unreachable"
            }),
        )
        .route(
            "/payment",
            get(|| async {
                Err::<(), _>(SentriError::app("PAYMENT_FAILED", 402, "card declined"))
            }),
        )
        .fallback(move || async move { to_axum(not_found_response()) })
        .method_not_allowed_fallback(move || async move { to_axum(method_not_allowed_response()) })
        .layer(CatchPanicLayer::new(s))
}

mod poem_handlers {
    use super::*;
    use poem::web::Data;
    use poem::{Request, Response, handler};
    use sentri_poem::{AuthUser, Json, MaybeAuthUser, Query, SentriError, envelope};

    #[handler]
    pub(crate) fn profile(u: AuthUser) -> Response {
        envelope(StatusCode::OK, "ok", json!({"identifier": u.identifier()}))
    }

    #[handler]
    pub(crate) fn feed(u: MaybeAuthUser) -> Response {
        let who = u.0.map(|u| u.identifier().to_owned());
        envelope(StatusCode::OK, "ok", json!({"identifier": who}))
    }

    #[handler]
    pub(crate) fn recent() -> Response {
        envelope(StatusCode::OK, "recent enough", json!({}))
    }

    #[handler]
    pub(crate) fn strong() -> Response {
        envelope(StatusCode::OK, "strong enough", json!({}))
    }

    #[handler]
    pub(crate) fn admin() -> Response {
        envelope(StatusCode::OK, "admin area", json!({}))
    }

    #[handler]
    pub(crate) fn notes(u: AuthUser, Json(v): Json<Value>) -> Response {
        envelope(
            StatusCode::CREATED,
            "noted",
            json!({"by": u.id(), "note": v}),
        )
    }

    #[handler]
    pub(crate) async fn orders(
        req: &Request,
        counter: Data<&Arc<AtomicUsize>>,
        gates: Data<&Arc<Gates>>,
        Json(order): Json<Order>,
    ) -> Result<Response, SentriError> {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        order_delay(&order).await;
        if order.item == "gated" && !gates.pass().await {
            return Err(SentriError::app("OUT_OF_STOCK", 409, "out of stock"));
        }
        if order.item == "fail" {
            return Err(SentriError::app("OUT_OF_STOCK", 409, "out of stock"));
        }
        let key = req
            .extensions()
            .get::<IdempotencyKey>()
            .map(|k| k.0.clone());
        Ok(envelope(
            StatusCode::CREATED,
            "created",
            order_data(n, &order, key),
        ))
    }

    #[handler]
    pub(crate) fn echo(Json(v): Json<Value>) -> Json<Value> {
        Json(v)
    }

    #[handler]
    pub(crate) fn search(Query(q): Query<Search>) -> Response {
        envelope(StatusCode::OK, "ok", json!({"q": q.q, "page": q.page}))
    }

    #[handler]
    pub(crate) fn panics() -> &'static str {
        let boom = true;
        if boom {
            panic!("boom: secret detail");
        }
        "unreachable"
    }

    #[handler]
    pub(crate) fn payment() -> Result<(), SentriError> {
        Err(SentriError::app("PAYMENT_FAILED", 402, "card declined"))
    }
}

pub(crate) fn poem_app(s: &Sentri, gates: Arc<Gates>) -> poem::endpoint::BoxEndpoint<'static> {
    use poem::{EndpointExt, Route, get, post};
    use poem_handlers::*;
    use sentri_poem::{
        EnvelopeErrors, PermitRequest, authorize, catch_panic, idempotency, permit, protect,
        protect_optional, require_self,
    };

    let counter = Arc::new(AtomicUsize::new(0));
    Route::new()
        .nest("/auth", sentri_poem::routes(s.clone()))
        .at(
            "/profile",
            get(profile).with(protect(s).auth_prefix("/auth")),
        )
        .at(
            "/feed",
            get(feed).with(protect_optional(s).auth_prefix("/auth")),
        )
        .at(
            "/recent",
            get(recent)
                .with(sentri_poem::Guard::from(recent_auth(s)))
                .with(protect(s).auth_prefix("/auth")),
        )
        .at(
            "/strong",
            get(strong)
                .with(sentri_poem::require_amr(&[AuthMethod::Otp]))
                .with(protect(s).auth_prefix("/auth")),
        )
        .at(
            "/admin",
            get(admin)
                .with(authorize(s, ["admin"]))
                .with(protect(s).auth_prefix("/auth")),
        )
        .at(
            "/users/:userId/notes",
            post(notes)
                .with(require_self("userId"))
                .with(permit(
                    |req: PermitRequest| async move { !denied(&req.headers) },
                ))
                .with(authorize(s, ["user", "admin"]))
                .with(protect(s).auth_prefix("/auth")),
        )
        .at(
            "/orders",
            post(orders)
                .data(counter)
                .data(gates)
                .with(idempotency(s))
                .with(protect(s).auth_prefix("/auth")),
        )
        .at("/echo", post(echo))
        .at("/search", get(search))
        .at("/panic", get(panics))
        .at("/payment", get(payment))
        .with(EnvelopeErrors)
        .with(catch_panic(s))
        .boxed()
}
