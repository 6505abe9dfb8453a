//! Repository automation: `cargo xtask <command>`.
//!
//! Each command is one variant of [`Command`] and lives in its own module;
//! add a command by adding both.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod migrate;

/// sentri's repository tasks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The tasks.
#[derive(Debug, Subcommand)]
enum Command {
    /// Apply, revert or inspect the database schema (sentri-migration).
    Migrate(migrate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Migrate(args) => migrate::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The error of a task: a message for the terminal.
type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;
