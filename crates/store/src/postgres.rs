//! PostgreSQL backend: the production store. Several `serve` replicas may share one database;
//! job leasing uses `FOR UPDATE SKIP LOCKED` so they split the work without waiting on each other.

use crate::shared::{
    BATCH_ROWS, BulkCostWrite, COST_COLUMNS, COST_ON_CONFLICT, CostBatches, CostsWritten,
    RollupSums, Rollups, StreamCheck, impl_store, rollups_of, unique_violation_is,
};
use chrono::NaiveDate;
use cloudspend_core::TenantId;
use cloudspend_core::records::CostRecord;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
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

crate::sealed::impl_sealed_secrets!(PgStore);
crate::diagnostics::impl_diagnostic_calls!(PgStore);
crate::grouped_costs::impl_cost_groups!(
    PgStore,
    "to_char(day, 'YYYY-MM-DD')",
    "to_char(day, 'YYYY-MM')"
);

impl_store!(
    PgStore,
    Postgres,
    crate::Backend::Postgres,
    MIGRATOR,
    LEASE_DUE_JOBS
);

/// From this many cost rows a write goes through COPY. Below it the temporary table costs more
/// than it saves; above it multi-row INSERT ... ON CONFLICT, which parses and binds 14
/// parameters per row, runs at a fraction of COPY's speed (see crates/collect-cur/README.md).
pub(crate) const COPY_COST_ROWS: usize = 5_000;

/// COPY data is sent in messages of about this size, so memory stays flat however many rows.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// Large cost writes (a CUR import is a million rows) go through COPY, inside the caller's
/// transaction. When the tenant has no cost rows yet on the batch's days (a first import of a
/// month), the rows are COPYed straight into `daily_costs`: with nothing to conflict with, an
/// upsert is an insert. Otherwise, or if a concurrent writer got there first (a unique
/// violation, undone to a savepoint), they are COPYed into a staging table and upserted from
/// it in one statement.
impl BulkCostWrite for sqlx::Postgres {
    /// A transaction-scoped advisory lock keyed by the tenant: released at commit or rollback,
    /// never left behind by a crashed writer. Other tenants' writes never wait on it (unless two
    /// ids hash alike, which only costs a short wait).
    async fn lock_tenant_costs(conn: &mut PgConnection, tenant: TenantId) -> crate::Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('cloudspend cost writes ' || $1::text, 0))")
            .bind(tenant.0)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn bulk_upsert_costs<'a>(
        conn: &'a mut PgConnection,
        tenant: TenantId,
        records: &'a [&'a CostRecord],
        rollups: bool,
    ) -> crate::Result<Option<CostsWritten>> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(None);
        };
        if records.len() < COPY_COST_ROWS {
            return Ok(None);
        }
        // `records` are in key order, and the day leads the key.
        if !days_hold_costs(conn, tenant, (first.day, last.day)).await? {
            sqlx::query("SAVEPOINT cost_copy")
                .execute(&mut *conn)
                .await?;
            let copied = copy_costs(
                conn,
                &format!("COPY daily_costs (tenant_id, {COST_COLUMNS}) FROM STDIN"),
                Some(tenant),
                records,
            )
            .await;
            match copied {
                Ok(written) => {
                    sqlx::query("RELEASE SAVEPOINT cost_copy")
                        .execute(&mut *conn)
                        .await?;
                    // The days held nothing else: their rollups are these rows' alone.
                    let rollups_written = match rollups.then(|| rollups_of(records)).flatten() {
                        Some(rollups) => {
                            write_rollups(conn, tenant, (first.day, last.day), rollups).await?;
                            true
                        }
                        None => false,
                    };
                    return Ok(Some(CostsWritten {
                        rows: written,
                        rollups_written,
                    }));
                }
                Err(e) if unique_violation_is(&e) => {
                    sqlx::query("ROLLBACK TO SAVEPOINT cost_copy")
                        .execute(&mut *conn)
                        .await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        create_cost_staging(conn).await?;
        copy_costs(
            conn,
            &format!("COPY cost_staging ({COST_COLUMNS}) FROM STDIN"),
            None,
            records,
        )
        .await?;
        Ok(Some(CostsWritten {
            rows: upsert_from_staging(conn, tenant).await?,
            rollups_written: false,
        }))
    }

    /// One COPY for all the batches, each sent as it arrives, so the producer (an import's
    /// merge) and the database work at the same time. Straight into `daily_costs` when the
    /// days hold no cost rows (the tenant's cost lock keeps it so until commit), with the
    /// rollups summed on the way; otherwise into a staging table and upserted from it.
    async fn stream_costs<'a>(
        conn: &'a mut PgConnection,
        tenant: TenantId,
        days: (NaiveDate, NaiveDate),
        batches: &'a mut CostBatches,
    ) -> crate::Result<Option<CostsWritten>> {
        if !days_hold_costs(conn, tenant, days).await? {
            let mut rollups = RollupSums::default();
            let rows = copy_batches(
                conn,
                &format!("COPY daily_costs (tenant_id, {COST_COLUMNS}) FROM STDIN"),
                Some(tenant),
                days,
                batches,
                Some(&mut rollups),
            )
            .await?;
            let rollups_written = match rollups.finish() {
                Some(rollups) => {
                    write_rollups(conn, tenant, days, rollups).await?;
                    true
                }
                None => false,
            };
            return Ok(Some(CostsWritten {
                rows,
                rollups_written,
            }));
        }
        create_cost_staging(conn).await?;
        copy_batches(
            conn,
            &format!("COPY cost_staging ({COST_COLUMNS}) FROM STDIN"),
            None,
            days,
            batches,
            None,
        )
        .await?;
        Ok(Some(CostsWritten {
            rows: upsert_from_staging(conn, tenant).await?,
            rollups_written: false,
        }))
    }
}

/// The table a bulk write over existing rows is COPYed into first. It lives only as long as the
/// writing transaction, and has no key of its own: the rows arrive unique by key, and the upsert
/// from it must touch each row once.
async fn create_cost_staging(conn: &mut PgConnection) -> crate::Result<()> {
    sqlx::query(&format!(
        "CREATE TEMP TABLE cost_staging ON COMMIT DROP AS SELECT {COST_COLUMNS} FROM daily_costs WITH NO DATA"
    ))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Upserts the staging table's rows for `tenant`; returns the rows new or changed.
async fn upsert_from_staging(conn: &mut PgConnection, tenant: TenantId) -> crate::Result<u64> {
    Ok(sqlx::query(&format!(
        "INSERT INTO daily_costs (tenant_id, {COST_COLUMNS}) \
         SELECT $1, {COST_COLUMNS} FROM cost_staging{COST_ON_CONFLICT}"
    ))
    .bind(tenant.0)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Whether the tenant has any cost row on `first..=last`.
async fn days_hold_costs(
    conn: &mut PgConnection,
    tenant: TenantId,
    (first, last): (NaiveDate, NaiveDate),
) -> crate::Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM daily_costs WHERE tenant_id = $1 AND day >= $2 AND day <= $3)",
    )
    .bind(tenant.0)
    .bind(first)
    .bind(last)
    .fetch_one(&mut *conn)
    .await?)
}

/// Runs `statement` (a `COPY ... FROM STDIN`) with the rows of every batch, checked as they
/// pass ([`StreamCheck`]) and added to `rollups` when given. On any failure the COPY is
/// aborted, so the caller's transaction holds none of it.
async fn copy_batches(
    conn: &mut PgConnection,
    statement: &str,
    tenant: Option<TenantId>,
    days: (NaiveDate, NaiveDate),
    batches: &mut CostBatches,
    mut rollups: Option<&mut RollupSums>,
) -> crate::Result<u64> {
    let mut copy = conn.copy_in_raw(statement).await?;
    let lines = CopyLines::new(tenant);
    let mut check = StreamCheck::default();
    let mut buf = Vec::with_capacity(COPY_CHUNK_BYTES + 4096);
    let sent: crate::Result<()> = async {
        while let Some(batch) = batches.recv().await {
            for r in &check.batch(batch, days)? {
                lines.push(&mut buf, r);
                if let Some(rollups) = rollups.as_deref_mut() {
                    rollups.add(r);
                }
                if buf.len() >= COPY_CHUNK_BYTES {
                    copy.send(buf.as_slice()).await?;
                    buf.clear();
                }
            }
        }
        if !buf.is_empty() {
            copy.send(buf.as_slice()).await?;
        }
        Ok(())
    }
    .await;
    match sent {
        Ok(()) => Ok(copy.finish().await?),
        Err(e) => {
            // The connection stays usable for the rollback only if the server is told.
            let _ = copy.abort(e.to_string()).await;
            Err(e)
        }
    }
}

/// Replaces the rollups of days `first..=last` with `rollups`, which must be those of every
/// cost row those days hold.
async fn write_rollups(
    conn: &mut PgConnection,
    tenant: TenantId,
    (first, last): (NaiveDate, NaiveDate),
    rollups: Rollups,
) -> crate::Result<()> {
    sqlx::query("DELETE FROM cost_rollups WHERE tenant_id = $1 AND day >= $2 AND day <= $3")
        .bind(tenant.0)
        .bind(first)
        .bind(last)
        .execute(&mut *conn)
        .await?;
    let rows: Vec<_> = rollups.into_iter().collect();
    for chunk in rows.chunks(BATCH_ROWS) {
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "INSERT INTO cost_rollups (tenant_id, day, dimension, key, amount_nanos, estimated) ",
        );
        q.push_values(
            chunk,
            |mut b, ((day, dimension, key), (amount, estimated))| {
                b.push_bind(tenant.0)
                    .push_bind(*day)
                    .push_bind(dimension.as_str())
                    .push_bind(key.as_str())
                    .push_bind(*amount)
                    .push_bind(*estimated);
            },
        );
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Runs `statement` (a `COPY ... FROM STDIN`) with `records` as its text-format data, sent a
/// chunk at a time so memory stays flat however many rows. `tenant` leads each row when given.
async fn copy_costs(
    conn: &mut PgConnection,
    statement: &str,
    tenant: Option<TenantId>,
    records: &[&CostRecord],
) -> Result<u64, sqlx::Error> {
    let mut copy = conn.copy_in_raw(statement).await?;
    let lines = CopyLines::new(tenant);
    let mut buf = Vec::with_capacity(COPY_CHUNK_BYTES + 4096);
    for r in records {
        lines.push(&mut buf, r);
        if buf.len() >= COPY_CHUNK_BYTES {
            copy.send(buf.as_slice()).await?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        copy.send(buf.as_slice()).await?;
    }
    copy.finish().await
}

/// One cost row as a line of `COPY daily_costs ... FROM STDIN` text, `tenant_id` first when
/// given, then [`COST_COLUMNS`]. Public so the import bench's bare-COPY baseline sends exactly
/// the bytes the store sends.
pub fn push_copy_line(out: &mut Vec<u8>, tenant: Option<TenantId>, r: &CostRecord) {
    CopyLines::new(tenant).push(out, r);
}

/// Cost rows as COPY text, columns in [`COST_COLUMNS`] order after the tenant's id when given.
/// Written without `fmt` for the numbers and the day: a million-row import encodes while the
/// server ingests, on the same two cores.
struct CopyLines {
    /// The tenant's id and a tab, or nothing.
    prefix: Vec<u8>,
}

impl CopyLines {
    fn new(tenant: Option<TenantId>) -> Self {
        Self {
            prefix: tenant.map_or_else(Vec::new, |t| format!("{}\t", t.0).into_bytes()),
        }
    }

    fn push(&self, out: &mut Vec<u8>, r: &CostRecord) {
        use chrono::Datelike;
        out.extend_from_slice(&self.prefix);
        let (year, month, day) = (r.day.year(), r.day.month(), r.day.day());
        if (0..=9999).contains(&year) {
            let year = year as u32;
            out.extend_from_slice(&[
                b'0' + (year / 1000) as u8,
                b'0' + (year / 100 % 10) as u8,
                b'0' + (year / 10 % 10) as u8,
                b'0' + (year % 10) as u8,
                b'-',
                b'0' + (month / 10) as u8,
                b'0' + (month % 10) as u8,
                b'-',
                b'0' + (day / 10) as u8,
                b'0' + (day % 10) as u8,
            ]);
        } else {
            // No bill is dated there; chrono's spelling, as before, and PostgreSQL judges it.
            use std::io::Write;
            let _ = write!(out, "{}", r.day);
        }
        out.push(b'\t');
        out.extend_from_slice(r.source.as_str().as_bytes());
        out.push(b'\t');
        for text in [
            &r.account_id,
            &r.service,
            &r.region,
            &r.usage_type,
            &r.resource_id,
            &r.line_item_type,
        ] {
            push_copy_text(out, text);
            out.push(b'\t');
        }
        push_integer(out, r.unblended.nanos());
        out.push(b'\t');
        push_integer(out, r.amortized.nanos());
        out.push(b'\t');
        match &r.usage_amount {
            Some(amount) => push_copy_text(out, amount),
            None => out.extend_from_slice(b"\\N"),
        }
        out.push(b'\t');
        push_copy_text(out, &r.currency);
        out.extend_from_slice(if r.estimated { b"\tt\n" } else { b"\tf\n" });
    }
}

fn push_integer(out: &mut Vec<u8>, value: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// COPY text escapes: a backslash, tab or line break inside a value would end it early.
fn push_copy_text(out: &mut Vec<u8>, text: &str) {
    // Almost every value needs no escape: copy those whole rather than byte by byte.
    if !text
        .bytes()
        .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    for b in text.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}
