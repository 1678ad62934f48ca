//! SQL common to both backends. [`impl_store!`] expands the whole [`crate::Store`] impl for a
//! backend from one text, so PostgreSQL and SQLite run the same statements and cannot drift.
//! Types are chosen to encode on both: `Uuid` (uuid / BLOB), `DateTime<Utc>` (timestamptz /
//! RFC 3339 TEXT), `NaiveDate` (date / TEXT), `Json<T>` (jsonb / TEXT), `i64` and `bool`.

use crate::model::*;
use chrono::{DateTime, NaiveDate, Utc};
use cloudspend_core::connection::{AwsConnection, ConnectionAuth, CurLocation};
use cloudspend_core::records::{CostRecord, Instance, MetricPoint, RunStatus};
use cloudspend_core::{Money, Role, RunId, TenantId, UserId};
use sqlx::types::Json;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Rows per multi-row INSERT: keeps every statement under both backends' bind-parameter limits
/// (SQLite 32,766; PostgreSQL 65,535) with the widest table.
pub(crate) const BATCH_ROWS: usize = 1000;

/// The last item for each key, in key order. A multi-row `INSERT ... ON CONFLICT DO UPDATE`
/// may not touch the same row twice (PostgreSQL refuses), so duplicates within one write are
/// collapsed first, keeping the latest, as separate upserts would have.
pub(crate) fn last_per_key<'a, T, K: Ord>(items: &'a [T], key: impl Fn(&'a T) -> K) -> Vec<&'a T> {
    let mut latest = BTreeMap::new();
    for item in items {
        latest.insert(key(item), item);
    }
    latest.into_values().collect()
}

/// How every cost write resolves a row that exists: the new values replace the old.
/// Rows whose values are unchanged are left alone: a CUR month is delivered again several times a
/// day with most of it the same, and an update that writes the same values still costs a new
/// row version and index entry (4x slower in the import bench). So the count of rows written
/// is the count of rows new or changed.
pub(crate) const COST_ON_CONFLICT: &str = " ON CONFLICT (tenant_id, day, source, account_id, service, region, \
     usage_type, resource_id, line_item_type) DO UPDATE SET unblended_nanos = excluded.unblended_nanos, \
     amortized_nanos = excluded.amortized_nanos, usage_amount = excluded.usage_amount, \
     currency = excluded.currency, estimated = excluded.estimated \
     WHERE daily_costs.unblended_nanos IS DISTINCT FROM excluded.unblended_nanos \
        OR daily_costs.amortized_nanos IS DISTINCT FROM excluded.amortized_nanos \
        OR daily_costs.usage_amount IS DISTINCT FROM excluded.usage_amount \
        OR daily_costs.currency IS DISTINCT FROM excluded.currency \
        OR daily_costs.estimated IS DISTINCT FROM excluded.estimated";

/// What a cost write did.
pub(crate) struct CostsWritten {
    /// Rows new or changed.
    pub rows: u64,
    /// The rollups of the written days were rewritten too (by [`rollups_of`]), because the rows
    /// went into days that held no cost rows before.
    pub rollups_written: bool,
}

/// A backend's faster way to upsert many cost rows within the caller's transaction, with the
/// same result as the shared multi-row INSERT. `records` are unique by key and in key order.
/// With `rollups`, the backend may also rewrite the rollups of the records' days when it knows
/// the records are all those days hold (and says so in [`CostsWritten::rollups_written`]).
/// `Ok(None)` means "not worth it here": the caller then runs the multi-row INSERT.
pub(crate) trait BulkCostWrite: sqlx::Database {
    /// Holds the tenant's cost writes to one at a time until the caller's transaction ends.
    /// Cost Explorer and the CUR are collected by separate jobs; two writes on the same days at
    /// once would each rewrite the days' rollups from what they see, and the second to insert a
    /// rollup row would fail on the first's (a unique violation, the run lost).
    fn lock_tenant_costs(
        conn: &mut Self::Connection,
        tenant: TenantId,
    ) -> impl std::future::Future<Output = crate::Result<()>> + Send;

    fn bulk_upsert_costs<'a>(
        conn: &'a mut Self::Connection,
        tenant: TenantId,
        records: &'a [&'a CostRecord],
        rollups: bool,
    ) -> impl std::future::Future<Output = crate::Result<Option<CostsWritten>>> + Send + 'a;

    /// Writes the rows of `batches` (see [`crate::Store::upsert_daily_costs_streamed`]) as one
    /// bulk write, rollups included when the days held no cost rows. `Ok(None)`, having read
    /// nothing, means "not here": the caller upserts batch by batch.
    fn stream_costs<'a>(
        conn: &'a mut Self::Connection,
        tenant: TenantId,
        days: (NaiveDate, NaiveDate),
        batches: &'a mut CostBatches,
    ) -> impl std::future::Future<Output = crate::Result<Option<CostsWritten>>> + Send + 'a;
}

/// Cost rows arriving a batch at a time, from a producer that may fail (a file being read).
pub type CostBatches = tokio::sync::mpsc::Receiver<Result<Vec<CostRecord>, String>>;

/// Checks what [`crate::Store::upsert_daily_costs_streamed`] asks of its rows as they pass:
/// unique, in key order, on the days announced. A COPY would otherwise fail on a duplicate
/// with a bare key violation, or leave the days' rollups wrong.
#[derive(Default)]
pub(crate) struct StreamCheck {
    last: Option<CostRecord>,
}

impl StreamCheck {
    pub fn batch(
        &mut self,
        batch: Result<Vec<CostRecord>, String>,
        (first, last): (NaiveDate, NaiveDate),
    ) -> crate::Result<Vec<CostRecord>> {
        let batch = batch.map_err(crate::StoreError::Source)?;
        let mut previous = self.last.as_ref();
        for r in &batch {
            if r.day < first || r.day > last {
                return Err(crate::StoreError::Source(format!(
                    "a cost row of {} outside the days announced ({first} to {last})",
                    r.day
                )));
            }
            if previous.is_some_and(|p| p.natural_key() >= r.natural_key()) {
                return Err(crate::StoreError::Source(format!(
                    "cost rows out of key order or repeated at {} {} {}",
                    r.day, r.service, r.resource_id
                )));
            }
            previous = Some(r);
        }
        if let Some(r) = batch.last() {
            self.last = Some(r.clone());
        }
        Ok(batch)
    }
}

/// SQLite has no COPY, and its multi-row INSERT into a local file is already fast.
impl BulkCostWrite for sqlx::Sqlite {
    /// SQLite has one writer at a time already.
    async fn lock_tenant_costs(
        _conn: &mut sqlx::SqliteConnection,
        _tenant: TenantId,
    ) -> crate::Result<()> {
        Ok(())
    }

    async fn bulk_upsert_costs<'a>(
        _conn: &'a mut sqlx::SqliteConnection,
        _tenant: TenantId,
        _records: &'a [&'a CostRecord],
        _rollups: bool,
    ) -> crate::Result<Option<CostsWritten>> {
        Ok(None)
    }

    async fn stream_costs<'a>(
        _conn: &'a mut sqlx::SqliteConnection,
        _tenant: TenantId,
        _days: (NaiveDate, NaiveDate),
        _batches: &'a mut CostBatches,
    ) -> crate::Result<Option<CostsWritten>> {
        Ok(None)
    }
}

/// One rollup row's value: the amount in nanos, and whether any of it is an estimate.
pub(crate) type RollupValue = (i64, bool);

/// Rollup rows by (day, dimension, key).
pub(crate) type Rollups = BTreeMap<(NaiveDate, RollupDimension, String), RollupValue>;

/// The rollup rows of cost rows added one at a time, when they are the only cost rows on their
/// days, by the rules of [`REFRESH_ROLLUPS`]: on a day with any CUR row only CUR rows count,
/// Cost Explorer's otherwise. A million-row import into an empty month gets its rollups from the
/// rows in hand instead of reading them back (about a second of database time in the import
/// bench). Memory follows the rollup rows (days x services, accounts, regions), not the rows.
#[derive(Default)]
pub(crate) struct RollupSums {
    /// The keys (service, account and region names), interned: a row is added without
    /// allocating.
    names: std::collections::HashMap<String, u32>,
    sums: std::collections::HashMap<(NaiveDate, RollupDimension, u32), BySource>,
    cur_days: std::collections::HashSet<NaiveDate>,
    /// Rows in key order come in runs of one day, source, account, service and region (the
    /// resources and usage types under them): a run is summed here and added to `sums` once,
    /// which spares four hash lookups on most rows of an import.
    run: Option<Run>,
}

/// One rollup key's [Cost Explorer's sum, the CUR's sum], each in nanos with whether any of it
/// is an estimate; `None` where that source has no row.
type BySource = [Option<(i128, bool)>; 2];

struct Run {
    day: NaiveDate,
    source: cloudspend_core::records::CostSource,
    account_id: String,
    service: String,
    region: String,
    amount: i128,
    estimated: bool,
}

impl RollupSums {
    pub fn add(&mut self, r: &CostRecord) {
        if let Some(run) = &mut self.run
            && (run.day, run.source) == (r.day, r.source)
            && (&run.account_id, &run.service, &run.region)
                == (&r.account_id, &r.service, &r.region)
        {
            run.amount += i128::from(r.unblended.nanos());
            run.estimated |= r.estimated;
            return;
        }
        self.end_run();
        self.run = Some(Run {
            day: r.day,
            source: r.source,
            account_id: r.account_id.clone(),
            service: r.service.clone(),
            region: r.region.clone(),
            amount: i128::from(r.unblended.nanos()),
            estimated: r.estimated,
        });
    }

    fn end_run(&mut self) {
        use cloudspend_core::records::CostSource;
        let Some(run) = self.run.take() else {
            return;
        };
        let source = usize::from(run.source == CostSource::Cur);
        if run.source == CostSource::Cur {
            self.cur_days.insert(run.day);
        }
        for (dimension, key) in [
            (RollupDimension::Total, ""),
            (RollupDimension::Service, run.service.as_str()),
            (RollupDimension::Account, run.account_id.as_str()),
            (RollupDimension::Region, run.region.as_str()),
        ] {
            let id = match self.names.get(key) {
                Some(&id) => id,
                None => {
                    let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
                    self.names.insert(key.to_string(), id);
                    id
                }
            };
            let sum = self.sums.entry((run.day, dimension, id)).or_default()[source]
                .get_or_insert((0, false));
            sum.0 += run.amount;
            sum.1 |= run.estimated;
        }
    }

    /// `None` when a sum does not fit BIGINT: the SQL refresh then reports that as it always
    /// has.
    pub fn finish(mut self) -> Option<Rollups> {
        self.end_run();
        let mut names = vec![String::new(); self.names.len()];
        for (name, id) in self.names {
            names[id as usize] = name;
        }
        let mut rollups = Rollups::new();
        for ((day, dimension, id), [explorer, cur]) in self.sums {
            let counted = if self.cur_days.contains(&day) {
                cur
            } else {
                explorer
            };
            // A key with rows only of the source that does not count that day has no rollup.
            let Some((amount, estimated)) = counted else {
                continue;
            };
            let key = names[id as usize].clone();
            rollups.insert(
                (day, dimension, key),
                (i64::try_from(amount).ok()?, estimated),
            );
        }
        Some(rollups)
    }
}

/// [`RollupSums`] of `records`.
pub(crate) fn rollups_of(records: &[&CostRecord]) -> Option<Rollups> {
    let mut sums = RollupSums::default();
    for r in records {
        sums.add(r);
    }
    sums.finish()
}

pub(crate) fn unique_violation_is(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(crate) fn parse_role(raw: &str) -> Result<Role, crate::StoreError> {
    raw.parse()
        .map_err(|e: cloudspend_core::role::UnknownRole| crate::StoreError::Corrupt(e.to_string()))
}

/// 64 hex characters of randomness (two v4 UUIDs, 244 random bits), prefixed so people
/// recognise it when they paste it into AWS.
pub(crate) fn new_external_id() -> String {
    format!("cs-{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub is_global_owner: bool,
    pub created_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: UserId(r.id),
            email: r.email,
            is_global_owner: r.is_global_owner,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CredentialsRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub password_hash: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct TenantRow {
    pub id: Uuid,
    pub name: String,
    pub external_id: String,
    pub created_at: DateTime<Utc>,
    pub data_version: i64,
}

impl From<TenantRow> for Tenant {
    fn from(r: TenantRow) -> Self {
        Tenant {
            id: TenantId(r.id),
            name: r.name,
            external_id: r.external_id,
            created_at: r.created_at,
            data_version: r.data_version,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TenantRoleRow {
    #[sqlx(flatten)]
    pub tenant: TenantRow,
    pub role: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct TenantSummaryRow {
    #[sqlx(flatten)]
    pub tenant: TenantRow,
    pub members: i64,
    pub connection_status: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct MemberRow {
    pub user_id: Uuid,
    pub email: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

pub(crate) const INVITATION_COLUMNS: &str =
    "id, tenant_id, email, role, invited_by, created_at, expires_at, accepted_at, revoked_at";

#[derive(sqlx::FromRow)]
pub(crate) struct InvitationRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub role: String,
    pub invited_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<InvitationRow> for Invitation {
    type Error = crate::StoreError;

    fn try_from(r: InvitationRow) -> Result<Self, Self::Error> {
        Ok(Invitation {
            id: r.id,
            tenant_id: TenantId(r.tenant_id),
            email: r.email,
            role: parse_role(&r.role)?,
            invited_by: r.invited_by.map(UserId),
            created_at: r.created_at,
            expires_at: r.expires_at,
            accepted_at: r.accepted_at,
            revoked_at: r.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub tenant_id: Option<Uuid>,
    pub name: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An audit entry's detail records what a caller sent, which may hold numbers PostgreSQL keeps
/// exactly but `f64` cannot (1e400): read as text, parsed when it can be, else kept as text,
/// so one odd entry never hides the log.
pub(crate) fn audit_detail(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

#[derive(sqlx::FromRow)]
pub(crate) struct InstanceRow {
    pub account_id: String,
    pub region: String,
    pub instance_id: String,
    pub instance_type: String,
    pub state: String,
    pub launch_time: Option<DateTime<Utc>>,
    pub availability_zone: String,
    pub platform: String,
    pub tags: Json<BTreeMap<String, String>>,
    pub last_seen_at: DateTime<Utc>,
    pub volume_ids: Json<Vec<String>>,
    pub state_since: Option<DateTime<Utc>>,
}

impl From<InstanceRow> for Instance {
    fn from(r: InstanceRow) -> Self {
        Instance {
            account_id: r.account_id,
            region: r.region,
            instance_id: r.instance_id,
            instance_type: r.instance_type,
            state: r.state,
            launch_time: r.launch_time,
            availability_zone: r.availability_zone,
            platform: r.platform,
            tags: r.tags.0,
            last_seen_at: r.last_seen_at,
            volume_ids: r.volume_ids.0,
            state_since: r.state_since,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MetricRow {
    pub instance_id: String,
    pub metric: String,
    pub period_seconds: i64,
    pub ts: DateTime<Utc>,
    pub average: f64,
    pub maximum: f64,
    pub unit: String,
}

impl From<MetricRow> for MetricPoint {
    fn from(r: MetricRow) -> Self {
        MetricPoint {
            instance_id: r.instance_id,
            metric: r.metric,
            period_seconds: r.period_seconds,
            timestamp: r.ts,
            average: r.average,
            maximum: r.maximum,
            unit: r.unit,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CostRow {
    pub day: NaiveDate,
    pub source: String,
    pub account_id: String,
    pub service: String,
    pub region: String,
    pub usage_type: String,
    pub resource_id: String,
    pub line_item_type: String,
    pub unblended_nanos: i64,
    pub amortized_nanos: i64,
    pub usage_amount: Option<String>,
    pub currency: String,
    pub estimated: bool,
}

impl TryFrom<CostRow> for CostRecord {
    type Error = crate::StoreError;
    fn try_from(r: CostRow) -> Result<Self, Self::Error> {
        Ok(CostRecord {
            day: r.day,
            source: r.source.parse().map_err(crate::StoreError::Corrupt)?,
            account_id: r.account_id,
            service: r.service,
            region: r.region,
            usage_type: r.usage_type,
            resource_id: r.resource_id,
            line_item_type: r.line_item_type,
            unblended: Money::from_nanos(r.unblended_nanos),
            amortized: Money::from_nanos(r.amortized_nanos),
            usage_amount: r.usage_amount,
            currency: r.currency,
            estimated: r.estimated,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    pub id: Uuid,
    pub collector: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: String,
    pub rows_written: i64,
    pub aws_requests: i64,
    pub ce_requests: i64,
    pub retries: i64,
    pub error: Option<String>,
}

impl TryFrom<RunRow> for CollectionRun {
    type Error = crate::StoreError;
    fn try_from(r: RunRow) -> Result<Self, Self::Error> {
        let status: RunStatus = r.status.parse().map_err(crate::StoreError::Corrupt)?;
        Ok(CollectionRun {
            id: RunId(r.id),
            collector: r.collector,
            window_start: r.window_start,
            window_end: r.window_end,
            started_at: r.started_at,
            finished_at: r.finished_at,
            status,
            rows_written: r.rows_written,
            aws_requests: r.aws_requests,
            ce_requests: r.ce_requests,
            retries: r.retries,
            error: r.error,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    pub tenant_id: Uuid,
    pub collector: String,
    pub interval_seconds: i64,
    pub next_run_at: DateTime<Utc>,
    pub leased_until: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
}

impl From<JobRow> for Job {
    fn from(r: JobRow) -> Self {
        Job {
            tenant_id: TenantId(r.tenant_id),
            collector: r.collector,
            interval_seconds: r.interval_seconds,
            next_run_at: r.next_run_at,
            leased_until: r.leased_until,
            lease_owner: r.lease_owner,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ConnectionRow {
    pub display_name: String,
    pub account_id: String,
    pub account_type: String,
    pub auth_method: String,
    pub role_arn: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_key_ciphertext: Option<String>,
    pub regions: Json<Vec<String>>,
    pub cur_bucket: Option<String>,
    pub cur_prefix: Option<String>,
    pub athena_database: Option<String>,
    pub athena_table: Option<String>,
    pub athena_workgroup: Option<String>,
    pub athena_results_bucket: Option<String>,
    pub athena_results_prefix: Option<String>,
    pub status: String,
    pub last_verified_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub warnings: Json<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<ConnectionRow> for AwsConnection {
    type Error = crate::StoreError;
    fn try_from(r: ConnectionRow) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| crate::StoreError::Corrupt(format!("aws_connections: {what}"));
        let auth = match r.auth_method.as_str() {
            "role" => ConnectionAuth::Role {
                role_arn: r.role_arn.ok_or_else(|| corrupt("role without role_arn"))?,
            },
            "access_key" => ConnectionAuth::AccessKey {
                access_key_id: r
                    .access_key_id
                    .ok_or_else(|| corrupt("access key without id"))?,
                secret_ciphertext: r
                    .secret_key_ciphertext
                    .ok_or_else(|| corrupt("access key without secret"))?,
            },
            other => return Err(corrupt(&format!("auth method {other}"))),
        };
        Ok(AwsConnection {
            display_name: r.display_name,
            account_id: r.account_id,
            account_type: r.account_type.parse().map_err(crate::StoreError::Corrupt)?,
            auth,
            regions: r.regions.0,
            cur: CurLocation {
                cur_bucket: r.cur_bucket,
                cur_prefix: r.cur_prefix,
                athena_database: r.athena_database,
                athena_table: r.athena_table,
                athena_workgroup: r.athena_workgroup,
                athena_results_bucket: r.athena_results_bucket,
                athena_results_prefix: r.athena_results_prefix,
            },
            status: r.status.parse().map_err(crate::StoreError::Corrupt)?,
            last_verified_at: r.last_verified_at,
            last_error: r.last_error,
            warnings: r.warnings.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

// The *_COLUMNS lists below are the only text ever spliced into SQL with format!: they are
// compile-time constants. Every value goes through a bind parameter.
pub(crate) const CONNECTION_COLUMNS: &str = "display_name, account_id, account_type, auth_method, role_arn, \
     access_key_id, secret_key_ciphertext, regions, cur_bucket, cur_prefix, athena_database, athena_table, \
     athena_workgroup, athena_results_bucket, athena_results_prefix, status, last_verified_at, last_error, warnings, \
     created_at, updated_at";

pub(crate) const USER_COLUMNS: &str = "u.id, u.email, u.is_global_owner, u.created_at";
pub(crate) const TENANT_COLUMNS: &str = "t.id, t.name, t.external_id, t.created_at, t.data_version";
pub(crate) const COST_COLUMNS: &str = "day, source, account_id, service, region, usage_type, resource_id, \
     line_item_type, unblended_nanos, amortized_nanos, usage_amount, currency, estimated";
pub(crate) const RUN_COLUMNS: &str = "id, collector, window_start, window_end, started_at, finished_at, status, \
     rows_written, aws_requests, ce_requests, retries, error";
pub(crate) const JOB_COLUMNS: &str =
    "tenant_id, collector, interval_seconds, next_run_at, leased_until, lease_owner";

#[derive(sqlx::FromRow)]
pub(crate) struct RollupDayRow {
    pub day: NaiveDate,
    pub key: String,
    pub amount_nanos: i64,
    pub estimated: bool,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AnomalyRow {
    pub id: Uuid,
    pub series: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub expected_nanos: i64,
    pub lower_nanos: i64,
    pub upper_nanos: i64,
    pub actual_nanos: i64,
    pub impact_nanos: i64,
    pub impact_percent: f64,
    pub score: f64,
    pub severity: String,
    pub root_causes: Json<serde_json::Value>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<AnomalyRow> for StoredAnomaly {
    type Error = crate::StoreError;
    fn try_from(r: AnomalyRow) -> Result<Self, Self::Error> {
        Ok(StoredAnomaly {
            id: cloudspend_core::AnomalyId(r.id),
            detection: NewAnomaly {
                series: r.series,
                first_day: r.first_day,
                last_day: r.last_day,
                expected: Money::from_nanos(r.expected_nanos),
                lower: Money::from_nanos(r.lower_nanos),
                upper: Money::from_nanos(r.upper_nanos),
                actual: Money::from_nanos(r.actual_nanos),
                impact: Money::from_nanos(r.impact_nanos),
                impact_percent: r.impact_percent,
                score: r.score,
                severity: r.severity,
                root_causes: r.root_causes.0,
            },
            status: r.status.parse().map_err(crate::StoreError::Corrupt)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RecommendationRow {
    pub kind: String,
    pub resource_id: String,
    pub savings_nanos: i64,
    pub detail: Json<serde_json::Value>,
    pub computed_at: DateTime<Utc>,
}

impl From<RecommendationRow> for Recommendation {
    fn from(r: RecommendationRow) -> Self {
        Recommendation {
            kind: r.kind,
            resource_id: r.resource_id,
            monthly_savings: Money::from_nanos(r.savings_nanos),
            detail: r.detail.0,
            computed_at: r.computed_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SubscriptionRow {
    pub id: Uuid,
    pub name: String,
    pub channel: String,
    pub target: String,
    pub threshold_kind: String,
    pub threshold: String,
    pub frequency: String,
    pub secret_ciphertext: String,
    pub created_at: DateTime<Utc>,
    pub last_digest_at: Option<DateTime<Utc>>,
}

impl From<SubscriptionRow> for Subscription {
    fn from(r: SubscriptionRow) -> Self {
        Subscription {
            id: r.id,
            name: r.name,
            channel: r.channel,
            target: r.target,
            threshold_kind: r.threshold_kind,
            threshold: r.threshold,
            frequency: r.frequency,
            secret_ciphertext: r.secret_ciphertext,
            created_at: r.created_at,
            last_digest_at: r.last_digest_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub kind: String,
    pub subject_key: String,
    pub payload: Json<serde_json::Value>,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub response_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = crate::StoreError;
    fn try_from(r: DeliveryRow) -> Result<Self, Self::Error> {
        let status = match r.status.as_str() {
            "pending" => DeliveryStatus::Pending,
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            other => {
                return Err(crate::StoreError::Corrupt(format!(
                    "delivery status `{other}`"
                )));
            }
        };
        Ok(Delivery {
            tenant_id: TenantId(r.tenant_id),
            id: r.id,
            subscription_id: r.subscription_id,
            kind: r.kind,
            subject_key: r.subject_key,
            payload: r.payload.0,
            status,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            response_code: r.response_code,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

pub(crate) const ANOMALY_COLUMNS: &str = "id, series, first_day, last_day, expected_nanos, lower_nanos, upper_nanos, \
     actual_nanos, impact_nanos, impact_percent, score, severity, root_causes, status, created_at, updated_at";
pub(crate) const SUBSCRIPTION_COLUMNS: &str = "id, name, channel, target, threshold_kind, threshold, frequency, \
     secret_ciphertext, created_at, last_digest_at";
pub(crate) const DELIVERY_COLUMNS: &str = "tenant_id, id, subscription_id, kind, subject_key, payload, status, \
     attempts, next_attempt_at, response_code, last_error, created_at, updated_at";

/// Rewrites the rollups of `from <= day < to` from `daily_costs`, applying source precedence
/// per day (the CUR where it has rows for the day, Cost Explorer otherwise).
///
/// Sums the window's rows by (day, source, service, account, region) once, picks each day's
/// source from those few groups (CUR when the day has any), then rolls them up. Deciding the
/// source per cost row instead took 10x longer on a million-row import.
pub(crate) const REFRESH_ROLLUPS: &str = "WITH g AS ( \
       SELECT tenant_id, day, source, service, account_id, region, SUM(unblended_nanos) AS amount, \
              MAX(CASE WHEN estimated THEN 1 ELSE 0 END) AS estimated \
       FROM daily_costs WHERE tenant_id = $1 AND day >= $2 AND day < $3 \
       GROUP BY tenant_id, day, source, service, account_id, region), \
     chosen AS ( \
       SELECT * FROM g WHERE g.source = CASE WHEN EXISTS (SELECT 1 FROM g c WHERE c.day = g.day \
                                                     AND c.source = 'cur') THEN 'cur' ELSE 'ce' END) \
     INSERT INTO cost_rollups (tenant_id, day, dimension, key, amount_nanos, estimated) \
     SELECT c.tenant_id, c.day, dim.dimension, \
            CASE dim.dimension WHEN 'total' THEN '' WHEN 'service' THEN c.service \
                               WHEN 'account' THEN c.account_id ELSE c.region END, \
            SUM(c.amount), MAX(c.estimated) = 1 \
     FROM chosen c \
     CROSS JOIN (SELECT 'total' AS dimension UNION ALL SELECT 'service' UNION ALL SELECT 'account' \
                 UNION ALL SELECT 'region') AS dim \
     GROUP BY c.tenant_id, c.day, dim.dimension, 4";

// --- actions, budgets, alarms (issue 9) ---

pub(crate) const ACTION_TOKEN_COLUMNS: &str = "tenant_id, token_hash, user_id, instance_id, region, action, \
     created_at, expires_at, used_at, detail";
pub(crate) const BUDGET_COLUMNS: &str = "amount_nanos, currency, actual_thresholds, forecast_thresholds, alerted, \
     updated_by, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ActionTokenRow {
    pub tenant_id: Uuid,
    pub token_hash: String,
    pub user_id: Uuid,
    pub instance_id: String,
    pub region: String,
    pub action: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub detail: Json<serde_json::Value>,
}

impl From<ActionTokenRow> for ActionToken {
    fn from(r: ActionTokenRow) -> Self {
        ActionToken {
            tenant_id: TenantId(r.tenant_id),
            token_hash: r.token_hash,
            user_id: UserId(r.user_id),
            instance_id: r.instance_id,
            region: r.region,
            action: r.action,
            created_at: r.created_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
            detail: r.detail.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRecordRow {
    pub id: Uuid,
    pub user_email: Option<String>,
    pub action: String,
    pub status: String,
    /// As text: see [`audit_detail`].
    pub detail: String,
    pub at: DateTime<Utc>,
}

impl TryFrom<AuditRecordRow> for AuditRecord {
    type Error = crate::StoreError;
    fn try_from(r: AuditRecordRow) -> Result<Self, Self::Error> {
        Ok(AuditRecord {
            id: r.id,
            user_email: r.user_email,
            action: r.action,
            status: audit_status(&r.status)?,
            detail: audit_detail(r.detail),
            at: r.at,
        })
    }
}

pub(crate) fn audit_status(text: &str) -> crate::Result<AuditStatus> {
    AuditStatus::parse(text)
        .ok_or_else(|| crate::StoreError::Corrupt(format!("audit status `{text}`")))
}

/// The audit entries an [`AuditFilter`] selects, binding `$1` (tenant) to `$6`; both the page
/// and the counts read through it, so a page never lists what the counts leave out.
pub(crate) const AUDIT_FILTER: &str = "tenant_id = $1 AND at >= $2 AND ($3 IS NULL OR at < $3) \
     AND ($4 IS NULL OR lower(user_email) = lower($4)) \
     AND ($5 IS NULL OR action = $5 OR action LIKE $5 || '.%') \
     AND ($6 IS NULL OR status = $6)";

/// Binds an [`AuditFilter`] in [`AUDIT_FILTER`]'s order.
pub(crate) fn bind_audit_filter<'q, DB, O>(
    query: sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>,
    tenant: TenantId,
    f: &'q AuditFilter,
) -> sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    Uuid: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<DateTime<Utc>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(tenant.0)
        .bind(crate::micros(f.from))
        .bind(f.to.map(crate::micros))
        .bind(f.user_email.as_deref())
        .bind(f.action.as_deref())
        .bind(f.status.map(AuditStatus::as_str))
}

#[derive(sqlx::FromRow)]
pub(crate) struct BudgetRow {
    pub amount_nanos: i64,
    pub currency: String,
    pub actual_thresholds: Json<Vec<u32>>,
    pub forecast_thresholds: Json<Vec<u32>>,
    pub alerted: Json<BudgetAlerted>,
    pub updated_by: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
}

impl From<BudgetRow> for Budget {
    fn from(r: BudgetRow) -> Self {
        Budget {
            amount: Money::from_nanos(r.amount_nanos),
            currency: r.currency,
            actual_thresholds: r.actual_thresholds.0,
            forecast_thresholds: r.forecast_thresholds.0,
            alerted: r.alerted.0,
            updated_by: r.updated_by.map(UserId),
            updated_at: r.updated_at,
        }
    }
}

/// Expands `impl Store for $store` over `sqlx::Pool<$db>` in `self.pool`. The backend supplies
/// its migrator and its job-leasing statement (the one place the dialects differ).
macro_rules! impl_store {
    ($store:ident, $db:ident, $backend:expr, $migrator:ident, $lease_sql:ident) => {
      mod shared_sql {
        use super::{$store, $migrator, $lease_sql};
        use crate::model::*;
        use crate::shared::*;
        use chrono::{DateTime, NaiveDate, Utc};
        use cloudspend_core::connection::{AwsConnection, ConnectionAuth};
        use cloudspend_core::records::{CostRecord, Instance, MetricPoint};
        use cloudspend_core::{Money, Role, RunId, TenantId, UserId};
        use sqlx::$db;
        use sqlx::types::Json;
        use uuid::Uuid;

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> $crate::Backend {
                $backend
            }

            async fn ping(&self) -> $crate::Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn migrate(&self) -> $crate::Result<()> {
                $migrator.run(&self.pool).await?;
                Ok(())
            }

            async fn create_user(&self, user: NewUser) -> $crate::Result<User> {
                let mut tx = self.pool.begin().await?;
                let created = insert_user(&mut tx, &user).await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn create_user_with_tenant(
                &self,
                user: NewUser,
                tenant_name: &str,
            ) -> $crate::Result<(User, Tenant)> {
                let mut tx = self.pool.begin().await?;
                let created = insert_user(&mut tx, &user).await?;
                let tenant = insert_tenant(&mut tx, tenant_name, created.id).await?;
                tx.commit().await?;
                Ok((created, tenant))
            }

            async fn user_by_id(&self, id: UserId) -> $crate::Result<Option<User>> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1");
                let row: Option<UserRow> = sqlx::query_as(&sql).bind(id.0).fetch_optional(&self.pool).await?;
                Ok(row.map(User::from))
            }

            async fn credentials_by_email(&self, email: &str) -> $crate::Result<Option<(User, String)>> {
                let sql = format!("SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.email = $1");
                let row: Option<CredentialsRow> =
                    sqlx::query_as(&sql).bind(email).fetch_optional(&self.pool).await?;
                Ok(row.map(|r| (User::from(r.user), r.password_hash)))
            }

            async fn set_global_owner(&self, id: UserId, is_global_owner: bool) -> $crate::Result<()> {
                let done = sqlx::query("UPDATE users SET is_global_owner = $1 WHERE id = $2")
                    .bind(is_global_owner)
                    .bind(id.0)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound { what: "user" });
                }
                Ok(())
            }

            async fn set_password_hash(&self, id: UserId, password_hash: &str) -> $crate::Result<()> {
                let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(password_hash)
                    .bind(id.0)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound { what: "user" });
                }
                Ok(())
            }

            async fn create_tenant(&self, name: &str, owner: UserId) -> $crate::Result<Tenant> {
                let mut tx = self.pool.begin().await?;
                let tenant = insert_tenant(&mut tx, name, owner).await?;
                tx.commit().await?;
                Ok(tenant)
            }

            async fn tenant(&self, id: TenantId) -> $crate::Result<Option<Tenant>> {
                let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants t WHERE t.id = $1");
                let row: Option<TenantRow> = sqlx::query_as(&sql).bind(id.0).fetch_optional(&self.pool).await?;
                Ok(row.map(Tenant::from))
            }

            async fn all_tenants(&self) -> $crate::Result<Vec<TenantSummary>> {
                let sql = format!(
                    "SELECT {TENANT_COLUMNS}, \
                        (SELECT COUNT(*) FROM memberships m WHERE m.tenant_id = t.id) AS members, \
                        (SELECT c.status FROM aws_connections c WHERE c.tenant_id = t.id) AS connection_status \
                     FROM tenants t ORDER BY t.created_at, t.id"
                );
                let rows: Vec<TenantSummaryRow> = sqlx::query_as(&sql).fetch_all(&self.pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|r| TenantSummary {
                        tenant: r.tenant.into(),
                        members: r.members,
                        connection_status: r.connection_status,
                    })
                    .collect())
            }

            async fn tenants_of(&self, user: UserId) -> $crate::Result<Vec<(Tenant, Role)>> {
                let sql = format!(
                    "SELECT {TENANT_COLUMNS}, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id \
                     WHERE m.user_id = $1 ORDER BY m.created_at, t.id"
                );
                let rows: Vec<TenantRoleRow> = sqlx::query_as(&sql).bind(user.0).fetch_all(&self.pool).await?;
                rows.into_iter().map(|r| Ok((r.tenant.into(), parse_role(&r.role)?))).collect()
            }

            async fn role_in(&self, tenant: TenantId, user: UserId) -> $crate::Result<Option<Role>> {
                let role: Option<String> =
                    sqlx::query_scalar("SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                        .bind(tenant.0)
                        .bind(user.0)
                        .fetch_optional(&self.pool)
                        .await?;
                role.as_deref().map(parse_role).transpose()
            }

            async fn membership(&self, tenant: TenantId, user: UserId) -> $crate::Result<Option<(Tenant, Role)>> {
                let sql = format!(
                    "SELECT {TENANT_COLUMNS}, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id \
                     WHERE m.tenant_id = $1 AND m.user_id = $2"
                );
                let row: Option<TenantRoleRow> =
                    sqlx::query_as(&sql).bind(tenant.0).bind(user.0).fetch_optional(&self.pool).await?;
                row.map(|r| Ok((Tenant::from(r.tenant), parse_role(&r.role)?))).transpose()
            }

            async fn members(&self, tenant: TenantId) -> $crate::Result<Vec<Member>> {
                let rows: Vec<MemberRow> = sqlx::query_as(
                    "SELECT m.user_id, u.email, m.role, m.created_at FROM memberships m \
                     JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 ORDER BY m.created_at, u.email",
                )
                .bind(tenant.0)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|r| {
                        Ok(Member { user_id: UserId(r.user_id), email: r.email, role: parse_role(&r.role)?, since: r.created_at })
                    })
                    .collect()
            }

            async fn put_member(&self, tenant: TenantId, user: UserId, role: Role) -> $crate::Result<()> {
                let mut tx = self.pool.begin().await?;
                lock_tenant(&mut tx, tenant).await?;
                // Checked, not left to the foreign keys: SQLite does not always report which
                // constraint failed, and the caller needs NotFound either way.
                let (users, tenants): (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM users WHERE id = $1), (SELECT COUNT(*) FROM tenants WHERE id = $2)",
                )
                .bind(user.0)
                .bind(tenant.0)
                .fetch_one(&mut *tx)
                .await?;
                if users == 0 || tenants == 0 {
                    return Err($crate::StoreError::NotFound { what: "tenant or user" });
                }
                if role != Role::Owner {
                    refuse_if_last_owner(&mut tx, tenant, user).await?;
                }
                sqlx::query(
                    "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(tenant.0)
                .bind(user.0)
                .bind(role.as_str())
                .bind($crate::micros(Utc::now()))
                .execute(&mut *tx)
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(ref db) if db.is_foreign_key_violation() => {
                        $crate::StoreError::NotFound { what: "tenant or user" }
                    }
                    other => other.into(),
                })?;
                tx.commit().await?;
                Ok(())
            }

            async fn remove_member(&self, tenant: TenantId, user: UserId) -> $crate::Result<()> {
                let mut tx = self.pool.begin().await?;
                lock_tenant(&mut tx, tenant).await?;
                refuse_if_last_owner(&mut tx, tenant, user).await?;
                let done = sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                    .bind(tenant.0)
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound { what: "member" });
                }
                tx.commit().await?;
                Ok(())
            }

            // --- invitations and passwords ---

            async fn create_invitation(&self, tenant: TenantId, n: NewInvitation) -> $crate::Result<Invitation> {
                let row = InvitationRow {
                    id: Uuid::new_v4(),
                    tenant_id: tenant.0,
                    email: n.email,
                    role: n.role.as_str().to_string(),
                    invited_by: Some(n.invited_by.0),
                    created_at: $crate::micros(n.created_at),
                    expires_at: $crate::micros(n.expires_at),
                    accepted_at: None,
                    revoked_at: None,
                };
                let mut tx = self.pool.begin().await?;
                // Two invitations of one address at once: the second waits, then revokes the first.
                lock_tenant(&mut tx, tenant).await?;
                // The newest link replaces any earlier one for the address (a lost e-mail, a
                // changed role), so at most one token per address and tenant can be used.
                sqlx::query(
                    "UPDATE invitations SET revoked_at = $1 WHERE tenant_id = $2 AND email = $3 \
                     AND accepted_at IS NULL AND revoked_at IS NULL",
                )
                .bind(row.created_at)
                .bind(tenant.0)
                .bind(&row.email)
                .execute(&mut *tx)
                .await?;
                let sql = format!("INSERT INTO invitations ({INVITATION_COLUMNS}, token_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, $8)");
                sqlx::query(&sql)
                    .bind(row.id)
                    .bind(tenant.0)
                    .bind(&row.email)
                    .bind(&row.role)
                    .bind(row.invited_by)
                    .bind(row.created_at)
                    .bind(row.expires_at)
                    .bind(&n.token_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| match e {
                        ref e if unique_violation_is(e) => $crate::StoreError::Conflict { field: "token" },
                        sqlx::Error::Database(ref db) if db.is_foreign_key_violation() => {
                            $crate::StoreError::NotFound { what: "tenant or user" }
                        }
                        other => other.into(),
                    })?;
                tx.commit().await?;
                Invitation::try_from(row)
            }

            async fn pending_invitations(&self, tenant: TenantId, now: DateTime<Utc>) -> $crate::Result<Vec<Invitation>> {
                let sql = format!(
                    "SELECT {INVITATION_COLUMNS} FROM invitations WHERE tenant_id = $1 \
                     AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
                     ORDER BY created_at DESC, id"
                );
                let rows: Vec<InvitationRow> = sqlx::query_as(&sql)
                    .bind(tenant.0)
                    .bind($crate::micros(now))
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(Invitation::try_from).collect()
            }

            async fn revoke_invitation(&self, tenant: TenantId, id: Uuid, at: DateTime<Utc>) -> $crate::Result<bool> {
                let at = $crate::micros(at);
                let done = sqlx::query(
                    "UPDATE invitations SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 \
                     AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
                )
                .bind(at)
                .bind(tenant.0)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn invitation_by_token(&self, token_hash: &str) -> $crate::Result<Option<Invitation>> {
                let sql = format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE token_hash = $1");
                let row: Option<InvitationRow> = sqlx::query_as(&sql).bind(token_hash).fetch_optional(&self.pool).await?;
                row.map(Invitation::try_from).transpose()
            }

            async fn accept_invitation(
                &self,
                tenant: TenantId,
                id: Uuid,
                user: UserId,
                now: DateTime<Utc>,
            ) -> $crate::Result<InvitationAccepted> {
                let now = $crate::micros(now);
                let mut tx = self.pool.begin().await?;
                lock_tenant(&mut tx, tenant).await?;
                let invited: Option<(String, String)> = sqlx::query_as(
                    "SELECT email, role FROM invitations WHERE tenant_id = $1 AND id = $2 \
                     AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((email, role)) = invited else {
                    return Ok(InvitationAccepted::NotPending);
                };
                let user_email: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
                    .bind(user.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                if user_email.as_deref() != Some(email.as_str()) {
                    return Ok(InvitationAccepted::OtherEmail);
                }
                let member: Option<String> =
                    sqlx::query_scalar("SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                        .bind(tenant.0)
                        .bind(user.0)
                        .fetch_optional(&mut *tx)
                        .await?;
                if member.is_some() {
                    return Ok(InvitationAccepted::AlreadyMember);
                }
                sqlx::query("UPDATE invitations SET accepted_at = $1, accepted_by = $2 WHERE tenant_id = $3 AND id = $4")
                    .bind(now)
                    .bind(user.0)
                    .bind(tenant.0)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(tenant.0)
                    .bind(user.0)
                    .bind(parse_role(&role)?.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(InvitationAccepted::Joined)
            }

            async fn change_password(
                &self,
                user: UserId,
                password_hash: &str,
                keep: Option<&str>,
                at: DateTime<Utc>,
            ) -> $crate::Result<u64> {
                let at = $crate::micros(at);
                let mut tx = self.pool.begin().await?;
                let revoked = set_password_and_revoke(&mut tx, user, password_hash, keep, at).await?;
                tx.commit().await?;
                Ok(revoked)
            }

            async fn create_password_reset(&self, r: NewPasswordReset) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&r.token_hash)
                .bind(r.user_id.0)
                .bind($crate::micros(r.created_at))
                .bind($crate::micros(r.expires_at))
                .execute(&self.pool)
                .await
                .map_err(|e| match e {
                    ref e if unique_violation_is(e) => $crate::StoreError::Conflict { field: "token" },
                    sqlx::Error::Database(ref db) if db.is_foreign_key_violation() => {
                        $crate::StoreError::NotFound { what: "user" }
                    }
                    other => other.into(),
                })?;
                Ok(())
            }

            async fn reset_password(
                &self,
                token_hash: &str,
                password_hash: &str,
                now: DateTime<Utc>,
            ) -> $crate::Result<Option<UserId>> {
                let now = $crate::micros(now);
                let mut tx = self.pool.begin().await?;
                // Spent in the statement that checks it: of two concurrent uses one finds it used.
                let user: Option<Uuid> = sqlx::query_scalar(
                    "UPDATE password_resets SET used_at = $1 \
                     WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
                )
                .bind(now)
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(user) = user.map(UserId) else {
                    return Ok(None);
                };
                set_password_and_revoke(&mut tx, user, password_hash, None, now).await?;
                tx.commit().await?;
                Ok(Some(user))
            }

            async fn rotate_external_id(&self, tenant: TenantId) -> $crate::Result<String> {
                let external_id = new_external_id();
                let done = sqlx::query("UPDATE tenants SET external_id = $1 WHERE id = $2")
                    .bind(&external_id)
                    .bind(tenant.0)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound { what: "tenant" });
                }
                Ok(external_id)
            }

            async fn put_connection(&self, tenant: TenantId, c: &AwsConnection) -> $crate::Result<()> {
                let (role_arn, access_key_id, secret) = match &c.auth {
                    ConnectionAuth::Role { role_arn } => (Some(role_arn.as_str()), None, None),
                    ConnectionAuth::AccessKey { access_key_id, secret_ciphertext } => {
                        (None, Some(access_key_id.as_str()), Some(secret_ciphertext.as_str()))
                    }
                };
                let sql = format!(
                    "INSERT INTO aws_connections (tenant_id, {CONNECTION_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) \
                     ON CONFLICT (tenant_id) DO UPDATE SET display_name = excluded.display_name, \
                     account_id = excluded.account_id, account_type = excluded.account_type, \
                     auth_method = excluded.auth_method, role_arn = excluded.role_arn, \
                     access_key_id = excluded.access_key_id, secret_key_ciphertext = excluded.secret_key_ciphertext, \
                     regions = excluded.regions, cur_bucket = excluded.cur_bucket, cur_prefix = excluded.cur_prefix, \
                     athena_database = excluded.athena_database, athena_table = excluded.athena_table, \
                     athena_workgroup = excluded.athena_workgroup, athena_results_bucket = excluded.athena_results_bucket, \
                     athena_results_prefix = excluded.athena_results_prefix, status = excluded.status, \
                     last_verified_at = excluded.last_verified_at, last_error = excluded.last_error, \
                     warnings = excluded.warnings, updated_at = excluded.updated_at"
                );
                sqlx::query(&sql)
                    .bind(tenant.0)
                    .bind(&c.display_name)
                    .bind(&c.account_id)
                    .bind(c.account_type.as_str())
                    .bind(c.auth.method())
                    .bind(role_arn)
                    .bind(access_key_id)
                    .bind(secret)
                    .bind(Json(&c.regions))
                    .bind(&c.cur.cur_bucket)
                    .bind(&c.cur.cur_prefix)
                    .bind(&c.cur.athena_database)
                    .bind(&c.cur.athena_table)
                    .bind(&c.cur.athena_workgroup)
                    .bind(&c.cur.athena_results_bucket)
                    .bind(&c.cur.athena_results_prefix)
                    .bind(c.status.as_str())
                    .bind(c.last_verified_at.map($crate::micros))
                    .bind(&c.last_error)
                    .bind(Json(&c.warnings))
                    .bind($crate::micros(c.created_at))
                    .bind($crate::micros(c.updated_at))
                    .execute(&self.pool)
                    .await?;
                bump_data_version(&self.pool, tenant).await?;
                Ok(())
            }

            async fn connection(&self, tenant: TenantId) -> $crate::Result<Option<AwsConnection>> {
                let sql = format!("SELECT {CONNECTION_COLUMNS} FROM aws_connections WHERE tenant_id = $1");
                let row: Option<ConnectionRow> = sqlx::query_as(&sql).bind(tenant.0).fetch_optional(&self.pool).await?;
                row.map(AwsConnection::try_from).transpose()
            }

            async fn delete_connection(&self, tenant: TenantId) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM aws_connections WHERE tenant_id = $1").bind(tenant.0).execute(&self.pool).await?;
                bump_data_version(&self.pool, tenant).await?;
                Ok(done.rows_affected() == 1)
            }

            async fn update_connection_status(
                &self,
                tenant: TenantId,
                update: ConnectionStatusUpdate,
            ) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "UPDATE aws_connections SET status = $1, last_verified_at = COALESCE($2, last_verified_at), \
                     last_error = $3, warnings = $4, updated_at = $5 WHERE tenant_id = $6",
                )
                .bind(update.status.as_str())
                .bind(update.verified_at.map($crate::micros))
                .bind(update.last_error)
                .bind(Json(update.warnings))
                .bind($crate::micros(update.at))
                .bind(tenant.0)
                .execute(&self.pool)
                .await?;
                bump_data_version(&self.pool, tenant).await?;
                Ok(done.rows_affected() == 1)
            }

            async fn connected_tenants(&self) -> $crate::Result<Vec<TenantId>> {
                let ids: Vec<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM aws_connections ORDER BY tenant_id")
                    .fetch_all(&self.pool)
                    .await?;
                Ok(ids.into_iter().map(TenantId).collect())
            }

            async fn create_token(&self, token: NewToken) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO api_tokens (token_hash, user_id, tenant_id, created_at, expires_at, name) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&token.token_hash)
                .bind(token.user_id.0)
                .bind(token.tenant_id.map(|t| t.0))
                .bind($crate::micros(token.created_at))
                .bind($crate::micros(token.expires_at))
                .bind(&token.name)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn token(&self, token_hash: &str) -> $crate::Result<Option<TokenRecord>> {
                let sql = format!(
                    "SELECT {USER_COLUMNS}, k.tenant_id, k.name, k.expires_at, k.revoked_at FROM api_tokens k \
                     JOIN users u ON u.id = k.user_id WHERE k.token_hash = $1"
                );
                let row: Option<TokenRow> = sqlx::query_as(&sql).bind(token_hash).fetch_optional(&self.pool).await?;
                Ok(row.map(|r| TokenRecord {
                    user: r.user.into(),
                    tenant_id: r.tenant_id.map(TenantId),
                    name: r.name,
                    expires_at: r.expires_at,
                    revoked_at: r.revoked_at,
                }))
            }

            async fn tokens_of(&self, user: UserId, tenant: Option<TenantId>, now: DateTime<Utc>) -> $crate::Result<Vec<TokenSummary>> {
                let rows: Vec<(String, Option<Uuid>, Option<String>, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
                    "SELECT token_hash, tenant_id, name, created_at, expires_at FROM api_tokens \
                     WHERE user_id = $1 AND ($2 IS NULL OR tenant_id = $2 OR tenant_id IS NULL) \
                     AND revoked_at IS NULL AND expires_at > $3 ORDER BY created_at DESC, token_hash",
                )
                .bind(user.0)
                .bind(tenant.map(|t| t.0))
                .bind($crate::micros(now))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(token_hash, tenant_id, name, created_at, expires_at)| TokenSummary {
                        token_hash,
                        tenant_id: tenant_id.map(TenantId),
                        name,
                        created_at,
                        expires_at,
                    })
                    .collect())
            }

            async fn revoke_tokens_of(&self, user: UserId, tenant: Option<TenantId>, at: DateTime<Utc>) -> $crate::Result<u64> {
                let done = sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL \
                     AND ($3 IS NULL OR (tenant_id = $3 AND name IS NOT NULL))",
                )
                .bind($crate::micros(at))
                .bind(user.0)
                .bind(tenant.map(|t| t.0))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn revoke_token(&self, token_hash: &str, at: DateTime<Utc>) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
                )
                .bind($crate::micros(at))
                .bind(token_hash)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn record_audit(&self, entry: NewAuditEntry) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO audit_log (id, tenant_id, user_id, user_email, action, detail, at, status) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(Uuid::new_v4())
                .bind(entry.tenant_id.map(|t| t.0))
                .bind(entry.user_id.map(|u| u.0))
                .bind(entry.user_email)
                .bind(entry.action)
                .bind(Json(entry.detail))
                .bind($crate::micros(entry.at))
                .bind(entry.status.as_str())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn audit_page(
                &self,
                tenant: TenantId,
                filter: &AuditFilter,
                after: Option<AuditCursor>,
                limit: i64,
            ) -> $crate::Result<AuditPage> {
                let sql = format!(
                    "SELECT id, user_email, action, status, CAST(detail AS TEXT) AS detail, at FROM audit_log \
                     WHERE {AUDIT_FILTER} AND ($7 IS NULL OR at < $7 OR (at = $7 AND id < $8)) \
                     ORDER BY at DESC, id DESC LIMIT $9"
                );
                // One more than asked tells whether an older page exists.
                let rows: Vec<AuditRecordRow> = bind_audit_filter(sqlx::query_as(&sql), tenant, filter)
                    .bind(after.map(|c| $crate::micros(c.at)))
                    .bind(after.map(|c| c.id))
                    .bind(limit.saturating_add(1))
                    .fetch_all(&self.pool)
                    .await?;
                let mut entries = rows.into_iter().map(AuditRecord::try_from).collect::<$crate::Result<Vec<_>>>()?;
                let more = entries.len() as i64 > limit;
                entries.truncate(usize::try_from(limit).unwrap_or(0));
                let next = if more { entries.last().map(AuditRecord::position) } else { None };
                Ok(AuditPage { entries, next })
            }

            async fn audit_counts(&self, tenant: TenantId, filter: &AuditFilter) -> $crate::Result<AuditCounts> {
                let sql = format!("SELECT status, COUNT(*) FROM audit_log WHERE {AUDIT_FILTER} GROUP BY status");
                let rows: Vec<(String, i64)> = bind_audit_filter(sqlx::query_as(&sql), tenant, filter)
                    .fetch_all(&self.pool)
                    .await?;
                let mut counts = AuditCounts::default();
                for (status, count) in rows {
                    counts.add(audit_status(&status)?, count);
                }
                Ok(counts)
            }

            async fn upsert_instances(&self, tenant: TenantId, instances: &[Instance]) -> $crate::Result<u64> {
                let mut tx = self.pool.begin().await?;
                let written = upsert_instance_rows(&mut tx, tenant, instances).await?;
                bump_data_version(&mut *tx, tenant).await?;
                tx.commit().await?;
                Ok(written)
            }

            async fn sync_instances(
                &self,
                tenant: TenantId,
                account_id: &str,
                regions: &[String],
                instances: &[Instance],
            ) -> $crate::Result<u64> {
                let mut tx = self.pool.begin().await?;
                let written = upsert_instance_rows(&mut tx, tenant, instances).await?;
                let seen: std::collections::HashSet<(&str, &str)> =
                    instances.iter().map(|i| (i.region.as_str(), i.instance_id.as_str())).collect();
                for region in regions {
                    let known: Vec<String> = sqlx::query_scalar(
                        "SELECT instance_id FROM ec2_instances WHERE tenant_id = $1 AND account_id = $2 AND region = $3 \
                         AND state <> 'terminated'",
                    )
                    .bind(tenant.0)
                    .bind(account_id)
                    .bind(region)
                    .fetch_all(&mut *tx)
                    .await?;
                    for gone in known.iter().filter(|id| !seen.contains(&(region.as_str(), id.as_str()))) {
                        sqlx::query(
                            "UPDATE ec2_instances SET state = 'terminated' WHERE tenant_id = $1 AND account_id = $2 \
                             AND region = $3 AND instance_id = $4",
                        )
                        .bind(tenant.0)
                        .bind(account_id)
                        .bind(region)
                        .bind(gone)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                bump_data_version(&mut *tx, tenant).await?;
                tx.commit().await?;
                Ok(written)
            }

            async fn instances(&self, tenant: TenantId) -> $crate::Result<Vec<Instance>> {
                let rows: Vec<InstanceRow> = sqlx::query_as(
                    "SELECT account_id, region, instance_id, instance_type, state, launch_time, availability_zone, \
                     platform, tags, last_seen_at, volume_ids, state_since FROM ec2_instances WHERE tenant_id = $1 \
                     ORDER BY account_id, region, instance_id",
                )
                .bind(tenant.0)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Instance::from).collect())
            }

            async fn upsert_metric_points(&self, tenant: TenantId, points: &[MetricPoint]) -> $crate::Result<u64> {
                let mut tx = self.pool.begin().await?;
                let mut written = 0;
                let points = last_per_key(points, |p| (&p.instance_id, &p.metric, p.period_seconds, p.timestamp));
                for chunk in points.chunks(BATCH_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO metric_points (tenant_id, instance_id, metric, period_seconds, ts, average, \
                         maximum, unit) ",
                    );
                    q.push_values(chunk, |mut b, p| {
                        b.push_bind(tenant.0)
                            .push_bind(p.instance_id.clone())
                            .push_bind(p.metric.clone())
                            .push_bind(p.period_seconds)
                            .push_bind($crate::micros(p.timestamp))
                            .push_bind(p.average)
                            .push_bind(p.maximum)
                            .push_bind(p.unit.clone());
                    });
                    q.push(
                        " ON CONFLICT (tenant_id, instance_id, metric, period_seconds, ts) DO UPDATE SET \
                         average = excluded.average, maximum = excluded.maximum, unit = excluded.unit",
                    );
                    written += q.build().execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(written)
            }

            async fn metric_points(
                &self,
                tenant: TenantId,
                instance_id: &str,
                metric: &str,
                from: DateTime<Utc>,
                to: DateTime<Utc>,
            ) -> $crate::Result<Vec<MetricPoint>> {
                let rows: Vec<MetricRow> = sqlx::query_as(
                    "SELECT instance_id, metric, period_seconds, ts, average, maximum, unit FROM metric_points \
                     WHERE tenant_id = $1 AND instance_id = $2 AND metric = $3 AND ts >= $4 AND ts < $5 \
                     ORDER BY ts, period_seconds",
                )
                .bind(tenant.0)
                .bind(instance_id)
                .bind(metric)
                .bind($crate::micros(from))
                .bind($crate::micros(to))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(MetricPoint::from).collect())
            }

            async fn instances_missing_metric(&self, tenant: TenantId, metric: &str, since: DateTime<Utc>) -> $crate::Result<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT DISTINCT i.instance_id FROM ec2_instances i WHERE i.tenant_id = $1 AND i.state = 'running' \
                     AND NOT EXISTS (SELECT 1 FROM metric_points m WHERE m.tenant_id = i.tenant_id \
                       AND m.instance_id = i.instance_id AND m.metric = $2 AND m.ts >= $3) \
                     ORDER BY i.instance_id",
                )
                .bind(tenant.0)
                .bind(metric)
                .bind($crate::micros(since))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            async fn upsert_daily_costs(&self, tenant: TenantId, records: &[CostRecord]) -> $crate::Result<u64> {
                let mut tx = self.pool.begin().await?;
                <$db as BulkCostWrite>::lock_tenant_costs(&mut *tx, tenant).await?;
                let written = insert_costs(&mut tx, tenant, records, true).await?;
                let days = records.iter().map(|r| r.day).min().zip(records.iter().map(|r| r.day).max());
                settle_rollups(&mut tx, tenant, &written, days).await?;
                tx.commit().await?;
                Ok(written.rows)
            }

            async fn upsert_daily_costs_streamed(
                &self,
                tenant: TenantId,
                days: (NaiveDate, NaiveDate),
                mut batches: $crate::shared::CostBatches,
            ) -> $crate::Result<u64> {
                let mut tx = self.pool.begin().await?;
                <$db as BulkCostWrite>::lock_tenant_costs(&mut *tx, tenant).await?;
                let written = match <$db as BulkCostWrite>::stream_costs(&mut *tx, tenant, days, &mut batches).await? {
                    Some(written) => written,
                    None => {
                        let mut check = $crate::shared::StreamCheck::default();
                        let mut rows = 0;
                        while let Some(batch) = batches.recv().await {
                            let batch = check.batch(batch, days)?;
                            rows += insert_costs(&mut tx, tenant, &batch, false).await?.rows;
                        }
                        $crate::shared::CostsWritten { rows, rollups_written: false }
                    }
                };
                settle_rollups(&mut tx, tenant, &written, Some(days)).await?;
                tx.commit().await?;
                Ok(written.rows)
            }

            async fn replace_daily_costs(
                &self,
                tenant: TenantId,
                source: cloudspend_core::records::CostSource,
                from: NaiveDate,
                to: NaiveDate,
                records: &[CostRecord],
            ) -> $crate::Result<u64> {
                let mut tx = self.pool.begin().await?;
                <$db as BulkCostWrite>::lock_tenant_costs(&mut *tx, tenant).await?;
                sqlx::query("DELETE FROM daily_costs WHERE tenant_id = $1 AND source = $2 AND day >= $3 AND day < $4")
                    .bind(tenant.0)
                    .bind(source.as_str())
                    .bind(from)
                    .bind(to)
                    .execute(&mut *tx)
                    .await?;
                // The window's rollups are refreshed below whatever the write did.
                let written = insert_costs(&mut tx, tenant, records, false).await?.rows;
                // Records may fall outside the window they replace; cover both.
                let first = records.iter().map(|r| r.day).min().map_or(from, |d| d.min(from));
                let end = records
                    .iter()
                    .map(|r| r.day + chrono::Duration::days(1))
                    .max()
                    .map_or(to, |d| d.max(to));
                refresh_rollups(&mut tx, tenant, first, end).await?;
                tx.commit().await?;
                Ok(written)
            }

            async fn daily_costs(
                &self,
                tenant: TenantId,
                from: NaiveDate,
                to: NaiveDate,
            ) -> $crate::Result<Vec<CostRecord>> {
                let sql = format!(
                    "SELECT {COST_COLUMNS} FROM daily_costs WHERE tenant_id = $1 AND day >= $2 AND day < $3 \
                     ORDER BY day, source, account_id, service, region, usage_type, resource_id, line_item_type"
                );
                let rows: Vec<CostRow> =
                    sqlx::query_as(&sql).bind(tenant.0).bind(from).bind(to).fetch_all(&self.pool).await?;
                rows.into_iter().map(CostRecord::try_from).collect()
            }

            async fn cost_rollup_days(
                &self,
                tenant: TenantId,
                dimension: RollupDimension,
                from: NaiveDate,
                to: NaiveDate,
                keys: Option<&[String]>,
            ) -> $crate::Result<Vec<RollupDay>> {
                if keys.is_some_and(|k| k.is_empty()) {
                    return Ok(Vec::new());
                }
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT day, key, amount_nanos, estimated FROM cost_rollups WHERE tenant_id = ",
                );
                q.push_bind(tenant.0)
                    .push(" AND dimension = ")
                    .push_bind(dimension.as_str())
                    .push(" AND day >= ")
                    .push_bind(from)
                    .push(" AND day < ")
                    .push_bind(to);
                if let Some(keys) = keys {
                    q.push(" AND key IN (");
                    let mut list = q.separated(", ");
                    for key in keys {
                        list.push_bind(key.clone());
                    }
                    q.push(")");
                }
                q.push(" ORDER BY day, key");
                let rows: Vec<RollupDayRow> = q.build_query_as().fetch_all(&self.pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|r| RollupDay {
                        day: r.day,
                        key: r.key,
                        amount: Money::from_nanos(r.amount_nanos),
                        estimated: r.estimated,
                    })
                    .collect())
            }

            async fn cost_rollup_totals(
                &self,
                tenant: TenantId,
                dimension: RollupDimension,
                from: NaiveDate,
                to: NaiveDate,
            ) -> $crate::Result<Vec<RollupTotal>> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT key, CAST(SUM(amount_nanos) AS BIGINT) AS amount FROM cost_rollups \
                     WHERE tenant_id = $1 AND dimension = $2 AND day >= $3 AND day < $4 \
                     GROUP BY key ORDER BY amount DESC, key",
                )
                .bind(tenant.0)
                .bind(dimension.as_str())
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(key, nanos)| RollupTotal { key, amount: Money::from_nanos(nanos) })
                    .collect())
            }

            async fn cur_costs_by_resource(
                &self,
                tenant: TenantId,
                from: NaiveDate,
                to: NaiveDate,
            ) -> $crate::Result<Vec<RollupTotal>> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT resource_id, CAST(SUM(unblended_nanos) AS BIGINT) AS amount FROM daily_costs \
                     WHERE tenant_id = $1 AND day >= $2 AND day < $3 AND source = 'cur' AND resource_id <> '' \
                     GROUP BY resource_id ORDER BY amount DESC, resource_id",
                )
                .bind(tenant.0)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(key, nanos)| RollupTotal { key, amount: Money::from_nanos(nanos) })
                    .collect())
            }

            async fn upsert_resource_tags(
                &self,
                tenant: TenantId,
                tags: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
                at: DateTime<Utc>,
            ) -> $crate::Result<u64> {
                let mut tx = self.pool.begin().await?;
                let entries: Vec<_> = tags.iter().collect();
                let mut written = 0;
                for chunk in entries.chunks(BATCH_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO resource_tags (tenant_id, resource_id, tags, updated_at) ",
                    );
                    q.push_values(chunk, |mut b, (resource, tags)| {
                        b.push_bind(tenant.0)
                            .push_bind((*resource).clone())
                            .push_bind(Json((*tags).clone()))
                            .push_bind($crate::micros(at));
                    });
                    q.push(" ON CONFLICT (tenant_id, resource_id) DO UPDATE SET tags = excluded.tags, updated_at = excluded.updated_at");
                    written += q.build().execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(written)
            }

            async fn resource_tags(
                &self,
                tenant: TenantId,
            ) -> $crate::Result<std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>> {
                let rows: Vec<(String, Json<std::collections::BTreeMap<String, String>>)> =
                    sqlx::query_as("SELECT resource_id, tags FROM resource_tags WHERE tenant_id = $1")
                        .bind(tenant.0)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows.into_iter().map(|(id, tags)| (id, tags.0)).collect())
            }

            async fn sync_anomalies(
                &self,
                tenant: TenantId,
                detected: &[NewAnomaly],
                at: DateTime<Utc>,
            ) -> $crate::Result<Vec<StoredAnomaly>> {
                let at = $crate::micros(at);
                let mut tx = self.pool.begin().await?;
                let existing: Vec<(Uuid, String, NaiveDate, String)> = sqlx::query_as(
                    "SELECT id, series, first_day, status FROM anomalies WHERE tenant_id = $1",
                )
                .bind(tenant.0)
                .fetch_all(&mut *tx)
                .await?;
                let known: std::collections::HashMap<(String, NaiveDate), Uuid> = existing
                    .iter()
                    .map(|(id, series, day, _)| ((series.clone(), *day), *id))
                    .collect();
                let detected = last_per_key(detected, |a| (&a.series, a.first_day));
                let wanted: std::collections::HashSet<(&str, NaiveDate)> =
                    detected.iter().map(|a| (a.series.as_str(), a.first_day)).collect();
                for (id, series, day, status) in &existing {
                    if status == "open" && !wanted.contains(&(series.as_str(), *day)) {
                        sqlx::query("DELETE FROM anomalies WHERE tenant_id = $1 AND id = $2")
                            .bind(tenant.0)
                            .bind(*id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                let mut created = Vec::new();
                for a in detected {
                    let id = known.get(&(a.series.clone(), a.first_day)).copied();
                    let is_new = id.is_none();
                    let id = id.unwrap_or_else(Uuid::new_v4);
                    sqlx::query(
                        "INSERT INTO anomalies (tenant_id, id, series, first_day, last_day, expected_nanos, lower_nanos, \
                         upper_nanos, actual_nanos, impact_nanos, impact_percent, score, severity, root_causes, status, \
                         created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'open', $15, $15) \
                         ON CONFLICT (tenant_id, id) DO UPDATE SET last_day = excluded.last_day, \
                         expected_nanos = excluded.expected_nanos, lower_nanos = excluded.lower_nanos, \
                         upper_nanos = excluded.upper_nanos, actual_nanos = excluded.actual_nanos, \
                         impact_nanos = excluded.impact_nanos, impact_percent = excluded.impact_percent, \
                         score = excluded.score, severity = excluded.severity, root_causes = excluded.root_causes, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(tenant.0)
                    .bind(id)
                    .bind(&a.series)
                    .bind(a.first_day)
                    .bind(a.last_day)
                    .bind(a.expected.nanos())
                    .bind(a.lower.nanos())
                    .bind(a.upper.nanos())
                    .bind(a.actual.nanos())
                    .bind(a.impact.nanos())
                    .bind(a.impact_percent)
                    .bind(a.score)
                    .bind(&a.severity)
                    .bind(Json(&a.root_causes))
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                    if is_new {
                        created.push(StoredAnomaly {
                            id: cloudspend_core::AnomalyId(id),
                            detection: a.clone(),
                            status: AnomalyStatus::Open,
                            created_at: at,
                            updated_at: at,
                        });
                    }
                }
                bump_data_version(&mut *tx, tenant).await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn anomalies(&self, tenant: TenantId, filter: &AnomalyFilter) -> $crate::Result<Vec<StoredAnomaly>> {
                let mut q = sqlx::QueryBuilder::<$db>::new(format!("SELECT {ANOMALY_COLUMNS} FROM anomalies WHERE tenant_id = "));
                q.push_bind(tenant.0);
                if let Some(status) = filter.status {
                    q.push(" AND status = ").push_bind(status.as_str());
                }
                if let Some(from) = filter.from {
                    q.push(" AND last_day >= ").push_bind(from);
                }
                if let Some(to) = filter.to {
                    q.push(" AND first_day < ").push_bind(to);
                }
                q.push(" ORDER BY first_day DESC, impact_nanos DESC, id LIMIT ").push_bind(filter.limit.max(0));
                let rows: Vec<AnomalyRow> = q.build_query_as().fetch_all(&self.pool).await?;
                rows.into_iter().map(StoredAnomaly::try_from).collect()
            }

            async fn anomaly(&self, tenant: TenantId, id: cloudspend_core::AnomalyId) -> $crate::Result<Option<StoredAnomaly>> {
                let sql = format!("SELECT {ANOMALY_COLUMNS} FROM anomalies WHERE tenant_id = $1 AND id = $2");
                let row: Option<AnomalyRow> = sqlx::query_as(&sql).bind(tenant.0).bind(id.0).fetch_optional(&self.pool).await?;
                row.map(StoredAnomaly::try_from).transpose()
            }

            async fn count_anomalies(&self, tenant: TenantId, status: AnomalyStatus) -> $crate::Result<i64> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM anomalies WHERE tenant_id = $1 AND status = $2")
                    .bind(tenant.0)
                    .bind(status.as_str())
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n)
            }

            async fn set_anomaly_status(
                &self,
                tenant: TenantId,
                id: cloudspend_core::AnomalyId,
                status: AnomalyStatus,
                at: DateTime<Utc>,
            ) -> $crate::Result<Option<StoredAnomaly>> {
                let done = sqlx::query("UPDATE anomalies SET status = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4")
                    .bind(status.as_str())
                    .bind($crate::micros(at))
                    .bind(tenant.0)
                    .bind(id.0)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                bump_data_version(&self.pool, tenant).await?;
                self.anomaly(tenant, id).await
            }

            async fn replace_recommendations(&self, tenant: TenantId, recommendations: &[Recommendation]) -> $crate::Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM recommendations WHERE tenant_id = $1").bind(tenant.0).execute(&mut *tx).await?;
                let recommendations = last_per_key(recommendations, |r| (&r.kind, &r.resource_id));
                for chunk in recommendations.chunks(BATCH_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO recommendations (tenant_id, kind, resource_id, savings_nanos, detail, computed_at) ",
                    );
                    q.push_values(chunk, |mut b, r| {
                        b.push_bind(tenant.0)
                            .push_bind(r.kind.clone())
                            .push_bind(r.resource_id.clone())
                            .push_bind(r.monthly_savings.nanos())
                            .push_bind(Json(r.detail.clone()))
                            .push_bind($crate::micros(r.computed_at));
                    });
                    q.build().execute(&mut *tx).await?;
                }
                bump_data_version(&mut *tx, tenant).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn recommendations(&self, tenant: TenantId) -> $crate::Result<Vec<Recommendation>> {
                let rows: Vec<RecommendationRow> = sqlx::query_as(
                    "SELECT kind, resource_id, savings_nanos, detail, computed_at FROM recommendations \
                     WHERE tenant_id = $1 ORDER BY savings_nanos DESC, kind, resource_id",
                )
                .bind(tenant.0)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Recommendation::from).collect())
            }

            async fn create_subscription(
                &self,
                tenant: TenantId,
                n: NewSubscription,
                max_per_tenant: usize,
            ) -> $crate::Result<Subscription> {
                let id = Uuid::new_v4();
                let created_at = $crate::micros(n.created_at);
                let mut tx = self.pool.begin().await?;
                lock_tenant(&mut tx, tenant).await?;
                let (existing,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM alert_subscriptions WHERE tenant_id = $1")
                    .bind(tenant.0)
                    .fetch_one(&mut *tx)
                    .await?;
                if usize::try_from(existing).unwrap_or(usize::MAX) >= max_per_tenant {
                    return Err($crate::StoreError::LimitReached { what: "alert subscriptions", limit: max_per_tenant });
                }
                sqlx::query(
                    "INSERT INTO alert_subscriptions (tenant_id, id, name, channel, target, threshold_kind, threshold, \
                     frequency, secret_ciphertext, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(&n.name)
                .bind(&n.channel)
                .bind(&n.target)
                .bind(&n.threshold_kind)
                .bind(&n.threshold)
                .bind(&n.frequency)
                .bind(&n.secret_ciphertext)
                .bind(n.created_by.map(|u| u.0))
                .bind(created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Subscription {
                    id,
                    name: n.name,
                    channel: n.channel,
                    target: n.target,
                    threshold_kind: n.threshold_kind,
                    threshold: n.threshold,
                    frequency: n.frequency,
                    secret_ciphertext: n.secret_ciphertext,
                    created_at,
                    last_digest_at: None,
                })
            }

            async fn subscriptions(&self, tenant: TenantId) -> $crate::Result<Vec<Subscription>> {
                let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM alert_subscriptions WHERE tenant_id = $1 ORDER BY created_at, id");
                let rows: Vec<SubscriptionRow> = sqlx::query_as(&sql).bind(tenant.0).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Subscription::from).collect())
            }

            async fn delete_subscription(&self, tenant: TenantId, id: Uuid) -> $crate::Result<bool> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM alert_deliveries WHERE tenant_id = $1 AND subscription_id = $2")
                    .bind(tenant.0)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query("DELETE FROM alert_subscriptions WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_digest_sent(&self, tenant: TenantId, id: Uuid, at: DateTime<Utc>) -> $crate::Result<()> {
                sqlx::query("UPDATE alert_subscriptions SET last_digest_at = $1 WHERE tenant_id = $2 AND id = $3")
                    .bind($crate::micros(at))
                    .bind(tenant.0)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn enqueue_deliveries(&self, tenant: TenantId, deliveries: &[NewDelivery]) -> $crate::Result<u64> {
                let mut tx = self.pool.begin().await?;
                let mut created = 0;
                for d in deliveries {
                    let at = $crate::micros(d.next_attempt_at);
                    let done = sqlx::query(
                        "INSERT INTO alert_deliveries (tenant_id, id, subscription_id, kind, subject_key, payload, status, \
                         attempts, next_attempt_at, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7) \
                         ON CONFLICT (tenant_id, subscription_id, subject_key) DO NOTHING",
                    )
                    .bind(tenant.0)
                    .bind(Uuid::new_v4())
                    .bind(d.subscription_id)
                    .bind(&d.kind)
                    .bind(&d.subject_key)
                    .bind(Json(&d.payload))
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                    created += done.rows_affected();
                }
                tx.commit().await?;
                Ok(created)
            }

            async fn claim_due_deliveries(
                &self,
                claimer: &str,
                now: DateTime<Utc>,
                claim_until: DateTime<Utc>,
                limit: i64,
                per_tenant: i64,
            ) -> $crate::Result<Vec<Delivery>> {
                // The outer `next_attempt_at <= now` is re-checked by PostgreSQL on a row another
                // transaction just claimed, so a row is never claimed twice. Each tenant's due
                // deliveries are numbered oldest first (its turns), and the claims it already has
                // in flight (claimed, unexpired) count against `per_tenant`.
                let sql = format!(
                    "UPDATE alert_deliveries SET next_attempt_at = $1, attempts = attempts + 1, claimed_by = $2 \
                     WHERE status = 'pending' AND next_attempt_at <= $3 AND (tenant_id, id) IN ( \
                       SELECT tenant_id, id FROM ( \
                         SELECT tenant_id, id, next_attempt_at, \
                           ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY next_attempt_at, id) AS turn \
                         FROM alert_deliveries WHERE status = 'pending' AND next_attempt_at <= $3) due \
                       LEFT JOIN ( \
                         SELECT tenant_id AS sending_tenant, COUNT(*) AS sending FROM alert_deliveries \
                         WHERE status = 'pending' AND claimed_by IS NOT NULL AND next_attempt_at > $3 \
                         GROUP BY tenant_id) claimed ON claimed.sending_tenant = due.tenant_id \
                       WHERE turn + COALESCE(sending, 0) <= $5 \
                       ORDER BY turn, next_attempt_at, id LIMIT $4) \
                     RETURNING {DELIVERY_COLUMNS}"
                );
                let rows: Vec<DeliveryRow> = sqlx::query_as(&sql)
                    .bind($crate::micros(claim_until))
                    .bind(claimer)
                    .bind($crate::micros(now))
                    .bind(limit)
                    .bind(per_tenant)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(Delivery::try_from).collect()
            }

            async fn extend_delivery_claim(
                &self,
                tenant: TenantId,
                id: Uuid,
                claimer: &str,
                until: DateTime<Utc>,
            ) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "UPDATE alert_deliveries \
                     SET next_attempt_at = CASE WHEN next_attempt_at < $1 THEN $1 ELSE next_attempt_at END \
                     WHERE tenant_id = $2 AND id = $3 AND claimed_by = $4 AND status = 'pending'",
                )
                .bind($crate::micros(until))
                .bind(tenant.0)
                .bind(id)
                .bind(claimer)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn finish_delivery(
                &self,
                tenant: TenantId,
                id: Uuid,
                claimer: &str,
                o: DeliveryOutcome,
            ) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "UPDATE alert_deliveries SET status = $1, next_attempt_at = $2, response_code = $3, last_error = $4, \
                     updated_at = $5, claimed_by = NULL \
                     WHERE tenant_id = $6 AND id = $7 AND claimed_by = $8 AND status = 'pending'",
                )
                .bind(o.status.as_str())
                .bind($crate::micros(o.next_attempt_at))
                .bind(o.response_code)
                .bind(o.last_error)
                .bind($crate::micros(o.at))
                .bind(tenant.0)
                .bind(id)
                .bind(claimer)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn deliveries(&self, tenant: TenantId, limit: i64) -> $crate::Result<Vec<Delivery>> {
                let sql = format!(
                    "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries WHERE tenant_id = $1 \
                     ORDER BY updated_at DESC, id LIMIT $2"
                );
                let rows: Vec<DeliveryRow> = sqlx::query_as(&sql).bind(tenant.0).bind(limit).fetch_all(&self.pool).await?;
                rows.into_iter().map(Delivery::try_from).collect()
            }

            async fn collector_health(&self, tenant: TenantId) -> $crate::Result<Vec<CollectorHealth>> {
                let sql = format!(
                    "SELECT {RUN_COLUMNS} FROM collection_runs r WHERE tenant_id = $1 AND started_at = ( \
                       SELECT MAX(started_at) FROM collection_runs l WHERE l.tenant_id = r.tenant_id \
                       AND l.collector = r.collector) ORDER BY collector, id"
                );
                let latest: Vec<RunRow> = sqlx::query_as(&sql).bind(tenant.0).fetch_all(&self.pool).await?;
                let successes: Vec<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
                    "SELECT collector, MAX(finished_at) FROM collection_runs WHERE tenant_id = $1 \
                     AND status = 'succeeded' GROUP BY collector",
                )
                .bind(tenant.0)
                .fetch_all(&self.pool)
                .await?;
                let successes: std::collections::HashMap<String, Option<DateTime<Utc>>> = successes.into_iter().collect();
                let mut out: Vec<CollectorHealth> = Vec::new();
                for row in latest {
                    let run = CollectionRun::try_from(row)?;
                    if out.last().is_some_and(|h| h.collector == run.collector) {
                        continue;
                    }
                    out.push(CollectorHealth {
                        collector: run.collector.clone(),
                        last_success_at: successes.get(&run.collector).copied().flatten(),
                        last_run: run,
                    });
                }
                Ok(out)
            }

            async fn aws_usage_since(&self, tenant: TenantId, since: DateTime<Utc>) -> $crate::Result<AwsUsage> {
                // Collections' requests and the diagnostics' (see `crate::diagnostics`).
                let (requests, ce_requests): (i64, i64) = sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(aws_requests), 0) AS BIGINT), CAST(COALESCE(SUM(ce_requests), 0) AS BIGINT) \
                     FROM (SELECT aws_requests, ce_requests FROM collection_runs WHERE tenant_id = $1 AND started_at >= $2 \
                           UNION ALL \
                           SELECT aws_requests, ce_requests FROM diagnostic_calls WHERE tenant_id = $1 AND called_at >= $2) AS calls",
                )
                .bind(tenant.0)
                .bind($crate::micros(since))
                .fetch_one(&self.pool)
                .await?;
                Ok(AwsUsage { requests, ce_requests })
            }

            async fn instance_counts(&self, tenant: TenantId) -> $crate::Result<Vec<InstanceCount>> {
                let rows: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT state, instance_type, COUNT(*) FROM ec2_instances WHERE tenant_id = $1 \
                     GROUP BY state, instance_type ORDER BY state, instance_type",
                )
                .bind(tenant.0)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(state, instance_type, count)| InstanceCount { state, instance_type, count })
                    .collect())
            }

            async fn start_run(&self, run: NewRun) -> $crate::Result<RunId> {
                let id = RunId::new();
                sqlx::query(
                    "INSERT INTO collection_runs (tenant_id, id, collector, window_start, window_end, started_at, status) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'running')",
                )
                .bind(run.tenant_id.0)
                .bind(id.0)
                .bind(run.collector)
                .bind($crate::micros(run.window_start))
                .bind($crate::micros(run.window_end))
                .bind($crate::micros(run.started_at))
                .execute(&self.pool)
                .await?;
                bump_data_version(&self.pool, run.tenant_id).await?;
                Ok(id)
            }

            async fn finish_run(&self, tenant: TenantId, id: RunId, outcome: RunOutcome) -> $crate::Result<()> {
                let done = sqlx::query(
                    "UPDATE collection_runs SET status = $1, finished_at = $2, rows_written = $3, aws_requests = $4, \
                     ce_requests = $5, retries = $6, error = $7 WHERE tenant_id = $8 AND id = $9",
                )
                .bind(outcome.status.as_str())
                .bind($crate::micros(outcome.finished_at))
                .bind(outcome.rows_written)
                .bind(outcome.aws_requests)
                .bind(outcome.ce_requests)
                .bind(outcome.retries)
                .bind(outcome.error)
                .bind(tenant.0)
                .bind(id.0)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound { what: "collection run" });
                }
                bump_data_version(&self.pool, tenant).await?;
                Ok(())
            }

            async fn abandon_running_runs(&self, tenant: TenantId, collector: &str, at: DateTime<Utc>) -> $crate::Result<u64> {
                let done = sqlx::query(
                    "UPDATE collection_runs SET status = 'failed', finished_at = $1, \
                     error = 'abandoned: the replica running it stopped before it finished; the job was run again' \
                     WHERE tenant_id = $2 AND collector = $3 AND status = 'running'",
                )
                .bind($crate::micros(at))
                .bind(tenant.0)
                .bind(collector)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() > 0 {
                    bump_data_version(&self.pool, tenant).await?;
                }
                Ok(done.rows_affected())
            }

            async fn runs(&self, tenant: TenantId, limit: i64) -> $crate::Result<Vec<CollectionRun>> {
                let sql = format!(
                    "SELECT {RUN_COLUMNS} FROM collection_runs WHERE tenant_id = $1 \
                     ORDER BY started_at DESC, id LIMIT $2"
                );
                let rows: Vec<RunRow> = sqlx::query_as(&sql).bind(tenant.0).bind(limit).fetch_all(&self.pool).await?;
                rows.into_iter().map(CollectionRun::try_from).collect()
            }

            async fn ensure_job(&self, job: NewJob) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO collection_jobs (tenant_id, collector, interval_seconds, next_run_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, collector) DO NOTHING",
                )
                .bind(job.tenant_id.0)
                .bind(job.collector)
                .bind(job.interval_seconds)
                .bind($crate::micros(job.next_run_at))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn run_job_now(&self, tenant: TenantId, collector: &str, now: DateTime<Utc>) -> $crate::Result<bool> {
                let done = sqlx::query(
                    // Not running: make it due now. Running (an unexpired lease): mark it to run
                    // again once this run ends, and due now in case the runner dies.
                    "UPDATE collection_jobs SET \
                     rerun_requested = CASE WHEN leased_until IS NOT NULL AND leased_until >= $1 \
                                            THEN TRUE ELSE rerun_requested END, \
                     next_run_at = CASE WHEN next_run_at > $1 OR (leased_until IS NOT NULL AND leased_until >= $1) \
                                        THEN $1 ELSE next_run_at END \
                     WHERE tenant_id = $2 AND collector = $3",
                )
                .bind($crate::micros(now))
                .bind(tenant.0)
                .bind(collector)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn lease_due_jobs(
                &self,
                owner: &str,
                now: DateTime<Utc>,
                lease: std::time::Duration,
                limit: i64,
            ) -> $crate::Result<Vec<Job>> {
                let lease = chrono::Duration::from_std(lease)
                    .map_err(|e| $crate::StoreError::Corrupt(format!("lease duration: {e}")))?;
                let rows: Vec<JobRow> = sqlx::query_as($lease_sql)
                    .bind(owner)
                    .bind($crate::micros(now + lease))
                    .bind($crate::micros(now))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                let mut jobs: Vec<Job> = rows.into_iter().map(Job::from).collect();
                jobs.sort_by(|a, b| (a.next_run_at, a.tenant_id, &a.collector).cmp(&(b.next_run_at, b.tenant_id, &b.collector)));
                Ok(jobs)
            }

            async fn complete_job(
                &self,
                tenant: TenantId,
                collector: &str,
                owner: &str,
                next_run_at: DateTime<Utc>,
            ) -> $crate::Result<bool> {
                let done = sqlx::query(
                    // A refresh requested during the run keeps the job due (its next_run_at is
                    // the request time); otherwise the job waits its interval.
                    "UPDATE collection_jobs SET \
                     next_run_at = CASE WHEN rerun_requested THEN next_run_at ELSE $1 END, \
                     rerun_requested = FALSE, leased_until = NULL, lease_owner = NULL \
                     WHERE tenant_id = $2 AND collector = $3 AND lease_owner = $4",
                )
                .bind($crate::micros(next_run_at))
                .bind(tenant.0)
                .bind(collector)
                .bind(owner)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_jobs(&self, tenant: TenantId) -> $crate::Result<u64> {
                let done = sqlx::query("DELETE FROM collection_jobs WHERE tenant_id = $1").bind(tenant.0).execute(&self.pool).await?;
                Ok(done.rows_affected())
            }

            async fn jobs(&self, tenant: TenantId) -> $crate::Result<Vec<Job>> {
                let sql = format!("SELECT {JOB_COLUMNS} FROM collection_jobs WHERE tenant_id = $1 ORDER BY collector");
                let rows: Vec<JobRow> = sqlx::query_as(&sql).bind(tenant.0).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Job::from).collect())
            }

            // --- actions, budgets, alarms (issue 9) ---

            async fn create_action_token(&self, tenant: TenantId, t: NewActionToken) -> $crate::Result<()> {
                let sql = format!("INSERT INTO action_tokens ({ACTION_TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9)");
                sqlx::query(&sql)
                    .bind(tenant.0)
                    .bind(&t.token_hash)
                    .bind(t.user_id.0)
                    .bind(&t.instance_id)
                    .bind(&t.region)
                    .bind(&t.action)
                    .bind($crate::micros(t.created_at))
                    .bind($crate::micros(t.expires_at))
                    .bind(Json(&t.detail))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        if unique_violation_is(&e) { $crate::StoreError::Conflict { field: "token" } } else { e.into() }
                    })?;
                Ok(())
            }

            async fn action_token(&self, token_hash: &str) -> $crate::Result<Option<ActionToken>> {
                let sql = format!("SELECT {ACTION_TOKEN_COLUMNS} FROM action_tokens WHERE token_hash = $1");
                let row: Option<ActionTokenRow> = sqlx::query_as(&sql).bind(token_hash).fetch_optional(&self.pool).await?;
                Ok(row.map(ActionToken::from))
            }

            async fn use_action_token(&self, tenant: TenantId, token_hash: &str, now: DateTime<Utc>) -> $crate::Result<bool> {
                let now = $crate::micros(now);
                let done = sqlx::query(
                    "UPDATE action_tokens SET used_at = $1 \
                     WHERE tenant_id = $2 AND token_hash = $3 AND used_at IS NULL AND expires_at > $1",
                )
                .bind(now)
                .bind(tenant.0)
                .bind(token_hash)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn purge_audit(&self, before: DateTime<Utc>) -> $crate::Result<u64> {
                let before = $crate::micros(before);
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("DELETE FROM audit_log WHERE at < $1").bind(before).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM action_tokens WHERE expires_at < $1").bind(before).execute(&mut *tx).await?;
                // Used, revoked or not, an invitation or reset token that long expired opens
                // nothing; the audit log keeps who invited or reset whom for as long as it lasts.
                sqlx::query("DELETE FROM invitations WHERE expires_at < $1").bind(before).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM password_resets WHERE expires_at < $1").bind(before).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }

            async fn put_budget(&self, tenant: TenantId, b: &Budget) -> $crate::Result<()> {
                let sql = format!(
                    "INSERT INTO budgets (tenant_id, {BUDGET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (tenant_id) DO UPDATE SET amount_nanos = excluded.amount_nanos, \
                     currency = excluded.currency, actual_thresholds = excluded.actual_thresholds, \
                     forecast_thresholds = excluded.forecast_thresholds, updated_by = excluded.updated_by, \
                     updated_at = excluded.updated_at"
                );
                sqlx::query(&sql)
                    .bind(tenant.0)
                    .bind(b.amount.nanos())
                    .bind(&b.currency)
                    .bind(Json(&b.actual_thresholds))
                    .bind(Json(&b.forecast_thresholds))
                    .bind(Json(&b.alerted))
                    .bind(b.updated_by.map(|u| u.0))
                    .bind($crate::micros(b.updated_at))
                    .execute(&self.pool)
                    .await?;
                bump_data_version(&self.pool, tenant).await?;
                Ok(())
            }

            async fn budget(&self, tenant: TenantId) -> $crate::Result<Option<Budget>> {
                let sql = format!("SELECT {BUDGET_COLUMNS} FROM budgets WHERE tenant_id = $1");
                let row: Option<BudgetRow> = sqlx::query_as(&sql).bind(tenant.0).fetch_optional(&self.pool).await?;
                Ok(row.map(Budget::from))
            }

            async fn delete_budget(&self, tenant: TenantId) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM budgets WHERE tenant_id = $1").bind(tenant.0).execute(&self.pool).await?;
                bump_data_version(&self.pool, tenant).await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_budget_alerted(&self, tenant: TenantId, alerted: &BudgetAlerted) -> $crate::Result<()> {
                sqlx::query("UPDATE budgets SET alerted = $1 WHERE tenant_id = $2")
                    .bind(Json(alerted))
                    .bind(tenant.0)
                    .execute(&self.pool)
                    .await?;
                // The dashboard shows which thresholds have been crossed.
                bump_data_version(&self.pool, tenant).await?;
                Ok(())
            }
        }

        async fn insert_user(tx: &mut sqlx::Transaction<'_, $db>, user: &NewUser) -> $crate::Result<User> {
            let row = UserRow {
                id: Uuid::new_v4(),
                email: user.email.clone(),
                is_global_owner: user.is_global_owner,
                created_at: $crate::micros(Utc::now()),
            };
            sqlx::query(
                "INSERT INTO users (id, email, password_hash, is_global_owner, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(row.id)
            .bind(&row.email)
            .bind(&user.password_hash)
            .bind(row.is_global_owner)
            .bind(row.created_at)
            .execute(&mut **tx)
            .await
            .map_err(|e| {
                if unique_violation_is(&e) { $crate::StoreError::Conflict { field: "email" } } else { e.into() }
            })?;
            Ok(row.into())
        }

        async fn insert_tenant(
            tx: &mut sqlx::Transaction<'_, $db>,
            name: &str,
            owner: UserId,
        ) -> $crate::Result<Tenant> {
            let row = TenantRow {
                id: Uuid::new_v4(),
                name: name.to_string(),
                external_id: new_external_id(),
                created_at: $crate::micros(Utc::now()),
                data_version: 0,
            };
            sqlx::query("INSERT INTO tenants (id, name, external_id, created_at) VALUES ($1, $2, $3, $4)")
                .bind(row.id)
                .bind(&row.name)
                .bind(&row.external_id)
                .bind(row.created_at)
                .execute(&mut **tx)
                .await?;
            sqlx::query("INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)")
                .bind(row.id)
                .bind(owner.0)
                .bind(row.created_at)
                .execute(&mut **tx)
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(ref db) if db.is_foreign_key_violation() => {
                        $crate::StoreError::NotFound { what: "user" }
                    }
                    other => other.into(),
                })?;
            Ok(row.into())
        }

        /// Makes transactions that count a tenant's rows and then change them take turns. Two
        /// owners demoting each other at once would each count two owners and both go through,
        /// leaving none; two subscriptions created at once would each count under the
        /// per-tenant limit. A write to the tenant's row (a row lock on PostgreSQL; on SQLite the
        /// database's write lock, taken before any read so the transaction never has to
        /// upgrade) makes the second wait, then count again. Called first in such a transaction.
        async fn lock_tenant(
            tx: &mut sqlx::Transaction<'_, $db>,
            tenant: TenantId,
        ) -> $crate::Result<()> {
            sqlx::query("UPDATE tenants SET name = name WHERE id = $1")
                .bind(tenant.0)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// Sets the password, revokes every token of the user but `keep`, and spends their
        /// unused reset tokens; returns how many tokens were revoked.
        async fn set_password_and_revoke(
            tx: &mut sqlx::Transaction<'_, $db>,
            user: UserId,
            password_hash: &str,
            keep: Option<&str>,
            at: DateTime<Utc>,
        ) -> $crate::Result<u64> {
            let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(password_hash)
                .bind(user.0)
                .execute(&mut **tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err($crate::StoreError::NotFound { what: "user" });
            }
            let revoked = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL \
                 AND ($3 IS NULL OR token_hash <> $3)",
            )
            .bind(at)
            .bind(user.0)
            .bind(keep)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            sqlx::query("UPDATE password_resets SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
                .bind(at)
                .bind(user.0)
                .execute(&mut **tx)
                .await?;
            Ok(revoked)
        }

        async fn refuse_if_last_owner(
            tx: &mut sqlx::Transaction<'_, $db>,
            tenant: TenantId,
            user: UserId,
        ) -> $crate::Result<()> {
            let (is_owner, owners): (i64, i64) = sqlx::query_as(
                "SELECT \
                   COALESCE(SUM(CASE WHEN user_id = $2 THEN 1 ELSE 0 END), 0), \
                   COUNT(*) \
                 FROM memberships WHERE tenant_id = $1 AND role = 'owner'",
            )
            .bind(tenant.0)
            .bind(user.0)
            .fetch_one(&mut **tx)
            .await?;
            if is_owner > 0 && owners <= 1 {
                return Err($crate::StoreError::LastOwner);
            }
            Ok(())
        }

        async fn upsert_instance_rows(
            tx: &mut sqlx::Transaction<'_, $db>,
            tenant: TenantId,
            instances: &[Instance],
        ) -> $crate::Result<u64> {
            let mut written = 0;
            let instances = last_per_key(instances, |i| (&i.account_id, &i.region, &i.instance_id));
            for chunk in instances.chunks(BATCH_ROWS) {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO ec2_instances (tenant_id, account_id, region, instance_id, instance_type, state, \
                     launch_time, availability_zone, platform, tags, last_seen_at, volume_ids, state_since) ",
                );
                q.push_values(chunk, |mut b, i| {
                    b.push_bind(tenant.0)
                        .push_bind(i.account_id.clone())
                        .push_bind(i.region.clone())
                        .push_bind(i.instance_id.clone())
                        .push_bind(i.instance_type.clone())
                        .push_bind(i.state.clone())
                        .push_bind(i.launch_time.map($crate::micros))
                        .push_bind(i.availability_zone.clone())
                        .push_bind(i.platform.clone())
                        .push_bind(Json(i.tags.clone()))
                        .push_bind($crate::micros(i.last_seen_at))
                        .push_bind(Json(i.volume_ids.clone()))
                        .push_bind(i.state_since.map($crate::micros));
                });
                q.push(
                    " ON CONFLICT (tenant_id, account_id, region, instance_id) DO UPDATE SET \
                     instance_type = excluded.instance_type, state = excluded.state, \
                     launch_time = excluded.launch_time, availability_zone = excluded.availability_zone, \
                     platform = excluded.platform, tags = excluded.tags, last_seen_at = excluded.last_seen_at, \
                     volume_ids = excluded.volume_ids, state_since = excluded.state_since",
                );
                written += q.build().execute(&mut **tx).await?.rows_affected();
            }
            Ok(written)
        }

        async fn refresh_rollups(
            tx: &mut sqlx::Transaction<'_, $db>,
            tenant: TenantId,
            from: NaiveDate,
            to: NaiveDate,
        ) -> $crate::Result<()> {
            sqlx::query(
                "DELETE FROM cost_rollups WHERE tenant_id = $1 \
                 AND dimension IN ('total', 'service', 'account', 'region') AND day >= $2 AND day < $3",
            )
                .bind(tenant.0)
                .bind(from)
                .bind(to)
                .execute(&mut **tx)
                .await?;
            sqlx::query(REFRESH_ROLLUPS).bind(tenant.0).bind(from).bind(to).execute(&mut **tx).await?;
            bump_data_version(&mut **tx, tenant).await
        }

        /// See `tenants.data_version`: called inside the writing transaction, or after a
        /// single-statement write has committed, never before.
        async fn bump_data_version<'e, E>(executor: E, tenant: TenantId) -> $crate::Result<()>
        where
            E: sqlx::Executor<'e, Database = $db>,
        {
            sqlx::query("UPDATE tenants SET data_version = data_version + 1 WHERE id = $1")
                .bind(tenant.0)
                .execute(executor)
                .await?;
            Ok(())
        }

        /// After an upsert on days `first..=last`: rollups the write left to SQL are refreshed,
        /// those it wrote itself ([`BulkCostWrite`]) only move the data version. Nothing new or
        /// changed: the rollups and the dashboard still hold, so neither is touched.
        async fn settle_rollups(
            tx: &mut sqlx::Transaction<'_, $db>,
            tenant: TenantId,
            written: &$crate::shared::CostsWritten,
            days: Option<(NaiveDate, NaiveDate)>,
        ) -> $crate::Result<()> {
            if written.rollups_written {
                bump_data_version(&mut **tx, tenant).await?;
            } else if written.rows > 0
                && let Some((first, last)) = days
            {
                refresh_rollups(tx, tenant, first, last + chrono::Duration::days(1)).await?;
            }
            Ok(())
        }

        /// Upserts `records`; with `rollups`, a bulk write into empty days also writes their
        /// rollups (see [`BulkCostWrite`]).
        async fn insert_costs(
            tx: &mut sqlx::Transaction<'_, $db>,
            tenant: TenantId,
            records: &[CostRecord],
            rollups: bool,
        ) -> $crate::Result<$crate::shared::CostsWritten> {
            let mut written = 0;
            // Imports hand over rows already unique and in key order: skip the sort for them.
            let records: Vec<&CostRecord> = if records.windows(2).all(|w| w[0].natural_key() < w[1].natural_key()) {
                records.iter().collect()
            } else {
                last_per_key(records, CostRecord::natural_key)
            };
            if let Some(written) = <$db as BulkCostWrite>::bulk_upsert_costs(&mut **tx, tenant, &records, rollups).await? {
                return Ok(written);
            }
            for chunk in records.chunks(BATCH_ROWS) {
                let mut q = sqlx::QueryBuilder::<$db>::new(format!("INSERT INTO daily_costs (tenant_id, {COST_COLUMNS}) "));
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(tenant.0)
                        .push_bind(r.day)
                        .push_bind(r.source.as_str())
                        .push_bind(r.account_id.clone())
                        .push_bind(r.service.clone())
                        .push_bind(r.region.clone())
                        .push_bind(r.usage_type.clone())
                        .push_bind(r.resource_id.clone())
                        .push_bind(r.line_item_type.clone())
                        .push_bind(r.unblended.nanos())
                        .push_bind(r.amortized.nanos())
                        .push_bind(r.usage_amount.clone())
                        .push_bind(r.currency.clone())
                        .push_bind(r.estimated);
                });
                q.push(COST_ON_CONFLICT);
                written += q.build().execute(&mut **tx).await?.rows_affected();
            }
            Ok($crate::shared::CostsWritten { rows: written, rollups_written: false })
        }
      }
    };
}

pub(crate) use impl_store;
