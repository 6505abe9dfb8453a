//! `sentri_sessions`: login sessions and the hashes of their refresh tokens.

use sea_orm_migration::prelude::*;

use crate::schema::{Sessions, Users, create_table, timestamp};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                create_table(db, Sessions::Table)
                    .col(ColumnDef::new(Sessions::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Sessions::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(Sessions::RefreshHash)
                            .binary_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Sessions::PreviousRefreshHash)
                            .binary_len(32)
                            .null(),
                    )
                    .col(timestamp(db, Sessions::RotatedAt).null())
                    .col(ColumnDef::new(Sessions::UserAgent).text().null())
                    .col(ColumnDef::new(Sessions::Ip).string_len(64).null())
                    .col(timestamp(db, Sessions::CreatedAt).not_null())
                    .col(timestamp(db, Sessions::LastActiveAt).not_null())
                    .col(timestamp(db, Sessions::ExpiresAt).not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("sentri_sessions_user_id_fkey")
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A user's sessions (list, revoke all), newest first.
        manager
            .create_index(
                Index::create()
                    .name("sentri_sessions_user_id_created_at_idx")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .col(Sessions::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // Purging expired sessions.
        manager
            .create_index(
                Index::create()
                    .name("sentri_sessions_expires_at_idx")
                    .table(Sessions::Table)
                    .col(Sessions::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await
    }
}
