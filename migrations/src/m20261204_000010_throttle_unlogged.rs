//! Throttle counters without durability, in one round trip (F-27), on
//! PostgreSQL only (a no-op elsewhere):
//!
//! - `sentri_throttle` and `sentri_throttle_keys` become `UNLOGGED`: their
//!   writes go to no WAL, so a reservation's commit waits for no disk
//!   flush. The trade-off: a crash of the database server (not a clean
//!   shutdown) empties them, and they are not copied to streaming
//!   replicas; that only restarts every throttling window, as a fresh
//!   database would. Users, sessions and keys keep full durability.
//! - `sentri_throttle_reserve(limits jsonb, now timestamptz)`: a login's
//!   whole reservation (every key's lock row, the counts, the new
//!   attempts, the pruning) in one statement; see `sentri-sea-orm`'s
//!   throttle module. It returns no row when every key had room, else one
//!   row: the position of the first key without room and its pivot (the
//!   attempt that must leave the window for one more to fit; null for a
//!   limit of 0).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE sentri_throttle SET UNLOGGED;
ALTER TABLE sentri_throttle_keys SET UNLOGGED;
CREATE OR REPLACE FUNCTION sentri_throttle_reserve(p_limits jsonb, p_now timestamptz)
RETURNS TABLE (refused integer, pivot timestamptz)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  l record;
  p timestamptz;
BEGIN
  -- Every key's row, locked until the end of the transaction, in key order.
  INSERT INTO sentri_throttle_keys AS t (key, expires_at)
  SELECT DISTINCT ON (x.k) x.k, x.e
  FROM jsonb_to_recordset(p_limits) AS x(k text, e timestamptz)
  ORDER BY x.k
  ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at;
  -- The counts, the locks held: each statement of a volatile function sees
  -- what the previous holders committed.
  FOR l IN
    SELECT x.n, x.k, x.s, x.l
    FROM jsonb_to_recordset(p_limits) AS x(n integer, k text, s timestamptz, l integer)
    ORDER BY x.n
  LOOP
    IF l.l <= 0 THEN
      refused := l.n;
      pivot := NULL;
      RETURN NEXT;
      RETURN;
    END IF;
    SELECT a.at INTO p
    FROM sentri_throttle a
    WHERE a.key = l.k AND a.at > l.s
    ORDER BY a.at DESC, a.id DESC
    OFFSET l.l - 1
    LIMIT 1;
    IF FOUND THEN
      refused := l.n;
      pivot := p;
      RETURN NEXT;
      RETURN;
    END IF;
  END LOOP;
  -- Room under every key: record the attempts, forget what left the window.
  INSERT INTO sentri_throttle (id, key, at, expires_at)
  SELECT x.i, x.k, p_now, x.e
  FROM jsonb_to_recordset(p_limits) AS x(i uuid, k text, e timestamptz);
  DELETE FROM sentri_throttle a
  USING jsonb_to_recordset(p_limits) AS x(k text, s timestamptz)
  WHERE a.key = x.k AND a.at <= x.s;
  RETURN;
END
$fn$;
"#;

const DOWN: &str = r#"
DROP FUNCTION IF EXISTS sentri_throttle_reserve(jsonb, timestamptz);
ALTER TABLE sentri_throttle SET LOGGED;
ALTER TABLE sentri_throttle_keys SET LOGGED;
"#;

async fn run(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    manager.get_connection().execute_unprepared(sql).await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, DOWN).await
    }
}
