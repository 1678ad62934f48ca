//! Two schedulers ("serve" replicas) on one PostgreSQL database share the work: every tenant's
//! every collector runs exactly once per interval, and a replica that dies while holding a lease
//! loses the job to the other once the lease expires.

use chrono::Utc;
use cloudspend_aws_access::testing::{self, unique_account_id};
use cloudspend_collection::{Collections, Collector, Scheduler, Settings};
use cloudspend_core::TenantId;
use cloudspend_core::records::RunStatus;
use cloudspend_store::{NewUser, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

async fn connected_tenant(store: &Arc<dyn Store>, n: usize) -> TenantId {
    let user = NewUser {
        email: format!("owner{n}@example.com"),
        password_hash: "x".into(),
        is_global_owner: false,
    };
    let (_, tenant) = store
        .create_user_with_tenant(user, &format!("Tenant {n}"))
        .await
        .unwrap();
    let account = unique_account_id();
    let connection = testing::role_connection(&account, &["us-east-1"]);
    store.put_connection(tenant.id, &connection).await.unwrap();
    tenant.id
}

#[tokio::test]
async fn two_replicas_collect_each_of_twenty_tenants_once_per_interval() {
    let _moto = testing::shared().await;
    let store = cloudspend_store::testing::fresh_postgres().await;
    let mut tenants = Vec::new();
    for n in 0..20 {
        tenants.push(connected_tenant(&store, n).await);
    }
    let aws = testing::aws_access().await;
    let replica = || {
        let collections = Collections::new(store.clone(), aws.clone(), None, Settings::default());
        let mut scheduler = Scheduler::new(collections);
        scheduler.poll_every = Duration::from_millis(50);
        scheduler
    };
    let (a, b) = (replica(), replica());
    let (owner_a, owner_b) = (a.owner().to_string(), b.owner().to_string());
    assert_ne!(owner_a, owner_b);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let ha = tokio::spawn(a.run(stopped(stop_rx.clone())));
    let hb = tokio::spawn(b.run(stopped(stop_rx)));

    // Wait until all 60 jobs have run (or give up after a minute).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut done = 0;
        for tenant in &tenants {
            done += store
                .runs(*tenant, 10)
                .await
                .unwrap()
                .iter()
                .filter(|r| r.status != RunStatus::Running)
                .count();
        }
        if done >= 60 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Keep both replicas polling a little longer: nothing may run a second time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_tx.send(true).unwrap();
    ha.await.unwrap();
    hb.await.unwrap();

    let mut per_owner: BTreeMap<String, usize> = BTreeMap::new();
    for tenant in &tenants {
        let runs = store.runs(*tenant, 10).await.unwrap();
        let mut collectors: Vec<&str> = runs.iter().map(|r| r.collector.as_str()).collect();
        collectors.sort();
        assert_eq!(
            collectors,
            vec!["cloudwatch", "costexplorer", "ec2"],
            "tenant {tenant}: {runs:?}"
        );
        assert!(
            runs.iter().all(|r| r.status == RunStatus::Succeeded),
            "{runs:?}"
        );
        for job in store.jobs(*tenant).await.unwrap() {
            assert!(job.lease_owner.is_none(), "lease released");
            let collector: Collector = job.collector.parse().unwrap();
            let interval = chrono::Duration::from_std(collector.default_interval()).unwrap();
            assert!(
                job.next_run_at > Utc::now() + interval - chrono::Duration::minutes(5),
                "next run one interval away"
            );
        }
        *per_owner.entry("total".into()).or_default() += runs.len();
    }
    assert_eq!(per_owner["total"], 60);
}

#[tokio::test]
async fn a_job_held_by_a_dead_replica_is_taken_over_after_its_lease_expires() {
    let _moto = testing::shared().await;
    let store = cloudspend_store::testing::fresh_postgres().await;
    let tenant = connected_tenant(&store, 0).await;
    let aws = testing::aws_access().await;
    let collections = Collections::new(store.clone(), aws, None, Settings::default());
    collections.ensure_jobs(tenant).await.unwrap();

    // The "dead" replica leases everything with a short lease and never completes.
    let leased = store
        .lease_due_jobs("dead-replica", Utc::now(), Duration::from_millis(300), 10)
        .await
        .unwrap();
    assert_eq!(leased.len(), 3);
    let mut survivor = Scheduler::new(collections);
    survivor.concurrency = 4;
    assert_eq!(
        survivor.drain().await.unwrap(),
        0,
        "a live lease is respected"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        survivor.drain().await.unwrap(),
        3,
        "expired leases are taken over"
    );
    let runs = store.runs(tenant, 10).await.unwrap();
    assert_eq!(runs.len(), 3, "each collector ran exactly once");
}
