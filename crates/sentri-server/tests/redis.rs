//! `SENTRI_REDIS_URL`: two instances on one PostgreSQL database and one
//! Redis behave as one service (issue 7), and a Redis that goes away makes
//! the features that need it answer `SERVICE_UNAVAILABLE`, never a wrong
//! answer, until it comes back.
//!
//! Needs the machine's PostgreSQL on 127.0.0.1:5432 (trust auth), its Redis
//! on 127.0.0.1:6379 (only keys under a random prefix are used, and
//! deleted; nothing is flushed or stopped) and `redis-server` for the
//! private Redis of the fault test.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// Start two servers on `db` and the shared Redis under `prefix`, plus
/// `env`.
fn two_servers(db: &PgDatabase, prefix: &RedisPrefix, env: &[(&str, &str)]) -> Vec<Server> {
    let dir = Arc::new(TestDir::new("redis"));
    let mut vars: Vec<(String, String)> = vec![
        ("SENTRI_DATABASE_URL".into(), db.url()),
        ("SENTRI_REDIS_URL".into(), SHARED_REDIS_URL.into()),
        ("SENTRI_REDIS_PREFIX".into(), prefix.0.clone()),
    ];
    vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let vars = Arc::new(vars);
    let starts: Vec<_> = (0..2)
        .map(|_| {
            let (dir, vars) = (dir.clone(), vars.clone());
            std::thread::spawn(move || {
                let env: Vec<(&str, &str)> =
                    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                Server::start(&dir, &env)
            })
        })
        .collect();
    starts.into_iter().map(|t| t.join().unwrap()).collect()
}

async fn login_with(
    c: &reqwest::Client,
    server: &Server,
    identifier: &str,
    password: &str,
) -> Reply {
    post(
        c,
        server,
        "/auth/login",
        json!({ "identifier": identifier, "password": password }),
    )
    .await
}

async fn post_bearer(c: &reqwest::Client, server: &Server, path: &str, token: &str) -> Reply {
    let auth = format!("Bearer {token}");
    send(
        c,
        Method::POST,
        &server.url(path),
        &[("authorization", &auth)],
        None,
    )
    .await
}

fn tokens(reply: &Reply) -> (String, String) {
    let data = &reply.body["data"];
    (
        data["accessToken"].as_str().unwrap().to_owned(),
        data["refreshToken"].as_str().unwrap().to_owned(),
    )
}

fn assert_unavailable(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 503, "{what}: {:?}", reply.body);
    assert_eq!(reply.body["error"], Value::Bool(true), "{what}");
    assert_eq!(reply.body["statusCode"], 503, "{what}");
    assert_eq!(reply.code(), "SERVICE_UNAVAILABLE", "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_and_redis_are_one_service() {
    let db = PgDatabase::create().await;
    let prefix = RedisPrefix::new();
    let servers = two_servers(&db, &prefix, &[("SENTRI_LOGIN_MAX_FAILURES", "4")]);
    let (a, b) = (&servers[0], &servers[1]);
    let c = client();

    for server in [a, b] {
        let ready = send(&c, Method::GET, &server.url("/readyz"), &[], None).await;
        assert_eq!(ready.status, 200, "{:?}", ready.body);
        assert_eq!(ready.body["data"]["redis"], "up");
    }

    // A refresh token rotated on A is refused on B.
    register(&c, a, "pat@example.com").await;
    let (access, refresh) = tokens(&login(&c, b, "pat@example.com").await);
    let rotated = post(&c, a, "/auth/refresh", json!({ "refreshToken": refresh })).await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let stale = post(&c, b, "/auth/refresh", json!({ "refreshToken": refresh })).await;
    assert_eq!((stale.status, stale.code()), (401, "TOKEN_INVALID"));

    // An idempotent request sent to A, then to B, replays.
    let key = "0b6a7c1e-redis-instances";
    let body = json!({ "identifier": "idem@example.com", "password": PASSWORD });
    let headers = [("x-idempotency-key", key)];
    let first = send(
        &c,
        Method::POST,
        &a.url("/auth/register"),
        &headers,
        Some(body.clone()),
    )
    .await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(first.header("x-idempotent-replayed"), None);
    let again = send(
        &c,
        Method::POST,
        &b.url("/auth/register"),
        &headers,
        Some(body),
    )
    .await;
    assert_eq!(again.status, 201, "{:?}", again.body);
    assert_eq!(again.header("x-idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);

    // Failed logins on A and B add up to one throttle (max 4).
    register(&c, a, "guess@example.com").await;
    for server in [a, a, b, b] {
        let r = login_with(&c, server, "guess@example.com", "wrong password 123").await;
        assert_eq!((r.status, r.code()), (401, "INVALID_CREDENTIALS"));
    }
    for server in [a, b] {
        // Even the right password: the throttle comes first.
        let r = login_with(&c, server, "guess@example.com", PASSWORD).await;
        assert_eq!((r.status, r.code()), (429, "RATE_LIMITED"), "{:?}", r.body);
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(retry > 0 && retry <= 900, "{retry}");
    }

    // Logout on A rejects the access token on B at once (Always mode).
    assert_eq!(get_bearer(&c, b, "/auth/me", &access).await.status, 200);
    let out = post_bearer(&c, a, "/auth/logout", &access).await;
    assert_eq!(out.status, 200, "{:?}", out.body);
    let me = get_bearer(&c, b, "/auth/me", &access).await;
    assert_eq!(
        (me.status, me.code()),
        (401, "TOKEN_INVALID"),
        "{:?}",
        me.body
    );

    for server in servers {
        server.stop();
    }
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_mode_logout_on_one_instance_reaches_the_other_through_redis() {
    let db = PgDatabase::create().await;
    let prefix = RedisPrefix::new();
    let servers = two_servers(&db, &prefix, &[("SENTRI_SESSION_CHECK", "cached:60s")]);
    let (a, b) = (&servers[0], &servers[1]);
    let c = client();
    assert!(a.output().contains("Cached"), "{}", a.output());

    register(&c, a, "kim@example.com").await;
    let (access, _) = tokens(&login(&c, a, "kim@example.com").await);
    let (other, _) = tokens(&login(&c, a, "kim@example.com").await);
    // Both instances now hold the sessions in their caches.
    for server in [a, b] {
        for token in [&access, &other] {
            assert_eq!(get_bearer(&c, server, "/auth/me", token).await.status, 200);
        }
    }

    let out = post_bearer(&c, a, "/auth/logout", &access).await;
    assert_eq!(out.status, 200, "{:?}", out.body);
    let logged_out = Instant::now();
    assert_eq!(get_bearer(&c, a, "/auth/me", &access).await.status, 401);
    let deadline = logged_out + Duration::from_secs(2);
    loop {
        let me = get_bearer(&c, b, "/auth/me", &access).await;
        if me.status == 401 {
            assert_eq!(me.code(), "TOKEN_INVALID");
            break;
        }
        assert_eq!(me.status, 200, "{:?}", me.body);
        assert!(
            Instant::now() < deadline,
            "B still accepts the logged-out token 2 s after the logout on A"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "cached:60s: B refused the token {:?} after the logout on A",
        logged_out.elapsed()
    );
    // The other session is untouched.
    assert_eq!(get_bearer(&c, b, "/auth/me", &other).await.status, 200);

    // logout-all on B reaches A's cache too.
    assert_eq!(
        post_bearer(&c, b, "/auth/logout-all", &other).await.status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while get_bearer(&c, a, "/auth/me", &other).await.status != 401 {
        assert!(
            Instant::now() < deadline,
            "A still accepts after logout-all on B"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for server in servers {
        server.stop();
    }
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_redis_is_service_unavailable_and_the_server_recovers() {
    let mut redis = RedisServer::start();
    let dir = TestDir::new("redis-fault");
    let url = redis.url();
    let server = Server::start(
        &dir,
        &[
            ("SENTRI_REDIS_URL", &url),
            ("SENTRI_REDIS_PREFIX", "fault:"),
        ],
    );
    let c = client();
    register(&c, &server, "ada@example.com").await;
    let (access, refresh) = tokens(&login(&c, &server, "ada@example.com").await);
    let ready = send(&c, Method::GET, &server.url("/readyz"), &[], None).await;
    assert_eq!(ready.status, 200, "{:?}", ready.body);

    redis.kill();
    let killed = Instant::now();

    let started = Instant::now();
    let r = login_with(&c, &server, "ada@example.com", PASSWORD).await;
    let first_login = started.elapsed();
    assert_unavailable(&r, "login with the right password");
    let started = Instant::now();
    let r = login_with(&c, &server, "ada@example.com", "wrong password 123").await;
    let second_login = started.elapsed();
    assert_unavailable(&r, "login with a wrong password");
    let r = send(
        &c,
        Method::POST,
        &server.url("/auth/register"),
        &[("x-idempotency-key", "fault-key-1")],
        Some(json!({ "identifier": "bo@example.com", "password": PASSWORD })),
    )
    .await;
    assert_unavailable(&r, "idempotent register");
    let r = send(&c, Method::GET, &server.url("/readyz"), &[], None).await;
    assert_unavailable(&r, "readyz");
    assert_eq!(r.body["message"], "redis unavailable");
    // What does not need Redis keeps working.
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
    assert_eq!(r.status, 200, "refresh: {:?}", r.body);
    let (access, _) = tokens(&r);
    // Self-registration is throttled per address in Redis (F-27): refused
    // while it is down, never let through unthrottled.
    let r = post(
        &c,
        &server,
        "/auth/register",
        json!({ "identifier": "cy@example.com", "password": PASSWORD }),
    )
    .await;
    assert_unavailable(&r, "register");
    let r = post_bearer(&c, &server, "/auth/logout", &access).await;
    assert_eq!(r.status, 200, "logout: {:?}", r.body);
    assert_eq!(
        get_bearer(&c, &server, "/auth/me", &access).await.status,
        401
    );
    eprintln!("redis down: login answered 503 in {first_login:?}, then {second_login:?}");

    redis.restart();
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(15);
    loop {
        let r = login_with(&c, &server, "ada@example.com", PASSWORD).await;
        if r.status == 200 {
            break;
        }
        assert_unavailable(&r, "login while reconnecting");
        assert!(
            Instant::now() < deadline,
            "the server did not recover within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "redis back: login succeeded {:?} after the restart ({:?} after the kill)",
        restarted.elapsed(),
        killed.elapsed()
    );
    let ready = send(&c, Method::GET, &server.url("/readyz"), &[], None).await;
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    // Throttling counts again: a wrong password is a plain 401.
    let r = login_with(&c, &server, "ada@example.com", "wrong password 123").await;
    assert_eq!((r.status, r.code()), (401, "INVALID_CREDENTIALS"));

    server.stop();
}
