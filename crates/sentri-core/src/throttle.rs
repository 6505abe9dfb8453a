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
//! atomic [`ThrottleStore::reserve`] per counter (the address's, then the
//! identifier's) both counts the attempt and says whether it is within the
//! limit. So N concurrent guesses at the limit cannot overshoot it: at most
//! `max_failures_per_identifier` of them ever reach the password check in a
//! window, on every store and across every instance sharing it. Over the
//! limit a login is refused with `RATE_LIMITED` and a `Retry-After` of the
//! time until the attempt that keeps the count at the limit leaves the
//! window; the password is not even checked, and the refused attempt is
//! not counted (if one counter admitted it, that reservation is refunded).
//!
//! The login then settles its reservations:
//!
//! | outcome | identifier counter | address counter |
//! |---|---|---|
//! | success | cleared (the user's earlier mistakes are forgiven) | this attempt refunded |
//! | `SERVICE_UNAVAILABLE` (a store or the hashing queue was busy: nothing was concluded) | this attempt refunded | this attempt refunded |
//! | any other error (`INVALID_CREDENTIALS`, an override's own error) | kept | kept |
//!
//! Within one process, at most one password check per identifier is in
//! flight ([`LoginTurns`]): the others wait for its outcome (at most the
//! password policy's `max_wait`, then `SERVICE_UNAVAILABLE`, refunded), so
//! a burst of guesses for one account is checked one after the other and
//! a success clears the count before the next guess is checked.
//!
//! A refused login costs at most the two reservations (while the user is
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
use crate::store::{AttemptId, Reservation, ThrottleStore};

/// The login throttle of a [`Sentri`]; get it with [`Sentri::throttle`].
pub struct LoginThrottle<'a> {
    store: &'a dyn ThrottleStore,
    config: &'a ThrottleConfig,
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

/// The reservations of one login, from [`LoginThrottle::reserve`]; settle
/// it with [`LoginThrottle::settle`]. Dropping it keeps the attempts
/// counted (as a failure).
#[derive(Debug, Default)]
#[must_use = "settle the attempt, or it counts as a failure"]
pub struct LoginAttempt {
    identifier: Option<Held>,
    address: Option<Held>,
}

/// The reservation of one self-registration, from
/// [`LoginThrottle::reserve_registration`]; settle it with
/// [`LoginThrottle::settle_registration`].
#[derive(Debug, Default)]
#[must_use = "settle the registration attempt"]
pub struct RegistrationAttempt(Option<Held>);

impl LoginThrottle<'_> {
    /// Reserve `key`'s next attempt: `Ok(Ok(held))` when admitted,
    /// `Ok(Err(wait))` when over the limit.
    async fn reserve_key(
        &self,
        key: Option<String>,
        window: Duration,
        limit: u32,
    ) -> Result<std::result::Result<Option<Held>, Duration>> {
        let Some(key) = key else {
            return Ok(Ok(None));
        };
        match self.store.reserve(&key, self.now, window, limit).await? {
            Reservation::Admitted { id } => Ok(Ok(Some(Held { key, id }))),
            Reservation::Refused { retry_at } => {
                let wait = (retry_at - self.now)
                    .to_std()
                    .unwrap_or(Duration::from_secs(1));
                Ok(Err(wait.max(Duration::from_secs(1))))
            }
        }
    }

    /// Reserve a login attempt for `identifier` (its normalised key) from
    /// `ip`, before the password is checked: the address first, then the
    /// identifier; when the identifier refuses, the address's reservation
    /// is refunded.
    ///
    /// One after the other, so that a guess refused for its identifier
    /// never holds a place in the identifier's count (and one refused for
    /// its address never touches the identifier's): the identifier's limit
    /// is exact under any concurrency, and the address's is never exceeded.
    ///
    /// # Errors
    /// `RATE_LIMITED` with retry-after; `SERVICE_UNAVAILABLE` when the
    /// counter store is down (fail closed: never an unthrottled login).
    pub async fn reserve(&self, identifier: &str, ip: Option<IpAddr>) -> Result<LoginAttempt> {
        let c = self.config;
        let ip_key = ip.filter(|_| c.max_failures_per_ip > 0).map(ip_key);
        let address = match self
            .reserve_key(ip_key, c.window, c.max_failures_per_ip)
            .await?
        {
            Ok(held) => held,
            Err(wait) => return Err(Error::rate_limited(wait)),
        };
        let id_key = (c.max_failures_per_identifier > 0).then(|| identifier_key(identifier));
        let by_id = self
            .reserve_key(id_key, c.window, c.max_failures_per_identifier)
            .await;
        match by_id {
            Ok(Ok(identifier)) => Ok(LoginAttempt {
                identifier,
                address,
            }),
            Ok(Err(wait)) => {
                self.refund_held(address).await;
                Err(Error::rate_limited(wait))
            }
            Err(err) => {
                self.refund_held(address).await;
                Err(err)
            }
        }
    }

    /// Settle a login's reservations by its outcome (see the module docs):
    /// a success clears the identifier's count and refunds the address's
    /// attempt; `SERVICE_UNAVAILABLE` refunds both; any other error keeps
    /// both. Store failures are logged, not returned.
    pub async fn settle<T>(&self, attempt: LoginAttempt, outcome: &Result<T>) {
        match outcome {
            Ok(_) => {
                let LoginAttempt {
                    identifier,
                    address,
                } = attempt;
                let clear = async {
                    if let Some(held) = identifier
                        && let Err(err) = self.store.clear_failures(&held.key).await
                    {
                        tracing::warn!(error = %err, "could not clear failed-login count");
                    }
                };
                futures_util::future::join(clear, self.refund_held(address)).await;
            }
            Err(err) if err.is(&ErrorCode::ServiceUnavailable) => self.refund(attempt).await,
            Err(_) => {}
        }
    }

    /// Give both reservations back (the attempt should not count).
    pub async fn refund(&self, attempt: LoginAttempt) {
        futures_util::future::join(
            self.refund_held(attempt.identifier),
            self.refund_held(attempt.address),
        )
        .await;
    }

    async fn refund_held(&self, held: Option<Held>) {
        if let Some(held) = held
            && let Err(err) = self.store.refund(&held.key, &held.id).await
        {
            tracing::warn!(error = %err, "could not refund a throttle reservation");
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
        match self
            .reserve_key(
                ip.map(registration_key),
                c.registration_window,
                c.max_registrations_per_ip,
            )
            .await?
        {
            Ok(held) => Ok(RegistrationAttempt(held)),
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
            self.refund_held(attempt.0).await;
        }
    }
}

/// At most one password check per identifier in flight in this process.
///
/// A map from the identifier's digest to an async mutex, split in shards
/// (each behind a short `parking_lot` lock) so unrelated logins do not
/// contend. An entry lives only while someone holds or waits for it: the
/// last one out removes it (also when a waiter is cancelled), so the map is
/// bounded by the logins in flight.
pub struct LoginTurns {
    shards: Box<[Shard]>,
}

/// One shard of [`LoginTurns`]: identifier digest → its lock.
type Shard = parking_lot::Mutex<HashMap<[u8; 16], Arc<tokio::sync::Mutex<()>>>>;

const TURN_SHARDS: usize = 64;

impl Default for LoginTurns {
    fn default() -> Self {
        Self {
            shards: (0..TURN_SHARDS)
                .map(|_| parking_lot::Mutex::new(HashMap::new()))
                .collect(),
        }
    }
}

impl std::fmt::Debug for LoginTurns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginTurns").finish_non_exhaustive()
    }
}

/// A place in an identifier's line; removes the entry when the last one
/// leaves.
struct Place<'a> {
    turns: &'a LoginTurns,
    digest: [u8; 16],
    lock: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let Some(lock) = self.lock.take() else {
            return;
        };
        let mut shard = self.turns.shard(&self.digest).lock();
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
pub struct Turn<'a> {
    // Field order matters: the guard goes before the place, so the place
    // sees the final count.
    _guard: tokio::sync::OwnedMutexGuard<()>,
    _place: Place<'a>,
}

impl std::fmt::Debug for Turn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn").finish_non_exhaustive()
    }
}

impl LoginTurns {
    fn shard(&self, digest: &[u8; 16]) -> &Shard {
        &self.shards[usize::from(digest[0]) % self.shards.len()]
    }

    /// Wait (at most `max_wait`) for the turn of `identifier` (its
    /// normalised key).
    ///
    /// # Errors
    /// `SERVICE_UNAVAILABLE` with a `Retry-After` when the turn did not come
    /// within `max_wait`.
    pub async fn turn(&self, identifier: &str, max_wait: Duration) -> Result<Turn<'_>> {
        let digest = identifier_digest(identifier);
        let lock = self
            .shard(&digest)
            .lock()
            .entry(digest)
            .or_default()
            .clone();
        let place = Place {
            turns: self,
            digest,
            lock: Some(lock.clone()),
        };
        // Bound first, so the waiting future (and its handle on the lock)
        // is gone before `place` is dropped.
        let waited = tokio::time::timeout(max_wait, lock.lock_owned()).await;
        match waited {
            Ok(guard) => Ok(Turn {
                _guard: guard,
                _place: place,
            }),
            Err(_) => Err(crate::password::busy(max_wait)),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

impl Sentri {
    /// The login throttle, as of now.
    pub fn throttle(&self) -> LoginThrottle<'_> {
        LoginThrottle {
            store: self.stores().throttle.as_ref(),
            config: self.config().throttle(),
            api_key: self.config().has_api_key(),
            now: self.now(),
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
