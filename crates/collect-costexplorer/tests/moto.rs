//! End-to-end against the moto server (`scripts/test.sh` starts it and sets
//! CLOUDSPEND_TEST_MOTO_URL; without it these tests fail, they never skip). Cost Explorer data
//! is preset per account with moto's static-results API, one preset per distinct request, which
//! is how the second page (same query plus NextPageToken) gets its own answer.

use chrono::{Duration, NaiveDate, Utc};
use cloudspend_aws_access::RequestCounter;
use cloudspend_aws_access::testing::{self, Moto, role_in, unique_account_id};
use cloudspend_collect_costexplorer::{daily_costs, daily_totals};
use cloudspend_core::Money;
use cloudspend_core::TenantId;
use serde_json::{Value, json};
use std::str::FromStr;

fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn money(s: &str) -> Money {
    Money::from_str(s).unwrap()
}

fn grouped_day(day: NaiveDate, estimated: bool, groups: &[(&str, &str, &str, &str)]) -> Value {
    let groups: Vec<Value> = groups
        .iter()
        .map(|(service, account, unblended, amortized)| {
            json!({
                "Keys": [service, account],
                "Metrics": {
                    "UnblendedCost": {"Amount": unblended, "Unit": "USD"},
                    "AmortizedCost": {"Amount": amortized, "Unit": "USD"}
                }
            })
        })
        .collect();
    json!({
        "TimePeriod": {"Start": ymd(day), "End": ymd(day + Duration::days(1))},
        "Total": {},
        "Groups": groups,
        "Estimated": estimated
    })
}

fn total_day(day: NaiveDate, estimated: bool, amount: &str) -> Value {
    json!({
        "TimePeriod": {"Start": ymd(day), "End": ymd(day + Duration::days(1))},
        "Total": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}},
        "Groups": [],
        "Estimated": estimated
    })
}

#[tokio::test]
async fn grouped_costs_over_two_pages_keep_estimated_and_negative_days_exactly() {
    let _moto_state = testing::shared().await;
    let moto = Moto::from_env();
    let access = testing::aws_access().await;
    let account = unique_account_id();
    let linked = "210987654321";
    let today = Utc::now().date_naive();
    let (d1, d2, d3) = (
        today - Duration::days(10),
        today - Duration::days(9),
        today - Duration::days(8),
    );
    let group_definitions = json!([{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}]);
    moto.preset_cost_and_usage(
        &account,
        vec![
            json!({
                "GroupDefinitions": group_definitions,
                "ResultsByTime": [
                    grouped_day(d1, false, &[
                        ("Amazon Elastic Compute Cloud - Compute", account.as_str(), "12.3456789012", "11.50"),
                        ("Amazon Simple Storage Service", linked, "0.0000001", "0.0000001"),
                    ]),
                    grouped_day(d2, false, &[("Tax", account.as_str(), "-5.01", "-5.01")]),
                ],
                "NextPageToken": "page-2",
                "DimensionValueAttributes": []
            }),
            json!({
                "GroupDefinitions": group_definitions,
                "ResultsByTime": [
                    grouped_day(d3, true, &[("Amazon Elastic Compute Cloud - Compute", account.as_str(), "7.1", "7.25")]),
                ],
                "DimensionValueAttributes": []
            }),
        ],
    )
    .await;
    // The tenant works in eu-west-1; the collector still asks us-east-1, Cost Explorer's home.
    let config = access
        .sdk_config(TenantId::new(), &role_in(&account), "eu-west-1")
        .await
        .unwrap();
    let counter = RequestCounter::new();

    let batch = daily_costs(&config, d1, d3 + Duration::days(1), &counter)
        .await
        .unwrap();

    let got: Vec<(NaiveDate, &str, &str, Money, Money, &str, bool)> = batch
        .records
        .iter()
        .map(|r| {
            (
                r.day,
                r.account_id.as_str(),
                r.service.as_str(),
                r.unblended,
                r.amortized,
                r.currency.as_str(),
                r.estimated,
            )
        })
        .collect();
    let ec2 = "Amazon Elastic Compute Cloud - Compute";
    assert_eq!(
        got,
        vec![
            (
                d1,
                account.as_str(),
                ec2,
                money("12.3456789012"),
                money("11.50"),
                "USD",
                false
            ),
            (
                d1,
                linked,
                "Amazon Simple Storage Service",
                money("0.0000001"),
                money("0.0000001"),
                "USD",
                false
            ),
            (
                d2,
                account.as_str(),
                "Tax",
                money("-5.01"),
                money("-5.01"),
                "USD",
                false
            ),
            (
                d3,
                account.as_str(),
                ec2,
                money("7.1"),
                money("7.25"),
                "USD",
                true
            ),
        ]
    );
    assert!(
        batch
            .records
            .iter()
            .all(|r| r.source == cloudspend_core::records::CostSource::Ce && r.region.is_empty())
    );
    // 12.3456789012 + 0.0000001 - 5.01 + 7.1 = 14.4356790012 (nano-rounded: 14.435679001)
    assert_eq!(batch.total_unblended(), money("14.435679001"));
    assert_eq!(
        batch.total_unblended().round_to_cents().to_string(),
        "14.44"
    );
    assert_eq!(
        (batch.from, batch.to, batch.pages),
        (d1, d3 + Duration::days(1), 2)
    );
    let counts = counter.counts();
    assert_eq!(counts.cost_explorer_requests, 2);
    assert_eq!(counts.cost_explorer_cost(), money("0.02"));
}

#[tokio::test]
async fn daily_totals_for_the_diagnostics_endpoint_follow_every_page() {
    let _moto_state = testing::shared().await;
    let moto = Moto::from_env();
    let access = testing::aws_access().await;
    let account = unique_account_id();
    let today = Utc::now().date_naive();
    let (d1, d2, d3) = (
        today - Duration::days(3),
        today - Duration::days(2),
        today - Duration::days(1),
    );
    moto.preset_cost_and_usage(
        &account,
        vec![
            json!({
                "ResultsByTime": [total_day(d1, false, "100.005"), total_day(d2, false, "-3.333333333")],
                "NextPageToken": "next",
                "GroupDefinitions": [],
                "DimensionValueAttributes": []
            }),
            json!({
                "ResultsByTime": [total_day(d3, true, "0.01")],
                "GroupDefinitions": [],
                "DimensionValueAttributes": []
            }),
        ],
    )
    .await;
    let config = access
        .sdk_config(TenantId::new(), &role_in(&account), "ap-southeast-2")
        .await
        .unwrap();
    let counter = RequestCounter::new();

    let days = daily_totals(&config, d1, today, &counter).await.unwrap();

    let got: Vec<(NaiveDate, Money, &str, bool)> = days
        .iter()
        .map(|d| (d.day, d.amount, d.unit.as_str(), d.estimated))
        .collect();
    assert_eq!(
        got,
        vec![
            (d1, money("100.005"), "USD", false),
            (d2, money("-3.333333333"), "USD", false),
            (d3, money("0.01"), "USD", true),
        ]
    );
    let total: Money = days.iter().map(|d| d.amount).sum();
    assert_eq!(total, money("96.681666667"));
    assert_eq!(total.round_to_cents().to_string(), "96.68");
    assert_eq!(counter.counts().cost_explorer_requests, 2);
}

#[tokio::test]
async fn an_account_with_no_preset_costs_is_an_empty_batch() {
    let _moto_state = testing::shared().await;
    let access = testing::aws_access().await;
    let account = unique_account_id();
    let config = access
        .sdk_config(TenantId::new(), &role_in(&account), "us-east-1")
        .await
        .unwrap();
    let today = Utc::now().date_naive();
    let batch = daily_costs(
        &config,
        today - Duration::days(3),
        today,
        &RequestCounter::new(),
    )
    .await
    .unwrap();
    assert!(batch.records.is_empty());
    assert_eq!(batch.pages, 1);
}
