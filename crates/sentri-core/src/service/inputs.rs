//! Inputs and outputs of the services. `Debug` never shows a secret.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{Session, SessionId, User, UserId};
use crate::tokens::{AuthMethod, TokenPair};

/// What is known of the client making a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The `User-Agent` header (truncated to 512 bytes when stored).
    pub user_agent: Option<String>,
    /// The client address (see [`crate::net::client_ip`]).
    pub ip: Option<IpAddr>,
}

/// Input of registration (F-03).
#[derive(Clone)]
pub struct RegisterInput {
    /// The identifier (email, username, phone).
    pub identifier: String,
    /// The password in clear.
    pub password: String,
    /// Requested roles; `None` or empty means the default role.
    pub roles: Option<Vec<String>>,
    /// Optional display name (at most 100 characters).
    pub name: Option<String>,
}

impl fmt::Debug for RegisterInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterInput")
            .field("identifier", &self.identifier)
            .field("password", &"<redacted>")
            .field("roles", &self.roles)
            .field("name", &self.name)
            .finish()
    }
}

/// Input of login (F-04).
#[derive(Clone)]
pub struct LoginInput {
    /// The identifier as entered.
    pub identifier: String,
    /// The password in clear.
    pub password: String,
    /// The client, recorded on the session.
    pub client: ClientInfo,
}

impl fmt::Debug for LoginInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginInput")
            .field("identifier", &self.identifier)
            .field("password", &"<redacted>")
            .field("client", &self.client)
            .finish()
    }
}

/// Input of refresh (F-11).
#[derive(Clone)]
pub struct RefreshInput {
    /// The refresh token presented.
    pub refresh_token: String,
    /// The client.
    pub client: ClientInfo,
}

impl fmt::Debug for RefreshInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshInput")
            .field("refresh_token", &"<redacted>")
            .field("client", &self.client)
            .finish()
    }
}

/// Which session a logout ends (F-12).
#[derive(Clone)]
#[non_exhaustive]
pub enum LogoutInput {
    /// The session of this refresh token.
    RefreshToken(String),
    /// The session of a verified access token.
    Session(SessionId),
}

impl fmt::Debug for LogoutInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RefreshToken(_) => f.write_str("RefreshToken(<redacted>)"),
            Self::Session(id) => f.debug_tuple("Session").field(id).finish(),
        }
    }
}

/// Input of a password change (F-06).
#[derive(Clone)]
pub struct ChangePasswordInput {
    /// Whose password.
    pub user_id: UserId,
    /// The current password, checked first.
    pub current_password: String,
    /// The new password.
    pub new_password: String,
}

impl fmt::Debug for ChangePasswordInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangePasswordInput")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// Input of an identifier change (F-06).
#[derive(Clone)]
pub struct ChangeIdentifierInput {
    /// Whose identifier.
    pub user_id: UserId,
    /// The new identifier, as entered.
    pub new_identifier: String,
    /// The current password, checked first (re-authentication).
    pub current_password: String,
    /// The session making the change, which stays signed in; every other
    /// session of the user is revoked. `None` revokes them all.
    pub session_id: Option<SessionId>,
}

impl fmt::Debug for ChangeIdentifierInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeIdentifierInput")
            .field("user_id", &self.user_id)
            .field("new_identifier", &self.new_identifier)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

/// What login and refresh return.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthOutput {
    /// The new tokens.
    #[serde(flatten)]
    pub tokens: TokenPair,
    /// The user.
    pub user: User,
    /// The session the tokens belong to.
    #[serde(skip)]
    pub session_id: SessionId,
}

/// What [`crate::Sentri::login`] answers: the user is authenticated, or a
/// second step (a second factor) is required before a session is opened.
///
/// ```
/// # async fn demo(sentri: sentri_core::Sentri, input: sentri_core::LoginInput) -> sentri_core::Result<()> {
/// use sentri_core::LoginOutcome;
/// match sentri.login(input).await? {
///     LoginOutcome::Authenticated(out) => println!("signed in: {}", out.user.id),
///     LoginOutcome::SecondStepRequired(step) => println!("next: one of {:?}", step.methods),
///     _ => {}
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LoginOutcome {
    /// A session was opened: the tokens and the user.
    Authenticated(AuthOutput),
    /// The password was right, and a second step is required: no session
    /// yet, no tokens. The client completes the login with the challenge
    /// and one of the methods on offer.
    SecondStepRequired(SecondStep),
}

impl LoginOutcome {
    /// The tokens and user of an authenticated login.
    ///
    /// # Errors
    /// `UNAUTHORIZED` ("a second authentication step is required") when a
    /// second step is required.
    pub fn authenticated(self) -> crate::Result<AuthOutput> {
        match self {
            Self::Authenticated(out) => Ok(out),
            Self::SecondStepRequired(_) => Err(crate::Error::with_message(
                crate::ErrorCode::Unauthorized,
                "a second authentication step is required",
            )),
        }
    }

    /// The output of an authenticated login, else `None`.
    pub fn as_authenticated(&self) -> Option<&AuthOutput> {
        match self {
            Self::Authenticated(out) => Some(out),
            Self::SecondStepRequired(_) => None,
        }
    }
}

impl From<AuthOutput> for LoginOutcome {
    fn from(out: AuthOutput) -> Self {
        Self::Authenticated(out)
    }
}

/// A login's second step: what the client needs to complete it. `Debug`
/// redacts the challenge.
#[derive(Clone)]
#[non_exhaustive]
pub struct SecondStep {
    /// A short-lived token naming this login attempt, presented with the
    /// second factor (a bearer secret: never logged).
    pub challenge: String,
    /// The methods on offer (`amr` values, e.g. `["otp"]`).
    pub methods: Vec<String>,
    /// When the challenge expires.
    pub expires_at: DateTime<Utc>,
}

impl SecondStep {
    /// A second step with `challenge`, offering `methods`, until
    /// `expires_at`.
    pub fn new(
        challenge: impl Into<String>,
        methods: impl IntoIterator<Item = AuthMethod>,
        expires_at: DateTime<Utc>,
    ) -> Self {
        Self {
            challenge: challenge.into(),
            methods: methods.into_iter().map(|m| m.as_str().to_owned()).collect(),
            expires_at,
        }
    }
}

impl fmt::Debug for SecondStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecondStep")
            .field("challenge", &"<redacted>")
            .field("methods", &self.methods)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A session as listed to its owner (F-14).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// The session.
    #[serde(flatten)]
    pub session: Session,
    /// Whether it is the session of the request listing it.
    pub current: bool,
}
