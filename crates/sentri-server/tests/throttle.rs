//! Throttling through the real server binary with real concurrency (F-27):
//! 200 wrong passwords sent at once for one identifier reach at most the
//! per-identifier limit's worth of password checks (every `401
//! INVALID_CREDENTIALS` is one check; a `429 RATE_LIMITED` is answered
//! before the password is looked at), on SQLite and on two instances
//! sharing one PostgreSQL; the per-address limit holds the same way; and
//! self-registration is limited per address.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;

/// Send `n` wrong-password logins at once, spread over `servers`, with
/// `identifier(i)`; returns (401s, 429s, 503s). A 503 (a database pool
/// saturated by the burst on a loaded machine) is refused before or
/// instead of the password check, and refunded.
async fn burst(
    servers: &[Server],
    n: usize,
    identifier: impl Fn(usize) -> String,
) -> (usize, usize, usize) {
    let c = client();
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let url = servers[i % servers.len()].url("/auth/login");
            let (c, barrier) = (c.clone(), barrier.clone());
            let body = json!({ "identifier": identifier(i), "password": format!("guess {i}") });
            tokio::spawn(async move {
                barrier.wait().await;
                send(&c, reqwest::Method::POST, &url, &[], Some(body)).await
            })
        })
        .collect();
    let (mut invalid, mut limited, mut unavailable) = (0, 0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match (r.status, r.code()) {
            (401, "INVALID_CREDENTIALS") => invalid += 1,
            (429, "RATE_LIMITED") => {
                assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
                limited += 1;
            }
            (503, "SERVICE_UNAVAILABLE") => unavailable += 1,
            other => panic!("unexpected answer {other:?}: {:?}", r.body),
        }
    }
    (invalid, limited, unavailable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_on_sqlite_are_held_to_the_limits() {
    let dir = TestDir::new("throttle-sqlite");
    let server = Server::start(&dir, &[]);
    let c = client();
    register(&c, &server, "ada@example.com").await;
    let servers = [server];

    // One identifier: the limit is 10 per identifier.
    let (invalid, limited, unavailable) =
        burst(&servers, 200, |_| "ada@example.com".to_owned()).await;
    assert!(
        invalid <= 10 && limited + unavailable >= 190,
        "200 concurrent guesses cost {invalid} password checks; the limit is 10 \
         ({limited} limited, {unavailable} unavailable)"
    );
    assert!(unavailable < 190, "the burst was not throttled but failed");
    // Once the limit is used up, the right password is refused too, until
    // the window passes.
    if invalid == 10 {
        let r = post(
            &c,
            &servers[0],
            "/auth/login",
            json!({ "identifier": "ada@example.com", "password": PASSWORD }),
        )
        .await;
        assert_eq!(r.status, 429, "{:?}", r.body);
    }

    // One address (every request comes from 127.0.0.1): 100 per address,
    // of which `invalid` are used.
    let used = invalid;
    let (invalid, limited, unavailable) =
        burst(&servers, 200, |i| format!("u{i}@example.com")).await;
    assert!(
        invalid <= 100 - used && limited + unavailable >= 100 + used,
        "the per-address limit of 100 must hold under concurrency: {used} + {invalid} \
         password checks ({limited} limited, {unavailable} unavailable)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_over_two_postgres_instances_are_held_to_the_limit() {
    let db = PgDatabase::create().await;
    let dir = Arc::new(TestDir::new("throttle-postgres"));
    let url = db.url();
    let first = Server::start(&dir, &[("SENTRI_DATABASE_URL", &url)]);
    let second = Server::start(&dir, &[("SENTRI_DATABASE_URL", &url)]);
    let c = client();
    register(&c, &first, "bob@example.com").await;
    let servers = [first, second];
    let (invalid, limited, unavailable) =
        burst(&servers, 200, |_| "bob@example.com".to_owned()).await;
    assert!(
        invalid <= 10 && limited + unavailable >= 190,
        "two instances sharing one database must share the limit: {invalid} password \
         checks ({limited} limited, {unavailable} unavailable)"
    );
    assert!(unavailable < 190, "the burst was not throttled but failed");
    for server in servers {
        server.stop();
    }
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn self_registration_is_limited_per_address() {
    let dir = TestDir::new("throttle-register");
    let server = Server::start(&dir, &[("SENTRI_REGISTER_MAX_PER_HOUR", "3")]);
    let c = client();
    for i in 0..3 {
        register(&c, &server, &format!("r{i}@example.com")).await;
    }
    let r = post(
        &c,
        &server,
        "/auth/register",
        json!({ "identifier": "r3@example.com", "password": PASSWORD }),
    )
    .await;
    assert_eq!((r.status, r.code()), (429, "RATE_LIMITED"), "{:?}", r.body);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
}
