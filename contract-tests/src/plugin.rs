//! Routes added to the table by the application, as a feature crate will
//! add its own: both adapters mount them with no code of their own.
//!
//! | route | |
//! |---|---|
//! | `GET /plugin/ping` | public → `{pong: true}` |
//! | `POST /notes` | access token, idempotent; `{text}` → 201 `{note: {id, text, owner}}` |
//! | `GET /notes/{noteId}` | access token → `{note}`; another user's or unknown: 404 `NOTE_NOT_FOUND` |
//! | `DELETE /notes/{noteId}` | admin role → `{deleted: id}` |
//! | `GET /plugin/guarded` | public, guard: `X-Plugin-Key: open` else 403 |

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http::{Method, StatusCode};
use sentri_core::http::{Api, RouteAuth, RouteSpec, envelope_response, error_response};
use sentri_core::{Error, ErrorCode, Sentri};
use serde_json::{Value, json};

/// The notes of the plugin: id → (owner, text).
#[derive(Default)]
struct Notes {
    next: AtomicU64,
    by_id: Mutex<HashMap<u64, (String, String)>>,
}

fn not_found() -> Error {
    Error::app("NOTE_NOT_FOUND", 404, "no such note")
}

/// The table of `sentri` with the plugin's routes added.
///
/// # Panics
/// When a route clashes with the table (a bug of this crate).
pub fn api(sentri: &Sentri) -> Api {
    let notes = Arc::new(Notes::default());
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
                let id = notes.next.fetch_add(1, Ordering::Relaxed) + 1;
                notes
                    .by_id
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id, (owner.clone(), text.to_owned()));
                let note = json!({"id": id, "text": text, "owner": owner});
                envelope_response(
                    StatusCode::CREATED,
                    "note created",
                    Some(json!({"note": note})),
                )
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
                    let notes = notes.by_id.lock().unwrap_or_else(PoisonError::into_inner);
                    let (o, text) = notes.get(&id)?;
                    (*o == owner).then(|| json!({"id": id, "text": text, "owner": o}))
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
            match id.filter(|id| {
                notes
                    .by_id
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(id)
                    .is_some()
            }) {
                Some(id) => {
                    envelope_response(StatusCode::OK, "note deleted", Some(json!({"deleted": id})))
                }
                None => error_response(&not_found()),
            }
        })
    })
    .auth(RouteAuth::Admin);
    let ping = RouteSpec::new("pluginPing", Method::GET, "/plugin/ping", |_| {
        Box::pin(async { envelope_response(StatusCode::OK, "pong", Some(json!({"pong": true}))) })
    });
    let guarded = RouteSpec::new("pluginGuarded", Method::GET, "/plugin/guarded", |_| {
        Box::pin(async { envelope_response::<()>(StatusCode::OK, "let in", None) })
    })
    .guard(|_, req, _| {
        match req
            .headers
            .get("x-plugin-key")
            .and_then(|v| v.to_str().ok())
        {
            Some("open") => Ok(()),
            _ => Err(Error::with_message(
                ErrorCode::Forbidden,
                "the plugin key is missing",
            )),
        }
    });
    [create, read, delete, ping, guarded]
        .into_iter()
        .try_fold(Api::new(sentri.clone(), ""), Api::with_route)
        .expect("the plugin's routes fit the table")
}
