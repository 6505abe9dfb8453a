//! What browsers see, through the real binary on both frameworks: the
//! security headers on every route (the server's own too), the cookie
//! settings (`SameSite`, `__Host-`, an `HttpOnly` access cookie) and the
//! CSRF origin check by scheme, host and port against
//! `SENTRI_ALLOWED_ORIGINS`.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

fn assert_security_headers(r: &Reply, hsts: bool, what: &str) {
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        r.header("strict-transport-security"),
        hsts.then_some("max-age=31536000"),
        "{what}"
    );
}

async fn every_route_has_the_security_headers(server: &Server, hsts: bool) {
    let c = client();
    for path in [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/auth/me",
        "/auth/nope",
        "/nope",
    ] {
        let r = send(&c, Method::GET, &server.url(path), &[], None).await;
        assert_security_headers(&r, hsts, path);
    }
    let r = post(&c, server, "/auth/login", json!({})).await;
    assert_eq!(r.status, 400);
    assert_security_headers(&r, hsts, "login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn security_headers_on_every_route_of_both_frameworks() {
    for framework in ["axum", "poem"] {
        let dir = TestDir::new(&format!("headers-{framework}"));
        let server = Server::start(&dir, &[("SENTRI_FRAMEWORK", framework)]);
        every_route_has_the_security_headers(&server, false).await;
        server.stop();
        // Secure cookies: HSTS too.
        let dir = TestDir::new(&format!("headers-hsts-{framework}"));
        let server = Server::start(
            &dir,
            &[
                ("SENTRI_FRAMEWORK", framework),
                ("SENTRI_COOKIES", "refresh"),
            ],
        );
        every_route_has_the_security_headers(&server, true).await;
        server.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cookie_settings_and_the_origin_check_through_the_server() {
    for framework in ["axum", "poem"] {
        let dir = TestDir::new(&format!("cookies-{framework}"));
        let server = Server::start(
            &dir,
            &[
                ("SENTRI_FRAMEWORK", framework),
                ("SENTRI_COOKIES", "both"),
                ("SENTRI_COOKIE_SAMESITE", "lax"),
                ("SENTRI_COOKIE_HOST_PREFIX", "true"),
                ("SENTRI_ACCESS_COOKIE_HTTPONLY", "true"),
                ("SENTRI_ALLOWED_ORIGINS", "https://app.example.com"),
            ],
        );
        let c = client();
        register(&c, &server, "b@example.com").await;
        let r = login(&c, &server, "b@example.com").await;
        let set = r.set_cookies();
        assert_eq!(set.len(), 2, "{set:?}");
        let refresh = set
            .iter()
            .find(|s| s.starts_with("__Host-refresh_token="))
            .unwrap_or_else(|| panic!("{set:?}"));
        assert!(
            refresh.ends_with("; Path=/; HttpOnly; Secure; SameSite=Lax"),
            "{refresh}"
        );
        let access = set
            .iter()
            .find(|s| s.starts_with("__Host-access_token="))
            .unwrap_or_else(|| panic!("{set:?}"));
        assert!(
            access.ends_with("; Path=/; HttpOnly; Secure; SameSite=Lax"),
            "{access}"
        );
        let mut jar = format!("__Host-refresh_token={}", cookie_value(refresh));
        let refresh_from = |jar: String, origin: &'static str| {
            let c = c.clone();
            let url = server.url("/auth/refresh");
            async move {
                send(
                    &c,
                    Method::POST,
                    &url,
                    &[("cookie", &jar), ("origin", origin)],
                    None,
                )
                .await
            }
        };
        // The listed origin only: not its http twin, nor another port, nor
        // the server's own host.
        for origin in [
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://evil.example",
        ] {
            let r = refresh_from(jar.clone(), origin).await;
            assert_eq!(r.status, 403, "{framework} {origin}: {:?}", r.body);
            assert_eq!(r.code(), "FORBIDDEN");
        }
        let own = server.base.clone().leak() as &'static str;
        assert_eq!(refresh_from(jar.clone(), own).await.status, 403);
        let r = refresh_from(jar.clone(), "https://app.example.com").await;
        assert_eq!(r.status, 200, "{framework}: {:?}", r.body);
        let set = r.set_cookies();
        let refresh = set
            .iter()
            .find(|s| s.starts_with("__Host-refresh_token="))
            .unwrap();
        jar = format!("__Host-refresh_token={}", cookie_value(refresh));
        let r = refresh_from(jar, "https://app.example.com:443").await;
        assert_eq!(r.status, 200, "{framework}: {:?}", r.body);
        server.stop();
    }
}
