//! What each subcommand does: open and migrate the database, build the
//! [`Sentri`] services, then serve or administer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sentri_core::Sentri;
use sentri_core::model::User;
use sentri_core::store::Stores;
use sentri_redis::{RedisRevocationBus, RedisStore};
use sentri_sea_orm::SeaOrmStore;
use tokio::net::TcpListener;

use crate::error::ServerError;
use crate::http::{self, AppState};
use crate::settings::{Framework, Settings};

/// How long in-flight requests may run after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How often a running server re-reads the signing keys, so a
/// `keys rotate` run elsewhere is picked up.
pub const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// How often expired sessions, throttle attempts and retired keys are
/// purged.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Connect to the database and apply pending migrations (safe when several
/// instances start at once).
///
/// # Errors
/// [`ServerError::Database`] naming the (redacted) URL.
pub async fn open_store(settings: &Settings) -> Result<Arc<SeaOrmStore>, ServerError> {
    let shown = settings.database_url_redacted();
    let db = sentri_sea_orm::connect(settings.database_url.expose())
        .await
        .map_err(|e| {
            ServerError::Database(format!(
                "cannot connect to the database {shown} (SENTRI_DATABASE_URL): {}",
                chain(&e)
            ))
        })?;
    sentri_sea_orm::migrate(&db).await.map_err(|e| {
        ServerError::Database(format!(
            "cannot migrate the database {shown}: {}",
            chain(&e)
        ))
    })?;
    tracing::info!(database = %shown, "database ready (migrations applied)");
    Ok(Arc::new(SeaOrmStore::new(db)))
}

/// What `SENTRI_REDIS_URL` adds: idempotency and throttling on Redis, and
/// the revocation fan-out of `Cached` session checks.
#[derive(Clone)]
pub struct RedisStores {
    /// Idempotency and throttling.
    pub store: Arc<RedisStore>,
    /// Revocation fan-out between instances.
    pub bus: Arc<RedisRevocationBus>,
}

impl std::fmt::Debug for RedisStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStores")
            .field("key_prefix", &self.store.key_prefix())
            .finish_non_exhaustive()
    }
}

/// Connect to `SENTRI_REDIS_URL` when it is set (`Ok(None)` otherwise) and
/// subscribe to the revocation channel. The connections reconnect by
/// themselves if Redis goes away later; meanwhile the features that need
/// it answer `SERVICE_UNAVAILABLE`.
///
/// # Errors
/// [`ServerError::Startup`] naming the (redacted) URL when Redis cannot be
/// reached at startup.
pub async fn open_redis(settings: &Settings) -> Result<Option<RedisStores>, ServerError> {
    let (Some(url), Some(shown)) = (&settings.redis_url, settings.redis_url_redacted()) else {
        return Ok(None);
    };
    let failed = |e: sentri_redis::Error| {
        // fred's errors may repeat the URL; show only the redacted one.
        let cause = match &e {
            sentri_redis::Error::Redis(err) => format!("{:?}: {}", err.kind(), err.details()),
            other => other.to_string(),
        };
        ServerError::Startup(format!(
            "cannot connect to Redis {shown} (SENTRI_REDIS_URL): {cause}"
        ))
    };
    let store = RedisStore::builder()
        .key_prefix(settings.redis_prefix.clone())
        .connect(url.expose())
        .await
        .map_err(failed)?;
    let bus = store.revocation_bus().await.map_err(failed)?;
    tracing::info!(redis = %shown, prefix = %settings.redis_prefix, "redis ready");
    Ok(Some(RedisStores {
        store: Arc::new(store),
        bus: Arc::new(bus),
    }))
}

/// Build the services on `store`: loads, or generates and persists, the
/// signing key.
///
/// # Errors
/// [`ServerError::Settings`] or [`ServerError::Sentri`].
pub async fn build_sentri(
    settings: &Settings,
    store: Arc<SeaOrmStore>,
) -> Result<Sentri, ServerError> {
    build_sentri_with(settings, store, None).await
}

/// As [`build_sentri`], with idempotency and throttling on Redis and its
/// revocation fan-out when `redis` is given.
///
/// # Errors
/// [`ServerError::Settings`] or [`ServerError::Sentri`].
pub async fn build_sentri_with(
    settings: &Settings,
    store: Arc<SeaOrmStore>,
    redis: Option<&RedisStores>,
) -> Result<Sentri, ServerError> {
    let config = settings.core_config()?;
    let mut stores = Stores::from_backend(store);
    if let Some(redis) = redis {
        stores = stores
            .with_idempotency(redis.store.clone())
            .with_throttle(redis.store.clone())
            .with_revocation_bus(redis.bus.clone());
    }
    Sentri::new(config, stores)
        .await
        .map_err(|e| ServerError::Sentri("cannot load the signing keys", e))
}

/// `migrate`: apply pending migrations and exit.
///
/// # Errors
/// As [`open_store`].
pub async fn migrate_only(settings: &Settings) -> Result<(), ServerError> {
    open_store(settings).await.map(drop)
}

/// `user create`: create a user with any valid roles.
///
/// # Errors
/// [`ServerError::Sentri`] (`USER_ALREADY_EXISTS`, `INVALID_ROLE`,
/// `VALIDATION_ERROR`, …).
pub async fn create_user(
    settings: &Settings,
    identifier: &str,
    password: &str,
    roles: Vec<String>,
) -> Result<User, ServerError> {
    let store = open_store(settings).await?;
    let sentri = build_sentri(settings, store).await?;
    let roles = if roles.is_empty() {
        vec![sentri.config().default_role().to_owned()]
    } else {
        roles
    };
    let user = sentri
        .create_user(identifier, password, roles)
        .await
        .map_err(|e| ServerError::Sentri("cannot create the user", e))?;
    tracing::info!(user.id = %user.id, roles = ?user.roles, "user created");
    Ok(user)
}

/// `keys rotate`: make a new signing key active; returns its `kid`.
///
/// # Errors
/// [`ServerError::Sentri`]; a `CONFIGURATION_ERROR` with an HMAC secret.
pub async fn rotate_key(settings: &Settings) -> Result<String, ServerError> {
    if settings.secret.is_some() {
        return Err(ServerError::Usage(
            "keys rotate: SENTRI_SECRET is set, so tokens are signed with that HMAC secret; \
             rotate it by changing SENTRI_SECRET"
                .to_owned(),
        ));
    }
    let store = open_store(settings).await?;
    let sentri = build_sentri(settings, store).await?;
    let kid = sentri
        .rotate_signing_key()
        .await
        .map_err(|e| ServerError::Sentri("cannot rotate the signing key", e))?;
    tracing::info!(kid = %kid, "signing key rotated");
    Ok(kid)
}

/// `serve`: migrate, build, bind and serve until SIGTERM or Ctrl-C, then
/// let in-flight requests finish (at most [`SHUTDOWN_GRACE`]).
///
/// # Errors
/// Startup failures; serving errors.
pub async fn serve(settings: Settings) -> Result<(), ServerError> {
    let store = open_store(&settings).await?;
    let redis = open_redis(&settings).await?;
    let sentri = build_sentri_with(&settings, store.clone(), redis.as_ref()).await?;
    let listener = TcpListener::bind(settings.bind).await.map_err(|e| {
        ServerError::Startup(format!(
            "cannot listen on {} (SENTRI_BIND): {e}",
            settings.bind
        ))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Startup(format!("cannot read the bound address: {e}")))?;

    let state = AppState::new(sentri.clone(), store).with_redis(redis.map(|r| r.store));
    let background = spawn_background(&sentri);
    let redis_shown = settings.redis_url_redacted();
    tracing::info!(
        algorithm = %sentri.config().algorithm(),
        cookies = settings.cookies.as_str(),
        session_check = ?sentri.config().session_check(),
        redis = redis_shown.is_some(),
        framework = ?settings.framework,
        "listening on http://{addr}"
    );

    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let signalled = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = signalled_tx.send(());
    };
    let server: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> =
        match settings.framework {
            Framework::Axum => {
                let app = http::app(state, &settings)?;
                Box::pin(std::future::IntoFuture::into_future(
                    axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(signalled),
                ))
            }
            Framework::Poem => {
                let acceptor = poem::listener::TcpAcceptor::from_tokio(listener)
                    .map_err(|e| ServerError::Startup(format!("cannot accept on {addr}: {e}")))?;
                Box::pin(
                    poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
                        crate::poem_app::app(state),
                        signalled,
                        Some(SHUTDOWN_GRACE),
                    ),
                )
            }
        };
    let drained = async move {
        if signalled_rx.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let result = tokio::select! {
        r = server => r.map_err(|e| ServerError::Startup(format!("server error: {e}"))),
        () = drained => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "in-flight requests did not finish in time");
            Ok(())
        }
    };
    for task in background {
        task.abort();
    }
    tracing::info!("stopped");
    result
}

/// Key reloading and purging, for as long as the server runs.
fn spawn_background(sentri: &Sentri) -> Vec<tokio::task::JoinHandle<()>> {
    let reload = {
        let sentri = sentri.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(KEY_RELOAD_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(err) = sentri.reload_keys().await {
                    tracing::warn!(error = %err, "could not reload the signing keys");
                }
            }
        })
    };
    let purge_keys = {
        let sentri = sentri.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PURGE_INTERVAL);
            loop {
                tick.tick().await;
                match sentri.purge_retired_keys().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "purged retired signing keys"),
                    Err(err) => tracing::warn!(error = %err, "could not purge retired keys"),
                }
            }
        })
    };
    let purge_sessions = sentri.spawn_session_purger(PURGE_INTERVAL);
    let purge_throttle = sentri.spawn_throttle_purger(PURGE_INTERVAL);
    vec![reload, purge_keys, purge_sessions, purge_throttle]
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// An error and its causes on one line (for the operator).
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
