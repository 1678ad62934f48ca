//! Connection diagnostics. Onboarding fails in practice on a wrong role ARN, an external ID
//! mismatch, Cost Explorer not enabled, a missing Athena table: this crate runs the steps that
//! prove each of those, in order, and reports every one as ok / failed / skipped with the AWS
//! error code and what to do about it, so a tenant is told exactly which step failed.
//!
//! It calls AWS only (through the SDK, with the tenant's credentials) and never touches the
//! database: the caller decides what to save. Only steps 1 and 2 (credentials and account)
//! decide whether a connection can be saved; later failures become warnings.
//!
//! Steps: (1) AssumeRole with the external ID, and (unless turned off) the proof that the role
//! enforces it: AssumeRole without an external ID and with a wrong one must both be denied,
//! (2) GetCallerIdentity and the account matches
//! the ARN, (3) Cost Explorer answers a small GetCostAndUsage, (4) EC2 DescribeInstances in the
//! first region, (5) the Athena workgroup exists and the CUR table is visible, (6) the Athena
//! results bucket is writable, (7) whether the opt-in write actions are enabled (EC2
//! StopInstances with DryRun: nothing is stopped). Step 7 never fails or degrades a
//! connection (actions are off unless the tenant deployed the stack with `EnableActions=true`),
//! so it is reported apart, in `Report::actions`, not among the steps that make warnings.
//!
//! [`actions`] holds those write actions themselves (EC2 stop/start, CloudWatch CPU alarms):
//! the permission this crate checks and the calls it guards live together.

pub mod actions;

use aws_types::SdkConfig;
use chrono::{Duration, Utc};
use cloudspend_aws_access::{
    AwsAccess, AwsError, RequestCounter, TenantCredentials, cost_explorer_config,
};
use cloudspend_core::TenantId;
use cloudspend_core::connection::CurLocation;
use serde::Serialize;

/// What to check: everything the connect form gave, already validated.
#[derive(Debug, Clone)]
pub struct Plan {
    pub tenant: TenantId,
    pub credentials: TenantCredentials,
    /// The account the role ARN names (None for access keys: the keys' own account is taken).
    pub expected_account: Option<String>,
    /// Regions to collect; the first is where EC2 and Athena are checked.
    pub regions: Vec<String>,
    pub cur: CurLocation,
    /// Prove that the role refuses AssumeRole without the external ID and with a wrong one, and
    /// refuse it otherwise (a confused deputy: anyone who names the role to CloudSpend could
    /// read the account). Off only where the AWS endpoint enforces no trust policy (moto).
    pub require_external_id: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Ok,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Step {
    /// Stable name: assume_role, caller_identity, cost_explorer, ec2, athena, results_bucket (and actions, in `Report::actions`).
    pub name: &'static str,
    /// What the step checks, in words.
    pub title: &'static str,
    pub status: StepStatus,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub steps: Vec<Step>,
    /// The account the credentials belong to (from GetCallerIdentity).
    pub account_id: Option<String>,
    /// Step 7, kept out of `steps` because it is optional by design: whether the role may
    /// stop/start instances and manage alarms. Absent when an earlier step failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<Step>,
    /// The outcome of step 7; null when it could not be told.
    pub actions_enabled: Option<bool>,
}

impl Report {
    /// Steps 1 and 2 passed (or step 1 did not apply): the connection can be saved.
    pub fn credentials_ok(&self) -> bool {
        self.steps
            .iter()
            .filter(|s| matches!(s.name, "assume_role" | "caller_identity"))
            .all(|s| s.status != StepStatus::Failed)
            && self.account_id.is_some()
    }

    /// The first failed step among 1 and 2, for the error answer.
    pub fn blocking_failure(&self) -> Option<&Step> {
        self.steps.iter().find(|s| {
            matches!(s.name, "assume_role" | "caller_identity") && s.status == StepStatus::Failed
        })
    }

    /// Failed optional steps, as the warnings saved on the connection.
    pub fn warnings(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| {
                s.status == StepStatus::Failed
                    && !matches!(s.name, "assume_role" | "caller_identity")
            })
            .map(|s| match &s.hint {
                Some(hint) => format!("{}: {} ({hint})", s.title, s.message),
                None => format!("{}: {}", s.title, s.message),
            })
            .collect()
    }
}

fn ok(name: &'static str, title: &'static str, message: impl Into<String>) -> Step {
    Step {
        name,
        title,
        status: StepStatus::Ok,
        message: message.into(),
        aws_code: None,
        hint: None,
    }
}

fn skipped(name: &'static str, title: &'static str, why: impl Into<String>) -> Step {
    Step {
        name,
        title,
        status: StepStatus::Skipped,
        message: why.into(),
        aws_code: None,
        hint: None,
    }
}

fn failed(name: &'static str, title: &'static str, err: &AwsError) -> Step {
    Step {
        name,
        title,
        status: StepStatus::Failed,
        message: err
            .message()
            .map(str::to_string)
            .unwrap_or_else(|| err.to_string()),
        aws_code: err.code().map(str::to_string),
        hint: err.hint(),
    }
}

fn failed_with(
    name: &'static str,
    title: &'static str,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> Step {
    Step {
        name,
        title,
        status: StepStatus::Failed,
        message: message.into(),
        aws_code: None,
        hint: Some(hint.into()),
    }
}

const T_ASSUME: &str = "Assume the IAM role with the external ID";
const T_IDENTITY: &str = "Confirm the AWS account";
const T_CE: &str = "Read Cost Explorer";
const T_EC2: &str = "List EC2 instances";
const T_ATHENA: &str = "Find the CUR table in Athena";
const T_RESULTS: &str = "Write to the Athena results bucket";
const T_ACTIONS: &str = "Stop/start instances and manage CPU alarms (optional)";

/// Runs every step in order. Never fails as a whole: each outcome is in the report.
pub async fn run(aws: &AwsAccess, plan: &Plan) -> Report {
    let mut steps = Vec::new();
    let region = plan
        .regions
        .first()
        .map(String::as_str)
        .unwrap_or("us-east-1");
    // A cached provider would hide a changed external ID or rotated key: start fresh.
    aws.forget_tenant(plan.tenant);

    // (1) AssumeRole, made explicitly so its failure is told apart from what follows.
    match &plan.credentials {
        TenantCredentials::Role {
            role_arn,
            external_id,
        } => {
            let sts = aws_sdk_sts::Client::new(aws.base());
            let session = format!("cloudspend-verify-{}", plan.tenant.0.simple());
            let session = &session[..session.len().min(64)];
            match sts
                .assume_role()
                .role_arn(role_arn)
                .external_id(external_id)
                .role_session_name(session)
                .send()
                .await
            {
                Ok(_) if plan.require_external_id => {
                    match external_id_enforced(&sts, role_arn, external_id, session).await {
                        Ok(()) => steps.push(ok(
                            "assume_role",
                            T_ASSUME,
                            format!(
                                "assumed {role_arn}; it refuses callers without this external ID"
                            ),
                        )),
                        Err(step) => {
                            steps.push(step);
                            return finish(steps, None);
                        }
                    }
                }
                Ok(_) => steps.push(ok("assume_role", T_ASSUME, format!("assumed {role_arn}"))),
                Err(err) => {
                    let err = AwsError::from_sdk("sts:AssumeRole", err);
                    let mut step = failed("assume_role", T_ASSUME, &err);
                    step.hint = Some(
                        "check the role ARN, that the role's trust policy names CloudSpend's AWS account, and that \
                         its sts:ExternalId condition holds exactly the external ID on the onboarding page"
                            .into(),
                    );
                    steps.push(step);
                    return finish(steps, None);
                }
            }
        }
        _ => steps.push(skipped(
            "assume_role",
            T_ASSUME,
            "not used: the connection uses access keys",
        )),
    }

    // (2) GetCallerIdentity through the same path collections use.
    let config = match aws.sdk_config(plan.tenant, &plan.credentials, region).await {
        Ok(config) => config,
        Err(err) => {
            steps.push(failed("caller_identity", T_IDENTITY, &err));
            return finish(steps, None);
        }
    };
    let account = match aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
    {
        Ok(identity) => identity.account().unwrap_or_default().to_string(),
        Err(err) => {
            let err = AwsError::from_sdk("sts:GetCallerIdentity", err);
            steps.push(failed("caller_identity", T_IDENTITY, &err));
            return finish(steps, None);
        }
    };
    if let Some(expected) = plan.expected_account.as_deref().filter(|e| *e != account) {
        steps.push(failed_with(
            "caller_identity",
            T_IDENTITY,
            format!("the credentials belong to account {account}, but the role ARN names account {expected}"),
            "use the role ARN from the stack's RoleArn output in the account you want to connect",
        ));
        return finish(steps, None);
    }
    steps.push(ok(
        "caller_identity",
        T_IDENTITY,
        format!("connected to account {account}"),
    ));

    steps.push(check_cost_explorer(&config).await);
    let (ec2_step, sample_instance) = check_ec2(&config, &account, region).await;
    steps.push(ec2_step);
    steps.push(check_athena(&config, &plan.cur).await);
    steps.push(check_results_bucket(&config, &plan.cur).await);
    let (actions_step, actions_enabled) = check_actions(&config, sample_instance.as_deref()).await;
    let mut report = finish(steps, Some(account));
    report.actions = Some(actions_step);
    report.actions_enabled = actions_enabled;
    report
}

/// Proves the role's trust policy enforces the external ID: AssumeRole without one, and with a
/// wrong one, must be denied. A role that lets either through can be assumed by anyone who
/// names it to CloudSpend (its trust policy trusts CloudSpend's account): another tenant could
/// connect it and read this account's costs. Errors other than a denial fail the check too:
/// unproven is not enforced.
async fn external_id_enforced(
    sts: &aws_sdk_sts::Client,
    role_arn: &str,
    external_id: &str,
    session: &str,
) -> Result<(), Step> {
    let condition = format!(
        "add to the role's trust policy the condition \"StringEquals\": {{\"sts:ExternalId\": \"{external_id}\"}} \
         (the CloudFormation template on the onboarding page sets it), then connect again"
    );
    let wrong_id = format!("not-{external_id}");
    for (probe, without) in [
        (None, "without an external ID"),
        (Some(wrong_id.as_str()), "with a wrong external ID"),
    ] {
        let outcome = sts
            .assume_role()
            .role_arn(role_arn)
            .set_external_id(probe.map(str::to_string))
            .role_session_name(session)
            .send()
            .await;
        match outcome {
            Ok(_) => {
                return Err(failed_with(
                    "assume_role",
                    T_ASSUME,
                    format!(
                        "{role_arn} can be assumed {without}: its trust policy does not require CloudSpend's \
                         external ID, so anyone who names this role to CloudSpend could read the account"
                    ),
                    condition,
                ));
            }
            Err(err) => {
                let err = AwsError::from_sdk("sts:AssumeRole", err);
                if !actions::is_denied(&err) {
                    let mut step = failed("assume_role", T_ASSUME, &err);
                    step.message = format!(
                        "could not confirm that {role_arn} refuses callers {without}: {}",
                        step.message
                    );
                    step.hint = Some("try connecting again in a minute".into());
                    return Err(step);
                }
            }
        }
    }
    Ok(())
}

fn finish(mut steps: Vec<Step>, account_id: Option<String>) -> Report {
    let all = [
        ("assume_role", T_ASSUME),
        ("caller_identity", T_IDENTITY),
        ("cost_explorer", T_CE),
        ("ec2", T_EC2),
        ("athena", T_ATHENA),
        ("results_bucket", T_RESULTS),
    ];
    for (name, title) in all {
        if !steps.iter().any(|s| s.name == name) {
            steps.push(skipped(name, title, "not run: an earlier step failed"));
        }
    }
    Report {
        steps,
        account_id,
        actions: None,
        actions_enabled: None,
    }
}

async fn check_cost_explorer(config: &SdkConfig) -> Step {
    let today = Utc::now().date_naive();
    let ce = cost_explorer_config(config);
    match cloudspend_collect_costexplorer::daily_totals(
        &ce,
        today - Duration::days(1),
        today,
        &RequestCounter::new(),
    )
    .await
    {
        Ok(days) => ok(
            "cost_explorer",
            T_CE,
            format!("Cost Explorer answered ({} day)", days.len()),
        ),
        Err(err) => failed("cost_explorer", T_CE, &err),
    }
}

/// Also returns an instance of the region, for the DryRun of step 7.
async fn check_ec2(config: &SdkConfig, account: &str, region: &str) -> (Step, Option<String>) {
    let regions = [region.to_string()];
    match cloudspend_collect_ec2::collect_instances(
        config,
        account,
        &regions,
        &RequestCounter::new(),
    )
    .await
    {
        Ok(instances) => (
            ok(
                "ec2",
                T_EC2,
                format!("{} instances in {region}", instances.len()),
            ),
            instances
                .iter()
                .find(|i| i.state != "terminated")
                .map(|i| i.instance_id.clone()),
        ),
        Err(err) => (failed("ec2", T_EC2, &err), None),
    }
}

/// Step 7: StopInstances with DryRun on an instance of the first region (or a placeholder id
/// when there is none). Reported ok when enabled and skipped when not: never a warning.
async fn check_actions(config: &SdkConfig, instance: Option<&str>) -> (Step, Option<bool>) {
    use actions::{InstanceAction, Permission};
    // A well-formed id no account has: with no instance to test on, a permitted call gets
    // InvalidInstanceID.NotFound and a forbidden one UnauthorizedOperation.
    let target = instance.unwrap_or("i-00000000000000000");
    match actions::dry_run(config, InstanceAction::Stop, target).await {
        Permission::Allowed => (
            ok(
                "actions",
                T_ACTIONS,
                "enabled: the role may stop and start instances (checked with a DryRun; nothing was stopped)",
            ),
            Some(true),
        ),
        Permission::Denied(err) => {
            let mut step = skipped(
                "actions",
                T_ACTIONS,
                format!(
                    "not enabled: the role may not call ec2:StopInstances ({})",
                    err.code().unwrap_or("denied")
                ),
            );
            step.aws_code = err.code().map(str::to_string);
            step.hint = Some(actions::how_to_enable());
            (step, Some(false))
        }
        Permission::Unknown(err)
            if instance.is_none()
                && err
                    .code()
                    .is_some_and(|c| c.starts_with("InvalidInstanceID")) =>
        {
            (
                ok(
                    "actions",
                    T_ACTIONS,
                    "enabled: ec2:StopInstances is allowed (checked with a DryRun on a placeholder id)",
                ),
                Some(true),
            )
        }
        Permission::Unknown(err) => {
            let mut step = skipped(
                "actions",
                T_ACTIONS,
                format!(
                    "could not be checked: {}",
                    err.message()
                        .map(str::to_string)
                        .unwrap_or_else(|| err.to_string())
                ),
            );
            step.aws_code = err.code().map(str::to_string);
            (step, None)
        }
    }
}

async fn check_athena(config: &SdkConfig, cur: &CurLocation) -> Step {
    let (Some(database), Some(table)) =
        (cur.athena_database.as_deref(), cur.athena_table.as_deref())
    else {
        return skipped("athena", T_ATHENA, "no Athena database and table given");
    };
    let workgroup = cur.athena_workgroup.as_deref().unwrap_or("primary");
    let athena = aws_sdk_athena::Client::new(config);
    match athena.get_work_group().work_group(workgroup).send().await {
        Ok(out) if out.work_group().is_some() => {}
        Ok(_) => {
            return failed_with(
                "athena",
                T_ATHENA,
                format!("workgroup `{workgroup}` was not found"),
                "create the workgroup or give the name of an existing one (default: primary)",
            );
        }
        Err(err) => {
            return failed(
                "athena",
                T_ATHENA,
                &AwsError::from_sdk("athena:GetWorkGroup", err),
            );
        }
    }
    match athena
        .get_table_metadata()
        .catalog_name("AwsDataCatalog")
        .database_name(database)
        .table_name(table)
        .work_group(workgroup)
        .send()
        .await
    {
        Ok(out) => {
            let columns = out.table_metadata().map(|t| t.columns().len()).unwrap_or(0);
            ok(
                "athena",
                T_ATHENA,
                format!("table {database}.{table} is visible ({columns} columns)"),
            )
        }
        Err(err) => {
            let err = AwsError::from_sdk("athena:GetTableMetadata", err);
            let mut step = failed("athena", T_ATHENA, &err);
            if step.hint.is_none() {
                step.hint = Some(format!(
                    "check that the CUR's Athena integration created {database}.{table} in the data catalog of the \
                     first region, and that the role may call athena:GetTableMetadata and glue:GetTable"
                ));
            }
            step
        }
    }
}

async fn check_results_bucket(config: &SdkConfig, cur: &CurLocation) -> Step {
    let Some(bucket) = cur.athena_results_bucket.as_deref() else {
        return skipped(
            "results_bucket",
            T_RESULTS,
            "no Athena results bucket given",
        );
    };
    let prefix = cur
        .athena_results_prefix
        .as_deref()
        .unwrap_or("")
        .trim_end_matches('/');
    let key = if prefix.is_empty() {
        "cloudspend-connection-check.txt".to_string()
    } else {
        format!("{prefix}/cloudspend-connection-check.txt")
    };
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    );
    // A fixed key, overwritten at every check, so diagnostics never litter the bucket.
    match s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"CloudSpend can write Athena results here.\n",
        ))
        .send()
        .await
    {
        Ok(_) => ok(
            "results_bucket",
            T_RESULTS,
            format!("wrote s3://{bucket}/{key}"),
        ),
        Err(err) => failed(
            "results_bucket",
            T_RESULTS,
            &AwsError::from_sdk("s3:PutObject", err),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sts::Client;
    use aws_sdk_sts::operation::assume_role::{AssumeRoleError, AssumeRoleOutput};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::error::ErrorMetadata;

    const ROLE: &str = "arn:aws:iam::123456789012:role/CloudSpendReadOnly";
    const EXTERNAL_ID: &str = "cs-7f3c2a";

    fn denied() -> AssumeRoleError {
        AssumeRoleError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("User is not authorized to perform: sts:AssumeRole")
                .build(),
        )
    }

    /// STS as a role's trust policy makes it answer: `with_id` allowed, `without`/`wrong`
    /// answered as given (None: allowed).
    async fn probe(
        without: Option<fn() -> AssumeRoleError>,
        wrong: Option<fn() -> AssumeRoleError>,
    ) -> Result<(), Step> {
        let answer = |error: Option<fn() -> AssumeRoleError>, matches: fn(Option<&str>) -> bool| {
            let rule = mock!(Client::assume_role).match_requests(move |r| matches(r.external_id()));
            match error {
                Some(error) => rule.then_error(error),
                None => rule.then_output(|| AssumeRoleOutput::builder().build()),
            }
        };
        let without_rule = answer(without, |id| id.is_none());
        let wrong_rule = answer(wrong, |id| id.is_some_and(|id| id != EXTERNAL_ID));
        let sts = mock_client!(
            aws_sdk_sts,
            RuleMode::MatchAny,
            [&without_rule, &wrong_rule]
        );
        external_id_enforced(&sts, ROLE, EXTERNAL_ID, "cloudspend-verify").await
    }

    #[tokio::test]
    async fn a_role_that_denies_callers_without_the_external_id_and_with_a_wrong_one_passes() {
        assert!(probe(Some(denied), Some(denied)).await.is_ok());
    }

    #[tokio::test]
    async fn a_role_assumable_without_an_external_id_fails_naming_the_missing_condition() {
        let step = probe(None, Some(denied)).await.unwrap_err();
        assert_eq!(
            (step.name, step.status),
            ("assume_role", StepStatus::Failed)
        );
        assert!(
            step.message
                .contains("can be assumed without an external ID"),
            "{}",
            step.message
        );
        let hint = step.hint.unwrap();
        assert!(hint.contains(r#""sts:ExternalId": "cs-7f3c2a""#), "{hint}");
    }

    #[tokio::test]
    async fn a_role_assumable_with_any_external_id_fails() {
        let step = probe(Some(denied), None).await.unwrap_err();
        assert!(
            step.message.contains("with a wrong external ID"),
            "{}",
            step.message
        );
    }

    #[tokio::test]
    async fn an_answer_other_than_a_denial_proves_nothing_and_fails() {
        let throttled = || {
            AssumeRoleError::generic(
                ErrorMetadata::builder()
                    .code("Throttling")
                    .message("Rate exceeded")
                    .build(),
            )
        };
        let step = probe(Some(throttled), Some(denied)).await.unwrap_err();
        assert!(
            step.message.starts_with("could not confirm"),
            "{}",
            step.message
        );
        assert_eq!(step.aws_code.as_deref(), Some("Throttling"));
    }
}
