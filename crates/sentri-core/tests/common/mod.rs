//! Shared setup of the service tests: a `Sentri` on the memory store with a
//! manual clock and fast password hashing.
#![allow(dead_code)]

use std::sync::Arc;

use sentri_core::clock::Clock;
use sentri_core::config::ConfigBuilder;
use sentri_core::password::PasswordPolicy;
use sentri_core::store::Stores;
use sentri_core::{ClientInfo, Config, LoginInput, RegisterInput, Sentri};
use sentri_memory::MemoryStore;

pub const SECRET: &str = "test-secret-test-secret-test-secret!";
pub const PASSWORD: &str = "correct horse battery staple";

/// Small argon2 parameters: the tests are about behaviour, not cost.
pub fn fast_policy() -> PasswordPolicy {
    PasswordPolicy::argon2id(256, 1, 1)
}

pub fn base() -> ConfigBuilder {
    Config::builder()
        .hs256(SECRET)
        .valid_roles(["user", "admin", "editor"])
        .password_policy(fast_policy())
}

pub struct Env {
    pub sentri: Sentri,
    pub clock: Clock,
    pub stores: Stores,
}

pub async fn env_with(builder: ConfigBuilder) -> Env {
    let stores = Stores::from_backend(Arc::new(MemoryStore::new()));
    env_on(builder, stores).await
}

pub async fn env_on(builder: ConfigBuilder, stores: Stores) -> Env {
    let clock = Clock::manual_at_now();
    let sentri = Sentri::with_clock(builder.build().unwrap(), stores.clone(), clock.clone())
        .await
        .unwrap();
    Env {
        sentri,
        clock,
        stores,
    }
}

pub async fn env() -> Env {
    env_with(base()).await
}

pub fn register_input(identifier: &str) -> RegisterInput {
    RegisterInput {
        identifier: identifier.to_owned(),
        password: PASSWORD.to_owned(),
        roles: None,
        name: None,
    }
}

pub fn login_input(identifier: &str, password: &str) -> LoginInput {
    LoginInput {
        identifier: identifier.to_owned(),
        password: password.to_owned(),
        client: ClientInfo {
            user_agent: Some("test-agent/1.0".to_owned()),
            ip: Some("192.0.2.10".parse().unwrap()),
        },
    }
}

/// Register `identifier` and log in; returns the login output.
pub async fn signed_in(env: &Env, identifier: &str) -> sentri_core::AuthOutput {
    env.sentri
        .register(register_input(identifier))
        .await
        .unwrap();
    log_in(env, identifier).await
}

/// Log an existing user in with [`PASSWORD`]; returns the login output.
pub async fn log_in(env: &Env, identifier: &str) -> sentri_core::AuthOutput {
    env.sentri
        .login(login_input(identifier, PASSWORD))
        .await
        .unwrap()
        .authenticated()
        .unwrap()
}
