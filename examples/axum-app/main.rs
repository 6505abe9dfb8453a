//! An axum application that mounts sentri's routes under `/auth` and
//! protects its own routes with sentri-axum, on the memory store.
//!
//! ```text
//! cargo run -p sentri-examples --example axum-app
//! curl -s localhost:3001/auth/register -H 'content-type: application/json' \
//!      -d '{"identifier":"alice@example.com","password":"correct horse battery"}'
//! curl -s localhost:3001/auth/login -H 'content-type: application/json' \
//!      -d '{"identifier":"alice@example.com","password":"correct horse battery"}'
//! curl -s localhost:3001/api/notes -H "authorization: Bearer $ACCESS_TOKEN"
//! ```
//!
//! With `--smoke` it binds an ephemeral port, starts the server and stops
//! it at once (a quick check that the application builds and starts).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Extension, Router};
use notes::Notes;
use sentri_axum::{
    AuthUser, CatchPanicLayer, IdempotencyKey, Json, MaybeAuthUser, PermitRequest, SentriError,
    authorize, envelope, idempotency, permit, protect, protect_optional,
};
use sentri_core::config::{CookieConfig, CookieTransport};
use sentri_core::store::Stores;
use sentri_core::{Config, Sentri};
use sentri_memory::MemoryStore;

mod notes {
    //! A tiny in-memory notes store for the demo.
    use std::sync::Mutex;

    /// Notes by owner.
    #[derive(Default)]
    pub struct Notes(pub Mutex<Vec<(String, String)>>);
}

#[derive(serde::Deserialize)]
struct NewNote {
    text: String,
}

async fn list_notes(
    user: AuthUser,
    Extension(notes): Extension<Arc<Notes>>,
) -> Result<axum::response::Response, SentriError> {
    let notes = notes
        .0
        .lock()
        .map_err(|_| sentri_core::Error::internal("lock poisoned"))?;
    let mine: Vec<&str> = notes
        .iter()
        .filter(|(owner, _)| *owner == user.id().to_string())
        .map(|(_, text)| text.as_str())
        .collect();
    Ok(envelope(
        axum::http::StatusCode::OK,
        "ok",
        serde_json::json!({ "notes": mine }),
    ))
}

async fn add_note(
    user: AuthUser,
    key: Option<Extension<IdempotencyKey>>,
    Extension(notes): Extension<Arc<Notes>>,
    Json(note): Json<NewNote>,
) -> Result<axum::response::Response, SentriError> {
    if note.text.trim().is_empty() {
        return Err(SentriError::app(
            "EMPTY_NOTE",
            422,
            "a note needs some text",
        ));
    }
    notes
        .0
        .lock()
        .map_err(|_| sentri_core::Error::internal("lock poisoned"))?
        .push((user.id().to_string(), note.text.clone()));
    let key = key.map(|Extension(k)| k.0);
    Ok(envelope(
        axum::http::StatusCode::CREATED,
        "note added",
        serde_json::json!({ "text": note.text, "requestId": key }),
    ))
}

async fn app(sentri: &Sentri) -> Router {
    let notes = Arc::new(Notes::default());
    Router::new()
        .nest("/auth", sentri_axum::router(sentri.clone()))
        .route(
            "/api/notes",
            get(list_notes)
                .merge(post(add_note).route_layer(idempotency(sentri)))
                .route_layer(protect(sentri)),
        )
        .route(
            "/api/hello",
            get(|user: MaybeAuthUser| async move {
                match user.0 {
                    Some(u) => format!("hello {}", u.identifier()),
                    None => "hello stranger".to_owned(),
                }
            })
            .route_layer(protect_optional(sentri)),
        )
        .route(
            "/api/admin/stats",
            get(|| async {
                envelope(
                    axum::http::StatusCode::OK,
                    "ok",
                    serde_json::json!({"users": "many"}),
                )
            })
            .route_layer(authorize(sentri, ["admin"]))
            .route_layer(protect(sentri)),
        )
        .route(
            "/api/users/{userId}/profile",
            get(|user: AuthUser| async move { format!("profile of {}", user.identifier()) })
                .route_layer(permit(|req: PermitRequest| async move {
                    req.user.has_role("admin")
                        || req.param("userId") == Some(&*req.user.id().to_string())
                }))
                .route_layer(protect(sentri)),
        )
        .layer(Extension(notes))
        .layer(CatchPanicLayer::new(sentri))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let config = Config::builder()
        .hs256("an HMAC secret of at least thirty-two bytes, for the demo only")
        .valid_roles(["user", "admin"])
        .cookies(CookieConfig {
            transport: CookieTransport::Both,
            // Plain HTTP on localhost: development only.
            secure: false,
            ..CookieConfig::default()
        })
        .password_policy(if smoke {
            sentri_core::password::PasswordPolicy::argon2id(1024, 1, 1)
        } else {
            sentri_core::password::PasswordPolicy::default()
        })
        .build()?;
    let sentri = Sentri::new(config, Stores::from_backend(Arc::new(MemoryStore::new()))).await?;
    if let Some(admin) = sentri
        .bootstrap_admin("admin@example.com", "change me at once, please")
        .await?
    {
        println!("created the first admin: {}", admin.identifier);
    }
    let app = app(&sentri).await;
    let addr: SocketAddr = if smoke {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3001"
    }
    .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    if smoke {
        let server = tokio::spawn(async move { axum::serve(listener, service).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        server.abort();
        println!("smoke: ok");
        return Ok(());
    }
    axum::serve(listener, service).await?;
    Ok(())
}
