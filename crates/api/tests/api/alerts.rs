//! Issue 16 item 6: alert fairness. Two deliverers ("replicas") and an endpoint slower than a
//! claim: every alert is sent once, and another tenant's alerts go out meanwhile; an endpoint
//! slower than the attempt budget fails in time; subscriptions and test sends are limited per
//! tenant.

use crate::common::{Session, TestApp};
use axum::body::Bytes;
use chrono::Utc;
use cloudspend_core::TenantId;
use cloudspend_insights::alerts::{Deliverer, DeliveryLimits};
use cloudspend_store::{Delivery, DeliveryStatus};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A webhook endpoint on loopback that notes each request as it arrives, then answers 204
/// after `delay`.
#[derive(Clone, Default)]
struct Endpoint {
    arrived: Arc<Mutex<Vec<(Instant, Value)>>>,
}

impl Endpoint {
    async fn start(delay: Duration) -> (Self, String) {
        let endpoint = Endpoint::default();
        let arrived = endpoint.arrived.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: Bytes| {
                let arrived = arrived.clone();
                async move {
                    let body: Value = serde_json::from_slice(&body).unwrap();
                    arrived.lock().unwrap().push((Instant::now(), body));
                    tokio::time::sleep(delay).await;
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (endpoint, url)
    }

    fn delivery_ids(&self) -> Vec<String> {
        self.arrived
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| body["delivery_id"].as_str().unwrap().to_string())
            .collect()
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.arrived
            .lock()
            .unwrap()
            .iter()
            .map(|(at, _)| *at)
            .collect()
    }
}

async fn subscribe(app: &TestApp, who: &Session, name: &str, url: &str) -> String {
    let reply = app
        .post(
            "/api/alerts/subscriptions",
            Some(&who.token),
            json!({"name": name, "channel": "webhook", "target": url,
                   "threshold_kind": "absolute", "threshold": "1"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["id"].as_str().unwrap().to_string()
}

async fn send_test(app: &TestApp, who: &Session, subscription: &str) -> crate::common::Reply {
    app.post(
        &format!("/api/alerts/subscriptions/{subscription}/test"),
        Some(&who.token),
        json!({}),
    )
    .await
}

async fn deliveries(app: &TestApp, who: &Session) -> Vec<Delivery> {
    let tenant: TenantId = who.tenant_id.parse().unwrap();
    app.store.deliveries(tenant, 100).await.unwrap()
}

fn deliverer(app: &TestApp, limits: DeliveryLimits) -> Deliverer {
    Deliverer::new(app.store.clone(), crate::common::test_master_key())
        .with_egress(crate::common::loopback_only())
        .with_limits(limits)
        .with_poll_interval(Duration::from_millis(100))
}

/// Waits up to `limit` for `done`, checking every 50 ms.
async fn wait_for(limit: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_deliverers_send_each_alert_once_to_a_slow_endpoint_while_other_tenants_alerts_go_out()
{
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    // Acme's endpoint answers after 4 s, four times the claim deliverers hold without extending.
    let claim = Duration::from_secs(1);
    let (slow, slow_url) = Endpoint::start(Duration::from_secs(4)).await;
    let (fast, fast_url) = Endpoint::start(Duration::ZERO).await;
    let acme_sub = subscribe(&app, &ana, "slow", &slow_url).await;
    let bobco_sub = subscribe(&app, &bob, "fast", &fast_url).await;
    for _ in 0..3 {
        assert_eq!(
            send_test(&app, &ana, &acme_sub).await.status,
            StatusCode::ACCEPTED
        );
    }
    for _ in 0..3 {
        assert_eq!(
            send_test(&app, &bob, &bobco_sub).await.status,
            StatusCode::ACCEPTED
        );
    }

    let limits = DeliveryLimits {
        concurrent: 4,
        per_tenant: 2,
        attempt_budget: Duration::from_secs(20),
        claim,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let replicas: Vec<_> = (0..2)
        .map(|_| {
            let replica = deliverer(&app, limits);
            let mut stopped = stopped.clone();
            tokio::spawn(replica.run(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }))
        })
        .collect();

    // Bobco's alerts go out at once, while Acme's endpoint still holds its first requests.
    wait_for(Duration::from_secs(3), "Bobco's three alerts", async || {
        fast.delivery_ids().len() >= 3
    })
    .await;
    let first_slow_answer = started + Duration::from_secs(4);
    assert!(
        fast.arrivals().iter().all(|at| *at < first_slow_answer),
        "Bobco waited for Acme's endpoint"
    );

    // Acme's three are each sent once, though every send outlived the claim several times
    // (a second send of one ends the wait: the checks below name it).
    wait_for(
        Duration::from_secs(30),
        "Acme's three alerts delivered",
        async || {
            slow.delivery_ids().len() > 3
                || deliveries(&app, &ana)
                    .await
                    .iter()
                    .all(|d| d.status == DeliveryStatus::Delivered)
        },
    )
    .await;
    // Long enough for a claim left to run out to be taken and sent again.
    tokio::time::sleep(claim * 3).await;
    stop.send(true).unwrap();
    for replica in replicas {
        replica.await.unwrap();
    }
    for (who, endpoint) in [(&ana, &slow), (&bob, &fast)] {
        let sent = endpoint.delivery_ids();
        let mut distinct = sent.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(sent.len(), 3, "{}: {sent:?}", who.tenant_id);
        assert_eq!(
            distinct.len(),
            3,
            "{}: an alert sent twice: {sent:?}",
            who.tenant_id
        );
        for d in deliveries(&app, who).await {
            assert_eq!(
                (d.status, d.attempts, d.response_code),
                (DeliveryStatus::Delivered, 1, Some(204)),
                "{d:?}"
            );
        }
    }
}

#[tokio::test]
async fn an_endpoint_slower_than_the_attempt_budget_fails_in_time_and_holds_back_nothing() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let (stalled, stalled_url) = Endpoint::start(Duration::from_secs(30)).await;
    let (fast, fast_url) = Endpoint::start(Duration::ZERO).await;
    let acme_sub = subscribe(&app, &ana, "stalled", &stalled_url).await;
    let bobco_sub = subscribe(&app, &bob, "fast", &fast_url).await;
    assert_eq!(
        send_test(&app, &ana, &acme_sub).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        send_test(&app, &bob, &bobco_sub).await.status,
        StatusCode::ACCEPTED
    );

    let sender = deliverer(
        &app,
        DeliveryLimits {
            attempt_budget: Duration::from_secs(1),
            ..DeliveryLimits::default()
        },
    );
    let started = Instant::now();
    assert_eq!(sender.deliver_due(Utc::now()).await.unwrap(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the pass waited {:?} for the stalled endpoint",
        started.elapsed()
    );
    assert_eq!(stalled.delivery_ids().len(), 1);
    assert_eq!(fast.delivery_ids().len(), 1);
    let acme = deliveries(&app, &ana).await;
    assert_eq!(
        (acme[0].status, acme[0].attempts),
        (DeliveryStatus::Pending, 1)
    );
    let error = acme[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("no answer within 1 s"), "{error}");
    assert!(
        acme[0].next_attempt_at > Utc::now(),
        "retried later, with backoff"
    );
    assert_eq!(
        deliveries(&app, &bob).await[0].status,
        DeliveryStatus::Delivered
    );
}

#[tokio::test]
async fn subscriptions_and_test_sends_are_limited_per_tenant() {
    let app = TestApp::spawn_with(
        cloudspend_store::testing::fresh_postgres().await,
        cloudspend_api::ApiConfig {
            egress: cloudspend_insights::egress::EgressPolicy::public_only()
                .with_internal_allowed(true),
            max_subscriptions_per_tenant: 2,
            alert_tests_per_hour: 3,
            ..Default::default()
        },
    )
    .await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let url = "http://127.0.0.1:9/hook";
    let first = subscribe(&app, &ana, "one", url).await;
    subscribe(&app, &ana, "two", url).await;
    let third = app
        .post(
            "/api/alerts/subscriptions",
            Some(&ana.token),
            json!({"name": "three", "channel": "webhook", "target": url,
                   "threshold_kind": "absolute", "threshold": "1"}),
        )
        .await;
    assert_eq!(third.status, StatusCode::CONFLICT, "{}", third.text);
    assert_eq!(third.code(), Some("subscription_limit"));
    assert!(
        third.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 alert subscriptions"),
        "{}",
        third.text
    );
    let listed = app.get("/api/alerts/subscriptions", Some(&ana.token)).await;
    assert_eq!(listed.body["subscriptions"].as_array().unwrap().len(), 2);
    // Another tenant's allowance is its own.
    let bobs = subscribe(&app, &bob, "bob's", url).await;

    for _ in 0..3 {
        assert_eq!(
            send_test(&app, &ana, &first).await.status,
            StatusCode::ACCEPTED
        );
    }
    let fourth = send_test(&app, &ana, &first).await;
    assert_eq!(
        fourth.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        fourth.text
    );
    let wait: u64 = fourth.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&wait), "Retry-After {wait}");
    assert!(
        fourth.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3 an hour per tenant"),
        "{}",
        fourth.text
    );
    assert_eq!(
        deliveries(&app, &ana).await.len(),
        3,
        "the refused test queued nothing"
    );
    assert_eq!(
        send_test(&app, &bob, &bobs).await.status,
        StatusCode::ACCEPTED
    );
    // Each test sent is in the audit log.
    let audit = app
        .get(
            "/api/audit?action=alert.subscription.test",
            Some(&ana.token),
        )
        .await;
    assert_eq!(audit.body["counts"]["total"], 3, "{}", audit.text);
}
