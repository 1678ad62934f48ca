//! The tenant's monthly budget: amount and alert thresholds (percent of the amount, for the
//! month-to-date spend and for the month-end forecast), with where the month stands. Crossing a
//! threshold queues an alert to the tenant's subscriptions (see `cloudspend_insights::budgets`).

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::actions::audited;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use cloudspend_core::Money;
use cloudspend_insights::budgets::{self, BudgetStatus};
use cloudspend_store::Budget;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_budget, put_budget, delete_budget))
}

#[derive(Serialize, ToSchema)]
pub struct BudgetResponse {
    /// Null when the tenant has no budget.
    budget: Option<BudgetStatus>,
}

#[derive(Deserialize, ToSchema)]
pub struct BudgetRequest {
    /// Monthly amount in USD, a decimal string above 0 ("1000.00").
    amount: String,
    /// Percents of the amount that alert when the month-to-date spend reaches them
    /// (1 to 1000, at most 10; default [50, 80, 100]).
    actual_thresholds: Option<Vec<u32>>,
    /// Percents of the amount that alert when the month-end forecast reaches them (default [100]).
    forecast_thresholds: Option<Vec<u32>>,
}

fn thresholds(
    field: &'static str,
    given: Option<Vec<u32>>,
    default: &[u32],
) -> ApiResult<Vec<u32>> {
    let mut list = given.unwrap_or_else(|| default.to_vec());
    if list.len() > 10 || list.iter().any(|t| !(1..=1000).contains(t)) {
        return Err(ApiError::invalid(
            field,
            format!("{field} holds at most 10 whole percents, each from 1 to 1000"),
        ));
    }
    list.sort_unstable();
    list.dedup();
    Ok(list)
}

/// The budget and this month's spend and forecast against it.
#[utoipa::path(get, path = "/api/budgets", tag = "actions", security(("bearer" = [])),
    responses((status = 200, body = BudgetResponse)))]
async fn get_budget(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<BudgetResponse>> {
    let budget = budgets::status(
        state.store.as_ref(),
        caller.tenant.id,
        state.config.clock.today(),
    )
    .await?;
    Ok(ApiJson(BudgetResponse { budget }))
}

/// Sets the monthly budget (replacing any), then checks it at once: a threshold already
/// crossed alerts now. Owners and admins only.
#[utoipa::path(put, path = "/api/budgets", tag = "actions", security(("bearer" = [])),
    request_body = BudgetRequest,
    responses((status = 200, body = BudgetResponse), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_budget(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<BudgetRequest>,
) -> ApiResult<ApiJson<BudgetResponse>> {
    let request = json!({"amount": req.amount, "actual_thresholds": req.actual_thresholds,
                         "forecast_thresholds": req.forecast_thresholds});
    audited(&state, &caller, "budget.update", request, async {
        caller.require_manager("set the budget")?;
        let amount: Money = req.amount.trim().parse().map_err(|_| {
            ApiError::invalid(
                "amount",
                "amount must be a decimal amount such as \"1000.00\"",
            )
        })?;
        if amount <= Money::ZERO {
            return Err(ApiError::invalid("amount", "amount must be above 0"));
        }
        let actual = thresholds(
            "actual_thresholds",
            req.actual_thresholds.clone(),
            &[50, 80, 100],
        )?;
        let forecast = thresholds(
            "forecast_thresholds",
            req.forecast_thresholds.clone(),
            &[100],
        )?;
        let now = state.config.clock.now();
        state
            .store
            .put_budget(
                caller.tenant.id,
                &Budget {
                    amount,
                    currency: "USD".into(),
                    actual_thresholds: actual.clone(),
                    forecast_thresholds: forecast.clone(),
                    alerted: Default::default(),
                    updated_by: Some(caller.user.id),
                    updated_at: now,
                },
            )
            .await?;
        let queued = budgets::check(state.store.as_ref(), caller.tenant.id, now).await?;
        Ok(((), json!({"amount": amount, "alerts_queued": queued})))
    })
    .await?;
    let budget = budgets::status(
        state.store.as_ref(),
        caller.tenant.id,
        state.config.clock.today(),
    )
    .await?;
    Ok(ApiJson(BudgetResponse { budget }))
}

/// Removes the budget. Owners and admins only.
#[utoipa::path(delete, path = "/api/budgets", tag = "actions", security(("bearer" = [])),
    responses((status = 204, description = "removed"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_budget(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    audited(&state, &caller, "budget.delete", json!({}), async {
        caller.require_manager("remove the budget")?;
        if !state.store.delete_budget(caller.tenant.id).await? {
            return Err(ApiError::not_found("budget"));
        }
        Ok(((), json!({})))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
