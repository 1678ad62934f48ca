//! Members of the caller's tenant: list, invite or change a role, remove. A membership is made
//! only by accepting an invitation (see [`crate::routes::invitations`]).

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::accounts::audit;
use crate::routes::invitations::{self, InvitationCreated};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cloudspend_core::{Role, UserId, validate};
use cloudspend_store::Member;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, add_member, remove_member_by_body))
        .routes(routes!(remove_member))
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    #[schema(value_type = String, format = Uuid)]
    user_id: UserId,
    email: String,
    role: Role,
    since: chrono::DateTime<chrono::Utc>,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        MemberView {
            user_id: m.user_id,
            email: m.email,
            role: m.role,
            since: m.since,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MembersResponse {
    members: Vec<MemberView>,
}

/// Everyone in the caller's tenant with their role.
#[utoipa::path(get, path = "/api/tenants/members", tag = "members", security(("bearer" = [])),
    responses((status = 200, body = MembersResponse), (status = 401, body = ErrorBody)))]
async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<MembersResponse>> {
    let members = state.store.members(caller.tenant.id).await?;
    Ok(ApiJson(MembersResponse {
        members: members.into_iter().map(MemberView::from).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    /// The address to invite (or a member's, to change their role).
    email: String,
    role: Role,
}

/// Invites an address into the caller's tenant (201: an invitation, e-mailed or with the link
/// to pass on; the same answer whether or not the address has an account), or changes the role
/// of a member (200). Owners and admins only; only owners grant or take away the owner role.
#[utoipa::path(post, path = "/api/tenants/members", tag = "members", security(("bearer" = [])),
    request_body = AddMemberRequest,
    responses(
        (status = 200, description = "a member already: role changed", body = MemberView),
        (status = 201, description = "invited: a member once they accept", body = InvitationCreated),
        (status = 403, description = "viewer, or admin touching an owner", body = ErrorBody),
        (status = 409, description = "would leave no owner", body = ErrorBody),
        (status = 429, description = "too many invitations from this tenant", body = ErrorBody),
    ))]
async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<AddMemberRequest>,
) -> ApiResult<Response> {
    caller.require_manager("add or change members")?;
    let email = validate::email("email", &req.email)?;
    if !caller.role.can_assign(req.role) {
        return Err(ApiError::Forbidden {
            code: "insufficient_role",
            message: format!("a {} cannot grant the {} role", caller.role, req.role),
            field: Some("role".into()),
        });
    }
    // Looked up among the tenant's members only: whether the address has an account anywhere
    // is none of the tenant's business, and the answer must not tell.
    let member = state
        .store
        .members(caller.tenant.id)
        .await?
        .into_iter()
        .find(|m| m.email == email);
    match member {
        Some(member) => {
            let changed = change_role(&state, &caller, member, req.role).await?;
            Ok((StatusCode::OK, ApiJson(changed)).into_response())
        }
        None => {
            let invited = invitations::invite(&state, &caller, email, req.role).await?;
            Ok((StatusCode::CREATED, ApiJson(invited)).into_response())
        }
    }
}

async fn change_role(
    state: &AppState,
    caller: &Caller,
    member: Member,
    role: Role,
) -> ApiResult<MemberView> {
    let previous = member.role;
    if !caller.role.can_assign(previous) {
        return Err(ApiError::forbidden(
            "insufficient_role",
            format!("a {} cannot change the role of a {previous}", caller.role),
        ));
    }
    state
        .store
        .put_member(caller.tenant.id, member.user_id, role)
        .await?;
    audit(
        state,
        &caller.user,
        Some(caller.tenant.id),
        "member.role_change",
        serde_json::json!({"email": member.email, "role": role, "previous_role": previous}),
    )
    .await?;
    Ok(MemberView {
        role,
        ..member.into()
    })
}

/// Removes a member from the caller's tenant. Owners and admins remove others (admins not
/// owners); anyone may remove themselves. The last owner cannot be removed.
#[utoipa::path(delete, path = "/api/tenants/members/{user_id}", tag = "members", security(("bearer" = [])),
    params(("user_id" = String, Path, format = Uuid, description = "the member's user id")),
    responses(
        (status = 204, description = "removed"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "last owner", body = ErrorBody),
    ))]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> ApiResult<StatusCode> {
    let user_id: UserId = user_id
        .parse()
        .map_err(|_| ApiError::bad_field("user_id", "user_id must be a user UUID"))?;
    remove(&state, &caller, user_id).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveMemberRequest {
    /// The member's email (or give `user_id`).
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    user_id: Option<UserId>,
}

/// Same as `DELETE /api/tenants/members/{user_id}`, naming the member by email or user id in the body.
#[utoipa::path(delete, path = "/api/tenants/members", tag = "members", security(("bearer" = [])),
    request_body = RemoveMemberRequest,
    responses((status = 204, description = "removed"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_member_by_body(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RemoveMemberRequest>,
) -> ApiResult<StatusCode> {
    let user_id = match (req.user_id, req.email) {
        (Some(id), _) => id,
        (None, Some(email)) => {
            let email = validate::email("email", &email)?;
            let member = state
                .store
                .members(caller.tenant.id)
                .await?
                .into_iter()
                .find(|m| m.email == email);
            member.ok_or_else(|| ApiError::not_found("member"))?.user_id
        }
        (None, None) => {
            return Err(ApiError::bad_field(
                "email",
                "give the member's `email` or `user_id`",
            ));
        }
    };
    remove(&state, &caller, user_id).await
}

async fn remove(state: &AppState, caller: &Caller, user_id: UserId) -> ApiResult<StatusCode> {
    // Membership of the caller's tenant only: another tenant's member is "not found" here.
    let role = state
        .store
        .role_in(caller.tenant.id, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("member"))?;
    if user_id != caller.user.id {
        caller.require_manager("remove members")?;
        if !caller.role.can_assign(role) {
            return Err(ApiError::forbidden(
                "insufficient_role",
                format!("a {} cannot remove a {role}", caller.role),
            ));
        }
    }
    state.store.remove_member(caller.tenant.id, user_id).await?;
    // The API tokens they made here would otherwise outlive their membership.
    let revoked = state
        .store
        .revoke_tokens_of(user_id, Some(caller.tenant.id), chrono::Utc::now())
        .await?;
    audit(
        state,
        &caller.user,
        Some(caller.tenant.id),
        "member.remove",
        serde_json::json!({"user_id": user_id, "role": role, "api_tokens_revoked": revoked}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
