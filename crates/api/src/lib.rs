//! The CloudSpend HTTP API: the axum router, its handlers, who-is-calling extractors, the JSON
//! error body, and the OpenAPI document generated from the handlers.
//!
//! Handlers only orchestrate: they read the caller (user, tenant, role) from the token,
//! validate input, call the store (and, later, collectors), and shape the answer. They never
//! take a tenant id from a path or body. No SQL and no AWS SDK calls live here.
//!
//! Layout:
//! - [`app`] builds the router (tests drive it with `oneshot`); [`serve`] runs it on a listener
//!   until the shutdown future resolves.
//! - [`routes`]: one module per resource.
//! - [`auth`]: tokens, passwords, and the `Caller` / `Authenticated` / `GlobalOwner` extractors.
//! - [`error`], [`json`]: the error type and the JSON extractor that names bad fields.
//! - [`telemetry`]: tracing set-up, request spans and ids, Prometheus metrics.
//! - [`mail`]: invitation and password reset e-mail through the operator's SMTP relay.
//! - [`rate_limit`] (login and sign-up guessing), [`overload`] (requests in flight and their
//!   time), [`state`].

pub mod auth;
pub mod byte_lru;
pub mod error;
pub mod json;
pub mod mail;
pub mod overload;
pub mod rate_limit;
pub mod routes;
pub mod state;
pub mod telemetry;

pub use error::{ApiError, ApiResult};
pub use state::{ApiConfig, AppState};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

/// Request bodies above this are refused with 413 before a handler runs.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(title = "CloudSpend API", description = "Multi-tenant cloud cost intelligence. Errors are always \
        `{\"error\": {\"code\", \"message\", \"field\"}}`. Authenticate with `Authorization: Bearer <token>` \
        from POST /api/auth/login; pick a tenant with `X-Tenant-Id` when you belong to several."),
    modifiers(&BearerAuth),
    components(schemas(error::ErrorBody, error::ErrorDetail))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("opaque")
                    .build(),
            ),
        );
    }
}

/// The routes and their OpenAPI description, before layers.
fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::health::router())
        .merge(routes::accounts::router())
        .merge(routes::members::router())
        .merge(routes::invitations::router())
        .merge(routes::passwords::router())
        .merge(routes::admin::router())
        .merge(routes::collections::router())
        .merge(routes::costs::router())
        .merge(routes::insights::router())
        .merge(routes::alerts::router())
        .merge(routes::tokens::router())
        .merge(routes::diagnostics::router())
        .merge(routes::onboarding::router())
        .merge(routes::actions::router())
        .merge(routes::alarms::router())
        .merge(routes::budgets::router())
        .split_for_parts()
}

/// The OpenAPI document of every route [`app`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = routes();
    document_common_errors(&mut doc);
    doc.paths
        .paths
        .insert("/api/openapi.json".to_string(), openapi_path_item());
    doc
}

/// Adds the error answers any operation can give to operations that do not document them
/// already, all with the `ErrorBody` shape: malformed input (400), validation (422), an
/// unknown id (404), an oversized body (413), the database down (503); and for operations
/// behind a token, a missing or expired token (401), a role that may not (403) and login
/// throttling (429).
fn document_common_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    let common = [
        (
            "400",
            "malformed request (bad JSON, query or path value)",
            false,
        ),
        ("404", "not found (for this tenant)", false),
        ("413", "body over the size limit", false),
        (
            "422",
            "a field failed validation; `error.field` names it",
            false,
        ),
        ("429", "too many attempts; see Retry-After", false),
        (
            "503",
            "the database is unreachable; try again shortly",
            false,
        ),
        ("401", "missing, unknown, expired or revoked token", true),
        ("403", "the caller's role may not do this", true),
        ("409", "conflicts with the current state", true),
    ];
    for item in doc.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            for (status, description, needs_token) in common {
                if needs_token && !secured {
                    continue;
                }
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error(description).into());
            }
        }
    }
}

fn openapi_path_item() -> utoipa::openapi::PathItem {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::{ContentBuilder, ResponseBuilder};
    PathItem::new(
        HttpMethod::Get,
        OperationBuilder::new()
            .tag("meta")
            .summary(Some("This OpenAPI document"))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("OpenAPI 3.1 document")
                    .content("application/json", ContentBuilder::new().build()),
            ),
    )
}

/// The whole application: routes plus the layers every request goes through (outermost first):
/// request id, JSON error bodies, the bound on requests in flight and their time, panic
/// catching, body limit, then per-route logging/metrics.
pub fn app(state: AppState) -> Router {
    let (router, _) = routes();
    let document = openapi();
    let document_json = serde_json::to_string(&document).expect("OpenAPI document serialises");
    router
        .route(
            "/api/openapi.json",
            get(move || {
                let body = document_json.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        )
        // GETs of paths the API does not own belong to the dashboard (crates/web); anything
        // else unknown stays a JSON 404.
        .fallback(|request: axum::extract::Request| async move {
            let path = request.uri().path();
            if cloudspend_web::serves(request.method(), path) {
                cloudspend_web::respond(path, request.headers())
            } else {
                axum::response::IntoResponse::into_response(ApiError::not_found("route"))
            }
        })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .route_layer(axum::middleware::from_fn(telemetry::observe))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT_BYTES))
        .layer(CatchPanicLayer::custom(telemetry::panic_response))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            overload::bound,
        ))
        .layer(axum::middleware::from_fn(telemetry::json_errors))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    telemetry::prometheus();
    let app = app(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
