//! Counting what a collection costs in AWS requests.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use cloudspend_core::Money;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Cost Explorer bills each API request (each page) at $0.01.
const COST_EXPLORER_PRICE_NANOS: i64 = 10_000_000;

/// An SDK interceptor that counts requests (operations), attempts (including retries) and
/// throttled responses. Clones share the counts: make one per collection run and attach it to
/// every client the run builds, e.g.
/// `aws_sdk_ec2::config::Builder::from(&sdk_config).interceptor(counter.clone())`.
#[derive(Clone, Debug, Default)]
pub struct RequestCounter {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    requests: AtomicU64,
    attempts: AtomicU64,
    throttled: AtomicU64,
    cost_explorer_requests: AtomicU64,
    by_operation: Mutex<BTreeMap<String, u64>>,
}

/// A snapshot of a [`RequestCounter`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Operations started (one per page of a paginated call), whatever their outcome.
    pub requests: u64,
    /// HTTP attempts sent: `requests` plus retries.
    pub attempts: u64,
    /// Attempts beyond the first of each request.
    pub retries: u64,
    /// Attempts AWS answered with a throttling error (each one is retried while attempts last).
    pub throttled: u64,
    /// Cost Explorer requests, billed per request.
    pub cost_explorer_requests: u64,
    /// Requests per operation name (`DescribeInstances`, `GetMetricData`, ...).
    pub by_operation: BTreeMap<String, u64>,
}

impl RequestCounts {
    /// What the Cost Explorer requests cost the tenant ($0.01 each).
    pub fn cost_explorer_cost(&self) -> Money {
        Money::from_nanos(
            COST_EXPLORER_PRICE_NANOS.saturating_mul(self.cost_explorer_requests as i64),
        )
    }

    /// Requests made to one operation.
    pub fn operation(&self, name: &str) -> u64 {
        self.by_operation.get(name).copied().unwrap_or(0)
    }
}

impl RequestCounter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn counts(&self) -> RequestCounts {
        let requests = self.inner.requests.load(Ordering::Relaxed);
        let attempts = self.inner.attempts.load(Ordering::Relaxed);
        RequestCounts {
            requests,
            attempts,
            retries: attempts.saturating_sub(requests),
            throttled: self.inner.throttled.load(Ordering::Relaxed),
            cost_explorer_requests: self.inner.cost_explorer_requests.load(Ordering::Relaxed),
            by_operation: self
                .inner
                .by_operation
                .lock()
                .expect("counter poisoned")
                .clone(),
        }
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "CloudSpendRequestCounter"
    }

    // Not `read_before_execution`: client-level interceptors run that hook before the
    // operation's configuration (and its `Metadata`) is in the bag. Serialization happens once
    // per operation, before the retry loop.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(meta) = cfg.load::<Metadata>() {
            if meta.service() == "Cost Explorer" {
                self.inner
                    .cost_explorer_requests
                    .fetch_add(1, Ordering::Relaxed);
            }
            *self
                .inner
                .by_operation
                .lock()
                .expect("counter poisoned")
                .entry(meta.name().to_string())
                .or_default() += 1;
        }
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner.attempts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(response) = context.response() {
            let status = response.status().as_u16();
            let body = response.body().bytes().unwrap_or_default();
            if is_throttle(status, body) {
                self.inner.throttled.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// Throttling looks different per protocol (EC2 answers 503 RequestLimitExceeded, CloudWatch
/// 400 Throttling, JSON services 400 ThrottlingException or 429), so look at the status and,
/// for a 400, the error code in the (small, already buffered) error body.
fn is_throttle(status: u16, body: &[u8]) -> bool {
    if status == 429 {
        return true;
    }
    if status < 400 {
        return false;
    }
    const CODES: [&[u8]; 5] = [
        b"Throttl",
        b"RequestLimitExceeded",
        b"TooManyRequests",
        b"SlowDown",
        b"LimitExceededException",
    ];
    let head = &body[..body.len().min(2048)];
    CODES
        .iter()
        .any(|code| head.windows(code.len()).any(|w| w == *code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_recognised_in_each_protocol() {
        assert!(is_throttle(429, b""));
        assert!(is_throttle(
            503,
            b"<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
        ));
        assert!(is_throttle(
            400,
            b"<ErrorResponse><Error><Code>Throttling</Code>"
        ));
        assert!(is_throttle(400, br#"{"__type":"ThrottlingException"}"#));
        assert!(!is_throttle(400, br#"{"__type":"AccessDeniedException"}"#));
        assert!(!is_throttle(200, b"Throttling is a word in this body"));
    }

    #[test]
    fn cost_explorer_requests_cost_a_cent_each() {
        let counts = RequestCounts {
            cost_explorer_requests: 3,
            ..Default::default()
        };
        assert_eq!(counts.cost_explorer_cost().to_string(), "0.03");
    }
}
