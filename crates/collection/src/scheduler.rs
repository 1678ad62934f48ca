//! The collection scheduler that `serve` runs. Jobs live in `collection_jobs`; a replica
//! leases due jobs (PostgreSQL: `FOR UPDATE SKIP LOCKED`), runs them, and schedules the next
//! run when it releases the lease. A replica that dies keeps its lease only until it expires,
//! then another replica takes the job: no tenant is collected twice at once, none is dropped.

use crate::{Collections, Collector};
use chrono::Utc;
use cloudspend_core::TenantId;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The collections a scheduler is running right now, as (tenant, collector): what a shutdown
/// that cannot wait for them any longer cuts off, named in its log.
#[derive(Clone, Debug, Default)]
pub struct RunningCollections(Arc<Mutex<Vec<(TenantId, String)>>>);

impl RunningCollections {
    pub fn list(&self) -> Vec<(TenantId, String)> {
        self.0.lock().expect("running collections lock").clone()
    }

    /// Lists the run until the returned guard is dropped (the run ended, or was cut off).
    fn enter(&self, tenant: TenantId, collector: &str) -> RunningGuard {
        let entry = (tenant, collector.to_string());
        self.0
            .lock()
            .expect("running collections lock")
            .push(entry.clone());
        RunningGuard {
            running: self.clone(),
            entry,
        }
    }
}

struct RunningGuard {
    running: RunningCollections,
    entry: (TenantId, String),
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let mut running = self.running.0.lock().expect("running collections lock");
        if let Some(at) = running.iter().position(|e| *e == self.entry) {
            running.swap_remove(at);
        }
    }
}

#[derive(Clone, Debug)]
pub struct Scheduler {
    collections: Collections,
    /// Names this replica in `lease_owner` (host, process and a random suffix).
    owner: String,
    /// How often to look for due jobs.
    pub poll_every: Duration,
    /// How long a lease holds; longer than the run timeout, so a live run never loses it.
    pub lease_for: Duration,
    /// Collections run at once by this replica.
    pub concurrency: usize,
    running: RunningCollections,
}

impl Scheduler {
    pub fn new(collections: Collections) -> Self {
        let lease_for = collections.settings().run_timeout + Duration::from_secs(120);
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "cloudspend".to_string());
        let owner = format!(
            "{host}:{}:{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            collections,
            owner,
            poll_every: Duration::from_secs(5),
            lease_for,
            concurrency: 4,
            running: RunningCollections::default(),
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The collections this scheduler (and its clones) are running, as they come and go.
    pub fn running(&self) -> RunningCollections {
        self.running.clone()
    }

    /// Runs until `shutdown` resolves; runs in flight finish first.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let permits = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let mut tick = tokio::time::interval(self.poll_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ensure_every = 0u32;
        tracing::info!(owner = %self.owner, "collection scheduler started");
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = tick.tick() => {}
            }
            // New connections get their jobs when they connect; this also repairs any tenant
            // whose jobs are missing, once a minute or so.
            if ensure_every.is_multiple_of(12)
                && let Err(err) = self.ensure_all_jobs().await
            {
                tracing::warn!(error = %err, "could not ensure collection jobs");
            }
            ensure_every = ensure_every.wrapping_add(1);
            if let Err(err) = self.run_due(&permits).await {
                tracing::warn!(error = %err, "could not lease collection jobs");
            }
        }
        // Wait for running collections to finish (each is bounded by the run timeout).
        let _ = permits.acquire_many(self.concurrency.max(1) as u32).await;
        tracing::info!("collection scheduler stopped");
    }

    async fn ensure_all_jobs(&self) -> Result<(), cloudspend_store::StoreError> {
        for tenant in self.collections.store().connected_tenants().await? {
            self.collections.ensure_jobs(tenant).await?;
        }
        Ok(())
    }

    /// Leases as many due jobs as there are free permits and starts them. Returns how many.
    pub async fn run_due(
        &self,
        permits: &Arc<Semaphore>,
    ) -> Result<usize, cloudspend_store::StoreError> {
        let free = permits.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let jobs = self
            .collections
            .store()
            .lease_due_jobs(&self.owner, Utc::now(), self.lease_for, free as i64)
            .await?;
        let started = jobs.len();
        for job in jobs {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let collections = self.collections.clone();
            let owner = self.owner.clone();
            let running = self.running.enter(job.tenant_id, &job.collector);
            tokio::spawn(async move {
                let _permit = permit;
                let _running = running;
                let next = Utc::now() + chrono::Duration::seconds(job.interval_seconds.max(60));
                match job.collector.parse::<Collector>() {
                    Ok(collector) => {
                        // This replica holds the lease now: a run still marked running died
                        // with the replica whose lease ran out.
                        match collections
                            .store()
                            .abandon_running_runs(job.tenant_id, &job.collector, Utc::now())
                            .await
                        {
                            Ok(0) => {}
                            Ok(n) => {
                                tracing::warn!(tenant = %job.tenant_id, %collector, runs = n, "marked runs of a stopped replica failed")
                            }
                            Err(err) => {
                                tracing::warn!(error = %err, "could not mark abandoned runs")
                            }
                        }
                        if let Err(err) = collections.run(job.tenant_id, collector).await {
                            tracing::error!(tenant = %job.tenant_id, %collector, error = %err, "could not record a collection run");
                        }
                    }
                    Err(err) => {
                        tracing::error!(tenant = %job.tenant_id, error = %err, "skipping unknown collector job")
                    }
                }
                match collections
                    .store()
                    .complete_job(job.tenant_id, &job.collector, &owner, next)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(tenant = %job.tenant_id, collector = %job.collector, "lease was lost before the run finished")
                    }
                    Err(err) => tracing::error!(error = %err, "could not release a collection job"),
                }
            });
        }
        Ok(started)
    }

    /// Leases and runs due jobs until none is left, waiting for each batch (tests, and the
    /// CLI's one-shot runs).
    pub async fn drain(&self) -> Result<usize, cloudspend_store::StoreError> {
        let permits = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let mut total = 0;
        loop {
            let started = self.run_due(&permits).await?;
            let _ = permits
                .acquire_many(self.concurrency.max(1) as u32)
                .await
                .map(drop);
            if started == 0 {
                return Ok(total);
            }
            total += started;
        }
    }
}
