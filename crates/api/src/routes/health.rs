//! Liveness, readiness and Prometheus metrics.

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use std::time::Duration;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
}

/// The process is up. Says nothing about the database: see `/readyz`.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Ready {
    status: &'static str,
    database: &'static str,
}

/// Ready to serve: the database answered a round trip within two seconds.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Ready),
    (status = 503, description = "database unreachable", body = ErrorBody),
))]
async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Ready>, ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(axum::Json(Ready {
            status: "ready",
            database: "ok",
        })),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness check failed");
            Err(ApiError::Unavailable {
                code: "database_unavailable",
                message: "the database is not reachable".into(),
            })
        }
        Err(_) => Err(ApiError::Unavailable {
            code: "database_unavailable",
            message: "the database did not answer within 2 seconds".into(),
        }),
    }
}

/// Prometheus text exposition: request counts and latencies by route and status. With
/// `CLOUDSPEND_METRICS_TOKEN` set, only a scraper sending it as a bearer token is answered.
#[utoipa::path(get, path = "/metrics", tag = "health", security((), ("bearer" = [])),
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = ErrorBody)))]
async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(expected) = &state.config.metrics_token_hash {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(crate::auth::token_hash);
        // Compared as hashes: equal length, and the secret itself is never compared.
        if given.as_deref() != Some(expected.as_str()) {
            return Err(ApiError::Unauthorized {
                code: "invalid_token",
                message:
                    "/metrics needs the scrape token (CLOUDSPEND_METRICS_TOKEN) as a bearer token"
                        .into(),
            });
        }
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::render_metrics(),
    ))
}
