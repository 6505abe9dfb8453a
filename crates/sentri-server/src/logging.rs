//! The tracing subscriber. `sentri-server` is the only sentri crate that
//! installs one; the libraries only emit events, and never a password, a
//! token, a hash or a key.

use tracing_subscriber::EnvFilter;

use crate::error::ServerError;
use crate::settings::SettingsError;

/// Install the global subscriber: compact lines on stderr, filtered by
/// `filter` (`SENTRI_LOG` syntax, e.g. `info` or `sentri=debug,info`).
/// Colours only when stderr is a terminal.
///
/// # Errors
/// [`ServerError::Settings`] for a filter that does not parse.
pub fn init(filter: &str) -> Result<(), ServerError> {
    let filter = EnvFilter::builder()
        .parse(filter)
        .map_err(|e| SettingsError::from_log_filter(&e.to_string()))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(true)
        .try_init();
    Ok(())
}
