//! Events and lifecycle hooks (F-07), service overrides (F-08) and the
//! extra revocation check of `protect`.
//!
//! Every operation that changes an account or a session emits an [`Event`]
//! to the subscribers of [`Hooks::subscribe`]; the typed hooks
//! (`on_login`, `on_failed_login`, …) are subscribers that pick their
//! event. Hooks are side effects: audit logs, metrics, notifications. A hook's
//! error or panic is logged and never changes the response, and a hook can
//! hold a response for at most the configured hook timeout (default 5 s,
//! [`DEFAULT_HOOK_TIMEOUT`], `ConfigBuilder::hook_timeout`): a slower one
//! is logged and abandoned (its future is dropped). Spawn work that must
//! outlive that bound; never block the thread in a hook.
//!
//! [`Hooks::on_unhandled`] receives what SPEC §3 keeps from clients: the
//! unexpected errors (500) and panics of the built-in routes, and the
//! panics of application handlers behind an adapter's panic layer built
//! with the `Sentri` (`sentri_axum::CatchPanicLayer::new`,
//! `sentri_poem::catch_panic`), all through `http::panic_caught`.
//!
//! ```
//! use sentri_core::hooks::Hooks;
//!
//! let hooks = Hooks::new()
//!     .on_login(|user| async move {
//!         println!("{} logged in", user.id);
//!         Ok(())
//!     })
//!     .on_failed_login(|identifier, code| async move {
//!         println!("failed login for {identifier}: {code}");
//!         Ok(())
//!     });
//! # let _ = hooks;
//! ```
//!
//! Overrides replace a built-in service while the router still parses,
//! validates and formats; the replacement may call the default:
//!
//! ```
//! use sentri_core::hooks::Overrides;
//! use sentri_core::{Error, ErrorCode};
//!
//! let overrides = Overrides::new().login(|sentri, input| async move {
//!     if input.identifier.ends_with("@blocked.example") {
//!         return Err(Error::new(ErrorCode::Forbidden));
//!     }
//!     sentri.default_login(input).await
//! });
//! # let _ = overrides;
//! ```

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::error::{BoxError, ErrorCode, Result};
use crate::model::{SessionId, User, UserId};
use crate::service::{
    AuthOutput, ChangeIdentifierInput, ChangePasswordInput, LoginInput, LoginOutcome, LogoutInput,
    RefreshInput, RegisterInput, Sentri,
};

type HookResult = std::result::Result<(), BoxError>;
type HookFn<A> = Arc<dyn Fn(A) -> BoxFuture<'static, HookResult> + Send + Sync>;

/// How long a hook may hold a response before it is abandoned, unless
/// `ConfigBuilder::hook_timeout` says otherwise.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// A hook and the longest it may run.
pub(crate) struct Hook<A> {
    run: HookFn<A>,
    timeout: Duration,
}

impl<A> Clone for Hook<A> {
    fn clone(&self) -> Self {
        Self {
            run: self.run.clone(),
            timeout: self.timeout,
        }
    }
}

/// An unexpected failure of a built-in route, or a panic of an application
/// handler behind an adapter's panic layer, for [`Hooks::on_unhandled`]:
/// the client got the generic 500 envelope, this is what it did not see.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Unhandled {
    /// An error or a panic.
    pub kind: UnhandledKind,
    /// The error with its causes, or the panic message (for logs and error
    /// trackers; sentri puts no password or token in errors).
    pub detail: String,
    /// The request method.
    pub method: String,
    /// The request path, without the query string.
    pub path: String,
}

/// What kind of unexpected failure an [`Unhandled`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnhandledKind {
    /// The route returned an unexpected error (`INTERNAL_ERROR`, …).
    Error,
    /// The route panicked.
    Panic,
}

/// Something that happened in sentri, delivered to the subscribers of
/// [`Hooks::subscribe`] once per operation, after it took effect.
///
/// Events carry no secret: no password, token or hash. The audit log and
/// notification e-mails are subscribers; so are the typed hooks
/// ([`Hooks::on_login`], …), which are sugar over [`Hooks::subscribe`].
/// Each variant may gain fields: match them with `..`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A user registered ([`crate::Sentri::register`]).
    #[non_exhaustive]
    Registered {
        /// The new user.
        user: User,
    },
    /// A session was opened: a password login, or any login method through
    /// [`crate::Sentri::open_session`]. Not for a login that still needs a
    /// second step.
    #[non_exhaustive]
    LoginSucceeded {
        /// The user, with the new `last_login_at`.
        user: User,
        /// The new session.
        session_id: SessionId,
    },
    /// A login was refused for its credentials or by the throttle.
    #[non_exhaustive]
    LoginFailed {
        /// The identifier as entered.
        identifier: String,
        /// `INVALID_CREDENTIALS` or `RATE_LIMITED`.
        code: ErrorCode,
    },
    /// A refresh token was rotated (a refresh, or a silent refresh of
    /// protect).
    #[non_exhaustive]
    Refreshed {
        /// The session's user.
        user: User,
        /// The session.
        session_id: SessionId,
    },
    /// A rotated refresh token was presented again and its session revoked
    /// (RFC 9700): a sign the token was stolen.
    #[non_exhaustive]
    TokenReused {
        /// The session's user.
        user_id: UserId,
        /// The revoked session.
        session_id: SessionId,
    },
    /// A user logged out of one session, or of all of them.
    #[non_exhaustive]
    LoggedOut {
        /// The user.
        user_id: UserId,
        /// The session ended; `None` when every session of the user was.
        session_id: Option<SessionId>,
    },
    /// A user revoked one of their sessions (the sessions API, F-14).
    #[non_exhaustive]
    SessionRevoked {
        /// The user.
        user_id: UserId,
        /// The revoked session.
        session_id: SessionId,
    },
    /// A password was changed (every session of the user was revoked).
    #[non_exhaustive]
    PasswordChanged {
        /// The user.
        user_id: UserId,
    },
    /// An identifier was changed (the user's other sessions were revoked).
    #[non_exhaustive]
    IdentifierChanged {
        /// The user as changed (`email_verified_at` cleared).
        user: User,
        /// The old identifier, as displayed.
        old: String,
        /// The new identifier, as displayed.
        new: String,
    },
    /// Roles were added to or removed from a user.
    #[non_exhaustive]
    RolesChanged {
        /// The user as changed.
        user: User,
        /// The roles asked to be added.
        added: Vec<String>,
        /// The roles asked to be removed.
        removed: Vec<String>,
    },
    /// An event of a plugin (see [`Event::plugin`]).
    #[non_exhaustive]
    Plugin {
        /// The plugin's name, e.g. `"totp"`.
        plugin: &'static str,
        /// What happened, e.g. `"factor_enrolled"`.
        name: &'static str,
        /// Details; never a secret.
        payload: serde_json::Value,
    },
}

impl Event {
    /// A plugin's event, to hand to [`crate::Sentri::emit`]. The payload
    /// must not hold a secret.
    pub fn plugin(plugin: &'static str, name: &'static str, payload: serde_json::Value) -> Self {
        Self::Plugin {
            plugin,
            name,
            payload,
        }
    }

    /// A short name for logs: `login_succeeded`, …; a plugin's own name for
    /// its events.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Registered { .. } => "registered",
            Self::LoginSucceeded { .. } => "login_succeeded",
            Self::LoginFailed { .. } => "login_failed",
            Self::Refreshed { .. } => "refreshed",
            Self::TokenReused { .. } => "token_reused",
            Self::LoggedOut { .. } => "logged_out",
            Self::SessionRevoked { .. } => "session_revoked",
            Self::PasswordChanged { .. } => "password_changed",
            Self::IdentifierChanged { .. } => "identifier_changed",
            Self::RolesChanged { .. } => "roles_changed",
            Self::Plugin { name, .. } => name,
        }
    }
}

/// Lifecycle hooks: event subscribers and `on_unhandled`. Build with the
/// chained setters.
#[derive(Clone, Default)]
#[must_use]
pub struct Hooks {
    /// In the order they were added; the typed setters add one each.
    pub(crate) subscribers: Vec<Hook<Event>>,
    pub(crate) on_unhandled: Option<Hook<Unhandled>>,
}

fn hook<A, F, Fut>(f: F) -> Hook<A>
where
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HookResult> + Send + 'static,
{
    Hook {
        run: Arc::new(move |a| f(a).boxed()),
        timeout: DEFAULT_HOOK_TIMEOUT,
    }
}

/// A subscriber bounded by `timeout` (a plugin's, added at build).
pub(crate) fn subscriber<F, Fut>(f: F, timeout: Duration) -> Hook<Event>
where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HookResult> + Send + 'static,
{
    Hook { timeout, ..hook(f) }
}

impl Hooks {
    /// No hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Receive every [`Event`]. Subscribers run after the operation took
    /// effect and before its response is sent, all at once, each bounded
    /// by the hook timeout: an error or a panic is logged, a slow one is
    /// abandoned, and the response is the same either way.
    ///
    /// ```
    /// use sentri_core::hooks::{Event, Hooks};
    ///
    /// let hooks = Hooks::new().subscribe(|event| async move {
    ///     if let Event::LoginFailed { identifier, code, .. } = &event {
    ///         println!("failed login for {identifier}: {code}");
    ///     }
    ///     Ok(())
    /// });
    /// # let _ = hooks;
    /// ```
    pub fn subscribe<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.subscribers.push(hook(f));
        self
    }

    /// A subscriber to the events `pick` maps to an argument of `f`.
    fn on<A, P, F, Fut>(self, pick: P, f: F) -> Self
    where
        A: Send + 'static,
        P: Fn(Event) -> Option<A> + Send + Sync + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.subscribe(move |event| match pick(event) {
            Some(arg) => f(arg).boxed(),
            None => futures_util::future::ok(()).boxed(),
        })
    }

    /// After a user registered ([`Event::Registered`]).
    pub fn on_register<F, Fut>(self, f: F) -> Self
    where
        F: Fn(User) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on(
            |e| match e {
                Event::Registered { user } => Some(user),
                _ => None,
            },
            f,
        )
    }

    /// After a successful login ([`Event::LoginSucceeded`]).
    pub fn on_login<F, Fut>(self, f: F) -> Self
    where
        F: Fn(User) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on(
            |e| match e {
                Event::LoginSucceeded { user, .. } => Some(user),
                _ => None,
            },
            f,
        )
    }

    /// After a failed login: the identifier as entered and the error code
    /// (`INVALID_CREDENTIALS` or `RATE_LIMITED`; [`Event::LoginFailed`]).
    pub fn on_failed_login<F, Fut>(self, f: F) -> Self
    where
        F: Fn(String, ErrorCode) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on(
            |e| match e {
                Event::LoginFailed { identifier, code } => Some((identifier, code)),
                _ => None,
            },
            move |(i, c)| f(i, c),
        )
    }

    /// After a logout of one session or of all of them, or the revocation
    /// of a session through the sessions API ([`Event::LoggedOut`],
    /// [`Event::SessionRevoked`]).
    pub fn on_logout<F, Fut>(self, f: F) -> Self
    where
        F: Fn(UserId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on(
            |e| match e {
                Event::LoggedOut { user_id, .. } | Event::SessionRevoked { user_id, .. } => {
                    Some(user_id)
                }
                _ => None,
            },
            f,
        )
    }

    /// After a refresh token was rotated ([`Event::Refreshed`]).
    pub fn on_refresh<F, Fut>(self, f: F) -> Self
    where
        F: Fn(User) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on(
            |e| match e {
                Event::Refreshed { user, .. } => Some(user),
                _ => None,
            },
            f,
        )
    }

    /// After a password change (every session of the user is revoked;
    /// [`Event::PasswordChanged`]).
    pub fn on_password_changed<F, Fut>(self, f: F) -> Self
    where
        F: Fn(UserId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on(
            |e| match e {
                Event::PasswordChanged { user_id } => Some(user_id),
                _ => None,
            },
            f,
        )
    }

    /// After an identifier change: the user as changed (its
    /// `email_verified_at` cleared when the address is new), the old and the
    /// new identifier as displayed. The user's other sessions were revoked.
    /// A good place to notify the old address ([`Event::IdentifierChanged`]).
    pub fn on_identifier_changed<F, Fut>(self, f: F) -> Self
    where
        F: Fn(User, String, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on(
            |e| match e {
                Event::IdentifierChanged { user, old, new } => Some((user, old, new)),
                _ => None,
            },
            move |(u, old, new)| f(u, old, new),
        )
    }

    /// After reuse of a rotated refresh token was detected and its session
    /// revoked (RFC 9700): a sign the token was stolen
    /// ([`Event::TokenReused`]).
    pub fn on_token_reuse<F, Fut>(self, f: F) -> Self
    where
        F: Fn(UserId, SessionId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on(
            |e| match e {
                Event::TokenReused {
                    user_id,
                    session_id,
                } => Some((user_id, session_id)),
                _ => None,
            },
            move |(u, s)| f(u, s),
        )
    }

    /// After a built-in route failed unexpectedly (SPEC §3): an error that
    /// renders as a 500, or a panic; and after an application handler
    /// panicked behind the adapter's panic layer (`CatchPanicLayer::new`
    /// in axum, `catch_panic` in poem). The client sees only the generic
    /// envelope; the details come here (and go to `tracing`, once). For an
    /// error tracker.
    pub fn on_unhandled<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Unhandled) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on_unhandled = Some(hook(f));
        self
    }
}

impl Hooks {
    /// Give every hook the configured timeout (at `ConfigBuilder::build`).
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        for hook in &mut self.subscribers {
            hook.timeout = timeout;
        }
        if let Some(hook) = &mut self.on_unhandled {
            hook.timeout = timeout;
        }
    }

    /// Deliver `event` to every subscriber, all at once: returns when each
    /// has finished, failed, panicked or been abandoned at its timeout.
    pub(crate) async fn emit(&self, event: Event) {
        match self.subscribers.as_slice() {
            [] => {}
            [only] => run(event.name(), only, event).await,
            many => {
                let name = event.name();
                futures_util::future::join_all(
                    many.iter().map(|hook| run(name, hook, event.clone())),
                )
                .await;
            }
        }
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("subscribers", &self.subscribers.len())
            .finish_non_exhaustive()
    }
}

/// Run a hook, isolating the caller from its error, its panic and its
/// slowness: after the hook's timeout it is abandoned (dropped) and logged.
#[cfg(feature = "http")]
pub(crate) async fn fire<A: Send + 'static>(name: &'static str, hook: &Option<Hook<A>>, arg: A) {
    if let Some(hook) = hook {
        run(name, hook, arg).await;
    }
}

async fn run<A: Send + 'static>(name: &'static str, hook: &Hook<A>, arg: A) {
    let Hook { run, timeout } = hook.clone();
    // A panic while *creating* the future, or while running it, is caught.
    let outcome = AssertUnwindSafe(async move { run(arg).await }).catch_unwind();
    match tokio::time::timeout(timeout, outcome).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => tracing::warn!(hook = name, error = %err, "sentri hook failed"),
        Ok(Err(_)) => tracing::error!(hook = name, "sentri hook panicked"),
        Err(_) => tracing::warn!(
            hook = name,
            timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            "sentri hook timed out and was abandoned"
        ),
    }
}

type Override<I, O> = Arc<dyn Fn(Sentri, I) -> BoxFuture<'static, Result<O>> + Send + Sync>;

/// Replacements for the built-in services (F-08).
///
/// Each receives a [`Sentri`] handle (call its `default_*` method to run the
/// built-in behaviour) and the validated input.
#[derive(Clone, Default)]
#[must_use]
pub struct Overrides {
    pub(crate) register: Option<Override<RegisterInput, User>>,
    pub(crate) login: Option<Override<LoginInput, LoginOutcome>>,
    pub(crate) refresh: Option<Override<RefreshInput, AuthOutput>>,
    pub(crate) logout: Option<Override<LogoutInput, ()>>,
    pub(crate) logout_all: Option<Override<UserId, ()>>,
    pub(crate) assign_roles: Option<Override<(UserId, Vec<String>), User>>,
    pub(crate) change_identifier: Option<Override<ChangeIdentifierInput, User>>,
    pub(crate) change_password: Option<Override<ChangePasswordInput, ()>>,
}

macro_rules! override_setter {
    ($(#[$doc:meta])* $name:ident, $input:ty, $output:ty) => {
        $(#[$doc])*
        pub fn $name<F, Fut>(mut self, f: F) -> Self
        where
            F: Fn(Sentri, $input) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<$output>> + Send + 'static,
        {
            self.$name = Some(Arc::new(move |s, i| f(s, i).boxed()));
            self
        }
    };
}

impl Overrides {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    override_setter!(
        /// Replace registration (`POST /register`).
        register, RegisterInput, User
    );
    override_setter!(
        /// Replace login (`POST /login`). Throttling still applies around it.
        /// The replacement may answer that a second step is required
        /// ([`LoginOutcome::SecondStepRequired`]). `login` emits
        /// [`Event::LoginSucceeded`] for an authenticated outcome, so a
        /// replacement opens its session with `default_login`, not with
        /// `Sentri::open_session` (which emits it too).
        login, LoginInput, LoginOutcome
    );
    override_setter!(
        /// Replace refresh (`POST /refresh`).
        refresh, RefreshInput, AuthOutput
    );
    override_setter!(
        /// Replace logout (`POST /logout`).
        logout, LogoutInput, ()
    );
    override_setter!(
        /// Replace logout of every session (`POST /logout-all`).
        logout_all, UserId, ()
    );
    override_setter!(
        /// Replace role assignment (`POST /users/{userId}/roles`).
        assign_roles, (UserId, Vec<String>), User
    );
    override_setter!(
        /// Replace identifier change (`PUT /me/identifier`).
        change_identifier, ChangeIdentifierInput, User
    );
    override_setter!(
        /// Replace password change (`PUT /me/password`).
        change_password, ChangePasswordInput, ()
    );
}

impl fmt::Debug for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Overrides").finish_non_exhaustive()
    }
}

/// The application's `is_token_revoked(sid)` check.
#[derive(Clone)]
pub(crate) struct RevocationCheck(
    Arc<dyn Fn(SessionId) -> BoxFuture<'static, std::result::Result<bool, BoxError>> + Send + Sync>,
);

impl RevocationCheck {
    pub(crate) fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(SessionId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<bool, BoxError>> + Send + 'static,
    {
        Self(Arc::new(move |sid| f(sid).boxed()))
    }

    pub(crate) async fn is_revoked(&self, sid: SessionId) -> std::result::Result<bool, BoxError> {
        (self.0)(sid).await
    }
}
