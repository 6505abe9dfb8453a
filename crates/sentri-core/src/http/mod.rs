//! The HTTP surface of sentri (SPEC §6, F-20 … F-27), framework-free.
//!
//! Everything the web adapters do that is not framework plumbing lives
//! here, so `sentri-axum` and `sentri-poem` answer byte for byte alike:
//! the routes ([`Api`]), bodies and their validation, the envelope,
//! cookies and CSRF, `protect` with silent refresh
//! ([`Api::authenticate`]), the idempotency layer ([`idempotent`]) and
//! error rendering ([`error_response`], [`panic_response`]). An adapter
//! turns its request into a [`Request`] (or a [`Head`] when it does not
//! read the body), calls one of these, and turns the
//! `http::Response<Bytes>` back.
//!
//! ```
//! use std::sync::Arc;
//! use sentri_core::http::{Api, Request, Route};
//! use sentri_core::{Config, Sentri, store::Stores};
//! use sentri_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> sentri_core::Result<()> {
//! let config = Config::builder()
//!     .hs256("an HMAC secret of at least thirty-two bytes")
//!     .valid_roles(["user", "admin"])
//! #   .password_policy(sentri_core::password::PasswordPolicy::argon2id(1024, 1, 1))
//!     .build()?;
//! let sentri = Sentri::new(config, Stores::from_backend(Arc::new(MemoryStore::new()))).await?;
//! let api = Api::new(sentri, "/auth");
//!
//! let req = Request::new(http::Method::POST, "/auth/register")
//!     .header("content-type", "application/json")
//!     .body(r#"{"identifier":"alice@example.com","password":"correct horse battery"}"#);
//! let res = api.call(Route::Register, &req, None).await;
//! assert_eq!(res.status(), 201);
//! # Ok(()) }
//! ```
//!
//! ## Routes
//!
//! | [`Route`] | |
//! |---|---|
//! | `POST /register` | `X-Api-Key` when configured; 201 `{user}`; idempotent |
//! | `POST /login` | `{accessToken, refreshToken*, accessExpiresAt, refreshExpiresAt, user}` |
//! | `POST /refresh` | refresh token from the body, else the refresh cookie |
//! | `POST /logout` | refresh token (body or cookie), else the access token; clears cookies |
//! | `POST /logout-all` | access; clears cookies |
//! | `GET /me`, `PUT /me/identifier`, `PUT /me/password` | access; the `PUT`s are idempotent |
//! | `GET /sessions`, `DELETE /sessions/{id}` | access |
//! | `POST`/`DELETE /users/{userId}/roles` | access + the admin role; idempotent where the idempotency layer handles the method (the `POST` by default) |
//! | `GET /keys` | the JWKS (RFC 7517 JSON, not the envelope); 404 for HMAC |
//!
//! `*` left out when the refresh token travels in a cookie.
//!
//! Every other response body is the envelope of [`crate::Envelope`], with
//! `Cache-Control: no-store`. Bodies are JSON objects read field by field:
//! a wrong content type, malformed JSON, a missing, mistyped or unknown
//! field is `VALIDATION_ERROR` naming it; a body over
//! [`crate::Config::body_limit`] is `PAYLOAD_TOO_LARGE`.
//!
//! ## Cookies, CSRF, silent refresh
//!
//! With [`crate::config::CookieTransport::Refresh`] login and refresh set
//! the refresh cookie (`HttpOnly`, `Max-Age` = what is left of the
//! session, path = the mount prefix unless configured) and leave the
//! refresh token out of the body; with `Both` they also set the access
//! cookie (not `HttpOnly`, `Max-Age` = access TTL), which `protect` reads
//! after the `Authorization` header. Logout, logout-all and a password
//! change clear both. A state-changing request authenticated by a cookie
//! is checked with [`check_origin`]. With `Both`, [`Api::authenticate`]
//! facing an expired (or expired and dropped) access cookie and a valid
//! refresh cookie rotates the pair and returns the new `Set-Cookie`
//! values for the same response (F-24).

mod auth;
mod body;
mod cookies;
pub mod guard;
mod idempotency;
pub mod openapi;
mod response;
mod routes;
mod table;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};

use crate::error::Result;
use crate::service::Sentri;

pub use auth::{Authenticated, TokenSource, access_token, verify_request};
pub use body::{
    check_content_length, is_json_content_type, json_error, too_large as payload_too_large,
};
pub use cookies::{check_origin, is_state_changing, read_cookie};
pub use idempotency::{IdempotencyKey, caller_scope, idempotent};
pub use response::{
    BASELINE_HEADERS, HSTS, baseline_headers, envelope_response, error_response, json_response,
    method_not_allowed_response, not_found_response, panic_caught, panic_message, panic_response,
    security_headers,
};
pub use table::{PathParams, RouteAuth, RouteContext, RouteFuture, RouteMiss, RouteSpec};

/// A request as an adapter hands it to [`Api`]: method, URI, headers, the
/// whole body (read up to [`crate::Config::body_limit`]) and the socket
/// peer. `Debug` shows neither headers nor body (they carry secrets).
#[derive(Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The URI as received (with the mount prefix).
    pub uri: Uri,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// The socket peer, when the server knows it.
    pub peer: Option<SocketAddr>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("uri", &self.uri.path())
            .field("body_len", &self.body.len())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// A request with no headers and an empty body. An unparsable `uri`
    /// becomes `/`.
    pub fn new(method: Method, uri: &str) -> Self {
        Self {
            method,
            uri: uri.parse().unwrap_or_else(|_| Uri::from_static("/")),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            peer: None,
        }
    }

    /// Add a header (ignored when the name or value is invalid).
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            self.headers.append(n, v);
        }
        self
    }

    /// Set the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Set the socket peer.
    #[must_use]
    pub fn peer(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// The request without its body.
    pub fn head(&self) -> Head<'_> {
        Head {
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
            peer: self.peer,
        }
    }
}

/// The parts of a request `protect` needs: no body.
#[derive(Clone, Copy)]
pub struct Head<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The socket peer, when known.
    pub peer: Option<SocketAddr>,
}

impl Head<'_> {
    /// The client address: the socket peer, or, when the peer is one of
    /// `trusted_proxies`, the right-most untrusted hop of every
    /// `X-Forwarded-For` header line taken in order
    /// ([`crate::net::client_ip`]). `None` when the peer is unknown.
    ///
    /// This is the one rule for "who is the client": throttling, the
    /// anonymous idempotency scope and session metadata all use it, so they
    /// always agree, and an entry the client wrote itself (left of what the
    /// trusted proxies appended) never counts.
    pub fn client_ip(&self, trusted_proxies: &[crate::net::IpNet]) -> Option<std::net::IpAddr> {
        let peer = self.peer?.ip();
        let lines = self
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        Some(crate::net::client_ip_of_lines(peer, lines, trusted_proxies))
    }
}

impl fmt::Debug for Head<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Head")
            .field("method", self.method)
            .field("uri", &self.uri.path())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// The typed ids of the built-in routes (SPEC §6). Each is registered in
/// the route table as a [`RouteSpec`] ([`Api::routes`]); adapters mount
/// the table, and tests call a built-in by its id with [`Api::call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// `POST /register`
    Register,
    /// `POST /login`
    Login,
    /// `POST /refresh`
    Refresh,
    /// `POST /logout`
    Logout,
    /// `POST /logout-all`
    LogoutAll,
    /// `GET /me`
    Me,
    /// `PUT /me/identifier`
    ChangeIdentifier,
    /// `PUT /me/password`
    ChangePassword,
    /// `GET /sessions`
    ListSessions,
    /// `DELETE /sessions/{id}`
    RevokeSession,
    /// `POST /users/{userId}/roles`
    AssignRoles,
    /// `DELETE /users/{userId}/roles`
    RevokeRoles,
    /// `GET /keys`
    Keys,
}

impl Route {
    /// Every route.
    pub const ALL: [Route; 13] = [
        Route::Register,
        Route::Login,
        Route::Refresh,
        Route::Logout,
        Route::LogoutAll,
        Route::Me,
        Route::ChangeIdentifier,
        Route::ChangePassword,
        Route::ListSessions,
        Route::RevokeSession,
        Route::AssignRoles,
        Route::RevokeRoles,
        Route::Keys,
    ];

    /// The method.
    pub fn method(self) -> Method {
        match self {
            Self::Me | Self::ListSessions | Self::Keys => Method::GET,
            Self::ChangeIdentifier | Self::ChangePassword => Method::PUT,
            Self::RevokeSession | Self::RevokeRoles => Method::DELETE,
            _ => Method::POST,
        }
    }

    /// The path below the mount prefix, parameters as `{name}`.
    pub fn path(self) -> &'static str {
        match self {
            Self::Register => "/register",
            Self::Login => "/login",
            Self::Refresh => "/refresh",
            Self::Logout => "/logout",
            Self::LogoutAll => "/logout-all",
            Self::Me => "/me",
            Self::ChangeIdentifier => "/me/identifier",
            Self::ChangePassword => "/me/password",
            Self::ListSessions => "/sessions",
            Self::RevokeSession => "/sessions/{id}",
            Self::AssignRoles | Self::RevokeRoles => "/users/{userId}/roles",
            Self::Keys => "/keys",
        }
    }

    /// The name of the path parameter, if the route has one.
    pub fn param(self) -> Option<&'static str> {
        match self {
            Self::RevokeSession => Some("id"),
            Self::AssignRoles | Self::RevokeRoles => Some("userId"),
            _ => None,
        }
    }

    /// The name of the route: its OpenAPI `operationId` and
    /// [`RouteSpec::id`].
    pub fn id(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Login => "login",
            Self::Refresh => "refresh",
            Self::Logout => "logout",
            Self::LogoutAll => "logoutAll",
            Self::Me => "getMe",
            Self::ChangeIdentifier => "changeIdentifier",
            Self::ChangePassword => "changePassword",
            Self::ListSessions => "listSessions",
            Self::RevokeSession => "revokeSession",
            Self::AssignRoles => "assignRoles",
            Self::RevokeRoles => "revokeRoles",
            Self::Keys => "getKeys",
        }
    }
}

/// The built-in routes over one [`Sentri`], mounted under one prefix.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Api {
    sentri: Sentri,
    prefix: Arc<str>,
    idempotent_routes: bool,
    table: table::RouteTable,
}

impl Api {
    /// The routes of `sentri` (the built-in ones, then those of its
    /// plugins) mounted under `prefix` (e.g. `/auth`, or `""` at the root).
    /// The prefix is the default path of the refresh cookie.
    pub fn new(sentri: Sentri, prefix: &str) -> Self {
        let table = table::RouteTable::new(
            routes::builtin_routes(sentri.config())
                .into_iter()
                .chain(sentri.plugin_routes().cloned())
                .collect(),
        );
        Self {
            sentri,
            prefix: normalize_prefix(prefix).into(),
            idempotent_routes: true,
            table,
        }
    }

    /// The same API with `route` added to its table (after the built-in
    /// routes), mounted by the adapters like any built-in.
    ///
    /// # Errors
    /// `CONFIGURATION_ERROR` when a route of the table has the same id, or
    /// the same method and path.
    pub fn with_route(mut self, route: RouteSpec) -> Result<Self> {
        self.table = self.table.with(route)?;
        Ok(self)
    }

    /// The route table: the built-in routes, then the added ones.
    /// Adapters mount each [`RouteSpec::method`] + [`RouteSpec::path`]
    /// under their prefix and run it with [`Api::call_spec`].
    pub fn routes(&self) -> &[RouteSpec] {
        self.table.specs()
    }

    /// Match a method and a path below the mount prefix (exactly: a
    /// trailing slash is another path): the route and its path parameters.
    ///
    /// # Errors
    /// [`RouteMiss`]: an unknown path, or a known path with another method.
    pub fn match_route(
        &self,
        method: &Method,
        path: &str,
    ) -> std::result::Result<(&RouteSpec, PathParams), RouteMiss> {
        self.table.match_route(method, path)
    }

    /// The `Allow` header of a 405 at `path` (below the mount prefix): the
    /// methods of the routes with this path, comma-separated in table
    /// order; `None` when no route has this path.
    pub fn allow_header(&self, path: &str) -> Option<HeaderValue> {
        self.table.allow_header(path)
    }

    /// The same routes under another prefix.
    #[must_use]
    pub fn with_prefix(&self, prefix: &str) -> Self {
        Self {
            prefix: normalize_prefix(prefix).into(),
            ..self.clone()
        }
    }

    /// Whether register, the role routes and the identifier and password
    /// changes run under the idempotency layer (F-26; only requests with
    /// the key header are affected). Default `true`.
    #[must_use]
    pub fn idempotent_routes(mut self, on: bool) -> Self {
        self.idempotent_routes = on;
        self
    }

    /// The services.
    pub fn sentri(&self) -> &Sentri {
        &self.sentri
    }

    /// The mount prefix: `""` or `/…` without a trailing slash.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The largest body the routes accept.
    pub fn body_limit(&self) -> usize {
        self.sentri.config().body_limit()
    }
}

/// Check that the plugins' routes fit the table of the built-in routes
/// and of each other (at `SentriBuilder::build`).
pub(crate) fn check_plugin_routes(
    config: &crate::Config,
    routes: &[(&'static str, RouteSpec)],
) -> Result<()> {
    let mut table = table::RouteTable::new(routes::builtin_routes(config));
    for (plugin, spec) in routes {
        table = table.with(spec.clone()).map_err(|err| {
            crate::Error::with_message(
                crate::ErrorCode::ConfigurationError,
                format!("plugin {plugin}: {}", err.message()),
            )
        })?;
    }
    Ok(())
}

fn normalize_prefix(prefix: &str) -> String {
    let p = prefix.trim().trim_end_matches('/');
    if p.is_empty() {
        String::new()
    } else if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("/{p}")
    }
}

#[cfg(test)]
mod tests;
