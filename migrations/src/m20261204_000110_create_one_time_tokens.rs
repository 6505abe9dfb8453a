//! `sentri_one_time_tokens`: one-time tokens (SPEC §10), by purpose and the
//! SHA-256 of their secret.
//!
//! The primary key `(purpose, token_hash)` is the unique index every
//! redemption looks up (and deletes) through; `(user_id, purpose)` serves
//! "void this user's older tokens", `expires_at` the purge. No foreign key
//! to `sentri_users`: the token store may live apart from the user store,
//! and a token of a deleted user redeems to a user that is not found.

use sea_orm_migration::prelude::*;

use crate::schema::{OneTimeTokens, create_table, timestamp};

#[derive(DeriveMigrationName)]
pub struct Migration;

const USER_IDX: &str = "sentri_one_time_tokens_user_id_purpose_idx";
const EXPIRES_IDX: &str = "sentri_one_time_tokens_expires_at_idx";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                create_table(db, OneTimeTokens::Table)
                    .col(
                        ColumnDef::new(OneTimeTokens::Purpose)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(OneTimeTokens::TokenHash)
                            .binary_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(OneTimeTokens::UserId).uuid().not_null())
                    .col(ColumnDef::new(OneTimeTokens::Payload).text().null())
                    .col(timestamp(db, OneTimeTokens::CreatedAt).not_null())
                    .col(timestamp(db, OneTimeTokens::ExpiresAt).not_null())
                    .primary_key(
                        Index::create()
                            .col(OneTimeTokens::Purpose)
                            .col(OneTimeTokens::TokenHash),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(USER_IDX)
                    .table(OneTimeTokens::Table)
                    .col(OneTimeTokens::UserId)
                    .col(OneTimeTokens::Purpose)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(EXPIRES_IDX)
                    .table(OneTimeTokens::Table)
                    .col(OneTimeTokens::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OneTimeTokens::Table).to_owned())
            .await
    }
}
