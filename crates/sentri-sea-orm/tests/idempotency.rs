//! SQL-specific idempotency checks on every backend: the purge really
//! deletes the expired rows (the conformance suite can only see that they
//! behave as free), and keeps the live ones.

mod common;

use std::time::Duration;

use sentri_core::model::{IdempotencyBegin, IdempotencyLease, StoredResponse};
use sentri_sea_orm::sea_orm::{ConnectionTrait, Statement};
use sentri_sea_orm::{IdempotencyStore, SeaOrmStore};

async fn rows(store: &SeaOrmStore) -> i64 {
    let db = store.connection();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM sentri_idempotency".to_owned(),
        ))
        .await
        .expect("count rows")
        .expect("one row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

async fn acquire(store: &SeaOrmStore, key: &str, lock_ttl: Duration) -> IdempotencyLease {
    match store.begin(key, &[7; 32], lock_ttl).await.expect("begin") {
        IdempotencyBegin::Acquired(lease) => lease,
        other => panic!("{key}: expected Acquired, got {other:?}"),
    }
}

async fn purge_deletes_expired_rows(store: SeaOrmStore) {
    let short = Duration::from_secs(1);
    let long = Duration::from_secs(300);
    let done = StoredResponse {
        status: 201,
        headers: Vec::new(),
        body: b"ok".to_vec(),
    };
    acquire(&store, "live-hold", long).await;
    let lease = acquire(&store, "live-done", long).await;
    assert!(
        store
            .complete("live-done", &lease, done.clone(), long)
            .await
            .unwrap()
    );
    acquire(&store, "lapsed-hold", short).await;
    let lease = acquire(&store, "expired-done", long).await;
    assert!(
        store
            .complete("expired-done", &lease, done, short)
            .await
            .unwrap()
    );
    assert_eq!(rows(&store).await, 4);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(store.purge_expired_idempotency().await.unwrap(), 2);
    assert_eq!(rows(&store).await, 2, "the two live rows stay");
    assert_eq!(store.purge_expired_idempotency().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_purge_deletes_expired_rows() {
    purge_deletes_expired_rows(common::sqlite_store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_purge_deletes_expired_rows() {
    purge_deletes_expired_rows(common::pg_store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_purge_deletes_expired_rows() {
    purge_deletes_expired_rows(common::mysql_store().await).await;
}
