//! Every built-in route, its success envelope and its error paths.

mod common;

use axum::body::Body;
use common::*;
use http::Request;
use serde_json::json;

#[tokio::test]
async fn register_login_me() {
    let env = env().await;
    let res = register(&env, "alice@example.com").await;
    assert_eq!(res.status, 201);
    assert_eq!(res.body["error"], false);
    assert_eq!(res.body["statusCode"], 201);
    assert_eq!(res.body["message"], "user registered");
    assert_eq!(res.data()["user"]["identifier"], "alice@example.com");
    assert_eq!(res.data()["user"]["roles"], json!(["user"]));
    assert!(res.body.get("code").is_none());
    assert!(!String::from_utf8_lossy(&res.raw).contains(PASSWORD));

    let res = login(&env, "Alice@Example.com").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["message"], "logged in");
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let token = access(&res);
    assert!(res.data()["refreshToken"].is_string());
    assert!(res.data()["accessExpiresAt"].is_string());
    assert!(res.cookies().is_empty());

    let me = send(&env.app, get("/auth/me", Some(&token))).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.data()["user"]["identifier"], "alice@example.com");
    assert!(me.data()["user"]["lastLoginAt"].is_string());
}

#[tokio::test]
async fn register_errors() {
    let env = env().await;
    register(&env, "a@example.com").await;
    register(&env, "A@EXAMPLE.COM").await.assert_error(
        409,
        "USER_ALREADY_EXISTS",
        "user already exists",
    );
    let res = send(
        &env.app,
        post(
            "/auth/register",
            json!({"identifier": "b@example.com", "password": PASSWORD, "roles": ["admin"]}),
        ),
    )
    .await;
    res.assert_error(
        403,
        "FORBIDDEN",
        "self-registration may request only the default role",
    );
    let res = send(
        &env.app,
        post(
            "/auth/register",
            json!({"identifier": "b@example.com", "password": PASSWORD, "roles": ["root"]}),
        ),
    )
    .await;
    res.assert_error(400, "INVALID_ROLE", "invalid role: root");
    let res = send(
        &env.app,
        post(
            "/auth/register",
            json!({"identifier": "b@example.com", "password": "short"}),
        ),
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.body["code"], "VALIDATION_ERROR");
    assert!(
        res.body["message"]
            .as_str()
            .unwrap()
            .starts_with("password")
    );
    let res = send(
        &env.app,
        post(
            "/auth/register",
            json!({"identifier": "  ", "password": PASSWORD}),
        ),
    )
    .await;
    res.assert_error(400, "VALIDATION_ERROR", "identifier: must not be empty");
}

#[tokio::test]
async fn register_with_api_key() {
    let env = env_with(base().api_key("a-long-enough-api-key")).await;
    let body = json!({"identifier": "c@example.com", "password": PASSWORD, "roles": ["admin"]});
    send(&env.app, post("/auth/register", body.clone()))
        .await
        .assert_error(401, "UNAUTHORIZED", "a valid X-Api-Key header is required");
    let mut req = post("/auth/register", body.clone());
    req.headers_mut()
        .insert("x-api-key", "wrong-key-wrong-key".parse().unwrap());
    send(&env.app, req).await.assert_error(
        401,
        "UNAUTHORIZED",
        "a valid X-Api-Key header is required",
    );
    let mut req = post("/auth/register", body);
    req.headers_mut()
        .insert("x-api-key", "a-long-enough-api-key".parse().unwrap());
    let res = send(&env.app, req).await;
    assert_eq!(res.status, 201);
    assert_eq!(res.data()["user"]["roles"], json!(["admin"]));
}

#[tokio::test]
async fn login_errors_and_throttling() {
    let env = env_with(base().throttle(sentri_core::config::ThrottleConfig {
        max_failures_per_identifier: 3,
        ..Default::default()
    }))
    .await;
    register(&env, "d@example.com").await;
    let wrong = || {
        post(
            "/auth/login",
            json!({"identifier": "d@example.com", "password": "wrong password"}),
        )
    };
    for _ in 0..3 {
        send(&env.app, wrong()).await.assert_error(
            401,
            "INVALID_CREDENTIALS",
            "invalid credentials",
        );
    }
    send(
        &env.app,
        post(
            "/auth/login",
            json!({"identifier": "nobody@example.com", "password": "x"}),
        ),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS", "invalid credentials");
    let res = send(&env.app, wrong()).await;
    res.assert_error(429, "RATE_LIMITED", "too many attempts, try again later");
    let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry));
    // Even the right password is refused while throttled.
    login(&env, "d@example.com").await.assert_error(
        429,
        "RATE_LIMITED",
        "too many attempts, try again later",
    );
    env.clock.advance(std::time::Duration::from_secs(901));
    assert_eq!(login(&env, "d@example.com").await.status, 200);
}

#[tokio::test]
async fn refresh_rotates_and_detects_reuse() {
    let env = env().await;
    let res = signed_in(&env, "e@example.com").await;
    let rt = refresh_token(&res);
    let res2 = send(&env.app, post("/auth/refresh", json!({"refreshToken": rt}))).await;
    assert_eq!(res2.status, 200);
    assert_eq!(res2.body["message"], "token refreshed");
    let rt2 = refresh_token(&res2);
    assert_ne!(rt, rt2);
    // Within the grace: refused only.
    send(&env.app, post("/auth/refresh", json!({"refreshToken": rt})))
        .await
        .assert_error(401, "TOKEN_INVALID", "refresh token invalid");
    assert_eq!(
        send(
            &env.app,
            post("/auth/refresh", json!({"refreshToken": rt2}))
        )
        .await
        .status,
        200
    );
    send(
        &env.app,
        post("/auth/refresh", json!({"refreshToken": "garbage"})),
    )
    .await
    .assert_error(401, "TOKEN_INVALID", "refresh token invalid");
    send(&env.app, post("/auth/refresh", json!({})))
        .await
        .assert_error(400, "VALIDATION_ERROR", "refreshToken: is required");
    // An access token is not a refresh token.
    send(
        &env.app,
        post("/auth/refresh", json!({"refreshToken": access(&res2)})),
    )
    .await
    .assert_error(401, "TOKEN_INVALID", "refresh token invalid");
}

#[tokio::test]
async fn logout_and_logout_all() {
    let env = env().await;
    let a = signed_in(&env, "f@example.com").await;
    let b = login(&env, "f@example.com").await;
    // By refresh token.
    let res = send(
        &env.app,
        post("/auth/logout", json!({"refreshToken": refresh_token(&a)})),
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.body,
        json!({"error": false, "statusCode": 200, "message": "logged out", "data": null})
    );
    send(&env.app, get("/auth/me", Some(&access(&a))))
        .await
        .assert_error(401, "TOKEN_INVALID", "session revoked");
    // By access token, without a body.
    let req = Request::builder()
        .method("POST")
        .uri("/auth/logout")
        .header("authorization", format!("Bearer {}", access(&b)))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&env.app, req).await.status, 200);
    send(&env.app, get("/auth/me", Some(&access(&b))))
        .await
        .assert_error(401, "TOKEN_INVALID", "session revoked");
    let req = Request::builder()
        .method("POST")
        .uri("/auth/logout")
        .body(Body::empty())
        .unwrap();
    send(&env.app, req)
        .await
        .assert_error(401, "UNAUTHORIZED", "authentication required");

    let c = login(&env, "f@example.com").await;
    let d = login(&env, "f@example.com").await;
    let res = send(
        &env.app,
        with_body("POST", "/auth/logout-all", Some(&access(&c)), json!({})),
    )
    .await;
    assert_eq!(res.status, 200);
    for s in [&c, &d] {
        assert_eq!(
            send(&env.app, get("/auth/me", Some(&access(s))))
                .await
                .status,
            401
        );
    }
    let req = Request::builder()
        .method("POST")
        .uri("/auth/logout-all")
        .body(Body::empty())
        .unwrap();
    send(&env.app, req)
        .await
        .assert_error(401, "UNAUTHORIZED", "authentication required");
}

#[tokio::test]
async fn me_errors() {
    let env = env().await;
    send(&env.app, get("/auth/me", None)).await.assert_error(
        401,
        "UNAUTHORIZED",
        "authentication required",
    );
    send(&env.app, get("/auth/me", Some("not.a.jwt")))
        .await
        .assert_error(401, "TOKEN_INVALID", "token invalid");
    let res = signed_in(&env, "g@example.com").await;
    env.clock.advance(std::time::Duration::from_secs(16 * 60));
    send(&env.app, get("/auth/me", Some(&access(&res))))
        .await
        .assert_error(401, "TOKEN_EXPIRED", "token expired");
}

#[tokio::test]
async fn change_identifier_and_password() {
    let env = env().await;
    register(&env, "taken@example.com").await;
    let res = signed_in(&env, "h@example.com").await;
    let t = access(&res);
    let r = send(
        &env.app,
        with_body(
            "PUT",
            "/auth/me/identifier",
            Some(&t),
            json!({"newIdentifier": "H2@example.com", "currentPassword": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["user"]["identifier"], "H2@example.com");
    send(
        &env.app,
        with_body(
            "PUT",
            "/auth/me/identifier",
            Some(&t),
            json!({"newIdentifier": "TAKEN@example.com", "currentPassword": PASSWORD}),
        ),
    )
    .await
    .assert_error(409, "USER_ALREADY_EXISTS", "user already exists");
    send(
        &env.app,
        with_body("PUT", "/auth/me/identifier", Some(&t), json!({})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR", "newIdentifier: is required");
    // Re-authentication: the current password is required, and checked.
    send(
        &env.app,
        with_body(
            "PUT",
            "/auth/me/identifier",
            Some(&t),
            json!({"newIdentifier": "H3@example.com"}),
        ),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR", "currentPassword: is required");
    send(
        &env.app,
        with_body(
            "PUT",
            "/auth/me/identifier",
            Some(&t),
            json!({"newIdentifier": "H3@example.com", "currentPassword": "not the password"}),
        ),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS", "current password is wrong");

    send(
        &env.app,
        with_body(
            "PUT",
            "/auth/me/password",
            Some(&t),
            json!({"currentPassword": "wrong password", "newPassword": "another long password"}),
        ),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS", "current password is wrong");
    let r = send(
        &env.app,
        with_body(
            "PUT",
            "/auth/me/password",
            Some(&t),
            json!({"currentPassword": PASSWORD, "newPassword": "another long password"}),
        ),
    )
    .await;
    assert_eq!(
        r.body,
        json!({"error": false, "statusCode": 200, "message": "password changed", "data": null})
    );
    // Every session was revoked.
    assert_eq!(send(&env.app, get("/auth/me", Some(&t))).await.status, 401);
    let r = send(
        &env.app,
        post(
            "/auth/login",
            json!({"identifier": "h2@example.com", "password": "another long password"}),
        ),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn sessions_list_and_revoke() {
    let env = env().await;
    let a = signed_in(&env, "i@example.com").await;
    let b = login(&env, "i@example.com").await;
    let r = send(&env.app, get("/auth/sessions", Some(&access(&a)))).await;
    assert_eq!(r.status, 200);
    let sessions = r.data()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(sessions[0]["ip"], "192.0.2.10");
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let del = |id: &str, t: &str| {
        Request::builder()
            .method("DELETE")
            .uri(format!("/auth/sessions/{id}"))
            .header("authorization", format!("Bearer {t}"))
            .body(Body::empty())
            .unwrap()
    };
    let r = send(&env.app, del(&other, &access(&a))).await;
    assert_eq!(
        r.body,
        json!({"error": false, "statusCode": 200, "message": "session revoked", "data": null})
    );
    assert_eq!(
        send(&env.app, get("/auth/me", Some(&access(&b))))
            .await
            .status,
        401
    );
    send(&env.app, del(&other, &access(&a))).await.assert_error(
        404,
        "SESSION_NOT_FOUND",
        "session not found",
    );
    send(&env.app, del("not-a-uuid", &access(&a)))
        .await
        .assert_error(400, "VALIDATION_ERROR", "id: must be a session id");
}

#[tokio::test]
async fn admin_role_routes() {
    let env = env().await;
    env.sentri
        .bootstrap_admin("root@example.com", PASSWORD)
        .await
        .unwrap();
    let admin = login(&env, "root@example.com").await;
    let user = signed_in(&env, "j@example.com").await;
    let uid = user.data()["user"]["id"].as_str().unwrap().to_owned();
    let uri = format!("/auth/users/{uid}/roles");
    let r = send(
        &env.app,
        with_body(
            "POST",
            &uri,
            Some(&access(&admin)),
            json!({"roles": ["editor"]}),
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["user"]["roles"], json!(["editor", "user"]));
    let r = send(
        &env.app,
        with_body(
            "DELETE",
            &uri,
            Some(&access(&admin)),
            json!({"roles": ["editor"]}),
        ),
    )
    .await;
    assert_eq!(r.data()["user"]["roles"], json!(["user"]));
    send(
        &env.app,
        with_body(
            "POST",
            &uri,
            Some(&access(&user)),
            json!({"roles": ["admin"]}),
        ),
    )
    .await
    .assert_error(403, "FORBIDDEN", "forbidden");
    send(
        &env.app,
        with_body(
            "POST",
            &uri,
            Some(&access(&admin)),
            json!({"roles": ["root"]}),
        ),
    )
    .await
    .assert_error(400, "INVALID_ROLE", "invalid role: root");
    send(
        &env.app,
        with_body(
            "POST",
            &uri,
            Some(&access(&admin)),
            json!({"roles": "admin"}),
        ),
    )
    .await
    .assert_error(
        400,
        "VALIDATION_ERROR",
        "roles: must be an array of strings",
    );
    send(
        &env.app,
        with_body(
            "POST",
            "/auth/users/nope/roles",
            Some(&access(&admin)),
            json!({"roles": ["user"]}),
        ),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR", "userId: must be a user id");
    let missing = format!("/auth/users/{}/roles", sentri_core::model::UserId::new());
    send(
        &env.app,
        with_body(
            "POST",
            &missing,
            Some(&access(&admin)),
            json!({"roles": ["user"]}),
        ),
    )
    .await
    .assert_error(404, "USER_NOT_FOUND", "user not found");
    send(
        &env.app,
        with_body("POST", &uri, None, json!({"roles": ["user"]})),
    )
    .await
    .assert_error(401, "UNAUTHORIZED", "authentication required");
}

#[tokio::test]
async fn keys_route() {
    let env = env().await;
    send(&env.app, get("/auth/keys", None)).await.assert_error(
        404,
        "NOT_FOUND",
        "no published keys: tokens are signed with a shared secret",
    );
    let env = env_with(
        sentri_core::Config::builder()
            .valid_roles(["user"])
            .password_policy(sentri_core::password::PasswordPolicy::argon2id(256, 1, 1)),
    )
    .await;
    let r = send(&env.app, get("/auth/keys", None)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["keys"][0]["alg"], "EdDSA");
    assert!(r.body["keys"][0]["kid"].is_string());
}

#[tokio::test]
async fn every_rejection_is_an_envelope() {
    let env = env().await;
    let raw = |ct: Option<&str>, body: &str| {
        let mut b = Request::builder().method("POST").uri("/auth/login");
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        b.body(Body::from(body.to_owned())).unwrap()
    };
    send(&env.app, raw(Some("application/json"), "{\"identifier\":"))
        .await
        .assert_error(
            400,
            "VALIDATION_ERROR",
            "body: malformed JSON (unexpected end of input)",
        );
    send(&env.app, raw(Some("application/json"), "{nope}"))
        .await
        .assert_error(
            400,
            "VALIDATION_ERROR",
            "body: malformed JSON (line 1, column 2)",
        );
    send(&env.app, raw(Some("text/plain"), "{}"))
        .await
        .assert_error(
            400,
            "VALIDATION_ERROR",
            "Content-Type: must be application/json",
        );
    send(&env.app, raw(None, "{}")).await.assert_error(
        400,
        "VALIDATION_ERROR",
        "Content-Type: must be application/json",
    );
    send(&env.app, raw(Some("application/json"), "[]"))
        .await
        .assert_error(400, "VALIDATION_ERROR", "body: must be a JSON object");
    send(
        &env.app,
        raw(Some("application/json"), r#"{"identifier":"x"}"#),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR", "password: is required");
    send(
        &env.app,
        raw(
            Some("application/json"),
            r#"{"identifier":1,"password":"x"}"#,
        ),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR", "identifier: must be a string");
    send(
        &env.app,
        raw(
            Some("application/json"),
            r#"{"identifier":"x","password":"y","admin":true}"#,
        ),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR", "admin: unknown field");
    let long = format!(r#"{{"identifier":"{}","password":"y"}}"#, "a".repeat(255));
    send(&env.app, raw(Some("application/json"), &long))
        .await
        .assert_error(
            400,
            "VALIDATION_ERROR",
            "identifier: must be at most 254 characters",
        );
    let huge = format!(
        r#"{{"identifier":"{}","password":"y"}}"#,
        "a".repeat(20_000)
    );
    send(&env.app, raw(Some("application/json"), &huge))
        .await
        .assert_error(
            413,
            "PAYLOAD_TOO_LARGE",
            "request body larger than 16384 bytes",
        );
    // Without Content-Length (streamed), still refused at the limit.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![Ok(huge.clone().into())];
    let req = Request::builder()
        .method("POST")
        .uri("/auth/login")
        .header("content-type", "application/json")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    send(&env.app, req).await.assert_error(
        413,
        "PAYLOAD_TOO_LARGE",
        "request body larger than 16384 bytes",
    );
    send(&env.app, get("/auth/nope", None))
        .await
        .assert_error(404, "NOT_FOUND", "route not found");
    send(&env.app, get("/auth/login", None)).await.assert_error(
        405,
        "METHOD_NOT_ALLOWED",
        "method not allowed",
    );
}
