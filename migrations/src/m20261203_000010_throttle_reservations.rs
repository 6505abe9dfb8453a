//! Atomic throttle reservations and purging (F-27): `sentri_throttle_keys`,
//! one row per throttled key that a reservation locks while it counts and
//! records, and `sentri_throttle.expires_at`, so expired attempts can be
//! purged whatever their window.

use sea_orm_migration::prelude::*;

use crate::schema::{Throttle, ThrottleKeys, create_table, timestamp};

#[derive(DeriveMigrationName)]
pub struct Migration;

const ATTEMPTS_EXPIRES_IDX: &str = "sentri_throttle_expires_at_idx";
const KEYS_EXPIRES_IDX: &str = "sentri_throttle_keys_expires_at_idx";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                create_table(db, ThrottleKeys::Table)
                    .col(
                        ColumnDef::new(ThrottleKeys::Key)
                            .string_len(512)
                            .not_null()
                            .primary_key(),
                    )
                    .col(timestamp(db, ThrottleKeys::ExpiresAt).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(KEYS_EXPIRES_IDX)
                    .table(ThrottleKeys::Table)
                    .col(ThrottleKeys::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Throttle::Table)
                    .add_column(timestamp(db, Throttle::ExpiresAt).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(ATTEMPTS_EXPIRES_IDX)
                    .table(Throttle::Table)
                    .col(Throttle::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(ATTEMPTS_EXPIRES_IDX)
                    .table(Throttle::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Throttle::Table)
                    .drop_column(Throttle::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(ThrottleKeys::Table).to_owned())
            .await
    }
}
