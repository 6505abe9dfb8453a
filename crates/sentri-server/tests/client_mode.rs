//! Client mode (F-16) against a running server: a resource server's
//! `JwksVerifier` over `HttpJwksSource` accepts the server's tokens, keeps
//! accepting old and new tokens across `sentri-server keys rotate`, and
//! refuses forged and expired ones with the right codes.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::*;
use reqwest::Method;
use sentri_core::client::{HttpJwksSource, JwksVerifier, VerifierConfig, cache_control_max_age};
use serde_json::{Value, json};

/// The shortest refetch interval, so a rotated key is fetched in the test.
const REFETCH: Duration = Duration::from_secs(1);

async fn verifier(server: &Server, cache: u64) -> JwksVerifier {
    let source = HttpJwksSource::new(server.url("/auth/keys")).unwrap();
    JwksVerifier::new(
        Arc::new(source),
        VerifierConfig {
            min_refetch_interval: REFETCH,
            verified_token_cache: cache,
            ..VerifierConfig::default()
        },
    )
    .await
    .expect("fetch the JWKS of the running server")
}

fn access_token(reply: &Reply) -> String {
    reply.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

fn part(token: &str, i: usize) -> Value {
    let text = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&B64.decode(text).unwrap()).unwrap()
}

fn encode(value: &Value) -> String {
    B64.encode(serde_json::to_vec(value).unwrap())
}

async fn code_of(verifier: &JwksVerifier, token: &str) -> String {
    match verifier.verify_access(token).await {
        Ok(user) => panic!("accepted a bad token for {}", user.identifier()),
        Err(err) => err.code().as_str().to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tokens_verify_and_keep_verifying_across_a_key_rotation() {
    let dir = TestDir::new("client-rotate");
    let bind = format!("127.0.0.1:{}", free_port());
    let env = [("SENTRI_BIND", bind.as_str())];
    let server = Server::start(&dir, &env);
    let c = client();

    let keys = send(&c, Method::GET, &server.url("/auth/keys"), &[], None).await;
    assert_eq!(keys.status, 200);
    let cache_control = keys
        .header("cache-control")
        .expect("Cache-Control on /auth/keys");
    let max_age = cache_control_max_age(cache_control).expect("a max-age");
    assert!(max_age > Duration::ZERO, "{cache_control}");
    assert_eq!(keys.body["keys"].as_array().unwrap().len(), 1);

    let user = register(&c, &server, "ada@example.com").await;
    let old = access_token(&login(&c, &server, "ada@example.com").await);
    let verifier = verifier(&server, 10_000).await;
    let built = Instant::now();
    let verified = verifier
        .verify_access(&old)
        .await
        .expect("a server token verifies");
    assert_eq!(verified.identifier(), "ada@example.com");
    assert_eq!(verified.id().to_string(), user["id"].as_str().unwrap());
    assert_eq!(verified.roles(), ["user"]);
    assert_eq!(verifier.kids(), [kid_of(&old)]);

    // Rotate with the subcommand on the same database, then restart so the
    // server signs with the new key at once (a running server picks it up
    // within a minute).
    let rotated = run(&dir, &[], &["keys", "rotate"], "");
    assert!(rotated.status.success(), "{}", rotated.stderr);
    let new_kid = rotated.stdout.trim().to_owned();
    assert!(!new_kid.is_empty() && new_kid != kid_of(&old));
    server.stop();
    let server = Server::start(&dir, &env);
    let keys = send(&c, Method::GET, &server.url("/auth/keys"), &[], None).await;
    assert_eq!(
        keys.body["keys"].as_array().unwrap().len(),
        2,
        "{:?}",
        keys.body
    );

    let new = access_token(&login(&c, &server, "ada@example.com").await);
    assert_eq!(kid_of(&new), new_kid);
    // The verifier refetches on the unknown kid (at most once per REFETCH).
    if let Some(wait) = REFETCH.checked_sub(built.elapsed()) {
        tokio::time::sleep(wait).await;
    }
    let user_new = verifier
        .verify_access(&new)
        .await
        .expect("the new token verifies");
    assert_eq!(user_new.id(), verified.id());
    let mut kids = verifier.kids();
    kids.sort();
    let mut expected = vec![kid_of(&old), new_kid];
    expected.sort();
    assert_eq!(kids, expected);
    verifier
        .verify_access(&old)
        .await
        .expect("the old token still verifies");
    // A fresh verifier (no cache) too.
    let fresh = self::verifier(&server, 0).await;
    fresh.verify_access(&old).await.unwrap();
    fresh.verify_access(&new).await.unwrap();

    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_expired_tokens_are_refused() {
    let dir = TestDir::new("client-forged");
    let server = Server::start(&dir, &[("SENTRI_ACCESS_TTL", "2s")]);
    let c = client();
    register(&c, &server, "eve@example.com").await;
    let token = access_token(&login(&c, &server, "eve@example.com").await);
    let verifier = verifier(&server, 10_000).await;
    let uncached = self::verifier(&server, 0).await;
    verifier.verify_access(&token).await.unwrap();

    let header = part(&token, 0);
    let claims = part(&token, 1);
    let signature = token.split('.').nth(2).unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();
    assert_eq!(header["alg"], "EdDSA");

    // alg none, with and without the signature.
    let none = encode(&json!({ "alg": "none", "typ": "JWT", "kid": kid }));
    let body = encode(&claims);
    for forged in [
        format!("{none}.{body}."),
        format!("{none}.{body}.{signature}"),
    ] {
        assert_eq!(code_of(&uncached, &forged).await, "TOKEN_INVALID");
    }

    // HS256 keyed with the published public key (its raw bytes, and the
    // text of its `x`), with and without the kid.
    let jwks = send(&c, Method::GET, &server.url("/auth/keys"), &[], None).await;
    let x = jwks.body["keys"][0]["x"].as_str().unwrap().to_owned();
    let mut admin_claims = claims.clone();
    admin_claims["roles"] = json!(["admin"]);
    for secret in [B64.decode(&x).unwrap(), x.as_bytes().to_vec()] {
        for with_kid in [true, false] {
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            h.kid = with_kid.then(|| kid.clone());
            let forged = jsonwebtoken::encode(
                &h,
                &admin_claims,
                &jsonwebtoken::EncodingKey::from_secret(&secret),
            )
            .unwrap();
            assert_eq!(code_of(&uncached, &forged).await, "TOKEN_INVALID");
        }
    }

    // An unknown kid (the real signature), and a tampered payload.
    let mut other = header.clone();
    other["kid"] = json!("no-such-key");
    let forged = format!("{}.{body}.{signature}", encode(&other));
    assert_eq!(code_of(&uncached, &forged).await, "TOKEN_INVALID");
    let mut no_kid = header.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    let forged = format!("{}.{body}.{signature}", encode(&no_kid));
    assert_eq!(code_of(&uncached, &forged).await, "TOKEN_INVALID");
    let forged = format!("{}.{}.{signature}", encode(&header), encode(&admin_claims));
    assert_eq!(code_of(&uncached, &forged).await, "TOKEN_INVALID");
    assert_eq!(code_of(&uncached, "not-a-jwt").await, "TOKEN_INVALID");

    // Expired (SENTRI_ACCESS_TTL=2s): from the cache and from a fresh check.
    let exp = claims["exp"].as_i64().unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    while now() <= exp {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(code_of(&verifier, &token).await, "TOKEN_EXPIRED");
    assert_eq!(code_of(&uncached, &token).await, "TOKEN_EXPIRED");
    let me = get_bearer(&c, &server, "/auth/me", &token).await;
    assert_eq!((me.status, me.code()), (401, "TOKEN_EXPIRED"));

    server.stop();
}
