//! The state every handler shares.

use crate::rate_limit::{Backoff, BackoffPolicy, Limit, RateLimiter};
use cloudspend_collection::Collections;
use cloudspend_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Settings the API needs, resolved by the binary from flags, env and `.env`.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// How long a login token lives.
    pub token_ttl: Duration,
    /// Whether `/test-*` may use the server's own AWS credentials without a tenant token.
    pub test_endpoints: bool,
    /// How failed logins for one email from one client address slow down (a few free, then a
    /// doubling wait). Per address too, so an attacker cannot lock the owner out from anywhere.
    pub login_backoff: BackoffPolicy,
    /// Login attempts allowed per client IP per window (successes given back).
    pub login_failures_per_ip: Limit,
    /// Sign-ups allowed per client IP per window.
    pub signups_per_ip: Limit,
    /// CloudSpend's own AWS account, which tenants' roles trust (`CLOUDSPEND_PLATFORM_ACCOUNT_ID`).
    pub platform_account_id: Option<String>,
    /// Connecting or verifying a role proves that its trust policy requires the tenant's
    /// external ID (AssumeRole without it and with a wrong one must be denied) and refuses the
    /// role otherwise (`CLOUDSPEND_REQUIRE_EXTERNAL_ID`, on). Off only against an AWS endpoint
    /// that enforces no trust policy, such as moto.
    pub require_external_id: bool,
    /// Where the tenant CloudFormation template is hosted (S3 URL) for the console quick-create link.
    pub template_url: String,
    /// Whether alert e-mail can be sent (`CLOUDSPEND_SMTP_URL`); e-mail subscriptions are
    /// refused without it rather than failing silently later.
    pub smtp_configured: bool,
    /// Proxies in front of the server that append to X-Forwarded-For (0: trust none). Login
    /// and sign-up limits are per client address, so behind a load balancer set this to 1.
    pub trusted_proxy_hops: usize,
    /// How long an EC2 stop/start confirmation token stays valid (5 minutes; shorter in tests).
    pub action_token_ttl: Duration,
    /// How long audit entries are kept and listed (`CLOUDSPEND_AUDIT_RETENTION_DAYS`, 90 days).
    pub audit_retention: Duration,
    /// The most period-and-key sums one `/api/costs` answer holds (100,000: a year of daily sums
    /// for 270 services); beyond it the caller is asked for a narrower window or monthly sums.
    pub costs_max_sums: usize,
    /// `/test-ec2` and `/test-cpu` calls per tenant per hour, each (120: two a minute).
    pub diagnostics_per_hour: usize,
    /// `/test-cost` calls (billed Cost Explorer requests) per tenant per hour.
    pub test_cost_per_hour: usize,
    /// Alert subscriptions a tenant may have (each one is a target every alert goes to).
    pub max_subscriptions_per_tenant: usize,
    /// Test alerts a tenant may send per hour (each one is a delivery the senders make).
    pub alert_tests_per_hour: usize,
    /// Where webhook subscriptions may point: public addresses only by default
    /// (`CLOUDSPEND_WEBHOOK_ALLOW_INTERNAL`, `CLOUDSPEND_EGRESS_ALLOW`).
    pub egress: cloudspend_insights::egress::EgressPolicy,
    /// Requests served at once; more are answered 503 at once (`CLOUDSPEND_MAX_IN_FLIGHT`).
    pub max_in_flight: usize,
    /// How long one request may run (`CLOUDSPEND_REQUEST_TIMEOUT_SECONDS`).
    pub request_timeout: Duration,
    /// The SHA-256 of the token a Prometheus scraper must send to `/metrics`
    /// (`CLOUDSPEND_METRICS_TOKEN`); `None`: `/metrics` is open.
    pub metrics_token_hash: Option<String>,
    /// Where "now" comes from for the rules that depend on the date (the system clock; pinned
    /// in tests).
    pub clock: cloudspend_core::Clock,
    /// How long an invitation's link works (7 days).
    pub invitation_ttl: Duration,
    /// Invitations per tenant per hour: each may send an e-mail to any address, so an
    /// unbounded number would make CloudSpend a spam relay.
    pub invitations_per_tenant: Limit,
    /// How long a password reset link works (30 minutes).
    pub password_reset_ttl: Duration,
    /// Password reset requests per client address (answered 429 beyond it).
    pub password_resets_per_ip: Limit,
    /// Reset e-mails per address (beyond it the request is answered as always, and nothing is
    /// sent: a victim's mailbox cannot be flooded, and the answer tells nothing).
    pub password_resets_per_email: Limit,
}

/// Where `cfn/connect-aws-billing.yml` is published by default; operators host their own copy
/// and set `CLOUDSPEND_TEMPLATE_URL`.
pub const DEFAULT_TEMPLATE_URL: &str =
    "https://cloudspend-templates.s3.amazonaws.com/connect-aws-billing.yml";

impl Default for ApiConfig {
    fn default() -> Self {
        let fifteen_minutes = Duration::from_secs(15 * 60);
        Self {
            token_ttl: Duration::from_secs(30 * 24 * 3600),
            test_endpoints: false,
            login_backoff: BackoffPolicy {
                free: 5,
                base: Duration::from_secs(1),
                max: fifteen_minutes,
            },
            login_failures_per_ip: Limit {
                max_events: 50,
                window: fifteen_minutes,
            },
            signups_per_ip: Limit {
                max_events: 20,
                window: Duration::from_secs(3600),
            },
            platform_account_id: None,
            require_external_id: true,
            template_url: DEFAULT_TEMPLATE_URL.to_string(),
            smtp_configured: false,
            trusted_proxy_hops: 0,
            action_token_ttl: Duration::from_secs(5 * 60),
            audit_retention: Duration::from_secs(90 * 24 * 3600),
            egress: cloudspend_insights::egress::EgressPolicy::public_only(),
            costs_max_sums: 100_000,
            diagnostics_per_hour: 120,
            test_cost_per_hour: 10,
            max_subscriptions_per_tenant: 20,
            alert_tests_per_hour: 20,
            metrics_token_hash: None,
            max_in_flight: 512,
            request_timeout: Duration::from_secs(60),
            clock: cloudspend_core::Clock::system(),
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            invitations_per_tenant: Limit {
                max_events: 50,
                window: Duration::from_secs(3600),
            },
            password_reset_ttl: Duration::from_secs(30 * 60),
            password_resets_per_ip: Limit {
                max_events: 10,
                window: Duration::from_secs(3600),
            },
            password_resets_per_email: Limit {
                max_events: 3,
                window: Duration::from_secs(3600),
            },
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<ApiConfig>,
    pub limits: Arc<Limiters>,
    /// Runs and queues collections; also the way to a tenant's AWS credentials.
    pub collections: Collections,
    /// Computed dashboards, valid while the tenant's data version stands.
    pub dashboards: Arc<crate::routes::insights::DashboardCache>,
    /// Slots for requests in flight (see [`crate::overload`]).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Sends invitations and password resets; `None` without SMTP (invitation links are then
    /// handed to the inviting admin, and password reset by e-mail is off).
    pub mailer: Option<Arc<crate::mail::Mailer>>,
}

pub struct Limiters {
    pub login_backoff: Backoff,
    pub login_ip: RateLimiter,
    pub signup_ip: RateLimiter,
    /// Test alerts per tenant.
    pub alert_test: RateLimiter,
    pub invitations: RateLimiter,
    pub password_reset_ip: RateLimiter,
    pub password_reset_email: RateLimiter,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: ApiConfig, collections: Collections) -> Self {
        let limits = Limiters {
            login_backoff: Backoff::new(config.login_backoff),
            login_ip: RateLimiter::new(config.login_failures_per_ip),
            signup_ip: RateLimiter::new(config.signups_per_ip),
            alert_test: RateLimiter::new(Limit {
                max_events: config.alert_tests_per_hour.max(1),
                window: Duration::from_secs(3600),
            }),
            invitations: RateLimiter::new(config.invitations_per_tenant),
            password_reset_ip: RateLimiter::new(config.password_resets_per_ip),
            password_reset_email: RateLimiter::new(config.password_resets_per_email),
        };
        let in_flight = Arc::new(tokio::sync::Semaphore::new(config.max_in_flight.max(1)));
        Self {
            store,
            config: Arc::new(config),
            limits: Arc::new(limits),
            collections,
            dashboards: Arc::default(),
            in_flight,
            mailer: None,
        }
    }

    /// Requests being served right now (each holds an [`AppState::in_flight`] slot): what a
    /// shutdown that cannot wait any longer cuts off.
    pub fn requests_in_flight(&self) -> usize {
        self.config
            .max_in_flight
            .max(1)
            .saturating_sub(self.in_flight.available_permits())
    }

    /// Sends account e-mail (invitations, password resets) with `mailer`.
    pub fn with_mailer(mut self, mailer: crate::mail::Mailer) -> Self {
        self.mailer = Some(Arc::new(mailer));
        self
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("backend", &self.store.backend())
            .field("config", &self.config)
            .finish()
    }
}
