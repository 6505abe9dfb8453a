//! The HTTP surface tested directly, without a framework or a store
//! (tests with the memory store are in `tests/http.rs`).

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use super::*;
use crate::error::Error;

fn json_of(res: &http::Response<Bytes>) -> Value {
    serde_json::from_slice(res.body()).unwrap()
}

fn post(path: &str, body: Value) -> Request {
    Request::new(Method::POST, path)
        .header("content-type", "application/json")
        .body(body.to_string())
}

#[test]
fn routes_match_and_unknown_ones_are_envelopes() {
    assert_eq!(
        Route::match_path(&Method::DELETE, "/users/abc/roles").unwrap(),
        (Route::RevokeRoles, Some("abc".to_owned()))
    );
    assert_eq!(
        Route::match_path(&Method::GET, "/me/").unwrap().0,
        Route::Me
    );
    let res = Route::match_path(&Method::GET, "/login")
        .unwrap_err()
        .into_response();
    assert_eq!(res.status(), 405);
    let res = Route::match_path(&Method::GET, "/nope")
        .unwrap_err()
        .into_response();
    assert_eq!(res.status(), 404);
    assert_eq!(json_of(&res)["code"], "NOT_FOUND");
    for route in Route::ALL {
        assert_eq!(route.param().is_some(), route.path().contains('{'));
    }
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
    assert_eq!(Route::allow_header("/login").unwrap(), "POST");
    assert_eq!(Route::allow_header("/me/").unwrap(), "GET");
    assert_eq!(
        Route::allow_header("/users/abc/roles").unwrap(),
        "POST,DELETE"
    );
    assert_eq!(Route::allow_header("/nope"), None);
}
