//! Issue 9 against moto: token-confirmed EC2 stop/start, refusals that change nothing, the
//! audit log, actions disabled on the role, CPU alarms, and the budget guard.

use crate::common::{Session, TestApp};
use aws_sdk_ec2::types::InstanceType;
use chrono::{Duration, Utc};
use cloudspend_aws_access::testing::{self, Moto, role_in, unique_account_id};
use cloudspend_core::records::{CostRecord, Instance};
use cloudspend_core::{Money, TenantId};
use cloudspend_insights::view::RecommendationView;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const REGION: &str = "us-east-1";

fn money(v: &Value) -> Money {
    v.as_str().expect("money is a string").parse().unwrap()
}

async fn ec2(account: &str) -> aws_sdk_ec2::Client {
    let access = testing::aws_access().await;
    aws_sdk_ec2::Client::new(
        &access
            .sdk_config(TenantId::new(), &role_in(account), REGION)
            .await
            .unwrap(),
    )
}

async fn launch(account: &str) -> String {
    let client = ec2(account).await;
    let images = client
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .unwrap();
    let image = images.images()[0].image_id().unwrap().to_string();
    let out = client
        .run_instances()
        .image_id(image)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    out.instances()[0].instance_id().unwrap().to_string()
}

async fn aws_state(account: &str, instance: &str) -> String {
    let out = ec2(account)
        .await
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0]
        .state()
        .unwrap()
        .name()
        .unwrap()
        .as_str()
        .to_string()
}

/// A tenant connected to a fresh moto account with one running instance, stored as collected
/// and marked idle (monthly cost 7.49).
struct World {
    app: TestApp,
    ana: Session,
    tenant: TenantId,
    account: String,
    instance: String,
}

async fn world(config: cloudspend_api::ApiConfig) -> World {
    let app = TestApp::spawn_with(cloudspend_store::testing::fresh_postgres().await, config).await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let tenant: TenantId = ana.tenant_id.parse().unwrap();
    let account = unique_account_id();
    app.store
        .put_connection(tenant, &testing::role_connection(&account, &[REGION]))
        .await
        .unwrap();
    let instance = launch(&account).await;
    let now = Utc::now();
    app.store
        .upsert_instances(
            tenant,
            &[Instance {
                account_id: account.clone(),
                region: REGION.into(),
                instance_id: instance.clone(),
                instance_type: "t3.micro".into(),
                state: "running".into(),
                launch_time: Some(now - Duration::days(30)),
                availability_zone: format!("{REGION}a"),
                platform: "Linux/UNIX".into(),
                tags: BTreeMap::from([("Name".to_string(), "idle-web".to_string())]),
                last_seen_at: now,
                volume_ids: Vec::new(),
                state_since: None,
            }],
        )
        .await
        .unwrap();
    let finding = RecommendationView {
        kind: "idle".into(),
        action: "stop".into(),
        instance_id: instance.clone(),
        name: Some("idle-web".into()),
        account_id: account.clone(),
        region: REGION.into(),
        instance_type: "t3.micro".into(),
        state: "running".into(),
        suggested_type: None,
        cpu_p95: Some(1.2),
        cpu_max: Some(3.0),
        hours_of_data: Some(336),
        volumes: Vec::new(),
        monthly_cost: "7.49".parse().unwrap(),
        monthly_savings: "7.49".parse().unwrap(),
        cost_basis: "list_price".into(),
        evidence: "CPU p95 1.2% (max 3.0%) over 336 hours in the last 14 days".into(),
    };
    app.store
        .replace_recommendations(tenant, &[finding.to_record(now)])
        .await
        .unwrap();
    World {
        app,
        ana,
        tenant,
        account,
        instance,
    }
}

/// Another member of ana's tenant with `role`, acting in it.
async fn member(w: &World, email: &str, role: &str) -> Session {
    let s = w.app.signup(email, &format!("{email} co")).await;
    w.app.add_member(&w.ana.token, email, role).await;
    s
}

async fn as_member(
    w: &World,
    s: &Session,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> crate::common::Reply {
    w.app
        .call_with(
            method,
            path,
            Some(&s.token),
            &[("x-tenant-id", w.ana.tenant_id.as_str())],
            body,
        )
        .await
}

async fn audit(w: &World, query: &str) -> Vec<Value> {
    let reply = w
        .app
        .get(&format!("/api/audit{query}"), Some(&w.ana.token))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_idle_instance_is_stopped_by_token_and_confirmation_and_every_step_is_audited() {
    let _moto = testing::shared().await;
    let w = world(Default::default()).await;
    let path = format!("/api/instances/{}/actions", w.instance);

    let ticket = w
        .app
        .post(&path, Some(&w.ana.token), json!({"action": "stop"}))
        .await;
    assert_eq!(ticket.status, StatusCode::CREATED, "{}", ticket.text);
    let token = ticket.body["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("csa_") && token.len() > 40, "{token}");
    assert_eq!(ticket.body["action"], "stop");
    assert_eq!(ticket.body["instance"]["instance_id"], w.instance.as_str());
    assert_eq!(ticket.body["instance"]["name"], "idle-web");
    assert_eq!(ticket.body["monthly_cost"], "7.49");
    assert_eq!(ticket.body["cost_basis"], "recommendation");
    assert_eq!(ticket.body["finding"]["kind"], "idle");
    assert_eq!(ticket.body["confirm"]["path"], "/api/actions/confirm");
    let expires: chrono::DateTime<Utc> =
        ticket.body["expires_at"].as_str().unwrap().parse().unwrap();
    let ttl = expires - Utc::now();
    assert!(
        ttl > Duration::minutes(4) && ttl <= Duration::minutes(5),
        "{ttl}"
    );
    assert!(
        ticket.body["summary"]
            .as_str()
            .unwrap()
            .starts_with("Stop ")
    );
    // Asking changed nothing.
    assert_eq!(aws_state(&w.account, &w.instance).await, "running");

    let done = w
        .app
        .post(
            "/api/actions/confirm",
            Some(&w.ana.token),
            json!({"token": token}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(done.body["instance_id"], w.instance.as_str());
    assert_eq!(done.body["previous_state"], "running");
    assert!(
        matches!(done.body["state"].as_str(), Some("stopping" | "stopped")),
        "{}",
        done.text
    );
    assert!(done.body["aws_request_id"].is_string(), "{}", done.text);
    assert_eq!(aws_state(&w.account, &w.instance).await, "stopped");
    let stored = w.app.store.instances(w.tenant).await.unwrap();
    assert_ne!(
        stored[0].state, "running",
        "the stored state follows at once"
    );

    let again = w
        .app
        .post(
            "/api/actions/confirm",
            Some(&w.ana.token),
            json!({"token": token}),
        )
        .await;
    assert_eq!(
        (again.status, again.code(), again.field()),
        (StatusCode::CONFLICT, Some("token_used"), Some("token"))
    );

    // Stopping a stopped instance is refused before any token is issued.
    let pointless = w
        .app
        .post(&path, Some(&w.ana.token), json!({"action": "stop"}))
        .await;
    assert_eq!(
        (pointless.status, pointless.code()),
        (StatusCode::CONFLICT, Some("invalid_state")),
        "{}",
        pointless.text
    );

    // Every step is in the audit log with the email, the outcome and AWS's request id.
    let entries = audit(&w, "?action=instance.action").await;
    let steps: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("instance.action.request", "refused"),
            ("instance.action.confirm", "refused"),
            ("instance.action.confirm", "succeeded"),
            ("instance.action.request", "succeeded"),
        ]
    );
    assert!(entries.iter().all(|e| e["user_email"] == "ana@example.com"));
    let confirmed = &entries[2];
    assert_eq!(
        confirmed["detail"]["outcome"]["instance_id"],
        w.instance.as_str()
    );
    assert_eq!(
        confirmed["detail"]["outcome"]["aws_request_id"],
        done.body["aws_request_id"]
    );
    assert_eq!(entries[1]["detail"]["error"]["code"], "token_used");
    assert!(
        !serde_json::to_string(&entries).unwrap().contains(&token),
        "the clear token is never stored"
    );
    assert_eq!(
        audit(&w, "?status=refused&user=ANA@example.com")
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn foreign_other_user_viewer_unknown_and_expired_requests_are_refused_and_change_nothing() {
    let _moto = testing::shared().await;
    let config = cloudspend_api::ApiConfig {
        action_token_ttl: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let w = world(config).await;
    let path = format!("/api/instances/{}/actions", w.instance);
    let vic = member(&w, "vic@example.com", "viewer").await;
    let cy = member(&w, "cy@example.com", "admin").await;
    let bob = w.app.signup("bob@example.com", "Bobco").await;

    let viewer = as_member(
        &w,
        &vic,
        Method::POST,
        &path,
        Some(json!({"action": "stop"})),
    )
    .await;
    assert_eq!(
        (viewer.status, viewer.code()),
        (StatusCode::FORBIDDEN, Some("insufficient_role"))
    );
    let unknown = w
        .app
        .post(
            "/api/instances/i-0123456789abcdef0/actions",
            Some(&w.ana.token),
            json!({"action": "stop"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    let bad = w
        .app
        .post(&path, Some(&w.ana.token), json!({"action": "terminate"}))
        .await;
    assert_eq!(
        (bad.status, bad.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("action"))
    );
    let foreign_instance = w
        .app
        .post(&path, Some(&bob.token), json!({"action": "stop"}))
        .await;
    assert_eq!(foreign_instance.status, StatusCode::NOT_FOUND);

    let ticket = w
        .app
        .post(&path, Some(&w.ana.token), json!({"action": "stop"}))
        .await;
    assert_eq!(ticket.status, StatusCode::CREATED, "{}", ticket.text);
    let token = json!({"token": ticket.body["token"]});

    let foreign = w
        .app
        .post("/api/actions/confirm", Some(&bob.token), token.clone())
        .await;
    assert_eq!(
        (foreign.status, foreign.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("token")),
        "another tenant's token looks unknown: {}",
        foreign.text
    );
    let other_user = as_member(
        &w,
        &cy,
        Method::POST,
        "/api/actions/confirm",
        Some(token.clone()),
    )
    .await;
    assert_eq!(
        (other_user.status, other_user.code()),
        (StatusCode::FORBIDDEN, Some("token_not_yours"))
    );
    let by_viewer = as_member(
        &w,
        &vic,
        Method::POST,
        "/api/actions/confirm",
        Some(token.clone()),
    )
    .await;
    assert_eq!(by_viewer.status, StatusCode::FORBIDDEN);
    let garbage = w
        .app
        .post(
            "/api/actions/confirm",
            Some(&w.ana.token),
            json!({"token": "csa_nope"}),
        )
        .await;
    assert_eq!(garbage.field(), Some("token"));

    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let expired = w
        .app
        .post("/api/actions/confirm", Some(&w.ana.token), token)
        .await;
    assert_eq!(
        (expired.status, expired.code()),
        (StatusCode::CONFLICT, Some("token_expired")),
        "{}",
        expired.text
    );
    assert!(expired.text.contains("expired"));

    // Nothing happened in AWS, and the tenant's own log has each refusal with who asked.
    assert_eq!(aws_state(&w.account, &w.instance).await, "running");
    let refused = audit(&w, "?status=refused").await;
    let who: Vec<(&str, &str)> = refused
        .iter()
        .map(|e| {
            (
                e["user_email"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        who.contains(&("vic@example.com", "instance.action.request")),
        "{who:?}"
    );
    assert!(
        who.contains(&("vic@example.com", "instance.action.confirm")),
        "{who:?}"
    );
    assert!(
        who.contains(&("cy@example.com", "instance.action.confirm")),
        "{who:?}"
    );
    assert!(
        who.contains(&("ana@example.com", "instance.action.confirm")),
        "{who:?}"
    );
    assert_eq!(
        refused
            .iter()
            .filter(|e| e["detail"]["error"]["code"] == "token_expired")
            .count(),
        1
    );
    // Bob's refusal is in Bobco's log, not in Acme's.
    assert!(!who.iter().any(|(email, _)| *email == "bob@example.com"));
    // Viewers do not read the audit log.
    let log = as_member(&w, &vic, Method::GET, "/api/audit", None).await;
    assert_eq!(log.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn concurrent_confirmations_of_one_token_act_once() {
    let _moto = testing::shared().await;
    let w = world(Default::default()).await;
    let ticket = w
        .app
        .post(
            &format!("/api/instances/{}/actions", w.instance),
            Some(&w.ana.token),
            json!({"action": "stop"}),
        )
        .await;
    let token = json!({"token": ticket.body["token"]});
    let confirms = (0..4).map(|_| {
        w.app
            .post("/api/actions/confirm", Some(&w.ana.token), token.clone())
    });
    let replies = futures::future::join_all(confirms).await;
    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        replies
            .iter()
            .filter(|r| r.status != StatusCode::OK)
            .all(|r| r.code() == Some("token_used"))
    );
    assert_eq!(
        audit(&w, "?action=instance.action.confirm&status=succeeded")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn with_actions_disabled_the_endpoints_refuse_and_say_how_to_enable_them() {
    let _moto = testing::exclusive().await;
    let moto = Moto::from_env();
    let w = world(Default::default()).await;
    // Assume the role while moto accepts anything (the server caches the session), and create
    // the role with no policy: with authentication on, the role may do nothing.
    let listed = w
        .app
        .get(
            &format!("/api/instances/{}/alarms", w.instance),
            Some(&w.ana.token),
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let access = testing::aws_access().await;
    let config = access
        .sdk_config(TenantId::new(), &role_in(&w.account), REGION)
        .await
        .unwrap();
    moto.create_role(&config, "CloudSpendReadOnly").await;

    moto.enforce_auth_after(Some(0)).await;
    let stop = w
        .app
        .post(
            &format!("/api/instances/{}/actions", w.instance),
            Some(&w.ana.token),
            json!({"action": "stop"}),
        )
        .await;
    // (CloudWatch is not checked here: with authentication on, moto 5.2.5 rejects the awsQuery
    // signature of aws-sdk-cloudwatch 1.99 with SignatureDoesNotMatch before it evaluates IAM, so
    // it never answers AccessDenied. Alarm calls map AccessDenied to the same refusal.)
    let status = w.app.get("/api/actions/status", Some(&w.ana.token)).await;
    moto.enforce_auth_after(None).await;

    assert_eq!(
        (stop.status, stop.code()),
        (StatusCode::FORBIDDEN, Some("actions_disabled")),
        "{}",
        stop.text
    );
    let message = stop.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("EnableActions=true") && message.contains("CloudFormation"),
        "{message}"
    );
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    assert_eq!(status.body["enabled"], false, "{}", status.text);
    assert!(
        status.body["how_to_enable"]
            .as_str()
            .unwrap()
            .contains("EnableActions")
    );
    assert_eq!(aws_state(&w.account, &w.instance).await, "running");
    let refused = audit(&w, "?status=refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|e| e["detail"]["error"]["code"] == "actions_disabled")
    );
}

#[tokio::test]
async fn cpu_alarms_are_created_listed_and_deleted_through_cloudwatch() {
    let _moto = testing::shared().await;
    let w = world(Default::default()).await;
    let path = format!("/api/instances/{}/alarms", w.instance);
    let invalid = w
        .app
        .post(&path, Some(&w.ana.token), json!({"threshold": 180}))
        .await;
    assert_eq!(invalid.field(), Some("threshold"));
    let created = w
        .app
        .post(
            &path,
            Some(&w.ana.token),
            json!({"threshold": 80, "period_seconds": 300, "evaluation_periods": 2}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let name = created.body["alarm"]["name"].as_str().unwrap().to_string();
    let short = &w.ana.tenant_id.replace('-', "")[..8];
    assert!(
        name.starts_with(&format!("cloudspend-{short}-{}-cpu-gt-80", w.instance)),
        "{name}"
    );
    assert_eq!(created.body["alarm"]["instance_id"], w.instance.as_str());
    assert_eq!(created.body["alarm"]["threshold"], 80.0);
    assert_eq!(created.body["alarm"]["period_seconds"], 300);
    assert_eq!(created.body["alarm"]["comparison"], "GreaterThanThreshold");

    let listed = w.app.get(&path, Some(&w.ana.token)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.body["alarms"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["alarms"][0]["name"], name.as_str());

    let not_ours = w
        .app
        .call(
            Method::DELETE,
            &format!("{path}/some-other-alarm"),
            Some(&w.ana.token),
            None,
        )
        .await;
    assert_eq!(not_ours.status, StatusCode::NOT_FOUND);
    let deleted = w
        .app
        .call(
            Method::DELETE,
            &format!("{path}/{name}"),
            Some(&w.ana.token),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    let listed = w.app.get(&path, Some(&w.ana.token)).await;
    assert_eq!(listed.body["alarms"], json!([]));
    let again = w
        .app
        .call(
            Method::DELETE,
            &format!("{path}/{name}"),
            Some(&w.ana.token),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    let entries = audit(&w, "?action=instance.alarm&status=succeeded").await;
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["instance.alarm.delete", "instance.alarm.create"]
    );
    assert!(
        entries
            .iter()
            .all(|e| e["detail"]["outcome"]["aws_request_id"].is_string())
    );
}

#[tokio::test]
async fn a_budget_shows_on_the_dashboard_and_crossing_a_threshold_queues_one_alert() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let tenant: TenantId = ana.tenant_id.parse().unwrap();
    let sub = app
        .post(
            "/api/alerts/subscriptions",
            Some(&ana.token),
            json!({"name": "finance", "channel": "webhook", "target": "http://127.0.0.1:9/hook",
                   "threshold_kind": "absolute", "threshold": "1", "frequency": "immediate"}),
        )
        .await;
    assert_eq!(sub.status, StatusCode::CREATED, "{}", sub.text);

    let none = app.get("/api/budgets", Some(&ana.token)).await;
    assert_eq!(none.body, json!({"budget": null}));
    let bad = app
        .call(
            Method::PUT,
            "/api/budgets",
            Some(&ana.token),
            Some(json!({"amount": "-5"})),
        )
        .await;
    assert_eq!(bad.field(), Some("amount"));
    let bad = app
        .call(
            Method::PUT,
            "/api/budgets",
            Some(&ana.token),
            Some(json!({"amount": "100", "actual_thresholds": [0]})),
        )
        .await;
    assert_eq!(bad.field(), Some("actual_thresholds"));
    let put = app
        .call(
            Method::PUT,
            "/api/budgets",
            Some(&ana.token),
            Some(json!({"amount": "100.00", "actual_thresholds": [80, 50, 100], "forecast_thresholds": [100]})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    assert_eq!(money(&put.body["budget"]["amount"]), money(&json!("100")));
    assert_eq!(
        put.body["budget"]["actual_thresholds"],
        json!([50, 80, 100])
    );
    assert_eq!(money(&put.body["budget"]["spent"]), Money::ZERO);
    assert!(app.store.deliveries(tenant, 10).await.unwrap().is_empty());

    // 90.00 spent today: 90% of the budget.
    let today = Utc::now().date_naive();
    let cost = CostRecord::from_cost_explorer(
        today,
        "111111111111",
        "AmazonEC2",
        "90.00".parse::<Money>().unwrap(),
        "90.00".parse::<Money>().unwrap(),
        "USD",
        false,
    );
    app.store.upsert_daily_costs(tenant, &[cost]).await.unwrap();
    let refreshed = cloudspend_insights::refresh(app.store.as_ref(), tenant, Utc::now())
        .await
        .unwrap();
    assert!(refreshed.alerts_queued >= 1);
    let deliveries = app.store.deliveries(tenant, 10).await.unwrap();
    let month = today.format("%Y-%m").to_string();
    let subjects: Vec<&str> = deliveries
        .iter()
        .filter(|d| d.kind == "budget")
        .map(|d| d.subject_key.as_str())
        .collect();
    assert!(
        subjects.contains(&format!("budget:{month}:actual:80").as_str()),
        "one alert for the highest threshold crossed, not one per threshold: {subjects:?}"
    );
    assert!(!subjects.contains(&format!("budget:{month}:actual:50").as_str()));
    // Checked again after the next collection: nothing new.
    let again = cloudspend_insights::refresh(app.store.as_ref(), tenant, Utc::now())
        .await
        .unwrap();
    assert_eq!(again.alerts_queued, 0);

    let dashboard = app.get("/api/dashboard", Some(&ana.token)).await;
    assert_eq!(dashboard.status, StatusCode::OK, "{}", dashboard.text);
    let budget = &dashboard.body["budget"];
    assert_eq!(money(&budget["amount"]), money(&json!("100")));
    assert_eq!(money(&budget["spent"]), money(&json!("90")));
    assert_eq!(budget["percent_spent"], 90.0);
    assert_eq!(budget["month"], month.as_str());
    assert!(
        budget["crossed"]["actual"]
            .as_array()
            .unwrap()
            .contains(&json!(80))
    );
    assert_eq!(
        money(&budget["forecast"]),
        money(&dashboard.body["forecast"]["amount"]),
        "the budget's forecast is the dashboard's"
    );
    let got = app.get("/api/budgets", Some(&ana.token)).await;
    assert_eq!(money(&got.body["budget"]["spent"]), money(&json!("90")));

    let entries = app.get("/api/audit?action=budget", Some(&ana.token)).await;
    assert_eq!(entries.body["entries"][0]["status"], "succeeded");
    assert_eq!(entries.body["retention_days"], 90);
    let gone = app
        .call(Method::DELETE, "/api/budgets", Some(&ana.token), None)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let dashboard = app.get("/api/dashboard", Some(&ana.token)).await;
    assert_eq!(dashboard.body["budget"], Value::Null);
}
