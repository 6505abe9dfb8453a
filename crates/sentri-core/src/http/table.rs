//! The route table (SPEC §10): routes are data.
//!
//! A [`RouteSpec`] is a method, a path template, whether the route runs
//! under the idempotency layer, what authentication it needs, an optional
//! guard and its handler. The built-in routes of SPEC §6 are registered
//! as specs like any other ([`RouteSpec::builtin`]), and an [`Api`] holds
//! the table an adapter mounts: adapters loop over [`Api::routes`], and
//! [`Api::match_route`] / [`Api::allow_header`] answer 404 and 405 from
//! it, so both frameworks agree on every route, built-in or added. Paths
//! match exactly, segment by segment: `/me/` is not `/me`, and an empty
//! segment never fills a parameter.
//!
//! The order in which [`Api::call_spec`] runs a route: authentication
//! (when [`RouteAuth`] asks for it, with silent refresh), the admin role,
//! the guard, then the idempotency layer around the handler. A failure at
//! any step is the envelope and the handler never runs.
//!
//! ```
//! use http::{Method, StatusCode};
//! use sentri_core::http::{RouteAuth, RouteSpec, envelope_response};
//! use serde_json::json;
//!
//! // `GET /whoami`: the caller's user id, for a signed-in caller only.
//! let whoami = RouteSpec::new("whoami", Method::GET, "/whoami", |cx| {
//!     Box::pin(async move {
//!         let user = cx.auth.map(|a| a.user.id().to_string());
//!         envelope_response(StatusCode::OK, "ok", Some(json!({ "userId": user })))
//!     })
//! })
//! .auth(RouteAuth::Access);
//! assert_eq!(whoami.path(), "/whoami");
//! assert_eq!(whoami.params().count(), 0);
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::HeaderValue;
use http::{Method, Response};

use super::openapi::Operation;
use super::{Api, Authenticated, Request, Route};
use crate::error::{Error, ErrorCode, Result};

/// The future a route handler returns.
pub type RouteFuture<'a> = BoxFuture<'a, Response<Bytes>>;

type HandlerFn = dyn for<'a> Fn(RouteContext<'a>) -> RouteFuture<'a> + Send + Sync;
type GuardFn = dyn Fn(&Api, &Request, Option<&Authenticated>) -> Result<()> + Send + Sync;

/// What a route needs before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RouteAuth {
    /// Nothing: the handler reads what it needs itself (a refresh token,
    /// an API key, a one-time token).
    Public,
    /// A valid access token (the `Authorization: Bearer` header, else the
    /// access cookie, with silent refresh): the handler gets
    /// [`RouteContext::auth`].
    Access,
    /// An access token of a user holding the configured admin role
    /// ([`crate::Config::admin_role`]); `FORBIDDEN` otherwise.
    Admin,
}

impl RouteAuth {
    /// Whether an access token is needed.
    pub fn needs_access(self) -> bool {
        !matches!(self, Self::Public)
    }
}

/// The path parameters of a matched route, in the order of the template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams(Vec<(Cow<'static, str>, String)>);

impl PathParams {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of the parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Add a parameter.
    pub fn push(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// Every parameter, in the order of the template.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_ref(), v.as_str()))
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a handler is given: the [`Api`] (and through it the services),
/// the request, its path parameters and, for a route with
/// [`RouteAuth::Access`] or [`RouteAuth::Admin`], the authenticated
/// caller.
#[derive(Debug, Clone, Copy)]
pub struct RouteContext<'a> {
    /// The routes and services.
    pub api: &'a Api,
    /// The request.
    pub request: &'a Request,
    /// The path parameters.
    pub params: &'a PathParams,
    /// The caller, when the route needs an access token.
    pub auth: Option<&'a Authenticated>,
}

impl<'a> RouteContext<'a> {
    /// The caller of a route that needs an access token.
    ///
    /// # Errors
    /// `UNAUTHORIZED` on a route registered as [`RouteAuth::Public`].
    pub fn caller(&self) -> Result<&'a Authenticated> {
        self.auth
            .ok_or_else(|| Error::with_message(ErrorCode::Unauthorized, "authentication required"))
    }

    /// The path parameter `name` (`""` when the template has none of that
    /// name).
    pub fn param(&self, name: &str) -> &'a str {
        self.params.get(name).unwrap_or("")
    }
}

/// One route of the table: method, path template (parameters as
/// `{name}`), whether it is idempotent, what authentication it needs, an
/// optional guard, its handler and its OpenAPI [`Operation`]. Cheap to
/// clone.
#[derive(Clone)]
pub struct RouteSpec {
    id: Cow<'static, str>,
    method: Method,
    path: Cow<'static, str>,
    idempotent: bool,
    auth: RouteAuth,
    guard: Option<Arc<GuardFn>>,
    handler: Arc<HandlerFn>,
    builtin: Option<Route>,
    operation: Option<Arc<Operation>>,
}

impl fmt::Debug for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteSpec")
            .field("id", &self.id)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("idempotent", &self.idempotent)
            .field("auth", &self.auth)
            .field("documented", &self.operation.is_some())
            .finish_non_exhaustive()
    }
}

impl RouteSpec {
    /// A public, non-idempotent route. `id` names it (it is the OpenAPI
    /// `operationId`: unique in a table, `camelCase` by convention).
    pub fn new<F>(
        id: impl Into<Cow<'static, str>>,
        method: Method,
        path: impl Into<Cow<'static, str>>,
        handler: F,
    ) -> Self
    where
        F: for<'a> Fn(RouteContext<'a>) -> RouteFuture<'a> + Send + Sync + 'static,
    {
        Self {
            id: id.into(),
            method,
            path: path.into(),
            idempotent: false,
            auth: RouteAuth::Public,
            guard: None,
            handler: Arc::new(handler),
            builtin: None,
            operation: None,
        }
    }

    /// Run the handler under the idempotency layer (F-26): a repeat with
    /// the same idempotency key replays the stored response.
    #[must_use]
    pub fn idempotent(mut self, on: bool) -> Self {
        self.idempotent = on;
        self
    }

    /// What the route needs before its handler runs. Default
    /// [`RouteAuth::Public`].
    #[must_use]
    pub fn auth(mut self, auth: RouteAuth) -> Self {
        self.auth = auth;
        self
    }

    /// A check run after authentication and before the idempotency layer
    /// (an unauthorized caller neither takes an idempotency key nor
    /// reaches the body); its error is the response.
    #[must_use]
    pub fn guard<G>(mut self, guard: G) -> Self
    where
        G: Fn(&Api, &Request, Option<&Authenticated>) -> Result<()> + Send + Sync + 'static,
    {
        self.guard = Some(Arc::new(guard));
        self
    }

    /// The OpenAPI description of the route ([`Api::openapi`]); without
    /// one the document lists the route with its id as summary.
    #[must_use]
    pub fn operation(mut self, operation: Operation) -> Self {
        self.operation = Some(Arc::new(operation));
        self
    }

    /// The OpenAPI description of the route, if it has one.
    pub fn openapi_operation(&self) -> Option<&Operation> {
        self.operation.as_deref()
    }

    pub(crate) fn builtin(mut self, route: Route) -> Self {
        self.builtin = Some(route);
        self
    }

    /// The name of the route (the OpenAPI `operationId`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path template below the mount prefix, parameters as `{name}`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The names of the path parameters, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
    }

    /// Whether the route runs under the idempotency layer.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// What the route needs before its handler runs.
    pub fn route_auth(&self) -> RouteAuth {
        self.auth
    }

    /// The built-in route this is, if it is one.
    pub fn as_builtin(&self) -> Option<Route> {
        self.builtin
    }

    pub(crate) fn guard_fn(&self) -> Option<&GuardFn> {
        self.guard.as_deref()
    }

    pub(crate) fn run<'a>(&self, cx: RouteContext<'a>) -> RouteFuture<'a> {
        (self.handler)(cx)
    }

    /// The parameters of `path` when it matches the template.
    fn match_path(&self, path: &str) -> Option<PathParams> {
        let mut params = PathParams::new();
        let mut p = self.path.split('/');
        let mut q = path.split('/');
        loop {
            match (p.next(), q.next()) {
                (None, None) => return Some(params),
                (Some(a), Some(b)) => match a.strip_prefix('{').and_then(|a| a.strip_suffix('}')) {
                    Some(name) if !b.is_empty() => {
                        let value = percent_decode(b).unwrap_or_else(|| b.to_owned());
                        params.push(name.to_owned(), value);
                    }
                    Some(_) => return None,
                    None if a == b => {}
                    None => return None,
                },
                _ => return None,
            }
        }
    }
}

/// Why no route matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteMiss {
    /// No route has this path: 404.
    NotFound,
    /// A route has this path, with another method: 405.
    MethodNotAllowed,
}

impl RouteMiss {
    /// The envelope response: `404 NOT_FOUND` or `405 METHOD_NOT_ALLOWED`.
    pub fn into_response(self) -> Response<Bytes> {
        match self {
            Self::NotFound => super::not_found_response(),
            Self::MethodNotAllowed => super::method_not_allowed_response(),
        }
    }
}

/// The routes of an [`Api`], in registration order.
#[derive(Clone, Debug)]
pub(crate) struct RouteTable(Arc<[RouteSpec]>);

impl RouteTable {
    pub(crate) fn new(routes: Vec<RouteSpec>) -> Self {
        Self(routes.into())
    }

    pub(crate) fn specs(&self) -> &[RouteSpec] {
        &self.0
    }

    /// Add `spec`: `CONFIGURATION_ERROR` when its path is not a valid
    /// template, its id is taken, or its path can match a path another
    /// route's matches (only the very same template with another method
    /// may share paths). Both frameworks then route every path to the
    /// same spec, whatever their own precedence rules.
    pub(crate) fn with(&self, spec: RouteSpec) -> Result<Self> {
        let refuse = |problem: String| {
            Error::with_message(
                ErrorCode::ConfigurationError,
                format!(
                    "route {} {} ({}): {problem}",
                    spec.method, spec.path, spec.id
                ),
            )
        };
        check_template(&spec.path).map_err(|p| refuse(p.to_owned()))?;
        for existing in self.0.iter() {
            let same_paths = existing.path == spec.path && existing.method != spec.method;
            if existing.id == spec.id || (overlap(&existing.path, &spec.path) && !same_paths) {
                return Err(refuse(format!(
                    "clashes with {} {} ({})",
                    existing.method, existing.path, existing.id
                )));
            }
        }
        let mut routes = self.0.to_vec();
        routes.push(spec);
        Ok(Self(routes.into()))
    }

    pub(crate) fn find(&self, route: Route) -> Option<&RouteSpec> {
        self.0.iter().find(|r| r.builtin == Some(route))
    }

    pub(crate) fn match_route(
        &self,
        method: &Method,
        path: &str,
    ) -> std::result::Result<(&RouteSpec, PathParams), RouteMiss> {
        let mut path_known = false;
        for spec in self.0.iter() {
            let Some(params) = spec.match_path(path) else {
                continue;
            };
            path_known = true;
            if spec.method == method {
                return Ok((spec, params));
            }
        }
        Err(if path_known {
            RouteMiss::MethodNotAllowed
        } else {
            RouteMiss::NotFound
        })
    }

    pub(crate) fn allow_header(&self, path: &str) -> Option<HeaderValue> {
        let methods: Vec<&str> = self
            .0
            .iter()
            .filter(|r| r.match_path(path).is_some())
            .map(|r| r.method.as_str())
            .collect();
        if methods.is_empty() {
            return None;
        }
        HeaderValue::from_str(&methods.join(",")).ok()
    }
}

/// Why `path` is not a route template: it starts with `/`, and each
/// segment is a non-empty literal (no `{`, `}`, `:` or `*`) or a whole
/// `{name}` parameter (letters, digits, `_`).
fn check_template(path: &str) -> std::result::Result<(), &'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("a path starts with /");
    };
    if rest.is_empty() {
        return Ok(());
    }
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Err("empty segment");
        }
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                let valid =
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err("a parameter is {name}: letters, digits and _");
                }
            }
            None if segment.contains(['{', '}', ':', '*']) => {
                return Err("a segment is a literal or a whole {name} parameter");
            }
            None => {}
        }
    }
    Ok(())
}

/// Whether one path can match both templates: as many segments, and at
/// each position the same literal or a parameter on either side.
fn overlap(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| x == y || x.starts_with('{') || y.starts_with('{'))
}

/// `%XX` escapes of a path segment decoded, as the frameworks hand
/// parameters over; `None` when an escape is malformed or the bytes are not
/// UTF-8 (the segment is then used as received).
fn percent_decode(segment: &str) -> Option<String> {
    if !segment.contains('%') {
        return Some(segment.to_owned());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
