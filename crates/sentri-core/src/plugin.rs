//! Plugins (SPEC §10): how a feature crate extends sentri without editing
//! it.
//!
//! A [`Plugin`] is given a [`PluginSetup`] once, when
//! [`Sentri::builder`](crate::Sentri::builder) builds: there it checks its
//! settings and the stores it needs (a problem is a `CONFIGURATION_ERROR`
//! naming the plugin and the field, and nothing starts), and contributes
//! routes (mounted by both adapters like the built-in ones), event
//! subscribers and access-token claims.
//!
//! ```
//! use std::sync::Arc;
//! use http::{Method, StatusCode};
//! use sentri_core::http::{Api, RouteSpec, envelope_response};
//! use sentri_core::plugin::{Plugin, PluginSetup};
//! use sentri_core::{Config, Result, Sentri, store::Stores};
//! use sentri_memory::MemoryStore;
//! use serde_json::json;
//!
//! /// Greets at `GET /hello` and tells tokens which greeting they carry.
//! struct Hello {
//!     greeting: String,
//! }
//!
//! impl Plugin for Hello {
//!     fn name(&self) -> &'static str {
//!         "hello"
//!     }
//!
//!     fn setup(&self, setup: &mut PluginSetup<'_>) -> Result<()> {
//!         if self.greeting.is_empty() {
//!             return Err(setup.invalid("greeting", "must not be empty"));
//!         }
//!         let greeting = self.greeting.clone();
//!         setup.route(RouteSpec::new("hello", Method::GET, "/hello", move |_| {
//!             let data = json!({ "greeting": greeting });
//!             Box::pin(async move { envelope_response(StatusCode::OK, "ok", Some(data)) })
//!         }));
//!         let greeting = self.greeting.clone();
//!         setup.claims(move |_| {
//!             let mut claims = serde_json::Map::new();
//!             claims.insert("greeting".into(), json!(greeting));
//!             claims
//!         });
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<()> {
//! let config = Config::builder()
//!     .hs256("an HMAC secret of at least thirty-two bytes")
//!     .valid_roles(["user"])
//!     .build()?;
//! let stores = Stores::from_backend(Arc::new(MemoryStore::new()));
//! let sentri = Sentri::builder(config.clone(), stores.clone())
//!     .plugin(Hello { greeting: "hi".into() })
//!     .build()
//!     .await?;
//! let api = Api::new(sentri, "/auth");
//! assert!(api.routes().iter().any(|r| r.id() == "hello"));
//!
//! let err = Sentri::builder(config, stores)
//!     .plugin(Hello { greeting: String::new() })
//!     .build()
//!     .await
//!     .unwrap_err();
//! assert_eq!(err.to_string(), "hello.greeting: must not be empty");
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::Config;
use crate::error::{Error, ErrorCode, Result};
use crate::hooks::{Event, Hook};
use crate::model::{SessionId, UserId};
use crate::store::Stores;

/// A feature that extends sentri: its settings, routes, stores, event
/// subscribers and token claims. See the [module docs](self).
pub trait Plugin: Send + Sync + 'static {
    /// The plugin's name: in configuration errors (`name.field: problem`)
    /// and logs. Unique among the plugins of one `Sentri`.
    fn name(&self) -> &'static str;

    /// Check the settings and the stores, and contribute routes,
    /// subscribers and claims. Called once, at build.
    ///
    /// # Errors
    /// A `CONFIGURATION_ERROR` (see [`PluginSetup::invalid`] and
    /// [`PluginSetup::require`]): the build fails with it.
    fn setup(&self, setup: &mut PluginSetup<'_>) -> Result<()>;
}

/// Who an access token is being issued to, as a claims function sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ClaimsSubject<'a> {
    /// The user.
    pub user_id: UserId,
    /// The session.
    pub session_id: SessionId,
    /// The user's identifier.
    pub identifier: &'a str,
    /// The user's roles.
    pub roles: &'a [String],
    /// How the user authenticated (`amr`).
    pub amr: &'a [String],
}

pub(crate) type ClaimsFn = Arc<dyn Fn(&ClaimsSubject<'_>) -> Map<String, Value> + Send + Sync>;

/// What the plugins of one `Sentri` contributed.
#[derive(Clone, Default)]
pub(crate) struct PluginParts {
    pub(crate) names: Vec<&'static str>,
    #[cfg(feature = "http")]
    pub(crate) routes: Vec<(&'static str, crate::http::RouteSpec)>,
    pub(crate) claims: Vec<ClaimsFn>,
}

impl fmt::Debug for PluginParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginParts")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// What a plugin sees and contributes at build: the configuration, the
/// stores, and the registration of its routes, subscribers and claims.
pub struct PluginSetup<'a> {
    name: &'static str,
    config: &'a Config,
    stores: &'a Stores,
    parts: &'a mut PluginParts,
    subscribers: &'a mut Vec<Hook<Event>>,
}

impl fmt::Debug for PluginSetup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginSetup")
            .field("plugin", &self.name)
            .finish_non_exhaustive()
    }
}

impl<'a> PluginSetup<'a> {
    pub(crate) fn new(
        name: &'static str,
        config: &'a Config,
        stores: &'a Stores,
        parts: &'a mut PluginParts,
        subscribers: &'a mut Vec<Hook<Event>>,
    ) -> Self {
        Self {
            name,
            config,
            stores,
            parts,
            subscribers,
        }
    }

    /// The name of the plugin being set up.
    pub fn plugin(&self) -> &'static str {
        self.name
    }

    /// The configuration of sentri.
    pub fn config(&self) -> &'a Config {
        self.config
    }

    /// The stores.
    pub fn stores(&self) -> &'a Stores {
        self.stores
    }

    /// A `CONFIGURATION_ERROR` for a bad setting of this plugin:
    /// `plugin.field: problem`.
    pub fn invalid(&self, field: &str, problem: &str) -> Error {
        Error::configuration(&format!("{}.{field}", self.name), problem)
    }

    /// The feature store of type `T` this plugin needs
    /// ([`Stores::with_extension`]).
    ///
    /// # Errors
    /// `CONFIGURATION_ERROR` naming the plugin and `what` when it is
    /// missing.
    pub fn require<T: Clone + Send + Sync + 'static>(&self, what: &str) -> Result<T> {
        self.stores.require::<T>(self.name, what).cloned()
    }

    /// The one-time token store this plugin needs.
    ///
    /// # Errors
    /// `CONFIGURATION_ERROR` naming the plugin when none is configured.
    pub fn require_one_time_tokens(&self) -> Result<Arc<dyn crate::store::OneTimeTokenStore>> {
        self.stores.require_one_time_tokens(self.name).cloned()
    }

    /// Add a route to the table (after the built-in routes). A route
    /// whose id, or method and path, is taken fails the build.
    #[cfg(feature = "http")]
    pub fn route(&mut self, route: crate::http::RouteSpec) -> &mut Self {
        self.parts.routes.push((self.name, route));
        self
    }

    /// Receive every [`Event`], bounded by the hook timeout like every
    /// subscriber (its error, panic or slowness never changes a response).
    pub fn subscribe<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), crate::BoxError>> + Send + 'static,
    {
        let timeout = self.config.hook_timeout();
        self.subscribers.push(crate::hooks::subscriber(f, timeout));
        self
    }

    /// Add claims to every access token (at login and at refresh). A
    /// claim named like one sentri sets (`sub`, `sid`, `exp`, `roles`, …)
    /// is ignored: sentri's own claims always win. `protect` does not read
    /// them; resource servers do.
    pub fn claims<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn(&ClaimsSubject<'_>) -> Map<String, Value> + Send + Sync + 'static,
    {
        self.parts.claims.push(Arc::new(f));
        self
    }
}

/// Run every plugin's setup: the parts they contributed, and the
/// subscribers to add to the hooks.
pub(crate) fn setup_all(
    plugins: &[Arc<dyn Plugin>],
    config: &Config,
    stores: &Stores,
) -> Result<(PluginParts, Vec<Hook<Event>>)> {
    let mut parts = PluginParts::default();
    let mut subscribers = Vec::new();
    for plugin in plugins {
        let name = plugin.name();
        if parts.names.contains(&name) {
            return Err(Error::with_message(
                ErrorCode::ConfigurationError,
                format!("plugin {name} is added twice"),
            ));
        }
        parts.names.push(name);
        let mut setup = PluginSetup::new(name, config, stores, &mut parts, &mut subscribers);
        plugin.setup(&mut setup)?;
    }
    #[cfg(feature = "http")]
    crate::http::check_plugin_routes(config, &parts.routes)?;
    Ok((parts, subscribers))
}
