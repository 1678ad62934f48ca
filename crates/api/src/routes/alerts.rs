//! Alert subscriptions: who hears about anomalies, how (signed webhook or e-mail), how big an
//! anomaly must be, and how often (immediately or a daily digest); plus the delivery log.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::accounts::audit;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use cloudspend_core::{Money, validate};
use cloudspend_store::{Delivery, NewDelivery, NewSubscription, StoreError, Subscription};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_subscriptions, create_subscription))
        .routes(routes!(delete_subscription))
        .routes(routes!(test_subscription))
        .routes(routes!(list_deliveries))
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionView {
    #[schema(value_type = String, format = Uuid)]
    id: uuid::Uuid,
    name: String,
    /// webhook | email
    channel: String,
    target: String,
    /// absolute | percent
    threshold_kind: String,
    threshold: String,
    /// immediate | daily
    frequency: String,
    created_at: DateTime<Utc>,
    last_digest_at: Option<DateTime<Utc>>,
    /// Only in the answer to the POST that created it: the HMAC-SHA256 key webhooks are
    /// signed with (`X-CloudSpend-Signature: sha256=<hex>` of the body). Not shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_secret: Option<String>,
}

impl From<Subscription> for SubscriptionView {
    fn from(s: Subscription) -> Self {
        SubscriptionView {
            id: s.id,
            name: s.name,
            channel: s.channel,
            target: s.target,
            threshold_kind: s.threshold_kind,
            threshold: s.threshold,
            frequency: s.frequency,
            created_at: s.created_at,
            last_digest_at: s.last_digest_at,
            signing_secret: None,
        }
    }
}

/// A webhook URL as viewers and the audit log see it: scheme, host and port only. The path and
/// query of a webhook are often its credential (a chat service's hook token), which only the
/// owners and admins who manage subscriptions need.
fn masked_target(channel: &str, target: &str) -> String {
    if channel != "webhook" {
        return target.to_string();
    }
    match reqwest::Url::parse(target) {
        Ok(url) => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}/…",
                url.scheme(),
                url.host_str().unwrap_or("?")
            )
        }
        Err(_) => "(hidden)".to_string(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionsResponse {
    subscriptions: Vec<SubscriptionView>,
}

/// The tenant's alert subscriptions.
#[utoipa::path(get, path = "/api/alerts/subscriptions", tag = "alerts", security(("bearer" = [])),
    responses((status = 200, body = SubscriptionsResponse), (status = 401, body = ErrorBody)))]
async fn list_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<SubscriptionsResponse>> {
    let subscriptions = state.store.subscriptions(caller.tenant.id).await?;
    let manager = caller.role.can_manage();
    Ok(ApiJson(SubscriptionsResponse {
        subscriptions: subscriptions
            .into_iter()
            .map(SubscriptionView::from)
            .map(|mut view| {
                if !manager {
                    view.target = masked_target(&view.channel, &view.target);
                }
                view
            })
            .collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    name: String,
    /// webhook | email
    channel: String,
    /// An http(s) URL for webhooks, an address for e-mail.
    target: String,
    /// absolute (a money amount of impact) | percent (of the expected cost)
    threshold_kind: String,
    /// A decimal string: "100.00" for absolute, "20" for percent.
    threshold: String,
    /// immediate | daily
    frequency: Option<String>,
}

fn validate_webhook_url(
    raw: &str,
    egress: &cloudspend_insights::egress::EgressPolicy,
) -> ApiResult<String> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| {
        ApiError::invalid(
            "target",
            format!("`{raw}` is not a URL ({e}): use https://..."),
        )
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(ApiError::invalid(
            "target",
            "a webhook target must be an http:// or https:// URL with a host",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::invalid(
            "target",
            "put no credentials in the URL: verify deliveries with the signing secret instead",
        ));
    }
    egress
        .check_url(&url)
        .map_err(|e| ApiError::invalid("target", e))?;
    Ok(url.to_string())
}

/// Subscribes a webhook or an e-mail address to anomaly alerts. Owners and admins only. The
/// answer carries the webhook signing secret, once.
#[utoipa::path(post, path = "/api/alerts/subscriptions", tag = "alerts", security(("bearer" = [])),
    request_body = CreateSubscription,
    responses((status = 201, body = SubscriptionView), (status = 403, body = ErrorBody),
        (status = 409, description = "the tenant has as many subscriptions as it may (`subscription_limit`)", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_subscription(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateSubscription>,
) -> ApiResult<(StatusCode, ApiJson<SubscriptionView>)> {
    caller.require_manager("manage alert subscriptions")?;
    let name = req.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid(
            "name",
            "give the subscription a name of 1 to 100 characters",
        ));
    }
    let target = match req.channel.as_str() {
        "webhook" => validate_webhook_url(&req.target, &state.config.egress)?,
        "email" if !state.config.smtp_configured => {
            return Err(ApiError::invalid(
                "channel",
                "e-mail alerts need SMTP on the server (CLOUDSPEND_SMTP_URL); use a webhook, or ask the operator to configure SMTP",
            ));
        }
        "email" => validate::email("target", &req.target)?,
        _ => return Err(ApiError::invalid("channel", "must be webhook or email")),
    };
    let threshold = match req.threshold_kind.as_str() {
        "absolute" => {
            let amount: Money = req.threshold.trim().parse().map_err(|_| {
                ApiError::invalid(
                    "threshold",
                    "an absolute threshold is an amount such as \"100.00\"",
                )
            })?;
            if amount.is_negative() {
                return Err(ApiError::invalid("threshold", "must not be negative"));
            }
            amount.to_string()
        }
        "percent" => {
            let pct: f64 = req.threshold.trim().parse().map_err(|_| {
                ApiError::invalid(
                    "threshold",
                    "a percent threshold is a number such as \"20\"",
                )
            })?;
            if !(0.0..=100_000.0).contains(&pct) {
                return Err(ApiError::invalid(
                    "threshold",
                    "must be between 0 and 100000 percent",
                ));
            }
            req.threshold.trim().to_string()
        }
        _ => {
            return Err(ApiError::invalid(
                "threshold_kind",
                "must be absolute or percent",
            ));
        }
    };
    let frequency = req.frequency.as_deref().unwrap_or("immediate");
    if !matches!(frequency, "immediate" | "daily") {
        return Err(ApiError::invalid("frequency", "must be immediate or daily"));
    }
    let key = state
        .collections
        .master_key()
        .ok_or_else(|| ApiError::Unavailable {
            code: "no_master_key",
            message: "the server has no master key (CLOUDSPEND_MASTER_KEY) to keep signing secrets"
                .into(),
        })?;
    let secret = cloudspend_insights::alerts::new_signing_secret();
    let sealed = key.seal(caller.tenant.id, &SecretString::from(secret.clone()));
    let limit = state.config.max_subscriptions_per_tenant;
    let created = state
        .store
        .create_subscription(
            caller.tenant.id,
            NewSubscription {
                name,
                channel: req.channel.clone(),
                target,
                threshold_kind: req.threshold_kind.clone(),
                threshold,
                frequency: frequency.to_string(),
                secret_ciphertext: sealed,
                created_by: Some(caller.user.id),
                created_at: Utc::now(),
            },
            limit,
        )
        .await
        .map_err(|err| match err {
            StoreError::LimitReached { limit, .. } => ApiError::Conflict {
                code: "subscription_limit",
                message: format!(
                    "this tenant has {limit} alert subscriptions, the most it may have: delete one \
                     it no longer needs, or send several alerts to one target"
                ),
                field: None,
            },
            other => other.into(),
        })?;
    audit(
        &state,
        &caller.user,
        Some(caller.tenant.id),
        "alert.subscription.create",
        serde_json::json!({
            "subscription_id": created.id,
            "channel": created.channel,
            "target": masked_target(&created.channel, &created.target),
            "threshold_kind": created.threshold_kind,
            "threshold": created.threshold,
            "frequency": created.frequency,
        }),
    )
    .await?;
    let mut view = SubscriptionView::from(created);
    view.signing_secret = Some(secret);
    Ok((StatusCode::CREATED, ApiJson(view)))
}

fn subscription_id(raw: &str) -> ApiResult<uuid::Uuid> {
    raw.parse().map_err(|_| {
        ApiError::bad_field("id", format!("`{raw}` is not a subscription id (a UUID)"))
    })
}

/// Removes a subscription and its delivery log. Owners and admins only.
#[utoipa::path(delete, path = "/api/alerts/subscriptions/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path, description = "subscription id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = subscription_id(&id)?;
    caller.require_manager("manage alert subscriptions")?;
    if !state
        .store
        .delete_subscription(caller.tenant.id, id)
        .await?
    {
        return Err(ApiError::not_found(format!("alert subscription {id}")));
    }
    audit(
        &state,
        &caller.user,
        Some(caller.tenant.id),
        "alert.subscription.delete",
        serde_json::json!({ "subscription_id": id }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queues a test alert to the subscription (delivered within seconds; see the delivery log).
/// Owners and admins, `alert_tests_per_hour` (20) an hour per tenant.
#[utoipa::path(post, path = "/api/alerts/subscriptions/{id}/test", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path, description = "subscription id")),
    responses((status = 202), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, description = "the tenant's hourly allowance of test alerts is used up", body = ErrorBody)))]
async fn test_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = subscription_id(&id)?;
    caller.require_manager("test alert subscriptions")?;
    let subscription = state
        .store
        .subscriptions(caller.tenant.id)
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| ApiError::not_found(format!("alert subscription {id}")))?;
    // Every test is a delivery the senders make for the tenant: a bounded number an hour, so
    // a script looping on this button cannot queue work without end.
    state
        .limits
        .alert_test
        .try_acquire(&caller.tenant.id.to_string())
        .map_err(|wait| {
            ApiError::too_many(
                format_args!(
                    "test alerts are limited to {} an hour per tenant",
                    state.config.alert_tests_per_hour
                ),
                wait,
            )
        })?;
    let now = Utc::now();
    state
        .store
        .enqueue_deliveries(
            caller.tenant.id,
            &[NewDelivery {
                subscription_id: subscription.id,
                kind: "test".into(),
                subject_key: format!("test:{}", uuid::Uuid::new_v4()),
                payload: serde_json::json!({
                    "event": "test",
                    "tenant_id": caller.tenant.id,
                    "subscription": {"id": subscription.id, "name": subscription.name},
                    "message": "CloudSpend test alert: this subscription works.",
                }),
                next_attempt_at: now,
            }],
        )
        .await?;
    audit(
        &state,
        &caller.user,
        Some(caller.tenant.id),
        "alert.subscription.test",
        serde_json::json!({ "subscription_id": id }),
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    #[schema(value_type = String, format = Uuid)]
    id: uuid::Uuid,
    #[schema(value_type = String, format = Uuid)]
    subscription_id: uuid::Uuid,
    /// anomaly | digest | test
    kind: String,
    subject: String,
    /// pending | delivered | failed
    status: String,
    attempts: i64,
    next_attempt_at: Option<DateTime<Utc>>,
    response_code: Option<i64>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        let pending = d.status == cloudspend_store::DeliveryStatus::Pending;
        DeliveryView {
            id: d.id,
            subscription_id: d.subscription_id,
            kind: d.kind,
            subject: d.subject_key,
            status: d.status.as_str().to_string(),
            attempts: d.attempts,
            next_attempt_at: pending.then_some(d.next_attempt_at),
            response_code: d.response_code,
            error: d.last_error,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveriesResponse {
    deliveries: Vec<DeliveryView>,
}

#[derive(Deserialize, IntoParams)]
pub struct DeliveriesQuery {
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<i64>,
}

/// The delivery log: every alert, its attempts and the endpoint's answers.
#[utoipa::path(get, path = "/api/alerts/deliveries", tag = "alerts", security(("bearer" = [])), params(DeliveriesQuery),
    responses((status = 200, body = DeliveriesResponse), (status = 422, body = ErrorBody)))]
async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<DeliveriesQuery>,
) -> ApiResult<ApiJson<DeliveriesResponse>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let deliveries = state.store.deliveries(caller.tenant.id, limit).await?;
    Ok(ApiJson(DeliveriesResponse {
        deliveries: deliveries.into_iter().map(DeliveryView::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::masked_target;

    #[test]
    fn webhook_targets_show_only_scheme_host_and_port() {
        assert_eq!(
            masked_target(
                "webhook",
                "https://hooks.example.com/services/T000/B000/XXXX?x=1"
            ),
            "https://hooks.example.com/…"
        );
        assert_eq!(
            masked_target("webhook", "http://127.0.0.1:8080/hook"),
            "http://127.0.0.1:8080/…"
        );
        assert_eq!(masked_target("email", "ops@example.com"), "ops@example.com");
    }
}
