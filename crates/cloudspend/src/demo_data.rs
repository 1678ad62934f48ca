//! The demo tenant's data: 13 months of daily costs, EC2 instances with two weeks of hourly CPU,
//! and the FinOps Foundation's FOCUS sample rows. Everything except the FOCUS rows is
//! SYNTHETIC, made by a deterministic generator (same output on every machine), shaped like
//! a small company's AWS bill: three accounts, three regions, weekly seasonality, steady growth,
//! first-of-month support fees, a credit, and a few planted anomalies and idle instances for
//! the insights to find.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use cloudspend_core::records::{CostRecord, CostSource, Instance, MetricPoint};
use cloudspend_core::{Money, TenantId};
use cloudspend_store::Store;
use std::collections::BTreeMap;

/// The FOCUS 1.0 sample (CC BY 4.0, FinOps Foundation), gzip-compressed: see samples/README.md.
const FOCUS_SAMPLE: &[u8] = include_bytes!("../../../samples/focus/focus_sample.csv.gz");

const ACCOUNTS: [(&str, f64); 3] = [
    ("111111111111", 1.0),
    ("222222222222", 0.45),
    ("333333333333", 0.3),
];

/// (service, region, base dollars a day for the production account)
const SERVICES: [(&str, &str, f64); 8] = [
    ("Amazon Elastic Compute Cloud - Compute", "us-east-1", 118.0),
    ("Amazon Relational Database Service", "us-east-1", 46.0),
    ("Amazon Simple Storage Service", "us-east-1", 17.5),
    ("Amazon Elastic Kubernetes Service", "eu-west-1", 7.2),
    ("Amazon DynamoDB", "eu-west-1", 9.1),
    ("AWS Lambda", "ap-southeast-2", 3.8),
    ("Amazon CloudWatch", "us-east-1", 5.6),
    ("AWS Data Transfer", "us-east-1", 11.2),
];

/// SplitMix64: tiny, deterministic, good enough for demo noise.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Dollars as exact money: the generator works in floats, the stored amount is rounded to
/// the cent once, here, so everything downstream is exact.
fn dollars(amount: f64) -> Money {
    Money::from_nanos(((amount * 100.0).round() as i64) * 10_000_000)
}

/// Daily Cost Explorer-shaped rows from 13 months ago to today (the last two days estimated).
pub fn daily_costs(today: NaiveDate) -> Vec<CostRecord> {
    let mut rng = Rng(20261130);
    let start = today - Duration::days(395);
    let mut rows = Vec::new();
    let mut day = start;
    while day <= today {
        let age_days = (day - start).num_days() as f64;
        let growth = 1.0 + 0.015 * age_days / 30.0;
        let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
        let estimated = (today - day).num_days() < 2;
        for (account, scale) in ACCOUNTS {
            for (service, region, base) in SERVICES {
                let seasonal = if weekend && service.contains("Compute") {
                    0.78
                } else if weekend {
                    0.92
                } else {
                    1.0
                };
                let noise = 1.0 + (rng.next() - 0.5) * 0.08;
                let mut amount = base * scale * growth * seasonal * noise;
                // Planted: a runaway staging fleet 40 days ago (3 days), and S3 that stepped up
                // 60 days ago and stayed (news once, not every day after).
                let ago = (today - day).num_days();
                if account == "222222222222"
                    && service.contains("Compute")
                    && (38..=40).contains(&ago)
                {
                    amount *= 3.4;
                }
                if service.contains("Storage") && ago <= 60 {
                    amount *= 1.6;
                }
                // Planted: a data-transfer spike in production 9 days ago.
                if account == "111111111111" && service.contains("Transfer") && ago == 9 {
                    amount *= 6.0;
                }
                let mut record = CostRecord::from_cost_explorer(
                    day,
                    account,
                    service,
                    dollars(amount),
                    dollars(amount),
                    "USD",
                    estimated,
                );
                record.region = region.to_string();
                rows.push(record);
            }
            if day.day() == 1 {
                // Business support is billed on the first: a known fee, not an anomaly.
                let fee = dollars(100.0 * scale);
                rows.push(CostRecord::from_cost_explorer(
                    day,
                    account,
                    "AWS Support (Business)",
                    fee,
                    fee,
                    "USD",
                    estimated,
                ));
            }
        }
        if day == today - Duration::days(75) {
            let credit = dollars(-250.0);
            rows.push(CostRecord::from_cost_explorer(
                day,
                "111111111111",
                "Credits",
                credit,
                credit,
                "USD",
                false,
            ));
        }
        day += Duration::days(1);
    }
    rows
}

/// (id, name, type, region, account, CPU level in percent: the idle and oversized ones are planted)
const INSTANCES: [(&str, &str, &str, &str, &str, f64); 8] = [
    (
        "i-0a1b2c3d4e5f60001",
        "web-1",
        "m5.large",
        "us-east-1",
        "111111111111",
        46.0,
    ),
    (
        "i-0a1b2c3d4e5f60002",
        "web-2",
        "m5.large",
        "us-east-1",
        "111111111111",
        41.0,
    ),
    (
        "i-0a1b2c3d4e5f60003",
        "api-1",
        "c5.xlarge",
        "us-east-1",
        "111111111111",
        58.0,
    ),
    (
        "i-0a1b2c3d4e5f60004",
        "batch-old",
        "m5.2xlarge",
        "us-east-1",
        "111111111111",
        1.4,
    ),
    (
        "i-0a1b2c3d4e5f60005",
        "reporting",
        "r5.xlarge",
        "eu-west-1",
        "111111111111",
        11.0,
    ),
    (
        "i-0a1b2c3d4e5f60006",
        "staging-web",
        "t3.large",
        "eu-west-1",
        "222222222222",
        2.1,
    ),
    (
        "i-0a1b2c3d4e5f60007",
        "etl",
        "c5.2xlarge",
        "ap-southeast-2",
        "333333333333",
        35.0,
    ),
    (
        "i-0a1b2c3d4e5f60008",
        "bastion",
        "t3.micro",
        "us-east-1",
        "111111111111",
        0.0,
    ),
];

pub fn instances(now: DateTime<Utc>) -> Vec<Instance> {
    INSTANCES
        .iter()
        .map(|(id, name, kind, region, account, _)| Instance {
            account_id: account.to_string(),
            region: region.to_string(),
            instance_id: id.to_string(),
            instance_type: kind.to_string(),
            state: if *name == "bastion" {
                "stopped".into()
            } else {
                "running".into()
            },
            launch_time: Some(now - Duration::days(200)),
            availability_zone: format!("{region}a"),
            platform: "Linux/UNIX".into(),
            tags: BTreeMap::from([
                ("Name".to_string(), name.to_string()),
                ("team".to_string(), "platform".to_string()),
            ]),
            last_seen_at: now,
            volume_ids: Vec::new(),
            state_since: None,
        })
        .collect()
}

/// Hourly CPU for the last 14 days of the running instances, with a daily rhythm.
pub fn cpu_history(now: DateTime<Utc>) -> Vec<MetricPoint> {
    let mut rng = Rng(7);
    let end = Utc
        .timestamp_opt(now.timestamp() - now.timestamp() % 3600, 0)
        .single()
        .unwrap_or(now);
    let mut points = Vec::new();
    for (id, name, _, _, _, level) in INSTANCES {
        if name == "bastion" {
            continue; // stopped: CloudWatch has nothing for it
        }
        for hour in 0..(14 * 24) {
            let at = end - Duration::hours(14 * 24 - hour);
            let rhythm = 1.0
                + 0.35 * ((at.hour_of_day() as f64 - 14.0) / 24.0 * std::f64::consts::TAU).cos();
            let average = (level * rhythm * (1.0 + (rng.next() - 0.5) * 0.3)).clamp(0.0, 100.0);
            points.push(MetricPoint {
                instance_id: id.to_string(),
                metric: "CPUUtilization".into(),
                period_seconds: 3600,
                timestamp: at,
                average: (average * 100.0).round() / 100.0,
                maximum: ((average * 1.6).min(100.0) * 100.0).round() / 100.0,
                unit: "Percent".into(),
            });
        }
    }
    points
}

trait HourOfDay {
    fn hour_of_day(&self) -> u32;
}

impl HourOfDay for DateTime<Utc> {
    fn hour_of_day(&self) -> u32 {
        chrono::Timelike::hour(self)
    }
}

/// Loads everything into the demo tenant. Safe to call again: every write is an upsert.
pub async fn load(store: &dyn Store, tenant: TenantId) -> anyhow::Result<usize> {
    let now = Utc::now();
    let mut written = store
        .upsert_daily_costs(tenant, &daily_costs(now.date_naive()))
        .await?;
    written += store.upsert_instances(tenant, &instances(now)).await?;
    written += store
        .upsert_metric_points(tenant, &cpu_history(now))
        .await?;
    let focus = cloudspend_collect_cur::import_reader(FOCUS_SAMPLE, &mut |_| {})
        .map_err(|e| anyhow::anyhow!("FOCUS sample: {e}"))?;
    debug_assert!(focus.records.iter().all(|r| r.source == CostSource::Cur));
    written += store.upsert_daily_costs(tenant, &focus.records).await?;
    store
        .upsert_resource_tags(tenant, &focus.resource_tags, now)
        .await?;
    // What a collection would do next: detect anomalies, find idle instances.
    let found = cloudspend_insights::refresh(store, tenant, now).await?;
    tracing::info!(
        anomalies = found.new_anomalies.len(),
        recommendations = found.recommendations,
        "demo insights computed"
    );
    Ok(written as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_and_covers_thirteen_months() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let a = daily_costs(today);
        assert_eq!(a, daily_costs(today));
        let first = a.iter().map(|r| r.day).min().unwrap();
        assert!((today - first).num_days() >= 395);
        assert!(a.iter().any(|r| r.unblended.is_negative()), "a credit");
        assert!(
            a.iter()
                .filter(|r| r.estimated)
                .all(|r| (today - r.day).num_days() < 2)
        );
    }

    #[test]
    fn the_focus_sample_imports() {
        let result = cloudspend_collect_cur::import_reader(FOCUS_SAMPLE, &mut |_| {}).unwrap();
        assert!(result.records.len() > 100);
    }
}
