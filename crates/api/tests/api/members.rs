//! Members and roles within a tenant.

use crate::common::{TestApp, mail_text, mails_received, smtp_sink, token_in};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

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
    // An invitation, not yet a membership.
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert_eq!(
        (
            added.body["invitation"]["email"].as_str(),
            added.body["invitation"]["role"].as_str()
        ),
        (Some("bob@example.com"), Some("viewer"))
    );
    assert_eq!(
        app.store
            .members(ana.tenant_id.parse().unwrap())
            .await
            .unwrap()
            .len(),
        1
    );
    let accepted = app
        .accept_invitation(&bob.token, added.body["token"].as_str().unwrap())
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    assert_eq!(
        (
            accepted.body["tenant"]["id"].as_str(),
            accepted.body["tenant"]["role"].as_str()
        ),
        (Some(ana.tenant_id.as_str()), Some("viewer"))
    );
    let changed = app
        .post(
            "/api/tenants/members",
            Some(&ana.token),
            json!({"email": "bob@example.com", "role": "admin"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(
        (
            changed.body["email"].as_str(),
            changed.body["role"].as_str()
        ),
        (Some("bob@example.com"), Some("admin"))
    );

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

/// A bad role or e-mail is named. (An address without an account used to answer 404 "they must
/// sign up first", which told any tenant owner who has an account: it is now invited like any
/// other, see `inviting_answers_the_same_whether_or_not_the_address_has_an_account`.)
#[tokio::test]
async fn inviting_with_a_bad_role_or_email_says_which_field() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
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
    app.add_member(&ana.token, "bob@example.com", "viewer")
        .await;
    app.add_member(&ana.token, "cat@example.com", "admin").await;

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
    app.add_member(&ana.token, "bob@example.com", "viewer")
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

    app.add_member(&ana.token, "bob@example.com", "viewer")
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

/// What an invitation answer says about the address, with the values that differ for any two
/// invitations (ids, times, tokens, the address itself) blanked.
fn invitation_shape(reply: &crate::common::Reply) -> (StatusCode, Value) {
    let mut body = reply.body.clone();
    for key in ["id", "email", "created_at", "expires_at"] {
        body["invitation"][key] = Value::Null;
    }
    for key in ["token", "accept_path"] {
        if body.get(key).is_some() {
            body[key] = json!("…");
        }
    }
    (reply.status, body)
}

/// Inviting an address answers the same whether or not it has a CloudSpend account (before, an
/// address without one answered 404, so any tenant owner could test which e-mails have
/// accounts), by e-mail as without it; an address already a member answers with its role change
/// (the tenant's own members are no secret to its admins).
#[tokio::test]
async fn inviting_answers_the_same_whether_or_not_the_address_has_an_account() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    app.signup("bob@example.com", "Bobco").await;
    let invite = |email: &'static str| {
        let app = &app;
        let token = ana.token.clone();
        async move {
            app.post(
                "/api/tenants/members",
                Some(&token),
                json!({"email": email, "role": "viewer"}),
            )
            .await
        }
    };
    let has_account = invite("bob@example.com").await;
    let no_account = invite("nobody@example.com").await;
    assert_eq!(
        has_account.status,
        StatusCode::CREATED,
        "{}",
        has_account.text
    );
    assert_eq!(
        invitation_shape(&has_account),
        invitation_shape(&no_account)
    );
    assert_eq!(has_account.body["emailed"], false);
    assert!(
        no_account.body["accept_path"]
            .as_str()
            .unwrap()
            .starts_with("/accept-invitation#token=cst_")
    );
    app.signup("cat@example.com", "Catco").await;
    app.add_member(&ana.token, "cat@example.com", "viewer")
        .await;
    let member = app
        .post(
            "/api/tenants/members",
            Some(&ana.token),
            json!({"email": "cat@example.com", "role": "admin"}),
        )
        .await;
    assert_eq!(
        (member.status, member.body["role"].as_str()),
        (StatusCode::OK, Some("admin")),
        "{}",
        member.text
    );

    // With e-mail: both go out, neither answer carries the token.
    let (smtp, mails) = smtp_sink().await;
    let app = TestApp::spawn_with_mail(cloudspend_api::ApiConfig::default(), &smtp).await;
    let ana = app.signup("ana@example.com", "Acme").await;
    app.signup("bob@example.com", "Bobco").await;
    let mut answers = Vec::new();
    for email in ["bob@example.com", "nobody@example.com"] {
        let reply = app
            .post(
                "/api/tenants/members",
                Some(&ana.token),
                json!({"email": email, "role": "admin"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        assert_eq!(reply.body["emailed"], true, "{}", reply.text);
        assert!(reply.body.get("token").is_none() && !reply.text.contains("cst_"));
        answers.push(invitation_shape(&reply));
    }
    assert_eq!(answers[0], answers[1]);
    let received = mails_received(&mails, 2).await;
    for (raw, to) in received
        .iter()
        .zip(["bob@example.com", "nobody@example.com"])
    {
        let text = mail_text(raw);
        assert!(text.contains(&format!("To: {to}")), "{text}");
        assert!(
            text.contains("https://cloudspend.test/accept-invitation#token=cst_"),
            "{text}"
        );
    }
}

/// A squatter who registered the invited address before the invitation cannot join without its
/// token (e-mailed to the real mailbox), and an account of another address cannot join with it.
/// The mailbox's owner takes the address back with a password reset, which logs the squatter
/// out, then accepts.
#[tokio::test]
async fn a_squatter_of_the_invited_address_cannot_join_and_the_mailbox_owner_can() {
    let (smtp, mails) = smtp_sink().await;
    let app = TestApp::spawn_with_mail(cloudspend_api::ApiConfig::default(), &smtp).await;
    let ana = app.signup("ana@victim.com", "Victim").await;
    let squatter = app.signup("cfo@victim.com", "Squat").await;
    let eve = app.signup("eve@example.com", "Evil").await;
    let invited = app
        .post(
            "/api/tenants/members",
            Some(&ana.token),
            json!({"email": "cfo@victim.com", "role": "admin"}),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.text);
    let victim: cloudspend_core::TenantId = ana.tenant_id.parse().unwrap();
    let in_victim = [("x-tenant-id", ana.tenant_id.as_str())];
    let squatter_in = app
        .call_with(
            Method::GET,
            "/api/tenants/members",
            Some(&squatter.token),
            &in_victim,
            None,
        )
        .await;
    assert_eq!(
        squatter_in.status,
        StatusCode::FORBIDDEN,
        "the address alone grants nothing"
    );
    let guessed = app
        .accept_invitation(&squatter.token, &cloudspend_api::auth::new_token().0)
        .await;
    assert_eq!(guessed.status, StatusCode::NOT_FOUND, "{}", guessed.text);

    // The token reached the mailbox; another address's account cannot use it.
    let mail = mail_text(&mails_received(&mails, 1).await[0]);
    assert!(mail.contains("To: cfo@victim.com"), "{mail}");
    let token = token_in(&mail, "/accept-invitation");
    let by_eve = app.accept_invitation(&eve.token, &token).await;
    assert_eq!(
        (by_eve.status, by_eve.code(), by_eve.field()),
        (
            StatusCode::FORBIDDEN,
            Some("invitation_other_email"),
            Some("token")
        )
    );
    assert_eq!(app.store.members(victim).await.unwrap().len(), 1);

    // The mailbox's owner resets the password: the squatter's session dies with it.
    let reset = app
        .post(
            "/api/auth/password-reset",
            None,
            json!({"email": "cfo@victim.com"}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::ACCEPTED, "{}", reset.text);
    let reset_mail = mail_text(&mails_received(&mails, 2).await[1]);
    let reset_token = token_in(&reset_mail, "/reset-password");
    let confirmed = app
        .post(
            "/api/auth/password-reset/confirm",
            None,
            json!({"token": reset_token, "new_password": "the real cfo's password"}),
        )
        .await;
    assert_eq!(
        confirmed.status,
        StatusCode::NO_CONTENT,
        "{}",
        confirmed.text
    );
    assert_eq!(
        app.get("/api/me", Some(&squatter.token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("cfo@victim.com").await.status,
        StatusCode::UNAUTHORIZED
    );
    let cfo = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "cfo@victim.com", "password": "the real cfo's password"}),
        )
        .await;
    let cfo = cfo.body["token"].as_str().unwrap().to_string();
    let joined = app.accept_invitation(&cfo, &token).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);
    assert_eq!(
        app.store
            .role_in(
                victim,
                app.store
                    .credentials_by_email("cfo@victim.com")
                    .await
                    .unwrap()
                    .unwrap()
                    .0
                    .id
            )
            .await
            .unwrap(),
        Some(cloudspend_core::Role::Admin)
    );
}

/// An invitation works once, until it expires or is revoked; each refusal says which, and
/// changes nothing. Owners and admins list and revoke their tenant's pending invitations only.
#[tokio::test]
async fn invitations_are_refused_once_used_revoked_expired_or_replaced() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let cat = app.signup("cat@example.com", "Catco").await;
    let eve = app.signup("eve@example.com", "Evil").await;
    let tenant: cloudspend_core::TenantId = ana.tenant_id.parse().unwrap();
    let member_count = || async { app.store.members(tenant).await.unwrap().len() };

    // Used once.
    let token = app.invite(&ana.token, "bob@example.com", "viewer").await;
    assert_eq!(
        app.accept_invitation(&bob.token, &token).await.status,
        StatusCode::OK
    );
    let reused = app.accept_invitation(&bob.token, &token).await;
    assert_eq!(
        (reused.status, reused.code(), reused.field()),
        (StatusCode::CONFLICT, Some("invitation_used"), Some("token"))
    );

    // Listed for owners and admins of the tenant, revoked once; another tenant cannot.
    let token = app.invite(&ana.token, "cat@example.com", "admin").await;
    let listed = app.get("/api/tenants/invitations", Some(&ana.token)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let pending = listed.body["invitations"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{}", listed.text);
    assert_eq!(
        (pending[0]["email"].as_str(), pending[0]["role"].as_str()),
        (Some("cat@example.com"), Some("admin"))
    );
    assert!(!listed.text.contains(&token), "the token is never listed");
    let id = pending[0]["id"].as_str().unwrap().to_string();
    let by_viewer = app
        .call_with(
            Method::GET,
            "/api/tenants/invitations",
            Some(&bob.token),
            &[("x-tenant-id", ana.tenant_id.as_str())],
            None,
        )
        .await;
    assert_eq!(by_viewer.status, StatusCode::FORBIDDEN);
    let path = format!("/api/tenants/invitations/{id}");
    let by_eve = app
        .call(Method::DELETE, &path, Some(&eve.token), None)
        .await;
    assert_eq!(by_eve.status, StatusCode::NOT_FOUND);
    assert!(
        app.get("/api/tenants/invitations", Some(&eve.token))
            .await
            .body["invitations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let revoked = app
        .call(Method::DELETE, &path, Some(&ana.token), None)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    assert_eq!(
        app.call(Method::DELETE, &path, Some(&ana.token), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let after_revoke = app.accept_invitation(&cat.token, &token).await;
    assert_eq!(
        (after_revoke.status, after_revoke.code()),
        (StatusCode::CONFLICT, Some("invitation_revoked"))
    );
    assert!(
        app.get("/api/tenants/invitations", Some(&ana.token))
            .await
            .body["invitations"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A new invitation of the address replaces the pending one.
    let first = app.invite(&ana.token, "cat@example.com", "viewer").await;
    let second = app.invite(&ana.token, "cat@example.com", "viewer").await;
    assert_eq!(
        app.accept_invitation(&cat.token, &first).await.code(),
        Some("invitation_revoked")
    );

    // Expired.
    let (expired, expired_hash) = cloudspend_api::auth::new_token();
    let now = chrono::Utc::now();
    app.store
        .create_invitation(
            tenant,
            cloudspend_store::NewInvitation {
                email: "eve@example.com".into(),
                role: cloudspend_core::Role::Viewer,
                token_hash: expired_hash,
                invited_by: ana.user_id.parse().unwrap(),
                created_at: now - chrono::Duration::days(8),
                expires_at: now - chrono::Duration::days(1),
            },
        )
        .await
        .unwrap();
    let late = app.accept_invitation(&eve.token, &expired).await;
    assert_eq!(
        (late.status, late.code(), late.field()),
        (
            StatusCode::CONFLICT,
            Some("invitation_expired"),
            Some("token")
        )
    );

    // Unknown, empty, or presented with an API token.
    assert_eq!(
        app.accept_invitation(&cat.token, "cst_unknown")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let empty = app.accept_invitation(&cat.token, " ").await;
    assert_eq!(
        (empty.status, empty.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("token"))
    );
    let api_token = app
        .post("/api/tokens", Some(&cat.token), json!({"name": "script"}))
        .await;
    let scripted = app
        .accept_invitation(api_token.body["token"].as_str().unwrap(), &second)
        .await;
    assert_eq!(
        (scripted.status, scripted.code()),
        (StatusCode::FORBIDDEN, Some("token_scope"))
    );
    assert_eq!(member_count().await, 2, "no refusal added a member");

    // The replacing invitation still works.
    assert_eq!(
        app.accept_invitation(&cat.token, &second).await.status,
        StatusCode::OK
    );
    assert_eq!(member_count().await, 3);
    let log: Vec<String> = app
        .store
        .audit_log(tenant, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        ["member.invite", "member.invitation_revoke", "member.add"]
            .iter()
            .all(|a| log.iter().any(|l| l == a)),
        "{log:?}"
    );
}

/// Each invitation may e-mail any address: a tenant gets a bounded number an hour, so the
/// server cannot be used to send mail in bulk.
#[tokio::test]
async fn invitations_per_tenant_are_limited() {
    let config = cloudspend_api::ApiConfig {
        invitations_per_tenant: cloudspend_api::rate_limit::Limit {
            max_events: 2,
            window: std::time::Duration::from_secs(3600),
        },
        ..Default::default()
    };
    let app = TestApp::spawn_with(cloudspend_store::testing::fresh_postgres().await, config).await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    app.invite(&ana.token, "one@example.com", "viewer").await;
    app.invite(&ana.token, "two@example.com", "viewer").await;
    let third = app
        .post(
            "/api/tenants/members",
            Some(&ana.token),
            json!({"email": "three@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(
        third.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        third.text
    );
    assert!(third.headers.contains_key("retry-after"));
    let listed = app.get("/api/tenants/invitations", Some(&ana.token)).await;
    assert_eq!(listed.body["invitations"].as_array().unwrap().len(), 2);
    // Another tenant has its own allowance.
    app.invite(&bob.token, "three@example.com", "viewer").await;
}

/// A relay that cannot be reached does not lose the invitation: the admin is handed the link,
/// as on a server without e-mail.
#[tokio::test]
async fn an_invitation_the_relay_refuses_is_handed_to_the_admin() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("smtp://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = TestApp::spawn_with_mail(cloudspend_api::ApiConfig::default(), &url).await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let token = app.invite(&ana.token, "bob@example.com", "viewer").await;
    assert_eq!(
        app.accept_invitation(&bob.token, &token).await.status,
        StatusCode::OK
    );
}
