//! Failures: a database that is not there or goes away mid-request gives
//! `Unavailable` (never a panic, never a wrong answer), and a write that
//! fails half-way leaves nothing behind.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sentri_core::model::{NewSession, NewUser, PasswordHash, SessionId, TokenHash, UserId};
use sentri_core::store::{SessionStore, StoreErrorKind, UserStore};
use sentri_sea_orm::SeaOrmStore;
use sentri_sea_orm::sea_orm::ConnectionTrait;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap()
}

fn new_user(roles: &[&str]) -> NewUser {
    let key = format!("{}@example.test", uuid::Uuid::new_v4().simple());
    NewUser {
        id: UserId::new(),
        identifier: key.clone(),
        identifier_key: key,
        password_hash: PasswordHash::new("$test$hash"),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        name: None,
        created_at: now(),
    }
}

fn new_session(user: UserId) -> NewSession {
    NewSession {
        id: SessionId::new(),
        user_id: user,
        refresh_hash: TokenHash([7; 32]),
        user_agent: Some("test".into()),
        ip: Some("127.0.0.1".into()),
        created_at: now(),
        expires_at: now() + chrono::TimeDelta::hours(1),
        amr: vec!["pwd".to_owned()],
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

/// Options that give up quickly, for a database that is not there.
fn quick(url: &str) -> sentri_sea_orm::sea_orm::ConnectOptions {
    let mut options = sentri_sea_orm::connect_options(url);
    options
        .max_connections(4)
        .connect_timeout(Duration::from_secs(2))
        .acquire_timeout(Duration::from_secs(2));
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_nothing_is_unavailable() {
    let port = free_port();
    for url in [
        format!("postgres://postgres@127.0.0.1:{port}/sentri"),
        format!("mysql://root@127.0.0.1:{port}/sentri"),
    ] {
        let err = sentri_sea_orm::connect_with(quick(&url))
            .await
            .expect_err("nothing listens there");
        assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{url}: {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_pool_to_nothing_is_unavailable() {
    let port = free_port();
    for url in [
        format!("postgres://postgres@127.0.0.1:{port}/sentri"),
        format!("mysql://root@127.0.0.1:{port}/sentri"),
    ] {
        let mut options = quick(&url);
        options.connect_lazy(true);
        let db = sentri_sea_orm::connect_with(options)
            .await
            .expect("a lazy pool connects on first use");
        let store = SeaOrmStore::new(db);
        let err = tokio::time::timeout(
            common::HANG,
            store.find_active_session(SessionId::new(), now()),
        )
        .await
        .expect("the call must not hang")
        .expect_err("no database");
        assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{url}: {err:?}");
        let err = store
            .create_user(new_user(&["user"]))
            .await
            .expect_err("no database");
        assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{url}: {err:?}");
        let err = sentri_sea_orm::migrate(store.connection())
            .await
            .expect_err("no database");
        assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{url}: {err:?}");
    }
}

/// A private PostgreSQL server in a temporary directory, on a free loopback
/// port, stopped (and its files removed) on drop. Never the shared server.
struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
    running: bool,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn as_postgres_user(bin: &str, args: &[&str]) -> Command {
    let path = Path::new(PG_BIN).join(bin);
    // initdb refuses to run as root: run the server as `postgres` then.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(path).args(args);
        cmd
    } else {
        let mut cmd = Command::new(path);
        cmd.args(args);
        cmd
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivatePostgres {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(common::fresh_name());
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status();
        let data = dir.join("data");
        let port = free_port();
        run(
            as_postgres_user(
                "initdb",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "--no-sync",
                ],
            ),
            "initdb",
        );
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.display()
        );
        let log = dir.join("log");
        run(
            as_postgres_user(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-l",
                    log.to_str().unwrap(),
                    "-o",
                    &opts,
                    "-w",
                    "start",
                ],
            ),
            "pg_ctl start",
        );
        Self {
            dir,
            port,
            running: true,
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn stop(&mut self) {
        if self.running {
            let data = self.dir.join("data");
            run(
                as_postgres_user(
                    "pg_ctl",
                    &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
                ),
                "pg_ctl stop",
            );
            self.running = false;
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let data = self.dir.join("data");
            let _ = as_postgres_user(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            )
            .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_going_away_mid_request_is_unavailable() {
    let mut server = PrivatePostgres::start();
    let db = sentri_sea_orm::connect_with(quick(&server.url()))
        .await
        .expect("connect to the private PostgreSQL");
    sentri_sea_orm::migrate(&db).await.expect("migrate");
    let store = SeaOrmStore::new(db);
    let user = store.create_user(new_user(&["user"])).await.unwrap();
    let session = store.create_session(new_session(user.id)).await.unwrap();

    // Readers hammer the hot path while the server stops under them.
    let mut readers = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let id = session.id;
        readers.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for _ in 0..400 {
                let r = tokio::time::timeout(common::HANG, store.find_active_session(id, now()))
                    .await
                    .expect("find_active_session must not hang");
                let unavailable = matches!(&r, Err(e) if e.kind() == StoreErrorKind::Unavailable);
                outcomes.push(r.map(|s| s.is_some()).map_err(|e| e.kind()));
                if unavailable {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            outcomes
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.stop();

    for reader in readers {
        let outcomes = reader.await.expect("reader panicked");
        for o in &outcomes {
            assert!(
                matches!(o, Ok(true) | Err(StoreErrorKind::Unavailable)),
                "while the database goes away a live session is found or the store \
                 is Unavailable, never anything else: got {o:?}"
            );
        }
        assert_eq!(
            outcomes.last(),
            Some(&Err(StoreErrorKind::Unavailable)),
            "once the database is gone the store reports Unavailable"
        );
    }
    // Every kind of operation, after the server is gone.
    let err = store
        .rotate_refresh(
            session.id,
            &TokenHash([7; 32]),
            &TokenHash([8; 32]),
            now(),
            None,
        )
        .await
        .expect_err("no database");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err:?}");
    let err = store
        .create_user(new_user(&[]))
        .await
        .expect_err("no database");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err:?}");
    let err = store.ping().await.expect_err("no database");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err:?}");
}

/// `create_user` whose role insert fails leaves no user behind.
async fn failed_create_leaves_nothing(store: SeaOrmStore, bad_role: &str) {
    let user = new_user(&["user", bad_role]);
    let key = user.identifier_key.clone();
    let id = user.id;
    let err = store
        .create_user(user)
        .await
        .expect_err("the role insert must fail");
    assert_eq!(err.kind(), StoreErrorKind::Other, "{err:?}");
    assert!(
        store.find_user(id).await.unwrap().is_none(),
        "no half-written user"
    );
    assert!(store.find_user_by_identifier(&key).await.unwrap().is_none());
    // The identifier is free for a correct attempt.
    let mut again = new_user(&["user"]);
    again.identifier_key = key;
    store
        .create_user(again)
        .await
        .expect("retry with good roles");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_failed_create_user_is_rolled_back() {
    // Roles are at most 128 characters.
    failed_create_leaves_nothing(common::pg_store().await, &"r".repeat(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_failed_create_user_is_rolled_back() {
    failed_create_leaves_nothing(common::mysql_store().await, &"r".repeat(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_failed_create_user_is_rolled_back() {
    // SQLite does not enforce lengths: make the role insert fail by trigger.
    let store = common::sqlite_store().await;
    store
        .connection()
        .execute_unprepared(
            "CREATE TRIGGER boom BEFORE INSERT ON sentri_user_roles WHEN NEW.role = 'boom' \
             BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
        .await
        .unwrap();
    failed_create_leaves_nothing(store, "boom").await;
}
