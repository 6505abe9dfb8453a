//! The database schema of sentri, as SeaORM migrations.
//!
//! This crate is the only place where sentri's SQL schema is defined. It is
//! used by `sentri-sea-orm` (whose `migrate()` runs it at startup, under a
//! lock) and by `cargo xtask migrate`. The schema works on PostgreSQL,
//! MySQL/MariaDB and SQLite; backend differences (timestamp precision,
//! collation) are handled in one place, [`schema`].
//!
//! | table | holds | lookups (all indexed) |
//! |---|---|---|
//! | `sentri_users` | accounts | `id` (pk), `identifier_key` (unique) |
//! | `sentri_user_roles` | one row per (user, role) | `(user_id, role)` (pk), `role` |
//! | `sentri_sessions` | login sessions, refresh hashes | `id` (pk), `(user_id, created_at)`, `expires_at` |
//! | `sentri_keys` | persisted signing keys | `kid` (pk), `active_algorithm` (unique), `retired_at` |
//! | `sentri_idempotency` | idempotency locks (with their lease) and stored responses | `key` (pk), `expires_at` |
//! | `sentri_throttle` | failed attempts | `id` (pk), `(key, at)`, `expires_at` |
//! | `sentri_throttle_keys` | one lock row per throttled key (atomic reservations) | `key` (pk), `expires_at` |
//! | `sentri_one_time_tokens` | hashes of one-time tokens (verification, reset, magic links, challenges) | `(purpose, token_hash)` (pk), `(user_id, purpose)`, `expires_at` |
//!
//! On PostgreSQL the two throttle tables are `UNLOGGED` (no WAL, no disk
//! flush per reservation; emptied by a crash of the database server, which
//! only restarts the throttling windows), and the function
//! `sentri_throttle_reserve` makes a login's reservation one statement.
//!
//! # Example
//!
//! ```no_run
//! use sentri_migration::{Migrator, MigratorTrait};
//!
//! # async fn run(db: &sea_orm_migration::sea_orm::DatabaseConnection) -> Result<(), sea_orm_migration::DbErr> {
//! Migrator::up(db, None).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Applications normally call `sentri_sea_orm::migrate`, which takes a lock
//! first so that several instances can start at once.
//!
//! # Features
//!
//! | feature | enables |
//! |---|---|
//! | `postgres` | the PostgreSQL driver |
//! | `mysql` | the MySQL / MariaDB driver |
//! | `sqlite` | the SQLite driver |
#![deny(missing_docs)]

pub use sea_orm_migration;
pub use sea_orm_migration::{MigrationTrait, MigratorTrait};

mod m20261124_000001_create_users;
mod m20261124_000002_create_user_roles;
mod m20261124_000003_create_sessions;
mod m20261124_000004_create_keys;
mod m20261124_000005_create_idempotency;
mod m20261124_000006_create_throttle;
mod m20261203_000010_throttle_reservations;
mod m20261203_000020_add_idempotency_lease;
mod m20261203_000030_add_session_refresh_history;
mod m20261204_000010_throttle_unlogged;
mod m20261204_000040_add_session_amr;
mod m20261204_000110_create_one_time_tokens;
pub mod schema;

/// The ordered list of sentri's migrations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_users::Migration),
            Box::new(m20261124_000002_create_user_roles::Migration),
            Box::new(m20261124_000003_create_sessions::Migration),
            Box::new(m20261124_000004_create_keys::Migration),
            Box::new(m20261124_000005_create_idempotency::Migration),
            Box::new(m20261124_000006_create_throttle::Migration),
            Box::new(m20261203_000010_throttle_reservations::Migration),
            Box::new(m20261203_000020_add_idempotency_lease::Migration),
            Box::new(m20261203_000030_add_session_refresh_history::Migration),
            Box::new(m20261204_000010_throttle_unlogged::Migration),
            Box::new(m20261204_000040_add_session_amr::Migration),
            Box::new(m20261204_000110_create_one_time_tokens::Migration),
        ]
    }

    fn migration_table_name() -> sea_orm_migration::sea_orm::DynIden {
        Alias::new(schema::MIGRATION_TABLE).into_iden()
    }
}

use sea_orm_migration::async_trait;
use sea_orm_migration::sea_query::{Alias, IntoIden};
