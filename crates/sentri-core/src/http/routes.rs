//! The built-in routes (SPEC §6).

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, HeaderValue, SET_COOKIE};
use http::{Response, StatusCode};
use serde_json::json;

use super::body::JsonBody;
use super::idempotency::idempotent;
use super::response::{
    UnhandledError, envelope_response, error_response, json_response, panic_message, panic_response,
};
use super::{Api, Authenticated, Request, Route, caller_scope};
use crate::error::{Error, ErrorCode, Result};
use crate::hooks::{Unhandled, UnhandledKind, fire};
use crate::idempotency::CallerScope;
use crate::model::{SessionId, UserId};
use crate::service::{
    AuthOutput, ChangeIdentifierInput, ChangePasswordInput, LoginInput, LoginOutcome, LogoutInput,
    RefreshInput, RegisterInput, SecondStep,
};

fn with_cookies(mut res: Response<Bytes>, cookies: Vec<HeaderValue>) -> Response<Bytes> {
    for c in cookies {
        res.headers_mut().append(SET_COOKIE, c);
    }
    res
}

fn render(result: Result<Response<Bytes>>) -> Response<Bytes> {
    result.unwrap_or_else(|err| error_response(&err))
}

impl Api {
    /// Run the route `route` (with its path parameter, if any).
    ///
    /// An unexpected error (rendered as the generic 500) or a panic of the
    /// route is logged and reported to the `on_unhandled` hook (SPEC §3);
    /// the client sees only the generic envelope.
    pub async fn call(&self, route: Route, req: &Request, param: Option<&str>) -> Response<Bytes> {
        let outcome = AssertUnwindSafe(self.call_route(route, req, param.unwrap_or("")))
            .catch_unwind()
            .await;
        let (mut res, report) = match outcome {
            Ok(res) => (res, None),
            Err(panic) => {
                let message = panic_message(&*panic);
                tracing::error!(panic = %message, "handler panicked");
                (panic_response(), Some((UnhandledKind::Panic, message)))
            }
        };
        let marked = res.extensions_mut().remove::<UnhandledError>();
        let report = report.or_else(|| marked.map(|e| (UnhandledKind::Error, e.0)));
        if let Some((kind, detail)) = report {
            let unhandled = Unhandled {
                kind,
                detail,
                method: req.method.to_string(),
                path: req.uri.path().to_owned(),
            };
            let hook = &self.sentri.config().hooks.on_unhandled;
            fire("on_unhandled", hook, unhandled).await;
        }
        super::security_headers(res.headers_mut(), self.sentri.config().cookies());
        res
    }

    async fn call_route(&self, route: Route, req: &Request, param: &str) -> Response<Bytes> {
        match route {
            Route::Register => self.register(req).await,
            Route::Login => self.login(req).await,
            Route::Refresh => self.refresh(req).await,
            Route::Logout => self.logout(req).await,
            Route::LogoutAll => self.logout_all(req).await,
            Route::Me => self.me(req).await,
            Route::ChangeIdentifier => self.change_identifier(req).await,
            Route::ChangePassword => self.change_password(req).await,
            Route::ListSessions => self.list_sessions(req).await,
            Route::RevokeSession => self.revoke_session(req, param).await,
            Route::AssignRoles => self.assign_roles(req, param).await,
            Route::RevokeRoles => self.revoke_roles(req, param).await,
            Route::Keys => self.keys(req).await,
        }
    }

    /// Match `req.uri` below the prefix and run the route: 404 or 405 in
    /// the envelope when nothing matches.
    pub async fn dispatch(&self, req: &Request) -> Response<Bytes> {
        let path = req.uri.path();
        let Some(rest) = path.strip_prefix(&*self.prefix) else {
            return super::not_found_response();
        };
        match Route::match_path(&req.method, rest) {
            Ok((route, param)) => self.call(route, req, param.as_deref()).await,
            Err(miss) => {
                let mut res = miss.into_response();
                super::security_headers(res.headers_mut(), self.sentri.config().cookies());
                res
            }
        }
    }

    async fn maybe_idempotent<F, Fut>(
        &self,
        req: &Request,
        scope: CallerScope,
        run: F,
    ) -> Response<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Response<Bytes>>,
    {
        if self.idempotent_routes {
            idempotent(&self.sentri, req.head(), &req.body, scope, |_| run()).await
        } else {
            run().await
        }
    }

    /// Authenticate, then run `f`; silent-refresh cookies go on the
    /// response whatever its status.
    async fn authed<F, Fut>(&self, req: &Request, f: F) -> Response<Bytes>
    where
        F: FnOnce(Authenticated) -> Fut,
        Fut: Future<Output = Response<Bytes>>,
    {
        match self.authenticate(req.head()).await {
            Ok(auth) => {
                let cookies = auth.set_cookies.clone();
                with_cookies(f(auth).await, cookies)
            }
            Err(err) => error_response(&err),
        }
    }

    fn token_response(&self, message: &str, out: &AuthOutput) -> Response<Bytes> {
        let cookies = self.sentri.config().cookies();
        let mut data = json!({
            "accessToken": out.tokens.access_token,
            "accessExpiresAt": out.tokens.access_expires_at,
            "refreshExpiresAt": out.tokens.refresh_expires_at,
            "user": out.user,
        });
        if !cookies.refresh_in_cookie() {
            data["refreshToken"] = json!(out.tokens.refresh_token);
        }
        let res = envelope_response(StatusCode::OK, message, Some(data));
        let set = self
            .cookie_writer()
            .token_cookies(&out.tokens, self.sentri.clock().now());
        with_cookies(res, set)
    }

    fn user_response(
        &self,
        status: StatusCode,
        message: &str,
        user: &crate::model::User,
    ) -> Response<Bytes> {
        envelope_response(status, message, Some(json!({ "user": user })))
    }

    /// `POST /register` (F-03): `X-Api-Key` when configured, 201 `{user}`;
    /// without an API key configured, limited per client address (F-27).
    pub async fn register(&self, req: &Request) -> Response<Bytes> {
        let api_key = req.headers.get("x-api-key").and_then(|v| v.to_str().ok());
        // The key first: an unauthorized caller learns nothing of the body.
        if let Err(err) = self.sentri.check_registration(api_key, None) {
            return error_response(&err);
        }
        let scope = caller_scope(&self.sentri, None, req.head());
        self.maybe_idempotent(req, scope, || async {
            render(
                async {
                    let mut body = JsonBody::parse(&req.headers, &req.body, self.body_limit())?;
                    let identifier = body.required_str("identifier")?;
                    let password = body.required_str("password")?;
                    let roles = body.optional_str_list("roles")?;
                    let name = body.optional_str("name")?;
                    body.finish()?;
                    self.sentri.check_registration(api_key, roles.as_deref())?;
                    // Per-address limit of self-registration, reserved
                    // before the password is hashed (F-27).
                    let throttle = self.sentri.throttle();
                    let attempt = throttle
                        .reserve_registration(self.client_info(req.head()).ip)
                        .await?;
                    let result = self
                        .sentri
                        .register(RegisterInput {
                            identifier,
                            password,
                            roles,
                            name,
                        })
                        .await;
                    throttle.settle_registration(attempt, &result).await;
                    let user = result?;
                    Ok(self.user_response(StatusCode::CREATED, "user registered", &user))
                }
                .await,
            )
        })
        .await
    }

    /// `POST /login` (F-04, F-27).
    pub async fn login(&self, req: &Request) -> Response<Bytes> {
        render(
            async {
                let mut body = JsonBody::parse(&req.headers, &req.body, self.body_limit())?;
                let identifier = body.required_str("identifier")?;
                let password = body.required_str("password")?;
                body.finish()?;
                let outcome = self
                    .sentri
                    .login(LoginInput {
                        identifier,
                        password,
                        client: self.client_info(req.head()),
                    })
                    .await?;
                Ok(match outcome {
                    LoginOutcome::Authenticated(out) => self.token_response("logged in", &out),
                    LoginOutcome::SecondStepRequired(step) => second_step_response(&step),
                })
            }
            .await,
        )
    }

    /// The refresh token of the body, else of the cookie (CSRF-checked).
    fn presented_refresh(&self, req: &Request, body: &mut JsonBody) -> Result<Option<String>> {
        if let Some(token) = body.optional_str("refreshToken")? {
            return Ok(Some(token));
        }
        let cookies = self.sentri.config().cookies();
        if !cookies.refresh_in_cookie() {
            return Ok(None);
        }
        match super::read_cookie(&req.headers, &cookies.refresh_cookie_name()) {
            Some(token) => {
                super::check_origin(cookies, &req.method, &req.uri, &req.headers)?;
                Ok(Some(token.to_owned()))
            }
            None => Ok(None),
        }
    }

    /// `POST /refresh` (F-11): the token from the body, else the cookie.
    pub async fn refresh(&self, req: &Request) -> Response<Bytes> {
        render(
            async {
                let mut body =
                    JsonBody::parse_optional(&req.headers, &req.body, self.body_limit())?;
                let token = self.presented_refresh(req, &mut body)?;
                body.finish()?;
                let token = token.ok_or_else(|| {
                    if self.sentri.config().cookies().refresh_in_cookie() {
                        Error::with_message(ErrorCode::Unauthorized, "a refresh token is required")
                    } else {
                        Error::validation("refreshToken", "is required")
                    }
                })?;
                let out = self
                    .sentri
                    .refresh(RefreshInput {
                        refresh_token: token,
                        client: self.client_info(req.head()),
                    })
                    .await?;
                Ok(self.token_response("token refreshed", &out))
            }
            .await,
        )
    }

    /// `POST /logout` (F-12): by refresh token (body or cookie), else by
    /// the access token; clears the cookies.
    pub async fn logout(&self, req: &Request) -> Response<Bytes> {
        let result: Result<Response<Bytes>> = async {
            let mut body = JsonBody::parse_optional(&req.headers, &req.body, self.body_limit())?;
            let token = self.presented_refresh(req, &mut body)?;
            body.finish()?;
            let input = match token {
                Some(token) => LogoutInput::RefreshToken(token),
                None => {
                    LogoutInput::Session(self.authenticate(req.head()).await?.user.session_id())
                }
            };
            self.sentri.logout(input).await?;
            Ok(envelope_response::<()>(StatusCode::OK, "logged out", None))
        }
        .await;
        let clear = match &result {
            Ok(_) => true,
            Err(err) => matches!(
                err.code_ref(),
                ErrorCode::TokenInvalid | ErrorCode::TokenExpired | ErrorCode::Unauthorized
            ),
        };
        let res = render(result);
        if clear {
            with_cookies(res, self.cookie_writer().clear_cookies())
        } else {
            res
        }
    }

    /// `POST /logout-all` (F-12): every session of the user; clears the
    /// cookies.
    pub async fn logout_all(&self, req: &Request) -> Response<Bytes> {
        self.authed(req, |auth| async move {
            match self.sentri.logout_all(auth.user.id()).await {
                Ok(()) => with_cookies(
                    envelope_response::<()>(StatusCode::OK, "logged out of every session", None),
                    self.cookie_writer().clear_cookies(),
                ),
                Err(err) => error_response(&err),
            }
        })
        .await
    }

    /// `GET /me`: `{user}`.
    pub async fn me(&self, req: &Request) -> Response<Bytes> {
        self.authed(req, |auth| async move {
            render(
                self.sentri
                    .get_user(auth.user.id())
                    .await
                    .map(|user| self.user_response(StatusCode::OK, "ok", &user)),
            )
        })
        .await
    }

    /// `PUT /me/identifier` (F-06): `{newIdentifier, currentPassword}` →
    /// `{user}`; the email verification is cleared and the user's other
    /// sessions are revoked (the caller's stays).
    pub async fn change_identifier(&self, req: &Request) -> Response<Bytes> {
        self.authed(req, |auth| async move {
            let scope = caller_scope(&self.sentri, Some(&auth.user), req.head());
            self.maybe_idempotent(req, scope, || async {
                render(
                    async {
                        let mut body = JsonBody::parse(&req.headers, &req.body, self.body_limit())?;
                        let new_identifier = body.required_str("newIdentifier")?;
                        let current_password = body.required_str("currentPassword")?;
                        body.finish()?;
                        let user = self
                            .sentri
                            .change_identifier(ChangeIdentifierInput {
                                user_id: auth.user.id(),
                                new_identifier,
                                current_password,
                                session_id: Some(auth.user.session_id()),
                            })
                            .await?;
                        Ok(self.user_response(StatusCode::OK, "identifier changed", &user))
                    }
                    .await,
                )
            })
            .await
        })
        .await
    }

    /// `PUT /me/password` (F-06): `{currentPassword, newPassword}` → null;
    /// every session is revoked and the cookies cleared.
    pub async fn change_password(&self, req: &Request) -> Response<Bytes> {
        self.authed(req, |auth| async move {
            let scope = caller_scope(&self.sentri, Some(&auth.user), req.head());
            self.maybe_idempotent(req, scope, || async {
                render(
                    async {
                        let mut body = JsonBody::parse(&req.headers, &req.body, self.body_limit())?;
                        let current_password = body.required_str("currentPassword")?;
                        let new_password = body.required_str("newPassword")?;
                        body.finish()?;
                        self.sentri
                            .change_password(ChangePasswordInput {
                                user_id: auth.user.id(),
                                current_password,
                                new_password,
                            })
                            .await?;
                        Ok(with_cookies(
                            envelope_response::<()>(StatusCode::OK, "password changed", None),
                            self.cookie_writer().clear_cookies(),
                        ))
                    }
                    .await,
                )
            })
            .await
        })
        .await
    }

    /// `GET /sessions` (F-14): `{sessions: [...]}`, `current` marking the
    /// caller's.
    pub async fn list_sessions(&self, req: &Request) -> Response<Bytes> {
        self.authed(req, |auth| async move {
            render(
                self.sentri
                    .list_sessions(auth.user.id(), Some(auth.user.session_id()))
                    .await
                    .map(|sessions| {
                        envelope_response(
                            StatusCode::OK,
                            "ok",
                            Some(json!({ "sessions": sessions })),
                        )
                    }),
            )
        })
        .await
    }

    /// `DELETE /sessions/{id}` (F-14): revoke one of the caller's sessions.
    pub async fn revoke_session(&self, req: &Request, id: &str) -> Response<Bytes> {
        self.authed(req, |auth| async move {
            render(
                async {
                    let sid: SessionId = id
                        .parse()
                        .map_err(|_| Error::validation("id", "must be a session id"))?;
                    self.sentri.revoke_session(auth.user.id(), sid).await?;
                    Ok(envelope_response::<()>(
                        StatusCode::OK,
                        "session revoked",
                        None,
                    ))
                }
                .await,
            )
        })
        .await
    }

    async fn roles_route(&self, req: &Request, user_id: &str, assign: bool) -> Response<Bytes> {
        self.authed(req, |auth| async move {
            if let Err(err) = auth
                .user
                .require_any_role(&[self.sentri.config().admin_role()])
            {
                return error_response(&err);
            }
            let scope = caller_scope(&self.sentri, Some(&auth.user), req.head());
            self.maybe_idempotent(req, scope, || async {
                render(
                    async {
                        let target: UserId = user_id
                            .parse()
                            .map_err(|_| Error::validation("userId", "must be a user id"))?;
                        let mut body = JsonBody::parse(&req.headers, &req.body, self.body_limit())?;
                        let roles = body.required_str_list("roles")?;
                        body.finish()?;
                        let (user, message) = if assign {
                            (
                                self.sentri.assign_roles(target, roles).await?,
                                "roles assigned",
                            )
                        } else {
                            (
                                self.sentri.revoke_roles(target, roles).await?,
                                "roles revoked",
                            )
                        };
                        Ok(self.user_response(StatusCode::OK, message, &user))
                    }
                    .await,
                )
            })
            .await
        })
        .await
    }

    /// `POST /users/{userId}/roles` (F-06): admin only; `{roles}` →
    /// `{user}`.
    pub async fn assign_roles(&self, req: &Request, user_id: &str) -> Response<Bytes> {
        self.roles_route(req, user_id, true).await
    }

    /// `DELETE /users/{userId}/roles` (F-06): admin only; `{roles}` →
    /// `{user}`.
    pub async fn revoke_roles(&self, req: &Request, user_id: &str) -> Response<Bytes> {
        self.roles_route(req, user_id, false).await
    }

    /// `GET /keys` (F-15, F-16): the published key set as plain JWKS JSON
    /// (what JWT libraries fetch), cacheable for 5 minutes. `404
    /// NOT_FOUND` with HMAC signing: secrets are never published.
    pub async fn keys(&self, _req: &Request) -> Response<Bytes> {
        let jwks = self.sentri.jwks();
        if jwks.keys.is_empty() {
            return error_response(&Error::app(
                "NOT_FOUND",
                404,
                "no published keys: tokens are signed with a shared secret",
            ));
        }
        match serde_json::to_vec(&*jwks) {
            Ok(body) => {
                let mut res = json_response(StatusCode::OK, body);
                res.headers_mut().insert(
                    CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=300"),
                );
                res
            }
            Err(err) => error_response(&Error::internal(err)),
        }
    }
}

/// The answer of a login that needs a second step: 200, no tokens and no
/// cookies, `{"mfaRequired": true, "challenge", "methods",
/// "challengeExpiresAt"}` (docs/http.md).
fn second_step_response(step: &SecondStep) -> Response<Bytes> {
    envelope_response(
        StatusCode::OK,
        "second authentication step required",
        Some(json!({
            "mfaRequired": true,
            "challenge": step.challenge,
            "methods": step.methods,
            "challengeExpiresAt": step.expires_at,
        })),
    )
}
