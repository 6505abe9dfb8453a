//! The store conformance suite of sentri (F-34): one set of checks that
//! every implementation of the [`sentri_core::store`] traits runs, so that
//! `sentri-memory`, `sentri-sea-orm` on each database, `sentri-redis` and
//! your own store all keep the same contract (unique identifiers, atomic
//! refresh rotation, compare-and-set updates, single-use tokens, …).
//!
//! Store authors depend on `sentri-core` for the traits and take this crate
//! as a dev-dependency; nothing in it is needed at run time.
//!
//! ```toml
//! [dev-dependencies]
//! sentri-testkit = "0.1"
//! ```
//!
//! Then one macro call per trait in `tests/conformance.rs` runs every check
//! as a test of its own. The argument is an expression that evaluates to a
//! future of the store (an `async` block or a call of an `async fn`); it is
//! evaluated anew for every check, so a SQL backend can hand each check a
//! fresh schema:
//!
//! ```
//! // tests/conformance.rs of your store crate
//! # use sentri_memory::MemoryStore as MyStore; // your store here
//! async fn store() -> MyStore {
//!     // e.g. `MyStore::connect("postgres://127.0.0.1/test").await.unwrap()`
//!     MyStore::new()
//! }
//!
//! sentri_testkit::user_store_tests!(store());
//! sentri_testkit::session_store_tests!(store());
//! sentri_testkit::key_store_tests!(store());
//! sentri_testkit::idempotency_store_tests!(async { MyStore::new() });
//! sentri_testkit::throttle_store_tests!(async { MyStore::new() });
//! sentri_testkit::one_time_token_store_tests!(store());
//! # fn main() {}
//! ```
//!
//! `cargo test` then names the check that failed, e.g.
//! `user_store_conformance::concurrent_create_user`. Call only the macros of
//! the traits your store implements.
//!
//! # The macros
//!
//! | macro | trait(s) the store must implement | check functions |
//! |---|---|---|
//! | [`user_store_tests!`] | [`UserStore`] | [`users`] |
//! | [`session_store_tests!`] | [`UserStore`] + [`SessionStore`](sentri_core::store::SessionStore) | [`sessions`] |
//! | [`key_store_tests!`] | [`KeyStore`](sentri_core::store::KeyStore) | [`keys`] |
//! | [`idempotency_store_tests!`] | [`IdempotencyStore`](sentri_core::store::IdempotencyStore) | [`idempotency`] |
//! | [`throttle_store_tests!`] | [`ThrottleStore`](sentri_core::store::ThrottleStore) | [`throttle`] |
//! | [`one_time_token_store_tests!`] | [`OneTimeTokenStore`](sentri_core::store::OneTimeTokenStore) | [`one_time`] |
//!
//! Each macro expands to a module (`user_store_conformance`, …) holding one
//! `#[test]` per check. Each test runs on a fresh multi-threaded tokio
//! runtime with 4 workers ([`run`]), wraps the store in an [`Arc`] and calls
//! the check function of the same name, which panics with a message naming
//! the broken rule. The expansion refers to this crate only, so the calling
//! crate needs no tokio of its own.
//!
//! You can also call the check functions yourself, from [`run`] or any
//! multi-threaded tokio runtime; they accept unsized stores too, e.g. an
//! `Arc<dyn UserStore>`:
//!
//! ```
//! use std::sync::Arc;
//!
//! use sentri_core::store::UserStore;
//! use sentri_memory::MemoryStore;
//!
//! let store: Arc<dyn UserStore> = Arc::new(MemoryStore::new());
//! sentri_testkit::run(sentri_testkit::users::concurrent_create_user(store));
//! ```
//!
//! # What the checks assume
//!
//! - Stores may be shared between checks (and may already hold data): every
//!   check uses fresh random user ids, identifiers, session ids, key ids,
//!   idempotency and throttle keys. The key-store checks use made-up
//!   algorithm names of 16 characters (`T` and 15 hex digits) so they never
//!   touch the keys of another check; the global operations
//!   (`purge_expired_sessions`, `delete_keys_retired_before`, the throttle's
//!   `purge_expired`, `purge_expired_tokens`) are run at
//!   times around the year 2001, long before any other check's data.
//! - Times the checks pass in are whole seconds, so backends that store
//!   seconds (MySQL `DATETIME`), microseconds (PostgreSQL) or milliseconds
//!   (Redis scores) all return them unchanged.
//! - The idempotency checks for `lock_ttl` and `ttl` sleep for real (about
//!   1.5 s each), because [`IdempotencyStore`](sentri_core::store::IdempotencyStore)
//!   reads the clock itself.
//! - The concurrency checks start 8, 16 or (one-time tokens) 50 tokio tasks
//!   together (behind a [`tokio::sync::Barrier`]) on the multi-threaded
//!   runtime; a store that implements an atomic operation as
//!   read-then-write fails them.
#![deny(missing_docs)]

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Barrier;
use uuid::Uuid;

use sentri_core::model::{NewUser, PasswordHash, TokenHash, User, UserId};
use sentri_core::store::{StoreErrorKind, StoreResult, UserStore};

pub mod idempotency;
pub mod keys;
pub mod one_time;
pub mod sessions;
pub mod throttle;
pub mod users;

/// The current time, truncated to whole seconds.
pub(crate) fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp(now.timestamp(), 0).expect("the current time is representable")
}

/// Run `check` to completion on a fresh multi-threaded tokio runtime with 4
/// worker threads and every driver enabled, as each test the macros expand
/// to does.
///
/// # Panics
///
/// If the runtime cannot be built, and with the panic of `check` when a
/// check fails.
pub fn run<F: Future<Output = ()>>(check: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a multi-threaded tokio runtime for the conformance checks")
        .block_on(check);
}

/// A time in the year 2001 (whole seconds), far before any "now" data of
/// other checks, plus `offset_secs`.
pub(crate) fn era_2001(offset_secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(978_307_200 + offset_secs, 0).expect("a time in 2001")
}

/// `t` plus `secs` seconds.
pub(crate) fn plus(t: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    t + chrono::TimeDelta::seconds(secs)
}

/// A fresh unique string starting with `prefix`.
pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

/// A fresh random refresh-token hash.
pub(crate) fn token_hash() -> TokenHash {
    TokenHash(rand::random())
}

/// A fresh random password hash (not a real hash; stores never parse it).
pub(crate) fn password_hash() -> PasswordHash {
    PasswordHash::new(format!("$test$v=1${}", Uuid::new_v4().simple()))
}

/// A fresh [`NewUser`] with a unique identifier and `roles`, created at `at`.
pub(crate) fn new_user(roles: &[&str], at: DateTime<Utc>) -> NewUser {
    let key = format!("{}@example.test", unique("user"));
    let mut roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    roles.sort();
    roles.dedup();
    NewUser {
        id: UserId::new(),
        identifier: key.to_uppercase(),
        identifier_key: key,
        password_hash: password_hash(),
        roles,
        name: Some("Test User".to_owned()),
        created_at: at,
    }
}

/// Create a fresh user with `roles` at `at`.
pub(crate) async fn create_user<S: UserStore + ?Sized>(
    store: &S,
    roles: &[&str],
    at: DateTime<Utc>,
) -> User {
    ok(store.create_user(new_user(roles, at)).await, "create_user")
}

/// Unwrap a store result, panicking with `what` on an error.
#[track_caller]
pub(crate) fn ok<T>(result: StoreResult<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what}: unexpected store error {err:?}"),
    }
}

/// Assert that `result` is an error of `kind`.
#[track_caller]
pub(crate) fn expect_err<T: Debug>(result: StoreResult<T>, kind: StoreErrorKind, what: &str) {
    match result {
        Ok(value) => panic!("{what}: expected a {kind:?} error, got Ok({value:?})"),
        Err(err) if err.kind() == kind => {}
        Err(err) => panic!("{what}: expected a {kind:?} error, got {err:?}"),
    }
}

/// Run `n` tasks of `task(store, i)` on the runtime, released together by a
/// barrier, and collect their outputs in task order.
pub(crate) async fn race<S, F, Fut, T>(store: &Arc<S>, n: usize, task: F) -> Vec<T>
where
    S: Send + Sync + 'static + ?Sized,
    F: Fn(Arc<S>, usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let fut = task(store.clone(), i);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                fut.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for handle in handles {
        match handle.await {
            Ok(value) => out.push(value),
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        }
    }
    out
}

#[doc(hidden)]
#[macro_export]
macro_rules! __sentri_conformance {
    ($module:ident, $checks:ident, $factory:expr; $($check:ident),+ $(,)?) => {
        #[allow(unused_imports)]
        mod $module {
            use super::*;
            $(
                #[test]
                fn $check() {
                    $crate::run(async {
                        let store = ::std::sync::Arc::new(($factory).await);
                        $crate::$checks::$check(store).await;
                    });
                }
            )+
        }
    };
}

/// The [`UserStore`] conformance suite.
///
/// `sentri_testkit::user_store_tests!(async { MyStore::new() });` expands to a
/// module `user_store_conformance` with one test per check of
/// [`users`](crate::users). The expression is evaluated
/// anew for every test and must be a future of the store (`async { … }` or a
/// call of an `async fn`).
#[macro_export]
macro_rules! user_store_tests {
    ($factory:expr $(,)?) => {
        $crate::__sentri_conformance!(
            user_store_conformance,
            users,
            $factory;
            create_and_find,
            create_conflict,
            find_missing,
            update_identifier,
            update_identifier_conflict,
            update_identifier_not_found,
            update_identifier_clears_email_verification,
            replace_password_hash,
            add_and_remove_roles,
            set_email_verified,
            any_user_with_role,
            concurrent_create_user,
            concurrent_add_roles,
            concurrent_replace_password_hash,
            concurrent_update_identifier,
        );
    };
}

/// The [`SessionStore`](sentri_core::store::SessionStore) conformance suite.
///
/// `sentri_testkit::session_store_tests!(async { MyStore::new() });` expands to
/// a module `session_store_conformance` with one test per check of
/// [`sessions`](crate::sessions). The store must implement
/// [`UserStore`] too: sessions belong to users, and
/// [`find_active_session`](sentri_core::store::SessionStore::find_active_session)
/// joins them.
#[macro_export]
macro_rules! session_store_tests {
    ($factory:expr $(,)?) => {
        $crate::__sentri_conformance!(
            session_store_conformance,
            sessions,
            $factory;
            create_and_find_active,
            session_keeps_amr,
            create_session_conflict,
            create_session_records_login,
            find_active_missing,
            find_active_reflects_user_changes,
            rotate_refresh,
            rotate_refresh_missing,
            rotate_refresh_remembers_issued_hashes,
            rotate_refresh_idle,
            delete_session_by_refresh,
            concurrent_delete_session_by_refresh,
            touch_session,
            delete_session,
            delete_user_session,
            delete_user_sessions,
            delete_user_sessions_except,
            list_user_sessions,
            purge_expired_sessions,
            concurrent_rotate_refresh,
            concurrent_touch_session,
        );
    };
}

/// The [`KeyStore`](sentri_core::store::KeyStore) conformance suite.
///
/// `sentri_testkit::key_store_tests!(async { MyStore::new() });` expands to a
/// module `key_store_conformance` with one test per check of
/// [`keys`](crate::keys).
#[macro_export]
macro_rules! key_store_tests {
    ($factory:expr $(,)?) => {
        $crate::__sentri_conformance!(
            key_store_conformance,
            keys,
            $factory;
            insert_key_if_none_inserts,
            insert_key_if_none_returns_existing,
            algorithms_are_independent,
            rotate_key,
            rotate_key_without_active_key,
            delete_keys_retired_before,
            concurrent_insert_key_if_none,
            concurrent_rotate_key,
            replace_private_key_compares_and_sets,
            concurrent_replace_private_key,
        );
    };
}

/// The [`IdempotencyStore`](sentri_core::store::IdempotencyStore) conformance suite.
///
/// `sentri_testkit::idempotency_store_tests!(async { MyStore::new() });` expands
/// to a module `idempotency_store_conformance` with one test per check
/// of [`idempotency`](crate::idempotency).
#[macro_export]
macro_rules! idempotency_store_tests {
    ($factory:expr $(,)?) => {
        $crate::__sentri_conformance!(
            idempotency_store_conformance,
            idempotency,
            $factory;
            begin_acquires_free_key,
            begin_in_progress_and_mismatch,
            complete_replays_exact_response,
            completed_mismatch,
            release_frees_key,
            release_unknown_key,
            expired_lock_is_free,
            completed_expires_after_ttl,
            keys_are_independent,
            concurrent_begin,
            concurrent_begin_after_completion,
            complete_and_release_need_the_lease,
            release_by_stale_holder_leaves_takeovers_hold,
            complete_by_stale_holder_does_not_overwrite_takeover,
            concurrent_takeover,
            purge_keeps_live_records,
        );
    };
}

/// The [`ThrottleStore`](sentri_core::store::ThrottleStore) conformance suite.
///
/// `sentri_testkit::throttle_store_tests!(async { MyStore::new() });` expands to
/// a module `throttle_store_conformance` with one test per check of
/// [`throttle`](crate::throttle).
#[macro_export]
macro_rules! throttle_store_tests {
    ($factory:expr $(,)?) => {
        $crate::__sentri_conformance!(
            throttle_store_conformance,
            throttle,
            $factory;
            record_and_recent_oldest_first,
            recent_within_window_only,
            keep_bound,
            clear_failures,
            keys_are_independent,
            unknown_key_is_empty,
            same_instant_failures_count,
            concurrent_record_failure,
            reserve_admits_up_to_the_limit,
            refund_forgets_one_attempt,
            concurrent_reserve_admits_at_most_the_limit,
            concurrent_reserve_on_two_keys,
            reserve_all_is_all_or_nothing,
            forget_refunds_and_clears,
            concurrent_logins_for_one_identifier_admit_its_limit,
            concurrent_logins_from_one_address_admit_its_limit,
            purge_expired_keeps_live_attempts,
        );
    };
}

/// The [`OneTimeTokenStore`](sentri_core::store::OneTimeTokenStore) conformance
/// suite.
///
/// `sentri_testkit::one_time_token_store_tests!(async { MyStore::new() });`
/// expands to a module `one_time_token_store_conformance` with one
/// test per check of [`one_time`](crate::one_time).
#[macro_export]
macro_rules! one_time_token_store_tests {
    ($factory:expr $(,)?) => {
        $crate::__sentri_conformance!(
            one_time_token_store_conformance,
            one_time,
            $factory;
            insert_and_consume,
            consume_unknown,
            wrong_purpose_finds_nothing,
            purposes_are_independent,
            expired_is_never_returned,
            consume_twice_fails,
            insert_conflict,
            delete_user_tokens_invalidates,
            purge_expired_tokens,
            concurrent_consume,
        );
    };
}
