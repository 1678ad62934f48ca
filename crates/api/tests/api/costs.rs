//! Stored cost reads: exact sums, one source per day (CUR over Cost Explorer), CSV equal to
//! JSON, and nothing across tenants.

use crate::common::TestApp;
use chrono::{Duration, NaiveDate, Utc};
use cloudspend_core::Money;
use cloudspend_core::records::{CostRecord, CostSource, Instance, MetricPoint};
use reqwest::StatusCode;
use std::collections::BTreeMap;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, d).unwrap()
}

fn ce(d: u32, account: &str, service: &str, amount: &str, estimated: bool) -> CostRecord {
    let m: Money = amount.parse().unwrap();
    CostRecord::from_cost_explorer(day(d), account, service, m, m, "USD", estimated)
}

#[tokio::test]
async fn costs_are_exact_one_source_per_day_and_the_csv_equals_the_json() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let tenant = ana.tenant_id.parse().unwrap();
    let mut cur = ce(2, "111111111111", "EC2", "7.25", false);
    cur.source = CostSource::Cur;
    cur.resource_id = "i-1".into();
    app.store
        .upsert_daily_costs(
            tenant,
            &[
                ce(1, "111111111111", "EC2", "10.10", false),
                ce(1, "222222222222", "S3", "0.015", false),
                ce(2, "111111111111", "EC2", "99.99", false), // superseded by the CUR for day 2
                cur,
                ce(3, "111111111111", "Refund", "-2.50", true),
            ],
        )
        .await
        .unwrap();
    let base = "/api/costs?from=2026-10-01&to=2026-10-04";
    let by_service = app.get(base, Some(&ana.token)).await;
    assert_eq!(by_service.status, StatusCode::OK, "{}", by_service.text);
    assert_eq!(by_service.body["total"], "14.865");
    assert_eq!(by_service.body["groups"][0]["key"], "EC2");
    assert_eq!(by_service.body["groups"][0]["total"], "17.35");
    let points: Vec<(String, String, String, bool)> = by_service.body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["period"].as_str().unwrap().into(),
                p["key"].as_str().unwrap().into(),
                p["amount"].as_str().unwrap().into(),
                p["estimated"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        points,
        vec![
            ("2026-10-01".into(), "EC2".into(), "10.10".into(), false),
            ("2026-10-01".into(), "S3".into(), "0.015".into(), false),
            ("2026-10-02".into(), "EC2".into(), "7.25".into(), false),
            ("2026-10-03".into(), "Refund".into(), "-2.50".into(), true),
        ]
    );

    let monthly = app
        .get(
            &format!("{base}&group_by=account&granularity=month"),
            Some(&ana.token),
        )
        .await;
    assert_eq!(monthly.body["points"].as_array().unwrap().len(), 2);
    assert_eq!(monthly.body["total"], "14.865");

    let csv = app
        .get(&format!("{base}&format=csv"), Some(&ana.token))
        .await;
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv_total: Money = csv
        .text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse::<Money>().unwrap())
        .sum();
    assert_eq!(
        csv_total.to_string(),
        "14.865",
        "CSV export equals the JSON"
    );
    assert_eq!(csv.text.lines().count(), 5);

    for (query, field) in [
        ("group_by=team", "group_by"),
        ("granularity=week", "granularity"),
        ("from=2026-13-01", "from"),
        ("format=xml", "format"),
    ] {
        let reply = app
            .get(&format!("/api/costs?{query}"), Some(&ana.token))
            .await;
        assert_eq!(reply.field(), Some(field), "{query}: {}", reply.text);
        assert!(reply.status.is_client_error());
    }
    let other = app.get(base, Some(&bob.token)).await;
    assert_eq!(other.body["total"], "0.00");
    assert!(other.body["points"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn instances_and_their_cpu_are_per_tenant() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let tenant = ana.tenant_id.parse().unwrap();
    let now = Utc::now();
    app.store
        .upsert_instances(
            tenant,
            &[Instance {
                account_id: "111111111111".into(),
                region: "us-east-1".into(),
                instance_id: "i-0123456789abcdef0".into(),
                instance_type: "m5.large".into(),
                state: "running".into(),
                launch_time: Some(now - Duration::days(3)),
                availability_zone: "us-east-1a".into(),
                platform: "Linux/UNIX".into(),
                tags: BTreeMap::from([("Name".to_string(), "web".to_string())]),
                last_seen_at: now,
            }],
        )
        .await
        .unwrap();
    let point = |h: i64, v: f64| MetricPoint {
        instance_id: "i-0123456789abcdef0".into(),
        metric: "CPUUtilization".into(),
        period_seconds: 3600,
        timestamp: now - Duration::hours(h),
        average: v,
        maximum: v,
        unit: "Percent".into(),
    };
    app.store
        .upsert_metric_points(tenant, &[point(3, 12.5), point(2, 40.0)])
        .await
        .unwrap();
    let listed = app.get("/api/instances", Some(&ana.token)).await;
    assert_eq!(listed.body["instances"][0]["name"], "web");
    let cpu = app
        .get("/api/instances/i-0123456789abcdef0/cpu", Some(&ana.token))
        .await;
    assert_eq!(cpu.status, StatusCode::OK);
    let values: Vec<f64> = cpu.body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["average"].as_f64().unwrap())
        .collect();
    assert_eq!(values, vec![12.5, 40.0]);
    assert!(
        app.get("/api/instances", Some(&bob.token)).await.body["instances"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        app.get("/api/instances/i-0123456789abcdef0/cpu", Some(&bob.token))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}
