//! The opt-in write actions (the stack's `EnableActions=true`): stop and start an EC2 instance,
//! and create, list and delete CloudWatch CPU alarms. Each takes a config already in the
//! instance's region with the tenant's credentials, and returns AWS's request id so the caller
//! can audit it. [`dry_run`] tells whether the role may act at all, without acting.

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricAlarm, Statistic};
use aws_types::SdkConfig;
use aws_types::request_id::RequestId;
use cloudspend_aws_access::AwsError;
use serde::Serialize;

/// The CloudFormation parameter that grants the write permissions, for messages.
pub const ENABLE_PARAMETER: &str = "EnableActions";

/// What to tell a tenant whose role may not act.
pub fn how_to_enable() -> String {
    format!(
        "actions are not enabled on this AWS connection: update the CloudSpend CloudFormation stack with the \
         parameter {ENABLE_PARAMETER}=true (it adds ec2:StopInstances, ec2:StartInstances, \
         cloudwatch:PutMetricAlarm, cloudwatch:DeleteAlarms and cloudwatch:DescribeAlarms to the role), then \
         POST /api/tenants/connection/verify"
    )
}

/// Whether an AWS error means the role lacks the permission (as opposed to anything else).
pub fn is_denied(err: &AwsError) -> bool {
    matches!(
        err.code(),
        Some("UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException")
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceAction {
    Stop,
    Start,
}

impl InstanceAction {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "stop" => Some(Self::Stop),
            "start" => Some(Self::Start),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Start => "start",
        }
    }

    /// The IAM action it needs.
    pub fn permission(self) -> &'static str {
        match self {
            Self::Stop => "ec2:StopInstances",
            Self::Start => "ec2:StartInstances",
        }
    }
}

/// The answer of a DryRun call.
#[derive(Debug, Clone)]
pub enum Permission {
    /// `DryRunOperation`: the call would have succeeded.
    Allowed,
    /// `UnauthorizedOperation` / `AccessDenied`: the role lacks the permission.
    Denied(AwsError),
    /// Any other answer (instance not found, throttled, unreachable).
    Unknown(AwsError),
}

/// Asks EC2 whether `action` on `instance_id` is allowed (`DryRun=true`: nothing happens).
pub async fn dry_run(config: &SdkConfig, action: InstanceAction, instance_id: &str) -> Permission {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let result = match action {
        InstanceAction::Stop => ec2
            .stop_instances()
            .instance_ids(instance_id)
            .dry_run(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk(action.permission(), e)),
        InstanceAction::Start => ec2
            .start_instances()
            .instance_ids(instance_id)
            .dry_run(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk(action.permission(), e)),
    };
    match result {
        // EC2 always answers a DryRun with an error; success would mean DryRun was ignored.
        Ok(()) => Permission::Allowed,
        Err(err) if err.code() == Some("DryRunOperation") => Permission::Allowed,
        Err(err) if is_denied(&err) => Permission::Denied(err),
        Err(err) => Permission::Unknown(err),
    }
}

/// An instance's state before and after a stop or start.
#[derive(Debug, Clone, Serialize)]
pub struct StateChange {
    pub instance_id: String,
    pub previous_state: Option<String>,
    pub current_state: Option<String>,
    pub aws_request_id: Option<String>,
}

/// Stops or starts the instance for real.
pub async fn perform(
    config: &SdkConfig,
    action: InstanceAction,
    instance_id: &str,
) -> Result<StateChange, AwsError> {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let (changes, request_id) = match action {
        InstanceAction::Stop => {
            let out = ec2
                .stop_instances()
                .instance_ids(instance_id)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(action.permission(), e))?;
            (
                out.stopping_instances().to_vec(),
                out.request_id().map(str::to_string),
            )
        }
        InstanceAction::Start => {
            let out = ec2
                .start_instances()
                .instance_ids(instance_id)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(action.permission(), e))?;
            (
                out.starting_instances().to_vec(),
                out.request_id().map(str::to_string),
            )
        }
    };
    let change = changes
        .iter()
        .find(|c| c.instance_id() == Some(instance_id));
    let name = |s: Option<&aws_sdk_ec2::types::InstanceState>| {
        s.and_then(|s| s.name()).map(|n| n.as_str().to_string())
    };
    Ok(StateChange {
        instance_id: instance_id.to_string(),
        previous_state: name(change.and_then(|c| c.previous_state())),
        current_state: name(change.and_then(|c| c.current_state())),
        aws_request_id: request_id,
    })
}

/// The instance's state as DescribeInstances reports it now (None when EC2 does not know it).
pub async fn instance_state(
    config: &SdkConfig,
    instance_id: &str,
) -> Result<Option<String>, AwsError> {
    let out = aws_sdk_ec2::Client::new(config)
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ec2:DescribeInstances", e))?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(instance_id))
        .and_then(|i| i.state())
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string()))
}

/// A CPU alarm on one instance.
#[derive(Debug, Clone)]
pub struct CpuAlarm {
    pub name: String,
    pub instance_id: String,
    /// Percent CPU.
    pub threshold: f64,
    pub period_seconds: i32,
    pub evaluation_periods: i32,
    /// GreaterThanThreshold | GreaterThanOrEqualToThreshold | LessThanThreshold | LessThanOrEqualToThreshold
    pub comparison: String,
    pub description: String,
}

/// The comparison operators a CPU alarm may use.
pub const COMPARISONS: [&str; 4] = [
    "GreaterThanThreshold",
    "GreaterThanOrEqualToThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
];

/// Creates (or replaces: PutMetricAlarm overwrites an alarm of the same name) the alarm.
/// Returns AWS's request id.
pub async fn put_cpu_alarm(
    config: &SdkConfig,
    alarm: &CpuAlarm,
) -> Result<Option<String>, AwsError> {
    let out = aws_sdk_cloudwatch::Client::new(config)
        .put_metric_alarm()
        .alarm_name(&alarm.name)
        .alarm_description(&alarm.description)
        .namespace("AWS/EC2")
        .metric_name("CPUUtilization")
        .dimensions(
            Dimension::builder()
                .name("InstanceId")
                .value(&alarm.instance_id)
                .build(),
        )
        .statistic(Statistic::Average)
        .period(alarm.period_seconds)
        .evaluation_periods(alarm.evaluation_periods)
        .threshold(alarm.threshold)
        .comparison_operator(ComparisonOperator::from(alarm.comparison.as_str()))
        // A stopped instance sends no datapoints: that is not an alarm.
        .treat_missing_data("notBreaching")
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("cloudwatch:PutMetricAlarm", e))?;
    Ok(out.request_id().map(str::to_string))
}

/// An alarm as CloudWatch describes it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlarmView {
    pub name: String,
    pub instance_id: Option<String>,
    pub threshold: Option<f64>,
    pub period_seconds: Option<i32>,
    pub evaluation_periods: Option<i32>,
    pub comparison: Option<String>,
    /// OK | ALARM | INSUFFICIENT_DATA
    pub state: Option<String>,
    pub state_reason: Option<String>,
    pub description: Option<String>,
    pub updated_at: Option<String>,
}

impl From<&MetricAlarm> for AlarmView {
    fn from(a: &MetricAlarm) -> Self {
        AlarmView {
            name: a.alarm_name().unwrap_or_default().to_string(),
            instance_id: a
                .dimensions()
                .iter()
                .find(|d| d.name() == Some("InstanceId"))
                .and_then(|d| d.value())
                .map(str::to_string),
            threshold: a.threshold(),
            period_seconds: a.period(),
            evaluation_periods: a.evaluation_periods(),
            comparison: a.comparison_operator().map(|c| c.as_str().to_string()),
            state: a.state_value().map(|s| s.as_str().to_string()),
            state_reason: a.state_reason().map(str::to_string),
            description: a.alarm_description().map(str::to_string),
            updated_at: a.alarm_configuration_updated_timestamp().and_then(|t| {
                t.fmt(aws_sdk_cloudwatch::primitives::DateTimeFormat::DateTime)
                    .ok()
            }),
        }
    }
}

/// Every metric alarm whose name starts with `prefix`, by name.
pub async fn list_alarms(config: &SdkConfig, prefix: &str) -> Result<Vec<AlarmView>, AwsError> {
    let cw = aws_sdk_cloudwatch::Client::new(config);
    let mut alarms = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let out = cw
            .describe_alarms()
            .alarm_name_prefix(prefix)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("cloudwatch:DescribeAlarms", e))?;
        alarms.extend(out.metric_alarms().iter().map(AlarmView::from));
        match out.next_token() {
            Some(token) if !token.is_empty() => next = Some(token.to_string()),
            _ => break,
        }
    }
    alarms.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(alarms)
}

/// Deletes one alarm. Returns AWS's request id.
pub async fn delete_alarm(config: &SdkConfig, name: &str) -> Result<Option<String>, AwsError> {
    let out = aws_sdk_cloudwatch::Client::new(config)
        .delete_alarms()
        .alarm_names(name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("cloudwatch:DeleteAlarms", e))?;
    Ok(out.request_id().map(str::to_string))
}
