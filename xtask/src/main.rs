//! Repository automation: `cargo xtask <command>`.

fn main() {
    eprintln!("usage: cargo xtask <migrate|bench>");
    std::process::exit(2);
}
