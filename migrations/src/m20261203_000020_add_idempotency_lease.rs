//! `sentri_idempotency.lease`: the random id of the request holding a key
//! (F-26). `complete` and `release` are compare-and-set on it, so a request
//! that outlived its lock cannot free or overwrite the hold of the request
//! that took the key over. Rows written before this migration have no
//! lease (`NULL`): their holders can no longer finish them, and they lapse
//! with their lock.

use sea_orm_migration::prelude::*;

use crate::schema::Idempotency;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Idempotency::Table)
                    .add_column(ColumnDef::new(Idempotency::Lease).binary_len(16).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Idempotency::Table)
                    .drop_column(Idempotency::Lease)
                    .to_owned(),
            )
            .await
    }
}
