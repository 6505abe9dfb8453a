//! `SENTRI_KEY_ENCRYPTION_KEY` (F-15): the signing keys in the database are
//! encrypted, plaintext keys of an earlier start are migrated, and a start
//! without the key (or with another one) fails on one line naming it.

mod common;

use common::*;
use sentri_sea_orm::sea_orm::{ConnectionTrait, Statement};

const KEK: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
const OTHER_KEK: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// The `private_key_pem` column of every row, read from the file directly.
async fn stored_keys(dir: &TestDir) -> Vec<String> {
    let db = sentri_sea_orm::connect(&dir.database_url()).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT private_key_pem FROM sentri_keys ORDER BY created_at".to_owned(),
        ))
        .await
        .unwrap();
    let out = rows
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect();
    let _ = db.close().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_are_encrypted_at_rest_and_need_the_key_to_start() {
    let dir = TestDir::new("keys-at-rest");
    let c = client();

    // No key: plaintext as before, and one warning.
    let server = Server::start(&dir, &[]);
    register(&c, &server, "kek@example.com").await;
    let access = login(&c, &server, "kek@example.com").await.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let output = server.stop();
    assert_eq!(
        output.matches("SENTRI_KEY_ENCRYPTION_KEY").count(),
        1,
        "one warning without a key:\n{output}"
    );
    let plain = stored_keys(&dir).await;
    assert!(plain[0].starts_with("-----BEGIN PRIVATE KEY-----"));

    // With a key: the stored key is encrypted in place; old tokens verify.
    let server = Server::start(&dir, &[("SENTRI_KEY_ENCRYPTION_KEY", KEK)]);
    let me = get_bearer(&c, &server, "/auth/me", &access).await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    let output = server.stop();
    assert!(!output.contains("stored unencrypted"), "{output}");
    let sealed = stored_keys(&dir).await;
    assert_eq!(sealed.len(), 1);
    assert!(
        sealed[0].starts_with("enc:v1:") && !sealed[0].contains("PRIVATE KEY"),
        "the row must not hold the PEM after a start with a key"
    );
    assert!(!output.contains(&sealed[0][7..40]), "no ciphertext in logs");

    // Restarted with the same key: same key id, tokens still verify.
    let server = Server::start(&dir, &[("SENTRI_KEY_ENCRYPTION_KEY", KEK)]);
    let me = get_bearer(&c, &server, "/auth/me", &access).await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    let fresh = login(&c, &server, "kek@example.com").await.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kid_of(&fresh), kid_of(&access));
    server.stop();
    assert_eq!(stored_keys(&dir).await, sealed, "nothing re-encrypted");

    // Without the key, or with another one: exit 2, one line naming it.
    for env in [vec![], vec![("SENTRI_KEY_ENCRYPTION_KEY", OTHER_KEK)]] {
        let out = run(&dir, &env, &["serve"], "");
        assert_eq!(out.status.code(), Some(2), "{env:?}: {out:?}");
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains("SENTRI_KEY_ENCRYPTION_KEY:"))
            .unwrap_or_else(|| panic!("{env:?}: {}", out.stderr));
        assert!(line.contains("stored signing key"), "{line}");
        assert!(!out.stderr.contains(OTHER_KEK) && !out.stderr.contains("panicked"));
    }
    assert_eq!(stored_keys(&dir).await, sealed);
}

#[test]
fn a_malformed_key_fails_at_startup_naming_the_variable() {
    let dir = TestDir::new("bad-kek");
    for bad in ["not-a-key", "00ff", "AAAA"] {
        let out = run(&dir, &[("SENTRI_KEY_ENCRYPTION_KEY", bad)], &["serve"], "");
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            out.stderr.contains("SENTRI_KEY_ENCRYPTION_KEY") && out.stderr.contains("32 bytes"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains(bad), "the value is never shown");
    }
}
