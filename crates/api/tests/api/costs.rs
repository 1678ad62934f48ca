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

/// The sums are made in the database and a window holds at most `costs_max_sums` of them: the
/// server never holds a window's raw rows (a CUR import writes millions a month). Beyond the cap
/// the caller is told how to narrow the question.
#[tokio::test]
async fn a_window_of_more_sums_than_the_cap_is_refused_with_what_to_ask_instead() {
    let app = TestApp::spawn_with(
        cloudspend_store::testing::fresh_postgres().await,
        cloudspend_api::ApiConfig {
            costs_max_sums: 4,
            ..Default::default()
        },
    )
    .await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let tenant = ana.tenant_id.parse().unwrap();
    let rows: Vec<CostRecord> = (1..=5)
        .map(|d| ce(d, "111111111111", "EC2", "1.01", false))
        .collect();
    app.store.upsert_daily_costs(tenant, &rows).await.unwrap();
    let daily = app
        .get("/api/costs?from=2026-10-01&to=2026-10-06", Some(&ana.token))
        .await;
    assert_eq!(
        (daily.status, daily.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("from")),
        "{}",
        daily.text
    );
    assert!(daily.text.contains("granularity=month"), "{}", daily.text);
    let monthly = app
        .get(
            "/api/costs?from=2026-10-01&to=2026-10-06&granularity=month",
            Some(&ana.token),
        )
        .await;
    assert_eq!(monthly.status, StatusCode::OK, "{}", monthly.text);
    assert_eq!(monthly.body["total"], "5.05");
    let four_days = app
        .get("/api/costs?from=2026-10-01&to=2026-10-05", Some(&ana.token))
        .await;
    assert_eq!(four_days.status, StatusCode::OK, "{}", four_days.text);
    assert_eq!(four_days.body["points"].as_array().unwrap().len(), 4);
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
                volume_ids: Vec::new(),
                state_since: None,
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

#[tokio::test]
async fn costs_group_by_a_tag_from_the_exports_and_ec2_with_untagged_rows_kept() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let tenant = ana.tenant_id.parse().unwrap();
    let cur = |d: u32, resource: &str, amount: &str| {
        let mut r = ce(d, "111111111111", "EC2", amount, false);
        r.source = CostSource::Cur;
        r.resource_id = resource.into();
        r
    };
    app.store
        .upsert_daily_costs(
            tenant,
            &[
                cur(1, "i-web", "10.00"),
                cur(1, "i-batch", "2.50"),
                cur(1, "vol-data", "1.25"),
                cur(1, "", "0.40"), // tax: no resource
                cur(2, "i-web", "11.00"),
                ce(3, "111111111111", "EC2", "5.00", false), // Cost Explorer: no resources
            ],
        )
        .await
        .unwrap();
    // The export tags i-web and the volume; EC2 tags i-batch (and i-web differently: the
    // export wins).
    let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    app.store
        .upsert_resource_tags(
            tenant,
            &BTreeMap::from([
                ("i-web".to_string(), tags(&[("team", "web")])),
                ("vol-data".to_string(), tags(&[("team", "data")])),
            ]),
            Utc::now(),
        )
        .await
        .unwrap();
    let instance = |id: &str, team: &str| Instance {
        account_id: "111111111111".into(),
        region: "us-east-1".into(),
        instance_id: id.into(),
        instance_type: "t3.micro".into(),
        state: "running".into(),
        launch_time: None,
        availability_zone: "us-east-1a".into(),
        platform: "Linux/UNIX".into(),
        tags: tags(&[("team", team)]),
        last_seen_at: Utc::now(),
        volume_ids: Vec::new(),
        state_since: None,
    };
    app.store
        .upsert_instances(
            tenant,
            &[instance("i-batch", "batch"), instance("i-web", "ignored")],
        )
        .await
        .unwrap();
    let reply = app
        .get(
            "/api/costs?from=2026-10-01&to=2026-10-04&group_by=tag:team&granularity=month",
            Some(&ana.token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let groups: Vec<(String, String)> = reply.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().into(),
                g["total"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            ("web".to_string(), "21.00".to_string()),
            ("(untagged)".to_string(), "5.40".to_string()),
            ("batch".to_string(), "2.50".to_string()),
            ("data".to_string(), "1.25".to_string()),
        ]
    );
    assert_eq!(reply.body["total"], "30.15");
    let csv = app
        .get(
            "/api/costs?from=2026-10-01&to=2026-10-04&group_by=tag:team&granularity=month&format=csv",
            Some(&ana.token),
        )
        .await;
    assert!(csv.text.contains("2026-10,web,21.00,false"), "{}", csv.text);
    let bad = app.get("/api/costs?group_by=tag:", Some(&ana.token)).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.field(), Some("group_by"));
    let bobs = app
        .get(
            "/api/costs?from=2026-10-01&to=2026-10-04&group_by=tag:team",
            Some(&bob.token),
        )
        .await;
    assert!(bobs.body["groups"].as_array().unwrap().is_empty());
}
