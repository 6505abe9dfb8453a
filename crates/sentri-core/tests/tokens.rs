//! Tokens and sessions: verification, attacks, rotation, logout, keys
//! (F-10 … F-15).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use sentri_core::hooks::Hooks;
use sentri_core::store::Stores;
use sentri_core::{
    Algorithm, ClientInfo, Config, ErrorCode, LogoutInput, RefreshInput, SessionCheck,
};
use sentri_memory::MemoryStore;

fn refresh_input(token: &str) -> RefreshInput {
    RefreshInput {
        refresh_token: token.to_owned(),
        client: ClientInfo::default(),
    }
}

fn b64(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn parts(token: &str) -> (serde_json::Value, serde_json::Value, String) {
    let mut it = token.split('.');
    let h = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    let p = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&h).unwrap(),
        serde_json::from_slice(&p).unwrap(),
        it.next().unwrap().to_owned(),
    )
}

async fn eddsa_env() -> Env {
    env_with(
        Config::builder()
            .algorithm(Algorithm::EdDSA)
            .valid_roles(["user", "admin"])
            .password_policy(fast_policy()),
    )
    .await
}

#[tokio::test]
async fn access_tokens_carry_the_spec_claims() {
    let env = eddsa_env().await;
    let out = signed_in(&env, "claims@example.com").await;
    let (header, payload, _) = parts(&out.tokens.access_token);
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string());
    assert_eq!(payload["sub"], out.user.id.to_string());
    assert_eq!(payload["sid"], out.session_id.to_string());
    assert_eq!(payload["identifier"], "claims@example.com");
    assert_eq!(payload["roles"], serde_json::json!(["user"]));
    assert_eq!(payload["typ"], "access");
    let ttl = payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap();
    assert_eq!(ttl, 15 * 60);
}

#[tokio::test]
async fn alg_none_is_rejected() {
    let env = env().await;
    let out = signed_in(&env, "none@example.com").await;
    let (_, payload, _) = parts(&out.tokens.access_token);
    let forged = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(&payload)
    );
    let err = env.sentri.verify_access(&forged).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
}

#[tokio::test]
async fn hmac_signed_with_the_published_public_key_is_rejected() {
    let env = eddsa_env().await;
    let out = signed_in(&env, "confused@example.com").await;
    let (header, payload, _) = parts(&out.tokens.access_token);
    let jwks = serde_json::to_value(&*env.sentri.jwks()).unwrap();
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    let public = URL_SAFE_NO_PAD.decode(x).unwrap();
    for secret in [public.as_slice(), x.as_bytes()] {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = header["kid"].as_str().map(str::to_owned);
        let forged = jsonwebtoken::encode(
            &h,
            &payload,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap();
        let err = env.sentri.verify_access(&forged).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenInvalid);
    }
}

#[tokio::test]
async fn unknown_or_missing_kid_is_rejected() {
    let env = eddsa_env().await;
    let out = signed_in(&env, "kid@example.com").await;
    let (mut header, payload, sig) = parts(&out.tokens.access_token);
    header["kid"] = "not-a-known-kid".into();
    let forged = format!("{}.{}.{sig}", b64(&header), b64(&payload));
    assert_eq!(
        env.sentri.verify_access(&forged).await.unwrap_err().code(),
        ErrorCode::TokenInvalid
    );
    header.as_object_mut().unwrap().remove("kid");
    let forged = format!("{}.{}.{sig}", b64(&header), b64(&payload));
    assert_eq!(
        env.sentri.verify_access(&forged).await.unwrap_err().code(),
        ErrorCode::TokenInvalid
    );
    // A token signed by another server's key, with that server's kid.
    let other = eddsa_env().await;
    let foreign = signed_in(&other, "kid@example.com").await;
    assert_eq!(
        env.sentri
            .verify_access(&foreign.tokens.access_token)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenInvalid
    );
}

#[tokio::test]
async fn a_tampered_payload_is_rejected() {
    for env in [env().await, eddsa_env().await] {
        let out = signed_in(&env, "tamper@example.com").await;
        let (header, mut payload, sig) = parts(&out.tokens.access_token);
        payload["roles"] = serde_json::json!(["admin"]);
        let forged = format!("{}.{}.{sig}", b64(&header), b64(&payload));
        assert_eq!(
            env.sentri.verify_access(&forged).await.unwrap_err().code(),
            ErrorCode::TokenInvalid
        );
    }
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_rejected() {
    let env = env().await;
    let out = signed_in(&env, "secret@example.com").await;
    let (_, payload, _) = parts(&out.tokens.access_token);
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &payload,
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-another-secret-another"),
    )
    .unwrap();
    assert_eq!(
        env.sentri.verify_access(&forged).await.unwrap_err().code(),
        ErrorCode::TokenInvalid
    );
    // And a token of another typ signed with the right secret.
    let mut refresh_typed = payload.clone();
    refresh_typed["typ"] = "refresh".into();
    let wrong_typ = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &refresh_typed,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        env.sentri
            .verify_access(&wrong_typ)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenInvalid
    );
}

#[tokio::test]
async fn expired_tokens_are_token_expired_even_when_cached() {
    let env = env().await;
    let out = signed_in(&env, "late@example.com").await;
    // Verified once: now in the verified-token cache.
    env.sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(15 * 60));
    let err = env
        .sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenExpired);
    // Without the cache too.
    let env = env_with(base().verified_token_cache(0)).await;
    let out = signed_in(&env, "late@example.com").await;
    env.clock.advance(Duration::from_secs(15 * 60 + 1));
    assert_eq!(
        env.sentri
            .verify_access(&out.tokens.access_token)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenExpired
    );
}

#[tokio::test]
async fn access_and_refresh_tokens_are_not_interchangeable() {
    let env = env().await;
    let out = signed_in(&env, "swap@example.com").await;
    let err = env
        .sentri
        .refresh(refresh_input(&out.tokens.access_token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
    let err = env
        .sentri
        .verify_access(&out.tokens.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
    // Neither attempt harmed the session.
    env.sentri
        .refresh(refresh_input(&out.tokens.refresh_token))
        .await
        .unwrap();
}

#[tokio::test]
async fn issuer_and_audience_are_set_and_checked() {
    let a = env_with(base().issuer("https://auth.example").audience("api")).await;
    let out = signed_in(&a, "iss@example.com").await;
    let (_, payload, _) = parts(&out.tokens.access_token);
    assert_eq!(payload["iss"], "https://auth.example");
    assert_eq!(payload["aud"], "api");
    a.sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    // Same secret, other audience: refused.
    let b = env_on(
        base().issuer("https://auth.example").audience("other"),
        a.stores.clone(),
    )
    .await;
    assert_eq!(
        b.sentri
            .verify_access(&out.tokens.access_token)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenInvalid
    );
    let c = env_on(
        base().issuer("https://evil.example").audience("api"),
        a.stores.clone(),
    )
    .await;
    assert_eq!(
        c.sentri
            .verify_access(&out.tokens.access_token)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenInvalid
    );
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_is_refused_within_grace() {
    let env = env().await;
    let out = signed_in(&env, "rot@example.com").await;
    let next = env
        .sentri
        .refresh(refresh_input(&out.tokens.refresh_token))
        .await
        .unwrap();
    assert_ne!(next.tokens.refresh_token, out.tokens.refresh_token);
    assert_eq!(next.session_id, out.session_id);
    // Within the 2 s grace: refused, but the session survives.
    let err = env
        .sentri
        .refresh(refresh_input(&out.tokens.refresh_token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
    env.sentri
        .verify_access(&next.tokens.access_token)
        .await
        .unwrap();
    env.sentri
        .refresh(refresh_input(&next.tokens.refresh_token))
        .await
        .unwrap();
}

#[tokio::test]
async fn reuse_after_grace_revokes_the_session_and_fires_the_hook() {
    let reused = Arc::new(AtomicUsize::new(0));
    let r = reused.clone();
    let hooks = Hooks::new().on_token_reuse(move |_, _| {
        let r = r.clone();
        async move {
            r.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let env = env_with(base().hooks(hooks)).await;
    let out = signed_in(&env, "thief@example.com").await;
    let next = env
        .sentri
        .refresh(refresh_input(&out.tokens.refresh_token))
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(3));
    let err = env
        .sentri
        .refresh(refresh_input(&out.tokens.refresh_token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
    assert_eq!(reused.load(Ordering::SeqCst), 1);
    // The whole session is gone: the legitimate new tokens are dead too.
    assert_eq!(
        env.sentri
            .refresh(refresh_input(&next.tokens.refresh_token))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenInvalid
    );
    assert_eq!(
        env.sentri
            .verify_access(&next.tokens.access_token)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenInvalid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_refreshes_of_one_token_one_wins() {
    let env = env().await;
    let out = signed_in(&env, "race-refresh@example.com").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = env.sentri.clone();
            let b = barrier.clone();
            let t = out.tokens.refresh_token.clone();
            tokio::spawn(async move {
                b.wait().await;
                s.refresh(refresh_input(&t)).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(o) => winners.push(o),
            Err(e) => assert_eq!(e.code(), ErrorCode::TokenInvalid),
        }
    }
    assert_eq!(winners.len(), 1);
    // The losers were within grace: the winner's session is intact.
    env.sentri
        .refresh(refresh_input(&winners[0].tokens.refresh_token))
        .await
        .unwrap();
}

#[tokio::test]
async fn logout_rejects_the_access_token_at_once() {
    let env = env().await;
    let out = signed_in(&env, "bye@example.com").await;
    env.sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    env.sentri
        .logout(LogoutInput::RefreshToken(out.tokens.refresh_token.clone()))
        .await
        .unwrap();
    assert_eq!(
        env.sentri
            .verify_access(&out.tokens.access_token)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenInvalid
    );
    assert_eq!(
        env.sentri
            .refresh(refresh_input(&out.tokens.refresh_token))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenInvalid
    );
    // Logging out again is fine; a malformed token is not.
    env.sentri
        .logout(LogoutInput::RefreshToken(out.tokens.refresh_token.clone()))
        .await
        .unwrap();
    assert_eq!(
        env.sentri
            .logout(LogoutInput::RefreshToken("garbage".into()))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenInvalid
    );
}

#[tokio::test]
async fn logout_all_ends_every_session() {
    let env = env().await;
    let a = signed_in(&env, "all@example.com").await;
    let b = env
        .sentri
        .login(login_input("all@example.com", PASSWORD))
        .await
        .unwrap();
    let other = signed_in(&env, "bystander@example.com").await;
    env.sentri.logout_all(a.user.id).await.unwrap();
    for out in [&a, &b] {
        assert_eq!(
            env.sentri
                .verify_access(&out.tokens.access_token)
                .await
                .unwrap_err()
                .code(),
            ErrorCode::TokenInvalid
        );
    }
    env.sentri
        .verify_access(&other.tokens.access_token)
        .await
        .unwrap();
}

#[tokio::test]
async fn sessions_can_be_listed_and_revoked_only_by_their_owner() {
    let env = env().await;
    let a1 = signed_in(&env, "own@example.com").await;
    let a2 = env
        .sentri
        .login(login_input("own@example.com", PASSWORD))
        .await
        .unwrap();
    let b = signed_in(&env, "else@example.com").await;
    let list = env
        .sentri
        .list_sessions(a1.user.id, Some(a2.session_id))
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s.current).count(), 1);
    let err = env
        .sentri
        .revoke_session(a1.user.id, b.session_id)
        .await
        .unwrap_err();
    assert_eq!(err.status(), 404);
    env.sentri
        .verify_access(&b.tokens.access_token)
        .await
        .unwrap();
    env.sentri
        .revoke_session(a1.user.id, a1.session_id)
        .await
        .unwrap();
    assert!(
        env.sentri
            .verify_access(&a1.tokens.access_token)
            .await
            .is_err()
    );
    env.sentri
        .verify_access(&a2.tokens.access_token)
        .await
        .unwrap();
}

#[tokio::test]
async fn expired_sessions_are_purged_and_refuse_refresh() {
    let env = env_with(base().access_ttl("1m").refresh_ttl("1h")).await;
    let old = signed_in(&env, "old@example.com").await;
    env.clock.advance(Duration::from_secs(30 * 60));
    let fresh = env
        .sentri
        .login(login_input("old@example.com", PASSWORD))
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(
        env.sentri
            .refresh(refresh_input(&old.tokens.refresh_token))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenInvalid
    );
    assert_eq!(env.sentri.purge_expired_sessions().await.unwrap(), 1);
    env.sentri
        .refresh(refresh_input(&fresh.tokens.refresh_token))
        .await
        .unwrap();
}

#[tokio::test]
async fn stateless_mode_skips_the_store_but_runs_is_token_revoked() {
    let revoked = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let r = revoked.clone();
    let env = env_with(
        base()
            .session_check(SessionCheck::Stateless)
            .is_token_revoked(move |sid| {
                let hit = r.lock().contains(&sid);
                async move { Ok(hit) }
            }),
    )
    .await;
    let out = signed_in(&env, "stateless@example.com").await;
    env.sentri
        .logout(LogoutInput::Session(out.session_id))
        .await
        .unwrap();
    // Stateless: the signature and expiry decide; the logout shows at expiry.
    env.sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    revoked.lock().push(out.session_id);
    assert_eq!(
        env.sentri
            .verify_access(&out.tokens.access_token)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenInvalid
    );
}

#[tokio::test]
async fn generated_keys_persist_across_restarts_for_every_algorithm() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let stores = Stores::from_backend(Arc::new(MemoryStore::new()));
        let builder = || {
            Config::builder()
                .algorithm(alg)
                .valid_roles(["user"])
                .password_policy(fast_policy())
        };
        let first = env_on(builder(), stores.clone()).await;
        let out = signed_in(&first, "keys@example.com").await;
        let restarted = env_on(builder(), stores.clone()).await;
        restarted
            .sentri
            .verify_access(&out.tokens.access_token)
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(&*first.sentri.jwks()).unwrap(),
            serde_json::to_value(&*restarted.sentri.jwks()).unwrap(),
            "{alg}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_at_once_agree_on_one_key() {
    let stores = Stores::from_backend(Arc::new(MemoryStore::new()));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let stores = stores.clone();
            tokio::spawn(async move {
                let config = Config::builder().valid_roles(["user"]).build().unwrap();
                let s = sentri_core::Sentri::new(config, stores).await.unwrap();
                serde_json::to_string(&*s.jwks()).unwrap()
            })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap());
    }
    assert_eq!(seen.len(), 1);
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_and_publishes_both_keys() {
    let env = eddsa_env().await;
    let before = signed_in(&env, "rotate@example.com").await;
    let kid = env.sentri.rotate_signing_key().await.unwrap();
    let after = env
        .sentri
        .login(login_input("rotate@example.com", PASSWORD))
        .await
        .unwrap();
    let (header, _, _) = parts(&after.tokens.access_token);
    assert_eq!(header["kid"], kid.as_str());
    env.sentri
        .verify_access(&before.tokens.access_token)
        .await
        .unwrap();
    env.sentri
        .verify_access(&after.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(env.sentri.jwks().keys.len(), 2);
    // Once every token of the old key has expired, it is no longer published.
    env.clock.advance(Duration::from_secs(20 * 60));
    env.sentri.reload_keys().await.unwrap();
    assert_eq!(env.sentri.jwks().keys.len(), 1);
    assert_eq!(env.sentri.purge_retired_keys().await.unwrap(), 1);
}

#[tokio::test]
async fn hmac_keys_are_never_published_nor_rotated() {
    let env = env().await;
    assert!(env.sentri.jwks().keys.is_empty());
    assert_eq!(
        env.sentri.rotate_signing_key().await.unwrap_err().code(),
        ErrorCode::ConfigurationError
    );
}
