//! Rows the [`crate::Store`] reads and writes, in domain types.

use chrono::{DateTime, Utc};
use cloudspend_core::connection::ConnectionStatus;
use cloudspend_core::records::RunStatus;
use cloudspend_core::{Role, RunId, TenantId, UserId};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct NewUser {
    /// Already validated and lower-cased.
    pub email: String,
    /// An argon2id PHC string; the store never sees a clear password.
    pub password_hash: String,
    pub is_global_owner: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub is_global_owner: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// The sts:ExternalId the tenant's IAM role must require.
    #[serde(skip)]
    pub external_id: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantSummary {
    pub tenant: Tenant,
    pub members: i64,
    pub connection_status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    /// Hex SHA-256 of the bearer token.
    pub token_hash: String,
    pub user_id: UserId,
    pub tenant_id: Option<TenantId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub user: User,
    pub tenant_id: Option<TenantId>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub tenant_id: Option<TenantId>,
    pub user_id: Option<UserId>,
    pub user_email: Option<String>,
    pub action: String,
    pub detail: serde_json::Value,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: uuid::Uuid,
    pub user_email: Option<String>,
    pub action: String,
    pub detail: serde_json::Value,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewRun {
    pub tenant_id: TenantId,
    pub collector: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub finished_at: DateTime<Utc>,
    pub rows_written: i64,
    pub aws_requests: i64,
    pub ce_requests: i64,
    pub retries: i64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CollectionRun {
    pub id: RunId,
    pub collector: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub rows_written: i64,
    pub aws_requests: i64,
    pub ce_requests: i64,
    pub retries: i64,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub tenant_id: TenantId,
    pub collector: String,
    pub interval_seconds: i64,
    pub next_run_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    pub tenant_id: TenantId,
    pub collector: String,
    pub interval_seconds: i64,
    pub next_run_at: DateTime<Utc>,
    pub leased_until: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ConnectionStatusUpdate {
    pub status: ConnectionStatus,
    /// Set when this update comes from a successful verification.
    pub verified_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub warnings: Vec<String>,
    pub at: DateTime<Utc>,
}
