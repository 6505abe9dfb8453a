//! [`IdempotencyStore`] on Redis: one hash per key, changed only by Lua
//! scripts, so every operation is atomic on the server whatever the number
//! of instances.
//!
//! The hash `<prefix>idem:<key>` holds
//!
//! | field | value |
//! |---|---|
//! | `s` | `h` while a request holds the key, `d` once its response is stored |
//! | `f` | the request's 32-byte fingerprint |
//! | `l` | (held) the holder's `lock_ttl` in milliseconds |
//! | `o` | (held) the holder's lease (16 random bytes) |
//! | `r` | (done) the encoded response |
//!
//! and expires after the holder's `lock_ttl` while held, after `ttl` once
//! done (so `purge_expired_idempotency` has nothing to do). `complete` and
//! `release` act only on a hold whose `o` is the caller's lease: a request
//! that lost its hold to a takeover changes nothing. The age of a lock is `l - PTTL`, measured on the Redis clock, so
//! instances whose clocks disagree still agree on when a lock is stale.

use std::time::Duration;

use async_trait::async_trait;
use fred::types::Value;
use sentri_core::model::{IdempotencyBegin, IdempotencyLease, StoredResponse};
use sentri_core::store::{IdempotencyStore, StoreResult};

use crate::RedisStore;
use crate::conn::Script;
use crate::error::RedisError;

/// `begin`: KEYS[1] = the key; ARGV[1] = fingerprint, ARGV[2] = lock_ttl
/// (ms), ARGV[3] = the lease a new hold gets. Returns `{0}` acquired, `{1}` in progress, `{2, response}`
/// completed, `{3}` mismatch.
const BEGIN: &str = r#"
local k = KEYS[1]
local v = redis.call('HMGET', k, 's', 'f', 'l', 'r')
if v[1] == 'h' then
  local held = tonumber(v[3])
  local left = redis.call('PTTL', k)
  if held and left > 0 and held - left < tonumber(ARGV[2]) then
    if v[2] == ARGV[1] then return {1} end
    return {3}
  end
elseif v[1] == 'd' then
  if v[2] == ARGV[1] then return {2, v[4]} end
  return {3}
end
redis.call('DEL', k)
redis.call('HSET', k, 's', 'h', 'f', ARGV[1], 'l', ARGV[2], 'o', ARGV[3])
redis.call('PEXPIRE', k, ARGV[2])
return {0}
"#;

/// `complete`: KEYS[1] = the key; ARGV[1] = the lease, ARGV[2] = ttl (ms),
/// ARGV[3] = the encoded response. Stores the response under the hold's
/// fingerprint only while the key is held under this lease (a takeover, a
/// stored response, a freed or lapsed key are left alone). Returns 1 when
/// it stored the response.
const COMPLETE: &str = r#"
local k = KEYS[1]
local v = redis.call('HMGET', k, 's', 'o', 'f')
if v[1] ~= 'h' or v[2] ~= ARGV[1] then return 0 end
redis.call('DEL', k)
redis.call('HSET', k, 's', 'd', 'f', v[3], 'r', ARGV[3])
redis.call('PEXPIRE', k, ARGV[2])
return 1
"#;

/// `release`: KEYS[1] = the key; ARGV[1] = the lease. Frees the key only
/// while it is held under this lease; a takeover's hold or a stored
/// response is not the failed request's to drop. Returns 1 when it freed.
const RELEASE: &str = r#"
local v = redis.call('HMGET', KEYS[1], 's', 'o')
if v[1] == 'h' and v[2] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// The idempotency scripts, hashed once per store.
pub(crate) struct Scripts {
    begin: Script,
    complete: Script,
    release: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            begin: Script::new(BEGIN),
            complete: Script::new(COMPLETE),
            release: Script::new(RELEASE),
        }
    }
}

/// The longest time-to-live kept (ten years); longer ones are cut to it.
const MAX_TTL_MS: u128 = 10 * 365 * 86_400 * 1_000;

/// A time-to-live in whole milliseconds, at least 1 (Redis deletes a key
/// whose expiry is 0) and at most [`MAX_TTL_MS`].
pub(crate) fn ttl_ms(ttl: Duration) -> i64 {
    ttl.as_millis().clamp(1, MAX_TTL_MS) as i64
}

/// Encode a response: status (u16), header count (u32), then for each
/// header name and value as u32 length + bytes, then the body. Big-endian.
pub(crate) fn encode(response: &StoredResponse) -> Result<Vec<u8>, RedisError> {
    let headers: usize = response
        .headers
        .iter()
        .map(|(n, v)| 8 + n.len() + v.len())
        .sum();
    let mut out = Vec::with_capacity(6 + headers + response.body.len());
    out.extend_from_slice(&response.status.to_be_bytes());
    let count =
        u32::try_from(response.headers.len()).map_err(|_| RedisError::OutOfRange("headers"))?;
    out.extend_from_slice(&count.to_be_bytes());
    for (name, value) in &response.headers {
        for part in [name.as_bytes(), value.as_bytes()] {
            let len = u32::try_from(part.len()).map_err(|_| RedisError::OutOfRange("header"))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    out.extend_from_slice(&response.body);
    Ok(out)
}

/// Decode what [`encode`] wrote.
pub(crate) fn decode(bytes: &[u8]) -> Result<StoredResponse, RedisError> {
    const BAD: RedisError = RedisError::Corrupt("stored response");
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], RedisError> {
        if bytes.len() < n {
            return Err(BAD);
        }
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        Ok(head)
    }
    fn u32_of(bytes: &mut &[u8]) -> Result<u32, RedisError> {
        let b = take(bytes, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(bytes: &mut &[u8]) -> Result<String, RedisError> {
        let len = u32_of(bytes)? as usize;
        String::from_utf8(take(bytes, len)?.to_vec()).map_err(|_| BAD)
    }

    let mut rest = bytes;
    let status = take(&mut rest, 2)?;
    let status = u16::from_be_bytes([status[0], status[1]]);
    let count = u32_of(&mut rest)? as usize;
    // Each header takes at least 8 bytes: a corrupt count cannot make us
    // allocate more than the data could hold.
    if count > rest.len() / 8 {
        return Err(BAD);
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = string(&mut rest)?;
        let value = string(&mut rest)?;
        headers.push((name, value));
    }
    Ok(StoredResponse {
        status,
        headers,
        body: rest.to_vec(),
    })
}

/// Read the reply of [`BEGIN`].
fn begin_outcome(reply: Value, lease: IdempotencyLease) -> Result<IdempotencyBegin, RedisError> {
    const BAD: RedisError = RedisError::Corrupt("begin reply");
    let mut parts = reply.into_array().into_iter();
    let code = parts.next().and_then(|v| v.as_i64()).ok_or(BAD)?;
    Ok(match code {
        0 => IdempotencyBegin::Acquired(lease),
        1 => IdempotencyBegin::InProgress,
        2 => {
            let stored = parts.next().ok_or(BAD)?;
            let bytes = stored.as_bytes().ok_or(BAD)?;
            IdempotencyBegin::Completed(decode(bytes)?)
        }
        3 => IdempotencyBegin::Mismatch,
        _ => return Err(BAD),
    })
}

impl RedisStore {
    fn idempotency_key(&self, key: &str) -> String {
        format!("{}idem:{key}", self.inner.prefix)
    }
}

#[async_trait]
impl IdempotencyStore for RedisStore {
    async fn begin(
        &self,
        key: &str,
        fingerprint: &[u8; 32],
        lock_ttl: Duration,
    ) -> StoreResult<IdempotencyBegin> {
        let lease = IdempotencyLease::generate();
        let reply: Value = self
            .inner
            .conn
            .eval(
                &self.inner.idempotency.begin,
                self.idempotency_key(key),
                vec![
                    Value::from(&fingerprint[..]),
                    Value::Integer(ttl_ms(lock_ttl)),
                    Value::from(&lease.as_bytes()[..]),
                ],
            )
            .await?;
        Ok(begin_outcome(reply, lease)?)
    }

    async fn complete(
        &self,
        key: &str,
        lease: &IdempotencyLease,
        response: StoredResponse,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let encoded = encode(&response)?;
        let stored: i64 = self
            .inner
            .conn
            .eval(
                &self.inner.idempotency.complete,
                self.idempotency_key(key),
                vec![
                    Value::from(&lease.as_bytes()[..]),
                    Value::Integer(ttl_ms(ttl)),
                    Value::from(encoded.into_boxed_slice()),
                ],
            )
            .await?;
        Ok(stored == 1)
    }

    async fn release(&self, key: &str, lease: &IdempotencyLease) -> StoreResult<bool> {
        let freed: i64 = self
            .inner
            .conn
            .eval(
                &self.inner.idempotency.release,
                self.idempotency_key(key),
                vec![Value::from(&lease.as_bytes()[..])],
            )
            .await?;
        Ok(freed == 1)
    }

    async fn purge_expired_idempotency(&self) -> StoreResult<u64> {
        // Every hash carries its own expiry; Redis deletes it.
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredResponse {
        StoredResponse {
            status: 201,
            headers: vec![
                ("set-cookie".into(), "a=1".into()),
                ("set-cookie".into(), "b=2".into()),
                ("x-request-id".into(), "réquest id".into()),
                ("empty".into(), String::new()),
            ],
            body: (0..=255u8).cycle().take(1000).collect(),
        }
    }

    #[test]
    fn round_trip() {
        let r = sample();
        assert_eq!(decode(&encode(&r).unwrap()).unwrap(), r);
        let empty = StoredResponse {
            status: 204,
            headers: vec![],
            body: vec![],
        };
        assert_eq!(decode(&encode(&empty).unwrap()).unwrap(), empty);
    }

    #[test]
    fn truncated_or_garbage_is_corrupt() {
        let bytes = encode(&sample()).unwrap();
        // Cut inside the headers: every such prefix must be refused.
        for cut in [0, 1, 2, 5, 6, 9, 20] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = vec![0, 200];
        huge.extend(u32::MAX.to_be_bytes());
        assert!(decode(&huge).is_err());
    }

    #[test]
    fn ttl_is_clamped() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_micros(10)), 1);
        assert_eq!(ttl_ms(Duration::from_secs(2)), 2_000);
        assert_eq!(ttl_ms(Duration::MAX), MAX_TTL_MS as i64);
    }
}
