//! Costs summed per period and key in the database, for `/api/costs`: the server holds one row
//! per (day or month, key) however many resource-level rows a window covers (a CUR import writes
//! millions), and never more than the caller's row cap.
//!
//! Source precedence is the rule of [`cloudspend_core::records::one_source_per_day`], applied in
//! SQL: on a day with any CUR row only CUR rows count, other days come from Cost Explorer.

use crate::Result;
use async_trait::async_trait;
use chrono::NaiveDate;
use cloudspend_core::{Money, TenantId};

/// What the costs are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostGrouping {
    Service,
    Account,
    Region,
    UsageType,
    /// The resource id, for grouping by a tag's value (mapped by the caller).
    Resource,
}

impl CostGrouping {
    /// The `daily_costs` column, from a fixed list (never from input).
    pub(crate) fn column(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Account => "account_id",
            Self::Region => "region",
            Self::UsageType => "usage_type",
            Self::Resource => "resource_id",
        }
    }
}

/// One period's sum for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupedCost {
    /// `YYYY-MM-DD`, or `YYYY-MM` when grouped by month.
    pub period: String,
    pub key: String,
    pub amount: Money,
    /// Part of the amount is Cost Explorer's estimate.
    pub estimated: bool,
}

/// The sums of a window, in period then key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupedCosts {
    Rows {
        rows: Vec<GroupedCost>,
        /// The currency of the window's rows (None: no rows).
        currency: Option<String>,
    },
    /// More than the cap: nothing is returned, so nothing larger is ever held.
    TooMany { cap: usize },
}

#[async_trait]
pub trait CostGroups {
    /// Costs with `from <= day < to`, summed per day (or month) and `grouping`, after source
    /// precedence; at most `cap` rows.
    async fn grouped_costs(
        &self,
        tenant: TenantId,
        from: NaiveDate,
        to: NaiveDate,
        grouping: CostGrouping,
        monthly: bool,
        cap: usize,
    ) -> Result<GroupedCosts>;
}

/// The SQL of [`CostGroups`]. `$day_text` and `$month_text` turn the `day` column into
/// `YYYY-MM-DD` and `YYYY-MM` text in the backend's dialect (the one difference).
macro_rules! impl_cost_groups {
    ($store:ident, $day_text:literal, $month_text:literal) => {
        #[async_trait::async_trait]
        impl $crate::grouped_costs::CostGroups for $store {
            async fn grouped_costs(
                &self,
                tenant: cloudspend_core::TenantId,
                from: chrono::NaiveDate,
                to: chrono::NaiveDate,
                grouping: $crate::grouped_costs::CostGrouping,
                monthly: bool,
                cap: usize,
            ) -> $crate::Result<$crate::grouped_costs::GroupedCosts> {
                use $crate::grouped_costs::{GroupedCost, GroupedCosts};
                let period = if monthly { $month_text } else { $day_text };
                let column = grouping.column();
                let sql = format!(
                    "WITH g AS ( \
                       SELECT day, source, {column} AS key, SUM(unblended_nanos) AS amount, \
                              MAX(CASE WHEN estimated THEN 1 ELSE 0 END) AS estimated \
                       FROM daily_costs WHERE tenant_id = $1 AND day >= $2 AND day < $3 \
                       GROUP BY day, source, {column}), \
                     chosen AS ( \
                       SELECT * FROM g WHERE g.source = CASE WHEN EXISTS (SELECT 1 FROM g c \
                         WHERE c.day = g.day AND c.source = 'cur') THEN 'cur' ELSE 'ce' END) \
                     SELECT {period} AS period, key, CAST(SUM(amount) AS BIGINT), MAX(estimated) \
                     FROM chosen GROUP BY 1, 2 ORDER BY 1, 2 LIMIT $4"
                );
                let limit = i64::try_from(cap.saturating_add(1)).unwrap_or(i64::MAX);
                let rows: Vec<(String, String, i64, i32)> = sqlx::query_as(&sql)
                    .bind(tenant.0)
                    .bind(from)
                    .bind(to)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                if rows.len() > cap {
                    return Ok(GroupedCosts::TooMany { cap });
                }
                let currency: Option<String> = sqlx::query_scalar(
                    "SELECT currency FROM daily_costs WHERE tenant_id = $1 AND day >= $2 AND day < $3 LIMIT 1",
                )
                .bind(tenant.0)
                .bind(from)
                .bind(to)
                .fetch_optional(&self.pool)
                .await?;
                Ok(GroupedCosts::Rows {
                    rows: rows
                        .into_iter()
                        .map(|(period, key, nanos, estimated)| GroupedCost {
                            period,
                            key,
                            amount: cloudspend_core::Money::from_nanos(nanos),
                            estimated: estimated != 0,
                        })
                        .collect(),
                    currency,
                })
            }
        }
    };
}
pub(crate) use impl_cost_groups;
