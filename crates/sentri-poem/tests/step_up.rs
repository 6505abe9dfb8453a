//! The step-up guards `require_recent_auth` and `require_amr` on an
//! application's routes. The services run on a clock an hour behind the
//! system's, so a token they issue now is valid to them and an hour old to
//! the guard, which reads the system clock.

use std::sync::Arc;
use std::time::Duration;

use poem::endpoint::BoxEndpoint;
use poem::test::TestClient;
use poem::{EndpointExt, Route, get, handler};
use sentri_core::clock::Clock;
use sentri_core::password::PasswordPolicy;
use sentri_core::store::Stores;
use sentri_core::{AuthMethod, Config, Sentri};
use sentri_memory::MemoryStore;
use sentri_poem::{EnvelopeErrors, protect, require_amr, require_recent_auth};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

#[handler]
fn ok() -> &'static str {
    "ok"
}

async fn hour_behind() -> TestClient<BoxEndpoint<'static>> {
    let clock = Clock::manual(chrono::Utc::now() - chrono::Duration::hours(1));
    let config = Config::builder()
        .hs256("test-secret-test-secret-test-secret!")
        .valid_roles(["user", "admin"])
        .password_policy(PasswordPolicy::argon2id(256, 1, 1))
        .build()
        .unwrap();
    let stores = Stores::from_backend(Arc::new(MemoryStore::new()));
    let s = Sentri::with_clock(config, stores, clock).await.unwrap();
    let app = Route::new()
        .nest("/auth", sentri_poem::routes(s.clone()))
        .at(
            "/within-10-minutes",
            get(ok)
                .with(require_recent_auth(Duration::from_secs(600)))
                .with(protect(&s)),
        )
        .at(
            "/within-2-hours",
            get(ok)
                .with(require_recent_auth(Duration::from_secs(7200)))
                .with(protect(&s)),
        )
        .at(
            "/otp",
            get(ok)
                .with(require_amr(&[AuthMethod::Otp]))
                .with(protect(&s)),
        )
        .at(
            "/password-or-passkey",
            get(ok)
                .with(require_amr(&[AuthMethod::Passkey, AuthMethod::Password]))
                .with(protect(&s)),
        )
        .with(EnvelopeErrors)
        .boxed();
    TestClient::new(app)
}

#[tokio::test]
async fn an_old_authentication_or_a_missing_method_needs_a_step_up() {
    let cli = hour_behind().await;
    let creds = json!({"identifier": "step@example.com", "password": PASSWORD});
    cli.post("/auth/register")
        .body_json(&creds)
        .send()
        .await
        .assert_status(http::StatusCode::CREATED);
    let login = cli.post("/auth/login").body_json(&creds).send().await;
    login.assert_status_is_ok();
    let login: Value = login.0.into_body().into_json().await.unwrap();
    let token = login["data"]["accessToken"].as_str().unwrap().to_owned();
    for (path, status) in [
        ("/within-10-minutes", 401),
        ("/within-2-hours", 200),
        ("/otp", 401),
        ("/password-or-passkey", 200),
    ] {
        let res = cli
            .get(path)
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await;
        assert_eq!(res.0.status().as_u16(), status, "{path}");
        if status == 401 {
            let challenge = res.0.headers()["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.contains("insufficient_user_authentication"),
                "{path}"
            );
            let body: Value = res.0.into_body().into_json().await.unwrap();
            assert_eq!(body["code"], "REAUTH_REQUIRED", "{path}");
        }
    }
    let res = cli.get("/within-2-hours").send().await;
    let body: Value = res.0.into_body().into_json().await.unwrap();
    assert_eq!(body["code"], "UNAUTHORIZED");
}
