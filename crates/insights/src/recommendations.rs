//! Idle and oversized instances, the way AWS Compute Optimizer judges them: CPU over the last
//! 14 days, with at least 30 hours of data before anything is said. And stopped instances whose
//! EBS volumes the CUR shows still being billed: stopping an instance stops its compute charge,
//! not its storage.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Days, Duration, Timelike, Utc};
use cloudspend_core::{Money, TenantId};
use cloudspend_store::{Recommendation, Store, StoreError};

use crate::anomalies::round1;
use crate::pricing;
use crate::view::{RecommendationView, VolumeCost};

pub const LOOKBACK_DAYS: i64 = 14;
pub const MIN_HOURS_OF_DATA: i64 = 30;
/// CPU p95 under this: the instance does nothing useful; stop it.
pub const IDLE_P95_PERCENT: f64 = 5.0;
/// CPU p95 under this (and not idle): half the size would still run under 40%.
pub const OVERSIZED_P95_PERCENT: f64 = 20.0;
/// A stopped instance is news once it has stayed stopped this long (when AWS says since when):
/// an instance stopped for the weekend is not a finding.
pub const MIN_STOPPED_DAYS: i64 = 7;

/// Nearest-rank percentile (`q` in 0..=1) of `values`, which it sorts.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// The tenant's current findings, largest savings first.
pub async fn compute(
    store: &dyn Store,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<Vec<Recommendation>, StoreError> {
    let since = now - Duration::days(LOOKBACK_DAYS);
    let today = now.date_naive();
    // The CUR's cost per instance over the last 30 full days, when the tenant has a CUR.
    let cur_costs: HashMap<String, Money> = store
        .cur_costs_by_resource(tenant, today - Days::new(30), today)
        .await?
        .into_iter()
        .map(|t| (t.key, t.amount))
        .collect();
    // The CUR names an EBS volume by its id, or by its ARN (".../volume/vol-...").
    let volume_costs: HashMap<&str, Money> = cur_costs
        .iter()
        .map(|(id, cost)| (id.rsplit('/').next().unwrap_or(id), *cost))
        .filter(|(id, _)| id.starts_with("vol-"))
        .collect();
    let mut views = Vec::new();
    for instance in store.instances(tenant).await? {
        if instance.state == "stopped" {
            views.extend(stopped_with_volumes(&instance, &volume_costs, now));
            continue;
        }
        if instance.state != "running" {
            continue;
        }
        let points = store
            .metric_points(tenant, &instance.instance_id, "CPUUtilization", since, now)
            .await?;
        let hours: BTreeSet<i64> = points
            .iter()
            .map(|p| p.timestamp.timestamp() / 3600)
            .collect();
        let hours_of_data = hours.len() as i64;
        if hours_of_data < MIN_HOURS_OF_DATA {
            continue;
        }
        let mut averages: Vec<f64> = points.iter().map(|p| p.average).collect();
        let p95 = percentile(&mut averages, 0.95);
        let max = points.iter().map(|p| p.maximum).fold(0.0, f64::max);
        let (monthly_cost, cost_basis) = match cur_costs.get(&instance.instance_id) {
            Some(cost) => (*cost, "cur"),
            None => match pricing::monthly_list_price(&instance.instance_type) {
                Some(price) => (price, "list_price"),
                None => (Money::ZERO, "unknown"),
            },
        };
        let evidence = format!(
            "CPU p95 {:.1}% (max {:.1}%) over {hours_of_data} hours of the last {LOOKBACK_DAYS} days",
            p95, max
        );
        let (kind, action, suggested_type, savings) = if p95 < IDLE_P95_PERCENT {
            ("idle", "stop", None, monthly_cost)
        } else if p95 < OVERSIZED_P95_PERCENT {
            let Some(smaller) = pricing::next_size_down(&instance.instance_type) else {
                continue;
            };
            let keep = pricing::cost_after_resize(monthly_cost, &instance.instance_type, &smaller)
                .unwrap_or(monthly_cost);
            ("oversized", "downsize", Some(smaller), monthly_cost - keep)
        } else {
            continue;
        };
        views.push(RecommendationView {
            suggested_type,
            cpu_p95: Some(round1(p95)),
            cpu_max: Some(round1(max)),
            hours_of_data: Some(hours_of_data),
            monthly_cost: monthly_cost.round_to_cents(),
            monthly_savings: savings.round_to_cents(),
            cost_basis: cost_basis.to_string(),
            evidence,
            ..finding(&instance, kind, action)
        });
    }
    let computed_at = now.with_nanosecond(0).unwrap_or(now);
    let mut records: Vec<Recommendation> = views.iter().map(|v| v.to_record(computed_at)).collect();
    records.sort_by(|a, b| {
        b.monthly_savings
            .cmp(&a.monthly_savings)
            .then_with(|| a.resource_id.cmp(&b.resource_id))
    });
    Ok(records)
}

/// A stopped instance whose volumes the CUR bills: deleting them (after a snapshot, which costs
/// a fraction) or terminating the instance saves what they cost. Without CUR rows for the
/// volumes nothing is said: their size and type are not collected, so a price would be a guess.
fn stopped_with_volumes(
    instance: &cloudspend_core::records::Instance,
    volume_costs: &HashMap<&str, Money>,
    now: DateTime<Utc>,
) -> Option<RecommendationView> {
    if let Some(since) = instance.state_since
        && now - since < Duration::days(MIN_STOPPED_DAYS)
    {
        return None;
    }
    let billed: Vec<(&String, Money)> = instance
        .volume_ids
        .iter()
        .filter_map(|id| Some((id, *volume_costs.get(id.as_str())?)))
        .filter(|(_, cost)| *cost > Money::ZERO)
        .collect();
    if billed.is_empty() {
        return None;
    }
    let cost: Money = billed.iter().map(|(_, cost)| *cost).sum();
    let volumes: Vec<VolumeCost> = billed
        .iter()
        .map(|(id, cost)| VolumeCost {
            volume_id: (*id).clone(),
            monthly_cost: cost.round_to_cents(),
        })
        .collect();
    let since = instance
        .state_since
        .map(|t| format!(" since {}", t.date_naive()))
        .unwrap_or_default();
    let evidence = format!(
        "Stopped{since}; {} of its {} EBS volume{} billed {} in the CUR's last 30 days ({})",
        volumes.len(),
        instance.volume_ids.len(),
        if instance.volume_ids.len() == 1 {
            ""
        } else {
            "s"
        },
        cost.round_to_cents(),
        volumes
            .iter()
            .map(|v| v.volume_id.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    Some(RecommendationView {
        volumes,
        monthly_cost: cost.round_to_cents(),
        monthly_savings: cost.round_to_cents(),
        cost_basis: "cur".to_string(),
        evidence,
        ..finding(instance, "stopped_with_volumes", "delete_volumes")
    })
}

/// A finding of `kind` about `instance`: who it is, with nothing measured or priced yet.
fn finding(
    instance: &cloudspend_core::records::Instance,
    kind: &str,
    action: &str,
) -> RecommendationView {
    RecommendationView {
        kind: kind.to_string(),
        action: action.to_string(),
        name: instance.name().map(str::to_string),
        instance_id: instance.instance_id.clone(),
        account_id: instance.account_id.clone(),
        region: instance.region.clone(),
        instance_type: instance.instance_type.clone(),
        state: instance.state.clone(),
        suggested_type: None,
        cpu_p95: None,
        cpu_max: None,
        hours_of_data: None,
        volumes: Vec::new(),
        monthly_cost: Money::ZERO,
        monthly_savings: Money::ZERO,
        cost_basis: String::new(),
        evidence: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentile() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 0.95), 95.0);
        assert_eq!(percentile(&mut [3.0], 0.95), 3.0);
        assert_eq!(percentile(&mut [], 0.95), 0.0);
    }
}
