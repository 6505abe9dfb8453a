//! `verify_access` in `Stateless` mode next to a plain `jsonwebtoken` decode
//! of the same token, in the same run; and `refresh` on the memory store.
//!
//! Run: `cargo bench -p sentri-core --bench verify`.
//!
//! Every case runs under the same async harness (`to_async`), so the ratio
//! compares the work, not the harness.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sentri_core::password::PasswordPolicy;
use sentri_core::store::Stores;
use sentri_core::{
    Algorithm, ClientInfo, Config, LoginInput, RefreshInput, RegisterInput, Sentri, SessionCheck,
};
use sentri_memory::MemoryStore;

const SECRET: &str = "bench-secret-bench-secret-bench-secret";
const PASSWORD: &str = "correct horse battery staple";

async fn signed_in(config: Config) -> (Sentri, sentri_core::AuthOutput) {
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
    let out = sentri
        .login(LoginInput {
            identifier: "bench@example.com".into(),
            password: PASSWORD.into(),
            client: ClientInfo::default(),
        })
        .await
        .unwrap()
        .authenticated()
        .unwrap();
    (sentri, out)
}

fn config(alg: Algorithm, cache: u64) -> Config {
    let b = Config::builder()
        .algorithm(alg)
        .valid_roles(["user", "admin"])
        .session_check(SessionCheck::Stateless)
        .verified_token_cache(cache)
        .password_policy(PasswordPolicy::argon2id(1024, 1, 1));
    let b = if alg == Algorithm::HS256 {
        b.secret(SECRET)
    } else {
        b
    };
    b.build().unwrap()
}

fn plain_decoder(
    sentri: &Sentri,
    alg: Algorithm,
) -> (jsonwebtoken::DecodingKey, jsonwebtoken::Validation) {
    let key = match alg {
        Algorithm::HS256 => jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        _ => jsonwebtoken::DecodingKey::from_jwk(&sentri.jwks().keys[0]).unwrap(),
    };
    let jwt_alg = match alg {
        Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
        _ => jsonwebtoken::Algorithm::EdDSA,
    };
    (key, jsonwebtoken::Validation::new(jwt_alg))
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("verify_stateless");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    for (name, alg) in [("hs256", Algorithm::HS256), ("eddsa", Algorithm::EdDSA)] {
        let (cached, out) = rt.block_on(signed_in(config(alg, 10_000)));
        let (uncached, out_u) = rt.block_on(signed_in(config(alg, 0)));
        let (key, validation) = plain_decoder(&cached, alg);
        let token = out.tokens.access_token.clone();
        let token_u = out_u.tokens.access_token.clone();

        group.bench_function(format!("jsonwebtoken_decode_{name}"), |b| {
            b.to_async(&rt).iter(|| async {
                jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap()
            })
        });
        group.bench_function(format!("sentri_verify_access_{name}"), |b| {
            b.to_async(&rt)
                .iter(|| async { cached.verify_access(&token).await.unwrap() })
        });
        group.bench_function(format!("sentri_verify_access_{name}_no_cache"), |b| {
            b.to_async(&rt)
                .iter(|| async { uncached.verify_access(&token_u).await.unwrap() })
        });
    }
    group.finish();
}

fn refresh(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("refresh_memory");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    let (sentri, out) = rt.block_on(signed_in(config(Algorithm::HS256, 10_000)));
    let current = Arc::new(parking_lot::Mutex::new(out.tokens.refresh_token));
    group.bench_function("sentri_refresh_hs256", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let sentri = sentri.clone();
            let current = current.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let token = current.lock().clone();
                    let next = sentri
                        .refresh(RefreshInput {
                            refresh_token: token,
                            client: ClientInfo::default(),
                        })
                        .await
                        .unwrap();
                    *current.lock() = next.tokens.refresh_token;
                }
                start.elapsed()
            }
        })
    });
    group.finish();
}

criterion_group!(benches, verify, refresh);
criterion_main!(benches);
