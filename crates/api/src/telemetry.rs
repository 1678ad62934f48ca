//! Logs, metrics and request ids.
//!
//! Each request gets an `x-request-id` (kept when the client sent one) and one span named after
//! the matched route template (`/api/tenants/members/{user_id}`, never the raw path, so ids do
//! not explode the metric and log cardinality). 5xx responses are logged once, here, with their
//! hidden cause; health checks log at debug level.

use crate::error::{ApiError, InternalCause};
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Instant;
use tracing::Instrument;

/// Sets up the one tracing subscriber: `CLOUDSPEND_LOG` (or `RUST_LOG`) filters,
/// `CLOUDSPEND_LOG_FORMAT=json` for machine-readable lines. Safe to call more than once
/// (tests call it from every test; only the first call installs).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("CLOUDSPEND_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,sqlx=warn,aws_config=warn,aws_smithy_runtime=warn".to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_target(false);
    let _ = if std::env::var("CLOUDSPEND_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder (metrics are global by nature; every app in the process
/// shares it).
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ])
            .expect("static bucket list is valid");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is installed already; ours still renders then.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub fn render_metrics() -> String {
    prometheus().render()
}

/// The client's address: the socket's peer, or, behind `trusted_proxy_hops` proxies that each
/// append the address they saw to `X-Forwarded-For` (`CLOUDSPEND_TRUSTED_PROXY_HOPS`), the
/// address the outermost trusted proxy saw. Entries further left are written by the client and
/// never trusted. Tests driving the router without a socket get 0.0.0.0.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The address `hops` entries from the right of the X-Forwarded-For values, if there are that
/// many and it parses.
pub fn forwarded_client(headers: &axum::http::HeaderMap, hops: usize) -> Option<IpAddr> {
    if hops == 0 {
        return None;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    entries
        .len()
        .checked_sub(hops)
        .and_then(|i| entries[i].parse().ok())
}

impl FromRequestParts<crate::AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let ip = forwarded_client(&parts.headers, state.config.trusted_proxy_hops).unwrap_or(peer);
        Ok(ClientIp(ip))
    }
}

/// Logs and measures each request under a span named by its route.
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let quiet = matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics");
    let span = if quiet {
        tracing::debug_span!("request", %method, route = %route, request_id = %request_id)
    } else {
        tracing::info_span!("request", %method, route = %route, request_id = %request_id)
    };
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    let elapsed = started.elapsed();
    let _enter = span.enter();
    if status.is_server_error() {
        let cause = response
            .extensions()
            .get::<InternalCause>()
            .map(|c| c.0.as_str())
            .unwrap_or("-");
        tracing::error!(
            status = status.as_u16(),
            latency_ms = elapsed.as_millis() as u64,
            cause,
            "request failed"
        );
    } else if quiet {
        tracing::debug!(
            status = status.as_u16(),
            latency_ms = elapsed.as_millis() as u64,
            "request done"
        );
    } else {
        tracing::info!(
            status = status.as_u16(),
            latency_ms = elapsed.as_millis() as u64,
            "request done"
        );
    }
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
    response
}

/// Gives every error response the API's JSON error body, including those made by layers and
/// by axum itself (413 from the body limit, 405, a panic caught as 500), which come as plain
/// text.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: crate::BODY_LIMIT_BYTES,
        },
        StatusCode::NOT_FOUND => ApiError::not_found("route"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::bad_request(
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        StatusCode::REQUEST_TIMEOUT => {
            ApiError::bad_request("request_timeout", "the request took too long")
        }
        s if s.is_server_error() => ApiError::Internal(anyhow::anyhow!("{s} from a layer")),
        _ => ApiError::bad_request(
            "bad_request",
            status.canonical_reason().unwrap_or("bad request"),
        ),
    };
    let mut replaced = error.into_response();
    // Keep the original status (the mapping above only picks a body).
    *replaced.status_mut() = status;
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = response.headers().get(&name) {
            replaced.headers_mut().insert(name, v.clone());
        }
    }
    if let Some(id) = response.headers().get("x-request-id") {
        replaced.headers_mut().insert("x-request-id", id.clone());
    }
    replaced
}

/// Turns a panic in a handler into a logged 500 with the JSON body.
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("panic");
    let mut response =
        ApiError::Internal(anyhow::anyhow!("handler panicked: {detail}")).into_response();
    response
        .headers_mut()
        .insert("x-panic", HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_trusted_hops_of_x_forwarded_for_count() {
        let mut headers = axum::http::HeaderMap::new();
        headers.append("x-forwarded-for", "6.6.6.6, 10.0.0.7".parse().unwrap());
        headers.append("x-forwarded-for", "192.0.2.10".parse().unwrap());
        assert_eq!(forwarded_client(&headers, 0), None);
        assert_eq!(
            forwarded_client(&headers, 1),
            Some("192.0.2.10".parse().unwrap())
        );
        assert_eq!(
            forwarded_client(&headers, 2),
            Some("10.0.0.7".parse().unwrap())
        );
        assert_eq!(
            forwarded_client(&headers, 4),
            None,
            "fewer entries than hops: the peer"
        );
    }
}
