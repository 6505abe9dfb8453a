//! The records sentri keeps: users, sessions, signing keys, stored responses.
//!
//! These are plain data. The services decide what goes into them (the
//! normalised identifier, the password hash, the refresh token hash); a store
//! only persists and returns them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered (UUIDv7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::try_parse(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

id_type!(
    /// A user's id.
    UserId
);
id_type!(
    /// A session's id; the `sid` claim of its access tokens.
    SessionId
);

/// A user as the API shows it. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The identifier as the user entered it (trimmed, NFKC), for display.
    pub identifier: String,
    /// The user's roles, sorted, without duplicates.
    pub roles: Vec<String>,
    /// An optional display name.
    pub name: Option<String>,
    /// When the user's email was verified, if it was.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// When the user last logged in.
    pub last_login_at: Option<DateTime<Utc>>,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// When the user was last changed.
    pub updated_at: DateTime<Utc>,
}

impl User {
    /// Whether the user holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// A password hash in PHC (or a legacy) string format.
///
/// Its `Debug` output is redacted so it never reaches a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wrap a stored hash string.
    pub fn new(hash: impl Into<String>) -> Self {
        Self(hash.into())
    }

    /// The hash string, for storing it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hash string, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// A user as a store keeps it: the public [`User`], the normalised
/// identifier that uniqueness and lookup use, and the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The public part.
    pub user: User,
    /// The normalised identifier (trimmed, NFKC, lowercased): unique.
    pub identifier_key: String,
    /// The password hash.
    pub password_hash: PasswordHash,
}

/// What a store needs to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The new user's id, chosen by the service.
    pub id: UserId,
    /// The identifier for display.
    pub identifier: String,
    /// The normalised identifier; must be unique (else `Conflict`).
    pub identifier_key: String,
    /// The password hash.
    pub password_hash: PasswordHash,
    /// Initial roles, sorted, without duplicates.
    pub roles: Vec<String>,
    /// Optional display name.
    pub name: Option<String>,
    /// Creation time; also the initial `updated_at`.
    pub created_at: DateTime<Utc>,
}

/// The SHA-256 of a refresh token's secret. Stores keep only this.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// The hash as bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parse from a 32-byte slice.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

/// A login session: one device or browser, with its refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// The session id (the `sid` claim).
    pub id: SessionId,
    /// The owner.
    pub user_id: UserId,
    /// The `User-Agent` of the login request.
    pub user_agent: Option<String>,
    /// The client address of the login request.
    pub ip: Option<String>,
    /// When the session was created (the login).
    pub created_at: DateTime<Utc>,
    /// When the session was last used (refresh or a touched request).
    pub last_active_at: DateTime<Utc>,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
    /// How the user authenticated to open it (`amr` values, e.g. `["pwd"]`;
    /// see [`crate::tokens::AuthMethod`]). Every access token of the
    /// session carries them; its `auth_time` is `created_at`. Not part of
    /// the sessions API's JSON.
    #[serde(default, skip_serializing)]
    pub amr: Vec<String>,
}

/// What a store needs to create a session.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The session id, chosen by the service.
    pub id: SessionId,
    /// The owner.
    pub user_id: UserId,
    /// Hash of the first refresh token's secret.
    pub refresh_hash: TokenHash,
    /// `User-Agent` of the login request.
    pub user_agent: Option<String>,
    /// Client address of the login request.
    pub ip: Option<String>,
    /// Creation time; also the initial `last_active_at`, and the
    /// `auth_time` of the session's tokens.
    pub created_at: DateTime<Utc>,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
    /// How the user authenticated (`amr` values), stored with the session
    /// and returned in [`Session::amr`].
    pub amr: Vec<String>,
}

/// A live session joined with what its user currently is: what `protect`
/// needs in `Always` mode, and what a refresh needs to issue a new token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSession {
    /// The session.
    pub session: Session,
    /// The owner's identifier (display value).
    pub identifier: String,
    /// The owner's current roles.
    pub roles: Vec<String>,
    /// When the owner's email was verified.
    pub email_verified_at: Option<DateTime<Utc>>,
}

/// The outcome of an atomic refresh rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// The presented hash was current; it has been replaced. Exactly one of
    /// any number of concurrent rotations with the same hash gets this.
    Rotated(ActiveSession),
    /// The presented hash is the one replaced by the last rotation.
    Stale {
        /// When that rotation happened.
        rotated_at: DateTime<Utc>,
    },
    /// The hash is one this session issued and replaced before the last
    /// rotation (one of its remembered older hashes, see
    /// [`ROTATION_HISTORY`](crate::store::ROTATION_HISTORY)): reuse of a
    /// rotated token.
    Reused,
    /// The session exists but never issued this hash (as far as it
    /// remembers): a guessed or forged secret, not reuse.
    Mismatch,
    /// No live session with that id (revoked, expired or never existed).
    Missing,
}

/// A signing key as the KeyStore keeps it.
///
/// The private key is PKCS#8 PEM (or the HMAC secret never is: HMAC secrets
/// come from configuration and are not stored).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key id published in the JWKS and in tokens' `kid` header.
    pub kid: String,
    /// The JWS algorithm name, e.g. `EdDSA`, `RS256`, `ES256`.
    pub algorithm: String,
    /// The private key as stored: an encrypted envelope (`enc:v1:…`, see
    /// [`crate::cipher`]) when a key-encryption key is configured, else
    /// PKCS#8 PEM. Stores keep it as opaque text.
    pub private_key_pem: Zeroizing<String>,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// When the key stopped signing. `None` for the active key. A retired
    /// key stays published until every token it signed has expired.
    pub retired_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("private_key_pem", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// A response kept by the idempotency layer for replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers to replay (name, value).
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// The proof of holding an idempotency key (F-26): a random id that
/// [`IdempotencyStore::begin`](crate::store::IdempotencyStore::begin)
/// stores with the hold and returns in [`IdempotencyBegin::Acquired`].
///
/// The hold is a lease: `complete` and `release` act only when the hold
/// under the key still carries this id, so a request that outlived its
/// lock cannot free or overwrite the hold of the request that took over.
///
/// ```
/// use sentri_core::model::IdempotencyLease;
///
/// let a = IdempotencyLease::generate();
/// assert_ne!(a, IdempotencyLease::generate());
/// assert_eq!(IdempotencyLease::from_bytes(*a.as_bytes()), a);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdempotencyLease([u8; 16]);

impl IdempotencyLease {
    /// A fresh random lease (128 bits from the thread's CSPRNG).
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// The lease with these bytes, as a store read it back.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The bytes to store with the hold.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for IdempotencyLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdempotencyLease(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…)")
    }
}

/// The outcome of taking an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdempotencyBegin {
    /// The key was free; the caller now holds it under this lease and must
    /// `complete` or `release` it with the lease.
    Acquired(IdempotencyLease),
    /// Another request holds the key and has not finished.
    InProgress,
    /// A request with this key and the same fingerprint completed: replay.
    Completed(StoredResponse),
    /// The key is held or was completed with a different fingerprint.
    Mismatch,
}
