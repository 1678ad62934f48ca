//! Issue 3 end to end against moto: the /test-* diagnostics, stored collections (exact to the
//! cent, idempotent, no half-written window when AWS goes away), and the collect endpoints.

use crate::common::{Session, TestApp};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use cloudspend_aws_access::testing::{self, Moto, role_in, unique_account_id};
use cloudspend_collection::Collector;
use cloudspend_core::connection::CurLocation;
use cloudspend_core::records::RunStatus;
use cloudspend_core::{Money, TenantId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

/// Saves a role connection to `account` for the session's tenant (onboarding's job, done
/// directly here so these tests exercise collection alone).
async fn connect(app: &TestApp, session: &Session, account: &str) -> TenantId {
    let tenant: TenantId = session.tenant_id.parse().unwrap();
    let connection = cloudspend_aws_access::testing::role_connection(account, &REGIONS);
    app.store.put_connection(tenant, &connection).await.unwrap();
    tenant
}

struct Fleet {
    web: String,
    batch: String,
    db: String,
}

/// Three instances in two regions of `account`, `batch` stopped, and CPU datapoints for `web`
/// at 10, 20 and 30 percent in three 5-minute periods three hours ago.
async fn launch_fleet(account: &str) -> (Fleet, DateTime<Utc>) {
    let access = testing::aws_access().await;
    let creds = role_in(account);
    let tenant = TenantId::new();
    let use1 = aws_sdk_ec2::Client::new(
        &access
            .sdk_config(tenant, &creds, "us-east-1")
            .await
            .unwrap(),
    );
    let euw1 = aws_sdk_ec2::Client::new(
        &access
            .sdk_config(tenant, &creds, "eu-west-1")
            .await
            .unwrap(),
    );
    let web = testing::run_instance(&use1, &[("Name", "web-1")]).await;
    let batch = testing::run_instance(&use1, &[("Name", "batch")]).await;
    let db = testing::run_instance(&euw1, &[("Name", "db")]).await;
    use1.stop_instances()
        .instance_ids(&batch)
        .send()
        .await
        .unwrap();

    let cw = aws_sdk_cloudwatch::Client::new(
        &access
            .sdk_config(tenant, &creds, "us-east-1")
            .await
            .unwrap(),
    );
    let hour = Utc::now() - Duration::hours(3);
    let start = DateTime::from_timestamp(hour.timestamp() - hour.timestamp() % 3600, 0).unwrap();
    for (i, value) in [10.0, 20.0, 30.0].into_iter().enumerate() {
        let at = start + Duration::minutes(5 * i as i64);
        cw.put_metric_data()
            .namespace("AWS/EC2")
            .metric_data(
                MetricDatum::builder()
                    .metric_name("CPUUtilization")
                    .dimensions(Dimension::builder().name("InstanceId").value(&web).build())
                    .timestamp(aws_smithy_types::DateTime::from_secs(at.timestamp()))
                    .value(value)
                    .unit(StandardUnit::Percent)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    (Fleet { web, batch, db }, start)
}

fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn money(s: &str) -> Money {
    s.parse().unwrap()
}

/// A GetCostAndUsage day grouped by service and linked account.
fn grouped_day(day: NaiveDate, estimated: bool, groups: &[(&str, &str, &str)]) -> Value {
    let groups: Vec<Value> = groups
        .iter()
        .map(|(service, account, amount)| {
            json!({"Keys": [service, account], "Metrics": {
                "UnblendedCost": {"Amount": amount, "Unit": "USD"},
                "AmortizedCost": {"Amount": amount, "Unit": "USD"}}})
        })
        .collect();
    json!({"TimePeriod": {"Start": ymd(day), "End": ymd(day + Duration::days(1))}, "Total": {}, "Groups": groups, "Estimated": estimated})
}

fn total_day(day: NaiveDate, estimated: bool, amount: &str) -> Value {
    json!({"TimePeriod": {"Start": ymd(day), "End": ymd(day + Duration::days(1))},
           "Total": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}, "Groups": [], "Estimated": estimated})
}

#[tokio::test]
async fn diagnostics_read_the_tenants_account_through_its_role() {
    let _moto = testing::shared().await;
    let account = unique_account_id();
    let (fleet, cpu_start) = launch_fleet(&account).await;
    let today = Utc::now().date_naive();
    let (d1, d2, d3) = (
        today - Duration::days(3),
        today - Duration::days(2),
        today - Duration::days(1),
    );
    Moto::from_env()
        .preset_cost_and_usage(
            &account,
            vec![
                json!({"ResultsByTime": [total_day(d1, false, "10.10"), total_day(d2, false, "-2.50")], "NextPageToken": "page-2"}),
                json!({"ResultsByTime": [total_day(d3, true, "0.015")]}),
            ],
        )
        .await;
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    connect(&app, &ana, &account).await;
    let token = Some(ana.token.as_str());
    // What the month's AWS usage shows: (requests, Cost Explorer requests).
    let usage = || async {
        let collections = app.get("/api/collections", token).await;
        assert_eq!(collections.status, StatusCode::OK, "{}", collections.text);
        (
            collections.body["aws_requests_this_month"]
                .as_i64()
                .unwrap(),
            collections.body["cost_explorer_requests_this_month"]
                .as_i64()
                .unwrap(),
        )
    };
    let before_diagnostics = usage().await;

    let ec2 = app.get("/test-ec2", token).await;
    assert_eq!(ec2.status, StatusCode::OK, "{}", ec2.text);
    let instances = ec2.body.as_array().unwrap();
    assert_eq!(instances.len(), 3, "{}", ec2.text);
    let find = |id: &str| {
        instances
            .iter()
            .find(|i| i["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing: {}", ec2.text))
    };
    assert_eq!(
        (
            find(&fleet.web)["state"].as_str(),
            find(&fleet.web)["name"].as_str()
        ),
        (Some("running"), Some("web-1"))
    );
    assert_eq!(find(&fleet.web)["type"], "t3.micro");
    assert_eq!(find(&fleet.web)["region"], "us-east-1");
    assert!(find(&fleet.web)["launch_time"].is_string());
    assert_eq!(find(&fleet.batch)["state"], "stopped");
    assert_eq!(find(&fleet.db)["region"], "eu-west-1");

    let cpu = app.get(&format!("/test-cpu/{}", fleet.web), token).await;
    assert_eq!(cpu.status, StatusCode::OK, "{}", cpu.text);
    let points = cpu.body.as_array().unwrap();
    let got: Vec<(String, f64, String)> = points
        .iter()
        .map(|p| {
            (
                p["timestamp"].as_str().unwrap().to_string(),
                p["average"].as_f64().unwrap(),
                p["unit"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, f64, String)> = [10.0, 20.0, 30.0]
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (
                (cpu_start + Duration::minutes(5 * i as i64))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                *v,
                "Percent".to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected, "CPU datapoints, oldest first");

    let stopped = app.get(&format!("/test-cpu/{}", fleet.batch), token).await;
    assert_eq!(
        (stopped.status, stopped.body.as_array().map(Vec::len)),
        (StatusCode::OK, Some(0)),
        "{}",
        stopped.text
    );
    let unknown = app.get("/test-cpu/i-0123456789abcdef0", token).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let malformed = app.get("/test-cpu/web-1", token).await;
    assert_eq!(
        (malformed.status, malformed.field()),
        (StatusCode::BAD_REQUEST, Some("instance_id"))
    );

    // The live EC2 and CloudWatch calls count in the tenant's AWS usage, as a collection's do.
    let before_cost = usage().await;
    assert!(
        before_cost.0 > before_diagnostics.0 && before_cost.1 == before_diagnostics.1,
        "{before_diagnostics:?} -> {before_cost:?}"
    );
    let cost = app
        .get(
            &format!("/test-cost?from={}&to={}", ymd(d1), ymd(today)),
            token,
        )
        .await;
    assert_eq!(cost.status, StatusCode::OK, "{}", cost.text);
    // Two pages, two billed Cost Explorer requests, both counted.
    assert_eq!(usage().await, (before_cost.0 + 2, before_cost.1 + 2));
    let days: Vec<(String, String, bool)> = cost.body["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["day"].as_str().unwrap().into(),
                d["amount"].as_str().unwrap().into(),
                d["estimated"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        vec![
            (ymd(d1), "10.10".into(), false),
            (ymd(d2), "-2.50".into(), false),
            (ymd(d3), "0.015".into(), true)
        ]
    );
    assert_eq!(cost.body["total"], "7.615");
    assert_eq!(cost.body["unit"], "USD");
    let bad_day = app.get("/test-cost?from=yesterday", token).await;
    assert_eq!(
        (bad_day.status, bad_day.field()),
        (StatusCode::BAD_REQUEST, Some("from"))
    );

    // Each call is a billed Cost Explorer request: viewers may not make them, and a tenant
    // makes at most 10 an hour (the call above was the first; the refused ones do not count).
    app.signup("vic@example.com", "Vics").await;
    app.add_member(&ana.token, "vic@example.com", "viewer")
        .await;
    let vic = app.login("vic@example.com").await;
    let vic_token = vic.body["token"].as_str().unwrap().to_string();
    let viewer = app
        .call_with(
            reqwest::Method::GET,
            "/test-cost",
            Some(&vic_token),
            &[("x-tenant-id", ana.tenant_id.as_str())],
            None,
        )
        .await;
    assert_eq!(
        (viewer.status, viewer.code()),
        (StatusCode::FORBIDDEN, Some("insufficient_role"))
    );
    for call in 2..=10 {
        let again = app.get("/test-cost", token).await;
        assert_eq!(again.status, StatusCode::OK, "call {call}: {}", again.text);
    }
    let over = app.get("/test-cost", token).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS, "{}", over.text);
    assert!(over.headers.contains_key("retry-after"));
    // The allowance is the tenant's, kept in the database: another replica refuses as well.
    let replica =
        TestApp::spawn_with(app.store.clone(), cloudspend_api::ApiConfig::default()).await;
    let elsewhere = replica.get("/test-cost", token).await;
    assert_eq!(
        elsewhere.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        elsewhere.text
    );
}

/// The live EC2 and CloudWatch diagnostics are free to the tenant but not to AWS's rate limits
/// nor to the usage records: a script looping on them is stopped per tenant and hour.
#[tokio::test]
async fn the_live_diagnostics_are_limited_per_tenant_and_hour() {
    let _moto = testing::shared().await;
    let app = TestApp::spawn_with(
        cloudspend_store::testing::fresh_postgres().await,
        cloudspend_api::ApiConfig {
            diagnostics_per_hour: 2,
            ..Default::default()
        },
    )
    .await;
    let ana = app.signup("ana@example.com", "Acme").await;
    connect(&app, &ana, &unique_account_id()).await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    connect(&app, &bob, &unique_account_id()).await;
    for call in 1..=2 {
        let listed = app.get("/test-ec2", Some(&ana.token)).await;
        assert_eq!(
            listed.status,
            StatusCode::OK,
            "call {call}: {}",
            listed.text
        );
    }
    let over = app.get("/test-ec2", Some(&ana.token)).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS, "{}", over.text);
    assert!(over.headers.contains_key("retry-after"));
    assert!(over.text.contains("/test-ec2 ran 2 times"), "{}", over.text);
    // Each endpoint and each tenant has its own allowance.
    let cpu = app
        .get("/test-cpu/i-0123456789abcdef0", Some(&ana.token))
        .await;
    assert_eq!(cpu.status, StatusCode::NOT_FOUND, "{}", cpu.text);
    let other = app.get("/test-ec2", Some(&bob.token)).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
}

#[tokio::test]
async fn diagnostics_without_a_token_need_the_server_switch() {
    let _moto = testing::shared().await;
    let off = TestApp::spawn().await;
    let refused = off.get("/test-ec2", None).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, Some("test_endpoints_disabled"))
    );
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CLOUDSPEND_TEST_ENDPOINTS")
    );
    let bad_token = off.get("/test-ec2", Some("cst_wrong")).await;
    assert_eq!(
        bad_token.status,
        StatusCode::UNAUTHORIZED,
        "a bad token must not fall back to the server's account"
    );

    let config = cloudspend_api::ApiConfig {
        test_endpoints: true,
        ..Default::default()
    };
    let on = TestApp::spawn_with(cloudspend_store::testing::fresh_postgres().await, config).await;
    let listed = on.get("/test-ec2", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert!(listed.body.is_array());
    let cost = on.get("/test-cost", None).await;
    assert_eq!(cost.status, StatusCode::OK, "{}", cost.text);

    let ana = on.signup("ana@example.com", "Acme").await;
    let unconnected = on.get("/test-ec2", Some(&ana.token)).await;
    assert_eq!(
        (unconnected.status, unconnected.code()),
        (StatusCode::CONFLICT, Some("not_connected"))
    );
}

#[tokio::test]
async fn a_stored_collection_matches_the_source_exactly_and_collecting_twice_changes_nothing() {
    let _moto = testing::shared().await;
    let account = unique_account_id();
    let linked = "210987654321";
    let (fleet, _) = launch_fleet(&account).await;
    let today = Utc::now().date_naive();
    let (d1, d2, d3) = (
        today - Duration::days(20),
        today - Duration::days(19),
        today - Duration::days(1),
    );
    let ec2 = "Amazon Elastic Compute Cloud - Compute";
    Moto::from_env()
        .preset_cost_and_usage(
            &account,
            vec![
                json!({"ResultsByTime": [
                    grouped_day(d1, false, &[(ec2, account.as_str(), "12.3456789012"), ("Amazon S3", linked, "0.0000004")]),
                    grouped_day(d2, false, &[(ec2, account.as_str(), "11.00"), ("Refund", account.as_str(), "-4.25")]),
                ], "NextPageToken": "page-2"}),
                json!({"ResultsByTime": [grouped_day(d3, true, &[(ec2, account.as_str(), "9.99")])]}),
            ],
        )
        .await;
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let tenant = connect(&app, &ana, &account).await;
    let bob = app.signup("bob@example.com", "Bobco").await;

    for collector in Collector::ALL {
        let report = app.collections.run(tenant, collector).await.unwrap();
        assert_eq!(
            report.status,
            RunStatus::Succeeded,
            "{collector}: {:?}",
            report.error
        );
    }
    let instances = app.store.instances(tenant).await.unwrap();
    assert_eq!(instances.len(), 3);
    assert_eq!(
        instances
            .iter()
            .find(|i| i.instance_id == fleet.batch)
            .unwrap()
            .state,
        "stopped"
    );
    assert_eq!(
        instances
            .iter()
            .find(|i| i.instance_id == fleet.db)
            .unwrap()
            .region,
        "eu-west-1"
    );
    let cpu = app
        .store
        .metric_points(
            tenant,
            &fleet.web,
            "CPUUtilization",
            Utc::now() - Duration::days(15),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(
        !cpu.is_empty(),
        "hourly CPU history for the running instance"
    );
    assert!(
        cpu.iter()
            .all(|p| p.period_seconds == 3600 && (10.0..=30.0).contains(&p.average)),
        "{cpu:?}"
    );
    let stopped_cpu = app
        .store
        .metric_points(
            tenant,
            &fleet.batch,
            "CPUUtilization",
            Utc::now() - Duration::days(15),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(stopped_cpu.is_empty());

    let rows = app
        .store
        .daily_costs(tenant, d1, today + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    let total: Money = rows.iter().map(|r| r.unblended).sum();
    // 12.3456789012 is kept to the nano-unit (12.345678901); everything else is exact.
    assert_eq!(total, money("29.085679301"), "sum of the source rows");
    assert_eq!(total.round_to_cents().to_string(), "29.09");
    assert!(
        rows.iter()
            .any(|r| r.unblended == money("-4.25") && r.service == "Refund"),
        "credits and refunds are kept"
    );
    assert!(rows.iter().filter(|r| r.day == d3).all(|r| r.estimated));
    assert!(rows.iter().filter(|r| r.day != d3).all(|r| !r.estimated));
    assert!(rows.iter().any(|r| r.account_id == linked));

    let runs = app.store.runs(tenant, 10).await.unwrap();
    let ce_run = runs.iter().find(|r| r.collector == "costexplorer").unwrap();
    assert_eq!(
        (ce_run.ce_requests, ce_run.rows_written),
        (2, 5),
        "two pages, $0.02"
    );

    // Collect again: the same rows, nothing doubled (Cost Explorer answers the recent window
    // with nothing new here, and stored days it did not answer for stay as they were).
    for collector in Collector::ALL {
        assert_eq!(
            app.collections.run(tenant, collector).await.unwrap().status,
            RunStatus::Succeeded
        );
    }
    assert_eq!(
        app.store
            .daily_costs(tenant, d1, today + Duration::days(1))
            .await
            .unwrap(),
        rows
    );
    assert_eq!(app.store.instances(tenant).await.unwrap().len(), 3);

    // The other tenant sees none of it, through the API either.
    let bobs = app.get("/api/collections", Some(&bob.token)).await;
    assert_eq!(bobs.body["runs"].as_array().unwrap().len(), 0);
    let anas = app.get("/api/collections", Some(&ana.token)).await;
    assert_eq!(anas.body["runs"].as_array().unwrap().len(), 6);
    // Two pages for the backfill, one for the second run's recent window: $0.03.
    assert_eq!(anas.body["cost_explorer_requests_this_month"], 3);
    assert_eq!(anas.body["cost_explorer_cost_this_month"], "0.03");
}

#[tokio::test]
async fn when_aws_goes_away_mid_collection_the_run_fails_and_earlier_rows_stay() {
    let _moto = testing::shared().await;
    let account = unique_account_id();
    let today = Utc::now().date_naive();
    let day = today - Duration::days(5);
    let ec2 = "Amazon Elastic Compute Cloud - Compute";
    Moto::from_env()
        .preset_cost_and_usage(&account, vec![json!({"ResultsByTime": [grouped_day(day, false, &[(ec2, account.as_str(), "5.00")])]})])
        .await;
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let tenant = connect(&app, &ana, &account).await;
    assert_eq!(
        app.collections
            .run(tenant, Collector::CostExplorer)
            .await
            .unwrap()
            .status,
        RunStatus::Succeeded
    );
    let before = app.store.daily_costs(tenant, day, today).await.unwrap();
    assert_eq!(before.len(), 1);

    // The same tenant through a proxy that lets one request through to moto, then dies.
    let proxy = DyingProxy::start(&testing::moto_url(), 1).await;
    let broken_base = testing::base_config(&proxy.url).await;
    let broken = cloudspend_collection::Collections::new(
        app.store.clone(),
        cloudspend_aws_access::AwsAccess::from_base(broken_base),
        None,
        Default::default(),
    );
    let later = day + Duration::days(1);
    Moto::from_env()
        .preset_cost_and_usage(
            &account,
            vec![
                json!({"ResultsByTime": [grouped_day(later, false, &[(ec2, account.as_str(), "7.00")])], "NextPageToken": "p2"}),
                json!({"ResultsByTime": [grouped_day(later + Duration::days(1), false, &[(ec2, account.as_str(), "8.00")])]}),
            ],
        )
        .await;
    let failed = broken.run(tenant, Collector::CostExplorer).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    let error = failed.error.unwrap();
    assert!(
        error.contains("reach") || error.contains("endpoint"),
        "{error}"
    );
    assert_eq!(
        app.store.daily_costs(tenant, day, today).await.unwrap(),
        before,
        "no half-written window"
    );
    let runs = app.store.runs(tenant, 10).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Failed);
    assert!(runs[0].error.is_some());

    // The next run, with moto reachable, succeeds and brings the new days.
    let again = app
        .collections
        .run(tenant, Collector::CostExplorer)
        .await
        .unwrap();
    assert_eq!(again.status, RunStatus::Succeeded, "{:?}", again.error);
    let after = app.store.daily_costs(tenant, day, today).await.unwrap();
    assert_eq!(
        after.iter().map(|r| r.unblended).sum::<Money>(),
        money("20.00"),
        "{after:?}"
    );
}

#[tokio::test]
async fn refresh_queues_jobs_that_the_scheduler_runs_once() {
    let _moto = testing::shared().await;
    let account = unique_account_id();
    launch_fleet(&account).await;
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let not_yet = app.post("/api/collect", Some(&ana.token), json!({})).await;
    assert_eq!(
        (not_yet.status, not_yet.code()),
        (StatusCode::CONFLICT, Some("not_connected"))
    );
    let tenant = connect(&app, &ana, &account).await;

    let bad = app
        .post(
            "/api/collect",
            Some(&ana.token),
            json!({"collectors": ["ec2", "s3"]}),
        )
        .await;
    assert_eq!(
        (bad.status, bad.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("collectors[1]"))
    );
    let queued = app
        .post(
            "/api/collect",
            Some(&ana.token),
            json!({"collectors": ["ec2"]}),
        )
        .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.text);
    assert_eq!(queued.body["queued"], json!(["ec2"]));
    let empty_body = app
        .call(Method::POST, "/api/collect", Some(&ana.token), None)
        .await;
    assert_eq!(
        empty_body.status,
        StatusCode::ACCEPTED,
        "{}",
        empty_body.text
    );

    let scheduler = cloudspend_collection::Scheduler::new(app.collections.clone());
    let ran = scheduler.drain().await.unwrap();
    assert_eq!(ran, 3, "each collector once");
    assert_eq!(scheduler.drain().await.unwrap(), 0, "nothing is due twice");
    let collections = app.get("/api/collections", Some(&ana.token)).await;
    let runs = collections.body["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{}", collections.text);
    assert!(
        runs.iter().any(|r| r["collector"] == "ec2"
            && r["status"] == "succeeded"
            && r["rows_written"] == 3)
    );
    let jobs = collections.body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3);
    assert!(
        jobs.iter()
            .all(|j| j["next_run_at"].as_str().unwrap() > Utc::now().to_rfc3339().as_str())
    );
    assert_eq!(app.store.instances(tenant).await.unwrap().len(), 3);

    // Viewers may look but not spend the tenant's Cost Explorer budget.
    app.signup("vic@example.com", "Vicco").await;
    app.add_member(&ana.token, "vic@example.com", "viewer")
        .await;
    let vic = app.login("vic@example.com").await;
    let vic_token = vic.body["token"].as_str().unwrap();
    let denied = app
        .call_with(
            Method::POST,
            "/api/collect",
            Some(vic_token),
            &[("x-tenant-id", ana.tenant_id.as_str())],
            Some(json!({})),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
}

/// A TCP proxy in front of moto that forwards `allowed` HTTP requests, then drops every
/// connection and refuses new ones, as if the server died mid-collection.
struct DyingProxy {
    url: String,
}

impl DyingProxy {
    async fn start(upstream: &str, allowed: usize) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let seen = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if seen.load(Ordering::SeqCst) >= allowed {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.split();
                    let (mut sr, mut sw) = server.split();
                    let to_server = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            // Each request starts with its method; count them as they pass.
                            if (buf[..n].starts_with(b"POST ") || buf[..n].starts_with(b"GET "))
                                && seen.fetch_add(1, Ordering::SeqCst) >= allowed
                            {
                                return;
                            }
                            if sw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let to_client = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match sr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if cw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    tokio::select! { () = to_server => {}, () = to_client => {} }
                });
            }
        });
        DyingProxy { url }
    }
}

fn athena_row(cells: &[&str]) -> Value {
    json!({"Data": cells.iter().map(|c| if c.is_empty() { json!({}) } else { json!({"VarCharValue": c}) }).collect::<Vec<_>>()})
}

/// Queues Athena answers for queries started in `account` (us-east-1), in order.
async fn preset_athena(account: &str, results: Vec<Vec<Value>>) {
    let results: Vec<Value> = results
        .into_iter()
        .map(|rows| json!({"rows": rows, "column_info": []}))
        .collect();
    let body = json!({"account_id": account, "region": "us-east-1", "results": results});
    let response = reqwest::Client::new()
        .post(format!(
            "{}/moto-api/static/athena/query-results",
            testing::moto_url()
        ))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

/// information_schema's answer for a CUR 2.0 table: the real column list in `tests/data/cur-ddl`.
fn cur2_columns() -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/cur-ddl/DERIVED_cur2_columns_from_cid.csv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): the repository ships it in tests/data/cur-ddl",
            path.display()
        )
    });
    let mut rows = vec![athena_row(&["column_name", "data_type"])];
    for line in text.lines().skip(1) {
        let mut cells = line.split(',');
        let (name, kind) = (cells.next().unwrap(), cells.next().unwrap_or("string"));
        let kind = match kind {
            "string" => "varchar",
            "timestamp" => "timestamp(3)",
            "map<string,string>" => "map(varchar, varchar)",
            "map<string,double>" => "map(varchar, double)",
            other => other,
        };
        rows.push(athena_row(&[name, kind]));
    }
    rows
}

async fn connect_with_cur(app: &TestApp, session: &Session, account: &str) -> TenantId {
    let tenant = connect(app, session, account).await;
    let mut connection = app.store.connection(tenant).await.unwrap().unwrap();
    connection.cur = CurLocation {
        athena_database: Some("cur_db".into()),
        athena_table: Some("cur2".into()),
        athena_workgroup: Some("primary".into()),
        athena_results_bucket: Some(format!("results-{account}")),
        ..Default::default()
    };
    app.store.put_connection(tenant, &connection).await.unwrap();
    tenant
}

#[tokio::test]
async fn the_cur_is_collected_through_athena_and_wins_over_cost_explorer_for_its_days() {
    let _moto = testing::shared().await;
    let account = unique_account_id();
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let tenant = connect_with_cur(&app, &ana, &account).await;
    let today = Utc::now().date_naive();
    let day = today - Duration::days(3);
    let ec2 = "Amazon Elastic Compute Cloud";
    // Cost Explorer said 50.00 for the day; the CUR's line items say 12.3456789 + 0.50 - 1.00.
    app.store
        .upsert_daily_costs(
            tenant,
            &[cloudspend_core::records::CostRecord::from_cost_explorer(
                day,
                account.as_str(),
                ec2,
                money("50"),
                money("50"),
                "USD",
                false,
            )],
        )
        .await
        .unwrap();
    let header = [
        "day",
        "account_id",
        "service",
        "region",
        "usage_type",
        "resource_id",
        "line_item_type",
        "unblended",
        "amortized",
        "usage_amount",
        "currency",
        "currencies",
    ];
    let d = ymd(day);
    preset_athena(
        &account,
        vec![
            cur2_columns(),
            vec![
                athena_row(&header),
                athena_row(&[
                    &d,
                    &account,
                    ec2,
                    "us-east-1",
                    "BoxUsage:m5.large",
                    "i-0123456789abcdef0",
                    "Usage",
                    "12.3456789000",
                    "12.3456789000",
                    "24.0000000000",
                    "USD",
                    "1",
                ]),
                athena_row(&[
                    &d,
                    &account,
                    ec2,
                    "us-east-1",
                    "EBS:VolumeUsage",
                    "vol-1",
                    "Usage",
                    "0.5000000000",
                    "0.5000000000",
                    "",
                    "USD",
                    "1",
                ]),
                athena_row(&[
                    &d,
                    &account,
                    ec2,
                    "us-east-1",
                    "",
                    "",
                    "Credit",
                    "-1.0000000000",
                    "-1.0000000000",
                    "",
                    "USD",
                    "1",
                ]),
            ],
        ],
    )
    .await;
    let report = app.collections.run(tenant, Collector::Cur).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.rows_written, 3);
    let costs = app
        .get(
            &format!("/api/costs?from={d}&to={}", ymd(day + Duration::days(1))),
            Some(&ana.token),
        )
        .await;
    assert_eq!(
        costs.body["total"], "11.8456789",
        "CUR rows replace Cost Explorer's for the day: {}",
        costs.text
    );
    let by_usage = app
        .get(
            &format!(
                "/api/costs?from={d}&to={}&group_by=usage_type",
                ymd(day + Duration::days(1))
            ),
            Some(&ana.token),
        )
        .await;
    assert_eq!(by_usage.body["groups"].as_array().unwrap().len(), 3);

    // A table that does not exist: a failed run that says which table and what to do.
    preset_athena(
        &account,
        vec![vec![athena_row(&["column_name", "data_type"])]],
    )
    .await;
    let missing = app.collections.run(tenant, Collector::Cur).await.unwrap();
    assert_eq!(missing.status, RunStatus::Failed);
    let error = missing.error.unwrap();
    assert!(
        error.contains("cur_db") && error.contains("cur2"),
        "{error}"
    );
    assert_eq!(
        app.store
            .daily_costs(tenant, day, day + Duration::days(1))
            .await
            .unwrap()
            .len(),
        4,
        "rows kept"
    );
}

#[tokio::test]
async fn cpu_history_is_backfilled_for_instances_inventoried_after_the_first_cloudwatch_run() {
    let _moto = testing::shared().await;
    let account = unique_account_id();
    let (fleet, _) = launch_fleet(&account).await;
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let tenant = connect(&app, &ana, &account).await;
    // On connect the collectors start together: CloudWatch may run before EC2 has stored any
    // instance, and succeeds with nothing to fetch.
    let first = app
        .collections
        .run(tenant, Collector::Cloudwatch)
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    assert_eq!(first.rows_written, 0);
    let ec2 = app.collections.run(tenant, Collector::Ec2).await.unwrap();
    assert_eq!(ec2.status, RunStatus::Succeeded, "{:?}", ec2.error);
    // The web instance's points are three hours old, before the last run's end: only a
    // backfill of the new instances' history finds them.
    let second = app
        .collections
        .run(tenant, Collector::Cloudwatch)
        .await
        .unwrap();
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    let points = app
        .store
        .metric_points(
            tenant,
            &fleet.web,
            "CPUUtilization",
            Utc::now() - Duration::days(1),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(!points.is_empty(), "history was backfilled");
}
