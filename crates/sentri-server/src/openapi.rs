//! The OpenAPI document of the server (F-28).

use sentri_core::Config;

/// The OpenAPI 3.1 document of every route the server serves.
pub fn document(_config: &Config) -> serde_json::Value {
    serde_json::json!({"openapi": "3.1.0"})
}
