//! The OpenAPI 3.1 document of the server (F-28), `GET /openapi.json`.
//!
//! The auth routes are documented by the route table they are served
//! from: [`Api::openapi`] renders every [`sentri_core::http::RouteSpec`]
//! of the server's [`Api`] (mounted under `/auth`) with the operation it
//! carries, as the running configuration makes it behave (whether
//! `/register` needs `X-Api-Key`, whether refresh tokens travel in
//! cookies, the password policy, the idempotency header). The server only
//! adds its own routes ([`ServerRoute`]) and its `info`.

use sentri_core::http::Api;
use sentri_core::http::openapi::{Operation, Server, add_route, object};
use serde_json::{Value, json};

use crate::http::ServerRoute;

pub use sentri_core::http::openapi::operations;

/// The documentation of a server route.
fn server_operation(route: ServerRoute) -> Operation {
    match route {
        ServerRoute::Healthz => Operation::new("Liveness: the process is up", "server").data(
            object(&["status"], json!({ "status": { "const": "up" } })),
            json!({ "status": "up" }),
        ),
        ServerRoute::Readyz => Operation::new(
            "Readiness: the database (and Redis, when configured) answers",
            "server",
        )
        .response(200, "ready")
        .data(
            object(
                &["database"],
                json!({ "database": { "const": "up" }, "redis": { "const": "up" } }),
            ),
            json!({ "database": "up" }),
        )
        .errors([sentri_core::ErrorCode::ServiceUnavailable]),
        ServerRoute::OpenApi => Operation::new("This document", "server").plain(
            200,
            json!({ "type": "object", "required": ["openapi", "info", "paths"], "properties": { "openapi": { "type": "string" }, "info": { "type": "object" }, "paths": { "type": "object" } }, "description": "an OpenAPI 3.1 document" }),
            json!({ "openapi": "3.1.0", "info": { "title": "sentri-server", "version": env!("CARGO_PKG_VERSION") }, "paths": {} }),
        ),
    }
}

/// The operationId of a server route.
fn server_operation_id(route: ServerRoute) -> &'static str {
    match route {
        ServerRoute::Healthz => "healthz",
        ServerRoute::Readyz => "readyz",
        ServerRoute::OpenApi => "getOpenApi",
    }
}

/// `(method, path)` of every route the server serves (the table of `api`
/// under its prefix, and the server's own), in OpenAPI spelling, sorted.
pub fn served_routes(api: &Api) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = api
        .routes()
        .iter()
        .map(|r| {
            (
                r.method().as_str().to_ascii_lowercase(),
                format!("{}{}", api.prefix(), r.path()),
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

/// The OpenAPI 3.1 document of every route the server serves: the route
/// table of `api` (mounted at its prefix) and the server's own routes.
pub fn document(api: &Api) -> Value {
    let servers = [Server::new("/").description("the server that serves this document")];
    let mut doc = api.openapi(&servers);
    doc["info"]["title"] = json!("sentri-server");
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    doc["info"]["description"] = json!(format!(
        "Authentication server: password accounts, signed access tokens, rotating refresh sessions, roles. Every body except {}/keys and /openapi.json is the sentri envelope.",
        api.prefix()
    ));
    let config = api.sentri().config();
    for route in ServerRoute::ALL {
        add_route(
            &mut doc,
            config,
            &route.method(),
            route.path(),
            server_operation_id(route),
            &server_operation(route),
        );
    }
    doc
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sentri_core::Config;
    use sentri_core::config::CookieTransport;
    use sentri_core::store::Stores;

    use super::*;
    use crate::http::AUTH_PREFIX;
    use sentri_core::http::openapi::dangling_refs;

    async fn api(cookies: CookieTransport, api_key: bool) -> Api {
        let mut b = Config::builder()
            .hs256("an HMAC secret of at least thirty-two bytes")
            .valid_roles(["user", "admin"])
            .cookies(sentri_core::config::CookieConfig {
                transport: cookies,
                ..Default::default()
            });
        if api_key {
            b = b.api_key("an-api-key-of-some-length");
        }
        let db = sentri_sea_orm::connect("sqlite::memory:").await.unwrap();
        sentri_sea_orm::migrate(&db).await.unwrap();
        let stores = Stores::from_backend(Arc::new(sentri_sea_orm::SeaOrmStore::new(db)));
        let sentri = sentri_core::Sentri::new(b.build().unwrap(), stores)
            .await
            .unwrap();
        Api::new(sentri, AUTH_PREFIX)
    }

    #[tokio::test]
    async fn every_served_route_is_documented() {
        let api = api(CookieTransport::Off, false).await;
        for spec in api.routes() {
            assert!(
                spec.openapi_operation().is_some(),
                "{} {} is served but carries no OpenAPI operation",
                spec.method(),
                spec.path()
            );
        }
        let doc = document(&api);
        assert_eq!(operations(&doc), served_routes(&api));
        assert_eq!(
            served_routes(&api).len(),
            api.routes().len() + ServerRoute::ALL.len()
        );
        for route in ServerRoute::ALL {
            let op = &doc["paths"][route.path()]["get"];
            assert_eq!(op["operationId"], server_operation_id(route));
        }
        assert_eq!(doc["info"]["title"], "sentri-server");
        assert!(
            doc["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "server")
        );
    }

    #[tokio::test]
    async fn document_is_openapi_3_1_with_resolvable_refs() {
        let doc = document(&api(CookieTransport::Both, true).await);
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(dangling_refs(&doc), Vec::<String>::new());
        for (method, path) in operations(&doc) {
            let op = &doc["paths"][&path][&method];
            assert!(op["operationId"].is_string(), "{method} {path}");
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

    #[tokio::test]
    async fn document_follows_the_configuration() {
        let off = document(&api(CookieTransport::Off, false).await);
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
        let both = document(&api(CookieTransport::Both, true).await);
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
