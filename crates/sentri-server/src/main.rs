//! The `sentri-server` binary: see the `sentri_server` library docs.

fn main() -> std::process::ExitCode {
    sentri_server::cli::main()
}
