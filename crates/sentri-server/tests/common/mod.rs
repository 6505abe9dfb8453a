//! Helpers of the black-box tests: start the built `sentri-server` binary
//! on a free loopback port with a temporary SQLite file, drive it over
//! HTTP, and always stop it (the guard kills the child on drop).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sentri-server");

/// How long a server may take to start listening.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// How long one HTTP request may take (argon2 in a debug build is slow, and
/// concurrent requests queue for the hashing permits).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A password used by the tests.
pub const PASSWORD: &str = "correct horse battery staple";

/// A temporary directory, removed on drop.
pub struct TestDir(PathBuf);

impl TestDir {
    /// A fresh, empty directory.
    pub fn new(name: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sentri-server-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test directory");
        Self(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The SQLite URL of the database file in this directory.
    pub fn database_url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.0.join("auth.db").display())
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A command running the binary in `dir`, with no `SENTRI_*` variable of
/// the caller's environment, the test database, a free port, and `env`.
pub fn command(dir: &TestDir, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SENTRI_") {
            cmd.env_remove(name);
        }
    }
    // A free port unless the test says otherwise: `serve` binds before
    // anything else, so the default 127.0.0.1:3000 being in use would
    // mask the failure a test expects.
    cmd.current_dir(dir.path())
        .env("SENTRI_BIND", "127.0.0.1:0")
        .env("SENTRI_DATABASE_URL", dir.database_url())
        .env("SENTRI_LOG", "info")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// What a finished command did.
#[derive(Debug)]
pub struct Output {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Run the binary to completion (bounded in time) with `args`, `env` and
/// `stdin` as its standard input.
pub fn run(dir: &TestDir, env: &[(&str, &str)], args: &[&str], stdin: &str) -> Output {
    let mut child = command(dir, env)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sentri-server");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let mut guard = ChildGuard(Some(child));
    let status = guard
        .wait_for(Duration::from_secs(120))
        .expect("command timed out");
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn drain(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = from.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// Kills and reaps the child on drop, whatever happened.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.0.as_mut()?;
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.0 = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running server. Dropping it kills the process.
pub struct Server {
    child: ChildGuard,
    pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    output: Arc<Mutex<String>>,
}

impl Server {
    /// Start `sentri-server serve` on a free port (`SENTRI_BIND=127.0.0.1:0`;
    /// the port is read from the "listening on" log line) and wait until it
    /// listens.
    pub fn start(dir: &TestDir, env: &[(&str, &str)]) -> Server {
        let mut cmd = command(dir, &[("SENTRI_BIND", "127.0.0.1:0")]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sentri-server");
        let pid = child.id();
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        let mut server = Server {
            child: ChildGuard(Some(child)),
            pid,
            base: String::new(),
            output,
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let text = server.output();
            if let Some(at) = text.find("listening on http://") {
                let rest = &text[at + "listening on ".len()..];
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                server.base = rest[..end].to_owned();
                return server;
            }
            if let Some(child) = server.child.0.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("sentri-server exited before listening ({status}):\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "sentri-server did not listen within {START_DEADLINE:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Wait (bounded) until the output contains `text`.
    pub fn wait_for_output(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.output().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{text:?} not logged within 30 s:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the process printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Send SIGTERM.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Send a signal by name (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns the output.
    pub fn stop(self) -> String {
        self.terminate();
        self.stop_after_signal()
    }

    /// Wait (bounded) for a clean exit after [`Server::terminate`];
    /// returns the output.
    pub fn stop_after_signal(mut self) -> String {
        let status = self
            .child
            .wait_for(Duration::from_secs(40))
            .unwrap_or_else(|| panic!("sentri-server did not stop:\n{}", self.output()));
        // Let the reader threads catch the last lines.
        std::thread::sleep(Duration::from_millis(100));
        let output = self.output();
        assert!(
            status.success(),
            "sentri-server exited with {status}:\n{output}"
        );
        output
    }
}

/// A client with bounded requests and no cookie store.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// A response: status, headers and the JSON body (or `Null`).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl Reply {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie` value.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The `Set-Cookie` value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The error code of an error envelope.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

/// The value of a `Set-Cookie` line (`name=value; …` → `value`).
pub fn cookie_value(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap_or("");
    pair.split_once('=').map_or("", |(_, v)| v).to_owned()
}

/// Send a request; `body` as JSON when given.
pub async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut req = client.request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("request failed");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.expect("read body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

/// `POST {base}{path}` with a JSON body.
pub async fn post(client: &reqwest::Client, server: &Server, path: &str, body: Value) -> Reply {
    send(
        client,
        reqwest::Method::POST,
        &server.url(path),
        &[],
        Some(body),
    )
    .await
}

/// `GET` with a bearer token.
pub async fn get_bearer(
    client: &reqwest::Client,
    server: &Server,
    path: &str,
    token: &str,
) -> Reply {
    let auth = format!("Bearer {token}");
    send(
        client,
        reqwest::Method::GET,
        &server.url(path),
        &[("authorization", &auth)],
        None,
    )
    .await
}

/// Register `identifier` with [`PASSWORD`]; asserts 201.
pub async fn register(client: &reqwest::Client, server: &Server, identifier: &str) -> Value {
    let r = post(
        client,
        server,
        "/auth/register",
        json!({ "identifier": identifier, "password": PASSWORD }),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["data"]["user"].clone()
}

/// Log in with [`PASSWORD`]; asserts 200 and returns the reply.
pub async fn login(client: &reqwest::Client, server: &Server, identifier: &str) -> Reply {
    let r = post(
        client,
        server,
        "/auth/login",
        json!({ "identifier": identifier, "password": PASSWORD }),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r
}

/// The `kid` in a JWT's header.
pub fn kid_of(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap_or("");
    let bytes = base64_url_decode(header);
    let value: Value = serde_json::from_slice(&bytes).expect("JWT header JSON");
    value["kid"].as_str().unwrap_or("").to_owned()
}

fn base64_url_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let Some(v) = ALPHABET.iter().position(|&a| a == c) else {
            continue;
        };
        buf = (buf << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

/// The machine's PostgreSQL (trust auth).
pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A fresh PostgreSQL database, dropped (best effort) by
/// [`PgDatabase::drop_now`].
pub struct PgDatabase {
    name: String,
}

impl PgDatabase {
    /// Create a database no other test uses.
    pub async fn create() -> Self {
        use sentri_sea_orm::sea_orm::ConnectionTrait;
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "sentri_server_t_{}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                % 1_000_000_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let admin = sentri_sea_orm::connect(&format!("{PG_SERVER}/test"))
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL on 127.0.0.1:5432 is needed by this test: {e:?}")
            });
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        admin.close().await.ok();
        Self { name }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("{PG_SERVER}/{}", self.name)
    }

    /// Drop it (forcing connections closed).
    pub async fn drop_now(self) {
        use sentri_sea_orm::sea_orm::ConnectionTrait;
        if let Ok(admin) = sentri_sea_orm::connect(&format!("{PG_SERVER}/test")).await {
            let _ = admin
                .execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await;
            admin.close().await.ok();
        }
    }
}

/// The machine's shared Redis: tests only ever use keys under their own
/// prefix there, and never flush or stop it.
pub const SHARED_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A key prefix on the shared Redis no other test uses; its keys are
/// deleted (SCAN + DEL of that prefix only, with `redis-cli`) on drop.
pub struct RedisPrefix(pub String);

impl RedisPrefix {
    /// A fresh prefix.
    pub fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        Self(format!(
            "sentri-server-test:{}:{}:{}:",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.0);
        let Ok(out) = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                "6379",
                "--scan",
                "--pattern",
                &pattern,
            ])
            .output()
        else {
            return;
        };
        for key in String::from_utf8_lossy(&out.stdout).lines() {
            if key.starts_with(&self.0) {
                let _ = Command::new("redis-cli")
                    .args(["-h", "127.0.0.1", "-p", "6379", "DEL", key])
                    .output();
            }
        }
    }
}

/// A throwaway `redis-server` on a free loopback port, without
/// persistence, in its own directory. Killed on drop.
pub struct RedisServer {
    /// Its port.
    pub port: u16,
    dir: TestDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Start one on a free port and wait until it answers.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            port,
            dir: TestDir::new("redis"),
            child: None,
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill it (SIGKILL) and wait for the process to end.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port (after [`RedisServer::kill`]) and
    /// wait until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is needed by this test");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pong = Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "ping"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
                .unwrap_or(false);
            if pong {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
