//! End-to-end against the moto server (`scripts/test.sh` starts it and sets
//! CLOUDSPEND_TEST_MOTO_URL; without it this test fails, it never skips).

use aws_sdk_ec2::Client;
use cloudspend_aws_access::RequestCounter;
use cloudspend_aws_access::testing::{self, role_in, run_instance, unique_account_id};
use cloudspend_collect_ec2::collect_instances;
use cloudspend_core::TenantId;

#[tokio::test]
async fn three_instances_in_two_regions_with_one_stopped_are_collected_as_reported() {
    let _moto_state = testing::shared().await;
    let access = testing::aws_access().await;
    let account = unique_account_id();
    let tenant = TenantId::new();
    let creds = role_in(&account);
    let use1 = Client::new(
        &access
            .sdk_config(tenant, &creds, "us-east-1")
            .await
            .unwrap(),
    );
    let euw1 = Client::new(
        &access
            .sdk_config(tenant, &creds, "eu-west-1")
            .await
            .unwrap(),
    );
    let web = run_instance(&use1, &[("Name", "web-1"), ("team", "payments")]).await;
    let batch = run_instance(&use1, &[("Name", "batch")]).await;
    let db = run_instance(&euw1, &[("Name", "db")]).await;
    use1.stop_instances()
        .instance_ids(&batch)
        .send()
        .await
        .expect("stop");

    let counter = RequestCounter::new();
    let config = access
        .sdk_config(tenant, &creds, "us-east-1")
        .await
        .unwrap();
    let regions = vec![
        "us-east-1".to_string(),
        "eu-west-1".to_string(),
        "us-east-1".to_string(),
    ];
    let instances = collect_instances(&config, &account, &regions, &counter)
        .await
        .unwrap();

    assert_eq!(instances.len(), 3, "{instances:#?}");
    let by_id = |id: &str| {
        instances
            .iter()
            .find(|i| i.instance_id == id)
            .unwrap_or_else(|| panic!("{id} missing"))
    };
    let w = by_id(&web);
    assert_eq!(
        (
            w.region.as_str(),
            w.state.as_str(),
            w.instance_type.as_str()
        ),
        ("us-east-1", "running", "t3.micro")
    );
    assert_eq!(w.name(), Some("web-1"));
    assert_eq!(w.tags.get("team").map(String::as_str), Some("payments"));
    assert_eq!(
        w.account_id, account,
        "the role moved the calls into the tenant's account"
    );
    assert!(
        w.availability_zone.starts_with("us-east-1"),
        "{}",
        w.availability_zone
    );
    assert!(w.launch_time.is_some());
    assert_eq!(w.platform, "Linux/UNIX");
    let stopped = by_id(&batch);
    assert_eq!(stopped.state, "stopped");
    // moto gives each instance a root EBS volume and a stop time in StateTransitionReason.
    assert_eq!(stopped.volume_ids.len(), 1, "{stopped:#?}");
    assert!(stopped.volume_ids[0].starts_with("vol-"), "{stopped:#?}");
    let since = stopped.state_since.expect("the stop time");
    assert!(
        (chrono::Utc::now() - since).num_minutes().abs() < 10,
        "{since}"
    );
    assert!(!w.volume_ids.is_empty());
    let d = by_id(&db);
    assert_eq!(
        (d.region.as_str(), d.state.as_str()),
        ("eu-west-1", "running")
    );
    assert_eq!(d.name(), Some("db"));
    // Sorted by region, then id.
    assert_eq!(instances[0].region, "eu-west-1");
    // One DescribeInstances page per region, the duplicate region asked once.
    assert_eq!(
        counter.counts().operation("DescribeInstances"),
        2,
        "{:?}",
        counter.counts()
    );
}

#[tokio::test]
async fn an_account_without_instances_is_an_empty_inventory() {
    let _moto_state = testing::shared().await;
    let access = testing::aws_access().await;
    let account = unique_account_id();
    let config = access
        .sdk_config(TenantId::new(), &role_in(&account), "us-east-1")
        .await
        .unwrap();
    let got = collect_instances(
        &config,
        &account,
        &["ap-southeast-2".to_string()],
        &RequestCounter::new(),
    )
    .await
    .unwrap();
    assert!(got.is_empty());
}
