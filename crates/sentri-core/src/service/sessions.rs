//! Sessions: refresh with rotation and reuse detection, logout, the
//! sessions API and purging (F-11, F-12, F-14).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Sentri, TokenSubject, to_chrono};
use crate::error::{Error, ErrorCode, Result};
use crate::hooks::Event;
use crate::model::{NewSession, Rotation, Session, SessionId, User, UserId};
use crate::service::inputs::{AuthOutput, ClientInfo, LogoutInput, RefreshInput, SessionInfo};
use crate::store::{Revocation, StoreErrorKind};
use crate::tokens::{self, AuthMethod, AuthUser};

/// The longest `User-Agent` kept on a session.
const MAX_USER_AGENT_BYTES: usize = 512;

/// The one message of every refused refresh (already rotated, reused, a
/// secret never issued, an ended session): the code tells the client what
/// to do, the reason goes to the logs only.
const REFRESH_REFUSED: &str = "refresh token invalid";

fn refused() -> Error {
    Error::with_message(ErrorCode::TokenInvalid, REFRESH_REFUSED)
}

/// What a silent refresh yields.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) enum Renewal {
    /// The pair was rotated.
    Rotated(Box<AuthOutput>),
    /// The presented token was replaced within the reuse grace: the
    /// session's user, nothing rotated.
    Grace(AuthUser),
}

impl Sentri {
    /// Open a session for `user` and issue its first token pair: the one
    /// way a session starts, whatever proved who the user is. Password
    /// login calls it with [`AuthMethod::Password`]; a login method of a
    /// plugin (a magic link, a second factor, a social login) calls it
    /// once it has authenticated the user, with the methods it used.
    ///
    /// The session records `client` (the user agent, truncated to 512
    /// bytes, and the address) and `methods`, and the user's
    /// `last_login_at` is set in the same store write. Every access token
    /// of the session carries `amr` (the methods, in the order given) and
    /// `auth_time` (now), refreshed ones included. Fires
    /// [`Event::LoginSucceeded`](crate::hooks::Event::LoginSucceeded) (and
    /// so `on_login`).
    ///
    /// ```
    /// # async fn demo(sentri: sentri_core::Sentri, user: sentri_core::model::UserId) -> sentri_core::Result<()> {
    /// use sentri_core::{AuthMethod, ClientInfo};
    /// let out = sentri
    ///     .open_session(user, ClientInfo::default(), &[AuthMethod::Email])
    ///     .await?;
    /// # let _ = out; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `VALIDATION_ERROR` (no method), `USER_NOT_FOUND`,
    /// `SERVICE_UNAVAILABLE`.
    pub async fn open_session(
        &self,
        user: UserId,
        client: ClientInfo,
        methods: &[AuthMethod],
    ) -> Result<AuthOutput> {
        let record = self
            .0
            .stores
            .users
            .find_user(user)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::UserNotFound))?;
        let out = self.open_session_for(record.user, client, methods).await?;
        self.login_succeeded(&out).await;
        Ok(out)
    }

    /// [`Sentri::open_session`] for a user already looked up, without the
    /// event (login fires it once its outcome is settled).
    pub(crate) async fn open_session_for(
        &self,
        mut user: User,
        client: ClientInfo,
        methods: &[AuthMethod],
    ) -> Result<AuthOutput> {
        if methods.is_empty() {
            return Err(Error::validation("methods", "at least one is required"));
        }
        let mut amr: Vec<String> = Vec::with_capacity(methods.len());
        for method in methods {
            if !amr.iter().any(|m| m == method.as_str()) {
                amr.push(method.as_str().to_owned());
            }
        }
        let now = self.now();
        let session_id = SessionId::new();
        let refresh = tokens::mint_refresh(session_id);
        let expires_at = now + to_chrono(self.config().refresh_ttl());
        let user_agent = client
            .user_agent
            .map(|ua| truncate_utf8(ua, MAX_USER_AGENT_BYTES));
        // One write: the session and the user's last_login_at.
        self.0
            .stores
            .sessions
            .create_session(NewSession {
                id: session_id,
                user_id: user.id,
                refresh_hash: refresh.hash,
                user_agent,
                ip: client.ip.map(|ip| ip.to_string()),
                created_at: now,
                expires_at,
                amr: amr.clone(),
            })
            .await
            .map_err(|err| match err.kind() {
                StoreErrorKind::NotFound => Error::new(ErrorCode::UserNotFound),
                _ => err.into(),
            })?;
        user.last_login_at = Some(now);
        let tokens = self.issue_tokens(
            &TokenSubject {
                user_id: user.id,
                session_id,
                identifier: &user.identifier,
                roles: &user.roles,
                email_verified: user.email_verified_at.is_some(),
                auth_time: now,
                amr: &amr,
            },
            &refresh,
            expires_at,
        )?;
        Ok(AuthOutput {
            tokens,
            user,
            session_id,
        })
    }

    /// Rotate a refresh token: a new pair, the presented token invalidated
    /// atomically (F-11). Runs the `refresh` override when configured, then
    /// the `on_refresh` hook.
    ///
    /// Of N concurrent refreshes with one token exactly one succeeds. The
    /// token replaced by the last rotation, presented again within the
    /// reuse grace, is only refused; later, or any older token the session
    /// issued, is reuse: the whole session is revoked and `on_token_reuse`
    /// fires. A secret the session never issued is refused and changes
    /// nothing. With a session inactivity timeout, a session unused for
    /// longer is refused. Every refusal carries the same message; the
    /// reason is logged.
    ///
    /// # Errors
    /// `TOKEN_INVALID`, `SERVICE_UNAVAILABLE`.
    pub async fn refresh(&self, input: RefreshInput) -> Result<AuthOutput> {
        let out = match self.0.config.overrides.refresh.clone() {
            Some(f) => f(self.clone(), input).await?,
            None => self.default_refresh(input).await?,
        };
        self.refreshed(&out).await;
        Ok(out)
    }

    /// The built-in refresh.
    ///
    /// # Errors
    /// As [`Sentri::refresh`].
    pub async fn default_refresh(&self, input: RefreshInput) -> Result<AuthOutput> {
        match self.renew(&input.refresh_token, false).await? {
            Renewal::Rotated(out) => Ok(*out),
            Renewal::Grace(_) => Err(refused()),
        }
    }

    /// The silent refresh of `protect` (F-24): rotate as
    /// [`Sentri::refresh`] does, or, for the token replaced by the last
    /// rotation presented within the reuse grace (parallel requests that
    /// all carried the old cookie), the session's user without rotating
    /// again and without revoking. With a `refresh` override configured,
    /// the override decides and there is no grace.
    #[cfg(feature = "http")]
    pub(crate) async fn silent_refresh(&self, input: RefreshInput) -> Result<Renewal> {
        if self.0.config.overrides.refresh.is_some() {
            return self
                .refresh(input)
                .await
                .map(|out| Renewal::Rotated(Box::new(out)));
        }
        let renewal = self.renew(&input.refresh_token, true).await?;
        if let Renewal::Rotated(out) = &renewal {
            self.refreshed(out).await;
        }
        Ok(renewal)
    }

    async fn refreshed(&self, out: &AuthOutput) {
        self.emit(Event::Refreshed {
            user: out.user.clone(),
            session_id: out.session_id,
        })
        .await;
    }

    /// The start of the inactivity window at `now`: a session last active
    /// before it has ended. `None` without an inactivity timeout.
    pub(crate) fn idle_since(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0
            .config
            .session_idle_timeout
            .map(|idle| now - to_chrono(idle))
    }

    /// Whether `session` has ended at `now` by the inactivity timeout (it
    /// was last active before [`Self::idle_since`]).
    pub(crate) fn idle_expired(&self, session: &Session, now: DateTime<Utc>) -> bool {
        self.idle_since(now)
            .is_some_and(|since| session.last_active_at < since)
    }

    async fn renew(&self, refresh_token: &str, grace_ok: bool) -> Result<Renewal> {
        let presented = tokens::parse_refresh(refresh_token).map_err(|_| refused())?;
        let sid = presented.sid;
        let next = tokens::mint_refresh(sid);
        let now = self.now();
        let sessions = &self.0.stores.sessions;
        let grace = to_chrono(self.config().reuse_grace());
        let active = match sessions
            .rotate_refresh(sid, &presented.hash, &next.hash, now, self.idle_since(now))
            .await?
        {
            Rotation::Rotated(active) => active,
            Rotation::Stale { rotated_at } if now - rotated_at <= grace => {
                if grace_ok && let Some(user) = self.grace_user(sid, rotated_at, now).await? {
                    tracing::debug!(session.id = %sid, "refresh token just rotated; request authenticated within the grace");
                    return Ok(Renewal::Grace(user));
                }
                tracing::debug!(session.id = %sid, "refresh refused: token already rotated (within the reuse grace)");
                return Err(refused());
            }
            Rotation::Stale { .. } | Rotation::Reused => {
                self.revoke_for_reuse(sid).await?;
                return Err(refused());
            }
            Rotation::Mismatch => {
                tracing::debug!(session.id = %sid, "refresh refused: a secret this session never issued");
                return Err(refused());
            }
            Rotation::Missing => {
                tracing::debug!(session.id = %sid, "refresh refused: no live session");
                return Err(refused());
            }
        };
        let user = self
            .0
            .stores
            .users
            .find_user(active.session.user_id)
            .await?
            .map(|r| r.user)
            .ok_or_else(refused)?;
        let tokens = self.issue_tokens(
            &TokenSubject {
                user_id: user.id,
                session_id: sid,
                identifier: &user.identifier,
                roles: &user.roles,
                email_verified: user.email_verified_at.is_some(),
                auth_time: active.session.created_at,
                amr: &active.session.amr,
            },
            &next,
            active.session.expires_at,
        )?;
        Ok(Renewal::Rotated(Box::new(AuthOutput {
            tokens,
            user,
            session_id: sid,
        })))
    }

    /// The user of the live session `sid`, for a request that presented
    /// the refresh token replaced at `rotated_at` within the grace; `None`
    /// when the session has ended meanwhile (or the application's
    /// revocation check refuses it).
    async fn grace_user(
        &self,
        sid: SessionId,
        rotated_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<AuthUser>> {
        let Some(active) = self.0.stores.sessions.find_active_session(sid, now).await? else {
            return Ok(None);
        };
        if self.idle_expired(&active.session, now) || self.is_revoked_by_app(sid).await? {
            return Ok(None);
        }
        // As long as the access token issued by that rotation.
        let expires_at = (rotated_at + to_chrono(self.0.config.access_ttl)).timestamp();
        Ok(Some(AuthUser::from_session(active, expires_at)))
    }

    async fn revoke_for_reuse(&self, sid: SessionId) -> Result<()> {
        self.revoked(Revocation::Session(sid)).await;
        if let Some(session) = self.0.stores.sessions.delete_session(sid).await? {
            tracing::warn!(user.id = %session.user_id, session.id = %sid, "refresh token reuse detected; session revoked");
            self.emit(Event::TokenReused {
                user_id: session.user_id,
                session_id: sid,
            })
            .await;
        }
        Ok(())
    }

    /// End one session (F-12), by refresh token or by the `sid` of a
    /// verified access token. Ending a session that is already gone
    /// succeeds. Runs the `logout` override when configured.
    ///
    /// A refresh token ends its session only if its secret is the
    /// session's current one (or the one replaced by the last rotation,
    /// within the reuse grace): knowing a session id is not enough. A
    /// well-formed token with any other secret changes nothing and gets
    /// the same answer.
    ///
    /// # Errors
    /// `TOKEN_INVALID` (malformed refresh token), `SERVICE_UNAVAILABLE`.
    pub async fn logout(&self, input: LogoutInput) -> Result<()> {
        match self.0.config.overrides.logout.clone() {
            Some(f) => f(self.clone(), input).await,
            None => self.default_logout(input).await,
        }
    }

    /// The built-in logout; emits [`Event::LoggedOut`] (`on_logout`) when a
    /// session ended.
    ///
    /// # Errors
    /// As [`Sentri::logout`].
    pub async fn default_logout(&self, input: LogoutInput) -> Result<()> {
        let sessions = &self.0.stores.sessions;
        let (sid, deleted) = match input {
            LogoutInput::Session(sid) => (sid, sessions.delete_session(sid).await?),
            LogoutInput::RefreshToken(token) => {
                let presented = tokens::parse_refresh(&token).map_err(|_| refused())?;
                let previous_since = self.now() - to_chrono(self.config().reuse_grace());
                let deleted = sessions
                    .delete_session_by_refresh(presented.sid, &presented.hash, previous_since)
                    .await?;
                if deleted.is_none() {
                    tracing::debug!(session.id = %presented.sid, "logout by a refresh token the session does not hold; nothing ended");
                    return Ok(());
                }
                (presented.sid, deleted)
            }
        };
        self.revoked(Revocation::Session(sid)).await;
        if let Some(session) = deleted {
            self.emit(Event::LoggedOut {
                user_id: session.user_id,
                session_id: Some(sid),
            })
            .await;
        }
        Ok(())
    }

    /// End every session of a user (F-12). Runs the `logout_all` override
    /// when configured.
    ///
    /// # Errors
    /// `SERVICE_UNAVAILABLE`.
    pub async fn logout_all(&self, user: UserId) -> Result<()> {
        match self.0.config.overrides.logout_all.clone() {
            Some(f) => f(self.clone(), user).await,
            None => self.default_logout_all(user).await,
        }
    }

    /// The built-in logout of every session; emits [`Event::LoggedOut`]
    /// (`on_logout`).
    ///
    /// # Errors
    /// As [`Sentri::logout_all`].
    pub async fn default_logout_all(&self, user: UserId) -> Result<()> {
        self.0.stores.sessions.delete_user_sessions(user).await?;
        self.revoked(Revocation::User(user)).await;
        self.emit(Event::LoggedOut {
            user_id: user,
            session_id: None,
        })
        .await;
        Ok(())
    }

    /// The live sessions of a user, newest first; `current` marks the
    /// session of the caller (F-14).
    ///
    /// # Errors
    /// `SERVICE_UNAVAILABLE`.
    pub async fn list_sessions(
        &self,
        user: UserId,
        current: Option<SessionId>,
    ) -> Result<Vec<SessionInfo>> {
        let sessions = self
            .0
            .stores
            .sessions
            .list_user_sessions(user, self.now())
            .await?;
        let now = self.now();
        Ok(sessions
            .into_iter()
            .filter(|session| !self.idle_expired(session, now))
            .map(|session| SessionInfo {
                current: Some(session.id) == current,
                session,
            })
            .collect())
    }

    /// Revoke one of the user's own sessions (F-14).
    ///
    /// # Errors
    /// `SESSION_NOT_FOUND` (404) when the user has no such session;
    /// `SERVICE_UNAVAILABLE`.
    pub async fn revoke_session(&self, user: UserId, session: SessionId) -> Result<()> {
        if self
            .0
            .stores
            .sessions
            .delete_user_session(user, session)
            .await?
        {
            self.revoked(Revocation::Session(session)).await;
            self.emit(Event::SessionRevoked {
                user_id: user,
                session_id: session,
            })
            .await;
            Ok(())
        } else {
            Err(Error::app("SESSION_NOT_FOUND", 404, "session not found"))
        }
    }

    /// Record activity on a session, at most once per `touch_interval`
    /// (F-14). `protect` does this in `Always` mode.
    ///
    /// # Errors
    /// `SERVICE_UNAVAILABLE`.
    pub async fn touch_session(&self, session: SessionId) -> Result<bool> {
        Ok(self
            .0
            .stores
            .sessions
            .touch_session(session, self.now(), self.0.config.touch_interval)
            .await?)
    }

    /// Delete expired sessions; returns how many (F-14).
    ///
    /// # Errors
    /// `SERVICE_UNAVAILABLE`.
    pub async fn purge_expired_sessions(&self) -> Result<u64> {
        Ok(self
            .0
            .stores
            .sessions
            .purge_expired_sessions(self.now())
            .await?)
    }

    /// Delete expired one-time tokens, when a one-time token store is
    /// configured; returns how many.
    ///
    /// # Errors
    /// `SERVICE_UNAVAILABLE`.
    pub async fn purge_expired_one_time_tokens(&self) -> Result<u64> {
        match &self.0.stores.one_time {
            Some(store) => Ok(store.purge_expired_tokens(self.now()).await?),
            None => Ok(0),
        }
    }

    /// Purge expired sessions (and expired one-time tokens, when their
    /// store is configured) every `every` in a background task, until the
    /// returned handle is aborted or the runtime stops. Failures are logged.
    pub fn spawn_session_purger(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let sentri = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match sentri.purge_expired_sessions().await {
                    Ok(n) if n > 0 => tracing::debug!(purged = n, "expired sessions purged"),
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "purging expired sessions failed"),
                }
                match sentri.purge_expired_one_time_tokens().await {
                    Ok(n) if n > 0 => tracing::debug!(purged = n, "expired one-time tokens purged"),
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "purging expired one-time tokens failed");
                    }
                }
            }
        })
    }
}

fn truncate_utf8(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
