//! Accounts: register, login, identifier and password changes, roles,
//! email verification, bootstrap (F-03 … F-09).

use subtle::ConstantTimeEq;

use super::Sentri;
use crate::config::is_role_name;
use crate::error::{Error, ErrorCode, Result};
use crate::hooks::Event;
use crate::identifier::Identifier;
use crate::model::{NewUser, User, UserId, UserRecord};
use crate::password::Verified;
use crate::service::inputs::{
    ChangeIdentifierInput, ChangePasswordInput, LoginInput, LoginOutcome, RegisterInput,
};
use crate::store::{Revocation, StoreErrorKind};
use crate::tokens::AuthMethod;

/// The longest display name, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 100;
/// The longest password a login (or a current-password check) accepts.
pub(crate) const MAX_LOGIN_PASSWORD_BYTES: usize = 4096;

fn user_not_found() -> Error {
    Error::new(ErrorCode::UserNotFound)
}

impl Sentri {
    /// Check a registration request's right to register (F-03): with an
    /// `api_key` configured, `presented_api_key` must match it
    /// (`UNAUTHORIZED` otherwise) and any valid roles may be requested;
    /// without one, only the default role may be requested (`FORBIDDEN`).
    /// Unknown roles are `INVALID_ROLE` either way.
    ///
    /// Adapters call this for `POST /register`; library callers creating
    /// users server-side do not need it.
    ///
    /// # Errors
    /// `INVALID_ROLE`, `UNAUTHORIZED`, `FORBIDDEN`.
    pub fn check_registration(
        &self,
        presented_api_key: Option<&str>,
        requested_roles: Option<&[String]>,
    ) -> Result<()> {
        let roles = requested_roles.unwrap_or_default();
        self.validate_roles(roles, true)?;
        match &self.config().api_key {
            Some(key) => {
                let ok = presented_api_key
                    .is_some_and(|p| bool::from(p.as_bytes().ct_eq(key.as_bytes())));
                if !ok {
                    return Err(Error::with_message(
                        ErrorCode::Unauthorized,
                        "a valid X-Api-Key header is required",
                    ));
                }
            }
            None => {
                if roles.iter().any(|r| r != self.config().default_role()) {
                    return Err(Error::with_message(
                        ErrorCode::Forbidden,
                        "self-registration may request only the default role",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Validate role names against `valid_roles`.
    fn validate_roles(&self, roles: &[String], allow_empty: bool) -> Result<()> {
        if roles.is_empty() && !allow_empty {
            return Err(Error::validation("roles", "must not be empty"));
        }
        if roles.len() > 64 {
            return Err(Error::validation("roles", "at most 64 roles"));
        }
        if let Some(bad) = roles
            .iter()
            .find(|r| !is_role_name(r) || !self.config().is_valid_role(r))
        {
            let shown: String = bad.chars().take(64).collect();
            return Err(Error::with_message(
                ErrorCode::InvalidRole,
                format!("invalid role: {shown}"),
            ));
        }
        Ok(())
    }

    /// Register a user (F-03). No tokens are issued. Runs the `register`
    /// override when one is configured, then the `on_register` hook.
    ///
    /// # Errors
    /// `VALIDATION_ERROR` (identifier, password, name), `INVALID_ROLE`,
    /// `USER_ALREADY_EXISTS`, `SERVICE_UNAVAILABLE`.
    pub async fn register(&self, input: RegisterInput) -> Result<User> {
        let user = match self.0.config.overrides.register.clone() {
            Some(f) => f(self.clone(), input).await?,
            None => self.default_register(input).await?,
        };
        self.emit(Event::Registered { user: user.clone() }).await;
        Ok(user)
    }

    /// The built-in registration.
    ///
    /// # Errors
    /// As [`Sentri::register`].
    pub async fn default_register(&self, input: RegisterInput) -> Result<User> {
        let roles = match input.roles {
            Some(roles) if !roles.is_empty() => roles,
            _ => vec![self.config().default_role().to_owned()],
        };
        self.create_user_with(&input.identifier, &input.password, roles, input.name)
            .await
    }

    /// Create a user with any valid roles, without the registration checks
    /// of HTTP (for administration and the server's `user create`).
    ///
    /// # Errors
    /// As [`Sentri::register`].
    pub async fn create_user(
        &self,
        identifier: &str,
        password: &str,
        roles: Vec<String>,
    ) -> Result<User> {
        self.create_user_with(identifier, password, roles, None)
            .await
    }

    async fn create_user_with(
        &self,
        identifier: &str,
        password: &str,
        mut roles: Vec<String>,
        name: Option<String>,
    ) -> Result<User> {
        let identifier = Identifier::parse(identifier)?;
        self.validate_roles(&roles, false)?;
        if let Some(name) = &name
            && (name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control))
        {
            return Err(Error::validation(
                "name",
                "must be at most 100 characters without control characters",
            ));
        }
        self.passwords().check_new("password", password)?;
        roles.sort();
        roles.dedup();
        let password_hash = self.passwords().hash(password).await?;
        let (display, key) = identifier.into_parts();
        let new = NewUser {
            id: UserId::new(),
            identifier: display,
            identifier_key: key,
            password_hash,
            roles,
            name,
            created_at: self.now(),
        };
        self.0
            .stores
            .users
            .create_user(new)
            .await
            .map_err(|e| match e.kind() {
                StoreErrorKind::Conflict => Error::new(ErrorCode::UserAlreadyExists),
                _ => e.into(),
            })
    }

    /// Create the first admin (F-09): when no user holds the admin role,
    /// create one with `identifier` and `password`; otherwise do nothing and
    /// return `None`. Safe to call on every startup.
    ///
    /// # Errors
    /// As [`Sentri::register`]; `USER_ALREADY_EXISTS` when the identifier
    /// belongs to a user who is not an admin.
    pub async fn bootstrap_admin(&self, identifier: &str, password: &str) -> Result<Option<User>> {
        let admin = self.config().admin_role().to_owned();
        if !self.config().is_valid_role(&admin) {
            return Err(Error::configuration(
                "admin_role",
                "must be one of valid_roles",
            ));
        }
        if self.0.stores.users.any_user_with_role(&admin).await? {
            return Ok(None);
        }
        self.create_user(identifier, password, vec![admin])
            .await
            .map(Some)
    }

    /// Log in (F-04, F-27): throttling, then the `login` override or the
    /// built-in login, then the hooks. The attempt is reserved against the
    /// identifier's and the client address's limits before the password is
    /// checked, and at most one password check per identifier runs at once
    /// in this process; a failure keeps the attempt counted, a success
    /// clears the identifier's count (see [`crate::throttle`]).
    ///
    /// # Errors
    /// `VALIDATION_ERROR`, `RATE_LIMITED` (the password is not even
    /// checked), `INVALID_CREDENTIALS` (unknown identifier and wrong password
    /// alike), `SERVICE_UNAVAILABLE` (also when the hashing slots stay busy
    /// beyond the policy's `max_wait`).
    pub async fn login(&self, input: LoginInput) -> Result<LoginOutcome> {
        let identifier = Identifier::parse(&input.identifier)?;
        self.check_login_password(&input.password)?;
        let ip = input.client.ip;
        let throttle = self.throttle();
        let login_override = self.0.config.overrides.login.clone();
        // The built-in login looks the user up while the attempt is
        // reserved: one round trip to the stores instead of two. A throttled
        // login still never reaches the password check.
        let (reserved, found) = if login_override.is_none() {
            let users = &self.0.stores.users;
            let (reserved, found) = futures_util::future::join(
                throttle.reserve(identifier.key(), ip),
                users.find_user_by_identifier(identifier.key()),
            )
            .await;
            (reserved, Some(found))
        } else {
            (throttle.reserve(identifier.key(), ip).await, None)
        };
        let attempt = match reserved {
            Ok(attempt) => attempt,
            Err(err) => {
                if err.is(&ErrorCode::RateLimited) {
                    self.login_failed(input.identifier.clone(), err.code())
                        .await;
                }
                return Err(err);
            }
        };
        let shown = input.identifier.clone();
        let result = async {
            // One password check per identifier at a time; the turn is held
            // until the attempt is settled, so the next check of this
            // identifier sees this one's outcome.
            let turn = self
                .login_turns()
                .turn(identifier.key(), self.passwords().policy().wait_bound())
                .await?;
            let result = match (login_override, found) {
                (Some(f), _) => f(self.clone(), input).await,
                (None, Some(found)) => self.login_found(input, found?).await,
                (None, None) => self.default_login(input).await,
            };
            Ok::<_, Error>((turn, result))
        }
        .await;
        let result = match result {
            // A success answers at once; its reservations are given back
            // in the background, in its turn.
            Ok((turn, Ok(out))) => {
                self.settle_success(attempt, turn).await;
                Ok(out)
            }
            Ok((turn, result)) => {
                throttle.settle(attempt, &result).await;
                drop(turn);
                result
            }
            Err(err) => {
                let err = Err(err);
                throttle.settle(attempt, &err).await;
                err
            }
        };
        match &result {
            Ok(LoginOutcome::Authenticated(out)) => self.login_succeeded(out).await,
            Ok(_) => {}
            Err(err) if err.is(&ErrorCode::InvalidCredentials) => {
                self.login_failed(shown, err.code()).await;
            }
            Err(_) => {}
        }
        result
    }

    fn check_login_password(&self, password: &str) -> Result<()> {
        if password.is_empty() {
            return Err(Error::validation("password", "must not be empty"));
        }
        // New passwords are held to the policy; at login only an absurd
        // length is refused before hashing (legacy hashes may predate it).
        if password.len() > MAX_LOGIN_PASSWORD_BYTES {
            return Err(Error::validation("password", "too long"));
        }
        Ok(())
    }

    /// The built-in login: verify the password (against a dummy hash for an
    /// unknown identifier, so both failures take the same time), re-hash it
    /// when the policy changed, open a session and issue tokens.
    ///
    /// # Errors
    /// As [`Sentri::login`], without throttling.
    pub async fn default_login(&self, input: LoginInput) -> Result<LoginOutcome> {
        let identifier = Identifier::parse(&input.identifier)?;
        self.check_login_password(&input.password)?;
        let users = &self.0.stores.users;
        let found = users.find_user_by_identifier(identifier.key()).await?;
        self.login_found(input, found).await
    }

    /// The built-in login once the identifier was looked up.
    async fn login_found(
        &self,
        input: LoginInput,
        found: Option<UserRecord>,
    ) -> Result<LoginOutcome> {
        let Some(record) = found else {
            self.passwords().verify_dummy(&input.password).await?;
            return Err(Error::new(ErrorCode::InvalidCredentials));
        };
        match self
            .passwords()
            .verify(&input.password, &record.password_hash)
            .await?
        {
            Verified::Invalid => return Err(Error::new(ErrorCode::InvalidCredentials)),
            Verified::Valid { needs_rehash } => {
                if needs_rehash {
                    self.rehash(&record, &input.password).await;
                }
            }
        }
        // The user was deleted since the lookup: as if unknown.
        let out = self
            .open_session_for(record.user, input.client, &[AuthMethod::Password])
            .await
            .map_err(|err| {
                if err.is(&ErrorCode::UserNotFound) {
                    Error::new(ErrorCode::InvalidCredentials)
                } else {
                    err
                }
            })?;
        Ok(LoginOutcome::Authenticated(out))
    }

    /// Upgrade a hash after a successful login. Failure is logged only: the
    /// login itself succeeded.
    async fn rehash(&self, record: &UserRecord, password: &str) {
        let new = match self.passwords().hash(password).await {
            Ok(h) => h,
            Err(err) => {
                tracing::warn!(error = %err, "password re-hash failed");
                return;
            }
        };
        let users = &self.0.stores.users;
        if let Err(err) = users
            .replace_password_hash(record.user.id, &record.password_hash, &new, self.now())
            .await
        {
            tracing::warn!(error = %err, "storing the re-hashed password failed");
        }
    }

    /// The user with `id` (F-06).
    ///
    /// # Errors
    /// `USER_NOT_FOUND`, `SERVICE_UNAVAILABLE`.
    pub async fn get_user(&self, id: UserId) -> Result<User> {
        self.0
            .stores
            .users
            .find_user(id)
            .await?
            .map(|r| r.user)
            .ok_or_else(user_not_found)
    }

    /// Change a user's identifier, unique as at registration (F-06), after
    /// checking the current password. A new address is not verified:
    /// `email_verified_at` is cleared in the same store operation. Every
    /// other session of the user is revoked (the one in
    /// `input.session_id` stays), then `on_identifier_changed` runs.
    ///
    /// # Errors
    /// `VALIDATION_ERROR`, `INVALID_CREDENTIALS` (current password wrong),
    /// `USER_ALREADY_EXISTS`, `USER_NOT_FOUND`, `SERVICE_UNAVAILABLE`.
    pub async fn change_identifier(&self, input: ChangeIdentifierInput) -> Result<User> {
        match self.0.config.overrides.change_identifier.clone() {
            Some(f) => f(self.clone(), input).await,
            None => self.default_change_identifier(input).await,
        }
    }

    /// The built-in identifier change.
    ///
    /// # Errors
    /// As [`Sentri::change_identifier`].
    pub async fn default_change_identifier(&self, input: ChangeIdentifierInput) -> Result<User> {
        let identifier = Identifier::parse_field("newIdentifier", &input.new_identifier)?;
        let id = input.user_id;
        let users = &self.0.stores.users;
        let record = users.find_user(id).await?.ok_or_else(user_not_found)?;
        self.check_current_password(&input.current_password, &record)
            .await?;
        let user = users
            .update_identifier(id, identifier.display(), identifier.key(), self.now())
            .await
            .map_err(|e| match e.kind() {
                StoreErrorKind::Conflict => Error::new(ErrorCode::UserAlreadyExists),
                StoreErrorKind::NotFound => user_not_found(),
                _ => e.into(),
            })?;
        let sessions = &self.0.stores.sessions;
        match input.session_id {
            Some(keep) => sessions.delete_user_sessions_except(id, keep).await?,
            None => sessions.delete_user_sessions(id).await?,
        };
        // Every cached session of the user is stale (identifier, email
        // verification), the revoked ones most of all.
        self.revoked(Revocation::User(id)).await;
        self.emit(Event::IdentifierChanged {
            user: user.clone(),
            old: record.user.identifier,
            new: user.identifier.clone(),
        })
        .await;
        Ok(user)
    }

    /// `INVALID_CREDENTIALS` unless `password` is the current password of
    /// `record` (the check of the identifier and password changes).
    async fn check_current_password(&self, password: &str, record: &UserRecord) -> Result<()> {
        if self.check_login_password(password).is_err()
            || self
                .passwords()
                .verify(password, &record.password_hash)
                .await?
                == Verified::Invalid
        {
            return Err(Error::with_message(
                ErrorCode::InvalidCredentials,
                "current password is wrong",
            ));
        }
        Ok(())
    }

    /// Change a password after checking the current one, and revoke every
    /// session of the user (F-06).
    ///
    /// # Errors
    /// `VALIDATION_ERROR` (new password), `INVALID_CREDENTIALS` (current
    /// password wrong, or changed concurrently), `USER_NOT_FOUND`,
    /// `SERVICE_UNAVAILABLE`.
    pub async fn change_password(&self, input: ChangePasswordInput) -> Result<()> {
        match self.0.config.overrides.change_password.clone() {
            Some(f) => f(self.clone(), input).await,
            None => self.default_change_password(input).await,
        }
    }

    /// The built-in password change.
    ///
    /// # Errors
    /// As [`Sentri::change_password`].
    pub async fn default_change_password(&self, input: ChangePasswordInput) -> Result<()> {
        self.passwords()
            .check_new("newPassword", &input.new_password)?;
        let users = &self.0.stores.users;
        let record = users
            .find_user(input.user_id)
            .await?
            .ok_or_else(user_not_found)?;
        self.check_current_password(&input.current_password, &record)
            .await?;
        let new = self.passwords().hash(&input.new_password).await?;
        let swapped = users
            .replace_password_hash(input.user_id, &record.password_hash, &new, self.now())
            .await
            .map_err(|e| match e.kind() {
                StoreErrorKind::NotFound => user_not_found(),
                _ => e.into(),
            })?;
        if !swapped {
            return Err(Error::with_message(
                ErrorCode::InvalidCredentials,
                "the password was changed concurrently",
            ));
        }
        self.0
            .stores
            .sessions
            .delete_user_sessions(input.user_id)
            .await?;
        self.revoked(Revocation::User(input.user_id)).await;
        let user_id = input.user_id;
        self.emit(Event::PasswordChanged { user_id }).await;
        Ok(())
    }

    /// Add roles to a user, keeping the existing ones; atomic under
    /// concurrency (F-06).
    ///
    /// # Errors
    /// `VALIDATION_ERROR` (empty list), `INVALID_ROLE`, `USER_NOT_FOUND`,
    /// `SERVICE_UNAVAILABLE`.
    pub async fn assign_roles(&self, id: UserId, roles: Vec<String>) -> Result<User> {
        let user = match self.0.config.overrides.assign_roles.clone() {
            Some(f) => f(self.clone(), (id, roles.clone())).await?,
            None => self.default_assign_roles(id, roles.clone()).await?,
        };
        self.roles_changed(&user, roles, Vec::new()).await;
        Ok(user)
    }

    async fn roles_changed(&self, user: &User, added: Vec<String>, removed: Vec<String>) {
        self.emit(Event::RolesChanged {
            user: user.clone(),
            added,
            removed,
        })
        .await;
    }

    /// The built-in role assignment.
    ///
    /// # Errors
    /// As [`Sentri::assign_roles`].
    pub async fn default_assign_roles(&self, id: UserId, roles: Vec<String>) -> Result<User> {
        self.validate_roles(&roles, false)?;
        let user = self
            .0
            .stores
            .users
            .add_roles(id, &roles, self.now())
            .await
            .map_err(map_user_missing)?;
        self.revoked(Revocation::User(id)).await;
        Ok(user)
    }

    /// Remove roles from a user (F-06).
    ///
    /// # Errors
    /// As [`Sentri::assign_roles`].
    pub async fn revoke_roles(&self, id: UserId, roles: Vec<String>) -> Result<User> {
        self.validate_roles(&roles, false)?;
        let user = self
            .0
            .stores
            .users
            .remove_roles(id, &roles, self.now())
            .await
            .map_err(map_user_missing)?;
        self.revoked(Revocation::User(id)).await;
        self.roles_changed(&user, Vec::new(), roles).await;
        Ok(user)
    }

    /// Mark a user's email as verified (F-06).
    ///
    /// # Errors
    /// `USER_NOT_FOUND`, `SERVICE_UNAVAILABLE`.
    pub async fn verify_email(&self, id: UserId) -> Result<User> {
        let user = self
            .0
            .stores
            .users
            .set_email_verified(id, self.now())
            .await
            .map_err(map_user_missing)?;
        self.revoked(Revocation::User(id)).await;
        Ok(user)
    }
}

fn map_user_missing(e: crate::store::StoreError) -> Error {
    match e.kind() {
        StoreErrorKind::NotFound => user_not_found(),
        _ => e.into(),
    }
}
