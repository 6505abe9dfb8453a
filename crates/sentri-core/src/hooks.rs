//! Lifecycle hooks (F-07), service overrides (F-08) and the extra
//! revocation check of `protect`.
//!
//! Hooks are side effects: audit logs, metrics, notifications. A hook's
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
    AuthOutput, ChangeIdentifierInput, ChangePasswordInput, LoginInput, LogoutInput, RefreshInput,
    RegisterInput, Sentri,
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

/// Lifecycle hooks. Each is optional; build with the chained setters.
#[derive(Clone, Default)]
#[must_use]
pub struct Hooks {
    pub(crate) on_register: Option<Hook<User>>,
    pub(crate) on_login: Option<Hook<User>>,
    pub(crate) on_failed_login: Option<Hook<(String, ErrorCode)>>,
    pub(crate) on_logout: Option<Hook<UserId>>,
    pub(crate) on_refresh: Option<Hook<User>>,
    pub(crate) on_password_changed: Option<Hook<UserId>>,
    pub(crate) on_identifier_changed: Option<Hook<(User, String, String)>>,
    pub(crate) on_token_reuse: Option<Hook<(UserId, SessionId)>>,
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

impl Hooks {
    /// No hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// After a user registered.
    pub fn on_register<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(User) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on_register = Some(hook(f));
        self
    }

    /// After a successful login.
    pub fn on_login<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(User) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on_login = Some(hook(f));
        self
    }

    /// After a failed login: the identifier as entered and the error code
    /// (`INVALID_CREDENTIALS` or `RATE_LIMITED`).
    pub fn on_failed_login<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(String, ErrorCode) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on_failed_login = Some(hook(move |(i, c)| f(i, c)));
        self
    }

    /// After a logout of one session or of all of them.
    pub fn on_logout<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(UserId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on_logout = Some(hook(f));
        self
    }

    /// After a refresh token was rotated.
    pub fn on_refresh<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(User) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on_refresh = Some(hook(f));
        self
    }

    /// After a password change (every session of the user is revoked).
    pub fn on_password_changed<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(UserId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on_password_changed = Some(hook(f));
        self
    }

    /// After an identifier change: the user as changed (its
    /// `email_verified_at` cleared when the address is new), the old and the
    /// new identifier as displayed. The user's other sessions were revoked.
    /// A good place to notify the old address.
    pub fn on_identifier_changed<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(User, String, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on_identifier_changed = Some(hook(move |(u, old, new)| f(u, old, new)));
        self
    }

    /// After reuse of a rotated refresh token was detected and its session
    /// revoked (RFC 9700): a sign the token was stolen.
    pub fn on_token_reuse<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(UserId, SessionId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HookResult> + Send + 'static,
    {
        self.on_token_reuse = Some(hook(move |(u, s)| f(u, s)));
        self
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
    /// A hook added here later keeps [`DEFAULT_HOOK_TIMEOUT`] if it is not
    /// listed, so it is bounded either way.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        fn set<A>(hook: &mut Option<Hook<A>>, timeout: Duration) {
            if let Some(hook) = hook {
                hook.timeout = timeout;
            }
        }
        set(&mut self.on_register, timeout);
        set(&mut self.on_login, timeout);
        set(&mut self.on_failed_login, timeout);
        set(&mut self.on_logout, timeout);
        set(&mut self.on_refresh, timeout);
        set(&mut self.on_password_changed, timeout);
        set(&mut self.on_identifier_changed, timeout);
        set(&mut self.on_token_reuse, timeout);
        set(&mut self.on_unhandled, timeout);
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks").finish_non_exhaustive()
    }
}

/// Run a hook, isolating the caller from its error, its panic and its
/// slowness: after the hook's timeout it is abandoned (dropped) and logged.
pub(crate) async fn fire<A: Send + 'static>(name: &'static str, hook: &Option<Hook<A>>, arg: A) {
    let Some(hook) = hook else { return };
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
    pub(crate) login: Option<Override<LoginInput, AuthOutput>>,
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
        login, LoginInput, AuthOutput
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
