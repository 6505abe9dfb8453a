//! SPEC §3 through both adapters: a panic of an application handler (behind
//! the adapter's panic layer) or of a built-in route is the generic 500
//! envelope, reaches `on_unhandled` once with its message, and is logged
//! once; the client never sees the message. In a test binary of its own:
//! it counts every event of the process.

use std::sync::{Arc, Mutex, OnceLock};

use sentri_contract_tests::{PASSWORD, Req, Server, base, contract};
use sentri_core::hooks::{Hooks, Overrides, Unhandled, UnhandledKind};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// An event as logged: its level and every field, formatted.
#[derive(Debug, Clone)]
struct Logged {
    level: tracing::Level,
    fields: String,
}

/// Every event of the process since the capture was installed.
fn logged() -> &'static Mutex<Vec<Logged>> {
    static LOGGED: OnceLock<Mutex<Vec<Logged>>> = OnceLock::new();
    LOGGED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        Mutex::new(Vec::new())
    })
}

struct Capture;

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let level = *event.metadata().level();
        logged().lock().expect("log").push(Logged {
            level,
            fields: fields.0,
        });
    }
}

/// Send `req`, expecting the generic 500; then exactly one report of a
/// panic of `path` with `message`, and exactly one error logged, naming
/// it.
async fn panics_once(
    c: &Server,
    seen: &Mutex<Vec<Unhandled>>,
    label: &str,
    req: Req,
    path: &str,
    message: &str,
) {
    seen.lock().expect("seen").clear();
    logged().lock().expect("log").clear();
    let res = c.send(label, req, 500).await;
    assert_eq!(res.body["code"], "INTERNAL_ERROR", "{:?}", res.body);
    assert_eq!(res.body["message"], "internal server error");
    let raw = res.body.to_string();
    assert!(
        !raw.contains(message),
        "the panic reached the client: {raw}"
    );
    let reports = seen.lock().expect("seen").clone();
    assert_eq!(reports.len(), 1, "{:?} {label}: {reports:?}", c.adapter);
    let report = &reports[0];
    assert_eq!(report.kind, UnhandledKind::Panic);
    assert!(report.detail.contains(message), "{}", report.detail);
    assert_eq!(report.path, path);
    let errors: Vec<Logged> = logged()
        .lock()
        .expect("log")
        .iter()
        .filter(|e| e.level == tracing::Level::ERROR || e.fields.contains(message))
        .cloned()
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "{:?} {label}: logged once: {errors:?}",
        c.adapter
    );
    assert!(errors[0].fields.contains(message), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_reach_on_unhandled_once_logged_once_never_the_client() {
    logged();
    let seen = Arc::new(Mutex::new(Vec::<Unhandled>::new()));
    let config = {
        let seen = seen.clone();
        move || {
            let sink = seen.clone();
            let hooks = Hooks::new().on_unhandled(move |u| {
                let sink = sink.clone();
                async move {
                    sink.lock().expect("seen").push(u);
                    Ok(())
                }
            });
            let overrides = Overrides::new().register(|sentri, input| async move {
                if input.identifier == "panic@example.com" {
                    panic!("override exploded: internal detail");
                }
                sentri.default_register(input).await
            });
            base().hooks(hooks).overrides(overrides)
        }
    };
    contract(config, |c: Arc<Server>| {
        let seen = seen.clone();
        async move {
            let app = Req::get("/panic");
            panics_once(
                &c,
                &seen,
                "app handler",
                app,
                "/panic",
                "boom: secret detail",
            )
            .await;
            let body = json!({"identifier": "panic@example.com", "password": PASSWORD});
            let route = Req::json("POST", "/auth/register", &body);
            let message = "override exploded: internal detail";
            panics_once(
                &c,
                &seen,
                "built-in route",
                route,
                "/auth/register",
                message,
            )
            .await;
        }
    })
    .await;
}
