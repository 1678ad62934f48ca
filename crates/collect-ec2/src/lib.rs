//! EC2 inventory collector: DescribeInstances in every region a tenant configured, concurrently,
//! with the SDK's paginator, mapped to [`cloudspend_core::records::Instance`].
//!
//! It never touches the database and never decides what to keep: every instance AWS reports is
//! returned with its state as reported (terminated ones included, until AWS forgets them). The
//! caller (scheduler, diagnostics endpoint) gets the `SdkConfig` from `cloudspend-aws-access`
//! and stores or shows the result.
//!
//! Layout: [`collect_instances`] (all regions) over `describe_region` (one region, all pages)
//! over `map_instance` (one SDK instance to one core record).

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::Region;
use aws_types::SdkConfig;
use chrono::{DateTime, Utc};
use cloudspend_aws_access::{AwsError, RequestCounter};
use cloudspend_core::records::Instance;
use futures::future::try_join_all;
use std::collections::BTreeMap;

/// The IAM permission this collector needs.
pub const PERMISSION: &str = "ec2:DescribeInstances";

/// What EC2 leaves out of `PlatformDetails` only for Linux; name it as the console does.
const DEFAULT_PLATFORM: &str = "Linux/UNIX";

/// All instances of the account in `regions`, sorted by region then instance id. The regions
/// are queried concurrently; the first failing region fails the whole collection (a partial
/// inventory would look like instances were deleted).
#[tracing::instrument(skip_all, fields(%account_id, regions = regions.len()), err)]
pub async fn collect_instances(
    config: &SdkConfig,
    account_id: &str,
    regions: &[String],
    counter: &RequestCounter,
) -> Result<Vec<Instance>, AwsError> {
    let mut unique: Vec<&String> = regions.iter().collect();
    unique.sort();
    unique.dedup();
    let seen_at = Utc::now();
    let per_region = try_join_all(unique.into_iter().map(|region| {
        let client = Client::from_conf(
            aws_sdk_ec2::config::Builder::from(config)
                .region(Region::new(region.clone()))
                .interceptor(counter.clone())
                .build(),
        );
        async move { describe_region(&client, account_id, region, seen_at).await }
    }))
    .await?;
    let mut instances: Vec<Instance> = per_region.into_iter().flatten().collect();
    instances.sort_by(|a, b| (&a.region, &a.instance_id).cmp(&(&b.region, &b.instance_id)));
    Ok(instances)
}

/// Every instance in the client's region, all pages.
async fn describe_region(
    client: &Client,
    account_id: &str,
    region: &str,
    seen_at: DateTime<Utc>,
) -> Result<Vec<Instance>, AwsError> {
    let mut pages = client
        .describe_instances()
        .max_results(1000)
        .into_paginator()
        .send();
    let mut instances = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk(PERMISSION, e))?;
        for reservation in page.reservations() {
            // The reservation's owner is the account the instance really lives in; the
            // configured account id is only a fallback.
            let owner = reservation.owner_id().unwrap_or(account_id);
            for instance in reservation.instances() {
                if let Some(mapped) = map_instance(instance, owner, region, seen_at) {
                    instances.push(mapped);
                }
            }
        }
    }
    tracing::debug!(region, count = instances.len(), "described instances");
    Ok(instances)
}

fn map_instance(
    instance: &aws_sdk_ec2::types::Instance,
    account_id: &str,
    region: &str,
    seen_at: DateTime<Utc>,
) -> Option<Instance> {
    // An instance without an id cannot be stored or shown; AWS always sends one.
    let instance_id = instance.instance_id()?.to_string();
    let tags: BTreeMap<String, String> = instance
        .tags()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    Some(Instance {
        account_id: account_id.to_string(),
        region: region.to_string(),
        instance_id,
        instance_type: instance
            .instance_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        state: instance
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string())
            .unwrap_or_default(),
        launch_time: instance
            .launch_time()
            .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        availability_zone: instance
            .placement()
            .and_then(|p| p.availability_zone())
            .unwrap_or_default()
            .to_string(),
        platform: instance
            .platform_details()
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_PLATFORM)
            .to_string(),
        tags,
        last_seen_at: seen_at,
        volume_ids: instance
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.ebs()?.volume_id())
            .map(str::to_string)
            .collect(),
        state_since: instance
            .state_transition_reason()
            .and_then(state_transition_time),
    })
}

/// The time in a StateTransitionReason such as "User initiated (2024-01-15 10:00:00 GMT)"
/// (moto writes "UTC"). AWS documents no format, so anything else is simply not known.
fn state_transition_time(reason: &str) -> Option<DateTime<Utc>> {
    let inside = reason.get(reason.rfind('(')? + 1..reason.rfind(')')?)?;
    let stamp = inside
        .strip_suffix(" GMT")
        .or_else(|| inside.strip_suffix(" UTC"))?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::operation::describe_instances::{
        DescribeInstancesError, DescribeInstancesOutput,
    };
    use aws_sdk_ec2::types::{
        EbsInstanceBlockDevice, InstanceBlockDeviceMapping, InstanceState, InstanceStateName,
        InstanceType, Placement, Reservation, Tag,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::error::ErrorMetadata;
    use cloudspend_aws_access::ErrorKind;

    fn sdk_instance(
        id: &str,
        state: InstanceStateName,
        platform: Option<&str>,
    ) -> aws_sdk_ec2::types::Instance {
        aws_sdk_ec2::types::Instance::builder()
            .instance_id(id)
            .instance_type(InstanceType::T3Micro)
            .state(InstanceState::builder().name(state).build())
            .launch_time(aws_smithy_types::DateTime::from_secs(1_700_000_000))
            .placement(Placement::builder().availability_zone("eu-west-1b").build())
            .set_platform_details(platform.map(str::to_string))
            .tags(Tag::builder().key("Name").value("web-1").build())
            .tags(Tag::builder().key("team").value("payments").build())
            .build()
    }

    #[tokio::test]
    async fn all_pages_are_read_and_every_field_is_mapped() {
        let first = mock!(Client::describe_instances)
            .match_requests(|r| r.next_token().is_none())
            .then_output(|| {
                DescribeInstancesOutput::builder()
                    .reservations(
                        Reservation::builder()
                            .owner_id("111122223333")
                            .instances(sdk_instance("i-0aaa", InstanceStateName::Running, None))
                            .build(),
                    )
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(Client::describe_instances)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_output(|| {
                DescribeInstancesOutput::builder()
                    .reservations(
                        Reservation::builder()
                            .instances({
                                let mut stopped = sdk_instance(
                                    "i-0bbb",
                                    InstanceStateName::Stopped,
                                    Some("Windows"),
                                );
                                stopped.state_transition_reason =
                                    Some("User initiated (2024-01-15 10:00:00 GMT)".into());
                                stopped.block_device_mappings = Some(
                                    ["vol-0root", "vol-0data"]
                                        .map(|v| {
                                            InstanceBlockDeviceMapping::builder()
                                                .ebs(
                                                    EbsInstanceBlockDevice::builder()
                                                        .volume_id(v)
                                                        .build(),
                                                )
                                                .build()
                                        })
                                        .to_vec(),
                                );
                                stopped
                            })
                            .build(),
                    )
                    .build()
            });
        let counter = RequestCounter::new();
        let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&first, &second], |b| b
            .interceptor(counter.clone()));
        let seen = Utc::now();

        let got = describe_region(&client, "999999999999", "eu-west-1", seen)
            .await
            .unwrap();

        assert_eq!(got.len(), 2);
        let a = &got[0];
        assert_eq!(a.instance_id, "i-0aaa");
        assert_eq!(a.account_id, "111122223333", "the reservation owner wins");
        assert_eq!(a.region, "eu-west-1");
        assert_eq!(a.instance_type, "t3.micro");
        assert_eq!(a.state, "running");
        assert_eq!(a.launch_time, DateTime::from_timestamp(1_700_000_000, 0));
        assert_eq!(a.availability_zone, "eu-west-1b");
        assert_eq!(a.platform, "Linux/UNIX");
        assert_eq!(a.name(), Some("web-1"));
        assert_eq!(a.tags.get("team").map(String::as_str), Some("payments"));
        assert_eq!(a.last_seen_at, seen);
        let b = &got[1];
        assert_eq!(
            b.account_id, "999999999999",
            "configured account when AWS names no owner"
        );
        assert_eq!(b.state, "stopped");
        assert_eq!(b.platform, "Windows");
        assert_eq!(b.volume_ids, ["vol-0root", "vol-0data"]);
        assert_eq!(
            b.state_since,
            DateTime::from_timestamp(1_705_312_800, 0),
            "2024-01-15 10:00:00 GMT"
        );
        assert_eq!(a.state_since, None, "a running instance has no reason");
        assert_eq!(counter.counts().operation("DescribeInstances"), 2);
    }

    #[test]
    fn state_transition_times_are_read_when_aws_gives_one() {
        for (reason, expected) in [
            (
                "User initiated (2024-01-15 10:00:00 GMT)",
                Some(1_705_312_800),
            ),
            (
                "User initiated (2024-01-15 10:00:00 UTC)",
                Some(1_705_312_800),
            ),
            (
                "Server.ScheduledStop (2024-01-15 10:00:00 GMT)",
                Some(1_705_312_800),
            ),
            ("", None),
            ("User initiated", None),
            ("User initiated (yesterday)", None),
            (")(", None),
        ] {
            assert_eq!(
                state_transition_time(reason),
                expected.and_then(|s| DateTime::from_timestamp(s, 0)),
                "{reason:?}"
            );
        }
    }

    #[tokio::test]
    async fn throttling_is_retried_within_the_attempt_bound_and_counted() {
        let throttle = r#"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r-1</RequestID></Response>"#;
        let rule = mock!(Client::describe_instances)
            .sequence()
            .http_status(503, Some(throttle.to_string()))
            .times(2)
            .output(|| DescribeInstancesOutput::builder().build())
            .build();
        let counter = RequestCounter::new();
        let client = mock_client!(aws_sdk_ec2, RuleMode::Sequential, [&rule], |b| b
            .retry_config(aws_sdk_ec2::config::retry::RetryConfig::standard().with_max_attempts(3))
            .interceptor(counter.clone()));

        let got = describe_region(&client, "1", "us-east-1", Utc::now())
            .await
            .unwrap();

        assert!(got.is_empty());
        let counts = counter.counts();
        assert_eq!(
            (
                counts.requests,
                counts.attempts,
                counts.retries,
                counts.throttled
            ),
            (1, 3, 2, 2),
            "{counts:?}"
        );
    }

    #[tokio::test]
    async fn throttling_past_the_attempt_bound_is_a_throttled_error() {
        let throttle = r#"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r-2</RequestID></Response>"#;
        let rule = mock!(Client::describe_instances)
            .sequence()
            .http_status(503, Some(throttle.to_string()))
            .times(3)
            .build();
        let client = mock_client!(aws_sdk_ec2, RuleMode::Sequential, [&rule], |b| b
            .retry_config(
                aws_sdk_ec2::config::retry::RetryConfig::standard().with_max_attempts(3)
            ));

        let err = describe_region(&client, "1", "us-east-1", Utc::now())
            .await
            .unwrap_err();

        assert_eq!(err.kind(), ErrorKind::Throttled, "{err}");
        assert_eq!(err.code(), Some("RequestLimitExceeded"));
        assert!(err.hint().is_some());
    }

    #[tokio::test]
    async fn unauthorized_operation_names_the_missing_permission() {
        let denied = mock!(Client::describe_instances).then_error(|| {
            DescribeInstancesError::generic(
                ErrorMetadata::builder()
                    .code("UnauthorizedOperation")
                    .message("You are not authorized to perform this operation.")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_ec2, [&denied]);

        let err = describe_region(&client, "1", "us-east-1", Utc::now())
            .await
            .unwrap_err();

        assert_eq!(err.kind(), ErrorKind::AccessDenied);
        assert_eq!(err.code(), Some("UnauthorizedOperation"));
        assert!(
            err.hint().unwrap().contains("ec2:DescribeInstances"),
            "{err}"
        );
    }
}
