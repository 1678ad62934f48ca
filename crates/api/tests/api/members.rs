//! Members and roles within a tenant.

use crate::common::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn owners_add_members_and_change_their_roles() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let added = app
        .post(
            "/api/tenants/members",
            Some(&ana.token),
            json!({"email": "bob@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text);
    assert_eq!(
        (added.body["email"].as_str(), added.body["role"].as_str()),
        (Some("bob@example.com"), Some("viewer"))
    );
    let changed = app
        .post(
            "/api/tenants/members",
            Some(&ana.token),
            json!({"email": "bob@example.com", "role": "admin"}),
        )
        .await;
    assert_eq!(changed.body["role"], "admin");

    let listed = app.get("/api/tenants/members", Some(&ana.token)).await;
    let members: Vec<(String, String)> = listed.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["email"].as_str().unwrap().into(),
                m["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        members,
        vec![
            ("ana@example.com".into(), "owner".into()),
            ("bob@example.com".into(), "admin".into())
        ]
    );

    // Bob now belongs to two tenants and picks Acme with X-Tenant-Id.
    let me = app
        .call_with(
            Method::GET,
            "/api/me",
            Some(&bob.token),
            &[("x-tenant-id", ana.tenant_id.as_str())],
            None,
        )
        .await;
    assert_eq!(me.body["tenants"].as_array().unwrap().len(), 2);
    assert_eq!(me.body["current_tenant"]["id"], ana.tenant_id.as_str());
    assert_eq!(me.body["current_tenant"]["role"], "admin");
    let default = app.get("/api/me", Some(&bob.token)).await;
    assert_eq!(default.body["current_tenant"]["id"], bob.tenant_id.as_str());

    let actions: Vec<String> = app
        .store
        .audit_log(ana.tenant_id.parse().unwrap(), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.contains(&"member.add".to_string())
            && actions.contains(&"member.role_change".to_string())
    );
}

#[tokio::test]
async fn inviting_an_unknown_email_or_bad_role_says_which_field() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let unknown = app
        .post(
            "/api/tenants/members",
            Some(&ana.token),
            json!({"email": "nobody@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign up")
    );
    let bad_role = app
        .post(
            "/api/tenants/members",
            Some(&ana.token),
            json!({"email": "ana@example.com", "role": "root"}),
        )
        .await;
    assert_eq!(
        (bad_role.status, bad_role.field()),
        (StatusCode::BAD_REQUEST, Some("role"))
    );
    let bad_email = app
        .post(
            "/api/tenants/members",
            Some(&ana.token),
            json!({"email": "nope", "role": "viewer"}),
        )
        .await;
    assert_eq!(
        (bad_email.status, bad_email.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("email"))
    );
}

#[tokio::test]
async fn viewers_cannot_manage_members_and_admins_cannot_touch_owners() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let cat = app.signup("cat@example.com", "Catco").await;
    let acme = [("x-tenant-id", ana.tenant_id.as_str())];
    app.post(
        "/api/tenants/members",
        Some(&ana.token),
        json!({"email": "bob@example.com", "role": "viewer"}),
    )
    .await;
    app.post(
        "/api/tenants/members",
        Some(&ana.token),
        json!({"email": "cat@example.com", "role": "admin"}),
    )
    .await;

    let as_viewer = app
        .call_with(
            Method::POST,
            "/api/tenants/members",
            Some(&bob.token),
            &acme,
            Some(json!({"email": "bob@example.com", "role": "owner"})),
        )
        .await;
    assert_eq!(
        (as_viewer.status, as_viewer.code()),
        (StatusCode::FORBIDDEN, Some("insufficient_role"))
    );

    let admin_makes_owner = app
        .call_with(
            Method::POST,
            "/api/tenants/members",
            Some(&cat.token),
            &acme,
            Some(json!({"email": "bob@example.com", "role": "owner"})),
        )
        .await;
    assert_eq!(
        (admin_makes_owner.status, admin_makes_owner.field()),
        (StatusCode::FORBIDDEN, Some("role"))
    );
    let admin_demotes_owner = app
        .call_with(
            Method::POST,
            "/api/tenants/members",
            Some(&cat.token),
            &acme,
            Some(json!({"email": "ana@example.com", "role": "viewer"})),
        )
        .await;
    assert_eq!(admin_demotes_owner.status, StatusCode::FORBIDDEN);
    let admin_removes_owner = app
        .call_with(
            Method::DELETE,
            &format!("/api/tenants/members/{}", ana.user_id),
            Some(&cat.token),
            &acme,
            None,
        )
        .await;
    assert_eq!(admin_removes_owner.status, StatusCode::FORBIDDEN);

    // The admin can manage the viewer.
    let admin_removes_viewer = app
        .call_with(
            Method::DELETE,
            &format!("/api/tenants/members/{}", bob.user_id),
            Some(&cat.token),
            &acme,
            None,
        )
        .await;
    assert_eq!(admin_removes_viewer.status, StatusCode::NO_CONTENT);
    let roles = app
        .store
        .members(ana.tenant_id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(roles.len(), 2, "a refused request changed the members");
    assert_eq!(roles[0].role, cloudspend_core::Role::Owner);
}

#[tokio::test]
async fn the_last_owner_cannot_leave_or_be_removed() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let leave = app
        .call(
            Method::DELETE,
            &format!("/api/tenants/members/{}", ana.user_id),
            Some(&ana.token),
            None,
        )
        .await;
    assert_eq!(
        (leave.status, leave.code()),
        (StatusCode::CONFLICT, Some("last_owner"))
    );
    let demote = app
        .post(
            "/api/tenants/members",
            Some(&ana.token),
            json!({"email": "ana@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(demote.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn members_can_be_removed_by_email_in_the_body_and_may_leave() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    app.post(
        "/api/tenants/members",
        Some(&ana.token),
        json!({"email": "bob@example.com", "role": "viewer"}),
    )
    .await;
    let removed = app
        .call(
            Method::DELETE,
            "/api/tenants/members",
            Some(&ana.token),
            Some(json!({"email": "bob@example.com"})),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    let gone = app
        .call_with(
            Method::GET,
            "/api/me",
            Some(&bob.token),
            &[("x-tenant-id", ana.tenant_id.as_str())],
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::FORBIDDEN);

    app.post(
        "/api/tenants/members",
        Some(&ana.token),
        json!({"email": "bob@example.com", "role": "viewer"}),
    )
    .await;
    let leave = app
        .call_with(
            Method::DELETE,
            &format!("/api/tenants/members/{}", bob.user_id),
            Some(&bob.token),
            &[("x-tenant-id", ana.tenant_id.as_str())],
            None,
        )
        .await;
    assert_eq!(
        leave.status,
        StatusCode::NO_CONTENT,
        "a viewer may leave: {}",
        leave.text
    );
    let neither = app
        .call(
            Method::DELETE,
            "/api/tenants/members",
            Some(&ana.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (neither.status, neither.field()),
        (StatusCode::BAD_REQUEST, Some("email"))
    );
}

/// A webhook's path is often its credential (a chat hook token): viewers see scheme and host
/// only, and so does the audit log; the owners and admins who manage it see it whole.
#[tokio::test]
async fn viewers_see_webhook_targets_masked() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let target = "https://hooks.example.com/services/T000/B000/hook-secret-123";
    let created = app
        .post(
            "/api/alerts/subscriptions",
            Some(&ana.token),
            json!({"name": "chat", "channel": "webhook", "target": target,
                   "threshold_kind": "absolute", "threshold": "1"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    app.add_member(&ana.token, "bob@example.com", "viewer")
        .await;
    let seen_by_bob = app
        .call_with(
            reqwest::Method::GET,
            "/api/alerts/subscriptions",
            Some(&bob.token),
            &[("x-tenant-id", ana.tenant_id.as_str())],
            None,
        )
        .await;
    assert_eq!(seen_by_bob.status, StatusCode::OK);
    assert_eq!(
        seen_by_bob.body["subscriptions"][0]["target"],
        "https://hooks.example.com/…"
    );
    assert!(!seen_by_bob.text.contains("hook-secret-123"));
    let seen_by_ana = app.get("/api/alerts/subscriptions", Some(&ana.token)).await;
    assert_eq!(seen_by_ana.body["subscriptions"][0]["target"], target);
    let audit = app.get("/api/audit?limit=50", Some(&ana.token)).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    assert!(audit.text.contains("hooks.example.com"), "{}", audit.text);
    assert!(!audit.text.contains("hook-secret-123"), "{}", audit.text);
}
