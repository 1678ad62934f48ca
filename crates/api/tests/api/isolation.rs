//! Tenant isolation: one tenant's token never reads or changes another tenant's rows.

use crate::common::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn x_tenant_id_must_name_a_tenant_the_caller_belongs_to() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let foreign = app
        .call_with(
            Method::GET,
            "/api/tenants/members",
            Some(&bob.token),
            &[("x-tenant-id", ana.tenant_id.as_str())],
            None,
        )
        .await;
    assert_eq!(
        (foreign.status, foreign.code(), foreign.field()),
        (
            StatusCode::FORBIDDEN,
            Some("not_a_member"),
            Some("X-Tenant-Id")
        )
    );
    assert!(!foreign.text.contains("ana@example.com"));
    let unknown = app
        .call_with(
            Method::GET,
            "/api/tenants/members",
            Some(&bob.token),
            &[("x-tenant-id", "0b8f4c39-6a7e-4a43-9d1c-0e7ad1b3c5a1")],
            None,
        )
        .await;
    assert_eq!(
        unknown.status,
        StatusCode::FORBIDDEN,
        "unknown and foreign tenants must look alike"
    );
    assert_eq!(unknown.body, foreign.body);
    let malformed = app
        .call_with(
            Method::GET,
            "/api/me",
            Some(&bob.token),
            &[("x-tenant-id", "acme")],
            None,
        )
        .await;
    assert_eq!(
        (malformed.status, malformed.field()),
        (StatusCode::BAD_REQUEST, Some("X-Tenant-Id"))
    );
}

#[tokio::test]
async fn another_tenants_owner_cannot_read_or_change_its_members() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let eve = app.signup("eve@example.com", "Evil").await;
    app.signup("bob@example.com", "Bobco").await;
    app.add_member(&ana.token, "bob@example.com", "viewer")
        .await;

    let listed = app.get("/api/tenants/members", Some(&eve.token)).await;
    assert_eq!(
        listed.body["members"].as_array().unwrap().len(),
        1,
        "eve sees only her own tenant"
    );
    assert!(!listed.text.contains("ana@example.com"));

    let remove = app
        .call(
            Method::DELETE,
            &format!("/api/tenants/members/{}", ana.user_id),
            Some(&eve.token),
            None,
        )
        .await;
    assert_eq!(remove.status, StatusCode::NOT_FOUND);
    let remove_by_email = app
        .call(
            Method::DELETE,
            "/api/tenants/members",
            Some(&eve.token),
            Some(json!({"email": "bob@example.com"})),
        )
        .await;
    assert_eq!(remove_by_email.status, StatusCode::NOT_FOUND);
    // Adding ana to Evil only touches Evil's members; Acme is unchanged.
    app.add_member(&eve.token, "ana@example.com", "viewer")
        .await;
    let acme = app
        .store
        .members(ana.tenant_id.parse().unwrap())
        .await
        .unwrap();
    let acme: Vec<(&str, cloudspend_core::Role)> =
        acme.iter().map(|m| (m.email.as_str(), m.role)).collect();
    assert_eq!(
        acme,
        vec![
            ("ana@example.com", cloudspend_core::Role::Owner),
            ("bob@example.com", cloudspend_core::Role::Viewer)
        ]
    );
    let me = app.get("/api/me", Some(&ana.token)).await;
    assert_eq!(
        me.body["current_tenant"]["id"],
        ana.tenant_id.as_str(),
        "being invited elsewhere must not move ana's default tenant"
    );
}

#[tokio::test]
async fn a_tenant_id_in_a_body_is_ignored_never_trusted() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let eve = app.signup("eve@example.com", "Evil").await;
    let sneaky = app
        .post(
            "/api/tenants/members",
            Some(&eve.token),
            json!({"email": "eve@example.com", "role": "owner", "tenant_id": ana.tenant_id}),
        )
        .await;
    assert_eq!(
        (sneaky.status, sneaky.field()),
        (StatusCode::BAD_REQUEST, Some("tenant_id"))
    );
    assert_eq!(
        app.store
            .members(ana.tenant_id.parse().unwrap())
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Every route in the OpenAPI document, called with tenant B's token and tenant A's ids (in
/// paths and in X-Tenant-Id): nothing of A's comes back and nothing of A's changes. The route
/// list comes from the document, so a route added later is covered without editing this test.
#[tokio::test]
async fn no_route_lets_another_tenant_read_or_change_anything() {
    let _moto = cloudspend_aws_access::testing::shared().await;
    let app = TestApp::spawn().await;
    let ana = app
        .signup("ana-secret-owner@example.com", "Acme Hidden Corp")
        .await;
    let tenant_a: cloudspend_core::TenantId = ana.tenant_id.parse().unwrap();
    let account_a = cloudspend_aws_access::testing::unique_account_id();
    let now = chrono::Utc::now();
    app.store
        .put_connection(
            tenant_a,
            &cloudspend_core::connection::AwsConnection {
                display_name: "Acme production".into(),
                account_id: account_a.clone(),
                account_type: cloudspend_core::connection::AccountType::Linked,
                auth: cloudspend_core::connection::ConnectionAuth::Role {
                    role_arn: format!("arn:aws:iam::{account_a}:role/CloudSpendReadOnly"),
                },
                regions: vec!["us-east-1".into()],
                cur: Default::default(),
                status: cloudspend_core::connection::ConnectionStatus::Connected,
                last_verified_at: Some(now),
                last_error: None,
                warnings: vec![],
                created_at: now,
                updated_at: now,
            },
        )
        .await
        .unwrap();
    app.post("/api/collect", Some(&ana.token), json!({})).await;
    let before = (
        app.store.members(tenant_a).await.unwrap(),
        app.store.connection(tenant_a).await.unwrap(),
        app.store.jobs(tenant_a).await.unwrap(),
        app.store.tenant(tenant_a).await.unwrap(),
    );
    let external_a = before.3.as_ref().unwrap().external_id.clone();
    let bob = app.signup("bob@example.com", "Bobco").await;

    let doc = app.get("/api/openapi.json", None).await;
    let mut calls: Vec<(String, String)> = Vec::new();
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            calls.push((method.to_uppercase(), path.clone()));
        }
    }
    // Logging out (here or everywhere) revokes bob's own token: do it last.
    calls.sort_by_key(|(_, path)| path.starts_with("/api/auth/logout"));
    assert!(calls.len() >= 20, "{calls:?}");
    let secrets = [
        ana.tenant_id.as_str(),
        "ana-secret-owner",
        "Acme Hidden Corp",
        account_a.as_str(),
        external_a.as_str(),
    ];
    for (method, path) in &calls {
        let concrete = path
            .replace("{user_id}", &ana.user_id)
            .replace("{instance_id}", "i-0123456789abcdef0");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        for headers in [vec![], vec![("x-tenant-id", ana.tenant_id.as_str())]] {
            let reply = app
                .call_with(
                    method.clone(),
                    &concrete,
                    Some(&bob.token),
                    &headers,
                    Some(json!({})),
                )
                .await;
            for secret in secrets {
                assert!(
                    !reply.text.contains(secret),
                    "{method} {path} {headers:?} leaked `{secret}`: {}",
                    reply.text
                );
            }
            if !headers.is_empty()
                && !matches!(
                    path.as_str(),
                    "/healthz"
                        | "/readyz"
                        | "/metrics"
                        | "/api/openapi.json"
                        | "/api/auth/signup"
                        | "/api/auth/login"
                        | "/api/auth/logout"
                        | "/api/auth/logout-everywhere"
                )
            {
                assert!(
                    reply.status.is_client_error(),
                    "{method} {path} with A's tenant id answered {}",
                    reply.status
                );
            }
        }
    }
    let after = (
        app.store.members(tenant_a).await.unwrap(),
        app.store.connection(tenant_a).await.unwrap(),
        app.store.jobs(tenant_a).await.unwrap(),
        app.store.tenant(tenant_a).await.unwrap(),
    );
    assert_eq!(before, after, "tenant B changed tenant A's data");
}
