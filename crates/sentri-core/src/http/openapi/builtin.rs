//! The OpenAPI operations of the built-in routes (SPEC §6), next to what
//! the routes enforce: the constraints come from the configuration and the
//! limits the services apply (an identifier is 1 to
//! [`MAX_IDENTIFIER_CHARS`] characters after trimming, a new password
//! follows the password policy, a name is at most [`MAX_NAME_CHARS`]
//! characters, at most 64 roles of `valid_roles`).

use serde_json::{Value, json};

use super::{Credentials, Link, Operation, object, schema_ref};
use crate::config::{Config, CookieTransport};
use crate::error::ErrorCode;
use crate::http::Route;
use crate::identifier::MAX_IDENTIFIER_CHARS;
use crate::service::{MAX_LOGIN_PASSWORD_BYTES, MAX_NAME_CHARS};

/// The most roles one request may name.
const MAX_ROLES: usize = 64;

const USER_ID: &str = "0190a3e2-7c41-7d2e-9b8a-3f1c2d4e5f60";
const SESSION_ID: &str = "0190a3e2-8d52-7a1b-8c3d-4e5f60718293";
const NOW: &str = "2026-01-15T09:30:00Z";
const LATER: &str = "2026-01-15T09:45:00Z";
const MUCH_LATER: &str = "2026-02-14T09:30:00Z";
const ACCESS_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiIwMTkwYTNlMi03YzQxLTdkMmUtOWI4YS0zZjFjMmQ0ZTVmNjAifQ.c2lnbmF0dXJl";
const REFRESH_TOKEN: &str = "rt_3q2-7wEXAMPLE-refresh-token";

/// An identifier as the services accept it: 1 to 254 characters after
/// trimming (at least one that is not white space).
fn identifier(description: &str) -> Value {
    json!({
        "type": "string", "minLength": 1, "maxLength": MAX_IDENTIFIER_CHARS, "pattern": "\\S",
        "description": format!("{description}; trimmed and NFKC-normalised, 1 to {MAX_IDENTIFIER_CHARS} characters without control characters, unique case-insensitively"),
    })
}

/// A password as a login (or a current-password check) accepts it.
fn current_password() -> Value {
    json!({
        "type": "string", "format": "password", "minLength": 1, "maxLength": MAX_LOGIN_PASSWORD_BYTES,
        "description": format!("at most {MAX_LOGIN_PASSWORD_BYTES} bytes of UTF-8"),
    })
}

/// A new password as the password policy accepts it.
fn new_password(config: &Config) -> Value {
    let policy = config.password_policy();
    let (min, max) = (
        policy.new_password_min_chars(),
        policy.new_password_max_bytes(),
    );
    json!({
        "type": "string", "format": "password", "minLength": min, "maxLength": max,
        "description": format!("at least {min} characters and at most {max} bytes of UTF-8"),
    })
}

fn roles(config: &Config, min_items: usize) -> Value {
    let valid: Vec<&String> = config.valid_roles().iter().collect();
    json!({
        "type": "array", "minItems": min_items, "maxItems": MAX_ROLES,
        "items": { "type": "string", "enum": valid },
    })
}

fn user_example(identifier: &str, roles: &[&str]) -> Value {
    json!({
        "id": USER_ID, "identifier": identifier, "roles": roles, "name": null,
        "emailVerifiedAt": null, "lastLoginAt": NOW, "createdAt": NOW, "updatedAt": NOW,
    })
}

fn user_data() -> Value {
    object(&["user"], json!({ "user": schema_ref("User") }))
}

fn refresh_in_body(config: &Config) -> bool {
    config.cookies().transport == CookieTransport::Off
}

/// The `data` of login and refresh: the tokens and the user.
fn tokens(config: &Config) -> (Value, Value) {
    let mut required = vec!["accessToken", "accessExpiresAt", "refreshExpiresAt", "user"];
    let mut props = json!({
        "accessToken": { "type": "string", "description": "the access token (JWT), for `Authorization: Bearer`" },
        "accessExpiresAt": { "type": "string", "format": "date-time" },
        "refreshExpiresAt": { "type": "string", "format": "date-time" },
        "user": schema_ref("User"),
    });
    let mut example = json!({
        "accessToken": ACCESS_TOKEN, "accessExpiresAt": LATER, "refreshExpiresAt": MUCH_LATER,
        "user": user_example("alice@example.com", &[config.default_role()]),
    });
    if refresh_in_body(config) {
        required.push("refreshToken");
        props["refreshToken"] =
            json!({ "type": "string", "description": "the refresh token (opaque, one use)" });
        example["refreshToken"] = json!(REFRESH_TOKEN);
    }
    (object(&required, props), example)
}

/// The `data` of a login that needs a second step: no tokens, no cookies.
fn second_step() -> Value {
    let mut schema = object(
        &["mfaRequired", "challenge", "methods", "challengeExpiresAt"],
        json!({
            "mfaRequired": { "const": true },
            "challenge": { "type": "string", "description": "a short-lived token naming this login attempt, sent back with the second factor" },
            "methods": {
                "type": "array", "items": { "type": "string" }, "minItems": 1,
                "description": "the second steps on offer (`amr` values, e.g. `otp`)",
            },
            "challengeExpiresAt": { "type": "string", "format": "date-time" },
        }),
    );
    schema["description"] = json!("a second authentication step is required");
    schema
}

fn refresh_body() -> (Value, Value) {
    (
        object(
            &[],
            json!({ "refreshToken": { "type": ["string", "null"], "description": "required unless the refresh cookie is sent" } }),
        ),
        json!({ "refreshToken": REFRESH_TOKEN }),
    )
}

/// The links of a response carrying tokens: the routes they unlock.
fn token_links(op: Operation, config: &Config) -> Operation {
    let bearer = "with `Authorization: Bearer` and the `accessToken` of this response ($response.body#/data/accessToken)";
    let op = op
        .link(Link::new("getMe", "getMe", format!("The user, {bearer}")))
        .link(Link::new(
            "listSessions",
            "listSessions",
            format!("The sessions, {bearer}"),
        ))
        .link(Link::new(
            "logoutAll",
            "logoutAll",
            format!("End every session, {bearer}"),
        ));
    if refresh_in_body(config) {
        let body = json!({ "refreshToken": "{$response.body#/data/refreshToken}" });
        op.link(
            Link::new(
                "refresh",
                "refresh",
                "Rotate the pair with the refreshToken of this response",
            )
            .request_body(body.clone()),
        )
        .link(
            Link::new("logout", "logout", "End this session with its refreshToken")
                .request_body(body),
        )
    } else {
        op.link(Link::new(
            "refresh",
            "refresh",
            "Rotate the pair: the refresh cookie this response set is sent back",
        ))
        .link(Link::new(
            "logout",
            "logout",
            "End this session: the refresh cookie this response set is sent back",
        ))
    }
}

/// The operation of a built-in route, as `config` makes it behave.
pub(super) fn operation(route: Route, config: &Config) -> Operation {
    use ErrorCode as E;
    let alice = || user_example("alice@example.com", &[config.default_role()]);
    match route {
        Route::Register => {
            let mut props = json!({
                "identifier": identifier("email, username, phone, …"),
                "password": new_password(config),
                "roles": roles(config, 0),
                "name": {
                    "type": ["string", "null"], "maxLength": MAX_NAME_CHARS,
                    "description": format!("a display name, at most {MAX_NAME_CHARS} characters without control characters"),
                },
            });
            props["roles"]["description"] = json!(if config.has_api_key() {
                "default: the default role; any valid role with X-Api-Key"
            } else {
                "default: the default role; self-registration may request only it"
            });
            Operation::new("Create an account (no tokens are issued)", "accounts")
                .credentials(Credentials::ApiKeyWhenConfigured)
                .request(
                    object(&["identifier", "password"], props),
                    json!({ "identifier": "alice@example.com", "password": "correct horse battery staple" }),
                )
                .response(201, "user registered")
                .data(user_data(), json!({ "user": alice() }))
                .errors([
                    E::InvalidRole,
                    E::Unauthorized,
                    E::Forbidden,
                    E::UserAlreadyExists,
                    E::RateLimited,
                    E::ServiceUnavailable,
                ])
        }
        Route::Login => {
            let (tokens, example) = tokens(config);
            let op = Operation::new(
                "Log in: a new session and a token pair, or the second step it needs",
                "sessions",
            )
            .request(
                object(
                    &["identifier", "password"],
                    json!({ "identifier": identifier("as registered"), "password": current_password() }),
                ),
                json!({ "identifier": "alice@example.com", "password": "correct horse battery staple" }),
            )
            .response(200, "logged in")
            .data(json!({ "oneOf": [tokens, second_step()] }), example)
            .errors([
                E::InvalidCredentials,
                E::RateLimited,
                E::ServiceUnavailable,
            ]);
            token_links(op, config)
        }
        Route::Refresh => {
            let (tokens, example) = tokens(config);
            let (body, body_example) = refresh_body();
            // A spent, revoked, expired or unknown refresh token alike is
            // TOKEN_INVALID; a cookie is CSRF-checked.
            let mut errors = vec![E::TokenInvalid, E::ServiceUnavailable];
            if !refresh_in_body(config) {
                errors.extend([E::Unauthorized, E::Forbidden]);
            }
            let op = Operation::new(
                "Rotate the refresh token: a new pair; the presented token is spent",
                "sessions",
            )
            .credentials(Credentials::RefreshToken)
            .optional_request(body, body_example)
            .response(200, "token refreshed")
            .data(tokens, example)
            .errors(errors);
            token_links(op, config)
        }
        Route::Logout => {
            let (body, body_example) = refresh_body();
            Operation::new(
                "End one session (by refresh token, else the access token's); clears cookies",
                "sessions",
            )
            .credentials(Credentials::RefreshOrAccess)
            .optional_request(body, body_example)
            .response(200, "logged out")
            // Without a refresh token, the access token's session.
            .errors([
                E::Unauthorized,
                E::TokenInvalid,
                E::TokenExpired,
                E::ServiceUnavailable,
            ])
            // A cookie is CSRF-checked.
            .errors((!refresh_in_body(config)).then_some(E::Forbidden))
        }
        Route::LogoutAll => {
            Operation::new("End every session of the caller; clears cookies", "sessions")
                .response(200, "logged out of every session")
        }
        Route::Me => Operation::new("The caller", "accounts")
            .data(user_data(), json!({ "user": alice() }))
            .errors([E::UserNotFound]),
        Route::ChangeIdentifier => Operation::new(
            "Change the caller's identifier (needs the current password)",
            "accounts",
        )
        .description("The email verification is cleared and the caller's other sessions are revoked.")
        .request(
            object(
                &["newIdentifier", "currentPassword"],
                json!({ "newIdentifier": identifier("the new identifier"), "currentPassword": current_password() }),
            ),
            json!({ "newIdentifier": "alice@example.org", "currentPassword": "correct horse battery staple" }),
        )
        .response(200, "identifier changed")
        .data(
            user_data(),
            json!({ "user": user_example("alice@example.org", &[config.default_role()]) }),
        )
        .errors([
            E::InvalidCredentials,
            E::UserNotFound,
            E::UserAlreadyExists,
        ]),
        Route::ChangePassword => {
            Operation::new("Change the caller's password; every session is revoked", "accounts")
                .request(
                    object(
                        &["currentPassword", "newPassword"],
                        json!({ "currentPassword": current_password(), "newPassword": new_password(config) }),
                    ),
                    json!({ "currentPassword": "correct horse battery staple", "newPassword": "a longer passphrase nobody guesses" }),
                )
                .response(200, "password changed")
                .errors([E::InvalidCredentials, E::UserNotFound])
        }
        Route::ListSessions => Operation::new("The caller's sessions", "sessions").data(
            object(
                &["sessions"],
                json!({ "sessions": { "type": "array", "items": schema_ref("SessionInfo") } }),
            ),
            json!({ "sessions": [{
                "id": SESSION_ID, "userId": USER_ID, "userAgent": "Mozilla/5.0", "ip": "203.0.113.7",
                "createdAt": NOW, "lastActiveAt": NOW, "expiresAt": MUCH_LATER, "current": true,
            }] }),
        ),
        Route::RevokeSession => Operation::new("Revoke one of the caller's sessions", "sessions")
            .response(200, "session revoked")
            .errors([
                E::ValidationError,
                ErrorCode::Custom {
                    code: "SESSION_NOT_FOUND".into(),
                    status: 404,
                },
            ]),
        Route::AssignRoles | Route::RevokeRoles => {
            let assign = route == Route::AssignRoles;
            let (summary, message) = if assign {
                ("Add roles to a user (the existing ones are kept)", "roles assigned")
            } else {
                ("Remove roles from a user", "roles revoked")
            };
            let example_roles = if assign {
                vec![config.default_role(), config.admin_role()]
            } else {
                vec![config.default_role()]
            };
            Operation::new(summary, "roles")
                .request(
                    object(&["roles"], json!({ "roles": roles(config, 1) })),
                    json!({ "roles": [config.admin_role()] }),
                )
                .response(200, message)
                .data(
                    user_data(),
                    json!({ "user": user_example("alice@example.com", &example_roles) }),
                )
                .errors([E::ValidationError, E::InvalidRole, E::UserNotFound])
        }
        Route::Keys => Operation::new(
            "The published signing keys (JWKS, RFC 7517); 404 with HMAC signing",
            "keys",
        )
        .plain(
            200,
            schema_ref("Jwks"),
            json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA", "use": "sig", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" }] }),
        )
        .errors([ErrorCode::Custom {
            code: "NOT_FOUND".into(),
            status: 404,
        }]),
    }
}
