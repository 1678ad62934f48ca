//! Operator diagnostics, as in the first prototype: `/test-ec2`, `/test-cpu/{instance_id}`,
//! `/test-cost`. They call AWS live (nothing is stored) and answer plain JSON for curl.
//!
//! With a bearer token they use that tenant's AWS connection. Without one they use the
//! server's own credentials (the default chain: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
//! AWS_REGION), and only when `CLOUDSPEND_TEST_ENDPOINTS=true`: otherwise anyone who can reach
//! the port could read the operator's AWS account.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::costs::parse_day;
use crate::state::AppState;
use aws_types::SdkConfig;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use cloudspend_aws_access::{RequestCounter, TenantCredentials, cost_explorer_config};
use cloudspend_collect_cloudwatch::{CpuQuery, is_instance_id};
use cloudspend_core::{Money, TenantId};
use cloudspend_store::{Admission, Allowance, DiagnosticEndpoint};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(test_ec2))
        .routes(routes!(test_cpu))
        .routes(routes!(test_cost))
}

/// Whose AWS account a diagnostics call reads, resolved to a config in the account's home region.
struct Target {
    config: SdkConfig,
    account_id: String,
    regions: Vec<String>,
}

/// The AWS access a diagnostics request may use: the tenant's (with a token) or the server's
/// own (without one, when enabled).
enum DiagnosticsCaller {
    Tenant(Caller),
    Server,
}

impl FromRequestParts<AppState> for DiagnosticsCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            // A token that is present but wrong is an error, never a fall-back to the server.
            return Ok(DiagnosticsCaller::Tenant(
                Caller::from_request_parts(parts, state).await?,
            ));
        }
        if state.config.test_endpoints {
            Ok(DiagnosticsCaller::Server)
        } else {
            Err(ApiError::forbidden(
                "test_endpoints_disabled",
                "send `Authorization: Bearer <token>` to use your tenant's AWS connection; without a token \
                 these diagnostics use the server's own AWS credentials and are off unless the server runs \
                 with CLOUDSPEND_TEST_ENDPOINTS=true",
            ))
        }
    }
}

async fn target(state: &AppState, caller: &DiagnosticsCaller) -> ApiResult<Target> {
    match caller {
        DiagnosticsCaller::Tenant(caller) => {
            let (connection, credentials) = state.collections.credentials(caller.tenant.id).await?;
            let config = state
                .collections
                .aws()
                .sdk_config(caller.tenant.id, &credentials, connection.home_region())
                .await?;
            Ok(Target {
                config,
                account_id: connection.account_id.clone(),
                regions: connection.regions.clone(),
            })
        }
        DiagnosticsCaller::Server => {
            let aws = state.collections.aws();
            let region = aws
                .base()
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "us-east-1".to_string());
            // The nil tenant id: the server's own account has no tenant (and no cached role).
            let config = aws
                .sdk_config(
                    TenantId(uuid::Uuid::nil()),
                    &TenantCredentials::ServerDefault,
                    &region,
                )
                .await?;
            Ok(Target {
                config,
                account_id: String::new(),
                regions: vec![region],
            })
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TestInstance {
    id: String,
    #[serde(rename = "type")]
    instance_type: String,
    state: String,
    region: String,
    launch_time: Option<DateTime<Utc>>,
    /// The `Name` tag.
    name: Option<String>,
    availability_zone: String,
    platform: String,
}

/// EC2 instances in the account's regions, live from DescribeInstances.
#[utoipa::path(get, path = "/test-ec2", tag = "diagnostics", security((), ("bearer" = [])),
    responses(
        (status = 200, body = Vec<TestInstance>),
        (status = 403, description = "no token and CLOUDSPEND_TEST_ENDPOINTS is off, or AWS denied access", body = ErrorBody),
        (status = 429, description = "the tenant's hourly allowance of this diagnostic is used up", body = ErrorBody),
        (status = 502, description = "AWS failed", body = ErrorBody),
    ))]
async fn test_ec2(
    State(state): State<AppState>,
    caller: DiagnosticsCaller,
) -> ApiResult<ApiJson<Vec<TestInstance>>> {
    let target = target(&state, &caller).await?;
    let instances = recorded(
        &state,
        &caller,
        DiagnosticEndpoint::TestEc2,
        Some(state.config.diagnostics_per_hour),
        |counter| async move {
            Ok(cloudspend_collect_ec2::collect_instances(
                &target.config,
                &target.account_id,
                &target.regions,
                &counter,
            )
            .await?)
        },
    )
    .await?;
    Ok(ApiJson(
        instances
            .into_iter()
            .map(|i| TestInstance {
                name: i.name().map(str::to_string),
                id: i.instance_id,
                instance_type: i.instance_type,
                state: i.state,
                region: i.region,
                launch_time: i.launch_time,
                availability_zone: i.availability_zone,
                platform: i.platform,
            })
            .collect(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct CpuDatapoint {
    timestamp: DateTime<Utc>,
    average: f64,
    maximum: f64,
    unit: String,
}

/// CPUUtilization of one instance over the last 24 hours at 5-minute periods, oldest first.
/// A stopped instance has no datapoints: an empty list.
#[utoipa::path(get, path = "/test-cpu/{instance_id}", tag = "diagnostics", security((), ("bearer" = [])),
    params(("instance_id" = String, Path, description = "e.g. i-0123456789abcdef0")),
    responses(
        (status = 200, body = Vec<CpuDatapoint>),
        (status = 400, description = "not an instance id", body = ErrorBody),
        (status = 404, description = "no such instance in the account's regions", body = ErrorBody),
        (status = 429, description = "the tenant's hourly allowance of this diagnostic is used up", body = ErrorBody),
    ))]
async fn test_cpu(
    State(state): State<AppState>,
    caller: DiagnosticsCaller,
    Path(instance_id): Path<String>,
) -> ApiResult<ApiJson<Vec<CpuDatapoint>>> {
    if !is_instance_id(&instance_id) {
        return Err(ApiError::bad_field(
            "instance_id",
            format!(
                "`{instance_id}` is not an EC2 instance id: expected i- and 8 or 17 hex digits, e.g. i-0123456789abcdef0"
            ),
        ));
    }
    let target = target(&state, &caller).await?;
    let points = recorded(
        &state,
        &caller,
        DiagnosticEndpoint::TestCpu,
        Some(state.config.diagnostics_per_hour),
        |counter| async move {
            // Find the instance first, so an unknown id is a 404 rather than an empty series.
            let instances = cloudspend_collect_ec2::collect_instances(
                &target.config,
                &target.account_id,
                &target.regions,
                &counter,
            )
            .await?;
            let instance = instances
                .iter()
                .find(|i| i.instance_id == instance_id)
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "instance {instance_id} (looked in {})",
                        target.regions.join(", ")
                    ))
                })?;
            let query = CpuQuery::last_24_hours(
                instance.region.clone(),
                vec![instance_id.clone()],
                Utc::now(),
            );
            Ok(
                cloudspend_collect_cloudwatch::cpu_utilization(&target.config, &query, &counter)
                    .await?,
            )
        },
    )
    .await?;
    Ok(ApiJson(
        points
            .into_iter()
            .map(|p| CpuDatapoint {
                timestamp: p.timestamp,
                average: p.average,
                maximum: p.maximum,
                unit: p.unit,
            })
            .collect(),
    ))
}

#[derive(Deserialize, IntoParams)]
pub struct CostWindow {
    /// First day (YYYY-MM-DD); default 30 days before `to`.
    from: Option<String>,
    /// Day after the last day (exclusive, as Cost Explorer counts); default tomorrow (UTC).
    to: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CostDay {
    day: NaiveDate,
    amount: Money,
    unit: String,
    /// Cost Explorer's figure for this day may still change.
    estimated: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TestCostResponse {
    from: NaiveDate,
    to: NaiveDate,
    days: Vec<CostDay>,
    /// Exact sum of the days.
    total: Money,
    unit: String,
}

/// Daily UnblendedCost from Cost Explorer, live. Each call is a billed request ($0.01): with a
/// tenant token, owners and admins only, at most `test_cost_per_hour` (10) an hour per tenant.
#[utoipa::path(get, path = "/test-cost", tag = "diagnostics", security((), ("bearer" = [])),
    params(CostWindow),
    responses((status = 200, body = TestCostResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, description = "the tenant's hourly allowance of billed Cost Explorer requests is used up", body = ErrorBody)))]
async fn test_cost(
    State(state): State<AppState>,
    caller: DiagnosticsCaller,
    Query(window): Query<CostWindow>,
) -> ApiResult<ApiJson<TestCostResponse>> {
    let to = parse_day("to", window.to.as_deref())?
        .unwrap_or_else(|| state.config.clock.today() + Duration::days(1));
    let from = parse_day("from", window.from.as_deref())?.unwrap_or(to - Duration::days(30));
    if from >= to {
        return Err(ApiError::invalid(
            "from",
            "`from` must be before `to` (`to` is exclusive)",
        ));
    }
    // Each Cost Explorer request is billed ($0.01) to the tenant: owners and admins only, and a
    // bounded number per tenant and hour, so a viewer or a script loop cannot run up the bill.
    if let DiagnosticsCaller::Tenant(caller) = &caller {
        caller.require_manager("run the billed Cost Explorer diagnostic")?;
    }
    let target = target(&state, &caller).await?;
    let hourly = Some(state.config.test_cost_per_hour);
    let days = recorded(
        &state,
        &caller,
        DiagnosticEndpoint::TestCost,
        hourly,
        |counter| async move {
            // Cost Explorer answers only in us-east-1.
            let ce = cost_explorer_config(&target.config);
            Ok(cloudspend_collect_costexplorer::daily_totals(&ce, from, to, &counter).await?)
        },
    )
    .await?;
    let total: Money = days.iter().map(|d| d.amount).sum();
    let unit = days
        .first()
        .map(|d| d.unit.clone())
        .unwrap_or_else(|| "USD".to_string());
    Ok(ApiJson(TestCostResponse {
        from,
        to,
        total,
        unit,
        days: days
            .into_iter()
            .map(|d| CostDay {
                day: d.day,
                amount: d.amount,
                unit: d.unit,
                estimated: d.estimated,
            })
            .collect(),
    }))
}

/// Runs `work`, a live AWS call. A tenant's is recorded in the store (`diagnostic_calls`), so its
/// requests count in the tenant's AWS usage like a collection's; with `per_hour`, it is refused
/// (429) once the tenant made that many calls of `endpoint` in the last hour, on any replica
/// (which also bounds the rows a script looping on a diagnostic can add).
/// The requests are recorded whether `work` succeeds or not: AWS counts, and bills, both. Calls
/// on the server's own account (no tenant token) are nobody's usage and are not recorded.
async fn recorded<T, Fut>(
    state: &AppState,
    caller: &DiagnosticsCaller,
    endpoint: DiagnosticEndpoint,
    per_hour: Option<usize>,
    work: impl FnOnce(RequestCounter) -> Fut,
) -> ApiResult<T>
where
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    const HOUR: Duration = Duration::hours(1);
    let counter = RequestCounter::new();
    let DiagnosticsCaller::Tenant(caller) = caller else {
        return work(counter).await;
    };
    let tenant = caller.tenant.id;
    let now = state.config.clock.now();
    let allowance = per_hour.map(|max_calls| Allowance {
        since: now - HOUR,
        max_calls: i64::try_from(max_calls).unwrap_or(i64::MAX),
    });
    let id = match state
        .store
        .start_diagnostic_call(tenant, endpoint, now, allowance)
        .await?
    {
        Admission::Admitted(id) => id,
        Admission::Refused { oldest_in_window } => {
            let wait = (oldest_in_window + HOUR - now).to_std().unwrap_or_default();
            return Err(ApiError::too_many(
                format_args!(
                    "/{} ran {} times in the last hour for this tenant{}",
                    endpoint.as_str(),
                    per_hour.unwrap_or_default(),
                    if endpoint == DiagnosticEndpoint::TestCost {
                        " (each of its Cost Explorer requests is billed $0.01)"
                    } else {
                        ""
                    }
                ),
                wait,
            ));
        }
    };
    let result = work(counter.clone()).await;
    let counts = counter.counts();
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    if let Err(error) = state
        .store
        .finish_diagnostic_call(
            tenant,
            id,
            as_i64(counts.requests),
            as_i64(counts.cost_explorer_requests),
        )
        .await
    {
        tracing::error!(%tenant, %error, "recording a diagnostic call's AWS requests failed");
    }
    result
}
