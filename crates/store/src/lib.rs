//! The CloudSpend store: one [`Store`] trait and two backends over sqlx, PostgreSQL for
//! production and SQLite for the embedded first run (`cloudspend demo`).
//!
//! The store never calls AWS and holds no business rules beyond what keeps data consistent
//! (uniqueness, one transaction per collection window, never removing a tenant's last owner).
//! Every method that touches tenant data takes the [`TenantId`] as an argument and filters by
//! it; callers get that id from the authenticated caller, never from a request body.
//!
//! Both backends run the same SQL text where the dialects agree (which is nearly everywhere:
//! `$n` parameters, `ON CONFLICT ... DO UPDATE`, `RETURNING`), expanded from one macro in
//! [`shared`], so they cannot drift apart; where they differ (leasing jobs with
//! `FOR UPDATE SKIP LOCKED`) each backend has its own method. A conformance suite in
//! `tests/conformance.rs` runs the same cases against both.
//!
//! Layout:
//! - [`model`]: the rows the trait reads and writes.
//! - [`shared`]: the SQL common to both backends.
//! - [`sealed`]: every secret sealed under the master key, for re-sealing under a new one.
//! - [`diagnostics`]: live AWS calls made through the diagnostic endpoints.
//! - [`grouped_costs`]: costs summed per period and key in SQL, for the costs view.
//! - [`postgres`], [`sqlite`]: connection set-up, embedded migrations, dialect-specific SQL.
//! - [`testing`]: a fresh, migrated database per test, for this crate's and other crates' tests.

pub mod diagnostics;
pub mod grouped_costs;
pub mod model;
pub mod postgres;
pub mod sealed;
mod shared;
pub mod sqlite;
pub mod testing;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use cloudspend_core::connection::AwsConnection;
use cloudspend_core::records::{CostRecord, CostSource, Instance, MetricPoint};
use cloudspend_core::{AnomalyId, Role, RunId, TenantId, UserId};
use std::sync::Arc;
use std::time::Duration;

pub use diagnostics::{Admission, Allowance, DiagnosticCalls, DiagnosticEndpoint};
pub use grouped_costs::{CostGrouping, CostGroups, GroupedCost, GroupedCosts};
pub use model::*;
pub use sealed::{SealedSecret, SealedSecretKind, SealedSecrets};
pub use shared::CostBatches;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Writes cost rows made on a blocking thread (an import's merge, reading temporary files) with
/// [`Store::upsert_daily_costs_streamed`]: the batches are produced while the store writes the
/// ones before them, and memory holds a few batches. `batches` must give the rows in key order,
/// all on `days`; an `Err` from it ends the write with nothing written
/// ([`StoreError::Source`] with its text).
pub async fn upsert_daily_costs_from<I>(
    store: &dyn Store,
    tenant: TenantId,
    days: (NaiveDate, NaiveDate),
    batches: I,
) -> Result<u64>
where
    I: Iterator<Item = std::result::Result<Vec<CostRecord>, String>> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let producer = tokio::task::spawn_blocking(move || {
        for batch in batches {
            // A closed channel means the write failed; it says why.
            if sender.blocking_send(batch).is_err() {
                break;
            }
        }
    });
    let written = store
        .upsert_daily_costs_streamed(tenant, days, receiver)
        .await;
    if let Err(panic) = producer.await
        && panic.is_panic()
    {
        std::panic::resume_unwind(panic.into_panic());
    }
    written
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; `field` names the value that clashed.
    #[error("{field} already exists")]
    Conflict { field: &'static str },
    /// The row the call refers to does not exist (for this tenant).
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The change would leave a tenant without an owner.
    #[error("a tenant must keep at least one owner")]
    LastOwner,
    /// The tenant already has as many of `what` as it may have.
    #[error("a tenant may have at most {limit} {what}")]
    LimitReached { what: &'static str, limit: usize },
    #[error("unsupported DATABASE_URL `{0}`: use postgres://... or sqlite://...")]
    UnsupportedUrl(String),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The rows handed to a streamed write could not all be had (the file being imported
    /// failed part-way) or broke its rules; nothing was written.
    #[error("{0}")]
    Source(String),
}

impl StoreError {
    /// Whether a value could not be stored as text (PostgreSQL refuses NUL characters,
    /// SQLSTATE 22021): the caller sent it, so it is the caller's error.
    pub fn is_invalid_text(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("22021"))
    }

    /// Whether the database could not be reached at all (as opposed to a bad query), which
    /// the API reports as 503 rather than 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
            )
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Everything CloudSpend keeps. Object-safe so the service holds an `Arc<dyn Store>` chosen at
/// start-up from `DATABASE_URL`.
#[async_trait]
pub trait Store: SealedSecrets + DiagnosticCalls + CostGroups + Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// One round trip, for `/readyz`.
    async fn ping(&self) -> Result<()>;

    /// Applies pending embedded migrations. Safe to run from several processes at once.
    async fn migrate(&self) -> Result<()>;

    // --- users, tenants, memberships -------------------------------------------------------

    /// Creates a user; `Conflict { field: "email" }` when the email is taken.
    async fn create_user(&self, user: NewUser) -> Result<User>;

    /// Creates a user, their tenant and their owner membership in one transaction.
    async fn create_user_with_tenant(
        &self,
        user: NewUser,
        tenant_name: &str,
    ) -> Result<(User, Tenant)>;

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>>;

    /// The user and their password hash, for login.
    async fn credentials_by_email(&self, email: &str) -> Result<Option<(User, String)>>;

    async fn set_global_owner(&self, id: UserId, is_global_owner: bool) -> Result<()>;

    async fn set_password_hash(&self, id: UserId, password_hash: &str) -> Result<()>;

    /// Creates a tenant owned by `owner`.
    async fn create_tenant(&self, name: &str, owner: UserId) -> Result<Tenant>;

    async fn tenant(&self, id: TenantId) -> Result<Option<Tenant>>;

    /// Every tenant with its member count, for the global owner.
    async fn all_tenants(&self) -> Result<Vec<TenantSummary>>;

    /// The tenants a user belongs to, oldest membership first.
    async fn tenants_of(&self, user: UserId) -> Result<Vec<(Tenant, Role)>>;

    async fn role_in(&self, tenant: TenantId, user: UserId) -> Result<Option<Role>>;

    /// The tenant and the user's role in it, in one round trip (every authenticated request
    /// asks); `None` when the user is not a member.
    async fn membership(&self, tenant: TenantId, user: UserId) -> Result<Option<(Tenant, Role)>>;

    async fn members(&self, tenant: TenantId) -> Result<Vec<Member>>;

    /// Adds the user to the tenant or changes their role. Refuses (`LastOwner`) to demote the
    /// tenant's last owner.
    async fn put_member(&self, tenant: TenantId, user: UserId, role: Role) -> Result<()>;

    /// Removes a membership; `NotFound` when there is none, `LastOwner` for the last owner.
    async fn remove_member(&self, tenant: TenantId, user: UserId) -> Result<()>;

    // --- invitations and passwords ---------------------------------------------------------

    /// Invites `invitation.email` into the tenant. A pending invitation of the same address
    /// there is revoked in the same transaction: the newest link is the only one that works.
    async fn create_invitation(
        &self,
        tenant: TenantId,
        invitation: NewInvitation,
    ) -> Result<Invitation>;

    /// The tenant's invitations still pending at `now` (not accepted, revoked or expired),
    /// newest first.
    async fn pending_invitations(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invitation>>;

    /// Revokes one of the tenant's pending invitations; false when it has no such pending one.
    async fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool>;

    /// The invitation with this token hash, in whatever tenant and state: the token is what
    /// grants access, and the caller tells "expired", "used" and "revoked" apart.
    async fn invitation_by_token(&self, token_hash: &str) -> Result<Option<Invitation>>;

    /// Accepts the tenant's invitation `id` for `user`, in one transaction: only while it is
    /// pending at `now` and only when `user`'s e-mail is the invited one, the invitation is
    /// marked accepted and the membership made with its role. Of concurrent calls at most one
    /// gets [`InvitationAccepted::Joined`].
    async fn accept_invitation(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<InvitationAccepted>;

    /// Sets the user's password and, in the same transaction, revokes every token of theirs but
    /// `keep` (the session making the change), API tokens included, and every unused reset
    /// token. Returns how many tokens were revoked.
    async fn change_password(
        &self,
        user: UserId,
        password_hash: &str,
        keep: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<u64>;

    async fn create_password_reset(&self, reset: NewPasswordReset) -> Result<()>;

    /// Spends a reset token: when it is unused and unexpired at `now`, in one transaction it is
    /// marked used, the password set and every token of the user revoked (with any other reset
    /// token). The user whose password changed; `None` (nothing changed) otherwise.
    async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>>;

    /// Issues the tenant a new external ID (the old one stops working for new AssumeRole
    /// calls once the tenant updates their role's trust policy).
    async fn rotate_external_id(&self, tenant: TenantId) -> Result<String>;

    // --- AWS connections ---------------------------------------------------------------------

    /// Saves the tenant's connection, replacing any previous one.
    async fn put_connection(&self, tenant: TenantId, connection: &AwsConnection) -> Result<()>;

    async fn connection(&self, tenant: TenantId) -> Result<Option<AwsConnection>>;

    /// False when the tenant had no connection.
    async fn delete_connection(&self, tenant: TenantId) -> Result<bool>;

    /// Records the outcome of a verification or collection on the connection.
    async fn update_connection_status(
        &self,
        tenant: TenantId,
        update: ConnectionStatusUpdate,
    ) -> Result<bool>;

    /// Tenants with an AWS connection, for the scheduler.
    async fn connected_tenants(&self) -> Result<Vec<TenantId>>;

    // --- API tokens ------------------------------------------------------------------------

    async fn create_token(&self, token: NewToken) -> Result<()>;

    /// The token with this hash, whether or not it is still valid: the caller decides, so it
    /// can tell "expired" from "unknown".
    async fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>>;

    /// The user's live (unrevoked, unexpired at `now`) tokens, newest first: those made in
    /// `tenant` (and any with no tenant), or with `None` all of them, whatever their tenant.
    async fn tokens_of(
        &self,
        user: UserId,
        tenant: Option<TenantId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<TokenSummary>>;

    /// Revokes the user's live tokens and says how many: with `Some(tenant)` the named API
    /// tokens made in that tenant (a member who leaves it takes none along; login sessions stay,
    /// they act only where the user is still a member), with `None` every token (log out
    /// everywhere).
    async fn revoke_tokens_of(
        &self,
        user: UserId,
        tenant: Option<TenantId>,
        at: DateTime<Utc>,
    ) -> Result<u64>;

    /// Marks the token revoked; false when it did not exist or was already revoked.
    async fn revoke_token(&self, token_hash: &str, at: DateTime<Utc>) -> Result<bool>;

    // --- audit -----------------------------------------------------------------------------

    /// Appends an entry (with its outcome) to the audit log.
    async fn record_audit(&self, entry: NewAuditEntry) -> Result<()>;

    /// Up to `limit` of the tenant's entries matching `filter`, newest first, starting after
    /// `after` (the previous page's [`AuditPage::next`]): paging by position, not offset, so
    /// entries recorded meanwhile neither repeat nor hide one.
    async fn audit_page(
        &self,
        tenant: TenantId,
        filter: &AuditFilter,
        after: Option<AuditCursor>,
        limit: i64,
    ) -> Result<AuditPage>;

    /// How many of the tenant's entries match `filter`, in all and per outcome.
    async fn audit_counts(&self, tenant: TenantId, filter: &AuditFilter) -> Result<AuditCounts>;

    /// The tenant's `limit` newest entries, whatever their outcome: [`Store::audit_page`]'s
    /// first page, for tests and tools that want a glance.
    async fn audit_log(&self, tenant: TenantId, limit: i64) -> Result<Vec<AuditRecord>> {
        Ok(self
            .audit_page(tenant, &AuditFilter::everything(), None, limit)
            .await?
            .entries)
    }

    // --- tenant data -----------------------------------------------------------------------

    /// Inserts or updates instances by (account, region, instance id).
    async fn upsert_instances(&self, tenant: TenantId, instances: &[Instance]) -> Result<u64>;

    async fn instances(&self, tenant: TenantId) -> Result<Vec<Instance>>;

    /// Writes one inventory of `account_id` in `regions`, in one transaction: the instances seen
    /// are upserted, and instances of those regions that the inventory no longer lists (gone
    /// from DescribeInstances, i.e. terminated long enough ago) are marked `terminated`.
    async fn sync_instances(
        &self,
        tenant: TenantId,
        account_id: &str,
        regions: &[String],
        instances: &[Instance],
    ) -> Result<u64>;

    async fn upsert_metric_points(&self, tenant: TenantId, points: &[MetricPoint]) -> Result<u64>;

    /// Points of one metric of one instance with `from <= timestamp < to`, oldest first.
    async fn metric_points(
        &self,
        tenant: TenantId,
        instance_id: &str,
        metric: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<MetricPoint>>;

    /// Running instances with no point of `metric` since `since`: new ones, whose history the
    /// next CloudWatch run backfills.
    async fn instances_missing_metric(
        &self,
        tenant: TenantId,
        metric: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<String>>;

    /// Inserts or replaces cost rows by their natural key, all in one transaction. Returns the
    /// number of rows new or changed: writing the same rows again returns 0.
    async fn upsert_daily_costs(&self, tenant: TenantId, records: &[CostRecord]) -> Result<u64>;

    /// [`Store::upsert_daily_costs`] for more rows than memory holds (a CUR import): `batches`
    /// yields them a batch at a time, unique and in key order, every one on `days.0..=days.1`.
    /// One transaction: an `Err` from `batches`, or a row out of order or outside the days,
    /// leaves everything as it was and comes back as [`StoreError::Source`]. The producer
    /// runs alongside the write (PostgreSQL COPYs each batch as it comes).
    async fn upsert_daily_costs_streamed(
        &self,
        tenant: TenantId,
        days: (NaiveDate, NaiveDate),
        batches: CostBatches,
    ) -> Result<u64>;

    /// Replaces every row of `source` with `from <= day < to` by `records`, in one
    /// transaction: rows AWS no longer reports for the window disappear, and a failure leaves
    /// the previous rows as they were.
    async fn replace_daily_costs(
        &self,
        tenant: TenantId,
        source: CostSource,
        from: NaiveDate,
        to: NaiveDate,
        records: &[CostRecord],
    ) -> Result<u64>;

    /// Cost rows with `from <= day < to`, ordered by their natural key.
    async fn daily_costs(
        &self,
        tenant: TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<CostRecord>>;

    /// Daily rollup rows of one dimension with `from <= day < to`, ordered by day then key;
    /// only `keys` when given. Rollups hold the day's amounts after source precedence and are
    /// rewritten with every cost write, so they always equal the sum of the chosen source rows.
    async fn cost_rollup_days(
        &self,
        tenant: TenantId,
        dimension: RollupDimension,
        from: NaiveDate,
        to: NaiveDate,
        keys: Option<&[String]>,
    ) -> Result<Vec<RollupDay>>;

    /// The CUR's cost per resource id over `from <= day < to` (resources the CUR names only).
    async fn cur_costs_by_resource(
        &self,
        tenant: TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<RollupTotal>>;

    /// Sets the tags of each resource (an export's latest tags replace the stored ones).
    async fn upsert_resource_tags(
        &self,
        tenant: TenantId,
        tags: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
        at: DateTime<Utc>,
    ) -> Result<u64>;

    /// Tags by resource id, from CUR / FOCUS exports.
    async fn resource_tags(
        &self,
        tenant: TenantId,
    ) -> Result<std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>>;

    /// Each key's sum over `from <= day < to`, largest first.
    async fn cost_rollup_totals(
        &self,
        tenant: TenantId,
        dimension: RollupDimension,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<RollupTotal>>;

    // --- insights ----------------------------------------------------------------------------

    /// Stores a full detection pass in one transaction and returns the anomalies it created.
    /// An anomaly already stored for the same series and first day keeps its id and status and
    /// takes the new figures; open anomalies the pass no longer reports (an estimate that was
    /// revised away) are removed; ones a user has ruled on stay.
    async fn sync_anomalies(
        &self,
        tenant: TenantId,
        detected: &[NewAnomaly],
        at: DateTime<Utc>,
    ) -> Result<Vec<StoredAnomaly>>;

    /// Newest first (by first day).
    async fn anomalies(
        &self,
        tenant: TenantId,
        filter: &AnomalyFilter,
    ) -> Result<Vec<StoredAnomaly>>;

    async fn anomaly(&self, tenant: TenantId, id: AnomalyId) -> Result<Option<StoredAnomaly>>;

    async fn count_anomalies(&self, tenant: TenantId, status: AnomalyStatus) -> Result<i64>;

    /// `None` when the tenant has no such anomaly.
    async fn set_anomaly_status(
        &self,
        tenant: TenantId,
        id: AnomalyId,
        status: AnomalyStatus,
        at: DateTime<Utc>,
    ) -> Result<Option<StoredAnomaly>>;

    /// Replaces all of the tenant's recommendations, in one transaction.
    async fn replace_recommendations(
        &self,
        tenant: TenantId,
        recommendations: &[Recommendation],
    ) -> Result<()>;

    /// Largest savings first.
    async fn recommendations(&self, tenant: TenantId) -> Result<Vec<Recommendation>>;

    // --- alerts ------------------------------------------------------------------------------

    /// Creates a subscription unless the tenant already has `max_per_tenant`
    /// ([`StoreError::LimitReached`]); concurrent creations cannot pass the limit together.
    async fn create_subscription(
        &self,
        tenant: TenantId,
        subscription: NewSubscription,
        max_per_tenant: usize,
    ) -> Result<Subscription>;

    async fn subscriptions(&self, tenant: TenantId) -> Result<Vec<Subscription>>;

    /// False when the tenant has no such subscription. Its deliveries go with it.
    async fn delete_subscription(&self, tenant: TenantId, id: uuid::Uuid) -> Result<bool>;

    async fn set_digest_sent(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// Queues deliveries; one already queued for the same subscription and subject is left as
    /// it is. Returns how many were new.
    async fn enqueue_deliveries(&self, tenant: TenantId, deliveries: &[NewDelivery])
    -> Result<u64>;

    /// Claims up to `limit` pending deliveries that are due, for `claimer` (one deliverer's
    /// id), by moving their next attempt to `claim_until` and counting the attempt: two
    /// deliverers never send the same delivery at once, and one that dies mid-send is retried
    /// after `claim_until`. Tenants take turns (every tenant's oldest before anyone's second),
    /// and a tenant never has more than `per_tenant` claimed at once by all deliverers, so one
    /// tenant's backlog or slow endpoint cannot take every sender.
    async fn claim_due_deliveries(
        &self,
        claimer: &str,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
        limit: i64,
        per_tenant: i64,
    ) -> Result<Vec<Delivery>>;

    /// Moves the claim on a delivery `claimer` is still sending to `until` (never earlier).
    /// False when the claim is no longer `claimer`'s: it ran out and another deliverer took
    /// the delivery, or it was finished.
    async fn extend_delivery_claim(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
        claimer: &str,
        until: DateTime<Utc>,
    ) -> Result<bool>;

    /// Records an attempt's outcome and releases the claim, only if `claimer` still holds
    /// it: false, and nothing changed, when the claim ran out and another deliverer took the
    /// delivery (its outcome is the one that counts).
    async fn finish_delivery(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
        claimer: &str,
        outcome: DeliveryOutcome,
    ) -> Result<bool>;

    /// The latest deliveries, newest first.
    async fn deliveries(&self, tenant: TenantId, limit: i64) -> Result<Vec<Delivery>>;

    // --- collection runs and jobs ----------------------------------------------------------

    async fn start_run(&self, run: NewRun) -> Result<RunId>;

    async fn finish_run(&self, tenant: TenantId, id: RunId, outcome: RunOutcome) -> Result<()>;

    /// Marks the tenant's runs of `collector` still recorded as running as failed: called by a
    /// replica that has just leased the job, so any such run belonged to a replica that died
    /// (its lease ran out). Returns how many.
    async fn abandon_running_runs(
        &self,
        tenant: TenantId,
        collector: &str,
        at: DateTime<Utc>,
    ) -> Result<u64>;

    /// The latest runs, newest first.
    async fn runs(&self, tenant: TenantId, limit: i64) -> Result<Vec<CollectionRun>>;

    /// Per collector: its latest run and when it last succeeded.
    async fn collector_health(&self, tenant: TenantId) -> Result<Vec<CollectorHealth>>;

    /// AWS requests CloudSpend made for the tenant since `since`: its collections' runs started
    /// then or after, and its diagnostic calls ([`DiagnosticCalls`]).
    async fn aws_usage_since(&self, tenant: TenantId, since: DateTime<Utc>) -> Result<AwsUsage>;

    /// Instances counted by state and type.
    async fn instance_counts(&self, tenant: TenantId) -> Result<Vec<InstanceCount>>;

    /// Creates the job if missing (an existing job keeps its schedule).
    async fn ensure_job(&self, job: NewJob) -> Result<()>;

    /// Makes the job due now (the "refresh" button).
    async fn run_job_now(
        &self,
        tenant: TenantId,
        collector: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Leases up to `limit` due jobs to `owner` until `now + lease`. A job is due when
    /// `next_run_at <= now` and no unexpired lease holds it. Two callers never get the same
    /// job while a lease is live.
    async fn lease_due_jobs(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<Job>>;

    /// Releases a lease held by `owner` and schedules the next run. False when the lease was
    /// lost (expired and taken by another replica), so the caller knows its result is stale.
    async fn complete_job(
        &self,
        tenant: TenantId,
        collector: &str,
        owner: &str,
        next_run_at: DateTime<Utc>,
    ) -> Result<bool>;

    async fn jobs(&self, tenant: TenantId) -> Result<Vec<Job>>;

    /// Removes the tenant's scheduled jobs (when it disconnects AWS); returns how many.
    async fn delete_jobs(&self, tenant: TenantId) -> Result<u64>;

    // --- actions, budgets, alarms (issue 9) ---

    async fn create_action_token(&self, tenant: TenantId, token: NewActionToken) -> Result<()>;

    /// The token with this hash, in whatever tenant, used or not: the caller tells "expired",
    /// "used" and "not yours" apart.
    async fn action_token(&self, token_hash: &str) -> Result<Option<ActionToken>>;

    /// Marks the tenant's token used if it is unused and unexpired at `now`, in one statement:
    /// of several concurrent calls at most one gets `true`.
    async fn use_action_token(
        &self,
        tenant: TenantId,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Deletes audit entries (all tenants) older than `before`, and confirmation tokens,
    /// invitations and password reset tokens that expired before it. Returns how many audit
    /// entries went.
    async fn purge_audit(&self, before: DateTime<Utc>) -> Result<u64>;

    /// Creates or replaces the tenant's budget; the alerted state of an existing budget is kept.
    async fn put_budget(&self, tenant: TenantId, budget: &Budget) -> Result<()>;

    async fn budget(&self, tenant: TenantId) -> Result<Option<Budget>>;

    /// False when the tenant had no budget.
    async fn delete_budget(&self, tenant: TenantId) -> Result<bool>;

    async fn set_budget_alerted(&self, tenant: TenantId, alerted: &BudgetAlerted) -> Result<()>;
}

/// Opens the backend `DATABASE_URL` names. SQLite files (and their folder) are created when
/// missing, so a first run needs nothing set up.
pub async fn connect(database_url: &str) -> Result<Arc<dyn Store>> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(database_url).await?))
    } else if database_url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(database_url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(database_url)))
    }
}

/// A database URL with any password replaced, safe for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}://{}:***{}", &url[..scheme_end], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Timestamps are kept to the microsecond, PostgreSQL's precision, so both backends return
/// exactly what they were given.
pub(crate) fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    at.trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_database_urls() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/cs"),
            "postgres://app:***@db:5432/cs"
        );
        assert_eq!(redact_url("postgres://app@db/cs"), "postgres://app@db/cs");
        assert_eq!(
            redact_url("sqlite://./data/cloudspend.db"),
            "sqlite://./data/cloudspend.db"
        );
    }
}
