//! What the tenant comes for: `GET /api/dashboard`, anomalies and their status, and
//! recommendations. Every figure is read from the daily rollups (kept on write, one source per
//! day: the CUR where it covers the day, Cost Explorer otherwise), never from raw rows, so the
//! dashboard answers in milliseconds at any size.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::accounts::audit;
use crate::routes::costs::parse_day;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, Utc};
use cloudspend_core::{AnomalyId, Money, TenantId};
use cloudspend_insights::view::{AnomalyView, RecommendationView};
use cloudspend_store::{AnomalyFilter, AnomalyStatus, RollupDimension, RollupTotal};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(dashboard))
        .routes(routes!(list_anomalies))
        .routes(routes!(anomaly_coverage))
        .routes(routes!(get_anomaly))
        .routes(routes!(set_anomaly_status))
        .routes(routes!(list_recommendations))
}

/// Dashboards as served, by tenant, window and day, each with the tenant's data version it
/// was computed at. A hit costs one indexed read (the version) instead of a dozen queries; any
/// write to what the dashboard shows moves the version (on every replica), so a stale copy is
/// never served.
pub struct DashboardCache {
    entries: std::sync::Mutex<crate::byte_lru::ByteLru<DashboardKey>>,
}

type DashboardKey = (TenantId, NaiveDate, NaiveDate, NaiveDate);

/// What the cached dashboards may hold in all. A usual 30-day dashboard is a few kilobytes, a
/// three-year one about a megabyte: thousands of the first, and the server's memory stays
/// bounded however many tenants ask for long windows.
const DASHBOARD_CACHE_BYTES: usize = 32 << 20;

impl Default for DashboardCache {
    fn default() -> Self {
        Self {
            entries: std::sync::Mutex::new(crate::byte_lru::ByteLru::new(DASHBOARD_CACHE_BYTES)),
        }
    }
}

impl DashboardCache {
    fn get(&self, key: &DashboardKey, version: i64) -> Option<Bytes> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key, version)
    }

    fn put(&self, key: DashboardKey, version: i64, body: Bytes) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.put(key, version, body);
    }
}

/// Top N of a breakdown; the rest is one "Other" row.
const TOP_N: usize = 10;
/// Services drawn separately in the daily stacked series.
const STACKED_SERVICES: usize = 5;
/// Cost Explorer bills $0.01 per API request.
const CE_REQUEST_PRICE: Money = Money::from_nanos(10_000_000);

#[derive(Deserialize, IntoParams)]
pub struct WindowQuery {
    /// First day, YYYY-MM-DD (default: 30 days before `to`).
    from: Option<String>,
    /// Day after the last day, YYYY-MM-DD (exclusive; default: tomorrow, UTC).
    to: Option<String>,
}

fn window(query: &WindowQuery, today: NaiveDate) -> ApiResult<(NaiveDate, NaiveDate)> {
    let to = parse_day("to", query.to.as_deref())?.unwrap_or(today + Days::new(1));
    let from = parse_day("from", query.from.as_deref())?.unwrap_or(to - Days::new(30));
    if from >= to {
        return Err(ApiError::invalid(
            "from",
            "`from` must be before `to` (`to` is exclusive)",
        ));
    }
    if (to - from).num_days() > 3 * 366 + 31 {
        return Err(ApiError::invalid(
            "from",
            "the window may span at most about 3 years",
        ));
    }
    Ok((from, to))
}

#[derive(Serialize, ToSchema)]
pub struct Period {
    from: NaiveDate,
    to: NaiveDate,
    total: Money,
}

#[derive(Serialize, ToSchema)]
pub struct Forecast {
    /// YYYY-MM
    month: String,
    amount: Money,
    /// The ~90% interval around `amount` (both equal it once the month is over).
    lower: Money,
    upper: Money,
    /// The method in words: what counts as spent and how the days left are priced.
    method: String,
}

#[derive(Serialize, ToSchema)]
pub struct KeyAmount {
    key: String,
    amount: Money,
}

#[derive(Serialize, ToSchema)]
pub struct DailyPoint {
    day: NaiveDate,
    amount: Money,
    /// Part of the day is Cost Explorer's estimate and may still change.
    estimated: bool,
    /// The window's top services that day, then "Other": they add up to `amount`.
    by_service: Vec<KeyAmount>,
}

#[derive(Serialize, ToSchema)]
pub struct Breakdown {
    key: String,
    amount: Money,
    share_percent: f64,
}

#[derive(Serialize, ToSchema)]
pub struct InstanceSummary {
    total: i64,
    by_state: BTreeMap<String, i64>,
    by_type: BTreeMap<String, i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Findings {
    count: usize,
    monthly_savings: Money,
    findings: Vec<RecommendationView>,
}

#[derive(Serialize, ToSchema)]
pub struct Savings {
    count: usize,
    monthly_savings: Money,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAnomalies {
    open: i64,
    latest: Vec<AnomalyView>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionSummary {
    /// connected | degraded | failed | not_connected
    status: String,
    account_id: Option<String>,
    auth_method: Option<String>,
    last_verified_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CollectorStatus {
    collector: String,
    last_success_at: Option<DateTime<Utc>>,
    last_status: Option<String>,
    last_error: Option<String>,
    last_started_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct AwsApiUsage {
    /// YYYY-MM
    month: String,
    requests: i64,
    cost_explorer_requests: i64,
    /// Cost Explorer requests at $0.01 each; the other APIs CloudSpend calls are free.
    cost: Money,
}

#[derive(Serialize, ToSchema)]
pub struct DashboardResponse {
    from: NaiveDate,
    to: NaiveDate,
    currency: String,
    /// How each day's figure was chosen.
    source_rule: String,
    total: Money,
    previous: Period,
    change: Money,
    /// Null when the previous period cost nothing.
    change_percent: Option<f64>,
    month_to_date: Money,
    forecast: Forecast,
    daily: Vec<DailyPoint>,
    top_services: Vec<Breakdown>,
    top_accounts: Vec<Breakdown>,
    top_regions: Vec<Breakdown>,
    instances: InstanceSummary,
    idle: Findings,
    /// Every recommendation (idle and oversized).
    savings: Savings,
    anomalies: OpenAnomalies,
    connection: ConnectionSummary,
    collections: Vec<CollectorStatus>,
    aws_api_usage: AwsApiUsage,
    /// Set once the tenant has a budget.
    budget: Option<serde_json::Value>,
}

pub(crate) const SOURCE_RULE: &str = "Cost and Usage Report rows where the CUR covers a day, \
     Cost Explorer otherwise; never both";

fn top_with_other(totals: Vec<RollupTotal>, whole: Money) -> Vec<Breakdown> {
    let mut out: Vec<Breakdown> = Vec::new();
    let mut other = Money::ZERO;
    let mut others = 0;
    for (i, t) in totals.into_iter().enumerate() {
        if i < TOP_N {
            out.push(Breakdown {
                key: t.key,
                amount: t.amount,
                share_percent: cloudspend_insights::view::percent_of(t.amount, whole),
            });
        } else {
            other += t.amount;
            others += 1;
        }
    }
    if others > 0 {
        out.push(Breakdown {
            key: "Other".into(),
            amount: other,
            share_percent: cloudspend_insights::view::percent_of(other, whole),
        });
    }
    out
}

use cloudspend_insights::forecast::{history_from, month_forecast, month_start};

/// Totals, trend, forecast, breakdowns, inventory, findings and health for one window.
#[utoipa::path(get, path = "/api/dashboard", tag = "insights", security(("bearer" = [])), params(WindowQuery),
    responses((status = 200, body = DashboardResponse), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn dashboard(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<WindowQuery>,
) -> ApiResult<Response> {
    let now = state.config.clock.now();
    let today = now.date_naive();
    let (from, to) = window(&query, today)?;
    let key = (caller.tenant.id, from, to, today);
    // The version is read before the figures, so a write landing in between makes the
    // cached copy look older than it is (recomputed next time), never newer.
    // Read with the membership when the request was authenticated.
    let version = caller.tenant.data_version;
    let body = match state.dashboards.get(&key, version) {
        Some(body) => body,
        None => {
            let computed = compute_dashboard(&state, &caller, from, to, now).await?;
            let body = Bytes::from(serde_json::to_vec(&computed).map_err(anyhow::Error::from)?);
            state.dashboards.put(key, version, body.clone());
            body
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn compute_dashboard(
    state: &AppState,
    caller: &Caller,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> ApiResult<DashboardResponse> {
    let today = now.date_naive();
    let tenant = caller.tenant.id;
    let store = state.store.as_ref();
    let len = Days::new((to - from).num_days() as u64);
    let previous_from = from - len;
    let last_day = to - Days::new(1);
    let totals_from = previous_from.min(history_from(last_day));
    let usage_since = month_start(today)
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();

    let (total_days, services, accounts, regions) = tokio::try_join!(
        store.cost_rollup_days(tenant, RollupDimension::Total, totals_from, to, None),
        store.cost_rollup_totals(tenant, RollupDimension::Service, from, to),
        store.cost_rollup_totals(tenant, RollupDimension::Account, from, to),
        store.cost_rollup_totals(tenant, RollupDimension::Region, from, to),
    )?;
    let stacked: Vec<String> = services
        .iter()
        .take(STACKED_SERVICES)
        .map(|t| t.key.clone())
        .collect();
    let open_filter = AnomalyFilter {
        status: Some(AnomalyStatus::Open),
        limit: 5,
        ..Default::default()
    };
    let (service_days, counts, recommendations, open, latest, connection, health, usage) = tokio::try_join!(
        store.cost_rollup_days(tenant, RollupDimension::Service, from, to, Some(&stacked)),
        store.instance_counts(tenant),
        store.recommendations(tenant),
        store.count_anomalies(tenant, AnomalyStatus::Open),
        store.anomalies(tenant, &open_filter),
        store.connection(tenant),
        store.collector_health(tenant),
        store.aws_usage_since(tenant, usage_since),
    )?;

    let by_day: BTreeMap<NaiveDate, (Money, bool)> = total_days
        .into_iter()
        .map(|r| (r.day, (r.amount, r.estimated)))
        .collect();
    let sum =
        |a: NaiveDate, b: NaiveDate| -> Money { by_day.range(a..b).map(|(_, (m, _))| *m).sum() };
    let total = sum(from, to);
    let previous_total = sum(previous_from, from);
    let month = month_forecast(&by_day, last_day, today);
    let (month_to_date, forecast) = (
        month.month_to_date,
        Forecast {
            month: month.month,
            amount: month.forecast,
            lower: month.lower,
            upper: month.upper,
            method: month.method,
        },
    );

    let mut per_day_services: HashMap<NaiveDate, Vec<KeyAmount>> = HashMap::new();
    for r in service_days {
        per_day_services.entry(r.day).or_default().push(KeyAmount {
            key: r.key,
            amount: r.amount,
        });
    }
    let daily = from
        .iter_days()
        .take_while(|d| *d < to)
        .map(|day| {
            let (amount, estimated) = by_day.get(&day).copied().unwrap_or((Money::ZERO, false));
            let mut by_service = per_day_services.remove(&day).unwrap_or_default();
            by_service.sort_by(|a, b| {
                let rank = |k: &str| stacked.iter().position(|s| s == k);
                rank(&a.key).cmp(&rank(&b.key))
            });
            let stacked_sum: Money = by_service.iter().map(|k| k.amount).sum();
            if amount != stacked_sum {
                by_service.push(KeyAmount {
                    key: "Other".into(),
                    amount: amount - stacked_sum,
                });
            }
            DailyPoint {
                day,
                amount,
                estimated,
                by_service,
            }
        })
        .collect();

    let views: Vec<RecommendationView> = recommendations
        .iter()
        .filter_map(RecommendationView::from_record)
        .collect();
    let idle: Vec<&RecommendationView> = views.iter().filter(|v| v.kind == "idle").collect();
    let mut by_state = BTreeMap::new();
    let mut by_type = BTreeMap::new();
    let mut instance_total = 0;
    for c in counts {
        *by_state.entry(c.state.clone()).or_insert(0) += c.count;
        if c.state != "terminated" {
            *by_type.entry(c.instance_type.clone()).or_insert(0) += c.count;
        }
        instance_total += c.count;
    }

    Ok(DashboardResponse {
        from,
        to,
        currency: "USD".into(),
        source_rule: SOURCE_RULE.into(),
        total,
        previous: Period {
            from: previous_from,
            to: from,
            total: previous_total,
        },
        change: total - previous_total,
        change_percent: (previous_total != Money::ZERO).then(|| {
            let pct = (total - previous_total).nanos() as f64 / previous_total.abs().nanos() as f64;
            (pct * 10000.0).round() / 100.0
        }),
        month_to_date,
        forecast,
        daily,
        top_services: top_with_other(services, total),
        top_accounts: top_with_other(accounts, total),
        top_regions: top_with_other(regions, total),
        instances: InstanceSummary {
            total: instance_total,
            by_state,
            by_type,
        },
        idle: Findings {
            count: idle.len(),
            monthly_savings: idle.iter().map(|v| v.monthly_savings).sum(),
            findings: idle.iter().take(5).map(|v| (*v).clone()).collect(),
        },
        savings: Savings {
            count: views.len(),
            monthly_savings: views.iter().map(|v| v.monthly_savings).sum(),
        },
        anomalies: OpenAnomalies {
            open,
            latest: latest.iter().map(AnomalyView::from).collect(),
        },
        connection: match connection {
            Some(c) => ConnectionSummary {
                status: c.status.as_str().to_string(),
                account_id: Some(c.account_id.clone()),
                auth_method: Some(c.auth.method().to_string()),
                last_verified_at: c.last_verified_at,
                last_error: c.last_error.clone(),
            },
            None => ConnectionSummary {
                status: "not_connected".into(),
                account_id: None,
                auth_method: None,
                last_verified_at: None,
                last_error: None,
            },
        },
        collections: health
            .into_iter()
            .map(|h| CollectorStatus {
                collector: h.collector,
                last_success_at: h.last_success_at,
                last_status: Some(h.last_run.status.as_str().to_string()),
                last_error: h.last_run.error,
                last_started_at: Some(h.last_run.started_at),
            })
            .collect(),
        aws_api_usage: AwsApiUsage {
            month: format!("{:04}-{:02}", today.year(), today.month()),
            requests: usage.requests,
            cost_explorer_requests: usage.ce_requests,
            cost: Money::from_nanos(CE_REQUEST_PRICE.nanos() * usage.ce_requests),
        },
        budget: cloudspend_insights::budgets::dashboard_value(store, tenant, today).await?,
    })
}

#[derive(Deserialize, IntoParams)]
pub struct AnomaliesQuery {
    /// open | acknowledged | resolved | planned (default: all).
    status: Option<String>,
    /// Anomalies still going on or after this day, YYYY-MM-DD.
    from: Option<String>,
    /// Anomalies that began before this day, YYYY-MM-DD.
    to: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AnomaliesResponse {
    anomalies: Vec<AnomalyView>,
}

fn parse_status(field: &'static str, raw: &str) -> ApiResult<AnomalyStatus> {
    raw.parse().map_err(|e: String| ApiError::invalid(field, e))
}

/// The tenant's cost anomalies, newest first.
#[utoipa::path(get, path = "/api/anomalies", tag = "insights", security(("bearer" = [])), params(AnomaliesQuery),
    responses((status = 200, body = AnomaliesResponse), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_anomalies(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AnomaliesQuery>,
) -> ApiResult<ApiJson<AnomaliesResponse>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let filter = AnomalyFilter {
        status: query
            .status
            .as_deref()
            .map(|s| parse_status("status", s))
            .transpose()?,
        from: parse_day("from", query.from.as_deref())?,
        to: parse_day("to", query.to.as_deref())?,
        limit,
    };
    let found = state.store.anomalies(caller.tenant.id, &filter).await?;
    Ok(ApiJson(AnomaliesResponse {
        anomalies: found.iter().map(AnomalyView::from).collect(),
    }))
}

/// One cost series the detector watches, and whether it has enough history to be judged.
#[derive(Serialize, ToSchema)]
pub struct SeriesCoverage {
    /// total | service:NAME | account:ID | region:NAME
    series: String,
    /// scored | insufficient_history
    status: &'static str,
    /// For insufficient_history: the days that teach the detector the series' weekly pattern
    /// (final, not a credit, and not the 1st of a month, which is judged by its own month-start
    /// rule), and how many it needs before it says anything.
    days: Option<usize>,
    required: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct CoverageResponse {
    /// How many series are judged, and how many are not yet.
    scored: usize,
    insufficient_history: usize,
    /// Series with insufficient history first, then by name.
    series: Vec<SeriesCoverage>,
}

/// Which of the tenant's cost series (total, each service, account, region) the anomaly
/// detector can judge, and which have too little history yet: those are not guessed at.
#[utoipa::path(get, path = "/api/anomalies/series", tag = "insights", security(("bearer" = [])),
    responses((status = 200, body = CoverageResponse), (status = 401, body = ErrorBody)))]
async fn anomaly_coverage(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<CoverageResponse>> {
    use cloudspend_anomaly::SeriesStatus;
    let mut series: Vec<SeriesCoverage> = cloudspend_insights::anomalies::coverage(
        state.store.as_ref(),
        caller.tenant.id,
        state.config.clock.now(),
    )
    .await?
    .into_iter()
    .map(|(series, status)| match status {
        SeriesStatus::Scored => SeriesCoverage {
            series,
            status: "scored",
            days: None,
            required: None,
        },
        SeriesStatus::InsufficientHistory { days, required } => SeriesCoverage {
            series,
            status: "insufficient_history",
            days: Some(days),
            required: Some(required),
        },
    })
    .collect();
    series
        .sort_by(|a, b| (a.status == "scored", &a.series).cmp(&(b.status == "scored", &b.series)));
    let scored = series.iter().filter(|s| s.status == "scored").count();
    Ok(ApiJson(CoverageResponse {
        scored,
        insufficient_history: series.len() - scored,
        series,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct SeriesDay {
    day: NaiveDate,
    actual: Money,
    /// Null on days the detector did not score (too little history, estimated, credits).
    expected: Option<Money>,
    lower: Option<Money>,
    upper: Option<Money>,
    estimated: bool,
    anomalous: bool,
    /// Why the day was or was not scored: scored | warmup | estimated | credit |
    /// first_of_month_unlearned | planned (within a week of a change the tenant marked planned:
    /// not scored, the series is then judged against its new level).
    #[schema(value_type = String)]
    status: cloudspend_anomaly::DayStatus,
}

#[derive(Serialize, ToSchema)]
pub struct AnomalyDetail {
    anomaly: AnomalyView,
    /// The series around the anomaly (30 days before to 14 after) with the expected band.
    series: Vec<SeriesDay>,
}

fn anomaly_id(raw: &str) -> ApiResult<AnomalyId> {
    raw.parse::<uuid::Uuid>()
        .map(AnomalyId)
        .map_err(|_| ApiError::bad_field("id", format!("`{raw}` is not an anomaly id (a UUID)")))
}

async fn find_anomaly(
    state: &AppState,
    tenant: TenantId,
    id: AnomalyId,
) -> ApiResult<cloudspend_store::StoredAnomaly> {
    state
        .store
        .anomaly(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("anomaly {}", id.0)))
}

/// One anomaly with its series and expected band, for a chart.
#[utoipa::path(get, path = "/api/anomalies/{id}", tag = "insights", security(("bearer" = [])),
    params(("id" = String, Path, description = "anomaly id")),
    responses((status = 200, body = AnomalyDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_anomaly(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<AnomalyDetail>> {
    let anomaly = find_anomaly(&state, caller.tenant.id, anomaly_id(&id)?).await?;
    let report = cloudspend_insights::anomalies::series_report(
        state.store.as_ref(),
        caller.tenant.id,
        &anomaly.detection.series,
        state.config.clock.now(),
    )
    .await?;
    let first = anomaly.detection.first_day - Duration::days(30);
    let last = anomaly.detection.last_day + Duration::days(14);
    let series = report
        .map(|r| {
            r.days
                .into_iter()
                .filter(|d| d.day >= first && d.day <= last)
                .map(|d| SeriesDay {
                    day: d.day,
                    actual: d.actual,
                    expected: d.expected,
                    lower: d.lower,
                    upper: d.upper,
                    estimated: matches!(d.status, cloudspend_anomaly::DayStatus::Estimated),
                    anomalous: d.anomalous,
                    status: d.status,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ApiJson(AnomalyDetail {
        anomaly: AnomalyView::from(&anomaly),
        series,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// open | acknowledged | resolved | planned
    status: String,
}

/// Records the user's verdict on an anomaly (acknowledged, resolved, planned activity), or
/// reopens it. Owners and admins only.
#[utoipa::path(post, path = "/api/anomalies/{id}/status", tag = "insights", security(("bearer" = [])),
    params(("id" = String, Path, description = "anomaly id")), request_body = StatusRequest,
    responses((status = 200, body = AnomalyView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_anomaly_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<StatusRequest>,
) -> ApiResult<ApiJson<AnomalyView>> {
    let id = anomaly_id(&id)?;
    caller.require_manager("change an anomaly's status")?;
    let status = parse_status("status", &req.status)?;
    let before = find_anomaly(&state, caller.tenant.id, id).await?;
    let after = state
        .store
        .set_anomaly_status(caller.tenant.id, id, status, state.config.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("anomaly {}", id.0)))?;
    audit(
        &state,
        &caller.user,
        Some(caller.tenant.id),
        "anomaly.status",
        serde_json::json!({
            "anomaly_id": id.0,
            "series": before.detection.series,
            "from": before.status.as_str(),
            "to": status.as_str(),
        }),
    )
    .await?;
    Ok(ApiJson(AnomalyView::from(&after)))
}

#[derive(Serialize, ToSchema)]
pub struct RecommendationsResponse {
    currency: String,
    total_monthly_savings: Money,
    recommendations: Vec<RecommendationView>,
}

/// Idle and oversized running instances (CPU p95 over the last 14 days, at least 30 hours of
/// data), largest savings first.
#[utoipa::path(get, path = "/api/recommendations", tag = "insights", security(("bearer" = [])),
    responses((status = 200, body = RecommendationsResponse), (status = 401, body = ErrorBody)))]
async fn list_recommendations(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<RecommendationsResponse>> {
    let views: Vec<RecommendationView> = state
        .store
        .recommendations(caller.tenant.id)
        .await?
        .iter()
        .filter_map(RecommendationView::from_record)
        .collect();
    Ok(ApiJson(RecommendationsResponse {
        currency: "USD".into(),
        total_monthly_savings: views.iter().map(|v| v.monthly_savings).sum(),
        recommendations: views,
    }))
}
