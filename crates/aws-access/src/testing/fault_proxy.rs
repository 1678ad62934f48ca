//! A fault-injecting HTTP proxy in front of moto. moto never throttles, never answers 503 and
//! never goes away in the middle of a collection; AWS does all three. Point an [`AwsAccess`]
//! (or `AWS_ENDPOINT_URL` of a `serve` process) at [`FaultProxy::url`] and decide, attempt by
//! attempt, what the SDK gets back:
//!
//! - [`Fault::Throttle`]: the service's own throttling error, in its protocol (EC2 `503
//!   RequestLimitExceeded` in XML, query services `400 Throttling` in XML, Cost Explorer `400
//!   LimitExceededException` in JSON, other JSON services `400 ThrottlingException`);
//! - [`Fault::Unavailable`]: a bare 503 with an HTML body, as a load balancer sends it;
//! - [`Fault::Drop`]: the connection closes without an answer (moto stopped);
//! - [`Fault::Hold`]: the attempt waits until [`FaultProxy::release`], then the policy in force
//!   at that moment decides again (so a test can stop moto "mid-request");
//! - [`Fault::Delay`]: the attempt is forwarded after a while, as a slow service answers.
//!
//! The service is read from the SigV4 credential scope, the attempt number and the operation's
//! invocation id from the SDK's `amz-sdk-request` and `amz-sdk-invocation-id` headers, so a
//! policy can fail the first two attempts of an operation and let the third through.
//!
//! [`AwsAccess`]: crate::AwsAccess

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does with one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward it to moto.
    Pass,
    /// The service's throttling error, as the service's protocol sends it.
    Throttle,
    /// A bare 503 Service Unavailable with an HTML body.
    Unavailable,
    /// Close the connection without answering.
    Drop,
    /// Wait for [`FaultProxy::release`], then ask the policy again (a second `Hold` passes).
    Hold,
    /// Wait this long, then forward it to moto.
    Delay(Duration),
}

/// One HTTP attempt as the policy sees it, and, in [`FaultProxy::attempts`], what was done.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The SigV4 signing name: `ec2`, `monitoring` (CloudWatch), `ce`, `sts`, ...
    pub service: String,
    /// The SigV4 signing region (`us-east-1`).
    pub region: String,
    /// The request body, as text (a paging token shows up here).
    pub body: String,
    /// The operation (`DescribeInstances`, `GetCostAndUsage`), when the request names it.
    pub action: Option<String>,
    /// 1 for an operation's first try, 2 for its first retry, ...
    pub attempt: u32,
    /// The same for every attempt of one operation.
    pub invocation: String,
    /// What the proxy did (in the log; [`Fault::Pass`] while the policy decides).
    pub fault: Fault,
}

type Policy = Arc<dyn Fn(&Attempt) -> Fault + Send + Sync>;

/// The proxy; it stops accepting connections when dropped.
pub struct FaultProxy {
    url: String,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    policy: Mutex<Policy>,
    log: Mutex<Vec<Attempt>>,
    /// Bumped by `release`; a held attempt waits for a generation after the one it saw.
    generation: tokio::sync::watch::Sender<u64>,
    held: AtomicUsize,
    /// Attempts waiting out a [`Fault::Delay`] right now.
    delayed: AtomicUsize,
}

/// The connection is closed without an answer when a handler returns this.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault proxy dropped the connection")
    }
}

impl std::error::Error for DropConnection {}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (moto's URL), passing
    /// everything until a policy is set.
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy on loopback");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("HTTP client"),
            policy: Mutex::new(Arc::new(|_: &Attempt| Fault::Pass)),
            log: Mutex::new(Vec::new()),
            generation: tokio::sync::watch::channel(0).0,
            held: AtomicUsize::new(0),
            delayed: AtomicUsize::new(0),
        });
        let accept_shared = shared.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = accept_shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let shared = shared.clone();
                        async move { handle(&shared, request).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url,
            shared,
            accept,
        }
    }

    /// The proxy's base URL, to use as the AWS endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Decides every later attempt (and held ones when they are released).
    pub fn set_policy(&self, policy: impl Fn(&Attempt) -> Fault + Send + Sync + 'static) {
        *self.shared.policy.lock().expect("policy lock") = Arc::new(policy);
    }

    /// Lets every held attempt go on (the policy decides again what happens to it).
    pub fn release(&self) {
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// Attempts held right now.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Attempts waiting out a [`Fault::Delay`] right now.
    pub fn delayed(&self) -> usize {
        self.shared.delayed.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` attempts are waiting out a delay; panics after `timeout`.
    pub async fn wait_delayed(&self, n: usize, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.delayed() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the fault proxy saw {} delayed attempts after {timeout:?}, expected {n}",
                self.delayed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until at least `n` attempts are held; panics after `timeout`.
    pub async fn wait_held(&self, n: usize, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.held() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the fault proxy saw {} held attempts after {timeout:?}, expected {n}",
                self.held()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every attempt answered so far (held ones appear once released), in order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.shared.log.lock().expect("log lock").clone()
    }

    /// Forgets the attempts seen so far.
    pub fn clear_attempts(&self) {
        self.shared.log.lock().expect("log lock").clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn handle(
    shared: &Shared,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|_| DropConnection)?.to_bytes();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let target = header("x-amz-target");
    let scope = header("authorization")
        .as_deref()
        .and_then(credential_scope);
    let mut attempt = Attempt {
        service: scope
            .as_ref()
            .map_or_else(|| "unknown".into(), |(_, service)| service.clone()),
        region: scope.map(|(region, _)| region).unwrap_or_default(),
        body: String::from_utf8_lossy(&body).into_owned(),
        action: target
            .as_deref()
            .and_then(|t| t.rsplit('.').next())
            .map(str::to_string)
            .or_else(|| form_action(&body)),
        attempt: header("amz-sdk-request")
            .as_deref()
            .and_then(attempt_number)
            .unwrap_or(1),
        invocation: header("amz-sdk-invocation-id").unwrap_or_default(),
        fault: Fault::Pass,
    };
    let decide = |attempt: &Attempt| {
        let policy = shared.policy.lock().expect("policy lock").clone();
        policy(attempt)
    };
    let mut fault = decide(&attempt);
    if fault == Fault::Hold {
        let mut generation = shared.generation.subscribe();
        let seen = *generation.borrow_and_update();
        shared.held.fetch_add(1, Ordering::SeqCst);
        let _ = generation.wait_for(|g| *g > seen).await;
        shared.held.fetch_sub(1, Ordering::SeqCst);
        fault = match decide(&attempt) {
            Fault::Hold => Fault::Pass,
            other => other,
        };
    }
    attempt.fault = fault;
    shared.log.lock().expect("log lock").push(attempt.clone());
    let request_id = uuid_like(&attempt);
    match fault {
        Fault::Pass | Fault::Hold => forward(shared, parts, body).await,
        Fault::Delay(wait) => {
            {
                let _counted = Counted::new(&shared.delayed);
                tokio::time::sleep(wait).await;
            }
            forward(shared, parts, body).await
        }
        Fault::Drop => Err(DropConnection),
        Fault::Unavailable => Ok(response(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/html",
            "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>".into(),
            &request_id,
        )),
        Fault::Throttle => Ok(throttle(
            &attempt,
            target.is_some(),
            header("content-type"),
            &request_id,
        )),
    }
}

/// Counts itself in while it lives, also when the client gives up and the handler is dropped.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The throttling error each protocol sends, with the code the SDK's retry classifier knows.
fn throttle(
    attempt: &Attempt,
    json: bool,
    content_type: Option<String>,
    request_id: &str,
) -> Response<Full<Bytes>> {
    if json {
        let code = if attempt.service == "ce" {
            "LimitExceededException"
        } else {
            "ThrottlingException"
        };
        let body = format!(r#"{{"__type":"{code}","message":"Rate exceeded"}}"#);
        let content_type = content_type.unwrap_or_else(|| "application/x-amz-json-1.1".into());
        return response(StatusCode::BAD_REQUEST, &content_type, body, request_id);
    }
    if attempt.service == "ec2" {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>\
             <Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>\
             </Error></Errors><RequestID>{request_id}</RequestID></Response>"
        );
        return response(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/xml;charset=UTF-8",
            body,
            request_id,
        );
    }
    let body = format!(
        "<ErrorResponse xmlns=\"https://{}.amazonaws.com/doc/\"><Error><Type>Sender</Type>\
         <Code>Throttling</Code><Message>Rate exceeded</Message></Error>\
         <RequestId>{request_id}</RequestId></ErrorResponse>",
        attempt.service
    );
    response(StatusCode::BAD_REQUEST, "text/xml", body, request_id)
}

fn response(
    status: StatusCode,
    content_type: &str,
    body: String,
    request_id: &str,
) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amzn-requestid", request_id)
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

async fn forward(
    shared: &Shared,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut headers = parts.headers;
    for hop in ["host", "content-length", "connection", "transfer-encoding"] {
        headers.remove(hop);
    }
    let upstream = shared
        .http
        .request(parts.method, format!("{}{path}", shared.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await
        // moto itself is unreachable: the client sees what it would see without the proxy.
        .map_err(|_| DropConnection)?;
    let mut builder = Response::builder().status(upstream.status());
    for (name, value) in upstream.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            builder = builder.header(name, value);
        }
    }
    let bytes = upstream.bytes().await.map_err(|_| DropConnection)?;
    Ok(builder.body(Full::new(bytes)).expect("valid response"))
}

/// `AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ec2/aws4_request, ...` →
/// (`us-east-1`, `ec2`).
fn credential_scope(authorization: &str) -> Option<(String, String)> {
    let scope = authorization.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    let mut parts = scope.split('/').skip(2);
    Some((parts.next()?.to_string(), parts.next()?.to_string()))
}

/// `attempt=2; max=3` → 2.
fn attempt_number(value: &str) -> Option<u32> {
    value
        .split(';')
        .find_map(|part| part.trim().strip_prefix("attempt="))
        .and_then(|n| n.trim().parse().ok())
}

fn form_action(body: &[u8]) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    body.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_string)
}

fn uuid_like(attempt: &Attempt) -> String {
    format!(
        "fault-{}-{}",
        attempt.invocation.chars().take(8).collect::<String>(),
        attempt.attempt
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_service_and_attempt_from_sdk_headers() {
        assert_eq!(
            credential_scope(
                "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/monitoring/aws4_request, SignedHeaders=host, Signature=0"
            ),
            Some(("eu-west-1".into(), "monitoring".into()))
        );
        assert_eq!(attempt_number("attempt=2; max=3"), Some(2));
        assert_eq!(
            form_action(b"Action=DescribeInstances&Version=2016-11-15").as_deref(),
            Some("DescribeInstances")
        );
    }
}
