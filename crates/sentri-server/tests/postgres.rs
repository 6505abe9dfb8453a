//! Several instances on one PostgreSQL behave as one service (SPEC §8):
//! two servers started at once on a fresh database migrate once, share one
//! signing key, and see each other's users and sessions; concurrent
//! refreshes of one token spread over both instances still let exactly
//! one win. Needs the machine's PostgreSQL on 127.0.0.1:5432 (trust auth).

mod common;

use std::sync::Arc;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgres_are_one_service() {
    let db = PgDatabase::create().await;
    let dir = Arc::new(TestDir::new("postgres"));
    let url = db.url();
    let starts: Vec<_> = (0..2)
        .map(|_| {
            let (dir, url) = (dir.clone(), url.clone());
            std::thread::spawn(move || Server::start(&dir, &[("SENTRI_DATABASE_URL", &url)]))
        })
        .collect();
    let servers: Vec<Server> = starts.into_iter().map(|t| t.join().unwrap()).collect();
    let c = client();

    let mut kids = Vec::new();
    for server in &servers {
        let jwks = send(&c, Method::GET, &server.url("/auth/keys"), &[], None).await;
        assert_eq!(jwks.status, 200, "{:?}", jwks.body);
        let keys = jwks.body["keys"].as_array().unwrap().clone();
        assert_eq!(keys.len(), 1, "one key for both instances: {keys:?}");
        kids.push(keys[0]["kid"].as_str().unwrap().to_owned());
        let ready = send(&c, Method::GET, &server.url("/readyz"), &[], None).await;
        assert_eq!(ready.status, 200);
    }
    assert_eq!(kids[0], kids[1]);

    register(&c, &servers[0], "pat@example.com").await;
    let dup = post(
        &c,
        &servers[1],
        "/auth/register",
        json!({ "identifier": "PAT@example.com", "password": PASSWORD }),
    )
    .await;
    assert_eq!((dup.status, dup.code()), (409, "USER_ALREADY_EXISTS"));
    let out = login(&c, &servers[1], "pat@example.com").await;
    let access = out.body["data"]["accessToken"].as_str().unwrap().to_owned();
    let refresh = out.body["data"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        get_bearer(&c, &servers[0], "/auth/me", &access)
            .await
            .status,
        200
    );

    // 16 concurrent refreshes of one token, alternating instances.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let url = servers[i % 2].url("/auth/refresh");
            let (c, refresh) = (c.clone(), refresh.clone());
            tokio::spawn(async move {
                send(
                    &c,
                    Method::POST,
                    &url,
                    &[],
                    Some(json!({ "refreshToken": refresh })),
                )
                .await
                .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );

    // A logout through one instance is seen by the other at once.
    let auth = format!("Bearer {access}");
    let out = send(
        &c,
        Method::POST,
        &servers[0].url("/auth/logout-all"),
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(out.status, 200, "{:?}", out.body);
    assert_eq!(
        get_bearer(&c, &servers[1], "/auth/me", &access)
            .await
            .status,
        401
    );

    for server in servers {
        server.stop();
    }
    db.drop_now().await;
}
