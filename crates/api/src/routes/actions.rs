//! Acting on findings: EC2 stop/start confirmed with a one-time token, whether the tenant's role
//! allows actions at all, and the audit log every action, confirmation and refusal goes to.
//!
//! Two steps, so nothing happens by accident: `POST /api/instances/{instance_id}/actions` checks
//! the caller, the instance and the role's permission (an EC2 DryRun) and answers what will happen
//! with a random token (only its SHA-256 is stored) bound to the tenant, the user, the instance and
//! the action, valid for 5 minutes; `POST /api/actions/confirm` spends the token (one conditional
//! UPDATE: of concurrent confirmations one wins) and calls EC2. Every outcome, refusals included,
//! is audited with the user's email and AWS's request id.

use crate::auth::{Caller, token_hash};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use aws_types::SdkConfig;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine;
use chrono::{DateTime, Datelike, Days, Utc};
use cloudspend_connect_check::actions::{self, InstanceAction, Permission};
use cloudspend_core::Money;
use cloudspend_core::records::Instance;
use cloudspend_insights::view::RecommendationView;
use cloudspend_store::{
    AuditCounts, AuditCursor, AuditFilter, AuditStatus, NewActionToken, NewAuditEntry,
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::future::Future;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_action))
        .routes(routes!(confirm_action))
        .routes(routes!(actions_status))
        .routes(routes!(list_audit))
}

/// Confirmation tokens start with this, so people recognise one.
const TOKEN_PREFIX: &str = "csa_";

// --- shared by actions, alarms and budgets ------------------------------------------------

/// The stable code of an error, for the audit detail.
fn error_code(err: &ApiError) -> String {
    match err {
        ApiError::BadRequest { code, .. }
        | ApiError::Unauthorized { code, .. }
        | ApiError::Forbidden { code, .. }
        | ApiError::Conflict { code, .. }
        | ApiError::Unavailable { code, .. } => code.to_string(),
        ApiError::Invalid { .. } => "invalid_field".into(),
        ApiError::NotFound { .. } => "not_found".into(),
        ApiError::Aws { .. } => "aws_error".into(),
        _ => "internal_error".into(),
    }
}

/// Records one audited request with its outcome.
pub(crate) async fn record(
    state: &AppState,
    caller: &Caller,
    action: &str,
    status: AuditStatus,
    detail: Value,
) -> ApiResult<()> {
    state
        .store
        .record_audit(NewAuditEntry {
            tenant_id: Some(caller.tenant.id),
            user_id: Some(caller.user.id),
            user_email: Some(caller.user.email.clone()),
            action: action.to_string(),
            status,
            detail,
            at: Utc::now(),
        })
        .await?;
    Ok(())
}

/// The most of a request body an audit entry keeps. A refused request is anyone's to send, up
/// to the 1 MiB body limit, and the audit page lists hundreds of entries: kept whole, a viewer
/// could fill the log (and every owner's audit page) with megabytes per request.
const AUDITED_REQUEST_BYTES: usize = 2048;

/// The request as the audit log keeps it: whole when small, else its size and top-level field
/// names only.
fn audited_request(request: Value) -> Value {
    let size = serde_json::to_vec(&request).map_or(usize::MAX, |b| b.len());
    if size <= AUDITED_REQUEST_BYTES {
        return request;
    }
    let fields: Vec<&String> = request
        .as_object()
        .map(|o| o.keys().take(50).collect())
        .unwrap_or_default();
    json!({"truncated": true, "bytes": size, "fields": fields})
}

/// Runs `work` and audits its outcome as `action`: `succeeded` with the request and what `work`
/// reports, `refused` (a check said no) or `failed` (AWS or CloudSpend failed) with the error.
/// The request is kept up to [`AUDITED_REQUEST_BYTES`].
pub(crate) async fn audited<T>(
    state: &AppState,
    caller: &Caller,
    action: &str,
    request: Value,
    work: impl Future<Output = ApiResult<(T, Value)>>,
) -> ApiResult<T> {
    let request = audited_request(request);
    match work.await {
        Ok((value, outcome)) => {
            record(
                state,
                caller,
                action,
                AuditStatus::Succeeded,
                json!({"request": request, "outcome": outcome}),
            )
            .await?;
            Ok(value)
        }
        Err(err) => {
            let status = match &err {
                ApiError::Aws { .. } | ApiError::Internal(_) | ApiError::Unavailable { .. } => {
                    AuditStatus::Failed
                }
                _ => AuditStatus::Refused,
            };
            let (aws_code, request_id) = match &err {
                ApiError::Aws {
                    aws_code,
                    request_id,
                    ..
                } => (aws_code.clone(), request_id.clone()),
                _ => (None, None),
            };
            let message = match &err {
                ApiError::Internal(_) => "internal error".to_string(),
                other => other.to_string(),
            };
            record(
                state,
                caller,
                action,
                status,
                json!({"request": request, "error": {"code": error_code(&err), "message": message,
                       "aws_code": aws_code, "aws_request_id": request_id}}),
            )
            .await?;
            Err(err)
        }
    }
}

/// The refusal when the role lacks the write permissions, saying how to grant them.
pub(crate) fn actions_disabled(err: Option<&cloudspend_aws_access::AwsError>) -> ApiError {
    let detail = err
        .and_then(|e| e.code())
        .map(|c| format!(" (AWS answered {c})"))
        .unwrap_or_default();
    ApiError::Forbidden {
        code: "actions_disabled",
        message: format!("{}{detail}", actions::how_to_enable()),
        field: None,
    }
}

/// An AWS failure of a write call: a missing permission is "actions disabled", the rest as is.
pub(crate) fn write_error(err: cloudspend_aws_access::AwsError) -> ApiError {
    if actions::is_denied(&err) {
        actions_disabled(Some(&err))
    } else {
        err.into()
    }
}

/// The tenant's instance (not terminated) with this id, or 404.
pub(crate) async fn find_instance(
    state: &AppState,
    caller: &Caller,
    instance_id: &str,
) -> ApiResult<Instance> {
    state
        .store
        .instances(caller.tenant.id)
        .await?
        .into_iter()
        .find(|i| i.instance_id == instance_id && i.state != "terminated")
        .ok_or_else(|| ApiError::not_found("instance"))
}

/// The tenant's AWS config in `region`.
pub(crate) async fn tenant_config(
    state: &AppState,
    caller: &Caller,
    region: &str,
) -> ApiResult<SdkConfig> {
    let (_, credentials) = state.collections.credentials(caller.tenant.id).await?;
    Ok(state
        .collections
        .aws()
        .sdk_config(caller.tenant.id, &credentials, region)
        .await?)
}

// --- stop / start ------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
pub struct ActionRequest {
    /// stop | start
    action: String,
}

#[derive(Serialize, ToSchema)]
pub struct InstanceSummary {
    instance_id: String,
    name: Option<String>,
    account_id: String,
    region: String,
    instance_type: String,
    state: String,
}

impl From<&Instance> for InstanceSummary {
    fn from(i: &Instance) -> Self {
        InstanceSummary {
            instance_id: i.instance_id.clone(),
            name: i.tags.get("Name").cloned(),
            account_id: i.account_id.clone(),
            region: i.region.clone(),
            instance_type: i.instance_type.clone(),
            state: i.state.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConfirmWith {
    method: &'static str,
    path: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct ActionTicket {
    /// Send it to `POST /api/actions/confirm` within 5 minutes; usable once, by you only.
    token: String,
    expires_at: DateTime<Utc>,
    /// stop | start
    action: String,
    instance: InstanceSummary,
    /// What the instance costs a month (null when CloudSpend has no figure for it).
    monthly_cost: Option<Money>,
    /// recommendation (the finding's price) | cur (its last 30 days in the CUR) | null
    cost_basis: Option<String>,
    /// The idle/oversized finding behind the action, when there is one.
    finding: Option<RecommendationView>,
    /// What will happen, in words.
    summary: String,
    confirm: ConfirmWith,
}

fn new_action_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = token_hash(&token);
    (token, hash)
}

fn describe(
    action: InstanceAction,
    instance: &Instance,
    cost: Option<Money>,
    finding: Option<&RecommendationView>,
) -> String {
    let name = instance
        .tags
        .get("Name")
        .map(|n| format!("{n}, "))
        .unwrap_or_default();
    let what = format!(
        "{} ({name}{}, {}) in {} of account {}",
        instance.instance_id,
        instance.instance_type,
        instance.state,
        instance.region,
        instance.account_id
    );
    let cost = cost.map(|c| format!("{} USD a month", c.round_to_cents()));
    match action {
        InstanceAction::Stop => {
            let mut s = format!(
                "Stop {what}: it shuts down and stops accruing instance-hour charges; its EBS volumes and \
                 data are kept (and still billed), its public IP may change when it is started again."
            );
            if let Some(cost) = cost {
                s.push_str(&format!(" It costs about {cost}."));
            }
            if let Some(f) = finding {
                s.push_str(&format!(" Finding: {} ({}).", f.kind, f.evidence));
            }
            s
        }
        InstanceAction::Start => {
            let mut s = format!("Start {what}: it boots and is billed again from now.");
            if let Some(cost) = cost {
                s.push_str(&format!(" Running, it costs about {cost}."));
            }
            s
        }
    }
}

/// Asks to stop or start an instance: checks everything, changes nothing, and answers a
/// one-time confirmation token with what will happen. Owners and admins only.
#[utoipa::path(post, path = "/api/instances/{instance_id}/actions", tag = "actions", security(("bearer" = [])),
    params(("instance_id" = String, Path, description = "EC2 instance id")),
    request_body = ActionRequest,
    responses(
        (status = 201, description = "confirm with the token", body = ActionTicket),
        (status = 403, description = "viewer, or actions not enabled on the connection (`actions_disabled`)", body = ErrorBody),
        (status = 404, description = "unknown instance", body = ErrorBody),
        (status = 409, description = "the instance is already in that state, or not connected", body = ErrorBody),
        (status = 422, description = "unknown action", body = ErrorBody),
    ))]
async fn request_action(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(req): ApiJson<ActionRequest>,
) -> ApiResult<(StatusCode, ApiJson<ActionTicket>)> {
    let request = json!({"instance_id": instance_id, "action": req.action});
    let ticket = audited(&state, &caller, "instance.action.request", request, async {
        caller.require_manager("stop or start instances")?;
        let action = InstanceAction::parse(&req.action)
            .ok_or_else(|| ApiError::invalid("action", "action must be `stop` or `start`"))?;
        let instance = find_instance(&state, &caller, &instance_id).await?;
        let pointless = match action {
            InstanceAction::Stop => matches!(instance.state.as_str(), "stopped" | "stopping"),
            InstanceAction::Start => matches!(instance.state.as_str(), "running" | "pending"),
        };
        if pointless {
            return Err(ApiError::Conflict {
                code: "invalid_state",
                message: format!(
                    "instance {instance_id} is {} (as of the last collection): nothing to {}",
                    instance.state,
                    action.as_str()
                ),
                field: Some("action".into()),
            });
        }
        let config = tenant_config(&state, &caller, &instance.region).await?;
        match actions::dry_run(&config, action, &instance_id).await {
            Permission::Allowed => {}
            Permission::Denied(err) => return Err(actions_disabled(Some(&err))),
            Permission::Unknown(err) => return Err(err.into()),
        }

        let finding = state
            .store
            .recommendations(caller.tenant.id)
            .await?
            .iter()
            .filter(|r| r.resource_id == instance_id)
            .filter_map(RecommendationView::from_record)
            .next();
        let (monthly_cost, cost_basis) = match &finding {
            Some(f) => (Some(f.monthly_cost), Some("recommendation")),
            None => {
                let today = Utc::now().date_naive();
                let cur = state
                    .store
                    .cur_costs_by_resource(
                        caller.tenant.id,
                        today - Days::new(30),
                        today + Days::new(1),
                    )
                    .await?;
                match cur.into_iter().find(|t| t.key == instance_id) {
                    Some(t) => (Some(t.amount), Some("cur")),
                    None => (None, None),
                }
            }
        };
        let summary = describe(action, &instance, monthly_cost, finding.as_ref());
        let (token, hash) = new_action_token();
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(state.config.action_token_ttl)
            .map_err(|e| ApiError::Internal(e.into()))?;
        let expires_at = now + ttl;
        state
            .store
            .create_action_token(
                caller.tenant.id,
                NewActionToken {
                    token_hash: hash.clone(),
                    user_id: caller.user.id,
                    instance_id: instance_id.clone(),
                    region: instance.region.clone(),
                    action: action.as_str().into(),
                    created_at: now,
                    expires_at,
                    detail: json!({"monthly_cost": monthly_cost, "finding": finding.as_ref().map(|f| &f.kind),
                                   "summary": summary}),
                },
            )
            .await?;
        let outcome = json!({"expires_at": expires_at, "monthly_cost": monthly_cost,
                             "finding": finding.as_ref().map(|f| &f.kind), "token_sha256": hash});
        Ok((
            ActionTicket {
                token,
                expires_at,
                action: action.as_str().into(),
                instance: (&instance).into(),
                monthly_cost,
                cost_basis: cost_basis.map(str::to_string),
                finding,
                summary,
                confirm: ConfirmWith {
                    method: "POST",
                    path: "/api/actions/confirm",
                },
            },
            outcome,
        ))
    })
    .await?;
    Ok((StatusCode::CREATED, ApiJson(ticket)))
}

#[derive(Deserialize, ToSchema)]
pub struct ConfirmRequest {
    /// The token `POST /api/instances/{instance_id}/actions` answered.
    token: String,
}

#[derive(Serialize, ToSchema)]
pub struct ActionDone {
    action: String,
    instance_id: String,
    region: String,
    /// The state before, as EC2 reported it.
    previous_state: Option<String>,
    /// The state now (`stopping` / `pending` right after the call).
    state: Option<String>,
    aws_request_id: Option<String>,
    done_at: DateTime<Utc>,
}

fn token_refused(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Conflict {
        code,
        message: message.into(),
        field: Some("token".into()),
    }
}

/// Carries out a confirmed stop/start through EC2 with the tenant's credentials. The token is
/// spent whatever the outcome. Owners and admins only, and only the user it was issued to.
#[utoipa::path(post, path = "/api/actions/confirm", tag = "actions", security(("bearer" = [])),
    request_body = ConfirmRequest,
    responses(
        (status = 200, description = "done; the instance's new state", body = ActionDone),
        (status = 403, description = "viewer, another user's token (`token_not_yours`), or actions disabled", body = ErrorBody),
        (status = 409, description = "token expired (`token_expired`) or already used (`token_used`)", body = ErrorBody),
        (status = 422, description = "unknown token (`token_invalid`)", body = ErrorBody),
    ))]
async fn confirm_action(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ConfirmRequest>,
) -> ApiResult<ApiJson<ActionDone>> {
    let hash = token_hash(req.token.trim());
    let request = json!({"token_sha256": hash});
    let done = audited(&state, &caller, "instance.action.confirm", request, async {
        caller.require_manager("stop or start instances")?;
        let unknown = || ApiError::Invalid {
            message: "unknown confirmation token: ask for one with POST /api/instances/{instance_id}/actions"
                .into(),
            field: "token".into(),
        };
        // Another tenant's token is reported exactly like an unknown one.
        let token = state
            .store
            .action_token(&hash)
            .await?
            .filter(|t| t.tenant_id == caller.tenant.id)
            .ok_or_else(unknown)?;
        if token.user_id != caller.user.id {
            return Err(ApiError::Forbidden {
                code: "token_not_yours",
                message: "this confirmation token was issued to another user: ask for your own with \
                          POST /api/instances/{instance_id}/actions"
                    .into(),
                field: Some("token".into()),
            });
        }
        let now = Utc::now();
        if !state
            .store
            .use_action_token(caller.tenant.id, &hash, now)
            .await?
        {
            let current = state.store.action_token(&hash).await?;
            return Err(match current.and_then(|t| t.used_at) {
                Some(used_at) => token_refused(
                    "token_used",
                    format!("this confirmation token was already used at {used_at}; a token works once"),
                ),
                None => token_refused(
                    "token_expired",
                    format!(
                        "this confirmation token expired at {}: ask for a new one",
                        token.expires_at
                    ),
                ),
            });
        }
        let action = InstanceAction::parse(&token.action)
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("stored action `{}`", token.action)))?;
        let config = tenant_config(&state, &caller, &token.region).await?;
        let change = actions::perform(&config, action, &token.instance_id)
            .await
            .map_err(write_error)?;
        // Reflect the new state at once; the next EC2 collection confirms it.
        if let Some(new_state) = &change.current_state
            && let Some(mut instance) = state
                .store
                .instances(caller.tenant.id)
                .await?
                .into_iter()
                .find(|i| i.instance_id == token.instance_id && i.region == token.region)
        {
            instance.state = new_state.clone();
            state
                .store
                .upsert_instances(caller.tenant.id, &[instance])
                .await?;
        }
        let outcome = json!({"instance_id": token.instance_id, "action": token.action,
                             "previous_state": change.previous_state, "state": change.current_state,
                             "aws_request_id": change.aws_request_id});
        Ok((
            ActionDone {
                action: token.action.clone(),
                instance_id: token.instance_id.clone(),
                region: token.region.clone(),
                previous_state: change.previous_state,
                state: change.current_state,
                aws_request_id: change.aws_request_id,
                done_at: now,
            },
            outcome,
        ))
    })
    .await?;
    Ok(ApiJson(done))
}

#[derive(Serialize, ToSchema)]
pub struct ActionsStatus {
    /// Whether the role may stop/start instances and manage alarms; null when it could not be told.
    enabled: Option<bool>,
    message: String,
    aws_code: Option<String>,
    /// How to enable them (the CloudFormation parameter).
    how_to_enable: String,
    checked_at: DateTime<Utc>,
}

/// Whether actions are enabled on the tenant's connection, checked now with an EC2
/// StopInstances DryRun in the home region (nothing is stopped).
#[utoipa::path(get, path = "/api/actions/status", tag = "actions", security(("bearer" = [])),
    responses((status = 200, body = ActionsStatus), (status = 409, description = "not connected", body = ErrorBody)))]
async fn actions_status(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<ActionsStatus>> {
    let (connection, _) = state.collections.credentials(caller.tenant.id).await?;
    let region = connection.home_region().to_string();
    let config = tenant_config(&state, &caller, &region).await?;
    let sample = state
        .store
        .instances(caller.tenant.id)
        .await?
        .into_iter()
        .find(|i| i.region == region && i.state != "terminated")
        .map(|i| i.instance_id);
    let target = sample.as_deref().unwrap_or("i-00000000000000000");
    let (enabled, message, aws_code) =
        match actions::dry_run(&config, InstanceAction::Stop, target).await {
            Permission::Allowed => (Some(true), "actions are enabled".to_string(), None),
            Permission::Denied(err) => (
                Some(false),
                actions::how_to_enable(),
                err.code().map(str::to_string),
            ),
            Permission::Unknown(err)
                if sample.is_none()
                    && err
                        .code()
                        .is_some_and(|c| c.starts_with("InvalidInstanceID")) =>
            {
                (Some(true), "actions are enabled".to_string(), None)
            }
            Permission::Unknown(err) => (
                None,
                format!("could not be checked: {err}"),
                err.code().map(str::to_string),
            ),
        };
    Ok(ApiJson(ActionsStatus {
        enabled,
        message,
        aws_code,
        how_to_enable: actions::how_to_enable(),
        checked_at: Utc::now(),
    }))
}

// --- audit log ---------------------------------------------------------------------------

/// Entries per page when the query names no `limit`, and the most one page holds.
const AUDIT_PAGE_DEFAULT: i64 = 50;
const AUDIT_PAGE_MAX: i64 = 200;

#[derive(Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Only this user's entries (email, any case).
    user: Option<String>,
    /// An action (`instance.action.confirm`) or a dotted prefix (`instance`, `instance.action`).
    action: Option<String>,
    /// succeeded | refused | failed | ok
    status: Option<String>,
    /// Entries at or after this time: RFC 3339 (`2026-12-01T09:30:00Z`) or a day
    /// (`2026-12-01`, from its start, UTC).
    from: Option<String>,
    /// Entries before this time (exclusive): RFC 3339 or a day (its start, UTC).
    to: Option<String>,
    /// Entries per page, newest first (default 50, at most 200).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page: this page holds the entries older than it.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditView {
    id: uuid::Uuid,
    at: DateTime<Utc>,
    user_email: Option<String>,
    action: String,
    /// succeeded | refused | failed | ok (changes recorded without an outcome)
    status: String,
    /// The request, and the outcome (with `aws_request_id`) or the error.
    detail: Value,
}

/// How many entries match the filters, over every page.
#[derive(Serialize, ToSchema)]
pub struct AuditCountsView {
    total: i64,
    succeeded: i64,
    refused: i64,
    failed: i64,
    /// Changes recorded without an outcome.
    ok: i64,
}

impl From<AuditCounts> for AuditCountsView {
    fn from(c: AuditCounts) -> Self {
        AuditCountsView {
            total: c.total,
            succeeded: c.succeeded,
            refused: c.refused,
            failed: c.failed,
            ok: c.ok,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    /// Entries older than this are purged and never listed.
    retention_days: u64,
    /// This page, newest first.
    entries: Vec<AuditView>,
    /// Pass as `cursor` (with the same filters) for the next, older page; null on the last.
    next_cursor: Option<String>,
    counts: AuditCountsView,
}

/// A cursor as the API hands it out: opaque to callers (base64url of the position's
/// microseconds since the epoch and the entry id), so its form can change.
fn encode_cursor(position: AuditCursor) -> String {
    let text = format!("{}.{}", position.at.timestamp_micros(), position.id);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn decode_cursor(raw: &str) -> ApiResult<AuditCursor> {
    let invalid = || {
        ApiError::invalid(
            "cursor",
            "not a cursor of this audit log: pass `next_cursor` from the previous page as it was given",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim())
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (micros, id) = text.split_once('.').ok_or_else(invalid)?;
    // A made-up cursor may hold any number: only instants the audit log can hold go to the
    // database (PostgreSQL refuses years before 4713 BC).
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .filter(|at| (2000..2200).contains(&at.year()))
        .ok_or_else(invalid)?;
    let id = id.parse().map_err(|_| invalid())?;
    Ok(AuditCursor { at, id })
}

/// A `from` / `to` bound: an RFC 3339 time, or a day meaning its start in UTC.
fn parse_time_bound(field: &'static str, raw: &str) -> ApiResult<DateTime<Utc>> {
    let raw = raw.trim();
    let at = DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .map(|day| day.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| {
            ApiError::invalid(
                field,
                format!(
                    "`{raw}` is not a time: use RFC 3339 (2026-12-01T09:30:00Z) or a day (2026-12-01)"
                ),
            )
        })?;
    crate::routes::costs::in_range(field, raw, at.year())?;
    Ok(at)
}

/// The filter a query asks for, within the retention window (older entries are purged, and
/// never listed even before the purge runs).
fn audit_filter(query: &AuditQuery, retention: std::time::Duration) -> ApiResult<AuditFilter> {
    let status = match query.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(AuditStatus::parse(text).ok_or_else(|| {
            ApiError::invalid("status", "status must be succeeded, refused, failed or ok")
        })?),
    };
    let nonempty = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let bound = |field, raw: &Option<String>| {
        nonempty(raw)
            .map(|raw| parse_time_bound(field, &raw))
            .transpose()
    };
    let from = bound("from", &query.from)?;
    let to = bound("to", &query.to)?;
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(ApiError::invalid(
            "from",
            "`from` must be before `to` (`to` is exclusive)",
        ));
    }
    let retained_since = Utc::now()
        - chrono::Duration::from_std(retention).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(AuditFilter {
        user_email: nonempty(&query.user),
        action: nonempty(&query.action),
        status,
        from: from.map_or(retained_since, |from| from.max(retained_since)),
        to,
    })
}

/// The tenant's audit log a page at a time, newest first, with how many entries match in all
/// and per outcome. Owners and admins only.
#[utoipa::path(get, path = "/api/audit", tag = "actions", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = AuditList), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> ApiResult<ApiJson<AuditList>> {
    caller.require_manager("read the audit log")?;
    let limit = query.limit.unwrap_or(AUDIT_PAGE_DEFAULT);
    if !(1..=AUDIT_PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {AUDIT_PAGE_MAX}: page with `cursor` for more"),
        ));
    }
    let after = query
        .cursor
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .map(decode_cursor)
        .transpose()?;
    let retention = state.config.audit_retention;
    let filter = audit_filter(&query, retention)?;
    let page = state
        .store
        .audit_page(caller.tenant.id, &filter, after, limit)
        .await?;
    let counts = state.store.audit_counts(caller.tenant.id, &filter).await?;
    Ok(ApiJson(AuditList {
        retention_days: retention.as_secs() / 86_400,
        entries: page
            .entries
            .into_iter()
            .map(|e| AuditView {
                id: e.id,
                at: e.at,
                user_email: e.user_email,
                action: e.action,
                status: e.status.as_str().to_string(),
                detail: e.detail,
            })
            .collect(),
        next_cursor: page.next.map(encode_cursor),
        counts: counts.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn an_audited_request_is_kept_whole_only_when_small() {
        let small = json!({"instance_id": "i-0123456789abcdef0", "action": "stop"});
        assert_eq!(audited_request(small.clone()), small);
        let flood = json!({"instance_id": "i-1", "note": "x".repeat(1_000_000)});
        let kept = audited_request(flood);
        assert_eq!(kept["truncated"], true);
        assert!(kept["bytes"].as_u64().unwrap() > 1_000_000);
        assert_eq!(kept["fields"], json!(["instance_id", "note"]));
        assert!(serde_json::to_vec(&kept).unwrap().len() < AUDITED_REQUEST_BYTES);
    }

    #[test]
    fn an_audit_cursor_reads_back_as_the_position_it_was_made_from() {
        let position = AuditCursor {
            at: DateTime::from_timestamp_micros(1_764_900_000_123_456).unwrap(),
            id: uuid::Uuid::new_v4(),
        };
        assert_eq!(decode_cursor(&encode_cursor(position)).unwrap(), position);
        let far_past = URL_SAFE_NO_PAD.encode(format!("-6000000000000000000.{}", position.id));
        for bad in [
            "",
            "not base64!",
            "bm90IGEgY3Vyc29y",
            &URL_SAFE_NO_PAD.encode("12.not-a-uuid"),
            &far_past,
        ] {
            let err = decode_cursor(bad).unwrap_err();
            assert!(
                matches!(&err, ApiError::Invalid { field, .. } if field == "cursor"),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn audit_time_bounds_take_rfc3339_or_a_day_and_name_the_field_otherwise() {
        assert_eq!(
            parse_time_bound("from", "2026-12-01").unwrap(),
            DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap()
        );
        assert_eq!(
            parse_time_bound("to", "2026-12-01T10:30:00+01:00").unwrap(),
            DateTime::parse_from_rfc3339("2026-12-01T09:30:00Z").unwrap()
        );
        for (field, bad) in [
            ("from", "yesterday"),
            ("to", "9999-12-31"),
            ("to", "2026-13-01"),
        ] {
            let err = parse_time_bound(field, bad).unwrap_err();
            assert!(
                matches!(&err, ApiError::Invalid { field: f, .. } if f == field),
                "{bad}: {err:?}"
            );
        }
    }
}
