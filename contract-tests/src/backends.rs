//! The stores a contract server runs on, each prepared for one server
//! alone: the machine's PostgreSQL (127.0.0.1:5432, trust auth) gets a
//! fresh database, its Redis (127.0.0.1:6379) a fresh key prefix; both are
//! removed when the server is dropped. Nothing else on those services is
//! read, changed or flushed.

use std::sync::Arc;

use sentri_core::store::Stores;
use sentri_memory::MemoryStore;
use sentri_redis::RedisStore;
use sentri_redis::fred::prelude::ClientLike;
use sentri_redis::fred::types::{ClusterHash, CustomCommand};
use sentri_sea_orm::SeaOrmStore;
use sentri_sea_orm::sea_orm::ConnectionTrait;

/// The machine's PostgreSQL server.
const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
/// The machine's Redis.
const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Where a contract server keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One `MemoryStore` for everything.
    Memory,
    /// `SeaOrmStore` on a fresh, migrated PostgreSQL database for
    /// everything.
    Postgres,
    /// `RedisStore` under a fresh key prefix for idempotency and
    /// throttling (what `sentri-server` puts in Redis), a `MemoryStore`
    /// for the rest.
    Redis,
}

/// What a backend created for one server; removed on drop.
#[derive(Debug)]
pub(crate) struct Isolation(Option<Created>);

#[derive(Debug)]
enum Created {
    /// The PostgreSQL database of that name.
    Database(String),
    /// The Redis keys under that prefix.
    Prefix(String),
}

impl Backend {
    /// Fresh stores, and what to remove afterwards.
    pub(crate) async fn stores(self) -> (Stores, Isolation) {
        let memory = || Stores::from_backend(Arc::new(MemoryStore::new()));
        match self {
            Self::Memory => (memory(), Isolation(None)),
            Self::Postgres => {
                let name = format!("sentri_contract_t_{}", uuid::Uuid::new_v4().simple());
                admin(&format!("CREATE DATABASE {name}")).await;
                let url = format!("{PG_SERVER}/{name}");
                let mut options = sentri_sea_orm::connect_options(&url);
                options.max_connections(8);
                let db = sentri_sea_orm::connect_with(options)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
                sentri_sea_orm::migrate(&db)
                    .await
                    .unwrap_or_else(|e| panic!("migrate {url}: {e}"));
                let store = Arc::new(SeaOrmStore::new(db));
                (
                    Stores::from_backend(store),
                    Isolation(Some(Created::Database(name))),
                )
            }
            Self::Redis => {
                let prefix = format!("sentri-contract-test:{}:", uuid::Uuid::new_v4().simple());
                let redis = RedisStore::connect(REDIS_URL, &prefix)
                    .await
                    .unwrap_or_else(|e| panic!("the Redis at {REDIS_URL}: {e}"));
                let redis = Arc::new(redis);
                let stores = memory()
                    .with_idempotency(redis.clone())
                    .with_throttle(redis);
                (stores, Isolation(Some(Created::Prefix(prefix))))
            }
        }
    }
}

/// Run `sql` on the PostgreSQL server's `test` database.
async fn admin(sql: &str) {
    let url = format!("{PG_SERVER}/test");
    let db = sentri_sea_orm::connect(&url).await.unwrap_or_else(|e| {
        panic!("the PostgreSQL at {url} (these tests need the machine's server): {e}")
    });
    db.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = db.close().await;
}

/// Delete every key under `prefix` (SCAN, never KEYS or a flush).
async fn delete_prefix(prefix: &str) {
    const SCRIPT: &str = "local c = '0' repeat \
        local r = redis.call('SCAN', c, 'MATCH', ARGV[1], 'COUNT', 1000) c = r[1] \
        for _, k in ipairs(r[2]) do redis.call('DEL', k) end \
        until c == '0' return 0";
    let Ok(config) = sentri_redis::fred::types::config::Config::from_url(REDIS_URL) else {
        return;
    };
    let Ok(client) = sentri_redis::fred::types::Builder::from_config(config).build() else {
        return;
    };
    if client.init().await.is_ok() {
        let eval = CustomCommand::new_static("EVAL", ClusterHash::Random, false);
        let args = vec![SCRIPT.to_owned(), "0".to_owned(), format!("{prefix}*")];
        let _: Result<i64, _> = client.custom(eval, args).await;
        let _ = client.quit().await;
    }
}

impl Drop for Isolation {
    fn drop(&mut self) {
        let Some(created) = self.0.take() else {
            return;
        };
        // Drop may run inside a runtime: clean up on a thread of its own.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                match created {
                    Created::Database(name) => {
                        admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                    }
                    Created::Prefix(prefix) => delete_prefix(&prefix).await,
                }
            });
        });
        let _ = done.join();
    }
}
