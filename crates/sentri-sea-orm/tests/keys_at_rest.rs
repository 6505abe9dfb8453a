//! Signing keys at rest on real databases: with a key-encryption key the
//! `sentri_keys` rows hold no PEM, and instances starting at once on one
//! database with plaintext rows encrypt each row once and agree on the key.

mod common;

use std::sync::Arc;

use sentri_core::password::PasswordPolicy;
use sentri_core::store::Stores;
use sentri_core::{Config, Sentri};
use sentri_sea_orm::SeaOrmStore;
use sentri_sea_orm::sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

const KEK: [u8; 32] = [0x5a; 32];

fn config(kek: bool) -> Config {
    let builder = Config::builder()
        .valid_roles(["user"])
        .password_policy(PasswordPolicy::argon2id(256, 1, 1));
    let builder = if kek {
        builder.key_encryption_key(KEK)
    } else {
        builder
    };
    builder.build().unwrap()
}

/// The `private_key_pem` column, read from the table directly.
async fn rows(db: &DatabaseConnection) -> Vec<String> {
    db.query_all_raw(Statement::from_string(
        db.get_database_backend(),
        "SELECT private_key_pem FROM sentri_keys ORDER BY kid".to_owned(),
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get_by_index::<String>(0).unwrap())
    .collect()
}

async fn start(db: &DatabaseConnection, kek: bool) -> sentri_core::Result<Sentri> {
    let store = Arc::new(SeaOrmStore::new(db.clone()));
    Sentri::new(config(kek), Stores::from_backend(store)).await
}

async fn check(url: String) {
    let db = common::pool(&url, common::POOL).await;
    sentri_sea_orm::migrate(&db).await.unwrap();
    // Two plaintext keys, as an earlier version stored them.
    let first = start(&db, false).await.unwrap();
    first.rotate_signing_key().await.unwrap();
    let plain = rows(&db).await;
    assert_eq!(plain.len(), 2);
    assert!(
        plain
            .iter()
            .all(|r| r.starts_with("-----BEGIN PRIVATE KEY-----"))
    );

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move { start(&db, true).await }));
    }
    let mut kids = Vec::new();
    for task in tasks {
        let sentri = task.await.unwrap().unwrap();
        kids.push(
            sentri
                .jwks()
                .keys
                .iter()
                .map(|k| k.common.key_id.clone())
                .collect::<Vec<_>>(),
        );
    }
    assert!(
        kids.iter().all(|k| *k == kids[0]),
        "every instance has the same keys"
    );
    assert_eq!(kids[0].len(), 2);
    let sealed = rows(&db).await;
    assert!(
        sealed
            .iter()
            .all(|r| r.starts_with("enc:v1:") && !r.contains("PRIVATE KEY")),
        "no row holds a PEM after a start with a key-encryption key"
    );
    // The winner of each row is readable by a later start; without the
    // key it refuses and changes nothing.
    start(&db, true).await.unwrap();
    let err = start(&db, false).await.unwrap_err();
    assert!(
        err.message().starts_with("key_encryption_key: "),
        "{}",
        err.message()
    );
    assert_eq!(rows(&db).await, sealed);
    let _ = db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_keys_at_rest() {
    check(common::fresh_pg_database().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_keys_at_rest() {
    check(common::fresh_sqlite_database()).await;
}
