//! Throttling of logins and self-registrations (F-27), framework-free.
//!
//! # Logins
//!
//! Attempts are counted per identifier (normalised, then hashed so the
//! counter store never holds the identifier itself) and per client address
//! (an IPv4 address, or the /64 prefix of an IPv6 address: one host
//! commonly holds a whole /64), in a sliding window.
//!
//! A login *reserves* its attempt before the password is checked: one
//! atomic [`ThrottleStore::reserve_all`] for both counters (the address's
//! and the identifier's, one round trip to the store) counts the attempt
//! under each and says whether both are within their limits. So N
//! concurrent guesses at the limit cannot overshoot it: at most
//! `max_failures_per_identifier` of them ever reach the password check in a
//! window, on every store and across every instance sharing it. Over a
//! limit a login is refused with `RATE_LIMITED` and a `Retry-After` of the
//! time until the attempt that keeps the count at the limit leaves the
//! window; the password is not even checked, and the refused attempt is
//! counted under neither key.
//!
//! The login then settles its reservations:
//!
//! | outcome | identifier counter | address counter |
//! |---|---|---|
//! | success | cleared (the user's earlier mistakes are forgiven) | this attempt refunded |
//! | `SERVICE_UNAVAILABLE` (a store or the hashing queue was busy: nothing was concluded) | this attempt refunded | this attempt refunded |
//! | any other error (`INVALID_CREDENTIALS`, an override's own error) | kept | kept |
//!
//! Settling is one [`ThrottleStore::forget`] at most. A success answers
//! first and settles in the background: its reservations only make the
//! counts higher until then (never an extra guess), and in this process
//! the next reservation of either key waits for that settling, so it sees
//! the success (another instance may still count it for the moment).
//!
//! Within one process, at most one password check per identifier is in
//! flight ([`LoginTurns`]): the others wait for its outcome (at most the
//! password policy's `max_wait`, then `SERVICE_UNAVAILABLE`, refunded), so
//! a burst of guesses for one account is checked one after the other and
//! a success clears the count before the next guess is checked.
//!
//! A refused login costs at most the one reservation (while the user is
//! looked up), never a password check.
//!
//! # Registrations
//!
//! Self-registrations (`POST /register` without a configured API key) are
//! limited per client address (`max_registrations_per_ip` in
//! `registration_window`, default 10 per hour), reserved the same way before
//! the password is hashed; a registration refused for its input
//! (`VALIDATION_ERROR`) or by a busy server (`SERVICE_UNAVAILABLE`) is
//! refunded, every other outcome counts. With an API key configured every
//! `/register` carries it, and a trusted back end registering for many
//! users is not limited.
//!
//! # Purging
//!
//! Attempts outlive their window in SQL stores until
//! [`Sentri::purge_expired_throttle`] (the server runs it in the
//! background, see [`Sentri::spawn_throttle_purger`]); Redis expires them
//! by itself.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::config::ThrottleConfig;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Sentri;
use crate::store::{AttemptId, Forget, Limit, Reservations, ThrottleStore};

/// The login throttle of a [`Sentri`]; get it with [`Sentri::throttle`].
pub struct LoginThrottle<'a> {
    store: &'a dyn ThrottleStore,
    config: &'a ThrottleConfig,
    turns: &'a LoginTurns,
    /// How long a reservation waits for an earlier login's settling.
    settle_wait: Duration,
    api_key: bool,
    now: DateTime<Utc>,
}

/// The first 16 bytes of the SHA-256 of the normalised identifier.
fn identifier_digest(identifier_key: &str) -> [u8; 16] {
    let digest = Sha256::digest(identifier_key.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn identifier_key(identifier_key: &str) -> String {
    let mut key = String::with_capacity(9 + 32);
    key.push_str("login:id:");
    for b in identifier_digest(identifier_key) {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// The network a client address is counted under: the address itself for
/// IPv4 (and IPv4-mapped IPv6), the /64 prefix for IPv6.
fn address_part(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(bits))
            }
        },
    }
}

fn ip_key(ip: IpAddr) -> String {
    format!("login:ip:{}", address_part(ip))
}

fn registration_key(ip: IpAddr) -> String {
    format!("register:ip:{}", address_part(ip))
}

/// One counted attempt under one key.
#[derive(Debug)]
struct Held {
    key: String,
    id: AttemptId,
}

impl Held {
    /// Giving this attempt back.
    fn refund(&self) -> Forget<'_> {
        Forget::Attempt {
            key: &self.key,
            id: &self.id,
        }
    }
}

/// The reservations of one login, from [`LoginThrottle::reserve`]; settle
/// it with [`LoginThrottle::settle`]. Dropping it keeps the attempts
/// counted (as a failure).
#[derive(Debug, Default)]
#[must_use = "settle the attempt, or it counts as a failure"]
pub struct LoginAttempt {
    identifier: Option<Held>,
    address: Option<Held>,
}

impl LoginAttempt {
    /// The keys of the counters holding this attempt.
    fn keys(&self) -> Vec<&str> {
        [&self.identifier, &self.address]
            .into_iter()
            .flatten()
            .map(|held| held.key.as_str())
            .collect()
    }
}

/// The reservation of one self-registration, from
/// [`LoginThrottle::reserve_registration`]; settle it with
/// [`LoginThrottle::settle_registration`].
#[derive(Debug, Default)]
#[must_use = "settle the registration attempt"]
pub struct RegistrationAttempt(Option<Held>);

fn wait_until(now: DateTime<Utc>, retry_at: DateTime<Utc>) -> Duration {
    let wait = (retry_at - now).to_std().unwrap_or(Duration::from_secs(1));
    wait.max(Duration::from_secs(1))
}

impl LoginThrottle<'_> {
    /// Reserve one attempt under each of `keys` (key, window, limit) in one
    /// store call: `Ok(Ok(held))` (in the order of `keys`) when every key
    /// had room, `Ok(Err(wait))` when one had none (nothing is counted).
    async fn reserve_keys<const N: usize>(
        &self,
        keys: [Option<(String, Duration, u32)>; N],
    ) -> Result<std::result::Result<[Option<Held>; N], Duration>> {
        let limits: Vec<Limit<'_>> = keys
            .iter()
            .flatten()
            .map(|(key, window, limit)| Limit {
                key,
                window: *window,
                limit: *limit,
            })
            .collect();
        if limits.is_empty() {
            return Ok(Ok(std::array::from_fn(|_| None)));
        }
        match self.store.reserve_all(&limits, self.now).await? {
            Reservations::Admitted { ids } => {
                if ids.len() != limits.len() {
                    return Err(crate::store::StoreError::other(
                        "reserve_all admitted a different number of attempts",
                    )
                    .into());
                }
                let mut ids = ids.into_iter();
                Ok(Ok(keys.map(|key| {
                    let (key, ..) = key?;
                    Some(Held {
                        key,
                        id: ids.next()?,
                    })
                })))
            }
            Reservations::Refused { retry_at, .. } => Ok(Err(wait_until(self.now, retry_at))),
        }
    }

    /// Reserve a login attempt for `identifier` (its normalised key) from
    /// `ip`, before the password is checked: the address's and the
    /// identifier's counters in one atomic store call
    /// ([`ThrottleStore::reserve_all`]), so a guess refused by either never
    /// holds a place in the other's count: the identifier's limit is exact
    /// under any concurrency, and the address's is never exceeded.
    ///
    /// # Errors
    /// `RATE_LIMITED` with retry-after; `SERVICE_UNAVAILABLE` when the
    /// counter store is down (fail closed: never an unthrottled login).
    pub async fn reserve(&self, identifier: &str, ip: Option<IpAddr>) -> Result<LoginAttempt> {
        let c = self.config;
        let ip_key = ip
            .filter(|_| c.max_failures_per_ip > 0)
            .map(|ip| (ip_key(ip), c.window, c.max_failures_per_ip));
        let id_key = (c.max_failures_per_identifier > 0).then(|| {
            (
                identifier_key(identifier),
                c.window,
                c.max_failures_per_identifier,
            )
        });
        let keys: Vec<&str> = [&ip_key, &id_key]
            .into_iter()
            .flatten()
            .map(|(key, ..)| key.as_str())
            .collect();
        self.turns.settled(&keys, self.settle_wait).await;
        match self.reserve_keys([ip_key, id_key]).await? {
            Ok([address, identifier]) => Ok(LoginAttempt {
                identifier,
                address,
            }),
            Err(wait) => Err(Error::rate_limited(wait)),
        }
    }

    /// Settle a login's reservations by its outcome (see the module docs):
    /// a success clears the identifier's count and refunds the address's
    /// attempt; `SERVICE_UNAVAILABLE` refunds both; any other error keeps
    /// both. One store call at most ([`ThrottleStore::forget`]); store
    /// failures are logged, not returned.
    pub async fn settle<T>(&self, attempt: LoginAttempt, outcome: &Result<T>) {
        let LoginAttempt {
            identifier,
            address,
        } = attempt;
        let identifier = match outcome {
            Ok(_) => identifier.map(|held| (held, true)),
            Err(err) if err.is(&ErrorCode::ServiceUnavailable) => {
                identifier.map(|held| (held, false))
            }
            Err(_) => return,
        };
        let mut items = Vec::with_capacity(2);
        if let Some((held, clear)) = &identifier {
            items.push(if *clear {
                Forget::Key(&held.key)
            } else {
                held.refund()
            });
        }
        items.extend(address.as_ref().map(Held::refund));
        self.forget(&items).await;
    }

    /// Give both reservations back (the attempt should not count).
    pub async fn refund(&self, attempt: LoginAttempt) {
        let items: Vec<_> = [&attempt.identifier, &attempt.address]
            .into_iter()
            .flatten()
            .map(Held::refund)
            .collect();
        self.forget(&items).await;
    }

    async fn forget(&self, items: &[Forget<'_>]) {
        if items.is_empty() {
            return;
        }
        if let Err(err) = self.store.forget(items).await {
            tracing::warn!(error = %err, "could not give back throttle reservations");
        }
    }

    /// Forget the identifier's failures.
    pub async fn clear(&self, identifier: &str) {
        if let Err(err) = self.store.clear_failures(&identifier_key(identifier)).await {
            tracing::warn!(error = %err, "could not clear failed-login count");
        }
    }

    /// Reserve a self-registration from `ip`, before the password is
    /// hashed. Call it after [`Sentri::check_registration`]: with an API key
    /// configured, every caller that got this far presented it and is not
    /// limited (nothing is reserved). Without a client address nothing is
    /// reserved either.
    ///
    /// # Errors
    /// `RATE_LIMITED` with retry-after; `SERVICE_UNAVAILABLE` when the
    /// counter store is down.
    pub async fn reserve_registration(&self, ip: Option<IpAddr>) -> Result<RegistrationAttempt> {
        let c = self.config;
        if self.api_key || c.max_registrations_per_ip == 0 {
            return Ok(RegistrationAttempt(None));
        }
        let key = ip.map(|ip| {
            (
                registration_key(ip),
                c.registration_window,
                c.max_registrations_per_ip,
            )
        });
        match self.reserve_keys([key]).await? {
            Ok([held]) => Ok(RegistrationAttempt(held)),
            Err(wait) => Err(Error::rate_limited(wait)),
        }
    }

    /// Settle a registration's reservation: refunded when the request was
    /// refused for its input (`VALIDATION_ERROR`) or by a busy server
    /// (`SERVICE_UNAVAILABLE`), kept otherwise.
    pub async fn settle_registration<T>(&self, attempt: RegistrationAttempt, outcome: &Result<T>) {
        if let Err(err) = outcome
            && (err.is(&ErrorCode::ValidationError) || err.is(&ErrorCode::ServiceUnavailable))
        {
            let items: Vec<_> = attempt.0.iter().map(Held::refund).collect();
            self.forget(&items).await;
        }
    }
}

/// At most one password check per identifier in flight in this process,
/// and the settling of logins that answered before their reservations were
/// given back.
///
/// Two maps from a digest to an async lock, each split in shards (each
/// behind a short `parking_lot` lock) so unrelated logins do not contend.
/// An entry lives only while someone holds or waits for it: the last one
/// out removes it (also when a waiter is cancelled), so the maps are
/// bounded by the logins in flight.
///
/// - *Turns*, by identifier: one password check at a time.
/// - *Settling*, by throttle key: a successful login answers at once and
///   gives its reservations back in the background ([`Settling`]); a later
///   reservation of the same key in this process first waits for that
///   ([`LoginTurns::settled`]), so it never sees a count the success
///   already cleared.
#[derive(Default)]
pub struct LoginTurns {
    turns: Lines<tokio::sync::Mutex<()>>,
    settling: Lines<tokio::sync::RwLock<()>>,
}

/// One shard of [`Lines`]: digest → its lock.
type Shard<L> = parking_lot::Mutex<HashMap<[u8; 16], Arc<L>>>;

const TURN_SHARDS: usize = 64;

/// Digest → lock, in shards; see [`LoginTurns`].
struct Lines<L> {
    shards: Arc<[Shard<L>]>,
}

impl<L> Default for Lines<L> {
    fn default() -> Self {
        Self {
            shards: (0..TURN_SHARDS)
                .map(|_| parking_lot::Mutex::new(HashMap::new()))
                .collect(),
        }
    }
}

impl<L: Default> Lines<L> {
    fn shard<'s>(shards: &'s [Shard<L>], digest: &[u8; 16]) -> &'s Shard<L> {
        &shards[usize::from(digest[0]) % shards.len()]
    }

    /// A place in `digest`'s line, making the line when there is none.
    fn join(&self, digest: [u8; 16]) -> Place<L> {
        let lock = Self::shard(&self.shards, &digest)
            .lock()
            .entry(digest)
            .or_default()
            .clone();
        Place {
            shards: self.shards.clone(),
            digest,
            lock: Some(lock),
        }
    }

    /// A place in `digest`'s line when there is one.
    fn join_existing(&self, digest: [u8; 16]) -> Option<Place<L>> {
        let lock = Self::shard(&self.shards, &digest)
            .lock()
            .get(&digest)?
            .clone();
        Some(Place {
            shards: self.shards.clone(),
            digest,
            lock: Some(lock),
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

impl std::fmt::Debug for LoginTurns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginTurns").finish_non_exhaustive()
    }
}

/// A place in a line; removes the entry when the last one leaves.
struct Place<L: Default> {
    shards: Arc<[Shard<L>]>,
    digest: [u8; 16],
    lock: Option<Arc<L>>,
}

impl<L: Default> Place<L> {
    fn lock(&self) -> Arc<L> {
        self.lock
            .clone()
            .expect("a place holds its lock until dropped")
    }
}

impl<L: Default> Drop for Place<L> {
    fn drop(&mut self) {
        let Some(lock) = self.lock.take() else {
            return;
        };
        let mut shard = Lines::shard(&self.shards, &self.digest).lock();
        drop(lock);
        if shard
            .get(&self.digest)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            shard.remove(&self.digest);
        }
    }
}

/// The turn of one login: the only password check of its identifier in
/// flight until dropped.
pub struct Turn {
    // Field order matters: the guard goes before the place, so the place
    // sees the final count.
    _guard: tokio::sync::OwnedMutexGuard<()>,
    _place: Place<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn").finish_non_exhaustive()
    }
}

/// Held while a login's reservations are given back after it answered
/// (see [`LoginTurns`]); dropping it lets later reservations of its keys
/// go ahead.
pub struct Settling {
    // Guards before places, as in [`Turn`].
    _guards: Vec<tokio::sync::OwnedRwLockReadGuard<()>>,
    _places: Vec<Place<tokio::sync::RwLock<()>>>,
}

impl std::fmt::Debug for Settling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settling").finish_non_exhaustive()
    }
}

impl LoginTurns {
    /// Wait (at most `max_wait`) for the turn of `identifier` (its
    /// normalised key).
    ///
    /// # Errors
    /// `SERVICE_UNAVAILABLE` with a `Retry-After` when the turn did not come
    /// within `max_wait`.
    pub async fn turn(&self, identifier: &str, max_wait: Duration) -> Result<Turn> {
        let place = self.turns.join(identifier_digest(identifier));
        // Bound first, so the waiting future (and its handle on the lock)
        // is gone before `place` is dropped.
        let waited = tokio::time::timeout(max_wait, place.lock().lock_owned()).await;
        match waited {
            Ok(guard) => Ok(Turn {
                _guard: guard,
                _place: place,
            }),
            Err(_) => Err(crate::password::busy(max_wait)),
        }
    }

    /// Mark the throttle `keys` as being settled until the returned value
    /// is dropped.
    pub async fn settling(&self, keys: &[&str]) -> Settling {
        // In digest order: readers that take several locks in one order
        // cannot wait on each other in a circle through a queued writer.
        let mut digests: Vec<[u8; 16]> = keys.iter().map(|k| identifier_digest(k)).collect();
        digests.sort_unstable();
        digests.dedup();
        let mut places = Vec::with_capacity(digests.len());
        let mut guards = Vec::with_capacity(digests.len());
        for digest in digests {
            let place = self.settling.join(digest);
            guards.push(place.lock().read_owned().await);
            places.push(place);
        }
        Settling {
            _guards: guards,
            _places: places,
        }
    }

    /// Wait (at most `max_wait`, then go ahead) until the settlings of
    /// `keys` that began before this call have ended. Immediate when none
    /// is in flight, which is nearly always.
    pub async fn settled(&self, keys: &[&str], max_wait: Duration) {
        for key in keys {
            let Some(place) = self.settling.join_existing(identifier_digest(key)) else {
                continue;
            };
            // A writer waits for every reader before it; holding the write
            // lock for no time only orders this reservation after them.
            let _ = tokio::time::timeout(max_wait, place.lock().write_owned()).await;
            drop(place);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.turns.len() + self.settling.len()
    }
}

impl Sentri {
    /// The login throttle, as of now.
    pub fn throttle(&self) -> LoginThrottle<'_> {
        LoginThrottle {
            store: self.stores().throttle.as_ref(),
            config: self.config().throttle(),
            turns: self.login_turns(),
            settle_wait: self.passwords().policy().wait_bound(),
            api_key: self.config().has_api_key(),
            now: self.now(),
        }
    }

    /// Settle a successful login's reservations after it answered: its
    /// turn and its keys stay marked until the identifier is cleared and
    /// the address refunded, so the next check of the identifier, and the
    /// next reservation of either key in this process, see the success
    /// (see [`LoginTurns`]). Inline when there is no tokio runtime.
    pub(crate) async fn settle_success(&self, attempt: LoginAttempt, turn: Turn) {
        let settling = self.login_turns().settling(&attempt.keys()).await;
        let sentri = self.clone();
        let settle = async move {
            sentri.throttle().settle(attempt, &Ok(())).await;
            drop(settling);
            drop(turn);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(settle)),
            Err(_) => settle.await,
        }
    }

    /// Delete throttle attempts whose window has passed (F-27); returns how
    /// many the store deleted.
    ///
    /// # Errors
    /// `SERVICE_UNAVAILABLE`.
    pub async fn purge_expired_throttle(&self) -> Result<u64> {
        Ok(self.stores().throttle.purge_expired(self.now()).await?)
    }

    /// Purge expired throttle attempts every `every` in a background task,
    /// until the returned handle is aborted or the runtime stops. Failures
    /// are logged.
    pub fn spawn_throttle_purger(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let sentri = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match sentri.purge_expired_throttle().await {
                    Ok(n) if n > 0 => {
                        tracing::debug!(purged = n, "expired throttle attempts purged")
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "purging expired throttle attempts failed");
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_keys_do_not_contain_the_identifier() {
        let k = identifier_key("alice@example.com");
        assert!(!k.contains("alice"));
        assert_eq!(k, identifier_key("alice@example.com"));
        assert_ne!(k, identifier_key("bob@example.com"));
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), "login:ip:2001:db8:1:2::/64");
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(other));
        assert_eq!(registration_key(b), "register:ip:2001:db8:1:2::/64");
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(ip_key(v4), "login:ip:192.0.2.7");
        assert_eq!(ip_key(mapped), ip_key(v4));
        assert_ne!(ip_key(v4), ip_key("192.0.2.8".parse().unwrap()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_turn_per_identifier_at_a_time() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let turns = Arc::new(LoginTurns::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let (turns, inside, peak) = (turns.clone(), inside.clone(), peak.clone());
                tokio::spawn(async move {
                    let who = if i % 2 == 0 { "ada" } else { "bob" };
                    let _turn = turns.turn(who, Duration::from_secs(60)).await.unwrap();
                    if who == "ada" {
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            peak.load(Ordering::SeqCst),
            1,
            "two checks of one identifier ran at once"
        );
        assert_eq!(
            turns.len(),
            0,
            "entries are removed when the last one leaves"
        );
    }

    #[tokio::test]
    async fn a_reservation_waits_for_the_settling_of_its_keys() {
        let turns = Arc::new(LoginTurns::default());
        // Nothing in flight: no wait, nothing left behind.
        turns.settled(&["a", "b"], Duration::from_secs(60)).await;
        assert_eq!(turns.len(), 0);
        let settling = turns.settling(&["b", "a", "b"]).await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiter = tokio::spawn({
            let turns = turns.clone();
            async move {
                turns.settled(&["x", "a"], Duration::from_secs(60)).await;
                tx.send(()).unwrap();
            }
        });
        // Another key is not held up; the settled key is.
        turns.settled(&["x"], Duration::from_secs(60)).await;
        tokio::task::yield_now().await;
        let mut rx = rx;
        assert!(rx.try_recv().is_err(), "went ahead of a settling in flight");
        drop(settling);
        waiter.await.unwrap();
        rx.await.unwrap();
        assert_eq!(
            turns.len(),
            0,
            "entries are removed when the last one leaves"
        );
        // Bounded: a settling that never ends only delays.
        let _stuck = turns.settling(&["a"]).await;
        turns.settled(&["a"], Duration::from_millis(10)).await;
    }

    #[tokio::test]
    async fn a_turn_not_given_in_time_is_unavailable_and_leaves_nothing() {
        let turns = LoginTurns::default();
        let first = turns.turn("ada", Duration::from_secs(1)).await.unwrap();
        // A different identifier is not held up.
        drop(turns.turn("bob", Duration::from_millis(10)).await.unwrap());
        let err = turns
            .turn("ada", Duration::from_millis(20))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::ServiceUnavailable);
        assert!(err.retry_after().is_some());
        assert_eq!(turns.len(), 1);
        drop(first);
        assert_eq!(turns.len(), 0);
        drop(turns.turn("ada", Duration::from_millis(10)).await.unwrap());
        assert_eq!(turns.len(), 0);
    }
}
