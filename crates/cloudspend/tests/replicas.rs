//! Several real `cloudspend serve` processes on one PostgreSQL database: a replica killed with
//! SIGKILL while it holds job leases loses them to another replica once they expire, and the
//! tenant is collected exactly once for the interval; three replicas share 200 tenants, each
//! tenant's each collector runs once per interval, and every replica does part of the work.

mod support;

use chrono::{DateTime, Utc};
use cloudspend_aws_access::testing::{self, Fault, FaultProxy, Moto};
use cloudspend_core::TenantId;
use cloudspend_core::records::RunStatus;
use cloudspend_store::{CollectionRun, Store};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Replica, seed_tenant, temp_dir};

async fn fresh_store() -> (String, Arc<dyn Store>) {
    let url = cloudspend_store::testing::fresh_postgres_url().await;
    let store = cloudspend_store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    (url, store)
}

fn ymd(d: chrono::NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

#[tokio::test]
async fn a_replica_killed_holding_leases_loses_them_after_expiry_and_the_tenant_is_collected_once()
{
    let _moto = testing::shared().await;
    let (url, store) = fresh_store().await;
    let (tenant, account) = seed_tenant(&store, 0).await;
    let today = Utc::now().date_naive();
    let days: Vec<_> = (1..=3).map(|n| today - chrono::Duration::days(n)).collect();
    let results: Vec<_> = days
        .iter()
        .map(|d| {
            json!({
                "TimePeriod": {"Start": ymd(*d), "End": ymd(*d + chrono::Duration::days(1))},
                "Total": {},
                "Groups": [{"Keys": ["AmazonEC2", account], "Metrics": {
                    "UnblendedCost": {"Amount": "7.00", "Unit": "USD"},
                    "AmortizedCost": {"Amount": "7.00", "Unit": "USD"}}}],
                "Estimated": false
            })
        })
        .collect();
    Moto::from_env()
        .preset_cost_and_usage(
            &account,
            vec![json!({"GroupDefinitions": [], "ResultsByTime": results, "DimensionValueAttributes": []})],
        )
        .await;
    let dir = temp_dir("cloudspend-replicas");
    // Short leases; a run may take 4 s at most, so an 8 s lease is never lost by a live run.
    let leases = [
        ("CLOUDSPEND_COLLECTION_TIMEOUT_SECONDS", "4"),
        ("CLOUDSPEND_SCHEDULER_LEASE_SECONDS", "8"),
    ];

    // Replica A's AWS calls hang at the proxy, so it is caught holding its leases.
    let proxy = FaultProxy::start(&testing::moto_url()).await;
    proxy.set_policy(|_| Fault::Hold);
    let mut a = Replica::start("a", &dir, &url, proxy.url(), &leases).await;
    // CloudWatch makes no AWS call for a tenant without instances, so A finishes that job and
    // releases it; EC2 and Cost Explorer stay leased, their calls held at the proxy.
    let deadline = Instant::now() + Duration::from_secs(30);
    let held = loop {
        let jobs = store.jobs(tenant).await.unwrap();
        let (held, released): (Vec<_>, Vec<_>) =
            jobs.into_iter().partition(|j| j.collector != "cloudwatch");
        let cloudwatch_done = released.len() == 1
            && released[0].lease_owner.is_none()
            && released[0].next_run_at > Utc::now();
        if held.len() == 2
            && held.iter().all(|j| j.lease_owner.is_some())
            && cloudwatch_done
            && proxy.held() > 0
        {
            break held;
        }
        assert!(
            Instant::now() < deadline,
            "replica A did not lease: {held:?} {released:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let owner_a = held[0].lease_owner.clone().unwrap();
    assert!(
        held.iter()
            .all(|j| j.lease_owner.as_deref() == Some(&owner_a))
    );
    let a_leased_until: DateTime<Utc> = held.iter().filter_map(|j| j.leased_until).max().unwrap();
    a.kill();
    let killed_at = Utc::now();
    assert!(
        killed_at < a_leased_until,
        "A was killed while holding its leases"
    );
    // What A had in flight never reaches moto.
    proxy.set_policy(|_| Fault::Drop);
    proxy.release();

    let b = Replica::start("b", &dir, &url, &testing::moto_url(), &leases).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let runs = loop {
        let runs = store.runs(tenant, 20).await.unwrap();
        if runs
            .iter()
            .filter(|r| r.status == RunStatus::Succeeded)
            .count()
            >= 3
        {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "B did not take the jobs over: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // B keeps polling: nothing runs again within the interval.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let runs_after = store.runs(tenant, 20).await.unwrap();
    assert_eq!(
        runs_after.len(),
        runs.len(),
        "a job ran twice: {runs_after:?}"
    );

    let succeeded: Vec<&CollectionRun> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Succeeded)
        .collect();
    let collectors: BTreeSet<&str> = succeeded.iter().map(|r| r.collector.as_str()).collect();
    assert_eq!(succeeded.len(), 3, "{runs:?}");
    assert_eq!(
        collectors,
        BTreeSet::from(["cloudwatch", "costexplorer", "ec2"])
    );
    for run in succeeded.iter().filter(|r| r.collector != "cloudwatch") {
        assert!(
            run.started_at >= a_leased_until,
            "B started {} before A's lease expired at {a_leased_until}",
            run.collector
        );
    }
    // A's EC2 and Cost Explorer runs were started and never finished: B, taking the jobs,
    // marks them failed as abandoned, so nothing stays "running" for ever.
    assert!(
        runs.iter().all(|r| r.status != RunStatus::Running),
        "{runs:?}"
    );
    let abandoned: Vec<_> = runs
        .iter()
        .filter(|r| {
            r.status == RunStatus::Failed
                && r.error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("abandoned"))
        })
        .collect();
    assert_eq!(abandoned.len(), 2, "{runs:?}");
    let costs = store
        .daily_costs(tenant, today - chrono::Duration::days(10), today)
        .await
        .unwrap();
    assert_eq!(costs.len(), 3, "each day written once: {costs:?}");
    for job in store.jobs(tenant).await.unwrap() {
        assert!(job.lease_owner.is_none(), "lease released: {job:?}");
        assert!(
            job.next_run_at > Utc::now() + chrono::Duration::minutes(50),
            "next run one interval away: {job:?}"
        );
    }
    eprintln!(
        "replica kill: A killed {:.1} s before its leases expired; B started the jobs {:.1} s after expiry; {} runs of A marked abandoned",
        (a_leased_until - killed_at).num_milliseconds() as f64 / 1000.0,
        (succeeded
            .iter()
            .filter(|r| r.collector != "cloudwatch")
            .map(|r| r.started_at)
            .min()
            .unwrap()
            - a_leased_until)
            .num_milliseconds() as f64
            / 1000.0,
        abandoned.len()
    );
    drop(b);
}

#[tokio::test]
async fn three_replicas_collect_each_of_two_hundred_tenants_once_per_interval() {
    const TENANTS: usize = 200;
    let _moto = testing::shared().await;
    let (url, store) = fresh_store().await;
    let mut tenants: Vec<TenantId> = Vec::new();
    for n in 0..TENANTS {
        tenants.push(seed_tenant(&store, n).await.0);
    }
    let dir = temp_dir("cloudspend-scale");
    let moto = testing::moto_url();
    // One-minute intervals (the shortest the scheduler allows): the test watches two of them.
    let env = [
        ("CLOUDSPEND_EC2_INTERVAL_MINUTES", "1"),
        ("CLOUDSPEND_CLOUDWATCH_INTERVAL_MINUTES", "1"),
        ("CLOUDSPEND_COSTEXPLORER_INTERVAL_MINUTES", "1"),
    ];
    let started = Instant::now();
    let mut replicas = Vec::new();
    for name in ["r1", "r2", "r3"] {
        replicas.push(Replica::start(name, &dir, &url, &moto, &env).await);
    }
    let rss_start: Vec<u64> = replicas.iter().map(Replica::rss_kb).collect();

    let expected = TENANTS * 3;
    let finished = |runs: &BTreeMap<TenantId, Vec<CollectionRun>>| {
        runs.values()
            .flatten()
            .filter(|r| r.status != RunStatus::Running)
            .count()
    };
    let all_runs = |store: Arc<dyn Store>, tenants: Vec<TenantId>| async move {
        let mut all = BTreeMap::new();
        for tenant in tenants {
            all.insert(tenant, store.runs(tenant, 20).await.unwrap());
        }
        all
    };
    // First interval: every job once.
    let deadline = Instant::now() + Duration::from_secs(120);
    let first_pass = loop {
        let runs = all_runs(store.clone(), tenants.clone()).await;
        if finished(&runs) >= expected {
            break started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} collections ran",
            finished(&runs)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Second interval: every job once more, no sooner than a minute after its first run.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let runs = all_runs(store.clone(), tenants.clone()).await;
        if finished(&runs) >= 2 * expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {} collections ran in two intervals",
            finished(&runs),
            2 * expected
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let two_intervals = started.elapsed();
    let rss_end: Vec<u64> = replicas.iter().map(Replica::rss_kb).collect();
    for replica in &mut replicas {
        replica.stop();
    }

    let runs = all_runs(store.clone(), tenants.clone()).await;
    let mut min_gap = chrono::Duration::days(1);
    let mut total_runs = 0;
    for (tenant, runs) in &runs {
        let mut by_collector: BTreeMap<&str, Vec<&CollectionRun>> = BTreeMap::new();
        for run in runs {
            assert_eq!(run.status, RunStatus::Succeeded, "{tenant}: {run:?}");
            by_collector
                .entry(run.collector.as_str())
                .or_default()
                .push(run);
        }
        assert_eq!(by_collector.len(), 3, "{tenant}: {runs:?}");
        for (collector, mut runs) in by_collector {
            // Every interval once: at least two runs in two intervals, and never two within
            // one (the scheduler sets the next run one interval after a run starts). On a slow
            // machine the first jobs may already be in their third interval.
            assert!(runs.len() >= 2, "{tenant} {collector}: {runs:?}");
            runs.sort_by_key(|r| r.started_at);
            for pair in runs.windows(2) {
                let gap = pair[1].started_at - pair[0].started_at;
                assert!(
                    gap >= chrono::Duration::seconds(59),
                    "{tenant} {collector} ran again after {gap}"
                );
                min_gap = min_gap.min(gap);
            }
            total_runs += runs.len();
        }
    }
    // Who did the work: each replica's log names the tenant and collector of every run.
    let mut seen = BTreeSet::new();
    let mut per_replica = BTreeMap::new();
    for replica in &replicas {
        let done = replica.finished_runs();
        per_replica.insert(replica.name.clone(), done.len());
        for run in done {
            seen.insert(run);
        }
    }
    assert_eq!(
        per_replica.values().sum::<usize>(),
        total_runs,
        "every run in the database was done by exactly one replica: {per_replica:?}"
    );
    assert_eq!(seen.len(), expected, "every (tenant, collector) ran");
    for (name, count) in &per_replica {
        assert!(
            *count >= total_runs / 10,
            "replica {name} did {count} of {total_runs} runs: {per_replica:?}"
        );
    }
    eprintln!(
        "scale-out: {TENANTS} tenants x 3 collectors on 3 replicas: first interval done in {:.1} s, \
         two intervals in {:.1} s; shortest gap between a job's runs {} s; runs per replica {per_replica:?}; \
         RSS kB start {rss_start:?} end {rss_end:?}",
        first_pass.as_secs_f64(),
        two_intervals.as_secs_f64(),
        min_gap.num_milliseconds() as f64 / 1000.0
    );
}
