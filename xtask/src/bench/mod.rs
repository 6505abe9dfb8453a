//! `cargo xtask bench [--quick]`: sentri side by side with what users would
//! write instead (SPEC §9).
//!
//! `cargo xtask` is a debug build without the load generator; `bench`
//! builds and runs the release xtask with the `bench` feature
//! (`cargo run --release -p xtask --features bench -- bench-run`), which
//! starts each scenario's server as a child process of itself
//! (`bench-serve`). See `docs/benchmarks.md`.

use std::process::Command;

#[cfg(feature = "bench")]
mod chart;
#[cfg(feature = "bench")]
mod load;
#[cfg(feature = "bench")]
pub mod run;
#[cfg(feature = "bench")]
pub mod serve;

/// Arguments of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// A shorter run (under 90 seconds) with the same scenarios.
    #[arg(long)]
    pub quick: bool,
    /// PostgreSQL server (a database `sentri_bench_<pid>` is created on it
    /// for the run and dropped after).
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/test",
        env = "SENTRI_BENCH_DATABASE_URL"
    )]
    pub database_url: String,
    /// Run only these scenarios (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

/// Build the release xtask with the `bench` feature and run `bench-run`.
pub fn run(args: Args) -> crate::Result {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "run",
        "--quiet",
        "--release",
        "--package",
        "xtask",
        "--features",
        "bench",
        "--",
        "bench-run",
        "--database-url",
        &args.database_url,
    ]);
    if args.quick {
        cmd.arg("--quick");
    }
    if !args.only.is_empty() {
        cmd.arg("--only").arg(args.only.join(","));
    }
    eprintln!("building the release xtask (first time: a few minutes)…");
    let status = cmd.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("bench-run failed ({status})").into())
    }
}
