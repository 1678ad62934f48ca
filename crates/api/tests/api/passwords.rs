//! Password change and reset by e-mail.

use crate::common::{TestApp, mail_text, mails_received, smtp_sink, token_in};
use reqwest::StatusCode;
use serde_json::json;

const PASSWORD: &str = "a good long password";

/// A password change needs the current password, keeps the session that made it and revokes
/// every other session and API token of the user, in every tenant.
#[tokio::test]
async fn changing_the_password_keeps_this_session_and_revokes_every_other_session_and_token() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    app.add_member(&bob.token, "ana@example.com", "viewer")
        .await;
    let laptop = app.login("ana@example.com").await.body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let api_token = app
        .call_with(
            reqwest::Method::POST,
            "/api/tokens",
            Some(&ana.token),
            &[("x-tenant-id", bob.tenant_id.as_str())],
            Some(json!({"name": "CI in Bobco"})),
        )
        .await;
    assert_eq!(api_token.status, StatusCode::CREATED, "{}", api_token.text);
    let api_token = api_token.body["token"].as_str().unwrap().to_string();
    let app = &app;
    let change = |token: &str, current: &str, new: &str| {
        let token = token.to_string();
        let body = json!({"current_password": current, "new_password": new});
        async move { app.post("/api/auth/password", Some(&token), body).await }
    };

    let wrong = change(&ana.token, "not my password", "a brand new password").await;
    assert_eq!(
        (wrong.status, wrong.code(), wrong.field()),
        (
            StatusCode::FORBIDDEN,
            Some("wrong_password"),
            Some("current_password")
        )
    );
    let short = change(&ana.token, PASSWORD, "short").await;
    assert_eq!(
        (short.status, short.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("new_password"))
    );
    let scripted = change(&api_token, PASSWORD, "a brand new password").await;
    assert_eq!(
        (scripted.status, scripted.code()),
        (StatusCode::FORBIDDEN, Some("token_scope"))
    );
    assert_eq!(
        app.login("ana@example.com").await.status,
        StatusCode::OK,
        "nothing changed yet"
    );

    let changed = change(&ana.token, PASSWORD, "a brand new password").await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    // The laptop session, the API token and the session of the login just above.
    assert_eq!(changed.body["revoked"], 3);
    assert_eq!(
        app.get("/api/me", Some(&ana.token)).await.status,
        StatusCode::OK
    );
    for other in [&laptop, &api_token] {
        assert_eq!(
            app.get("/api/me", Some(other)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.get("/api/me", Some(&bob.token)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.login("ana@example.com").await.status,
        StatusCode::UNAUTHORIZED
    );
    let with_new = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "ana@example.com", "password": "a brand new password"}),
        )
        .await;
    assert_eq!(with_new.status, StatusCode::OK);
}

/// Wrong current passwords are throttled like failed logins: a stolen session is no way to
/// guess the password.
#[tokio::test]
async fn wrong_current_passwords_are_throttled_like_logins() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    for i in 0..5 {
        let guess = app
            .post(
                "/api/auth/password",
                Some(&ana.token),
                json!({"current_password": format!("guess {i}"), "new_password": "a brand new password"}),
            )
            .await;
        assert_eq!(guess.status, StatusCode::FORBIDDEN, "{}", guess.text);
    }
    let throttled = app
        .post(
            "/api/auth/password",
            Some(&ana.token),
            json!({"current_password": PASSWORD, "new_password": "a brand new password"}),
        )
        .await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        throttled.text
    );
    assert!(throttled.headers.contains_key("retry-after"));
}

/// The reset request answers the same for any address; the account's mailbox gets a one-time
/// link; it sets the password once and logs out every session; used or unknown tokens are
/// refused.
#[tokio::test]
async fn a_password_reset_by_email_works_once_and_revokes_every_session() {
    let (smtp, mails) = smtp_sink().await;
    let app = TestApp::spawn_with_mail(cloudspend_api::ApiConfig::default(), &smtp).await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let request =
        |email: &'static str| app.post("/api/auth/password-reset", None, json!({"email": email}));
    let known = request("ana@example.com").await;
    let unknown = request("nobody@example.com").await;
    assert_eq!(known.status, StatusCode::ACCEPTED, "{}", known.text);
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    let bad = request("not-an-address").await;
    assert_eq!(
        (bad.status, bad.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("email"))
    );

    let mail = mail_text(&mails_received(&mails, 1).await[0]);
    assert!(mail.contains("To: ana@example.com"), "{mail}");
    assert!(
        mail.contains("Subject: Reset your CloudSpend password"),
        "{mail}"
    );
    let token = token_in(&mail, "https://cloudspend.test/reset-password");
    // Stored hashed only.
    assert!(app.store.token(&token).await.unwrap().is_none());

    let confirm = |token: String, password: &'static str| {
        app.post(
            "/api/auth/password-reset/confirm",
            None,
            json!({"token": token, "new_password": password}),
        )
    };
    let short = confirm(token.clone(), "short").await;
    assert_eq!(
        (short.status, short.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("new_password"))
    );
    let done = confirm(token.clone(), "a password from the reset").await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text);
    assert_eq!(
        app.get("/api/me", Some(&ana.token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("ana@example.com").await.status,
        StatusCode::UNAUTHORIZED
    );
    let login = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "ana@example.com", "password": "a password from the reset"}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);

    let again = confirm(token, "yet another password").await;
    assert_eq!(
        (again.status, again.code(), again.field()),
        (
            StatusCode::BAD_REQUEST,
            Some("reset_token_invalid"),
            Some("token")
        )
    );
    let unknown_token = confirm(cloudspend_api::auth::new_token().0, "yet another password").await;
    assert_eq!(unknown_token.code(), Some("reset_token_invalid"));
    // Only the account's mailbox heard of it: nothing went to the unknown address.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(mails.lock().unwrap().len(), 1);
}

/// Reset requests: 429 past the limit per client address; past a few per e-mail address
/// nothing more is sent, with the same answer; without SMTP the feature says it is off.
#[tokio::test]
async fn password_reset_requests_are_limited_per_client_and_per_mailbox() {
    let (smtp, mails) = smtp_sink().await;
    let config = cloudspend_api::ApiConfig {
        trusted_proxy_hops: 1,
        password_resets_per_ip: cloudspend_api::rate_limit::Limit {
            max_events: 4,
            window: std::time::Duration::from_secs(3600),
        },
        ..Default::default()
    };
    let app = TestApp::spawn_with_mail(config, &smtp).await;
    app.signup("ana@example.com", "Acme").await;
    let from = |ip: &'static str| {
        let app = &app;
        async move {
            app.call_with(
                reqwest::Method::POST,
                "/api/auth/password-reset",
                None,
                &[("x-forwarded-for", ip)],
                Some(json!({"email": "ana@example.com"})),
            )
            .await
        }
    };
    for _ in 0..4 {
        assert_eq!(from("203.0.113.1").await.status, StatusCode::ACCEPTED);
    }
    let limited = from("203.0.113.1").await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    assert!(limited.headers.contains_key("retry-after"));
    // Another client is answered, but the mailbox already had its three e-mails.
    assert_eq!(from("198.51.100.2").await.status, StatusCode::ACCEPTED);
    mails_received(&mails, 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(mails.lock().unwrap().len(), 3);

    let without_mail = TestApp::spawn().await;
    let off = without_mail
        .post(
            "/api/auth/password-reset",
            None,
            json!({"email": "ana@example.com"}),
        )
        .await;
    assert_eq!(
        (off.status, off.code()),
        (StatusCode::CONFLICT, Some("email_not_configured"))
    );
}

/// The invitation and password routes are in the OpenAPI document with their answers, so
/// clients and the fuzzer know them.
#[tokio::test]
async fn account_routes_are_documented_with_their_answers() {
    let app = TestApp::spawn().await;
    let doc = app.get("/api/openapi.json", None).await;
    let paths = doc.body["paths"].as_object().unwrap();
    for (path, method, statuses) in [
        ("/api/tenants/members", "post", &["200", "201", "429"][..]),
        ("/api/tenants/invitations", "get", &["200", "403"][..]),
        (
            "/api/tenants/invitations/{id}",
            "delete",
            &["204", "404"][..],
        ),
        (
            "/api/invitations/accept",
            "post",
            &["200", "403", "404", "409"][..],
        ),
        (
            "/api/auth/password",
            "post",
            &["200", "403", "422", "429"][..],
        ),
        (
            "/api/auth/password-reset",
            "post",
            &["202", "409", "429"][..],
        ),
        (
            "/api/auth/password-reset/confirm",
            "post",
            &["204", "400", "429"][..],
        ),
    ] {
        let operation = &paths[path][method];
        assert!(
            operation.is_object(),
            "{method} {path} missing from OpenAPI"
        );
        for status in statuses {
            assert!(
                operation["responses"].get(*status).is_some(),
                "{method} {path} does not document {status}"
            );
        }
    }
    // The reset routes are for people who cannot log in: no token asked.
    for path in [
        "/api/auth/password-reset",
        "/api/auth/password-reset/confirm",
    ] {
        let security = &paths[path]["post"]["security"];
        assert!(
            security.is_null() || security.as_array().is_some_and(|s| s.is_empty()),
            "{path}: {security}"
        );
    }
}
