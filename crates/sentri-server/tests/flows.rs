//! Black-box flows against the built binary: accounts, tokens, cookies,
//! idempotency, throttling and concurrency, over HTTP.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_login_me_refresh_logout() {
    let dir = TestDir::new("flow");
    let server = Server::start(&dir, &[]);
    let c = client();

    let user = register(&c, &server, "Alice@Example.com").await;
    assert_eq!(user["identifier"], "Alice@Example.com");
    assert_eq!(user["roles"], json!(["user"]));

    // Same identifier, other case: taken.
    let dup = post(
        &c,
        &server,
        "/auth/register",
        json!({ "identifier": "alice@example.com", "password": PASSWORD }),
    )
    .await;
    assert_eq!((dup.status, dup.code()), (409, "USER_ALREADY_EXISTS"));

    let wrong = post(
        &c,
        &server,
        "/auth/login",
        json!({ "identifier": "alice@example.com", "password": "nope nope nope" }),
    )
    .await;
    assert_eq!((wrong.status, wrong.code()), (401, "INVALID_CREDENTIALS"));
    let unknown = post(
        &c,
        &server,
        "/auth/login",
        json!({ "identifier": "bob@example.com", "password": PASSWORD }),
    )
    .await;
    assert_eq!(
        unknown.body, wrong.body,
        "unknown user and wrong password look the same"
    );

    let out = login(&c, &server, "alice@example.com").await;
    let access = out.body["data"]["accessToken"].as_str().unwrap().to_owned();
    let refresh = out.body["data"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(out.set_cookies().is_empty(), "cookies are off by default");

    let me = get_bearer(&c, &server, "/auth/me", &access).await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert_eq!(me.body["data"]["user"]["id"], user["id"]);
    let anonymous = send(&c, Method::GET, &server.url("/auth/me"), &[], None).await;
    assert_eq!((anonymous.status, anonymous.code()), (401, "UNAUTHORIZED"));
    let forged = get_bearer(&c, &server, "/auth/me", &format!("{access}x")).await;
    assert_eq!((forged.status, forged.code()), (401, "TOKEN_INVALID"));

    let rotated = post(
        &c,
        &server,
        "/auth/refresh",
        json!({ "refreshToken": refresh }),
    )
    .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let access2 = rotated.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh2 = rotated.body["data"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(refresh2, refresh);
    // The spent token is refused.
    let again = post(
        &c,
        &server,
        "/auth/refresh",
        json!({ "refreshToken": refresh }),
    )
    .await;
    assert_eq!(again.status, 401, "{:?}", again.body);

    let sessions = get_bearer(&c, &server, "/auth/sessions", &access2).await;
    assert_eq!(sessions.status, 200);
    assert_eq!(
        sessions.body["data"]["sessions"].as_array().unwrap().len(),
        1
    );

    let logout = post(
        &c,
        &server,
        "/auth/logout",
        json!({ "refreshToken": refresh2 }),
    )
    .await;
    assert_eq!(logout.status, 200, "{:?}", logout.body);
    assert_eq!(logout.body["data"], serde_json::Value::Null);
    // The access token of the ended session is refused at once.
    let after = get_bearer(&c, &server, "/auth/me", &access2).await;
    assert_eq!(after.status, 401, "{:?}", after.body);

    // Malformed bodies are envelopes, not plain-text rejections.
    let bad = send(
        &c,
        Method::POST,
        &server.url("/auth/login"),
        &[("content-type", "application/json")],
        None,
    )
    .await;
    assert_eq!((bad.status, bad.code()), (400, "VALIDATION_ERROR"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cookies_both_set_cookie_attributes_and_silent_refresh() {
    let dir = TestDir::new("cookies");
    let server = Server::start(
        &dir,
        &[("SENTRI_COOKIES", "both"), ("SENTRI_ACCESS_TTL", "1s")],
    );
    let c = client();
    register(&c, &server, "carol@example.com").await;
    let out = login(&c, &server, "carol@example.com").await;
    assert!(
        out.body["data"].get("refreshToken").is_none(),
        "refresh token only in the cookie"
    );

    let refresh = out.cookie("refresh_token").expect("refresh cookie");
    let attrs: Vec<String> = refresh
        .split(';')
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for want in ["httponly", "secure", "samesite=strict", "path=/auth"] {
        assert!(
            attrs.iter().any(|a| a == want),
            "{want} missing in {refresh}"
        );
    }
    let max_age: u64 = attrs
        .iter()
        .find_map(|a| a.strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .expect("refresh Max-Age");
    assert!(
        (7 * 86_400 - 60..=7 * 86_400).contains(&max_age),
        "{refresh}"
    );

    let access = out.cookie("access_token").expect("access cookie");
    let attrs: Vec<String> = access
        .split(';')
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(
        !attrs.iter().any(|a| a == "httponly"),
        "scripts read the access cookie: {access}"
    );
    assert!(attrs.iter().any(|a| a == "path=/"), "{access}");
    assert!(attrs.iter().any(|a| a == "max-age=1"), "{access}");

    // The access cookie authenticates.
    let cookie = format!(
        "access_token={}; refresh_token={}",
        cookie_value(&access),
        cookie_value(&refresh)
    );
    let me = send(
        &c,
        Method::GET,
        &server.url("/auth/me"),
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(me.status, 200, "{:?}", me.body);

    // Expired access cookie + valid refresh cookie: silent refresh.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let me = send(
        &c,
        Method::GET,
        &server.url("/auth/me"),
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(me.status, 200, "silent refresh: {:?}", me.body);
    let new_access = me.cookie("access_token").expect("new access cookie");
    let new_refresh = me.cookie("refresh_token").expect("new refresh cookie");
    assert_ne!(cookie_value(&new_refresh), cookie_value(&refresh));

    // Logout clears both cookies.
    let cookie = format!(
        "access_token={}; refresh_token={}",
        cookie_value(&new_access),
        cookie_value(&new_refresh)
    );
    let out = send(
        &c,
        Method::POST,
        &server.url("/auth/logout"),
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(out.status, 200, "{:?}", out.body);
    for name in ["access_token", "refresh_token"] {
        let cleared = out
            .cookie(name)
            .unwrap_or_else(|| panic!("{name} not cleared"));
        assert!(
            cleared.to_ascii_lowercase().contains("max-age=0"),
            "{cleared}"
        );
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotent_register_replays() {
    let dir = TestDir::new("idem");
    let server = Server::start(&dir, &[]);
    let c = client();
    let body = json!({ "identifier": "dave@example.com", "password": PASSWORD });
    let headers = [("x-idempotency-key", "register-dave-1")];
    let first = send(
        &c,
        Method::POST,
        &server.url("/auth/register"),
        &headers,
        Some(body.clone()),
    )
    .await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(first.header("x-request-id"), Some("register-dave-1"));
    let second = send(
        &c,
        Method::POST,
        &server.url("/auth/register"),
        &headers,
        Some(body),
    )
    .await;
    assert_eq!(
        second.status, 201,
        "replayed, not a conflict: {:?}",
        second.body
    );
    assert_eq!(second.header("x-idempotent-replayed"), Some("true"));
    assert_eq!(second.body, first.body);
    let other = json!({ "identifier": "erin@example.com", "password": PASSWORD });
    let reused = send(
        &c,
        Method::POST,
        &server.url("/auth/register"),
        &headers,
        Some(other),
    )
    .await;
    assert_eq!(
        (reused.status, reused.code()),
        (422, "IDEMPOTENCY_KEY_REUSED")
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_logins_are_throttled_with_retry_after() {
    let dir = TestDir::new("throttle");
    let server = Server::start(&dir, &[("SENTRI_LOGIN_MAX_FAILURES", "3")]);
    let c = client();
    register(&c, &server, "frank@example.com").await;
    let wrong = json!({ "identifier": "frank@example.com", "password": "wrong password" });
    for _ in 0..3 {
        let r = post(&c, &server, "/auth/login", wrong.clone()).await;
        assert_eq!(r.status, 401, "{:?}", r.body);
    }
    let limited = post(&c, &server, "/auth/login", wrong).await;
    assert_eq!((limited.status, limited.code()), (429, "RATE_LIMITED"));
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!(retry > 0 && retry <= 15 * 60, "{retry}");
    // Even the right password is not checked now.
    let right = post(
        &c,
        &server,
        "/auth/login",
        json!({ "identifier": "frank@example.com", "password": PASSWORD }),
    )
    .await;
    assert_eq!(right.status, 429);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_refreshes_exactly_one_wins() {
    let dir = TestDir::new("race-refresh");
    let server = Server::start(&dir, &[]);
    let c = client();
    register(&c, &server, "grace@example.com").await;
    let out = login(&c, &server, "grace@example.com").await;
    let refresh = out.body["data"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = server.url("/auth/refresh");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (c, url, refresh) = (c.clone(), url.clone(), refresh.clone());
            tokio::spawn(async move {
                send(
                    &c,
                    Method::POST,
                    &url,
                    &[],
                    Some(json!({ "refreshToken": refresh })),
                )
                .await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 401),
        "{statuses:?}"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_registrations_exactly_one_wins() {
    let dir = TestDir::new("race-register");
    // More than the default 10 registrations per address and hour.
    let server = Server::start(&dir, &[("SENTRI_REGISTER_MAX_PER_HOUR", "100")]);
    let c = client();
    let url = server.url("/auth/register");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move {
                send(
                    &c,
                    Method::POST,
                    &url,
                    &[],
                    Some(json!({ "identifier": "heidi@example.com", "password": PASSWORD })),
                )
                .await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        replies
            .iter()
            .all(|r| r.status == 201 || (r.status == 409 && r.code() == "USER_ALREADY_EXISTS")),
        "{statuses:?}"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn x_forwarded_for_only_from_trusted_proxies() {
    for (trusted, want) in [(None, "127.0.0.1"), (Some("127.0.0.1"), "203.0.113.7")] {
        let dir = TestDir::new("proxies");
        let env: Vec<(&str, &str)> = trusted
            .map(|t| ("SENTRI_TRUSTED_PROXIES", t))
            .into_iter()
            .collect();
        let server = Server::start(&dir, &env);
        let c = client();
        register(&c, &server, "quinn@example.com").await;
        let r = send(
            &c,
            Method::POST,
            &server.url("/auth/login"),
            &[("x-forwarded-for", "203.0.113.7")],
            Some(json!({ "identifier": "quinn@example.com", "password": PASSWORD })),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let access = r.body["data"]["accessToken"].as_str().unwrap().to_owned();
        let sessions = get_bearer(&c, &server, "/auth/sessions", &access).await;
        assert_eq!(
            sessions.body["data"]["sessions"][0]["ip"], want,
            "trusted: {trusted:?}"
        );
        server.stop();
    }
}
