//! Invitations: the only way into a tenant. An owner or admin invites an address
//! (`POST /api/tenants/members`); the account of that address, presenting the invitation's
//! one-time token, becomes a member. The token goes out by e-mail when the server has SMTP, and
//! is otherwise handed to the inviting admin once, to pass on. Whoever registered an address
//! first gains nothing by it: a squatter of `cfo@victim.com` never sees the token, and the real
//! owner of the mailbox takes the account back with a password reset by e-mail.

use crate::auth::{self, Authenticated, Caller};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::accounts::{TenantView, audit};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use cloudspend_core::{Role, UserId};
use cloudspend_store::{Invitation, InvitationAccepted, InvitationState, NewInvitation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_invitations))
        .routes(routes!(revoke_invitation))
        .routes(routes!(accept_invitation))
}

/// The dashboard page where an invitation is accepted; the token rides in the fragment, which
/// browsers never send to a server (nor in a Referer).
const ACCEPT_PAGE: &str = "/accept-invitation";

#[derive(Serialize, ToSchema)]
pub struct InvitationView {
    #[schema(value_type = String, format = Uuid)]
    id: uuid::Uuid,
    email: String,
    role: Role,
    #[schema(value_type = Option<String>, format = Uuid)]
    invited_by: Option<UserId>,
    created_at: chrono::DateTime<Utc>,
    expires_at: chrono::DateTime<Utc>,
}

impl From<Invitation> for InvitationView {
    fn from(i: Invitation) -> Self {
        InvitationView {
            id: i.id,
            email: i.email,
            role: i.role,
            invited_by: i.invited_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

/// The answer to inviting an address: the same whether or not it has a CloudSpend account.
#[derive(Serialize, ToSchema)]
pub struct InvitationCreated {
    invitation: InvitationView,
    /// Whether the invitation went out by e-mail.
    emailed: bool,
    /// The one-time token, only when it was not e-mailed (the server has no SMTP, or the relay
    /// refused): pass `accept_path` on to the invitee. Shown once; CloudSpend keeps its hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    /// Where the invitee accepts, on this server's address (`/accept-invitation#token=...`);
    /// only with `token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    accept_path: Option<String>,
}

/// Invites `email` into the caller's tenant with `role`, replacing a pending invitation of the
/// address there. The caller's right to grant `role` is checked by the caller of this.
pub(crate) async fn invite(
    state: &AppState,
    caller: &Caller,
    email: String,
    role: Role,
) -> ApiResult<InvitationCreated> {
    state
        .limits
        .invitations
        .try_acquire(&caller.tenant.id.to_string())
        .map_err(|wait| ApiError::too_many("too many invitations from this tenant", wait))?;
    let (token, token_hash) = auth::new_token();
    let now = Utc::now();
    let ttl =
        chrono::Duration::from_std(state.config.invitation_ttl).map_err(anyhow::Error::from)?;
    let invitation = state
        .store
        .create_invitation(
            caller.tenant.id,
            NewInvitation {
                email,
                role,
                token_hash,
                invited_by: caller.user.id,
                created_at: now,
                expires_at: now + ttl,
            },
        )
        .await?;
    let accept_path = format!("{ACCEPT_PAGE}#token={token}");
    let emailed = email_invitation(state, caller, &invitation, &accept_path).await;
    audit(
        state,
        &caller.user,
        Some(caller.tenant.id),
        "member.invite",
        serde_json::json!({"email": invitation.email, "role": role, "emailed": emailed,
            "expires_at": invitation.expires_at}),
    )
    .await?;
    Ok(InvitationCreated {
        invitation: invitation.into(),
        emailed,
        token: (!emailed).then_some(token),
        accept_path: (!emailed).then_some(accept_path),
    })
}

/// Sends the invitation when the server has SMTP. A relay that refuses is no reason to lose
/// the invitation: the admin is then handed the link, as without SMTP.
async fn email_invitation(
    state: &AppState,
    caller: &Caller,
    invitation: &Invitation,
    accept_path: &str,
) -> bool {
    let Some(mailer) = &state.mailer else {
        return false;
    };
    let text = format!(
        "{inviter} invited you to \"{tenant}\" on CloudSpend as {role}.\n\n\
         Accept: {link}\n\n\
         Log in as {email} (or create an account with that address) first. The link works once, \
         until {expires}. If you did not expect this, ignore this message.\n",
        inviter = caller.user.email,
        tenant = caller.tenant.name,
        role = invitation.role,
        link = mailer.link(accept_path),
        email = invitation.email,
        expires = invitation.expires_at.format("%Y-%m-%d %H:%M UTC"),
    );
    let subject = format!("Join {} on CloudSpend", caller.tenant.name);
    match mailer.send(&invitation.email, &subject, text).await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, tenant_id = %caller.tenant.id, "invitation e-mail not sent; the link goes to the inviter");
            false
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct InvitationsResponse {
    invitations: Vec<InvitationView>,
}

/// The caller's tenant's invitations not yet accepted, revoked or expired, newest first.
/// Owners and admins only.
#[utoipa::path(get, path = "/api/tenants/invitations", tag = "members", security(("bearer" = [])),
    responses((status = 200, body = InvitationsResponse), (status = 403, body = ErrorBody)))]
async fn list_invitations(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<InvitationsResponse>> {
    caller.require_manager("see invitations")?;
    let pending = state
        .store
        .pending_invitations(caller.tenant.id, Utc::now())
        .await?;
    Ok(ApiJson(InvitationsResponse {
        invitations: pending.into_iter().map(InvitationView::from).collect(),
    }))
}

/// Revokes a pending invitation of the caller's tenant: its link stops working. Owners and
/// admins (admins not invitations to the owner role).
#[utoipa::path(delete, path = "/api/tenants/invitations/{id}", tag = "members", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "the invitation's id")),
    responses(
        (status = 204, description = "revoked"),
        (status = 403, body = ErrorBody),
        (status = 404, description = "no pending invitation with this id in the tenant", body = ErrorBody),
    ))]
async fn revoke_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: uuid::Uuid = id
        .parse()
        .map_err(|_| ApiError::bad_field("id", "id must be an invitation UUID"))?;
    caller.require_manager("revoke invitations")?;
    let now = Utc::now();
    let invitation = state
        .store
        .pending_invitations(caller.tenant.id, now)
        .await?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| ApiError::not_found("pending invitation"))?;
    if !caller.role.can_assign(invitation.role) {
        return Err(ApiError::forbidden(
            "insufficient_role",
            format!(
                "a {} cannot revoke an invitation to the {} role",
                caller.role, invitation.role
            ),
        ));
    }
    if !state
        .store
        .revoke_invitation(caller.tenant.id, id, now)
        .await?
    {
        return Err(ApiError::not_found("pending invitation"));
    }
    audit(
        &state,
        &caller.user,
        Some(caller.tenant.id),
        "member.invitation_revoke",
        serde_json::json!({"email": invitation.email, "role": invitation.role}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    /// The token from the invitation link (after `#token=`).
    token: String,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationAcceptedResponse {
    /// The tenant joined, with the role the invitation gave (act in it with `X-Tenant-Id`).
    tenant: TenantView,
}

/// Joins the tenant an invitation is for. Sign in first as the invited address (with a login
/// session, not an API token); the token works once, until it expires or is revoked.
#[utoipa::path(post, path = "/api/invitations/accept", tag = "members", security(("bearer" = [])),
    request_body = AcceptInvitationRequest,
    responses(
        (status = 200, body = InvitationAcceptedResponse),
        (status = 403, description = "the invitation is for another e-mail address, or the call used an API token", body = ErrorBody),
        (status = 404, description = "no invitation with this token", body = ErrorBody),
        (status = 409, description = "the invitation was used, revoked or has expired, or you are a member already", body = ErrorBody),
    ))]
async fn accept_invitation(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiJson(req): ApiJson<AcceptInvitationRequest>,
) -> ApiResult<ApiJson<InvitationAcceptedResponse>> {
    if caller.api_token {
        return Err(ApiError::forbidden(
            "token_scope",
            "accept invitations logged in (a session from POST /api/auth/login), not with an API token",
        ));
    }
    let token = req.token.trim();
    if token.is_empty() {
        return Err(ApiError::invalid(
            "token",
            "give the token from the invitation link (the part after #token=)",
        ));
    }
    let now = Utc::now();
    let invitation = state
        .store
        .invitation_by_token(&auth::token_hash(token))
        .await?
        .ok_or_else(|| ApiError::NotFound {
            what: "invitation with this token (check that the whole link was copied)".into(),
        })?;
    refuse_unless_pending(&invitation, now)?;
    if invitation.email != caller.user.email {
        return Err(other_email());
    }
    match state
        .store
        .accept_invitation(invitation.tenant_id, invitation.id, caller.user.id, now)
        .await?
    {
        InvitationAccepted::Joined => {}
        InvitationAccepted::NotPending => {
            return Err(gone("invitation_used", "was just used or revoked"));
        }
        InvitationAccepted::OtherEmail => return Err(other_email()),
        InvitationAccepted::AlreadyMember => {
            return Err(ApiError::Conflict {
                code: "already_a_member",
                message: "you are a member of this tenant already: pick it with X-Tenant-Id (or the tenant switcher)".into(),
                field: Some("token".into()),
            });
        }
    }
    let (tenant, role) = state
        .store
        .membership(invitation.tenant_id, caller.user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    audit(
        &state,
        &caller.user,
        Some(tenant.id),
        "member.add",
        serde_json::json!({"email": caller.user.email, "role": role, "invitation_id": invitation.id,
            "invited_by": invitation.invited_by}),
    )
    .await?;
    Ok(ApiJson(InvitationAcceptedResponse {
        tenant: TenantView::new(&tenant, role),
    }))
}

fn refuse_unless_pending(invitation: &Invitation, now: chrono::DateTime<Utc>) -> ApiResult<()> {
    match invitation.state(now) {
        InvitationState::Pending => Ok(()),
        InvitationState::Accepted => Err(gone("invitation_used", "was used already")),
        InvitationState::Revoked => Err(gone("invitation_revoked", "was revoked")),
        InvitationState::Expired => Err(gone(
            "invitation_expired",
            &format!("expired at {}", invitation.expires_at.to_rfc3339()),
        )),
    }
}

fn gone(code: &'static str, what: &str) -> ApiError {
    ApiError::Conflict {
        code,
        message: format!(
            "this invitation {what}: ask an owner or admin of the tenant for a new one"
        ),
        field: Some("token".into()),
    }
}

fn other_email() -> ApiError {
    ApiError::Forbidden {
        code: "invitation_other_email",
        message: "this invitation is for another e-mail address: log in (or sign up) with the invited address, then open the link again".into(),
        field: Some("token".into()),
    }
}
