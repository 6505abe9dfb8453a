//! `protect_with_verifier` on poem: a resource server verifying the auth
//! server's tokens from its published keys (client mode, F-16), with the
//! guards and extractors working as behind `protect`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use poem::test::TestClient;
use poem::{EndpointExt, Route, get, handler};
use sentri_core::client::{JwksDocument, JwksSource, JwksVerifier, VerifierConfig};
use sentri_core::password::PasswordPolicy;
use sentri_core::store::Stores;
use sentri_core::{AccessVerifier, ClientInfo, Config, LoginInput, Sentri};
use sentri_memory::MemoryStore;
use sentri_poem::{AuthUser, authorize_roles, protect_with_verifier};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";

/// The auth server's published keys, as a resource server would fetch them.
struct Published(Sentri);

// `JwksSource` is an `async_trait`; this is its expanded signature.
impl JwksSource for Published {
    fn fetch<'a, 'b>(
        &'a self,
    ) -> Pin<Box<dyn Future<Output = sentri_core::Result<JwksDocument>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        let keys = (*self.0.jwks()).clone();
        Box::pin(async move {
            Ok(JwksDocument {
                keys,
                max_age: None,
            })
        })
    }
}

#[handler]
fn me(user: AuthUser) -> String {
    user.identifier().to_owned()
}

#[handler]
fn admin_area() -> &'static str {
    "admin area"
}

async fn token(sentri: &Sentri, identifier: &str, roles: Vec<String>) -> String {
    sentri
        .create_user(identifier, PASSWORD, roles)
        .await
        .unwrap();
    sentri
        .login(LoginInput {
            identifier: identifier.into(),
            password: PASSWORD.into(),
            client: ClientInfo::default(),
        })
        .await
        .unwrap()
        .authenticated()
        .unwrap()
        .tokens
        .access_token
}

#[tokio::test]
async fn a_jwks_verifier_backs_protect_and_the_guards() {
    let config = Config::builder()
        .valid_roles(["user", "admin"])
        .password_policy(PasswordPolicy::argon2id(256, 1, 1))
        .build()
        .unwrap();
    let sentri = Sentri::new(config, Stores::from_backend(Arc::new(MemoryStore::new())))
        .await
        .unwrap();
    let verifier: Arc<dyn AccessVerifier> = Arc::new(
        JwksVerifier::new(
            Arc::new(Published(sentri.clone())),
            VerifierConfig::default(),
        )
        .await
        .unwrap(),
    );
    let app = Route::new()
        .at("/me", get(me).with(protect_with_verifier(verifier.clone())))
        .at(
            "/admin",
            get(admin_area)
                .with(authorize_roles(["admin"]))
                .with(protect_with_verifier(verifier)),
        );
    let cli = TestClient::new(app);
    let user = token(&sentri, "user@example.com", vec!["user".into()]).await;
    let admin = token(&sentri, "admin@example.com", vec!["admin".into()]).await;

    let res = cli
        .get("/me")
        .header("authorization", format!("Bearer {user}"))
        .send()
        .await;
    res.assert_status_is_ok();
    res.assert_text("user@example.com").await;

    let res = cli.get("/me").send().await;
    res.assert_status(http::StatusCode::UNAUTHORIZED);
    res.assert_header("www-authenticate", "Bearer");
    let body: Value =
        serde_json::from_str(&res.0.into_body().into_string().await.unwrap()).unwrap();
    assert_eq!(body["code"], "UNAUTHORIZED");

    let res = cli
        .get("/me")
        .header("authorization", "Bearer a.b.c")
        .send()
        .await;
    res.assert_header("www-authenticate", r#"Bearer error="invalid_token""#);
    let body: Value =
        serde_json::from_str(&res.0.into_body().into_string().await.unwrap()).unwrap();
    assert_eq!(body["code"], "TOKEN_INVALID");

    let res = cli
        .get("/admin")
        .header("authorization", format!("Bearer {user}"))
        .send()
        .await;
    res.assert_status(http::StatusCode::FORBIDDEN);
    let res = cli
        .get("/admin")
        .header("authorization", format!("Bearer {admin}"))
        .send()
        .await;
    res.assert_status_is_ok();
    res.assert_text("admin area").await;
}
