//! `login` on the memory store next to what it cannot avoid: one argon2id
//! verify with the same parameters (the default policy), in the same run.
//! The difference is what sentri adds to a login besides the hash.
//!
//! Run: `cargo bench -p sentri-core --bench login`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sentri_core::password::{PasswordPolicy, Passwords};
use sentri_core::store::Stores;
use sentri_core::{ClientInfo, Config, LoginInput, RegisterInput, Sentri};
use sentri_memory::MemoryStore;

const SECRET: &str = "bench-secret-bench-secret-bench-secret";
const PASSWORD: &str = "correct horse battery staple";

fn login(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("login");
    group
        .sample_size(40)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    // The baseline: the bare argon2id verify a login cannot skip, on the
    // calling thread, with the default policy's parameters.
    let params = argon2::Params::new(19_456, 2, 1, Some(32)).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = *b"sentri-bench-salt";
    let mut expected = [0u8; 32];
    argon
        .hash_password_into(PASSWORD.as_bytes(), &salt, &mut expected)
        .unwrap();
    group.bench_function("argon2id_verify", |b| {
        b.iter(|| {
            let mut out = [0u8; 32];
            argon
                .hash_password_into(PASSWORD.as_bytes(), &salt, &mut out)
                .unwrap();
            assert_eq!(out, expected);
        })
    });

    // The same verify on tokio's blocking pool, as a server must run it.
    let argon = Arc::new(argon);
    group.bench_function("argon2id_verify_spawn_blocking", |b| {
        b.to_async(&rt).iter(|| {
            let argon = argon.clone();
            async move {
                let out = tokio::task::spawn_blocking(move || {
                    let mut out = [0u8; 32];
                    argon
                        .hash_password_into(PASSWORD.as_bytes(), &salt, &mut out)
                        .unwrap();
                    out
                })
                .await
                .unwrap();
                assert_eq!(out, expected);
            }
        })
    });

    // `Passwords::verify`: the same hash on the blocking pool.
    let passwords = Passwords::new(PasswordPolicy::default()).unwrap();
    let hash = rt.block_on(passwords.hash(PASSWORD)).unwrap();
    group.bench_function("passwords_verify", |b| {
        b.to_async(&rt).iter(|| async {
            let verified = passwords.verify(PASSWORD, &hash).await.unwrap();
            assert!(matches!(
                verified,
                sentri_core::password::Verified::Valid { .. }
            ));
        })
    });

    // The whole login on the memory store, default policy.
    let config = Config::builder()
        .hs256(SECRET)
        .valid_roles(["user", "admin"])
        .build()
        .unwrap();
    let sentri = rt.block_on(async {
        let stores = Stores::from_backend(Arc::new(MemoryStore::new()));
        let sentri = Sentri::new(config, stores).await.unwrap();
        sentri
            .register(RegisterInput {
                identifier: "bench@example.com".into(),
                password: PASSWORD.into(),
                roles: None,
                name: None,
            })
            .await
            .unwrap();
        sentri
    });
    group.bench_function("sentri_login_memory", |b| {
        b.to_async(&rt).iter(|| async {
            sentri
                .login(LoginInput {
                    identifier: "bench@example.com".into(),
                    password: PASSWORD.into(),
                    client: ClientInfo::default(),
                })
                .await
                .unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, login);
criterion_main!(benches);
