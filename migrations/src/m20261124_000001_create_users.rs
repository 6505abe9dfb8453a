//! `sentri_users`: accounts.

use sea_orm_migration::prelude::*;

use crate::schema::{Users, create_table, timestamp};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                create_table(db, Users::Table)
                    .col(ColumnDef::new(Users::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Users::Identifier).string_len(320).not_null())
                    .col(
                        ColumnDef::new(Users::IdentifierKey)
                            .string_len(320)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Users::PasswordHash).text().not_null())
                    .col(ColumnDef::new(Users::Name).string_len(255).null())
                    .col(timestamp(db, Users::EmailVerifiedAt).null())
                    .col(timestamp(db, Users::LastLoginAt).null())
                    .col(timestamp(db, Users::CreatedAt).not_null())
                    .col(timestamp(db, Users::UpdatedAt).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sentri_users_identifier_key_key")
                    .table(Users::Table)
                    .col(Users::IdentifierKey)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}
