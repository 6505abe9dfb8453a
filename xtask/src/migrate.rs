//! `cargo xtask migrate up|down|status|fresh [--database-url URL]`.

use clap::Subcommand;
use sentri_migration::{Migrator, MigratorTrait};
use sentri_sea_orm::sea_orm::DatabaseConnection;

/// Arguments of `cargo xtask migrate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// Database URL (`postgres://…`, `mysql://…`, `sqlite://file.db?mode=rwc`).
    #[arg(
        long,
        env = "SENTRI_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Apply pending migrations (under the same lock as `migrate()` at startup).
    Up,
    /// Revert the last `--steps` applied migrations (default 1).
    Down {
        /// How many migrations to revert.
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List every migration and whether it is applied.
    Status,
    /// Drop every table of the database (not only sentri's), then apply all
    /// migrations. For development databases only.
    Fresh,
}

pub fn run(args: Args) -> crate::Result {
    let url = args
        .database_url
        .ok_or("no database: pass --database-url URL or set SENTRI_DATABASE_URL")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let db = sentri_sea_orm::connect(&url).await?;
        let result = action(&db, args.action).await;
        let _ = db.close().await;
        result
    })
}

async fn action(db: &DatabaseConnection, action: Action) -> crate::Result {
    match action {
        Action::Up => {
            let pending = Migrator::get_pending_migrations_read_only(db).await?.len();
            sentri_sea_orm::migrate(db).await?;
            println!("applied {pending} migration(s)");
        }
        Action::Down { steps } => {
            Migrator::down(db, Some(steps)).await?;
            println!("reverted up to {steps} migration(s)");
        }
        Action::Status => {
            for m in Migrator::get_migration_with_status_read_only(db).await? {
                println!("{:<8} {}", m.status().to_string(), m.name());
            }
        }
        Action::Fresh => {
            Migrator::fresh(db).await?;
            println!("dropped every table and applied all migrations");
        }
    }
    Ok(())
}
