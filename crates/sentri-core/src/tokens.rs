//! Access and refresh tokens (F-10).
//!
//! **Access token**: a JWT (RFC 9068 profile) signed with the configured
//! key. Header: `typ: "at+jwt"`, `alg`, and `kid` for asymmetric keys.
//! Claims: `sub` (user id), `sid` (session id), `identifier`, `roles`,
//! `iat`, `exp`, a unique `jti`, `auth_time` (when the session's user
//! authenticated), `amr` (how, [`AuthMethod`]: `["pwd"]` for a password
//! login; both recorded with the session and kept on refresh), `typ:
//! "access"` (kept so that
//! verifiers of earlier releases accept the token), `email_verified` when
//! true, and `iss`/`aud` when configured.
//!
//! Verification pins the algorithm to the key, refuses a `crit` header
//! (sentri understands no JWS extension), requires `typ: "at+jwt"` in the
//! header (or, for tokens issued by earlier releases, no such header and
//! the claim `typ: "access"`), requires `iss`/`aud` when configured, and
//! refuses a token whose `nbf` or `iat` lies more than [`CLOCK_LEEWAY_SECS`]
//! in the future. `exp` has no leeway.
//!
//! **Refresh token**: opaque, `<session id>.<32 random bytes, base64url>`.
//! Only the SHA-256 of the random part is stored; it changes on every
//! rotation. A refresh token is not a JWT, so it can never pass as an access
//! token, and an access token never parses as a refresh token.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorCode, Result};
use crate::keys::KeyRing;
use crate::model::{ActiveSession, SessionId, TokenHash, UserId};

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: UserId,
    /// The session id.
    pub sid: SessionId,
    /// The user's identifier (display value).
    pub identifier: String,
    /// The user's roles when the token was issued.
    pub roles: Vec<String>,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Not before (seconds since the epoch), when present. sentri does not
    /// set it but honours it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The token's unique id (128 random bits, base64url). Empty only in
    /// tokens issued by releases before it existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    /// `"access"`. Tokens are typed by their `typ: "at+jwt"` header; the
    /// claim stays so that verifiers of earlier releases accept them.
    #[serde(default)]
    pub typ: String,
    /// When the user authenticated to open the session (seconds since the
    /// epoch; carried over on refresh). Absent in tokens of earlier
    /// releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// How the user authenticated (RFC 8176 values, `["pwd"]` for a
    /// password login; carried over on refresh). Empty in tokens of earlier
    /// releases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// Whether the user's email was verified when the token was issued.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub email_verified: bool,
    /// Issuer, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// The type claim of access tokens.
pub const ACCESS_TYP: &str = "access";

/// The JWS `typ` header of access tokens (RFC 9068 §2.1).
pub const ACCESS_JWT_TYP: &str = "at+jwt";

/// How far in the future an `iat` or `nbf` may lie (clock skew between the
/// issuer and the verifier), in seconds.
pub const CLOCK_LEEWAY_SECS: i64 = 60;

/// How a user authenticated: the values of the `amr` claim (RFC 8176
/// where one fits).
///
/// A session records the methods it was opened with
/// ([`crate::Sentri::open_session`]); every access token of the session
/// carries them, refreshed ones included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A password (`pwd`).
    Password,
    /// A one-time password, e.g. TOTP or a recovery code (`otp`).
    Otp,
    /// Several factors (`mfa`).
    Mfa,
    /// A link or code sent by e-mail (`email`).
    Email,
    /// A social or enterprise identity provider (`oauth`).
    OAuth,
    /// A WebAuthn passkey (`passkey`).
    Passkey,
    /// An API key (`key`).
    Key,
}

impl AuthMethod {
    /// Every method, in the order of the enum.
    pub const ALL: [Self; 7] = [
        Self::Password,
        Self::Otp,
        Self::Mfa,
        Self::Email,
        Self::OAuth,
        Self::Passkey,
        Self::Key,
    ];

    /// The `amr` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "pwd",
            Self::Otp => "otp",
            Self::Mfa => "mfa",
            Self::Email => "email",
            Self::OAuth => "oauth",
            Self::Passkey => "passkey",
            Self::Key => "key",
        }
    }

    /// The method of an `amr` value; `None` for a value sentri does not use.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == value)
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new unique token id: 128 random bits, base64url (22 characters).
pub(crate) fn new_jti() -> String {
    let mut id = [0u8; 16];
    rand::rng().fill_bytes(&mut id);
    URL_SAFE_NO_PAD.encode(id)
}

/// Sign `claims` with the ring's signing key, header `typ: "at+jwt"`.
pub(crate) fn sign_access<C: Serialize>(ring: &KeyRing, claims: &C) -> Result<String> {
    let mut header = jsonwebtoken::Header::new(ring.signing.algorithm.to_jwt());
    header.typ = Some(ACCESS_JWT_TYP.to_owned());
    header.kid = ring.signing.kid.clone();
    jsonwebtoken::encode(&header, claims, &ring.signing.encoding).map_err(Error::internal)
}

/// Why a token failed verification (for logs; clients see only the code).
fn invalid(reason: &'static str) -> Error {
    tracing::debug!(reason, "access token rejected");
    Error::new(ErrorCode::TokenInvalid)
}

/// Verify an access token at `now` (unix seconds): signature, algorithm,
/// `crit`, `typ`, `iss`, `aud`, then `exp` (`TOKEN_EXPIRED`), `nbf` and `iat`.
pub(crate) fn verify_access(
    ring: &KeyRing,
    token: &str,
    issuer: Option<&str>,
    audience: Option<&str>,
    now: i64,
) -> Result<AccessClaims> {
    let hmac = ring
        .by_kid
        .is_empty()
        .then(|| (ring.signing.algorithm.to_jwt(), &ring.signing.decoding));
    verify_with(&ring.by_kid, hmac, token, issuer, audience, now)
}

/// How a token declares that it is an access token.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Typed {
    /// Header `typ: "at+jwt"` (this release on).
    Header,
    /// No `typ` header or `typ: "JWT"`: must carry the claim
    /// `typ: "access"` (tokens of earlier releases, until they expire).
    Legacy,
}

/// The header's `typ`: `at+jwt` or `application/at+jwt` (RFC 9068 §4; media
/// types compare without case, RFC 7515 §4.1.9), or the legacy forms.
fn typed(typ: Option<&str>) -> Option<Typed> {
    let Some(typ) = typ else {
        return Some(Typed::Legacy);
    };
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    if bare.eq_ignore_ascii_case(ACCESS_JWT_TYP) {
        Some(Typed::Header)
    } else if typ.eq_ignore_ascii_case("JWT") {
        Some(Typed::Legacy)
    } else {
        None
    }
}

/// Verify against keys by `kid`, or against one HMAC secret, at `now`.
pub(crate) fn verify_with(
    by_kid: &std::collections::HashMap<String, crate::keys::VerifyKey>,
    hmac: Option<(jsonwebtoken::Algorithm, &jsonwebtoken::DecodingKey)>,
    token: &str,
    issuer: Option<&str>,
    audience: Option<&str>,
    now: i64,
) -> Result<AccessClaims> {
    if token.len() > 8 * 1024 || token.split('.').count() != 3 {
        return Err(invalid("malformed"));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("bad header"))?;
    // sentri implements no JWS extension: any critical one is unknown
    // (RFC 7515 §4.1.11; an empty list is not allowed either).
    if header.crit.is_some() {
        return Err(invalid("crit header"));
    }
    let typed = typed(header.typ.as_deref()).ok_or_else(|| invalid("typ header"))?;
    let (algorithm, key) = match hmac {
        // HMAC: one secret, never a kid.
        Some((alg, key)) => {
            if header.kid.is_some() {
                return Err(invalid("unexpected kid"));
            }
            (alg, key)
        }
        None => {
            let kid = header
                .kid
                .as_deref()
                .ok_or_else(|| invalid("missing kid"))?;
            let vk = by_kid
                .get(kid)
                .ok_or_else(|| Error::new(ErrorCode::TokenInvalid).with_source(UnknownKid))?;
            (vk.algorithm, &vk.key)
        }
    };
    // Pin the algorithm to the key's own: never `none` (not representable),
    // never HMAC with a public key.
    if header.alg != algorithm {
        return Err(invalid("algorithm mismatch"));
    }
    let mut validation = jsonwebtoken::Validation::new(algorithm);
    // Times are checked below against the caller's clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    // jsonwebtoken checks `iss` and `aud` only when present: require them
    // when configured.
    let required: &[&str] = match (issuer.is_some(), audience.is_some()) {
        (false, false) => &["exp", "sub"],
        (true, false) => &["exp", "sub", "iss"],
        (false, true) => &["exp", "sub", "aud"],
        (true, true) => &["exp", "sub", "iss", "aud"],
    };
    validation.set_required_spec_claims(required);
    validation.validate_aud = audience.is_some();
    if let Some(aud) = audience {
        validation.set_audience(&[aud]);
    }
    if let Some(iss) = issuer {
        validation.set_issuer(&[iss]);
    }
    let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
        .map_err(|_| invalid("signature or claims"))?;
    let claims = data.claims;
    let typ_ok = match typed {
        Typed::Header => claims.typ.is_empty() || claims.typ == ACCESS_TYP,
        Typed::Legacy => claims.typ == ACCESS_TYP,
    };
    if !typ_ok {
        return Err(invalid("not an access token"));
    }
    if issuer.is_some() && claims.iss.as_deref() != issuer {
        return Err(invalid("issuer"));
    }
    if audience.is_some() && claims.aud.as_deref() != audience {
        return Err(invalid("audience"));
    }
    if claims.exp <= now {
        return Err(Error::new(ErrorCode::TokenExpired));
    }
    let latest = now.saturating_add(CLOCK_LEEWAY_SECS);
    if claims.nbf.is_some_and(|nbf| nbf > latest) {
        return Err(invalid("not yet valid (nbf)"));
    }
    if claims.iat > latest {
        return Err(invalid("issued in the future (iat)"));
    }
    Ok(claims)
}

/// Marks a `TOKEN_INVALID` caused by a `kid` not in the key set (a client
/// verifier refetches the key set on it).
#[derive(Debug)]
pub(crate) struct UnknownKid;

impl fmt::Display for UnknownKid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown kid")
    }
}

impl std::error::Error for UnknownKid {}

/// A freshly minted refresh token: what the client gets, and what is stored.
pub(crate) struct NewRefresh {
    pub(crate) token: Zeroizing<String>,
    pub(crate) hash: TokenHash,
}

pub(crate) fn mint_refresh(sid: SessionId) -> NewRefresh {
    let mut secret = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(secret.as_mut());
    let token = Zeroizing::new(format!(
        "{}.{}",
        sid.0.simple(),
        URL_SAFE_NO_PAD.encode(secret.as_ref())
    ));
    NewRefresh {
        token,
        hash: hash_secret(secret.as_ref()),
    }
}

pub(crate) fn hash_secret(secret: &[u8]) -> TokenHash {
    TokenHash(Sha256::digest(secret).into())
}

/// A refresh token parsed into its session id and secret hash.
pub(crate) struct ParsedRefresh {
    pub(crate) sid: SessionId,
    pub(crate) hash: TokenHash,
}

pub(crate) fn parse_refresh(token: &str) -> Result<ParsedRefresh> {
    let bad = || Error::new(ErrorCode::TokenInvalid);
    let (sid, secret) = token.trim().split_once('.').ok_or_else(bad)?;
    if sid.len() != 32 || secret.len() != 43 {
        return Err(bad());
    }
    let sid = uuid::Uuid::try_parse(sid).map_err(|_| bad())?;
    let secret = Zeroizing::new(URL_SAFE_NO_PAD.decode(secret).map_err(|_| bad())?);
    if secret.len() != 32 {
        return Err(bad());
    }
    Ok(ParsedRefresh {
        sid: SessionId(sid),
        hash: hash_secret(&secret),
    })
}

/// A token pair handed to a client. `Debug` redacts both tokens.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    /// The access token (JWT).
    pub access_token: String,
    /// The refresh token (opaque).
    pub refresh_token: String,
    /// When the access token expires.
    pub access_expires_at: DateTime<Utc>,
    /// When the refresh token (the session) expires.
    pub refresh_expires_at: DateTime<Utc>,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish()
    }
}

/// The user behind a verified access token: what `protect` hands to
/// handlers. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser(Arc<AuthUserInner>);

#[derive(Debug, PartialEq, Eq)]
struct AuthUserInner {
    id: UserId,
    session_id: SessionId,
    identifier: String,
    roles: Vec<String>,
    email_verified: bool,
    expires_at: i64,
    auth_time: Option<i64>,
    /// Shared: the protect path re-creates the user per request in
    /// `Always` mode, and this need not be copied.
    amr: Arc<[String]>,
}

impl AuthUser {
    pub(crate) fn from_claims(claims: &AccessClaims) -> Self {
        Self(Arc::new(AuthUserInner {
            id: claims.sub,
            session_id: claims.sid,
            identifier: claims.identifier.clone(),
            roles: claims.roles.clone(),
            email_verified: claims.email_verified,
            expires_at: claims.exp,
            auth_time: claims.auth_time,
            amr: claims.amr.as_slice().into(),
        }))
    }

    pub(crate) fn with_current(
        claims_user: &AuthUser,
        identifier: String,
        roles: Vec<String>,
        email_verified: bool,
    ) -> Self {
        Self(Arc::new(AuthUserInner {
            id: claims_user.0.id,
            session_id: claims_user.0.session_id,
            identifier,
            roles,
            email_verified,
            expires_at: claims_user.0.expires_at,
            auth_time: claims_user.0.auth_time,
            amr: Arc::clone(&claims_user.0.amr),
        }))
    }

    /// The user of a live session, without an access token (a silent
    /// refresh within the reuse grace, F-24): its current identifier,
    /// roles and verification, valid until `expires_at`.
    pub(crate) fn from_session(active: ActiveSession, expires_at: i64) -> Self {
        Self(Arc::new(AuthUserInner {
            id: active.session.user_id,
            session_id: active.session.id,
            identifier: active.identifier,
            roles: active.roles,
            email_verified: active.email_verified_at.is_some(),
            expires_at,
            auth_time: Some(active.session.created_at.timestamp()),
            amr: active.session.amr.into(),
        }))
    }

    /// The user's id.
    pub fn id(&self) -> UserId {
        self.0.id
    }
    /// The session the token belongs to.
    pub fn session_id(&self) -> SessionId {
        self.0.session_id
    }
    /// The identifier (display value).
    pub fn identifier(&self) -> &str {
        &self.0.identifier
    }
    /// The roles: current ones in `Always` mode, the token's otherwise.
    pub fn roles(&self) -> &[String] {
        &self.0.roles
    }
    /// Whether the user has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.0.roles.iter().any(|r| r == role)
    }
    /// Whether the user has at least one of `roles`.
    pub fn has_any_role<S: AsRef<str>>(&self, roles: &[S]) -> bool {
        roles.iter().any(|r| self.has_role(r.as_ref()))
    }
    /// Whether the user's email is verified.
    pub fn email_verified(&self) -> bool {
        self.0.email_verified
    }
    /// When the access token expires (seconds since the epoch).
    pub fn expires_at(&self) -> i64 {
        self.0.expires_at
    }
    /// When the user authenticated to open the session (the token's
    /// `auth_time`, seconds since the epoch); `None` for tokens of earlier
    /// releases.
    pub fn auth_time(&self) -> Option<i64> {
        self.0.auth_time
    }
    /// How the user authenticated to open the session (the token's `amr`,
    /// e.g. `["pwd"]`; see [`AuthMethod`]); empty for tokens of earlier
    /// releases.
    pub fn amr(&self) -> &[String] {
        &self.0.amr
    }
    /// Whether the session was opened with `method`.
    pub fn authenticated_with(&self, method: AuthMethod) -> bool {
        self.0.amr.iter().any(|m| m == method.as_str())
    }

    /// `REAUTH_REQUIRED` unless the user authenticated at most `max_age`
    /// before `now` (unix seconds); a token without `auth_time` never is
    /// recent. The step-up check of sensitive operations.
    ///
    /// # Errors
    /// `REAUTH_REQUIRED`.
    pub fn require_recent_auth(&self, max_age: std::time::Duration, now: i64) -> Result<()> {
        let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        match self.0.auth_time {
            Some(at) if now.saturating_sub(at) <= max_age => Ok(()),
            _ => Err(Error::new(ErrorCode::ReauthRequired)),
        }
    }

    /// `REAUTH_REQUIRED` unless the session was opened with at least one of
    /// `methods` (e.g. a second factor before an admin action).
    ///
    /// # Errors
    /// `REAUTH_REQUIRED`.
    pub fn require_amr(&self, methods: &[AuthMethod]) -> Result<()> {
        if methods.iter().any(|&m| self.authenticated_with(m)) {
            Ok(())
        } else {
            Err(Error::with_message(
                ErrorCode::ReauthRequired,
                "a stronger authentication method is required",
            ))
        }
    }

    /// `FORBIDDEN` unless the user has at least one of `roles` (F-21).
    ///
    /// # Errors
    /// `FORBIDDEN`.
    pub fn require_any_role<S: AsRef<str>>(&self, roles: &[S]) -> Result<()> {
        if self.has_any_role(roles) {
            Ok(())
        } else {
            Err(Error::new(ErrorCode::Forbidden))
        }
    }

    /// `FORBIDDEN` unless the user's email is verified (F-22).
    ///
    /// # Errors
    /// `FORBIDDEN`.
    pub fn require_verified_email(&self) -> Result<()> {
        if self.email_verified() {
            Ok(())
        } else {
            Err(Error::with_message(
                ErrorCode::Forbidden,
                "email address not verified",
            ))
        }
    }

    /// `FORBIDDEN` unless `user_id` (e.g. a path parameter) is this user
    /// (F-22 `require_self`). A value that is not a user id is forbidden too.
    ///
    /// # Errors
    /// `FORBIDDEN`.
    pub fn require_self(&self, user_id: &str) -> Result<()> {
        match user_id.parse::<UserId>() {
            Ok(id) if id == self.0.id => Ok(()),
            _ => Err(Error::new(ErrorCode::Forbidden)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_round_trip_and_hash_the_secret() {
        let sid = SessionId::new();
        let minted = mint_refresh(sid);
        let parsed = parse_refresh(&minted.token).unwrap();
        assert_eq!(parsed.sid, sid);
        assert!(parsed.hash.ct_eq(&minted.hash));
        assert!(!minted.token.contains(&format!("{:?}", minted.hash)));
        let other = mint_refresh(sid);
        assert!(!other.hash.ct_eq(&minted.hash));
    }

    #[test]
    fn malformed_refresh_tokens_are_token_invalid() {
        let good = mint_refresh(SessionId::new()).token.to_string();
        let (sid, secret) = good.split_once('.').unwrap();
        let cases = [
            String::new(),
            "abc".into(),
            sid.to_string(),
            format!("{sid}."),
            format!("{sid}.{}", &secret[1..]),
            format!("{sid}.{secret}x"),
            format!("zz{}.{secret}", &sid[2..]),
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig".into(),
        ];
        for bad in cases {
            let err = parse_refresh(&bad).err().unwrap();
            assert_eq!(err.code(), ErrorCode::TokenInvalid, "{bad:?}");
        }
    }

    #[test]
    fn token_pair_debug_redacts_tokens() {
        let pair = TokenPair {
            access_token: "secret-access".into(),
            refresh_token: "secret-refresh".into(),
            access_expires_at: Utc::now(),
            refresh_expires_at: Utc::now(),
        };
        let dbg = format!("{pair:?}");
        assert!(!dbg.contains("secret-access") && !dbg.contains("secret-refresh"));
    }
}
