//! Issue 16 item 5: the audit log a page at a time (an opaque cursor, stable while entries are
//! recorded), a time range, counts per outcome, bad values answered 422 naming the field, and
//! one tenant's log out of every other tenant's reach.

use crate::common::{Session, TestApp};
use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use cloudspend_core::{TenantId, UserId};
use cloudspend_store::{AuditStatus, NewAuditEntry};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Records an entry straight through the store, so a test chooses its time and outcome.
async fn record(
    app: &TestApp,
    who: &Session,
    action: &str,
    n: u64,
    status: AuditStatus,
    at: DateTime<Utc>,
) {
    let tenant: TenantId = who.tenant_id.parse().unwrap();
    let user: UserId = who.user_id.parse().unwrap();
    app.store
        .record_audit(NewAuditEntry {
            tenant_id: Some(tenant),
            user_id: Some(user),
            user_email: None,
            action: action.into(),
            status,
            detail: json!({"n": n}),
            at,
        })
        .await
        .unwrap();
}

async fn audit_page(app: &TestApp, who: &Session, query: &str) -> Value {
    let reply = app
        .get(&format!("/api/audit?{query}"), Some(&who.token))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.text);
    reply.body
}

fn numbers(page: &Value) -> Vec<u64> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"]["n"].as_u64().unwrap())
        .collect()
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[tokio::test]
async fn paging_by_cursor_lists_every_entry_once_while_new_entries_are_recorded() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let start = Utc::now() - Duration::hours(1);
    // 40 entries, four to an instant, so page boundaries fall between entries of one instant.
    for n in 0..40 {
        let status = [
            AuditStatus::Succeeded,
            AuditStatus::Refused,
            AuditStatus::Failed,
        ][n as usize % 3];
        record(
            &app,
            &ana,
            "test.seeded",
            n,
            status,
            start + Duration::seconds((n / 4) as i64),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("action=test&limit=7&cursor={c}"),
            None => "action=test&limit=7".to_string(),
        };
        let page = audit_page(&app, &ana, &query).await;
        let got = numbers(&page);
        assert!(got.len() <= 7, "{page}");
        seen.extend(got);
        pages += 1;
        // Between pages the log grows: newer entries of the same action, some through the API.
        record(
            &app,
            &ana,
            "test.seeded",
            1000 + pages,
            AuditStatus::Ok,
            Utc::now(),
        )
        .await;
        let budget = app
            .call(
                Method::PUT,
                "/api/budgets",
                Some(&ana.token),
                Some(json!({"amount": format!("{}.00", 100 + pages)})),
            )
            .await;
        assert_eq!(budget.status, StatusCode::OK, "{}", budget.text);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 20, "paging never ended");
    }
    assert_eq!(pages, 6, "40 entries in pages of 7");
    assert_eq!(seen.len(), 40, "no entry repeated or lost: {seen:?}");
    assert_eq!(
        seen.iter().copied().collect::<BTreeSet<u64>>(),
        (0..40).collect()
    );
    assert!(
        seen.windows(2).all(|w| w[0] / 4 >= w[1] / 4),
        "newest first: {seen:?}"
    );

    // Counts cover the whole filter, not the page: the 40 and the 6 recorded while paging.
    let first = audit_page(&app, &ana, "action=test&limit=1").await;
    assert_eq!(
        first["counts"],
        json!({"total": 46, "succeeded": 14, "refused": 13, "failed": 13, "ok": 6})
    );
    let refused = audit_page(&app, &ana, "action=test&status=refused&limit=200").await;
    assert_eq!(refused["counts"]["total"], 13);
    assert_eq!(numbers(&refused).len(), 13);
    assert_eq!(refused["next_cursor"], Value::Null);
    // The budget changes went in too, each once.
    let budgets = audit_page(&app, &ana, "action=budget.update").await;
    assert_eq!(budgets["counts"]["succeeded"], 6);
}

#[tokio::test]
async fn a_time_range_selects_from_inclusive_to_exclusive_as_instants_or_days() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let base = (Utc::now() - Duration::days(3))
        .date_naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    for n in 0..6u64 {
        record(
            &app,
            &ana,
            "test.range",
            n,
            AuditStatus::Ok,
            base + Duration::hours(n as i64 * 6),
        )
        .await;
    }
    let from = rfc3339(base + Duration::hours(6));
    let to = rfc3339(base + Duration::hours(24));
    let page = audit_page(&app, &ana, &format!("action=test&from={from}&to={to}")).await;
    assert_eq!(numbers(&page), vec![3, 2, 1]);
    assert_eq!(page["counts"]["total"], 3);
    // Days mean their start (UTC): the next day holds entries 2 to 5.
    let next_day = (base + Duration::days(1)).date_naive();
    let page = audit_page(&app, &ana, &format!("action=test&from={next_day}")).await;
    assert_eq!(numbers(&page), vec![5, 4, 3, 2]);
    let page = audit_page(&app, &ana, &format!("action=test&to={next_day}")).await;
    assert_eq!(numbers(&page), vec![1, 0]);
    // `+01:00` is read as an offset, not a space (encoded as it must be in a query).
    let offset = (base + Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S%%2B01:00");
    let page = audit_page(&app, &ana, &format!("action=test&from={offset}")).await;
    assert_eq!(numbers(&page).len(), 6);
}

#[tokio::test]
async fn bad_paging_and_range_values_are_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    // A made-up cursor in the year -188,000, which PostgreSQL cannot hold.
    let far_past = format!(
        "cursor={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("-6000000000000000000.{}", uuid::Uuid::new_v4()))
    );
    for (query, field) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=0001-01-01", "from"),
        ("to=9999-12-31T00:00:00Z", "to"),
        ("from=2026-12-02&to=2026-12-01", "from"),
        ("from=2026-12-01&to=2026-12-01", "from"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=MTIzNDU", "cursor"),
        ("status=maybe", "status"),
        (far_past.as_str(), "cursor"),
    ] {
        let reply = app
            .get(&format!("/api/audit?{query}"), Some(&ana.token))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            reply.text
        );
        assert_eq!(reply.field(), Some(field), "{query}: {}", reply.text);
    }
    let page = audit_page(&app, &ana, "limit=200").await;
    assert_eq!(
        page["counts"]["total"], 1,
        "the sign-up, and nothing the refusals added"
    );
}

#[tokio::test]
async fn the_audit_log_and_its_cursors_stay_within_the_callers_tenant() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let now = Utc::now();
    for n in 0..5 {
        record(
            &app,
            &ana,
            "test.acme",
            n,
            AuditStatus::Succeeded,
            now - Duration::minutes(10 - n as i64),
        )
        .await;
        record(
            &app,
            &bob,
            "test.bobco",
            100 + n,
            AuditStatus::Refused,
            now - Duration::minutes(10 - n as i64),
        )
        .await;
    }
    let acme_first = audit_page(&app, &ana, "action=test&limit=2").await;
    let acme_cursor = acme_first["next_cursor"].as_str().unwrap();

    // Bob, with Acme's cursor and filters, sees Bobco's entries only; Acme's counts are not his.
    let bobs = audit_page(&app, &bob, &format!("limit=200&cursor={acme_cursor}")).await;
    assert!(numbers(&bobs).iter().all(|n| *n >= 100), "{bobs}");
    let bobs = audit_page(&app, &bob, "action=test.acme").await;
    assert_eq!(bobs["counts"]["total"], 0);
    assert!(bobs["entries"].as_array().unwrap().is_empty());
    let bobs_all = audit_page(&app, &bob, "limit=200").await;
    assert!(
        bobs_all["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] != "test.acme" && e["user_email"] != "ana@example.com"),
        "{bobs_all}"
    );
    // Naming Acme in X-Tenant-Id does not get Bob in: he is no member there.
    let across = app
        .call_with(
            Method::GET,
            &format!("/api/audit?cursor={acme_cursor}"),
            Some(&bob.token),
            &[("x-tenant-id", ana.tenant_id.as_str())],
            None,
        )
        .await;
    assert!(
        matches!(across.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
        "{}",
        across.text
    );
    assert!(!across.text.contains("test.acme"), "{}", across.text);

    // A viewer of Acme does not read its log at all.
    let vic = app.signup("vic@example.com", "Vic's own").await;
    app.add_member(&ana.token, "vic@example.com", "viewer")
        .await;
    let viewer = app
        .call_with(
            Method::GET,
            "/api/audit",
            Some(&vic.token),
            &[("x-tenant-id", ana.tenant_id.as_str())],
            None,
        )
        .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN, "{}", viewer.text);

    // Acme's own paging is undisturbed: the rest after the cursor are Acme's, in order.
    let acme_rest = audit_page(&app, &ana, &format!("action=test&cursor={acme_cursor}")).await;
    assert_eq!(numbers(&acme_rest), vec![2, 1, 0]);
}
