//! Rows the [`crate::Store`] reads and writes, in domain types.

use chrono::{DateTime, NaiveDate, Utc};
use cloudspend_core::connection::ConnectionStatus;
use cloudspend_core::records::RunStatus;
use cloudspend_core::{AnomalyId, Money, Role, RunId, TenantId, UserId};
use serde::Serialize;
use uuid::Uuid;

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
    /// A counter every write to what the dashboard shows moves (costs, anomalies, runs, the
    /// connection, ...), in the writing transaction or after it commits; as of when the row
    /// was read. Equal values: nothing the dashboard reads has changed, on any replica.
    #[serde(skip)]
    pub data_version: i64,
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

/// An invitation to join a tenant, made by an owner or admin. Only the account of the invited
/// address, presenting the one-time token, can turn it into a membership.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    /// Already validated and lower-cased.
    pub email: String,
    pub role: Role,
    /// Hex SHA-256 of the one-time token; the token itself is never stored.
    pub token_hash: String,
    pub invited_by: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invitation {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub email: String,
    pub role: Role,
    /// `None` once that user is deleted.
    pub invited_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Where an invitation stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

impl Invitation {
    pub fn state(&self, now: DateTime<Utc>) -> InvitationState {
        if self.accepted_at.is_some() {
            InvitationState::Accepted
        } else if self.revoked_at.is_some() {
            InvitationState::Revoked
        } else if self.expires_at <= now {
            InvitationState::Expired
        } else {
            InvitationState::Pending
        }
    }
}

/// What [`crate::Store::accept_invitation`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationAccepted {
    /// The membership now exists with the invitation's role.
    Joined,
    /// Accepted, revoked or expired by the time the transaction ran (or no such invitation in
    /// the tenant): nothing changed.
    NotPending,
    /// The accepting user's e-mail is not the invited one: nothing changed.
    OtherEmail,
    /// The user is a member of the tenant already: nothing changed.
    AlreadyMember,
}

/// A one-time password reset token sent by e-mail.
#[derive(Debug, Clone)]
pub struct NewPasswordReset {
    /// Hex SHA-256 of the token; the token itself is never stored.
    pub token_hash: String,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    /// Hex SHA-256 of the bearer token.
    pub token_hash: String,
    pub user_id: UserId,
    pub tenant_id: Option<TenantId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Set for API tokens a user created; login sessions have none.
    pub name: Option<String>,
}

/// A live token as its owner lists it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSummary {
    pub token_hash: String,
    /// The tenant it was made in (a login session: the tenant chosen at login, if any).
    pub tenant_id: Option<TenantId>,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub user: User,
    pub tenant_id: Option<TenantId>,
    /// Named API tokens have one; login sessions do not.
    pub name: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub tenant_id: Option<TenantId>,
    pub user_id: Option<UserId>,
    pub user_email: Option<String>,
    pub action: String,
    /// How the request ended; [`AuditStatus::Ok`] for a change recorded without an outcome.
    pub status: AuditStatus,
    pub detail: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// The outcome an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditStatus {
    /// An audited request that did what it was asked.
    Succeeded,
    /// A check said no (role, state, token, validation).
    Refused,
    /// AWS or CloudSpend failed while carrying it out.
    Failed,
    /// A change recorded without an outcome (members, tokens, connection, subscriptions), and
    /// every entry written before outcomes were recorded.
    Ok,
}

impl AuditStatus {
    pub const ALL: [AuditStatus; 4] = [Self::Succeeded, Self::Refused, Self::Failed, Self::Ok];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Refused => "refused",
            Self::Failed => "failed",
            Self::Ok => "ok",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
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

// --- insights ------------------------------------------------------------------------------

/// A breakdown kept in `cost_rollups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RollupDimension {
    Total,
    Service,
    Account,
    Region,
}

impl RollupDimension {
    pub const ALL: [RollupDimension; 4] = [Self::Total, Self::Service, Self::Account, Self::Region];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Total => "total",
            Self::Service => "service",
            Self::Account => "account",
            Self::Region => "region",
        }
    }
}

/// One day of one key of a rollup, after source precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupDay {
    pub day: NaiveDate,
    /// Service name, account id or region; empty for the total.
    pub key: String,
    pub amount: Money,
    /// Some of the amount is Cost Explorer's estimate.
    pub estimated: bool,
}

/// The sum of one key of a rollup over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupTotal {
    pub key: String,
    pub amount: Money,
}

/// The user's verdict on an anomaly (AWS calls these feedback YES / NO / PLANNED_ACTIVITY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyStatus {
    Open,
    Acknowledged,
    Resolved,
    Planned,
}

impl AnomalyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
            Self::Planned => "planned",
        }
    }
}

impl std::str::FromStr for AnomalyStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "acknowledged" => Ok(Self::Acknowledged),
            "resolved" => Ok(Self::Resolved),
            "planned" => Ok(Self::Planned),
            other => Err(format!(
                "unknown anomaly status `{other}`: use open, acknowledged, resolved or planned"
            )),
        }
    }
}

/// An anomaly as the detector reports it, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAnomaly {
    /// "total", "service:AmazonEC2", "account:123456789012" or "region:us-east-1".
    pub series: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub expected: Money,
    pub lower: Money,
    pub upper: Money,
    pub actual: Money,
    pub impact: Money,
    pub impact_percent: f64,
    pub score: f64,
    /// low | medium | high | critical
    pub severity: String,
    pub root_causes: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredAnomaly {
    pub id: AnomalyId,
    pub detection: NewAnomaly,
    pub status: AnomalyStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct AnomalyFilter {
    pub status: Option<AnomalyStatus>,
    /// Anomalies whose last day is on or after this day.
    pub from: Option<NaiveDate>,
    /// Anomalies whose first day is before this day.
    pub to: Option<NaiveDate>,
    pub limit: i64,
}

/// A finding computed after collection (idle or oversized instance, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// idle | oversized | stopped_with_volumes
    pub kind: String,
    pub resource_id: String,
    pub monthly_savings: Money,
    /// Everything else the API shows (evidence, instance type, CPU figures, ...).
    pub detail: serde_json::Value,
    pub computed_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub name: String,
    /// webhook | email
    pub channel: String,
    /// A URL for webhooks, an address for email.
    pub target: String,
    /// absolute | percent
    pub threshold_kind: String,
    /// A decimal: money for absolute thresholds, a percentage for percent ones.
    pub threshold: String,
    /// immediate | daily
    pub frequency: String,
    /// The HMAC signing secret, sealed with the master key.
    pub secret_ciphertext: String,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    pub id: Uuid,
    pub name: String,
    pub channel: String,
    pub target: String,
    pub threshold_kind: String,
    pub threshold: String,
    pub frequency: String,
    #[serde(skip)]
    pub secret_ciphertext: String,
    pub created_at: DateTime<Utc>,
    pub last_digest_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub subscription_id: Uuid,
    /// anomaly | digest | budget | test
    pub kind: String,
    /// What the alert is about ("anomaly:<id>", "digest:2026-11-30"); a subscription gets one
    /// delivery per subject however often it is enqueued.
    pub subject_key: String,
    pub payload: serde_json::Value,
    pub next_attempt_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub tenant_id: TenantId,
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub kind: String,
    pub subject_key: String,
    pub payload: serde_json::Value,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub response_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    pub status: DeliveryStatus,
    /// When to try again while `status` is pending.
    pub next_attempt_at: DateTime<Utc>,
    pub response_code: Option<i64>,
    pub last_error: Option<String>,
    pub at: DateTime<Utc>,
}

/// The latest run of one collector and its latest successful one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorHealth {
    pub collector: String,
    pub last_run: CollectionRun,
    pub last_success_at: Option<DateTime<Utc>>,
}

/// What CloudSpend's own AWS calls for a tenant add up to over a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AwsUsage {
    pub requests: i64,
    pub ce_requests: i64,
}

/// Instances by state and type, for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceCount {
    pub state: String,
    pub instance_type: String,
    pub count: i64,
}

// --- actions, budgets, alarms (issue 9) ---

/// A confirmation token as issued: only the SHA-256 of the token is stored.
#[derive(Debug, Clone)]
pub struct NewActionToken {
    pub token_hash: String,
    pub user_id: UserId,
    pub instance_id: String,
    pub region: String,
    /// stop | start
    pub action: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// What the requester was shown (monthly cost, the finding behind it).
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActionToken {
    pub tenant_id: TenantId,
    pub token_hash: String,
    pub user_id: UserId,
    pub instance_id: String,
    pub region: String,
    pub action: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub detail: serde_json::Value,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub id: Uuid,
    pub user_email: Option<String>,
    pub action: String,
    pub status: AuditStatus,
    pub detail: serde_json::Value,
    pub at: DateTime<Utc>,
}

impl AuditRecord {
    /// Where this entry sits in the log, for the next page to start after it.
    pub fn position(&self) -> AuditCursor {
        AuditCursor {
            at: self.at,
            id: self.id,
        }
    }
}

/// Which of a tenant's audit entries to list or count.
#[derive(Debug, Clone)]
pub struct AuditFilter {
    /// The user's email, compared case-insensitively.
    pub user_email: Option<String>,
    /// An action (`action.confirm`) or a prefix of dotted actions (`action`).
    pub action: Option<String>,
    pub status: Option<AuditStatus>,
    /// Entries at or after this instant only (the caller folds the retention window in).
    pub from: DateTime<Utc>,
    /// Entries before this instant only.
    pub to: Option<DateTime<Utc>>,
}

impl AuditFilter {
    /// Every entry, however old (no retention window applied).
    pub fn everything() -> Self {
        AuditFilter {
            user_email: None,
            action: None,
            status: None,
            from: DateTime::UNIX_EPOCH,
            to: None,
        }
    }
}

/// A position in a tenant's audit log, which is ordered newest first by (`at`, `id`). A page
/// that starts after a position holds only entries older than it, so entries recorded while
/// someone pages (newer than anything listed) never shift a page or repeat an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditCursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

/// One page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub entries: Vec<AuditRecord>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next: Option<AuditCursor>,
}

/// How many of a tenant's audit entries match a filter, in all and per outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AuditCounts {
    pub total: i64,
    pub succeeded: i64,
    pub refused: i64,
    pub failed: i64,
    pub ok: i64,
}

impl AuditCounts {
    pub fn add(&mut self, status: AuditStatus, count: i64) {
        self.total += count;
        *match status {
            AuditStatus::Succeeded => &mut self.succeeded,
            AuditStatus::Refused => &mut self.refused,
            AuditStatus::Failed => &mut self.failed,
            AuditStatus::Ok => &mut self.ok,
        } += count;
    }
}

/// A tenant's monthly budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub amount: Money,
    pub currency: String,
    /// Whole percents of `amount` for the month-to-date spend, ascending.
    pub actual_thresholds: Vec<u32>,
    /// Whole percents of `amount` for the month-end forecast, ascending.
    pub forecast_thresholds: Vec<u32>,
    pub alerted: BudgetAlerted,
    pub updated_by: Option<UserId>,
    pub updated_at: DateTime<Utc>,
}

/// Which thresholds have been crossed (and alerted) in `month`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BudgetAlerted {
    /// YYYY-MM; empty before the first check.
    pub month: String,
    pub actual: Vec<u32>,
    pub forecast: Vec<u32>,
}
