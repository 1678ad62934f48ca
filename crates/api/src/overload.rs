//! Bounds on what one burst of requests can take from everyone else: at most
//! [`ApiConfig::max_in_flight`](crate::ApiConfig) requests are served at once, and the rest are
//! answered 503 with Retry-After at once instead of queueing until memory runs out; and no
//! request runs longer than [`ApiConfig::request_timeout`](crate::ApiConfig) (answered 503, its
//! work dropped). Password hashing has its own, tighter bound (see `auth`).

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn bound(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Ok(_slot) = state.in_flight.clone().try_acquire_owned() else {
        // Counted here: these answers never reach a route, so the per-route counters miss them.
        metrics::counter!("http_requests_overloaded_total").increment(1);
        return ApiError::Overloaded {
            message: format!(
                "the server is answering {} requests already: try again in a second",
                state.config.max_in_flight
            ),
            retry_after_secs: 1,
        }
        .into_response();
    };
    let limit = state.config.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Overloaded {
            message: format!(
                "the request took longer than {} seconds and was stopped",
                limit.as_secs()
            ),
            retry_after_secs: 5,
        }
        .into_response(),
    }
}
