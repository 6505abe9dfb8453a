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
//! A reservation is one Lua script too (Redis runs a script atomically):
//! drop what left the window, count, and add the attempt only when the
//! count is below the limit; so concurrent reservations from every instance
//! never overshoot it. A refund removes the attempt's member. Purging has
//! nothing to do: keys expire by themselves.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use fred::types::Value;
use sentri_core::store::{AttemptId, Reservation, StoreResult, ThrottleStore};

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

/// KEYS[1] = the key; ARGV[1] = now (ms), ARGV[2] = member, ARGV[3] = the
/// window start (ms), ARGV[4] = limit, ARGV[5] = window (ms). Returns
/// `{1, member}` when admitted, `{0, pivot score}` when refused (the score
/// of the attempt that must leave the window for one more to fit).
const RESERVE: &str = r#"
local k = KEYS[1]
local limit = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', k, '-inf', ARGV[3])
local n = redis.call('ZCARD', k)
if n >= limit then
  if limit <= 0 then
    return {0, ARGV[1]}
  end
  local pivot = redis.call('ZRANGE', k, n - limit, n - limit, 'WITHSCORES')
  return {0, pivot[2]}
end
redis.call('ZADD', k, ARGV[1], ARGV[2])
local ttl = redis.call('PTTL', k)
if ttl < tonumber(ARGV[5]) then
  redis.call('PEXPIRE', k, ARGV[5])
end
return {1, ARGV[2]}
"#;

/// The throttle scripts, hashed once per store.
pub(crate) struct Scripts {
    record: Script,
    reserve: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            record: Script::new(RECORD),
            reserve: Script::new(RESERVE),
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
    async fn reserve(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
        limit: u32,
    ) -> StoreResult<Reservation> {
        let at = now.timestamp_millis();
        let member = format!("{at}:{:016x}", rand::random::<u64>());
        let reply: Vec<Value> = self
            .inner
            .conn
            .eval(
                &self.inner.throttle.reserve,
                self.throttle_key(key),
                vec![
                    Value::Integer(at),
                    Value::from(member),
                    Value::Integer(window_start_ms(now, window)),
                    Value::Integer(i64::from(limit)),
                    Value::Integer(ttl_ms(window)),
                ],
            )
            .await?;
        const BAD: RedisError = RedisError::Corrupt("throttle reservation reply");
        let [admitted, value] = reply.as_slice() else {
            return Err(BAD.into());
        };
        match admitted.as_i64() {
            Some(1) => {
                let member = value.as_str().ok_or(BAD)?;
                Ok(Reservation::Admitted {
                    id: AttemptId::new(member.to_string()),
                })
            }
            Some(0) => {
                let ms = match value {
                    Value::Integer(ms) => *ms,
                    other => {
                        let text = other.as_str().ok_or(BAD)?;
                        text.parse::<f64>().map_err(|_| BAD)? as i64
                    }
                };
                let pivot = DateTime::from_timestamp_millis(ms).ok_or(BAD)?;
                let retry_at = TimeDelta::from_std(window)
                    .ok()
                    .and_then(|w| pivot.checked_add_signed(w))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                Ok(Reservation::Refused { retry_at })
            }
            _ => Err(BAD.into()),
        }
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
