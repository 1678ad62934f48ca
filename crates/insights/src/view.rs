//! The JSON shapes of findings, shared by the API, alert payloads and the browser, so an
//! anomaly reads the same wherever it is shown.

use chrono::{DateTime, NaiveDate, Utc};
use cloudspend_core::{AnomalyId, Money};
use cloudspend_store::{AnomalyStatus, Recommendation, StoredAnomaly};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// CPU of an instance over an anomaly's days, where CloudWatch data was collected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CpuEvidence {
    pub p95: f64,
    pub average: f64,
    pub max: f64,
    pub points: usize,
}

/// One component of an anomaly, judged against its own expectation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RootCause {
    /// service | account | region | usage_type | resource
    pub dimension: String,
    pub key: String,
    pub expected: Money,
    pub actual: Money,
    /// `actual - expected` over the anomaly's days.
    pub impact: Money,
    /// This component's share of its dimension's total change.
    pub share_percent: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuEvidence>,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AnomalyView {
    #[schema(value_type = String, format = Uuid)]
    pub id: AnomalyId,
    /// "total", "service:AmazonEC2", "account:123456789012" or "region:us-east-1".
    pub series: String,
    /// total | service | account | region
    pub dimension: String,
    /// The service, account or region; null for the total.
    pub key: Option<String>,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// Expected amount over the anomaly's days, and the band around it.
    pub expected: Money,
    pub lower: Money,
    pub upper: Money,
    pub actual: Money,
    pub impact: Money,
    pub impact_percent: f64,
    pub score: f64,
    /// low | medium | high | critical
    pub severity: String,
    #[schema(value_type = String)]
    pub status: AnomalyStatus,
    pub root_causes: Vec<RootCause>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Splits a series name into its dimension and key.
pub fn split_series(series: &str) -> (&str, Option<&str>) {
    match series.split_once(':') {
        Some((dimension, key)) => (dimension, Some(key)),
        None => (series, None),
    }
}

impl From<&StoredAnomaly> for AnomalyView {
    fn from(a: &StoredAnomaly) -> Self {
        let d = &a.detection;
        let (dimension, key) = split_series(&d.series);
        AnomalyView {
            id: a.id,
            series: d.series.clone(),
            dimension: dimension.to_string(),
            key: key.map(str::to_string),
            first_day: d.first_day,
            last_day: d.last_day,
            expected: d.expected,
            lower: d.lower,
            upper: d.upper,
            actual: d.actual,
            impact: d.impact,
            impact_percent: d.impact_percent,
            score: d.score,
            severity: d.severity.clone(),
            status: a.status,
            root_causes: serde_json::from_value(d.root_causes.clone()).unwrap_or_default(),
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// An idle, oversized or stopped-but-paying instance and what acting on it saves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecommendationView {
    /// idle | oversized | stopped_with_volumes
    pub kind: String,
    /// stop | downsize | delete_volumes (snapshot them first, or terminate the instance)
    pub action: String,
    pub instance_id: String,
    pub name: Option<String>,
    pub account_id: String,
    pub region: String,
    pub instance_type: String,
    pub state: String,
    /// The next size down, for oversized instances.
    pub suggested_type: Option<String>,
    /// CPU over the last 14 days; null for a stopped instance, which has none.
    pub cpu_p95: Option<f64>,
    pub cpu_max: Option<f64>,
    pub hours_of_data: Option<i64>,
    /// For a stopped instance: its EBS volumes and what each cost in the CUR's last 30 days.
    #[serde(default)]
    pub volumes: Vec<VolumeCost>,
    /// What the instance costs a month, and what acting on the finding saves.
    pub monthly_cost: Money,
    pub monthly_savings: Money,
    /// cur: the tenant's own CUR rows for the instance (last 30 days); list_price: on-demand
    /// list price (the CUR has no rows for this instance).
    pub cost_basis: String,
    pub evidence: String,
}

/// One EBS volume of a stopped instance and its cost over the CUR's last 30 days.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VolumeCost {
    pub volume_id: String,
    pub monthly_cost: Money,
}

impl RecommendationView {
    /// The stored form: the view is the detail, so what was computed is what is shown.
    pub fn to_record(&self, computed_at: DateTime<Utc>) -> Recommendation {
        Recommendation {
            kind: self.kind.clone(),
            resource_id: self.instance_id.clone(),
            monthly_savings: self.monthly_savings,
            detail: serde_json::to_value(self).expect("a recommendation serialises"),
            computed_at,
        }
    }

    pub fn from_record(record: &Recommendation) -> Option<Self> {
        serde_json::from_value(record.detail.clone()).ok()
    }
}

/// `part` as a percentage of `whole`, to one decimal, for display (0 when `whole` is zero).
/// Thresholds are never decided on this float: budgets compare exact money.
pub fn percent_of(part: Money, whole: Money) -> f64 {
    if whole == Money::ZERO {
        return 0.0;
    }
    ((part.nanos() as f64 / whole.nanos() as f64) * 1000.0).round() / 10.0
}
