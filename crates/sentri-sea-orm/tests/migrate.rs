//! Migrations on every backend: up → down → up, repeated `migrate()`, and
//! several instances migrating one fresh database at once.

mod common;

use sentri_core::store::UserStore;
use sentri_migration::{Migrator, MigratorTrait};
use sentri_sea_orm::SeaOrmStore;
use sentri_sea_orm::sea_orm::DatabaseConnection;

const TABLES: [&str; 8] = [
    "sentri_users",
    "sentri_user_roles",
    "sentri_sessions",
    "sentri_keys",
    "sentri_idempotency",
    "sentri_throttle",
    "sentri_throttle_keys",
    "sentri_one_time_tokens",
];

async fn assert_tables(db: &DatabaseConnection, present: bool) {
    let manager = sentri_migration::sea_orm_migration::SchemaManager::new(db);
    for table in TABLES {
        let has = manager
            .has_table(table)
            .await
            .unwrap_or_else(|e| panic!("has_table {table}: {e}"));
        assert_eq!(
            has, present,
            "table {table} present = {has}, expected {present}"
        );
    }
}

async fn up_down_up(url: String) {
    let db = common::pool(&url, 4).await;
    sentri_sea_orm::migrate(&db).await.expect("first migrate");
    assert_tables(&db, true).await;
    // The schema works.
    let store = SeaOrmStore::new(db.clone());
    assert!(store.find_user_by_identifier("x").await.unwrap().is_none());

    Migrator::down(&db, None).await.expect("migrate down");
    assert_tables(&db, false).await;
    let status = Migrator::get_migration_with_status(&db).await.unwrap();
    assert!(status.iter().all(|m| m.status().to_string() == "Pending"));

    sentri_sea_orm::migrate(&db)
        .await
        .expect("migrate up again");
    assert_tables(&db, true).await;
    // Safe on every startup: nothing to do the second time.
    sentri_sea_orm::migrate(&db)
        .await
        .expect("migrate when current");
    let status = Migrator::get_migration_with_status(&db).await.unwrap();
    assert_eq!(status.len(), Migrator::migrations().len());
    assert!(status.iter().all(|m| m.status().to_string() == "Applied"));
}

/// Several instances (each its own pool) start at once on a fresh database.
async fn racing_migrate(url: String) {
    let mut pools = Vec::new();
    for _ in 0..4 {
        pools.push(common::pool(&url, 2).await);
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(pools.len()));
    let tasks: Vec<_> = pools
        .iter()
        .cloned()
        .map(|db| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                sentri_sea_orm::migrate(&db).await
            })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("migrate task panicked")
            .unwrap_or_else(|e| panic!("concurrent migrate on {url} failed: {e:?}"));
    }
    assert_tables(&pools[0], true).await;
    let status = Migrator::get_migration_with_status(&pools[0])
        .await
        .unwrap();
    assert!(status.iter().all(|m| m.status().to_string() == "Applied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_up_down_up() {
    up_down_up(common::fresh_pg_database().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_up_down_up() {
    up_down_up(common::fresh_mysql_database().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_up_down_up() {
    up_down_up(common::fresh_sqlite_database()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_racing_migrate() {
    racing_migrate(common::fresh_pg_database().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_racing_migrate() {
    racing_migrate(common::fresh_mysql_database().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_racing_migrate() {
    racing_migrate(common::fresh_sqlite_database()).await;
}
