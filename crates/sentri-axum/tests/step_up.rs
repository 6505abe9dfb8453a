//! The step-up guards `require_recent_auth` and `require_amr` on an
//! application's routes. The services run on a clock an hour behind the
//! system's, so a token they issue now is valid to them and an hour old to
//! the guard, which reads the system clock.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::MockConnectInfo;
use axum::routing::get as rget;
use common::*;
use sentri_axum::{protect, require_amr, require_recent_auth};
use sentri_core::clock::Clock;
use sentri_core::store::Stores;
use sentri_core::{AuthMethod, Sentri};
use sentri_memory::MemoryStore;

async fn hour_behind() -> Env {
    let clock = Clock::manual(chrono::Utc::now() - chrono::Duration::hours(1));
    let stores = Stores::from_backend(Arc::new(MemoryStore::new()));
    let sentri = Sentri::with_clock(base().build().unwrap(), stores, clock.clone())
        .await
        .unwrap();
    let s = &sentri;
    let app = Router::new()
        .nest("/auth", sentri_axum::router(s.clone()))
        .route(
            "/within-10-minutes",
            rget(|| async { "ok" })
                .route_layer(require_recent_auth(Duration::from_secs(600)))
                .route_layer(protect(s)),
        )
        .route(
            "/within-2-hours",
            rget(|| async { "ok" })
                .route_layer(require_recent_auth(Duration::from_secs(7200)))
                .route_layer(protect(s)),
        )
        .route(
            "/otp",
            rget(|| async { "ok" })
                .route_layer(require_amr(&[AuthMethod::Otp]))
                .route_layer(protect(s)),
        )
        .route(
            "/password-or-passkey",
            rget(|| async { "ok" })
                .route_layer(require_amr(&[AuthMethod::Passkey, AuthMethod::Password]))
                .route_layer(protect(s)),
        )
        .layer(MockConnectInfo(PEER.parse::<SocketAddr>().unwrap()));
    Env { sentri, clock, app }
}

#[tokio::test]
async fn an_old_authentication_or_a_missing_method_needs_a_step_up() {
    let env = hour_behind().await;
    let token = access(&signed_in(&env, "step@example.com").await);
    for (path, status) in [
        ("/within-10-minutes", 401),
        ("/within-2-hours", 200),
        ("/otp", 401),
        ("/password-or-passkey", 200),
    ] {
        let res = send(&env.app, get(path, Some(&token))).await;
        assert_eq!(res.status, status, "{path}: {:?}", res.body);
        if status == 401 {
            assert_eq!(res.body["code"], "REAUTH_REQUIRED", "{path}");
            assert!(
                res.header("www-authenticate")
                    .is_some_and(|h| h.contains("insufficient_user_authentication")),
                "{path}: RFC 9470 challenge"
            );
        }
    }
    // No token at all is still UNAUTHORIZED.
    send(&env.app, get("/within-2-hours", None))
        .await
        .assert_error(401, "UNAUTHORIZED", "authentication required");
}
