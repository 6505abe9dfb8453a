//! The HTTP surface tested directly, without a framework or a store
//! (tests with the memory store are in `tests/http.rs`).

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use super::*;
use crate::error::{Error, ErrorCode};

fn json_of(res: &http::Response<Bytes>) -> Value {
    serde_json::from_slice(res.body()).unwrap()
}

fn post(path: &str, body: Value) -> Request {
    Request::new(Method::POST, path)
        .header("content-type", "application/json")
        .body(body.to_string())
}

fn builtin_table() -> table::RouteTable {
    let config = crate::Config::builder()
        .hs256("an HMAC secret of at least thirty-two bytes")
        .valid_roles(["user", "admin"])
        .build()
        .unwrap();
    table::RouteTable::new(routes::builtin_routes(&config))
}

#[test]
fn routes_match_and_unknown_ones_are_envelopes() {
    let table = builtin_table();
    let (spec, params) = table
        .match_route(&Method::DELETE, "/users/abc/roles")
        .unwrap();
    assert_eq!(spec.as_builtin(), Some(Route::RevokeRoles));
    assert_eq!(params.get("userId"), Some("abc"));
    let (spec, _) = table.match_route(&Method::GET, "/me").unwrap();
    assert_eq!(spec.as_builtin(), Some(Route::Me));
    // Exact paths, as the frameworks route them.
    assert_eq!(
        table.match_route(&Method::GET, "/me/").unwrap_err(),
        RouteMiss::NotFound
    );
    let res = table
        .match_route(&Method::GET, "/login")
        .unwrap_err()
        .into_response();
    assert_eq!(res.status(), 405);
    let res = table
        .match_route(&Method::GET, "/nope")
        .unwrap_err()
        .into_response();
    assert_eq!(res.status(), 404);
    assert_eq!(json_of(&res)["code"], "NOT_FOUND");
    // An empty segment never matches a parameter.
    assert_eq!(
        table
            .match_route(&Method::DELETE, "/users//roles")
            .unwrap_err(),
        RouteMiss::NotFound
    );
}

#[test]
fn the_builtin_table_is_every_route_with_its_method_path_and_id() {
    let table = builtin_table();
    let specs = table.specs();
    assert_eq!(specs.len(), Route::ALL.len());
    for (spec, route) in specs.iter().zip(Route::ALL) {
        assert_eq!(spec.as_builtin(), Some(route));
        assert_eq!(spec.method(), route.method());
        assert_eq!(spec.path(), route.path());
        assert_eq!(spec.id(), route.id());
        assert_eq!(spec.params().next(), route.param());
    }
    // The built-in routes obey the rules every added route is held to.
    specs
        .iter()
        .try_fold(table::RouteTable::new(Vec::new()), |t, spec| {
            t.with(spec.clone())
        })
        .expect("the built-in routes are valid templates that do not clash");
    let ids: std::collections::HashSet<&str> = specs.iter().map(RouteSpec::id).collect();
    assert_eq!(ids.len(), specs.len(), "operation ids are unique");
    let idempotent: Vec<&str> = specs
        .iter()
        .filter(|s| s.is_idempotent())
        .map(RouteSpec::id)
        .collect();
    assert_eq!(
        idempotent,
        [
            "register",
            "changeIdentifier",
            "changePassword",
            "assignRoles",
            "revokeRoles"
        ]
    );
}

fn ok_route(id: &'static str, method: Method, path: &'static str) -> RouteSpec {
    RouteSpec::new(id, method, path, |_| {
        Box::pin(async { envelope_response::<()>(http::StatusCode::OK, "ok", None) })
    })
}

#[test]
fn an_added_route_may_not_clash_with_the_table() {
    let table = builtin_table();
    let err = table
        .with(ok_route("other", Method::POST, "/login"))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigurationError);
    assert!(err.to_string().contains("/login"), "{err}");
    let err = table
        .with(ok_route("login", Method::GET, "/elsewhere"))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigurationError);
    // Same shape, another parameter name: still the same paths.
    let err = table
        .with(ok_route("x", Method::DELETE, "/sessions/{sessionId}"))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConfigurationError);
    // Paths both frameworks would route differently, whatever the method:
    // another parameter name, or a literal beside a parameter.
    for (method, path) in [
        (Method::GET, "/sessions/{sessionId}"),
        (Method::GET, "/users/me/roles"),
        (Method::GET, "/sessions/current"),
    ] {
        let err = table.with(ok_route("y", method, path)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ConfigurationError, "{path}");
    }
    // Not templates.
    for path in [
        "widgets",
        "/a//b",
        "/a/:id",
        "/files/{*rest}",
        "/a/{}",
        "/a/x{id}",
    ] {
        let err = table.with(ok_route("z", Method::GET, path)).unwrap_err();
        assert!(err.to_string().contains(path), "{path}: {err}");
    }
    let table = table
        .with(ok_route(
            "listWidgets",
            Method::GET,
            "/sessions/{id}/widgets",
        ))
        .unwrap()
        .with(ok_route("getSessionNote", Method::GET, "/sessions/{id}"))
        .unwrap();
    let (spec, params) = table
        .match_route(&Method::GET, "/sessions/s1/widgets")
        .unwrap();
    assert_eq!((spec.id(), params.get("id")), ("listWidgets", Some("s1")));
    assert_eq!(table.allow_header("/sessions/s1").unwrap(), "DELETE,GET");
    // Parameters are percent-decoded, as the frameworks hand them over.
    let (_, params) = table
        .match_route(&Method::GET, "/sessions/a%20b/widgets")
        .unwrap();
    assert_eq!(params.get("id"), Some("a b"));
    let (_, params) = table
        .match_route(&Method::GET, "/sessions/%zz/widgets")
        .unwrap();
    assert_eq!(
        params.get("id"),
        Some("%zz"),
        "a malformed escape stays as sent"
    );
}

#[test]
fn requests_do_not_debug_their_secrets() {
    let req = post("/auth/login", json!({"password": "hunter2"}))
        .header("authorization", "Bearer secret-token");
    let dbg = format!("{req:?}");
    assert!(!dbg.contains("hunter2") && !dbg.contains("secret-token"));
}

#[test]
fn rate_limited_errors_carry_retry_after_and_panics_are_generic() {
    let res = error_response(&Error::rate_limited(Duration::from_millis(2500)));
    assert_eq!(res.headers()["retry-after"], "3");
    let res = panic_response();
    assert_eq!(
        json_of(&res),
        json!({"error": true, "statusCode": 500, "code": "INTERNAL_ERROR", "message": "internal server error", "data": null})
    );
}

#[test]
fn allow_header_lists_the_methods_of_a_path() {
    let table = builtin_table();
    assert_eq!(table.allow_header("/login").unwrap(), "POST");
    assert_eq!(table.allow_header("/me").unwrap(), "GET");
    assert_eq!(
        table.allow_header("/users/abc/roles").unwrap(),
        "POST,DELETE"
    );
    assert_eq!(table.allow_header("/nope"), None);
}
