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
    UnhandledError, envelope_response, error_response, json_response, panic_caught,
    report_unhandled,
};
use super::table::{PathParams, RouteAuth, RouteContext, RouteFuture, RouteMiss, RouteSpec};
use super::{Api, Authenticated, Request, Route, caller_scope};
use crate::config::Config;
use crate::error::{Error, ErrorCode, Result};
use crate::hooks::UnhandledKind;
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

/// The built-in routes of SPEC §6 as specs of the route table, in the
/// order of [`Route::ALL`].
/// Each carries its OpenAPI operation as `config` makes it behave.
pub(crate) fn builtin_routes(config: &Config) -> Vec<RouteSpec> {
    fn spec<F>(route: Route, handler: F) -> RouteSpec
    where
        F: for<'a> Fn(RouteContext<'a>) -> RouteFuture<'a> + Send + Sync + 'static,
    {
        RouteSpec::new(route.id(), route.method(), route.path(), handler).builtin(route)
    }
    let routes = vec![
        spec(Route::Register, |cx| Box::pin(cx.api.register(cx.request)))
            .idempotent(true)
            // The key first: an unauthorized caller learns nothing of the
            // body and takes no idempotency key.
            .guard(|api, req, _| api.sentri.check_registration(api_key(req), None)),
        spec(Route::Login, |cx| Box::pin(cx.api.login(cx.request))),
        spec(Route::Refresh, |cx| Box::pin(cx.api.refresh(cx.request))),
        spec(Route::Logout, |cx| Box::pin(cx.api.logout(cx.request))),
        spec(Route::LogoutAll, |cx| with_caller(cx, Api::logout_all)).auth(RouteAuth::Access),
        spec(Route::Me, |cx| with_caller(cx, Api::me)).auth(RouteAuth::Access),
        spec(Route::ChangeIdentifier, |cx| {
            with_caller(cx, Api::change_identifier)
        })
        .auth(RouteAuth::Access)
        .idempotent(true),
        spec(Route::ChangePassword, |cx| {
            with_caller(cx, Api::change_password)
        })
        .auth(RouteAuth::Access)
        .idempotent(true),
        spec(Route::ListSessions, |cx| {
            with_caller(cx, Api::list_sessions)
        })
        .auth(RouteAuth::Access),
        spec(Route::RevokeSession, |cx| {
            let id = cx.param("id");
            with_caller(cx, move |api, _, auth| api.revoke_session(auth, id))
        })
        .auth(RouteAuth::Access),
        spec(Route::AssignRoles, |cx| {
            let user_id = cx.param("userId");
            with_caller(cx, move |api, req, _| api.roles_route(req, user_id, true))
        })
        .auth(RouteAuth::Admin)
        .idempotent(true),
        spec(Route::RevokeRoles, |cx| {
            let user_id = cx.param("userId");
            with_caller(cx, move |api, req, _| api.roles_route(req, user_id, false))
        })
        .auth(RouteAuth::Admin)
        .idempotent(true),
        spec(Route::Keys, |cx| Box::pin(cx.api.keys())),
    ];
    let routes: Vec<RouteSpec> = routes
        .into_iter()
        .zip(Route::ALL)
        .map(|(spec, route)| spec.operation(super::openapi::builtin_operation(route, config)))
        .collect();
    debug_assert!(
        routes
            .iter()
            .zip(Route::ALL)
            .all(|(spec, route)| spec.as_builtin() == Some(route))
    );
    routes
}

/// Run `f` with the caller of a route that needs an access token.
fn with_caller<'a, F, Fut>(cx: RouteContext<'a>, f: F) -> RouteFuture<'a>
where
    F: FnOnce(&'a Api, &'a Request, &'a Authenticated) -> Fut,
    Fut: Future<Output = Response<Bytes>> + Send + 'a,
{
    match cx.caller() {
        Ok(auth) => Box::pin(f(cx.api, cx.request, auth)),
        Err(err) => {
            let res = error_response(&err);
            Box::pin(async move { res })
        }
    }
}

fn api_key(req: &Request) -> Option<&str> {
    req.headers.get("x-api-key").and_then(|v| v.to_str().ok())
}

impl Api {
    /// Run the built-in route `route` (with its path parameter, if any),
    /// as [`Api::call_spec`] runs any route of the table.
    pub async fn call(&self, route: Route, req: &Request, param: Option<&str>) -> Response<Bytes> {
        let mut params = PathParams::new();
        if let (Some(name), Some(value)) = (route.param(), param) {
            params.push(name, value);
        }
        match self.table.find(route) {
            Some(spec) => self.call_spec(spec, req, &params).await,
            None => self.finish(super::not_found_response()),
        }
    }

    /// Run a route of the table with its path parameters: authentication
    /// (per [`RouteSpec::route_auth`], with silent refresh), the admin
    /// role, the guard, then the handler, under the idempotency layer when
    /// the route is idempotent.
    ///
    /// An unexpected error (rendered as the generic 500) or a panic of the
    /// route is logged and reported to the `on_unhandled` hook (SPEC §3);
    /// the client sees only the generic envelope.
    pub async fn call_spec(
        &self,
        spec: &RouteSpec,
        req: &Request,
        params: &PathParams,
    ) -> Response<Bytes> {
        let outcome = AssertUnwindSafe(self.run_spec(spec, req, params))
            .catch_unwind()
            .await;
        let path = req.uri.path();
        let res = match outcome {
            Ok(mut res) => {
                if let Some(marked) = res.extensions_mut().remove::<UnhandledError>() {
                    let (kind, detail) = (UnhandledKind::Error, marked.0);
                    report_unhandled(&self.sentri, kind, detail, &req.method, path).await;
                }
                res
            }
            Err(panic) => panic_caught(Some(&self.sentri), panic, &req.method, path).await,
        };
        self.finish(res)
    }

    fn finish(&self, mut res: Response<Bytes>) -> Response<Bytes> {
        super::security_headers(res.headers_mut(), self.sentri.config().cookies());
        res
    }

    async fn run_spec(
        &self,
        spec: &RouteSpec,
        req: &Request,
        params: &PathParams,
    ) -> Response<Bytes> {
        if !spec.route_auth().needs_access() {
            return self.run_checked(spec, req, params, None).await;
        }
        match self.authenticate(req.head()).await {
            // Silent-refresh cookies go on the response whatever its status.
            Ok(auth) => {
                let res = self.run_checked(spec, req, params, Some(&auth)).await;
                with_cookies(res, auth.set_cookies)
            }
            Err(err) => error_response(&err),
        }
    }

    async fn run_checked(
        &self,
        spec: &RouteSpec,
        req: &Request,
        params: &PathParams,
        auth: Option<&Authenticated>,
    ) -> Response<Bytes> {
        if spec.route_auth() == RouteAuth::Admin {
            let admin = self.sentri.config().admin_role();
            let allowed = match auth {
                Some(auth) => auth.user.require_any_role(&[admin]),
                None => Err(Error::new(ErrorCode::Unauthorized)),
            };
            if let Err(err) = allowed {
                return error_response(&err);
            }
        }
        if let Some(guard) = spec.guard_fn()
            && let Err(err) = guard(self, req, auth)
        {
            return error_response(&err);
        }
        let cx = RouteContext {
            api: self,
            request: req,
            params,
            auth,
        };
        if spec.is_idempotent() && self.idempotent_routes {
            let scope = caller_scope(&self.sentri, auth.map(|a| &a.user), req.head());
            idempotent(&self.sentri, req.head(), &req.body, scope, |_| spec.run(cx)).await
        } else {
            spec.run(cx).await
        }
    }

    /// Match `req.uri` below the prefix and run the route: 404 or 405 in
    /// the envelope when nothing matches.
    pub async fn dispatch(&self, req: &Request) -> Response<Bytes> {
        let path = req.uri.path();
        let Some(rest) = path.strip_prefix(&*self.prefix) else {
            return super::not_found_response();
        };
        match self.match_route(&req.method, rest) {
            Ok((spec, params)) => self.call_spec(spec, req, &params).await,
            Err(miss) => {
                let mut res = miss.into_response();
                if miss == RouteMiss::MethodNotAllowed
                    && let Some(allow) = self.allow_header(rest)
                {
                    res.headers_mut().insert(http::header::ALLOW, allow);
                }
                self.finish(res)
            }
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
    async fn register(&self, req: &Request) -> Response<Bytes> {
        render(
            async {
                let mut body = JsonBody::parse(&req.headers, &req.body, self.body_limit())?;
                let identifier = body.required_str("identifier")?;
                let password = body.required_str("password")?;
                let roles = body.optional_str_list("roles")?;
                let name = body.optional_str("name")?;
                body.finish()?;
                self.sentri
                    .check_registration(api_key(req), roles.as_deref())?;
                // Per-address limit of self-registration, reserved before
                // the password is hashed (F-27).
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
    }

    /// `POST /login` (F-04, F-27).
    async fn login(&self, req: &Request) -> Response<Bytes> {
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
    async fn refresh(&self, req: &Request) -> Response<Bytes> {
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
    async fn logout(&self, req: &Request) -> Response<Bytes> {
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
    async fn logout_all(&self, _req: &Request, auth: &Authenticated) -> Response<Bytes> {
        match self.sentri.logout_all(auth.user.id()).await {
            Ok(()) => with_cookies(
                envelope_response::<()>(StatusCode::OK, "logged out of every session", None),
                self.cookie_writer().clear_cookies(),
            ),
            Err(err) => error_response(&err),
        }
    }

    /// `GET /me`: `{user}`.
    async fn me(&self, _req: &Request, auth: &Authenticated) -> Response<Bytes> {
        render(
            self.sentri
                .get_user(auth.user.id())
                .await
                .map(|user| self.user_response(StatusCode::OK, "ok", &user)),
        )
    }

    /// `PUT /me/identifier` (F-06): `{newIdentifier, currentPassword}` →
    /// `{user}`; the email verification is cleared and the user's other
    /// sessions are revoked (the caller's stays).
    async fn change_identifier(&self, req: &Request, auth: &Authenticated) -> Response<Bytes> {
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
    }

    /// `PUT /me/password` (F-06): `{currentPassword, newPassword}` → null;
    /// every session is revoked and the cookies cleared.
    async fn change_password(&self, req: &Request, auth: &Authenticated) -> Response<Bytes> {
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
    }

    /// `GET /sessions` (F-14): `{sessions: [...]}`, `current` marking the
    /// caller's.
    async fn list_sessions(&self, _req: &Request, auth: &Authenticated) -> Response<Bytes> {
        render(
            self.sentri
                .list_sessions(auth.user.id(), Some(auth.user.session_id()))
                .await
                .map(|sessions| {
                    envelope_response(StatusCode::OK, "ok", Some(json!({ "sessions": sessions })))
                }),
        )
    }

    /// `DELETE /sessions/{id}` (F-14): revoke one of the caller's sessions.
    async fn revoke_session(&self, auth: &Authenticated, id: &str) -> Response<Bytes> {
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
    }

    /// `POST`/`DELETE /users/{userId}/roles` (F-06): admin only (the
    /// route table checks the role); `{roles}` → `{user}`.
    async fn roles_route(&self, req: &Request, user_id: &str, assign: bool) -> Response<Bytes> {
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
    }

    /// `GET /keys` (F-15, F-16): the published key set as plain JWKS JSON
    /// (what JWT libraries fetch), cacheable for 5 minutes. `404
    /// NOT_FOUND` with HMAC signing: secrets are never published.
    async fn keys(&self) -> Response<Bytes> {
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
