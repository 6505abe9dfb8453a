//! Sessions against a forged secret, reuse of issued tokens, logout by
//! refresh token, the silent-refresh grace of parallel requests and the
//! inactivity timeout (F-11, F-12, F-24; issue 14 items 3, 4, 10).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use sentri_core::hooks::Hooks;
use sentri_core::{ClientInfo, ErrorCode, LogoutInput, RefreshInput};

fn refresh_input(token: &str) -> RefreshInput {
    RefreshInput {
        refresh_token: token.to_owned(),
        client: ClientInfo::default(),
    }
}

/// `<sid>.<secret>` with the session id of `token` and a secret it never had.
fn forged(token: &str) -> String {
    let (sid, _) = token.split_once('.').unwrap();
    format!("{sid}.{}", URL_SAFE_NO_PAD.encode([0x5a_u8; 32]))
}

/// Hooks counting `on_token_reuse` and `on_logout`.
fn counting() -> (Hooks, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (reused, logouts) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (r, l) = (reused.clone(), logouts.clone());
    let hooks = Hooks::new()
        .on_token_reuse(move |_, _| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .on_logout(move |_| {
            let l = l.clone();
            async move {
                l.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        });
    (hooks, reused, logouts)
}

#[tokio::test]
async fn a_forged_secret_is_refused_without_revoking_or_firing_the_reuse_hook() {
    let (hooks, reused, _) = counting();
    let env = env_with(base().hooks(hooks)).await;
    let out = signed_in(&env, "forged-refresh@example.com").await;
    // Also after a rotation, and after the grace: still no reuse.
    let next = env
        .sentri
        .refresh(refresh_input(&out.tokens.refresh_token))
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(30));
    let err = env
        .sentri
        .refresh(refresh_input(&forged(&out.tokens.refresh_token)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
    assert_eq!(reused.load(Ordering::SeqCst), 0, "a forgery is not reuse");
    env.sentri
        .verify_access(&next.tokens.access_token)
        .await
        .expect("the session survives a forged refresh");
    env.sentri
        .refresh(refresh_input(&next.tokens.refresh_token))
        .await
        .expect("the real token still rotates");
}

#[tokio::test]
async fn reuse_of_an_older_issued_token_revokes_and_fires_the_hook() {
    let (hooks, reused, _) = counting();
    let env = env_with(base().hooks(hooks)).await;
    let out = signed_in(&env, "old-token@example.com").await;
    let mut current = out.tokens.clone();
    for _ in 0..3 {
        current = env
            .sentri
            .refresh(refresh_input(&current.refresh_token))
            .await
            .unwrap()
            .tokens;
    }
    // Within the grace of the last rotation, but not the previous token.
    let err = env
        .sentri
        .refresh(refresh_input(&out.tokens.refresh_token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
    assert_eq!(reused.load(Ordering::SeqCst), 1);
    assert_eq!(
        env.sentri
            .verify_access(&current.access_token)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenInvalid,
        "reuse revokes the whole session"
    );
}

#[tokio::test]
async fn every_refused_refresh_carries_one_message() {
    let env = env().await;
    let out = signed_in(&env, "one-message@example.com").await;
    let old = out.tokens.refresh_token.clone();
    let next = env.sentri.refresh(refresh_input(&old)).await.unwrap();
    let mut messages = Vec::new();
    for token in [
        old.clone(),                               // rotated, within the grace
        forged(&next.tokens.refresh_token),        // never issued
        "garbage".to_owned(),                      // malformed
        format!("{}x", next.tokens.refresh_token), // malformed too
    ] {
        let err = env.sentri.refresh(refresh_input(&token)).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenInvalid);
        messages.push(err.to_string());
    }
    env.clock.advance(Duration::from_secs(30));
    let reused = env.sentri.refresh(refresh_input(&old)).await.unwrap_err();
    messages.push(reused.to_string()); // reused: the session is revoked now
    let ended = env
        .sentri
        .refresh(refresh_input(&next.tokens.refresh_token))
        .await
        .unwrap_err();
    messages.push(ended.to_string()); // the session has ended
    assert!(
        messages.iter().all(|m| m == "refresh token invalid"),
        "{messages:?}"
    );
}

#[tokio::test]
async fn logout_with_a_forged_secret_ends_nothing() {
    let (hooks, reused, logouts) = counting();
    let env = env_with(base().hooks(hooks)).await;
    let out = signed_in(&env, "forged-logout@example.com").await;
    env.sentri
        .logout(LogoutInput::RefreshToken(forged(&out.tokens.refresh_token)))
        .await
        .expect("a forged logout answers as a real one");
    assert_eq!(logouts.load(Ordering::SeqCst), 0);
    assert_eq!(reused.load(Ordering::SeqCst), 0);
    env.sentri
        .verify_access(&out.tokens.access_token)
        .await
        .expect("the session survives a forged logout");

    env.sentri
        .logout(LogoutInput::RefreshToken(out.tokens.refresh_token.clone()))
        .await
        .unwrap();
    assert_eq!(logouts.load(Ordering::SeqCst), 1);
    assert_eq!(
        env.sentri
            .verify_access(&out.tokens.access_token)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenInvalid,
        "the right secret ends the session"
    );
}

#[tokio::test]
async fn logout_with_the_token_just_replaced_ends_the_session_only_within_the_grace() {
    let env = env().await;
    let a = signed_in(&env, "grace-logout@example.com").await;
    let a2 = env
        .sentri
        .refresh(refresh_input(&a.tokens.refresh_token))
        .await
        .unwrap();
    env.sentri
        .logout(LogoutInput::RefreshToken(a.tokens.refresh_token.clone()))
        .await
        .unwrap();
    assert!(
        env.sentri
            .verify_access(&a2.tokens.access_token)
            .await
            .is_err(),
        "the token replaced a moment ago (a racing tab) still logs out"
    );

    let b = env
        .sentri
        .login(login_input("grace-logout@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
    let b2 = env
        .sentri
        .refresh(refresh_input(&b.tokens.refresh_token))
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(11));
    env.sentri
        .logout(LogoutInput::RefreshToken(b.tokens.refresh_token.clone()))
        .await
        .unwrap();
    env.sentri
        .verify_access(&b2.tokens.access_token)
        .await
        .expect("after the grace an old token logs nothing out");
}

#[tokio::test]
async fn an_idle_session_is_refused_on_refresh() {
    let env = env_with(base().session_idle_timeout("30m")).await;
    let out = signed_in(&env, "idle@example.com").await;
    // Used within the timeout: fine, and the use renews it.
    env.clock.advance(Duration::from_secs(20 * 60));
    let next = env
        .sentri
        .refresh(refresh_input(&out.tokens.refresh_token))
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(20 * 60));
    let next = env
        .sentri
        .refresh(refresh_input(&next.tokens.refresh_token))
        .await
        .expect("40 minutes old, but used 20 minutes ago");
    env.clock.advance(Duration::from_secs(31 * 60));
    let err = env
        .sentri
        .refresh(refresh_input(&next.tokens.refresh_token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
    assert_eq!(err.to_string(), "refresh token invalid");
    assert!(
        env.sentri
            .list_sessions(out.user.id, None)
            .await
            .unwrap()
            .is_empty(),
        "an idle session is not listed"
    );
}

#[tokio::test]
async fn an_idle_session_is_refused_by_protect_in_always_mode() {
    // The token is minted by an instance with a long access TTL, then
    // presented to one with an inactivity timeout, on the same store.
    let long = env_with(base().access_ttl("1h").refresh_ttl("1d")).await;
    let out = signed_in(&long, "idle-protect@example.com").await;
    let strict = env_on(
        base()
            .access_ttl("10m")
            .refresh_ttl("1d")
            .session_idle_timeout("30m"),
        long.stores.clone(),
    )
    .await;
    strict.clock.advance(Duration::from_secs(20 * 60));
    strict
        .sentri
        .verify_access(&out.tokens.access_token)
        .await
        .expect("20 minutes idle is within the timeout");
    strict.clock.advance(Duration::from_secs(31 * 60));
    let err = strict
        .sentri
        .verify_access(&out.tokens.access_token)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
}

#[test]
fn the_idle_timeout_must_exceed_the_access_ttl_and_touch_interval() {
    for bad in ["10m", "15m", "1s"] {
        let err = base().session_idle_timeout(bad).build().unwrap_err();
        assert!(err.to_string().contains("session_idle_timeout"), "{err}");
    }
    let err = base()
        .access_ttl("1m")
        .touch_interval("10m")
        .session_idle_timeout("5m")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("session_idle_timeout"), "{err}");
    let config = base().session_idle_timeout("16m").build().unwrap();
    assert_eq!(
        config.session_idle_timeout(),
        Some(Duration::from_secs(16 * 60))
    );
    assert_eq!(base().build().unwrap().session_idle_timeout(), None);
    assert!(base().session_idle_timeout("soon").build().is_err());
}

#[cfg(feature = "http")]
mod silent_refresh {
    use super::*;

    use bytes::Bytes;
    use http::{Method, StatusCode};
    use sentri_core::config::{CookieConfig, CookieTransport};
    use sentri_core::http::{Api, Request, Route};
    use serde_json::json;

    fn cookie_api(env: &Env) -> Api {
        Api::new(env.sentri.clone(), "/auth")
    }

    fn cookies_of(res: &http::Response<Bytes>) -> String {
        res.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn cookie_env(
        extra: impl FnOnce(sentri_core::config::ConfigBuilder) -> sentri_core::config::ConfigBuilder,
    ) -> (Env, Api, String) {
        let (hooks, _, _) = counting();
        let env = env_with(extra(base().hooks(hooks).reuse_grace("1m").cookies(
            CookieConfig {
                transport: CookieTransport::Both,
                ..Default::default()
            },
        )))
        .await;
        let api = cookie_api(&env);
        let body = json!({"identifier": "tabs@example.com", "password": PASSWORD});
        let post = |path: &str| {
            Request::new(Method::POST, path)
                .header("content-type", "application/json")
                .body(body.to_string())
                .peer("192.0.2.1:5000".parse().unwrap())
        };
        assert_eq!(
            api.call(Route::Register, &post("/auth/register"), None)
                .await
                .status(),
            StatusCode::CREATED
        );
        let res = api.call(Route::Login, &post("/auth/login"), None).await;
        assert_eq!(res.status(), StatusCode::OK);
        let cookies = cookies_of(&res);
        (env, api, cookies)
    }

    /// Sixteen requests at once after the access TTL, all with the same
    /// (expired access, old refresh) cookies: all authenticated as the
    /// user, one rotated the pair, the session lives on with the winner's
    /// refresh token, and `POST /refresh` with the old one is refused
    /// without revoking.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_requests_after_the_access_ttl_all_succeed() {
        let (env, api, cookies) = cookie_env(|b| b).await;
        env.clock.advance(Duration::from_secs(16 * 60));
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (api, barrier, cookies) = (api.clone(), barrier.clone(), cookies.clone());
                tokio::spawn(async move {
                    let req = Request::new(Method::GET, "/api/data").header("cookie", &cookies);
                    barrier.wait().await;
                    api.authenticate(req.head()).await
                })
            })
            .collect();
        let mut rotated = Vec::new();
        for task in tasks {
            let auth = task
                .await
                .unwrap()
                .expect("every parallel request is authenticated");
            assert_eq!(auth.user.identifier(), "tabs@example.com");
            if !auth.set_cookies.is_empty() {
                rotated.push(auth.set_cookies);
            }
        }
        assert_eq!(rotated.len(), 1, "exactly one request rotates the pair");
        let new_cookies: String = rotated[0]
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("; ");

        // The old refresh token on /refresh: refused, the session kept.
        let name = env.sentri.config().cookies().refresh_cookie_name();
        let old_refresh = cookies
            .split("; ")
            .find_map(|c| c.strip_prefix(&format!("{name}=")))
            .unwrap();
        let res = api
            .call(
                Route::Refresh,
                &Request::new(Method::POST, "/auth/refresh")
                    .header("content-type", "application/json")
                    .body(json!({"refreshToken": old_refresh}).to_string())
                    .peer("192.0.2.1:5000".parse().unwrap()),
                None,
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let get = Request::new(Method::GET, "/api/data").header("cookie", &new_cookies);
        api.authenticate(get.head())
            .await
            .expect("the winner's cookies still work: nothing was revoked");
    }

    #[tokio::test]
    async fn an_old_refresh_cookie_after_the_grace_is_not_accepted() {
        let (env, api, cookies) = cookie_env(|b| b.reuse_grace("2s")).await;
        env.clock.advance(Duration::from_secs(16 * 60));
        let req = Request::new(Method::GET, "/api/data").header("cookie", &cookies);
        let first = api.authenticate(req.head()).await.unwrap();
        assert!(!first.set_cookies.is_empty());
        env.clock.advance(Duration::from_secs(3));
        let err = api.authenticate(req.head()).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenExpired);
    }

    #[tokio::test]
    async fn silent_refresh_refuses_an_idle_session() {
        let (env, api, cookies) = cookie_env(|b| b.session_idle_timeout("30m")).await;
        env.clock.advance(Duration::from_secs(31 * 60));
        let req = Request::new(Method::GET, "/api/data").header("cookie", &cookies);
        let err = api.authenticate(req.head()).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenExpired);
    }
}
