//! The verified-token cache: access tokens whose signature and claims
//! were checked, so a token seen again skips the signature check.
//!
//! Every protected request looks a token up here, so the read path is
//! kept short: one hash over the token's last bytes, one shard's read
//! lock, one probe, one comparison of the whole token, one `Arc` clone.
//!
//! - **Keyed by the whole token.** A hit needs the stored token to equal
//!   the presented one byte for byte; the hash covers only the last
//!   [`HASHED_TAIL`] bytes, which are signature bytes for every token ever
//!   inserted (only tokens with a valid signature are), so an attacker
//!   cannot choose keys that collide. The hasher is foldhash, seeded per
//!   process.
//! - **Expiry is the caller's.** An entry keeps the user's `expires_at`;
//!   the caller checks it on every hit, so an expired token is never
//!   accepted from the cache, however long it stays. An optional maximum
//!   age ([`VerifiedTokens::max_age`]) also bounds how long an entry is
//!   trusted (a resource server re-checks a token against the current key
//!   set at least that often).
//! - **Bounded.** Each shard holds at most `capacity / shards` entries.
//!   A full shard first drops its expired entries (at most once a second),
//!   then one entry picked by the incoming token's hash: random eviction,
//!   which costs nothing on the read path and keeps the hot tokens with
//!   high probability.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use parking_lot::RwLock;

use crate::tokens::AuthUser;

/// Bytes at the end of a token that are hashed. An HS256 signature is 43
/// base64url characters, an EdDSA or RS256 one longer.
const HASHED_TAIL: usize = 32;
/// Most shards a cache is split into.
const MAX_SHARDS: usize = 16;
/// Fewest entries a shard is made for, so a small cache is one shard.
const MIN_PER_SHARD: usize = 64;

/// A bounded map from a verified token to its user.
pub(crate) struct VerifiedTokens {
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
    /// Seconds an entry is trusted after its insert (`i64::MAX`: no limit).
    max_age: i64,
    hasher: foldhash::fast::RandomState,
}

struct Shard {
    table: HashTable<Entry>,
    /// Unix second before which a full shard does not sweep again.
    next_sweep: i64,
}

struct Entry {
    hash: u64,
    token: Box<str>,
    user: AuthUser,
    /// Unix second from which the entry is no longer trusted.
    stale_at: i64,
}

impl Entry {
    fn live(&self, now: i64) -> bool {
        self.stale_at > now && self.user.expires_at() > now
    }
}

impl VerifiedTokens {
    /// A cache of about `capacity` tokens (`capacity` ≥ 1).
    pub(crate) fn new(capacity: u64) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        let shards = (capacity / MIN_PER_SHARD).clamp(1, MAX_SHARDS);
        // A power of two, so the shard is a mask of the hash.
        let shards = if shards.is_power_of_two() {
            shards
        } else {
            shards.next_power_of_two() / 2
        };
        Self {
            shards: (0..shards)
                .map(|_| {
                    RwLock::new(Shard {
                        table: HashTable::new(),
                        next_sweep: i64::MIN,
                    })
                })
                .collect(),
            per_shard: capacity.div_ceil(shards),
            max_age: i64::MAX,
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// Trust an entry for at most `seconds` after it was inserted.
    pub(crate) fn max_age(mut self, seconds: u64) -> Self {
        self.max_age = i64::try_from(seconds).unwrap_or(i64::MAX);
        self
    }

    fn hash(&self, token: &str) -> u64 {
        let bytes = token.as_bytes();
        self.hasher
            .hash_one(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..])
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        // The high bits: hashbrown probes with the low ones.
        let index = (hash >> 40) as usize & (self.shards.len() - 1);
        &self.shards[index]
    }

    /// The user of `token`, if it was inserted, not evicted since, and
    /// within its maximum age at `now` (unix seconds). The user's own expiry
    /// is the caller's to check.
    pub(crate) fn get(&self, token: &str, now: i64) -> Option<AuthUser> {
        let hash = self.hash(token);
        let shard = self.shard(hash).read();
        shard
            .table
            .find(hash, |e| e.hash == hash && &*e.token == token)
            .filter(|e| e.stale_at > now)
            .map(|e| e.user.clone())
    }

    /// Remember that `token` verified as `user`; `now` is the current unix
    /// second (a full shard drops the entries expired by then first).
    pub(crate) fn insert(&self, token: &str, user: AuthUser, now: i64) {
        let hash = self.hash(token);
        let stale_at = now.saturating_add(self.max_age);
        let mut shard = self.shard(hash).write();
        if let Some(entry) = shard
            .table
            .find_mut(hash, |e| e.hash == hash && &*e.token == token)
        {
            entry.user = user;
            entry.stale_at = stale_at;
            return;
        }
        if shard.table.len() >= self.per_shard {
            shard.make_room(self.per_shard, now, hash);
        }
        shard.table.insert_unique(
            hash,
            Entry {
                hash,
                token: token.into(),
                user,
                stale_at,
            },
            |e| e.hash,
        );
    }

    /// Entries held, over all shards.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().table.len()).sum()
    }
}

impl Shard {
    /// Drop expired entries (at most once a second), then entries picked
    /// by `seed` (the incoming token's hash, so effectively at random)
    /// until one more fits.
    fn make_room(&mut self, per_shard: usize, now: i64, seed: u64) {
        if now >= self.next_sweep {
            self.table.retain(|e| e.live(now));
            self.next_sweep = now.saturating_add(1);
        }
        while self.table.len() >= per_shard {
            // The high bits: the low ones placed the token in the table.
            let skip = usize::try_from(seed >> 32).unwrap_or(0) % self.table.len();
            let Some(victim) = self.table.iter().nth(skip).map(|e| e.hash) else {
                break;
            };
            match self.table.find_entry(victim, |e| e.hash == victim) {
                Ok(entry) => {
                    entry.remove();
                }
                Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SessionId, UserId};
    use crate::tokens::AccessClaims;

    fn user(exp: i64) -> AuthUser {
        AuthUser::from_claims(&AccessClaims {
            sub: UserId::new(),
            sid: SessionId::new(),
            identifier: "ada@example.com".to_owned(),
            roles: vec!["user".to_owned()],
            iat: 0,
            exp,
            nbf: None,
            jti: String::new(),
            typ: crate::tokens::ACCESS_TYP.to_owned(),
            auth_time: None,
            amr: Vec::new(),
            email_verified: false,
            iss: None,
            aud: None,
        })
    }

    fn token(i: usize) -> String {
        format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.signature-{i:040}")
    }

    #[test]
    fn a_hit_needs_the_whole_token() {
        let cache = VerifiedTokens::new(100);
        let t = token(1);
        cache.insert(&t, user(100), 0);
        assert!(cache.get(&t, 0).is_some());
        // Same tail (so same hash), different head: not a hit.
        let forged = format!("x{}", &t[1..]);
        assert!(cache.get(&forged, 0).is_none());
        assert!(cache.get(&token(2), 0).is_none());
        assert!(cache.get("", 0).is_none());
    }

    #[test]
    fn inserting_again_replaces_the_user() {
        let cache = VerifiedTokens::new(100);
        let t = token(1);
        cache.insert(&t, user(100), 0);
        let second = user(200);
        cache.insert(&t, second.clone(), 0);
        assert_eq!(cache.get(&t, 0), Some(second));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        for capacity in [1_u64, 7, 64, 1_000, 10_000] {
            let cache = VerifiedTokens::new(capacity);
            let limit = usize::try_from(capacity).unwrap() + cache.shards.len();
            for i in 0..5 * limit {
                cache.insert(&token(i), user(1_000), 0);
                assert!(cache.len() <= limit, "capacity {capacity}: {}", cache.len());
            }
            // The newest token is always there.
            assert!(cache.get(&token(5 * limit - 1), 0).is_some());
        }
    }

    #[test]
    fn a_full_shard_drops_expired_entries_before_live_ones() {
        let cache = VerifiedTokens::new(64);
        assert_eq!(cache.shards.len(), 1);
        let live = token(0);
        cache.insert(&live, user(1_000), 0);
        for i in 1..64 {
            cache.insert(&token(i), user(10), 0);
        }
        assert_eq!(cache.len(), 64);
        // At second 50 the 63 short-lived entries have expired: one insert
        // sweeps them and the live one stays.
        cache.insert(&token(64), user(1_000), 50);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&live, 50).is_some());
    }

    #[test]
    fn an_entry_is_trusted_for_at_most_its_max_age() {
        let cache = VerifiedTokens::new(100).max_age(60);
        let t = token(1);
        cache.insert(&t, user(10_000), 1_000);
        assert!(cache.get(&t, 1_059).is_some());
        assert!(cache.get(&t, 1_060).is_none());
        // Verified again: trusted again.
        cache.insert(&t, user(10_000), 1_060);
        assert!(cache.get(&t, 1_100).is_some());
    }

    #[test]
    fn eviction_spreads_over_the_table() {
        // A full one-shard cache, then as many new tokens again: the first
        // tokens are not all kept (eviction is not always the same slot) and
        // not all dropped at once.
        let cache = VerifiedTokens::new(64);
        for i in 0..64 {
            cache.insert(&token(i), user(1_000), 0);
        }
        for i in 64..96 {
            cache.insert(&token(i), user(1_000), 0);
        }
        let kept_old = (0..64)
            .filter(|&i| cache.get(&token(i), 0).is_some())
            .count();
        let kept_new = (64..96)
            .filter(|&i| cache.get(&token(i), 0).is_some())
            .count();
        assert_eq!(cache.len(), 64);
        assert!(kept_old > 16 && kept_old < 64, "{kept_old}");
        assert!(kept_new > 8, "{kept_new}");
    }

    #[test]
    fn many_threads_read_and_write_at_once() {
        let cache = std::sync::Arc::new(VerifiedTokens::new(1_000));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        let tok = token(t * 10_000 + i);
                        let u = user(1_000);
                        cache.insert(&tok, u.clone(), 0);
                        if let Some(found) = cache.get(&tok, 0) {
                            assert_eq!(found, u);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(cache.len() <= 1_000 + cache.shards.len());
    }
}
