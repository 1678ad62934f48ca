//! Sign-up, login, logout and "who am I".

use crate::auth::{self, Authenticated, Caller};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::telemetry::ClientIp;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use cloudspend_core::{Role, TenantId, UserId, validate};
use cloudspend_store::{AuditStatus, NewAuditEntry, NewToken, NewUser, Tenant, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(logout_everywhere))
        .routes(routes!(me))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    email: String,
    /// At least 10 characters.
    password: String,
    /// The organisation's name; the new user becomes its owner.
    tenant_name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
    /// The tenant to act in by default (one you are a member of); the oldest membership otherwise.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    tenant_id: Option<TenantId>,
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    #[schema(value_type = String, format = Uuid)]
    id: UserId,
    email: String,
    is_global_owner: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id,
            email: u.email.clone(),
            is_global_owner: u.is_global_owner,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TenantView {
    #[schema(value_type = String, format = Uuid)]
    id: TenantId,
    name: String,
    role: Role,
}

impl TenantView {
    pub(crate) fn new(t: &Tenant, role: Role) -> Self {
        TenantView {
            id: t.id,
            name: t.name.clone(),
            role,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionResponse {
    /// Send as `Authorization: Bearer <token>`. Shown once; CloudSpend keeps only its hash.
    token: String,
    expires_at: chrono::DateTime<Utc>,
    user: UserView,
    tenant: Option<TenantView>,
}

/// Creates a user and their tenant (they become its owner) and logs them in.
#[utoipa::path(post, path = "/api/auth/signup", tag = "auth", request_body = SignupRequest, responses(
    (status = 201, body = SessionResponse),
    (status = 409, description = "email already registered", body = ErrorBody),
    (status = 422, description = "invalid field", body = ErrorBody),
    (status = 429, body = ErrorBody),
))]
async fn signup(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<SignupRequest>,
) -> ApiResult<(StatusCode, ApiJson<SessionResponse>)> {
    let email = validate::email("email", &req.email)?;
    validate::password("password", &req.password)?;
    let tenant_name = validate::display_name("tenant_name", &req.tenant_name)?;
    let ip_key = ip.to_string();
    // Counted in the same step as checked, so a burst cannot pass together.
    state
        .limits
        .signup_ip
        .try_acquire(&ip_key)
        .map_err(|wait| too_many("sign-ups from your address", wait))?;

    let password_hash = auth::hash_password(req.password).await?;
    let (user, tenant) = state
        .store
        .create_user_with_tenant(
            NewUser {
                email,
                password_hash,
                is_global_owner: false,
            },
            &tenant_name,
        )
        .await?;
    audit(
        &state,
        &user,
        Some(tenant.id),
        "auth.signup",
        serde_json::json!({"tenant_name": tenant.name}),
    )
    .await?;
    let session = issue_session(&state, &user, Some((&tenant, Role::Owner))).await?;
    Ok((StatusCode::CREATED, ApiJson(session)))
}

/// Exchanges email and password for a bearer token. Failures are throttled per email and per
/// client address.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = SessionResponse),
    (status = 401, description = "wrong email or password", body = ErrorBody),
    (status = 429, description = "too many failed attempts", body = ErrorBody),
))]
async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<ApiJson<SessionResponse>> {
    let email = validate::email("email", &req.email)?;
    let ip_key = ip.to_string();
    // The attempt is counted before the password is checked, and given back if it was right:
    // a burst of concurrent guesses cannot all pass a count none of them has added to yet.
    state
        .limits
        .login_ip
        .try_acquire(&ip_key)
        .map_err(|wait| too_many("login attempts from your address", wait))?;
    let email_at_ip = format!("{email}\n{ip_key}");
    if let Err(wait) = state.limits.login_backoff.try_acquire(&email_at_ip) {
        state.limits.login_ip.release(&ip_key);
        return Err(too_many(
            "failed logins for this email from your address",
            wait,
        ));
    }

    let credentials = state.store.credentials_by_email(&email).await?;
    let stored_hash = credentials.as_ref().map(|(_, hash)| hash.clone());
    let valid = match auth::verify_password(req.password, stored_hash).await {
        Ok(valid) => valid,
        Err(busy) => {
            // Not checked (no hashing slot): the attempt is no guess.
            state.limits.login_ip.release(&ip_key);
            state.limits.login_backoff.forget_last(&email_at_ip);
            return Err(busy);
        }
    };
    let user = match (valid, credentials) {
        (true, Some((user, _))) => user,
        _ => {
            return Err(ApiError::Unauthorized {
                code: "invalid_credentials",
                message: "wrong email or password".into(),
            });
        }
    };
    state.limits.login_ip.release(&ip_key);
    state.limits.login_backoff.succeeded(&email_at_ip);

    let memberships = state.store.tenants_of(user.id).await?;
    let chosen = match req.tenant_id {
        Some(wanted) => Some(
            memberships
                .iter()
                .find(|(t, _)| t.id == wanted)
                .ok_or_else(|| ApiError::Forbidden {
                    code: "not_a_member",
                    message: "you are not a member of that tenant".into(),
                    field: Some("tenant_id".into()),
                })?,
        ),
        None => memberships.first(),
    };
    let session = issue_session(&state, &user, chosen.map(|(t, r)| (t, *r))).await?;
    Ok(ApiJson(session))
}

/// Revokes the token this request carries.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])), responses(
    (status = 204, description = "token revoked"),
    (status = 401, body = ErrorBody),
))]
async fn logout(State(state): State<AppState>, caller: Authenticated) -> ApiResult<StatusCode> {
    state
        .store
        .revoke_token(&caller.token_hash, Utc::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct LoggedOutEverywhere {
    /// How many tokens (sessions and API tokens, this one included) were revoked.
    revoked: u64,
}

/// Revokes every token of the calling user, in every tenant: all login sessions and API tokens,
/// this one included ("log out everywhere", e.g. after a laptop is lost).
#[utoipa::path(post, path = "/api/auth/logout-everywhere", tag = "auth", security(("bearer" = [])), responses(
    (status = 200, body = LoggedOutEverywhere),
    (status = 401, body = ErrorBody),
))]
async fn logout_everywhere(
    State(state): State<AppState>,
    caller: Authenticated,
) -> ApiResult<ApiJson<LoggedOutEverywhere>> {
    let revoked = state
        .store
        .revoke_tokens_of(caller.user.id, None, Utc::now())
        .await?;
    audit(
        &state,
        &caller.user,
        None,
        "auth.logout_everywhere",
        serde_json::json!({ "revoked": revoked }),
    )
    .await?;
    Ok(ApiJson(LoggedOutEverywhere { revoked }))
}

#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    user: UserView,
    /// Every tenant the user belongs to, with their role there.
    tenants: Vec<TenantView>,
    /// The tenant this request acts in (from the token or X-Tenant-Id).
    current_tenant: Option<TenantView>,
}

/// The calling user, their tenants and roles, and the tenant this request acts in.
#[utoipa::path(get, path = "/api/me", tag = "auth", security(("bearer" = [])), params(
    ("X-Tenant-Id" = Option<String>, Header, description = "act in this tenant (you must be a member)"),
), responses((status = 200, body = MeResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn me(
    State(state): State<AppState>,
    auth: Authenticated,
    caller: Result<Caller, ApiError>,
) -> ApiResult<ApiJson<MeResponse>> {
    let tenants = state.store.tenants_of(auth.user.id).await?;
    let current_tenant = match caller {
        Ok(c) => Some(TenantView::new(&c.tenant, c.role)),
        // A user with no tenant left can still see who they are.
        Err(ApiError::Forbidden {
            code: "no_tenant", ..
        }) => None,
        Err(other) => return Err(other),
    };
    Ok(ApiJson(MeResponse {
        user: UserView::from(&auth.user),
        tenants: tenants
            .iter()
            .map(|(t, r)| TenantView::new(t, *r))
            .collect(),
        current_tenant,
    }))
}

fn too_many(what: &str, wait: std::time::Duration) -> ApiError {
    ApiError::too_many(format_args!("too many {what}"), wait)
}

async fn issue_session(
    state: &AppState,
    user: &User,
    tenant: Option<(&Tenant, Role)>,
) -> ApiResult<SessionResponse> {
    let (token, token_hash) = auth::new_token();
    let now = Utc::now();
    let ttl = chrono::Duration::from_std(state.config.token_ttl).map_err(anyhow::Error::from)?;
    let expires_at = now + ttl;
    state
        .store
        .create_token(NewToken {
            token_hash,
            user_id: user.id,
            tenant_id: tenant.map(|(t, _)| t.id),
            created_at: now,
            expires_at,
            name: None,
        })
        .await?;
    Ok(SessionResponse {
        token,
        expires_at,
        user: UserView::from(user),
        tenant: tenant.map(|(t, r)| TenantView::new(t, r)),
    })
}

pub(crate) async fn audit(
    state: &AppState,
    user: &User,
    tenant: Option<TenantId>,
    action: &str,
    detail: serde_json::Value,
) -> ApiResult<()> {
    state
        .store
        .record_audit(NewAuditEntry {
            tenant_id: tenant,
            user_id: Some(user.id),
            user_email: Some(user.email.clone()),
            action: action.to_string(),
            status: AuditStatus::Ok,
            detail,
            at: Utc::now(),
        })
        .await?;
    Ok(())
}
