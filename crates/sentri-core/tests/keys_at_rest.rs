//! Signing keys at rest (F-15): encrypted under a key-encryption key that is
//! not in the store, migrated from plaintext on start, refused without the
//! right key.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{PASSWORD, fast_policy, login_input, register_input};
use sentri_core::cipher::{Aes256GcmCipher, CipherError, SecretCipher};
use sentri_core::config::ConfigBuilder;
use sentri_core::store::{KeyStore, Stores};
use sentri_core::{Config, ErrorCode, Sentri};
use sentri_memory::MemoryStore;
use zeroize::Zeroizing;

const KEK: [u8; 32] = [0x42; 32];
const OTHER_KEK: [u8; 32] = [0x17; 32];

fn eddsa() -> ConfigBuilder {
    Config::builder()
        .valid_roles(["user"])
        .password_policy(fast_policy())
}

async fn start(builder: ConfigBuilder, store: &Arc<MemoryStore>) -> sentri_core::Result<Sentri> {
    Sentri::new(builder.build()?, Stores::from_backend(store.clone())).await
}

async fn stored(store: &MemoryStore) -> Vec<String> {
    store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.private_key_pem.to_string())
        .collect()
}

fn kid_of(sentri: &Sentri) -> String {
    sentri.jwks().keys[0].common.key_id.clone().unwrap()
}

#[tokio::test]
async fn with_a_kek_generated_keys_are_stored_encrypted() {
    let store = Arc::new(MemoryStore::new());
    let sentri = start(eddsa().key_encryption_key(KEK), &store)
        .await
        .unwrap();
    let rows = stored(&store).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].starts_with("enc:v1:"), "stored: {}", &rows[0][..12]);
    assert!(!rows[0].contains("PRIVATE KEY"));
    // A rotated-in key is encrypted too.
    sentri.rotate_signing_key().await.unwrap();
    let rows = stored(&store).await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.starts_with("enc:v1:")));
}

#[tokio::test]
async fn plaintext_keys_are_migrated_and_old_tokens_still_verify() {
    let store = Arc::new(MemoryStore::new());
    let before = start(eddsa(), &store).await.unwrap();
    assert!(stored(&store).await[0].starts_with("-----BEGIN PRIVATE KEY-----"));
    before
        .register(register_input("m@example.com"))
        .await
        .unwrap();
    let token = before
        .login(login_input("m@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap()
        .tokens
        .access_token;

    let after = start(eddsa().key_encryption_key(KEK), &store)
        .await
        .unwrap();
    let rows = stored(&store).await;
    assert!(
        rows[0].starts_with("enc:v1:"),
        "the plaintext key must be encrypted on start"
    );
    assert_eq!(kid_of(&after), kid_of(&before), "the same key, encrypted");
    after.verify_access(&token).await.unwrap();

    // And again after a restart with the same key: nothing changes.
    let again = start(eddsa().key_encryption_key(KEK), &store)
        .await
        .unwrap();
    assert_eq!(stored(&store).await, rows, "an encrypted key is left alone");
    again.verify_access(&token).await.unwrap();
    let fresh = again
        .login(login_input("m@example.com", PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap();
    after
        .verify_access(&fresh.tokens.access_token)
        .await
        .unwrap();
}

#[tokio::test]
async fn encrypted_keys_refuse_a_start_without_the_kek() {
    let store = Arc::new(MemoryStore::new());
    start(eddsa().key_encryption_key(KEK), &store)
        .await
        .unwrap();
    let err = start(eddsa(), &store).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigurationError);
    assert!(
        err.message().starts_with("key_encryption_key: "),
        "{}",
        err.message()
    );
    // Nothing was changed or added.
    assert_eq!(stored(&store).await.len(), 1);
}

#[tokio::test]
async fn a_wrong_kek_is_refused_and_changes_nothing() {
    let store = Arc::new(MemoryStore::new());
    start(eddsa().key_encryption_key(KEK), &store)
        .await
        .unwrap();
    let rows = stored(&store).await;
    let err = start(eddsa().key_encryption_key(OTHER_KEK), &store)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigurationError);
    assert!(
        err.message()
            .starts_with("key_encryption_key: cannot decrypt")
    );
    assert_eq!(stored(&store).await, rows);
}

#[tokio::test]
async fn an_envelope_moved_to_another_kid_does_not_decrypt() {
    let store = Arc::new(MemoryStore::new());
    let sentri = start(eddsa().key_encryption_key(KEK), &store)
        .await
        .unwrap();
    let old = store.list_keys().await.unwrap().remove(0);
    sentri.rotate_signing_key().await.unwrap();
    let new = store.list_keys().await.unwrap().remove(1);
    // Put the old key's envelope into the active row.
    assert!(
        store
            .replace_private_key(&new.kid, &new.private_key_pem, &old.private_key_pem)
            .await
            .unwrap()
    );
    let err = start(eddsa().key_encryption_key(KEK), &store)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigurationError);
}

#[tokio::test]
async fn concurrent_starts_migrate_each_key_once() {
    let store = Arc::new(MemoryStore::new());
    let first = start(eddsa(), &store).await.unwrap();
    first.rotate_signing_key().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            start(eddsa().key_encryption_key(KEK), &store).await
        }));
    }
    let mut kids = Vec::new();
    for task in tasks {
        kids.push(kid_of(&task.await.unwrap().unwrap()));
    }
    assert!(kids.iter().all(|k| *k == kids[0]));
    assert!(
        stored(&store)
            .await
            .iter()
            .all(|r| r.starts_with("enc:v1:"))
    );
}

/// A stand-in for a KMS: counts calls and writes its own scheme.
struct CountingCipher {
    inner: Aes256GcmCipher,
    encrypts: Arc<AtomicUsize>,
    decrypts: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl SecretCipher for CountingCipher {
    async fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, CipherError> {
        self.encrypts.fetch_add(1, Ordering::SeqCst);
        assert!(aad.starts_with(b"sentri:signing-key:"), "bound to the kid");
        let sealed = self.inner.encrypt(plaintext, aad).await?;
        Ok(sealed.replacen("enc:v1:", "enc:test:", 1))
    }

    async fn decrypt(&self, envelope: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CipherError> {
        self.decrypts.fetch_add(1, Ordering::SeqCst);
        let inner = envelope
            .strip_prefix("enc:test:")
            .ok_or_else(CipherError::rejected)?;
        self.inner.decrypt(&format!("enc:v1:{inner}"), aad).await
    }
}

#[tokio::test]
async fn a_custom_cipher_is_used_for_storing_and_loading() {
    let store = Arc::new(MemoryStore::new());
    let (encrypts, decrypts) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let inner = Aes256GcmCipher::new(&KEK).unwrap();
    let cipher = || CountingCipher {
        inner: inner.clone(),
        encrypts: encrypts.clone(),
        decrypts: decrypts.clone(),
    };
    let sentri = start(eddsa().secret_cipher(cipher()), &store)
        .await
        .unwrap();
    assert_eq!(encrypts.load(Ordering::SeqCst), 1);
    assert!(
        decrypts.load(Ordering::SeqCst) >= 1,
        "loaded through the cipher"
    );
    let rows = stored(&store).await;
    assert!(
        rows[0].starts_with("enc:test:"),
        "the custom envelope is stored"
    );
    let kid = store.list_keys().await.unwrap()[0].kid.clone();
    assert_eq!(kid_of(&sentri), kid);
    // Restart: decrypted by the custom cipher again; the built-in one
    // (same key, other scheme) does not read it.
    let again = start(eddsa().secret_cipher(cipher()), &store)
        .await
        .unwrap();
    assert_eq!(kid_of(&again), kid);
    assert!(
        start(eddsa().key_encryption_key(KEK), &store)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_kek_is_validated_at_build() {
    let err = eddsa().key_encryption_key([1u8; 16]).build().unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigurationError);
    assert!(err.message().starts_with("key_encryption_key"));
    let both = eddsa()
        .key_encryption_key(KEK)
        .secret_cipher(Aes256GcmCipher::new(&KEK).unwrap())
        .build();
    assert!(both.is_err());
    let config = eddsa().key_encryption_key(KEK).build().unwrap();
    assert!(config.secret_cipher().is_some());
    assert!(format!("{config:?}").contains("secret_cipher: Some(\"<configured>\")"));
}
