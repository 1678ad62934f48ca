//! Collections: queue one now (the "Refresh" button) and see how ingestion is doing.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::accounts::audit;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{Datelike, TimeZone, Utc};
use cloudspend_collection::Collector;
use cloudspend_core::Money;
use cloudspend_store::{CollectionRun, Job};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(collect_now))
        .routes(routes!(list_collections))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CollectRequest {
    /// Which collectors to run: `ec2`, `cloudwatch`, `costexplorer`, `cur`. All that apply when omitted.
    #[serde(default)]
    collectors: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct CollectResponse {
    /// The collectors queued; a scheduler picks them up within seconds.
    queued: Vec<String>,
}

/// Queues a collection of the caller's tenant now. Owners and admins only (Cost Explorer bills
/// each request).
#[utoipa::path(post, path = "/api/collect", tag = "collections", security(("bearer" = [])),
    request_body(content = Option<CollectRequest>, description = "optional; all collectors when empty"),
    responses(
        (status = 202, body = CollectResponse),
        (status = 403, body = ErrorBody),
        (status = 409, description = "no AWS connection yet", body = ErrorBody),
        (status = 422, description = "unknown collector", body = ErrorBody),
    ))]
async fn collect_now(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, ApiJson<CollectResponse>)> {
    caller.require_manager("start a collection")?;
    let request: CollectRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CollectRequest::default()
    } else {
        crate::json::parse(&body)?
    };
    let Some(connection) = state.store.connection(caller.tenant.id).await? else {
        return Err(ApiError::Conflict {
            code: "not_connected",
            message: "connect an AWS account first (POST /api/tenants/connect)".into(),
            field: None,
        });
    };
    let collectors = match request.collectors {
        None => Collector::for_connection(&connection),
        Some(names) if names.is_empty() => Collector::for_connection(&connection),
        Some(names) => names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                name.parse::<Collector>()
                    .map_err(|e| ApiError::invalid(format!("collectors[{i}]"), e))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    state
        .collections
        .queue_now(caller.tenant.id, &collectors)
        .await?;
    let queued: Vec<String> = collectors.iter().map(|c| c.as_str().to_string()).collect();
    audit(
        &state,
        &caller.user,
        Some(caller.tenant.id),
        "collection.queue",
        serde_json::json!({"collectors": queued}),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, ApiJson(CollectResponse { queued })))
}

#[derive(Deserialize, IntoParams)]
pub struct CollectionsQuery {
    /// How many recent runs to list (1..=500, default 50).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct RunView {
    #[schema(value_type = String, format = Uuid)]
    id: cloudspend_core::RunId,
    collector: String,
    window_start: chrono::DateTime<Utc>,
    window_end: chrono::DateTime<Utc>,
    started_at: chrono::DateTime<Utc>,
    finished_at: Option<chrono::DateTime<Utc>>,
    status: cloudspend_core::records::RunStatus,
    rows_written: i64,
    aws_requests: i64,
    ce_requests: i64,
    retries: i64,
    error: Option<String>,
}

impl From<CollectionRun> for RunView {
    fn from(r: CollectionRun) -> Self {
        RunView {
            id: r.id,
            collector: r.collector,
            window_start: r.window_start,
            window_end: r.window_end,
            started_at: r.started_at,
            finished_at: r.finished_at,
            status: r.status,
            rows_written: r.rows_written,
            aws_requests: r.aws_requests,
            ce_requests: r.ce_requests,
            retries: r.retries,
            error: r.error,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct JobView {
    collector: String,
    interval_seconds: i64,
    next_run_at: chrono::DateTime<Utc>,
    running: bool,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        let running = j.leased_until.is_some_and(|t| t > Utc::now());
        JobView {
            collector: j.collector,
            interval_seconds: j.interval_seconds,
            next_run_at: j.next_run_at,
            running,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CollectionsResponse {
    runs: Vec<RunView>,
    jobs: Vec<JobView>,
    /// AWS requests CloudSpend made for this tenant this calendar month (UTC), in the runs listed.
    aws_requests_this_month: i64,
    cost_explorer_requests_this_month: i64,
    /// What those Cost Explorer requests cost the tenant ($0.01 each).
    cost_explorer_cost_this_month: Money,
}

/// Recent collection runs (newest first), the schedule, and what CloudSpend's own AWS calls
/// cost the tenant this month.
#[utoipa::path(get, path = "/api/collections", tag = "collections", security(("bearer" = [])),
    params(CollectionsQuery),
    responses((status = 200, body = CollectionsResponse), (status = 401, body = ErrorBody)))]
async fn list_collections(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<CollectionsQuery>,
) -> ApiResult<ApiJson<CollectionsResponse>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            "limit must be between 1 and 500",
        ));
    }
    let now = state.config.clock.now();
    let month_start = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    // The month's AWS usage: its collections' requests and its diagnostic calls', as the
    // dashboard counts them.
    let usage = state
        .store
        .aws_usage_since(caller.tenant.id, month_start)
        .await?;
    let runs = state
        .store
        .runs(caller.tenant.id, limit)
        .await?
        .into_iter()
        .map(RunView::from)
        .collect();
    let jobs = state
        .store
        .jobs(caller.tenant.id)
        .await?
        .into_iter()
        .map(JobView::from)
        .collect();
    Ok(ApiJson(CollectionsResponse {
        runs,
        jobs,
        aws_requests_this_month: usage.requests,
        cost_explorer_requests_this_month: usage.ce_requests,
        cost_explorer_cost_this_month: Money::from_nanos(
            usage.ce_requests.saturating_mul(10_000_000),
        ),
    }))
}
