//! Failed-login throttling (F-27), framework-free.
//!
//! Failures are counted per identifier (normalised, then hashed so the
//! counter store never holds the identifier itself) and per client address,
//! in a sliding window. At the limit a login is refused with `RATE_LIMITED`
//! and a `Retry-After` of the time until the oldest counted failure leaves
//! the window; the password is not even checked. A success clears the
//! identifier's count (not the address's) when the check saw failures: a
//! login with none left to clear costs no write. The built-in login reads
//! the counts and the user at once, so a refused attempt costs one indexed
//! user read beside the two counter reads, and never a password check.
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

/// What [`LoginThrottle::check`] saw, for [`LoginThrottle::clear`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Checked {
    identifier_failures: bool,
}

impl LoginThrottle<'_> {
    /// `RATE_LIMITED` when the identifier or the address is at its limit.
    /// Both counts are read at once (one round trip to a remote store).
    ///
    /// # Errors
    /// `RATE_LIMITED` with retry-after; `SERVICE_UNAVAILABLE` when the
    /// counter store is down (fail closed: never an unthrottled login).
    pub async fn check(&self, identifier: &str, ip: Option<IpAddr>) -> Result<Checked> {
        let c = self.config;
        let id_key = (c.max_failures_per_identifier > 0).then(|| identifier_key(identifier));
        let ip_key = ip.filter(|_| c.max_failures_per_ip > 0).map(ip_key);
        let lookup = |key: Option<String>| async move {
            match key {
                Some(key) => self
                    .store
                    .recent_failures(&key, self.now, c.window)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let (by_id, by_ip) = futures_util::future::try_join(lookup(id_key), lookup(ip_key)).await?;
        let mut wait = Duration::ZERO;
        let counted = [
            (by_id.as_deref(), c.max_failures_per_identifier),
            (by_ip.as_deref(), c.max_failures_per_ip),
        ];
        for (failures, limit) in counted {
            let Some(failures) = failures else {
                continue;
            };
            if failures.len() >= limit as usize {
                // The failure that must leave the window for one more try.
                let pivot = failures[failures.len() - limit as usize];
                let until = pivot + crate::service::to_chrono(c.window);
                let left = (until - self.now)
                    .to_std()
                    .unwrap_or(Duration::from_secs(1));
                wait = wait.max(left);
            }
        }
        if wait.is_zero() {
            Ok(Checked {
                identifier_failures: by_id.is_some_and(|f| !f.is_empty()),
            })
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

    /// Forget the identifier's failures after a successful login, as
    /// [`LoginThrottle::clear`], but only when `checked` (this login's
    /// check) saw any: a login with none to clear costs no store call.
    /// Failures recorded while the login was in flight (after its check)
    /// then stay counted; they are other attempts, not the user's earlier
    /// mistakes.
    pub async fn clear_seen(&self, identifier: &str, checked: Checked) {
        if checked.identifier_failures {
            self.clear(identifier).await;
        }
    }

    /// Forget the identifier's failures.
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
