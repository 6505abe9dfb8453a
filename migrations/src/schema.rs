//! Table and column names, and the per-backend column types, shared by the
//! migrations.
//!
//! The names are the stable contract between this crate and the stores in
//! `sentri-sea-orm`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The table that records which migrations ran.
pub const MIGRATION_TABLE: &str = "sentri_migrations";

/// `sentri_users`.
#[derive(DeriveIden, Clone, Copy, Debug)]
pub enum Users {
    /// The table.
    #[sea_orm(iden = "sentri_users")]
    Table,
    /// `uuid`, primary key.
    Id,
    /// The identifier as entered, for display.
    Identifier,
    /// The normalised identifier, unique.
    IdentifierKey,
    /// PHC string.
    PasswordHash,
    /// Display name.
    Name,
    /// When the email was verified.
    EmailVerifiedAt,
    /// Last successful login.
    LastLoginAt,
    /// Creation time.
    CreatedAt,
    /// Last change.
    UpdatedAt,
}

/// `sentri_user_roles`.
#[derive(DeriveIden, Clone, Copy, Debug)]
pub enum UserRoles {
    /// The table.
    #[sea_orm(iden = "sentri_user_roles")]
    Table,
    /// The user, cascading delete.
    UserId,
    /// The role name.
    Role,
}

/// `sentri_sessions`.
#[derive(DeriveIden, Clone, Copy, Debug)]
pub enum Sessions {
    /// The table.
    #[sea_orm(iden = "sentri_sessions")]
    Table,
    /// `uuid`, primary key.
    Id,
    /// The owner, cascading delete.
    UserId,
    /// SHA-256 of the current refresh token secret (32 bytes).
    RefreshHash,
    /// The hash replaced by the last rotation.
    PreviousRefreshHash,
    /// When the last rotation happened.
    RotatedAt,
    /// Older replaced hashes, newest first, 32 bytes each.
    RefreshHistory,
    /// `User-Agent` of the login.
    UserAgent,
    /// Client address of the login.
    Ip,
    /// How the user authenticated (`amr` values joined by spaces).
    Amr,
    /// Creation time.
    CreatedAt,
    /// Last use.
    LastActiveAt,
    /// End of the session.
    ExpiresAt,
}

/// `sentri_keys`.
#[derive(DeriveIden, Clone, Copy, Debug)]
pub enum Keys {
    /// The table.
    #[sea_orm(iden = "sentri_keys")]
    Table,
    /// Key id, primary key.
    Kid,
    /// JWS algorithm name.
    Algorithm,
    /// `algorithm` while the key is active, `NULL` once retired; unique, so
    /// there is at most one active key per algorithm on every backend
    /// (a portable partial unique index).
    ActiveAlgorithm,
    /// PKCS#8 PEM.
    PrivateKeyPem,
    /// Creation time.
    CreatedAt,
    /// Retirement time, `NULL` while active.
    RetiredAt,
}

/// `sentri_idempotency`.
#[derive(DeriveIden, Clone, Copy, Debug)]
pub enum Idempotency {
    /// The table.
    #[sea_orm(iden = "sentri_idempotency")]
    Table,
    /// The caller-scoped key, primary key.
    Key,
    /// SHA-256 of method, path and body (32 bytes).
    Fingerprint,
    /// Whether a response is stored (else the key is locked).
    Completed,
    /// Stored response status.
    Status,
    /// Stored response headers (JSON array of pairs).
    Headers,
    /// Stored response body.
    Body,
    /// When the key was taken.
    LockedAt,
    /// When the stored response (or, at the latest, the lock) lapses.
    ExpiresAt,
    /// The lease of the request holding the key (16 random bytes), `NULL`
    /// on rows from before the lease existed.
    Lease,
}

/// `sentri_throttle`.
#[derive(DeriveIden, Clone, Copy, Debug)]
pub enum Throttle {
    /// The table.
    #[sea_orm(iden = "sentri_throttle")]
    Table,
    /// `uuid`, primary key.
    Id,
    /// What is throttled (identifier or address, already scoped).
    Key,
    /// When the failure happened.
    At,
    /// When no window counts the attempt any more (`at + window`);
    /// `NULL` for rows written before `m20261203_000010`.
    ExpiresAt,
}

/// `sentri_throttle_keys`: one row per throttled key, locked by a
/// reservation so that counting and recording are atomic.
#[derive(DeriveIden, Clone, Copy, Debug)]
pub enum ThrottleKeys {
    /// The table.
    #[sea_orm(iden = "sentri_throttle_keys")]
    Table,
    /// The throttled key, primary key.
    Key,
    /// When the key's last counted attempt leaves its window.
    ExpiresAt,
}

/// `sentri_one_time_tokens`: one-time tokens by purpose and hash.
#[derive(DeriveIden, Clone, Copy, Debug)]
pub enum OneTimeTokens {
    /// The table.
    #[sea_orm(iden = "sentri_one_time_tokens")]
    Table,
    /// What the token is for (`password_reset`, …); with `token_hash` the
    /// primary key.
    Purpose,
    /// SHA-256 of the token's secret (32 bytes), never the secret.
    TokenHash,
    /// Whom the token was issued to.
    UserId,
    /// A small text the token carries (at most 1024 bytes), or `NULL`.
    Payload,
    /// When the token was minted.
    CreatedAt,
    /// When the token stops being redeemable.
    ExpiresAt,
}

/// A timestamp column: `timestamp with time zone` on PostgreSQL,
/// `DATETIME(6)` on MySQL/MariaDB (UTC, microseconds, no 2038 limit),
/// RFC 3339 text on SQLite.
pub fn timestamp(backend: DbBackend, col: impl IntoIden) -> ColumnDef {
    let mut def = ColumnDef::new(col);
    match backend {
        DbBackend::MySql => def.custom(Alias::new("DATETIME(6)")),
        _ => def.timestamp_with_time_zone(),
    };
    def
}

/// A new `CREATE TABLE` with the options every sentri table has: InnoDB,
/// `utf8mb4` and binary (case- and accent-sensitive) collation on MySQL, so
/// that keys compare exactly as the services normalised them.
pub fn create_table(backend: DbBackend, table: impl IntoIden) -> TableCreateStatement {
    let mut stmt = Table::create();
    stmt.table(table);
    if backend == DbBackend::MySql {
        stmt.engine("InnoDB")
            .character_set("utf8mb4")
            .collate("utf8mb4_bin");
    }
    stmt
}
