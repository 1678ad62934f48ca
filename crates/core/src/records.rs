//! The normalised rows that collectors produce and the store keeps. Collectors map each AWS
//! response into these; nothing downstream sees an AWS SDK type.

use crate::money::Money;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Where a cost row came from. Both may cover the same day; readers pick one per day
/// (the CUR where it covers the day, Cost Explorer otherwise) and never add them.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum CostSource {
    /// Cost Explorer GetCostAndUsage.
    Ce,
    /// Cost and Usage Report (Athena or file import).
    Cur,
}

impl CostSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CostSource::Ce => "ce",
            CostSource::Cur => "cur",
        }
    }
}

impl fmt::Display for CostSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CostSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ce" => Ok(CostSource::Ce),
            "cur" => Ok(CostSource::Cur),
            other => Err(format!("unknown cost source `{other}`")),
        }
    }
}

/// One day of cost for one combination of dimensions. The natural key is every field except
/// the amounts, `usage_amount` and `estimated`: writing a row with the same key replaces it,
/// which is how an estimated day becomes final. Dimensions a source does not break down by
/// are the empty string, never NULL, so the key stays total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CostRecord {
    pub day: NaiveDate,
    pub source: CostSource,
    pub account_id: String,
    pub service: String,
    pub region: String,
    pub usage_type: String,
    /// CUR only: the resource the line item is for (instance id, bucket, ...).
    pub resource_id: String,
    /// CUR only: Usage, Credit, Refund, Tax, Fee, SavingsPlanCoveredUsage, ...
    pub line_item_type: String,
    pub unblended: Money,
    pub amortized: Money,
    /// Usage quantity as a decimal string (not money, but kept exact all the same).
    pub usage_amount: Option<String>,
    pub currency: String,
    /// Cost Explorer marks recent days as estimated; they are re-collected until final.
    pub estimated: bool,
}

/// A cost row's natural key: see [`CostRecord::natural_key`].
pub type CostKey<'a> = (
    NaiveDate,
    CostSource,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
);

impl CostRecord {
    /// What identifies the row (day, source, account, service, region, usage type, resource id,
    /// line item type), in the order the primary key of `daily_costs` sorts it (tenant aside):
    /// writes are unique by it, and an import's records come sorted by it.
    pub fn natural_key(&self) -> CostKey<'_> {
        (
            self.day,
            self.source,
            &self.account_id,
            &self.service,
            &self.region,
            &self.usage_type,
            &self.resource_id,
            &self.line_item_type,
        )
    }

    /// A Cost Explorer row: only account and service are broken down.
    pub fn from_cost_explorer(
        day: NaiveDate,
        account_id: impl Into<String>,
        service: impl Into<String>,
        unblended: Money,
        amortized: Money,
        currency: impl Into<String>,
        estimated: bool,
    ) -> Self {
        Self {
            day,
            source: CostSource::Ce,
            account_id: account_id.into(),
            service: service.into(),
            region: String::new(),
            usage_type: String::new(),
            resource_id: String::new(),
            line_item_type: String::new(),
            unblended,
            amortized,
            usage_amount: None,
            currency: currency.into(),
            estimated,
        }
    }
}

/// Source precedence, the one rule every figure follows: where the Cost and Usage Report has
/// rows for a day, that day comes from the CUR only; other days come from Cost Explorer. The
/// two are never added together.
pub fn one_source_per_day(rows: Vec<CostRecord>) -> Vec<CostRecord> {
    let cur_days: std::collections::BTreeSet<NaiveDate> = rows
        .iter()
        .filter(|r| r.source == CostSource::Cur)
        .map(|r| r.day)
        .collect();
    rows.into_iter()
        .filter(|r| {
            let wanted = if cur_days.contains(&r.day) {
                CostSource::Cur
            } else {
                CostSource::Ce
            };
            r.source == wanted
        })
        .collect()
}

/// An EC2 instance as last seen by DescribeInstances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Instance {
    pub account_id: String,
    pub region: String,
    pub instance_id: String,
    pub instance_type: String,
    /// pending | running | shutting-down | terminated | stopping | stopped
    pub state: String,
    pub launch_time: Option<DateTime<Utc>>,
    pub availability_zone: String,
    pub platform: String,
    pub tags: BTreeMap<String, String>,
    pub last_seen_at: DateTime<Utc>,
    /// The EBS volumes attached (block-device mappings). A stopped instance still pays for them.
    #[serde(default)]
    pub volume_ids: Vec<String>,
    /// When the instance entered its current state, where AWS says (the time in
    /// StateTransitionReason, e.g. "User initiated (2024-01-15 10:00:00 GMT)").
    #[serde(default)]
    pub state_since: Option<DateTime<Utc>>,
}

impl Instance {
    /// The `Name` tag, which is what people call their instances.
    pub fn name(&self) -> Option<&str> {
        self.tags.get("Name").map(String::as_str)
    }
}

/// One CloudWatch datapoint for one instance. Utilisation is a measurement, not money, so
/// floating point is right here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricPoint {
    pub instance_id: String,
    /// e.g. `CPUUtilization`
    pub metric: String,
    /// 300 for the recent 5-minute view, 3600 for hourly history.
    pub period_seconds: i64,
    pub timestamp: DateTime<Utc>,
    pub average: f64,
    pub maximum: f64,
    pub unit: String,
}

/// What a collection run did. Kept per run so operators can see ingestion health and what
/// CloudSpend's own AWS calls cost each tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

impl FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(RunStatus::Running),
            "succeeded" => Ok(RunStatus::Succeeded),
            "failed" => Ok(RunStatus::Failed),
            other => Err(format!("unknown run status `{other}`")),
        }
    }
}
