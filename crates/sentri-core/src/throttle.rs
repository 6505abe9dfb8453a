//! Failed-login throttling (F-27), framework-free.
//!
//! Failures are counted per identifier (normalised, then hashed so the
//! counter store never holds the identifier itself) and per client address,
//! in a sliding window. At the limit a login is refused with `RATE_LIMITED`
//! and a `Retry-After` of the time until the oldest counted failure leaves
//! the window; the password is not even checked. A success clears the
//! identifier's count (not the address's).
//!
//! The check and the count are separate store calls around the password
//! check, so N logins racing past the check at the limit can overshoot it by
//! at most N − 1 failures; they are still all counted.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::config::ThrottleConfig;
use crate::error::{Error, Result};
use crate::service::Sentri;
use crate::store::ThrottleStore;

/// The login throttle of a [`Sentri`]; get it with [`Sentri::throttle`].
pub struct LoginThrottle<'a> {
    store: &'a dyn ThrottleStore,
    config: &'a ThrottleConfig,
    now: DateTime<Utc>,
}

fn identifier_key(identifier_key: &str) -> String {
    let digest = Sha256::digest(identifier_key.as_bytes());
    let mut key = String::with_capacity(16 + 32);
    key.push_str("login:id:");
    for b in &digest[..16] {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

fn ip_key(ip: IpAddr) -> String {
    format!("login:ip:{ip}")
}

impl LoginThrottle<'_> {
    /// `RATE_LIMITED` when the identifier or the address is at its limit.
    ///
    /// # Errors
    /// `RATE_LIMITED` with retry-after; `SERVICE_UNAVAILABLE` when the
    /// counter store is down (fail closed: never an unthrottled login).
    pub async fn check(&self, identifier: &str, ip: Option<IpAddr>) -> Result<()> {
        let window = self.config.window;
        let mut wait = Duration::ZERO;
        let limits = [
            (
                Some(identifier_key(identifier)),
                self.config.max_failures_per_identifier,
            ),
            (ip.map(ip_key), self.config.max_failures_per_ip),
        ];
        for (key, limit) in limits {
            let (Some(key), true) = (key, limit > 0) else {
                continue;
            };
            let failures = self.store.recent_failures(&key, self.now, window).await?;
            if failures.len() >= limit as usize {
                // The failure that must leave the window for one more try.
                let pivot = failures[failures.len() - limit as usize];
                let until = pivot + crate::service::to_chrono(window);
                let left = (until - self.now)
                    .to_std()
                    .unwrap_or(Duration::from_secs(1));
                wait = wait.max(left);
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(Error::rate_limited(wait))
        }
    }

    /// Count a failed login. Store failures are logged, not returned: the
    /// login already failed.
    pub async fn record_failure(&self, identifier: &str, ip: Option<IpAddr>) {
        let c = self.config;
        let keys = [
            (
                Some(identifier_key(identifier)),
                c.max_failures_per_identifier,
            ),
            (ip.map(ip_key), c.max_failures_per_ip),
        ];
        for (key, limit) in keys {
            let (Some(key), true) = (key, limit > 0) else {
                continue;
            };
            if let Err(err) = self
                .store
                .record_failure(&key, self.now, c.window, limit)
                .await
            {
                tracing::warn!(error = %err, "could not count a failed login");
            }
        }
    }

    /// Forget the identifier's failures after a successful login.
    pub async fn clear(&self, identifier: &str) {
        if let Err(err) = self.store.clear_failures(&identifier_key(identifier)).await {
            tracing::warn!(error = %err, "could not clear failed-login count");
        }
    }
}

impl Sentri {
    /// The login throttle, as of now.
    pub fn throttle(&self) -> LoginThrottle<'_> {
        LoginThrottle {
            store: self.stores().throttle.as_ref(),
            config: self.config().throttle(),
            now: self.now(),
        }
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
}
