//! Cookie transport, CSRF and silent refresh (F-23, F-24).

mod common;

use axum::body::Body;
use common::*;
use http::Request;
use sentri_core::config::{CookieConfig, CookieTransport};
use serde_json::json;

fn both() -> CookieConfig {
    CookieConfig {
        transport: CookieTransport::Both,
        ..Default::default()
    }
}

fn cookie_req(method: &str, uri: &str, cookie: &str, origin: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "api.example.com")
        .header("cookie", cookie);
    if let Some(o) = origin {
        b = b.header("origin", o);
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn login_sets_both_cookies_with_the_spec_attributes() {
    let env = env_with(base().cookies(both())).await;
    let res = signed_in(&env, "a@example.com").await;
    assert!(res.data().get("refreshToken").is_none());
    let cookies = res.cookies();
    assert_eq!(cookies.len(), 2);
    let rt = cookie_value(&res, "refresh_token").unwrap();
    let at = cookie_value(&res, "access_token").unwrap();
    assert_eq!(at, access(&res));
    assert_eq!(
        cookies[0],
        format!(
            "refresh_token={rt}; Max-Age=604800; Path=/auth; HttpOnly; Secure; SameSite=Strict"
        )
    );
    assert_eq!(
        cookies[1],
        format!("access_token={at}; Max-Age=900; Path=/; Secure; SameSite=Strict")
    );

    // The access cookie authenticates; refresh by cookie rotates both.
    let jar = format!("refresh_token={rt}; access_token={at}");
    let me = send(&env.app, cookie_req("GET", "/auth/me", &jar, None)).await;
    assert_eq!(me.status, 200);
    let r = send(
        &env.app,
        cookie_req(
            "POST",
            "/auth/refresh",
            &jar,
            Some("https://api.example.com"),
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.data().get("refreshToken").is_none());
    assert_ne!(cookie_value(&r, "refresh_token").unwrap(), rt);

    // Logout clears both.
    let jar = format!(
        "refresh_token={}",
        cookie_value(&r, "refresh_token").unwrap()
    );
    let out = send(&env.app, cookie_req("POST", "/auth/logout", &jar, None)).await;
    assert_eq!(out.status, 200);
    assert_eq!(
        out.cookies(),
        [
            "refresh_token=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/auth; HttpOnly; Secure; SameSite=Strict",
            "access_token=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Secure; SameSite=Strict",
        ]
    );
}

#[tokio::test]
async fn host_prefixed_insecure_cookies_and_refresh_only() {
    let env = env_with(base().cookies(CookieConfig {
        transport: CookieTransport::Both,
        host_prefix: true,
        ..Default::default()
    }))
    .await;
    let res = signed_in(&env, "b@example.com").await;
    assert!(res.cookies()[0].starts_with("__Host-refresh_token="));
    assert!(res.cookies()[0].contains("; Path=/;"));
    assert!(res.cookies()[1].starts_with("__Host-access_token="));

    let env = env_with(base().cookies(CookieConfig {
        transport: CookieTransport::Refresh,
        secure: false,
        ..Default::default()
    }))
    .await;
    let res = signed_in(&env, "c@example.com").await;
    assert_eq!(res.cookies().len(), 1);
    assert!(!res.cookies()[0].contains("Secure"));
    // The access token is not read from a cookie in Refresh mode.
    let jar = format!("access_token={}", access(&res));
    send(&env.app, cookie_req("GET", "/auth/me", &jar, None))
        .await
        .assert_error(401, "UNAUTHORIZED", "authentication required");
    // Logout-all by bearer clears the cookies too.
    let r = send(
        &env.app,
        with_body("POST", "/auth/logout-all", Some(&access(&res)), json!({})),
    )
    .await;
    assert_eq!(r.cookies().len(), 2);
}

#[tokio::test]
async fn csrf_refuses_cookie_requests_from_foreign_origins() {
    let env = env_with(base().cookies(both())).await;
    let res = signed_in(&env, "d@example.com").await;
    let jar = format!(
        "refresh_token={}; access_token={}",
        cookie_value(&res, "refresh_token").unwrap(),
        access(&res)
    );
    for (method, uri) in [
        ("POST", "/auth/refresh"),
        ("POST", "/auth/logout"),
        ("POST", "/auth/logout-all"),
    ] {
        send(
            &env.app,
            cookie_req(method, uri, &jar, Some("https://evil.example")),
        )
        .await
        .assert_error(403, "FORBIDDEN", "cross-origin request refused");
    }
    send(
        &env.app,
        cookie_req("POST", "/auth/logout-all", &jar, Some("null")),
    )
    .await
    .assert_error(403, "FORBIDDEN", "cross-origin request refused");
    // GET is not state-changing.
    assert_eq!(
        send(
            &env.app,
            cookie_req("GET", "/auth/me", &jar, Some("https://evil.example"))
        )
        .await
        .status,
        200
    );
    // Bearer requests are not affected.
    let mut req = with_body("POST", "/auth/logout-all", Some(&access(&res)), json!({}));
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    assert_eq!(send(&env.app, req).await.status, 200);

    // Configured origins.
    let env = env_with(base().cookies(CookieConfig {
        allowed_origins: vec!["https://app.example.com".into()],
        ..both()
    }))
    .await;
    let res = signed_in(&env, "e@example.com").await;
    let jar = format!(
        "refresh_token={}",
        cookie_value(&res, "refresh_token").unwrap()
    );
    assert_eq!(
        send(
            &env.app,
            cookie_req(
                "POST",
                "/auth/refresh",
                &jar,
                Some("https://app.example.com")
            )
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn silent_refresh_rotates_on_the_same_response() {
    let env = env_with(base().cookies(both())).await;
    let res = signed_in(&env, "f@example.com").await;
    let rt = cookie_value(&res, "refresh_token").unwrap();
    let at = access(&res);
    env.clock.advance(std::time::Duration::from_secs(16 * 60));
    let jar = format!("refresh_token={rt}; access_token={at}");
    let me = send(&env.app, cookie_req("GET", "/auth/me", &jar, None)).await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert_eq!(me.data()["user"]["identifier"], "f@example.com");
    let new_rt = cookie_value(&me, "refresh_token").unwrap();
    let new_at = cookie_value(&me, "access_token").unwrap();
    assert_ne!(new_rt, rt);
    assert_ne!(new_at, at);
    // The browser dropped the expired access cookie: the refresh cookie alone.
    env.clock.advance(std::time::Duration::from_secs(16 * 60));
    let me = send(
        &env.app,
        cookie_req("GET", "/auth/me", &format!("refresh_token={new_rt}"), None),
    )
    .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.cookies().len(), 2);
    // A bearer token that expired, with no refresh cookie: TOKEN_EXPIRED.
    env.clock.advance(std::time::Duration::from_secs(16 * 60));
    send(&env.app, get("/auth/me", Some(&new_at)))
        .await
        .assert_error(401, "TOKEN_EXPIRED", "token expired");
    // A stale refresh cookie: the original error.
    send(
        &env.app,
        cookie_req(
            "GET",
            "/auth/me",
            &format!("refresh_token={rt}; access_token={at}"),
            None,
        ),
    )
    .await
    .assert_error(401, "TOKEN_EXPIRED", "token expired");
}
