//! Platform-wide views for the global owner.

use crate::auth::GlobalOwner;
use crate::error::{ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use axum::extract::State;
use cloudspend_core::TenantId;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(all_tenants))
}

#[derive(Serialize, ToSchema)]
pub struct AdminTenant {
    #[schema(value_type = String, format = Uuid)]
    id: TenantId,
    name: String,
    created_at: chrono::DateTime<chrono::Utc>,
    members: i64,
    /// The AWS connection's status, or null when the tenant has not connected AWS.
    connection_status: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AdminTenantsResponse {
    tenants: Vec<AdminTenant>,
}

/// Every tenant on the platform. Global owner only.
#[utoipa::path(get, path = "/api/admin/tenants", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = AdminTenantsResponse), (status = 403, body = ErrorBody)))]
async fn all_tenants(
    State(state): State<AppState>,
    _owner: GlobalOwner,
) -> ApiResult<ApiJson<AdminTenantsResponse>> {
    let tenants = state.store.all_tenants().await?;
    Ok(ApiJson(AdminTenantsResponse {
        tenants: tenants
            .into_iter()
            .map(|t| AdminTenant {
                id: t.tenant.id,
                name: t.tenant.name,
                created_at: t.tenant.created_at,
                members: t.members,
                connection_status: t.connection_status,
            })
            .collect(),
    }))
}
