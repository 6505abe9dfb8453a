//! `sentri_keys`: persisted asymmetric signing keys.

use sea_orm_migration::prelude::*;

use crate::schema::{Keys, create_table, timestamp};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                create_table(db, Keys::Table)
                    .col(
                        ColumnDef::new(Keys::Kid)
                            .string_len(128)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Keys::Algorithm).string_len(32).not_null())
                    .col(ColumnDef::new(Keys::ActiveAlgorithm).string_len(32).null())
                    .col(ColumnDef::new(Keys::PrivateKeyPem).text().not_null())
                    .col(timestamp(db, Keys::CreatedAt).not_null())
                    .col(timestamp(db, Keys::RetiredAt).null())
                    .to_owned(),
            )
            .await?;
        // At most one active key per algorithm (NULLs are distinct everywhere).
        manager
            .create_index(
                Index::create()
                    .name("sentri_keys_active_algorithm_key")
                    .table(Keys::Table)
                    .col(Keys::ActiveAlgorithm)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sentri_keys_retired_at_idx")
                    .table(Keys::Table)
                    .col(Keys::RetiredAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Keys::Table).to_owned())
            .await
    }
}
