//! CloudWatch CPU collector: `CPUUtilization` of many EC2 instances with batched GetMetricData
//! (up to 500 queries a call, never one call per instance), mapped to
//! [`cloudspend_core::records::MetricPoint`]s, oldest first.
//!
//! It never touches the database. CloudWatch is regional: ask once per region with the
//! instances of that region. A stopped (or unknown) instance has no datapoints, which is an
//! empty series here, not an error.
//!
//! Cost: GetMetricData is billed per metric queried, and calls are what the rate limit counts, so
//! the default [`CpuStats::Average`] asks one query per instance: 1,000 instances take 2 calls
//! (more only when a batch's datapoints exceed the 100,800 a response can carry, e.g. 500
//! instances × 288 five-minute points for a full day adds one page per batch).
//! [`CpuStats::AverageAndMaximum`] asks two (250 instances a call), for the few-instance views
//! (the `/test-cpu` diagnostics) where the real per-period maximum matters.
//!
//! Layout: [`CpuQuery`] (what to fetch) → [`cpu_utilization`] (validate, batch, page, merge)
//! → `batch_points` (one batch of ≤ 500 queries, all pages).

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::config::Region;
use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricStat, ScanBy, StatusCode,
};
use aws_types::SdkConfig;
use chrono::{DateTime, Duration, Utc};
use cloudspend_aws_access::{AwsError, RequestCounter};
use cloudspend_core::records::MetricPoint;
use std::collections::{BTreeMap, HashSet};

/// The IAM permission this collector needs.
pub const PERMISSION: &str = "cloudwatch:GetMetricData";

/// GetMetricData accepts at most 500 queries per call.
pub const MAX_QUERIES_PER_CALL: usize = 500;

pub const METRIC: &str = "CPUUtilization";
/// CloudWatch reports CPUUtilization in percent; GetMetricData does not echo the unit.
pub const UNIT: &str = "Percent";

/// Which statistics to fetch per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuStats {
    /// One query per instance (500 instances a call). `maximum` is set equal to `average`:
    /// collections use the average for idle detection, and fetching the maximum as well would
    /// double the calls and the per-metric cost.
    Average,
    /// Two queries per instance (250 instances a call); `maximum` is the real per-period maximum.
    AverageAndMaximum,
}

impl CpuStats {
    fn queries_per_instance(self) -> usize {
        match self {
            Self::Average => 1,
            Self::AverageAndMaximum => 2,
        }
    }
}

/// What to fetch: instances of one region over `[from, to)` at `period_seconds`.
#[derive(Clone, Debug)]
pub struct CpuQuery {
    pub region: String,
    pub instance_ids: Vec<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// A multiple of 60: 300 for the recent view, 3600 for hourly history.
    pub period_seconds: i32,
    pub stats: CpuStats,
}

impl CpuQuery {
    /// The last 24 hours at 5-minute periods, average and maximum: the diagnostics and recent view.
    /// The window is aligned to 5-minute boundaries (ending at the boundary after `now`), so
    /// every datapoint's timestamp is the start of its period, as CloudWatch's console shows.
    pub fn last_24_hours(
        region: impl Into<String>,
        instance_ids: Vec<String>,
        now: DateTime<Utc>,
    ) -> Self {
        let secs = now.timestamp();
        let end = DateTime::from_timestamp(secs - secs.rem_euclid(300) + 300, 0).unwrap_or(now);
        Self {
            region: region.into(),
            instance_ids,
            from: end - Duration::hours(24),
            to: end,
            period_seconds: 300,
            stats: CpuStats::AverageAndMaximum,
        }
    }

    /// Hourly averages over `[from, to)`: the history collection for many instances.
    pub fn hourly(
        region: impl Into<String>,
        instance_ids: Vec<String>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Self {
        Self {
            region: region.into(),
            instance_ids,
            from,
            to,
            period_seconds: 3600,
            stats: CpuStats::Average,
        }
    }
}

/// `i-` then 8 or 17 lowercase hex digits, as EC2 issues them. Checked before an id goes to
/// AWS so a typo is a 400, not an empty series.
pub fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// CPU utilisation of every instance in `query`, grouped by instance in the order given, each
/// instance's points oldest first. Instances without datapoints contribute nothing.
#[tracing::instrument(skip_all, fields(region = %query.region, instances = query.instance_ids.len()), err)]
pub async fn cpu_utilization(
    config: &SdkConfig,
    query: &CpuQuery,
    counter: &RequestCounter,
) -> Result<Vec<MetricPoint>, AwsError> {
    validate(query)?;
    let mut seen = HashSet::new();
    let ids: Vec<&str> = query
        .instance_ids
        .iter()
        .map(String::as_str)
        .filter(|id| seen.insert(*id))
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let client = Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(config)
            .region(Region::new(query.region.clone()))
            .interceptor(counter.clone())
            .build(),
    );
    let per_call = MAX_QUERIES_PER_CALL / query.stats.queries_per_instance();
    let mut points = Vec::new();
    for batch in ids.chunks(per_call) {
        points.extend(batch_points(&client, batch, query).await?);
    }
    Ok(points)
}

fn validate(query: &CpuQuery) -> Result<(), AwsError> {
    if let Some(bad) = query.instance_ids.iter().find(|id| !is_instance_id(id)) {
        return Err(AwsError::invalid_input(format!(
            "`{bad}` is not an EC2 instance id (i-0123456789abcdef0)"
        )));
    }
    if query.period_seconds < 60 || query.period_seconds % 60 != 0 {
        return Err(AwsError::invalid_input(format!(
            "period {}s: use a multiple of 60 seconds (300 or 3600)",
            query.period_seconds
        )));
    }
    if query.from >= query.to {
        return Err(AwsError::invalid_input(
            "the window is empty: `from` must be before `to`",
        ));
    }
    Ok(())
}

/// One instance's datapoints: timestamp (seconds) -> (average, maximum). The two statistics
/// come back as separate query results, possibly on different pages.
type Series = BTreeMap<i64, (Option<f64>, Option<f64>)>;

/// One GetMetricData batch (≤ 500 queries), all pages, merged per instance.
async fn batch_points(
    client: &Client,
    ids: &[&str],
    query: &CpuQuery,
) -> Result<Vec<MetricPoint>, AwsError> {
    let mut queries = Vec::with_capacity(ids.len() * query.stats.queries_per_instance());
    for (i, id) in ids.iter().enumerate() {
        queries.push(metric_query(
            format!("avg{i}"),
            id,
            "Average",
            query.period_seconds,
        ));
        if query.stats == CpuStats::AverageAndMaximum {
            queries.push(metric_query(
                format!("max{i}"),
                id,
                "Maximum",
                query.period_seconds,
            ));
        }
    }
    let mut series: Vec<Series> = vec![Series::new(); ids.len()];
    let mut pages = client
        .get_metric_data()
        .set_metric_data_queries(Some(queries))
        .start_time(to_smithy(query.from))
        .end_time(to_smithy(query.to))
        .scan_by(ScanBy::TimestampAscending)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk(PERMISSION, e))?;
        for result in page.metric_data_results() {
            if let Some(StatusCode::Forbidden | StatusCode::InternalError) = result.status_code() {
                let status = result
                    .status_code()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default();
                let message = result
                    .messages()
                    .iter()
                    .filter_map(|m| m.value())
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(AwsError::reported(PERMISSION, status, message));
            }
            let Some((is_max, index)) = result.id().and_then(parse_query_id) else {
                continue;
            };
            let Some(instance) = series.get_mut(index) else {
                continue;
            };
            for (t, v) in result.timestamps().iter().zip(result.values()) {
                let slot = instance.entry(t.secs()).or_default();
                if is_max {
                    slot.1 = Some(*v)
                } else {
                    slot.0 = Some(*v)
                }
            }
        }
    }
    let mut points = Vec::new();
    for (id, instance) in ids.iter().zip(series) {
        for (secs, (average, maximum)) in instance {
            let (Some(average), Some(timestamp)) = (average, DateTime::from_timestamp(secs, 0))
            else {
                continue;
            };
            points.push(MetricPoint {
                instance_id: (*id).to_string(),
                metric: METRIC.to_string(),
                period_seconds: i64::from(query.period_seconds),
                timestamp,
                average,
                // Average-only queries: the period's maximum is not fetched (see CpuStats::Average).
                maximum: maximum.unwrap_or(average),
                unit: UNIT.to_string(),
            });
        }
    }
    Ok(points)
}

fn metric_query(id: String, instance_id: &str, stat: &str, period: i32) -> MetricDataQuery {
    let metric = Metric::builder()
        .namespace("AWS/EC2")
        .metric_name(METRIC)
        .dimensions(
            Dimension::builder()
                .name("InstanceId")
                .value(instance_id)
                .build(),
        )
        .build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(period)
                .stat(stat)
                .build(),
        )
        .return_data(true)
        .build()
}

/// `avg12` → (false, 12), `max12` → (true, 12).
fn parse_query_id(id: &str) -> Option<(bool, usize)> {
    if let Some(n) = id.strip_prefix("avg") {
        return n.parse().ok().map(|n| (false, n));
    }
    id.strip_prefix("max")
        .and_then(|n| n.parse().ok())
        .map(|n| (true, n))
}

fn to_smithy(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs(t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
    use aws_sdk_cloudwatch::types::MetricDataResult;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn ts(secs: i64) -> aws_smithy_types::DateTime {
        aws_smithy_types::DateTime::from_secs(secs)
    }

    fn query(ids: Vec<String>, stats: CpuStats) -> CpuQuery {
        CpuQuery {
            region: "us-east-1".into(),
            instance_ids: ids,
            from: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            to: DateTime::from_timestamp(1_700_086_400, 0).unwrap(),
            period_seconds: 300,
            stats,
        }
    }

    #[test]
    fn instance_ids_are_checked() {
        assert!(is_instance_id("i-0123456789abcdef0"));
        assert!(is_instance_id("i-1234abcd"));
        assert!(!is_instance_id("i-XYZ"));
        assert!(!is_instance_id("0123456789abcdef0"));
        assert!(!is_instance_id("i-0123456789ABCDEF0"));
    }

    #[tokio::test]
    async fn pages_merge_average_and_maximum_per_instance_oldest_first() {
        let first = mock!(Client::get_metric_data)
            .match_requests(|r| r.next_token().is_none())
            .then_output(|| {
                GetMetricDataOutput::builder()
                    .metric_data_results(
                        MetricDataResult::builder()
                            .id("avg0")
                            .timestamps(ts(1_700_000_300))
                            .values(10.0)
                            .status_code(StatusCode::PartialData)
                            .build(),
                    )
                    .metric_data_results(
                        MetricDataResult::builder()
                            .id("max0")
                            .timestamps(ts(1_700_000_300))
                            .values(40.0)
                            .status_code(StatusCode::PartialData)
                            .build(),
                    )
                    .next_token("more")
                    .build()
            });
        let second = mock!(Client::get_metric_data)
            .match_requests(|r| r.next_token() == Some("more"))
            .then_output(|| {
                GetMetricDataOutput::builder()
                    .metric_data_results(
                        MetricDataResult::builder()
                            .id("avg0")
                            .timestamps(ts(1_700_000_600))
                            .values(20.0)
                            .status_code(StatusCode::Complete)
                            .build(),
                    )
                    .metric_data_results(
                        MetricDataResult::builder()
                            .id("max0")
                            .timestamps(ts(1_700_000_600))
                            .values(50.0)
                            .status_code(StatusCode::Complete)
                            .build(),
                    )
                    .metric_data_results(
                        MetricDataResult::builder()
                            .id("avg1")
                            .status_code(StatusCode::Complete)
                            .build(),
                    )
                    .build()
            });
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&first, &second]);
        let q = query(
            vec!["i-0000000000000000a".into(), "i-0000000000000000b".into()],
            CpuStats::AverageAndMaximum,
        );

        let points = batch_points(&client, &["i-0000000000000000a", "i-0000000000000000b"], &q)
            .await
            .unwrap();

        let got: Vec<(i64, f64, f64)> = points
            .iter()
            .map(|p| (p.timestamp.timestamp(), p.average, p.maximum))
            .collect();
        assert_eq!(
            got,
            vec![(1_700_000_300, 10.0, 40.0), (1_700_000_600, 20.0, 50.0)]
        );
        assert!(points.iter().all(|p| p.instance_id == "i-0000000000000000a"
            && p.unit == "Percent"
            && p.period_seconds == 300));
    }

    #[tokio::test]
    async fn forbidden_query_status_is_an_access_error() {
        let rule = mock!(Client::get_metric_data).then_output(|| {
            GetMetricDataOutput::builder()
                .metric_data_results(
                    MetricDataResult::builder()
                        .id("avg0")
                        .status_code(StatusCode::Forbidden)
                        .build(),
                )
                .build()
        });
        let client = mock_client!(aws_sdk_cloudwatch, [&rule]);
        let q = query(vec!["i-0000000000000000a".into()], CpuStats::Average);

        let err = batch_points(&client, &["i-0000000000000000a"], &q)
            .await
            .unwrap_err();

        assert_eq!(err.kind(), cloudspend_aws_access::ErrorKind::AccessDenied);
        assert!(err.hint().unwrap().contains("cloudwatch:GetMetricData"));
    }

    #[test]
    fn malformed_ids_and_periods_are_refused_before_any_call() {
        let q = query(vec!["i-nope".into()], CpuStats::Average);
        assert!(validate(&q).unwrap_err().to_string().contains("i-nope"));
        let mut q = query(vec![], CpuStats::Average);
        q.period_seconds = 90;
        assert!(validate(&q).is_err());
    }
}
