//! Helpers for end-to-end tests against the moto server that `scripts/test.sh` starts.
//! Only for tests (feature `testing`): they panic instead of returning errors, with a message
//! that says what to do.
//!
//! Isolation: moto is one shared process. Every test takes [`shared`] (many at once) and works
//! in an account of its own ([`unique_account_id`], reached by assuming a role there, which moto
//! turns into that account), so tests run in parallel without seeing each other's data. A test
//! that changes moto's global state (reset, authentication, the request recorder) takes
//! [`exclusive`] instead.

use crate::TenantCredentials;
use crate::access::AwsAccess;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use base64::Engine;
use serde_json::Value;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

mod fault_proxy;
pub use fault_proxy::{Attempt, Fault, FaultProxy};

/// The environment variable naming the moto server's URL.
pub const MOTO_URL_VAR: &str = "CLOUDSPEND_TEST_MOTO_URL";

static MOTO_STATE: RwLock<()> = RwLock::const_new(());

/// Hold while a test uses moto without changing its global state.
pub async fn shared() -> RwLockReadGuard<'static, ()> {
    MOTO_STATE.read().await
}

/// Hold while a test changes moto's global state (reset, auth, recorder).
pub async fn exclusive() -> RwLockWriteGuard<'static, ()> {
    MOTO_STATE.write().await
}

/// The moto server's URL. Panics when it is not set: these tests never skip silently.
pub fn moto_url() -> String {
    match std::env::var(MOTO_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_string(),
        _ => panic!(
            "{MOTO_URL_VAR} is not set: these end-to-end tests need the moto server. Run them \
             with scripts/test.sh, which starts moto and sets it (or start moto_server yourself \
             and export {MOTO_URL_VAR}=http://127.0.0.1:<port>)"
        ),
    }
}

/// A base config pointed at moto with moto's conventional test credentials, in us-east-1,
/// made by the real loader (so it has the time source and sleep the SDK's providers need).
pub async fn base_config(moto_url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(crate::https_client())
        .region(Region::new("us-east-1"))
        .endpoint_url(moto_url)
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "cloudspend-test",
        ))
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// An [`AwsAccess`] whose server credentials are moto's test keys.
pub async fn aws_access() -> AwsAccess {
    AwsAccess::from_base(base_config(&moto_url()).await)
}

/// An [`AwsAccess`] like [`aws_access`] whose every request goes to `endpoint` (a
/// [`FaultProxy`] in front of moto).
pub async fn aws_access_via(endpoint: &str) -> AwsAccess {
    AwsAccess::from_base(base_config(endpoint).await)
}

/// A fresh 12-digit account id, so a test's data is its own.
pub fn unique_account_id() -> String {
    let n = uuid_u128() % 900_000_000_000 + 100_000_000_000;
    format!("{n:012}")
}

fn uuid_u128() -> u128 {
    cloudspend_core::TenantId::new().0.as_u128()
}

/// A saved role connection to `account_id` (the role [`role_in`] assumes), as onboarding
/// would store it, for tests that exercise collection without onboarding.
pub fn role_connection(
    account_id: &str,
    regions: &[&str],
) -> cloudspend_core::connection::AwsConnection {
    use cloudspend_core::connection::{
        AccountType, AwsConnection, ConnectionAuth, ConnectionStatus,
    };
    let TenantCredentials::Role { role_arn, .. } = role_in(account_id) else {
        unreachable!("role_in makes a role")
    };
    let now = chrono::Utc::now();
    AwsConnection {
        display_name: format!("account {account_id}"),
        account_id: account_id.to_string(),
        account_type: AccountType::Linked,
        auth: ConnectionAuth::Role { role_arn },
        regions: regions.iter().map(|r| r.to_string()).collect(),
        cur: Default::default(),
        status: ConnectionStatus::Connected,
        last_verified_at: Some(now),
        last_error: None,
        warnings: vec![],
        created_at: now,
        updated_at: now,
    }
}

/// Credentials that assume a role in `account_id` (moto moves every later call into it).
pub fn role_in(account_id: &str) -> TenantCredentials {
    TenantCredentials::Role {
        role_arn: format!("arn:aws:iam::{account_id}:role/CloudSpendReadOnly"),
        external_id: "cloudspend-test-external-id".into(),
    }
}

/// Launches one t3.micro in moto through `client`, tagged with `tags`, and returns its id. (moto
/// ships a catalogue of public images, any of which will do; its first DescribeImages takes
/// seconds.)
pub async fn run_instance(client: &aws_sdk_ec2::Client, tags: &[(&str, &str)]) -> String {
    use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
    let images = client
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .expect("describe images");
    let image = images
        .images()
        .first()
        .and_then(|i| i.image_id())
        .expect("moto has images")
        .to_string();
    let mut run = client
        .run_instances()
        .image_id(image)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1);
    if !tags.is_empty() {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
        for (key, value) in tags {
            spec = spec.tags(Tag::builder().key(*key).value(*value).build());
        }
        run = run.tag_specifications(spec.build());
    }
    let out = run.send().await.expect("run instance");
    out.instances()[0].instance_id().unwrap().to_string()
}

/// moto's control API (`/moto-api/...`).
#[derive(Clone, Debug)]
pub struct Moto {
    url: String,
    http: reqwest::Client,
}

/// One request moto recorded.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub url: String,
    /// The API action: `Action=` of a query-protocol body, or the `X-Amz-Target` suffix.
    pub action: Option<String>,
}

impl Moto {
    pub fn from_env() -> Self {
        Self {
            url: moto_url(),
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: reqwest::Body) -> String {
        let url = format!("{}{path}", self.url);
        let response = self
            .http
            .post(&url)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("moto at {url} did not answer ({e}): is moto_server running?")
            });
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "moto {path} answered {status}: {text}");
        text
    }

    /// Forgets all state of all accounts. Hold [`exclusive`].
    pub async fn reset(&self) {
        self.post("/moto-api/reset", reqwest::Body::from("")).await;
    }

    /// Presets Cost Explorer GetCostAndUsage answers for `account_id`: each result is a full
    /// response body; moto binds each to the first distinct request body that consumes it.
    pub async fn preset_cost_and_usage(&self, account_id: &str, results: Vec<Value>) {
        let body = serde_json::json!({ "account_id": account_id, "results": results });
        self.post(
            "/moto-api/static/ce/cost-and-usage-results",
            body.to_string().into(),
        )
        .await;
    }

    /// Turns on IAM authentication after `free_actions` more requests (`None` turns it off).
    /// Hold [`exclusive`] and turn it off again before releasing.
    pub async fn enforce_auth_after(&self, free_actions: Option<u64>) {
        let value = free_actions.map_or_else(|| "inf".to_string(), |n| n.to_string());
        self.post("/moto-api/reset-auth", value.into()).await;
    }

    /// Creates IAM role `role_name` (no policies, so with authentication enforced everything it
    /// does is denied) in the account `config`'s credentials belong to. moto wants the role to
    /// exist before it evaluates an assumed role's policies. Sent as a raw query request: moto
    /// does not check signatures while authentication is off, only reads the access key to
    /// pick the account.
    pub async fn create_role(&self, config: &SdkConfig, role_name: &str) {
        use aws_credential_types::provider::ProvideCredentials;
        let creds = config
            .credentials_provider()
            .expect("config has credentials")
            .provide_credentials()
            .await
            .expect("credentials resolve");
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;
        let body = format!(
            "Action=CreateRole&Version=2010-05-08&RoleName={role_name}&AssumeRolePolicyDocument={}",
            form_encode(trust)
        );
        let mut request = self
            .http
            .post(format!("{}/", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
                    creds.access_key_id()
                ),
            );
        if let Some(token) = creds.session_token() {
            request = request.header("x-amz-security-token", token);
        }
        let response = request
            .body(body)
            .send()
            .await
            .expect("moto answers CreateRole");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "CreateRole answered {status}: {text}");
    }

    /// Empties the recording and starts recording. Hold [`exclusive`].
    pub async fn start_recording(&self) {
        self.post(
            "/moto-api/recorder/reset-recording",
            reqwest::Body::from(""),
        )
        .await;
        self.post(
            "/moto-api/recorder/start-recording",
            reqwest::Body::from(""),
        )
        .await;
    }

    /// Stops recording and returns what was recorded since [`Moto::start_recording`].
    pub async fn stop_recording(&self) -> Vec<RecordedRequest> {
        self.post("/moto-api/recorder/stop-recording", reqwest::Body::from(""))
            .await;
        let url = format!("{}/moto-api/recorder/download-recording", self.url);
        let text = self
            .http
            .get(&url)
            .send()
            .await
            .expect("download recording")
            .text()
            .await
            .expect("recording");
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(parse_recorded)
            .collect()
    }
}

fn parse_recorded(line: &str) -> RecordedRequest {
    let entry: Value = serde_json::from_str(line).expect("moto recording line is JSON");
    let body = entry["body"].as_str().unwrap_or_default();
    let body = if entry["body_encoded"].as_bool().unwrap_or(false) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    } else {
        body.to_string()
    };
    let from_body = body
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_string);
    let from_target = entry["headers"].as_object().and_then(|headers| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
            .and_then(|(_, v)| v.as_str())
            .and_then(|t| t.rsplit('.').next())
            .map(str::to_string)
    });
    RecordedRequest {
        method: entry["method"].as_str().unwrap_or_default().to_string(),
        url: entry["url"].as_str().unwrap_or_default().to_string(),
        action: from_body.or(from_target),
    }
}

/// How many recorded requests were for `action`.
pub fn count_action(requests: &[RecordedRequest], action: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.action.as_deref() == Some(action))
        .count()
}

fn form_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
