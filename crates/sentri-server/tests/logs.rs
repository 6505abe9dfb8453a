//! No secret reaches the logs: a login/refresh flow against the binary at
//! `SENTRI_LOG=trace`, then the captured stdout and stderr are searched for
//! the password, every issued token (and its secret part), the API key and
//! the signing secret.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

const API_KEY: &str = "api-key-that-must-never-be-logged";
const SECRET: &str = "hmac-secret-that-must-never-be-logged-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trace_logs_hold_no_password_token_or_key() {
    let dir = TestDir::new("logs");
    let server = Server::start(
        &dir,
        &[
            ("SENTRI_LOG", "trace"),
            ("SENTRI_API_KEY", API_KEY),
            ("SENTRI_SECRET", SECRET),
        ],
    );
    let c = client();
    let password = "a-password-that-must-never-be-logged";
    let mut secrets = vec![password.to_owned()];

    let reg = send(
        &c,
        Method::POST,
        &server.url("/auth/register"),
        &[("x-api-key", API_KEY)],
        Some(json!({ "identifier": "nina@example.com", "password": password })),
    )
    .await;
    assert_eq!(reg.status, 201, "{:?}", reg.body);
    let wrong = post(
        &c,
        &server,
        "/auth/login",
        json!({ "identifier": "nina@example.com", "password": "wrong-password-also-secret" }),
    )
    .await;
    assert_eq!(wrong.status, 401);
    secrets.push("wrong-password-also-secret".to_owned());

    let out = post(
        &c,
        &server,
        "/auth/login",
        json!({ "identifier": "nina@example.com", "password": password }),
    )
    .await;
    assert_eq!(out.status, 200, "{:?}", out.body);
    let mut access = out.body["data"]["accessToken"].as_str().unwrap().to_owned();
    let mut refresh = out.body["data"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        secrets.push(access.clone());
        secrets.push(refresh.clone());
        assert_eq!(
            get_bearer(&c, &server, "/auth/me", &access).await.status,
            200
        );
        let r = post(
            &c,
            &server,
            "/auth/refresh",
            json!({ "refreshToken": refresh }),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        access = r.body["data"]["accessToken"].as_str().unwrap().to_owned();
        refresh = r.body["data"]["refreshToken"].as_str().unwrap().to_owned();
    }
    secrets.push(access.clone());
    secrets.push(refresh.clone());
    let pw = send(
        &c,
        Method::PUT,
        &server.url("/auth/me/password"),
        &[("authorization", &format!("Bearer {access}"))],
        Some(json!({ "currentPassword": password, "newPassword": "new-password-never-logged" })),
    )
    .await;
    assert_eq!(pw.status, 200, "{:?}", pw.body);
    secrets.push("new-password-never-logged".to_owned());
    let logout = post(
        &c,
        &server,
        "/auth/logout",
        json!({ "refreshToken": refresh }),
    )
    .await;
    assert!(
        logout.status == 200 || logout.status == 401,
        "{:?}",
        logout.body
    );

    let output = server.stop();
    assert!(output.contains("TRACE"), "trace logging is on:\n{output}");
    let mut needles: Vec<String> = Vec::new();
    for s in &secrets {
        needles.push(s.clone());
        // Each part of a token alone: a JWT's signature, a refresh token's secret.
        for part in s.split('.').filter(|p| p.len() >= 16) {
            needles.push(part.to_owned());
        }
    }
    needles.push(API_KEY.to_owned());
    needles.push(SECRET.to_owned());
    for needle in needles {
        assert!(
            !output.contains(&needle),
            "a secret reached the logs: {needle}"
        );
    }
}
