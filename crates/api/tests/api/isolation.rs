//! Tenant isolation: one tenant's token never reads or changes another tenant's rows.

use crate::common::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn x_tenant_id_must_name_a_tenant_the_caller_belongs_to() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let foreign = app.call_with(Method::GET, "/api/tenants/members", Some(&bob.token), &[("x-tenant-id", ana.tenant_id.as_str())], None).await;
    assert_eq!((foreign.status, foreign.code(), foreign.field()), (StatusCode::FORBIDDEN, Some("not_a_member"), Some("X-Tenant-Id")));
    assert!(!foreign.text.contains("ana@example.com"));
    let unknown = app
        .call_with(Method::GET, "/api/tenants/members", Some(&bob.token), &[("x-tenant-id", "0b8f4c39-6a7e-4a43-9d1c-0e7ad1b3c5a1")], None)
        .await;
    assert_eq!(unknown.status, StatusCode::FORBIDDEN, "unknown and foreign tenants must look alike");
    assert_eq!(unknown.body, foreign.body);
    let malformed = app.call_with(Method::GET, "/api/me", Some(&bob.token), &[("x-tenant-id", "acme")], None).await;
    assert_eq!((malformed.status, malformed.field()), (StatusCode::BAD_REQUEST, Some("X-Tenant-Id")));
}

#[tokio::test]
async fn another_tenants_owner_cannot_read_or_change_its_members() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let eve = app.signup("eve@example.com", "Evil").await;
    app.signup("bob@example.com", "Bobco").await;
    app.post("/api/tenants/members", Some(&ana.token), json!({"email": "bob@example.com", "role": "viewer"})).await;

    let listed = app.get("/api/tenants/members", Some(&eve.token)).await;
    assert_eq!(listed.body["members"].as_array().unwrap().len(), 1, "eve sees only her own tenant");
    assert!(!listed.text.contains("ana@example.com"));

    let remove = app.call(Method::DELETE, &format!("/api/tenants/members/{}", ana.user_id), Some(&eve.token), None).await;
    assert_eq!(remove.status, StatusCode::NOT_FOUND);
    let remove_by_email = app.call(Method::DELETE, "/api/tenants/members", Some(&eve.token), Some(json!({"email": "bob@example.com"}))).await;
    assert_eq!(remove_by_email.status, StatusCode::NOT_FOUND);
    // Adding ana to Evil only touches Evil's members; Acme is unchanged.
    app.post("/api/tenants/members", Some(&eve.token), json!({"email": "ana@example.com", "role": "viewer"})).await;
    let acme = app.store.members(ana.tenant_id.parse().unwrap()).await.unwrap();
    let acme: Vec<(&str, cloudspend_core::Role)> = acme.iter().map(|m| (m.email.as_str(), m.role)).collect();
    assert_eq!(acme, vec![("ana@example.com", cloudspend_core::Role::Owner), ("bob@example.com", cloudspend_core::Role::Viewer)]);
    let me = app.get("/api/me", Some(&ana.token)).await;
    assert_eq!(me.body["current_tenant"]["id"], ana.tenant_id.as_str(), "being invited elsewhere must not move ana's default tenant");
}

#[tokio::test]
async fn a_tenant_id_in_a_body_is_ignored_never_trusted() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let eve = app.signup("eve@example.com", "Evil").await;
    let sneaky = app
        .post("/api/tenants/members", Some(&eve.token), json!({"email": "eve@example.com", "role": "owner", "tenant_id": ana.tenant_id}))
        .await;
    assert_eq!((sneaky.status, sneaky.field()), (StatusCode::BAD_REQUEST, Some("tenant_id")));
    assert_eq!(app.store.members(ana.tenant_id.parse().unwrap()).await.unwrap().len(), 1);
}
