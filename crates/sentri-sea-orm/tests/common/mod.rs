//! Test databases: one fresh, migrated database per test on the machine's
//! PostgreSQL and MariaDB servers, or a fresh SQLite file. A server that
//! cannot be reached fails the test with a message saying which one.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sentri_sea_orm::SeaOrmStore;
use sentri_sea_orm::sea_orm::{ConnectionTrait, DatabaseConnection};

/// The PostgreSQL server of the machine (trust auth).
pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
/// The MariaDB server of the machine (root, empty password).
pub const MYSQL_SERVER: &str = "mysql://root@127.0.0.1:3306";
/// Prefix of every database these tests create.
const PREFIX: &str = "sentri_sql_t_";
/// Connections per test pool: a real pool for the concurrency checks.
pub const POOL: u32 = 8;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A fresh database name: `sentri_sql_t_<unix seconds>_<random>`.
pub fn fresh_name() -> String {
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{PREFIX}{}_{}", unix_now(), &rand[..12])
}

/// A pool of `max` connections to `url`, failing the test loudly.
pub async fn pool(url: &str, max: u32) -> DatabaseConnection {
    let mut options = sentri_sea_orm::connect_options(url);
    options.max_connections(max);
    match sentri_sea_orm::connect_with(options).await {
        Ok(db) => db,
        Err(e) => panic!(
            "cannot connect to {url}: {e:?}; the SQL tests need the machine's \
             PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306) servers"
        ),
    }
}

static SWEPT_PG: AtomicBool = AtomicBool::new(false);
static SWEPT_MYSQL: AtomicBool = AtomicBool::new(false);

/// Drop test databases of earlier runs (older than 30 minutes).
async fn sweep(admin: &DatabaseConnection, list_sql: &str, drop_sql: impl Fn(&str) -> String) {
    let rows = admin
        .query_all_raw(sentri_sea_orm::sea_orm::Statement::from_string(
            admin.get_database_backend(),
            list_sql.to_owned(),
        ))
        .await
        .expect("list test databases");
    let cutoff = unix_now().saturating_sub(1800);
    for row in rows {
        let name: String = row.try_get_by_index(0).expect("database name");
        let Some(ts) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|ts| ts.parse::<u64>().ok())
        else {
            continue;
        };
        if ts < cutoff {
            // Best effort: another run may be dropping it too.
            let _ = admin.execute_unprepared(&drop_sql(&name)).await;
        }
    }
}

/// Create a fresh, empty PostgreSQL database; returns its URL.
pub async fn fresh_pg_database() -> String {
    let admin = pool(&format!("{PG_SERVER}/test"), 1).await;
    if !SWEPT_PG.swap(true, Ordering::SeqCst) {
        sweep(
            &admin,
            &format!("SELECT datname FROM pg_database WHERE datname LIKE '{PREFIX}%'"),
            |n| format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)"),
        )
        .await;
    }
    let name = fresh_name();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on PostgreSQL: {e}"));
    let _ = admin.close().await;
    format!("{PG_SERVER}/{name}")
}

/// Create a fresh, empty MariaDB database; returns its URL.
pub async fn fresh_mysql_database() -> String {
    let admin = pool(&format!("{MYSQL_SERVER}/test"), 1).await;
    if !SWEPT_MYSQL.swap(true, Ordering::SeqCst) {
        sweep(&admin, &format!("SHOW DATABASES LIKE '{PREFIX}%'"), |n| {
            format!("DROP DATABASE IF EXISTS {n}")
        })
        .await;
    }
    let name = fresh_name();
    admin
        .execute_unprepared(&format!(
            "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on MariaDB: {e}"));
    let _ = admin.close().await;
    format!("{MYSQL_SERVER}/{name}")
}

/// A fresh SQLite file in its own temporary directory; returns its URL.
pub fn fresh_sqlite_database() -> String {
    let dir = std::env::temp_dir().join(fresh_name());
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    format!("sqlite://{}?mode=rwc", dir.join("sentri.db").display())
}

async fn migrated_store(url: String) -> SeaOrmStore {
    let db = pool(&url, POOL).await;
    if let Err(e) = sentri_sea_orm::migrate(&db).await {
        panic!("migrate {url}: {e:?}");
    }
    SeaOrmStore::new(db)
}

/// A store on a fresh, migrated PostgreSQL database.
pub async fn pg_store() -> SeaOrmStore {
    migrated_store(fresh_pg_database().await).await
}

/// A store on a fresh, migrated MariaDB database.
pub async fn mysql_store() -> SeaOrmStore {
    migrated_store(fresh_mysql_database().await).await
}

/// A store on a fresh, migrated SQLite file.
pub async fn sqlite_store() -> SeaOrmStore {
    migrated_store(fresh_sqlite_database()).await
}

/// How long a store call may take before a test calls it hung.
pub const HANG: Duration = Duration::from_secs(30);
