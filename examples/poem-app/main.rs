//! A poem application that mounts sentri's routes under `/auth` and
//! protects its own routes with sentri-poem, on the memory store.
//!
//! ```text
//! cargo run -p sentri-examples --example poem-app
//! curl -s localhost:3002/auth/register -H 'content-type: application/json' \
//!      -d '{"identifier":"alice@example.com","password":"correct horse battery"}'
//! curl -s localhost:3002/auth/login -H 'content-type: application/json' \
//!      -d '{"identifier":"alice@example.com","password":"correct horse battery"}'
//! curl -s localhost:3002/api/notes -H "authorization: Bearer $ACCESS_TOKEN"
//! ```
//!
//! With `--smoke` it starts on an ephemeral port and stops at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::listener::TcpListener;
use poem::web::Data;
use poem::{EndpointExt, Request, Response, Route, Server, get, handler};
use sentri_core::store::Stores;
use sentri_core::{Config, Sentri};
use sentri_memory::MemoryStore;
use sentri_poem::{
    AuthUser, EnvelopeErrors, IdempotencyKey, Json, MaybeAuthUser, PermitRequest, SentriError,
    authorize, envelope, idempotency, permit, protect, protect_optional,
};

/// Notes by owner id.
#[derive(Default)]
struct Notes(Mutex<Vec<(String, String)>>);

#[derive(serde::Deserialize)]
struct NewNote {
    text: String,
}

#[handler]
fn list_notes(user: AuthUser, notes: Data<&Arc<Notes>>) -> Result<Response, SentriError> {
    let owner = user.id().to_string();
    let mine: Vec<String> = notes
        .0
        .0
        .lock()
        .map_err(|_| SentriError::app("NOTES_UNAVAILABLE", 503, "notes unavailable"))?
        .iter()
        .filter(|(o, _)| *o == owner)
        .map(|(_, t)| t.clone())
        .collect();
    Ok(envelope(
        http::StatusCode::OK,
        "ok",
        serde_json::json!({ "notes": mine }),
    ))
}

#[handler]
fn add_note(
    req: &Request,
    user: AuthUser,
    notes: Data<&Arc<Notes>>,
    Json(note): Json<NewNote>,
) -> Result<Response, SentriError> {
    if note.text.trim().is_empty() {
        return Err(SentriError::app("EMPTY_NOTE", 422, "a note needs text"));
    }
    notes
        .0
        .0
        .lock()
        .map_err(|_| SentriError::app("NOTES_UNAVAILABLE", 503, "notes unavailable"))?
        .push((user.id().to_string(), note.text.clone()));
    let key = req
        .extensions()
        .get::<IdempotencyKey>()
        .map(|k| k.0.clone());
    Ok(envelope(
        http::StatusCode::CREATED,
        "note added",
        serde_json::json!({ "text": note.text, "idempotencyKey": key }),
    ))
}

#[handler]
fn greeting(user: MaybeAuthUser) -> String {
    match user.0 {
        Some(u) => format!("hello {}", u.identifier()),
        None => "hello stranger".to_owned(),
    }
}

#[handler]
fn admin_stats(notes: Data<&Arc<Notes>>) -> Result<Response, SentriError> {
    let count = notes
        .0
        .0
        .lock()
        .map_err(|_| SentriError::app("NOTES_UNAVAILABLE", 503, "notes unavailable"))?
        .len();
    Ok(envelope(
        http::StatusCode::OK,
        "ok",
        serde_json::json!({ "notes": count }),
    ))
}

#[handler]
fn owner_only(user: AuthUser) -> String {
    format!("the space of {}", user.identifier())
}

fn app(sentri: &Sentri) -> impl poem::Endpoint + use<> {
    let notes = Arc::new(Notes::default());
    Route::new()
        .nest("/auth", sentri_poem::routes(sentri.clone()))
        .at(
            "/api/notes",
            get(list_notes)
                .post(add_note)
                .with(idempotency(sentri))
                .with(protect(sentri).auth_prefix("/auth")),
        )
        .at(
            "/api/hello",
            get(greeting).with(protect_optional(sentri).auth_prefix("/auth")),
        )
        .at(
            "/api/admin/stats",
            get(admin_stats)
                .with(authorize(sentri, ["admin"]))
                .with(protect(sentri).auth_prefix("/auth")),
        )
        .at(
            "/api/spaces/:ownerId",
            get(owner_only)
                .with(permit(|req: PermitRequest| async move {
                    req.param("ownerId") == Some(req.user.id().to_string().as_str())
                }))
                .with(protect(sentri).auth_prefix("/auth")),
        )
        .data(notes)
        .with(EnvelopeErrors)
        .with(sentri_poem::catch_panic(sentri))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let config = Config::builder()
        .hs256("change me: an HMAC secret of at least 32 bytes")
        .valid_roles(["user", "admin"])
        .build()?;
    let sentri = Sentri::new(config, Stores::from_backend(Arc::new(MemoryStore::new()))).await?;
    let bind = if smoke {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3002"
    };
    let server = Server::new(TcpListener::bind(bind));
    if smoke {
        server
            .run_with_graceful_shutdown(
                app(&sentri),
                tokio::time::sleep(Duration::from_millis(50)),
                Some(Duration::from_secs(1)),
            )
            .await?;
        println!("poem-app started and stopped");
        return Ok(());
    }
    println!("listening on http://{bind}");
    server.run(app(&sentri)).await?;
    Ok(())
}
