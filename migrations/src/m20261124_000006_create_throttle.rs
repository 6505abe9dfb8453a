//! `sentri_throttle`: failed attempts, one row each, for sliding windows.

use sea_orm_migration::prelude::*;

use crate::schema::{Throttle, create_table, timestamp};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                create_table(db, Throttle::Table)
                    .col(ColumnDef::new(Throttle::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Throttle::Key).string_len(512).not_null())
                    .col(timestamp(db, Throttle::At).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sentri_throttle_key_at_idx")
                    .table(Throttle::Table)
                    .col(Throttle::Key)
                    .col(Throttle::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Throttle::Table).to_owned())
            .await
    }
}
