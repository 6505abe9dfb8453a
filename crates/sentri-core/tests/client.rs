//! Client mode (F-16): a resource server verifying an auth server's tokens
//! from its published key set, without a database.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use sentri_core::client::{JwksDocument, JwksSource, JwksVerifier, VerifierConfig};
use sentri_core::{Algorithm, Config, ErrorCode, Sentri};

/// Serves the auth server's current JWKS, like `GET /auth/keys`, counting
/// fetches; optionally with extra keys mixed in.
struct Published {
    sentri: Sentri,
    fetches: AtomicUsize,
    extra: Vec<serde_json::Value>,
}

#[async_trait::async_trait]
impl JwksSource for Published {
    async fn fetch(&self) -> sentri_core::Result<JwksDocument> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let mut doc = serde_json::to_value(&*self.sentri.jwks()).unwrap();
        for k in &self.extra {
            doc["keys"].as_array_mut().unwrap().push(k.clone());
        }
        Ok(JwksDocument {
            keys: serde_json::from_value(doc).unwrap(),
            max_age: Some(Duration::from_secs(600)),
        })
    }
}

async fn auth_server(alg: Algorithm) -> Env {
    let b = Config::builder()
        .algorithm(alg)
        .valid_roles(["user", "admin"])
        .password_policy(fast_policy());
    let b = if alg == Algorithm::HS256 {
        b.secret(SECRET)
    } else {
        b
    };
    env_with(b).await
}

async fn verifier_for(
    env: &Env,
    min_refetch: Duration,
    extra: Vec<serde_json::Value>,
) -> (JwksVerifier, Arc<Published>) {
    let source = Arc::new(Published {
        sentri: env.sentri.clone(),
        fetches: AtomicUsize::new(0),
        extra,
    });
    let config = VerifierConfig {
        min_refetch_interval: min_refetch,
        clock: env.clock.clone(),
        ..VerifierConfig::default()
    };
    (
        JwksVerifier::new(source.clone(), config).await.unwrap(),
        source,
    )
}

fn forge(token: &str, header: serde_json::Value, key: &jsonwebtoken::EncodingKey) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let mut h: jsonwebtoken::Header = serde_json::from_value(header).unwrap();
    h.typ = Some("JWT".into());
    jsonwebtoken::encode(&h, &payload, key).unwrap()
}

#[tokio::test]
async fn tokens_of_the_auth_server_verify_for_every_asymmetric_algorithm() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let env = auth_server(alg).await;
        let out = signed_in(&env, "client@example.com").await;
        let (verifier, _) = verifier_for(&env, Duration::from_secs(30), vec![]).await;
        let user = verifier
            .verify_access(&out.tokens.access_token)
            .await
            .unwrap();
        assert_eq!(user.id(), out.user.id);
        assert_eq!(user.session_id(), out.session_id);
        assert!(user.has_role("user"), "{alg}");
    }
}

#[tokio::test]
async fn after_a_rotation_old_and_new_tokens_verify() {
    let env = auth_server(Algorithm::EdDSA).await;
    let old = signed_in(&env, "rotation@example.com").await;
    let (verifier, source) = verifier_for(&env, Duration::ZERO, vec![]).await;
    verifier
        .verify_access(&old.tokens.access_token)
        .await
        .unwrap();
    env.sentri.rotate_signing_key().await.unwrap();
    let new = env
        .sentri
        .login(login_input("rotation@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
    // The new kid is unknown to the verifier: it refetches once.
    verifier
        .verify_access(&new.tokens.access_token)
        .await
        .unwrap();
    verifier
        .verify_access(&old.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn refetching_on_unknown_kids_is_rate_limited() {
    let env = auth_server(Algorithm::EdDSA).await;
    let (verifier, source) = verifier_for(&env, Duration::from_secs(3600), vec![]).await;
    env.sentri.rotate_signing_key().await.unwrap();
    let out = signed_in(&env, "ratelimit@example.com").await;
    for _ in 0..5 {
        let err = verifier
            .verify_access(&out.tokens.access_token)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenInvalid);
    }
    // Only the initial fetch: an attacker's random kids cannot hammer the server.
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn forged_tokens_fail_with_the_right_codes() {
    let env = auth_server(Algorithm::EdDSA).await;
    let out = signed_in(&env, "forged@example.com").await;
    let (verifier, _) = verifier_for(&env, Duration::from_secs(30), vec![]).await;
    let jwks = serde_json::to_value(&*env.sentri.jwks()).unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();

    // alg none
    let (h, p) = {
        let mut it = out.tokens.access_token.split('.');
        (it.next().unwrap().to_owned(), it.next().unwrap().to_owned())
    };
    let _ = h;
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let none = format!("{none_header}.{p}.");
    // HMAC keyed with the published public key
    let hmac = forge(
        &out.tokens.access_token,
        serde_json::json!({"alg": "HS256", "kid": kid}),
        &jsonwebtoken::EncodingKey::from_secret(&URL_SAFE_NO_PAD.decode(&x).unwrap()),
    );
    // Unknown kid, signed by another server's key.
    let other = auth_server(Algorithm::EdDSA).await;
    let foreign = signed_in(&other, "forged@example.com").await;
    for bad in [
        none,
        hmac,
        foreign.tokens.access_token.clone(),
        "a.b.c".to_owned(),
    ] {
        let err = verifier.verify_access(&bad).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenInvalid, "{bad}");
    }
    // Expired.
    env.clock.advance(Duration::from_secs(16 * 60));
    let err = verifier
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenExpired);
}

#[tokio::test]
async fn symmetric_keys_in_a_key_set_are_ignored() {
    let env = auth_server(Algorithm::EdDSA).await;
    let out = signed_in(&env, "oct@example.com").await;
    let secret = b"a-shared-secret-a-shared-secret!!";
    let oct = serde_json::json!({"kty": "oct", "kid": "shared", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(secret)});
    let (verifier, _) = verifier_for(&env, Duration::from_secs(30), vec![oct]).await;
    let forged = forge(
        &out.tokens.access_token,
        serde_json::json!({"alg": "HS256", "kid": "shared"}),
        &jsonwebtoken::EncodingKey::from_secret(secret),
    );
    let err = verifier.verify_access(&forged).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
    assert!(!verifier.kids().contains(&"shared".to_owned()));
}

#[tokio::test]
async fn an_hmac_auth_server_publishes_nothing_to_verify_with() {
    let env = auth_server(Algorithm::HS256).await;
    let out = signed_in(&env, "hmac@example.com").await;
    let (verifier, _) = verifier_for(&env, Duration::from_secs(30), vec![]).await;
    let err = verifier
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
}

/// A fixed Ed25519 key (PKCS#8), so tests can sign tokens of their own as
/// the auth server would.
const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEILEU3PwSFc9523s+dj6eNyW15z1vy0cHZQM8nJ4Xs4zD
-----END PRIVATE KEY-----
";

/// An auth server signing with [`ED25519_PEM`], with `iss` and `aud`.
async fn pinned_auth_server() -> Env {
    env_with(
        Config::builder()
            .algorithm(Algorithm::EdDSA)
            .private_key_pem(ED25519_PEM)
            .issuer("https://auth.example")
            .audience("api")
            .valid_roles(["user", "admin"])
            .password_policy(fast_policy()),
    )
    .await
}

async fn pinned_verifier(env: &Env, issuer: &str, audience: &str) -> JwksVerifier {
    let source = Arc::new(Published {
        sentri: env.sentri.clone(),
        fetches: AtomicUsize::new(0),
        extra: vec![],
    });
    let config = VerifierConfig {
        issuer: Some(issuer.to_owned()),
        audience: Some(audience.to_owned()),
        clock: env.clock.clone(),
        ..VerifierConfig::default()
    };
    JwksVerifier::new(source, config).await.unwrap()
}

/// `payload` signed with [`ED25519_PEM`] under `header` (plus the kid).
fn sign_ed(env: &Env, mut header: serde_json::Value, payload: &serde_json::Value) -> String {
    header["alg"] = "EdDSA".into();
    header["kid"] = env.sentri.jwks().keys[0]
        .common
        .key_id
        .clone()
        .unwrap()
        .into();
    let header: jsonwebtoken::Header = serde_json::from_value(header).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ed_pem(ED25519_PEM.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, payload, &key).unwrap()
}

fn payload_of(token: &str) -> serde_json::Value {
    let p = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

#[tokio::test]
async fn client_mode_accepts_at_jwt_and_earlier_tokens_with_the_server_checks() {
    let env = pinned_auth_server().await;
    let out = signed_in(&env, "checks@example.com").await;
    let verifier = pinned_verifier(&env, "https://auth.example", "api").await;
    let user = verifier
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(user.id(), out.user.id);
    assert!(user.auth_time().is_some());

    let payload = payload_of(&out.tokens.access_token);
    // The earlier form: header typ JWT, claim typ access, no jti.
    let mut legacy = payload.clone();
    legacy.as_object_mut().unwrap().remove("jti");
    let token = sign_ed(&env, serde_json::json!({"typ": "JWT"}), &legacy);
    verifier.verify_access(&token).await.unwrap();

    let now = env.clock.unix_seconds();
    let with = |claim: &str, value: serde_json::Value| {
        let mut p = payload.clone();
        if value.is_null() {
            p.as_object_mut().unwrap().remove(claim);
        } else {
            p[claim] = value;
        }
        p
    };
    let at_jwt = serde_json::json!({"typ": "at+jwt"});
    let refused = [
        (
            "no aud",
            sign_ed(&env, at_jwt.clone(), &with("aud", serde_json::Value::Null)),
        ),
        (
            "other aud",
            sign_ed(&env, at_jwt.clone(), &with("aud", "other".into())),
        ),
        (
            "no iss",
            sign_ed(&env, at_jwt.clone(), &with("iss", serde_json::Value::Null)),
        ),
        (
            "other iss",
            sign_ed(&env, at_jwt.clone(), &with("iss", "https://evil".into())),
        ),
        (
            "nbf ahead",
            sign_ed(&env, at_jwt.clone(), &with("nbf", (now + 61).into())),
        ),
        (
            "iat ahead",
            sign_ed(&env, at_jwt.clone(), &with("iat", (now + 61).into())),
        ),
        (
            "refresh typ",
            sign_ed(&env, at_jwt.clone(), &with("typ", "refresh".into())),
        ),
        (
            "crit",
            sign_ed(
                &env,
                serde_json::json!({"typ": "at+jwt", "crit": ["exp"]}),
                &payload,
            ),
        ),
        (
            "other typ header",
            sign_ed(&env, serde_json::json!({"typ": "JOSE"}), &payload),
        ),
        (
            "earlier form without the claim",
            sign_ed(
                &env,
                serde_json::json!({"typ": "JWT"}),
                &with("typ", serde_json::Value::Null),
            ),
        ),
    ];
    for (what, token) in refused {
        let err = verifier.verify_access(&token).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenInvalid, "{what}");
    }
    // Within the leeway: accepted.
    let near = sign_ed(&env, at_jwt.clone(), &with("nbf", (now + 60).into()));
    verifier.verify_access(&near).await.unwrap();
    // The refresh token is never an access token.
    let err = verifier
        .verify_access(&out.tokens.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
}

#[tokio::test]
async fn client_mode_pinned_to_another_issuer_or_audience_refuses() {
    let env = pinned_auth_server().await;
    let out = signed_in(&env, "pinned@example.com").await;
    for (iss, aud) in [("https://auth.example", "other"), ("https://evil", "api")] {
        let verifier = pinned_verifier(&env, iss, aud).await;
        let err = verifier
            .verify_access(&out.tokens.access_token)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenInvalid, "{iss} {aud}");
    }
}
