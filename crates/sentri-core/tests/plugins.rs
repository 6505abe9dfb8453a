//! Plugins at build (SPEC §10): a bad setting or a missing store fails
//! the build naming the plugin, routes may not clash, and what a plugin
//! contributes (routes, subscribers, claims) reaches the running services.
#![cfg(feature = "http")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Method, StatusCode};
use sentri_core::http::{Api, Request, RouteSpec, envelope_response};
use sentri_core::plugin::{Plugin, PluginSetup};
use sentri_core::store::Stores;
use sentri_core::{ErrorCode, Result, Sentri};
use sentri_memory::MemoryStore;

/// A plugin whose setup does what the test says.
struct Probe {
    name: &'static str,
    setup: fn(&mut PluginSetup<'_>) -> Result<()>,
}

impl Plugin for Probe {
    fn name(&self) -> &'static str {
        self.name
    }

    fn setup(&self, setup: &mut PluginSetup<'_>) -> Result<()> {
        (self.setup)(setup)
    }
}

fn ok_route(id: &'static str, method: Method, path: &'static str) -> RouteSpec {
    RouteSpec::new(id, method, path, |_| {
        Box::pin(async { envelope_response::<()>(StatusCode::OK, "ok", None) })
    })
}

async fn build(plugins: Vec<Probe>) -> Result<Sentri> {
    let stores = Stores::from_backend(Arc::new(MemoryStore::new()));
    let mut builder = Sentri::builder(common::base().build().unwrap(), stores);
    for plugin in plugins {
        builder = builder.plugin(plugin);
    }
    builder.build().await
}

fn config_error(result: Result<Sentri>) -> String {
    let err = result.expect_err("the build must fail");
    assert_eq!(err.code(), ErrorCode::ConfigurationError, "{err}");
    err.to_string()
}

#[tokio::test]
async fn a_bad_setting_or_a_missing_store_fails_the_build_naming_the_plugin() {
    let bad = Probe {
        name: "mailer",
        setup: |s| Err(s.invalid("smtp_url", "must be an smtp:// URL")),
    };
    assert_eq!(
        config_error(build(vec![bad]).await),
        "mailer.smtp_url: must be an smtp:// URL"
    );
    let needs_store = Probe {
        name: "audit",
        setup: |s| {
            s.require::<Arc<dyn std::any::Any + Send + Sync>>("audit log")
                .map(drop)
        },
    };
    let message = config_error(build(vec![needs_store]).await);
    assert!(
        message.contains("audit") && message.contains("audit log store"),
        "{message}"
    );
    let needs_tokens = Probe {
        name: "email",
        setup: |s| s.require_one_time_tokens().map(drop),
    };
    let message = config_error(build(vec![needs_tokens]).await);
    assert!(
        message.contains("email") && message.contains("one-time token"),
        "{message}"
    );
    let twice = || Probe {
        name: "twice",
        setup: |_| Ok(()),
    };
    assert!(config_error(build(vec![twice(), twice()]).await).contains("twice"));
}

#[tokio::test]
async fn plugin_routes_may_not_clash_with_the_table_or_each_other() {
    let on_login = Probe {
        name: "shadow",
        setup: |s| {
            s.route(ok_route("shadowLogin", Method::POST, "/login"));
            Ok(())
        },
    };
    let message = config_error(build(vec![on_login]).await);
    assert!(
        message.contains("plugin shadow") && message.contains("/login"),
        "{message}"
    );
    let first = Probe {
        name: "first",
        setup: |s| {
            s.route(ok_route("widgets", Method::GET, "/widgets"));
            Ok(())
        },
    };
    let second = Probe {
        name: "second",
        setup: |s| {
            s.route(ok_route("widgets", Method::POST, "/gadgets"));
            Ok(())
        },
    };
    let message = config_error(build(vec![first, second]).await);
    assert!(
        message.contains("plugin second") && message.contains("widgets"),
        "{message}"
    );
}

static EVENTS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test]
async fn what_a_plugin_contributes_reaches_the_services() {
    let plugin = Probe {
        name: "widgets",
        setup: |s| {
            s.route(ok_route("listWidgets", Method::GET, "/widgets"));
            s.subscribe(|_| async {
                EVENTS.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
            Ok(())
        },
    };
    let sentri = build(vec![plugin]).await.unwrap();
    assert_eq!(sentri.plugins(), ["widgets"]);
    let api = Api::new(sentri.clone(), "/auth");
    let ids: Vec<&str> = api.routes().iter().map(RouteSpec::id).collect();
    assert_eq!(
        ids.last(),
        Some(&"listWidgets"),
        "after the built-in routes"
    );
    let res = api
        .dispatch(&Request::new(Method::GET, "/auth/widgets"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = api
        .dispatch(&Request::new(Method::POST, "/auth/widgets"))
        .await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "GET");
    let before = EVENTS.load(Ordering::SeqCst);
    sentri
        .register(common::register_input("w@example.com"))
        .await
        .unwrap();
    assert_eq!(
        EVENTS.load(Ordering::SeqCst),
        before + 1,
        "the plugin saw `Registered`"
    );
}
