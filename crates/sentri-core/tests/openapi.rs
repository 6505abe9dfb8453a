//! The OpenAPI document generated from the route table (SPEC §10, F-28),
//! checked against what the routes really answer on the memory store.
#![cfg(feature = "http")]

mod common;

use common::{PASSWORD, base, env_with, fast_policy};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use sentri_core::ErrorCode;
use sentri_core::config::{ConfigBuilder, CookieConfig, CookieTransport};
use sentri_core::http::openapi::{Operation, Server, dangling_refs, object, operations};
use sentri_core::http::{Api, Request, RouteAuth, RouteSpec, envelope_response};

/// An [`Api`] under `/auth` on the memory store.
async fn api_with(builder: ConfigBuilder) -> Api {
    Api::new(env_with(builder).await.sentri, "/auth")
}

/// The common configuration, with new passwords of at least 10 characters.
fn config() -> ConfigBuilder {
    base().password_policy(fast_policy().min_length(10))
}

fn servers() -> Vec<Server> {
    vec![Server::new("https://auth.example.org").description("production")]
}

/// The operation object of `method path`.
fn op<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    op
}

/// The `code` enum the document gives `method path` for `status`.
fn documented_codes(doc: &Value, method: &str, path: &str, status: u16) -> Vec<String> {
    let res = &op(doc, method, path)["responses"][status.to_string()];
    res["content"]["application/json"]["schema"]["allOf"][1]["properties"]["code"]["enum"]
        .as_array()
        .map(|a| a.iter().map(|c| c.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn whoami() -> RouteSpec {
    RouteSpec::new("whoAmI", Method::POST, "/things/{thingId}/owner", |cx| {
        Box::pin(async move {
            let user = cx.auth.map(|a| a.user.id().to_string());
            envelope_response(StatusCode::OK, "ok", Some(json!({ "userId": user })))
        })
    })
    .auth(RouteAuth::Access)
    .idempotent(true)
}

#[tokio::test]
async fn an_added_route_with_an_operation_is_in_the_document() {
    let api = api_with(config()).await;
    let op_of_route = Operation::new("Who owns the thing", "things")
        .request(
            object(
                &["note"],
                json!({ "note": { "type": "string", "minLength": 1 } }),
            ),
            json!({ "note": "hello" }),
        )
        .data(
            object(&["userId"], json!({ "userId": { "type": "string" } })),
            json!({ "userId": "0190a3e2-7c41-7d2e-9b8a-3f1c2d4e5f60" }),
        )
        .errors([ErrorCode::Custom {
            code: "THING_NOT_FOUND".into(),
            status: 404,
        }]);
    let api = api.with_route(whoami().operation(op_of_route)).unwrap();
    let doc = api.openapi(&servers());
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "https://auth.example.org");
    let path = "/auth/things/{thingId}/owner";
    let added = op(&doc, "post", path);
    assert_eq!(added["operationId"], "whoAmI");
    assert_eq!(added["summary"], "Who owns the thing");
    assert_eq!(added["tags"], json!(["things"]));
    assert_eq!(added["security"], json!([{ "bearerAuth": [] }]));
    let params = added["parameters"].as_array().unwrap();
    assert_eq!(params[0]["name"], "thingId");
    assert_eq!(params[0]["in"], "path");
    assert_eq!(params[1]["$ref"], "#/components/parameters/IdempotencyKey");
    // What its shape implies, and its own code.
    assert_eq!(
        documented_codes(&doc, "post", path, 401),
        ["UNAUTHORIZED", "TOKEN_INVALID", "TOKEN_EXPIRED"]
    );
    assert_eq!(
        documented_codes(&doc, "post", path, 404),
        ["THING_NOT_FOUND"]
    );
    assert_eq!(
        documented_codes(&doc, "post", path, 409),
        ["IDEMPOTENCY_IN_PROGRESS"]
    );
    assert_eq!(
        documented_codes(&doc, "post", path, 400),
        ["VALIDATION_ERROR"]
    );
    assert!(
        doc["tags"]
            .as_array()
            .unwrap()
            .contains(&json!({ "name": "things" }))
    );

    // Without an operation it is still listed, with its id.
    let bare = RouteSpec::new("ping", Method::GET, "/ping", |_| {
        Box::pin(async { envelope_response::<()>(StatusCode::OK, "ok", None) })
    });
    let doc = api.with_route(bare).unwrap().openapi(&[]);
    assert_eq!(op(&doc, "get", "/auth/ping")["operationId"], "ping");
}

#[tokio::test]
async fn every_route_of_the_table_is_documented_with_examples() {
    let api = api_with(config()).await;
    let doc = api.openapi(&servers());
    let mut expected: Vec<(String, String)> = api
        .routes()
        .iter()
        .map(|r| {
            (
                r.method().as_str().to_ascii_lowercase(),
                format!("/auth{}", r.path()),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(operations(&doc), expected);
    assert_eq!(dangling_refs(&doc), Vec::<String>::new());
    let mut ids = Vec::new();
    for spec in api.routes() {
        let method = spec.method().as_str().to_ascii_lowercase();
        let path = format!("/auth{}", spec.path());
        let op = op(&doc, &method, &path);
        assert_eq!(op["operationId"], spec.id(), "{method} {path}");
        ids.push(spec.id().to_owned());
        assert!(spec.openapi_operation().is_some(), "{method} {path}");
        if let Some(body) = op.get("requestBody") {
            assert!(
                body["content"]["application/json"]["example"].is_object(),
                "{method} {path}: request example"
            );
        }
        let responses = op["responses"].as_object().unwrap();
        for (status, res) in responses {
            assert!(
                !res["content"]["application/json"]["example"].is_null(),
                "{method} {path} {status}: response example"
            );
        }
        let declared = op["parameters"]
            .as_array()
            .map_or(0, |p| p.iter().filter(|p| p["in"] == "path").count());
        assert_eq!(declared, spec.params().count(), "{method} {path}");
        let idempotency = op["parameters"].as_array().is_some_and(|p| {
            p.iter()
                .any(|p| p["$ref"] == "#/components/parameters/IdempotencyKey")
        });
        // The layer runs for the configured methods only (POST, PUT and
        // PATCH by default): a DELETE marked idempotent takes no key.
        let layered = spec.is_idempotent() && spec.method() != http::Method::DELETE;
        assert_eq!(idempotency, layered, "{method} {path}");
        assert_eq!(
            documented_codes(&doc, &method, &path, 500),
            ["INTERNAL_ERROR"],
            "{method} {path}"
        );
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), api.routes().len(), "operationIds are unique");

    // Login links to what its tokens unlock.
    let links = &op(&doc, "post", "/auth/login")["responses"]["200"]["links"];
    assert_eq!(links["getMe"]["operationId"], "getMe");
    assert_eq!(
        links["refresh"]["requestBody"]["refreshToken"],
        "{$response.body#/data/refreshToken}"
    );
    assert_eq!(links["logout"]["operationId"], "logout");
}

#[tokio::test]
async fn constraints_are_the_ones_the_routes_enforce() {
    let api = api_with(config()).await;
    let doc = api.openapi(&[]);
    let register =
        &op(&doc, "post", "/auth/register")["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(register["properties"]["identifier"]["minLength"], 1);
    assert_eq!(register["properties"]["identifier"]["maxLength"], 254);
    // The password policy in force (min_length(10)).
    assert_eq!(register["properties"]["password"]["minLength"], 10);
    assert_eq!(register["properties"]["password"]["maxLength"], 1024);
    assert_eq!(register["additionalProperties"], false);
    assert_eq!(
        register["properties"]["roles"]["items"]["enum"],
        json!(["admin", "editor", "user"])
    );

    let send = |body: Value| {
        Request::new(Method::POST, "/auth/register")
            .header("content-type", "application/json")
            .body(body.to_string())
            .peer("192.0.2.1:5000".parse().unwrap())
    };
    let refused = [
        json!({ "identifier": "", "password": PASSWORD }),
        json!({ "identifier": "   ", "password": PASSWORD }),
        json!({ "identifier": "a".repeat(255), "password": PASSWORD }),
        json!({ "identifier": "bob", "password": "nine char" }),
        json!({ "identifier": "bob", "password": PASSWORD, "extra": 1 }),
        json!({ "identifier": "bob", "password": PASSWORD, "name": "n".repeat(101) }),
    ];
    for body in refused {
        let res = api.dispatch(&send(body.clone())).await;
        assert_eq!(res.status(), 400, "{body}");
        let json: Value = serde_json::from_slice(res.body()).unwrap();
        assert!(
            documented_codes(&doc, "post", "/auth/register", 400)
                .contains(&json["code"].as_str().unwrap().to_owned()),
            "{body}"
        );
    }
    let accepted =
        json!({ "identifier": "a".repeat(254), "password": "ten chars!", "name": "n".repeat(100) });
    assert_eq!(api.dispatch(&send(accepted)).await.status(), 201);
}

/// Every error a route answers to a handful of bad requests is among the
/// codes its operation documents for that status.
#[tokio::test]
async fn the_errors_the_routes_answer_are_documented() {
    for transport in [CookieTransport::Off, CookieTransport::Both] {
        let cookies = CookieConfig {
            transport,
            ..Default::default()
        };
        let api = api_with(config().cookies(cookies).body_limit(1024)).await;
        let doc = api.openapi(&[]);
        let register = Request::new(Method::POST, "/auth/register")
            .header("content-type", "application/json")
            .body(json!({ "identifier": "carol", "password": PASSWORD }).to_string());
        assert_eq!(api.dispatch(&register).await.status(), 201);
        let mut checked = 0;
        for spec in api.routes() {
            let path = format!(
                "/auth{}",
                spec.path()
                    .replace("{id}", "not-a-session")
                    .replace("{userId}", "0190a3e2-7c41-7d2e-9b8a-3f1c2d4e5f60")
            );
            let method = spec.method().clone();
            let json_req = |body: &str| {
                Request::new(method.clone(), &path)
                    .header("content-type", "application/json")
                    .header("origin", "https://evil.example")
                    .body(body.to_owned())
                    .peer("192.0.2.9:5000".parse().unwrap())
            };
            let requests = [
                json_req(""),
                json_req("{nope"),
                json_req("[1]"),
                json_req(&format!("{{\"x\":\"{}\"}}", "y".repeat(2000))),
                json_req(r#"{"identifier":"carol","password":"wrong password!"}"#),
                json_req(r#"{"refreshToken":"forged"}"#).header("authorization", "Bearer forged"),
                json_req("{}").header("authorization", "Bearer a.b.c"),
                json_req("{}").header("cookie", "access_token=forged; refresh_token=forged"),
                json_req("{}").header("x-idempotency-key", &"k".repeat(300)),
            ];
            for req in requests {
                let res = api.dispatch(&req).await;
                if res.status().is_success() {
                    continue;
                }
                let body: Value = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
                let code = body["code"].as_str().unwrap_or("<plain>").to_owned();
                let m = method.as_str().to_ascii_lowercase();
                let doc_path = format!("/auth{}", spec.path());
                assert!(
                    documented_codes(&doc, &m, &doc_path, res.status().as_u16()).contains(&code),
                    "{m} {doc_path} ({transport:?}) answered {} {code}, not documented",
                    res.status()
                );
                checked += 1;
            }
        }
        assert!(checked > 50, "{checked}");
    }
}

#[tokio::test]
async fn without_the_idempotency_layer_no_route_documents_the_key() {
    let api = api_with(config()).await.idempotent_routes(false);
    let doc = api.openapi(&[]);
    let register = op(&doc, "post", "/auth/register");
    assert!(register.get("parameters").is_none(), "{register}");
    assert!(documented_codes(&doc, "post", "/auth/register", 422).is_empty());
    let doc = api.idempotent_routes(true).openapi(&[]);
    assert_eq!(
        documented_codes(&doc, "post", "/auth/register", 422),
        ["IDEMPOTENCY_KEY_REUSED"]
    );
}
