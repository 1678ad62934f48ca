//! End-to-end `cloudspend import-cur` into PostgreSQL next to a bare `COPY` of the same rows.
//!
//! ```text
//! CLOUDSPEND_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench -p cloudspend-collect-cur --bench import_vs_copy [-- 100000 1000000]
//! ```
//!
//! For each size N (normalised rows, what lands in `daily_costs`; default 100,000 and
//! 1,000,000) a child process:
//! 1. writes a legacy CUR CSV of N x 11/10 line items to the temp folder (not timed);
//! 2. imports it as `import-cur` does, into a fresh database: `import_paths_streamed` (parse +
//!    aggregate on as many threads as there are cores, up to 4, sums past 57k keys per thread
//!    spilled to sorted temporary files) on a blocking thread, then the records merged on a
//!    blocking thread while `upsert_daily_costs_streamed` COPYs them a batch at a time (cost
//!    rows and their rollups, one transaction), `upsert_resource_tags`, `start_run` /
//!    `finish_run`; then imports the file once more on one thread with every record collected
//!    in memory (`import_paths_with`, not stored), to check the stored rows against and to show
//!    what the threads gain under the same load;
//! 3. `COPY`s the same normalised rows, already encoded as COPY text in memory, into
//!    `daily_costs` of another fresh database (same table, same primary key, empty);
//! 4. repeats 2 (without the checks) and 3 alternately, each into a fresh database, for
//!    `--rounds K` rounds in all (default 3), and prints the median of each and their ratio: one
//!    COPY of a million rows takes anywhere from 7.0 to 10.6 s on this shared machine, more
//!    than the whole parse, so one pair of runs says little;
//! 5. imports the same file again into the first database (every row exists unchanged: the
//!    upsert path, which leaves unchanged rows alone).
//!
//! A CHECKPOINT starts each timed phase, so none pays for the dirty buffers of the one before.
//!
//! Both rates count normalised rows (what lands in `daily_costs`). Peak RSS is the process's
//! VmHWM; it cannot be reset, so each size runs in its own process, and the figure printed
//! after the first import is import-cur's own (later phases add the bench's extra copies).
//!
//! The file: 11 line items per 10 natural keys (every key has one line item, every tenth a
//! second one for another hour, summed by the import), so 11 N / 10 line items give N
//! normalised rows. Keys are 30 days x resources, each resource fixed to one of 5 accounts,
//! 4 services (2 usage types each), 3 regions; about 1 resource in 50 is a Credit line instead
//! of Usage. Resources grow with N (about N / 30), as in a real account that is larger.
//!
//! `--repeat K` writes every line item K times (K x N lines, the same keys and rows): with it
//! the file grows while the normalised rows do not, which shows what memory follows.

use cloudspend_collect_cur::{
    ImportOptions, ImportResult, import_paths_streamed, import_paths_with,
};
use cloudspend_core::records::{CostRecord, RunStatus};
use cloudspend_store::postgres::PgStore;
use cloudspend_store::testing::{fresh_postgres_url, postgres_admin_url};
use cloudspend_store::{NewRun, NewUser, RunOutcome, Store};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const CHILD_ROWS: &str = "CLOUDSPEND_COPY_BENCH_ROWS";
const CHILD_REPEAT: &str = "CLOUDSPEND_COPY_BENCH_REPEAT";
const CHILD_ROUNDS: &str = "CLOUDSPEND_COPY_BENCH_ROUNDS";
const DAYS: u64 = 30;
const COST_COLUMNS: &str = "tenant_id, day, source, account_id, service, region, usage_type, \
    resource_id, line_item_type, unblended_nanos, amortized_nanos, usage_amount, currency, estimated";
const HEADER: &str = "identity/LineItemId,lineItem/UsageAccountId,lineItem/LineItemType,\
lineItem/UsageStartDate,lineItem/UsageEndDate,lineItem/ProductCode,lineItem/UsageType,\
lineItem/Operation,lineItem/AvailabilityZone,lineItem/ResourceId,lineItem/UsageAmount,\
lineItem/CurrencyCode,lineItem/UnblendedRate,lineItem/UnblendedCost,product/ProductName,\
product/region,pricing/unit,reservation/EffectiveCost,savingsPlan/SavingsPlanEffectiveCost";

const SERVICES: [(&str, &str, [&str; 2], &str); 4] = [
    (
        "Amazon Elastic Compute Cloud",
        "AmazonEC2",
        ["BoxUsage:m5.large", "EBS:VolumeUsage.gp3"],
        "Hrs",
    ),
    (
        "Amazon Simple Storage Service",
        "AmazonS3",
        ["TimedStorage-ByteHrs", "Requests-Tier1"],
        "GB-Mo",
    ),
    (
        "Amazon Relational Database Service",
        "AmazonRDS",
        ["InstanceUsage:db.t3.micro", "RDS:GP2-Storage"],
        "Hrs",
    ),
    (
        "AWS Lambda",
        "AWSLambda",
        ["Lambda-GB-Second", "Request"],
        "Lambda-GB-Second",
    ),
];
const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];

/// Writes `items` line items (each `repeat` times) and returns the file's size.
fn write_cur(path: &Path, items: u64, repeat: u64) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "{HEADER}")?;
    for i in 0..items {
        // Every 11 line items cover 10 keys: floor(10 i / 11) repeats once in eleven.
        let key = i * 10 / 11;
        let day = 1 + key % DAYS;
        let resource = key / DAYS;
        let (service, code, usage_types, unit) = SERVICES[(resource % 4) as usize];
        let usage_type = usage_types[((resource / 12) % 2) as usize];
        let region = REGIONS[((resource / 4) % 3) as usize];
        let credit = resource % 50 == 49;
        let line_item_type = if credit { "Credit" } else { "Usage" };
        let hour = i % 24;
        let cost_nanos = 1 + (i * 7_919) % 250_000_000;
        for copy in 0..repeat {
            writeln!(
                out,
                "li{i:010}-{copy},{account},{line_item_type},2024-09-{day:02}T{hour:02}:00:00Z,\
                 2024-09-{day:02}T{hour:02}:59:59Z,{code},{usage_type},RunInstances,{region}{az},\
                 res-{resource:08},1.0,USD,0.096,{sign}0.{cost_nanos:09},{service},{region},{unit},,",
                account = 100_000_000_000 + resource % 5,
                az = ['a', 'b', 'c'][(resource % 3) as usize],
                sign = if credit { "-" } else { "" },
            )?;
        }
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

fn peak_rss_mib() -> String {
    let kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        });
    kib.map_or("?".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

/// A migrated store on a new database, with one tenant to own the rows.
async fn fresh_tenant_store() -> (PgStore, cloudspend_core::TenantId, String) {
    let url = fresh_postgres_url().await;
    let store = PgStore::connect(&url)
        .await
        .expect("connect to the fresh database");
    store.migrate().await.expect("migrate");
    let (_, tenant) = store
        .create_user_with_tenant(
            NewUser {
                email: "bench@example.com".into(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                is_global_owner: false,
            },
            "bench",
        )
        .await
        .expect("bench tenant");
    // Autovacuum would otherwise visit a million freshly written rows (PostgreSQL 13+ vacuums
    // after inserts too) while a later phase is being timed, in this database or the kept one.
    for table in ["daily_costs", "cost_rollups"] {
        sqlx::query(&format!(
            "ALTER TABLE {table} SET (autovacuum_enabled = false)"
        ))
        .execute(store.pool())
        .await
        .expect("autovacuum off for the bench's tables");
    }
    let name = url.rsplit('/').next().unwrap_or_default();
    let name = name.split('?').next().unwrap_or_default().to_string();
    (store, tenant.id, name)
}

/// A million-row run leaves over a GiB behind: drop the bench's databases when done.
async fn drop_database(store: PgStore, name: &str) {
    store.pool().close().await;
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&postgres_admin_url())
        .await
        .expect("admin connection");
    // `name` is `cs_test_` + hex digits, made by fresh_postgres_url.
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop the bench database");
}

/// Starts each timed phase with no dirty buffers left by the one before.
async fn checkpoint(store: &PgStore) {
    sqlx::query("CHECKPOINT")
        .execute(store.pool())
        .await
        .expect("CHECKPOINT (the bench needs a superuser)");
}

async fn count_rows(store: &PgStore) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM daily_costs")
        .fetch_one(store.pool())
        .await
        .expect("count rows")
}

/// The rows as COPY text, encoded by the store's own encoder (the bytes import-cur sends).
fn copy_text(tenant: cloudspend_core::TenantId, records: &[CostRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 200);
    for r in records {
        cloudspend_store::postgres::push_copy_line(&mut out, Some(tenant), r);
    }
    out
}

struct Parsed {
    result: ImportResult,
    parsed_secs: f64,
}

/// What `cloudspend import-cur` does with the file: parse on a blocking thread, then the
/// records merged and written a batch at a time, in one transaction.
async fn import_streamed(
    store: &PgStore,
    tenant: cloudspend_core::TenantId,
    path: &Path,
) -> (Parsed, u64) {
    let begun = Instant::now();
    let file = path.to_path_buf();
    let streamed = tokio::task::spawn_blocking(move || {
        import_paths_streamed(&[&file], ImportOptions::default(), &mut |_| {})
    })
    .await
    .expect("import thread")
    .expect("the synthetic CUR imports");
    let parsed_secs = begun.elapsed().as_secs_f64();
    let days = streamed.result.days.expect("the file has rows");
    let batches = streamed
        .records
        .batches(8192)
        .map(|batch| batch.map_err(|e| e.to_string()));
    let written = cloudspend_store::upsert_daily_costs_from(store, tenant, days, batches)
        .await
        .expect("write the imported rows");
    (
        Parsed {
            result: streamed.result,
            parsed_secs,
        },
        written,
    )
}

/// The tenant's cost rows, in key order.
async fn stored_rows(
    store: &PgStore,
    tenant: cloudspend_core::TenantId,
    (first, last): (chrono::NaiveDate, chrono::NaiveDate),
) -> Vec<CostRecord> {
    let mut rows = store
        .daily_costs(tenant, first, last + chrono::Duration::days(1))
        .await
        .expect("read the rows back");
    rows.sort_by(|a, b| a.natural_key().cmp(&b.natural_key()));
    rows
}

/// One timed import, with the store it wrote to (for the checks and the re-import).
struct Imported {
    store: PgStore,
    tenant: cloudspend_core::TenantId,
    database: String,
    result: ImportResult,
    rows: u64,
    secs: f64,
    parse_secs: f64,
}

/// Phase 1 once: the import as `cloudspend import-cur` runs it, into a fresh database, timed
/// from the start of the parse to the run recorded.
async fn timed_import(path: &Path) -> Imported {
    let (store, tenant, store_db) = fresh_tenant_store().await;
    checkpoint(&store).await;
    let started_at = chrono::Utc::now();
    let begun = Instant::now();
    let (parsed, written) = import_streamed(&store, tenant, path).await;
    let result = parsed.result;
    store
        .upsert_resource_tags(tenant, &result.resource_tags, started_at)
        .await
        .expect("write tags");
    let run = store
        .start_run(NewRun {
            tenant_id: tenant,
            collector: "cur-import".into(),
            window_start: started_at,
            window_end: started_at,
            started_at,
        })
        .await
        .expect("start run");
    store
        .finish_run(
            tenant,
            run,
            RunOutcome {
                status: RunStatus::Succeeded,
                finished_at: chrono::Utc::now(),
                rows_written: written as i64,
                aws_requests: 0,
                ce_requests: 0,
                retries: 0,
                error: None,
            },
        )
        .await
        .expect("finish run");
    let secs = begun.elapsed().as_secs_f64();
    assert_eq!(count_rows(&store).await, written as i64);
    Imported {
        store,
        tenant,
        database: store_db,
        result,
        rows: written,
        secs,
        parse_secs: parsed.parsed_secs,
    }
}

/// Phase 2 once: COPY of `text` (the rows as COPY text, already encoded) into the empty
/// `daily_costs` of a fresh database. Returns the seconds.
async fn timed_copy(text: &mut [u8], rows: u64) -> f64 {
    let (copy_store, copy_tenant, copy_db) = fresh_tenant_store().await;
    for_tenant(text, copy_tenant);
    checkpoint(&copy_store).await;
    let mut conn = copy_store.pool().acquire().await.expect("connection");
    let begun = Instant::now();
    let mut copy = conn
        .copy_in_raw(&format!("COPY daily_costs ({COST_COLUMNS}) FROM STDIN"))
        .await
        .expect("COPY starts");
    for chunk in text.chunks(1 << 20) {
        copy.send(chunk).await.expect("COPY data");
    }
    let copied = copy.finish().await.expect("COPY ends");
    let secs = begun.elapsed().as_secs_f64();
    drop(conn);
    assert_eq!(copied, rows);
    drop_database(copy_store, &copy_db).await;
    secs
}

/// Puts `tenant` in front of every line of COPY text: each line starts with a tenant's id
/// (36 bytes), and a line break inside a value is escaped, so every raw `\n` ends a line.
fn for_tenant(text: &mut [u8], tenant: cloudspend_core::TenantId) {
    let id = tenant.0.to_string();
    let mut line = 0;
    while line < text.len() {
        text[line..line + id.len()].copy_from_slice(id.as_bytes());
        line += text[line..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |end| end + 1);
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// The bench of one size: `wanted` normalised rows.
async fn run_one(wanted: u64, repeat: u64, rounds: usize) {
    // floor(10 i / 11) for i below 11 N / 10 takes N values.
    let items = (wanted * 11).div_ceil(10);
    let path: PathBuf = std::env::temp_dir().join(format!(
        "cloudspend-bench-{}-{items}x{repeat}.csv",
        std::process::id()
    ));
    let file_bytes = write_cur(&path, items, repeat).expect("write the CUR file");

    // Round 1's import comes first, so the peak RSS printed after it is import-cur's own.
    let Imported {
        store,
        tenant,
        database: store_db,
        result,
        rows,
        secs: import_secs,
        parse_secs: parsed,
    } = timed_import(&path).await;
    assert_eq!(result.rows_read, items * repeat);
    assert_eq!(rows, wanted, "{items} line items make {wanted} rows");
    println!(
        "{items:>9} line items x{repeat} ({mib:.0} MiB) -> {rows} rows\n  \
         import-cur  {import_secs:>6.2} s  {rate:>9.0} rows/s  \
         (parse+aggregate {parsed:.2} s, then merge+store {store_secs:.2} s)  peak RSS {rss}",
        mib = file_bytes as f64 / 1_048_576.0,
        rate = rows as f64 / import_secs,
        store_secs = import_secs - parsed,
        rss = peak_rss_mib(),
    );

    // The parse alone on one thread, for comparison, with every record held in memory: the
    // same records as those stored, and the rows the COPY sends.
    let begun = Instant::now();
    let one_thread = ImportOptions {
        threads: 1,
        ..ImportOptions::default()
    };
    let serial = import_paths_with(&[&path], one_thread, &mut |_| {}).expect("one thread");
    let serial_secs = begun.elapsed().as_secs_f64();
    assert_eq!(serial.records.len() as u64, rows);
    assert_eq!(
        (serial.total_unblended, serial.total_amortized),
        (result.total_unblended, result.total_amortized),
        "one thread and several give the same totals"
    );
    assert_eq!(
        stored_rows(&store, tenant, result.days.expect("days")).await,
        serial.records,
        "the rows stored are those of the import on one thread"
    );
    println!(
        "  parse+aggregate(+merge) on 1 thread, records in memory {serial_secs:.2} s; \
         on {threads}: {parsed:.2} s",
        threads = ImportOptions::default().threads,
    );
    let mut text = copy_text(tenant, &serial.records);
    drop(serial);

    // COPY and import alternate, each into a fresh database, so that both meet the machine
    // in the same moods: a single COPY varies by a third from one run to the next here.
    let mut imports = vec![import_secs];
    let mut copies = Vec::new();
    for round in 1..=rounds {
        let copy_secs = timed_copy(&mut text, rows).await;
        copies.push(copy_secs);
        if round > 1 {
            let Imported {
                store: other,
                database: other_db,
                rows: written,
                secs,
                parse_secs: parsed,
                ..
            } = timed_import(&path).await;
            assert_eq!(written, rows);
            drop_database(other, &other_db).await;
            imports.push(secs);
            println!(
                "  import-cur  {secs:>6.2} s  {rate:>9.0} rows/s  (parse+aggregate {parsed:.2} s)",
                rate = rows as f64 / secs,
            );
        }
        println!(
            "  COPY        {copy_secs:>6.2} s  {rate:>9.0} rows/s  (round {round}: import / COPY \
             = {ratio:.2}x)",
            rate = rows as f64 / copy_secs,
            ratio = copy_secs / imports[round - 1],
        );
    }
    let (import_median, copy_median) = (median(&imports), median(&copies));
    println!(
        "  median of {rounds}: import-cur {import_median:.2} s, COPY {copy_median:.2} s: \
         import / COPY = {ratio:.2}x  (process peak RSS now {rss}, with the bench's own copies)",
        ratio = copy_median / import_median,
        rss = peak_rss_mib(),
    );

    // Phase 3: the same file again: every row exists, so this is the upsert over existing rows.
    checkpoint(&store).await;
    let begun = Instant::now();
    let (_, rewritten) = import_streamed(&store, tenant, &path).await;
    let reimport_secs = begun.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    // Every row exists with the same values: nothing is new or changed.
    assert_eq!(rewritten, 0);
    assert_eq!(count_rows(&store).await, rows as i64);
    println!(
        "  re-import   {reimport_secs:>6.2} s  {rate:>9.0} rows/s  (same file again: every row \
         exists unchanged, {rewritten} rows written)",
        rate = rows as f64 / reimport_secs,
    );

    drop_database(store, &store_db).await;
}

fn main() {
    if let Ok(rows) = std::env::var(CHILD_ROWS) {
        let number = |name: &str| std::env::var(name).ok().and_then(|r| r.parse().ok());
        let repeat = number(CHILD_REPEAT).unwrap_or(1);
        let rounds = number(CHILD_ROUNDS).unwrap_or(3) as usize;
        let rows: u64 = rows.parse().expect("row count");
        tokio::runtime::Runtime::new()
            .expect("tokio runtime")
            .block_on(run_one(rows, repeat, rounds.max(1)));
        return;
    }
    // `cargo bench` passes `--bench`; anything that is not a size or `--repeat K` is ignored.
    let mut sizes: Vec<u64> = Vec::new();
    let mut repeat = 1;
    let mut rounds = 3;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--repeat" {
            repeat = args
                .next()
                .and_then(|k| k.parse().ok())
                .expect("--repeat K");
        } else if arg == "--rounds" {
            rounds = args
                .next()
                .and_then(|k| k.parse().ok())
                .expect("--rounds K");
        } else if let Ok(size) = arg.parse() {
            sizes.push(size);
        }
    }
    if sizes.is_empty() {
        sizes = vec![100_000, 1_000_000];
    }
    println!(
        "import-cur vs COPY into PostgreSQL: synthetic legacy CUR, one process per size in \
         normalised rows (11 line items per 10 rows)"
    );
    let exe = std::env::current_exe().expect("own executable");
    for rows in sizes {
        let status = Command::new(&exe)
            .env(CHILD_ROWS, rows.to_string())
            .env(CHILD_REPEAT, repeat.to_string())
            .env(CHILD_ROUNDS, rounds.to_string())
            .status()
            .expect("child bench");
        assert!(status.success(), "bench for {rows} rows failed");
    }
}
