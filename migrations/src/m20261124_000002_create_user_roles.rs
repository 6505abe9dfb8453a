//! `sentri_user_roles`: one row per (user, role), so that adding roles is an
//! insert that ignores duplicates and loses nothing under concurrency.

use sea_orm_migration::prelude::*;

use crate::schema::{UserRoles, Users, create_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                create_table(db, UserRoles::Table)
                    .col(ColumnDef::new(UserRoles::UserId).uuid().not_null())
                    .col(ColumnDef::new(UserRoles::Role).string_len(128).not_null())
                    .primary_key(
                        Index::create()
                            .name("sentri_user_roles_pkey")
                            .col(UserRoles::UserId)
                            .col(UserRoles::Role),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("sentri_user_roles_user_id_fkey")
                            .from(UserRoles::Table, UserRoles::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sentri_user_roles_role_idx")
                    .table(UserRoles::Table)
                    .col(UserRoles::Role)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UserRoles::Table).to_owned())
            .await
    }
}
