//! Shared helpers: a running server on a fresh database, and a client that speaks to it.

use cloudspend_api::{ApiConfig, AppState};
use cloudspend_store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

pub struct TestApp {
    pub address: SocketAddr,
    pub store: Arc<dyn Store>,
    pub collections: cloudspend_collection::Collections,
    pub client: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub fn test_master_key() -> cloudspend_secrets::MasterKey {
    cloudspend_secrets::MasterKey::parse(&("5e".repeat(16) + &"a7".repeat(16))).unwrap()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The `error.field` of an error body.
    pub fn field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }

    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

pub struct Session {
    pub token: String,
    pub user_id: String,
    pub tenant_id: String,
}

impl TestApp {
    /// A server as deployed, except that webhooks may point at the tests' loopback receivers.
    /// (Only the deliverers tests build send anything, with [`loopback_only`].)
    pub async fn spawn() -> Self {
        Self::spawn_with(
            cloudspend_store::testing::fresh_postgres().await,
            ApiConfig {
                egress: cloudspend_insights::egress::EgressPolicy::public_only()
                    .with_internal_allowed(true),
                ..ApiConfig::default()
            },
        )
        .await
    }

    /// [`TestApp::spawn`] on a fresh database with the clock pinned at `now`, for rules that
    /// depend on the date (month to date, forecasts, detection windows).
    pub async fn spawn_at(now: chrono::DateTime<chrono::Utc>) -> Self {
        Self::spawn_with(
            cloudspend_store::testing::fresh_postgres().await,
            ApiConfig {
                clock: cloudspend_core::Clock::fixed(now),
                ..ApiConfig::default()
            },
        )
        .await
    }

    pub async fn spawn_with(store: Arc<dyn Store>, config: ApiConfig) -> Self {
        let aws = cloudspend_aws_access::testing::aws_access().await;
        Self::spawn_full(store, config, aws, Some(test_master_key())).await
    }

    /// A server whose AWS calls go where `aws` points (moto in these tests). moto checks no
    /// trust policy on AssumeRole: to it every role may be assumed without the external ID, and
    /// the connect check's proof that a role requires it would refuse them all; so it is off
    /// here, and on in [`TestApp::spawn_requiring_external_ids`], which tests that proof.
    pub async fn spawn_full(
        store: Arc<dyn Store>,
        config: ApiConfig,
        aws: cloudspend_aws_access::AwsAccess,
        master_key: Option<cloudspend_secrets::MasterKey>,
    ) -> Self {
        let config = ApiConfig {
            require_external_id: false,
            ..config
        };
        Self::start(store, config, aws, master_key).await
    }

    /// [`TestApp::spawn`] with the connect check proving that a role requires its external ID,
    /// as deployed (`CLOUDSPEND_REQUIRE_EXTERNAL_ID`, on by default).
    pub async fn spawn_requiring_external_ids() -> Self {
        let config = ApiConfig {
            require_external_id: true,
            ..ApiConfig::default()
        };
        Self::start(
            cloudspend_store::testing::fresh_postgres().await,
            config,
            cloudspend_aws_access::testing::aws_access().await,
            Some(test_master_key()),
        )
        .await
    }

    async fn start(
        store: Arc<dyn Store>,
        config: ApiConfig,
        aws: cloudspend_aws_access::AwsAccess,
        master_key: Option<cloudspend_secrets::MasterKey>,
    ) -> Self {
        cloudspend_api::telemetry::init_tracing();
        let collections = cloudspend_collection::Collections::new(
            store.clone(),
            aws,
            master_key,
            cloudspend_collection::Settings::default(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = AppState::new(store.clone(), config, collections.clone());
        tokio::spawn(async move {
            cloudspend_api::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestApp {
            address,
            store,
            collections,
            client: reqwest::Client::new(),
            _shutdown: tx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.call_with(method, path, token, &[], body).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::reply(request.send().await.expect("request reaches the server")).await
    }

    pub async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn signup(&self, email: &str, tenant: &str) -> Session {
        let reply = self
            .post(
                "/api/auth/signup",
                None,
                json!({"email": email, "password": "a good long password", "tenant_name": tenant}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        Session {
            token: reply.body["token"].as_str().unwrap().to_string(),
            user_id: reply.body["user"]["id"].as_str().unwrap().to_string(),
            tenant_id: reply.body["tenant"]["id"].as_str().unwrap().to_string(),
        }
    }

    /// Adds the user with `email` to the tenant `owner_token` acts in, with `role`.
    pub async fn add_member(&self, owner_token: &str, email: &str, role: &str) {
        let added = self
            .post(
                "/api/tenants/members",
                Some(owner_token),
                json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(added.status, reqwest::StatusCode::OK, "{}", added.text);
    }

    pub async fn login(&self, email: &str) -> Reply {
        self.post(
            "/api/auth/login",
            None,
            json!({"email": email, "password": "a good long password"}),
        )
        .await
    }
}

/// What a test's alert sender may reach: its receivers on loopback, nothing off the machine.
pub fn loopback_only() -> cloudspend_insights::egress::EgressPolicy {
    cloudspend_insights::egress::EgressPolicy::public_only()
        .with_allow_list("127.0.0.0/8")
        .expect("a valid list")
}
