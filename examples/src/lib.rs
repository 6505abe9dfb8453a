//! Examples live under `examples/<name>/`; run one with `cargo run -p sentri-examples --example <name>`.
