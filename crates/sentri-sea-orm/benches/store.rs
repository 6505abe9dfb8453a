//! `rotate_refresh` and `find_active_session` on PostgreSQL and SQLite, and
//! the services on top of them (`Sentri::verify_access` in `Always` mode and
//! `Sentri::refresh`), next to a hand-written single indexed `SELECT` of a
//! session row through the same connection pool, in the same run.
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-sql cargo bench -p sentri-sea-orm --features postgres,sqlite --bench store
//! ```
//!
//! PostgreSQL: the machine's server at 127.0.0.1:5432 (a fresh database per
//! run, dropped at the end); override with `SENTRI_BENCH_PG_ADMIN_URL`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sentri_core::model::{NewSession, NewUser, PasswordHash, SessionId, TokenHash, UserId};
use sentri_core::password::PasswordPolicy;
use sentri_core::store::{SessionStore, Stores, UserStore};
use sentri_core::{
    ClientInfo, Config, LoginInput, RefreshInput, RegisterInput, Sentri, SessionCheck,
};
use sentri_sea_orm::SeaOrmStore;
use sentri_sea_orm::sea_orm::{ConnectionTrait, DbBackend, Statement};
use tokio::runtime::Runtime;

struct Fixture {
    store: SeaOrmStore,
    session: SessionId,
}

async fn fixture(url: &str) -> Fixture {
    let mut options = sentri_sea_orm::connect_options(url);
    options.max_connections(4);
    let db = sentri_sea_orm::connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("bench database {url}: {e:?}"));
    sentri_sea_orm::migrate(&db).await.expect("migrate");
    let store = SeaOrmStore::new(db);
    let now = Utc::now();
    let user = store
        .create_user(NewUser {
            id: UserId::new(),
            identifier: "bench@example.test".into(),
            identifier_key: "bench@example.test".into(),
            password_hash: PasswordHash::new("$bench$"),
            roles: vec!["admin".into(), "user".into()],
            name: None,
            created_at: now,
        })
        .await
        .expect("create user");
    // Some other rows, so that the indexes matter.
    for i in 0..1000u32 {
        let _ = store
            .create_session(NewSession {
                id: SessionId::new(),
                user_id: user.id,
                refresh_hash: TokenHash([(i % 251) as u8; 32]),
                user_agent: None,
                ip: None,
                created_at: now,
                expires_at: now + TimeDelta::days(7),
                amr: vec!["pwd".to_owned()],
            })
            .await
            .expect("create session");
    }
    let session = store
        .create_session(NewSession {
            id: SessionId::new(),
            user_id: user.id,
            refresh_hash: TokenHash([0; 32]),
            user_agent: Some("bench".into()),
            ip: Some("127.0.0.1".into()),
            created_at: now,
            expires_at: now + TimeDelta::days(7),
            amr: vec!["pwd".to_owned()],
        })
        .await
        .expect("create session");
    Fixture {
        store,
        session: session.id,
    }
}

fn bench_backend(c: &mut Criterion, rt: &Runtime, name: &str, url: &str) {
    let fx = rt.block_on(fixture(url));
    let mut group = c.benchmark_group(name);
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    // Baseline: what an application writes by hand.
    let backend = fx.store.connection().get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT id, user_id, expires_at FROM sentri_sessions WHERE id = $1 AND expires_at > $2"
        }
        _ => "SELECT id, user_id, expires_at FROM sentri_sessions WHERE id = ? AND expires_at > ?",
    };
    group.bench_function("hand_written_select", |b| {
        b.to_async(rt).iter(|| async {
            let row = fx
                .store
                .connection()
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    sql,
                    [fx.session.0.into(), Utc::now().into()],
                ))
                .await
                .expect("select");
            assert!(row.is_some());
        })
    });

    group.bench_function("find_active_session", |b| {
        b.to_async(rt).iter(|| async {
            let s = fx
                .store
                .find_active_session(fx.session, Utc::now())
                .await
                .expect("find_active_session");
            assert!(s.is_some());
        })
    });

    let mut current = TokenHash([0; 32]);
    let mut counter = 0u64;
    group.bench_function("rotate_refresh", |b| {
        b.iter(|| {
            counter += 1;
            let mut next = [0u8; 32];
            next[..8].copy_from_slice(&counter.to_le_bytes());
            next[31] = 1;
            let next = TokenHash(next);
            let rotation = rt
                .block_on(
                    fx.store
                        .rotate_refresh(fx.session, &current, &next, Utc::now(), None),
                )
                .expect("rotate_refresh");
            assert!(matches!(rotation, sentri_core::model::Rotation::Rotated(_)));
            current = next;
        })
    });

    // The services, on the same store: what every protected request and
    // every refresh costs.
    let (sentri, tokens) = rt.block_on(signed_in(fx.store.clone()));
    group.bench_function("sentri_verify_access_always", |b| {
        b.to_async(rt).iter(|| async {
            sentri
                .verify_access(&tokens.access_token)
                .await
                .expect("verify_access");
        })
    });
    let mut refresh_token = tokens.refresh_token.clone();
    group.bench_function("sentri_refresh", |b| {
        b.iter(|| {
            let out = rt
                .block_on(sentri.refresh(RefreshInput {
                    refresh_token: std::mem::take(&mut refresh_token),
                    client: ClientInfo::default(),
                }))
                .expect("refresh");
            refresh_token = out.tokens.refresh_token;
        })
    });

    // Throughput: 16 sessions refreshing at once, as many clients would.
    let tokens: Vec<_> = (0..16)
        .map(|_| {
            let out = rt.block_on(sentri.login(LoginInput {
                identifier: "service-bench@example.test".into(),
                password: "correct horse battery staple".into(),
                client: ClientInfo::default(),
            }));
            Arc::new(parking_lot::Mutex::new(
                out.expect("login")
                    .authenticated()
                    .expect("no second step")
                    .tokens
                    .refresh_token,
            ))
        })
        .collect();
    group.throughput(Throughput::Elements(tokens.len() as u64));
    group.bench_function("sentri_refresh_16_concurrent", |b| {
        b.to_async(rt).iter(|| {
            let tasks: Vec<_> = tokens
                .iter()
                .map(|slot| {
                    let sentri = sentri.clone();
                    let slot = slot.clone();
                    tokio::spawn(async move {
                        let token = std::mem::take(&mut *slot.lock());
                        let out = sentri
                            .refresh(RefreshInput {
                                refresh_token: token,
                                client: ClientInfo::default(),
                            })
                            .await
                            .expect("refresh");
                        *slot.lock() = out.tokens.refresh_token;
                    })
                })
                .collect();
            async move {
                for t in tasks {
                    t.await.expect("refresh task");
                }
            }
        })
    });
    group.finish();
}

/// A `Sentri` in `Always` mode on `store`, and the tokens of a fresh login.
async fn signed_in(store: SeaOrmStore) -> (Sentri, sentri_core::TokenPair) {
    let config = Config::builder()
        .hs256("bench-secret-bench-secret-bench-secret")
        .valid_roles(["user", "admin"])
        .session_check(SessionCheck::Always)
        .password_policy(PasswordPolicy::argon2id(1024, 1, 1))
        .build()
        .expect("config");
    let sentri = Sentri::new(config, Stores::from_backend(Arc::new(store)))
        .await
        .expect("sentri");
    let password = "correct horse battery staple".to_owned();
    sentri
        .register(RegisterInput {
            identifier: "service-bench@example.test".into(),
            password: password.clone(),
            roles: None,
            name: None,
        })
        .await
        .expect("register");
    let out = sentri
        .login(LoginInput {
            identifier: "service-bench@example.test".into(),
            password,
            client: ClientInfo::default(),
        })
        .await
        .expect("login")
        .authenticated()
        .expect("no second step");
    (sentri, out.tokens)
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // SQLite: a file in a temporary directory.
    let dir = std::env::temp_dir().join(format!("sentri-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
    bench_backend(c, &rt, "sqlite", &sqlite);
    let _ = std::fs::remove_dir_all(&dir);

    // PostgreSQL: a fresh database on the server.
    let admin = std::env::var("SENTRI_BENCH_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("sentri_bench_{}", std::process::id());
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
    let admin_db = rt
        .block_on(sentri_sea_orm::connect(&admin))
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e:?}"));
    rt.block_on(admin_db.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}")))
        .unwrap();
    rt.block_on(admin_db.execute_unprepared(&format!("CREATE DATABASE {name}")))
        .unwrap();
    bench_backend(c, &rt, "postgres", &format!("{base}/{name}"));
    let _ = rt.block_on(
        admin_db.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
    );
}

criterion_group!(store, benches);
criterion_main!(store);
