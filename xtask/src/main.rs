//! Repository automation: `cargo xtask <command>`.
//!
//! Each command is one variant of [`Command`] and lives in its own module;
//! add a command by adding both.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
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
    /// Measure sentri against a bare handler and hand-written auth
    /// (builds and runs the release xtask; see docs/benchmarks.md).
    Bench(bench::Args),
    /// The benchmark itself (`cargo xtask bench` runs it in release).
    #[cfg(feature = "bench")]
    #[command(hide = true)]
    BenchRun(bench::Args),
    /// One scenario's server, started by `bench-run`.
    #[cfg(feature = "bench")]
    #[command(hide = true)]
    BenchServe(bench::serve::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Migrate(args) => migrate::run(args),
        Command::Bench(args) => bench::run(args),
        #[cfg(feature = "bench")]
        Command::BenchRun(args) => bench::run::run(args),
        #[cfg(feature = "bench")]
        Command::BenchServe(args) => bench::serve::run(args),
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
