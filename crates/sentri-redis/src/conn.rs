//! Sending commands: every command goes out with the store's bounded
//! options (timeout, one write attempt, fail fast while disconnected), and
//! scripts go out as `EVALSHA`, loaded on first use.

use std::time::Duration;

use fred::clients::{Client, Pool};
use fred::interfaces::ClientLike;
use fred::types::config::Options;
use fred::types::{ClusterHash, CustomCommand, FromValue, Value};

use crate::error::RedisError;

/// A connection handle: the caller's pool or single client.
#[derive(Clone)]
pub(crate) enum Handle {
    Pool(Pool),
    Client(Client),
}

impl Handle {
    /// The client to send the next command on: the next connected one of
    /// a pool, so that one reconnected connection serves while the others
    /// are still reconnecting.
    pub(crate) fn client(&self) -> &Client {
        match self {
            Handle::Pool(pool) => pool.next_connected(),
            Handle::Client(client) => client,
        }
    }
}

/// Options applied to every command of a store or bus.
///
/// - `timeout`: a command to a hung server fails after it.
/// - `max_attempts: 1`: a command whose connection closes while it is in
///   flight is not written again. Re-running `begin` or `record_failure`
///   after Redis already ran it would take the caller's own lock or count a
///   failure twice; the caller gets `Unavailable` instead.
/// - `fail_fast`: while the connection is down, commands fail at once
///   instead of queueing until a reconnect.
pub(crate) fn command_options(timeout: Duration) -> Options {
    Options {
        timeout: Some(timeout),
        max_attempts: Some(1),
        fail_fast: true,
        ..Options::default()
    }
}

/// A Lua script, sent by hash and loaded when Redis does not know it.
pub(crate) struct Script {
    lua: &'static str,
    sha1: String,
}

impl Script {
    pub(crate) fn new(lua: &'static str) -> Self {
        Self {
            lua,
            sha1: fred::util::sha1_hash(lua),
        }
    }
}

/// Closes connections this crate opened once the last [`Conn`] using them
/// is gone (a store and the buses made from it share them).
pub(crate) struct Owned(pub(crate) Handle);

impl Drop for Owned {
    fn drop(&mut self) {
        let handle = self.0.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = match handle {
                    Handle::Pool(pool) => pool.quit().await,
                    Handle::Client(client) => client.quit().await,
                };
            });
        }
    }
}

/// A handle plus the options every command carries.
#[derive(Clone)]
pub(crate) struct Conn {
    pub(crate) handle: Handle,
    pub(crate) options: Options,
    /// Set when this crate opened the connections: they close when the
    /// last clone is dropped.
    pub(crate) _owned: Option<std::sync::Arc<Owned>>,
}

impl Conn {
    /// Send `name args…` and convert the answer.
    pub(crate) async fn cmd<R: FromValue>(
        &self,
        name: &'static str,
        args: Vec<Value>,
    ) -> Result<R, RedisError> {
        let command = CustomCommand::new_static(name, ClusterHash::FirstKey, false);
        Ok(self
            .handle
            .client()
            .with_options(&self.options)
            .custom(command, args)
            .await?)
    }

    /// Run `script` on one key with `args`.
    pub(crate) async fn eval<R: FromValue>(
        &self,
        script: &Script,
        key: String,
        args: Vec<Value>,
    ) -> Result<R, RedisError> {
        self.eval_keys(script, vec![key], args).await
    }

    /// Run `script` on `keys` with `args`.
    pub(crate) async fn eval_keys<R: FromValue>(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<R, RedisError> {
        let mut full = Vec::with_capacity(args.len() + keys.len() + 2);
        full.push(Value::from(script.sha1.as_str()));
        full.push(Value::Integer(
            i64::try_from(keys.len()).unwrap_or(i64::MAX),
        ));
        full.extend(keys.into_iter().map(Value::from));
        full.extend(args);
        match self.cmd::<Value>("EVALSHA", full.clone()).await {
            Err(RedisError::Command(err)) if err.details().starts_with("NOSCRIPT") => {
                // First use on this server (or after a restart / SCRIPT
                // FLUSH): EVAL sends the source, and caches it for EVALSHA.
                full[0] = Value::from(script.lua);
                Ok(self.cmd::<Value>("EVAL", full).await?.convert()?)
            }
            other => Ok(other?.convert()?),
        }
    }
}
