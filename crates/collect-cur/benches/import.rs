//! Parse + aggregate speed and memory of the file import on synthetic legacy CUR rows.
//!
//! `cargo bench -p cloudspend-collect-cur --bench import` (optionally `-- 100000 1000000`).
//! Rows are generated on the fly by a `Read` implementation, never held in memory, so peak RSS
//! is the importer's own. Each size runs in a fresh child process, because VmHWM is a
//! per-process high-water mark. Every size covers the same keys (30 days x 2,000 resources x
//! 2 line item types), so a flat peak RSS from 100k to 1M rows shows that memory follows the
//! distinct keys, not the row count.

use cloudspend_collect_cur::{Progress, import_reader};
use std::io::{self, Read};
use std::process::Command;
use std::time::Instant;

const CHILD_ENV: &str = "CLOUDSPEND_CUR_BENCH_ROWS";
const RESOURCES: u64 = 2_000;
const DAYS: u64 = 30;
const HEADER: &str = "identity/LineItemId,lineItem/UsageAccountId,lineItem/LineItemType,\
lineItem/UsageStartDate,lineItem/UsageEndDate,lineItem/ProductCode,lineItem/UsageType,\
lineItem/Operation,lineItem/AvailabilityZone,lineItem/ResourceId,lineItem/UsageAmount,\
lineItem/CurrencyCode,lineItem/UnblendedRate,lineItem/UnblendedCost,product/ProductName,\
product/region,pricing/unit,reservation/EffectiveCost,savingsPlan/SavingsPlanEffectiveCost\n";

/// Yields the header, then `rows` CUR lines, built one at a time into a small buffer.
struct SyntheticCur {
    rows: u64,
    next: u64,
    line: Vec<u8>,
    pos: usize,
}

impl SyntheticCur {
    fn new(rows: u64) -> Self {
        Self {
            rows,
            next: 0,
            line: HEADER.as_bytes().to_vec(),
            pos: 0,
        }
    }

    fn fill(&mut self) {
        use std::io::Write;
        let i = self.next;
        self.next += 1;
        let resource = i % RESOURCES;
        let day = 1 + (i / RESOURCES) % DAYS;
        let hour = i % 24;
        let (service, code, usage_type, unit) = match resource % 4 {
            0 => (
                "Amazon Elastic Compute Cloud",
                "AmazonEC2",
                "BoxUsage:m5.large",
                "Hrs",
            ),
            1 => (
                "Amazon Simple Storage Service",
                "AmazonS3",
                "TimedStorage-ByteHrs",
                "GB-Mo",
            ),
            2 => (
                "Amazon Relational Database Service",
                "AmazonRDS",
                "InstanceUsage:db.t3.micro",
                "Hrs",
            ),
            _ => (
                "AWS Lambda",
                "AWSLambda",
                "Lambda-GB-Second",
                "Lambda-GB-Second",
            ),
        };
        let line_item_type = if i.is_multiple_of(97) {
            "Credit"
        } else {
            "Usage"
        };
        let cost_nanos = 1 + (i * 7_919) % 250_000_000;
        self.line.clear();
        let _ = writeln!(
            self.line,
            "li{i:012},{account},{line_item_type},2024-09-{day:02}T{hour:02}:00:00Z,\
             2024-09-{day:02}T{hour:02}:59:59Z,{code},{usage_type},RunInstances,us-east-1{az},\
             res-{resource:06},1.0,USD,0.096,{sign}0.{cost_nanos:09},{service},us-east-1,{unit},,",
            account = 100_000_000_000 + resource % 5,
            az = ['a', 'b', 'c'][(resource % 3) as usize],
            sign = if line_item_type == "Credit" { "-" } else { "" },
        );
        self.pos = 0;
    }
}

impl Read for SyntheticCur {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < buf.len() {
            if self.pos == self.line.len() {
                if self.next == self.rows {
                    break;
                }
                self.fill();
            }
            let n = (self.line.len() - self.pos).min(buf.len() - written);
            buf[written..written + n].copy_from_slice(&self.line[self.pos..self.pos + n]);
            self.pos += n;
            written += n;
        }
        Ok(written)
    }
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn run_one(rows: u64) {
    let start = Instant::now();
    let mut last = Progress {
        rows: 0,
        bytes: 0,
        total_bytes: None,
    };
    let result =
        import_reader(SyntheticCur::new(rows), &mut |p| last = p).expect("synthetic CUR imports");
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(result.rows_read, rows);
    let rate = rows as f64 / elapsed;
    println!(
        "{rows:>9} rows  {mib:>7.1} MiB  {elapsed:>6.2} s  {rate:>10.0} rows/s  {mbs:>6.1} MB/s  \
         {keys:>6} keys  peak RSS {rss} KiB  total {total}",
        mib = last.bytes as f64 / (1024.0 * 1024.0),
        mbs = last.bytes as f64 / elapsed / 1e6,
        keys = result.records.len(),
        rss = peak_rss_kib().map_or("?".to_string(), |k| k.to_string()),
        total = result.total_unblended,
    );
}

fn main() {
    if let Ok(rows) = std::env::var(CHILD_ENV) {
        run_one(rows.parse().expect("row count"));
        return;
    }
    let mut sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![100_000, 1_000_000];
    }
    println!(
        "collect-cur import bench: synthetic legacy CUR, parse + aggregate, one process per size"
    );
    let exe = std::env::current_exe().expect("own executable");
    for rows in sizes {
        let status = Command::new(&exe)
            .env(CHILD_ENV, rows.to_string())
            .status()
            .expect("child bench");
        assert!(status.success(), "bench for {rows} rows failed");
    }
}
