//! `sentri_sessions.amr`: how the user authenticated to open the session
//! (the `amr` values of RFC 8176, joined by single spaces, e.g. `pwd` or
//! `pwd otp`), so that every access token the session issues, refreshed
//! ones included, carries them. `NULL` (sessions opened before this
//! migration, all by password) reads as `pwd`.

use sea_orm_migration::prelude::*;

use crate::schema::Sessions;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(ColumnDef::new(Sessions::Amr).string_len(255).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::Amr)
                    .to_owned(),
            )
            .await
    }
}
