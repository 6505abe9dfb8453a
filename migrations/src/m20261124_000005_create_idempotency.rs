//! `sentri_idempotency`: idempotency locks and stored responses.

use sea_orm_migration::prelude::*;

use crate::schema::{Idempotency, create_table, timestamp};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                create_table(db, Idempotency::Table)
                    .col(
                        ColumnDef::new(Idempotency::Key)
                            .string_len(512)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Idempotency::Fingerprint)
                            .binary_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Idempotency::Completed).boolean().not_null())
                    .col(ColumnDef::new(Idempotency::Status).integer().null())
                    .col(ColumnDef::new(Idempotency::Headers).text().null())
                    .col(ColumnDef::new(Idempotency::Body).blob().null())
                    .col(timestamp(db, Idempotency::LockedAt).not_null())
                    .col(timestamp(db, Idempotency::ExpiresAt).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sentri_idempotency_expires_at_idx")
                    .table(Idempotency::Table)
                    .col(Idempotency::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Idempotency::Table).to_owned())
            .await
    }
}
