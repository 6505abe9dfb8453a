//! The time source of the services.
//!
//! Production uses the system clock. Tests use a manual clock to move time
//! forward without sleeping (token expiry, session expiry, throttle windows).
//!
//! ```
//! use sentri_core::clock::Clock;
//! use std::time::Duration;
//!
//! let clock = Clock::manual_at_now();
//! let before = clock.now();
//! clock.advance(Duration::from_secs(60));
//! assert_eq!((clock.now() - before).num_seconds(), 60);
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A time source: the system clock, or a manual one for tests.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// A manual clock starting at `start`; it moves only by [`Clock::advance`].
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self(Some(Arc::new(AtomicI64::new(start.timestamp_micros()))))
    }

    /// A manual clock starting at the current system time.
    pub fn manual_at_now() -> Self {
        Self::manual(Utc::now())
    }

    /// Move a manual clock forward. No effect on the system clock.
    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.0 {
            let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
            t.fetch_add(micros, Ordering::SeqCst);
        }
    }

    /// The current time in whole seconds since the Unix epoch: what token
    /// expiry is compared with, without building a calendar date.
    pub fn unix_seconds(&self) -> i64 {
        match &self.0 {
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            Some(t) => t.load(Ordering::SeqCst).div_euclid(1_000_000),
        }
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            None => Utc::now(),
            Some(t) => {
                DateTime::from_timestamp_micros(t.load(Ordering::SeqCst)).unwrap_or_default()
            }
        }
    }
}
