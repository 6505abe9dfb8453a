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
//!   accepted from the cache, however long it stays.
//! - **Bounded.** Each shard holds at most `capacity / shards` entries.
//!   A full shard first drops its expired entries (at most once a second),
//!   then one arbitrary entry: random eviction, which costs nothing on the
//!   read path and keeps the hot tokens with high probability.

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
            hasher: foldhash::fast::RandomState::default(),
        }
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

    /// The user of `token`, if it was inserted and not evicted since.
    pub(crate) fn get(&self, token: &str) -> Option<AuthUser> {
        let hash = self.hash(token);
        let shard = self.shard(hash).read();
        shard
            .table
            .find(hash, |e| e.hash == hash && &*e.token == token)
            .map(|e| e.user.clone())
    }

    /// Remember that `token` verified as `user`; `now` is the current unix
    /// second (a full shard drops the entries expired by then first).
    pub(crate) fn insert(&self, token: &str, user: AuthUser, now: i64) {
        let hash = self.hash(token);
        let mut shard = self.shard(hash).write();
        if let Some(entry) = shard
            .table
            .find_mut(hash, |e| e.hash == hash && &*e.token == token)
        {
            entry.user = user;
            return;
        }
        if shard.table.len() >= self.per_shard {
            shard.make_room(self.per_shard, now);
        }
        shard.table.insert_unique(
            hash,
            Entry {
                hash,
                token: token.into(),
                user,
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
    fn make_room(&mut self, per_shard: usize, now: i64) {
        if now >= self.next_sweep {
            self.table.retain(|e| e.user.expires_at() > now);
            self.next_sweep = now.saturating_add(1);
        }
        while self.table.len() >= per_shard {
            let Some(victim) = self.table.iter().next().map(|e| e.hash) else {
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
            typ: crate::tokens::ACCESS_TYP.to_owned(),
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
        assert!(cache.get(&t).is_some());
        // Same tail (so same hash), different head: not a hit.
        let forged = format!("x{}", &t[1..]);
        assert!(cache.get(&forged).is_none());
        assert!(cache.get(&token(2)).is_none());
        assert!(cache.get("").is_none());
    }

    #[test]
    fn inserting_again_replaces_the_user() {
        let cache = VerifiedTokens::new(100);
        let t = token(1);
        cache.insert(&t, user(100), 0);
        let second = user(200);
        cache.insert(&t, second.clone(), 0);
        assert_eq!(cache.get(&t), Some(second));
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
            assert!(cache.get(&token(5 * limit - 1)).is_some());
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
        assert!(cache.get(&live).is_some());
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
                        if let Some(found) = cache.get(&tok) {
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
