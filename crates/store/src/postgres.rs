//! PostgreSQL backend: the production store. Several `serve` replicas may share one database;
//! job leasing uses `FOR UPDATE SKIP LOCKED` so they split the work without waiting on each other.

use crate::shared::impl_store;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    pub async fn connect(url: &str) -> crate::Result<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("cloudspend");
        let pool = PgPoolOptions::new()
            .max_connections(20)
            // Fail fast when the database is down so /readyz answers 503 within seconds.
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Picks due jobs no other replica holds, skipping rows another transaction is leasing right
/// now instead of waiting for it.
const LEASE_DUE_JOBS: &str = "UPDATE collection_jobs SET lease_owner = $1, leased_until = $2, rerun_requested = FALSE \
     WHERE (tenant_id, collector) IN ( \
       SELECT tenant_id, collector FROM collection_jobs \
       WHERE next_run_at <= $3 AND (leased_until IS NULL OR leased_until < $3) \
       ORDER BY next_run_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING tenant_id, collector, interval_seconds, next_run_at, leased_until, lease_owner";

impl_store!(
    PgStore,
    Postgres,
    crate::Backend::Postgres,
    MIGRATOR,
    LEASE_DUE_JOBS
);
