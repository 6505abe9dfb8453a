//! Black-box lifecycle tests against the built binary: restarts, key
//! rotation, the CLI, startup errors, graceful shutdown, and the server's
//! own routes (health, readiness, the OpenAPI document).

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_keeps_tokens_valid() {
    let dir = TestDir::new("restart");
    let c = client();
    let server = Server::start(&dir, &[]);
    register(&c, &server, "ivan@example.com").await;
    let out = login(&c, &server, "ivan@example.com").await;
    let access = out.body["data"]["accessToken"].as_str().unwrap().to_owned();
    let refresh = out.body["data"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    server.stop();

    // Same SQLite file, new process: the persisted key verifies the token.
    let server = Server::start(&dir, &[]);
    let me = get_bearer(&c, &server, "/auth/me", &access).await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    let rotated = post(
        &c,
        &server,
        "/auth/refresh",
        json!({ "refreshToken": refresh }),
    )
    .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    assert_eq!(
        kid_of(rotated.body["data"]["accessToken"].as_str().unwrap()),
        kid_of(&access)
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_rotate_keeps_old_tokens_and_signs_new_ones() {
    let dir = TestDir::new("rotate");
    let c = client();
    let server = Server::start(&dir, &[]);
    register(&c, &server, "judy@example.com").await;
    let old = login(&c, &server, "judy@example.com").await.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_kid = kid_of(&old);

    let out = run(&dir, &[], &["keys", "rotate"], "");
    assert!(out.status.success(), "{out:?}");
    let new_kid = out.stdout.trim().to_owned();
    assert!(!new_kid.is_empty() && new_kid != old_kid, "{out:?}");
    // The running server still accepts the old token.
    assert_eq!(get_bearer(&c, &server, "/auth/me", &old).await.status, 200);
    server.stop();

    let server = Server::start(&dir, &[]);
    let jwks = send(&c, Method::GET, &server.url("/auth/keys"), &[], None).await;
    assert_eq!(jwks.status, 200);
    let kids: Vec<&str> = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "{kids:?}"
    );
    let new = login(&c, &server, "judy@example.com").await.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kid_of(&new), new_kid);
    assert_eq!(
        get_bearer(&c, &server, "/auth/me", &old).await.status,
        200,
        "old token"
    );
    assert_eq!(
        get_bearer(&c, &server, "/auth/me", &new).await.status,
        200,
        "new token"
    );
    server.stop();

    // HMAC secrets are rotated by configuration, not by the command.
    let secret = [("SENTRI_SECRET", "0123456789abcdef0123456789abcdef")];
    let out = run(&dir, &secret, &["keys", "rotate"], "");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("SENTRI_SECRET"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn user_create_then_login_as_admin() {
    let dir = TestDir::new("user-create");
    let c = client();
    let pw = "an admin password of some length";
    let out = run(
        &dir,
        &[],
        &[
            "user",
            "create",
            "--identifier",
            "root@example.com",
            "--password-stdin",
            "--roles",
            "admin,user",
        ],
        &format!("{pw}\n"),
    );
    assert!(out.status.success(), "{out:?}");
    let admin_id = out.stdout.trim().to_owned();
    assert_eq!(admin_id.len(), 36, "prints the user id: {out:?}");
    assert!(!out.stderr.contains(pw) && !out.stdout.contains(pw));

    // Same identifier again: refused, exit code 1, one line, no panic.
    let again = run(
        &dir,
        &[],
        &[
            "user",
            "create",
            "--identifier",
            "root@example.com",
            "--password-stdin",
        ],
        pw,
    );
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(
        again.stderr.contains("USER_ALREADY_EXISTS"),
        "{}",
        again.stderr
    );
    assert!(!again.stderr.contains("panicked"));
    // No password on stdin.
    let empty = run(
        &dir,
        &[],
        &[
            "user",
            "create",
            "--identifier",
            "x@example.com",
            "--password-stdin",
        ],
        "",
    );
    assert_eq!(empty.status.code(), Some(2), "{empty:?}");
    // An unknown role.
    let role = run(
        &dir,
        &[],
        &[
            "user",
            "create",
            "--identifier",
            "y@example.com",
            "--password-stdin",
            "--roles",
            "root",
        ],
        pw,
    );
    assert!(role.stderr.contains("INVALID_ROLE"), "{role:?}");

    let server = Server::start(&dir, &[]);
    let r = post(
        &c,
        &server,
        "/auth/login",
        json!({ "identifier": "root@example.com", "password": pw }),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["data"]["user"]["roles"], json!(["admin", "user"]));
    let admin_token = r.body["data"]["accessToken"].as_str().unwrap().to_owned();

    // The admin manages another user's roles.
    let user = register(&c, &server, "kim@example.com").await;
    let path = format!("/auth/users/{}/roles", user["id"].as_str().unwrap());
    let auth = format!("Bearer {admin_token}");
    let r = send(
        &c,
        Method::POST,
        &server.url(&path),
        &[("authorization", &auth)],
        Some(json!({ "roles": ["admin"] })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["data"]["user"]["roles"], json!(["admin", "user"]));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_subcommand_is_repeatable() {
    let dir = TestDir::new("migrate");
    for _ in 0..2 {
        let out = run(&dir, &[], &["migrate"], "");
        assert!(out.status.success(), "{out:?}");
    }
    assert!(dir.path().join("auth.db").exists());
}

#[test]
fn an_unreachable_redis_fails_at_startup_naming_it_without_its_password() {
    let dir = TestDir::new("dead-redis");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = format!("redis://:s3cret-redis-pw@127.0.0.1:{port}");
    let out = run(&dir, &[("SENTRI_REDIS_URL", &url)], &["serve"], "");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("SENTRI_REDIS_URL") && out.stderr.contains("cannot connect to Redis"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("s3cret-redis-pw"), "{}", out.stderr);
    assert!(!out.stdout.contains("s3cret-redis-pw"), "{}", out.stdout);
}

#[test]
fn bad_settings_fail_at_startup_naming_the_variable() {
    let dir = TestDir::new("bad-settings");
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[("SENTRI_ACCESS_TTL", "soon")],
            "SENTRI_ACCESS_TTL",
            "not a duration",
        ),
        (
            &[("SENTRI_REFRESH_TTL", "1m")],
            "SENTRI_REFRESH_TTL",
            "longer than access_ttl",
        ),
        (
            &[("SENTRI_SECRET", "too-short")],
            "SENTRI_SECRET",
            "32 bytes",
        ),
        (
            &[("SENTRI_REDIS_URL", "http://127.0.0.1:6379")],
            "SENTRI_REDIS_URL",
            "redis://",
        ),
        (
            &[("SENTRI_SESSION_CHECK", "cached:2h")],
            "SENTRI_SESSION_CHECK",
            "1 second to 1 hour",
        ),
        (
            &[("SENTRI_FRAMEWORK", "actix")],
            "SENTRI_FRAMEWORK",
            "actix",
        ),
        (
            &[("SENTRI_COOKIES", "sometimes")],
            "SENTRI_COOKIES",
            "off, refresh, both",
        ),
        (
            &[("SENTRI_BIND", "nowhere")],
            "SENTRI_BIND",
            "socket address",
        ),
        (
            &[("SENTRI_ROLES", "user,bad role")],
            "SENTRI_ROLES",
            "role names",
        ),
        (&[("SENTRI_LOG", "a=b=c")], "SENTRI_LOG", "filter"),
        (
            &[("SENTRI_HEADER_READ_TIMEOUT", "0s")],
            "SENTRI_HEADER_READ_TIMEOUT",
            "longer than 0s",
        ),
        (
            &[("SENTRI_BODY_READ_TIMEOUT", "slow")],
            "SENTRI_BODY_READ_TIMEOUT",
            "not a duration",
        ),
        (
            &[("SENTRI_IDLE_TIMEOUT", "0")],
            "SENTRI_IDLE_TIMEOUT",
            "longer than 0s",
        ),
        (
            &[("SENTRI_REQUEST_TIMEOUT", "2m")],
            "SENTRI_REQUEST_TIMEOUT",
            "shorter than the idempotency lock TTL (60s)",
        ),
        (
            &[("SENTRI_MAX_CONNECTIONS", "0")],
            "SENTRI_MAX_CONNECTIONS",
            "from 1 to 1000000",
        ),
        (
            &[("SENTRI_COOKIE_SAMESITE", "sometimes")],
            "SENTRI_COOKIE_SAMESITE",
            "strict, lax, none",
        ),
        (
            &[
                ("SENTRI_COOKIE_SAMESITE", "none"),
                ("SENTRI_COOKIE_SECURE", "false"),
            ],
            "SENTRI_COOKIE_SAMESITE",
            "requires Secure",
        ),
        (
            &[
                ("SENTRI_COOKIE_HOST_PREFIX", "true"),
                ("SENTRI_COOKIE_SECURE", "false"),
            ],
            "SENTRI_COOKIE_HOST_PREFIX",
            "must be Secure",
        ),
        (
            &[("SENTRI_ACCESS_COOKIE_HTTPONLY", "maybe")],
            "SENTRI_ACCESS_COOKIE_HTTPONLY",
            "true or false",
        ),
        (
            &[("SENTRI_ALLOWED_ORIGINS", "https://app.example.com/path")],
            "SENTRI_ALLOWED_ORIGINS",
            "scheme://host[:port]",
        ),
        (
            &[("SENTRI_CONFIG", "/nonexistent/sentri.toml")],
            "configuration file",
            "cannot be read",
        ),
    ];
    for (env, name, problem) in cases {
        let out = run(&dir, env, &["serve"], "");
        assert_eq!(out.status.code(), Some(2), "{env:?}: {out:?}");
        assert!(
            out.stderr.contains(name) && out.stderr.contains(problem),
            "{env:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("panicked") && !out.stderr.contains("RUST_BACKTRACE"),
            "{}",
            out.stderr
        );
    }
    // An unreachable database: exit 1, URL shown without its password.
    let out = run(
        &dir,
        &[(
            "SENTRI_DATABASE_URL",
            "postgres://app:s3cr3t-pw@127.0.0.1:1/auth",
        )],
        &["serve"],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("SENTRI_DATABASE_URL") && !out.stderr.contains("s3cr3t-pw"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn config_file_with_env_override() {
    let dir = TestDir::new("config-file");
    let file = dir.path().join("sentri.toml");
    std::fs::write(
        &file,
        "roles = [\"member\", \"admin\"]\naccess_ttl = \"5m\"\nbind = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    // SENTRI_BIND (set by the harness to port 0) overrides the file's bind.
    let server = Server::start(&dir, &[("SENTRI_CONFIG", file.to_str().unwrap())]);
    let c = client();
    let user = register(&c, &server, "lee@example.com").await;
    assert_eq!(user["roles"], json!(["member"]));
    let out = login(&c, &server, "lee@example.com").await;
    let exp = chrono_secs(out.body["data"]["accessExpiresAt"].as_str().unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (exp - now - 300).abs() < 30,
        "access TTL from the file: {exp} vs {now}"
    );
    server.stop();
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp (`…Z`).
fn chrono_secs(text: &str) -> i64 {
    let (date, time) = text.split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let t: Vec<i64> = time
        .trim_end_matches('Z')
        .split(':')
        .map(|p| p.split('.').next().unwrap().parse().unwrap())
        .collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_and_ctrl_c_finish_in_flight_requests() {
    for (n, signal) in ["TERM", "INT"].into_iter().enumerate() {
        let dir = TestDir::new("shutdown");
        // The access log's trace line says when the request has arrived.
        let server = Server::start(&dir, &[("SENTRI_LOG", "info,sentri_server::access=trace")]);
        let c = client();
        // A registration hashes a password: long enough to be in flight.
        let url = server.url("/auth/register");
        let identifier = format!("mia{n}@example.com");
        let pending = tokio::spawn({
            let c = c.clone();
            async move {
                send(
                    &c,
                    Method::POST,
                    &url,
                    &[],
                    Some(json!({ "identifier": identifier, "password": PASSWORD })),
                )
                .await
            }
        });
        server.wait_for_output("request received method=POST path=/auth/register");
        server.signal(signal);
        let reply = pending.await.unwrap();
        assert_eq!(
            reply.status, 201,
            "SIG{signal}: the in-flight request completed: {:?}",
            reply.body
        );
        let output = server.stop_after_signal();
        assert!(
            output.contains("shutting down") && output.contains("stopped"),
            "{output}"
        );
        // New connections are refused once it has stopped.
        let refused = c
            .get(format!("{}/healthz", output_base(&output)))
            .send()
            .await;
        assert!(
            refused.is_err(),
            "SIG{signal}: still serving after shutdown"
        );
    }
}

/// The base URL from a server's "listening on" line.
fn output_base(output: &str) -> String {
    let at = output.find("listening on ").unwrap() + "listening on ".len();
    output[at..].split_whitespace().next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn healthz_readyz_and_openapi_match_the_served_routes() {
    let dir = TestDir::new("openapi");
    let server = Server::start(&dir, &[]);
    let c = client();
    let health = send(&c, Method::GET, &server.url("/healthz"), &[], None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["data"]["status"], "up");
    let ready = send(&c, Method::GET, &server.url("/readyz"), &[], None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["data"]["database"], "up");

    let doc = send(&c, Method::GET, &server.url("/openapi.json"), &[], None).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let paths = doc.body["paths"].as_object().expect("paths");
    // Every route of SPEC §6 is documented.
    for (method, path) in [
        ("post", "/auth/register"),
        ("post", "/auth/login"),
        ("post", "/auth/refresh"),
        ("post", "/auth/logout"),
        ("post", "/auth/logout-all"),
        ("get", "/auth/me"),
        ("put", "/auth/me/identifier"),
        ("put", "/auth/me/password"),
        ("get", "/auth/sessions"),
        ("delete", "/auth/sessions/{id}"),
        ("post", "/auth/users/{userId}/roles"),
        ("delete", "/auth/users/{userId}/roles"),
        ("get", "/auth/keys"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/openapi.json"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} not documented"
        );
    }
    // Every documented operation is served (not the 404/405 fallback), and
    // every other method on a documented path is 405.
    let id = "01a20cf4-46ee-76a9-89af-3e4d7678181e";
    for (path, item) in paths {
        let concrete = path.replace("{id}", id).replace("{userId}", id);
        let documented: Vec<&String> = item.as_object().unwrap().keys().collect();
        for method in ["get", "post", "put", "delete", "patch"] {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (method != "get").then(|| json!({}));
            let r = send(&c, m, &server.url(&concrete), &[], body).await;
            if documented.iter().any(|d| *d == method) {
                assert!(
                    r.status != 404 || r.code() != "NOT_FOUND",
                    "{method} {path} documented but not served"
                );
                assert_ne!(r.status, 405, "{method} {path} documented but not served");
            } else {
                assert_eq!(
                    r.status, 405,
                    "{method} {path} is served but not documented: {:?}",
                    r.body
                );
            }
        }
    }
    let unknown = send(&c, Method::GET, &server.url("/auth/nowhere"), &[], None).await;
    assert_eq!((unknown.status, unknown.code()), (404, "NOT_FOUND"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_started_at_once_share_one_key_and_the_sessions() {
    let dir = std::sync::Arc::new(TestDir::new("two-instances"));
    let starts: Vec<_> = (0..2)
        .map(|_| {
            let dir = dir.clone();
            std::thread::spawn(move || Server::start(&dir, &[]))
        })
        .collect();
    let servers: Vec<Server> = starts.into_iter().map(|t| t.join().unwrap()).collect();
    let c = client();
    let mut kids = Vec::new();
    for server in &servers {
        let jwks = send(&c, Method::GET, &server.url("/auth/keys"), &[], None).await;
        assert_eq!(jwks.status, 200);
        let keys = jwks.body["keys"].as_array().unwrap().clone();
        assert_eq!(
            keys.len(),
            1,
            "one generated key, not one per instance: {keys:?}"
        );
        kids.push(keys[0]["kid"].as_str().unwrap().to_owned());
    }
    assert_eq!(kids[0], kids[1]);

    // A session created through one instance works through the other.
    register(&c, &servers[0], "olga@example.com").await;
    let out = login(&c, &servers[0], "olga@example.com").await;
    let access = out.body["data"]["accessToken"].as_str().unwrap().to_owned();
    let refresh = out.body["data"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        get_bearer(&c, &servers[1], "/auth/me", &access)
            .await
            .status,
        200
    );
    let r = post(
        &c,
        &servers[1],
        "/auth/refresh",
        json!({ "refreshToken": refresh }),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for server in servers {
        server.stop();
    }
}

/// The `error:` lines of a failed start: exactly one, returned.
fn the_error_line(out: &Output) -> String {
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("error"))
        .filter(|l| !l.contains("sentri migration failed"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "the cause once, on one line:\n{}",
        out.stderr
    );
    assert!(lines[0].starts_with("error: "), "{}", out.stderr);
    for debug in [
        "Os {",
        "kind:",
        "ConnectionRefused",
        "pool timed out",
        "Connection Error",
    ] {
        assert!(!lines[0].contains(debug), "{debug:?} in {}", lines[0]);
    }
    lines[0].to_owned()
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

#[test]
fn connection_failures_name_their_cause_once_in_plain_words() {
    let dir = TestDir::new("operator-messages");
    let port = closed_port();
    // A database port nobody listens on.
    let url = format!("postgres://app:s3cr3t-pw@127.0.0.1:{port}/auth");
    let out = run(&dir, &[("SENTRI_DATABASE_URL", &url)], &["serve"], "");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = the_error_line(&out);
    assert_eq!(
        line,
        format!(
            "error: cannot connect to the database postgres://app:***@127.0.0.1:{port}/auth (SENTRI_DATABASE_URL): connection refused by 127.0.0.1:{port} (is the server running, on that port?)"
        )
    );
    // The same for MySQL.
    let url = format!("mysql://root:s3cr3t-pw@127.0.0.1:{port}/auth");
    let out = run(&dir, &[("SENTRI_DATABASE_URL", &url)], &["serve"], "");
    let line = the_error_line(&out);
    assert!(line.contains("connection refused by 127.0.0.1:"), "{line}");
    assert!(!out.stderr.contains("s3cr3t-pw"));
    // A wrong password: the database's own words, once.
    let out = run(
        &dir,
        &[(
            "SENTRI_DATABASE_URL",
            "mysql://root:wrong-pw@127.0.0.1:3306/mysql",
        )],
        &["serve"],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = the_error_line(&out);
    assert!(line.contains("Access denied for user 'root'"), "{line}");
    assert_eq!(line.matches("Access denied").count(), 1, "{line}");
    assert!(!out.stderr.contains("wrong-pw"), "{}", out.stderr);
    // Redis nobody listens on.
    let url = format!("redis://:s3cret-redis-pw@127.0.0.1:{port}");
    let out = run(&dir, &[("SENTRI_REDIS_URL", &url)], &["serve"], "");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = the_error_line(&out);
    assert_eq!(
        line,
        format!(
            "error: cannot connect to Redis redis://:***@127.0.0.1:{port} (SENTRI_REDIS_URL): connection refused by 127.0.0.1:{port} (is the server running, on that port?)"
        )
    );
}

#[test]
fn a_port_in_use_fails_before_the_database_is_touched() {
    let dir = TestDir::new("port-in-use");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // The database is unreachable too: the port conflict is what is reported.
    let db = format!("postgres://app@127.0.0.1:{}/auth", closed_port());
    let started = std::time::Instant::now();
    let out = run(
        &dir,
        &[("SENTRI_BIND", &addr), ("SENTRI_DATABASE_URL", &db)],
        &["serve"],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        the_error_line(&out),
        format!("error: cannot listen on {addr} (SENTRI_BIND): the address is already in use")
    );
    assert!(!out.stderr.contains("database"), "{}", out.stderr);
    // The SQLite default would have created its file when migrating.
    let out = command(&dir, &[("SENTRI_BIND", &addr)])
        .env_remove("SENTRI_DATABASE_URL")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.path().join("sentri.db").exists());
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    drop(taken);
}

#[test]
fn help_lists_the_settings_and_points_to_the_docs() {
    let dir = TestDir::new("help");
    let out = run(&dir, &[], &["--help"], "");
    assert!(out.status.success(), "{out:?}");
    for name in [
        "SENTRI_BIND",
        "SENTRI_DATABASE_URL",
        "SENTRI_REQUEST_TIMEOUT",
        "SENTRI_MAX_CONNECTIONS",
        "SENTRI_ALLOWED_ORIGINS",
        "SENTRI_CONFIG",
        "docs/server.md",
    ] {
        assert!(
            out.stdout.contains(name),
            "{name} missing from --help:\n{}",
            out.stdout
        );
    }
}
