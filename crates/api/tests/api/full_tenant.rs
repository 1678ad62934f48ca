//! A tenant that owns one of everything the API can hold, for tests that must prove none of it
//! leaks or changes: an AWS connection to its own moto account (connected through the API, with
//! one running EC2 instance), collected inventory and Cost Explorer costs, an anomaly, an idle
//! finding, an alert subscription with a delivery, a named API token, a budget, a CloudWatch
//! alarm, a pending stop confirmation token, a second member (a viewer) and a pending invitation.
//!
//! Everything is made through the API where an operation makes it; the anomaly and the finding
//! come from the detectors in production, which these tests do not drive, so they go through the
//! store. Every name and amount is distinctive, so a test can search answers for them.

use crate::common::{Session, TestApp};
use chrono::{Days, NaiveDate, Utc};
use cloudspend_aws_access::testing::{self, Moto, role_in, unique_account_id};
use cloudspend_collection::Collector;
use cloudspend_core::TenantId;
use cloudspend_core::records::RunStatus;
use cloudspend_store::{NewAnomaly, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

pub const PASSWORD: &str = "a good long password";
const REGION: &str = "us-east-1";
/// What Cost Explorer answers for each of the tenant's last three days.
pub const DAILY_COST: &str = "1357.91";
pub const COST_SERVICE: &str = "Acme Hidden Compute Service";
pub const BUDGET: &str = "4321.17";

/// A user with a login session acting in one tenant.
pub struct Person {
    pub email: String,
    pub user_id: String,
    pub token: String,
}

/// A tenant owning one of everything, on a database of its own (see the module comment).
pub struct FullTenant {
    pub app: TestApp,
    /// The test database, for tests that read rows the API does not show (see `dump`).
    pub database_url: String,
    pub id: TenantId,
    pub name: String,
    pub external_id: String,
    pub owner: Person,
    pub viewer: Person,
    /// The AWS account (moto) the connection reads.
    pub account: String,
    pub connection_name: String,
    pub instance: String,
    pub instance_name: String,
    pub anomaly: String,
    pub finding_evidence: String,
    pub subscription: String,
    pub subscription_name: String,
    pub subscription_target: String,
    /// The named API token's public id, name and bearer value.
    pub api_token_id: String,
    pub api_token_name: String,
    pub api_token: String,
    pub alarm: String,
    /// A stop confirmation for `instance`, not yet used (valid for an hour in these tests).
    pub action_token: String,
    /// A pending invitation to `invitee`: its id, and its token (shown once to the owner: the
    /// fixture's server sends no e-mail).
    pub invitation: String,
    pub invitation_token: String,
    pub invitee: String,
}

impl FullTenant {
    /// Builds the tenant. Hold `testing::shared()` while it lives: it uses moto.
    pub async fn build() -> Self {
        let database_url = cloudspend_store::testing::fresh_postgres_url().await;
        let store = cloudspend_store::postgres::PgStore::connect(&database_url)
            .await
            .expect("connect to the fresh test database");
        store.migrate().await.expect("migrate the test database");
        let config = cloudspend_api::ApiConfig {
            egress: cloudspend_insights::egress::EgressPolicy::public_only()
                .with_internal_allowed(true),
            // The passes over every operation take a while on a busy machine; the confirmation
            // token made here must still be valid when the owner finally spends it.
            action_token_ttl: std::time::Duration::from_secs(3600),
            ..Default::default()
        };
        let app = TestApp::spawn_with(Arc::new(store), config).await;

        let name = "Acme Hidden Corp".to_string();
        let owner_email = "owner-of-a@acme-hidden.example";
        let signed_up = app.signup(owner_email, &name).await;
        let id: TenantId = signed_up.tenant_id.parse().unwrap();
        let owner = person(owner_email, signed_up);

        let account = unique_account_id();
        let instance_name = format!("acme-hidden-web-{account}");
        let instance = launch_instance(&account, &instance_name).await;
        let (external_id, connection_name) = connect(&app, &owner, &account).await;
        collect(&app, id, &account).await;
        let anomaly = store_anomaly(&app, id).await;
        let finding_evidence = store_idle_finding(&app, id, &account, &instance).await;

        let (subscription, subscription_name, subscription_target) = subscribe(&app, &owner).await;
        let (api_token_id, api_token_name, api_token) = make_api_token(&app, &owner).await;
        let set = app
            .call(
                reqwest::Method::PUT,
                "/api/budgets",
                Some(&owner.token),
                Some(json!({"amount": BUDGET})),
            )
            .await;
        assert_eq!(set.status, StatusCode::OK, "budget: {}", set.text);
        let alarm = create(
            &app,
            &owner,
            &format!("/api/instances/{instance}/alarms"),
            json!({"threshold": 87.5}),
        )
        .await["alarm"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let action_token = create(
            &app,
            &owner,
            &format!("/api/instances/{instance}/actions"),
            json!({"action": "stop"}),
        )
        .await["token"]
            .as_str()
            .unwrap()
            .to_string();
        let viewer = add_viewer(&app, &owner, id).await;
        let invitee = "invitee-of-a@acme-hidden.example".to_string();
        let invitation_token = app.invite(&owner.token, &invitee, "admin").await;
        let pending = app
            .get("/api/tenants/invitations", Some(&owner.token))
            .await;
        assert_eq!(
            pending.body["invitations"][0]["email"],
            invitee.as_str(),
            "{}",
            pending.text
        );
        let invitation = pending.body["invitations"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();

        FullTenant {
            app,
            database_url,
            id,
            name,
            external_id,
            owner,
            viewer,
            account,
            connection_name,
            instance,
            instance_name,
            anomaly,
            finding_evidence,
            subscription,
            subscription_name,
            subscription_target,
            api_token_id,
            api_token_name,
            api_token,
            alarm,
            action_token,
            invitation,
            invitation_token,
            invitee,
        }
    }
}

/// The person a sign-up made.
pub fn person(email: &str, session: Session) -> Person {
    Person {
        email: email.to_string(),
        user_id: session.user_id,
        token: session.token,
    }
}

/// A new login session of `email`, acting in `tenant` (its oldest tenant when `None`).
pub async fn log_in(app: &TestApp, email: &str, tenant: Option<&str>) -> String {
    let reply = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": email, "password": PASSWORD, "tenant_id": tenant}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "login: {}", reply.text);
    reply.body["token"].as_str().unwrap().to_string()
}

/// POSTs `body` as the owner and returns the answer, which must be 201.
async fn create(app: &TestApp, owner: &Person, path: &str, body: Value) -> Value {
    let reply = app.post(path, Some(&owner.token), body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{path}: {}", reply.text);
    reply.body
}

async fn launch_instance(account: &str, name: &str) -> String {
    let access = testing::aws_access().await;
    let config = access
        .sdk_config(TenantId::new(), &role_in(account), REGION)
        .await
        .unwrap();
    testing::run_instance(&aws_sdk_ec2::Client::new(&config), &[("Name", name)]).await
}

/// Connects the account through onboarding (its diagnostics run against moto) and returns
/// the tenant's external ID and the connection's display name.
async fn connect(app: &TestApp, owner: &Person, account: &str) -> (String, String) {
    let onboarding = app.get("/api/tenants/onboarding", Some(&owner.token)).await;
    let external_id = onboarding.body["external_id"].as_str().unwrap().to_string();
    let display_name = format!("Acme hidden production {account}");
    let connected = app
        .post(
            "/api/tenants/connect",
            Some(&owner.token),
            connect_body(account, &external_id, &display_name),
        )
        .await;
    assert_eq!(connected.status, StatusCode::OK, "{}", connected.text);
    (external_id, display_name)
}

/// A valid connect form for a role in `account`.
pub fn connect_body(account: &str, external_id: &str, display_name: &str) -> Value {
    json!({
        "aws_role_arn": format!("arn:aws:iam::{account}:role/CloudSpendReadOnly"),
        "external_id": external_id,
        "region": REGION,
        "athena_db": "acme_cur",
        "athena_table": "acme_cur_table",
        "display_name": display_name,
    })
}

/// Runs the EC2, CloudWatch and Cost Explorer collectors once, with Cost Explorer answering
/// [`DAILY_COST`] of [`COST_SERVICE`] for each of the last three days.
async fn collect(app: &TestApp, tenant: TenantId, account: &str) {
    let today = Utc::now().date_naive();
    let days: Vec<Value> = (1..=3)
        .map(|back| cost_day(today - Days::new(back), account))
        .collect();
    Moto::from_env()
        .preset_cost_and_usage(account, vec![json!({ "ResultsByTime": days })])
        .await;
    for collector in [
        Collector::Ec2,
        Collector::Cloudwatch,
        Collector::CostExplorer,
    ] {
        let report = app.collections.run(tenant, collector).await.unwrap();
        assert_eq!(
            report.status,
            RunStatus::Succeeded,
            "{collector}: {:?}",
            report.error
        );
    }
}

/// A GetCostAndUsage day grouped by service and linked account.
fn cost_day(day: NaiveDate, account: &str) -> Value {
    let amount = json!({"Amount": DAILY_COST, "Unit": "USD"});
    json!({
        "TimePeriod": {"Start": day.to_string(), "End": (day + Days::new(1)).to_string()},
        "Total": {},
        "Groups": [{"Keys": [COST_SERVICE, account],
                    "Metrics": {"UnblendedCost": amount, "AmortizedCost": amount}}],
        "Estimated": false,
    })
}

/// The detector finds anomalies only in months of history; one is stored as it would store it.
async fn store_anomaly(app: &TestApp, tenant: TenantId) -> String {
    let today = Utc::now().date_naive();
    let money = |s: &str| s.parse().unwrap();
    let stored = app
        .store
        .sync_anomalies(
            tenant,
            &[NewAnomaly {
                series: format!("service:{COST_SERVICE}"),
                first_day: today - Days::new(2),
                last_day: today - Days::new(1),
                expected: money("400.00"),
                lower: money("350.00"),
                upper: money("450.00"),
                actual: money(DAILY_COST),
                impact: money("957.91"),
                impact_percent: 239.5,
                score: 0.99,
                severity: "high".into(),
                root_causes: json!([]),
            }],
            Utc::now(),
        )
        .await
        .unwrap();
    stored[0].id.0.to_string()
}

/// The idle finding the recommender would make for the instance; returns its evidence text.
async fn store_idle_finding(
    app: &TestApp,
    tenant: TenantId,
    account: &str,
    instance: &str,
) -> String {
    let evidence = format!("CPU p95 1.7% over 336 hours for acme-hidden {instance}");
    let finding = cloudspend_insights::view::RecommendationView {
        kind: "idle".into(),
        action: "stop".into(),
        instance_id: instance.to_string(),
        name: None,
        account_id: account.to_string(),
        region: REGION.into(),
        instance_type: "t3.micro".into(),
        state: "running".into(),
        suggested_type: None,
        cpu_p95: Some(1.7),
        cpu_max: Some(4.0),
        hours_of_data: Some(336),
        volumes: Vec::new(),
        monthly_cost: "7.49".parse().unwrap(),
        monthly_savings: "7.49".parse().unwrap(),
        cost_basis: "list_price".into(),
        evidence: evidence.clone(),
    };
    app.store
        .replace_recommendations(tenant, &[finding.to_record(Utc::now())])
        .await
        .unwrap();
    evidence
}

/// A webhook subscription (to a loopback port nothing listens on) and one test alert queued
/// for it, so the delivery log has an entry. Returns the id, name and target.
async fn subscribe(app: &TestApp, owner: &Person) -> (String, String, String) {
    let name = "acme-hidden-alerts".to_string();
    let target = "http://127.0.0.1:9/acme-hidden-hook".to_string();
    let created = create(
        app,
        owner,
        "/api/alerts/subscriptions",
        json!({"name": name, "channel": "webhook", "target": target,
               "threshold_kind": "absolute", "threshold": "250"}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    let test = app
        .post(
            &format!("/api/alerts/subscriptions/{id}/test"),
            Some(&owner.token),
            json!({}),
        )
        .await;
    assert_eq!(test.status, StatusCode::ACCEPTED, "{}", test.text);
    (id, name, target)
}

async fn make_api_token(app: &TestApp, owner: &Person) -> (String, String, String) {
    let name = "acme-hidden-ci-export".to_string();
    let created = create(app, owner, "/api/tokens", json!({"name": name})).await;
    (
        created["id"].as_str().unwrap().to_string(),
        name,
        created["token"].as_str().unwrap().to_string(),
    )
}

/// A second member with the viewer role, logged in to act in the tenant.
async fn add_viewer(app: &TestApp, owner: &Person, tenant: TenantId) -> Person {
    let email = "viewer-of-a@acme-hidden.example";
    let signed_up = app.signup(email, "Viewer's own workspace").await;
    app.add_member(&owner.token, email, "viewer").await;
    Person {
        email: email.to_string(),
        user_id: signed_up.user_id,
        token: log_in(app, email, Some(&tenant.to_string())).await,
    }
}
