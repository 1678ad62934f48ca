//! Issue 4: onboarding against moto. A full connect saves and queues a collection; bad fields
//! and failed credentials are 422s naming the field or step and save nothing; secrets are
//! stored only as ciphertext and never returned.

use crate::common::{Reply, Session, TestApp};
use cloudspend_aws_access::testing::{self, Moto, unique_account_id};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn external_id(app: &TestApp, session: &Session) -> String {
    let onboarding = app
        .get("/api/tenants/onboarding", Some(&session.token))
        .await;
    assert_eq!(onboarding.status, StatusCode::OK, "{}", onboarding.text);
    onboarding.body["external_id"].as_str().unwrap().to_string()
}

fn connect_body(account: &str, external_id: &str) -> Value {
    json!({
        "aws_role_arn": format!("arn:aws:iam::{account}:role/CloudSpendReadOnly"),
        "external_id": external_id,
        "region": "us-east-1",
        "regions": ["eu-west-1"],
        "athena_db": "cur_db",
        "athena_table": "cur_table",
        "display_name": "Production",
        "account_type": "organization"
    })
}

#[tokio::test]
async fn onboarding_gives_a_stable_external_id_and_a_quick_create_link() {
    let _moto = testing::shared().await;
    let config = cloudspend_api::ApiConfig {
        platform_account_id: Some("111122223333".into()),
        ..Default::default()
    };
    let app = TestApp::spawn_with(cloudspend_store::testing::fresh_postgres().await, config).await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let bob = app.signup("bob@example.com", "Bobco").await;
    let first = app.get("/api/tenants/onboarding", Some(&ana.token)).await;
    let id = first.body["external_id"].as_str().unwrap().to_string();
    assert!(id.len() >= 32, "{id}");
    assert_eq!(external_id(&app, &ana).await, id, "stable until rotated");
    assert_ne!(external_id(&app, &bob).await, id, "unique per tenant");
    let link = first.body["quick_create_url"].as_str().unwrap();
    assert!(link.contains(&format!("param_ExternalId={id}")), "{link}");
    assert!(link.contains("param_CloudSpendAccountId=111122223333"));
    assert!(
        first.body["template"]
            .as_str()
            .unwrap()
            .contains("sts:ExternalId")
    );

    let rotated = app
        .post(
            "/api/tenants/onboarding/rotate-external-id",
            Some(&ana.token),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    let new_id = rotated.body["external_id"].as_str().unwrap();
    assert_ne!(new_id, id);
    assert_eq!(external_id(&app, &ana).await, new_id);
}

#[tokio::test]
async fn a_full_connect_runs_the_diagnostics_saves_and_queues_the_first_collection() {
    let _moto = testing::shared().await;
    let account = unique_account_id();
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let id = external_id(&app, &ana).await;
    // A results bucket in the tenant's account, so step 6 can write to it.
    let access = testing::aws_access().await;
    let config = access
        .sdk_config(
            cloudspend_core::TenantId::new(),
            &testing::role_in(&account),
            "us-east-1",
        )
        .await
        .unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket(format!("results-{account}"))
        .send()
        .await
        .unwrap();
    let mut body = connect_body(&account, &id);
    body["athena_results_bucket"] = json!(format!("results-{account}"));
    body["athena_results_prefix"] = json!("athena/");

    let reply = app
        .post("/api/tenants/connect", Some(&ana.token), body)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .starts_with("AWS connection saved")
    );
    let steps: Vec<(String, String)> = reply.body["report"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    let status_of = |name: &str| {
        steps
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    assert_eq!(steps.len(), 6, "{steps:?}");
    for step in [
        "assume_role",
        "caller_identity",
        "cost_explorer",
        "ec2",
        "results_bucket",
    ] {
        assert_eq!(status_of(step), "ok", "{step}: {}", reply.text);
    }
    assert_eq!(reply.body["connection"]["account_id"], account.as_str());
    assert_eq!(
        reply.body["connection"]["regions"],
        json!(["us-east-1", "eu-west-1"])
    );
    assert_eq!(reply.body["connection"]["account_type"], "organization");
    assert_eq!(
        reply.body["collection_queued"],
        json!(["ec2", "cloudwatch", "costexplorer", "cur"])
    );

    let tenant = ana.tenant_id.parse().unwrap();
    let jobs = app.store.jobs(tenant).await.unwrap();
    assert_eq!(
        jobs.len(),
        4,
        "the CUR is collected too: Athena is configured"
    );
    assert!(
        jobs.iter().all(|j| j.next_run_at <= chrono::Utc::now()),
        "first collection due now"
    );
    let shown = app.get("/api/tenants/connection", Some(&ana.token)).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(
        shown.body["role_arn"],
        format!("arn:aws:iam::{account}:role/CloudSpendReadOnly")
    );
    assert_eq!(shown.body["athena_table"], "cur_table");
    let log = app.store.audit_log(tenant, 10).await.unwrap();
    assert!(
        log.iter().any(|e| e.action == "connection.connect"
            && e.user_email.as_deref() == Some("ana@example.com"))
    );

    let verified = app
        .post(
            "/api/tenants/connection/verify",
            Some(&ana.token),
            json!({}),
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.text);
    let deleted = app
        .call(
            Method::DELETE,
            "/api/tenants/connection",
            Some(&ana.token),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/tenants/connection", Some(&ana.token))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(
        app.store.jobs(tenant).await.unwrap().is_empty(),
        "a disconnected tenant keeps no schedule"
    );
}

/// The connect answer is 422 on `aws_role_arn`, says `why`, and the tenant has no connection.
async fn assert_role_refused_and_nothing_saved(
    app: &TestApp,
    session: &Session,
    reply: &Reply,
    why: &str,
) {
    assert_eq!(
        (reply.status, reply.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("aws_role_arn")),
        "{}",
        reply.text
    );
    assert!(reply.text.contains(why), "{}", reply.text);
    assert!(
        app.store
            .connection(session.tenant_id.parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

/// A role in CloudSpend's own account trusts CloudSpend already: any tenant connecting it would
/// read the platform's costs as a confused deputy. It was saved (200); now it is refused before
/// any AWS call, and nothing is saved.
#[tokio::test]
async fn a_role_in_cloudspends_own_account_is_refused() {
    let _moto = testing::shared().await;
    let app = TestApp::spawn_with(
        cloudspend_store::testing::fresh_postgres().await,
        cloudspend_api::ApiConfig {
            platform_account_id: Some("123456789012".into()),
            ..Default::default()
        },
    )
    .await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let id = external_id(&app, &ana).await;
    let mut body = connect_body("123456789012", &id);
    body["aws_role_arn"] = json!("arn:aws:iam::123456789012:role/PlatformInternal");
    let reply = app
        .post("/api/tenants/connect", Some(&ana.token), body)
        .await;
    assert_role_refused_and_nothing_saved(&app, &ana, &reply, "CloudSpend's own AWS account").await;
}

/// A careless customer's role, whose trust policy trusts CloudSpend's account without the
/// `sts:ExternalId` condition, can be assumed by any tenant who names it: connecting it was
/// saved. Now the connect check proves the role refuses AssumeRole without the external ID and
/// with a wrong one. moto enforces no trust policy, so to it every role is such a role: this is
/// the refusal, end to end; the acceptance of a role that enforces it is proven against
/// scripted STS answers in the connect-check crate.
#[tokio::test]
async fn a_role_that_does_not_require_the_external_id_is_refused() {
    let _moto = testing::shared().await;
    let account = unique_account_id();
    let app = TestApp::spawn_requiring_external_ids().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let id = external_id(&app, &ana).await;
    let reply = app
        .post(
            "/api/tenants/connect",
            Some(&ana.token),
            connect_body(&account, &id),
        )
        .await;
    assert_role_refused_and_nothing_saved(
        &app,
        &ana,
        &reply,
        "can be assumed without an external ID",
    )
    .await;
    let hint = reply.body["error"]["hint"].as_str().unwrap();
    assert!(
        hint.contains(&format!(r#""sts:ExternalId": "{id}""#)),
        "the hint names the missing condition: {hint}"
    );
}

#[tokio::test]
async fn bad_fields_are_422_naming_the_field_and_save_nothing() {
    let _moto = testing::shared().await;
    let account = unique_account_id();
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let id = external_id(&app, &ana).await;
    let other = app.signup("bob@example.com", "Bobco").await;
    let others_id = external_id(&app, &other).await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("external_id", json!(others_id), "external_id"),
        ("external_id", json!("not-the-one"), "external_id"),
        (
            "aws_role_arn",
            json!("arn:aws:iam::12345:role/x"),
            "aws_role_arn",
        ),
        (
            "aws_role_arn",
            json!("arn:aws:iam::123456789012:user/bob"),
            "aws_role_arn",
        ),
        ("athena_table", json!("x; DROP TABLE y"), "athena_table"),
        ("athena_db", json!("cur\"db"), "athena_db"),
        ("region", json!("mars-north-1"), "region"),
        ("regions", json!(["us-east-1", "nowhere-1"]), "regions"),
        (
            "athena_results_bucket",
            json!("Bad_Bucket"),
            "athena_results_bucket",
        ),
        ("cur_prefix", json!("../../etc"), "cur_prefix"),
        ("auth_method", json!("password"), "auth_method"),
        ("account_type", json!("personal"), "account_type"),
    ];
    for (key, value, field) in cases {
        let mut body = connect_body(&account, &id);
        body[key] = value.clone();
        let reply = app
            .post("/api/tenants/connect", Some(&ana.token), body)
            .await;
        assert_eq!(
            (reply.status, reply.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{key}={value}: {}",
            reply.text
        );
    }
    let mut missing = connect_body(&account, &id);
    missing.as_object_mut().unwrap().remove("athena_table");
    let reply = app
        .post("/api/tenants/connect", Some(&ana.token), missing)
        .await;
    assert_eq!(
        (reply.status, reply.field()),
        (StatusCode::BAD_REQUEST, Some("athena_table"))
    );
    assert!(
        app.store
            .connection(ana.tenant_id.parse().unwrap())
            .await
            .unwrap()
            .is_none(),
        "something was saved"
    );
}

#[tokio::test]
async fn viewers_cannot_connect_and_other_tenants_cannot_see_the_connection() {
    let _moto = testing::shared().await;
    let account = unique_account_id();
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let id = external_id(&app, &ana).await;
    let vic = app.signup("vic@example.com", "Vicco").await;
    app.add_member(&ana.token, "vic@example.com", "viewer")
        .await;
    let acme = [("x-tenant-id", ana.tenant_id.as_str())];
    let as_viewer = app
        .call_with(
            Method::POST,
            "/api/tenants/connect",
            Some(&vic.token),
            &acme,
            Some(connect_body(&account, &id)),
        )
        .await;
    assert_eq!(as_viewer.status, StatusCode::FORBIDDEN);
    let rotate = app
        .call_with(
            Method::POST,
            "/api/tenants/onboarding/rotate-external-id",
            Some(&vic.token),
            &acme,
            Some(json!({})),
        )
        .await;
    assert_eq!(rotate.status, StatusCode::FORBIDDEN);

    assert_eq!(
        app.post(
            "/api/tenants/connect",
            Some(&ana.token),
            connect_body(&account, &id)
        )
        .await
        .status,
        StatusCode::OK
    );
    let viewer_reads = app
        .call_with(
            Method::GET,
            "/api/tenants/connection",
            Some(&vic.token),
            &acme,
            None,
        )
        .await;
    assert_eq!(viewer_reads.status, StatusCode::OK, "viewers may look");
    let stranger = app.signup("eve@example.com", "Evil").await;
    assert_eq!(
        app.get("/api/tenants/connection", Some(&stranger.token))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let delete = app
        .call_with(
            Method::DELETE,
            "/api/tenants/connection",
            Some(&vic.token),
            &acme,
            None,
        )
        .await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);
    let delete_other = app
        .call(
            Method::DELETE,
            "/api/tenants/connection",
            Some(&stranger.token),
            None,
        )
        .await;
    assert_eq!(delete_other.status, StatusCode::NOT_FOUND);
    assert!(
        app.store
            .connection(ana.tenant_id.parse().unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

/// Creates an IAM user with an access key in moto's default account (authentication off).
async fn iam_user_with_key(moto_url: &str, name: &str) -> (String, String) {
    let client = reqwest::Client::new();
    let post = |action: String| {
        client
            .post(format!("{moto_url}/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0")
            .body(action)
            .send()
    };
    let created = post(format!(
        "Action=CreateUser&Version=2010-05-08&UserName={name}"
    ))
    .await
    .unwrap();
    assert!(
        created.status().is_success(),
        "{}",
        created.text().await.unwrap()
    );
    let key = post(format!(
        "Action=CreateAccessKey&Version=2010-05-08&UserName={name}"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let tag = |t: &str| {
        key.split(&format!("<{t}>"))
            .nth(1)
            .and_then(|r| r.split(&format!("</{t}>")).next())
            .unwrap()
            .to_string()
    };
    (tag("AccessKeyId"), tag("SecretAccessKey"))
}

#[tokio::test]
async fn access_keys_are_checked_sealed_and_never_shown() {
    let _moto = testing::exclusive().await;
    let moto = Moto::from_env();
    let user = format!("cs-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let (key_id, secret) = iam_user_with_key(&testing::moto_url(), &user).await;
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    let body = |secret: &str| {
        json!({"auth_method": "access_key", "access_key_id": key_id, "secret_access_key": secret,
               "region": "us-east-1", "athena_db": "cur_db", "athena_table": "cur_table"})
    };
    moto.enforce_auth_after(Some(0)).await;
    let wrong = app
        .post(
            "/api/tenants/connect",
            Some(&ana.token),
            body("wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGKEY00"),
        )
        .await;
    let right = app
        .post("/api/tenants/connect", Some(&ana.token), body(&secret))
        .await;
    moto.enforce_auth_after(None).await;

    assert_eq!(
        (wrong.status, wrong.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("secret_access_key")),
        "{}",
        wrong.text
    );
    assert_eq!(wrong.body["report"]["steps"][1]["name"], "caller_identity");
    assert_eq!(wrong.body["report"]["steps"][1]["status"], "failed");
    assert!(
        wrong.body["error"]["aws_code"].is_string(),
        "{}",
        wrong.text
    );

    assert_eq!(right.status, StatusCode::OK, "{}", right.text);
    assert_eq!(right.body["connection"]["auth_method"], "access_key");
    for reply in [&wrong, &right] {
        assert!(
            !reply.text.contains(&secret),
            "the secret came back in a response"
        );
    }
    let shown = app.get("/api/tenants/connection", Some(&ana.token)).await;
    assert!(
        !shown.text.contains(&secret) && !shown.text.contains(&key_id),
        "{}",
        shown.text
    );

    // In the database the secret exists only as ciphertext that opens only for this tenant.
    let tenant: cloudspend_core::TenantId = ana.tenant_id.parse().unwrap();
    let stored = app.store.connection(tenant).await.unwrap().unwrap();
    let cloudspend_core::connection::ConnectionAuth::AccessKey {
        secret_ciphertext, ..
    } = &stored.auth
    else {
        panic!("not an access key")
    };
    assert!(!secret_ciphertext.contains(&secret));
    let key = crate::common::test_master_key();
    use secrecy::ExposeSecret;
    assert_eq!(
        key.open(tenant, secret_ciphertext).unwrap().expose_secret(),
        secret
    );
    assert!(
        key.open(cloudspend_core::TenantId::new(), secret_ciphertext)
            .is_err()
    );
}
