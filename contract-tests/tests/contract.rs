//! The HTTP contract of SPEC §6, run against every adapter over real
//! sockets: statuses, envelopes and the headers that matter must be equal.

use std::sync::Arc;
use std::time::Duration;

use sentri_contract_tests::{Backend, Outcome, PASSWORD, Req, Server, base, contract, contract_on};
use sentri_core::SessionCheck;
use sentri_core::config::{CookieConfig, CookieTransport, ThrottleConfig};
use serde_json::{Value, json};

/// The challenge of a 401 for a bad token (RFC 6750 §3.1).
const INVALID_TOKEN: &str = r#"Bearer error="invalid_token""#;

fn creds(identifier: &str) -> Value {
    json!({"identifier": identifier, "password": PASSWORD})
}

/// Register and log in: the login outcome.
async fn signed_in(c: &Server, identifier: &str) -> sentri_contract_tests::Outcome {
    c.send(
        "register",
        Req::json("POST", "/auth/register", &creds(identifier)),
        201,
    )
    .await;
    c.send(
        "login",
        Req::json("POST", "/auth/login", &creds(identifier)),
        200,
    )
    .await
}

/// Bootstrap the admin `root@example.com` and log in: its access token.
async fn admin_token(c: &Server) -> String {
    c.sentri
        .bootstrap_admin("root@example.com", PASSWORD)
        .await
        .unwrap();
    let admin = c
        .send(
            "admin login",
            Req::json("POST", "/auth/login", &creds("root@example.com")),
            200,
        )
        .await;
    token(&admin, "accessToken")
}

/// The claims of a JWT, read without checking it.
fn jwt_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn token(out: &sentri_contract_tests::Outcome, key: &str) -> String {
    out.data()[key].as_str().expect("a token").to_owned()
}

#[tokio::test]
async fn every_route_success_and_error_paths() {
    contract(base, |c: Arc<Server>| async move {
        let c = &*c;
        let login = signed_in(c, "alice@example.com").await;
        // No cookies: no HSTS (the baseline headers are checked on every
        // response by `fetch`).
        assert!(!login.headers.contains_key("strict-transport-security"));
        let at = token(&login, "accessToken");
        let rt = token(&login, "refreshToken");
        let uid = login.data()["user"]["id"].as_str().unwrap().to_owned();
        // register
        c.send("register duplicate", Req::json("POST", "/auth/register", &creds("ALICE@example.com")), 409).await;
        c.send("register bad identifier", Req::json("POST", "/auth/register", &creds("   ")), 400).await;
        c.send("register short password", Req::json("POST", "/auth/register", &json!({"identifier": "b@example.com", "password": "short"})), 400).await;
        c.send("register unknown role", Req::json("POST", "/auth/register", &json!({"identifier": "b@example.com", "password": PASSWORD, "roles": ["root"]})), 400).await;
        c.send("register roles without api key", Req::json("POST", "/auth/register", &json!({"identifier": "b@example.com", "password": PASSWORD, "roles": ["admin"]})), 403).await;
        // login
        c.send("login wrong password", Req::json("POST", "/auth/login", &json!({"identifier": "alice@example.com", "password": "wrong password"})), 401).await;
        c.send("login unknown", Req::json("POST", "/auth/login", &creds("nobody@example.com")), 401).await;
        // me
        c.send("me", Req::get("/auth/me").bearer(&at), 200).await;
        let missing = c.send("me no token", Req::get("/auth/me"), 401).await;
        assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
        let bad = c.send("me bad token", Req::get("/auth/me").bearer("x.y.z"), 401).await;
        assert_eq!(bad.header("www-authenticate"), Some(INVALID_TOKEN));
        let basic = c.send("me basic auth", Req::get("/auth/me").header("authorization", "Basic Zm9vOmJhcg=="), 401).await;
        assert_eq!(basic.header("www-authenticate"), Some("Bearer"));
        let empty = c.send("me empty bearer", Req::get("/auth/me").header("authorization", "Bearer "), 401).await;
        assert_eq!(empty.header("www-authenticate"), Some(INVALID_TOKEN));
        // The refresh token is not an access token, nor the reverse.
        let swapped = c.send("me with the refresh token", Req::get("/auth/me").bearer(&rt), 401).await;
        assert_eq!(swapped.header("www-authenticate"), Some(INVALID_TOKEN));
        c.send("refresh with the access token", Req::json("POST", "/auth/refresh", &json!({"refreshToken": at})), 401).await;
        let wrong = c.send("login wrong password again", Req::json("POST", "/auth/login", &json!({"identifier": "alice@example.com", "password": "wrong password"})), 401).await;
        assert_eq!(wrong.header("www-authenticate"), None, "a login failure is no bearer challenge");
        // refresh
        let r = c.send("refresh", Req::json("POST", "/auth/refresh", &json!({"refreshToken": rt})), 200).await;
        let rt2 = token(&r, "refreshToken");
        let at2 = token(&r, "accessToken");
        c.send("refresh missing token", Req::json("POST", "/auth/refresh", &json!({})), 400).await;
        c.send("refresh no body", Req::new("POST", "/auth/refresh"), 400).await;
        c.send("refresh garbage", Req::json("POST", "/auth/refresh", &json!({"refreshToken": "garbage"})), 401).await;
        c.send("refresh reuse revokes", Req::json("POST", "/auth/refresh", &json!({"refreshToken": rt})), 401).await;
        // Inside the reuse grace the rotated token may still work: only
        // equality between the adapters is required here.
        c.any("refresh after reuse", Req::json("POST", "/auth/refresh", &json!({"refreshToken": rt2}))).await;
        c.any("me after reuse", Req::get("/auth/me").bearer(&at2)).await;
        // sessions
        let l1 = c.send("login 1", Req::json("POST", "/auth/login", &creds("alice@example.com")), 200).await;
        let l2 = c.send("login 2", Req::json("POST", "/auth/login", &creds("alice@example.com")), 200).await;
        let at = token(&l1, "accessToken");
        let list = c.send("sessions", Req::get("/auth/sessions").bearer(&at), 200).await;
        let other = list.data()["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["current"] == false)
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .unwrap();
        c.send("sessions no token", Req::get("/auth/sessions"), 401).await;
        c.send("revoke session bad id", Req::new("DELETE", "/auth/sessions/not-a-session").bearer(&at), 400).await;
        c.send("revoke session unknown", Req::new("DELETE", "/auth/sessions/0190f5b0-0000-7000-8000-000000000000").bearer(&at), 404).await;
        c.send("revoke session", Req::new("DELETE", &format!("/auth/sessions/{other}")).bearer(&at), 200).await;
        c.send("revoked session token", Req::get("/auth/me").bearer(&token(&l2, "accessToken")), 401).await;
        // identifier and password
        c.send("change identifier no password", Req::json("PUT", "/auth/me/identifier", &json!({"newIdentifier": "al@example.com"})).bearer(&at), 400).await;
        c.send("change identifier wrong password", Req::json("PUT", "/auth/me/identifier", &json!({"newIdentifier": "al@example.com", "currentPassword": "wrong password"})).bearer(&at), 401).await;
        let l3 = c.send("login 3", Req::json("POST", "/auth/login", &creds("alice@example.com")), 200).await;
        c.send("change identifier", Req::json("PUT", "/auth/me/identifier", &json!({"newIdentifier": "al@example.com", "currentPassword": PASSWORD})).bearer(&at), 200).await;
        c.send("own session after identifier change", Req::get("/auth/me").bearer(&at), 200).await;
        c.send("other session after identifier change", Req::get("/auth/me").bearer(&token(&l3, "accessToken")), 401).await;
        c.send("change identifier missing", Req::json("PUT", "/auth/me/identifier", &json!({})).bearer(&at), 400).await;
        c.send("register taken", Req::json("POST", "/auth/register", &creds("zed@example.com")), 201).await;
        c.send("change identifier taken", Req::json("PUT", "/auth/me/identifier", &json!({"newIdentifier": "zed@example.com", "currentPassword": PASSWORD})).bearer(&at), 409).await;
        c.send("change password wrong", Req::json("PUT", "/auth/me/password", &json!({"currentPassword": "wrong password", "newPassword": "another long password"})).bearer(&at), 401).await;
        c.send("change password short", Req::json("PUT", "/auth/me/password", &json!({"currentPassword": PASSWORD, "newPassword": "short"})).bearer(&at), 400).await;
        c.send("change password", Req::json("PUT", "/auth/me/password", &json!({"currentPassword": PASSWORD, "newPassword": "another long password"})).bearer(&at), 200).await;
        c.send("old session after password change", Req::get("/auth/me").bearer(&at), 401).await;
        let fresh = c.send("login new password", Req::json("POST", "/auth/login", &json!({"identifier": "al@example.com", "password": "another long password"})), 200).await;
        let at = token(&fresh, "accessToken");
        // roles
        c.send("assign roles not admin", Req::json("POST", &format!("/auth/users/{uid}/roles"), &json!({"roles": ["editor"]})).bearer(&at), 403).await;
        c.sentri.bootstrap_admin("root@example.com", PASSWORD).await.unwrap();
        let admin = c.send("admin login", Req::json("POST", "/auth/login", &creds("root@example.com")), 200).await;
        let admin = token(&admin, "accessToken");
        c.send("assign roles", Req::json("POST", &format!("/auth/users/{uid}/roles"), &json!({"roles": ["editor"]})).bearer(&admin), 200).await;
        c.send("assign unknown role", Req::json("POST", &format!("/auth/users/{uid}/roles"), &json!({"roles": ["root"]})).bearer(&admin), 400).await;
        c.send("assign roles bad user id", Req::json("POST", "/auth/users/nope/roles", &json!({"roles": ["editor"]})).bearer(&admin), 400).await;
        c.send("assign roles unknown user", Req::json("POST", "/auth/users/0190f5b0-0000-7000-8000-000000000000/roles", &json!({"roles": ["editor"]})).bearer(&admin), 404).await;
        c.send("assign roles missing", Req::json("POST", &format!("/auth/users/{uid}/roles"), &json!({})).bearer(&admin), 400).await;
        c.send("revoke roles", Req::json("DELETE", &format!("/auth/users/{uid}/roles"), &json!({"roles": ["editor"]})).bearer(&admin), 200).await;
        c.send("revoke roles no token", Req::json("DELETE", &format!("/auth/users/{uid}/roles"), &json!({"roles": ["editor"]})), 401).await;
        // keys (HMAC: nothing published)
        c.send("keys", Req::get("/auth/keys"), 404).await;
        // logout
        let l = c.send("login for logout", Req::json("POST", "/auth/login", &json!({"identifier": "al@example.com", "password": "another long password"})), 200).await;
        c.send("logout by refresh token", Req::json("POST", "/auth/logout", &json!({"refreshToken": token(&l, "refreshToken")})), 200).await;
        c.send("logout nothing", Req::new("POST", "/auth/logout"), 401).await;
        c.send("logout by access token", Req::new("POST", "/auth/logout").bearer(&at), 200).await;
        c.send("logout-all no token", Req::new("POST", "/auth/logout-all"), 401).await;
        c.send("logout-all", Req::new("POST", "/auth/logout-all").bearer(&admin), 200).await;
        c.send("after logout-all", Req::get("/auth/me").bearer(&admin), 401).await;
    })
    .await;
}

#[tokio::test]
async fn register_with_an_api_key() {
    contract(
        || base().api_key("a-long-enough-api-key"),
        |c: Arc<Server>| async move {
            let body =
                json!({"identifier": "c@example.com", "password": PASSWORD, "roles": ["admin"]});
            c.send("no key", Req::json("POST", "/auth/register", &body), 401)
                .await;
            c.send(
                "wrong key",
                Req::json("POST", "/auth/register", &body)
                    .header("x-api-key", "wrong-key-wrong-key"),
                401,
            )
            .await;
            c.send(
                "no key, bad body",
                Req::json("POST", "/auth/register", &json!({})),
                401,
            )
            .await;
            c.send(
                "key",
                Req::json("POST", "/auth/register", &body)
                    .header("x-api-key", "a-long-enough-api-key"),
                201,
            )
            .await;
        },
    )
    .await;
}

#[tokio::test]
async fn every_rejection_kind_is_the_same_envelope() {
    contract(base, |c: Arc<Server>| async move {
        let login = |body: &str| {
            Req::new("POST", "/auth/login")
                .header("content-type", "application/json")
                .raw(body)
        };
        c.send("truncated JSON", login("{\"identifier\":"), 400)
            .await;
        c.send("malformed JSON", login("{nope}"), 400).await;
        c.send("not an object", login("[]"), 400).await;
        c.send(
            "wrong content type",
            Req::new("POST", "/auth/login")
                .header("content-type", "text/plain")
                .raw("{}"),
            400,
        )
        .await;
        c.send(
            "no content type",
            Req::new("POST", "/auth/login").raw("{}"),
            400,
        )
        .await;
        c.send(
            "json suffix content type",
            Req::new("POST", "/auth/login")
                .header("content-type", "application/problem+json; charset=utf-8")
                .raw(creds("x@example.com").to_string()),
            401,
        )
        .await;
        c.send("missing field", login(r#"{"identifier":"x"}"#), 400)
            .await;
        c.send(
            "wrong type",
            login(r#"{"identifier":1,"password":"x"}"#),
            400,
        )
        .await;
        c.send(
            "unknown field",
            login(r#"{"identifier":"x","password":"y","admin":true}"#),
            400,
        )
        .await;
        let long = format!(r#"{{"identifier":"{}","password":"y"}}"#, "a".repeat(255));
        c.send("over-long field", login(&long), 400).await;
        let huge = format!(
            r#"{{"identifier":"{}","password":"y"}}"#,
            "a".repeat(20_000)
        );
        c.send("body over the limit", login(&huge), 413).await;
        c.send(
            "bad path parameter",
            Req::new("DELETE", "/auth/sessions/%20x"),
            401,
        )
        .await;
        c.send(
            "unknown route under the prefix",
            Req::get("/auth/nope"),
            404,
        )
        .await;
        c.send("unknown route", Req::get("/nope"), 404).await;
        c.send("wrong method", Req::get("/auth/login"), 405).await;
        c.send(
            "wrong method on a parameter route",
            Req::get("/auth/users/x/roles"),
            405,
        )
        .await;
        // axum's router adds `Allow` on its own routes; poem's `RouteMethod`
        // does not know the other methods: the envelope and status must
        // agree, the header is not compared for application routes.
        let mut wrong = c.fetch(Req::get("/echo")).await;
        assert_eq!(wrong.status, 405);
        wrong.headers.remove("allow");
        c.record("wrong method on an app route", &wrong);
        // The application's extractors.
        let echo = |ct: &str, body: &str| {
            Req::new("POST", "/echo")
                .header("content-type", ct)
                .raw(body)
        };
        c.send("echo", echo("application/json", r#"{"a":1}"#), 200)
            .await;
        c.send("echo wrong content type", echo("text/plain", "{}"), 400)
            .await;
        c.send("echo malformed", echo("application/json", "{"), 400)
            .await;
        let big = format!("\"{}\"", "a".repeat(3 * 1024 * 1024));
        c.send("echo over the limit", echo("application/json", &big), 413)
            .await;
        c.send("query", Req::get("/search?q=rust&page=2"), 200)
            .await;
        c.send(
            "query wrong type",
            Req::get("/search?q=rust&page=many"),
            400,
        )
        .await;
        c.send("query missing field", Req::get("/search?q=rust"), 400)
            .await;
    })
    .await;
}

#[tokio::test]
async fn typed_bodies_app_errors_and_panics() {
    contract(base, |c: Arc<Server>| async move {
        let at = token(&signed_in(&c, "t@example.com").await, "accessToken");
        let order = |body: Value| Req::json("POST", "/orders", &body).bearer(&at);
        c.send("order", order(json!({"item": "x", "quantity": 1})), 201)
            .await;
        c.send("order missing field", order(json!({"item": "x"})), 400)
            .await;
        c.send(
            "order wrong type",
            order(json!({"item": "x", "quantity": "many"})),
            400,
        )
        .await;
        c.send(
            "order negative",
            order(json!({"item": "x", "quantity": -1})),
            400,
        )
        .await;
        c.send(
            "app error",
            order(json!({"item": "fail", "quantity": 1})),
            409,
        )
        .await;
        c.send("app error with its own status", Req::get("/payment"), 402)
            .await;
        let panic = c.send("panic", Req::get("/panic"), 500).await;
        assert!(!panic.body.to_string().contains("secret"));
    })
    .await;
}

#[tokio::test]
async fn user_route_behind_protect_authorize_permit_require_self() {
    contract(base, user_routes).await;
}

/// The same routes when `protect` answers from memory: every request in
/// `Stateless` mode, and once the session is cached in `Cached` mode.
#[tokio::test]
async fn user_route_in_stateless_and_cached_modes() {
    contract(
        || base().session_check(SessionCheck::Stateless),
        user_routes,
    )
    .await;
    contract(
        || base().session_check(SessionCheck::Cached(Duration::from_secs(30))),
        user_routes,
    )
    .await;
}

async fn user_routes(c: Arc<Server>) {
    let login = signed_in(&c, "u@example.com").await;
    let at = token(&login, "accessToken");
    let uid = login.data()["user"]["id"].as_str().unwrap().to_owned();
    let other = "0190f5b0-0000-7000-8000-000000000000";
    let note = |user: &str| {
        Req::json(
            "POST",
            &format!("/users/{user}/notes"),
            &json!({"text": "hi"}),
        )
    };
    c.send("own", note(&uid).bearer(&at), 201).await;
    let missing = c.send("no token", note(&uid), 401).await;
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    let bad = c.send("bad token", note(&uid).bearer("nope"), 401).await;
    assert_eq!(bad.header("www-authenticate"), Some(INVALID_TOKEN));
    c.send("someone else", note(other).bearer(&at), 403).await;
    c.send(
        "permit refuses",
        note(&uid).bearer(&at).header("x-deny", "1"),
        403,
    )
    .await;
    c.send(
        "own, bad body",
        Req::json("POST", &format!("/users/{uid}/notes"), &json!(null))
            .bearer(&at)
            .raw("{"),
        400,
    )
    .await;
    let profile = c
        .send("profile", Req::get("/profile").bearer(&at), 200)
        .await;
    assert_eq!(profile.data()["identifier"], "u@example.com");
    c.send("profile no token", Req::get("/profile"), 401).await;
    let feed = c.send("feed", Req::get("/feed").bearer(&at), 200).await;
    assert_eq!(feed.data()["identifier"], "u@example.com");
    let feed = c.send("feed anonymous", Req::get("/feed"), 200).await;
    assert_eq!(feed.data()["identifier"], Value::Null);
    let feed = c
        .send("feed bad token", Req::get("/feed").bearer("bad"), 200)
        .await;
    assert_eq!(feed.data()["identifier"], Value::Null);
    c.send("admin refused", Req::get("/admin").bearer(&at), 403)
        .await;
    let admin = admin_token(&c).await;
    c.send("admin", Req::get("/admin").bearer(&admin), 200)
        .await;
    c.send("admin is not self", note(&uid).bearer(&admin), 403)
        .await;
    c.clock.advance(Duration::from_secs(16 * 60));
    let expired = c
        .send("expired token", Req::get("/profile").bearer(&at), 401)
        .await;
    assert_eq!(
        expired.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token", error_description="The access token expired""#)
    );
    let feed = c
        .send("expired token, feed", Req::get("/feed").bearer(&at), 200)
        .await;
    assert_eq!(feed.data()["identifier"], Value::Null);
}

fn cookies_both() -> sentri_core::config::ConfigBuilder {
    base().cookies(CookieConfig {
        transport: CookieTransport::Both,
        ..Default::default()
    })
}

#[tokio::test]
async fn cookies_mode_csrf_and_silent_refresh() {
    contract(cookies_both, |c: Arc<Server>| async move {
        let login = signed_in(&c, "k@example.com").await;
        // Secure cookies: the service is on HTTPS, and says so.
        assert_eq!(
            login.headers.get("strict-transport-security"),
            Some(&vec!["max-age=31536000".to_owned()])
        );
        let rt = login.cookie("refresh_token").unwrap();
        let at = login.cookie("access_token").unwrap();
        let jar = format!("refresh_token={rt}; access_token={at}");
        let me = || Req::get("/auth/me").header("cookie", &jar);
        c.send("me by cookie", me(), 200).await;
        c.send(
            "profile by cookie",
            Req::get("/profile").header("cookie", &jar),
            200,
        )
        .await;
        // CSRF on state-changing cookie requests.
        let order = |origin: Option<&str>| {
            let r = Req::json("POST", "/orders", &json!({"item": "x", "quantity": 1}))
                .header("cookie", &jar);
            match origin {
                Some(o) => r.header("origin", o),
                None => r,
            }
        };
        c.send(
            "cookie POST, foreign origin",
            order(Some("https://evil.example")),
            403,
        )
        .await;
        c.send("cookie POST, null origin", order(Some("null")), 403)
            .await;
        c.send("cookie POST, own origin", order(Some(&c.base)), 201)
            .await;
        c.send("cookie POST, no origin", order(None), 201).await;
        c.send(
            "cookie POST, cross-site fetch",
            order(None).header("sec-fetch-site", "cross-site"),
            403,
        )
        .await;
        c.send(
            "bearer POST, foreign origin",
            Req::json("POST", "/orders", &json!({"item": "x", "quantity": 1}))
                .bearer(&at)
                .header("origin", "https://evil.example"),
            201,
        )
        .await;
        c.send(
            "refresh by cookie, foreign origin",
            Req::new("POST", "/auth/refresh")
                .header("cookie", &jar)
                .header("origin", "https://evil.example"),
            403,
        )
        .await;
        // Silent refresh: the access token expired, the refresh cookie is valid.
        c.clock.advance(Duration::from_secs(16 * 60));
        let refreshed = c
            .send(
                "silent refresh",
                Req::get("/profile").header("cookie", &jar),
                200,
            )
            .await;
        assert_eq!(refreshed.headers["set-cookie"].len(), 2);
        // The old cookies again, within the reuse grace: a parallel
        // request of the same page, authenticated without rotating.
        let parallel = c
            .send(
                "old cookies within the grace: the user, not an admin",
                Req::get("/admin").header("cookie", &jar),
                403,
            )
            .await;
        assert!(!parallel.headers.contains_key("set-cookie"));
        let rt = refreshed.cookie("refresh_token").unwrap();
        let at = refreshed.cookie("access_token").unwrap();
        let jar = format!("refresh_token={rt}; access_token={at}");
        c.send(
            "me with the new cookies",
            Req::get("/auth/me").header("cookie", &jar),
            200,
        )
        .await;
        c.send(
            "expired access only",
            Req::get("/profile").header(
                "cookie",
                &format!("access_token={}", token(&login, "accessToken")),
            ),
            401,
        )
        .await;
        let r = c
            .send(
                "refresh by cookie",
                Req::new("POST", "/auth/refresh").header("cookie", &jar),
                200,
            )
            .await;
        assert!(r.data().get("refreshToken").is_none());
        let jar = format!(
            "refresh_token={}; access_token={}",
            r.cookie("refresh_token").unwrap(),
            r.cookie("access_token").unwrap()
        );
        c.send(
            "logout clears cookies",
            Req::new("POST", "/auth/logout").header("cookie", &jar),
            200,
        )
        .await;
        c.send(
            "after logout",
            Req::get("/auth/me").header("cookie", &jar),
            401,
        )
        .await;
    })
    .await;
}

/// Issue 14 item 4 (F-24): eight parallel cookie requests after the access
/// TTL, all carrying the same expired access cookie and refresh cookie,
/// over real sockets: every one is answered 200, exactly one rotates the
/// pair, and the session lives on with the winner's cookies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_cookie_requests_after_the_access_ttl_all_succeed() {
    contract(
        || cookies_both().reuse_grace("1m"),
        |c: Arc<Server>| async move {
            let login = signed_in(&c, "tabs@example.com").await;
            let jar = format!(
                "refresh_token={}; access_token={}",
                login.cookie("refresh_token").unwrap(),
                login.cookie("access_token").unwrap()
            );
            c.clock.advance(Duration::from_secs(16 * 60));
            let barrier = Arc::new(tokio::sync::Barrier::new(8));
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let (c, barrier, jar) = (c.clone(), barrier.clone(), jar.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        c.fetch(Req::get("/profile").header("cookie", &jar)).await
                    })
                })
                .collect();
            let mut statuses = Vec::new();
            let mut rotated = Vec::new();
            for task in tasks {
                let out = task.await.unwrap();
                statuses.push(out.status);
                if out.headers.contains_key("set-cookie") {
                    rotated.push(out);
                }
            }
            assert_eq!(statuses, [200; 8], "{:?}", c.adapter);
            assert_eq!(rotated.len(), 1, "{:?}: one request rotates", c.adapter);
            c.record("the rotating request", &rotated[0]);
            let jar = format!(
                "refresh_token={}; access_token={}",
                rotated[0].cookie("refresh_token").unwrap(),
                rotated[0].cookie("access_token").unwrap()
            );
            c.send(
                "the winner's cookies",
                Req::get("/auth/me").header("cookie", &jar),
                200,
            )
            .await;
        },
    )
    .await;
}

/// A refresh whose response is lost (F-11, the default reuse grace of
/// 10 s): the client retries with the token it still has. Within the grace
/// the retry is refused without revoking (SPEC: "a refresh call with it is
/// refused TOKEN_INVALID without revoking"), so the session and the pair
/// the lost response carried stay valid; after the grace the same retry is
/// reuse: the session is revoked and `on_token_reuse` fires.
#[tokio::test]
async fn a_lost_refresh_response_retried_within_the_grace_keeps_the_session() {
    let reuses = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let config = {
        let reuses = reuses.clone();
        move || {
            let reuses = reuses.clone();
            base().hooks(
                sentri_core::hooks::Hooks::new().on_token_reuse(move |_, _| {
                    reuses.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async { Ok(()) }
                }),
            )
        }
    };
    contract(config, |c: Arc<Server>| {
        let reuses = reuses.clone();
        async move {
            assert_eq!(c.sentri.config().reuse_grace(), Duration::from_secs(10));
            let reused = || reuses.swap(0, std::sync::atomic::Ordering::SeqCst);
            reused();
            let refresh =
                |rt: &str| Req::json("POST", "/auth/refresh", &json!({"refreshToken": rt}));
            // First session: the retry comes 9 s after the lost response.
            let login = signed_in(&c, "lost@example.com").await;
            let (at, rt) = (token(&login, "accessToken"), token(&login, "refreshToken"));
            let lost = c.send("refresh (response lost)", refresh(&rt), 200).await;
            c.clock.advance(Duration::from_secs(9));
            let retry = c.send("retry within the grace", refresh(&rt), 401).await;
            assert_eq!(retry.body["code"], "TOKEN_INVALID");
            assert_eq!(reused(), 0, "a retry within the grace is not reuse");
            c.send("session kept", Req::get("/auth/me").bearer(&at), 200)
                .await;
            let kept = token(&lost, "refreshToken");
            c.send("the lost pair still rotates", refresh(&kept), 200)
                .await;
            // Second session: the retry comes 11 s after.
            let login = c
                .send(
                    "login",
                    Req::json("POST", "/auth/login", &creds("lost@example.com")),
                    200,
                )
                .await;
            let (at, rt) = (token(&login, "accessToken"), token(&login, "refreshToken"));
            let lost = c
                .send("refresh (response lost, again)", refresh(&rt), 200)
                .await;
            c.clock.advance(Duration::from_secs(11));
            let late = c.send("retry after the grace", refresh(&rt), 401).await;
            assert_eq!(late.body["message"], retry.body["message"], "one message");
            assert_eq!(reused(), 1, "a retry after the grace is reuse");
            c.send("session revoked", Req::get("/auth/me").bearer(&at), 401)
                .await;
            let dead = token(&lost, "refreshToken");
            c.send("the lost pair is revoked too", refresh(&dead), 401)
                .await;
        }
    })
    .await;
}

/// Issue 14 item 3 (F-11, F-12): a forged `<sid>.<random>` — the session id
/// is public in the access token — neither logs the session out nor
/// revokes it by refreshing; the answers are those of a real logout and of
/// any refused refresh.
#[tokio::test]
async fn a_forged_refresh_token_neither_logs_out_nor_revokes() {
    contract(base, |c: Arc<Server>| async move {
        let login = signed_in(&c, "victim@example.com").await;
        let access = token(&login, "accessToken");
        let real = token(&login, "refreshToken");
        let (sid, _) = real.split_once('.').unwrap();
        let forged = format!("{sid}.{}", "A".repeat(43));
        c.send(
            "logout with a forged secret answers as a real logout",
            Req::json("POST", "/auth/logout", &json!({"refreshToken": forged})),
            200,
        )
        .await;
        c.send("still signed in", Req::get("/auth/me").bearer(&access), 200)
            .await;
        c.clock.advance(Duration::from_secs(60));
        c.send(
            "refresh with a forged secret",
            Req::json("POST", "/auth/refresh", &json!({"refreshToken": forged})),
            401,
        )
        .await;
        c.send(
            "still signed in after the forged refresh",
            Req::get("/auth/me").bearer(&access),
            200,
        )
        .await;
        let next = c
            .send(
                "the real token still rotates",
                Req::json("POST", "/auth/refresh", &json!({"refreshToken": real})),
                200,
            )
            .await;
        c.send(
            "logout with the real secret",
            Req::json(
                "POST",
                "/auth/logout",
                &json!({"refreshToken": token(&next, "refreshToken")}),
            ),
            200,
        )
        .await;
        c.send(
            "signed out",
            Req::get("/auth/me").bearer(&token(&next, "accessToken")),
            401,
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn idempotent_replay_in_progress_and_reuse() {
    contract(base, |c: Arc<Server>| async move {
        let at = token(&signed_in(&c, "i@example.com").await, "accessToken");
        let keyed = |key: &str, body: &Value| {
            Req::json("POST", "/orders", body)
                .bearer(&at)
                .header("x-idempotency-key", key)
        };
        let book = json!({"item": "book", "quantity": 2});
        c.send("first", keyed("order-1", &book), 201).await;
        c.send("replay", keyed("order-1", &book), 201).await;
        c.send(
            "reused with another body",
            keyed("order-1", &json!({"item": "pen", "quantity": 1})),
            422,
        )
        .await;
        c.send("invalid key", keyed("bad key", &book), 400).await;
        c.send("over-long key", keyed(&"k".repeat(256), &book), 400)
            .await;
        let fail = json!({"item": "fail", "quantity": 1});
        c.send("error not stored", keyed("order-2", &fail), 409)
            .await;
        c.send("error runs again", keyed("order-2", &fail), 409)
            .await;
        let slow = json!({"item": "slow", "quantity": 1});
        let (a, b) = tokio::join!(c.fetch(keyed("order-3", &slow)), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            c.fetch(keyed("order-3", &slow)).await
        });
        c.record("concurrent first", &a);
        c.record("concurrent second (in progress)", &b);
        assert_eq!((a.status, b.status), (201, 409));
        let bob = token(&signed_in(&c, "bob@example.com").await, "accessToken");
        c.send(
            "another caller, same key",
            Req::json("POST", "/orders", &book)
                .bearer(&bob)
                .header("x-idempotency-key", "order-1"),
            201,
        )
        .await;
        c.send(
            "no key runs",
            Req::json("POST", "/orders", &book).bearer(&at),
            201,
        )
        .await;
        // Built-in routes.
        let rename = || {
            Req::json(
                "PUT",
                "/auth/me/identifier",
                &json!({"newIdentifier": "ii@example.com", "currentPassword": PASSWORD}),
            )
            .bearer(&at)
            .header("x-idempotency-key", "rename-1")
        };
        c.send("built-in first", rename(), 200).await;
        c.send("built-in replay", rename(), 200).await;
        let reg = || {
            Req::json("POST", "/auth/register", &creds("new@example.com"))
                .header("x-idempotency-key", "reg-1")
        };
        c.send("register first", reg(), 201).await;
        c.send("register replay", reg(), 201).await;
        let login = || {
            Req::json("POST", "/auth/login", &creds("new@example.com"))
                .header("x-idempotency-key", "login-1")
        };
        c.send("login is never stored", login(), 200).await;
        c.send("login is never replayed", login(), 200).await;
    })
    .await;
}

/// The lock TTL of the takeover scenario: long enough that eight
/// concurrent requests all reach the store within it on a loaded machine.
const TAKEOVER_LOCK_TTL: Duration = Duration::from_secs(5);

/// Send `n` copies of `req` at once; their outcomes arrive on the
/// receiver as each finishes.
fn burst(c: &Arc<Server>, req: &Req, n: usize) -> tokio::sync::mpsc::UnboundedReceiver<Outcome> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..n {
        let (c, req, tx) = (c.clone(), req.clone(), tx.clone());
        tokio::spawn(async move {
            let _ = tx.send(c.fetch(req).await);
        });
    }
    rx
}

/// The next `n` outcomes of a [`burst`]: each must be
/// `IDEMPOTENCY_IN_PROGRESS` (the handler did not run for it).
async fn expect_in_progress(
    c: &Server,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Outcome>,
    n: usize,
    label: &str,
) {
    for i in 0..n {
        let Ok(Some(r)) = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await else {
            panic!(
                "{:?} {label} #{i}: no answer in 60 s, {} gated runs: a duplicate ran the handler",
                c.adapter,
                c.gates.runs()
            );
        };
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (409, Some("IDEMPOTENCY_IN_PROGRESS")),
            "{:?} {label} #{i}: {:?}",
            c.adapter,
            r.body
        );
        c.record(label, &r);
    }
}

/// F-26 lease, with real concurrency: eight exact duplicates at once run
/// the handler once (A). A stalls past the lock TTL; eight more at once
/// take the key over, and again only one of them runs (B). A then fails:
/// its release is stale and must leave B's hold, so eight more concurrent
/// repeats get IDEMPOTENCY_IN_PROGRESS and none runs; after B finishes a
/// repeat is B's replay. The handler runs exactly twice.
async fn takeover_never_runs_a_duplicate(c: Arc<Server>) {
    let at = token(&signed_in(&c, "lease@example.com").await, "accessToken");
    let keyed = Req::json("POST", "/orders", &json!({"item": "gated", "quantity": 1}))
        .bearer(&at)
        .header("x-idempotency-key", "order-lease");
    let mut first = burst(&c, &keyed, 8);
    c.gates.wait_runs(1).await;
    expect_in_progress(&c, &mut first, 7, "duplicate while the first runs").await;
    assert_eq!(c.gates.runs(), 1, "a concurrent duplicate ran the handler");
    // A still runs (stalled) when its lock lapses.
    tokio::time::sleep(TAKEOVER_LOCK_TTL + Duration::from_millis(500)).await;
    let mut takeover = burst(&c, &keyed, 8);
    c.gates.wait_runs(2).await;
    expect_in_progress(&c, &mut takeover, 7, "duplicate of the takeover").await;
    assert_eq!(c.gates.runs(), 2, "two requests took the lapsed key over");
    // A fails late: its release must not free B's hold.
    c.gates.open(1);
    let a = first.recv().await.expect("A");
    c.record("stale holder fails", &a);
    assert_eq!(a.status, 409, "{:?}", a.body);
    assert_eq!(a.body["code"], "OUT_OF_STOCK", "{:?}", a.body);
    let mut repeats = burst(&c, &keyed, 8);
    expect_in_progress(&c, &mut repeats, 8, "exact repeat while the takeover runs").await;
    assert_eq!(c.gates.runs(), 2, "an exact repeat ran the handler again");
    c.gates.open(2);
    let b = takeover.recv().await.expect("B");
    c.record("takeover completes", &b);
    assert_eq!(b.status, 201, "{:?}", b.body);
    let replay = c.send("repeat after the takeover", keyed, 201).await;
    assert_eq!(replay.header("x-idempotent-replayed"), Some("true"));
    assert_eq!(
        replay.data(),
        b.data(),
        "the replay is the takeover's response"
    );
    assert_eq!(c.gates.runs(), 2, "the handler ran exactly twice");
}

fn takeover_config() -> sentri_core::config::ConfigBuilder {
    base().idempotency(sentri_core::config::IdempotencyConfig {
        lock_ttl: TAKEOVER_LOCK_TTL,
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_takeover_never_runs_a_duplicate() {
    contract(takeover_config, takeover_never_runs_a_duplicate).await;
}

/// The same on PostgreSQL (a fresh database of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_takeover_never_runs_a_duplicate_on_postgres() {
    contract_on(
        Backend::Postgres,
        takeover_config,
        takeover_never_runs_a_duplicate,
    )
    .await;
}

/// The same on Redis (a fresh key prefix of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_takeover_never_runs_a_duplicate_on_redis() {
    contract_on(
        Backend::Redis,
        takeover_config,
        takeover_never_runs_a_duplicate,
    )
    .await;
}

#[tokio::test]
async fn throttling_with_retry_after() {
    contract(
        || {
            base().throttle(ThrottleConfig {
                max_failures_per_identifier: 3,
                ..Default::default()
            })
        },
        |c: Arc<Server>| async move {
            c.send(
                "register",
                Req::json("POST", "/auth/register", &creds("d@example.com")),
                201,
            )
            .await;
            let wrong = || {
                Req::json(
                    "POST",
                    "/auth/login",
                    &json!({"identifier": "d@example.com", "password": "wrong password"}),
                )
            };
            for i in 0..3 {
                c.send(&format!("failure {i}"), wrong(), 401).await;
            }
            c.send("throttled", wrong(), 429).await;
            c.send(
                "right password while throttled",
                Req::json("POST", "/auth/login", &creds("d@example.com")),
                429,
            )
            .await;
            c.clock.advance(Duration::from_secs(901));
            c.send(
                "after the window",
                Req::json("POST", "/auth/login", &creds("d@example.com")),
                200,
            )
            .await;
        },
    )
    .await;
}

#[tokio::test]
async fn client_address_and_trusted_proxies() {
    let throttle = || ThrottleConfig {
        max_failures_per_ip: 2,
        max_failures_per_identifier: 100,
        ..Default::default()
    };
    // Untrusted peer: X-Forwarded-For is ignored, every failure counts for 127.0.0.1.
    contract(
        || base().throttle(throttle()),
        |c: Arc<Server>| async move {
            for i in 0..2 {
                let r = Req::json("POST", "/auth/login", &creds(&format!("n{i}@example.com")))
                    .header("x-forwarded-for", &format!("198.51.100.{i}"));
                c.send(&format!("failure {i}"), r, 401).await;
            }
            c.send(
                "spoofed XFF does not escape",
                Req::json("POST", "/auth/login", &creds("n9@example.com"))
                    .header("x-forwarded-for", "198.51.100.9"),
                429,
            )
            .await;
        },
    )
    .await;
    // Trusted proxy: the forwarded address is the client.
    contract(
        || {
            base()
                .throttle(throttle())
                .trusted_proxies(["127.0.0.1".parse().unwrap()])
        },
        |c: Arc<Server>| async move {
            for i in 0..2 {
                let r = Req::json("POST", "/auth/login", &creds(&format!("n{i}@example.com")))
                    .header("x-forwarded-for", "198.51.100.1");
                c.send(&format!("failure {i}"), r, 401).await;
            }
            c.send(
                "that client is throttled",
                Req::json("POST", "/auth/login", &creds("n9@example.com"))
                    .header("x-forwarded-for", "198.51.100.1"),
                429,
            )
            .await;
            c.send(
                "another client is not",
                Req::json("POST", "/auth/login", &creds("n9@example.com"))
                    .header("x-forwarded-for", "198.51.100.2"),
                401,
            )
            .await;
        },
    )
    .await;
}

/// A plugin (as a feature crate will be one): its routes are mounted by
/// both adapters with no adapter code and run through the same
/// authentication, admin check, guard and idempotency layer as the
/// built-in routes, with 404/405 and `Allow` from the table; its store
/// comes from `Stores`, its subscriber sees the logins and its claim is in
/// the access tokens.
#[tokio::test]
async fn a_plugin_behaves_alike_on_both_adapters() {
    contract(base, |c| async move {
        let ping = c
            .send("plugin ping", Req::get("/auth/plugin/ping"), 200)
            .await;
        assert_eq!(ping.data()["logins"], 0);
        c.send(
            "plugin ping trailing slash",
            Req::get("/auth/plugin/ping/"),
            404,
        )
        .await;
        let wrong = c
            .send(
                "plugin ping wrong method",
                Req::json("POST", "/auth/plugin/ping", &json!({})),
                405,
            )
            .await;
        assert_eq!(wrong.header("allow"), Some("GET"));
        c.send(
            "note without a token",
            Req::json("POST", "/auth/notes", &json!({"text": "hi"})),
            401,
        )
        .await;
        let alice = signed_in(&c, "alice@example.com").await;
        let at = token(&alice, "accessToken");
        // The plugin's claim is signed into the token; sentri's own win.
        let claims = jwt_claims(&at);
        assert_eq!(claims["notes"], "enabled");
        assert_eq!(claims["sub"], alice.data()["user"]["id"]);
        let ping = c
            .send(
                "plugin ping after a login",
                Req::get("/auth/plugin/ping"),
                200,
            )
            .await;
        assert_eq!(ping.data()["logins"], 1);
        let create = |key: &str, text: &str| {
            Req::json("POST", "/auth/notes", &json!({"text": text}))
                .bearer(&at)
                .header("x-idempotency-key", key)
        };
        let note = c.send("create note", create("note-1", "first"), 201).await;
        assert_eq!(note.data()["note"]["text"], "first");
        let id = note.data()["note"]["id"].as_u64().expect("an id");
        // The idempotency layer of the table: a repeat is replayed, the
        // handler does not run again (the next note still gets id + 1).
        let again = c
            .send("create note again", create("note-1", "first"), 201)
            .await;
        assert_eq!(again.data()["note"]["id"], id);
        assert_eq!(again.header("x-idempotent-replayed"), Some("true"));
        c.send(
            "create note same key other body",
            create("note-1", "other"),
            422,
        )
        .await;
        let second = c
            .send("create second note", create("note-2", "second"), 201)
            .await;
        assert_eq!(second.data()["note"]["id"], id + 1);
        c.send("empty note", create("note-3", ""), 400).await;
        let path = format!("/auth/notes/{id}");
        let got = c.send("read note", Req::get(&path).bearer(&at), 200).await;
        assert_eq!(got.data()["note"]["text"], "first");
        c.send(
            "read unknown note",
            Req::get("/auth/notes/999").bearer(&at),
            404,
        )
        .await;
        c.send("read note without a token", Req::get(&path), 401)
            .await;
        let bob = signed_in(&c, "bob@example.com").await;
        let bob = token(&bob, "accessToken");
        c.send(
            "read another user's note",
            Req::get(&path).bearer(&bob),
            404,
        )
        .await;
        c.send(
            "delete note not admin",
            Req::new("DELETE", &path).bearer(&at),
            403,
        )
        .await;
        let wrong = c
            .send(
                "note wrong method",
                Req::json("PUT", &path, &json!({})).bearer(&at),
                405,
            )
            .await;
        assert_eq!(wrong.header("allow"), Some("GET,DELETE"));
        let admin = admin_token(&c).await;
        c.send("delete note", Req::new("DELETE", &path).bearer(&admin), 200)
            .await;
        c.send("read deleted note", Req::get(&path).bearer(&at), 404)
            .await;
        c.send(
            "guarded without the key",
            Req::get("/auth/plugin/guarded"),
            403,
        )
        .await;
        c.send(
            "guarded with the key",
            Req::get("/auth/plugin/guarded").header("x-plugin-key", "open"),
            200,
        )
        .await;
    })
    .await;
}

/// Step-up (SPEC §10): `require_recent_auth` refuses a token whose
/// authentication is older than its bound, also once refreshed (a refresh
/// keeps `auth_time`), and `require_amr` a session opened without the
/// method; both `REAUTH_REQUIRED` with an RFC 9470 challenge.
#[tokio::test]
async fn step_up_guards() {
    contract(base, |c: Arc<Server>| async move {
        let login = signed_in(&c, "step@example.com").await;
        let at = token(&login, "accessToken");
        let rt = token(&login, "refreshToken");
        c.send("recent: fresh", Req::get("/recent").bearer(&at), 200)
            .await;
        let weak = c
            .send(
                "strong: password only",
                Req::get("/strong").bearer(&at),
                401,
            )
            .await;
        assert_eq!(weak.body["code"], "REAUTH_REQUIRED");
        assert!(
            weak.header("www-authenticate")
                .is_some_and(|h| h.contains(r#"error="insufficient_user_authentication""#)),
            "{weak:?}"
        );
        c.clock.advance(Duration::from_secs(11 * 60));
        let stale = c
            .send(
                "recent: 11 minutes later",
                Req::get("/recent").bearer(&at),
                401,
            )
            .await;
        assert_eq!(stale.body["code"], "REAUTH_REQUIRED");
        let refreshed = c
            .send(
                "refresh",
                Req::json("POST", "/auth/refresh", &json!({"refreshToken": rt})),
                200,
            )
            .await;
        let at = token(&refreshed, "accessToken");
        let still = c
            .send("recent: refreshed", Req::get("/recent").bearer(&at), 401)
            .await;
        assert_eq!(still.body["code"], "REAUTH_REQUIRED");
        c.send("profile: refreshed", Req::get("/profile").bearer(&at), 200)
            .await;
        // A new login is a new authentication.
        let again = c
            .send(
                "login again",
                Req::json("POST", "/auth/login", &creds("step@example.com")),
                200,
            )
            .await;
        let at = token(&again, "accessToken");
        c.send("recent: new login", Req::get("/recent").bearer(&at), 200)
            .await;
    })
    .await;
}

/// A login that needs a second step (here from a login override, as a
/// second-factor plugin will answer): 200 with `mfaRequired`, the
/// challenge and the methods; no tokens and no cookies.
#[tokio::test]
async fn a_login_needing_a_second_step() {
    use sentri_core::hooks::Overrides;
    use sentri_core::{AuthMethod, LoginOutcome, SecondStep};
    let config = || {
        cookies_both().overrides(Overrides::new().login(|sentri, input| async move {
            if input.identifier == "mfa@example.com" {
                let expires = sentri.clock().now() + chrono::Duration::minutes(5);
                return Ok(LoginOutcome::SecondStepRequired(SecondStep::new(
                    "a-challenge",
                    [AuthMethod::Otp],
                    expires,
                )));
            }
            sentri.default_login(input).await
        }))
    };
    contract(config, |c: Arc<Server>| async move {
        c.send(
            "register",
            Req::json("POST", "/auth/register", &creds("mfa@example.com")),
            201,
        )
        .await;
        let out = c
            .send(
                "login: second step",
                Req::json("POST", "/auth/login", &creds("mfa@example.com")),
                200,
            )
            .await;
        let data = out.data();
        assert_eq!(data["mfaRequired"], true);
        assert_eq!(data["challenge"], "a-challenge");
        assert_eq!(data["methods"], json!(["otp"]));
        assert!(data["challengeExpiresAt"].is_string());
        assert!(data.get("accessToken").is_none() && data.get("refreshToken").is_none());
        assert!(out.header("set-cookie").is_none(), "{out:?}");
        signed_in(&c, "plain@example.com").await;
    })
    .await;
}
