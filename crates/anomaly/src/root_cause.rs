//! Root cause: which components of a series (services, accounts, regions, usage types, resource
//! ids; each dimension a full breakdown of the total) explain an anomaly, ranked by their share of
//! the impact.
//!
//! Each component is judged against its *own* expectation, formed by the same model as the
//! detector from the days before the anomaly only (frozen at its first day, so a long anomaly does
//! not become its own baseline). A component with no history (a service that just appeared)
//! expected nothing, so all of it is impact.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use cloudspend_core::Money;
use serde::{Deserialize, Serialize};

use crate::cost::{Config, CostPoint, Model, to_f64, to_money};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Service,
    Account,
    Region,
    UsageType,
    ResourceId,
}

/// Component series by dimension, then by key (service name, account id, ...).
pub type Components = BTreeMap<Dimension, BTreeMap<String, Vec<CostPoint>>>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contributor {
    pub dimension: Dimension,
    pub key: String,
    /// Sums over the anomaly window; `delta == actual - expected` exactly.
    pub expected: Money,
    pub actual: Money,
    pub delta: Money,
    /// `delta` over the sum of deltas of its dimension: the shares of a dimension add up to 1, a
    /// component that fell while the total rose has a negative share.
    pub share: f64,
}

/// Ranks contributors per dimension, largest positive delta first. Dimensions come in their
/// declared order; components whose delta is zero are left out.
pub fn rank_contributors(
    components: &Components,
    first_day: NaiveDate,
    last_day: NaiveDate,
    config: &Config,
) -> Vec<Contributor> {
    let mut out = Vec::new();
    for (&dimension, series) in components {
        let mut rows: Vec<Contributor> = series
            .iter()
            .map(|(key, points)| {
                let (expected, actual) = window_totals(points, first_day, last_day, config);
                Contributor {
                    dimension,
                    key: key.clone(),
                    expected,
                    actual,
                    delta: actual - expected,
                    share: 0.0,
                }
            })
            .filter(|c| c.delta != Money::ZERO)
            .collect();
        let total: i64 = rows.iter().map(|c| c.delta.nanos()).sum();
        for c in &mut rows {
            c.share = if total == 0 {
                0.0
            } else {
                c.delta.nanos() as f64 / total as f64
            };
        }
        rows.sort_by(|a, b| b.delta.cmp(&a.delta).then_with(|| a.key.cmp(&b.key)));
        out.extend(rows);
    }
    out
}

/// (expected, actual) summed over the window, the expectation frozen at `first_day`.
fn window_totals(
    points: &[CostPoint],
    first_day: NaiveDate,
    last_day: NaiveDate,
    config: &Config,
) -> (Money, Money) {
    let actual: Money = points
        .iter()
        .filter(|p| p.day >= first_day && p.day <= last_day)
        .map(|p| p.amount)
        .sum();
    let mut history: Vec<&CostPoint> = points.iter().filter(|p| p.day < first_day).collect();
    history.sort_by_key(|p| p.day);
    let Some(start) = history.first().map(|p| p.day) else {
        return (Money::ZERO, actual);
    };
    let n = usize::try_from((first_day - start).num_days()).unwrap_or(0);
    let mut daily = vec![(0.0, false); n];
    for p in &history {
        let i = (p.day - start).num_days() as usize;
        daily[i].0 += to_f64(p.amount);
        daily[i].1 |= p.estimated;
    }
    let mut model = Model::new(config, start, n);
    for &(x, estimated) in &daily {
        let forecast = model.forecast();
        model.push((!estimated && x >= 0.0).then_some(x), forecast.as_ref());
    }
    // The expectation for every window day is the one formed on its first day.
    let days = (last_day - first_day).num_days() + 1;
    let expected = model.forecast().map_or(0.0, |f| f.expected.max(0.0)) * days as f64;
    (to_money(expected), actual)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(start: NaiveDate, days: u64, amount: i64) -> Vec<CostPoint> {
        (0..days)
            .map(|d| {
                CostPoint::new(
                    start + chrono::Days::new(d),
                    Money::from_nanos(amount * 1_000_000_000),
                )
            })
            .collect()
    }

    #[test]
    fn ranks_the_component_that_grew_first_with_its_share_of_the_impact() {
        let start = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
        let spike = start + chrono::Days::new(30);
        let mut ec2 = flat(start, 31, 100);
        ec2[30].amount = Money::from_nanos(400 * 1_000_000_000);
        let s3 = flat(start, 31, 50);
        let mut lambda = flat(start, 31, 10);
        lambda[30].amount = Money::from_nanos(110 * 1_000_000_000);
        let mut services = BTreeMap::new();
        services.insert("AmazonEC2".to_string(), ec2);
        services.insert("AmazonS3".to_string(), s3);
        services.insert("AWSLambda".to_string(), lambda);
        // A service that did not exist before the anomaly: all of it is impact.
        services.insert(
            "AmazonSageMaker".to_string(),
            vec![CostPoint::new(
                spike,
                Money::from_nanos(100 * 1_000_000_000),
            )],
        );
        let components: Components = [(Dimension::Service, services)].into_iter().collect();
        let ranked = rank_contributors(&components, spike, spike, &Config::default());
        let keys: Vec<&str> = ranked.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["AmazonEC2", "AWSLambda", "AmazonSageMaker"]);
        assert_eq!(ranked[0].delta, Money::from_nanos(300 * 1_000_000_000));
        assert!((ranked[0].share - 0.6).abs() < 1e-9, "{ranked:?}");
        assert!((ranked.iter().map(|c| c.share).sum::<f64>() - 1.0).abs() < 1e-9);
    }
}
