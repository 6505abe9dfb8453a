//! The HTTP surface of `sentri_core::http` tested directly on the memory
//! store, without a web framework.
#![cfg(feature = "http")]

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};

use sentri_core::ErrorCode;
use serde_json::{Value, json};

use bytes::Bytes;
use sentri_core::clock::Clock;
use sentri_core::config::{ConfigBuilder, CookieConfig, CookieTransport};
use sentri_core::http::{Api, Request, Route, TokenSource};
use sentri_core::password::PasswordPolicy;
use sentri_core::store::Stores;
use sentri_core::{Config, Sentri};

const PASSWORD: &str = "correct horse battery staple";

fn base() -> ConfigBuilder {
    Config::builder()
        .hs256("test-secret-test-secret-test-secret!")
        .valid_roles(["user", "admin"])
        .password_policy(PasswordPolicy::argon2id(256, 1, 1))
}

async fn api_with(builder: ConfigBuilder) -> (Api, Clock) {
    let stores = Stores::from_backend(Arc::new(sentri_memory::MemoryStore::new()));
    let clock = Clock::manual_at_now();
    let sentri = Sentri::with_clock(builder.build().unwrap(), stores, clock.clone())
        .await
        .unwrap();
    (Api::new(sentri, "/auth"), clock)
}

fn post(path: &str, body: Value) -> Request {
    Request::new(Method::POST, path)
        .header("content-type", "application/json")
        .body(body.to_string())
        .peer("192.0.2.1:5000".parse().unwrap())
}

fn json_of(res: &http::Response<Bytes>) -> Value {
    serde_json::from_slice(res.body()).unwrap()
}

fn set_cookies(res: &http::Response<Bytes>) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

async fn signed_in(api: &Api, who: &str) -> http::Response<Bytes> {
    let body = json!({"identifier": who, "password": PASSWORD});
    let res = api
        .call(Route::Register, &post("/auth/register", body.clone()), None)
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = api
        .call(Route::Login, &post("/auth/login", body), None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res
}

#[tokio::test]
async fn register_answers_201_with_the_user_in_the_envelope() {
    let (api, _) = api_with(base()).await;
    let res = api
        .dispatch(&post(
            "/auth/register",
            json!({"identifier": "Alice@Example.com", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body = json_of(&res);
    assert_eq!(body["error"], false);
    assert_eq!(body["statusCode"], 201);
    assert_eq!(body["data"]["user"]["identifier"], "Alice@Example.com");
    assert!(!String::from_utf8_lossy(res.body()).contains(PASSWORD));
}

#[tokio::test]
async fn input_problems_are_validation_errors_in_the_envelope() {
    let (api, _) = api_with(base().body_limit(1024)).await;
    let cases = [
        (
            Request::new(Method::POST, "/auth/login").body("{}"),
            "Content-Type: must be application/json",
        ),
        (
            post("/auth/login", json!({"identifier": "a"})),
            "password: is required",
        ),
        (
            post("/auth/login", json!({"identifier": 5, "password": "x"})),
            "identifier: must be a string",
        ),
        (
            post(
                "/auth/login",
                json!({"identifier": "a", "password": "p", "x": 1}),
            ),
            "x: unknown field",
        ),
        (
            post(
                "/auth/login",
                json!({"identifier": "a".repeat(300), "password": "p"}),
            ),
            "identifier: must be at most 254 characters",
        ),
    ];
    for (req, message) in cases {
        let res = api.call(Route::Login, &req, None).await;
        assert_eq!(
            json_of(&res),
            json!({"error": true, "statusCode": 400, "code": "VALIDATION_ERROR", "message": message, "data": null})
        );
    }
    let res = api
        .call(
            Route::Login,
            &post(
                "/auth/login",
                json!({"identifier": "a".repeat(2000), "password": "p"}),
            ),
            None,
        )
        .await;
    assert_eq!(res.status(), 413);
    assert_eq!(json_of(&res)["code"], "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn refresh_cookie_transport_keeps_the_token_out_of_the_body() {
    let (api, _) = api_with(base().cookies(CookieConfig {
        transport: CookieTransport::Refresh,
        ..Default::default()
    }))
    .await;
    let res = signed_in(&api, "bob@example.com").await;
    let body = json_of(&res);
    assert!(body["data"].get("refreshToken").is_none());
    assert!(body["data"]["accessToken"].is_string());
    let cookies = set_cookies(&res);
    assert_eq!(cookies.len(), 1);
    assert!(cookies[0].starts_with("refresh_token="));
    assert!(
        cookies[0].ends_with("; Max-Age=604800; Path=/auth; HttpOnly; Secure; SameSite=Strict")
    );

    // Refresh by cookie; a foreign Origin is refused.
    let cookie = cookies[0].split(';').next().unwrap().to_owned();
    let evil = Request::new(Method::POST, "/auth/refresh")
        .header("cookie", &cookie)
        .header("host", "api.example.com")
        .header("origin", "https://evil.example");
    let res = api.call(Route::Refresh, &evil, None).await;
    assert_eq!(res.status(), 403);
    let ok = Request::new(Method::POST, "/auth/refresh")
        .header("cookie", &cookie)
        .header("host", "api.example.com")
        .header("origin", "https://api.example.com");
    let res = api.call(Route::Refresh, &ok, None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(set_cookies(&res).len(), 1);

    // Logout clears both cookies.
    let cookie = set_cookies(&res)[0].split(';').next().unwrap().to_owned();
    let res = api
        .call(
            Route::Logout,
            &Request::new(Method::POST, "/auth/logout").header("cookie", &cookie),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let cleared = set_cookies(&res);
    assert_eq!(cleared.len(), 2);
    assert!(cleared.iter().all(|c| c.contains("Max-Age=0")));
}

#[tokio::test]
async fn authenticate_prefers_bearer_and_refreshes_silently() {
    let (api, clock) = api_with(base().cookies(CookieConfig {
        transport: CookieTransport::Both,
        ..Default::default()
    }))
    .await;
    let res = signed_in(&api, "carol@example.com").await;
    let cookies: Vec<String> = set_cookies(&res)
        .iter()
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect();
    let cookie_header = cookies.join("; ");
    let get = Request::new(Method::GET, "/api/x").header("cookie", &cookie_header);
    let auth = api.authenticate(get.head()).await.unwrap();
    assert_eq!(auth.source, TokenSource::Cookie);
    assert!(auth.set_cookies.is_empty());

    let none = Request::new(Method::GET, "/api/x");
    assert_eq!(
        api.authenticate(none.head()).await.unwrap_err().code(),
        ErrorCode::Unauthorized
    );
    let bad = Request::new(Method::GET, "/api/x").header("authorization", "Bearer nope");
    assert_eq!(
        api.authenticate(bad.head()).await.unwrap_err().code(),
        ErrorCode::TokenInvalid
    );
    assert!(
        api.authenticate_optional(bad.head())
            .await
            .unwrap()
            .is_none()
    );

    clock.advance(Duration::from_secs(16 * 60));
    let auth = api.authenticate(get.head()).await.unwrap();
    assert_eq!(auth.user.identifier(), "carol@example.com");
    assert_eq!(auth.set_cookies.len(), 2);
    // Without the refresh cookie: expired.
    let only_access = Request::new(Method::GET, "/api/x").header("cookie", &cookies[1]);
    assert_eq!(
        api.authenticate(only_access.head())
            .await
            .unwrap_err()
            .code(),
        ErrorCode::TokenExpired
    );
}

#[tokio::test]
async fn idempotent_routes_replay_and_scope_by_caller() {
    let (api, _) = api_with(base()).await;
    let body = json!({"identifier": "dave@example.com", "password": PASSWORD});
    let req = post("/auth/register", body).header("x-idempotency-key", "k-1");
    let first = api.call(Route::Register, &req, None).await;
    assert_eq!(first.status(), 201);
    assert_eq!(first.headers()["x-request-id"], "k-1");
    let again = api.call(Route::Register, &req, None).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["x-idempotent-replayed"], "true");
    assert_eq!(again.body(), first.body());
    let other = post(
        "/auth/register",
        json!({"identifier": "x@example.com", "password": PASSWORD}),
    )
    .header("x-idempotency-key", "k-1");
    let res = api.call(Route::Register, &other, None).await;
    assert_eq!(res.status(), 422);
    let bad = post(
        "/auth/register",
        json!({"identifier": "e@example.com", "password": PASSWORD}),
    )
    .header("x-idempotency-key", "bad key");
    let res = api.call(Route::Register, &bad, None).await;
    assert_eq!(res.status(), 400);
}

/// A replay is the response as it was sent: the built-in route's replay
/// gets the security headers once (HSTS with Secure cookies, one value),
/// and an application's replay gets none the original did not have.
#[tokio::test]
async fn a_replay_gets_the_security_headers_once_and_adds_none() {
    let (api, _) = api_with(base().cookies(CookieConfig {
        transport: CookieTransport::Both,
        ..Default::default()
    }))
    .await;
    let body = json!({"identifier": "hsts@example.com", "password": PASSWORD});
    let req = post("/auth/register", body).header("x-idempotency-key", "k-hsts");
    for round in ["first", "replay"] {
        let res = api.dispatch(&req).await;
        assert_eq!(res.status(), 201, "{round}");
        let hsts: Vec<_> = res
            .headers()
            .get_all("strict-transport-security")
            .iter()
            .collect();
        assert_eq!(hsts.len(), 1, "{round}: {hsts:?}");
    }
    let app = post("/orders", json!({"n": 1})).header("x-idempotency-key", "k-app");
    let scope = sentri_core::http::caller_scope(api.sentri(), None, app.head());
    let run = || async {
        let mut res = http::Response::new(Bytes::from_static(b"{}"));
        *res.status_mut() = StatusCode::CREATED;
        res
    };
    let sentri = api.sentri();
    let first =
        sentri_core::http::idempotent(sentri, app.head(), &app.body, scope.clone(), |_| run())
            .await;
    let again =
        sentri_core::http::idempotent(sentri, app.head(), &app.body, scope, |_| run()).await;
    assert_eq!(again.headers()["x-idempotent-replayed"], "true");
    for name in ["strict-transport-security", "x-frame-options"] {
        assert!(!first.headers().contains_key(name), "{name}");
        assert!(
            !again.headers().contains_key(name),
            "the replay added {name}"
        );
    }
}

#[tokio::test]
async fn keys_are_published_only_for_asymmetric_signing() {
    let (api, _) = api_with(base()).await;
    let res = api
        .call(Route::Keys, &Request::new(Method::GET, "/auth/keys"), None)
        .await;
    assert_eq!(res.status(), 404);
    let (api, _) = api_with(
        Config::builder()
            .valid_roles(["user"])
            .password_policy(PasswordPolicy::argon2id(256, 1, 1)),
    )
    .await;
    let res = api
        .call(Route::Keys, &Request::new(Method::GET, "/auth/keys"), None)
        .await;
    assert_eq!(res.status(), 200);
    let jwks = json_of(&res);
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
    assert_eq!(res.headers()["cache-control"], "public, max-age=300");
}

/// `try_authenticate` answers exactly as `authenticate` would, or defers
/// (`None`) whenever the store, the application's check or a silent
/// refresh is needed.
#[tokio::test]
async fn try_authenticate_answers_as_authenticate_or_defers() {
    use sentri_core::SessionCheck;

    async fn same(api: &Api, req: &Request) -> Option<bool> {
        let now = api.try_authenticate(req.head())?;
        let waited = api.authenticate(req.head()).await;
        let optional_now = api.try_authenticate_optional(req.head()).unwrap();
        let optional_waited = api.authenticate_optional(req.head()).await;
        assert_eq!(
            optional_now
                .map(|a| a.map(|a| a.user))
                .map_err(|e| e.code()),
            optional_waited
                .map(|a| a.map(|a| a.user))
                .map_err(|e| e.code())
        );
        match (now, waited) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.user, b.user);
                assert_eq!(a.source, b.source);
                assert!(a.set_cookies.is_empty());
                Some(true)
            }
            (Err(a), Err(b)) => {
                assert_eq!(a.code(), b.code());
                Some(false)
            }
            (a, b) => panic!("try_authenticate {a:?} but authenticate {b:?}"),
        }
    }
    let bearer = |token: &str| {
        Request::new(Method::GET, "/api/x").header("authorization", &format!("Bearer {token}"))
    };

    for check in [
        SessionCheck::Stateless,
        SessionCheck::Always,
        SessionCheck::Cached(Duration::from_secs(30)),
    ] {
        let (api, clock) = api_with(base().session_check(check).cookies(CookieConfig {
            transport: CookieTransport::Both,
            ..Default::default()
        }))
        .await;
        let res = signed_in(&api, "dora@example.com").await;
        let token = json_of(&res)["data"]["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let good = bearer(&token);

        // Refusals that need nothing but the request are answered now, in
        // every mode.
        assert_eq!(same(&api, &bearer("nope")).await, Some(false), "{check:?}");
        let empty = Request::new(Method::GET, "/api/x").header("authorization", "Bearer");
        assert_eq!(same(&api, &empty).await, Some(false), "{check:?}");
        // No token at all: a silent refresh might still renew the pair.
        let none = Request::new(Method::GET, "/api/x");
        assert!(api.try_authenticate(none.head()).is_none());

        match check {
            SessionCheck::Stateless => {
                assert_eq!(same(&api, &good).await, Some(true));
            }
            SessionCheck::Always => {
                // The session store is asked on every request.
                assert!(api.try_authenticate(good.head()).is_none());
            }
            SessionCheck::Cached(_) => {
                // Cold: the store is asked; then the session is cached.
                assert!(api.try_authenticate(good.head()).is_none());
                api.authenticate(good.head()).await.unwrap();
                assert_eq!(same(&api, &good).await, Some(true));
                // Revoked: the cache forgets it at once, and the store says no.
                let user = api.authenticate(good.head()).await.unwrap().user;
                api.sentri()
                    .revoke_session(user.id(), user.session_id())
                    .await
                    .unwrap();
                assert!(api.try_authenticate(good.head()).is_none());
                assert_eq!(
                    api.authenticate(good.head()).await.unwrap_err().code(),
                    ErrorCode::TokenInvalid
                );
            }
            _ => unreachable!(),
        }

        // Expired: deferred, since a refresh cookie could renew it.
        clock.advance(Duration::from_secs(16 * 60));
        assert!(api.try_authenticate(good.head()).is_none(), "{check:?}");
        assert_eq!(
            api.authenticate(good.head()).await.unwrap_err().code(),
            ErrorCode::TokenExpired
        );
    }
}

fn security_header(res: &http::Response<Bytes>, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_response_carries_the_baseline_headers_and_hsts_with_secure_cookies() {
    let get = |path: &str| Request::new(Method::GET, path);
    for (cookies, hsts) in [
        (CookieTransport::Off, false),
        (CookieTransport::Refresh, true),
        (CookieTransport::Both, true),
    ] {
        let (api, _) = api_with(base().cookies(CookieConfig {
            transport: cookies,
            ..Default::default()
        }))
        .await;
        signed_in(&api, "h@example.com").await;
        let creds = json!({"identifier": "h@example.com", "password": PASSWORD});
        let responses = [
            api.dispatch(&post("/auth/login", creds)).await,
            api.dispatch(&get("/auth/me")).await,
            api.dispatch(&get("/auth/nope")).await,
            api.dispatch(&get("/auth/login")).await,
            api.dispatch(&post("/auth/login", json!({}))).await,
        ];
        for res in &responses {
            assert_eq!(
                security_header(res, "x-content-type-options").as_deref(),
                Some("nosniff")
            );
            assert_eq!(
                security_header(res, "referrer-policy").as_deref(),
                Some("no-referrer")
            );
            assert_eq!(
                security_header(res, "x-frame-options").as_deref(),
                Some("DENY")
            );
            assert_eq!(
                security_header(res, "strict-transport-security").is_some(),
                hsts,
                "{cookies:?} {}",
                res.status()
            );
        }
    }
    // Insecure cookies (plain HTTP): no HSTS.
    let (api, _) = api_with(base().cookies(CookieConfig {
        transport: CookieTransport::Both,
        secure: false,
        ..Default::default()
    }))
    .await;
    let res = api.dispatch(&post("/auth/login", json!({}))).await;
    assert!(security_header(&res, "strict-transport-security").is_none());
    assert_eq!(
        security_header(&res, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    // Errors rendered outside the routes carry the baseline too.
    let res = sentri_core::http::error_response(&sentri_core::Error::new(ErrorCode::Unauthorized));
    assert_eq!(
        security_header(&res, "x-frame-options").as_deref(),
        Some("DENY")
    );
}

#[tokio::test]
async fn cookie_refresh_from_the_same_host_over_another_scheme_or_port_is_refused() {
    let (api, _) = api_with(base().cookies(CookieConfig {
        transport: CookieTransport::Refresh,
        ..Default::default()
    }))
    .await;
    let res = signed_in(&api, "o@example.com").await;
    let mut cookie = set_cookies(&res)[0].split(';').next().unwrap().to_owned();
    let refresh = |cookie: &str, origin: &str| {
        Request::new(Method::POST, "/auth/refresh")
            .header("cookie", cookie)
            .header("host", "api.example.com")
            .header("origin", origin)
    };
    for origin in [
        "http://api.example.com",
        "https://api.example.com:8443",
        "http://api.example.com:443",
    ] {
        let res = api
            .call(Route::Refresh, &refresh(&cookie, origin), None)
            .await;
        assert_eq!(res.status(), 403, "{origin}");
        assert_eq!(json_of(&res)["code"], "FORBIDDEN");
    }
    let res = api
        .call(
            Route::Refresh,
            &refresh(&cookie, "https://api.example.com:443"),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    cookie = set_cookies(&res)[0].split(';').next().unwrap().to_owned();
    let res = api
        .call(
            Route::Refresh,
            &refresh(&cookie, "https://api.example.com"),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn the_access_cookie_can_be_http_only() {
    let (api, _) = api_with(base().cookies(CookieConfig {
        transport: CookieTransport::Both,
        access_http_only: true,
        ..Default::default()
    }))
    .await;
    let res = signed_in(&api, "p@example.com").await;
    let cookies = set_cookies(&res);
    let access = cookies
        .iter()
        .find(|c| c.starts_with("access_token="))
        .unwrap();
    assert!(access.contains("; HttpOnly"), "{access}");
    // It still authenticates.
    let jar = access.split(';').next().unwrap();
    let res = api
        .dispatch(&Request::new(Method::GET, "/auth/me").header("cookie", jar))
        .await;
    assert_eq!(res.status(), 200);
}

/// One client address for everything (issue 14, 10a): behind a trusted
/// proxy the anonymous idempotency scope and the address throttling and
/// sessions use (`client_info`) are the same, read from the right of every
/// `X-Forwarded-For` line; what the client wrote on the left changes
/// neither. Before, the scope read only the first header line, which the
/// client controls.
#[tokio::test]
async fn idempotency_scope_and_throttle_address_agree_behind_a_proxy() {
    use sentri_core::http::{Head, caller_scope};
    use sentri_core::idempotency::CallerScope;
    use std::net::{IpAddr, SocketAddr};

    let (api, _) = api_with(base().trusted_proxies(["10.0.0.0/8".parse().unwrap()])).await;
    let peer: SocketAddr = "10.1.2.3:443".parse().unwrap();
    let client: IpAddr = "198.51.100.7".parse().unwrap();
    let method = Method::POST;
    let uri: http::Uri = "/orders".parse().unwrap();
    let cases: [&[&str]; 5] = [
        &["198.51.100.7"],
        &["6.6.6.6, 198.51.100.7"],
        &["7.7.7.7,198.51.100.7, 10.9.9.9"],
        // The client sent its own header line; the proxy appended another.
        &["6.6.6.6", "198.51.100.7"],
        &["6.6.6.6, 5.5.5.5", "198.51.100.7, 10.0.0.1"],
    ];
    for lines in cases {
        let mut headers = http::HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", line.parse().unwrap());
        }
        let head = Head {
            method: &method,
            uri: &uri,
            headers: &headers,
            peer: Some(peer),
        };
        let scope = caller_scope(api.sentri(), None, head);
        assert_eq!(scope, CallerScope::Anonymous(Some(client)), "{lines:?}");
        assert_eq!(api.client_info(head).ip, Some(client), "{lines:?}");
    }
    // From an untrusted peer the header is ignored by both.
    let headers = {
        let mut h = http::HeaderMap::new();
        h.append("x-forwarded-for", "198.51.100.7".parse().unwrap());
        h
    };
    let stranger: SocketAddr = "203.0.113.9:5000".parse().unwrap();
    let head = Head {
        method: &method,
        uri: &uri,
        headers: &headers,
        peer: Some(stranger),
    };
    assert_eq!(
        caller_scope(api.sentri(), None, head),
        CallerScope::Anonymous(Some(stranger.ip()))
    );
    assert_eq!(api.client_info(head).ip, Some(stranger.ip()));
}

fn register_from(who: &str, password: &str, peer: &str) -> Request {
    Request::new(Method::POST, "/auth/register")
        .header("content-type", "application/json")
        .body(json!({"identifier": who, "password": password}).to_string())
        .peer(peer.parse().unwrap())
}

/// Self-registration is limited per client address (F-27): 10 per hour by
/// default, then 429 with Retry-After; a refusal for bad input does not
/// count; another address is not affected; later the window moves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn self_registration_is_limited_per_address() {
    let (api, clock) = api_with(base()).await;
    let api = Arc::new(api);
    // A weak password is refused before hashing and is refunded.
    for _ in 0..3 {
        let res = api
            .call(
                Route::Register,
                &register_from("weak@example.com", "short", "192.0.2.50:1"),
                None,
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    // 30 at once from one address: exactly 10 are registered.
    let barrier = Arc::new(tokio::sync::Barrier::new(30));
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let (api, barrier) = (api.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let req = register_from(&format!("r{i}@example.com"), PASSWORD, "192.0.2.50:1");
                api.call(Route::Register, &req, None).await
            })
        })
        .collect();
    let mut created = 0;
    let mut limited = 0;
    for t in tasks {
        let res = t.await.unwrap();
        match res.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert_eq!(json_of(&res)["code"], "RATE_LIMITED");
                let retry: u64 = res.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=3600).contains(&retry), "{retry}");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((created, limited), (10, 20));
    // Another address still may; an IPv6 client counts by its /64.
    let res = api
        .call(
            Route::Register,
            &register_from("other@example.com", PASSWORD, "192.0.2.51:1"),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    // After the hour, the address may register again.
    clock.advance(Duration::from_secs(3601));
    let res = api
        .call(
            Route::Register,
            &register_from("later@example.com", PASSWORD, "192.0.2.50:1"),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

/// A back end registering with the configured API key is not limited.
#[tokio::test]
async fn registration_with_the_api_key_is_not_limited() {
    let (api, _clock) = api_with(base().api_key("registration-api-key-123").throttle(
        sentri_core::config::ThrottleConfig {
            max_registrations_per_ip: 2,
            ..Default::default()
        },
    ))
    .await;
    for i in 0..5 {
        let req = register_from(&format!("k{i}@example.com"), PASSWORD, "192.0.2.60:1")
            .header("x-api-key", "registration-api-key-123");
        assert_eq!(
            api.call(Route::Register, &req, None).await.status(),
            StatusCode::CREATED
        );
    }
}
