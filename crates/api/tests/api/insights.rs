//! Issue 6: the dashboard equals the stored rows to the cent (one source per day), anomalies
//! are found, explained, ruled on and alerted through a real local webhook receiver, idle
//! instances are priced, and another tenant sees none of it.

use crate::common::TestApp;
use axum::body::Bytes;
use axum::http::HeaderMap;
use chrono::{Datelike, Days, Duration, NaiveDate, Utc};
use cloudspend_core::records::{CostRecord, CostSource, Instance, MetricPoint};
use cloudspend_core::{Money, TenantId};
use cloudspend_insights::alerts::{Deliverer, RetryPolicy, SIGNATURE_HEADER, sign};
use cloudspend_insights::egress::EgressPolicy;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

fn m(s: &str) -> Money {
    s.parse().unwrap()
}

fn ce(day: NaiveDate, account: &str, service: &str, amount: Money, estimated: bool) -> CostRecord {
    CostRecord::from_cost_explorer(day, account, service, amount, amount, "USD", estimated)
}

/// 90 days of steady costs ending yesterday with a weekly rhythm, and (when `spike`) EC2 in
/// account 111 jumping by $400/day over the last two days, caused by one instance in the CUR.
fn history(today: NaiveDate, spike: bool) -> Vec<CostRecord> {
    let mut rows = Vec::new();
    for back in 1..=90u64 {
        let day = today - Days::new(back);
        let weekend = matches!(day.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
        let ec2 = if weekend { m("80.25") } else { m("100.50") };
        let spiking = spike && back <= 2;
        rows.push(ce(
            day,
            "111111111111",
            "Amazon Elastic Compute Cloud - Compute",
            ec2,
            false,
        ));
        rows.push(ce(
            day,
            "222222222222",
            "Amazon Simple Storage Service",
            m("20.125"),
            false,
        ));
        rows.push(ce(
            day,
            "111111111111",
            "AWS Lambda",
            m("0.000000123"),
            false,
        ));
        if spiking {
            // The CUR covers the spike days: it breaks EC2 down by usage type and instance.
            for (resource, usage, amount) in [
                ("i-0runaway000000001", "BoxUsage:p3.8xlarge", m("400.00")),
                ("i-0steady0000000002", "BoxUsage:m5.large", ec2),
            ] {
                rows.push(CostRecord {
                    source: CostSource::Cur,
                    region: "us-east-1".into(),
                    usage_type: usage.into(),
                    resource_id: resource.into(),
                    line_item_type: "Usage".into(),
                    ..ce(
                        day,
                        "111111111111",
                        "Amazon Elastic Compute Cloud - Compute",
                        amount,
                        false,
                    )
                });
            }
            rows.push(CostRecord {
                source: CostSource::Cur,
                region: "us-east-1".into(),
                usage_type: "TimedStorage-ByteHrs".into(),
                resource_id: "logs-bucket".into(),
                line_item_type: "Usage".into(),
                ..ce(
                    day,
                    "222222222222",
                    "Amazon Simple Storage Service",
                    m("20.125"),
                    false,
                )
            });
            rows.push(CostRecord {
                source: CostSource::Cur,
                region: "us-east-1".into(),
                usage_type: "Request".into(),
                resource_id: "fn".into(),
                line_item_type: "Usage".into(),
                ..ce(day, "111111111111", "AWS Lambda", m("0.000000123"), false)
            });
        }
    }
    rows
}

fn sum_of_chosen(rows: &[CostRecord], from: NaiveDate, to: NaiveDate) -> Money {
    cloudspend_core::records::one_source_per_day(rows.to_vec())
        .iter()
        .filter(|r| r.day >= from && r.day < to)
        .map(|r| r.unblended)
        .sum()
}

#[tokio::test]
async fn the_dashboard_equals_the_stored_rows_to_the_cent_and_is_per_tenant() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let tenant: TenantId = ana.tenant_id.parse().unwrap();
    let today = Utc::now().date_naive();
    let mut rows = history(today, true);
    // CE's own view of the spike days, which the CUR supersedes; and an estimated credit today.
    rows.push(ce(
        today - Days::new(1),
        "111111111111",
        "Amazon Elastic Compute Cloud - Compute",
        m("999.99"),
        false,
    ));
    rows.push(ce(
        today,
        "111111111111",
        "Credits",
        m("-3.333333333"),
        true,
    ));
    app.store.upsert_daily_costs(tenant, &rows).await.unwrap();
    // What the CE collector would do: the CE row for yesterday is replaced by its final value.
    let to = today + Days::new(1);
    let from = to - Days::new(30);

    let reply = app.get("/api/dashboard", Some(&ana.token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let d = &reply.body;
    assert_eq!(d["from"], from.to_string());
    assert_eq!(d["to"], to.to_string());
    assert_eq!(
        d["total"].as_str().unwrap().parse::<Money>().unwrap(),
        sum_of_chosen(&rows, from, to)
    );
    let previous = sum_of_chosen(&rows, from - Days::new(30), from);
    assert_eq!(
        d["previous"]["total"]
            .as_str()
            .unwrap()
            .parse::<Money>()
            .unwrap(),
        previous
    );
    assert_eq!(
        d["change"].as_str().unwrap().parse::<Money>().unwrap(),
        sum_of_chosen(&rows, from, to) - previous
    );
    let month_start = today.with_day0(0).unwrap();
    assert_eq!(
        d["month_to_date"]
            .as_str()
            .unwrap()
            .parse::<Money>()
            .unwrap(),
        sum_of_chosen(&rows, month_start, to)
    );
    assert!(d["forecast"]["method"].as_str().unwrap().len() > 10);
    // The daily series: one point per day, stacked services adding up to the day exactly,
    // today's estimate marked.
    let daily = d["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 30);
    for point in daily {
        let day: NaiveDate = point["day"].as_str().unwrap().parse().unwrap();
        let amount: Money = point["amount"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            amount,
            sum_of_chosen(&rows, day, day + Days::new(1)),
            "{day}"
        );
        let stacked: Money = point["by_service"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["amount"].as_str().unwrap().parse::<Money>().unwrap())
            .sum();
        assert_eq!(stacked, amount, "{day}: the stack adds up to the day");
    }
    assert_eq!(daily.last().unwrap()["estimated"], true);
    assert_eq!(daily[0]["estimated"], false);
    // Breakdowns add up to the total.
    for key in ["top_services", "top_accounts", "top_regions"] {
        let parts: Money = d[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["amount"].as_str().unwrap().parse::<Money>().unwrap())
            .sum();
        assert_eq!(parts, sum_of_chosen(&rows, from, to), "{key}");
    }
    assert_eq!(
        d["top_services"][0]["key"],
        "Amazon Elastic Compute Cloud - Compute"
    );
    assert_eq!(d["connection"]["status"], "not_connected");
    assert!(d["source_rule"].as_str().unwrap().contains("CUR"));

    // A window given explicitly, and a bad one.
    let window = app
        .get(
            &format!("/api/dashboard?from={}&to={}", today - Days::new(7), today),
            Some(&ana.token),
        )
        .await;
    assert_eq!(window.status, StatusCode::OK);
    assert_eq!(
        window.body["total"]
            .as_str()
            .unwrap()
            .parse::<Money>()
            .unwrap(),
        sum_of_chosen(&rows, today - Days::new(7), today)
    );
    let bad = app
        .get("/api/dashboard?from=2026-13-01", Some(&ana.token))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.field(), Some("from"));
    let backwards = app
        .get(
            "/api/dashboard?from=2026-11-02&to=2026-11-01",
            Some(&ana.token),
        )
        .await;
    assert_eq!(backwards.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Bob's dashboard is empty.
    let bobs = app.get("/api/dashboard", Some(&bob.token)).await;
    assert_eq!(bobs.status, StatusCode::OK);
    assert_eq!(bobs.body["total"], "0.00");
    assert!(bobs.body["top_services"].as_array().unwrap().is_empty());
    assert!(!bobs.text.contains("111111111111"));
    assert_eq!(
        app.get("/api/dashboard", None).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Served again from the cache until a write moves the tenant's data version: a new cost
    // row shows at once, and so does an anomaly verdict or a connection change.
    let again = app.get("/api/dashboard", Some(&ana.token)).await;
    assert_eq!(again.text, reply.text);
    let late = ce(
        today,
        "222222222222",
        "Amazon Simple Storage Service",
        m("1.01"),
        true,
    );
    app.store
        .upsert_daily_costs(tenant, std::slice::from_ref(&late))
        .await
        .unwrap();
    rows.push(late);
    let after = app.get("/api/dashboard", Some(&ana.token)).await;
    assert_eq!(
        after.body["total"]
            .as_str()
            .unwrap()
            .parse::<Money>()
            .unwrap(),
        sum_of_chosen(&rows, from, to)
    );
    assert_ne!(after.body["total"], reply.body["total"]);
    app.store
        .put_connection(
            tenant,
            &cloudspend_aws_access::testing::role_connection("123456789012", &["us-east-1"]),
        )
        .await
        .unwrap();
    let connected = app.get("/api/dashboard", Some(&ana.token)).await;
    assert_eq!(connected.body["connection"]["account_id"], "123456789012");
}

/// A webhook receiver on loopback that records what it is sent and answers with the queued
/// status codes (then 204).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    answers: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    async fn start(answers: Vec<u16>) -> (Self, String) {
        let receiver = Receiver {
            answers: Arc::new(Mutex::new(answers)),
            ..Default::default()
        };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    state.got.lock().unwrap().push((headers, body));
                    let mut answers = state.answers.lock().unwrap();
                    let code = if answers.is_empty() {
                        204
                    } else {
                        answers.remove(0)
                    };
                    axum::http::StatusCode::from_u16(code).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    fn received(&self) -> Vec<(HeaderMap, Value, Bytes)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(h, b)| (h.clone(), serde_json::from_slice(b).unwrap(), b.clone()))
            .collect()
    }
}

#[tokio::test]
async fn a_cost_spike_is_found_explained_ruled_on_and_alerted_through_a_signed_webhook() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let tenant: TenantId = ana.tenant_id.parse().unwrap();
    let now = Utc::now();
    let today = now.date_naive();

    // Subscriptions first: one webhook that fails once, one threshold nobody reaches.
    let (receiver, url) = Receiver::start(vec![500]).await;
    let sub = app
        .post(
            "/api/alerts/subscriptions",
            Some(&ana.token),
            json!({"name": "ops", "channel": "webhook", "target": url, "threshold_kind": "absolute",
                   "threshold": "100", "frequency": "immediate"}),
        )
        .await;
    assert_eq!(sub.status, StatusCode::CREATED, "{}", sub.text);
    let secret = sub.body["signing_secret"].as_str().unwrap().to_string();
    let quiet = app
        .post(
            "/api/alerts/subscriptions",
            Some(&ana.token),
            json!({"name": "only disasters", "channel": "webhook", "target": url,
                   "threshold_kind": "percent", "threshold": "100000"}),
        )
        .await;
    assert_eq!(quiet.status, StatusCode::CREATED, "{}", quiet.text);
    let listed = app.get("/api/alerts/subscriptions", Some(&ana.token)).await;
    assert_eq!(listed.body["subscriptions"].as_array().unwrap().len(), 2);
    assert!(
        !listed.text.contains(&secret),
        "the secret is shown once only"
    );
    for (body, field) in [
        (
            json!({"name": "x", "channel": "pager", "target": url, "threshold_kind": "absolute", "threshold": "1"}),
            "channel",
        ),
        (
            json!({"name": "x", "channel": "webhook", "target": "ftp://x", "threshold_kind": "absolute", "threshold": "1"}),
            "target",
        ),
        (
            json!({"name": "x", "channel": "email", "target": "not-an-address", "threshold_kind": "absolute", "threshold": "1"}),
            "channel", // no SMTP on this server
        ),
        (
            json!({"name": "x", "channel": "webhook", "target": url, "threshold_kind": "absolute", "threshold": "lots"}),
            "threshold",
        ),
        (
            json!({"name": "x", "channel": "webhook", "target": url, "threshold_kind": "absolute", "threshold": "1", "frequency": "hourly"}),
            "frequency",
        ),
        (
            json!({"name": "", "channel": "webhook", "target": url, "threshold_kind": "absolute", "threshold": "1"}),
            "name",
        ),
    ] {
        let reply = app
            .post("/api/alerts/subscriptions", Some(&ana.token), body)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.text
        );
        assert_eq!(reply.field(), Some(field), "{}", reply.text);
    }
    assert_eq!(
        app.get("/api/alerts/subscriptions", Some(&ana.token))
            .await
            .body["subscriptions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Instance CPU for the runaway instance, so the root cause carries evidence.
    let mut cpu = Vec::new();
    for h in 0..48 {
        cpu.push(MetricPoint {
            instance_id: "i-0runaway000000001".into(),
            metric: "CPUUtilization".into(),
            period_seconds: 3600,
            timestamp: (today - Days::new(2))
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                + Duration::hours(h),
            average: 97.0,
            maximum: 100.0,
            unit: "Percent".into(),
        });
    }
    app.store.upsert_metric_points(tenant, &cpu).await.unwrap();
    app.store
        .upsert_daily_costs(tenant, &history(today, true))
        .await
        .unwrap();
    let found = cloudspend_insights::refresh(app.store.as_ref(), tenant, now)
        .await
        .unwrap();
    assert!(!found.new_anomalies.is_empty());
    assert!(found.alerts_queued >= 1);

    let list = app.get("/api/anomalies", Some(&ana.token)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let anomalies = list.body["anomalies"].as_array().unwrap();
    let total = anomalies
        .iter()
        .find(|a| a["series"] == "total")
        .expect("the total spiked");
    assert_eq!(total["dimension"], "total");
    assert_eq!(total["status"], "open");
    assert_eq!(total["last_day"], (today - Days::new(1)).to_string());
    let impact: Money = total["impact"].as_str().unwrap().parse().unwrap();
    assert!(impact > m("700") && impact < m("900"), "impact {impact}");
    // Nothing about the calm series: S3 and Lambda did not move.
    assert!(
        anomalies
            .iter()
            .all(|a| !a["series"].as_str().unwrap().contains("Storage"))
    );
    let causes = total["root_causes"].as_array().unwrap();
    let mut by_dimension: BTreeMap<&str, &Value> = BTreeMap::new();
    for cause in causes {
        // The largest contributor of each dimension comes first.
        by_dimension
            .entry(cause["dimension"].as_str().unwrap())
            .or_insert(cause);
    }
    assert_eq!(
        by_dimension["service"]["key"],
        "Amazon Elastic Compute Cloud - Compute"
    );
    assert_eq!(by_dimension["account"]["key"], "111111111111");
    assert_eq!(by_dimension["usage_type"]["key"], "BoxUsage:p3.8xlarge");
    assert_eq!(by_dimension["resource"]["key"], "i-0runaway000000001");
    assert_eq!(by_dimension["resource"]["cpu"]["p95"], 97.0);
    let id = total["id"].as_str().unwrap().to_string();

    let detail = app
        .get(&format!("/api/anomalies/{id}"), Some(&ana.token))
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text);
    let series = detail.body["series"].as_array().unwrap();
    assert!(series.len() >= 30);
    let spike_day = series
        .iter()
        .find(|s| s["day"] == (today - Days::new(1)).to_string())
        .unwrap();
    assert_eq!(spike_day["anomalous"], true);
    assert!(
        spike_day["upper"]
            .as_str()
            .unwrap()
            .parse::<Money>()
            .unwrap()
            < spike_day["actual"]
                .as_str()
                .unwrap()
                .parse::<Money>()
                .unwrap()
    );

    // Bob: no anomalies, and Ana's id is not found for him.
    assert!(
        app.get("/api/anomalies", Some(&bob.token)).await.body["anomalies"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        app.get(&format!("/api/anomalies/{id}"), Some(&bob.token))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let foreign = app
        .post(
            &format!("/api/anomalies/{id}/status"),
            Some(&bob.token),
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/api/anomalies/not-a-uuid", Some(&ana.token))
            .await
            .field(),
        Some("id")
    );

    // A viewer may look but not rule; an owner acknowledges; a bad status names the field.
    app.signup("vic@example.com", "Vic's own").await;
    app.add_member(&ana.token, "vic@example.com", "viewer")
        .await;
    let vic = app.login("vic@example.com").await.body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let as_viewer = app
        .call_with(
            reqwest::Method::POST,
            &format!("/api/anomalies/{id}/status"),
            Some(&vic),
            &[("X-Tenant-Id", &ana.tenant_id)],
            Some(json!({"status": "acknowledged"})),
        )
        .await;
    assert_eq!(
        as_viewer.status,
        StatusCode::FORBIDDEN,
        "{}",
        as_viewer.text
    );
    let wrong = app
        .post(
            &format!("/api/anomalies/{id}/status"),
            Some(&ana.token),
            json!({"status": "gone"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong.field(), Some("status"));
    let acked = app
        .post(
            &format!("/api/anomalies/{id}/status"),
            Some(&ana.token),
            json!({"status": "acknowledged"}),
        )
        .await;
    assert_eq!(acked.status, StatusCode::OK, "{}", acked.text);
    assert_eq!(acked.body["status"], "acknowledged");
    // Detecting again keeps the verdict and queues no second alert.
    cloudspend_insights::refresh(app.store.as_ref(), tenant, now)
        .await
        .unwrap();
    let again = app
        .get(&format!("/api/anomalies/{id}"), Some(&ana.token))
        .await;
    assert_eq!(again.body["anomaly"]["status"], "acknowledged");
    let open = app
        .get("/api/anomalies?status=open", Some(&ana.token))
        .await;
    assert!(
        open.body["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != id.as_str())
    );

    // Deliver: the first answer is a 500, so one retry; the second succeeds.
    // The receiver is on loopback, which a deployed server refuses (see the next test).
    let deliverer = Deliverer::new(app.store.clone(), crate::common::test_master_key())
        .with_egress(crate::common::loopback_only())
        .with_retry(RetryPolicy {
            base: std::time::Duration::ZERO,
            max_attempts: 5,
        });
    let mut rounds = 0;
    while app
        .store
        .deliveries(tenant, 100)
        .await
        .unwrap()
        .iter()
        .any(|d| d.status != cloudspend_store::DeliveryStatus::Delivered)
    {
        deliverer
            .deliver_due(Utc::now() + Duration::seconds(120))
            .await
            .unwrap();
        rounds += 1;
        assert!(rounds < 10, "deliveries never completed");
    }
    let got = receiver.received();
    let anomaly_alerts: Vec<_> = got
        .iter()
        .filter(|(_, body, _)| body["event"] == "anomaly.detected")
        .collect();
    assert!(!anomaly_alerts.is_empty());
    assert!(
        anomaly_alerts
            .iter()
            .all(|(_, body, _)| body["subscription"]["name"] == "ops"),
        "the 100000% subscription heard nothing"
    );
    let (headers, body, raw) = anomaly_alerts.last().unwrap();
    assert_eq!(
        headers[SIGNATURE_HEADER].to_str().unwrap(),
        sign(secret.as_bytes(), raw)
    );
    assert!(
        body["anomaly"]["impact"]
            .as_str()
            .unwrap()
            .parse::<Money>()
            .unwrap()
            >= m("100")
    );
    let distinct: std::collections::BTreeSet<String> = got
        .iter()
        .map(|(_, body, _)| body["delivery_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        got.len(),
        distinct.len() + 1,
        "one failed attempt, then each alert once"
    );
    let log = app.get("/api/alerts/deliveries", Some(&ana.token)).await;
    assert_eq!(log.status, StatusCode::OK);
    let deliveries = log.body["deliveries"].as_array().unwrap();
    assert!(deliveries.iter().all(|d| d["status"] == "delivered"));
    assert!(deliveries.iter().any(|d| d["attempts"] == 2));
    assert!(
        app.get("/api/alerts/deliveries", Some(&bob.token))
            .await
            .body["deliveries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        app.get("/api/alerts/subscriptions", Some(&bob.token))
            .await
            .body["subscriptions"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A test alert goes out on request; deleting a subscription is per tenant.
    let sub_id = sub.body["id"].as_str().unwrap();
    assert_eq!(
        app.post(
            &format!("/api/alerts/subscriptions/{sub_id}/test"),
            Some(&ana.token),
            json!({})
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
    deliverer.deliver_due(Utc::now()).await.unwrap();
    assert!(
        receiver
            .received()
            .iter()
            .any(|(_, body, _)| body["event"] == "test")
    );
    let bob_delete = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/alerts/subscriptions/{sub_id}"),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(bob_delete.status, StatusCode::NOT_FOUND);
    let delete = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/alerts/subscriptions/{sub_id}"),
            Some(&ana.token),
            None,
        )
        .await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn idle_and_oversized_instances_are_priced_from_the_cur_or_list_prices() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let tenant: TenantId = ana.tenant_id.parse().unwrap();
    let now = Utc::now();
    let instance = |id: &str, kind: &str, state: &str| Instance {
        account_id: "111111111111".into(),
        region: "us-east-1".into(),
        instance_id: id.into(),
        instance_type: kind.into(),
        state: state.into(),
        launch_time: Some(now - Duration::days(60)),
        availability_zone: "us-east-1a".into(),
        platform: "Linux/UNIX".into(),
        tags: BTreeMap::from([("Name".to_string(), format!("{id}-name"))]),
        last_seen_at: now,
        volume_ids: Vec::new(),
        state_since: None,
    };
    app.store
        .upsert_instances(
            tenant,
            &[
                instance("i-idle", "m5.xlarge", "running"),
                instance("i-big", "m5.xlarge", "running"),
                instance("i-busy", "m5.large", "running"),
                instance("i-new", "t3.micro", "running"),
                // Stopped, but no CUR rows for its volume: nothing to say.
                Instance {
                    volume_ids: vec!["vol-nocur".into()],
                    ..instance("i-off", "t3.micro", "stopped")
                },
                // Stopped for 20 days with two billed volumes (one named by its ARN in the CUR).
                Instance {
                    volume_ids: vec!["vol-root1".into(), "vol-data1".into(), "vol-free".into()],
                    state_since: Some(now - Duration::days(20)),
                    ..instance("i-parked", "m5.large", "stopped")
                },
                // Stopped two days ago: a weekend, not a finding yet.
                Instance {
                    volume_ids: vec!["vol-wk".into()],
                    state_since: Some(now - Duration::days(2)),
                    ..instance("i-weekend", "m5.large", "stopped")
                },
            ],
        )
        .await
        .unwrap();
    let mut points = Vec::new();
    for h in 0..(14 * 24) {
        let at = now - Duration::hours(h + 1);
        for (id, cpu) in [
            ("i-idle", 1.5 + (h % 3) as f64),
            ("i-big", 11.0 + (h % 5) as f64),
            ("i-busy", 60.0),
        ] {
            points.push(MetricPoint {
                instance_id: id.into(),
                metric: "CPUUtilization".into(),
                period_seconds: 3600,
                timestamp: at,
                average: cpu,
                maximum: cpu + 1.0,
                unit: "Percent".into(),
            });
        }
        if h < 10 {
            points.push(MetricPoint {
                instance_id: "i-new".into(),
                metric: "CPUUtilization".into(),
                period_seconds: 3600,
                timestamp: at,
                average: 0.5,
                maximum: 0.5,
                unit: "Percent".into(),
            });
        }
    }
    app.store
        .upsert_metric_points(tenant, &points)
        .await
        .unwrap();
    // The CUR prices i-big: $3.30/day over the last 30 days; and the stopped instances' volumes.
    let today = now.date_naive();
    let cur: Vec<CostRecord> = (1..=30u64)
        .flat_map(|back| {
            [
                ("i-big", "BoxUsage:m5.xlarge", "3.30"),
                ("vol-root1", "EBS:VolumeUsage.gp3", "0.10"),
                (
                    "arn:aws:ec2:us-east-1:111111111111:volume/vol-data1",
                    "EBS:VolumeUsage.gp3",
                    "0.50",
                ),
                ("vol-wk", "EBS:VolumeUsage.gp3", "1.00"),
            ]
            .map(|(resource, usage_type, amount)| CostRecord {
                source: CostSource::Cur,
                region: "us-east-1".into(),
                usage_type: usage_type.into(),
                resource_id: resource.into(),
                line_item_type: "Usage".into(),
                ..ce(
                    today - Days::new(back),
                    "111111111111",
                    "Amazon Elastic Compute Cloud - Compute",
                    m(amount),
                    false,
                )
            })
        })
        .collect();
    app.store.upsert_daily_costs(tenant, &cur).await.unwrap();
    cloudspend_insights::refresh(app.store.as_ref(), tenant, now)
        .await
        .unwrap();

    let reply = app.get("/api/recommendations", Some(&ana.token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let recs = reply.body["recommendations"].as_array().unwrap();
    assert_eq!(recs.len(), 3, "{}", reply.text);
    let idle = recs.iter().find(|r| r["instance_id"] == "i-idle").unwrap();
    assert_eq!(idle["kind"], "idle");
    assert_eq!(idle["action"], "stop");
    assert_eq!(idle["cost_basis"], "list_price");
    assert_eq!(idle["monthly_cost"], "140.16");
    assert_eq!(idle["monthly_savings"], "140.16");
    assert_eq!(idle["hours_of_data"], 336);
    assert_eq!(idle["cpu_p95"], 3.5);
    assert_eq!(idle["name"], "i-idle-name");
    let big = recs.iter().find(|r| r["instance_id"] == "i-big").unwrap();
    assert_eq!(big["kind"], "oversized");
    assert_eq!(big["suggested_type"], "m5.large");
    assert_eq!(big["cost_basis"], "cur");
    assert_eq!(big["monthly_cost"], "99.00");
    assert_eq!(big["monthly_savings"], "49.50");
    let parked = recs
        .iter()
        .find(|r| r["instance_id"] == "i-parked")
        .unwrap();
    assert_eq!(parked["kind"], "stopped_with_volumes");
    assert_eq!(parked["action"], "delete_volumes");
    assert_eq!(parked["cost_basis"], "cur");
    assert_eq!(parked["monthly_cost"], "18.00");
    assert_eq!(parked["monthly_savings"], "18.00");
    assert_eq!(parked["cpu_p95"], Value::Null);
    assert_eq!(
        parked["volumes"],
        serde_json::json!([
            {"volume_id": "vol-root1", "monthly_cost": "3.00"},
            {"volume_id": "vol-data1", "monthly_cost": "15.00"}
        ])
    );
    let evidence = parked["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("2 of its 3 EBS volumes") && evidence.contains("18.00"),
        "{evidence}"
    );
    assert_eq!(reply.body["total_monthly_savings"], "207.66");
    // Not recommended: busy, too little data (10 h < 30 h), stopped without billed volumes,
    // stopped too recently.
    assert!(recs.iter().all(|r| r["instance_id"] != "i-busy"
        && r["instance_id"] != "i-new"
        && r["instance_id"] != "i-off"
        && r["instance_id"] != "i-weekend"));

    let dash = app.get("/api/dashboard", Some(&ana.token)).await;
    assert_eq!(dash.body["idle"]["count"], 1);
    assert_eq!(dash.body["idle"]["monthly_savings"], "140.16");
    assert_eq!(dash.body["savings"]["monthly_savings"], "207.66");
    assert_eq!(dash.body["instances"]["total"], 7);
    assert_eq!(dash.body["instances"]["by_state"]["running"], 4);

    let bobs = app.get("/api/recommendations", Some(&bob.token)).await;
    assert!(bobs.body["recommendations"].as_array().unwrap().is_empty());
    assert_eq!(bobs.body["total_monthly_savings"], "0.00");
}

#[tokio::test]
async fn alerts_go_out_by_email_through_smtp_when_the_server_has_a_relay() {
    let store = cloudspend_store::testing::fresh_postgres().await;
    let app = TestApp::spawn_with(
        store,
        cloudspend_api::ApiConfig {
            smtp_configured: true,
            ..Default::default()
        },
    )
    .await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let tenant: TenantId = ana.tenant_id.parse().unwrap();
    let bad = app
        .post(
            "/api/alerts/subscriptions",
            Some(&ana.token),
            json!({"name": "x", "channel": "email", "target": "not-an-address", "threshold_kind": "absolute", "threshold": "1"}),
        )
        .await;
    assert_eq!(bad.field(), Some("target"), "{}", bad.text);
    let sub = app
        .post(
            "/api/alerts/subscriptions",
            Some(&ana.token),
            json!({"name": "finops", "channel": "email", "target": "finops@example.com",
                   "threshold_kind": "percent", "threshold": "20"}),
        )
        .await;
    assert_eq!(sub.status, StatusCode::CREATED, "{}", sub.text);
    let today = Utc::now().date_naive();
    app.store
        .upsert_daily_costs(tenant, &history(today, true))
        .await
        .unwrap();
    cloudspend_insights::refresh(app.store.as_ref(), tenant, Utc::now())
        .await
        .unwrap();

    let (url, mails) = crate::common::smtp_sink().await;
    let deliverer = Deliverer::new(app.store.clone(), crate::common::test_master_key())
        .with_smtp(&cloudspend_insights::alerts::SmtpSettings {
            url,
            from: "CloudSpend <alerts@cloudspend.test>".into(),
        })
        .unwrap();
    deliverer.deliver_due(Utc::now()).await.unwrap();
    let log = app.store.deliveries(tenant, 10).await.unwrap();
    assert!(!log.is_empty());
    assert!(
        log.iter()
            .all(|d| d.status == cloudspend_store::DeliveryStatus::Delivered
                && d.response_code == Some(250)),
        "{log:?}"
    );
    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), log.len());
    let mail = mails
        .iter()
        .find(|m| m.contains("series total") || m.contains("Cost anomaly: total"))
        .expect("the total's alert");
    assert!(mail.contains("To: finops@example.com"), "{mail}");
    assert!(
        mail.contains("From: CloudSpend <alerts@cloudspend.test>"),
        "{mail}"
    );
    // Quoted-printable: undo soft line breaks before reading the text.
    let text = mail.replace("=\n", "");
    assert!(
        text.contains("Subject: [CloudSpend] Cost anomaly: total +800.00 (critical)"),
        "{text}"
    );
    assert!(
        text.contains("top cause service Amazon Elastic Compute Cloud - Compute"),
        "{text}"
    );
}

#[tokio::test]
async fn cpu_points_carry_the_metric_detectors_score_and_a_spike_is_flagged() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let tenant: TenantId = ana.tenant_id.parse().unwrap();
    let now = Utc::now();
    app.store
        .upsert_instances(
            tenant,
            &[Instance {
                account_id: "111111111111".into(),
                region: "us-east-1".into(),
                instance_id: "i-spiky".into(),
                instance_type: "m5.large".into(),
                state: "running".into(),
                launch_time: None,
                availability_zone: "us-east-1a".into(),
                platform: "Linux/UNIX".into(),
                tags: BTreeMap::new(),
                last_seen_at: now,
                volume_ids: Vec::new(),
                state_since: None,
            }],
        )
        .await
        .unwrap();
    // Two days of 5-minute points wobbling around 20%, then a jump to 95%.
    let points: Vec<MetricPoint> = (0..576)
        .map(|i| MetricPoint {
            instance_id: "i-spiky".into(),
            metric: "CPUUtilization".into(),
            period_seconds: 300,
            timestamp: now - Duration::minutes(5 * (576 - i)),
            average: if i >= 570 {
                95.0
            } else {
                20.0 + (i % 7) as f64 * 0.5
            },
            maximum: 99.0,
            unit: "Percent".into(),
        })
        .collect();
    app.store
        .upsert_metric_points(tenant, &points)
        .await
        .unwrap();
    let from = (now - Duration::days(3)).to_rfc3339();
    let reply = app
        .get(
            &format!("/api/instances/i-spiky/cpu?from={}", urlencode(&from)),
            Some(&ana.token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let got = reply.body["points"].as_array().unwrap();
    assert_eq!(got.len(), 576);
    let flagged: Vec<usize> = got
        .iter()
        .enumerate()
        .filter(|(_, p)| p["anomaly"] == true)
        .map(|(i, _)| i)
        .collect();
    assert!(flagged.contains(&570), "the jump is flagged: {flagged:?}");
    assert!(
        flagged.iter().all(|i| *i >= 570),
        "nothing before it: {flagged:?}"
    );
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn series_with_too_little_history_say_so_instead_of_being_judged() {
    // The count is of the days that teach the weekday baseline: the 1st of a month is judged by
    // its own rule (month-start fees) and not counted. So five days of a new service count 5 in
    // mid-month and 4 when the five include a 1st (the test once read the real clock and failed
    // in the first days of December). UTC throughout: daylight-saving changes move nothing.
    for (now, counted) in [
        ("2026-06-17T12:00:00Z", 5),
        ("2026-12-05T14:53:00Z", 4),
        ("2027-01-03T00:30:00Z", 4),
        ("2026-03-29T01:30:00Z", 5), // Europe's clocks go forward
        ("2026-11-01T06:30:00Z", 5), // the US's go back; the 1st is today, not among the five
        ("2028-03-01T23:59:59Z", 5), // after a 29 February
    ] {
        let now: chrono::DateTime<Utc> = now.parse().unwrap();
        series_coverage_at(now, counted).await;
    }
}

async fn series_coverage_at(now: chrono::DateTime<Utc>, counted: u64) {
    let app = TestApp::spawn_at(now).await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let tenant: TenantId = ana.tenant_id.parse().unwrap();
    let today = now.date_naive();
    let mut rows = history(today, false);
    // A service the tenant started using five days ago.
    for back in 1..=5u64 {
        rows.push(ce(
            today - Days::new(back),
            "111111111111",
            "Amazon Bedrock",
            m("42.00"),
            false,
        ));
    }
    app.store.upsert_daily_costs(tenant, &rows).await.unwrap();

    let reply = app.get("/api/anomalies/series", Some(&ana.token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{now}: {}", reply.text);
    let series = reply.body["series"].as_array().unwrap();
    let find = |name: &str| {
        series
            .iter()
            .find(|s| s["series"] == name)
            .unwrap_or_else(|| panic!("{now}: {name} missing: {}", reply.text))
    };
    let bedrock = find("service:Amazon Bedrock");
    assert_eq!(
        bedrock["status"], "insufficient_history",
        "{now}: {}",
        reply.text
    );
    assert_eq!(bedrock["days"], counted, "{now}");
    assert!(bedrock["required"].as_u64().unwrap() > 5);
    // Listed first, so the few series not judged are not lost among the many that are.
    assert_eq!(series[0]["series"], "service:Amazon Bedrock", "{now}");
    let total = find("total");
    assert_eq!(total["status"], "scored", "{now}");
    assert_eq!(total["days"], Value::Null);
    assert_eq!(find("account:222222222222")["status"], "scored", "{now}");
    assert_eq!(reply.body["insufficient_history"], 1, "{now}");
    assert_eq!(
        reply.body["scored"].as_u64().unwrap() as usize,
        series.len() - 1
    );

    let bobs = app.get("/api/anomalies/series", Some(&bob.token)).await;
    assert_eq!(bobs.status, StatusCode::OK);
    assert!(bobs.body["series"].as_array().unwrap().is_empty());
    assert_eq!(
        app.get("/api/anomalies/series", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn webhooks_to_internal_addresses_are_refused_unless_the_operator_allows_them() {
    let store = cloudspend_store::testing::fresh_postgres().await;
    // As deployed: public webhook targets only.
    let app = TestApp::spawn_with(store.clone(), cloudspend_api::ApiConfig::default()).await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let tenant: TenantId = ana.tenant_id.parse().unwrap();
    for target in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[::1]:8080/",
        "http://localhost:3000/hook",
        "http://10.0.0.5/admin",
    ] {
        let reply = app
            .post(
                "/api/alerts/subscriptions",
                Some(&ana.token),
                json!({"name": "inward", "channel": "webhook", "target": target,
                       "threshold_kind": "absolute", "threshold": "1"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{target}");
        assert_eq!(reply.body["error"]["field"], "target", "{target}");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("internal address"),
            "{target}: {}",
            reply.text
        );
    }
    assert!(
        app.get("/api/alerts/subscriptions", Some(&ana.token))
            .await
            .body["subscriptions"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A subscription made where internal targets were allowed is still not delivered by a
    // sender that does not allow them: the delivery fails with the reason, nothing is sent.
    let open = TestApp::spawn_with(
        store,
        cloudspend_api::ApiConfig {
            egress: EgressPolicy::public_only().with_internal_allowed(true),
            ..Default::default()
        },
    )
    .await;
    let (receiver, url) = Receiver::start(vec![]).await;
    let sub = open
        .post(
            "/api/alerts/subscriptions",
            Some(&ana.token),
            json!({"name": "loopback", "channel": "webhook", "target": url,
                   "threshold_kind": "absolute", "threshold": "1"}),
        )
        .await;
    assert_eq!(sub.status, StatusCode::CREATED, "{}", sub.text);
    let sub_id = sub.body["id"].as_str().unwrap();
    assert_eq!(
        open.post(
            &format!("/api/alerts/subscriptions/{sub_id}/test"),
            Some(&ana.token),
            json!({})
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
    let deliverer = Deliverer::new(open.store.clone(), crate::common::test_master_key());
    assert_eq!(deliverer.deliver_due(Utc::now()).await.unwrap(), 1);
    assert!(receiver.received().is_empty());
    let log = app.store.deliveries(tenant, 10).await.unwrap();
    let error = log[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("internal address"), "{error}");
}

/// The operator's egress list (`CLOUDSPEND_EGRESS_ALLOW`, which the fuzzing server runs with):
/// a target off the list is refused when subscribing and, for one made before the list was set,
/// when delivering, without a DNS query or a connection; a listed receiver still gets its alert.
#[tokio::test]
async fn an_egress_allow_list_refuses_other_targets_at_subscription_and_at_delivery() {
    let store = cloudspend_store::testing::fresh_postgres().await;
    let listed = TestApp::spawn_with(
        store.clone(),
        cloudspend_api::ApiConfig {
            egress: crate::common::loopback_only(),
            ..Default::default()
        },
    )
    .await;
    let ana = listed.signup("ana@example.com", "Acme").await;
    let tenant: TenantId = ana.tenant_id.parse().unwrap();
    for target in [
        "https://hooks.example.com/cloudspend",
        "http://8.8.8.8/hook",
        "http://10.0.0.5/admin",
        "http://localhost:3000/hook",
    ] {
        let reply = subscribe(&listed, &ana.token, "elsewhere", target).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{target}");
        assert_eq!(reply.body["error"]["field"], "target", "{target}");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("CLOUDSPEND_EGRESS_ALLOW"),
            "{target}: {message}"
        );
    }
    let (receiver, url) = Receiver::start(vec![]).await;
    let local = subscribe(&listed, &ana.token, "local", &url).await;
    assert_eq!(local.status, StatusCode::CREATED, "{}", local.text);

    // Made on a server without the list, then delivered by a sender that has it.
    let open = TestApp::spawn_with(store, cloudspend_api::ApiConfig::default()).await;
    let public = subscribe(
        &open,
        &ana.token,
        "public",
        "https://hooks.example.com/cloudspend",
    )
    .await;
    assert_eq!(public.status, StatusCode::CREATED, "{}", public.text);
    for reply in [&local, &public] {
        let id = reply.body["id"].as_str().unwrap();
        let test = open
            .post(
                &format!("/api/alerts/subscriptions/{id}/test"),
                Some(&ana.token),
                json!({}),
            )
            .await;
        assert_eq!(test.status, StatusCode::ACCEPTED);
    }
    let deliverer = Deliverer::new(open.store.clone(), crate::common::test_master_key())
        .with_egress(crate::common::loopback_only());
    assert_eq!(deliverer.deliver_due(Utc::now()).await.unwrap(), 2);
    assert_eq!(
        receiver.received().len(),
        1,
        "the listed receiver got its test"
    );
    let log = open.store.deliveries(tenant, 10).await.unwrap();
    let public_id = public.body["id"].as_str().unwrap();
    let refused = log
        .iter()
        .find(|d| d.subscription_id.to_string() == public_id)
        .expect("the public subscription's delivery is logged");
    let error = refused.last_error.clone().unwrap_or_default();
    assert!(error.contains("CLOUDSPEND_EGRESS_ALLOW"), "{error}");
    assert_ne!(refused.status.as_str(), "delivered");
}

async fn subscribe(app: &TestApp, token: &str, name: &str, target: &str) -> crate::common::Reply {
    let body = json!({"name": name, "channel": "webhook", "target": target,
                      "threshold_kind": "absolute", "threshold": "1"});
    app.post("/api/alerts/subscriptions", Some(token), body)
        .await
}

/// 150 days of steady costs ending yesterday with a weekly rhythm, EC2 in account 111 moving to
/// two and a half times its level `shift_back` days ago (a new workload) and staying there.
fn level_shift_history(today: NaiveDate, shift_back: u64) -> Vec<CostRecord> {
    let mut rows = Vec::new();
    for back in 1..=150u64 {
        let day = today - Days::new(back);
        let weekend = matches!(day.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
        let ec2 = match (weekend, back <= shift_back) {
            (false, false) => m("100.50"),
            (true, false) => m("80.25"),
            (false, true) => m("251.25"),
            (true, true) => m("200.625"),
        };
        rows.push(ce(
            day,
            "111111111111",
            "Amazon Elastic Compute Cloud - Compute",
            ec2,
            false,
        ));
        rows.push(ce(
            day,
            "222222222222",
            "Amazon Simple Storage Service",
            m("20.125"),
            false,
        ));
    }
    rows
}

#[tokio::test]
async fn a_change_marked_planned_stops_alerting_for_the_total_and_the_service_that_moved() {
    let now: chrono::DateTime<Utc> = "2026-11-18T12:00:00Z".parse().unwrap();
    let app = TestApp::spawn_at(now).await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let tenant: TenantId = ana.tenant_id.parse().unwrap();
    let today = now.date_naive();
    let shift_day = today - Days::new(30);
    app.store
        .upsert_daily_costs(tenant, &level_shift_history(today, 30))
        .await
        .unwrap();
    let open_anomalies = || async {
        app.get("/api/anomalies?status=open", Some(&ana.token))
            .await
            .body["anomalies"]
            .as_array()
            .unwrap()
            .clone()
    };

    // Unmarked, the new level is an anomaly of the total from the day it began.
    let found = cloudspend_insights::refresh(app.store.as_ref(), tenant, now)
        .await
        .unwrap();
    assert!(!found.new_anomalies.is_empty());
    let open = open_anomalies().await;
    let shift = open
        .iter()
        .find(|a| a["series"] == "total")
        .unwrap_or_else(|| panic!("the level shift is found: {open:?}"));
    assert_eq!(shift["first_day"], shift_day.to_string(), "{shift}");
    let id = shift["id"].as_str().unwrap().to_string();

    // The tenant says it was planned; the next passes raise nothing about it or after it.
    let marked = app
        .post(
            &format!("/api/anomalies/{id}/status"),
            Some(&ana.token),
            json!({"status": "planned"}),
        )
        .await;
    assert_eq!(marked.status, StatusCode::OK, "{}", marked.text);
    for _ in 0..2 {
        let again = cloudspend_insights::refresh(app.store.as_ref(), tenant, now)
            .await
            .unwrap();
        let new: Vec<&str> = again
            .new_anomalies
            .iter()
            .map(|a| a.detection.series.as_str())
            .collect();
        assert!(new.is_empty(), "new anomalies after the mark: {new:?}");
    }
    let open = open_anomalies().await;
    assert!(
        open.iter().all(|a| a["series"] != "total"
            && a["series"] != "service:Amazon Elastic Compute Cloud - Compute"),
        "{open:?}"
    );
    assert!(open.is_empty(), "nothing else moved: {open:?}");
    // The planned verdict stays listed.
    let planned = app
        .get("/api/anomalies?status=planned", Some(&ana.token))
        .await;
    let planned = planned.body["anomalies"].as_array().unwrap();
    assert_eq!(planned.len(), 1, "{planned:?}");
    assert_eq!(planned[0]["id"], id.as_str());

    // The chart says why the week after the change is not judged, and judges the days after it
    // against the new level.
    let detail = app
        .get(&format!("/api/anomalies/{id}"), Some(&ana.token))
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text);
    let series = detail.body["series"].as_array().unwrap();
    let day = |d: NaiveDate| {
        series
            .iter()
            .find(|s| s["day"] == d.to_string())
            .unwrap_or_else(|| panic!("{d} in the chart"))
    };
    for back in 0..7 {
        let settling = day(shift_day + Days::new(back));
        assert_eq!(settling["status"], "planned", "{settling}");
        assert_eq!(settling["anomalous"], false);
    }
    assert_eq!(day(shift_day - Days::new(1))["status"], "scored");
    for s in series
        .iter()
        .filter(|s| s["day"].as_str().unwrap() > shift_day.to_string().as_str())
    {
        assert_eq!(s["anomalous"], false, "{s}");
    }
    let settled: Vec<&Value> = series
        .iter()
        .filter(|s| s["day"].as_str().unwrap() >= (shift_day + Days::new(7)).to_string().as_str())
        .collect();
    assert!(
        !settled.is_empty(),
        "the chart reaches past the settling week"
    );
    // Judged again after the week (the 1st of a month has its own rule).
    assert!(
        settled.iter().all(|s| s["status"] != "planned"),
        "{settled:?}"
    );
    assert!(
        settled.iter().any(|s| s["status"] == "scored"),
        "{settled:?}"
    );

    // Bob sees none of it.
    let bobs = app.get("/api/anomalies", Some(&bob.token)).await;
    assert!(bobs.body["anomalies"].as_array().unwrap().is_empty());
    assert_eq!(
        app.get(&format!("/api/anomalies/{id}"), Some(&bob.token))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

fn money(v: &Value) -> Money {
    v.as_str()
        .unwrap_or_else(|| panic!("money is a decimal string: {v}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_month_end_forecast_prices_weekends_and_the_fee_on_the_1st_with_an_interval() {
    let now: chrono::DateTime<Utc> = "2026-06-10T12:00:00Z".parse().unwrap();
    let app = TestApp::spawn_at(now).await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let tenant: TenantId = ana.tenant_id.parse().unwrap();
    let today = now.date_naive();
    // Weekdays $100, weekends $40, a $600 support fee on every 1st, final through yesterday;
    // today's partial figure is an estimated $5.
    let mut rows = Vec::new();
    for day in NaiveDate::from_ymd_opt(2026, 1, 1)
        .unwrap()
        .iter_days()
        .take_while(|d| *d < today)
    {
        let weekend = matches!(day.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
        let usage = if weekend { m("40") } else { m("100") };
        rows.push(ce(day, "111111111111", "AmazonEC2", usage, false));
        if day.day() == 1 {
            rows.push(ce(day, "111111111111", "AWS Support", m("600"), false));
        }
    }
    rows.push(ce(today, "111111111111", "AmazonEC2", m("5"), true));
    app.store.upsert_daily_costs(tenant, &rows).await.unwrap();

    let reply = app.get("/api/dashboard", Some(&ana.token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let f = &reply.body["forecast"];
    assert_eq!(f["month"], "2026-06");
    // June 2026: the fee, 22 weekdays and 8 weekend days, today priced as the Wednesday it is.
    // The run rate would have spread the fee over the month: (1,380 / 9) x 30 = 4,600.
    assert_eq!(money(&f["amount"]), m("3120"), "{f}");
    let (lower, upper) = (money(&f["lower"]), money(&f["upper"]));
    assert!(lower <= m("3120") && m("3120") <= upper, "{f}");
    assert!(lower < upper, "{f}");
    assert!(lower >= m("1380"), "what is spent stays spent: {f}");
    let method = f["method"].as_str().unwrap();
    assert!(
        method.contains("weekday") && method.contains("90% interval"),
        "{method}"
    );
    assert_eq!(money(&reply.body["month_to_date"]), m("1385"));

    // The budget shows the same forecast and interval.
    let put = app
        .call(
            reqwest::Method::PUT,
            "/api/budgets",
            Some(&ana.token),
            Some(json!({"amount": "3000"})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let budget = &app.get("/api/budgets", Some(&ana.token)).await.body["budget"];
    assert_eq!(money(&budget["forecast"]), m("3120"), "{budget}");
    assert_eq!(money(&budget["forecast_lower"]), lower);
    assert_eq!(money(&budget["forecast_upper"]), upper);
    assert_eq!(budget["forecast_method"], f["method"]);

    // Bob has no costs: nothing to forecast, and no interval around it.
    let bobs = app.get("/api/dashboard", Some(&bob.token)).await;
    let f = &bobs.body["forecast"];
    assert_eq!(money(&f["amount"]), Money::ZERO, "{f}");
    assert_eq!(
        (money(&f["lower"]), money(&f["upper"])),
        (Money::ZERO, Money::ZERO)
    );
}
