//! End-to-end against the moto server (`scripts/test.sh` starts it and sets
//! CLOUDSPEND_TEST_MOTO_URL; without it these tests fail, they never skip).

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use chrono::{DateTime, Duration, Utc};
use cloudspend_aws_access::testing::{self, Moto, count_action, role_in, unique_account_id};
use cloudspend_aws_access::{AwsAccess, RequestCounter};
use cloudspend_collect_cloudwatch::{CpuQuery, CpuStats, cpu_utilization};
use cloudspend_core::TenantId;

async fn put_cpu(client: &Client, instance_id: &str, at: DateTime<Utc>, value: f64) {
    client
        .put_metric_data()
        .namespace("AWS/EC2")
        .metric_data(
            MetricDatum::builder()
                .metric_name("CPUUtilization")
                .dimensions(
                    Dimension::builder()
                        .name("InstanceId")
                        .value(instance_id)
                        .build(),
                )
                .timestamp(aws_smithy_types::DateTime::from_secs(at.timestamp()))
                .value(value)
                .unit(StandardUnit::Percent)
                .build(),
        )
        .send()
        .await
        .expect("put metric data");
}

/// A period boundary two hours ago, so every put datapoint falls in a known 5-minute period.
fn aligned_start() -> DateTime<Utc> {
    let secs = (Utc::now() - Duration::hours(2)).timestamp();
    DateTime::from_timestamp(secs - secs % 300, 0).unwrap()
}

async fn tenant_config(access: &AwsAccess) -> aws_types::SdkConfig {
    let account = unique_account_id();
    access
        .sdk_config(TenantId::new(), &role_in(&account), "eu-west-1")
        .await
        .unwrap()
}

#[tokio::test]
async fn running_instances_read_back_exactly_and_a_stopped_one_is_an_empty_series() {
    let _moto_state = testing::shared().await;
    let access = testing::aws_access().await;
    let config = tenant_config(&access).await;
    let cw = Client::new(&config);
    let (web, stopped, db) = (
        "i-0000000000000a001",
        "i-0000000000000a002",
        "i-0000000000000a003",
    );
    let t0 = aligned_start();
    put_cpu(&cw, web, t0, 10.0).await;
    put_cpu(&cw, web, t0 + Duration::seconds(60), 30.0).await;
    put_cpu(&cw, web, t0 + Duration::seconds(300), 55.5).await;
    put_cpu(&cw, db, t0 + Duration::seconds(600), 3.25).await;

    let query = CpuQuery {
        region: "eu-west-1".into(),
        instance_ids: vec![web.into(), stopped.into(), db.into()],
        from: t0,
        to: t0 + Duration::hours(1),
        period_seconds: 300,
        stats: CpuStats::AverageAndMaximum,
    };
    let counter = RequestCounter::new();
    let points = cpu_utilization(&config, &query, &counter).await.unwrap();

    let got: Vec<(&str, i64, f64, f64)> = points
        .iter()
        .map(|p| {
            (
                p.instance_id.as_str(),
                (p.timestamp - t0).num_seconds(),
                p.average,
                p.maximum,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (web, 0, 20.0, 30.0),
            (web, 300, 55.5, 55.5),
            (db, 600, 3.25, 3.25)
        ]
    );
    assert!(
        points.iter().all(|p| p.metric == "CPUUtilization"
            && p.unit == "Percent"
            && p.period_seconds == 300)
    );
    assert!(
        !points.iter().any(|p| p.instance_id == stopped),
        "a stopped instance has no datapoints, and that is fine"
    );
    assert_eq!(counter.counts().operation("GetMetricData"), 1);

    // The same data as hourly averages (the history collection).
    let hourly = CpuQuery::hourly("eu-west-1", vec![web.into()], t0, t0 + Duration::hours(1));
    let points = cpu_utilization(&config, &hourly, &counter).await.unwrap();
    assert_eq!(points.len(), 1);
    assert!((points[0].average - (10.0 + 30.0 + 55.5) / 3.0).abs() < 1e-9);
    assert_eq!(
        points[0].maximum, points[0].average,
        "average-only: maximum mirrors the average"
    );
}

#[tokio::test]
async fn cpu_for_a_thousand_instances_costs_at_most_two_get_metric_data_calls() {
    let _moto_state = testing::exclusive().await;
    let moto = Moto::from_env();
    let access = testing::aws_access().await;
    let config = tenant_config(&access).await;
    let cw = Client::new(&config);
    let ids: Vec<String> = (0..1000u64)
        .map(|n| format!("i-{:017x}", 0xb000 + n))
        .collect();
    let t0 = aligned_start();
    // One instance in each batch has data, to show both batches are read back.
    put_cpu(&cw, &ids[7], t0, 12.5).await;
    put_cpu(&cw, &ids[999], t0 + Duration::seconds(300), 87.5).await;

    let query = CpuQuery {
        region: "eu-west-1".into(),
        instance_ids: ids.clone(),
        from: t0,
        to: t0 + Duration::minutes(30),
        period_seconds: 300,
        stats: CpuStats::Average,
    };
    let counter = RequestCounter::new();
    moto.start_recording().await;
    let points = cpu_utilization(&config, &query, &counter).await.unwrap();
    let recorded = moto.stop_recording().await;

    let got: Vec<(&str, f64)> = points
        .iter()
        .map(|p| (p.instance_id.as_str(), p.average))
        .collect();
    assert_eq!(
        got,
        vec![(ids[7].as_str(), 12.5), (ids[999].as_str(), 87.5)]
    );
    assert_eq!(
        count_action(&recorded, "GetMetricData"),
        2,
        "requests moto received"
    );
    assert_eq!(
        counter.counts().operation("GetMetricData"),
        2,
        "requests the SDK sent"
    );
}
