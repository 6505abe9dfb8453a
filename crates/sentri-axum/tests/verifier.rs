//! `protect_with_verifier`: protect, the guards and the extractors on any
//! `AccessVerifier`: a resource server's `JwksVerifier` (client mode, F-16)
//! and `Sentri` itself answer like `protect`.

mod common;

use std::sync::Arc;

use std::future::Future;
use std::pin::Pin;

use axum::Router;
use axum::body::Body;
use axum::routing::{get as get_route, post as post_route};
use common::*;
use http::Request;
use sentri_axum::{
    AuthUser, MaybeAuthUser, PermitRequest, authorize_roles, permit, protect,
    protect_with_verifier, require_self,
};
use sentri_core::client::{JwksDocument, JwksSource, JwksVerifier, VerifierConfig};
use sentri_core::config::{CookieConfig, CookieTransport};
use sentri_core::password::PasswordPolicy;
use sentri_core::{AccessVerifier, Config, Sentri};
use serde_json::json;

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

async fn auth_server() -> Env {
    env_with(
        Config::builder()
            .valid_roles(["user", "admin"])
            .password_policy(PasswordPolicy::argon2id(256, 1, 1)),
    )
    .await
}

async fn jwks_verifier(env: &Env) -> Arc<dyn AccessVerifier> {
    let verifier = JwksVerifier::new(
        Arc::new(Published(env.sentri.clone())),
        VerifierConfig {
            clock: env.clock.clone(),
            ..VerifierConfig::default()
        },
    )
    .await
    .unwrap();
    Arc::new(verifier)
}

/// A resource server's routes, every one behind `protect_with_verifier`.
fn resource_app(verifier: Arc<dyn AccessVerifier>) -> Router {
    let protected = Router::new()
        .route(
            "/me",
            get_route(|user: AuthUser| async move { user.identifier().to_owned() }),
        )
        .route(
            "/admin",
            get_route(|| async { "admin area" }).route_layer(authorize_roles(["admin"])),
        )
        .route(
            "/users/{userId}",
            get_route(|| async { "own record" }).route_layer(require_self("userId")),
        )
        .route(
            "/notes/{owner}",
            get_route(|| async { "note" }).route_layer(permit(|req: PermitRequest| async move {
                req.param("owner") == Some(req.user.identifier())
            })),
        )
        .route("/write", post_route(|| async { "written" }))
        .route_layer(
            protect_with_verifier(verifier.clone()).cookies(CookieConfig {
                transport: CookieTransport::Both,
                allowed_origins: vec!["https://app.example.com".to_owned()],
                ..CookieConfig::default()
            }),
        );
    let optional = Router::new()
        .route(
            "/maybe",
            get_route(|MaybeAuthUser(user): MaybeAuthUser| async move {
                user.map_or_else(|| "anonymous".to_owned(), |u| u.identifier().to_owned())
            }),
        )
        .route_layer(protect_with_verifier(verifier).optional());
    protected.merge(optional)
}

type MakeRequest = fn() -> Request<Body>;

async fn text(app: &Router, req: Request<Body>) -> (u16, String) {
    let res = send(app, req).await;
    (res.status, String::from_utf8_lossy(&res.raw).into_owned())
}

fn with_cookie(method: &str, uri: &str, cookie: &str, origin: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("cookie", format!("access_token={cookie}"));
    if let Some(origin) = origin {
        b = b.header("origin", origin);
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_jwks_verifier_backs_protect_and_the_guards() {
    let env = auth_server().await;
    let app = resource_app(jwks_verifier(&env).await);

    let ada = signed_in(&env, "ada@example.com").await;
    let ada_id = ada.data()["user"]["id"].as_str().unwrap().to_owned();
    let ada = access(&ada);
    env.sentri
        .create_user("root@example.com", PASSWORD, vec!["admin".to_owned()])
        .await
        .unwrap();
    let root = login(&env, "root@example.com").await;
    let root = access(&root);

    assert_eq!(
        text(&app, get("/me", Some(&ada))).await,
        (200, "ada@example.com".to_owned())
    );
    // authorize
    send(&app, get("/admin", Some(&ada)))
        .await
        .assert_error(403, "FORBIDDEN", "forbidden");
    assert_eq!(text(&app, get("/admin", Some(&root))).await.0, 200);
    // require_self
    assert_eq!(
        text(&app, get(&format!("/users/{ada_id}"), Some(&ada)))
            .await
            .0,
        200
    );
    assert_eq!(
        send(&app, get(&format!("/users/{ada_id}"), Some(&root)))
            .await
            .status,
        403
    );
    // permit
    assert_eq!(
        text(&app, get("/notes/ada@example.com", Some(&ada)))
            .await
            .0,
        200
    );
    assert_eq!(
        send(&app, get("/notes/root@example.com", Some(&ada)))
            .await
            .status,
        403
    );
    // optional
    assert_eq!(
        text(&app, get("/maybe", Some(&ada))).await,
        (200, "ada@example.com".to_owned())
    );
    assert_eq!(
        text(&app, get("/maybe", None)).await,
        (200, "anonymous".to_owned())
    );
    assert_eq!(
        text(&app, get("/maybe", Some("forged"))).await,
        (200, "anonymous".to_owned())
    );

    // The access cookie, read like protect reads it; CSRF on writes.
    assert_eq!(
        text(&app, with_cookie("GET", "/me", &ada, None)).await,
        (200, "ada@example.com".to_owned())
    );
    let res = send(
        &app,
        with_cookie("POST", "/write", &ada, Some("https://evil.example")),
    )
    .await;
    assert_eq!(res.status, 403, "{:?}", res.body);
    assert_eq!(
        text(
            &app,
            with_cookie("POST", "/write", &ada, Some("https://app.example.com"))
        )
        .await
        .0,
        200
    );
    // The bearer header wins over the cookie.
    let req = Request::builder()
        .uri("/me")
        .header("authorization", format!("Bearer {root}"))
        .header("cookie", format!("access_token={ada}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(text(&app, req).await.1, "root@example.com");
}

#[tokio::test]
async fn missing_bad_and_expired_tokens_answer_like_protect() {
    let env = auth_server().await;
    let verifier = jwks_verifier(&env).await;
    let app = resource_app(verifier);
    let server_side = Router::new()
        .route(
            "/me",
            get_route(|user: AuthUser| async move { user.id().to_string() }),
        )
        .route_layer(protect(&env.sentri));
    let token = access(&signed_in(&env, "eve@example.com").await);

    let empty_bearer = || {
        Request::builder()
            .uri("/me")
            .header("authorization", "Bearer ")
            .body(Body::empty())
            .unwrap()
    };
    let cases: [(&str, MakeRequest); 3] = [
        ("no token", || get("/me", None)),
        ("garbage", || get("/me", Some("not.a.token"))),
        ("empty bearer", empty_bearer),
    ];
    for (what, req) in cases {
        let ours = send(&app, req()).await;
        let theirs = send(&server_side, req()).await;
        assert_eq!(ours.status, theirs.status, "{what}");
        assert_eq!(ours.body, theirs.body, "{what}");
        // The RFC 6750 challenge, as in server mode.
        let challenge = ours.header("www-authenticate");
        assert_eq!(challenge, theirs.header("www-authenticate"), "{what}");
        let expected = if what == "no token" {
            "Bearer"
        } else {
            r#"Bearer error="invalid_token""#
        };
        assert_eq!(challenge, Some(expected), "{what}");
    }
    send(&app, get("/me", None))
        .await
        .assert_error(401, "UNAUTHORIZED", "authentication required");

    env.clock.advance(std::time::Duration::from_secs(16 * 60));
    let ours = send(&app, get("/me", Some(&token))).await;
    assert_eq!(ours.body["code"], "TOKEN_EXPIRED");
    assert_eq!(ours.status, 401);
    assert!(
        ours.header("www-authenticate")
            .unwrap()
            .starts_with(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(
        send(&server_side, get("/me", Some(&token))).await.body,
        ours.body
    );
}

#[tokio::test]
async fn sentri_itself_is_a_verifier_with_its_session_check() {
    let env = auth_server().await;
    let app = resource_app(Arc::new(env.sentri.clone()));
    let token = access(&signed_in(&env, "sam@example.com").await);
    assert_eq!(text(&app, get("/me", Some(&token))).await.0, 200);
    let out = send(
        &env.app,
        with_body("POST", "/auth/logout-all", Some(&token), json!({})),
    )
    .await;
    assert_eq!(out.status, 200, "{:?}", out.body);
    assert_eq!(send(&app, get("/me", Some(&token))).await.status, 401);
}
