//! Signing keys: generation, loading, the key ring used to verify, and the
//! published JWKS (F-10, F-15).
//!
//! Asymmetric keys are generated once and persisted through the
//! [`KeyStore`](crate::store::KeyStore), so every instance and every restart
//! signs with the same key. Each key's `kid` is its RFC 7638 thumbprint.
//! Verification looks the `kid` up in the ring and uses that key with *its
//! own* algorithm only: a token naming another algorithm (`none`, or HMAC
//! keyed with a published public key) is refused before any signature check.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{DecodingKey, EncodingKey};
use zeroize::Zeroizing;

use crate::cipher::{CipherError, CipherErrorKind, SharedCipher, is_envelope};
use crate::config::Algorithm;
use crate::error::{Error, ErrorCode, Result};
use crate::model::KeyRecord;
use crate::store::KeyStore;

/// A key that signs access tokens.
#[derive(Clone)]
pub(crate) struct SigningKey {
    pub(crate) algorithm: Algorithm,
    /// `None` for HMAC (no `kid` in the header).
    pub(crate) kid: Option<String>,
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    /// The public JWK (asymmetric only).
    pub(crate) jwk: Option<Jwk>,
}

impl SigningKey {
    pub(crate) fn from_secret(algorithm: Algorithm, secret: &[u8]) -> Self {
        Self {
            algorithm,
            kid: None,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            jwk: None,
        }
    }

    /// Load an asymmetric private key PEM. `origin` names it in errors.
    pub(crate) fn from_pem(algorithm: Algorithm, origin: &str, pem: &str) -> Result<Self> {
        let bad = |_| Error::configuration(origin, "not a valid private key for the algorithm");
        let encoding = match algorithm {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
                EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(bad)?
            }
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()).map_err(bad)?,
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()).map_err(bad)?,
            _ => return Err(Error::configuration(origin, "not an asymmetric algorithm")),
        };
        let mut jwk = Jwk::from_encoding_key(&encoding, algorithm.to_jwt()).map_err(bad)?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(bad)?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk).map_err(bad)?;
        // Prove the pair works: a key that cannot sign must fail at startup.
        let probe = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(algorithm.to_jwt()),
            &serde_json::json!({"probe": true}),
            &encoding,
        )
        .map_err(bad)?;
        let mut validation = jsonwebtoken::Validation::new(algorithm.to_jwt());
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        jsonwebtoken::decode::<serde_json::Value>(&probe, &decoding, &validation).map_err(bad)?;
        Ok(Self {
            algorithm,
            kid: Some(kid),
            encoding,
            decoding,
            jwk: Some(jwk),
        })
    }
}

/// Generate a new private key for `algorithm`, as PKCS#8 PEM.
pub(crate) fn generate_pem(algorithm: Algorithm) -> Result<Zeroizing<String>> {
    let failed = |_| Error::internal("key generation failed");
    let der: Zeroizing<Vec<u8>> = match algorithm {
        Algorithm::EdDSA => {
            let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
                .map_err(failed)?;
            Zeroizing::new(doc.as_ref().to_vec())
        }
        Algorithm::ES256 => {
            let doc = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .map_err(failed)?;
            Zeroizing::new(doc.as_ref().to_vec())
        }
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(failed)?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair.as_der().map_err(failed)?;
            Zeroizing::new(der.as_ref().to_vec())
        }
        _ => {
            return Err(Error::internal(
                "cannot generate a key for an HMAC algorithm",
            ));
        }
    };
    Ok(Zeroizing::new(to_pem("PRIVATE KEY", &der)))
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A new key record for `algorithm`, ready for the KeyStore.
pub(crate) fn new_record(
    algorithm: Algorithm,
    now: DateTime<Utc>,
) -> Result<(KeyRecord, SigningKey)> {
    let pem = generate_pem(algorithm)?;
    let key = SigningKey::from_pem(algorithm, "generated key", &pem)?;
    let record = KeyRecord {
        kid: key.kid.clone().unwrap_or_default(),
        algorithm: algorithm.as_str().to_owned(),
        private_key_pem: pem,
        created_at: now,
        retired_at: None,
    };
    Ok((record, key))
}

/// A verification key and the one algorithm it accepts.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    pub(crate) algorithm: jsonwebtoken::Algorithm,
    pub(crate) key: DecodingKey,
}

/// The keys in use: one that signs, all that verify, and the JWKS.
pub(crate) struct KeyRing {
    pub(crate) signing: SigningKey,
    /// By `kid`. Empty for HMAC.
    pub(crate) by_kid: HashMap<String, VerifyKey>,
    /// The serialised JWKS (`{"keys": []}` for HMAC: secrets are never published).
    pub(crate) jwks: Arc<JwkSet>,
}

impl KeyRing {
    pub(crate) fn hmac(algorithm: Algorithm, secret: &[u8]) -> Self {
        Self {
            signing: SigningKey::from_secret(algorithm, secret),
            by_kid: HashMap::new(),
            jwks: Arc::new(JwkSet { keys: Vec::new() }),
        }
    }

    /// A ring of one configured key.
    pub(crate) fn single(signing: SigningKey) -> Self {
        Self::from_keys(signing, Vec::new())
    }

    /// The active key plus the keys still publishable (retired recently).
    pub(crate) fn from_keys(signing: SigningKey, others: Vec<SigningKey>) -> Self {
        let mut by_kid = HashMap::new();
        let mut keys = Vec::new();
        for k in std::iter::once(&signing).chain(others.iter()) {
            if let (Some(kid), Some(jwk)) = (&k.kid, &k.jwk) {
                if by_kid.contains_key(kid) {
                    continue;
                }
                by_kid.insert(
                    kid.clone(),
                    VerifyKey {
                        algorithm: k.algorithm.to_jwt(),
                        key: k.decoding.clone(),
                    },
                );
                keys.push(jwk.clone());
            }
        }
        Self {
            signing,
            by_kid,
            jwks: Arc::new(JwkSet { keys }),
        }
    }

    /// Build from the KeyStore's records: the active key of `algorithm`
    /// signs; keys retired after `publish_after` still verify.
    pub(crate) fn from_records(
        algorithm: Algorithm,
        records: &[KeyRecord],
        publish_after: DateTime<Utc>,
    ) -> Result<Option<Self>> {
        let Some(active) = records
            .iter()
            .rev()
            .find(|r| r.retired_at.is_none() && r.algorithm == algorithm.as_str())
        else {
            return Ok(None);
        };
        let signing = SigningKey::from_pem(algorithm, "stored key", &active.private_key_pem)?;
        let mut others = Vec::new();
        for r in records {
            if r.kid == active.kid {
                continue;
            }
            let keep = match r.retired_at {
                None => true,
                Some(at) => at > publish_after,
            };
            if !keep {
                continue;
            }
            let Some(alg) = Algorithm::parse(&r.algorithm).filter(|a| !a.is_hmac()) else {
                tracing::warn!(kid = %r.kid, "ignoring stored key with an unknown algorithm");
                continue;
            };
            match SigningKey::from_pem(alg, "stored key", &r.private_key_pem) {
                Ok(k) => others.push(k),
                Err(_) => tracing::warn!(kid = %r.kid, "ignoring unreadable stored key"),
            }
        }
        Ok(Some(Self::from_keys(signing, others)))
    }
}

/// The associated data of a stored signing key's ciphertext: it binds the
/// envelope to its row, so an envelope copied to another `kid` does not
/// decrypt.
fn key_aad(kid: &str) -> Vec<u8> {
    format!("sentri:signing-key:{kid}").into_bytes()
}

fn cipher_error(kid: &str, err: CipherError) -> Error {
    match err.kind() {
        CipherErrorKind::Rejected => Error::configuration(
            "key_encryption_key",
            &format!(
                "cannot decrypt the stored signing key {kid}: the key-encryption key is not \
                 the one it was encrypted with, or the row was altered"
            ),
        ),
        CipherErrorKind::Unavailable => Error::new(ErrorCode::ServiceUnavailable).with_source(err),
        _ => Error::internal(err),
    }
}

/// Encrypt a new record's private key for storage (a no-op without a
/// cipher).
pub(crate) async fn seal_record(
    cipher: Option<&SharedCipher>,
    record: &mut KeyRecord,
) -> Result<()> {
    let Some(cipher) = cipher else { return Ok(()) };
    let sealed = cipher
        .encrypt(record.private_key_pem.as_bytes(), &key_aad(&record.kid))
        .await
        .map_err(|e| cipher_error(&record.kid, e))?;
    if !is_envelope(&sealed) {
        return Err(Error::configuration(
            "secret_cipher",
            "encrypt must return an envelope starting with `enc:`",
        ));
    }
    record.private_key_pem = Zeroizing::new(sealed);
    Ok(())
}

/// The stored keys, readable: plaintext rows encrypted in place first when
/// a cipher is configured (compare-and-set, so instances starting together
/// agree), then the keys the ring needs (active, or retired after
/// `publish_after`) decrypted into memory. Other rows are left out.
///
/// # Errors
/// `CONFIGURATION_ERROR` (`key_encryption_key`) when a stored key is
/// encrypted and no cipher is configured, or the cipher cannot decrypt a
/// needed key; `SERVICE_UNAVAILABLE` when the store or key service is down.
pub(crate) async fn readable_records(
    cipher: Option<&SharedCipher>,
    store: &dyn KeyStore,
    publish_after: DateTime<Utc>,
) -> Result<Vec<KeyRecord>> {
    let mut records = store.list_keys().await?;
    if let Some(cipher) = cipher {
        let mut migrated = 0u32;
        let mut changed = false;
        for record in records.iter().filter(|r| !is_envelope(&r.private_key_pem)) {
            let mut sealed = record.clone();
            seal_record(Some(cipher), &mut sealed).await?;
            if store
                .replace_private_key(
                    &record.kid,
                    &record.private_key_pem,
                    &sealed.private_key_pem,
                )
                .await?
            {
                migrated += 1;
            }
            changed = true;
        }
        if migrated > 0 {
            tracing::info!(keys = migrated, "encrypted stored signing keys at rest");
        }
        if changed {
            // Read back what won (ours, or another instance's envelope).
            records = store.list_keys().await?;
        }
    } else if let Some(sealed) = records.iter().find(|r| is_envelope(&r.private_key_pem)) {
        return Err(Error::configuration(
            "key_encryption_key",
            &format!(
                "the stored signing key {} is encrypted, and no key-encryption key is configured",
                sealed.kid
            ),
        ));
    }
    let mut out = Vec::with_capacity(records.len());
    for mut record in records {
        let needed = match record.retired_at {
            None => true,
            Some(at) => at > publish_after,
        };
        if !needed {
            continue;
        }
        if let Some(cipher) = cipher.filter(|_| is_envelope(&record.private_key_pem)) {
            let plain = cipher
                .decrypt(&record.private_key_pem, &key_aad(&record.kid))
                .await
                .map_err(|e| cipher_error(&record.kid, e))?;
            let pem = std::str::from_utf8(&plain).map_err(|_| {
                Error::configuration(
                    "key_encryption_key",
                    &format!("the stored signing key {} decrypts to no PEM", record.kid),
                )
            })?;
            record.private_key_pem = Zeroizing::new(pem.to_owned());
        }
        out.push(record);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_and_have_thumbprint_kids() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            let (record, key) = new_record(alg, Utc::now()).unwrap();
            assert_eq!(key.kid.as_deref(), Some(record.kid.as_str()));
            assert!(
                record
                    .private_key_pem
                    .starts_with("-----BEGIN PRIVATE KEY-----")
            );
            let again = SigningKey::from_pem(alg, "x", &record.private_key_pem).unwrap();
            assert_eq!(again.kid, key.kid, "{alg}");
            let jwk = serde_json::to_value(key.jwk.unwrap()).unwrap();
            assert_eq!(jwk["kid"], record.kid.as_str());
            assert_eq!(jwk["use"], "sig");
            assert!(
                jwk.get("d").is_none(),
                "private part must never be published"
            );
        }
    }

    #[test]
    fn a_pem_for_another_algorithm_is_refused() {
        let pem = generate_pem(Algorithm::EdDSA).unwrap();
        assert!(SigningKey::from_pem(Algorithm::ES256, "k", &pem).is_err());
        assert!(SigningKey::from_pem(Algorithm::RS256, "k", &pem).is_err());
    }

    #[test]
    fn retired_keys_are_published_only_within_their_window() {
        let now = Utc::now();
        let (mut old, _) = new_record(Algorithm::EdDSA, now).unwrap();
        let (mut older, _) = new_record(Algorithm::EdDSA, now).unwrap();
        let (active, _) = new_record(Algorithm::EdDSA, now).unwrap();
        old.retired_at = Some(now - chrono::Duration::minutes(5));
        older.retired_at = Some(now - chrono::Duration::hours(2));
        let ring = KeyRing::from_records(
            Algorithm::EdDSA,
            &[older.clone(), old.clone(), active.clone()],
            now - chrono::Duration::minutes(15),
        )
        .unwrap()
        .unwrap();
        assert_eq!(ring.signing.kid.as_deref(), Some(active.kid.as_str()));
        assert!(ring.by_kid.contains_key(&old.kid));
        assert!(!ring.by_kid.contains_key(&older.kid));
        assert_eq!(ring.jwks.keys.len(), 2);
    }
}
