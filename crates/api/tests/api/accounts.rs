//! Sign-up, login, logout, tokens and rate limits.

use crate::common::TestApp;
use chrono::{Duration, Utc};
use cloudspend_store::NewToken;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn signup_creates_user_and_tenant_and_logs_in() {
    let app = TestApp::spawn().await;
    let reply = app
        .post("/api/auth/signup", None, json!({"email": "Ana@Example.com", "password": "a good long password", "tenant_name": "Acme"}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["user"]["email"], "ana@example.com");
    assert_eq!(reply.body["user"]["is_global_owner"], false);
    assert_eq!(reply.body["tenant"]["name"], "Acme");
    assert_eq!(reply.body["tenant"]["role"], "owner");
    let token = reply.body["token"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(reply.body["user"]["id"].as_str().unwrap()).is_ok());

    let me = app.get("/api/me", Some(token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user"]["email"], "ana@example.com");
    assert_eq!(me.body["tenants"][0]["name"], "Acme");
    assert_eq!(me.body["tenants"][0]["role"], "owner");
    assert_eq!(me.body["current_tenant"]["id"], reply.body["tenant"]["id"]);

    let stored = app
        .store
        .credentials_by_email("ana@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.1.starts_with("$argon2id$"),
        "password not hashed with argon2id"
    );
    let log = app
        .store
        .audit_log(
            reply.body["tenant"]["id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
            10,
        )
        .await
        .unwrap();
    assert_eq!(log[0].action, "auth.signup");
    assert_eq!(log[0].user_email.as_deref(), Some("ana@example.com"));
}

#[tokio::test]
async fn signup_rejects_bad_fields_with_422_and_writes_nothing() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (
            json!({"email": "not-an-email", "password": "a good long password", "tenant_name": "A"}),
            "email",
        ),
        (
            json!({"email": "a@example.com", "password": "short", "tenant_name": "A"}),
            "password",
        ),
        (
            json!({"email": "a@example.com", "password": "a good long password", "tenant_name": "  "}),
            "tenant_name",
        ),
    ] {
        let reply = app.post("/api/auth/signup", None, body).await;
        assert_eq!(
            (reply.status, reply.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{}",
            reply.text
        );
        assert!(reply.body["error"]["message"].as_str().unwrap().len() > 5);
    }
    assert!(app.store.all_tenants().await.unwrap().is_empty());
}

#[tokio::test]
async fn signup_with_a_taken_email_is_409_on_email() {
    let app = TestApp::spawn().await;
    app.signup("ana@example.com", "Acme").await;
    let again = app
        .post("/api/auth/signup", None, json!({"email": "ANA@example.com", "password": "another long password", "tenant_name": "B"}))
        .await;
    assert_eq!(
        (again.status, again.field()),
        (StatusCode::CONFLICT, Some("email"))
    );
    assert_eq!(app.store.all_tenants().await.unwrap().len(), 1);
}

#[tokio::test]
async fn login_returns_a_new_token_and_logout_revokes_it() {
    let app = TestApp::spawn().await;
    let first = app.signup("ana@example.com", "Acme").await;
    let login = app.login("ana@example.com").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    let token = login.body["token"].as_str().unwrap().to_string();
    assert_ne!(token, first.token);
    assert_eq!(login.body["tenant"]["id"], first.tenant_id.as_str());
    assert_eq!(login.body["user"]["email"], "ana@example.com");

    let logout = app.post("/api/auth/logout", Some(&token), json!({})).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let after = app.get("/api/me", Some(&token)).await;
    assert_eq!(
        (after.status, after.code()),
        (StatusCode::UNAUTHORIZED, Some("token_revoked"))
    );
    // The other session is unaffected.
    assert_eq!(
        app.get("/api/me", Some(&first.token)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn wrong_credentials_are_401_without_saying_which_part_was_wrong() {
    let app = TestApp::spawn().await;
    app.signup("ana@example.com", "Acme").await;
    let wrong_password = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "ana@example.com", "password": "not the password"}),
        )
        .await;
    let no_user = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "bob@example.com", "password": "not the password"}),
        )
        .await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.body, no_user.body);
}

#[tokio::test]
async fn repeated_login_failures_are_throttled_per_email() {
    let app = TestApp::spawn().await;
    app.signup("ana@example.com", "Acme").await;
    for _ in 0..5 {
        let reply = app
            .post(
                "/api/auth/login",
                None,
                json!({"email": "ana@example.com", "password": "guess guess guess"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let throttled = app.login("ana@example.com").await;
    assert_eq!(
        (throttled.status, throttled.code()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_requests"))
    );
    let wait: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 900);
    // Another account from the same address is not locked out by ana's attacker.
    app.signup("bob@example.com", "Bobco").await;
    assert_eq!(app.login("bob@example.com").await.status, StatusCode::OK);
}

/// The guesses of one burst are counted before any password is checked: of 40 concurrent
/// wrong logins for one email from one address, only the free five are judged, the rest are
/// answered 429 at once (before, all 40 passed a check none of them had added to yet). The
/// owner, from another address, still logs in.
#[tokio::test]
async fn a_burst_of_concurrent_guesses_gets_no_more_than_the_limit_and_the_owner_is_not_locked_out()
{
    let config = cloudspend_api::ApiConfig {
        trusted_proxy_hops: 1,
        ..Default::default()
    };
    let app = TestApp::spawn_with(cloudspend_store::testing::fresh_postgres().await, config).await;
    app.signup("ana@example.com", "Acme").await;
    let attacker = [("x-forwarded-for", "203.0.113.7")];
    let guesses = (0..40).map(|i| {
        let app = &app;
        async move {
            app.call_with(
                reqwest::Method::POST,
                "/api/auth/login",
                None,
                &attacker,
                Some(json!({"email": "ana@example.com", "password": format!("guess number {i}")})),
            )
            .await
            .status
        }
    });
    let statuses = futures::future::join_all(guesses).await;
    let judged = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((judged, refused), (5, 35), "{statuses:?}");
    // The right password from the attacker's address must wait too...
    let attacker_login = app
        .call_with(
            reqwest::Method::POST,
            "/api/auth/login",
            None,
            &attacker,
            Some(json!({"email": "ana@example.com", "password": "a good long password"})),
        )
        .await;
    assert_eq!(attacker_login.status, StatusCode::TOO_MANY_REQUESTS);
    // ...while the owner, elsewhere, is not locked out.
    let owner = app
        .call_with(
            reqwest::Method::POST,
            "/api/auth/login",
            None,
            &[("x-forwarded-for", "198.51.100.20")],
            Some(json!({"email": "ana@example.com", "password": "a good long password"})),
        )
        .await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.text);
}

#[tokio::test]
async fn repeated_login_failures_are_throttled_per_client_address() {
    let config = cloudspend_api::ApiConfig {
        login_failures_per_ip: cloudspend_api::rate_limit::Limit {
            max_events: 3,
            window: std::time::Duration::from_secs(60),
        },
        ..Default::default()
    };
    let app = TestApp::spawn_with(cloudspend_store::testing::fresh_postgres().await, config).await;
    app.signup("ana@example.com", "Acme").await;
    for i in 0..3 {
        let email = format!("victim{i}@example.com");
        let reply = app
            .post(
                "/api/auth/login",
                None,
                json!({"email": email, "password": "guess guess guess"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        app.login("ana@example.com").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn missing_malformed_unknown_and_expired_tokens_are_401() {
    let app = TestApp::spawn().await;
    let session = app.signup("ana@example.com", "Acme").await;
    let missing = app.get("/api/me", None).await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::UNAUTHORIZED, Some("missing_token"))
    );
    assert_eq!(missing.headers["www-authenticate"], "Bearer");
    let unknown = app.get("/api/me", Some("cst_not-a-real-token")).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    let basic = app
        .call_with(
            reqwest::Method::GET,
            "/api/me",
            None,
            &[("authorization", "Basic YTpi")],
            None,
        )
        .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);

    let (token, hash) = cloudspend_api::auth::new_token();
    let user_id = session.user_id.parse().unwrap();
    let now = Utc::now();
    app.store
        .create_token(NewToken {
            token_hash: hash,
            user_id,
            tenant_id: None,
            created_at: now - Duration::days(31),
            expires_at: now - Duration::seconds(1),
            name: None,
        })
        .await
        .unwrap();
    let expired = app.get("/api/me", Some(&token)).await;
    assert_eq!(
        (expired.status, expired.code()),
        (StatusCode::UNAUTHORIZED, Some("token_expired"))
    );
    // An expired token changes nothing either.
    let write = app
        .post(
            "/api/tenants/members",
            Some(&token),
            json!({"email": "ana@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(write.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_are_stored_only_as_hashes() {
    let app = TestApp::spawn().await;
    let session = app.signup("ana@example.com", "Acme").await;
    assert!(
        app.store.token(&session.token).await.unwrap().is_none(),
        "token stored in clear"
    );
    assert!(
        app.store
            .token(&cloudspend_api::auth::token_hash(&session.token))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn the_global_owner_lists_every_tenant_and_others_cannot() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    app.signup("bob@example.com", "Bobco").await;
    let denied = app.get("/api/admin/tenants", Some(&ana.token)).await;
    assert_eq!(
        (denied.status, denied.code()),
        (StatusCode::FORBIDDEN, Some("not_global_owner"))
    );

    app.store
        .set_global_owner(ana.user_id.parse().unwrap(), true)
        .await
        .unwrap();
    let listed = app.get("/api/admin/tenants", Some(&ana.token)).await;
    assert_eq!(listed.status, StatusCode::OK);
    let names: Vec<&str> = listed.body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Acme", "Bobco"]);
    assert_eq!(listed.body["tenants"][0]["members"], 1);
    assert!(listed.body["tenants"][0].get("external_id").is_none());
    assert_eq!(
        app.get("/api/me", Some(&ana.token)).await.body["user"]["is_global_owner"],
        true
    );
}

#[tokio::test]
async fn named_api_tokens_are_shown_once_listed_without_secrets_and_revoked_by_their_owner() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let created = app
        .post(
            "/api/tokens",
            Some(&ana.token),
            json!({"name": "CI cost export", "expires_in_days": 30}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let token = created.body["token"].as_str().unwrap().to_string();
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.get("/api/me", Some(&token)).await.status,
        StatusCode::OK
    );
    let listed = app.get("/api/tokens", Some(&ana.token)).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(
        !listed.text.contains(&token),
        "the token is never shown again"
    );
    let tokens = listed.body["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    let api = tokens.iter().find(|t| t["id"] == id.as_str()).unwrap();
    assert_eq!(api["kind"], "api");
    assert_eq!(api["name"], "CI cost export");
    assert_eq!(api["current"], false);
    let session = tokens.iter().find(|t| t["kind"] == "session").unwrap();
    assert_eq!(session["current"], true);
    for (body, field) in [
        (json!({"name": " "}), "name"),
        (
            json!({"name": "x", "expires_in_days": 0}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "expires_in_days": 366}),
            "expires_in_days",
        ),
    ] {
        let reply = app.post("/api/tokens", Some(&ana.token), body).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reply.field(), Some(field));
    }
    // Bob cannot see or revoke Ana's token.
    assert_eq!(
        app.get("/api/tokens", Some(&bob.token)).await.body["tokens"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let foreign = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/tokens/{id}"),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/api/me", Some(&token)).await.status,
        StatusCode::OK
    );
    let revoked = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/tokens/{id}"),
            Some(&ana.token),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/me", Some(&token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let bad = app
        .call(
            reqwest::Method::DELETE,
            "/api/tokens/zz",
            Some(&ana.token),
            None,
        )
        .await;
    assert_eq!(bad.field(), Some("id"));
}

/// A named API token acts in the tenant it was made in and nowhere else: not through
/// `X-Tenant-Id` into another tenant of its user, and not at all once the user leaves that
/// tenant (it used to fall back to another tenant, where it was neither listed nor revocable).
/// The user lists and revokes every token from any tenant, and can log out everywhere.
#[tokio::test]
async fn api_tokens_act_only_in_their_tenant_and_die_with_the_membership() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    app.add_member(&bob.token, "ana@example.com", "admin").await;
    let make = |token: String, tenant: Option<String>, name: &'static str| {
        let app = &app;
        async move {
            let tenant_header = tenant.map(|t| vec![("x-tenant-id".to_string(), t)]);
            let headers: Vec<(&str, &str)> = tenant_header
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let reply = app
                .call_with(
                    reqwest::Method::POST,
                    "/api/tokens",
                    Some(&token),
                    &headers,
                    Some(json!({"name": name})),
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
            (
                reply.body["token"].as_str().unwrap().to_string(),
                reply.body["id"].as_str().unwrap().to_string(),
            )
        }
    };
    let (in_acme, in_acme_id) = make(ana.token.clone(), None, "CI in Acme").await;
    let (in_bobco, _) = make(
        ana.token.clone(),
        Some(bob.tenant_id.clone()),
        "CI in Bobco",
    )
    .await;
    let members_seen = |reply: &crate::common::Reply| -> Vec<String> {
        reply.body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["email"].as_str().unwrap().to_string())
            .collect()
    };

    // In its own tenant it works; X-Tenant-Id naming the other is refused, not followed.
    let own = app.get("/api/tenants/members", Some(&in_acme)).await;
    assert_eq!(members_seen(&own), ["ana@example.com"]);
    let moved = app
        .call_with(
            reqwest::Method::GET,
            "/api/tenants/members",
            Some(&in_acme),
            &[("x-tenant-id", bob.tenant_id.as_str())],
            None,
        )
        .await;
    assert_eq!(
        (moved.status, moved.code()),
        (StatusCode::FORBIDDEN, Some("token_scope"))
    );
    assert!(!moved.text.contains("bob@example.com"));
    // A login session still switches tenants as before.
    let session_in_bobco = app
        .call_with(
            reqwest::Method::GET,
            "/api/tenants/members",
            Some(&ana.token),
            &[("x-tenant-id", bob.tenant_id.as_str())],
            None,
        )
        .await;
    assert_eq!(session_in_bobco.status, StatusCode::OK);

    // Removed from Bobco: the token made there is dead, and does not fall back to Acme.
    let removed = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/tenants/members/{}", ana.user_id),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    let dead = app.get("/api/tenants/members", Some(&in_bobco)).await;
    assert_eq!(dead.status, StatusCode::UNAUTHORIZED, "{}", dead.text);
    assert_eq!(
        app.get("/api/tenants/members", Some(&in_acme)).await.status,
        StatusCode::OK
    );

    // Every token is listed with its tenant, whatever tenant the listing is made from, and can
    // be revoked from there.
    let listed = app.get("/api/tokens", Some(&ana.token)).await;
    let tokens = listed.body["tokens"].as_array().unwrap();
    let acme_token = tokens
        .iter()
        .find(|t| t["id"] == in_acme_id.as_str())
        .unwrap();
    assert_eq!(acme_token["tenant_id"], ana.tenant_id.as_str());
    assert!(
        tokens.iter().all(|t| t["name"] != "CI in Bobco"),
        "the revoked Bobco token is not listed: {}",
        listed.text
    );

    // Log out everywhere: every token of the user stops working, this one included.
    let everywhere = app
        .post("/api/auth/logout-everywhere", Some(&ana.token), json!({}))
        .await;
    assert_eq!(everywhere.status, StatusCode::OK, "{}", everywhere.text);
    assert_eq!(everywhere.body["revoked"], 2);
    for token in [&in_acme, &ana.token] {
        assert_eq!(
            app.get("/api/tenants/members", Some(token)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Bob is untouched.
    assert_eq!(
        app.get("/api/tenants/members", Some(&bob.token))
            .await
            .status,
        StatusCode::OK
    );
}
