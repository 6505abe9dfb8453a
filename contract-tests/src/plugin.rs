//! A plugin as a feature crate will be one ([`sentri_core::plugin`]): both
//! adapters mount its routes with no code of their own, its store comes
//! from `Stores`, it subscribes to events and adds a token claim.
//!
//! | route | |
//! |---|---|
//! | `GET /plugin/ping` | public → `{pong: true, logins}` (`logins`: `LoginSucceeded` events seen) |
//! | `POST /notes` | access token, idempotent; `{text}` → 201 `{note: {id, text, owner}}` |
//! | `GET /notes/{noteId}` | access token → `{note}`; another user's or unknown: 404 `NOTE_NOT_FOUND` |
//! | `DELETE /notes/{noteId}` | admin role → `{deleted: id}` |
//! | `GET /plugin/guarded` | public, guard: `X-Plugin-Key: open` else 403 |
//!
//! Access tokens carry `"notes": "enabled"`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http::{Method, StatusCode};
use sentri_core::hooks::Event;
use sentri_core::http::{RouteAuth, RouteSpec, envelope_response, error_response};
use sentri_core::plugin::{Plugin, PluginSetup};
use sentri_core::{Error, ErrorCode, Result};
use serde_json::{Value, json};

/// The store of the notes plugin: what a feature crate declares as a
/// trait, with memory and SQL implementations.
pub trait NotesStore: Send + Sync {
    /// Keep a note of `owner`: its id.
    fn insert(&self, owner: String, text: String) -> u64;
    /// The note `id`: (owner, text).
    fn get(&self, id: u64) -> Option<(String, String)>;
    /// Delete the note `id`: whether it existed.
    fn delete(&self, id: u64) -> bool;
}

/// Notes in memory.
#[derive(Default)]
pub struct MemoryNotes {
    next: AtomicU64,
    by_id: Mutex<HashMap<u64, (String, String)>>,
}

impl NotesStore for MemoryNotes {
    fn insert(&self, owner: String, text: String) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.by_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, (owner, text));
        id
    }

    fn get(&self, id: u64) -> Option<(String, String)> {
        self.by_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    fn delete(&self, id: u64) -> bool {
        self.by_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
            .is_some()
    }
}

/// The notes plugin. Needs an `Arc<dyn NotesStore>` in `Stores`.
#[derive(Debug, Clone, Default)]
pub struct NotesPlugin {
    /// The `X-Plugin-Key` value `GET /plugin/guarded` wants; must not be
    /// empty.
    pub key: String,
}

fn not_found() -> Error {
    Error::app("NOTE_NOT_FOUND", 404, "no such note")
}

impl Plugin for NotesPlugin {
    fn name(&self) -> &'static str {
        "notes"
    }

    fn setup(&self, setup: &mut PluginSetup<'_>) -> Result<()> {
        if self.key.is_empty() {
            return Err(setup.invalid("key", "must not be empty"));
        }
        let notes = setup.require::<Arc<dyn NotesStore>>("notes")?;
        let logins = Arc::new(AtomicU64::new(0));
        let seen = logins.clone();
        setup.subscribe(move |event| {
            if matches!(event, Event::LoginSucceeded { .. }) {
                seen.fetch_add(1, Ordering::Relaxed);
            }
            async { Ok(()) }
        });
        setup.claims(|_| {
            let mut claims = serde_json::Map::new();
            claims.insert("notes".into(), json!("enabled"));
            // sentri's own claims win: this one is ignored.
            claims.insert("sub".into(), json!("someone-else"));
            claims
        });
        for route in routes(notes, logins, self.key.clone()) {
            setup.route(route);
        }
        Ok(())
    }
}

fn routes(notes: Arc<dyn NotesStore>, logins: Arc<AtomicU64>, key: String) -> Vec<RouteSpec> {
    let create = {
        let notes = notes.clone();
        RouteSpec::new("createNote", Method::POST, "/notes", move |cx| {
            let notes = notes.clone();
            Box::pin(async move {
                let owner = match cx.caller() {
                    Ok(auth) => auth.user.id().to_string(),
                    Err(err) => return error_response(&err),
                };
                let body: Value = serde_json::from_slice(&cx.request.body).unwrap_or(Value::Null);
                let Some(text) = body["text"].as_str().filter(|t| !t.is_empty()) else {
                    return error_response(&Error::validation("text", "is required"));
                };
                let id = notes.insert(owner.clone(), text.to_owned());
                let note = json!({"id": id, "text": text, "owner": owner});
                let data = Some(json!({"note": note}));
                envelope_response(StatusCode::CREATED, "note created", data)
            })
        })
        .auth(RouteAuth::Access)
        .idempotent(true)
    };
    let read = {
        let notes = notes.clone();
        RouteSpec::new("getNote", Method::GET, "/notes/{noteId}", move |cx| {
            let notes = notes.clone();
            Box::pin(async move {
                let owner = match cx.caller() {
                    Ok(auth) => auth.user.id().to_string(),
                    Err(err) => return error_response(&err),
                };
                let id: Option<u64> = cx.param("noteId").parse().ok();
                let found = id.and_then(|id| {
                    let (o, text) = notes.get(id)?;
                    (o == owner).then(|| json!({"id": id, "text": text, "owner": o}))
                });
                match found {
                    Some(note) => {
                        envelope_response(StatusCode::OK, "ok", Some(json!({"note": note})))
                    }
                    None => error_response(&not_found()),
                }
            })
        })
        .auth(RouteAuth::Access)
    };
    let delete = RouteSpec::new("deleteNote", Method::DELETE, "/notes/{noteId}", move |cx| {
        let notes = notes.clone();
        Box::pin(async move {
            let id: Option<u64> = cx.param("noteId").parse().ok();
            match id.filter(|id| notes.delete(*id)) {
                Some(id) => {
                    envelope_response(StatusCode::OK, "note deleted", Some(json!({"deleted": id})))
                }
                None => error_response(&not_found()),
            }
        })
    })
    .auth(RouteAuth::Admin);
    let ping = RouteSpec::new("pluginPing", Method::GET, "/plugin/ping", move |_| {
        let data = json!({"pong": true, "logins": logins.load(Ordering::Relaxed)});
        Box::pin(async move { envelope_response(StatusCode::OK, "pong", Some(data)) })
    });
    let guarded = RouteSpec::new("pluginGuarded", Method::GET, "/plugin/guarded", |_| {
        Box::pin(async { envelope_response::<()>(StatusCode::OK, "let in", None) })
    })
    .guard(move |_, req, _| {
        let given = req
            .headers
            .get("x-plugin-key")
            .and_then(|v| v.to_str().ok());
        if given == Some(key.as_str()) {
            Ok(())
        } else {
            let message = "the plugin key is missing";
            Err(Error::with_message(ErrorCode::Forbidden, message))
        }
    });
    vec![create, read, delete, ping, guarded]
}
