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

/// The servers' logs go through the test harness's output capture: printed for a failing test
/// (or with `--nocapture`), not for each of the passing ones. `CLOUDSPEND_LOG` sets the level.
fn init_test_tracing() {
    let filter = std::env::var("CLOUDSPEND_LOG")
        .unwrap_or_else(|_| "info,sqlx=warn,aws_config=warn,aws_smithy_runtime=warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .with_test_writer()
        .try_init();
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
        Self::spawn_state(store, config, aws, master_key, |state| state).await
    }

    /// [`TestApp::spawn`] with the connect check proving that a role requires its external ID,
    /// as deployed (`CLOUDSPEND_REQUIRE_EXTERNAL_ID`, on by default).
    pub async fn spawn_requiring_external_ids() -> Self {
        let config = ApiConfig {
            require_external_id: true,
            ..ApiConfig::default()
        };
        Self::spawn_state(
            cloudspend_store::testing::fresh_postgres().await,
            config,
            cloudspend_aws_access::testing::aws_access().await,
            Some(test_master_key()),
            |state| state,
        )
        .await
    }

    /// A server that sends account e-mail (invitations, password resets) through the relay at
    /// `smtp_url` (see [`smtp_sink`]), links pointing at `https://cloudspend.test`.
    pub async fn spawn_with_mail(config: ApiConfig, smtp_url: &str) -> Self {
        let mailer = cloudspend_api::mail::Mailer::new(
            smtp_url,
            "CloudSpend <accounts@cloudspend.test>",
            Some("https://cloudspend.test"),
        )
        .expect("a valid relay");
        Self::spawn_state(
            cloudspend_store::testing::fresh_postgres().await,
            ApiConfig {
                smtp_configured: true,
                require_external_id: false,
                ..config
            },
            cloudspend_aws_access::testing::aws_access().await,
            Some(test_master_key()),
            move |state| state.with_mailer(mailer),
        )
        .await
    }

    /// [`TestApp::spawn_full`], the state given to `prepare` before it serves.
    async fn spawn_state(
        store: Arc<dyn Store>,
        config: ApiConfig,
        aws: cloudspend_aws_access::AwsAccess,
        master_key: Option<cloudspend_secrets::MasterKey>,
        prepare: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        init_test_tracing();
        let collections = cloudspend_collection::Collections::new(
            store.clone(),
            aws,
            master_key,
            cloudspend_collection::Settings::default(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = prepare(AppState::new(store.clone(), config, collections.clone()));
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

    /// Adds the user with `email` (signed up with [`TestApp::signup`]'s password) to the tenant
    /// `owner_token` acts in, with `role`, the way people join: invited, then accepting the
    /// invitation from a session of their own (logged out afterwards, so it leaves no token).
    pub async fn add_member(&self, owner_token: &str, email: &str, role: &str) {
        let token = self.invite(owner_token, email, role).await;
        let login = self.login(email).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.text);
        let session = login.body["token"].as_str().unwrap();
        let accepted = self.accept_invitation(session, &token).await;
        assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
        let logout = self
            .post("/api/auth/logout", Some(session), json!({}))
            .await;
        assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.text);
    }

    /// Invites `email` into the tenant `owner_token` acts in and returns the invitation's token
    /// (handed to the admin: these servers send no e-mail).
    pub async fn invite(&self, owner_token: &str, email: &str, role: &str) -> String {
        let invited = self
            .post(
                "/api/tenants/members",
                Some(owner_token),
                json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.text);
        invited.body["token"]
            .as_str()
            .unwrap_or_else(|| {
                panic!(
                    "no token in the answer (was it e-mailed?): {}",
                    invited.text
                )
            })
            .to_string()
    }

    pub async fn accept_invitation(&self, session: &str, token: &str) -> Reply {
        self.post(
            "/api/invitations/accept",
            Some(session),
            json!({ "token": token }),
        )
        .await
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

/// Just enough of an SMTP server (RFC 5321, no TLS) to receive messages: its `smtp://` URL and
/// the messages received (headers and body as sent).
pub async fn smtp_sink() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    let mails = Arc::new(std::sync::Mutex::new(Vec::new()));
    let received = mails.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let received = received.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            received.lock().unwrap().push(data.take().unwrap());
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 test\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.unwrap();
                            break;
                        }
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (url, mails)
}

/// Waits (up to 10 s) until `mails` holds `count` messages, and returns them.
pub async fn mails_received(mails: &std::sync::Mutex<Vec<String>>, count: usize) -> Vec<String> {
    for _ in 0..200 {
        if mails.lock().unwrap().len() >= count {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let received = mails.lock().unwrap().clone();
    assert!(
        received.len() >= count,
        "{count} e-mails expected, {} received",
        received.len()
    );
    received
}

/// A received message's text, its transfer encoding (quoted-printable or base64) undone.
pub fn mail_text(raw: &str) -> String {
    use base64::Engine;
    let (headers, body) = raw.split_once("\n\n").unwrap_or((raw, ""));
    let body = if headers.contains("Content-Transfer-Encoding: base64") {
        let joined: String = body.split_whitespace().collect();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(joined)
                .expect("base64 body"),
        )
        .expect("UTF-8 text")
    } else if headers.contains("Content-Transfer-Encoding: quoted-printable") {
        body.replace("=\n", "").replace("=3D", "=")
    } else {
        body.to_string()
    };
    format!("{headers}\n\n{body}")
}

/// The one-time token in a message's link to `page` (`.../page#token=...`).
pub fn token_in(text: &str, page: &str) -> String {
    let marker = format!("{page}#token=");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker} link in {text}"))
        + marker.len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}
