//! The OpenAPI document the running server serves (F-28), in two
//! configurations: every operation has an `operationId`, and it is written
//! to `$SENTRI_OPENAPI_OUT/<configuration>.json` when that variable names
//! a directory, for `.ci/run` to lint with Redocly's recommended rules
//! (tools/openapi-lint).

mod common;

use common::*;
use reqwest::Method;

const CONFIGURATIONS: [(&str, &[(&str, &str)]); 2] = [
    ("default", &[]),
    (
        "cookies-api-key",
        &[
            ("SENTRI_COOKIES", "both"),
            ("SENTRI_API_KEY", "an-api-key-of-some-length-for-tests"),
        ],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_served_document_names_every_operation() {
    let out_dir = std::env::var_os("SENTRI_OPENAPI_OUT").map(std::path::PathBuf::from);
    for (name, env) in CONFIGURATIONS {
        let dir = TestDir::new(&format!("openapi-{name}"));
        let server = Server::start(&dir, env);
        let c = client();
        let doc = send(&c, Method::GET, &server.url("/openapi.json"), &[], None).await;
        assert_eq!(doc.status, 200, "{name}");
        let doc = doc.body;
        assert_eq!(doc["openapi"], "3.1.0", "{name}");
        assert!(doc["servers"].as_array().is_some_and(|s| !s.is_empty()));
        let mut ids = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str();
                assert!(id.is_some(), "{name}: {method} {path} has no operationId");
                ids.push(id.unwrap().to_owned());
            }
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "{name}: operationIds are unique");
        if let Some(out) = &out_dir {
            std::fs::create_dir_all(out).unwrap();
            let file = out.join(format!("{name}.json"));
            std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        }
        server.stop();
    }
}
