//! [`ThrottleStore`] on Redis: a sliding window in one sorted set per key,
//! shared by every instance, so failed logins on instance A and B add up.
//!
//! The sorted set `<prefix>thr:<key>` has one member per failure, scored by
//! its time in milliseconds since the epoch (the member is that time plus a
//! random suffix, so failures at the same instant are all kept). Recording
//! is one Lua script: add, drop what is at or before the window's start,
//! keep only the `keep` most recent, and set the key to expire after the
//! window, so a key nobody fails on again leaves Redis by itself.
//!
//! A reservation is one Lua script too (Redis runs a script atomically),
//! for every key of a login at once: per key, drop what left the window and
//! count; only when every key is below its limit add the attempt to each;
//! so concurrent reservations from every instance never overshoot it. The
//! script names every key it touches (`KEYS`), so on a Redis Cluster the
//! keys of one call must share a hash slot; sentri runs on one Redis
//! server (or a replicated primary). A refund removes the attempt's
//! member; settling a login is one script too. Purging has nothing to do:
//! keys expire by themselves.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use fred::types::Value;
use sentri_core::store::{AttemptId, Forget, Limit, Reservations, StoreResult, ThrottleStore};

use crate::RedisStore;
use crate::conn::Script;
use crate::error::RedisError;
use crate::idempotency::ttl_ms;

/// KEYS[1] = the key; ARGV[1] = now (ms), ARGV[2] = member, ARGV[3] = the
/// window start (ms; failures at or before it go), ARGV[4] = keep,
/// ARGV[5] = window (ms, the key's time-to-live).
const RECORD: &str = r#"
local k = KEYS[1]
local keep = tonumber(ARGV[4])
if keep <= 0 then
  redis.call('DEL', k)
  return 0
end
redis.call('ZADD', k, ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', k, '-inf', ARGV[3])
local n = redis.call('ZCARD', k)
if n > keep then
  redis.call('ZREMRANGEBYRANK', k, 0, n - keep - 1)
  n = keep
end
if n > 0 then
  redis.call('PEXPIRE', k, ARGV[5])
end
return n
"#;

/// KEYS = the keys; ARGV[1] = now (ms), then per key `i` (from 0) four
/// values from ARGV[2 + 4i]: its member, window start (ms), limit and
/// window (ms). Returns `{1}` when every key had room (each member is
/// added), `{0, i, pivot score}` when key `i` (from 0) had none (the score
/// of the attempt that must leave the window for one more to fit; `now`
/// for a limit of 0), and nothing is added.
const RESERVE: &str = r#"
local now = ARGV[1]
for i, k in ipairs(KEYS) do
  local base = 4 * (i - 1) + 1
  local limit = tonumber(ARGV[base + 3])
  redis.call('ZREMRANGEBYSCORE', k, '-inf', ARGV[base + 2])
  local n = redis.call('ZCARD', k)
  if n >= limit then
    if limit <= 0 then
      return {0, i - 1, now}
    end
    local pivot = redis.call('ZRANGE', k, n - limit, n - limit, 'WITHSCORES')
    return {0, i - 1, pivot[2]}
  end
end
for i, k in ipairs(KEYS) do
  local base = 4 * (i - 1) + 1
  redis.call('ZADD', k, now, ARGV[base + 1])
  local window = tonumber(ARGV[base + 4])
  if redis.call('PTTL', k) < window then
    redis.call('PEXPIRE', k, window)
  end
end
return {1}
"#;

/// KEYS = the keys; ARGV[i] = the member to remove from KEYS[i], or empty
/// to delete the whole key.
const FORGET: &str = r#"
for i, k in ipairs(KEYS) do
  if ARGV[i] == '' then
    redis.call('DEL', k)
  else
    redis.call('ZREM', k, ARGV[i])
  end
end
return 0
"#;

/// The throttle scripts, hashed once per store.
pub(crate) struct Scripts {
    record: Script,
    reserve: Script,
    forget: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            record: Script::new(RECORD),
            reserve: Script::new(RESERVE),
            forget: Script::new(FORGET),
        }
    }
}

/// The start of the window (failures at or before it are out), in ms.
fn window_start_ms(now: DateTime<Utc>, window: Duration) -> i64 {
    let start = TimeDelta::from_std(window)
        .ok()
        .and_then(|w| now.checked_sub_signed(w))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    start.timestamp_millis()
}

impl RedisStore {
    fn throttle_key(&self, key: &str) -> String {
        format!("{}thr:{key}", self.inner.prefix)
    }
}

#[async_trait]
impl ThrottleStore for RedisStore {
    async fn reserve_all(
        &self,
        limits: &[Limit<'_>],
        now: DateTime<Utc>,
    ) -> StoreResult<Reservations> {
        if limits.is_empty() {
            return Ok(Reservations::Admitted { ids: Vec::new() });
        }
        let at = now.timestamp_millis();
        let members: Vec<String> = limits
            .iter()
            .map(|_| format!("{at}:{:016x}", rand::random::<u64>()))
            .collect();
        let mut args = Vec::with_capacity(1 + 4 * limits.len());
        args.push(Value::Integer(at));
        for (l, member) in limits.iter().zip(&members) {
            args.extend([
                Value::from(member.clone()),
                Value::Integer(window_start_ms(now, l.window)),
                Value::Integer(i64::from(l.limit)),
                Value::Integer(ttl_ms(l.window)),
            ]);
        }
        let keys = limits.iter().map(|l| self.throttle_key(l.key)).collect();
        let reply: Vec<Value> = self
            .inner
            .conn
            .eval_keys(&self.inner.throttle.reserve, keys, args)
            .await?;
        const BAD: RedisError = RedisError::Corrupt("throttle reservation reply");
        match reply.as_slice() {
            [admitted] if admitted.as_i64() == Some(1) => Ok(Reservations::Admitted {
                ids: members.into_iter().map(AttemptId::new).collect(),
            }),
            [refused, index, value] if refused.as_i64() == Some(0) => {
                let index = index
                    .as_i64()
                    .and_then(|i| usize::try_from(i).ok())
                    .filter(|i| *i < limits.len())
                    .ok_or(BAD)?;
                let ms = match value {
                    Value::Integer(ms) => *ms,
                    other => {
                        let text = other.as_str().ok_or(BAD)?;
                        text.parse::<f64>().map_err(|_| BAD)? as i64
                    }
                };
                let pivot = DateTime::from_timestamp_millis(ms).ok_or(BAD)?;
                let retry_at = TimeDelta::from_std(limits[index].window)
                    .ok()
                    .and_then(|w| pivot.checked_add_signed(w))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                Ok(Reservations::Refused { index, retry_at })
            }
            _ => Err(BAD.into()),
        }
    }

    async fn forget(&self, items: &[Forget<'_>]) -> StoreResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut keys = Vec::with_capacity(items.len());
        let mut args = Vec::with_capacity(items.len());
        for item in items {
            let (key, member) = match *item {
                Forget::Attempt { key, id } => (key, id.as_str()),
                Forget::Key(key) => (key, ""),
            };
            keys.push(self.throttle_key(key));
            args.push(Value::from(member.to_owned()));
        }
        let _: i64 = self
            .inner
            .conn
            .eval_keys(&self.inner.throttle.forget, keys, args)
            .await?;
        Ok(())
    }

    async fn refund(&self, key: &str, id: &AttemptId) -> StoreResult<()> {
        let _removed: i64 = self
            .inner
            .conn
            .cmd(
                "ZREM",
                vec![
                    Value::from(self.throttle_key(key)),
                    Value::from(id.as_str().to_owned()),
                ],
            )
            .await?;
        Ok(())
    }

    async fn purge_expired(&self, _now: DateTime<Utc>) -> StoreResult<u64> {
        // Every key has a time-to-live of its window: Redis purges itself.
        Ok(0)
    }

    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
        keep: u32,
    ) -> StoreResult<()> {
        let at = now.timestamp_millis();
        let member = format!("{at}:{:016x}", rand::random::<u64>());
        let _kept: i64 = self
            .inner
            .conn
            .eval(
                &self.inner.throttle.record,
                self.throttle_key(key),
                vec![
                    Value::Integer(at),
                    Value::from(member),
                    Value::Integer(window_start_ms(now, window)),
                    Value::Integer(i64::from(keep)),
                    Value::Integer(ttl_ms(window)),
                ],
            )
            .await?;
        Ok(())
    }

    async fn recent_failures(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        // Scores after the window's start (exclusive), oldest first. Later
        // than `now` counts too: another instance's clock may run ahead.
        let start = format!("({}", window_start_ms(now, window));
        let members: Vec<Value> = self
            .inner
            .conn
            .cmd(
                "ZRANGEBYSCORE",
                vec![
                    Value::from(self.throttle_key(key)),
                    Value::from(start),
                    Value::from("+inf"),
                ],
            )
            .await?;
        let mut times = Vec::with_capacity(members.len());
        for member in members {
            times.push(member_time(&member)?);
        }
        Ok(times)
    }

    async fn clear_failures(&self, key: &str) -> StoreResult<()> {
        let _deleted: i64 = self
            .inner
            .conn
            .cmd("DEL", vec![Value::from(self.throttle_key(key))])
            .await?;
        Ok(())
    }
}

/// The failure time written at the front of a member (`<ms>:<random>`).
fn member_time(member: &Value) -> Result<DateTime<Utc>, RedisError> {
    const BAD: RedisError = RedisError::Corrupt("throttle member");
    let bytes = member.as_bytes().ok_or(BAD)?;
    let text = std::str::from_utf8(bytes).map_err(|_| BAD)?;
    let (ms, _) = text.split_once(':').ok_or(BAD)?;
    let ms: i64 = ms.parse().map_err(|_| BAD)?;
    DateTime::from_timestamp_millis(ms).ok_or(BAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_times_parse() {
        let t = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let member = Value::from(format!("{}:{:016x}", t.timestamp_millis(), 7u64));
        assert_eq!(member_time(&member).unwrap(), t);
        let before_1970 = DateTime::from_timestamp_millis(-5_000).unwrap();
        assert_eq!(member_time(&Value::from("-5000:00")).unwrap(), before_1970);
        for bad in ["", "x:1", "12", "1:2:3x"] {
            let ok = member_time(&Value::from(bad)).is_ok();
            assert_eq!(ok, bad == "1:2:3x", "{bad:?}");
        }
    }

    #[test]
    fn window_start() {
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        assert_eq!(window_start_ms(now, Duration::from_secs(100)), 900_000);
        assert_eq!(
            window_start_ms(now, Duration::MAX),
            DateTime::<Utc>::MIN_UTC.timestamp_millis()
        );
    }
}
