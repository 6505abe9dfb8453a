//! [`RevocationBus`] on Redis pub/sub: every instance publishes what it
//! revokes on one channel under the key prefix and drops what any instance
//! published from its session cache.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::{Message, Value};
use parking_lot::Mutex;
use sentri_core::model::{SessionId, UserId};
use sentri_core::store::{Revocation, RevocationBus, StoreError, StoreResult};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::conn::Conn;
use crate::error::RedisError;

/// How many events each local subscriber may fall behind before it lags
/// (and drops its whole cache), as in the in-process bus.
const LOCAL_CAPACITY: usize = 1024;

/// How long to wait between attempts to subscribe again after a reconnect.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(200);

/// Revocation fan-out between processes through Redis pub/sub, for
/// [`SessionCheck::Cached`](sentri_core::SessionCheck::Cached).
///
/// Build it from a store with [`RedisStore::revocation_bus`](crate::RedisStore::revocation_bus)
/// (it publishes on the store's connections and opens one more for
/// subscribing) or on its own with [`RedisRevocationBus::connect`]. Events go
/// out on the channel `<key prefix>revocations` as `s:<session id>` or
/// `u:<user id>`; instances that share the prefix share the events.
///
/// One background task per bus reads the subscription and feeds a local
/// [`broadcast`] channel; [`subscribe`](RevocationBus::subscribe) hands out
/// receivers of it.
///
/// # Lost subscriptions
///
/// While the subscription connection is down, events published by other
/// instances are lost, and a cache that kept what they revoked would serve
/// revoked sessions. So when the subscription comes back (the task
/// subscribes again after every reconnect), or when the task itself fell
/// behind Redis, the bus **closes** its local channel and starts a new one:
/// receivers of the old one get [`RecvError::Closed`], on which `Sentri`
/// drops its whole session cache. Receivers taken from
/// [`subscribe`](RevocationBus::subscribe) after that get the new channel.
///
/// Note that `Sentri` (as of this version) stops listening after `Closed`,
/// so an instance whose subscription was lost once falls back to the
/// bounded staleness of `Cached` without a bus: revocations by other
/// instances then reach it within the cache's time-to-live, not at once.
///
/// # Errors
///
/// [`publish`](RevocationBus::publish) fails with
/// [`Unavailable`](sentri_core::store::StoreErrorKind::Unavailable) when
/// Redis cannot be reached within the command timeout.
#[derive(Clone)]
pub struct RedisRevocationBus {
    shared: Arc<Shared>,
}

/// The part shared by the bus's clones; dropping the last one stops the
/// background task and closes the subscription.
struct Shared {
    publisher: Conn,
    channel: String,
    local: Arc<Local>,
    subscriber: SubscriberClient,
    task: JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
        let subscriber = self.subscriber.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = subscriber.quit().await;
            });
        }
    }
}

/// The local broadcast channel, replaced when events may have been missed.
struct Local {
    sender: Mutex<broadcast::Sender<Revocation>>,
}

impl Local {
    fn new() -> Self {
        Self {
            sender: Mutex::new(broadcast::channel(LOCAL_CAPACITY).0),
        }
    }

    fn send(&self, event: Revocation) {
        // No receiver is not an error: nobody caches anything.
        let _ = self.sender.lock().send(event);
    }

    fn subscribe(&self) -> broadcast::Receiver<Revocation> {
        self.sender.lock().subscribe()
    }

    /// Close the current channel (its receivers see `Closed` once they have
    /// read what it holds) and open a new one.
    fn renew(&self) {
        let old = std::mem::replace(
            &mut *self.sender.lock(),
            broadcast::channel(LOCAL_CAPACITY).0,
        );
        drop(old);
    }
}

impl RedisRevocationBus {
    /// A bus on its own connections to `url`, publishing and listening on
    /// the channel `<key_prefix>revocations`, with the default settings of
    /// [`RedisStore::builder`](crate::RedisStore::builder).
    ///
    /// Returns once the subscription is active: an event published after
    /// that reaches this bus.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for a bad URL or prefix,
    /// [`Error::Redis`](crate::Error::Redis) when Redis cannot be reached.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, crate::Error> {
        crate::RedisStore::builder()
            .key_prefix(key_prefix)
            .pool_size(1)
            .connect(url)
            .await?
            .revocation_bus()
            .await
    }

    /// Subscribe `subscriber` (built, not yet connected) and start the
    /// background task.
    pub(crate) async fn start(
        publisher: Conn,
        subscriber: SubscriberClient,
        channel: String,
    ) -> Result<Self, crate::Error> {
        subscriber.init().await.map_err(crate::Error::Redis)?;
        let messages = subscriber.message_rx();
        let reconnects = subscriber.reconnect_rx();
        if let Err(err) = subscriber.subscribe(channel.as_str()).await {
            let _ = subscriber.quit().await;
            return Err(crate::Error::Redis(err));
        }
        let local = Arc::new(Local::new());
        let task = tokio::spawn(listen(
            subscriber.clone(),
            channel.clone(),
            local.clone(),
            messages,
            reconnects,
        ));
        Ok(Self {
            shared: Arc::new(Shared {
                publisher,
                channel,
                local,
                subscriber,
                task,
            }),
        })
    }

    /// The pub/sub channel (`<key prefix>revocations`).
    pub fn channel(&self) -> &str {
        &self.shared.channel
    }
}

impl fmt::Debug for RedisRevocationBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocationBus")
            .field("channel", &self.shared.channel)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RevocationBus for RedisRevocationBus {
    async fn publish(&self, event: Revocation) -> StoreResult<()> {
        let payload = encode(event)?;
        let _receivers: i64 = self
            .shared
            .publisher
            .cmd(
                "PUBLISH",
                vec![
                    Value::from(self.shared.channel.as_str()),
                    Value::from(payload),
                ],
            )
            .await?;
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<Revocation> {
        self.shared.local.subscribe()
    }
}

/// `s:<session id>` or `u:<user id>`.
fn encode(event: Revocation) -> Result<String, StoreError> {
    match event {
        Revocation::Session(id) => Ok(format!("s:{id}")),
        Revocation::User(id) => Ok(format!("u:{id}")),
        _ => Err(RedisError::Unsupported("a revocation this version cannot encode").into()),
    }
}

/// The event of a message, or `None` for a payload this version does not
/// know.
fn decode(payload: &str) -> Option<Revocation> {
    let (kind, id) = payload.split_once(':')?;
    match kind {
        "s" => id.parse::<SessionId>().ok().map(Revocation::Session),
        "u" => id.parse::<UserId>().ok().map(Revocation::User),
        _ => None,
    }
}

/// The background task: forward messages of `channel` to `local`; after a
/// reconnect subscribe again, then renew `local` (events may have been
/// missed while the connection was down).
async fn listen(
    subscriber: SubscriberClient,
    channel: String,
    local: Arc<Local>,
    mut messages: broadcast::Receiver<Message>,
    mut reconnects: broadcast::Receiver<fred::types::config::Server>,
) {
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Ok(message) => {
                    if message.channel.as_bytes() != channel.as_bytes() {
                        continue;
                    }
                    match message.value.as_str().as_deref().and_then(decode) {
                        Some(event) => local.send(event),
                        None => tracing::warn!(
                            channel = %channel,
                            "ignored a revocation message this version cannot read"
                        ),
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        channel = %channel,
                        missed,
                        "revocation listener fell behind redis; dropping caches"
                    );
                    local.renew();
                }
                Err(RecvError::Closed) => return,
            },
            reconnect = reconnects.recv() => match reconnect {
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    resubscribe(&subscriber, &channel).await;
                    tracing::info!(
                        channel = %channel,
                        "revocation subscription restored; dropping caches"
                    );
                    local.renew();
                }
                Err(RecvError::Closed) => return,
            },
        }
    }
}

/// Subscribe to `channel` again, until it works.
async fn resubscribe(subscriber: &SubscriberClient, channel: &str) {
    loop {
        match subscriber.subscribe(channel).await {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(
                    channel = %channel,
                    error = %err,
                    "could not subscribe to revocations again; retrying"
                );
                tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let s = SessionId::new();
        let u = UserId::new();
        for event in [Revocation::Session(s), Revocation::User(u)] {
            assert_eq!(decode(&encode(event).unwrap()), Some(event));
        }
        assert_eq!(encode(Revocation::Session(s)).unwrap(), format!("s:{s}"));
        for bad in ["", "s:", "x:1", "s:not-a-uuid", "u"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn renew_closes_old_receivers_after_their_events() {
        let local = Local::new();
        let mut old = local.subscribe();
        let event = Revocation::Session(SessionId::new());
        local.send(event);
        local.renew();
        let mut new = local.subscribe();
        let later = Revocation::User(UserId::new());
        local.send(later);
        assert_eq!(old.recv().await.unwrap(), event);
        assert!(matches!(old.recv().await, Err(RecvError::Closed)));
        assert_eq!(new.recv().await.unwrap(), later);
    }
}
