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
    assert_eq!(header["typ"], "at+jwt");
    assert!(payload["jti"].is_string());
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

/// Sign `payload` with the test secret (HS256) under `header`.
fn sign_hs256(header: serde_json::Value, payload: &serde_json::Value) -> String {
    let header: jsonwebtoken::Header = serde_json::from_value(header).unwrap();
    jsonwebtoken::encode(
        &header,
        payload,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn access_tokens_are_typed_at_jwt_with_jti_auth_time_and_amr() {
    let env = env().await;
    let login_at = env.clock.unix_seconds();
    let out = signed_in(&env, "rfc9068@example.com").await;
    let (header, payload, _) = parts(&out.tokens.access_token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "HS256");
    assert!(header.get("crit").is_none());
    let jti = payload["jti"].as_str().unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(jti).unwrap().len(), 16, "{jti}");
    assert_eq!(payload["auth_time"], login_at);
    assert_eq!(payload["amr"], serde_json::json!(["pwd"]));
    // Kept for verifiers of earlier releases.
    assert_eq!(payload["typ"], "access");
    let user = env
        .sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap();
    assert_eq!(user.auth_time(), Some(login_at));

    // A refresh later: a new jti, the login's auth_time and amr.
    env.clock.advance(Duration::from_secs(90));
    let next = env
        .sentri
        .refresh(refresh_input(&out.tokens.refresh_token))
        .await
        .unwrap();
    let (_, refreshed, _) = parts(&next.tokens.access_token);
    assert_ne!(refreshed["jti"], payload["jti"]);
    assert_eq!(refreshed["iat"], login_at + 90);
    assert_eq!(refreshed["auth_time"], login_at);
    assert_eq!(refreshed["amr"], serde_json::json!(["pwd"]));
}

#[tokio::test]
async fn two_refreshes_in_one_second_never_give_the_same_access_token() {
    // The manual clock does not move: every token below has the same
    // `iat`, `exp`, `sub` and `sid`.
    let env = env().await;
    let out = signed_in(&env, "same-second@example.com").await;
    let mut seen = std::collections::HashSet::new();
    let mut jtis = std::collections::HashSet::new();
    assert!(seen.insert(out.tokens.access_token.clone()));
    let mut refresh = out.tokens.refresh_token;
    for _ in 0..5 {
        let next = env.sentri.refresh(refresh_input(&refresh)).await.unwrap();
        let (_, payload, _) = parts(&next.tokens.access_token);
        assert!(jtis.insert(payload["jti"].as_str().unwrap().to_owned()));
        assert!(
            seen.insert(next.tokens.access_token.clone()),
            "a byte-identical access token was issued twice"
        );
        env.sentri
            .verify_access(&next.tokens.access_token)
            .await
            .unwrap();
        refresh = next.tokens.refresh_token;
    }
    // Two logins of one user in one second too.
    let a = env
        .sentri
        .login(login_input("same-second@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
    let b = env
        .sentri
        .login(login_input("same-second@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
    assert_ne!(a.tokens.access_token, b.tokens.access_token);
    assert_ne!(
        parts(&a.tokens.access_token).1["jti"],
        parts(&b.tokens.access_token).1["jti"]
    );
}

#[tokio::test]
async fn tokens_of_the_earlier_form_are_still_accepted() {
    // Issued before `typ: "at+jwt"`: header `typ: "JWT"` (or none), the
    // claim `typ: "access"`, no `jti`, `auth_time` or `amr`.
    let env = env().await;
    let out = signed_in(&env, "legacy@example.com").await;
    let (_, mut payload, _) = parts(&out.tokens.access_token);
    let claims = payload.as_object_mut().unwrap();
    for claim in ["jti", "auth_time", "amr"] {
        claims.remove(claim);
    }
    for header in [
        serde_json::json!({"alg": "HS256", "typ": "JWT"}),
        serde_json::json!({"alg": "HS256"}),
    ] {
        let legacy = sign_hs256(header.clone(), &payload);
        let user = env.sentri.verify_access(&legacy).await.unwrap();
        assert_eq!(user.id(), out.user.id, "{header}");
        assert_eq!(user.auth_time(), None);
    }
    // Without the claim, the earlier form is not an access token.
    let mut untyped = payload.clone();
    untyped.as_object_mut().unwrap().remove("typ");
    let err = env
        .sentri
        .verify_access(&sign_hs256(
            serde_json::json!({"alg": "HS256", "typ": "JWT"}),
            &untyped,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
}

#[tokio::test]
async fn the_typ_header_must_name_an_access_token() {
    let env = env().await;
    let out = signed_in(&env, "typ@example.com").await;
    let (_, payload, _) = parts(&out.tokens.access_token);
    let mut untyped = payload.clone();
    untyped.as_object_mut().unwrap().remove("typ");
    // RFC 9068 §4: `at+jwt` or `application/at+jwt`, in any case; the
    // claim `typ` is then optional.
    for typ in [
        "at+jwt",
        "application/at+jwt",
        "AT+JWT",
        "Application/AT+JWT",
    ] {
        for p in [&payload, &untyped] {
            let token = sign_hs256(serde_json::json!({"alg": "HS256", "typ": typ}), p);
            env.sentri.verify_access(&token).await.unwrap();
        }
    }
    let mut refresh_claim = payload.clone();
    refresh_claim["typ"] = "refresh".into();
    let refused = [
        // Another type of JWT.
        sign_hs256(
            serde_json::json!({"alg": "HS256", "typ": "refresh+jwt"}),
            &payload,
        ),
        sign_hs256(serde_json::json!({"alg": "HS256", "typ": "JOSE"}), &payload),
        sign_hs256(
            serde_json::json!({"alg": "HS256", "typ": "application/jwt+at"}),
            &payload,
        ),
        // An access token header over a claim of another type.
        sign_hs256(
            serde_json::json!({"alg": "HS256", "typ": "at+jwt"}),
            &refresh_claim,
        ),
    ];
    for token in refused {
        let err = env.sentri.verify_access(&token).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenInvalid, "{:?}", parts(&token).0);
    }
}

#[tokio::test]
async fn a_crit_header_is_refused() {
    let env = env().await;
    let out = signed_in(&env, "crit@example.com").await;
    let (_, payload, _) = parts(&out.tokens.access_token);
    for crit in [
        serde_json::json!(["exp"]),
        serde_json::json!(["b64"]),
        serde_json::json!([]),
    ] {
        let token = sign_hs256(
            serde_json::json!({"alg": "HS256", "typ": "at+jwt", "crit": crit, "b64": true}),
            &payload,
        );
        let err = env.sentri.verify_access(&token).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenInvalid, "{crit}");
    }
}

#[tokio::test]
async fn nbf_and_a_future_iat_are_checked_with_a_small_leeway() {
    let env = env().await;
    let out = signed_in(&env, "clock@example.com").await;
    let (header, payload, _) = parts(&out.tokens.access_token);
    let now = env.clock.unix_seconds();
    let with = |claim: &str, at: i64| {
        let mut p = payload.clone();
        p[claim] = at.into();
        sign_hs256(header.clone(), &p)
    };
    let leeway = sentri_core::tokens::CLOCK_LEEWAY_SECS;
    assert_eq!(leeway, 60);
    for claim in ["nbf", "iat"] {
        // Within the leeway (clock skew): accepted.
        env.sentri
            .verify_access(&with(claim, now + leeway))
            .await
            .unwrap();
        // Beyond it: refused, every time (a refusal is never cached).
        let early = with(claim, now + leeway + 1);
        for _ in 0..2 {
            let err = env.sentri.verify_access(&early).await.unwrap_err();
            assert_eq!(err.code(), ErrorCode::TokenInvalid, "{claim}");
        }
    }
    // A token whose nbf has come is accepted.
    let later = with("nbf", now + 120);
    env.clock.advance(Duration::from_secs(60));
    env.sentri.verify_access(&later).await.unwrap();
}

#[tokio::test]
async fn a_configured_audience_or_issuer_is_required_not_only_compared() {
    let env = env_with(base().issuer("https://auth.example").audience("api")).await;
    let out = signed_in(&env, "required@example.com").await;
    let (header, payload, _) = parts(&out.tokens.access_token);
    for claim in ["aud", "iss"] {
        let mut p = payload.clone();
        p.as_object_mut().unwrap().remove(claim);
        let err = env
            .sentri
            .verify_access(&sign_hs256(header.clone(), &p))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenInvalid, "without {claim}");
    }
    // An audience list that names another audience: refused.
    let mut p = payload.clone();
    p["aud"] = serde_json::json!(["other"]);
    let err = env
        .sentri
        .verify_access(&sign_hs256(header.clone(), &p))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
}

#[tokio::test]
async fn a_stock_rfc_9068_verifier_accepts_sentri_tokens() {
    // What a resource server with plain `jsonwebtoken` checks: the
    // published key, the algorithm, `typ: at+jwt`, issuer, audience, expiry,
    // and the claims RFC 9068 §2.2 requires that sentri has.
    let env = env_with(
        Config::builder()
            .algorithm(Algorithm::EdDSA)
            .valid_roles(["user"])
            .issuer("https://auth.example")
            .audience("https://api.example")
            .password_policy(fast_policy()),
    )
    .await;
    let out = signed_in(&env, "stock@example.com").await;
    let token = &out.tokens.access_token;
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwk = env
        .sentri
        .jwks()
        .find(header.kid.as_deref().unwrap())
        .cloned()
        .unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&["https://auth.example"]);
    validation.set_audience(&["https://api.example"]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    // The stock verifier runs on the system clock; the manual clock starts
    // at the real now.
    let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).unwrap();
    for claim in ["iss", "exp", "aud", "sub", "iat", "jti", "auth_time"] {
        assert!(data.claims.get(claim).is_some(), "{claim}");
    }
    // Pinned to another audience or issuer, the same verifier refuses.
    let mut other = validation.clone();
    other.set_audience(&["https://other.example"]);
    assert!(jsonwebtoken::decode::<serde_json::Value>(token, &key, &other).is_err());
    let mut other = validation.clone();
    other.set_issuer(&["https://evil.example"]);
    assert!(jsonwebtoken::decode::<serde_json::Value>(token, &key, &other).is_err());
}

#[tokio::test]
async fn hs384_and_hs512_tokens_verify() {
    for (alg, len) in [(Algorithm::HS384, 48), (Algorithm::HS512, 64)] {
        let secret = "s".repeat(len);
        let env = env_with(
            Config::builder()
                .algorithm(alg)
                .secret(&secret)
                .valid_roles(["user"])
                .password_policy(fast_policy()),
        )
        .await;
        let out = signed_in(&env, "hs@example.com").await;
        let (header, _, _) = parts(&out.tokens.access_token);
        assert_eq!(header["alg"], alg.as_str());
        env.sentri
            .verify_access(&out.tokens.access_token)
            .await
            .unwrap();
    }
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
    // Within the 10 s grace: refused, but the session survives.
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
    env.clock.advance(Duration::from_secs(11));
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
        .unwrap()
        .authenticated()
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
        .unwrap()
        .authenticated()
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
        .unwrap()
        .authenticated()
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
        .unwrap()
        .authenticated()
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
