//! API tokens: a user's named tokens for scripts and CI next to their login sessions. A token
//! is shown once, at creation; the store keeps only its SHA-256. A token acts as its user, in
//! the tenant it was created in and nowhere else, with that user's role there; leaving the
//! tenant revokes it. Users see and revoke all their tokens, whatever tenant they act in.

use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::accounts::audit;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use cloudspend_store::{NewToken, TokenSummary};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// A token's public id: the first 16 hex digits of its hash (enough to tell a user's tokens
/// apart, useless for finding the token).
const ID_HEX: usize = 16;

#[derive(Serialize, ToSchema)]
pub struct TokenView {
    id: String,
    /// Null for login sessions.
    name: Option<String>,
    /// The tenant an API token acts in (a session: the tenant chosen at login).
    tenant_id: Option<cloudspend_core::TenantId>,
    /// session | api
    kind: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// The token this request was made with.
    current: bool,
}

fn view(t: &TokenSummary, current_hash: &str) -> TokenView {
    TokenView {
        id: t.token_hash[..ID_HEX].to_string(),
        name: t.name.clone(),
        tenant_id: t.tenant_id,
        kind: if t.name.is_some() { "api" } else { "session" }.to_string(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        current: t.token_hash == current_hash,
    }
}

#[derive(Serialize, ToSchema)]
pub struct TokensResponse {
    tokens: Vec<TokenView>,
}

/// All the caller's live tokens (API tokens of every tenant and login sessions), newest first.
#[utoipa::path(get, path = "/api/tokens", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = TokensResponse), (status = 401, body = ErrorBody)))]
async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<TokensResponse>> {
    let tokens = state
        .store
        .tokens_of(caller.user.id, None, Utc::now())
        .await?;
    Ok(ApiJson(TokensResponse {
        tokens: tokens.iter().map(|t| view(t, &caller.token_hash)).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// What the token is for ("CI cost export"), 1 to 100 characters.
    name: String,
    /// Lifetime in days, 1 to 365 (default 90).
    expires_in_days: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    id: String,
    name: String,
    /// The bearer token. Shown this once; store it in a secret manager.
    token: String,
    expires_at: DateTime<Utc>,
}

/// Creates a named API token acting as the caller in this tenant.
#[utoipa::path(post, path = "/api/tokens", tag = "auth", security(("bearer" = [])),
    request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 422, body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> ApiResult<(StatusCode, ApiJson<CreatedToken>)> {
    let name = req.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid(
            "name",
            "give the token a name of 1 to 100 characters",
        ));
    }
    let days = req.expires_in_days.unwrap_or(90);
    if !(1..=365).contains(&days) {
        return Err(ApiError::invalid(
            "expires_in_days",
            "must be between 1 and 365",
        ));
    }
    let (token, token_hash) = auth::new_token();
    let now = Utc::now();
    let expires_at = now + chrono::Duration::days(days);
    state
        .store
        .create_token(NewToken {
            token_hash: token_hash.clone(),
            user_id: caller.user.id,
            tenant_id: Some(caller.tenant.id),
            created_at: now,
            expires_at,
            name: Some(name.clone()),
        })
        .await?;
    let id = token_hash[..ID_HEX].to_string();
    audit(
        &state,
        &caller.user,
        Some(caller.tenant.id),
        "token.create",
        serde_json::json!({ "token_id": id, "name": name, "expires_at": expires_at }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedToken {
            id,
            name,
            token,
            expires_at,
        }),
    ))
}

/// Revokes one of the caller's tokens (an API token of any tenant or a session, this one
/// included).
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id from GET /api/tokens")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if id.len() != ID_HEX || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::bad_field(
            "id",
            format!("`{id}` is not a token id: use an id from GET /api/tokens"),
        ));
    }
    let tokens = state
        .store
        .tokens_of(caller.user.id, None, Utc::now())
        .await?;
    let token = tokens
        .iter()
        .find(|t| t.token_hash.starts_with(&id.to_ascii_lowercase()))
        .ok_or_else(|| ApiError::not_found(format!("token {id}")))?;
    state
        .store
        .revoke_token(&token.token_hash, Utc::now())
        .await?;
    audit(
        &state,
        &caller.user,
        Some(caller.tenant.id),
        "token.revoke",
        serde_json::json!({ "token_id": id, "name": token.name }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
