//! One-time tokens (SPEC §10, §11, §12): the secrets behind e-mail
//! verification, password reset, magic links, e-mail change and MFA
//! challenges.
//!
//! A one-time token is a random secret handed to a user (in a link, in a
//! login response) and redeemed once. [`OneTimeTokens`] mints and redeems
//! them over any [`OneTimeTokenStore`]:
//!
//! - **Randomness.** A secret is 32 bytes (256 bits) from the operating
//!   system's CSPRNG, written as 43 characters of URL-safe base64 without
//!   padding, so it fits a query string or fragment unescaped.
//! - **Only a hash is stored.** The store keeps the SHA-256 of the secret's
//!   bytes ([`TokenHash`]); a leaked table lets nobody redeem anything. No
//!   type of this module shows the secret or the hash in its `Debug` output,
//!   and none has a `Display` that could.
//! - **Bound to a purpose.** Every record carries a [`TokenPurpose`], and the
//!   store looks tokens up by purpose *and* hash: a password-reset secret is
//!   worthless as a magic link.
//! - **Bound to a user**, with an optional small [`OneTimePayload`] (the new
//!   address of an e-mail change, a challenge's client binding).
//! - **Single use, atomically.** [`OneTimeTokenStore::consume_token`] deletes
//!   and returns the record in one atomic step: of any number of concurrent
//!   redemptions of one secret exactly one succeeds. An expired token is
//!   never returned.
//! - **A new request voids the older ones** when the caller asks for it
//!   ([`OneTimeTokens::mint_replacing`]).
//!
//! Every way a redemption can fail (a malformed string, an unknown, used,
//! expired or other-purpose token) is the same [`ErrorCode::TokenInvalid`],
//! so a caller cannot tell them apart; malformed strings are refused before
//! the store is asked.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use sentri_core::model::UserId;
//! use sentri_core::one_time::{OneTimePayload, OneTimeTokens, TokenPurpose};
//! use sentri_core::ErrorCode;
//! use sentri_memory::MemoryStore;
//!
//! const EMAIL_CHANGE: TokenPurpose = TokenPurpose::from_static("email_change");
//! const PASSWORD_RESET: TokenPurpose = TokenPurpose::from_static("password_reset");
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> sentri_core::Result<()> {
//! let tokens = OneTimeTokens::new(Arc::new(MemoryStore::new()));
//! let user = UserId::new();
//!
//! // Mint: the secret goes into the mail, only its hash into the store.
//! let secret = tokens
//!     .mint_replacing(
//!         &EMAIL_CHANGE,
//!         user,
//!         Duration::from_secs(24 * 3600),
//!         Some(OneTimePayload::new("new@example.com")?),
//!     )
//!     .await?;
//! let link = format!("https://app.example.com/confirm#token={}", secret.expose_secret());
//! # let _ = link;
//!
//! // Another purpose gets nothing for it.
//! let err = tokens.redeem(&PASSWORD_RESET, secret.expose_secret()).await.unwrap_err();
//! assert_eq!(err.code(), ErrorCode::TokenInvalid);
//!
//! // The right purpose gets the record, once.
//! let record = tokens.redeem(&EMAIL_CHANGE, secret.expose_secret()).await?;
//! assert_eq!(record.user_id, user);
//! assert_eq!(record.payload.as_ref().map(|p| p.as_str()), Some("new@example.com"));
//! assert!(tokens.redeem(&EMAIL_CHANGE, secret.expose_secret()).await.is_err());
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::TryRngCore;
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::error::{Error, ErrorCode, Result};
use crate::model::{TokenHash, UserId};
use crate::store::OneTimeTokenStore;
use crate::tokens;

/// What a one-time token is for: `email_verification`, `password_reset`,
/// `magic_link`, … A token minted for one purpose is never redeemed for
/// another.
///
/// 1 to [`TokenPurpose::MAX_LEN`] characters of `a`–`z`, `0`–`9`, `_`, `-`,
/// `.` and `:`. Plugins declare theirs as constants:
///
/// ```
/// use sentri_core::one_time::TokenPurpose;
///
/// const MAGIC_LINK: TokenPurpose = TokenPurpose::from_static("magic_link");
/// assert_eq!(MAGIC_LINK.as_str(), "magic_link");
/// assert_eq!(TokenPurpose::new("magic_link")?, MAGIC_LINK);
/// assert!(TokenPurpose::new("Magic Link").is_err());
/// # Ok::<(), sentri_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenPurpose(Cow<'static, str>);

impl TokenPurpose {
    /// The longest purpose, in bytes (the SQL column holds this many).
    pub const MAX_LEN: usize = 64;

    /// A purpose known at compile time.
    ///
    /// # Panics
    ///
    /// When `purpose` is not a valid purpose; in a `const` this is a compile
    /// error.
    pub const fn from_static(purpose: &'static str) -> Self {
        assert!(
            Self::is_valid(purpose),
            "a token purpose is 1 to 64 characters of a-z, 0-9, '_', '-', '.', ':'"
        );
        Self(Cow::Borrowed(purpose))
    }

    /// A purpose from a string (read back from a store, or configured).
    ///
    /// # Errors
    ///
    /// `VALIDATION_ERROR` naming `purpose` when it is empty, longer than
    /// [`TokenPurpose::MAX_LEN`] or has another character than `a`–`z`,
    /// `0`–`9`, `_`, `-`, `.`, `:`.
    pub fn new(purpose: impl Into<String>) -> Result<Self> {
        let purpose = purpose.into();
        if Self::is_valid(&purpose) {
            Ok(Self(Cow::Owned(purpose)))
        } else {
            Err(Error::validation(
                "purpose",
                "must be 1 to 64 characters of a-z, 0-9, '_', '-', '.', ':'",
            ))
        }
    }

    /// The purpose as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    const fn is_valid(purpose: &str) -> bool {
        let bytes = purpose.as_bytes();
        if bytes.is_empty() || bytes.len() > Self::MAX_LEN {
            return false;
        }
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b':' => {}
                _ => return false,
            }
            i += 1;
        }
        true
    }
}

impl fmt::Display for TokenPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A small text a one-time token carries: the new address of an e-mail
/// change, the client a challenge is bound to. At most
/// [`OneTimePayload::MAX_LEN`] bytes of UTF-8 without NUL characters.
///
/// Its `Debug` output shows only its length, as it may hold personal data.
///
/// ```
/// use sentri_core::one_time::OneTimePayload;
///
/// let payload = OneTimePayload::new("new@example.com")?;
/// assert_eq!(payload.as_str(), "new@example.com");
/// assert_eq!(format!("{payload:?}"), "OneTimePayload(<15 bytes>)");
/// assert!(OneTimePayload::new("x".repeat(1025)).is_err());
/// # Ok::<(), sentri_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OneTimePayload(String);

impl OneTimePayload {
    /// The longest payload, in bytes.
    pub const MAX_LEN: usize = 1024;

    /// A payload from a string.
    ///
    /// # Errors
    ///
    /// `VALIDATION_ERROR` naming `payload` when it is longer than
    /// [`OneTimePayload::MAX_LEN`] bytes or contains a NUL character.
    pub fn new(payload: impl Into<String>) -> Result<Self> {
        let payload = payload.into();
        if payload.len() > Self::MAX_LEN {
            return Err(Error::validation("payload", "must be at most 1024 bytes"));
        }
        if payload.contains('\0') {
            return Err(Error::validation(
                "payload",
                "must not contain NUL characters",
            ));
        }
        Ok(Self(payload))
    }

    /// The payload.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The payload, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for OneTimePayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OneTimePayload(<{} bytes>)", self.0.len())
    }
}

/// A one-time token as a [`OneTimeTokenStore`] keeps it: never the secret,
/// only its hash. `Debug` redacts the hash and the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeRecord {
    /// What the token is for.
    pub purpose: TokenPurpose,
    /// SHA-256 of the secret's 32 bytes. Unique per purpose.
    pub token_hash: TokenHash,
    /// Whom the token was issued to.
    pub user_id: UserId,
    /// What the token carries, if anything.
    pub payload: Option<OneTimePayload>,
    /// When the token was minted.
    pub created_at: DateTime<Utc>,
    /// When the token stops being redeemable: a token is expired at `now`
    /// when `expires_at <= now`.
    pub expires_at: DateTime<Utc>,
}

impl OneTimeRecord {
    /// Whether the token is expired at `now` (`expires_at <= now`).
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }
}

/// A freshly minted one-time token's secret, for the user only: put it in
/// the link or response, then drop it (it is zeroized on drop). `Debug`
/// redacts it and there is no `Display`.
pub struct OneTimeSecret {
    secret: Zeroizing<String>,
    expires_at: DateTime<Utc>,
}

impl OneTimeSecret {
    /// The secret: 43 characters of URL-safe base64 (no padding).
    pub fn expose_secret(&self) -> &str {
        &self.secret
    }

    /// When the token stops being redeemable.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

impl fmt::Debug for OneTimeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimeSecret")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Bytes of randomness in a secret (256 bits).
const SECRET_BYTES: usize = 32;
/// Characters of a secret: unpadded base64 of [`SECRET_BYTES`].
const SECRET_CHARS: usize = 43;

/// The hash a store keeps for `secret`, or `None` when `secret` is not a
/// well-formed one-time secret (43 characters of canonical unpadded
/// URL-safe base64 of 32 bytes). Surrounding whitespace is ignored.
///
/// ```
/// use sentri_core::one_time::hash_secret;
///
/// assert!(hash_secret("not a token").is_none());
/// assert!(hash_secret(&"A".repeat(43)).is_some());
/// ```
pub fn hash_secret(secret: &str) -> Option<TokenHash> {
    let secret = secret.trim();
    if secret.len() != SECRET_CHARS {
        return None;
    }
    let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
    match URL_SAFE_NO_PAD.decode_slice(secret, bytes.as_mut()) {
        Ok(SECRET_BYTES) => Some(tokens::hash_secret(bytes.as_ref())),
        _ => None,
    }
}

/// Mints and redeems one-time tokens over a [`OneTimeTokenStore`] (see the
/// [module docs](self) for the guarantees). Cheap to clone.
///
/// Time comes from a [`Clock`] (the system clock unless
/// [`OneTimeTokens::with_clock`] says otherwise).
///
/// # Errors
///
/// Every method maps a store failure into [`Error`]: `SERVICE_UNAVAILABLE`
/// when the store cannot be reached, `INTERNAL_ERROR` otherwise.
#[derive(Clone)]
pub struct OneTimeTokens {
    store: Arc<dyn OneTimeTokenStore>,
    clock: Clock,
}

impl OneTimeTokens {
    /// Tokens kept in `store`, timed by the system clock.
    pub fn new(store: Arc<dyn OneTimeTokenStore>) -> Self {
        Self {
            store,
            clock: Clock::system(),
        }
    }

    /// Use `clock` for "now" (a manual clock in tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn OneTimeTokenStore> {
        &self.store
    }

    /// Mint a token of `purpose` for `user`, redeemable for `ttl`, carrying
    /// `payload`; store its hash and return the secret. Earlier tokens of
    /// the user stay valid (several MFA challenges may be open at once);
    /// see [`OneTimeTokens::mint_replacing`].
    ///
    /// # Errors
    ///
    /// `CONFIGURATION_ERROR` naming `ttl` when it is zero or too large to
    /// add to now; `INTERNAL_ERROR` when the operating system's random
    /// generator fails; a store failure as described on the type.
    pub async fn mint(
        &self,
        purpose: &TokenPurpose,
        user: UserId,
        ttl: Duration,
        payload: Option<OneTimePayload>,
    ) -> Result<OneTimeSecret> {
        let now = self.clock.now();
        let expires_at = expiry(now, ttl)?;
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        rand::rngs::OsRng
            .try_fill_bytes(bytes.as_mut())
            .map_err(Error::internal)?;
        let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()));
        let record = OneTimeRecord {
            purpose: purpose.clone(),
            token_hash: tokens::hash_secret(bytes.as_ref()),
            user_id: user,
            payload,
            created_at: now,
            expires_at,
        };
        self.store.insert_token(record).await?;
        Ok(OneTimeSecret { secret, expires_at })
    }

    /// Void every token of `purpose` of `user`, then [`mint`](Self::mint) a
    /// new one: what "send me another link" does, so that only the newest
    /// link works. Two requests racing may both leave their token valid
    /// (each for this user and purpose); nothing older survives either.
    ///
    /// # Errors
    ///
    /// As [`OneTimeTokens::mint`].
    pub async fn mint_replacing(
        &self,
        purpose: &TokenPurpose,
        user: UserId,
        ttl: Duration,
        payload: Option<OneTimePayload>,
    ) -> Result<OneTimeSecret> {
        expiry(self.clock.now(), ttl)?;
        self.store.delete_user_tokens(user, purpose).await?;
        self.mint(purpose, user, ttl, payload).await
    }

    /// Redeem `secret` for `purpose`: consume its record atomically and
    /// return it. Of concurrent redemptions of one secret exactly one gets
    /// the record.
    ///
    /// The record's user may have been deleted since the token was minted;
    /// the caller looks the user up as it would anyway.
    ///
    /// # Errors
    ///
    /// `TOKEN_INVALID`, alike for every reason: `secret` is malformed (the
    /// store is not asked), unknown, already used, expired, or of another
    /// purpose. A store failure as described on the type.
    pub async fn redeem(&self, purpose: &TokenPurpose, secret: &str) -> Result<OneTimeRecord> {
        let invalid = || Error::new(ErrorCode::TokenInvalid);
        let hash = hash_secret(secret).ok_or_else(invalid)?;
        let now = self.clock.now();
        match self.store.consume_token(purpose, &hash, now).await? {
            // The store's contract already says so; a faulty store must
            // still not hand out an expired or foreign token.
            Some(record)
                if record.purpose == *purpose
                    && record.token_hash.ct_eq(&hash)
                    && !record.is_expired_at(now) =>
            {
                Ok(record)
            }
            _ => Err(invalid()),
        }
    }

    /// Void every token of `purpose` of `user` (e.g. after a password
    /// change, the reset links); returns how many were deleted.
    ///
    /// # Errors
    ///
    /// A store failure as described on the type.
    pub async fn revoke_user_tokens(&self, user: UserId, purpose: &TokenPurpose) -> Result<u64> {
        Ok(self.store.delete_user_tokens(user, purpose).await?)
    }

    /// Delete every token expired now (housekeeping; an expired token is
    /// already never redeemed); returns how many.
    ///
    /// # Errors
    ///
    /// A store failure as described on the type.
    pub async fn purge_expired(&self) -> Result<u64> {
        Ok(self.store.purge_expired_tokens(self.clock.now()).await?)
    }
}

impl fmt::Debug for OneTimeTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimeTokens").finish_non_exhaustive()
    }
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> Result<DateTime<Utc>> {
    let bad = || Error::configuration("ttl", "must be positive and at most a few years");
    if ttl.is_zero() {
        return Err(bad());
    }
    chrono::TimeDelta::from_std(ttl)
        .ok()
        .and_then(|ttl| now.checked_add_signed(ttl))
        .filter(|t| t.timestamp() < 253_402_300_800) // before the year 10000
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn purposes_are_validated() {
        for ok in ["a", "password_reset", "mfa:challenge", "v1.email-change"] {
            assert_eq!(TokenPurpose::new(ok).unwrap().as_str(), ok);
        }
        let long = "a".repeat(TokenPurpose::MAX_LEN + 1);
        for bad in [
            "",
            " ",
            "Reset",
            "reset link",
            "reset/link",
            "é",
            long.as_str(),
        ] {
            let err = TokenPurpose::new(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::ValidationError, "{bad:?}");
        }
        assert!(TokenPurpose::new("a".repeat(TokenPurpose::MAX_LEN)).is_ok());
    }

    #[test]
    #[should_panic(expected = "a token purpose is")]
    fn from_static_refuses_invalid_purposes() {
        let _ = TokenPurpose::from_static("Not Valid");
    }

    #[test]
    fn payloads_are_bounded() {
        let max = "é".repeat(OneTimePayload::MAX_LEN / 2);
        assert_eq!(OneTimePayload::new(max.clone()).unwrap().as_str(), max);
        assert!(OneTimePayload::new(format!("{max}x")).is_err());
        assert!(OneTimePayload::new("a\0b").is_err());
        assert_eq!(OneTimePayload::new("").unwrap().into_string(), "");
    }

    #[test]
    fn hash_secret_takes_only_canonical_secrets() {
        let bytes = [7u8; SECRET_BYTES];
        let secret = URL_SAFE_NO_PAD.encode(bytes);
        let want = TokenHash(Sha256::digest(bytes).into());
        assert_eq!(hash_secret(&secret), Some(want));
        assert_eq!(hash_secret(&format!(" {secret}\n")), Some(want));
        // Wrong length, padding, other alphabets, a non-canonical last
        // character (its low bits must be zero), non-ASCII.
        let mut non_canonical = secret.clone();
        non_canonical.replace_range(42.., "D");
        for bad in [
            String::new(),
            secret[..42].to_owned(),
            format!("{secret}A"),
            format!("{}=", &secret[..42]),
            format!("{}+", &secret[..42]),
            format!("{}/", &secret[..42]),
            non_canonical,
            format!("{}é", &secret[..41]),
        ] {
            assert_eq!(hash_secret(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn expiry_needs_a_sane_ttl() {
        let now = Utc::now();
        assert!(expiry(now, Duration::ZERO).is_err());
        assert!(expiry(now, Duration::MAX).is_err());
        assert!(expiry(now, Duration::from_secs(u64::from(u32::MAX) * 1000)).is_err());
        assert_eq!(
            expiry(now, Duration::from_secs(900)).unwrap(),
            now + chrono::TimeDelta::seconds(900)
        );
    }

    #[test]
    fn debug_shows_no_secret_hash_or_payload() {
        let secret = OneTimeSecret {
            secret: Zeroizing::new("S3CR3T".to_owned()),
            expires_at: DateTime::UNIX_EPOCH,
        };
        assert!(!format!("{secret:?}").contains("S3CR3T"));
        let record = OneTimeRecord {
            purpose: TokenPurpose::from_static("magic_link"),
            token_hash: TokenHash([0xab; 32]),
            user_id: UserId::new(),
            payload: Some(OneTimePayload::new("PAYLOAD").unwrap()),
            created_at: DateTime::UNIX_EPOCH,
            expires_at: DateTime::UNIX_EPOCH,
        };
        let debug = format!("{record:?}");
        assert!(!debug.contains("PAYLOAD"), "{debug}");
        assert!(!debug.to_lowercase().contains("abab"), "{debug}");
        assert!(!debug.contains("171, 171"), "{debug}");
        assert!(debug.contains("magic_link"), "{debug}");
    }
}
