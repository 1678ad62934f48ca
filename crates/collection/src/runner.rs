//! One collection for one tenant, recorded as a run.

use crate::Collector;
use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, SubsecRound, TimeZone, Utc};
use cloudspend_aws_access::{
    AwsAccess, AwsError, ErrorKind, RequestCounter, TenantCredentials, cost_explorer_config,
};
use cloudspend_collect_cloudwatch::CpuQuery;
use cloudspend_core::connection::{AwsConnection, ConnectionAuth, ConnectionStatus};
use cloudspend_core::records::{CostSource, RunStatus};
use cloudspend_core::{RunId, TenantId};
use cloudspend_secrets::{MasterKey, SecretError};
use cloudspend_store::{ConnectionStatusUpdate, NewJob, NewRun, RunOutcome, Store, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How collections behave; every value has a default that suits a real account.
#[derive(Clone, Debug)]
pub struct Settings {
    pub intervals: BTreeMap<Collector, Duration>,
    /// Cost Explorer revises recent days (estimated → final): every run re-fetches this many.
    pub cost_recent_days: i64,
    /// How far back CPU history goes on a tenant's first collection.
    pub cpu_history_days: i64,
    /// A run that takes longer is abandoned (and recorded failed) before its lease runs out.
    pub run_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            intervals: Collector::ALL
                .iter()
                .map(|c| (*c, c.default_interval()))
                .collect(),
            cost_recent_days: 7,
            cpu_history_days: 14,
            run_timeout: Duration::from_secs(10 * 60),
        }
    }
}

impl Settings {
    pub fn interval(&self, collector: Collector) -> Duration {
        self.intervals
            .get(&collector)
            .copied()
            .unwrap_or_else(|| collector.default_interval())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CollectionError {
    #[error(
        "this tenant has not connected an AWS account yet: connect one with POST /api/tenants/connect"
    )]
    NotConnected,
    #[error("{0}")]
    Secret(#[from] SecretError),
    #[error(
        "the connection uses access keys but the server has no CLOUDSPEND_MASTER_KEY to decrypt them"
    )]
    NoMasterKey,
    #[error("{0}")]
    Aws(#[from] AwsError),
    #[error("the CUR cannot be collected: the connection names no Athena database and table")]
    CurNotConfigured,
    #[error("{0}")]
    Athena(#[from] cloudspend_collect_cur::AthenaError),
    #[error("collection took longer than {0:?} and was abandoned; nothing from it was written")]
    TimedOut(Duration),
    #[error("storing the collected data failed: {0}")]
    Store(#[from] StoreError),
}

impl CollectionError {
    /// The message stored on the run (for AWS failures it carries the AWS code and a fix hint).
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

/// What one run did.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub run_id: RunId,
    pub collector: Collector,
    pub status: RunStatus,
    pub rows_written: i64,
    pub aws_requests: i64,
    pub ce_requests: i64,
    pub retries: i64,
    pub error: Option<String>,
}

/// Runs collections. Cheap to clone; clones share the AWS credential cache.
#[derive(Clone)]
pub struct Collections {
    store: Arc<dyn Store>,
    aws: AwsAccess,
    master_key: Option<MasterKey>,
    settings: Arc<Settings>,
}

impl std::fmt::Debug for Collections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collections")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Collections {
    pub fn new(
        store: Arc<dyn Store>,
        aws: AwsAccess,
        master_key: Option<MasterKey>,
        settings: Settings,
    ) -> Self {
        Self {
            store,
            aws,
            master_key,
            settings: Arc::new(settings),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn aws(&self) -> &AwsAccess {
        &self.aws
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn master_key(&self) -> Option<&MasterKey> {
        self.master_key.as_ref()
    }

    /// The tenant's connection and the credentials to use it, decrypted in memory only.
    pub async fn credentials(
        &self,
        tenant: TenantId,
    ) -> Result<(AwsConnection, TenantCredentials), CollectionError> {
        let connection = self
            .store
            .connection(tenant)
            .await?
            .ok_or(CollectionError::NotConnected)?;
        let credentials = match &connection.auth {
            ConnectionAuth::Role { role_arn } => {
                let tenant_row = self
                    .store
                    .tenant(tenant)
                    .await?
                    .ok_or(CollectionError::NotConnected)?;
                TenantCredentials::Role {
                    role_arn: role_arn.clone(),
                    external_id: tenant_row.external_id,
                }
            }
            ConnectionAuth::AccessKey {
                access_key_id,
                secret_ciphertext,
            } => {
                let key = self
                    .master_key
                    .as_ref()
                    .ok_or(CollectionError::NoMasterKey)?;
                TenantCredentials::AccessKey {
                    access_key_id: access_key_id.clone(),
                    secret_access_key: key.open(tenant, secret_ciphertext)?,
                }
            }
        };
        Ok((connection, credentials))
    }

    /// Makes sure the tenant has a scheduled job per collector that applies to its connection
    /// (first runs due now).
    pub async fn ensure_jobs(&self, tenant: TenantId) -> Result<(), StoreError> {
        let now = Utc::now();
        let collectors = match self.store.connection(tenant).await? {
            Some(connection) => Collector::for_connection(&connection),
            None => Collector::ALL.to_vec(),
        };
        for collector in collectors {
            self.store
                .ensure_job(NewJob {
                    tenant_id: tenant,
                    collector: collector.as_str().to_string(),
                    interval_seconds: self.settings.interval(collector).as_secs() as i64,
                    next_run_at: now,
                })
                .await?;
        }
        Ok(())
    }

    /// Queues the collectors to run as soon as a scheduler picks them up.
    pub async fn queue_now(
        &self,
        tenant: TenantId,
        collectors: &[Collector],
    ) -> Result<(), StoreError> {
        self.ensure_jobs(tenant).await?;
        let now = Utc::now();
        for collector in collectors {
            self.store
                .run_job_now(tenant, collector.as_str(), now)
                .await?;
        }
        Ok(())
    }

    /// Runs one collector for the tenant now and records the run. A failed collection is a
    /// recorded failed run (and `Ok`); only failing to record it is an `Err`.
    #[tracing::instrument(skip(self), fields(tenant = %tenant, collector = %collector))]
    pub async fn run(
        &self,
        tenant: TenantId,
        collector: Collector,
    ) -> Result<RunReport, StoreError> {
        let started_at = Utc::now();
        let (window_start, window_end) = self.window(tenant, collector, started_at).await?;
        let run_id = self
            .store
            .start_run(NewRun {
                tenant_id: tenant,
                collector: collector.as_str().to_string(),
                window_start,
                window_end,
                started_at,
            })
            .await?;
        let counter = RequestCounter::new();
        let outcome = tokio::time::timeout(
            self.settings.run_timeout,
            self.collect(tenant, collector, window_start, window_end, &counter),
        )
        .await
        .unwrap_or(Err(CollectionError::TimedOut(self.settings.run_timeout)));
        let counts = counter.counts();
        let (status, rows, error) = match &outcome {
            Ok(Collected { rows, note }) => (RunStatus::Succeeded, *rows as i64, note.clone()),
            Err(err) => (RunStatus::Failed, 0, Some(err.describe())),
        };
        match &outcome {
            Ok(done) => tracing::info!(
                rows = done.rows,
                requests = counts.requests,
                "collection succeeded"
            ),
            Err(err) => tracing::warn!(error = %err.describe(), "collection failed"),
        }
        self.note_connection_health(tenant, &outcome).await?;
        let report = RunReport {
            run_id,
            collector,
            status,
            rows_written: rows,
            aws_requests: counts.requests as i64,
            ce_requests: counts.cost_explorer_requests as i64,
            retries: counts.retries as i64,
            error: error.clone(),
        };
        self.store
            .finish_run(
                tenant,
                run_id,
                RunOutcome {
                    status,
                    finished_at: Utc::now(),
                    rows_written: report.rows_written,
                    aws_requests: report.aws_requests,
                    ce_requests: report.ce_requests,
                    retries: report.retries,
                    error,
                },
            )
            .await?;
        if status == RunStatus::Succeeded {
            self.refresh_insights(tenant, collector).await;
        }
        Ok(report)
    }

    /// Findings follow the data: anomalies, recommendations and alerts are recomputed after
    /// every successful run. Their failure is logged, not the run's: the data is in.
    async fn refresh_insights(&self, tenant: TenantId, collector: Collector) {
        use cloudspend_insights::Changed;
        let changed = match collector {
            Collector::CostExplorer | Collector::Cur => Changed::Costs,
            Collector::Ec2 | Collector::Cloudwatch => Changed::Usage,
        };
        let now = Utc::now();
        match cloudspend_insights::refresh_after(self.store.as_ref(), tenant, changed, now).await {
            Ok(done) => tracing::info!(
                new_anomalies = done.new_anomalies.len(),
                recommendations = done.recommendations,
                alerts_queued = done.alerts_queued,
                "insights refreshed"
            ),
            Err(err) => tracing::warn!(error = %err, "refreshing insights failed"),
        }
    }

    /// A credentials failure marks the connection failed, so the dashboard says why data
    /// stopped; a later success marks it connected again.
    async fn note_connection_health(
        &self,
        tenant: TenantId,
        outcome: &Result<Collected, CollectionError>,
    ) -> Result<(), StoreError> {
        let Some(connection) = self.store.connection(tenant).await? else {
            return Ok(());
        };
        let (status, last_error) = match outcome {
            Ok(_) if connection.status == ConnectionStatus::Failed => {
                (ConnectionStatus::Connected, None)
            }
            Err(err @ CollectionError::Aws(aws))
                if matches!(
                    aws.kind(),
                    ErrorKind::Credentials | ErrorKind::InvalidCredentials
                ) =>
            {
                (ConnectionStatus::Failed, Some(err.describe()))
            }
            _ => return Ok(()),
        };
        self.store
            .update_connection_status(
                tenant,
                ConnectionStatusUpdate {
                    status,
                    verified_at: None,
                    last_error,
                    warnings: connection.warnings,
                    at: Utc::now(),
                },
            )
            .await?;
        Ok(())
    }

    /// The time window a run covers.
    async fn window(
        &self,
        tenant: TenantId,
        collector: Collector,
        now: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), StoreError> {
        let last_success = self.last_success_end(tenant, collector).await?;
        Ok(match collector {
            Collector::Ec2 => (now, now),
            Collector::Cloudwatch => {
                let end = now.trunc_subsecs(0);
                let end = end - ChronoDuration::seconds(end.timestamp() % 3600);
                let history = end - ChronoDuration::days(self.settings.cpu_history_days);
                // An instance with no CPU stored yet (new, or inventoried after the last run)
                // needs its history: fetch the whole window once.
                let new_instances = self
                    .store
                    .instances_missing_metric(tenant, "CPUUtilization", history)
                    .await?;
                // Otherwise re-fetch the last hour before the previous end: CloudWatch fills
                // late points.
                let start = match last_success {
                    Some(t) if new_instances.is_empty() => {
                        (t - ChronoDuration::hours(1)).max(history)
                    }
                    _ => history,
                };
                (start, end)
            }
            Collector::Cur => {
                let today = now.date_naive();
                let start = match last_success {
                    None => cloudspend_collect_costexplorer::earliest_start(today),
                    // The CUR restates the current and previous month until the invoice is final.
                    Some(_) => today - ChronoDuration::days(40),
                };
                (midnight(start), midnight(today + ChronoDuration::days(1)))
            }
            Collector::CostExplorer => {
                let today = now.date_naive();
                let tomorrow = today + ChronoDuration::days(1);
                let start = match last_success {
                    // First collection: backfill as far as Cost Explorer goes, so anomaly
                    // detection has history on day one.
                    None => cloudspend_collect_costexplorer::earliest_start(today),
                    Some(_) => today - ChronoDuration::days(self.settings.cost_recent_days),
                };
                (midnight(start), midnight(tomorrow))
            }
        })
    }

    async fn last_success_end(
        &self,
        tenant: TenantId,
        collector: Collector,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let runs = self.store.runs(tenant, 500).await?;
        Ok(runs
            .into_iter()
            .filter(|r| r.collector == collector.as_str() && r.status == RunStatus::Succeeded)
            .map(|r| r.window_end)
            .max())
    }

    async fn collect(
        &self,
        tenant: TenantId,
        collector: Collector,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        counter: &RequestCounter,
    ) -> Result<Collected, CollectionError> {
        let rows = |rows: u64| Collected { rows, note: None };
        let (connection, credentials) = self.credentials(tenant).await?;
        let config = self
            .aws
            .sdk_config(tenant, &credentials, connection.home_region())
            .await?;
        match collector {
            Collector::Ec2 => {
                let instances = cloudspend_collect_ec2::collect_instances(
                    &config,
                    &connection.account_id,
                    &connection.regions,
                    counter,
                )
                .await?;
                Ok(rows(
                    self.store
                        .sync_instances(
                            tenant,
                            &connection.account_id,
                            &connection.regions,
                            &instances,
                        )
                        .await?,
                ))
            }
            Collector::Cloudwatch => {
                let instances = self.store.instances(tenant).await?;
                let mut by_region: BTreeMap<&str, Vec<String>> = BTreeMap::new();
                for instance in instances.iter().filter(|i| i.state != "terminated") {
                    by_region
                        .entry(instance.region.as_str())
                        .or_default()
                        .push(instance.instance_id.clone());
                }
                let mut points = Vec::new();
                for (region, ids) in by_region {
                    let query = CpuQuery::hourly(region, ids, from, to);
                    points.extend(
                        cloudspend_collect_cloudwatch::cpu_utilization(&config, &query, counter)
                            .await?,
                    );
                }
                Ok(rows(
                    self.store.upsert_metric_points(tenant, &points).await?,
                ))
            }
            Collector::CostExplorer => {
                // Cost Explorer answers only in us-east-1, whatever the tenant's home region.
                let ce = cost_explorer_config(&config);
                let batch = cloudspend_collect_costexplorer::daily_costs(
                    &ce,
                    from.date_naive(),
                    to.date_naive(),
                    counter,
                )
                .await?;
                // Replace only the days Cost Explorer answered for: an answer that leaves days
                // out must not erase what is stored for them.
                let (Some(first), Some(last)) = (batch.days.first(), batch.days.last()) else {
                    tracing::warn!(
                        "Cost Explorer returned no days for the window; keeping the stored rows"
                    );
                    return Ok(Collected {
                        rows: 0,
                        note: Some(
                            "Cost Explorer returned no days for the window; stored rows kept"
                                .into(),
                        ),
                    });
                };
                let records: Vec<_> = batch
                    .records
                    .into_iter()
                    .filter(|r| r.day >= *first && r.day <= *last)
                    .collect();
                let end = *last + ChronoDuration::days(1);
                Ok(rows(
                    self.store
                        .replace_daily_costs(tenant, CostSource::Ce, *first, end, &records)
                        .await?,
                ))
            }
            Collector::Cur => {
                let cur = &connection.cur;
                let (Some(database), Some(table)) =
                    (cur.athena_database.clone(), cur.athena_table.clone())
                else {
                    return Err(CollectionError::CurNotConfigured);
                };
                let output_location = cur.athena_results_bucket.as_ref().map(|bucket| {
                    let prefix = cur
                        .athena_results_prefix
                        .as_deref()
                        .unwrap_or("")
                        .trim_matches('/');
                    if prefix.is_empty() {
                        format!("s3://{bucket}/")
                    } else {
                        format!("s3://{bucket}/{prefix}/")
                    }
                });
                let location = cloudspend_collect_cur::AthenaLocation {
                    database,
                    table,
                    workgroup: cur
                        .athena_workgroup
                        .clone()
                        .unwrap_or_else(|| "primary".into()),
                    output_location,
                };
                let result = cloudspend_collect_cur::query_cur(
                    &config,
                    &location,
                    from.date_naive(),
                    to.date_naive(),
                    counter,
                    &cloudspend_collect_cur::QueryOptions::default(),
                )
                .await?;
                // Replace only the days the CUR has rows for: a month not delivered yet must
                // not erase what is stored.
                let (Some(first), Some(last)) = (
                    result.records.iter().map(|r| r.day).min(),
                    result.records.iter().map(|r| r.day).max(),
                ) else {
                    return Ok(Collected {
                        rows: 0,
                        note: result
                            .note
                            .or_else(|| Some("the CUR had no rows for the window".into())),
                    });
                };
                let written = self
                    .store
                    .replace_daily_costs(
                        tenant,
                        CostSource::Cur,
                        first,
                        last + ChronoDuration::days(1),
                        &result.records,
                    )
                    .await?;
                Ok(Collected {
                    rows: written,
                    note: result.note,
                })
            }
        }
    }
}

/// What a successful collection wrote, and anything worth telling about it (an empty CUR
/// window, Cost Explorer answering for no day).
struct Collected {
    rows: u64,
    note: Option<String>,
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight exists"))
}
