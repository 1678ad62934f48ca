//! SQLite backend: the embedded store for a first run (`cloudspend demo`) with nothing to
//! install. One process owns the file; SQLite serialises writers, so leasing a job is a plain
//! `UPDATE ... RETURNING`.

use crate::shared::impl_store;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating when missing) the database file, and its folder.
    pub async fn connect(url: &str) -> crate::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            // WAL lets the dashboard read while a collection writes.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| crate::StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

const LEASE_DUE_JOBS: &str = "UPDATE collection_jobs SET lease_owner = $1, leased_until = $2, rerun_requested = FALSE \
     WHERE (tenant_id, collector) IN ( \
       SELECT tenant_id, collector FROM collection_jobs \
       WHERE next_run_at <= $3 AND (leased_until IS NULL OR leased_until < $3) \
       ORDER BY next_run_at LIMIT $4) \
     RETURNING tenant_id, collector, interval_seconds, next_run_at, leased_until, lease_owner";

crate::sealed::impl_sealed_secrets!(SqliteStore);
crate::diagnostics::impl_diagnostic_calls!(SqliteStore);
// Days are stored as `YYYY-MM-DD` text.
crate::grouped_costs::impl_cost_groups!(SqliteStore, "day", "substr(day, 1, 7)");

impl_store!(
    SqliteStore,
    Sqlite,
    crate::Backend::Sqlite,
    MIGRATOR,
    LEASE_DUE_JOBS
);
