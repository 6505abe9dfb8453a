//! Measures the resident memory of 1 000 000 sessions in a [`MemoryStore`]
//! (SPEC §9: under 1 GiB).
//!
//! ```text
//! cargo run --release -p sentri-memory --example million_sessions [count]
//! ```
//!
//! Reads the resident set size from `/proc/self/statm`, so it reports only
//! on Linux.

use chrono::{TimeDelta, Utc};
use sentri_core::model::{NewSession, NewUser, PasswordHash, SessionId, TokenHash, UserId};
use sentri_core::store::{SessionStore, UserStore};
use sentri_memory::MemoryStore;

/// Resident memory in bytes, if the platform tells.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 1_000_000,
    };
    let store = MemoryStore::new();
    let now = Utc::now();
    let before = resident_bytes();

    // Ten sessions per user, as after logins from a few devices.
    let mut user = UserId::new();
    for i in 0..count {
        if i % 10 == 0 {
            user = UserId::new();
            store
                .create_user(NewUser {
                    id: user,
                    identifier: format!("user{i}@example.com"),
                    identifier_key: format!("user{i}@example.com"),
                    password_hash: PasswordHash::new(
                        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
                    ),
                    roles: vec!["user".to_owned()],
                    name: None,
                    created_at: now,
                })
                .await?;
        }
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&i.to_le_bytes());
        store
            .create_session(NewSession {
                id: SessionId::new(),
                user_id: user,
                refresh_hash: TokenHash(hash),
                user_agent: Some(
                    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                     Chrome/131.0.0.0 Safari/537.36"
                        .to_owned(),
                ),
                ip: Some(format!("203.0.{}.{}", (i >> 8) % 256, i % 256)),
                created_at: now,
                expires_at: now + TimeDelta::days(7),
                amr: vec!["pwd".to_owned()],
            })
            .await?;
    }

    let after = resident_bytes();
    println!(
        "{} sessions of {} users",
        store.session_count(),
        store.user_count()
    );
    if let (Some(before), Some(after)) = (before, after) {
        let used = after.saturating_sub(before);
        println!(
            "resident: {:.1} MiB for the store ({:.0} bytes per session, users included)",
            used as f64 / (1024.0 * 1024.0),
            used as f64 / count.max(1) as f64
        );
    }
    Ok(())
}
