//! Stored cost and inventory reads: `GET /api/costs`, `GET /api/instances`,
//! `GET /api/instances/{id}/cpu`. Sums are exact (integer nano-units end to end).
//!
//! Source precedence: where the Cost and Usage Report covers a day, that day's figures come from
//! the CUR only; other days come from Cost Explorer. The two are never added together.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use cloudspend_core::Money;
use cloudspend_store::{CostGrouping, GroupedCosts};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(costs))
        .routes(routes!(instances))
        .routes(routes!(instance_cpu))
}

#[derive(Deserialize, IntoParams)]
pub struct CostsQuery {
    /// First day, YYYY-MM-DD (default: 30 days before `to`).
    from: Option<String>,
    /// Day after the last day, YYYY-MM-DD (exclusive; default: tomorrow, UTC).
    to: Option<String>,
    /// service (default), account, region, usage_type or tag:KEY (a cost allocation tag;
    /// rows of untagged resources group as "(untagged)").
    group_by: Option<String>,
    /// day (default) or month.
    granularity: Option<String>,
    /// json (default) or csv.
    format: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CostPoint {
    /// The day (YYYY-MM-DD) or month (YYYY-MM).
    period: String,
    key: String,
    amount: Money,
    /// Part of this amount is Cost Explorer's estimate and may still change.
    estimated: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CostGroup {
    key: String,
    total: Money,
}

#[derive(Serialize, ToSchema)]
pub struct CostsResponse {
    from: NaiveDate,
    to: NaiveDate,
    group_by: String,
    granularity: String,
    currency: String,
    /// Exact sum of every point.
    total: Money,
    /// Largest groups first.
    groups: Vec<CostGroup>,
    points: Vec<CostPoint>,
}

/// A `YYYY-MM-DD` query day, within [`in_range`].
pub(crate) fn parse_day(field: &'static str, raw: Option<&str>) -> ApiResult<Option<NaiveDate>> {
    raw.map(|s| {
        let day = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
            ApiError::bad_field(field, format!("`{s}` is not a date: use YYYY-MM-DD"))
        })?;
        in_range(field, s, day.year())?;
        Ok(day)
    })
    .transpose()
}

/// Query days and times are refused (422) outside 2000..2199: no cost data is that old or
/// new, and date arithmetic near chrono's limits would overflow.
pub(crate) fn in_range(field: &'static str, raw: &str, year: i32) -> ApiResult<()> {
    if (2000..2200).contains(&year) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("`{raw}` is out of range: use a day from 2000-01-01 to 2199-12-31"),
        ))
    }
}

/// The group of cost rows whose resource carries no value for the tag (and of rows with no
/// resource at all: Cost Explorer's, taxes, support).
const UNTAGGED: &str = "(untagged)";

/// Each resource's value for tag `key`: the CUR / FOCUS exports' tags, then EC2's own tags for
/// instances the exports do not tag.
async fn tag_values(
    state: &AppState,
    tenant: cloudspend_core::TenantId,
    key: &str,
) -> ApiResult<BTreeMap<String, String>> {
    let valid = !key.is_empty()
        && key.chars().count() <= 128
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || " _.:/=+-@".contains(c));
    if !valid {
        return Err(ApiError::invalid(
            "group_by",
            "tag:KEY needs a tag key of 1 to 128 letters, digits, spaces and _.:/=+-@",
        ));
    }
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for instance in state.store.instances(tenant).await? {
        if let Some(value) = instance.tags.get(key) {
            values.insert(instance.instance_id, value.clone());
        }
    }
    for (resource, tags) in state.store.resource_tags(tenant).await? {
        if let Some(value) = tags.get(key) {
            values.insert(resource, value.clone());
        }
    }
    Ok(values)
}

/// Costs over a window, grouped and bucketed; `format=csv` downloads the same points.
#[utoipa::path(get, path = "/api/costs", tag = "costs", security(("bearer" = [])), params(CostsQuery),
    responses((status = 200, body = CostsResponse), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn costs(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<CostsQuery>,
) -> ApiResult<Response> {
    let to = parse_day("to", query.to.as_deref())?
        .unwrap_or_else(|| state.config.clock.today() + Duration::days(1));
    let from = parse_day("from", query.from.as_deref())?.unwrap_or(to - Duration::days(30));
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
    let group_by = query.group_by.as_deref().unwrap_or("service");
    let grouping = match group_by {
        "service" => CostGrouping::Service,
        "account" => CostGrouping::Account,
        "region" => CostGrouping::Region,
        "usage_type" => CostGrouping::UsageType,
        // The resource id; mapped to the tag's value below.
        other if other.starts_with("tag:") => CostGrouping::Resource,
        _ => {
            return Err(ApiError::invalid(
                "group_by",
                "must be service, account, region, usage_type or tag:KEY",
            ));
        }
    };
    let tag_values = match group_by.strip_prefix("tag:") {
        Some(key) => Some(tag_values(&state, caller.tenant.id, key).await?),
        None => None,
    };
    let granularity = query.granularity.as_deref().unwrap_or("day");
    let monthly = match granularity {
        "day" => false,
        "month" => true,
        _ => return Err(ApiError::invalid("granularity", "must be day or month")),
    };
    let csv = match query.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        _ => return Err(ApiError::invalid("format", "must be json or csv")),
    };
    // Summed in the database: the server holds one row per period and key, at most
    // `costs_max_sums` of them, however many resource-level rows the window covers.
    let (sums, currency) = match state
        .store
        .grouped_costs(
            caller.tenant.id,
            from,
            to,
            grouping,
            monthly,
            state.config.costs_max_sums,
        )
        .await?
    {
        GroupedCosts::Rows { rows, currency } => (rows, currency.unwrap_or_else(|| "USD".into())),
        GroupedCosts::TooMany { cap } => {
            return Err(ApiError::invalid(
                "from",
                format!(
                    "this window holds more than {cap} {granularity}-by-{group_by} sums: narrow it \
                     (from/to), or ask granularity=month"
                ),
            ));
        }
    };
    let mut points: BTreeMap<(String, String), (Money, bool)> = BTreeMap::new();
    let mut groups: BTreeMap<String, Money> = BTreeMap::new();
    for sum in sums {
        let key = match (&tag_values, sum.key.as_str()) {
            (Some(values), resource) => values
                .get(resource)
                .cloned()
                .unwrap_or_else(|| UNTAGGED.to_string()),
            (None, "") => "(unattributed)".to_string(),
            (None, _) => sum.key,
        };
        let entry = points
            .entry((sum.period, key.clone()))
            .or_insert((Money::ZERO, false));
        entry.0 += sum.amount;
        entry.1 |= sum.estimated;
        *groups.entry(key).or_insert(Money::ZERO) += sum.amount;
    }
    let total: Money = groups.values().copied().sum();
    let mut groups: Vec<CostGroup> = groups
        .into_iter()
        .map(|(key, total)| CostGroup { key, total })
        .collect();
    groups.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.key.cmp(&b.key)));
    let points: Vec<CostPoint> = points
        .into_iter()
        .map(|((period, key), (amount, estimated))| CostPoint {
            period,
            key,
            amount,
            estimated,
        })
        .collect();
    if csv {
        let mut out = String::from("period,key,amount,estimated\n");
        for p in &points {
            out.push_str(&format!(
                "{},{},{},{}\n",
                p.period,
                csv_field(&p.key),
                p.amount,
                p.estimated
            ));
        }
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"cloudspend-costs.csv\"",
                ),
            ],
            out,
        )
            .into_response());
    }
    Ok(ApiJson(CostsResponse {
        from,
        to,
        group_by: group_by.to_string(),
        granularity: granularity.to_string(),
        currency,
        total,
        groups,
        points,
    })
    .into_response())
}

/// A text cell (a group key, which a tenant's tags and account names control). A leading
/// formula character is neutralised so a spreadsheet never runs it: `=`, `+`, `-`, `@`, and tab
/// and carriage return, which spreadsheets skip before looking for one.
fn csv_field(raw: &str) -> String {
    let guarded = if raw.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{raw}")
    } else {
        raw.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[derive(Serialize, ToSchema)]
pub struct InstanceView {
    instance_id: String,
    name: Option<String>,
    instance_type: String,
    state: String,
    region: String,
    account_id: String,
    availability_zone: String,
    platform: String,
    launch_time: Option<DateTime<Utc>>,
    last_seen_at: DateTime<Utc>,
    tags: BTreeMap<String, String>,
    /// Attached EBS volumes.
    volume_ids: Vec<String>,
    /// When the instance entered its current state, where AWS says.
    state_since: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct InstancesResponse {
    instances: Vec<InstanceView>,
}

/// The tenant's EC2 instances as last collected.
#[utoipa::path(get, path = "/api/instances", tag = "costs", security(("bearer" = [])),
    responses((status = 200, body = InstancesResponse), (status = 401, body = ErrorBody)))]
async fn instances(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<InstancesResponse>> {
    let instances = state.store.instances(caller.tenant.id).await?;
    Ok(ApiJson(InstancesResponse {
        instances: instances
            .into_iter()
            .map(|i| InstanceView {
                name: i.name().map(str::to_string),
                instance_id: i.instance_id,
                instance_type: i.instance_type,
                state: i.state,
                region: i.region,
                account_id: i.account_id,
                availability_zone: i.availability_zone,
                platform: i.platform,
                launch_time: i.launch_time,
                last_seen_at: i.last_seen_at,
                tags: i.tags,
                volume_ids: i.volume_ids,
                state_since: i.state_since,
            })
            .collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
pub struct CpuQuery {
    /// Start (RFC 3339 or YYYY-MM-DD); default 14 days before `to`.
    from: Option<String>,
    /// End, exclusive; default now.
    to: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CpuPointView {
    timestamp: DateTime<Utc>,
    average: f64,
    maximum: f64,
    unit: String,
    period_seconds: i64,
    /// The streaming metric detector's score (0..1) of this point given the ones before it in
    /// the answer; `anomaly` when it reaches the NAB-tuned threshold.
    anomaly_score: f64,
    anomaly: bool,
}

#[derive(Serialize, ToSchema)]
pub struct InstanceCpuResponse {
    instance_id: String,
    points: Vec<CpuPointView>,
}

fn parse_instant(field: &'static str, raw: Option<&str>) -> ApiResult<Option<DateTime<Utc>>> {
    raw.map(|s| {
        DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| {
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                    .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
            })
            .map_err(|_| {
                ApiError::bad_field(
                    field,
                    format!("`{s}` is not a time: use RFC 3339 or YYYY-MM-DD"),
                )
            })
            .and_then(|t| in_range(field, s, t.year()).map(|()| t))
    })
    .transpose()
}

/// Stored CPU utilisation of one of the tenant's instances, oldest first.
#[utoipa::path(get, path = "/api/instances/{instance_id}/cpu", tag = "costs", security(("bearer" = [])),
    params(("instance_id" = String, Path), CpuQuery),
    responses((status = 200, body = InstanceCpuResponse), (status = 404, body = ErrorBody)))]
async fn instance_cpu(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    Query(query): Query<CpuQuery>,
) -> ApiResult<ApiJson<InstanceCpuResponse>> {
    let to = parse_instant("to", query.to.as_deref())?.unwrap_or_else(Utc::now);
    let from = parse_instant("from", query.from.as_deref())?.unwrap_or(to - Duration::days(14));
    if from >= to {
        return Err(ApiError::invalid("from", "`from` must be before `to`"));
    }
    let known = state
        .store
        .instances(caller.tenant.id)
        .await?
        .into_iter()
        .any(|i| i.instance_id == instance_id);
    if !known {
        return Err(ApiError::not_found(format!("instance {instance_id}")));
    }
    let points = state
        .store
        .metric_points(caller.tenant.id, &instance_id, "CPUUtilization", from, to)
        .await?;
    // Tens of microseconds a point: a long window is seconds of CPU, which must not stall the
    // async workers serving everyone else.
    let values: Vec<f64> = points.iter().map(|p| p.average).collect();
    let scores =
        tokio::task::spawn_blocking(move || cloudspend_anomaly::metric::score_series(&values))
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("scoring CPU points: {e}")))?;
    Ok(ApiJson(InstanceCpuResponse {
        instance_id,
        points: points
            .into_iter()
            .zip(scores)
            .map(|(p, score)| CpuPointView {
                timestamp: p.timestamp,
                average: p.average,
                maximum: p.maximum,
                unit: p.unit,
                period_seconds: p.period_seconds,
                anomaly_score: (score * 1000.0).round() / 1000.0,
                anomaly: score >= cloudspend_anomaly::csv::METRIC_LABEL_THRESHOLD,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod csv_tests {
    use super::csv_field;

    #[test]
    fn formula_leaders_are_neutralised_tab_and_carriage_return_included() {
        for (raw, cell) in [
            ("=1+1", "'=1+1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=cmd", "'\t=cmd"),
            ("\r=cmd", "\"'\r=cmd\""),
            ("team,a", "\"team,a\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("Amazon EC2", "Amazon EC2"),
        ] {
            assert_eq!(csv_field(raw), cell, "{raw:?}");
        }
    }
}
