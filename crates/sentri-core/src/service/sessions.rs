//! Sessions: refresh with rotation and reuse detection, logout, the
//! sessions API and purging (F-11, F-12, F-14).

use std::time::Duration;

use super::{Sentri, TokenSubject, to_chrono};
use crate::error::{Error, ErrorCode, Result};
use crate::hooks::fire;
use crate::model::{Rotation, SessionId, UserId};
use crate::service::inputs::{AuthOutput, LogoutInput, RefreshInput, SessionInfo};
use crate::store::Revocation;
use crate::tokens;

impl Sentri {
    /// Rotate a refresh token: a new pair, the presented token invalidated
    /// atomically (F-11). Runs the `refresh` override when configured, then
    /// the `on_refresh` hook.
    ///
    /// Of N concurrent refreshes with one token exactly one succeeds. The
    /// token replaced by the last rotation, presented again within the
    /// reuse grace, is only refused; later, or any older token, is reuse:
    /// the whole session is revoked and `on_token_reuse` fires.
    ///
    /// # Errors
    /// `TOKEN_INVALID`, `SERVICE_UNAVAILABLE`.
    pub async fn refresh(&self, input: RefreshInput) -> Result<AuthOutput> {
        let out = match self.0.config.overrides.refresh.clone() {
            Some(f) => f(self.clone(), input).await?,
            None => self.default_refresh(input).await?,
        };
        fire(
            "on_refresh",
            &self.0.config.hooks.on_refresh,
            out.user.clone(),
        )
        .await;
        Ok(out)
    }

    /// The built-in refresh.
    ///
    /// # Errors
    /// As [`Sentri::refresh`].
    pub async fn default_refresh(&self, input: RefreshInput) -> Result<AuthOutput> {
        let presented = tokens::parse_refresh(&input.refresh_token)?;
        let sid = presented.sid;
        let next = tokens::mint_refresh(sid);
        let now = self.now();
        let sessions = &self.0.stores.sessions;
        let active = match sessions
            .rotate_refresh(sid, &presented.hash, &next.hash, now)
            .await?
        {
            Rotation::Rotated(active) => active,
            Rotation::Stale { rotated_at }
                if now - rotated_at <= to_chrono(self.config().reuse_grace()) =>
            {
                return Err(Error::with_message(
                    ErrorCode::TokenInvalid,
                    "refresh token already rotated",
                ));
            }
            Rotation::Stale { .. } | Rotation::Mismatch => {
                self.revoke_for_reuse(sid).await?;
                return Err(Error::with_message(
                    ErrorCode::TokenInvalid,
                    "refresh token reused; session revoked",
                ));
            }
            Rotation::Missing => return Err(Error::new(ErrorCode::TokenInvalid)),
        };
        let user = self
            .0
            .stores
            .users
            .find_user(active.session.user_id)
            .await?
            .map(|r| r.user)
            .ok_or_else(|| Error::new(ErrorCode::TokenInvalid))?;
        let tokens = self.issue_tokens(
            &TokenSubject {
                user_id: user.id,
                session_id: sid,
                identifier: &user.identifier,
                roles: &user.roles,
                email_verified: user.email_verified_at.is_some(),
                auth_time: active.session.created_at,
                // Every session is opened by a password login.
                amr: &[tokens::AMR_PASSWORD],
            },
            &next,
            active.session.expires_at,
        )?;
        Ok(AuthOutput {
            tokens,
            user,
            session_id: sid,
        })
    }

    async fn revoke_for_reuse(&self, sid: SessionId) -> Result<()> {
        self.revoked(Revocation::Session(sid)).await;
        if let Some(session) = self.0.stores.sessions.delete_session(sid).await? {
            tracing::warn!(user.id = %session.user_id, session.id = %sid, "refresh token reuse detected; session revoked");
            let hook = &self.0.config.hooks.on_token_reuse;
            fire("on_token_reuse", hook, (session.user_id, sid)).await;
        }
        Ok(())
    }

    /// End one session (F-12), by refresh token or by the `sid` of a
    /// verified access token. Ending a session that is already gone
    /// succeeds. Runs the `logout` override when configured.
    ///
    /// # Errors
    /// `TOKEN_INVALID` (malformed refresh token), `SERVICE_UNAVAILABLE`.
    pub async fn logout(&self, input: LogoutInput) -> Result<()> {
        match self.0.config.overrides.logout.clone() {
            Some(f) => f(self.clone(), input).await,
            None => self.default_logout(input).await,
        }
    }

    /// The built-in logout; fires `on_logout` when a session ended.
    ///
    /// # Errors
    /// As [`Sentri::logout`].
    pub async fn default_logout(&self, input: LogoutInput) -> Result<()> {
        let sid = match input {
            LogoutInput::Session(sid) => sid,
            LogoutInput::RefreshToken(token) => tokens::parse_refresh(&token)?.sid,
        };
        let deleted = self.0.stores.sessions.delete_session(sid).await?;
        self.revoked(Revocation::Session(sid)).await;
        if let Some(session) = deleted {
            fire("on_logout", &self.0.config.hooks.on_logout, session.user_id).await;
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

    /// The built-in logout of every session; fires `on_logout`.
    ///
    /// # Errors
    /// As [`Sentri::logout_all`].
    pub async fn default_logout_all(&self, user: UserId) -> Result<()> {
        self.0.stores.sessions.delete_user_sessions(user).await?;
        self.revoked(Revocation::User(user)).await;
        fire("on_logout", &self.0.config.hooks.on_logout, user).await;
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
        Ok(sessions
            .into_iter()
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
            fire("on_logout", &self.0.config.hooks.on_logout, user).await;
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

    /// Purge expired sessions every `every` in a background task, until the
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
            }
        })
    }
}
