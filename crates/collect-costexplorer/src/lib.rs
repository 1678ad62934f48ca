//! Cost Explorer collector: daily UnblendedCost and AmortizedCost per service and linked
//! account with GetCostAndUsage, every page, amounts parsed exactly into
//! [`cloudspend_core::Money`] (decimal strings, never `f64`), mapped to
//! [`cloudspend_core::records::CostRecord`]s with `source = ce`.
//!
//! It never touches the database. What Cost Explorer says is kept as said: recent days come
//! back `Estimated` (the caller re-collects them until final), negative amounts are credits and
//! refunds and stay negative, the currency is the `Unit` AWS reports.
//!
//! Windows are `[from, to)` days (Cost Explorer's end date is exclusive). Cost Explorer keeps
//! about 13 months of daily history; a start before [`earliest_start`] is moved up to it (and
//! the window actually fetched is returned), because asking for more fails the whole call with
//! `BillExpirationException`.
//!
//! Every request costs the tenant $0.01, pages included: count them with the
//! [`RequestCounter`] passed in.
//!
//! Layout: [`daily_costs`] (grouped, for collections) and [`daily_totals`] (ungrouped, for the
//! `/test-cost` diagnostics) over `fetch_pages` (the NextPageToken loop: the SDK has no
//! paginator for GetCostAndUsage).

use aws_sdk_costexplorer::Client;
use aws_sdk_costexplorer::operation::get_cost_and_usage::GetCostAndUsageOutput;
use aws_sdk_costexplorer::types::{
    DateInterval, Granularity, GroupDefinition, GroupDefinitionType, MetricValue,
};
use aws_types::SdkConfig;
use chrono::{Datelike, Months, NaiveDate, Utc};
use cloudspend_aws_access::{AwsError, RequestCounter, cost_explorer_config};
use cloudspend_core::Money;
use cloudspend_core::records::CostRecord;
use std::collections::HashMap;
use std::str::FromStr;

/// The IAM permission this collector needs.
pub const PERMISSION: &str = "ce:GetCostAndUsage";

const UNBLENDED: &str = "UnblendedCost";
const AMORTIZED: &str = "AmortizedCost";
/// A runaway NextPageToken loop would bill the tenant $0.01 per turn: stop long before that hurts.
const MAX_PAGES: usize = 500;

/// What [`daily_costs`] fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CostBatch {
    /// First day fetched (after moving up to [`earliest_start`]).
    pub from: NaiveDate,
    /// Day after the last day fetched (exclusive, as Cost Explorer counts).
    pub to: NaiveDate,
    /// One per (day, linked account, service) with any cost.
    pub records: Vec<CostRecord>,
    /// Every day Cost Explorer answered for, with or without cost, in order. A day it did not
    /// answer for says nothing: writers must not treat it as "no cost" (only these days may
    /// replace stored rows).
    pub days: Vec<NaiveDate>,
    /// GetCostAndUsage requests made (each billed $0.01).
    pub pages: usize,
}

impl CostBatch {
    /// Sum of the unblended amounts, exact.
    pub fn total_unblended(&self) -> Money {
        self.records.iter().map(|r| r.unblended).sum()
    }
}

/// One day's total UnblendedCost, as `/test-cost` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyTotal {
    pub day: NaiveDate,
    pub amount: Money,
    pub unit: String,
    pub estimated: bool,
}

/// The earliest start day Cost Explorer serves at daily granularity: the first day of the month
/// twelve months before `today`'s (the current month plus twelve full months).
pub fn earliest_start(today: NaiveDate) -> NaiveDate {
    let first_of_month = today.with_day(1).unwrap_or(today);
    first_of_month
        .checked_sub_months(Months::new(12))
        .unwrap_or(first_of_month)
}

/// Daily UnblendedCost and AmortizedCost for `[from, to)`, grouped by service and linked
/// account, all pages.
#[tracing::instrument(skip_all, fields(%from, %to), err)]
pub async fn daily_costs(
    config: &SdkConfig,
    from: NaiveDate,
    to: NaiveDate,
    counter: &RequestCounter,
) -> Result<CostBatch, AwsError> {
    let (from, to) = clamp_window(from, to, Utc::now().date_naive())?;
    let client = client(config, counter);
    let (outputs, pages) = fetch_pages(&client, from, to, true).await?;
    let mut records = Vec::new();
    let mut days = Vec::new();
    for output in &outputs {
        for result in output.results_by_time() {
            let day = start_day(result.time_period())?;
            days.push(day);
            for group in result.groups() {
                // GroupBy order is SERVICE, LINKED_ACCOUNT, so the keys come in that order.
                let [service, account] = group.keys() else {
                    return Err(unexpected(format!(
                        "a group with keys {:?}; expected [service, account]",
                        group.keys()
                    )));
                };
                let metrics = group.metrics().cloned().unwrap_or_default();
                let (unblended, unit) = amount(&metrics, UNBLENDED)?;
                let (amortized, _) = amount(&metrics, AMORTIZED)?;
                records.push(CostRecord::from_cost_explorer(
                    day,
                    account.as_str(),
                    service.as_str(),
                    unblended,
                    amortized,
                    unit,
                    result.estimated(),
                ));
            }
        }
    }
    days.sort();
    days.dedup();
    Ok(CostBatch {
        from,
        to,
        records,
        days,
        pages,
    })
}

/// Daily total UnblendedCost for `[from, to)`, not grouped: one row per day Cost Explorer returns.
#[tracing::instrument(skip_all, fields(%from, %to), err)]
pub async fn daily_totals(
    config: &SdkConfig,
    from: NaiveDate,
    to: NaiveDate,
    counter: &RequestCounter,
) -> Result<Vec<DailyTotal>, AwsError> {
    let (from, to) = clamp_window(from, to, Utc::now().date_naive())?;
    let client = client(config, counter);
    let (outputs, _) = fetch_pages(&client, from, to, false).await?;
    let mut days = Vec::new();
    for output in &outputs {
        for result in output.results_by_time() {
            let day = start_day(result.time_period())?;
            let total = result.total().cloned().unwrap_or_default();
            // A day without cost may come back without a total: that is zero, not missing data.
            let (amount, unit) = if total.contains_key(UNBLENDED) {
                amount(&total, UNBLENDED)?
            } else {
                (Money::ZERO, "USD".to_string())
            };
            days.push(DailyTotal {
                day,
                amount,
                unit,
                estimated: result.estimated(),
            });
        }
    }
    days.sort_by_key(|d| d.day);
    Ok(days)
}

fn client(config: &SdkConfig, counter: &RequestCounter) -> Client {
    Client::from_conf(
        aws_sdk_costexplorer::config::Builder::from(&cost_explorer_config(config))
            .interceptor(counter.clone())
            .build(),
    )
}

/// Validates `[from, to)`, moves `from` up to [`earliest_start`] and `to` back to tomorrow (a
/// window cannot cover days that have not started).
fn clamp_window(
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), AwsError> {
    if from >= to {
        return Err(AwsError::invalid_input(format!(
            "the window {from}..{to} is empty: `to` is exclusive and must be after `from`"
        )));
    }
    let from = from.max(earliest_start(today));
    let to = to.min(today.succ_opt().unwrap_or(today));
    if from >= to {
        return Err(AwsError::invalid_input(format!(
            "the window ends before {}, the earliest day Cost Explorer keeps (about 13 months)",
            earliest_start(today)
        )));
    }
    Ok((from, to))
}

/// Every page of one GetCostAndUsage query.
async fn fetch_pages(
    client: &Client,
    from: NaiveDate,
    to: NaiveDate,
    grouped: bool,
) -> Result<(Vec<GetCostAndUsageOutput>, usize), AwsError> {
    let mut outputs = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = client
            .get_cost_and_usage()
            .time_period(
                DateInterval::builder()
                    .start(from.format("%Y-%m-%d").to_string())
                    .end(to.format("%Y-%m-%d").to_string())
                    .build()
                    .map_err(|e| AwsError::invalid_input(e.to_string()))?,
            )
            .granularity(Granularity::Daily)
            .metrics(UNBLENDED)
            .set_next_page_token(token.clone());
        if grouped {
            request = request
                .metrics(AMORTIZED)
                .group_by(group("SERVICE"))
                .group_by(group("LINKED_ACCOUNT"));
        }
        let output = request
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(PERMISSION, e))?;
        let next = output
            .next_page_token()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        outputs.push(output);
        match next {
            None => break,
            Some(next) if Some(&next) == token.as_ref() => {
                return Err(unexpected(
                    "Cost Explorer returned the same NextPageToken twice".to_string(),
                ));
            }
            Some(_) if outputs.len() >= MAX_PAGES => {
                return Err(unexpected(format!(
                    "more than {MAX_PAGES} pages; narrow the window"
                )));
            }
            Some(next) => token = Some(next),
        }
    }
    let pages = outputs.len();
    Ok((outputs, pages))
}

fn group(key: &str) -> GroupDefinition {
    GroupDefinition::builder()
        .r#type(GroupDefinitionType::Dimension)
        .key(key)
        .build()
}

fn start_day(period: Option<&DateInterval>) -> Result<NaiveDate, AwsError> {
    let start = period.map(|p| p.start()).unwrap_or_default();
    NaiveDate::parse_from_str(start, "%Y-%m-%d").map_err(|_| {
        unexpected(format!(
            "a result whose TimePeriod.Start is `{start}`, not a date"
        ))
    })
}

/// The exact amount and its unit (currency) of one metric.
fn amount(metrics: &HashMap<String, MetricValue>, name: &str) -> Result<(Money, String), AwsError> {
    let value = metrics
        .get(name)
        .ok_or_else(|| unexpected(format!("a result without {name}")))?;
    let raw = value
        .amount()
        .ok_or_else(|| unexpected(format!("{name} without an Amount")))?;
    let money = Money::from_str(raw).map_err(|e| unexpected(format!("{name}: {e}")))?;
    Ok((money, value.unit().unwrap_or("USD").to_string()))
}

fn unexpected(message: String) -> AwsError {
    AwsError::unexpected_response(PERMISSION, format!("Cost Explorer sent {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_costexplorer::operation::get_cost_and_usage::GetCostAndUsageError;
    use aws_sdk_costexplorer::types::{Group, ResultByTime};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::error::ErrorMetadata;
    use cloudspend_aws_access::ErrorKind;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn metric(amount: &str) -> MetricValue {
        MetricValue::builder().amount(amount).unit("USD").build()
    }

    fn result(
        start: &str,
        end: &str,
        estimated: bool,
        groups: Vec<(&str, &str, &str, &str)>,
    ) -> ResultByTime {
        let mut b = ResultByTime::builder()
            .time_period(
                DateInterval::builder()
                    .start(start)
                    .end(end)
                    .build()
                    .unwrap(),
            )
            .estimated(estimated);
        for (service, account, unblended, amortized) in groups {
            b = b.groups(
                Group::builder()
                    .keys(service)
                    .keys(account)
                    .metrics(UNBLENDED, metric(unblended))
                    .metrics(AMORTIZED, metric(amortized))
                    .build(),
            );
        }
        b.build()
    }

    fn counted_client(rules: &[&aws_smithy_mocks::Rule], counter: &RequestCounter) -> Client {
        let counter = counter.clone();
        mock_client!(aws_sdk_costexplorer, RuleMode::MatchAny, rules, move |b| b
            .interceptor(counter.clone()))
    }

    #[tokio::test]
    async fn all_pages_map_exactly_with_estimated_and_negative_days() {
        let first = mock!(Client::get_cost_and_usage)
            .match_requests(|r| r.next_page_token().is_none())
            .then_output(|| {
                GetCostAndUsageOutput::builder()
                    .results_by_time(result(
                        "2026-03-01",
                        "2026-03-02",
                        false,
                        vec![("Amazon EC2", "111122223333", "12.3456789012", "12.30")],
                    ))
                    .next_page_token("p2")
                    .build()
            });
        let second = mock!(Client::get_cost_and_usage)
            .match_requests(|r| r.next_page_token() == Some("p2"))
            .then_output(|| {
                GetCostAndUsageOutput::builder()
                    .results_by_time(result(
                        "2026-03-02",
                        "2026-03-03",
                        true,
                        vec![("Tax", "111122223333", "-5.01", "-5.01")],
                    ))
                    .build()
            });
        let counter = RequestCounter::new();
        let client = counted_client(&[&first, &second], &counter);

        let (outputs, pages) = fetch_pages(&client, day("2026-03-01"), day("2026-03-03"), true)
            .await
            .unwrap();

        assert_eq!(pages, 2);
        assert_eq!(outputs.len(), 2);
        let counts = counter.counts();
        assert_eq!(counts.cost_explorer_requests, 2, "{counts:?}");
        assert_eq!(counts.cost_explorer_cost().to_string(), "0.02");
        let group = &outputs[0].results_by_time()[0].groups()[0];
        let (money, unit) = amount(group.metrics().unwrap(), UNBLENDED).unwrap();
        assert_eq!(money, Money::from_str("12.3456789012").unwrap());
        assert_eq!(unit, "USD");
        let negative = &outputs[1].results_by_time()[0];
        assert!(negative.estimated());
        assert_eq!(
            amount(negative.groups()[0].metrics().unwrap(), AMORTIZED)
                .unwrap()
                .0,
            Money::from_str("-5.01").unwrap()
        );
    }

    #[tokio::test]
    async fn a_repeated_page_token_stops_instead_of_billing_forever() {
        let looping = mock!(Client::get_cost_and_usage).then_output(|| {
            GetCostAndUsageOutput::builder()
                .next_page_token("same")
                .build()
        });
        let client = mock_client!(aws_sdk_costexplorer, RuleMode::MatchAny, [&looping]);
        let err = fetch_pages(&client, day("2026-03-01"), day("2026-03-03"), false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("same NextPageToken"), "{err}");
    }

    #[tokio::test]
    async fn access_denied_names_ce_permission() {
        let denied = mock!(Client::get_cost_and_usage).then_error(|| {
            GetCostAndUsageError::generic(
                ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("User is not authorized to perform: ce:GetCostAndUsage")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_costexplorer, [&denied]);
        let err = fetch_pages(&client, day("2026-03-01"), day("2026-03-02"), true)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AccessDenied);
        assert_eq!(err.code(), Some("AccessDeniedException"));
        assert!(err.hint().unwrap().contains("ce:GetCostAndUsage"));
    }

    #[test]
    fn window_is_clamped_to_thirteen_months_and_tomorrow() {
        let today = day("2026-05-14");
        assert_eq!(earliest_start(today), day("2025-05-01"));
        assert_eq!(
            clamp_window(day("2024-01-01"), day("2026-06-01"), today).unwrap(),
            (day("2025-05-01"), day("2026-05-15"))
        );
        assert!(clamp_window(day("2026-05-02"), day("2026-05-02"), today).is_err());
        assert!(clamp_window(day("2020-01-01"), day("2020-02-01"), today).is_err());
    }

    #[test]
    fn amounts_are_never_floats() {
        let metrics = HashMap::from([(UNBLENDED.to_string(), metric("0.1000000001"))]);
        assert_eq!(amount(&metrics, UNBLENDED).unwrap().0.nanos(), 100_000_000);
        let bad = HashMap::from([(UNBLENDED.to_string(), metric("ten dollars"))]);
        assert!(amount(&bad, UNBLENDED).is_err());
    }
}
