//! A real browser against the real binary (issue 14 item 4, F-24): in
//! headless Chromium with cookie transport, four parallel `fetch`es after
//! the access token expired must all succeed (they gave
//! `[200, 401, 401, 401]` before: the first refreshed silently, the others
//! presented the refresh cookie it had just rotated), on both frameworks.
//!
//! The page script and the DevTools driver are in `browser/parallel_fetch.py`
//! (Python's standard library only). Chromium is `SENTRI_CHROMIUM`, else
//! `chromium` or `chromium-browser` on the `PATH`. Without one the test is
//! skipped with a message, unless `SENTRI_BROWSER_TESTS=required` (set by
//! `.ci/run`), in which case it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

/// The access token lifetime of the server under test, and how long the
/// page waits before its parallel requests (past the expiry, whole seconds
/// included).
const ACCESS_TTL: &str = "2s";
const WAIT_SECONDS: &str = "4";

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SENTRI_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| [dir.join("chromium"), dir.join("chromium-browser")])
        .find(|candidate| candidate.is_file())
}

fn required() -> bool {
    std::env::var("SENTRI_BROWSER_TESTS").is_ok_and(|v| v == "required")
}

fn parallel_fetch(chromium: &Path, base: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/parallel_fetch.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(chromium)
        .arg(base)
        .arg(WAIT_SECONDS)
        .output()
        .expect("run python3 tests/browser/parallel_fetch.py");
    assert!(
        out.status.success(),
        "the browser driver failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("driver output is not JSON ({e}): {stdout}"))
}

fn four_parallel_fetches_after_the_access_ttl(framework: &str) {
    let Some(chromium) = chromium() else {
        assert!(
            !required(),
            "SENTRI_BROWSER_TESTS=required but no Chromium was found \
             (install it with `apt-get install -y chromium` or set SENTRI_CHROMIUM)"
        );
        eprintln!(
            "skipped: no Chromium found (set SENTRI_CHROMIUM, or SENTRI_BROWSER_TESTS=required to fail)"
        );
        return;
    };
    let dir = TestDir::new(&format!("browser-{framework}"));
    let server = Server::start(
        &dir,
        &[
            ("SENTRI_FRAMEWORK", framework),
            ("SENTRI_SECRET", "browser-secret-browser-secret-browser!"),
            ("SENTRI_COOKIES", "both"),
            ("SENTRI_COOKIE_SECURE", "false"),
            ("SENTRI_ACCESS_TTL", ACCESS_TTL),
            ("SENTRI_REUSE_GRACE", "30s"),
        ],
    );
    let result = parallel_fetch(&chromium, &server.base);
    let output = server.stop();
    assert_eq!(result["register"], 201, "{result}\n{output}");
    assert_eq!(result["login"], 200, "{result}\n{output}");
    assert_eq!(
        result["statuses"],
        serde_json::json!([200, 200, 200, 200]),
        "{framework}: four parallel fetches after the access TTL\n{output}"
    );
    assert_eq!(
        result["after"], 200,
        "{framework}: the session lives on with the rotated cookies\n{output}"
    );
}

#[test]
fn axum_four_parallel_fetches_after_the_access_ttl_all_succeed() {
    four_parallel_fetches_after_the_access_ttl("axum");
}

#[test]
fn poem_four_parallel_fetches_after_the_access_ttl_all_succeed() {
    four_parallel_fetches_after_the_access_ttl("poem");
}
