//! Passwords: a signed-in user changes theirs; a user who lost it resets it through a one-time
//! link sent by e-mail (when the server has SMTP). Both revoke the user's other sessions and
//! tokens, so whoever held the account before (a thief, or a squatter who registered someone
//! else's address) is out of it.

use crate::auth::{self, Authenticated};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::accounts::audit;
use crate::state::AppState;
use crate::telemetry::ClientIp;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use cloudspend_core::validate;
use cloudspend_store::{NewAuditEntry, NewPasswordReset, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(change_password))
        .routes(routes!(request_password_reset))
        .routes(routes!(confirm_password_reset))
}

/// The dashboard page where a reset is completed; the token rides in the fragment.
const RESET_PAGE: &str = "/reset-password";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    current_password: String,
    /// At least 10 characters.
    new_password: String,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordChanged {
    /// How many of your other sessions and API tokens (in every tenant) were revoked; the session
    /// that made the change stays.
    revoked: u64,
}

/// Changes the caller's password. Every other login session and every API token of the user is
/// revoked (a password is changed when it may be known to someone else, who may have made
/// tokens with it); the session making the call stays. Wrong current passwords count as failed
/// logins for the account from this address.
#[utoipa::path(post, path = "/api/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, body = PasswordChanged),
        (status = 403, description = "wrong current password, or the call used an API token", body = ErrorBody),
        (status = 422, description = "the new password is too short or too long", body = ErrorBody),
        (status = 429, description = "too many wrong passwords from this address", body = ErrorBody),
    ))]
async fn change_password(
    State(state): State<AppState>,
    caller: Authenticated,
    ip: ClientIp,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> ApiResult<ApiJson<PasswordChanged>> {
    if caller.api_token {
        return Err(ApiError::forbidden(
            "token_scope",
            "change your password logged in (a session from POST /api/auth/login), not with an API token",
        ));
    }
    validate::password("new_password", &req.new_password)?;
    check_current_password(&state, &caller.user, &ip, req.current_password).await?;
    let password_hash = auth::hash_password(req.new_password).await?;
    let revoked = state
        .store
        .change_password(
            caller.user.id,
            &password_hash,
            Some(&caller.token_hash),
            Utc::now(),
        )
        .await?;
    audit(
        &state,
        &caller.user,
        None,
        "auth.password_change",
        serde_json::json!({ "revoked": revoked }),
    )
    .await?;
    Ok(ApiJson(PasswordChanged { revoked }))
}

/// Whether `password` is the user's, throttled as logins are (the same per email and address
/// backoff): a stolen session must not become a way to guess the password.
async fn check_current_password(
    state: &AppState,
    user: &User,
    ip: &ClientIp,
    password: String,
) -> ApiResult<()> {
    let email_at_ip = format!("{}\n{ip}", user.email);
    state
        .limits
        .login_backoff
        .try_acquire(&email_at_ip)
        .map_err(|wait| {
            ApiError::too_many(
                "too many wrong passwords for this account from your address",
                wait,
            )
        })?;
    let stored = state
        .store
        .credentials_by_email(&user.email)
        .await?
        .map(|(_, hash)| hash);
    match auth::verify_password(password, stored).await {
        Ok(true) => {
            state.limits.login_backoff.succeeded(&email_at_ip);
            Ok(())
        }
        Ok(false) => Err(ApiError::Forbidden {
            code: "wrong_password",
            message: "the current password is not right".into(),
            field: Some("current_password".into()),
        }),
        Err(busy) => {
            state.limits.login_backoff.forget_last(&email_at_ip);
            Err(busy)
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    email: String,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordResetRequested {
    message: String,
}

/// Sends a one-time link to reset the password of the account with this e-mail, if there is
/// one. The answer is the same whether or not there is (and comes before any e-mail is sent).
#[utoipa::path(post, path = "/api/auth/password-reset", tag = "auth",
    request_body = PasswordResetRequest,
    responses(
        (status = 202, body = PasswordResetRequested),
        (status = 422, body = ErrorBody),
        (status = 429, description = "too many reset requests from this address", body = ErrorBody),
        (status = 409, description = "this server sends no e-mail (no SMTP): ask its operator", body = ErrorBody),
    ))]
async fn request_password_reset(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<PasswordResetRequest>,
) -> ApiResult<(StatusCode, ApiJson<PasswordResetRequested>)> {
    let email = validate::email("email", &req.email)?;
    if state.mailer.is_none() {
        // A 4xx: the server is configured so, nothing is down (and the fuzzer counts 5xx as bugs).
        return Err(ApiError::Conflict {
            code: "email_not_configured",
            message: "this server sends no e-mail, so passwords cannot be reset by e-mail: ask your CloudSpend operator".into(),
            field: None,
        });
    }
    state
        .limits
        .password_reset_ip
        .try_acquire(&ip.to_string())
        .map_err(|wait| {
            ApiError::too_many("too many password reset requests from your address", wait)
        })?;
    // Past a few e-mails an hour to one address nothing more is sent (the victim's mailbox is
    // not flooded), and the answer does not change.
    if state
        .limits
        .password_reset_email
        .try_acquire(&email)
        .is_ok()
    {
        // In the background: whether an account exists (and an e-mail goes out) must not show
        // in the answer's timing either.
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(error) = send_reset(&state, &email).await {
                tracing::warn!(%error, "password reset e-mail not sent");
            }
        });
    }
    let minutes = state.config.password_reset_ttl.as_secs() / 60;
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(PasswordResetRequested {
            message: format!(
                "if an account uses this address, a link to reset its password is on its way; it works once, for {minutes} minutes"
            ),
        }),
    ))
}

/// Makes a reset token for the account with `email`, if any, and e-mails its link.
async fn send_reset(state: &AppState, email: &str) -> anyhow::Result<()> {
    let Some(mailer) = &state.mailer else {
        return Ok(());
    };
    let Some((user, _)) = state.store.credentials_by_email(email).await? else {
        return Ok(());
    };
    let (token, token_hash) = auth::new_token();
    let now = Utc::now();
    let expires_at = now + chrono::Duration::from_std(state.config.password_reset_ttl)?;
    state
        .store
        .create_password_reset(NewPasswordReset {
            token_hash,
            user_id: user.id,
            created_at: now,
            expires_at,
        })
        .await?;
    let text = format!(
        "Someone asked to reset the password of your CloudSpend account ({email}).\n\n\
         Choose a new password: {link}\n\n\
         The link works once, until {expires}; using it logs out every session of the account. \
         If you did not ask, ignore this message: your password stays as it is.\n",
        link = mailer.link(&format!("{RESET_PAGE}#token={token}")),
        expires = expires_at.format("%Y-%m-%d %H:%M UTC"),
    );
    mailer
        .send(email, "Reset your CloudSpend password", text)
        .await
        .map_err(anyhow::Error::msg)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmPasswordResetRequest {
    /// The token from the e-mailed link (after `#token=`).
    token: String,
    /// At least 10 characters.
    new_password: String,
}

/// Sets a new password with an e-mailed reset token, once, before it expires. Every session and
/// API token of the account is revoked: log in again with the new password.
#[utoipa::path(post, path = "/api/auth/password-reset/confirm", tag = "auth",
    request_body = ConfirmPasswordResetRequest,
    responses(
        (status = 204, description = "password set; every session revoked"),
        (status = 400, description = "the token is unknown, used or expired", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "too many failed attempts from this address", body = ErrorBody),
    ))]
async fn confirm_password_reset(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<ConfirmPasswordResetRequest>,
) -> ApiResult<StatusCode> {
    let token = req.token.trim();
    if token.is_empty() {
        return Err(ApiError::invalid(
            "token",
            "give the token from the reset link (the part after #token=)",
        ));
    }
    validate::password("new_password", &req.new_password)?;
    // Failed tries count against the address's reset requests: bogus tokens cost a hash each.
    let ip_key = ip.to_string();
    state
        .limits
        .password_reset_ip
        .try_acquire(&ip_key)
        .map_err(|wait| {
            ApiError::too_many("too many password reset attempts from your address", wait)
        })?;
    let password_hash = auth::hash_password(req.new_password).await?;
    let Some(user_id) = state
        .store
        .reset_password(&auth::token_hash(token), &password_hash, Utc::now())
        .await?
    else {
        return Err(ApiError::BadRequest {
            code: "reset_token_invalid",
            message:
                "this reset link is unknown, was used already or has expired: ask for a new one"
                    .into(),
            field: Some("token".into()),
        });
    };
    state.limits.password_reset_ip.release(&ip_key);
    let email = state.store.user_by_id(user_id).await?.map(|u| u.email);
    state
        .store
        .record_audit(NewAuditEntry {
            tenant_id: None,
            user_id: Some(user_id),
            user_email: email,
            action: "auth.password_reset".into(),
            detail: serde_json::json!({}),
            status: cloudspend_store::AuditStatus::Succeeded,
            at: Utc::now(),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
