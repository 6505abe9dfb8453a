//! `sentri_sessions.refresh_history`: the hashes a session's refresh token
//! had before its previous one, newest first, 32 bytes each (at most
//! `sentri_core::store::ROTATION_HISTORY` of them), so that presenting one
//! of them is recognised as reuse of a token the session issued, and any
//! other secret as a forgery that changes nothing (F-11).

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
                    .add_column(ColumnDef::new(Sessions::RefreshHistory).blob().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::RefreshHistory)
                    .to_owned(),
            )
            .await
    }
}
