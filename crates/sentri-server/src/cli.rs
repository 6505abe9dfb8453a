//! The command line: `serve` (default), `migrate`, `user create`,
//! `keys rotate`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use zeroize::Zeroizing;

use crate::error::ServerError;
use crate::settings::Settings;
use crate::{logging, run};

/// The sentri auth server.
///
/// Configuration comes from `SENTRI_*` environment variables over an
/// optional TOML file; see docs/server.md.
#[derive(Debug, Parser)]
#[command(name = "sentri-server", version, about, long_about = None)]
pub struct Cli {
    /// A TOML configuration file (environment variables override it).
    #[arg(long, global = true, value_name = "PATH", env = "SENTRI_CONFIG")]
    pub config: Option<PathBuf>,

    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate the database, then serve the auth routes (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user with any valid roles (e.g. the first admin).
    Create(UserCreate),
}

/// `user create` arguments.
#[derive(Debug, Args)]
pub struct UserCreate {
    /// The user's identifier (email, username, …).
    #[arg(long)]
    pub identifier: String,
    /// Read the password from standard input (one line). Required: a
    /// password is never taken from the command line.
    #[arg(long, required = true)]
    pub password_stdin: bool,
    /// Comma-separated roles; the default role when omitted.
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
}

/// `keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a new signing key and make it the active one; tokens
    /// signed by the old key stay valid until they expire. Prints the new
    /// key id. Running servers pick it up within a minute.
    Rotate,
}

/// Parse the command line, run it, and turn the outcome into an exit code:
/// `0` on success, `2` for a configuration or usage error, `1` otherwise.
/// Errors are printed as one line on stderr, never as a panic.
pub fn main() -> ExitCode {
    let matches = Cli::command().after_help(settings_help()).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Once, on stderr (not also as a log line).
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// The end of `--help`: every setting's variable, and where they are
/// documented.
pub fn settings_help() -> String {
    let mut out = String::from(
        "Settings (environment variables, or keys of the --config TOML file;\n\
         defaults and meanings in docs/server.md):\n",
    );
    let mut line = String::from(" ");
    for key in crate::settings::Key::ALL {
        let name = key.env_var();
        if line.len() + name.len() + 1 > 78 {
            out.push_str(&line);
            out.push('\n');
            line = String::from(" ");
        }
        line.push(' ');
        line.push_str(name);
    }
    out.push_str(&line);
    out.push_str("\n  SENTRI_CONFIG");
    out
}

fn execute(cli: Cli) -> Result<(), ServerError> {
    let settings = Settings::load(cli.config.as_deref())?;
    logging::init(&settings.log)?;
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ServerError::Startup(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => run::serve(settings).await,
            Command::Migrate => run::migrate_only(&settings).await,
            Command::User(UserCommand::Create(args)) => {
                let password = read_password()?;
                let user =
                    run::create_user(&settings, &args.identifier, &password, args.roles).await?;
                println!("{}", user.id);
                Ok(())
            }
            Command::Keys(KeysCommand::Rotate) => {
                let kid = run::rotate_key(&settings).await?;
                println!("{kid}");
                Ok(())
            }
        }
    })
}

/// One line from stdin, without its line ending.
fn read_password() -> Result<Zeroizing<String>, ServerError> {
    let mut input = Zeroizing::new(String::new());
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)
        .map_err(|e| {
            ServerError::Usage(format!("cannot read the password from standard input: {e}"))
        })?;
    let line = input.split(['\n', '\r']).next().unwrap_or("");
    if line.is_empty() {
        return Err(ServerError::Usage(
            "--password-stdin: standard input holds no password (pipe it in, e.g. `printf %s \"$PW\" | sentri-server user create …`)".to_owned(),
        ));
    }
    Ok(Zeroizing::new(line.to_owned()))
}
