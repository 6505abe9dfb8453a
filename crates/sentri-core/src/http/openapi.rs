//! The OpenAPI 3.1 document of a route table (SPEC §10, F-28).
//!
//! Every [`RouteSpec`] may carry an [`Operation`]: its summary, tag, request
//! body schema and example, success status and `data` schema and example,
//! the error codes it can answer, and links to other operations. The
//! built-in routes carry theirs (built from the configuration, so the
//! constraints are the ones the server enforces); an added route sets its
//! own with [`RouteSpec::operation`]. [`Api::openapi`] assembles the
//! document: paths from [`Api::routes`] under the mount prefix, each with
//! `operationId` = [`RouteSpec::id`], security from [`RouteAuth`] (or the
//! operation's [`Credentials`]), the idempotency header on idempotent
//! routes, path parameters from the template, and an error response per
//! status whose `code` is an `enum` of the codes the route can answer:
//! the operation's own, plus the ones its shape implies (every route:
//! `VALIDATION_ERROR` and `PAYLOAD_TOO_LARGE`, since the adapters check
//! `Content-Length` and the body limit first; an access token:
//! `UNAUTHORIZED`, `TOKEN_INVALID`, `TOKEN_EXPIRED`,
//! `SERVICE_UNAVAILABLE`; idempotent: `IDEMPOTENCY_IN_PROGRESS`,
//! `IDEMPOTENCY_KEY_REUSED`; always `INTERNAL_ERROR`).
//!
//! ```
//! use std::sync::Arc;
//! use http::{Method, StatusCode};
//! use sentri_core::http::openapi::{Operation, Server, object};
//! use sentri_core::http::{Api, RouteAuth, RouteSpec, envelope_response};
//! use sentri_core::{Config, Sentri, store::Stores};
//! use sentri_memory::MemoryStore;
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> sentri_core::Result<()> {
//! # let config = Config::builder().hs256("an HMAC secret of at least thirty-two bytes")
//! #     .valid_roles(["user", "admin"]).build()?;
//! # let sentri = Sentri::new(config, Stores::from_backend(Arc::new(MemoryStore::new()))).await?;
//! let whoami = RouteSpec::new("whoami", Method::GET, "/whoami", |cx| {
//!     Box::pin(async move { envelope_response(StatusCode::OK, "ok", Some(json!({ "userId": "…" }))) })
//! })
//! .auth(RouteAuth::Access)
//! .operation(
//!     Operation::new("The caller's user id", "accounts").response(200, "ok").data(
//!         object(&["userId"], json!({ "userId": { "type": "string" } })),
//!         json!({ "userId": "0190a3e2-7c41-7d2e-9b8a-3f1c2d4e5f60" }),
//!     ),
//! );
//! let api = Api::new(sentri, "/auth").with_route(whoami)?;
//! let doc = api.openapi(&[Server::new("https://auth.example.org")]);
//! assert_eq!(doc["paths"]["/auth/whoami"]["get"]["operationId"], "whoami");
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;

use http::Method;
use serde_json::{Map, Value, json};

use super::table::{RouteAuth, RouteSpec};
use super::{Api, Route, is_state_changing};
use crate::config::{Config, CookieTransport};
use crate::error::{Error, ErrorCode};

/// The OpenAPI version of the document.
pub const OPENAPI_VERSION: &str = "3.1.0";

/// One entry of the document's `servers`: where the API is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    url: Cow<'static, str>,
    description: Option<Cow<'static, str>>,
}

impl Server {
    /// A server at `url` (absolute, or relative to where the document is
    /// served, e.g. `/`).
    pub fn new(url: impl Into<Cow<'static, str>>) -> Self {
        Self {
            url: url.into(),
            description: None,
        }
    }

    /// A description of the server.
    #[must_use]
    pub fn description(mut self, text: impl Into<Cow<'static, str>>) -> Self {
        self.description = Some(text.into());
        self
    }

    fn to_json(&self) -> Value {
        let mut out = json!({ "url": self.url });
        if let Some(d) = &self.description {
            out["description"] = json!(d);
        }
        out
    }
}

/// Who may call an operation, when [`RouteAuth`] alone does not say it
/// (the route reads its credential itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Credentials {
    /// What the route's [`RouteAuth`] says (the default).
    #[default]
    Route,
    /// `X-Api-Key` when one is configured, else anyone.
    ApiKeyWhenConfigured,
    /// A refresh token in the body, or the refresh cookie.
    RefreshToken,
    /// A refresh token (body or cookie), else an access token.
    RefreshOrAccess,
}

/// A link from an operation's success response to another operation
/// (OpenAPI `links`): what of the response the next call uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    name: Cow<'static, str>,
    operation_id: Cow<'static, str>,
    description: Cow<'static, str>,
    request_body: Option<Value>,
}

impl Link {
    /// A link named `name` to the operation `operation_id`.
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        operation_id: impl Into<Cow<'static, str>>,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            name: name.into(),
            operation_id: operation_id.into(),
            description: description.into(),
            request_body: None,
        }
    }

    /// The request body of the linked call: a value whose strings may
    /// embed runtime expressions, e.g.
    /// `{"refreshToken": "{$response.body#/data/refreshToken}"}`.
    #[must_use]
    pub fn request_body(mut self, body: Value) -> Self {
        self.request_body = Some(body);
        self
    }

    fn to_json(&self) -> Value {
        let mut out = json!({
            "operationId": self.operation_id,
            "description": self.description,
        });
        if let Some(body) = &self.request_body {
            out["requestBody"] = body.clone();
        }
        out
    }
}

/// The success response of an operation.
#[derive(Debug, Clone, PartialEq)]
enum Success {
    /// The envelope, with a `data` schema and example (`None`: `null`).
    Envelope {
        status: u16,
        message: Cow<'static, str>,
        data: Option<(Value, Value)>,
    },
    /// A body that is not the envelope (e.g. JWKS).
    Plain {
        status: u16,
        schema: Value,
        example: Value,
    },
}

/// The OpenAPI description of one route: summary, tag, request body,
/// success response, the error codes it can answer and its links. Set on
/// a [`RouteSpec`] with [`RouteSpec::operation`]; rendered by
/// [`Api::openapi`].
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    summary: Cow<'static, str>,
    description: Option<Cow<'static, str>>,
    tag: Cow<'static, str>,
    credentials: Credentials,
    request: Option<(Value, Value)>,
    request_required: bool,
    success: Success,
    errors: Vec<ErrorCode>,
    links: Vec<Link>,
}

impl Operation {
    /// An operation with `summary`, under the tag `tag`, answering `200`
    /// with the envelope and `data: null` until [`Operation::response`]
    /// or [`Operation::data`] say otherwise.
    pub fn new(summary: impl Into<Cow<'static, str>>, tag: impl Into<Cow<'static, str>>) -> Self {
        Self {
            summary: summary.into(),
            description: None,
            tag: tag.into(),
            credentials: Credentials::Route,
            request: None,
            request_required: true,
            success: Success::Envelope {
                status: 200,
                message: "ok".into(),
                data: None,
            },
            errors: Vec::new(),
            links: Vec::new(),
        }
    }

    /// A longer description (Markdown).
    #[must_use]
    pub fn description(mut self, text: impl Into<Cow<'static, str>>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Who may call it, when the route reads its credential itself.
    #[must_use]
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// A required JSON request body: its schema and an example.
    #[must_use]
    pub fn request(mut self, schema: Value, example: Value) -> Self {
        self.request = Some((schema, example));
        self.request_required = true;
        self
    }

    /// An optional JSON request body (an empty body is an empty object).
    #[must_use]
    pub fn optional_request(mut self, schema: Value, example: Value) -> Self {
        self.request = Some((schema, example));
        self.request_required = false;
        self
    }

    /// The success status and the envelope's `message`.
    #[must_use]
    pub fn response(mut self, status: u16, message: impl Into<Cow<'static, str>>) -> Self {
        let data = match self.success {
            Success::Envelope { data, .. } => data,
            Success::Plain { .. } => None,
        };
        self.success = Success::Envelope {
            status,
            message: message.into(),
            data,
        };
        self
    }

    /// The schema of the success envelope's `data`, and an example.
    #[must_use]
    pub fn data(mut self, schema: Value, example: Value) -> Self {
        if let Success::Envelope { data, .. } = &mut self.success {
            *data = Some((schema, example));
        } else {
            self.success = Success::Envelope {
                status: 200,
                message: "ok".into(),
                data: Some((schema, example)),
            };
        }
        self
    }

    /// A success body that is not the envelope: its status, schema and an
    /// example.
    #[must_use]
    pub fn plain(mut self, status: u16, schema: Value, example: Value) -> Self {
        self.success = Success::Plain {
            status,
            schema,
            example,
        };
        self
    }

    /// Error codes the route answers itself (on top of those its shape
    /// implies, see the module documentation).
    #[must_use]
    pub fn errors(mut self, codes: impl IntoIterator<Item = ErrorCode>) -> Self {
        self.errors.extend(codes);
        self
    }

    /// A link from the success response to another operation.
    #[must_use]
    pub fn link(mut self, link: Link) -> Self {
        self.links.push(link);
        self
    }

    /// The summary.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// The tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Every error code the operation of `spec` can answer, in `config`:
    /// its own and those its shape implies, without duplicates, in status
    /// order.
    pub fn error_codes(&self, spec: &RouteSpec, config: &Config) -> Vec<ErrorCode> {
        self.codes(spec, config, Served::TABLE)
    }

    /// As [`Operation::error_codes`], for a route served as `served` says.
    fn codes(&self, spec: &RouteSpec, config: &Config, served: Served) -> Vec<ErrorCode> {
        let idempotent = served.layered(spec, config);
        let mut codes = Vec::new();
        // The adapters read every body up to the limit and check
        // `Content-Length` first, on every route: a malformed one is a
        // VALIDATION_ERROR, one over the limit PAYLOAD_TOO_LARGE.
        if served.by_adapter || self.request.is_some() {
            codes.extend([ErrorCode::ValidationError, ErrorCode::PayloadTooLarge]);
        }
        if spec.route_auth().needs_access() {
            codes.extend([
                ErrorCode::Unauthorized,
                ErrorCode::TokenInvalid,
                ErrorCode::TokenExpired,
                ErrorCode::ServiceUnavailable,
            ]);
            // An admin route refuses other users; with the access cookie
            // a state-changing request from a foreign origin is refused.
            let csrf = config.cookies().transport == CookieTransport::Both
                && is_state_changing(spec.method());
            if spec.route_auth() == RouteAuth::Admin || csrf {
                codes.push(ErrorCode::Forbidden);
            }
        }
        if idempotent {
            codes.extend([
                ErrorCode::ValidationError,
                ErrorCode::IdempotencyInProgress,
                ErrorCode::IdempotencyKeyReused,
                ErrorCode::ServiceUnavailable,
            ]);
        }
        codes.extend(self.errors.iter().cloned());
        codes.push(ErrorCode::InternalError);
        let mut out: Vec<ErrorCode> = Vec::new();
        for code in codes {
            if !out.iter().any(|c| c.as_str() == code.as_str()) {
                out.push(code);
            }
        }
        out.sort_by_key(ErrorCode::status);
        out
    }

    fn render(&self, spec: &RouteSpec, config: &Config, served: Served) -> Value {
        let idempotent = served.layered(spec, config);
        let mut out = Map::new();
        out.insert("operationId".into(), json!(spec.id()));
        out.insert("summary".into(), json!(self.summary));
        let mut description = self.description.as_deref().unwrap_or("").to_owned();
        if spec.route_auth() == RouteAuth::Admin {
            if !description.is_empty() {
                description.push_str("\n\n");
            }
            description.push_str(&format!("Requires the `{}` role.", config.admin_role()));
        }
        if !description.is_empty() {
            out.insert("description".into(), json!(description));
        }
        out.insert("tags".into(), json!([self.tag]));
        out.insert(
            "security".into(),
            security(self.credentials, spec.route_auth(), config),
        );
        let mut parameters: Vec<Value> = spec
            .params()
            .map(|name| {
                json!({
                    "name": name, "in": "path", "required": true,
                    "schema": { "type": "string", "minLength": 1 },
                })
            })
            .collect();
        if idempotent {
            parameters.push(schema_ref_to("parameters", "IdempotencyKey"));
        }
        if !parameters.is_empty() {
            out.insert("parameters".into(), Value::Array(parameters));
        }
        if let Some((schema, example)) = &self.request {
            out.insert(
                "requestBody".into(),
                json!({
                    "required": self.request_required,
                    "description": format!("a JSON object of at most {} bytes; unknown fields are refused", config.body_limit()),
                    "content": { "application/json": { "schema": schema, "example": example } },
                }),
            );
        }
        let (status, mut ok) = match &self.success {
            Success::Envelope {
                status,
                message,
                data,
            } => {
                let (schema, example) = data
                    .clone()
                    .unwrap_or((json!({ "type": "null" }), Value::Null));
                let body = json!({
                    "allOf": [
                        schema_ref("Envelope"),
                        { "type": "object", "properties": {
                            "statusCode": { "const": status },
                            "data": schema,
                        } },
                    ]
                });
                let example = json!({
                    "error": false, "statusCode": status, "message": message, "data": example,
                });
                (
                    *status,
                    json!({
                        "description": self.summary,
                        "content": { "application/json": { "schema": body, "example": example } },
                    }),
                )
            }
            Success::Plain {
                status,
                schema,
                example,
            } => (
                *status,
                json!({
                    "description": self.summary,
                    "content": { "application/json": { "schema": schema, "example": example } },
                }),
            ),
        };
        if idempotent {
            ok["headers"] =
                json!({ "X-Idempotent-Replayed": schema_ref_to("headers", "IdempotentReplayed") });
        }
        if !self.links.is_empty() {
            let links: Map<String, Value> = self
                .links
                .iter()
                .map(|l| (l.name.to_string(), l.to_json()))
                .collect();
            ok["links"] = Value::Object(links);
        }
        let mut responses = Map::new();
        responses.insert(status.to_string(), ok);
        let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
        for code in self.codes(spec, config, served) {
            by_status.entry(code.status()).or_default().push(code);
        }
        for (status, codes) in by_status {
            responses.insert(status.to_string(), error_response(status, &codes));
        }
        out.insert("responses".into(), Value::Object(responses));
        Value::Object(out)
    }
}

/// How a route is served, for what the document says of it.
#[derive(Debug, Clone, Copy)]
struct Served {
    /// By an adapter from the table (which checks `Content-Length` and the
    /// body limit first), not by a server's own handler.
    by_adapter: bool,
    /// Whether the idempotency layer runs on idempotent routes
    /// ([`Api::idempotent_routes`]).
    idempotency: bool,
}

impl Served {
    /// Whether the idempotency layer runs for `spec`: an idempotent route,
    /// served with the layer on, whose method is one the layer handles
    /// (`IdempotencyConfig::methods`; POST, PUT and PATCH by default).
    fn layered(self, spec: &RouteSpec, config: &Config) -> bool {
        self.idempotency
            && spec.is_idempotent()
            && (config.idempotency().methods.iter())
                .any(|m| m.eq_ignore_ascii_case(spec.method().as_str()))
    }
}

impl Served {
    const TABLE: Self = Self {
        by_adapter: true,
        idempotency: true,
    };
    const OUTSIDE: Self = Self {
        by_adapter: false,
        idempotency: false,
    };
}

/// The error response of one status: the error envelope with `code` one
/// of `codes`, and an example of the first.
fn error_response(status: u16, codes: &[ErrorCode]) -> Value {
    let names: Vec<&str> = codes.iter().map(ErrorCode::as_str).collect();
    let first = &codes[0];
    let message = Error::new(first.clone()).message().to_owned();
    let mut res = json!({
        "description": names.join(", "),
        "content": { "application/json": {
            "schema": { "allOf": [
                schema_ref("ErrorEnvelope"),
                { "type": "object", "properties": {
                    "statusCode": { "const": status },
                    "code": { "type": "string", "enum": names },
                } },
            ] },
            "example": {
                "error": true, "statusCode": status, "code": first.as_str(),
                "message": message, "data": null,
            },
        } },
    });
    if matches!(status, 429 | 503) {
        res["headers"] = json!({ "Retry-After": schema_ref_to("headers", "RetryAfter") });
    }
    res
}

/// `{"$ref": "#/components/schemas/<name>"}`.
pub fn schema_ref(name: &str) -> Value {
    schema_ref_to("schemas", name)
}

fn schema_ref_to(kind: &str, name: &str) -> Value {
    json!({ "$ref": format!("#/components/{kind}/{name}") })
}

/// A JSON object schema with `required` fields and `properties`, and no
/// other field (the body parser refuses unknown fields).
pub fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties, "additionalProperties": false })
}

fn security(credentials: Credentials, auth: RouteAuth, config: &Config) -> Value {
    let cookies = config.cookies().transport;
    let mut access = vec![json!({ "bearerAuth": [] })];
    if cookies == CookieTransport::Both {
        access.push(json!({ "accessCookie": [] }));
    }
    match credentials {
        Credentials::ApiKeyWhenConfigured if config.has_api_key() => json!([{ "apiKey": [] }]),
        Credentials::ApiKeyWhenConfigured => json!([]),
        Credentials::RefreshToken if cookies == CookieTransport::Off => json!([]),
        Credentials::RefreshToken => json!([{}, { "refreshCookie": [] }]),
        Credentials::RefreshOrAccess => {
            let mut options = vec![json!({})];
            options.extend(access);
            if cookies != CookieTransport::Off {
                options.push(json!({ "refreshCookie": [] }));
            }
            Value::Array(options)
        }
        Credentials::Route if auth.needs_access() => Value::Array(access),
        Credentials::Route => json!([]),
    }
}

/// The description of a route added without an [`Operation`]: its id as
/// summary, the envelope with any `data`.
fn undocumented(spec: &RouteSpec) -> Operation {
    Operation::new(spec.id().to_owned(), "other").data(json!({}), json!({}))
}

/// Tag descriptions of the built-in routes.
const TAGS: [(&str, &str); 5] = [
    (
        "accounts",
        "Registration, the caller's account, identifier and password",
    ),
    (
        "sessions",
        "Login, refresh, logout and the caller's sessions",
    ),
    ("roles", "Role administration"),
    ("keys", "The published signing keys"),
    ("server", "The server's own routes"),
];

impl Api {
    /// The OpenAPI 3.1 document of the route table, as the configuration
    /// makes the routes behave: every route of [`Api::routes`] under the
    /// mount prefix, with `servers`.
    pub fn openapi(&self, servers: &[Server]) -> Value {
        let config = self.sentri.config();
        let served = Served {
            by_adapter: true,
            idempotency: self.idempotent_routes,
        };
        let mut doc = skeleton(config, servers);
        for spec in self.routes() {
            let fallback;
            let op = match spec.openapi_operation() {
                Some(op) => op,
                None => {
                    fallback = undocumented(spec);
                    &fallback
                }
            };
            let path = format!("{}{}", self.prefix, spec.path());
            add_operation(
                &mut doc,
                spec.method(),
                &path,
                op.render(spec, config, served),
            );
        }
        let mut tags: Vec<&str> = Vec::new();
        for spec in self.routes() {
            let tag = spec.openapi_operation().map_or("other", Operation::tag);
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        doc["tags"] = tags_json(&tags);
        doc
    }
}

/// Add the operation of a route that is not in the table (e.g. a server's
/// own `GET /healthz`), public and not idempotent, at `path` (the whole
/// path, no prefix added), as `config` makes it behave. Its tag joins the
/// document's tags.
pub fn add_route(
    doc: &mut Value,
    config: &Config,
    method: &Method,
    path: &str,
    id: &str,
    op: &Operation,
) {
    let spec = RouteSpec::new(id.to_owned(), method.clone(), path.to_owned(), |_| {
        Box::pin(async { super::not_found_response() })
    });
    add_operation(doc, method, path, op.render(&spec, config, Served::OUTSIDE));
    let mut tags: Vec<String> = doc["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !tags.iter().any(|t| t == op.tag()) {
        tags.push(op.tag().to_owned());
    }
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    doc["tags"] = tags_json(&refs);
}

fn tags_json(tags: &[&str]) -> Value {
    Value::Array(
        tags.iter()
            .map(|name| match TAGS.iter().find(|(n, _)| n == name) {
                Some((_, d)) => json!({ "name": name, "description": d }),
                None => json!({ "name": name }),
            })
            .collect(),
    )
}

fn add_operation(doc: &mut Value, method: &Method, path: &str, op: Value) {
    let item = &mut doc["paths"][path];
    if item.is_null() {
        *item = json!({});
    }
    item[method.as_str().to_ascii_lowercase()] = op;
}

/// `(method, path)` of every operation a document describes, in its
/// spelling (`post`, `/auth/users/{userId}/roles`), sorted.
pub fn operations(document: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(paths) = document["paths"].as_object() {
        for (path, item) in paths {
            if let Some(item) = item.as_object() {
                for method in item.keys() {
                    out.push((method.clone(), path.clone()));
                }
            }
        }
    }
    out.sort();
    out
}

/// The security schemes the configuration uses: the Bearer token always,
/// the API key when one is configured, the cookies when they are on.
fn security_schemes(config: &Config) -> Value {
    let cookies = config.cookies();
    let mut schemes = json!({
        "bearerAuth": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "the access token from login or refresh" },
    });
    if config.has_api_key() {
        schemes["apiKey"] = json!({ "type": "apiKey", "in": "header", "name": "X-Api-Key", "description": "the configured API key, required by register" });
    }
    if cookies.transport == CookieTransport::Both {
        schemes["accessCookie"] = json!({ "type": "apiKey", "in": "cookie", "name": cookies.access_cookie_name(), "description": "the access cookie (cookie transport `both`)" });
    }
    if cookies.transport != CookieTransport::Off {
        schemes["refreshCookie"] = json!({ "type": "apiKey", "in": "cookie", "name": cookies.refresh_cookie_name(), "description": "the refresh cookie (cookie transport `refresh` or `both`)" });
    }
    schemes
}

/// The local `$ref`s of `document` (`#/…`) that point at nothing, as
/// written; empty for a well-formed document.
pub fn dangling_refs(document: &Value) -> Vec<String> {
    fn walk(value: &Value, doc: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref")
                    && let Some(pointer) = r.strip_prefix('#')
                    && doc.pointer(pointer).is_none()
                {
                    out.push(r.clone());
                }
                map.values().for_each(|v| walk(v, doc, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, doc, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(document, document, &mut out);
    out
}

fn skeleton(config: &Config, servers: &[Server]) -> Value {
    let idempotency = config.idempotency();
    let servers: Vec<Value> = servers.iter().map(Server::to_json).collect();
    json!({
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "sentri",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Authentication: password accounts, signed access tokens, rotating refresh sessions, roles. Every body except the JWKS is the sentri envelope.",
            "license": { "name": "MIT OR Apache-2.0", "identifier": "MIT OR Apache-2.0" },
        },
        "servers": servers,
        "tags": [],
        "paths": {},
        "components": {
            "securitySchemes": security_schemes(config),
            "parameters": {
                "IdempotencyKey": {
                    "name": idempotency.header, "in": "header", "required": false,
                    "description": format!("Replays the first 2xx response for {} s to the same caller.", idempotency.ttl.as_secs()),
                    "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$" },
                },
            },
            "headers": {
                "IdempotentReplayed": { "description": "`true` on a replayed response", "schema": { "type": "string", "const": "true" } },
                "RetryAfter": { "description": "seconds to wait before trying again", "schema": { "type": "integer", "minimum": 0 } },
            },
            "schemas": {
                "Envelope": object(&["error", "statusCode", "message", "data"], json!({
                    "error": { "const": false },
                    "statusCode": { "type": "integer" },
                    "message": { "type": "string" },
                    "data": {},
                })),
                "ErrorEnvelope": object(&["error", "statusCode", "code", "message", "data"], json!({
                    "error": { "const": true },
                    "statusCode": { "type": "integer" },
                    "code": { "type": "string" },
                    "message": { "type": "string" },
                    "data": { "type": "null" },
                })),
                "User": object(&["id", "identifier", "roles", "name", "emailVerifiedAt", "lastLoginAt", "createdAt", "updatedAt"], json!({
                    "id": { "type": "string", "format": "uuid" },
                    "identifier": { "type": "string" },
                    "roles": { "type": "array", "items": { "type": "string" } },
                    "name": { "type": ["string", "null"] },
                    "emailVerifiedAt": { "type": ["string", "null"], "format": "date-time" },
                    "lastLoginAt": { "type": ["string", "null"], "format": "date-time" },
                    "createdAt": { "type": "string", "format": "date-time" },
                    "updatedAt": { "type": "string", "format": "date-time" },
                })),
                "SessionInfo": object(&["id", "userId", "userAgent", "ip", "createdAt", "lastActiveAt", "expiresAt", "current"], json!({
                    "id": { "type": "string", "format": "uuid" },
                    "userId": { "type": "string", "format": "uuid" },
                    "userAgent": { "type": ["string", "null"] },
                    "ip": { "type": ["string", "null"] },
                    "createdAt": { "type": "string", "format": "date-time" },
                    "lastActiveAt": { "type": "string", "format": "date-time" },
                    "expiresAt": { "type": "string", "format": "date-time" },
                    "current": { "type": "boolean" },
                })),
                "Jwks": {
                    "type": "object", "required": ["keys"],
                    "properties": { "keys": { "type": "array", "items": { "type": "object", "required": ["kty"], "properties": {
                        "kty": { "type": "string" }, "kid": { "type": "string" }, "alg": { "type": "string" }, "use": { "type": "string" },
                        "crv": { "type": "string" }, "x": { "type": "string" }, "y": { "type": "string" },
                        "n": { "type": "string" }, "e": { "type": "string" },
                    } } } },
                },
            },
        },
    })
}

/// The operations of the built-in routes, as `config` makes them behave.
pub(crate) fn builtin_operation(route: Route, config: &Config) -> Operation {
    builtin::operation(route, config)
}

mod builtin;
