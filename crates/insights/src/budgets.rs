//! The budget guard: a tenant's monthly budget against its month-to-date spend and month-end
//! forecast, and the alerts raised when a threshold is crossed.
//!
//! Figures come from the daily total rollups (CUR over Cost Explorer per day), the same ones the
//! dashboard sums, with the dashboard's forecast method. [`check`] runs after every collection
//! (from [`crate::refresh`]) and when a budget is saved: each newly crossed threshold (the highest
//! one per kind, so a jump from 10% to 120% is one alert, not three) is queued once per
//! subscription with subject `budget:<month>:<actual|forecast>:<percent>`, and remembered in the
//! budget's alerted state for the month.

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use cloudspend_core::{Money, TenantId};
use cloudspend_store::{Budget, BudgetAlerted, NewDelivery, RollupDimension, Store, StoreError};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A budget with where the month stands against it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct BudgetStatus {
    /// YYYY-MM: the month the figures are for.
    pub month: String,
    pub amount: Money,
    pub currency: String,
    /// Month-to-date spend.
    pub spent: Money,
    /// Month-end forecast, and its ~90% interval.
    pub forecast: Money,
    pub forecast_lower: Money,
    pub forecast_upper: Money,
    pub forecast_method: String,
    /// spent / amount, in percent (one decimal).
    pub percent_spent: f64,
    /// forecast / amount, in percent (one decimal).
    pub percent_forecast: f64,
    /// Alert thresholds in percent of the amount.
    pub actual_thresholds: Vec<u32>,
    pub forecast_thresholds: Vec<u32>,
    /// Thresholds crossed (and alerted) this month.
    pub crossed: Crossed,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Crossed {
    pub actual: Vec<u32>,
    pub forecast: Vec<u32>,
}

use crate::forecast::{MonthForecast, history_from, month_forecast};
use crate::view::percent_of as percent;

/// Month-to-date and the month-end forecast for the month of `today`: the dashboard's
/// ([`crate::forecast::month_forecast`]).
pub fn month_figures(
    totals: &BTreeMap<NaiveDate, (Money, bool)>,
    today: NaiveDate,
) -> MonthForecast {
    month_forecast(totals, today, today)
}

/// Whether `part` is at least `threshold` percent of `whole`, exactly (no floating point).
fn reaches(part: Money, whole: Money, threshold: u32) -> bool {
    i128::from(part.nanos()) * 100 >= i128::from(threshold) * i128::from(whole.nanos())
}

fn month_key(day: NaiveDate) -> String {
    format!("{:04}-{:02}", day.year(), day.month())
}

async fn figures(
    store: &dyn Store,
    tenant: TenantId,
    today: NaiveDate,
) -> Result<MonthForecast, StoreError> {
    // The forecast's history too, as the dashboard reads it.
    let from = history_from(today);
    let days = store
        .cost_rollup_days(
            tenant,
            RollupDimension::Total,
            from,
            today + Days::new(1),
            None,
        )
        .await?;
    let totals = days
        .into_iter()
        .map(|r| (r.day, (r.amount, r.estimated)))
        .collect();
    Ok(month_figures(&totals, today))
}

fn status_of(budget: &Budget, today: NaiveDate, figures: MonthForecast) -> BudgetStatus {
    let month = month_key(today);
    let spent = figures.month_to_date;
    let forecast = figures.forecast;
    let crossed = if budget.alerted.month == month {
        Crossed {
            actual: budget.alerted.actual.clone(),
            forecast: budget.alerted.forecast.clone(),
        }
    } else {
        Crossed::default()
    };
    BudgetStatus {
        month,
        amount: budget.amount,
        currency: budget.currency.clone(),
        spent,
        forecast,
        forecast_lower: figures.lower,
        forecast_upper: figures.upper,
        forecast_method: figures.method,
        percent_spent: percent(spent, budget.amount),
        percent_forecast: percent(forecast, budget.amount),
        actual_thresholds: budget.actual_thresholds.clone(),
        forecast_thresholds: budget.forecast_thresholds.clone(),
        crossed,
        updated_at: budget.updated_at,
    }
}

/// The tenant's budget and this month's standing; None without a budget.
pub async fn status(
    store: &dyn Store,
    tenant: TenantId,
    today: NaiveDate,
) -> Result<Option<BudgetStatus>, StoreError> {
    let Some(budget) = store.budget(tenant).await? else {
        return Ok(None);
    };
    let figures = figures(store, tenant, today).await?;
    Ok(Some(status_of(&budget, today, figures)))
}

/// The dashboard's `budget` field: amount, spent, forecast and percents, or null.
pub async fn dashboard_value(
    store: &dyn Store,
    tenant: TenantId,
    today: NaiveDate,
) -> Result<Option<serde_json::Value>, StoreError> {
    Ok(status(store, tenant, today)
        .await?
        .map(|s| serde_json::to_value(s).expect("a budget status serialises")))
}

/// The highest threshold of `thresholds` that `part` reaches and that was not alerted yet,
/// with every threshold it reaches (all of them are then alerted).
fn newly_crossed(
    thresholds: &[u32],
    alerted: &[u32],
    part: Money,
    whole: Money,
) -> Option<(u32, Vec<u32>)> {
    let reached: Vec<u32> = thresholds
        .iter()
        .copied()
        .filter(|t| reaches(part, whole, *t))
        .collect();
    let highest = reached
        .iter()
        .copied()
        .filter(|t| !alerted.contains(t))
        .max()?;
    Some((highest, reached))
}

/// Checks the budget of the month of `now` and queues an alert to every subscription for each
/// newly crossed threshold. Returns how many deliveries were queued.
pub async fn check(
    store: &dyn Store,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let Some(budget) = store.budget(tenant).await? else {
        return Ok(0);
    };
    let today = now.date_naive();
    let status = status_of(&budget, today, figures(store, tenant, today).await?);
    let mut alerted = if budget.alerted.month == status.month {
        budget.alerted.clone()
    } else {
        BudgetAlerted {
            month: status.month.clone(),
            ..Default::default()
        }
    };
    let mut crossings = Vec::new();
    if let Some((threshold, reached)) = newly_crossed(
        &budget.actual_thresholds,
        &alerted.actual,
        status.spent,
        budget.amount,
    ) {
        crossings.push(("actual", threshold, status.spent, status.percent_spent));
        alerted.actual = merge(&alerted.actual, &reached);
    }
    if let Some((threshold, reached)) = newly_crossed(
        &budget.forecast_thresholds,
        &alerted.forecast,
        status.forecast,
        budget.amount,
    ) {
        crossings.push((
            "forecast",
            threshold,
            status.forecast,
            status.percent_forecast,
        ));
        alerted.forecast = merge(&alerted.forecast, &reached);
    }
    if alerted == budget.alerted {
        return Ok(0);
    }
    let mut queued = Vec::new();
    for subscription in store.subscriptions(tenant).await? {
        for (kind, threshold, figure, pct) in &crossings {
            queued.push(NewDelivery {
                subscription_id: subscription.id,
                kind: "budget".into(),
                subject_key: format!("budget:{}:{kind}:{threshold}", status.month),
                payload: json!({
                    "event": "budget.threshold_crossed",
                    "tenant_id": tenant,
                    "subscription": {"id": subscription.id, "name": subscription.name},
                    "month": status.month,
                    "kind": kind,
                    "threshold_percent": threshold,
                    "amount": budget.amount,
                    "currency": budget.currency,
                    "figure": figure,
                    "percent": pct,
                    "spent": status.spent,
                    "forecast": status.forecast,
                    "message": format!(
                        "{} {} is {pct}% of the {} budget of {} {} (threshold {threshold}%)",
                        if *kind == "actual" { "Month-to-date spend" } else { "The month-end forecast" },
                        figure, status.month, budget.amount, budget.currency
                    ),
                }),
                next_attempt_at: now,
            });
        }
    }
    let count = store.enqueue_deliveries(tenant, &queued).await?;
    store.set_budget_alerted(tenant, &alerted).await?;
    Ok(count)
}

fn merge(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut all: Vec<u32> = a.iter().chain(b).copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        s.parse().unwrap()
    }

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    #[test]
    fn forecast_adds_the_final_run_rate_for_the_remaining_days() {
        let totals: BTreeMap<_, _> = (1..=10).map(|day| (d(day), (m("10"), day == 10))).collect();
        let f = month_figures(&totals, d(10));
        assert_eq!(f.month_to_date, m("100"));
        // Nine final days are too few for the weekday model: spent through the 9th at its run
        // rate (10.00 a day) for the month, today (partial) and the 20 days after it included.
        assert_eq!(f.forecast, m("300"));
        assert!(f.lower < f.forecast && f.forecast < f.upper, "{f:?}");
        assert!(f.method.contains("21 days left"), "{}", f.method);
    }

    #[test]
    fn thresholds_compare_exactly_and_only_the_highest_new_one_alerts() {
        assert!(reaches(m("800"), m("1000"), 80));
        assert!(!reaches(m("799.999999999"), m("1000"), 80));
        assert_eq!(
            newly_crossed(&[50, 80, 100], &[], m("850"), m("1000")),
            Some((80, vec![50, 80]))
        );
        assert_eq!(
            newly_crossed(&[50, 80, 100], &[50, 80], m("850"), m("1000")),
            None
        );
        assert_eq!(percent(m("333.33"), m("1000")), 33.3);
    }
}
