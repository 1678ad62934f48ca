//! PostgreSQL crashing under a running `cloudspend serve`, on a cluster of the test's own so
//! nothing else is disturbed: a collection caught in the middle of writing its window loses the
//! whole write (no half-written window), a request caught in the middle of a query answers 503,
//! `/readyz` answers 503 while the database is down and 200 again within seconds of it coming
//! back, without a restart of the service; the next collection writes every row once.

mod support;

use chrono::{NaiveDate, Utc};
use cloudspend_aws_access::testing::{self, Moto};
use cloudspend_core::TenantId;
use cloudspend_core::records::{CostRecord, RunStatus};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{PgCluster, PsqlSession, Replica, SERVICE, cost_page, days_ago, psql, temp_dir, ymd};

/// One answer the load loop got: when (since the start), which path, and the status or error.
#[derive(Debug, Clone)]
struct Answer {
    at: Duration,
    path: &'static str,
    status: Result<u16, String>,
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn postgres_crashing_mid_collection_and_mid_request_loses_no_window_and_readyz_recovers() {
    let _moto = testing::shared().await;
    let pg = PgCluster::start();
    let url = pg.database_url("cloudspend");
    let store = cloudspend_store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let dir = temp_dir("cloudspend-outage");
    let replica = Replica::start(
        "outage",
        &dir,
        &url,
        &testing::moto_url(),
        &[
            ("CLOUDSPEND_COLLECTION_TIMEOUT_SECONDS", "20"),
            ("CLOUDSPEND_SCHEDULER_LEASE_SECONDS", "25"),
        ],
    )
    .await;
    let base = replica.base.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let signup: Value = http
        .post(format!("{base}/api/auth/signup"))
        .json(&json!({"email": "ops@example.com", "password": "a long enough password", "tenant_name": "Outage Inc"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signup["token"].as_str().expect("signup token").to_string();
    let me: Value = http
        .get(format!("{base}/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tenant: TenantId = me["tenants"][0]["id"]
        .as_str()
        .or_else(|| me["tenants"][0]["tenant_id"].as_str())
        .unwrap_or_else(|| panic!("tenant id in {me}"))
        .parse()
        .unwrap();
    let account = testing::unique_account_id();
    // First run (13-month backfill) and later runs (last 7 days) get different answers.
    let first = [days_ago(5), days_ago(4), days_ago(3)];
    let later = [days_ago(3), days_ago(2), days_ago(1)];
    Moto::from_env()
        .preset_cost_and_usage(
            &account,
            vec![
                cost_page(&account, &first, "1.00"),
                cost_page(&account, &later, "2.00"),
            ],
        )
        .await;
    store
        .put_connection(tenant, &testing::role_connection(&account, &["us-east-1"]))
        .await
        .unwrap();
    let ce_runs = |status: RunStatus| {
        let store = store.clone();
        async move {
            store
                .runs(tenant, 50)
                .await
                .unwrap_or_default()
                .into_iter()
                .any(|r| r.collector == "costexplorer" && r.status == status)
        }
    };
    wait_until("the first collection", Duration::from_secs(60), || {
        ce_runs(RunStatus::Succeeded)
    })
    .await;
    // ... and every first run finished and released its job.
    wait_until(
        "the first runs to release their jobs",
        Duration::from_secs(30),
        || async {
            let jobs = store.jobs(tenant).await.unwrap();
            jobs.len() == 3
                && jobs
                    .iter()
                    .all(|j| j.lease_owner.is_none() && j.next_run_at > Utc::now())
        },
    )
    .await;
    let costs = |store: Arc<dyn cloudspend_store::Store>| async move {
        store
            .daily_costs(tenant, days_ago(30), days_ago(-2))
            .await
            .unwrap()
    };
    let before: Vec<CostRecord> = costs(store.clone()).await;
    assert_eq!(before.len(), 3);

    // Requests all along: readiness and a tenant's cost read, one after the other.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let load = {
        let (http, base, token, stop) = (http.clone(), base.clone(), token.clone(), stop.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            let costs_path = format!(
                "/api/costs?from={}&to={}&group_by=service",
                ymd(days_ago(10)),
                ymd(days_ago(0))
            );
            while !stop.load(Ordering::SeqCst) {
                for (path, url) in [
                    ("/readyz", format!("{base}/readyz")),
                    ("/api/costs", format!("{base}{costs_path}")),
                ] {
                    let status = http
                        .get(url)
                        .bearer_auth(&token)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .map_err(|e| e.to_string());
                    answers.push(Answer {
                        at: started.elapsed(),
                        path,
                        status,
                    });
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            answers
        })
    };

    // A Cost Explorer run whose window write is caught half done: another session holds an
    // uncommitted row the run is about to insert, so the run's transaction waits after it has
    // deleted the window's old rows. The same session holds the tenant's EC2 job row, so
    // POST /api/collect waits in the middle of its UPDATE.
    let blocker = PsqlSession::open(
        &url,
        &format!(
            "BEGIN;\n\
             SELECT 1 FROM collection_jobs WHERE tenant_id = '{tenant}' AND collector = 'ec2' FOR UPDATE;\n\
             INSERT INTO daily_costs (tenant_id, day, source, account_id, service, region, usage_type, \
               resource_id, line_item_type, unblended_nanos, amortized_nanos, currency, estimated) \
             VALUES ('{tenant}', '{}', 'ce', '{account}', '{SERVICE}', '', '', '', '', 1, 1, 'USD', false);\n",
            ymd(later[1])
        ),
    );
    wait_until("the blocking session", Duration::from_secs(10), || async {
        psql(
            &url,
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'",
        ) == "1"
    })
    .await;
    store
        .run_job_now(tenant, "costexplorer", Utc::now())
        .await
        .unwrap();
    let in_flight = {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        tokio::spawn(async move {
            http.post(format!("{base}/api/collect"))
                .bearer_auth(&token)
                .json(&json!({"collectors": ["ec2"]}))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        })
    };
    wait_until(
        "the window write and the request to wait on the lock",
        Duration::from_secs(30),
        || async {
            psql(
                &url,
                "SELECT count(*) FILTER (WHERE query LIKE '%daily_costs%') || ',' || \
                 count(*) FILTER (WHERE query LIKE '%collection_jobs%') \
                 FROM pg_stat_activity WHERE application_name = 'cloudspend' AND wait_event_type = 'Lock'",
            ) == "1,1"
        },
    )
    .await;

    // Crash, stay down 3 s, come back.
    pg.stop();
    let down_at = started.elapsed();
    drop(blocker);
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.start_again();
    let up_at = started.elapsed();
    let request_status = in_flight.await.unwrap();
    wait_until("/readyz to answer 200", Duration::from_secs(30), || async {
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let ready_at = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let answers = load.await.unwrap();

    // The interrupted write left nothing behind.
    assert_eq!(
        costs(store.clone()).await,
        before,
        "half a window was written"
    );
    assert_eq!(
        request_status,
        Ok(503),
        "a request whose query died with the database answers 503"
    );
    let mut tally: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for a in &answers {
        let status = match &a.status {
            Ok(s) => s.to_string(),
            Err(e) => format!("error: {e}"),
        };
        *tally.entry((a.path, status)).or_default() += 1;
    }
    let unexpected: Vec<_> = answers
        .iter()
        .filter(|a| !matches!(a.status, Ok(200) | Ok(503)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "only 200 and 503 while the database restarts: {unexpected:?}"
    );
    let readyz_down: Vec<_> = answers
        .iter()
        .filter(|a| a.path == "/readyz" && a.at > down_at && a.at < up_at)
        .collect();
    assert!(
        !readyz_down.is_empty() && readyz_down.iter().all(|a| a.status == Ok(503)),
        "/readyz answers 503 while the database is down: {readyz_down:?}"
    );
    let recovered = ready_at - up_at;
    assert!(
        recovered < Duration::from_secs(10),
        "recovered after {recovered:?}"
    );
    let late: Vec<_> = answers
        .iter()
        .filter(|a| a.at > ready_at + Duration::from_millis(500) && a.status != Ok(200))
        .collect();
    assert!(late.is_empty(), "errors after recovery: {late:?}");

    // The scheduler runs the collection again (its lease expires, or it is due again):
    // every row of the window once.
    store
        .run_job_now(tenant, "costexplorer", Utc::now())
        .await
        .unwrap();
    let expected_days: BTreeSet<NaiveDate> = first.iter().chain(&later).copied().collect();
    wait_until(
        "a Cost Explorer run after the restart",
        Duration::from_secs(60),
        || async {
            costs(store.clone())
                .await
                .iter()
                .map(|r| r.day)
                .collect::<BTreeSet<_>>()
                == expected_days
        },
    )
    .await;
    let after = costs(store.clone()).await;
    assert_eq!(after.len(), 5, "each day once: {after:?}");
    for r in &after {
        let expect = if later.contains(&r.day) {
            "2.00"
        } else {
            "1.00"
        };
        assert_eq!(r.unblended.to_string(), expect, "{r:?}");
    }
    let runs = store.runs(tenant, 50).await.unwrap();
    eprintln!(
        "postgres crash: down {:.1}s..{:.1}s, /readyz 200 again {:.2} s after the database was up; \
         in-flight POST /api/collect -> {request_status:?}; answers {tally:?}; runs: {:?}",
        down_at.as_secs_f64(),
        up_at.as_secs_f64(),
        recovered.as_secs_f64(),
        runs.iter()
            .map(|r| (r.collector.as_str(), r.status, r.error.clone()))
            .collect::<Vec<_>>()
    );
    drop(replica);
}
