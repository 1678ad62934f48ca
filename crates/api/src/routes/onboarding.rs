//! Onboarding: the tenant's external ID and CloudFormation stack, connecting an AWS account
//! with step-by-step diagnostics, and the saved connection (never with a secret in it).

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::accounts::audit;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use cloudspend_aws_access::TenantCredentials;
use cloudspend_collection::Collector;
use cloudspend_connect_check::{Plan, Report};
use cloudspend_core::connection::{
    AccountType, AwsConnection, ConnectionAuth, ConnectionStatus, CurLocation,
};
use cloudspend_core::validate::{self, Invalid};
use cloudspend_store::ConnectionStatusUpdate;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The stack tenants deploy, shipped inside the binary so the onboarding page always shows
/// the template this version of CloudSpend expects.
pub const TEMPLATE: &str = include_str!("../../../../cfn/connect-aws-billing.yml");

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(onboarding))
        .routes(routes!(rotate_external_id))
        .routes(routes!(connect))
        .routes(routes!(get_connection, delete_connection))
        .routes(routes!(verify_connection))
}

#[derive(Serialize, ToSchema)]
pub struct OnboardingResponse {
    /// Put this in the role's trust policy (`sts:ExternalId`); the stack does it for you.
    external_id: String,
    /// CloudSpend's AWS account, which the role must trust.
    platform_account_id: Option<String>,
    /// Opens the AWS console with the stack's parameters filled in.
    quick_create_url: String,
    template_url: String,
    /// The CloudFormation template itself (YAML).
    template: String,
    /// What to do, in order.
    steps: Vec<String>,
}

/// Everything a tenant needs to create the IAM role CloudSpend assumes.
#[utoipa::path(get, path = "/api/tenants/onboarding", tag = "onboarding", security(("bearer" = [])),
    responses((status = 200, body = OnboardingResponse), (status = 401, body = ErrorBody)))]
async fn onboarding(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<OnboardingResponse>> {
    let external_id = caller.tenant.external_id.clone();
    Ok(ApiJson(OnboardingResponse {
        quick_create_url: quick_create_url(&state, &external_id),
        platform_account_id: state.config.platform_account_id.clone(),
        template_url: state.config.template_url.clone(),
        template: TEMPLATE.to_string(),
        steps: vec![
            "Open the quick-create link (signed in to the AWS account to connect) and create the stack.".into(),
            "Copy the stack's RoleArn output.".into(),
            "Submit the connect form with the role ARN, this external ID, your region and the CUR Athena database and table.".into(),
        ],
        external_id,
    }))
}

fn quick_create_url(state: &AppState, external_id: &str) -> String {
    let mut url = format!(
        "https://console.aws.amazon.com/cloudformation/home?region=us-east-1#/stacks/quickcreate?templateURL={}&stackName=CloudSpend&param_ExternalId={}",
        encode(&state.config.template_url),
        encode(external_id)
    );
    if let Some(account) = &state.config.platform_account_id {
        url.push_str(&format!("&param_CloudSpendAccountId={}", encode(account)));
    }
    url
}

fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Serialize, ToSchema)]
pub struct RotatedResponse {
    external_id: String,
    /// Reminder: the role's trust policy must be updated with the new ID.
    message: String,
}

/// Issues a new external ID. The role's trust policy must then be updated (update the stack's
/// ExternalId parameter), or collections fail at AssumeRole. Owners and admins only.
#[utoipa::path(post, path = "/api/tenants/onboarding/rotate-external-id", tag = "onboarding", security(("bearer" = [])),
    responses((status = 200, body = RotatedResponse), (status = 403, body = ErrorBody)))]
async fn rotate_external_id(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<RotatedResponse>> {
    caller.require_manager("rotate the external ID")?;
    let external_id = state.store.rotate_external_id(caller.tenant.id).await?;
    state.collections.aws().forget_tenant(caller.tenant.id);
    audit(
        &state,
        &caller.user,
        Some(caller.tenant.id),
        "connection.rotate_external_id",
        serde_json::json!({}),
    )
    .await?;
    Ok(ApiJson(RotatedResponse {
        external_id,
        message: "update the CloudFormation stack's ExternalId parameter to this value; until then AssumeRole fails".into(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// `role` (default) or `access_key`.
    #[serde(default)]
    auth_method: Option<String>,
    /// Required for `role`: the stack's RoleArn output.
    #[serde(default)]
    aws_role_arn: Option<String>,
    /// Required for `role`: the external ID from GET /api/tenants/onboarding.
    #[serde(default)]
    external_id: Option<String>,
    /// Required for `access_key`.
    #[serde(default)]
    access_key_id: Option<String>,
    /// Required for `access_key`. Encrypted at rest, never returned.
    #[serde(default)]
    secret_access_key: Option<String>,
    /// Home region: where EC2 and Athena are checked first.
    region: String,
    athena_db: String,
    athena_table: String,
    #[serde(default)]
    athena_workgroup: Option<String>,
    #[serde(default)]
    athena_results_bucket: Option<String>,
    #[serde(default)]
    athena_results_prefix: Option<String>,
    #[serde(default)]
    cur_bucket: Option<String>,
    #[serde(default)]
    cur_prefix: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    /// `organization` (management account) or `linked` (default).
    #[serde(default)]
    account_type: Option<String>,
    /// Regions to collect EC2 and CloudWatch data from; default: `region` alone.
    #[serde(default)]
    regions: Option<Vec<String>>,
}

/// A validated connect request.
struct Validated {
    credentials: TenantCredentials,
    auth: PendingAuth,
    expected_account: Option<String>,
    regions: Vec<String>,
    cur: CurLocation,
    display_name: Option<String>,
    account_type: AccountType,
}

enum PendingAuth {
    Role(String),
    AccessKey(String, SecretString),
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn validate_request(
    req: &ConnectRequest,
    issued_external_id: &str,
    platform_account: Option<&str>,
) -> Result<Validated, Invalid> {
    let method = non_empty(&req.auth_method).unwrap_or("role");
    let (credentials, auth, expected_account) = match method {
        "role" => {
            let arn = non_empty(&req.aws_role_arn).ok_or_else(|| {
                Invalid::new("aws_role_arn", "is required: the stack's RoleArn output")
            })?;
            let account = validate::role_arn("aws_role_arn", arn)?;
            // A role in CloudSpend's own account trusts CloudSpend already: connecting it would
            // let a tenant read the platform's (or whoever's) costs as a confused deputy.
            if platform_account.is_some_and(|own| own == account) {
                return Err(Invalid::new(
                    "aws_role_arn",
                    format!(
                        "is in CloudSpend's own AWS account ({account}): connect a role in your \
                         account, deployed with the CloudFormation template"
                    ),
                ));
            }
            let external_id = non_empty(&req.external_id).ok_or_else(|| {
                Invalid::new(
                    "external_id",
                    "is required: copy it from GET /api/tenants/onboarding",
                )
            })?;
            if external_id != issued_external_id {
                return Err(Invalid::new(
                    "external_id",
                    "does not match the external ID CloudSpend issued to this tenant (see GET /api/tenants/onboarding)",
                ));
            }
            (
                TenantCredentials::Role {
                    role_arn: arn.to_string(),
                    external_id: external_id.to_string(),
                },
                PendingAuth::Role(arn.to_string()),
                Some(account),
            )
        }
        "access_key" => {
            let key_id = non_empty(&req.access_key_id)
                .ok_or_else(|| Invalid::new("access_key_id", "is required for access_key"))?;
            if !(16..=128).contains(&key_id.len())
                || !key_id.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return Err(Invalid::new(
                    "access_key_id",
                    "must look like AKIAIOSFODNN7EXAMPLE (16-128 letters and digits)",
                ));
            }
            let secret = req.secret_access_key.as_deref().unwrap_or("");
            if secret.is_empty() || secret.len() > 128 || secret.chars().any(char::is_whitespace) {
                return Err(Invalid::new(
                    "secret_access_key",
                    "is required for access_key: the 40-character secret",
                ));
            }
            let secret = SecretString::from(secret.to_string());
            (
                TenantCredentials::AccessKey {
                    access_key_id: key_id.to_string(),
                    secret_access_key: secret.clone(),
                },
                PendingAuth::AccessKey(key_id.to_string(), secret),
                None,
            )
        }
        _ => {
            return Err(Invalid::new(
                "auth_method",
                "must be `role` or `access_key`",
            ));
        }
    };
    let home = validate::region("region", &req.region)?;
    let mut regions = vec![home];
    for (i, raw) in req.regions.iter().flatten().enumerate() {
        let region = validate::region("regions", raw).map_err(|e| Invalid {
            field: "regions",
            message: format!("[{i}] {}", e.message),
        })?;
        if !regions.contains(&region) {
            regions.push(region);
        }
    }
    if regions.len() > 40 {
        return Err(Invalid::new("regions", "at most 40 regions"));
    }
    let optional =
        |value: &Option<String>,
         check: fn(&'static str, &str) -> Result<String, Invalid>,
         field: &'static str| { non_empty(value).map(|v| check(field, v)).transpose() };
    let cur = CurLocation {
        athena_database: Some(validate::athena_identifier(
            "athena_db",
            &req.athena_db,
            255,
        )?),
        athena_table: Some(validate::athena_identifier(
            "athena_table",
            &req.athena_table,
            255,
        )?),
        athena_workgroup: Some(
            non_empty(&req.athena_workgroup)
                .map(|w| validate::athena_workgroup("athena_workgroup", w))
                .transpose()?
                .unwrap_or_else(|| "primary".into()),
        ),
        athena_results_bucket: optional(
            &req.athena_results_bucket,
            validate::s3_bucket,
            "athena_results_bucket",
        )?,
        athena_results_prefix: optional(
            &req.athena_results_prefix,
            validate::s3_prefix,
            "athena_results_prefix",
        )?,
        cur_bucket: optional(&req.cur_bucket, validate::s3_bucket, "cur_bucket")?,
        cur_prefix: optional(&req.cur_prefix, validate::s3_prefix, "cur_prefix")?,
    };
    let display_name = non_empty(&req.display_name)
        .map(|n| validate::display_name("display_name", n))
        .transpose()?;
    let account_type = match non_empty(&req.account_type) {
        None => AccountType::Linked,
        Some(raw) => raw
            .parse()
            .map_err(|e: String| Invalid::new("account_type", e))?,
    };
    Ok(Validated {
        credentials,
        auth,
        expected_account,
        regions,
        cur,
        display_name,
        account_type,
    })
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionView {
    display_name: String,
    account_id: String,
    account_type: AccountType,
    /// `role` or `access_key`.
    auth_method: &'static str,
    role_arn: Option<String>,
    /// Shown masked; the secret is never shown.
    access_key_id: Option<String>,
    regions: Vec<String>,
    #[serde(flatten)]
    cur: CurLocation,
    status: ConnectionStatus,
    last_verified_at: Option<chrono::DateTime<Utc>>,
    last_error: Option<String>,
    warnings: Vec<String>,
    created_at: chrono::DateTime<Utc>,
    updated_at: chrono::DateTime<Utc>,
}

impl From<AwsConnection> for ConnectionView {
    fn from(c: AwsConnection) -> Self {
        let (role_arn, access_key_id) = match &c.auth {
            ConnectionAuth::Role { role_arn } => (Some(role_arn.clone()), None),
            ConnectionAuth::AccessKey { access_key_id, .. } => {
                let tail: String = access_key_id
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                (
                    None,
                    Some(format!(
                        "{}…{tail}",
                        &access_key_id[..access_key_id.len().min(4)]
                    )),
                )
            }
        };
        ConnectionView {
            display_name: c.display_name,
            account_id: c.account_id,
            account_type: c.account_type,
            auth_method: c.auth.method(),
            role_arn,
            access_key_id,
            regions: c.regions,
            cur: c.cur,
            status: c.status,
            last_verified_at: c.last_verified_at,
            last_error: c.last_error,
            warnings: c.warnings,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConnectResponse {
    /// "AWS connection saved" (with warnings when optional steps failed).
    message: String,
    connection: ConnectionView,
    /// Every diagnostic step, in order.
    report: Report,
    /// Collectors queued for the first collection (Cost Explorer backfills ~13 months).
    collection_queued: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectFailure {
    error: crate::error::ErrorDetail,
    /// The diagnostics, step by step, when the form was valid and a check failed (absent when
    /// a field was refused before any check ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<Report>,
}

/// Validates the form, proves access step by step, and saves the connection only when the
/// credentials work (steps 1 and 2). Owners and admins only.
#[utoipa::path(post, path = "/api/tenants/connect", tag = "onboarding", security(("bearer" = [])),
    request_body = ConnectRequest,
    responses(
        (status = 200, description = "saved; see the report for warnings", body = ConnectResponse),
        (status = 400, description = "malformed body", body = ErrorBody),
        (status = 403, description = "viewer", body = ErrorBody),
        (status = 422, description = "invalid field, or a required diagnostic step failed (nothing saved)", body = ConnectFailure),
    ))]
async fn connect(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ConnectRequest>,
) -> ApiResult<Response> {
    caller.require_manager("connect an AWS account")?;
    let valid = validate_request(
        &req,
        &caller.tenant.external_id,
        state.config.platform_account_id.as_deref(),
    )?;
    let plan = Plan {
        tenant: caller.tenant.id,
        credentials: valid.credentials.clone(),
        expected_account: valid.expected_account.clone(),
        regions: valid.regions.clone(),
        cur: valid.cur.clone(),
        require_external_id: state.config.require_external_id,
    };
    let report = cloudspend_connect_check::run(state.collections.aws(), &plan).await;
    if !report.credentials_ok() {
        let step = report.blocking_failure();
        let field = match (&valid.auth, step.map(|s| s.name)) {
            (PendingAuth::AccessKey(..), _) => "secret_access_key",
            (PendingAuth::Role(_), Some("caller_identity")) => "aws_role_arn",
            (PendingAuth::Role(_), _) => "aws_role_arn",
        };
        let message = match step {
            Some(s) => format!(
                "{} failed: {}{}",
                s.title,
                s.message,
                s.aws_code
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ),
            None => "the credentials could not be verified".into(),
        };
        audit(
            &state,
            &caller.user,
            Some(caller.tenant.id),
            "connection.connect_failed",
            serde_json::json!({"step": step.map(|s| s.name)}),
        )
        .await?;
        let body = ConnectFailure {
            error: crate::error::ErrorDetail {
                code: "connection_check_failed".into(),
                message,
                field: Some(field.into()),
                aws_code: step.and_then(|s| s.aws_code.clone()),
                hint: step.and_then(|s| s.hint.clone()),
                request_id: None,
            },
            report: Some(report),
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response());
    }
    let account_id = report.account_id.clone().unwrap_or_default();
    let auth = match valid.auth {
        PendingAuth::Role(role_arn) => ConnectionAuth::Role { role_arn },
        PendingAuth::AccessKey(access_key_id, secret) => {
            let key = state.collections.master_key().ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!(
                    "no master key configured: cannot store an access key"
                ))
            })?;
            ConnectionAuth::AccessKey {
                access_key_id,
                secret_ciphertext: key.seal(caller.tenant.id, &secret),
            }
        }
    };
    let warnings = report.warnings();
    let now = Utc::now();
    let previous = state.store.connection(caller.tenant.id).await?;
    let connection = AwsConnection {
        display_name: valid
            .display_name
            .unwrap_or_else(|| format!("AWS account {account_id}")),
        account_id,
        account_type: valid.account_type,
        auth,
        regions: valid.regions,
        cur: valid.cur,
        status: if warnings.is_empty() {
            ConnectionStatus::Connected
        } else {
            ConnectionStatus::Degraded
        },
        last_verified_at: Some(now),
        last_error: None,
        warnings,
        created_at: previous.map_or(now, |p| p.created_at),
        updated_at: now,
    };
    state
        .store
        .put_connection(caller.tenant.id, &connection)
        .await?;
    state.collections.aws().forget_tenant(caller.tenant.id);
    let collectors = Collector::for_connection(&connection);
    state
        .collections
        .queue_now(caller.tenant.id, &collectors)
        .await?;
    audit(
        &state,
        &caller.user,
        Some(caller.tenant.id),
        "connection.connect",
        serde_json::json!({"account_id": connection.account_id, "auth_method": connection.auth.method(), "status": connection.status}),
    )
    .await?;
    let message = if connection.warnings.is_empty() {
        "AWS connection saved".to_string()
    } else {
        format!(
            "AWS connection saved, with {} warning(s): see the report",
            connection.warnings.len()
        )
    };
    Ok(ApiJson(ConnectResponse {
        message,
        connection: connection.into(),
        report,
        collection_queued: collectors.iter().map(|c| c.as_str().to_string()).collect(),
    })
    .into_response())
}

/// The tenant's AWS connection and its health. Never includes a secret.
#[utoipa::path(get, path = "/api/tenants/connection", tag = "onboarding", security(("bearer" = [])),
    responses((status = 200, body = ConnectionView), (status = 404, description = "not connected", body = ErrorBody)))]
async fn get_connection(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<ConnectionView>> {
    let connection = state
        .store
        .connection(caller.tenant.id)
        .await?
        .ok_or_else(|| ApiError::not_found("AWS connection"))?;
    Ok(ApiJson(connection.into()))
}

/// Disconnects the tenant's AWS account. Collected data stays. Owners and admins only.
#[utoipa::path(delete, path = "/api/tenants/connection", tag = "onboarding", security(("bearer" = [])),
    responses((status = 204, description = "disconnected"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_connection(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    caller.require_manager("disconnect the AWS account")?;
    if !state.store.delete_connection(caller.tenant.id).await? {
        return Err(ApiError::not_found("AWS connection"));
    }
    // Nothing left to collect: drop the schedule too (it is recreated on the next connect).
    state.store.delete_jobs(caller.tenant.id).await?;
    state.collections.aws().forget_tenant(caller.tenant.id);
    audit(
        &state,
        &caller.user,
        Some(caller.tenant.id),
        "connection.delete",
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct VerifyResponse {
    connection: ConnectionView,
    report: Report,
}

/// Re-runs the diagnostics on the saved connection and records the outcome.
#[utoipa::path(post, path = "/api/tenants/connection/verify", tag = "onboarding", security(("bearer" = [])),
    responses((status = 200, body = VerifyResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn verify_connection(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<VerifyResponse>> {
    caller.require_manager("verify the AWS connection")?;
    let (connection, credentials) = state.collections.credentials(caller.tenant.id).await?;
    let expected_account = match &connection.auth {
        ConnectionAuth::Role { role_arn } => validate::role_arn("aws_role_arn", role_arn).ok(),
        ConnectionAuth::AccessKey { .. } => Some(connection.account_id.clone()),
    };
    let plan = Plan {
        tenant: caller.tenant.id,
        credentials,
        expected_account,
        regions: connection.regions.clone(),
        cur: connection.cur.clone(),
        require_external_id: state.config.require_external_id,
    };
    let report = cloudspend_connect_check::run(state.collections.aws(), &plan).await;
    let now = Utc::now();
    let (status, last_error, verified_at) = if report.credentials_ok() {
        let status = if report.warnings().is_empty() {
            ConnectionStatus::Connected
        } else {
            ConnectionStatus::Degraded
        };
        (status, None, Some(now))
    } else {
        let failure = report
            .blocking_failure()
            .map(|s| format!("{}: {}", s.title, s.message));
        (ConnectionStatus::Failed, failure, None)
    };
    state
        .store
        .update_connection_status(
            caller.tenant.id,
            ConnectionStatusUpdate {
                status,
                verified_at,
                last_error,
                warnings: report.warnings(),
                at: now,
            },
        )
        .await?;
    audit(
        &state,
        &caller.user,
        Some(caller.tenant.id),
        "connection.verify",
        serde_json::json!({"status": status}),
    )
    .await?;
    let connection = state
        .store
        .connection(caller.tenant.id)
        .await?
        .ok_or_else(|| ApiError::not_found("AWS connection"))?;
    Ok(ApiJson(VerifyResponse {
        connection: connection.into(),
        report,
    }))
}
