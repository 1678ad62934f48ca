//! CloudWatch CPU alarms on a tenant's instances, created, listed and deleted through the
//! tenant's role (the opt-in `EnableActions` permissions). CloudSpend names its alarms
//! `cloudspend-<first 8 hex of the tenant id>-<instance id>-...`: it lists and deletes only
//! those, so two tenants sharing an AWS account never see or touch each other's alarms, nor
//! alarms the account made itself.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::actions::{audited, find_instance, tenant_config, write_error};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cloudspend_connect_check::actions::{self, AlarmView, COMPARISONS, CpuAlarm};
use cloudspend_core::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_alarm, list_alarms))
        .routes(routes!(delete_alarm))
}

fn prefix(tenant: TenantId, instance_id: &str) -> String {
    format!(
        "cloudspend-{}-{instance_id}-",
        &tenant.0.simple().to_string()[..8]
    )
}

#[derive(Deserialize, ToSchema)]
pub struct AlarmRequest {
    /// CPU percent, above 0 and at most 100.
    threshold: f64,
    /// 10, 30, or a multiple of 60 up to 86400 (default 300).
    period_seconds: Option<i32>,
    /// How many periods in a row must breach (1 to 100, default 3).
    evaluation_periods: Option<i32>,
    /// GreaterThanThreshold (default) | GreaterThanOrEqualToThreshold | LessThanThreshold |
    /// LessThanOrEqualToThreshold
    comparison: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AlarmCreated {
    alarm: AlarmView,
    aws_request_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AlarmList {
    alarms: Vec<AlarmView>,
}

fn short(comparison: &str) -> &'static str {
    match comparison {
        "GreaterThanThreshold" => "gt",
        "GreaterThanOrEqualToThreshold" => "ge",
        "LessThanThreshold" => "lt",
        _ => "le",
    }
}

/// Creates a CPU alarm on the instance (PutMetricAlarm; the same settings again replace it).
/// Owners and admins only.
#[utoipa::path(post, path = "/api/instances/{instance_id}/alarms", tag = "actions", security(("bearer" = [])),
    params(("instance_id" = String, Path, description = "EC2 instance id")),
    request_body = AlarmRequest,
    responses(
        (status = 201, body = AlarmCreated),
        (status = 403, description = "viewer, or actions not enabled (`actions_disabled`)", body = ErrorBody),
        (status = 404, description = "unknown instance", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
async fn create_alarm(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(req): ApiJson<AlarmRequest>,
) -> ApiResult<(StatusCode, ApiJson<AlarmCreated>)> {
    let request = json!({"instance_id": instance_id, "threshold": req.threshold,
                         "period_seconds": req.period_seconds, "evaluation_periods": req.evaluation_periods,
                         "comparison": req.comparison});
    let created = audited(&state, &caller, "instance.alarm.create", request, async {
        caller.require_manager("manage alarms")?;
        if !(req.threshold > 0.0 && req.threshold <= 100.0) {
            return Err(ApiError::invalid(
                "threshold",
                "threshold is a CPU percent above 0 and at most 100",
            ));
        }
        let period = req.period_seconds.unwrap_or(300);
        if !(period == 10 || period == 30 || (period % 60 == 0 && (60..=86_400).contains(&period)))
        {
            return Err(ApiError::invalid(
                "period_seconds",
                "period_seconds must be 10, 30, or a multiple of 60 up to 86400",
            ));
        }
        let evaluation_periods = req.evaluation_periods.unwrap_or(3);
        if !(1..=100).contains(&evaluation_periods) {
            return Err(ApiError::invalid(
                "evaluation_periods",
                "evaluation_periods must be between 1 and 100",
            ));
        }
        let comparison = req
            .comparison
            .clone()
            .unwrap_or_else(|| "GreaterThanThreshold".into());
        if !COMPARISONS.contains(&comparison.as_str()) {
            return Err(ApiError::invalid(
                "comparison",
                format!("comparison must be one of {}", COMPARISONS.join(", ")),
            ));
        }
        let instance = find_instance(&state, &caller, &instance_id).await?;
        let name = format!(
            "{}cpu-{}-{}-{period}s-x{evaluation_periods}",
            prefix(caller.tenant.id, &instance_id),
            short(&comparison),
            req.threshold
        );
        let alarm = CpuAlarm {
            name: name.clone(),
            instance_id: instance_id.clone(),
            threshold: req.threshold,
            period_seconds: period,
            evaluation_periods,
            comparison: comparison.clone(),
            description: format!(
                "CPU of {instance_id} {comparison} {}% for {evaluation_periods} x {period}s (created in CloudSpend by {})",
                req.threshold, caller.user.email
            ),
        };
        let config = tenant_config(&state, &caller, &instance.region).await?;
        let request_id = actions::put_cpu_alarm(&config, &alarm)
            .await
            .map_err(write_error)?;
        let listed = actions::list_alarms(&config, &name)
            .await
            .map_err(write_error)?;
        let view = listed
            .into_iter()
            .find(|a| a.name == name)
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("alarm {name} missing right after PutMetricAlarm"))
            })?;
        let outcome = json!({"alarm": name, "region": instance.region, "aws_request_id": request_id});
        Ok((
            AlarmCreated {
                alarm: view,
                aws_request_id: request_id,
            },
            outcome,
        ))
    })
    .await?;
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// The CPU alarms CloudSpend created on the instance, with their current state.
#[utoipa::path(get, path = "/api/instances/{instance_id}/alarms", tag = "actions", security(("bearer" = [])),
    params(("instance_id" = String, Path, description = "EC2 instance id")),
    responses(
        (status = 200, body = AlarmList),
        (status = 403, description = "actions not enabled (`actions_disabled`)", body = ErrorBody),
        (status = 404, description = "unknown instance", body = ErrorBody),
    ))]
async fn list_alarms(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
) -> ApiResult<ApiJson<AlarmList>> {
    let instance = find_instance(&state, &caller, &instance_id).await?;
    let config = tenant_config(&state, &caller, &instance.region).await?;
    let alarms = actions::list_alarms(&config, &prefix(caller.tenant.id, &instance_id))
        .await
        .map_err(write_error)?;
    Ok(ApiJson(AlarmList { alarms }))
}

/// Deletes one of the instance's CloudSpend alarms. Owners and admins only.
#[utoipa::path(delete, path = "/api/instances/{instance_id}/alarms/{name}", tag = "actions", security(("bearer" = [])),
    params(("instance_id" = String, Path, description = "EC2 instance id"),
           ("name" = String, Path, description = "the alarm's name, as listed")),
    responses(
        (status = 204, description = "deleted"),
        (status = 403, body = ErrorBody),
        (status = 404, description = "unknown instance or alarm", body = ErrorBody),
    ))]
async fn delete_alarm(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let request = json!({"instance_id": instance_id, "alarm": name});
    audited(&state, &caller, "instance.alarm.delete", request, async {
        caller.require_manager("manage alarms")?;
        let instance = find_instance(&state, &caller, &instance_id).await?;
        // Only CloudSpend's alarms of this tenant and instance.
        if !name.starts_with(&prefix(caller.tenant.id, &instance_id)) {
            return Err(ApiError::not_found("alarm"));
        }
        let config = tenant_config(&state, &caller, &instance.region).await?;
        let exists = actions::list_alarms(&config, &name)
            .await
            .map_err(write_error)?
            .iter()
            .any(|a| a.name == name);
        if !exists {
            return Err(ApiError::not_found("alarm"));
        }
        let request_id = actions::delete_alarm(&config, &name)
            .await
            .map_err(write_error)?;
        Ok((
            (),
            json!({"alarm": name, "region": instance.region, "aws_request_id": request_id}),
        ))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
