//! The OpenAPI 3.1 document of the server (F-28), `GET /openapi.json`.
//!
//! The paths are generated from the routes the server really serves: every
//! [`Route`] of `sentri_core::http` (the table `sentri-axum` registers)
//! under `/auth`, and every [`ServerRoute`]. Each route's method, auth,
//! parameters, request body and response shapes come from `operation()`; a
//! route without a description fails the `every_served_route_is_documented`
//! test, so adding a route without documenting it fails CI. The document
//! follows the running configuration: whether `/register` needs
//! `X-Api-Key`, whether refresh tokens travel in cookies, the idempotency
//! header's name.

use sentri_core::Config;
use sentri_core::config::CookieTransport;
use sentri_core::http::Route;
use serde_json::{Map, Value, json};

use crate::http::{AUTH_PREFIX, ServerRoute};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Anyone.
    Public,
    /// `X-Api-Key` when one is configured.
    ApiKey,
    /// A refresh token in the body or the refresh cookie.
    RefreshToken,
    /// A refresh token (body or cookie), else an access token.
    RefreshOrAccess,
    /// An access token (Bearer header, or the access cookie).
    Access,
    /// An access token of a user holding the admin role.
    Admin,
}

/// What the document says about one operation.
struct Operation {
    summary: &'static str,
    tag: &'static str,
    auth: Auth,
    request: Option<Value>,
    status: u16,
    /// The `data` of the success envelope (`None`: `null`), or the whole
    /// body when `plain`.
    data: Option<Value>,
    plain: bool,
    errors: &'static [u16],
    idempotent: bool,
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties, "additionalProperties": false })
}

fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

/// The `data` of a login that needs a second step (a second factor): no
/// tokens, no cookies; the client completes the login with the challenge.
fn second_step() -> Value {
    let mut schema = object(
        &["mfaRequired", "challenge", "methods", "challengeExpiresAt"],
        json!({
            "mfaRequired": { "const": true },
            "challenge": string("a short-lived token naming this login attempt, sent back with the second factor"),
            "methods": {
                "type": "array",
                "items": { "type": "string", "examples": ["otp"] },
                "minItems": 1,
                "description": "the second steps on offer (`amr` values)",
            },
            "challengeExpiresAt": { "type": "string", "format": "date-time" },
        }),
    );
    schema["description"] = json!("a second authentication step is required");
    schema
}

/// The documentation of an auth route; `None` for a route this server
/// version does not know (the test fails then).
fn operation(route: Route, config: &Config) -> Option<Operation> {
    let tokens = || {
        let mut required = vec!["accessToken", "accessExpiresAt", "refreshExpiresAt", "user"];
        let mut props = json!({
            "accessToken": string("the access token (JWT), for `Authorization: Bearer`"),
            "accessExpiresAt": { "type": "string", "format": "date-time" },
            "refreshExpiresAt": { "type": "string", "format": "date-time" },
            "user": schema_ref("User"),
        });
        if config.cookies().transport == CookieTransport::Off {
            required.push("refreshToken");
            props["refreshToken"] = string("the refresh token (opaque, one use)");
        }
        object(&required, props)
    };
    let user = || object(&["user"], json!({ "user": schema_ref("User") }));
    let roles = || {
        object(
            &["roles"],
            json!({ "roles": { "type": "array", "items": { "type": "string" }, "minItems": 1 } }),
        )
    };
    let op = match route {
        Route::Register => Operation {
            summary: "Create an account (no tokens are issued)",
            tag: "accounts",
            auth: Auth::ApiKey,
            request: Some(object(
                &["identifier", "password"],
                json!({
                    "identifier": { "type": "string", "maxLength": 254, "description": "email, username, …; unique case-insensitively" },
                    "password": { "type": "string", "format": "password", "minLength": 8 },
                    "roles": { "type": "array", "items": { "type": "string" }, "description": "default: the default role; other roles need X-Api-Key" },
                    "name": { "type": "string", "maxLength": 100 },
                }),
            )),
            status: 201,
            data: Some(user()),
            plain: false,
            errors: &[400, 401, 403, 409, 413, 422, 503],
            idempotent: true,
        },
        Route::Login => Operation {
            summary: "Log in: a new session and a token pair, or the second step it needs",
            tag: "sessions",
            auth: Auth::Public,
            request: Some(object(
                &["identifier", "password"],
                json!({
                    "identifier": { "type": "string" },
                    "password": { "type": "string", "format": "password" },
                }),
            )),
            status: 200,
            data: Some(json!({ "oneOf": [tokens(), second_step()] })),
            plain: false,
            errors: &[400, 401, 413, 429, 503],
            idempotent: false,
        },
        Route::Refresh => Operation {
            summary: "Rotate the refresh token: a new pair; the presented token is spent",
            tag: "sessions",
            auth: Auth::RefreshToken,
            request: Some(object(
                &[],
                json!({ "refreshToken": string("required unless the refresh cookie is sent") }),
            )),
            status: 200,
            data: Some(tokens()),
            plain: false,
            errors: &[400, 401, 403, 503],
            idempotent: false,
        },
        Route::Logout => Operation {
            summary: "End one session (by refresh token, else the access token's); clears cookies",
            tag: "sessions",
            auth: Auth::RefreshOrAccess,
            request: Some(object(&[], json!({ "refreshToken": { "type": "string" } }))),
            status: 200,
            data: None,
            plain: false,
            errors: &[400, 401, 403, 503],
            idempotent: false,
        },
        Route::LogoutAll => Operation {
            summary: "End every session of the caller; clears cookies",
            tag: "sessions",
            auth: Auth::Access,
            request: None,
            status: 200,
            data: None,
            plain: false,
            errors: &[401, 403, 503],
            idempotent: false,
        },
        Route::Me => Operation {
            summary: "The caller",
            tag: "accounts",
            auth: Auth::Access,
            request: None,
            status: 200,
            data: Some(user()),
            plain: false,
            errors: &[401, 503],
            idempotent: false,
        },
        Route::ChangeIdentifier => Operation {
            summary: "Change the caller's identifier (needs the current password); the email verification is cleared and the caller's other sessions are revoked",
            tag: "accounts",
            auth: Auth::Access,
            request: Some(object(
                &["newIdentifier", "currentPassword"],
                json!({
                    "newIdentifier": { "type": "string", "maxLength": 254 },
                    "currentPassword": { "type": "string", "format": "password" },
                }),
            )),
            status: 200,
            data: Some(user()),
            plain: false,
            errors: &[400, 401, 403, 409, 413, 422, 503],
            idempotent: true,
        },
        Route::ChangePassword => Operation {
            summary: "Change the caller's password; every session is revoked",
            tag: "accounts",
            auth: Auth::Access,
            request: Some(object(
                &["currentPassword", "newPassword"],
                json!({
                    "currentPassword": { "type": "string", "format": "password" },
                    "newPassword": { "type": "string", "format": "password", "minLength": 8 },
                }),
            )),
            status: 200,
            data: None,
            plain: false,
            errors: &[400, 401, 403, 409, 413, 422, 503],
            idempotent: true,
        },
        Route::ListSessions => Operation {
            summary: "The caller's sessions",
            tag: "sessions",
            auth: Auth::Access,
            request: None,
            status: 200,
            data: Some(object(
                &["sessions"],
                json!({ "sessions": { "type": "array", "items": schema_ref("SessionInfo") } }),
            )),
            plain: false,
            errors: &[401, 503],
            idempotent: false,
        },
        Route::RevokeSession => Operation {
            summary: "Revoke one of the caller's sessions",
            tag: "sessions",
            auth: Auth::Access,
            request: None,
            status: 200,
            data: None,
            plain: false,
            errors: &[400, 401, 403, 404, 503],
            idempotent: false,
        },
        Route::AssignRoles => Operation {
            summary: "Add roles to a user (kept: the existing ones)",
            tag: "roles",
            auth: Auth::Admin,
            request: Some(roles()),
            status: 200,
            data: Some(user()),
            plain: false,
            errors: &[400, 401, 403, 404, 409, 413, 422, 503],
            idempotent: true,
        },
        Route::RevokeRoles => Operation {
            summary: "Remove roles from a user",
            tag: "roles",
            auth: Auth::Admin,
            request: Some(roles()),
            status: 200,
            data: Some(user()),
            plain: false,
            errors: &[400, 401, 403, 404, 413, 503],
            idempotent: false,
        },
        Route::Keys => Operation {
            summary: "The published signing keys (JWKS, RFC 7517); 404 with HMAC signing",
            tag: "keys",
            auth: Auth::Public,
            request: None,
            status: 200,
            data: Some(schema_ref("Jwks")),
            plain: true,
            errors: &[404],
            idempotent: false,
        },
        _ => return None,
    };
    Some(op)
}

/// The documentation of a server route.
fn server_operation(route: ServerRoute) -> Operation {
    match route {
        ServerRoute::Healthz => Operation {
            summary: "Liveness: the process is up",
            tag: "server",
            auth: Auth::Public,
            request: None,
            status: 200,
            data: Some(object(&["status"], json!({ "status": { "const": "up" } }))),
            plain: false,
            errors: &[],
            idempotent: false,
        },
        ServerRoute::Readyz => Operation {
            summary: "Readiness: the database answers",
            tag: "server",
            auth: Auth::Public,
            request: None,
            status: 200,
            data: Some(object(
                &["database"],
                json!({ "database": { "const": "up" } }),
            )),
            plain: false,
            errors: &[503],
            idempotent: false,
        },
        ServerRoute::OpenApi => Operation {
            summary: "This document",
            tag: "server",
            auth: Auth::Public,
            request: None,
            status: 200,
            data: Some(json!({ "type": "object", "description": "an OpenAPI 3.1 document" })),
            plain: true,
            errors: &[],
            idempotent: false,
        },
    }
}

fn security(auth: Auth, config: &Config) -> Value {
    let cookies = config.cookies().transport;
    let mut access = vec![json!({ "bearerAuth": [] })];
    if cookies == CookieTransport::Both {
        access.push(json!({ "accessCookie": [] }));
    }
    match auth {
        Auth::Public => json!([]),
        Auth::ApiKey if config.has_api_key() => json!([{ "apiKey": [] }]),
        Auth::ApiKey => json!([]),
        Auth::RefreshToken if cookies == CookieTransport::Off => json!([]),
        Auth::RefreshToken => json!([{}, { "refreshCookie": [] }]),
        Auth::RefreshOrAccess => {
            let mut options = vec![json!({})];
            options.extend(access);
            if cookies != CookieTransport::Off {
                options.push(json!({ "refreshCookie": [] }));
            }
            Value::Array(options)
        }
        Auth::Access | Auth::Admin => Value::Array(access),
    }
}

fn render(op: &Operation, param: Option<&str>, config: &Config) -> Value {
    let mut out = Map::new();
    out.insert("summary".into(), json!(op.summary));
    out.insert("tags".into(), json!([op.tag]));
    out.insert("security".into(), security(op.auth, config));
    if op.auth == Auth::Admin {
        out.insert(
            "description".into(),
            json!(format!("Requires the `{}` role.", config.admin_role())),
        );
    }
    let mut parameters = Vec::new();
    if let Some(name) = param {
        parameters.push(json!({
            "name": name, "in": "path", "required": true,
            "schema": { "type": "string", "format": "uuid" },
        }));
    }
    if op.idempotent {
        parameters.push(json!({ "$ref": "#/components/parameters/IdempotencyKey" }));
    }
    if !parameters.is_empty() {
        out.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(schema) = &op.request {
        out.insert(
            "requestBody".into(),
            json!({
                "required": !matches!(op.auth, Auth::RefreshToken | Auth::RefreshOrAccess),
                "content": { "application/json": { "schema": schema } },
            }),
        );
    }
    let body = if op.plain {
        op.data.clone().unwrap_or(Value::Null)
    } else {
        json!({
            "allOf": [
                schema_ref("Envelope"),
                { "type": "object", "properties": { "data": op.data.clone().unwrap_or(json!({ "type": "null" })) } },
            ]
        })
    };
    let mut ok = json!({
        "description": op.summary,
        "content": { "application/json": { "schema": body } },
    });
    if op.idempotent {
        ok["headers"] = json!({ "X-Idempotent-Replayed": { "$ref": "#/components/headers/IdempotentReplayed" } });
    }
    let mut responses = Map::new();
    responses.insert(op.status.to_string(), ok);
    for status in op.errors {
        let name = if *status == 429 {
            "RateLimited"
        } else {
            "Error"
        };
        responses.insert(
            status.to_string(),
            json!({ "$ref": format!("#/components/responses/{name}") }),
        );
    }
    out.insert("responses".into(), Value::Object(responses));
    Value::Object(out)
}

/// `(method, path)` of every operation the document describes, in the
/// document's spelling (`post`, `/auth/users/{userId}/roles`).
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

/// `(method, path)` of every route the server serves, in OpenAPI spelling.
pub fn served_routes() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Route::ALL
        .iter()
        .map(|r| {
            (
                r.method().as_str().to_ascii_lowercase(),
                format!("{AUTH_PREFIX}{}", r.path()),
            )
        })
        .chain(ServerRoute::ALL.iter().map(|r| {
            (
                r.method().as_str().to_ascii_lowercase(),
                r.path().to_owned(),
            )
        }))
        .collect();
    out.sort();
    out
}

/// The OpenAPI 3.1 document of every route the server serves, as the
/// configuration `config` makes them behave.
pub fn document(config: &Config) -> Value {
    let mut paths = Map::new();
    let mut add = |method: &str, path: String, op: Value| {
        let item = paths.entry(path).or_insert_with(|| json!({}));
        item[method.to_ascii_lowercase()] = op;
    };
    for route in Route::ALL {
        if let Some(op) = operation(route, config) {
            add(
                route.method().as_str(),
                format!("{AUTH_PREFIX}{}", route.path()),
                render(&op, route.param(), config),
            );
        }
    }
    for route in ServerRoute::ALL {
        add(
            route.method().as_str(),
            route.path().to_owned(),
            render(&server_operation(route), None, config),
        );
    }
    let idempotency = config.idempotency();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "sentri-server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Authentication server: password accounts, signed access tokens, rotating refresh sessions, roles. Every body except /auth/keys and /openapi.json is the sentri envelope.",
            "license": { "name": "MIT OR Apache-2.0", "identifier": "MIT OR Apache-2.0" },
        },
        "tags": [
            { "name": "accounts" }, { "name": "sessions" }, { "name": "roles" },
            { "name": "keys" }, { "name": "server" },
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "the access token from /auth/login or /auth/refresh" },
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-Api-Key", "description": "SENTRI_API_KEY, required by /auth/register when set" },
                "accessCookie": { "type": "apiKey", "in": "cookie", "name": config.cookies().access_name, "description": "with SENTRI_COOKIES=both" },
                "refreshCookie": { "type": "apiKey", "in": "cookie", "name": config.cookies().refresh_name, "description": "with SENTRI_COOKIES=refresh or both" },
            },
            "parameters": {
                "IdempotencyKey": {
                    "name": idempotency.header, "in": "header", "required": false,
                    "description": format!("Replays the first 2xx response for {} s to the same caller; the key is echoed as X-Request-Id.", idempotency.ttl.as_secs()),
                    "schema": { "type": "string", "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$" },
                },
            },
            "headers": {
                "IdempotentReplayed": { "description": "`true` on a replayed response", "schema": { "type": "string", "const": "true" } },
            },
            "responses": {
                "Error": {
                    "description": "an error envelope",
                    "content": { "application/json": { "schema": schema_ref("ErrorEnvelope") } },
                },
                "RateLimited": {
                    "description": "RATE_LIMITED: too many failed logins",
                    "headers": { "Retry-After": { "description": "seconds", "schema": { "type": "integer" } } },
                    "content": { "application/json": { "schema": schema_ref("ErrorEnvelope") } },
                },
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
                    "code": { "type": "string", "examples": ["INVALID_CREDENTIALS", "TOKEN_EXPIRED", "VALIDATION_ERROR"] },
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
                    } } } },
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cookies: CookieTransport, api_key: bool) -> Config {
        let mut b = Config::builder().valid_roles(["user", "admin"]).cookies(
            sentri_core::config::CookieConfig {
                transport: cookies,
                ..Default::default()
            },
        );
        if api_key {
            b = b.api_key("an-api-key-of-some-length");
        }
        b.build().unwrap()
    }

    #[test]
    fn every_served_route_is_documented() {
        let config = config(CookieTransport::Off, false);
        for route in Route::ALL {
            assert!(
                operation(route, &config).is_some(),
                "{} {} is served but not documented in openapi.rs",
                route.method(),
                route.path()
            );
        }
        let doc = document(&config);
        assert_eq!(operations(&doc), served_routes());
        assert_eq!(
            served_routes().len(),
            Route::ALL.len() + ServerRoute::ALL.len()
        );
    }

    #[test]
    fn document_is_openapi_3_1_with_resolvable_refs() {
        let doc = document(&config(CookieTransport::Both, true));
        assert_eq!(doc["openapi"], "3.1.0");
        let text = serde_json::to_string(&doc).unwrap();
        for part in text.split("\"$ref\":\"#/").skip(1) {
            let pointer = part.split('"').next().unwrap();
            assert!(
                doc.pointer(&format!("/{pointer}")).is_some(),
                "dangling $ref #/{pointer}"
            );
        }
        for (method, path) in operations(&doc) {
            let op = &doc["paths"][&path][&method];
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            assert!(op["security"].is_array(), "{method} {path}");
            let params = path.matches('{').count();
            let declared = op["parameters"]
                .as_array()
                .map_or(0, |p| p.iter().filter(|p| p["in"] == "path").count());
            assert_eq!(params, declared, "{method} {path}");
        }
    }

    #[test]
    fn document_follows_the_configuration() {
        let off = document(&config(CookieTransport::Off, false));
        let login = "/auth/login";
        let required = |doc: &Value| {
            doc["paths"][login]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
                ["allOf"][1]["properties"]["data"]["oneOf"][0]["required"]
                .clone()
        };
        assert!(
            required(&off)
                .as_array()
                .unwrap()
                .contains(&json!("refreshToken"))
        );
        assert_eq!(
            off["paths"]["/auth/register"]["post"]["security"],
            json!([])
        );
        let both = document(&config(CookieTransport::Both, true));
        assert!(
            !required(&both)
                .as_array()
                .unwrap()
                .contains(&json!("refreshToken"))
        );
        assert_eq!(
            both["paths"]["/auth/register"]["post"]["security"],
            json!([{ "apiKey": [] }])
        );
        assert!(
            both["paths"]["/auth/me"]["get"]["security"]
                .as_array()
                .unwrap()
                .contains(&json!({ "accessCookie": [] }))
        );
    }
}
