//! The idempotency logic (F-26), framework-free: adapters read the key
//! header, call [`Sentri::idempotency_begin`], run the handler or replay,
//! and hand the response to the [`IdempotencyTicket`].
//!
//! Keys are scoped to the caller (the user, else a hash of the API key,
//! else the anonymous client's address), so one caller can never receive
//! another's response. The request is fingerprinted (method, path, body):
//! the same key with another request is `IDEMPOTENCY_KEY_REUSED`; while the
//! first is still running, `IDEMPOTENCY_IN_PROGRESS`. Only 2xx responses
//! are stored; anything else frees the key so a retry runs again.
//!
//! The hold is a lease ([`IdempotencyLease`]): the ticket finishes only its
//! own hold. A request that ran longer than the lock's lifetime
//! (`IdempotencyConfig::lock_ttl`, default 60 s) may have been taken over
//! by a repeat; its late `complete` or `release` then changes nothing (and
//! is logged at `warn`), so the takeover's hold stands and a further repeat
//! still gets `IDEMPOTENCY_IN_PROGRESS` or the takeover's replay. Keep
//! request handling shorter than `lock_ttl` (the server's request timeout
//! is) so that a live request never loses its hold.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorCode, Result};
use crate::model::{IdempotencyBegin, IdempotencyLease, StoredResponse, UserId};
use crate::service::Sentri;
use crate::store::IdempotencyStore;

/// The header set on a replayed response.
pub const REPLAYED_HEADER: &str = "X-Idempotent-Replayed";
/// The header echoing the idempotency key.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";

/// Who is calling, for scoping idempotency keys.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallerScope {
    /// An authenticated user.
    User(UserId),
    /// A caller presenting an API key (kept only as a hash).
    ApiKey([u8; 32]),
    /// Anyone else, by client address when known.
    Anonymous(Option<IpAddr>),
}

impl CallerScope {
    /// The scope of a caller: the user if authenticated, else the API key if
    /// one was presented, else the client address.
    pub fn of(user: Option<UserId>, api_key: Option<&str>, ip: Option<IpAddr>) -> Self {
        match (user, api_key) {
            (Some(user), _) => Self::User(user),
            (None, Some(key)) => Self::ApiKey(Sha256::digest(key.as_bytes()).into()),
            (None, None) => Self::Anonymous(ip),
        }
    }

    fn prefix(&self) -> String {
        match self {
            Self::User(id) => format!("u:{id}"),
            Self::ApiKey(hash) => {
                let mut s = String::from("k:");
                for b in &hash[..16] {
                    s.push_str(&format!("{b:02x}"));
                }
                s
            }
            Self::Anonymous(Some(ip)) => format!("a:{ip}"),
            Self::Anonymous(None) => "a:-".to_owned(),
        }
    }
}

/// Validate an idempotency key: 1 to 255 visible ASCII characters.
///
/// ```
/// use sentri_core::idempotency::validate_key;
/// assert!(validate_key(b"order-42").is_ok());
/// assert!(validate_key(b"has space").is_err());
/// assert!(validate_key(&[b'k'; 256]).is_err());
/// ```
///
/// # Errors
/// `VALIDATION_ERROR` naming the header.
pub fn validate_key(raw: &[u8]) -> Result<&str> {
    if raw.is_empty() || raw.len() > 255 || !raw.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(Error::validation(
            "X-Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        ));
    }
    // All bytes are ASCII, so this cannot fail.
    std::str::from_utf8(raw).map_err(|_| Error::validation("X-Idempotency-Key", "not ASCII"))
}

/// What to do with an idempotent request.
#[derive(Debug)]
#[non_exhaustive]
pub enum IdempotencyStart {
    /// Run the handler, then hand the response to the ticket.
    Proceed(IdempotencyTicket),
    /// Send this stored response again (with `X-Idempotent-Replayed: true`
    /// and `X-Request-Id` already among its headers).
    Replay(StoredResponse),
}

/// The right to run a request under an idempotency key. Finish it with
/// [`IdempotencyTicket::complete`]; dropped unfinished, it frees the key.
pub struct IdempotencyTicket {
    store: Arc<dyn IdempotencyStore>,
    key: String,
    lease: IdempotencyLease,
    ttl: Duration,
    done: bool,
}

/// Log a `complete` or `release` by a stale holder (it changed nothing):
/// `skipped` says which, `request` names the request.
pub(crate) fn log_stale(skipped: &str, request: &str) {
    tracing::warn!(
        request,
        "idempotency lock lapsed before the request finished ({skipped} skipped): \
         another request may have taken the key over; raise idempotency lock_ttl \
         above the longest request time"
    );
}

impl std::fmt::Debug for IdempotencyTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyTicket").finish_non_exhaustive()
    }
}

impl IdempotencyTicket {
    /// Store a 2xx response for replay; free the key for anything else.
    /// Returns `false` when the ticket's hold had lapsed (its lease is
    /// stale): nothing was stored or freed (the caller, which knows the
    /// request, logs it).
    ///
    /// # Errors
    /// `SERVICE_UNAVAILABLE` when the store is down (the response itself
    /// may still be sent; the key then expires with its lock).
    pub async fn complete(mut self, response: StoredResponse) -> Result<bool> {
        self.done = true;
        if (200..300).contains(&response.status) {
            Ok(self
                .store
                .complete(&self.key, &self.lease, response, self.ttl)
                .await?)
        } else {
            self.release_held().await
        }
    }

    /// Free the key without storing anything. Returns `false` when the
    /// ticket's hold had lapsed: nothing was freed (the caller logs it).
    ///
    /// # Errors
    /// `SERVICE_UNAVAILABLE` when the store is down.
    pub async fn release(mut self) -> Result<bool> {
        self.done = true;
        self.release_held().await
    }

    async fn release_held(&self) -> Result<bool> {
        Ok(self.store.release(&self.key, &self.lease).await?)
    }
}

impl Drop for IdempotencyTicket {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // The handler panicked or the request was cancelled: free the key.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            let key = std::mem::take(&mut self.key);
            let lease = self.lease;
            handle.spawn(async move {
                match store.release(&key, &lease).await {
                    Ok(true) => {}
                    Ok(false) => log_stale("freeing the key", "a cancelled or panicked request"),
                    Err(err) => tracing::warn!(error = %err, "could not free an idempotency key"),
                }
            });
        }
    }
}

/// One idempotent request, as an adapter sees it.
#[derive(Debug, Clone, Copy)]
pub struct IdempotentRequest<'a> {
    /// The validated key (see [`validate_key`]).
    pub key: &'a str,
    /// Who is calling.
    pub scope: &'a CallerScope,
    /// The HTTP method.
    pub method: &'a str,
    /// The request path (with query).
    pub path: &'a str,
    /// The request body.
    pub body: &'a [u8],
}

impl Sentri {
    /// Whether the idempotency layer applies to `method`.
    pub fn idempotency_applies(&self, method: &str) -> bool {
        self.config()
            .idempotency()
            .methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(method))
    }

    /// Delete expired idempotency records (stored responses past their
    /// `ttl`, locks past their `lock_ttl`); returns how many. Stores that
    /// expire records by themselves (Redis, memory) return `0`.
    ///
    /// # Errors
    /// `SERVICE_UNAVAILABLE`.
    pub async fn purge_expired_idempotency(&self) -> Result<u64> {
        Ok(self
            .stores()
            .idempotency
            .purge_expired_idempotency()
            .await?)
    }

    /// Purge expired idempotency records every `every` in a background
    /// task, until the returned handle is aborted or the runtime stops.
    /// Failures are logged.
    pub fn spawn_idempotency_purger(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let sentri = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match sentri.purge_expired_idempotency().await {
                    Ok(n) if n > 0 => {
                        tracing::debug!(purged = n, "expired idempotency records purged");
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "purging expired idempotency records failed");
                    }
                }
            }
        })
    }

    /// Take the request's key: proceed, or replay a stored response.
    ///
    /// # Errors
    /// `IDEMPOTENCY_IN_PROGRESS`, `IDEMPOTENCY_KEY_REUSED`,
    /// `SERVICE_UNAVAILABLE` (store down: never a wrong replay).
    pub async fn idempotency_begin(&self, req: IdempotentRequest<'_>) -> Result<IdempotencyStart> {
        let cfg = self.config().idempotency();
        let key = format!("{}:{}", req.scope.prefix(), req.key);
        let mut h = Sha256::new();
        for part in [req.method.as_bytes(), req.path.as_bytes(), req.body] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        let fingerprint: [u8; 32] = h.finalize().into();
        let store = self.stores().idempotency.clone();
        match store.begin(&key, &fingerprint, cfg.lock_ttl).await? {
            IdempotencyBegin::Acquired(lease) => Ok(IdempotencyStart::Proceed(IdempotencyTicket {
                store,
                key,
                lease,
                ttl: cfg.ttl,
                done: false,
            })),
            IdempotencyBegin::Completed(mut response) => {
                response
                    .headers
                    .retain(|(n, _)| !n.eq_ignore_ascii_case(REPLAYED_HEADER));
                response
                    .headers
                    .push((REPLAYED_HEADER.to_owned(), "true".to_owned()));
                if !response
                    .headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case(REQUEST_ID_HEADER))
                {
                    response
                        .headers
                        .push((REQUEST_ID_HEADER.to_owned(), req.key.to_owned()));
                }
                Ok(IdempotencyStart::Replay(response))
            }
            IdempotencyBegin::InProgress => Err(Error::new(ErrorCode::IdempotencyInProgress)),
            IdempotencyBegin::Mismatch => Err(Error::new(ErrorCode::IdempotencyKeyReused)),
        }
    }
}
