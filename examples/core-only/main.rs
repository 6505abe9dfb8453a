//! sentri without a web framework: `sentri-core` with the in-memory store.
//!
//! Registers a user, logs in, protects a "request", refreshes, detects a
//! replayed refresh token, and logs out.
//!
//! Run: `cargo run -p sentri-examples --example core-only`

use std::sync::Arc;

use sentri_core::store::Stores;
use sentri_core::{
    ClientInfo, Config, ErrorCode, LoginInput, LogoutInput, RefreshInput, RegisterInput, Sentri,
};
use sentri_memory::MemoryStore;

#[tokio::main]
async fn main() -> sentri_core::Result<()> {
    let config = Config::builder()
        .hs256("an HMAC secret of at least thirty-two bytes")
        .valid_roles(["user", "admin"])
        .access_ttl("15m")
        .refresh_ttl("7d")
        .build()?;
    let sentri = Sentri::new(config, Stores::from_backend(Arc::new(MemoryStore::new()))).await?;

    let user = sentri
        .register(RegisterInput {
            identifier: "Alice@Example.com".into(),
            password: "correct horse battery staple".into(),
            roles: None,
            name: Some("Alice".into()),
        })
        .await?;
    println!("registered {} with roles {:?}", user.identifier, user.roles);

    let client = ClientInfo {
        user_agent: Some("core-only-example".into()),
        ip: Some("127.0.0.1".parse().expect("an address")),
    };
    let login = sentri
        .login(LoginInput {
            identifier: "alice@example.com".into(),
            password: "correct horse battery staple".into(),
            client: client.clone(),
        })
        .await?
        .authenticated()?;
    println!(
        "logged in; access token expires at {}",
        login.tokens.access_expires_at
    );

    // What `protect` does on every request.
    let me = sentri.verify_access(&login.tokens.access_token).await?;
    me.require_any_role(&["user"])?;
    println!("request authorised for {} ({})", me.identifier(), me.id());

    // Rotate the refresh token; the old one is now spent.
    let refreshed = sentri
        .refresh(RefreshInput {
            refresh_token: login.tokens.refresh_token.clone(),
            client: client.clone(),
        })
        .await?;
    let replay = sentri
        .refresh(RefreshInput {
            refresh_token: login.tokens.refresh_token.clone(),
            client,
        })
        .await;
    assert_eq!(replay.unwrap_err().code(), ErrorCode::TokenInvalid);
    println!("refresh rotated; the old refresh token is refused");

    sentri
        .logout(LogoutInput::RefreshToken(refreshed.tokens.refresh_token))
        .await?;
    let after = sentri.verify_access(&refreshed.tokens.access_token).await;
    assert_eq!(after.unwrap_err().code(), ErrorCode::TokenInvalid);
    println!("logged out; the access token is rejected at once");
    Ok(())
}
