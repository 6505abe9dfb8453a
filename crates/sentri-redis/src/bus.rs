//! [`RevocationBus`] on Redis pub/sub: every instance publishes what it
//! revokes on one channel under the key prefix and drops what any instance
//! published from its session cache.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::{Message, Value};
use parking_lot::Mutex;
use sentri_core::model::{SessionId, UserId};
use sentri_core::store::{Revocation, RevocationBus, StoreError, StoreResult};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::conn::Conn;
use crate::error::RedisError;

/// How many events each local subscriber may fall behind before it lags
/// (and drops its whole cache), as in the in-process bus.
const LOCAL_CAPACITY: usize = 1024;

/// How long to wait between attempts to subscribe again after the
/// subscription was lost.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(200);

/// How often the listener checks, with a `PING` on the subscription
/// connection, that Redis still answers there. With the command timeout it
/// bounds how long a silently dead connection (a frozen Redis, a network
/// partition without a reset) is taken for a live one.
pub const BUS_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

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
/// # Live, and when it is not
///
/// The bus is **live** while Redis has confirmed its subscription and the
/// connection still answers: every event published from then on reaches
/// it. [`RedisRevocationBus::connect`] and
/// [`RedisStore::revocation_bus`](crate::RedisStore::revocation_bus) return
/// only once it is live (fred resolves a `SUBSCRIBE` as soon as it is
/// written; the bus follows it with a `PING` on the same connection and
/// waits for the answer, which Redis sends only after the `SUBSCRIBE` took
/// effect), so an event published right after they return is heard.
///
/// It is **not live** from the moment it may miss events: a connection
/// error, a reconnect (a new connection holds no subscription), or a
/// heartbeat `PING` (every [`BUS_HEARTBEAT_INTERVAL`], 1 s) unanswered
/// within the command timeout (a frozen Redis, a connection that died
/// without a reset). It becomes live again when a new `SUBSCRIBE` is
/// confirmed the same way (tried every 200 ms), in a new **epoch**;
/// [`live_epoch`](RevocationBus::live_epoch) reads it with one atomic load.
///
/// `Sentri` in [`Cached`](sentri_core::SessionCheck::Cached) mode uses its
/// session cache only while the bus is live, and only entries cached in the
/// current epoch: while the bus is not live every check reads the session
/// from the store (and caches nothing), and what was cached before a gap is
/// never used after it, since revocations published during the gap were
/// missed. So an instance accepts a session revoked on another instance
/// only until its bus notices the loss: at once when the connection closes
/// (a killed or restarted Redis), within `BUS_HEARTBEAT_INTERVAL` + the
/// command timeout (3 s by default) when it dies silently. Redis down
/// costs store reads, not wrong answers.
///
/// When the bus is live again, and when its task fell behind Redis, it also
/// **closes** its local channel and starts a new one: receivers of the old
/// one get [`RecvError::Closed`], on which `Sentri` subscribes again and
/// drops its whole cache (freeing what the epoch check already ignores).
/// Receivers taken from [`subscribe`](RevocationBus::subscribe) after that
/// get the new channel.
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

/// The local broadcast channel, replaced when events may have been missed,
/// and whether the subscription is live.
struct Local {
    sender: Mutex<broadcast::Sender<Revocation>>,
    /// The current epoch while the subscription is confirmed; 0 while it
    /// is not (the hot path of `Sentri` reads this, lock-free).
    live: AtomicU64,
}

impl Local {
    fn new() -> Self {
        Self {
            sender: Mutex::new(broadcast::channel(LOCAL_CAPACITY).0),
            live: AtomicU64::new(0),
        }
    }

    fn live_epoch(&self) -> Option<u64> {
        match self.live.load(Ordering::Acquire) {
            0 => None,
            epoch => Some(epoch),
        }
    }

    /// Live in `epoch` (not 0) from now on.
    fn set_live(&self, epoch: u64) {
        debug_assert_ne!(epoch, 0);
        self.live.store(epoch, Ordering::Release);
    }

    /// Not live: events may be missed from now on. True if it was live.
    fn set_down(&self) -> bool {
        self.live.swap(0, Ordering::AcqRel) != 0
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
    /// Returns once Redis has confirmed the subscription: an event
    /// published after that reaches this bus.
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

    /// Subscribe `subscriber` (built, not yet connected), wait until Redis
    /// confirmed the subscription, and start the background task.
    /// `timeout` bounds each confirmation.
    pub(crate) async fn start(
        publisher: Conn,
        subscriber: SubscriberClient,
        channel: String,
        timeout: Duration,
    ) -> Result<Self, crate::Error> {
        subscriber.init().await.map_err(crate::Error::Redis)?;
        let messages = subscriber.message_rx();
        let reconnects = subscriber.reconnect_rx();
        let errors = subscriber.error_rx();
        if let Err(err) = subscribe_confirmed(&subscriber, &channel, timeout).await {
            let _ = subscriber.quit().await;
            return Err(crate::Error::Redis(err));
        }
        let local = Arc::new(Local::new());
        local.set_live(1);
        let listener = Listener {
            subscriber: subscriber.clone(),
            channel: channel.clone(),
            local: local.clone(),
            timeout,
            epoch: 1,
            next_check: Instant::now() + BUS_HEARTBEAT_INTERVAL,
        };
        let events = Events {
            messages,
            reconnects,
            errors,
        };
        let task = tokio::spawn(listener.run(events));
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

    fn live_epoch(&self) -> Option<u64> {
        self.shared.local.live_epoch()
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

/// SUBSCRIBE, then PING on the same connection and wait for the answer.
///
/// Fred resolves `subscribe` once the command is written, not when Redis
/// confirms it. Redis answers the commands of one connection in order, so
/// the answer to the PING proves the SUBSCRIBE before it took effect: an
/// event published from then on reaches this connection. (A refused
/// SUBSCRIBE answers with an error, which then fails the PING.)
async fn subscribe_confirmed(
    subscriber: &SubscriberClient,
    channel: &str,
    timeout: Duration,
) -> Result<(), fred::error::Error> {
    subscriber.subscribe(channel).await?;
    ping(subscriber, timeout).await
}

/// PING with a fresh token on `subscriber` and check that Redis echoes it
/// (as `["pong", token]` on a subscribed RESP2 connection), within
/// `timeout`.
async fn ping(subscriber: &SubscriberClient, timeout: Duration) -> Result<(), fred::error::Error> {
    use fred::error::{Error, ErrorKind};
    let token = uuid::Uuid::new_v4().simple().to_string();
    let reply: Value = tokio::time::timeout(timeout, subscriber.ping(Some(token.clone())))
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, "no answer to PING on the subscription"))??;
    let echoed = match &reply {
        Value::Array(items) => items.iter().any(|v| v.as_str().as_deref() == Some(&token)),
        other => other.as_str().as_deref() == Some(&token),
    };
    if echoed {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Protocol,
            "unexpected answer to PING on the subscription",
        ))
    }
}

/// What the subscription client reports.
struct Events {
    messages: broadcast::Receiver<Message>,
    reconnects: broadcast::Receiver<fred::types::config::Server>,
    errors: broadcast::Receiver<(fred::error::Error, Option<fred::types::config::Server>)>,
}

impl Events {
    /// Forget the reconnects and errors reported so far: a subscription
    /// made from now on is on a connection made at or after them.
    fn settle(&mut self) {
        while !matches!(
            self.reconnects.try_recv(),
            Err(TryRecvError::Empty | TryRecvError::Closed)
        ) {}
        while !matches!(
            self.errors.try_recv(),
            Err(TryRecvError::Empty | TryRecvError::Closed)
        ) {}
    }
}

/// The background task's state.
struct Listener {
    subscriber: SubscriberClient,
    channel: String,
    local: Arc<Local>,
    /// Bounds each confirmation (the command timeout).
    timeout: Duration,
    /// The last epoch handed out.
    epoch: u64,
    /// When to PING next (live) or try to subscribe again (down).
    next_check: Instant,
}

impl Listener {
    /// Forward messages of the channel to `local`; mark the bus down on a
    /// connection error, a reconnect or an unanswered heartbeat, and live
    /// again (in a new epoch, on a new local channel) once a new
    /// subscription is confirmed.
    async fn run(mut self, mut events: Events) {
        loop {
            tokio::select! {
                // An error of the old connection before the reconnect
                // that follows it (else it would mark the new subscription
                // down), and the heartbeat before messages (a flood of them
                // must not starve it).
                biased;
                error = events.errors.recv() => match error {
                    Ok((err, _)) => self.lost(&format!("connection error: {err}")),
                    Err(RecvError::Lagged(_)) => self.lost("connection errors"),
                    Err(RecvError::Closed) => return self.stopped(),
                },
                reconnect = events.reconnects.recv() => match reconnect {
                    // A new connection holds no subscription yet.
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        self.lost("reconnected");
                        self.recover(&mut events).await;
                    }
                    Err(RecvError::Closed) => return self.stopped(),
                },
                () = tokio::time::sleep_until(self.next_check) => {
                    if self.local.live_epoch().is_some() {
                        match ping(&self.subscriber, self.timeout).await {
                            Ok(()) => self.next_check = Instant::now() + BUS_HEARTBEAT_INTERVAL,
                            Err(err) => self.lost(&format!("heartbeat failed: {err}")),
                        }
                    } else {
                        self.recover(&mut events).await;
                    }
                },
                message = events.messages.recv() => match message {
                    Ok(message) => self.forward(&message),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            channel = %self.channel,
                            missed,
                            "revocation listener fell behind redis; dropping caches"
                        );
                        // Events were dropped here, not on the connection:
                        // a new epoch if live; if not, recovering renews.
                        if self.local.set_down() {
                            self.live_again();
                        }
                    }
                    Err(RecvError::Closed) => return self.stopped(),
                },
            }
        }
    }

    fn forward(&self, message: &Message) {
        if message.channel.as_bytes() != self.channel.as_bytes() {
            return;
        }
        match message.value.as_str().as_deref().and_then(decode) {
            Some(event) => self.local.send(event),
            None => tracing::warn!(
                channel = %self.channel,
                "ignored a revocation message this version cannot read"
            ),
        }
    }

    /// Events may be missed from now on: not live until a new subscription
    /// is confirmed, which is tried soon.
    /// The client's channels closed: no event will arrive any more, so
    /// the bus is down for good (a `Cached` instance reads the store).
    fn stopped(&self) {
        self.local.set_down();
        tracing::warn!(channel = %self.channel, "revocation listener stopped: sessions are read from the store");
    }

    fn lost(&mut self, why: &str) {
        if self.local.set_down() {
            tracing::warn!(
                channel = %self.channel,
                why,
                "revocation subscription lost; cached sessions are not used until it is back"
            );
        }
        self.next_check = Instant::now() + RESUBSCRIBE_PAUSE;
    }

    /// Subscribe again and, once Redis confirmed it, go live in a new
    /// epoch; on failure try again after a pause.
    ///
    /// Only on a connected client: fred reports a reconnect before it
    /// marks the client connected, so the losses reported before that
    /// check are settled by this SUBSCRIBE (without that, the reconnect
    /// that made its connection would be taken for a new loss and drop the
    /// caches a second time). Those reported after it stay pending and are
    /// handled next, at worst as one more loss.
    async fn recover(&mut self, events: &mut Events) {
        if !self.subscriber.is_connected() {
            self.next_check = Instant::now() + RESUBSCRIBE_PAUSE;
            return;
        }
        events.settle();
        match subscribe_confirmed(&self.subscriber, &self.channel, self.timeout).await {
            Ok(()) => {
                tracing::info!(
                    channel = %self.channel,
                    "revocation subscription restored; dropping caches"
                );
                self.live_again();
            }
            Err(err) => {
                tracing::debug!(
                    channel = %self.channel,
                    error = %err,
                    "could not subscribe to revocations again; retrying"
                );
                self.next_check = Instant::now() + RESUBSCRIBE_PAUSE;
            }
        }
    }

    /// The subscription is confirmed after a gap: close the local channel
    /// (its receivers drop their caches) and go live in a new epoch, so
    /// nothing cached before the gap is trusted again.
    fn live_again(&mut self) {
        self.local.renew();
        self.epoch += 1;
        self.local.set_live(self.epoch);
        self.next_check = Instant::now() + BUS_HEARTBEAT_INTERVAL;
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
