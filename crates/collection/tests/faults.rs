//! Collections through a fault-injecting proxy in front of moto ([`FaultProxy`]): AWS throttling
//! and 503s are ridden out by the SDK's standard retries (at most 3 attempts per request) and
//! the recorded run says how many retries it took; sustained throttling, and moto going away in
//! the middle of a collection, end in a failed run that names the cause and leaves the stored
//! window exactly as it was; the next healthy run writes every row once.

use aws_sdk_ec2::Client as Ec2;
use chrono::{Duration as Days, NaiveDate, Utc};
use cloudspend_aws_access::testing::{self, Fault, FaultProxy, Moto, unique_account_id};
use cloudspend_collection::{Collections, Collector, RunReport, Settings};
use cloudspend_core::TenantId;
use cloudspend_core::records::{CostRecord, RunStatus};
use cloudspend_store::{NewUser, Store};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// The AWS services a collection calls through its counted clients (STS is the credential
/// provider's, which the run's request counter does not see).
const COLLECTED: [&str; 3] = ["ec2", "monitoring", "ce"];

struct Tenant {
    id: TenantId,
    account: String,
}

async fn connected_tenant(store: &Arc<dyn Store>, regions: &[&str]) -> Tenant {
    let user = NewUser {
        email: format!("owner-{}@example.com", uuid_suffix()),
        password_hash: "x".into(),
        is_global_owner: false,
    };
    let (_, tenant) = store
        .create_user_with_tenant(user, "Faulty Inc")
        .await
        .unwrap();
    let account = unique_account_id();
    let connection = testing::role_connection(&account, regions);
    store.put_connection(tenant.id, &connection).await.unwrap();
    Tenant {
        id: tenant.id,
        account,
    }
}

fn uuid_suffix() -> String {
    TenantId::new().0.simple().to_string()
}

/// An EC2 client straight to moto (not through the proxy) in the tenant's account.
async fn ec2_in(tenant: &Tenant, region: &str) -> Ec2 {
    let access = testing::aws_access().await;
    Ec2::new(
        &access
            .sdk_config(tenant.id, &testing::role_in(&tenant.account), region)
            .await
            .unwrap(),
    )
}

fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// One GetCostAndUsage page: each day has one EC2 group of `amount` in `account`.
fn cost_page(account: &str, days: &[NaiveDate], amount: &str, next: Option<&str>) -> Value {
    let results: Vec<Value> = days
        .iter()
        .map(|day| {
            json!({
                "TimePeriod": {"Start": ymd(*day), "End": ymd(*day + Days::days(1))},
                "Total": {},
                "Groups": [{
                    "Keys": ["Amazon Elastic Compute Cloud - Compute", account],
                    "Metrics": {
                        "UnblendedCost": {"Amount": amount, "Unit": "USD"},
                        "AmortizedCost": {"Amount": amount, "Unit": "USD"}
                    }
                }],
                "Estimated": false
            })
        })
        .collect();
    let mut page = json!({
        "GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}],
        "ResultsByTime": results,
        "DimensionValueAttributes": []
    });
    if let Some(token) = next {
        page["NextPageToken"] = json!(token);
    }
    page
}

fn days_ago(n: i64) -> NaiveDate {
    Utc::now().date_naive() - Days::days(n)
}

async fn costs(store: &Arc<dyn Store>, tenant: TenantId) -> Vec<CostRecord> {
    store
        .daily_costs(tenant, days_ago(30), days_ago(-2))
        .await
        .unwrap()
}

/// What a failed run must not touch: every instance row, including when it was last seen.
async fn instance_rows(store: &Arc<dyn Store>, tenant: TenantId) -> Vec<(String, String, String)> {
    let mut rows: Vec<_> = store
        .instances(tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.instance_id, i.state, i.last_seen_at.to_rfc3339()))
        .collect();
    rows.sort();
    rows
}

fn assert_no_duplicates(rows: &[CostRecord]) {
    let keys: BTreeSet<_> = rows
        .iter()
        .map(|r| (r.day, r.source, &r.account_id, &r.service, &r.region))
        .collect();
    assert_eq!(keys.len(), rows.len(), "duplicate cost rows: {rows:?}");
}

fn collections(store: &Arc<dyn Store>, aws: cloudspend_aws_access::AwsAccess) -> Collections {
    Collections::new(store.clone(), aws, None, Settings::default())
}

#[tokio::test]
async fn throttling_and_503s_are_retried_within_three_attempts_and_the_run_counts_the_retries() {
    let _moto = testing::shared().await;
    let store = cloudspend_store::testing::fresh_postgres().await;
    let tenant = connected_tenant(&store, &["us-east-1"]).await;
    let ec2 = ec2_in(&tenant, "us-east-1").await;
    testing::run_instance(&ec2, &[]).await;
    testing::run_instance(&ec2, &[]).await;
    let days = [days_ago(3), days_ago(2), days_ago(1)];
    Moto::from_env()
        .preset_cost_and_usage(
            &tenant.account,
            vec![cost_page(&tenant.account, &days, "1.25", None)],
        )
        .await;

    // Every operation of every collected service: throttled, then 503, then through. The third
    // attempt is the last the retry policy allows, so this is the most it can ride out.
    let proxy = FaultProxy::start(&testing::moto_url()).await;
    proxy.set_policy(
        |a| match (COLLECTED.contains(&a.service.as_str()), a.attempt) {
            (true, 1) => Fault::Throttle,
            (true, 2) => Fault::Unavailable,
            _ => Fault::Pass,
        },
    );
    let collections = collections(&store, testing::aws_access_via(proxy.url()).await);
    let started = std::time::Instant::now();
    let mut reports: Vec<RunReport> = Vec::new();
    for collector in Collector::ALL {
        reports.push(collections.run(tenant.id, collector).await.unwrap());
    }
    let elapsed = started.elapsed();

    let attempts = proxy.attempts();
    let injected = attempts
        .iter()
        .filter(|a| a.fault != Fault::Pass && COLLECTED.contains(&a.service.as_str()))
        .count() as i64;
    assert!(
        attempts.iter().all(|a| a.attempt <= 3),
        "more than 3 attempts"
    );
    for report in &reports {
        assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
        assert!(report.aws_requests >= 1, "{report:?}");
        assert_eq!(
            report.retries,
            2 * report.aws_requests,
            "each request retried twice: {report:?}"
        );
    }
    let retries: i64 = reports.iter().map(|r| r.retries).sum();
    assert_eq!(retries, injected, "every injected fault is a counted retry");
    // The recorded runs carry the same numbers.
    let recorded = store.runs(tenant.id, 10).await.unwrap();
    assert_eq!(recorded.iter().map(|r| r.retries).sum::<i64>(), retries);
    assert_eq!(store.instances(tenant.id).await.unwrap().len(), 2);
    let rows = costs(&store, tenant.id).await;
    assert_eq!(rows.len(), 3);
    assert_no_duplicates(&rows);
    eprintln!(
        "faults: 3 collectors, {} requests, {retries} retries ({injected} injected faults), {elapsed:?}",
        reports.iter().map(|r| r.aws_requests).sum::<i64>()
    );
}

#[tokio::test]
async fn sustained_throttling_fails_the_run_with_a_clear_error_and_keeps_the_stored_window() {
    let _moto = testing::shared().await;
    let store = cloudspend_store::testing::fresh_postgres().await;
    let tenant = connected_tenant(&store, &["us-east-1", "eu-west-1"]).await;
    let use1 = ec2_in(&tenant, "us-east-1").await;
    let euw1 = ec2_in(&tenant, "eu-west-1").await;
    testing::run_instance(&use1, &[]).await;
    testing::run_instance(&euw1, &[]).await;
    let first = [days_ago(5), days_ago(4), days_ago(3)];
    let later = [days_ago(3), days_ago(2), days_ago(1)];
    let moto = Moto::from_env();
    // First run (13-month backfill): one page. Later runs (last 7 days): two pages.
    moto.preset_cost_and_usage(
        &tenant.account,
        vec![
            cost_page(&tenant.account, &first, "1.00", None),
            cost_page(&tenant.account, &later[..2], "2.00", Some("page-2")),
            cost_page(&tenant.account, &later[2..], "2.00", None),
        ],
    )
    .await;
    let proxy = FaultProxy::start(&testing::moto_url()).await;
    let collections = collections(&store, testing::aws_access_via(proxy.url()).await);
    for collector in [Collector::Ec2, Collector::CostExplorer] {
        let report = collections.run(tenant.id, collector).await.unwrap();
        assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    }
    let instances_before = instance_rows(&store, tenant.id).await;
    let costs_before = costs(&store, tenant.id).await;
    assert_eq!(instances_before.len(), 2);
    assert_eq!(costs_before.len(), 3);

    // A new instance in us-east-1 that a successful run would add; eu-west-1 and Cost
    // Explorer's second page are throttled on every attempt.
    testing::run_instance(&use1, &[]).await;
    proxy.clear_attempts();
    proxy.set_policy(|a| {
        let throttled = (a.service == "ec2" && a.region == "eu-west-1")
            || (a.service == "ce" && a.body.contains("NextPageToken"));
        if throttled {
            Fault::Throttle
        } else {
            Fault::Pass
        }
    });
    let ec2_run = collections.run(tenant.id, Collector::Ec2).await.unwrap();
    let ce_run = collections
        .run(tenant.id, Collector::CostExplorer)
        .await
        .unwrap();
    for (report, code) in [
        (&ec2_run, "RequestLimitExceeded"),
        (&ce_run, "LimitExceededException"),
    ] {
        assert_eq!(report.status, RunStatus::Failed, "{report:?}");
        assert_eq!(report.rows_written, 0);
        assert_eq!(
            report.retries, 2,
            "3 attempts, then it gives up: {report:?}"
        );
        let error = report.error.as_deref().unwrap_or_default();
        assert!(error.contains(code), "the error names {code}: {error}");
        eprintln!("sustained throttling, {:?}: {error}", report.collector);
    }
    let throttled: Vec<_> = proxy
        .attempts()
        .into_iter()
        .filter(|a| a.fault == Fault::Throttle)
        .collect();
    assert_eq!(throttled.len(), 6, "two operations, three attempts each");
    assert_eq!(
        instance_rows(&store, tenant.id).await,
        instances_before,
        "a failed EC2 run changed the stored inventory"
    );
    assert_eq!(
        costs(&store, tenant.id).await,
        costs_before,
        "a failed Cost Explorer run wrote its first page"
    );
    let recorded = store.runs(tenant.id, 10).await.unwrap();
    assert_eq!(
        recorded
            .iter()
            .filter(|r| r.status == RunStatus::Failed)
            .count(),
        2
    );

    // Throttling over: the next runs write everything once.
    proxy.set_policy(|_| Fault::Pass);
    for collector in [Collector::Ec2, Collector::CostExplorer] {
        let report = collections.run(tenant.id, collector).await.unwrap();
        assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    }
    assert_eq!(instance_rows(&store, tenant.id).await.len(), 3);
    let after = costs(&store, tenant.id).await;
    assert_no_duplicates(&after);
    // Days 5 and 4 from the first run; 3, 2 and 1 replaced or added by the later window.
    assert_eq!(after.len(), 5, "{after:?}");
    let by_day = |d: NaiveDate| {
        after
            .iter()
            .find(|r| r.day == d)
            .unwrap()
            .unblended
            .to_string()
    };
    assert_eq!(by_day(days_ago(5)), "1.00");
    assert_eq!(by_day(days_ago(3)), "2.00");
}

#[tokio::test]
async fn moto_stopping_mid_collection_fails_the_run_and_the_next_run_writes_each_row_once() {
    let _moto = testing::shared().await;
    let store = cloudspend_store::testing::fresh_postgres().await;
    let tenant = connected_tenant(&store, &["us-east-1"]).await;
    let ec2 = ec2_in(&tenant, "us-east-1").await;
    testing::run_instance(&ec2, &[]).await;
    let first = [days_ago(6), days_ago(5)];
    let later = [days_ago(4), days_ago(3), days_ago(2), days_ago(1)];
    Moto::from_env()
        .preset_cost_and_usage(
            &tenant.account,
            vec![
                cost_page(&tenant.account, &first, "3.00", None),
                cost_page(&tenant.account, &later[..2], "4.00", Some("page-2")),
                cost_page(&tenant.account, &later[2..], "4.00", None),
            ],
        )
        .await;
    let proxy = FaultProxy::start(&testing::moto_url()).await;
    let collections = collections(&store, testing::aws_access_via(proxy.url()).await);
    for collector in Collector::ALL {
        let report = collections.run(tenant.id, collector).await.unwrap();
        assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    }
    let costs_before = costs(&store, tenant.id).await;
    let instances_before = instance_rows(&store, tenant.id).await;
    assert_eq!(costs_before.len(), 2);

    // The second page is held in flight; then moto "stops": that request and every retry
    // find the connection closed.
    proxy.set_policy(|a| {
        if a.service == "ce" && a.body.contains("NextPageToken") {
            Fault::Hold
        } else {
            Fault::Pass
        }
    });
    let running = {
        let collections = collections.clone();
        let tenant = tenant.id;
        tokio::spawn(async move { collections.run(tenant, Collector::CostExplorer).await })
    };
    proxy.wait_held(1, Duration::from_secs(30)).await;
    proxy.set_policy(|_| Fault::Drop);
    proxy.release();
    let report = running.await.unwrap().unwrap();
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    let error = report.error.clone().unwrap_or_default();
    assert!(
        error.contains("could not be sent") || error.contains("dispatch"),
        "the error says AWS could not be reached: {error}"
    );
    eprintln!("moto stopped mid-collection: {error}");
    let ec2_down = collections.run(tenant.id, Collector::Ec2).await.unwrap();
    assert_eq!(ec2_down.status, RunStatus::Failed, "{ec2_down:?}");
    assert_eq!(
        costs(&store, tenant.id).await,
        costs_before,
        "half a window was written"
    );
    assert_eq!(instance_rows(&store, tenant.id).await, instances_before);

    // moto back: the next runs write each row once.
    proxy.set_policy(|_| Fault::Pass);
    for collector in [Collector::Ec2, Collector::CostExplorer] {
        let report = collections.run(tenant.id, collector).await.unwrap();
        assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    }
    let after = costs(&store, tenant.id).await;
    assert_no_duplicates(&after);
    assert_eq!(after.len(), 6, "{after:?}");
    assert_eq!(instance_rows(&store, tenant.id).await.len(), 1);
}
