//! The HTTP skeleton: health, metrics, errors for bad requests, body limit, request ids, OpenAPI.

use crate::common::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    let health = app.get("/healthz", None).await;
    assert_eq!(
        (health.status, health.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["database"], "ok");
}

#[tokio::test]
async fn readiness_is_503_json_when_the_database_is_unreachable() {
    // Nothing listens on port 1: every connection attempt fails at once.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(1))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let store = std::sync::Arc::new(cloudspend_store::postgres::PgStore::from_pool(pool));
    let app = TestApp::spawn_with(store, Default::default()).await;
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.code(), Some("database_unavailable"));
    assert_eq!(
        app.get("/healthz", None).await.status,
        StatusCode::OK,
        "liveness must not depend on the database"
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text_by_route_template() {
    let app = TestApp::spawn().await;
    app.get("/healthz", None).await;
    app.get(
        "/api/tenants/members/0b8f4c39-6a7e-4a43-9d1c-0e7ad1b3c5a1",
        None,
    )
    .await;
    let reply = app.get("/metrics", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(reply.text.contains("http_requests_total"), "{}", reply.text);
    assert!(reply.text.contains("route=\"/healthz\""));
    assert!(
        reply
            .text
            .contains("route=\"/api/tenants/members/{user_id}\""),
        "raw paths leak into labels"
    );
    assert!(!reply.text.contains("0b8f4c39"));
}

/// Days at the ends of what the date type holds overflowed the window arithmetic into a 500.
#[tokio::test]
async fn extreme_dates_are_refused_naming_the_field_not_500() {
    let app = TestApp::spawn().await;
    let ana = app.signup("ana@example.com", "Acme").await;
    // 400 for what is no date at all, 422 for a date outside 2000..2199.
    let (unparsable, out_of_range) = (StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY);
    for (path, field, status) in [
        (
            "/api/costs?from=0001-01-01&to=2026-01-01",
            "from",
            out_of_range,
        ),
        ("/api/costs?to=262142-12-31", "to", unparsable),
        (
            "/api/dashboard?from=2026-01-01&to=9999-12-31",
            "to",
            out_of_range,
        ),
        ("/api/dashboard?from=1900-02-28", "from", out_of_range),
        ("/api/anomalies?from=0001-01-01", "from", out_of_range),
    ] {
        let reply = app.get(path, Some(&ana.token)).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text);
        assert_eq!(reply.body["error"]["field"], field, "{path}");
    }
    let fine = app
        .get("/api/costs?from=2026-01-01&to=2026-02-01", Some(&ana.token))
        .await;
    assert_eq!(fine.status, StatusCode::OK, "{}", fine.text);
}

#[tokio::test]
async fn with_a_scrape_token_metrics_answer_only_a_scraper_that_sends_it() {
    let app = TestApp::spawn_with(
        cloudspend_store::testing::fresh_postgres().await,
        cloudspend_api::ApiConfig {
            metrics_token_hash: Some(cloudspend_api::auth::token_hash("scrape-secret-123")),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        app.get("/metrics", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/metrics", Some("not-the-secret")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let scraped = app.get("/metrics", Some("scrape-secret-123")).await;
    assert_eq!(scraped.status, StatusCode::OK);
    assert!(scraped.text.contains("http_requests"), "{}", scraped.text);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = TestApp::spawn().await;
    let missing = app.get("/api/nothing-here", None).await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let wrong_method = app.call(Method::PUT, "/healthz", None, None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.code(), Some("method_not_allowed"));
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let missing = app
        .post(
            "/api/auth/signup",
            None,
            json!({"email": "a@example.com", "tenant_name": "A"}),
        )
        .await;
    assert_eq!(
        (missing.status, missing.field()),
        (StatusCode::BAD_REQUEST, Some("password"))
    );
    let wrong_type = app
        .post(
            "/api/auth/signup",
            None,
            json!({"email": 42, "password": "a good long password", "tenant_name": "A"}),
        )
        .await;
    assert_eq!(
        (wrong_type.status, wrong_type.field()),
        (StatusCode::BAD_REQUEST, Some("email"))
    );
    let unknown = app
        .post(
            "/api/auth/signup",
            None,
            json!({"email": "a@example.com", "password": "a good long password", "tenant_name": "A", "is_global_owner": true}),
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.field()),
        (StatusCode::BAD_REQUEST, Some("is_global_owner"))
    );

    let not_json = app
        .client
        .post(app.url("/api/auth/signup"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    let not_json = TestApp::reply(not_json).await;
    assert_eq!(
        (not_json.status, not_json.code()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );

    let form = app
        .client
        .post(app.url("/api/auth/signup"))
        .body("email=a")
        .send()
        .await
        .unwrap();
    let form = TestApp::reply(form).await;
    assert_eq!(
        (form.status, form.code()),
        (StatusCode::BAD_REQUEST, Some("unsupported_media_type"))
    );

    assert!(
        app.store
            .credentials_by_email("a@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(app.store.all_tenants().await.unwrap().is_empty());
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413_and_write_nothing() {
    let app = TestApp::spawn().await;
    let huge = "x".repeat(2 * 1024 * 1024);
    let reply = app
        .post("/api/auth/signup", None, json!({"email": "big@example.com", "password": "a good long password", "tenant_name": huge}))
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), Some("payload_too_large"));
    // Without a Content-Length (chunked), the limit still holds.
    let stream = futures_stream(huge.into_bytes());
    let chunked = app
        .client
        .post(app.url("/api/auth/signup"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    let chunked = TestApp::reply(chunked).await;
    assert_eq!(
        chunked.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        chunked.text
    );
    assert_eq!(chunked.code(), Some("payload_too_large"));
    assert!(
        app.store
            .credentials_by_email("big@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

fn futures_stream(bytes: Vec<u8>) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    futures::stream::iter(chunks)
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = TestApp::spawn().await;
    let generated = app.get("/healthz", None).await;
    assert!(generated.headers.get("x-request-id").is_some());
    let kept = app
        .call_with(
            Method::GET,
            "/api/nope",
            None,
            &[("x-request-id", "req-123")],
            None,
        )
        .await;
    assert_eq!(kept.headers["x-request-id"], "req-123");
}

#[tokio::test]
async fn openapi_document_covers_every_route() {
    let app = TestApp::spawn().await;
    let doc = app.get("/api/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc.body["paths"].as_object().unwrap();
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/api/openapi.json", "get"),
        ("/api/auth/signup", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/logout", "post"),
        ("/api/me", "get"),
        ("/api/tenants/members", "get"),
        ("/api/tenants/members", "post"),
        ("/api/tenants/members", "delete"),
        ("/api/tenants/members/{user_id}", "delete"),
        ("/api/admin/tenants", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from OpenAPI"
        );
    }
    // Every documented path is actually served (no 404 route-not-found for any of them).
    for path in paths.keys() {
        let concrete = path.replace("{user_id}", "0b8f4c39-6a7e-4a43-9d1c-0e7ad1b3c5a1");
        let method = paths[path]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .to_uppercase();
        let reply = app
            .call(
                Method::from_bytes(method.as_bytes()).unwrap(),
                &concrete,
                None,
                None,
            )
            .await;
        assert!(
            !(reply.status == StatusCode::NOT_FOUND
                && reply.body["error"]["message"] == "route not found"),
            "{method} {path} is documented but not routed"
        );
    }
}
