//! The crate's public [`Error`] (building and connecting) and the private
//! mapping of every Redis failure into a [`StoreError`] kind.

use fred::error::{Error as FredError, ErrorKind as FredErrorKind};
use sentri_core::store::{StoreError, StoreErrorKind};

/// An error building or connecting a [`RedisStore`](crate::RedisStore) or a
/// [`RedisRevocationBus`](crate::RedisRevocationBus).
///
/// Store operations never return it: they return
/// [`StoreError`](sentri_core::store::StoreError), whose kind is
/// `Unavailable` when Redis cannot be reached or timed out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid; the message names it.
    #[error("invalid redis store configuration: {0}")]
    Config(&'static str),
    /// Redis refused the URL or the connection (unreachable, timed out,
    /// authentication failed).
    #[error("redis connection failed")]
    Redis(#[source] FredError),
}

impl Error {
    /// Whether Redis could not be reached (rather than being misconfigured).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Redis(e) if unavailable(e))
    }
}

impl From<Error> for StoreError {
    fn from(err: Error) -> Self {
        let kind = if err.is_unavailable() {
            StoreErrorKind::Unavailable
        } else {
            StoreErrorKind::Other
        };
        StoreError::with_source(kind, err)
    }
}

/// Whether a fred error means "Redis is not reachable right now" (the
/// request may succeed later), as opposed to a bug or corrupt data.
pub(crate) fn unavailable(err: &FredError) -> bool {
    match err.kind() {
        FredErrorKind::IO
        | FredErrorKind::Timeout
        | FredErrorKind::Backpressure
        | FredErrorKind::Canceled
        | FredErrorKind::Routing => true,
        // fred reports a command that could not be written to a live
        // connection ("Too many failed write attempts", "Failed to route
        // command", "Missing expected connection") as `Unknown`; Redis
        // itself answers `LOADING`, `BUSY`, `MASTERDOWN`, `TRYAGAIN` or
        // `CLUSTERDOWN` while it cannot serve.
        _ => {
            let details = err.details();
            [
                "Too many failed write attempts",
                "Max attempts",
                "Failed to route",
                "Missing expected connection",
                "Connection closed",
                "LOADING",
                "BUSY",
                "MASTERDOWN",
                "TRYAGAIN",
                "CLUSTERDOWN",
            ]
            .iter()
            .any(|needle| details.contains(needle))
        }
    }
}

/// Why a store operation failed. Private: it only exists to be converted
/// into a [`StoreError`] with the right kind.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisError {
    /// The command failed.
    #[error("redis command failed")]
    Command(#[source] FredError),
    /// Redis answered something this crate never writes (corrupt data, or a
    /// key under the prefix written by something else).
    #[error("unexpected redis data: {0}")]
    Corrupt(&'static str),
    /// The caller asked for something the encoding cannot hold.
    #[error("value out of range: {0}")]
    OutOfRange(&'static str),
    /// A value of a newer `sentri-core` this version cannot handle.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

impl From<FredError> for RedisError {
    fn from(err: FredError) -> Self {
        RedisError::Command(err)
    }
}

impl From<RedisError> for StoreError {
    fn from(err: RedisError) -> Self {
        let kind = match &err {
            RedisError::Command(e) if unavailable(e) => StoreErrorKind::Unavailable,
            _ => StoreErrorKind::Other,
        };
        StoreError::with_source(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable() {
        for kind in [
            FredErrorKind::IO,
            FredErrorKind::Timeout,
            FredErrorKind::Backpressure,
            FredErrorKind::Canceled,
            FredErrorKind::Routing,
        ] {
            let err: StoreError = RedisError::from(FredError::new(kind.clone(), "x")).into();
            assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{kind:?}");
        }
        let err: StoreError = RedisError::from(FredError::new(
            FredErrorKind::Unknown,
            "Too many failed write attempts.",
        ))
        .into();
        assert_eq!(err.kind(), StoreErrorKind::Unavailable);
        let err: StoreError = RedisError::from(FredError::new(
            FredErrorKind::Unknown,
            "LOADING Redis is loading the dataset in memory",
        ))
        .into();
        assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    }

    #[test]
    fn everything_else_is_other() {
        for kind in [
            FredErrorKind::Parse,
            FredErrorKind::Protocol,
            FredErrorKind::InvalidArgument,
            FredErrorKind::Config,
            FredErrorKind::Auth,
        ] {
            let err: StoreError = RedisError::from(FredError::new(kind.clone(), "x")).into();
            assert_eq!(err.kind(), StoreErrorKind::Other, "{kind:?}");
        }
        let err: StoreError = RedisError::from(FredError::new(
            FredErrorKind::Unknown,
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ))
        .into();
        assert_eq!(err.kind(), StoreErrorKind::Other);
        let err: StoreError = RedisError::Corrupt("x").into();
        assert_eq!(err.kind(), StoreErrorKind::Other);
    }

    #[test]
    fn public_error_maps_too() {
        let err: StoreError = Error::Redis(FredError::new(FredErrorKind::IO, "refused")).into();
        assert_eq!(err.kind(), StoreErrorKind::Unavailable);
        let err: StoreError = Error::Config("key_prefix").into();
        assert_eq!(err.kind(), StoreErrorKind::Other);
    }
}
