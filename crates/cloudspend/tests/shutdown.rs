//! `cloudspend serve` on SIGTERM: it stops accepting, lets requests in flight and running
//! collections finish within its grace period (`CLOUDSPEND_SHUTDOWN_GRACE_SECONDS`) and exits 0;
//! work that outlasts the grace period is cut off and `serve` still exits 0, on time, without
//! leaving half a collection window written. AWS is made slow or unresponsive by the fault
//! proxy in front of moto.

mod support;

use chrono::{Duration as Days, NaiveDate, Utc};
use cloudspend_aws_access::testing::{self, Fault, FaultProxy, Moto};
use cloudspend_core::TenantId;
use cloudspend_core::records::{CostRecord, RunStatus};
use cloudspend_store::{NewToken, NewUser, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{PsqlSession, Replica, SERVICE, cost_page, days_ago, psql, temp_dir, ymd};

/// What `serve` may take beyond its grace period: its last log lines and the runtime's exit.
const EXIT_MARGIN: Duration = Duration::from_secs(3);

/// A tenant connected (a role in a moto account of its own, whose Cost Explorer answers
/// `days` at `amount`) and an owner's bearer token.
async fn connected_tenant(
    store: &Arc<dyn Store>,
    days: &[NaiveDate],
    amount: &str,
) -> (TenantId, String, String) {
    let user = NewUser {
        email: format!("owner-{}@example.com", uuid::Uuid::new_v4().simple()),
        password_hash: "x".into(),
        is_global_owner: false,
    };
    let (user, tenant) = store
        .create_user_with_tenant(user, "Shutdown Inc")
        .await
        .unwrap();
    let token = format!("shutdown-test-{}", uuid::Uuid::new_v4().simple());
    store
        .create_token(NewToken {
            token_hash: cloudspend_api::auth::token_hash(&token),
            user_id: user.id,
            tenant_id: Some(tenant.id),
            created_at: Utc::now(),
            expires_at: Utc::now() + Days::hours(1),
            name: None,
        })
        .await
        .unwrap();
    let account = testing::unique_account_id();
    Moto::from_env()
        .preset_cost_and_usage(&account, vec![cost_page(&account, days, amount)])
        .await;
    store
        .put_connection(
            tenant.id,
            &testing::role_connection(&account, &["us-east-1"]),
        )
        .await
        .unwrap();
    (tenant.id, account, token)
}

/// The collectors whose latest runs for `tenant` are recorded as running.
async fn running_collectors(store: &Arc<dyn Store>, tenant: TenantId) -> Vec<String> {
    store
        .runs(tenant, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.status == RunStatus::Running)
        .map(|r| r.collector)
        .collect()
}

/// GET /test-ec2 with the tenant's token: a live DescribeInstances through the proxy.
fn test_ec2(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> tokio::task::JoinHandle<Result<(u16, Value), String>> {
    let request = http.get(format!("{base}/test-ec2")).bearer_auth(token);
    tokio::spawn(async move {
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.json().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    })
}

fn is_slow_call(attempt: &testing::Attempt) -> bool {
    matches!(
        attempt.action.as_deref(),
        Some("DescribeInstances" | "GetCostAndUsage")
    )
}

#[tokio::test]
async fn serve_finishes_requests_and_a_collection_in_flight_then_exits_0_within_its_grace() {
    let _moto = testing::shared().await;
    let url = cloudspend_store::testing::fresh_postgres_url().await;
    let store = cloudspend_store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let days = [days_ago(3), days_ago(2), days_ago(1)];
    let (tenant, _, token) = connected_tenant(&store, &days, "4.25").await;
    // Every EC2 inventory and Cost Explorer call takes 4 s: the first collections and the
    // requests below are all in flight when SIGTERM comes.
    let proxy = FaultProxy::start(&testing::moto_url()).await;
    proxy.set_policy(|a| {
        if is_slow_call(a) {
            Fault::Delay(Duration::from_secs(4))
        } else {
            Fault::Pass
        }
    });
    let grace = Duration::from_secs(30);
    let dir = temp_dir("cloudspend-shutdown");
    let mut server = Replica::start(
        "serve",
        &dir,
        &url,
        proxy.url(),
        &[("CLOUDSPEND_SHUTDOWN_GRACE_SECONDS", "30")],
    )
    .await;
    // The scheduler's first EC2 and Cost Explorer calls.
    proxy.wait_delayed(2, Duration::from_secs(30)).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let requests: Vec<_> = (0..3)
        .map(|_| test_ec2(&http, &server.base, &token))
        .collect();
    proxy.wait_delayed(5, Duration::from_secs(10)).await;
    let running_before = running_collectors(&store, tenant).await;
    assert!(
        running_before.iter().any(|c| c == "costexplorer"),
        "a Cost Explorer collection in flight: {running_before:?}"
    );

    server.terminate();
    assert!(
        server
            .refuses_connections_within(Duration::from_secs(2))
            .await,
        "new connections are refused once SIGTERM came"
    );
    assert!(server.running(), "... while the work in flight finishes");
    let (status, took) = server.exit_within(grace + EXIT_MARGIN).await;

    assert!(
        status.success(),
        "serve exited with {status}: {}",
        server.log_text()
    );
    for request in requests {
        // The tenant's moto account runs no instances: the normal answer is an empty list.
        assert_eq!(request.await.unwrap(), Ok((200, json!([]))));
    }
    assert!(
        took >= Duration::from_secs(1),
        "serve waited for the 4 s calls in flight, took {took:?}"
    );
    let runs = store.runs(tenant, 10).await.unwrap();
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Succeeded),
        "every collection in flight finished: {runs:?}"
    );
    let costs: Vec<(NaiveDate, String)> = store
        .daily_costs(tenant, days_ago(30), days_ago(-1))
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.day, r.unblended.to_string()))
        .collect();
    assert_eq!(
        costs,
        days.iter()
            .map(|d| (*d, "4.25".to_string()))
            .collect::<Vec<_>>(),
        "the collection's window, whole"
    );
    let messages = server.log_lines();
    assert!(
        messages
            .iter()
            .any(|l| l["fields"]["message"] == "stopped: everything in flight finished"),
        "{}",
        server.log_text()
    );
}

#[tokio::test]
async fn serve_cuts_off_work_that_outlasts_its_grace_and_still_exits_0_on_time() {
    let _moto = testing::shared().await;
    let url = cloudspend_store::testing::fresh_postgres_url().await;
    let store = cloudspend_store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let (tenant, account, token) =
        connected_tenant(&store, &[days_ago(3), days_ago(2)], "2.00").await;
    // A row collected before, in the window the Cost Explorer run replaces.
    let before = vec![CostRecord::from_cost_explorer(
        days_ago(3),
        account.clone(),
        SERVICE,
        "1.00".parse().unwrap(),
        "1.00".parse().unwrap(),
        "USD",
        false,
    )];
    store.upsert_daily_costs(tenant, &before).await.unwrap();
    // The Cost Explorer run's window write is caught half done: this session holds an
    // uncommitted row the run is about to insert, so the run's transaction waits after it has
    // deleted the window's old rows. EC2 calls never get an answer.
    let blocker = PsqlSession::open(
        &url,
        &format!(
            "BEGIN;\n\
             INSERT INTO daily_costs (tenant_id, day, source, account_id, service, region, usage_type, \
               resource_id, line_item_type, unblended_nanos, amortized_nanos, currency, estimated) \
             VALUES ('{tenant}', '{}', 'ce', '{account}', '{SERVICE}', '', '', '', '', 1, 1, 'USD', false);\n",
            ymd(days_ago(2))
        ),
    );
    let proxy = FaultProxy::start(&testing::moto_url()).await;
    proxy.set_policy(|a| {
        if a.action.as_deref() == Some("DescribeInstances") {
            Fault::Hold
        } else {
            Fault::Pass
        }
    });
    let dir = temp_dir("cloudspend-shutdown-cut");
    let leases = [
        ("CLOUDSPEND_COLLECTION_TIMEOUT_SECONDS", "10"),
        ("CLOUDSPEND_SCHEDULER_LEASE_SECONDS", "12"),
    ];
    let mut server = Replica::start(
        "serve",
        &dir,
        &url,
        proxy.url(),
        &[
            leases[0],
            leases[1],
            ("CLOUDSPEND_SHUTDOWN_GRACE_SECONDS", "2"),
        ],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while psql(
        &url,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cloudspend' \
         AND wait_event_type = 'Lock' AND query LIKE '%daily_costs%'",
    ) != "1"
    {
        assert!(
            Instant::now() < deadline,
            "the Cost Explorer write never waited on the blocking row"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let requests: Vec<_> = (0..2)
        .map(|_| test_ec2(&http, &server.base, &token))
        .collect();
    // The EC2 collection's call and the two requests'.
    proxy.wait_held(3, Duration::from_secs(10)).await;

    server.terminate();
    let (status, took) = server
        .exit_within(Duration::from_secs(2) + EXIT_MARGIN)
        .await;

    assert!(
        status.success(),
        "serve exited with {status}: {}",
        server.log_text()
    );
    assert!(
        took >= Duration::from_secs(2),
        "serve gave the work its 2 s grace first, took {took:?}"
    );
    for request in requests {
        let answer = request.await.unwrap();
        assert!(
            answer.is_err(),
            "a request cut off gets its connection closed, got {answer:?}"
        );
    }
    let cut_off = server.log_lines();
    let warning = cut_off
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("the shutdown grace period ran out"))
        })
        .unwrap_or_else(|| panic!("no cut-off warning: {}", server.log_text()));
    assert_eq!(warning["fields"]["requests_in_flight"], 2);
    assert_eq!(
        warning["fields"]["collections_running"], 2,
        "EC2 and Cost Explorer"
    );
    drop(blocker);
    // No half-written window: the old row is back (the run's delete rolled back), nothing new.
    assert_eq!(
        store
            .daily_costs(tenant, days_ago(30), days_ago(-1))
            .await
            .unwrap(),
        before
    );
    let cut_runs = running_collectors(&store, tenant).await;
    assert!(
        cut_runs.contains(&"costexplorer".to_string()) && cut_runs.contains(&"ec2".to_string()),
        "runs cut off stay recorded as running until their lease ends: {cut_runs:?}"
    );

    // The next replica takes the jobs once the lease has run out, marks the cut-off runs
    // failed, and collects the window whole.
    proxy.set_policy(|_| Fault::Pass);
    proxy.release();
    let next = Replica::start("next", &dir, &url, &testing::moto_url(), &leases).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = store.runs(tenant, 20).await.unwrap();
        let abandoned = runs
            .iter()
            .filter(|r| {
                r.status == RunStatus::Failed
                    && r.error
                        .as_deref()
                        .is_some_and(|e| e.starts_with("abandoned"))
            })
            .count();
        let costs = store
            .daily_costs(tenant, days_ago(30), days_ago(-1))
            .await
            .unwrap();
        if abandoned == 2
            && costs.len() == 2
            && costs.iter().all(|c| c.unblended.to_string() == "2.00")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cut-off runs were not taken over: {runs:?} {costs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(next);
}

#[tokio::test]
async fn a_second_signal_stops_serve_at_once_during_its_grace() {
    let _moto = testing::shared().await;
    let url = cloudspend_store::testing::fresh_postgres_url().await;
    let store = cloudspend_store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let (_, _, token) = connected_tenant(&store, &[days_ago(1)], "1.00").await;
    let proxy = FaultProxy::start(&testing::moto_url()).await;
    proxy.set_policy(|a| {
        if a.action.as_deref() == Some("DescribeInstances") {
            Fault::Hold
        } else {
            Fault::Pass
        }
    });
    let dir = temp_dir("cloudspend-shutdown-twice");
    let mut server = Replica::start(
        "serve",
        &dir,
        &url,
        proxy.url(),
        &[("CLOUDSPEND_SHUTDOWN_GRACE_SECONDS", "60")],
    )
    .await;
    let http = reqwest::Client::new();
    let request = test_ec2(&http, &server.base, &token);
    proxy.wait_held(1, Duration::from_secs(10)).await;

    server.terminate();
    assert!(
        server
            .refuses_connections_within(Duration::from_secs(2))
            .await,
        "the first signal starts the drain"
    );
    assert!(server.running(), "draining: the held request has 60 s");
    server.terminate();
    let (status, _) = server.exit_within(EXIT_MARGIN).await;

    assert!(
        status.success(),
        "serve exited with {status}: {}",
        server.log_text()
    );
    assert!(
        request.await.unwrap().is_err(),
        "the held request is cut off"
    );
    assert!(
        server.log_lines().iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("a second shutdown signal"))),
        "{}",
        server.log_text()
    );
    proxy.release();
}
