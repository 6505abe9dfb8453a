//! Shared setup of the Redis tests: the machine's shared Redis (never
//! flushed; each test works under its own random key prefix and deletes it
//! afterwards) and throwaway `redis-server` processes for fault tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sentri_core::model::{IdempotencyBegin, IdempotencyLease, StoredResponse};
use sentri_core::store::{
    AttemptId, Forget, IdempotencyStore, Limit, Reservations, StoreResult, ThrottleStore,
};
use sentri_redis::RedisStore;
use sentri_redis::fred::prelude::*;
use sentri_redis::fred::types::{ClusterHash, CustomCommand};

/// The shared Redis every non-fault test uses.
pub const SHARED_ADDR: &str = "127.0.0.1:6379";

pub fn shared_url() -> String {
    format!("redis://{SHARED_ADDR}")
}

/// A fresh key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("sentri-test:{}:", uuid::Uuid::new_v4().simple())
}

/// A store on the shared Redis under `prefix`; panics naming the address
/// when Redis cannot be reached.
pub async fn shared_store(prefix: &str) -> RedisStore {
    RedisStore::builder()
        .key_prefix(prefix)
        .pool_size(1)
        .connect(&shared_url())
        .await
        .unwrap_or_else(|err| {
            panic!("the shared Redis at {SHARED_ADDR} is unreachable ({err:?}); start it, these tests never skip")
        })
}

/// Delete every key under `prefix` on the Redis at `url` (SCAN + DEL,
/// touching nothing else).
pub async fn delete_prefix(url: &str, prefix: &str) {
    let client = Builder::from_config(Config::from_url(url).unwrap())
        .build()
        .unwrap();
    if client.init().await.is_err() {
        return;
    }
    let pattern = format!("{prefix}*");
    let mut cursor = "0".to_owned();
    loop {
        let reply: (String, Vec<String>) = client
            .custom(
                CustomCommand::new_static("SCAN", ClusterHash::Random, false),
                vec![
                    cursor.clone(),
                    "MATCH".into(),
                    pattern.clone(),
                    "COUNT".into(),
                    "1000".into(),
                ],
            )
            .await
            .unwrap();
        let (next, keys) = reply;
        for key in keys {
            assert!(
                key.starts_with(prefix),
                "SCAN returned {key} outside {prefix}"
            );
            let _: i64 = client
                .custom(
                    CustomCommand::new_static("DEL", ClusterHash::FirstKey, false),
                    vec![key],
                )
                .await
                .unwrap();
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    let _ = client.quit().await;
}

/// How many keys live under `prefix` on the shared Redis.
pub async fn count_prefix(prefix: &str) -> usize {
    let client = Builder::from_config(Config::from_url(&shared_url()).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    let pattern = format!("{prefix}*");
    let mut cursor = "0".to_owned();
    let mut n = 0;
    loop {
        let (next, keys): (String, Vec<String>) = client
            .custom(
                CustomCommand::new_static("SCAN", ClusterHash::Random, false),
                vec![
                    cursor.clone(),
                    "MATCH".into(),
                    pattern.clone(),
                    "COUNT".into(),
                    "1000".into(),
                ],
            )
            .await
            .unwrap();
        n += keys.len();
        if next == "0" {
            break;
        }
        cursor = next;
    }
    let _ = client.quit().await;
    n
}

/// Deletes its prefix on the shared Redis when dropped (from any thread,
/// inside a runtime or not).
pub struct PrefixGuard(pub String);

impl Drop for PrefixGuard {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        let cleanup = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(delete_prefix(&shared_url(), &prefix));
        });
        let _ = cleanup.join();
    }
}

/// A [`RedisStore`] under a fresh prefix on the shared Redis, deleting its
/// keys when dropped: what the conformance suites run on.
pub struct TestStore {
    store: RedisStore,
    _guard: PrefixGuard,
}

pub async fn test_store() -> TestStore {
    let prefix = unique_prefix();
    TestStore {
        store: shared_store(&prefix).await,
        _guard: PrefixGuard(prefix),
    }
}

#[async_trait]
impl IdempotencyStore for TestStore {
    async fn begin(
        &self,
        key: &str,
        fingerprint: &[u8; 32],
        lock_ttl: Duration,
    ) -> StoreResult<IdempotencyBegin> {
        self.store.begin(key, fingerprint, lock_ttl).await
    }

    async fn complete(
        &self,
        key: &str,
        lease: &IdempotencyLease,
        response: StoredResponse,
        ttl: Duration,
    ) -> StoreResult<bool> {
        self.store.complete(key, lease, response, ttl).await
    }

    async fn release(&self, key: &str, lease: &IdempotencyLease) -> StoreResult<bool> {
        self.store.release(key, lease).await
    }

    async fn purge_expired_idempotency(&self) -> StoreResult<u64> {
        self.store.purge_expired_idempotency().await
    }
}

#[async_trait]
impl ThrottleStore for TestStore {
    async fn reserve_all(
        &self,
        limits: &[Limit<'_>],
        now: DateTime<Utc>,
    ) -> StoreResult<Reservations> {
        self.store.reserve_all(limits, now).await
    }

    async fn forget(&self, items: &[Forget<'_>]) -> StoreResult<()> {
        self.store.forget(items).await
    }

    async fn refund(&self, key: &str, id: &AttemptId) -> StoreResult<()> {
        self.store.refund(key, id).await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.store.purge_expired(now).await
    }

    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
        keep: u32,
    ) -> StoreResult<()> {
        self.store.record_failure(key, now, window, keep).await
    }

    async fn recent_failures(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        self.store.recent_failures(key, now, window).await
    }

    async fn clear_failures(&self, key: &str) -> StoreResult<()> {
        self.store.clear_failures(key).await
    }
}

/// A throwaway `redis-server` on a free loopback port, in its own temporary
/// directory, with persistence off. Killed when dropped.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Start a server on a free port (another port is tried if the one
    /// picked was taken meanwhile).
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "sentri-redis-test-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port: 0,
            dir,
            child: None,
        };
        for _ in 0..5 {
            server.port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if server.try_start() {
                return server;
            }
        }
        panic!("could not start redis-server on a free loopback port");
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// Start the server again on its port and wait until it answers.
    pub fn restart(&mut self) {
        assert!(
            self.try_start(),
            "redis-server could not start again on {}",
            self.addr()
        );
    }

    /// Start the server on its port; true once it answers, and it is our
    /// process that answers (not another one that took the port).
    fn try_start(&mut self) -> bool {
        assert!(self.child.is_none(), "the server already runs");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("could not start redis-server (is it on PATH?): {err}"));
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(answering) = self.answering_pid() {
                if answering == pid {
                    return true;
                }
                self.kill();
                return false;
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited {
                self.child = None;
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not come up within 10 s",
                self.addr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `process_id` of the Redis answering on the port, if one does.
    fn answering_pid(&self) -> Option<u32> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.addr()).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .ok()?;
        stream.write_all(b"INFO server\r\n").ok()?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let n = stream.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            if let Some(line) = text.lines().find(|l| l.starts_with("process_id:")) {
                return line["process_id:".len()..].trim().parse().ok();
            }
        }
        None
    }

    /// Kill the server (SIGKILL) and wait for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Send `signal` (`STOP`, `CONT`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped server must be continued to die cleanly.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
