//! What each subcommand does: open and migrate the database, build the
//! [`Sentri`] services, then serve or administer.

use std::sync::Arc;
use std::time::Duration;

use sentri_core::model::User;
use sentri_core::store::Stores;
use sentri_core::{ErrorCode, Sentri};
use sentri_redis::{RedisRevocationBus, RedisStore};
use sentri_sea_orm::SeaOrmStore;
use tokio::net::TcpListener;

use crate::conn;
use crate::error::ServerError;
use crate::http::{self, AppState};
use crate::settings::{Framework, Key, Settings, SettingsError};

/// How long in-flight requests may run after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How often a running server re-reads the signing keys, so a
/// `keys rotate` run elsewhere is picked up.
pub const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// How often expired sessions, throttle attempts, idempotency records and
/// retired keys are purged.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Connect to the database and apply pending migrations (safe when several
/// instances start at once).
///
/// # Errors
/// [`ServerError::Database`] naming the (redacted) URL.
pub async fn open_store(settings: &Settings) -> Result<Arc<SeaOrmStore>, ServerError> {
    let shown = settings.database_url_redacted();
    let url = settings.database_url.expose();
    let db = match sentri_sea_orm::connect(url).await {
        Ok(db) => db,
        Err(e) => {
            // The pool may only say it timed out: the network's answer
            // (refused, no such host, …) is the cause an operator needs.
            let cause = match unreachable(url).await {
                Some(network) => network,
                None => plain_cause(&e),
            };
            return Err(ServerError::Database(format!(
                "cannot connect to the database {shown} (SENTRI_DATABASE_URL): {cause}"
            )));
        }
    };
    sentri_sea_orm::migrate(&db).await.map_err(|e| {
        ServerError::Database(format!(
            "cannot migrate the database {shown}: {}",
            plain_cause(&e)
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
    let failed = |e: sentri_redis::Error, network: Option<String>| {
        // fred's errors may repeat the URL (and its password) and show
        // `Debug` output; say what the network said when it refused, else
        // the server's own words.
        let cause = network.unwrap_or_else(|| match &e {
            sentri_redis::Error::Redis(err) => err.details().to_owned(),
            other => plain_cause(other),
        });
        ServerError::Startup(format!(
            "cannot connect to Redis {shown} (SENTRI_REDIS_URL): {cause}"
        ))
    };
    let store = match RedisStore::builder()
        .key_prefix(settings.redis_prefix.clone())
        .connect(url.expose())
        .await
    {
        Ok(store) => store,
        Err(e) => return Err(failed(e, unreachable(url.expose()).await)),
    };
    let bus = match store.revocation_bus().await {
        Ok(bus) => bus,
        Err(e) => return Err(failed(e, unreachable(url.expose()).await)),
    };
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
    let mut stores = Stores::from_backend(store.clone()).with_one_time_tokens(store);
    if let Some(redis) = redis {
        stores = stores
            .with_idempotency(redis.store.clone())
            .with_throttle(redis.store.clone())
            .with_revocation_bus(redis.bus.clone());
    }
    if settings.key_encryption_key.is_none() && !config.algorithm().is_hmac() {
        tracing::warn!(
            "signing keys are stored unencrypted in the database: set SENTRI_KEY_ENCRYPTION_KEY \
             (32 bytes, e.g. `openssl rand -base64 32`; see docs/server.md)"
        );
    }
    Sentri::new(config, stores).await.map_err(|e| {
        // A stored key that is encrypted without a key, or with another
        // one: name the variable, on one line.
        match e.field() {
            Some("key_encryption_key") if e.is(&ErrorCode::ConfigurationError) => {
                let problem = e.problem();
                ServerError::Settings(SettingsError::new(Key::KeyEncryptionKey.env_var(), problem))
            }
            _ => ServerError::Sentri("cannot load the signing keys", e),
        }
    })
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

/// Bind the listening socket (`SENTRI_BIND`), before anything slower, so
/// that a port conflict fails at once.
///
/// # Errors
/// [`ServerError::Startup`] naming the address and the variable.
pub async fn bind(settings: &Settings) -> Result<TcpListener, ServerError> {
    TcpListener::bind(settings.bind).await.map_err(|e| {
        let cause = match e.kind() {
            std::io::ErrorKind::AddrInUse => "the address is already in use".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            std::io::ErrorKind::AddrNotAvailable => {
                "the address is not one of this host's".to_owned()
            }
            _ => e.to_string(),
        };
        ServerError::Startup(format!(
            "cannot listen on {} (SENTRI_BIND): {cause}",
            settings.bind
        ))
    })
}

/// `serve`: bind, migrate, build and serve until SIGTERM or Ctrl-C, then
/// let in-flight requests finish (at most [`SHUTDOWN_GRACE`]).
///
/// # Errors
/// Startup failures; serving errors.
pub async fn serve(settings: Settings) -> Result<(), ServerError> {
    let listener = bind(&settings).await?;
    let store = open_store(&settings).await?;
    let redis = open_redis(&settings).await?;
    let sentri = build_sentri_with(&settings, store.clone(), redis.as_ref()).await?;
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
    let handler: Arc<dyn conn::Handler> = match settings.framework {
        Framework::Axum => Arc::new(conn::AxumHandler(http::app(state, &settings)?)),
        Framework::Poem => {
            use poem::EndpointExt;
            Arc::new(conn::PoemHandler::new(
                crate::poem_app::app(state).map_to_response().boxed(),
                addr,
            ))
        }
    };
    let server = conn::serve(
        listener,
        handler,
        settings.limits,
        sentri.config().cookies().clone(),
        signalled,
    );
    let drained = async move {
        if signalled_rx.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = server => {}
        () = drained => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "in-flight requests did not finish in time");
        }
    }
    for task in background {
        task.abort();
    }
    tracing::info!("stopped");
    Ok(())
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
    let purge_idempotency = sentri.spawn_idempotency_purger(PURGE_INTERVAL);
    let purge_throttle = sentri.spawn_throttle_purger(PURGE_INTERVAL);
    vec![
        reload,
        purge_keys,
        purge_sessions,
        purge_idempotency,
        purge_throttle,
    ]
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

/// An error and its causes on one line, for the operator: each cause once
/// (a message that already shows its source is not followed by it again),
/// without the wrappers' generic prefixes.
pub(crate) fn plain_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    const NOISE: [&str; 8] = [
        "store unavailable: ",
        "store error: ",
        "Connection Error: ",
        "Execution Error: ",
        "Query Error: ",
        "Failed to acquire connection from pool: ",
        "error returned from database: ",
        "error communicating with database: ",
    ];
    loop {
        let before = out.len();
        for noise in NOISE {
            out = out.replace(noise, "");
        }
        if out.len() == before {
            break;
        }
    }
    out
}

/// When the host and port of a database or Redis URL cannot be reached
/// over TCP, why, in plain words (`None` when they can, or the URL names
/// no single host, e.g. SQLite or a Unix socket).
pub(crate) async fn unreachable(url: &str) -> Option<String> {
    let (host, port) = url_host_port(url)?;
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    let shown = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(match e.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                format!("connection refused by {shown} (is the server running, on that port?)")
            }
            std::io::ErrorKind::TimedOut => format!("no answer from {shown} (timed out)"),
            std::io::ErrorKind::PermissionDenied => {
                format!("not allowed to connect to {shown}")
            }
            _ if e.raw_os_error().is_none() => format!("cannot resolve the host {host:?}"),
            _ => {
                let text = e.to_string();
                let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
                format!("cannot reach {shown}: {}", text.to_lowercase())
            }
        }),
        Err(_) => Some(format!("no answer from {shown} within 5 s")),
    }
}

/// The host and port of `scheme://[user[:pw]@]host[:port][/…]` for the
/// network databases and Redis, with their default ports.
fn url_host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme {
        "postgres" | "postgresql" => 5432,
        "mysql" | "mariadb" => 3306,
        "redis" | "rediss" => 6379,
        _ => return None,
    };
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.is_empty() || host_port.contains(',') {
        return None;
    }
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}
