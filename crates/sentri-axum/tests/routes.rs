//! Every built-in route, its success envelope and its error paths.

mod common;

use common::*;
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

    let res = login(&env, "Alice@Example.com").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let token = access(&res);
    assert!(res.data()["refreshToken"].is_string());
    assert!(res.cookies().is_empty());

    let me = send(&env.app, get("/auth/me", Some(&token))).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.data()["user"]["identifier"], "alice@example.com");
}
