//! The one error type of the binary: what went wrong, as one line for the
//! operator, and the exit code it maps to.

use std::fmt;

use crate::settings::SettingsError;

/// Why the server (or a subcommand) could not do its job.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// A bad setting, named by its variable. Exit code 2.
    Settings(SettingsError),
    /// A bad command line or input. Exit code 2.
    Usage(String),
    /// A sentri operation failed (what, and the library's error). Exit code
    /// 1 (2 for a `CONFIGURATION_ERROR`).
    Sentri(&'static str, sentri_core::Error),
    /// The database could not be reached or migrated. Exit code 1.
    Database(String),
    /// Anything else at startup (binding the address, …). Exit code 1.
    Startup(String),
}

impl ServerError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Settings(_) | Self::Usage(_) => 2,
            Self::Sentri(_, e) if e.code().as_str() == "CONFIGURATION_ERROR" => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Settings(e) => write!(f, "{e}"),
            Self::Usage(m) | Self::Database(m) | Self::Startup(m) => f.write_str(m),
            Self::Sentri(what, e) => {
                write!(f, "{what}: {} ({})", e.message(), e.code().as_str())?;
                // The operator may see causes (the HTTP client never does).
                // Each cause once: a message that shows its source already
                // is not followed by it again.
                let mut shown = e.message().to_owned();
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    let text = s.to_string();
                    if !shown.contains(&text) {
                        write!(f, ": {text}")?;
                        shown.push_str(&text);
                    }
                    source = s.source();
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ServerError {}

impl From<SettingsError> for ServerError {
    fn from(e: SettingsError) -> Self {
        Self::Settings(e)
    }
}
