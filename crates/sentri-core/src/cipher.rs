//! Secrets at rest: authenticated encryption under a key-encryption key
//! that is not in the database (F-15, SPEC §10).
//!
//! Whatever sentri stores that would let a reader act as someone else (the
//! private signing keys today; TOTP secrets and provider tokens later) goes
//! through a [`SecretCipher`] before it reaches a store, and is decrypted
//! only into memory ([`Zeroizing`]). Reading the table is then not enough:
//! the key-encryption key (KEK) lives in the environment
//! (`SENTRI_KEY_ENCRYPTION_KEY` in the server) or in a key service behind
//! an application's own cipher.
//!
//! ## The envelope
//!
//! An encrypted value is text that starts with `enc:` and names its scheme,
//! so a stored value says what it is and a plaintext value (a PEM starts
//! with `-----BEGIN`) is never mistaken for one. The built-in
//! [`Aes256GcmCipher`] writes
//!
//! ```text
//! enc:v1:<base64url, no padding, of nonce (12 bytes) || ciphertext || tag (16 bytes)>
//! ```
//!
//! AES-256-GCM with a fresh random 96-bit nonce per value; the
//! *associated data* binds the ciphertext to where it belongs (for a signing
//! key: its `kid`), so a value copied into another row does not decrypt.
//! A later scheme (`enc:v2:`, a KMS's `enc:kms:`) can sit next to it.
//!
//! ## Your own cipher (a KMS)
//!
//! ```
//! use sentri_core::cipher::{CipherError, SecretCipher};
//! use zeroize::Zeroizing;
//!
//! /// Asks a key service; here a stand-in that wraps the built-in one.
//! struct Kms(sentri_core::cipher::Aes256GcmCipher);
//!
//! #[async_trait::async_trait]
//! impl SecretCipher for Kms {
//!     async fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, CipherError> {
//!         // e.g. `GenerateDataKey` + encrypt locally, or `Encrypt` with `aad`
//!         // as the encryption context; the result must start with `enc:`.
//!         self.0.encrypt(plaintext, aad).await
//!     }
//!     async fn decrypt(&self, envelope: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CipherError> {
//!         self.0.decrypt(envelope, aad).await
//!     }
//! }
//!
//! # fn demo() -> sentri_core::Result<()> {
//! let kek = sentri_core::cipher::Aes256GcmCipher::generate()?;
//! let config = sentri_core::Config::builder()
//!     .valid_roles(["user"])
//!     .secret_cipher(Kms(kek))
//!     .build()?;
//! # let _ = config; Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use crate::error::{BoxError, Error};

/// The prefix of every encrypted value, whatever its scheme.
pub const ENVELOPE_PREFIX: &str = "enc:";

/// The prefix of the built-in scheme: AES-256-GCM, random 96-bit nonce.
pub const V1_PREFIX: &str = "enc:v1:";

const TAG_LEN: usize = 16;

/// Whether a stored value is an encrypted envelope (starts with `enc:`)
/// rather than plaintext.
pub fn is_envelope(stored: &str) -> bool {
    stored.starts_with(ENVELOPE_PREFIX)
}

/// Encrypts and decrypts secrets kept at rest.
///
/// Contract:
/// - `encrypt` returns text starting with [`ENVELOPE_PREFIX`] (`enc:`) and a
///   scheme tag of the cipher's own, and never the same text twice for the
///   same input (a fresh nonce or data key each time).
/// - `decrypt` of that text with the same `associated_data` returns the
///   plaintext; with other associated data, another key, or altered text it
///   fails with [`CipherErrorKind::Rejected`], never with wrong plaintext.
/// - A key service that cannot be reached is [`CipherErrorKind::Unavailable`].
///
/// Both are async so an implementation may call a KMS. Errors carry no
/// secret.
#[async_trait]
pub trait SecretCipher: Send + Sync + 'static {
    /// Encrypt `plaintext`, bound to `associated_data`.
    ///
    /// # Errors
    /// [`CipherErrorKind::Unavailable`] or [`CipherErrorKind::Other`].
    async fn encrypt(
        &self,
        plaintext: &[u8],
        associated_data: &[u8],
    ) -> Result<String, CipherError>;

    /// Decrypt an envelope made by [`SecretCipher::encrypt`] with the same
    /// `associated_data`.
    ///
    /// # Errors
    /// [`CipherErrorKind::Rejected`] (wrong key, wrong associated data,
    /// altered or unknown envelope), [`CipherErrorKind::Unavailable`].
    async fn decrypt(
        &self,
        envelope: &str,
        associated_data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CipherError>;
}

/// What kind of failure a cipher had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CipherErrorKind {
    /// The envelope does not decrypt under this key with this associated
    /// data: the wrong key-encryption key, or altered data.
    Rejected,
    /// The key service cannot be reached; try again later.
    Unavailable,
    /// Anything else.
    Other,
}

/// The error of a [`SecretCipher`]. Never holds a secret.
pub struct CipherError {
    kind: CipherErrorKind,
    source: Option<BoxError>,
}

impl CipherError {
    /// An error of `kind`.
    pub fn new(kind: CipherErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// An error of `kind` caused by `source` (which must not hold a secret).
    pub fn with_source(kind: CipherErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// `Rejected`.
    pub fn rejected() -> Self {
        Self::new(CipherErrorKind::Rejected)
    }

    /// The kind.
    pub fn kind(&self) -> CipherErrorKind {
        self.kind
    }
}

impl fmt::Debug for CipherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CipherError");
        d.field("kind", &self.kind);
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl fmt::Display for CipherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            CipherErrorKind::Rejected => {
                "the value does not decrypt under this key (wrong key-encryption key or altered data)"
            }
            CipherErrorKind::Unavailable => "the key service is unavailable",
            CipherErrorKind::Other => "encryption failed",
        })
    }
}

impl std::error::Error for CipherError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// The built-in [`SecretCipher`]: AES-256-GCM under a 32-byte key, envelope
/// `enc:v1:` (see the module docs).
///
/// ```
/// use sentri_core::cipher::{Aes256GcmCipher, SecretCipher};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// // 32 bytes as 64 hex digits or base64 (`openssl rand -base64 32`).
/// let kek = Aes256GcmCipher::from_encoded("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=")?;
/// let sealed = kek.encrypt(b"secret", b"row-1").await?;
/// assert!(sealed.starts_with("enc:v1:"));
/// assert_eq!(&kek.decrypt(&sealed, b"row-1").await?[..], b"secret");
/// assert!(kek.decrypt(&sealed, b"row-2").await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Aes256GcmCipher {
    key: Arc<RandomizedNonceKey>,
}

impl fmt::Debug for Aes256GcmCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Aes256GcmCipher(<redacted>)")
    }
}

impl Aes256GcmCipher {
    /// The length of the key in bytes.
    pub const KEY_LEN: usize = 32;

    /// A cipher under `key` (exactly 32 bytes).
    ///
    /// # Errors
    /// `CONFIGURATION_ERROR` (`key_encryption_key`) when `key` is not 32
    /// bytes.
    pub fn new(key: &[u8]) -> crate::Result<Self> {
        if key.len() != Self::KEY_LEN {
            return Err(Error::configuration(
                "key_encryption_key",
                "must be exactly 32 bytes",
            ));
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, key).map_err(|_| {
            Error::configuration("key_encryption_key", "cannot be used as an AES-256 key")
        })?;
        Ok(Self { key: Arc::new(key) })
    }

    /// A cipher under a key written as text: 64 hex digits, or base64
    /// (standard or URL-safe, padded or not) of 32 bytes. Generate one with
    /// `openssl rand -base64 32` (or `openssl rand -hex 32`). Surrounding
    /// whitespace is ignored.
    ///
    /// # Errors
    /// `CONFIGURATION_ERROR` (`key_encryption_key`) naming the expected
    /// format; the value itself is never repeated.
    pub fn from_encoded(text: &str) -> crate::Result<Self> {
        let key = decode_key(text.trim()).ok_or_else(|| {
            Error::configuration(
                "key_encryption_key",
                "must be 32 bytes written as 64 hex digits or as base64 \
                 (generate one with `openssl rand -base64 32`)",
            )
        })?;
        Self::new(&key)
    }

    /// A cipher under a new random key (tests, demos: a key that is not
    /// kept cannot decrypt anything after a restart).
    ///
    /// # Errors
    /// `INTERNAL_ERROR` when the system's random source fails.
    pub fn generate() -> crate::Result<Self> {
        let mut key = Zeroizing::new([0u8; Self::KEY_LEN]);
        aws_lc_rs::rand::fill(&mut key[..]).map_err(|_| Error::internal("no randomness"))?;
        Self::new(&key[..])
    }

    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, CipherError> {
        let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
        buf.extend_from_slice(plaintext);
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(aad), &mut *buf)
            .map_err(|_| CipherError::new(CipherErrorKind::Other))?;
        let mut raw = Vec::with_capacity(NONCE_LEN + buf.len());
        raw.extend_from_slice(nonce.as_ref());
        raw.extend_from_slice(&buf);
        Ok(format!("{V1_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)))
    }

    fn open(&self, envelope: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CipherError> {
        let body = envelope
            .strip_prefix(V1_PREFIX)
            .ok_or_else(CipherError::rejected)?;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CipherError::rejected())?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(CipherError::rejected());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CipherError::rejected())?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf[..])
            .map_err(|_| CipherError::rejected())?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[async_trait]
impl SecretCipher for Aes256GcmCipher {
    async fn encrypt(
        &self,
        plaintext: &[u8],
        associated_data: &[u8],
    ) -> Result<String, CipherError> {
        self.seal(plaintext, associated_data)
    }

    async fn decrypt(
        &self,
        envelope: &str,
        associated_data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CipherError> {
        self.open(envelope, associated_data)
    }
}

fn decode_key(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    // All hex digits first: decoding cannot then stop half-way, leaving
    // part of the key in a buffer that is not wiped.
    if text.len() == 2 * Aes256GcmCipher::KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return crate::password::decode_hex(text).map(Zeroizing::new);
    }
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(bytes) = engine.decode(text) {
            let bytes = Zeroizing::new(bytes);
            return (bytes.len() == Aes256GcmCipher::KEY_LEN).then_some(bytes);
        }
    }
    None
}

/// The cipher of a configuration, shared.
pub(crate) type SharedCipher = Arc<dyn SecretCipher>;

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    /// A private key as it is stored: long enough that finding it (or a
    /// part of it) in the ciphertext is no accident.
    const PEM: &[u8] = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIHx3n2yQ9cDk3QpT\n-----END PRIVATE KEY-----\n";

    #[tokio::test]
    async fn round_trip_and_binding_to_associated_data() {
        let c = Aes256GcmCipher::from_encoded(HEX).unwrap();
        let a = c.encrypt(PEM, b"kid-1").await.unwrap();
        let b = c.encrypt(PEM, b"kid-1").await.unwrap();
        assert!(a.starts_with(V1_PREFIX) && is_envelope(&a));
        assert_ne!(a, b, "a fresh nonce every time");
        // Neither the text nor its decoded bytes hold any 8-byte run of
        // the plaintext.
        let raw = URL_SAFE_NO_PAD
            .decode(a.strip_prefix(V1_PREFIX).unwrap())
            .unwrap();
        for run in PEM.windows(8) {
            assert!(!raw.windows(8).any(|w| w == run), "plaintext in the bytes");
            assert!(
                !a.as_bytes().windows(8).any(|w| w == run),
                "plaintext in the text"
            );
        }
        assert_eq!(&c.decrypt(&a, b"kid-1").await.unwrap()[..], PEM);
        let err = c.decrypt(&a, b"kid-2").await.unwrap_err();
        assert_eq!(err.kind(), CipherErrorKind::Rejected);
    }

    /// The key in every encoding `from_encoded` accepts, and its bytes.
    fn key_forms(key: &[u8]) -> Vec<String> {
        let mut forms: Vec<String> = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .map(|e| e.encode(key))
            .collect();
        forms.push(key.iter().map(|b| format!("{b:02x}")).collect());
        forms.push(key.iter().map(|b| format!("{b:02X}")).collect());
        forms.push(format!("{key:?}"));
        forms.push(String::from_utf8_lossy(key).into_owned());
        forms
    }

    #[tokio::test]
    async fn no_key_material_in_debug_or_display() {
        let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let c = Aes256GcmCipher::from_encoded(&hex).unwrap();
        let sealed = c.encrypt(PEM, b"kid").await.unwrap();
        let other = Aes256GcmCipher::generate().unwrap();
        let rejected = other.decrypt(&sealed, b"kid").await.unwrap_err();
        let shown = [
            format!("{c:?}"),
            format!("{rejected:?}"),
            rejected.to_string(),
            format!(
                "{:?}",
                Aes256GcmCipher::from_encoded(&hex[..62]).unwrap_err()
            ),
            Aes256GcmCipher::from_encoded(&hex[..62])
                .unwrap_err()
                .to_string(),
        ];
        for text in &shown {
            for form in key_forms(&key) {
                assert!(!text.contains(&form), "key material in {text:?}");
            }
            // Not even a 16-digit stretch of the hex key (half the key).
            for run in hex.as_bytes().windows(16) {
                let run = std::str::from_utf8(run).unwrap();
                assert!(!text.contains(run), "part of the key in {text:?}");
            }
            assert!(!text.contains("BEGIN PRIVATE KEY"), "plaintext in {text:?}");
        }
    }

    #[tokio::test]
    async fn another_key_or_altered_text_is_rejected() {
        let c = Aes256GcmCipher::from_encoded(HEX).unwrap();
        let other = Aes256GcmCipher::generate().unwrap();
        let sealed = c.encrypt(b"secret", b"x").await.unwrap();
        assert_eq!(
            other.decrypt(&sealed, b"x").await.unwrap_err().kind(),
            CipherErrorKind::Rejected
        );
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(c.decrypt(&altered, b"x").await.is_err());
        for bad in [
            "",
            "enc:v1:",
            "enc:v1:!!",
            "enc:v2:AAAA",
            "-----BEGIN PRIVATE KEY-----",
        ] {
            assert_eq!(
                c.decrypt(bad, b"x").await.unwrap_err().kind(),
                CipherErrorKind::Rejected,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn keys_parse_as_hex_or_base64_of_32_bytes_only() {
        let b64 = STANDARD.encode([7u8; 32]);
        let b64url = URL_SAFE_NO_PAD.encode([0xfbu8; 32]);
        for good in [
            HEX,
            &HEX.to_uppercase(),
            &b64,
            &b64url,
            &format!("  {b64}\n"),
        ] {
            assert!(Aes256GcmCipher::from_encoded(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "short",
            &HEX[..62],
            &STANDARD.encode([7u8; 31]),
            &STANDARD.encode([7u8; 33]),
        ] {
            let err = Aes256GcmCipher::from_encoded(bad).unwrap_err();
            assert!(err.message().starts_with("key_encryption_key"), "{bad:?}");
            if !bad.is_empty() {
                assert!(!err.message().contains(bad), "the value is never repeated");
            }
        }
        assert!(Aes256GcmCipher::new(&[0u8; 16]).is_err());
    }
}
