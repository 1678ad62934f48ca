//! Cost anomaly detection over the tenant's rollups, root causes from the rows behind them.
//!
//! Every pass (and every chart or coverage answer) is told the changes the tenant marked
//! planned: from the first day of each, the detector does not score a settling week and then
//! judges the series against its new level, so a planned change alerts once (before it is
//! marked) and never again.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Days, NaiveDate, Utc};
use cloudspend_anomaly::root_cause::{Components, Dimension, rank_contributors};
use cloudspend_anomaly::{Config, CostPoint, SeriesReport, detect_planned};
use cloudspend_core::records::{CostRecord, one_source_per_day};
use cloudspend_core::{Money, TenantId};
use cloudspend_store::{
    AnomalyFilter, AnomalyStatus, NewAnomaly, RollupDimension, Store, StoreError, StoredAnomaly,
};

use crate::view::{CpuEvidence, RootCause, split_series};

/// Days of history each pass reads: a year and a month, so yearly patterns are in view and a
/// first-of-month fee has been seen a dozen times.
pub const HISTORY_DAYS: u64 = 400;
/// Days before an anomaly that root-cause analysis reads to form each component's expectation.
const ROOT_CAUSE_HISTORY_DAYS: u64 = 35;
/// Contributors kept per dimension.
const CAUSES_PER_DIMENSION: usize = 3;
/// Root causes ranked per pass at most (newest anomalies first); the rest keep what they had.
const ROOT_CAUSE_ANOMALIES: usize = 40;

fn series_name(dimension: RollupDimension, key: &str) -> String {
    match dimension {
        RollupDimension::Total => "total".to_string(),
        other => format!("{}:{key}", other.as_str()),
    }
}

/// Every daily series of the tenant over `[from, to)`, by series name.
async fn load_series(
    store: &dyn Store,
    tenant: TenantId,
    from: NaiveDate,
    to: NaiveDate,
    only: Option<&str>,
) -> Result<BTreeMap<String, Vec<CostPoint>>, StoreError> {
    let mut out: BTreeMap<String, Vec<CostPoint>> = BTreeMap::new();
    for dimension in RollupDimension::ALL {
        let keys: Option<Vec<String>> = match only.map(split_series) {
            None => None,
            Some((d, _)) if d != dimension.as_str() => continue,
            Some((_, key)) => Some(vec![key.unwrap_or("").to_string()]),
        };
        for row in store
            .cost_rollup_days(tenant, dimension, from, to, keys.as_deref())
            .await?
        {
            out.entry(series_name(dimension, &row.key))
                .or_default()
                .push(CostPoint {
                    day: row.day,
                    amount: row.amount,
                    estimated: row.estimated,
                });
        }
    }
    // A service that stops appearing cost nothing on the days it is missing, up to the last day
    // the tenant has data for: make that explicit so the detector sees the drop.
    if let Some(last) = out.get("total").and_then(|p| p.last()).map(|p| p.day) {
        for points in out.values_mut() {
            if let Some(end) = points.last().map(|p| p.day)
                && end < last
            {
                points.push(CostPoint::new(last, Money::ZERO));
            }
        }
    }
    Ok(out)
}

/// The first days of the changes the tenant marked planned, by series.
#[derive(Debug, Default)]
struct PlannedChanges {
    /// Marked on the total: a change of the whole bill is planned in every part that moved with
    /// it too, or the service behind it would alert in its place.
    everywhere: Vec<NaiveDate>,
    by_series: HashMap<String, Vec<NaiveDate>>,
}

impl PlannedChanges {
    async fn load(
        store: &dyn Store,
        tenant: TenantId,
        from: NaiveDate,
    ) -> Result<Self, StoreError> {
        let marked = store
            .anomalies(
                tenant,
                &AnomalyFilter {
                    status: Some(AnomalyStatus::Planned),
                    from: Some(from),
                    limit: 100_000,
                    ..Default::default()
                },
            )
            .await?;
        let mut planned = Self::default();
        for a in marked {
            let NewAnomaly {
                series, first_day, ..
            } = a.detection;
            if series == "total" {
                planned.everywhere.push(first_day);
            } else {
                planned.by_series.entry(series).or_default().push(first_day);
            }
        }
        Ok(planned)
    }

    fn for_series(&self, series: &str) -> Vec<NaiveDate> {
        let mut days = self.everywhere.clone();
        days.extend(self.by_series.get(series).into_iter().flatten());
        days.sort_unstable();
        days.dedup();
        days
    }

    fn detect(&self, series: &str, points: &[CostPoint], config: &Config) -> SeriesReport {
        detect_planned(points, &self.for_series(series), config)
    }
}

/// The detector's day-by-day view of one series (expected value and band per day), for charts.
pub async fn series_report(
    store: &dyn Store,
    tenant: TenantId,
    series: &str,
    now: DateTime<Utc>,
) -> Result<Option<SeriesReport>, StoreError> {
    let (to, from) = window(now);
    let mut all = load_series(store, tenant, from, to, Some(series)).await?;
    let planned = PlannedChanges::load(store, tenant, from).await?;
    Ok(all
        .remove(series)
        .map(|points| planned.detect(series, &points, &Config::default())))
}

/// Whether each of the tenant's series can be judged (by the same data and rules as
/// [`detect_and_store`]): a series with too few final days says so instead of being guessed at.
pub async fn coverage(
    store: &dyn Store,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<Vec<(String, cloudspend_anomaly::SeriesStatus)>, StoreError> {
    let config = Config::default();
    let (to, from) = window(now);
    let series = load_series(store, tenant, from, to, None).await?;
    let planned = PlannedChanges::load(store, tenant, from).await?;
    Ok(series
        .into_iter()
        .filter(|(name, _)| !matches!(split_series(name), (_, Some(""))))
        .map(|(name, points)| {
            let status = planned.detect(&name, &points, &config).status;
            (name, status)
        })
        .collect())
}

fn window(now: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    let to = now.date_naive() + Days::new(1);
    (to, to - Days::new(HISTORY_DAYS))
}

/// Detects anomalies in every series of the tenant and stores them; returns the new ones.
pub async fn detect_and_store(
    store: &dyn Store,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<Vec<StoredAnomaly>, StoreError> {
    let config = Config::default();
    let (to, from) = window(now);
    let series = load_series(store, tenant, from, to, None).await?;
    let planned = PlannedChanges::load(store, tenant, from).await?;
    let mut found: Vec<NewAnomaly> = Vec::new();
    for (name, points) in &series {
        // A breakdown key that is empty is what a source does not break down by (Cost
        // Explorer has no regions): that "series" is the total again.
        if matches!(split_series(name), (_, Some(""))) {
            continue;
        }
        let report = planned.detect(name, points, &config);
        for a in report.anomalies {
            found.push(NewAnomaly {
                series: name.clone(),
                first_day: a.first_day,
                last_day: a.last_day,
                expected: a.expected,
                lower: a.lower,
                upper: a.upper,
                actual: a.actual,
                impact: a.impact,
                impact_percent: a.impact_percent.unwrap_or(0.0),
                score: a.score,
                severity: a.severity.as_str().to_string(),
                root_causes: serde_json::Value::Array(Vec::new()),
            });
        }
    }
    let mut found = one_anomaly_per_event(found);
    found.sort_by(|a, b| b.last_day.cmp(&a.last_day).then(b.impact.cmp(&a.impact)));
    // Root causes read raw cost rows: an anomaly whose days and amount have not moved since the
    // last pass keeps the causes it has.
    let known: std::collections::HashMap<(String, NaiveDate), NewAnomaly> = store
        .anomalies(
            tenant,
            &AnomalyFilter {
                from: Some(from),
                limit: 100_000,
                ..Default::default()
            },
        )
        .await?
        .into_iter()
        .map(|a| {
            (
                (a.detection.series.clone(), a.detection.first_day),
                a.detection,
            )
        })
        .collect();
    let mut ranked = 0;
    for anomaly in found.iter_mut() {
        let unchanged = known
            .get(&(anomaly.series.clone(), anomaly.first_day))
            .filter(|k| k.last_day == anomaly.last_day && k.actual == anomaly.actual);
        if let Some(previous) = unchanged {
            anomaly.root_causes = previous.root_causes.clone();
        } else if ranked < ROOT_CAUSE_ANOMALIES {
            ranked += 1;
            let causes = root_causes(store, tenant, anomaly, &config).await?;
            anomaly.root_causes = serde_json::to_value(causes).expect("root causes serialise");
        }
    }
    store.sync_anomalies(tenant, &found, now).await
}

/// One spike shows in the total and again in the service, account and region that caused it.
/// Those are the total anomaly's root causes, not more anomalies: a breakdown anomaly is kept
/// only when no total anomaly overlaps its days or it carries less than half of that total
/// anomaly's impact (a separate event the total barely shows, or one offset elsewhere).
fn one_anomaly_per_event(found: Vec<NewAnomaly>) -> Vec<NewAnomaly> {
    let totals: Vec<(NaiveDate, NaiveDate, Money)> = found
        .iter()
        .filter(|a| a.series == "total")
        .map(|a| (a.first_day, a.last_day, a.impact))
        .collect();
    found
        .into_iter()
        .filter(|a| {
            a.series == "total"
                || !totals.iter().any(|(first, last, impact)| {
                    let overlaps = a.first_day <= *last && *first <= a.last_day;
                    let same_direction = (a.impact.nanos() >= 0) == (impact.nanos() >= 0);
                    overlaps
                        && same_direction
                        && i128::from(a.impact.abs().nanos()) * 2
                            >= i128::from(impact.abs().nanos())
                })
        })
        .collect()
}

/// Ranks what moved inside the anomaly's series, dimension by dimension, from the cost rows
/// behind it (the CUR adds usage types and resource ids; Cost Explorer has services and
/// accounts only).
async fn root_causes(
    store: &dyn Store,
    tenant: TenantId,
    anomaly: &NewAnomaly,
    config: &Config,
) -> Result<Vec<RootCause>, StoreError> {
    let from = anomaly.first_day - Days::new(ROOT_CAUSE_HISTORY_DAYS);
    let to = anomaly.last_day + Days::new(1);
    let rows = one_source_per_day(store.daily_costs(tenant, from, to).await?);
    let (own_dimension, key) = split_series(&anomaly.series);
    let in_series = |r: &CostRecord| match (own_dimension, key) {
        ("service", Some(k)) => r.service == k,
        ("account", Some(k)) => r.account_id == k,
        ("region", Some(k)) => r.region == k,
        _ => true,
    };
    let mut components: Components = BTreeMap::new();
    for r in rows.iter().filter(|r| in_series(r)) {
        for (dimension, name, component) in [
            (Dimension::Service, "service", &r.service),
            (Dimension::Account, "account", &r.account_id),
            (Dimension::Region, "region", &r.region),
            (Dimension::UsageType, "usage_type", &r.usage_type),
            (Dimension::ResourceId, "resource", &r.resource_id),
        ] {
            // The series' own dimension has one component (itself); empty keys are what a
            // source does not break down by.
            if name == own_dimension || component.is_empty() {
                continue;
            }
            let points = components
                .entry(dimension)
                .or_default()
                .entry(component.clone())
                .or_default();
            match points.last_mut() {
                Some(last) if last.day == r.day => {
                    last.amount += r.unblended;
                    last.estimated |= r.estimated;
                }
                _ => points.push(CostPoint {
                    day: r.day,
                    amount: r.unblended,
                    estimated: r.estimated,
                }),
            }
        }
    }
    let mut causes = Vec::new();
    let mut per_dimension: BTreeMap<Dimension, usize> = BTreeMap::new();
    for c in rank_contributors(&components, anomaly.first_day, anomaly.last_day, config) {
        let kept = per_dimension.entry(c.dimension).or_default();
        // Rounding-level movements (under a cent) explain nothing.
        if *kept >= CAUSES_PER_DIMENSION || c.delta < Money::from_nanos(10_000_000) {
            continue;
        }
        *kept += 1;
        let dimension = match c.dimension {
            Dimension::Service => "service",
            Dimension::Account => "account",
            Dimension::Region => "region",
            Dimension::UsageType => "usage_type",
            Dimension::ResourceId => "resource",
        };
        let cpu = if c.dimension == Dimension::ResourceId && c.key.starts_with("i-") {
            cpu_evidence(store, tenant, &c.key, anomaly.first_day, to).await?
        } else {
            None
        };
        causes.push(RootCause {
            dimension: dimension.to_string(),
            key: c.key,
            expected: c.expected,
            actual: c.actual,
            impact: c.delta,
            share_percent: (c.share * 1000.0).round() / 10.0,
            cpu,
        });
    }
    Ok(causes)
}

async fn cpu_evidence(
    store: &dyn Store,
    tenant: TenantId,
    instance_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Option<CpuEvidence>, StoreError> {
    let start = from.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let end = to.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let points = store
        .metric_points(tenant, instance_id, "CPUUtilization", start, end)
        .await?;
    if points.is_empty() {
        return Ok(None);
    }
    let mut averages: Vec<f64> = points.iter().map(|p| p.average).collect();
    let max = points.iter().map(|p| p.maximum).fold(f64::MIN, f64::max);
    let average = averages.iter().sum::<f64>() / averages.len() as f64;
    Ok(Some(CpuEvidence {
        p95: round1(crate::recommendations::percentile(&mut averages, 0.95)),
        average: round1(average),
        max: round1(max),
        points: points.len(),
    }))
}

pub(crate) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anomaly(series: &str, first: u32, last: u32, impact: &str) -> NewAnomaly {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        NewAnomaly {
            series: series.into(),
            first_day: day(first),
            last_day: day(last),
            expected: Money::ZERO,
            lower: Money::ZERO,
            upper: Money::ZERO,
            actual: impact.parse().unwrap(),
            impact: impact.parse().unwrap(),
            impact_percent: 100.0,
            score: 9.0,
            severity: "high".into(),
            root_causes: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_spike_is_one_anomaly_not_one_per_breakdown() {
        let kept = one_anomaly_per_event(vec![
            anomaly("total", 27, 28, "520"),
            anomaly("service:AmazonEC2", 27, 27, "515"),
            anomaly("account:111111111111", 27, 28, "520"),
            // Small next to the total's impact: a separate event inside it.
            anomaly("service:AWSLambda", 28, 28, "40"),
            // A drop during the spike is a different story.
            anomaly("service:AmazonS3", 27, 27, "-300"),
            // No total anomaly on these days: kept.
            anomaly("region:eu-west-1", 10, 11, "80"),
        ]);
        let series: Vec<&str> = kept.iter().map(|a| a.series.as_str()).collect();
        assert_eq!(
            series,
            [
                "total",
                "service:AWSLambda",
                "service:AmazonS3",
                "region:eu-west-1"
            ]
        );
    }
}
