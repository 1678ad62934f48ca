//! The command line. Every setting is a flag with an environment-variable fallback (and so a
//! `.env` entry); `.env.example` documents each with its default.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/cloudspend.db";

#[derive(Debug, Parser)]
#[command(
    name = "cloudspend",
    version,
    about = "Multi-tenant cloud cost intelligence: service and operator CLI"
)]
pub struct Cli {
    /// Where CloudSpend keeps its data: postgres://user:pass@host/db, or sqlite://path for the
    /// embedded first-run store.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true, hide_env_values = true)]
    pub database_url: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API and dashboard (applies pending migrations first).
    Serve(ServeArgs),
    /// Apply pending database migrations, then exit.
    Migrate,
    /// First run: embedded SQLite under ./data, a demo tenant and user, then serve.
    Demo(DemoArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Run a collection for one tenant now and print what it did.
    Collect(CollectArgs),
    /// Load Cost and Usage Report or FOCUS export files (csv, csv.gz, zip, parquet) into a tenant.
    ImportCur(ImportCurArgs),
    /// Re-seal every stored secret under a new master key: run with CLOUDSPEND_MASTER_KEY set
    /// to the new key and CLOUDSPEND_PREVIOUS_MASTER_KEY to the old one (docs/OPERATIONS.md).
    RotateMasterKey(RotateMasterKeyArgs),
    /// Offline anomaly detection over CSV files (evaluation).
    #[command(subcommand)]
    Anomalies(AnomaliesCommand),
}

#[derive(Debug, Subcommand)]
pub enum AnomaliesCommand {
    /// Daily cost series `series,day,amount[,estimated]` → `series,day,expected,lower,upper,score,anomaly`;
    /// with --metric, NAB-style `timestamp,value` → `timestamp,value,anomaly_score,label`.
    Detect(DetectArgs),
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    #[arg(long)]
    pub input: std::path::PathBuf,
    #[arg(long)]
    pub output: std::path::PathBuf,
    /// The input is a metric series (CPU, NAB format), not daily costs.
    #[arg(long)]
    pub metric: bool,
}

#[derive(Debug, Args)]
pub struct ImportCurArgs {
    /// The tenant's id.
    #[arg(long)]
    pub tenant: String,

    /// Export files. The files of one command are read as one report (a CUR delivery comes in
    /// several parts whose lines add up) and written in one transaction.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    /// The tenant's id (see GET /api/me or /api/admin/tenants).
    #[arg(long)]
    pub tenant: String,

    /// Collectors to run, comma separated: ec2, cloudwatch, costexplorer. All by default.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,

    /// The master key; needed for tenants connected with access keys.
    #[command(flatten)]
    pub keys: MasterKeyArgs,
}

/// The master key, and during a rotation the one before it.
#[derive(Debug, Args, Clone)]
pub struct MasterKeyArgs {
    /// 32-byte key that encrypts tenants' AWS secret keys and alert signing secrets at rest: 64
    /// hex characters or base64. Generate one with `openssl rand -hex 32`.
    #[arg(long, env = "CLOUDSPEND_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// During a key rotation only: the key the stored secrets were sealed under until now.
    /// Secrets still sealed under it keep opening until `cloudspend rotate-master-key` has
    /// re-sealed them under CLOUDSPEND_MASTER_KEY (docs/OPERATIONS.md).
    #[arg(long, env = "CLOUDSPEND_PREVIOUS_MASTER_KEY", hide_env_values = true)]
    pub previous_master_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct RotateMasterKeyArgs {
    /// CLOUDSPEND_MASTER_KEY is the new key, CLOUDSPEND_PREVIOUS_MASTER_KEY the one in use.
    #[command(flatten)]
    pub keys: MasterKeyArgs,

    /// Count what would be re-sealed and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    /// Address to listen on. Use 0.0.0.0:9000 in a container.
    #[arg(long, env = "CLOUDSPEND_BIND", default_value = "127.0.0.1:9000")]
    pub bind: SocketAddr,

    /// Let the /test-ec2, /test-cpu and /test-cost diagnostics use the server's own AWS
    /// credentials when called without a tenant token.
    #[arg(long, env = "CLOUDSPEND_TEST_ENDPOINTS", default_value_t = false, action = clap::ArgAction::Set)]
    pub test_endpoints: bool,

    /// Lifetime of a login token, in hours.
    #[arg(long, env = "CLOUDSPEND_TOKEN_TTL_HOURS", default_value_t = 720)]
    pub token_ttl_hours: u64,

    /// Days audit entries are kept (listed by GET /api/audit, purged hourly after that).
    #[arg(long, env = "CLOUDSPEND_AUDIT_RETENTION_DAYS", default_value_t = 90)]
    pub audit_retention_days: u64,

    /// CloudSpend's own AWS account id, which tenants' IAM roles trust (shown on onboarding and
    /// filled into the CloudFormation quick-create link).
    #[arg(long, env = "CLOUDSPEND_PLATFORM_ACCOUNT_ID")]
    pub platform_account_id: Option<String>,

    /// Refuse a role whose trust policy lets it be assumed without the tenant's external ID or
    /// with a wrong one (proven at connect and verify). Turn off only against an AWS endpoint
    /// that enforces no trust policy, such as the moto emulator in tests.
    #[arg(long, env = "CLOUDSPEND_REQUIRE_EXTERNAL_ID", default_value_t = true, action = clap::ArgAction::Set)]
    pub require_external_id: bool,

    /// S3 URL where cfn/connect-aws-billing.yml is published, for the quick-create link.
    #[arg(long, env = "CLOUDSPEND_TEMPLATE_URL", default_value = cloudspend_api::state::DEFAULT_TEMPLATE_URL)]
    pub template_url: String,

    /// Run the background collection scheduler in this process.
    #[arg(long, env = "CLOUDSPEND_SCHEDULER", default_value_t = true, action = clap::ArgAction::Set)]
    pub scheduler: bool,

    /// Minutes between EC2 inventory collections.
    #[arg(long, env = "CLOUDSPEND_EC2_INTERVAL_MINUTES", default_value_t = 60)]
    pub ec2_interval_minutes: u64,

    /// Minutes between CloudWatch CPU collections.
    #[arg(
        long,
        env = "CLOUDSPEND_CLOUDWATCH_INTERVAL_MINUTES",
        default_value_t = 60
    )]
    pub cloudwatch_interval_minutes: u64,

    /// Minutes between Cost Explorer collections (each request costs $0.01).
    #[arg(
        long,
        env = "CLOUDSPEND_COSTEXPLORER_INTERVAL_MINUTES",
        default_value_t = 360
    )]
    pub costexplorer_interval_minutes: u64,

    /// Seconds between the scheduler's looks for due jobs.
    #[arg(long, env = "CLOUDSPEND_SCHEDULER_POLL_SECONDS", default_value_t = 5)]
    pub scheduler_poll_seconds: u64,

    /// Seconds a collection may take before it is abandoned and recorded as failed.
    #[arg(
        long,
        env = "CLOUDSPEND_COLLECTION_TIMEOUT_SECONDS",
        default_value_t = 600
    )]
    pub collection_timeout_seconds: u64,

    /// Seconds a replica holds a collection job it leased. A replica that dies keeps the job
    /// this long, then another takes it. Must exceed the collection timeout, so a live run
    /// never loses its lease. Default: the collection timeout plus two minutes.
    #[arg(long, env = "CLOUDSPEND_SCHEDULER_LEASE_SECONDS")]
    pub scheduler_lease_seconds: Option<u64>,

    /// Proxies in front of the server that each append the client address to X-Forwarded-For
    /// (a load balancer: 1). Login and sign-up throttling is per client address; 0 trusts none
    /// and uses the socket's peer.
    #[arg(long, env = "CLOUDSPEND_TRUSTED_PROXY_HOPS", default_value_t = 0)]
    pub trusted_proxy_hops: usize,

    /// Let webhook subscriptions point at internal addresses (loopback, private networks,
    /// link-local). Off by default: a tenant must not be able to make CloudSpend call services
    /// inside its own network. Turn on only for a receiver on the operator's private network.
    #[arg(
        long,
        env = "CLOUDSPEND_WEBHOOK_ALLOW_INTERNAL",
        default_value_t = false
    )]
    pub webhook_allow_internal: bool,

    /// A token Prometheus must send (`Authorization: Bearer ...`) to read `/metrics`. Unset:
    /// `/metrics` is open, fine when only your network reaches the port.
    #[arg(long, env = "CLOUDSPEND_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Requests served at once; more are answered 503 with Retry-After at once rather than
    /// queued, so a flood cannot take the memory every tenant needs.
    #[arg(long, env = "CLOUDSPEND_MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,

    /// Seconds `serve` gives requests in flight and running collections to finish after
    /// SIGTERM or ctrl-c (it stops accepting at once); then it exits anyway, naming what it cut
    /// off. Keep it under the orchestrator's grace period (Kubernetes: 30 s). A second signal
    /// stops at once.
    #[arg(long, env = "CLOUDSPEND_SHUTDOWN_GRACE_SECONDS", default_value_t = 25)]
    pub shutdown_grace_seconds: u64,

    /// How long one request may run before it is stopped and answered 503.
    #[arg(long, env = "CLOUDSPEND_REQUEST_TIMEOUT_SECONDS", default_value_t = 60)]
    pub request_timeout_seconds: u64,

    /// Only these hosts and networks may receive alerts, nothing else: comma-separated host
    /// names (`.example.com` for subdomains too), addresses and CIDRs, e.g.
    /// `hooks.example.com,10.20.0.0/16`. A listed network is allowed even when internal. The
    /// SMTP relay must be on the list too. Unset: any public address (and internal ones with
    /// CLOUDSPEND_WEBHOOK_ALLOW_INTERNAL).
    #[arg(long, env = "CLOUDSPEND_EGRESS_ALLOW")]
    pub egress_allow: Option<String>,

    /// SMTP relay for alert e-mail: `smtps://user:pass@host:465`, `smtp://host:587?tls=required`
    /// (STARTTLS) or `smtp://host:25` (a local relay, no TLS). Unset: e-mail alerts are off.
    #[arg(long, env = "CLOUDSPEND_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// The sender of alert e-mail, e.g. `CloudSpend <alerts@example.com>`.
    #[arg(
        long,
        env = "CLOUDSPEND_SMTP_FROM",
        default_value = "CloudSpend <cloudspend@localhost>"
    )]
    pub smtp_from: String,

    /// The dashboard's address as users reach it, e.g. `https://cloudspend.example.com`: links
    /// in invitation and password reset e-mail point there. Unset: the e-mail names the page to
    /// open on the server.
    #[arg(long, env = "CLOUDSPEND_PUBLIC_URL")]
    pub public_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// The master key (required).
    #[command(flatten)]
    pub keys: MasterKeyArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (or, with --global-owner, promote an existing one).
    Create(UserCreateArgs),
}

#[derive(Debug, Args)]
pub struct UserCreateArgs {
    pub email: String,

    /// Make the user the platform's global owner (sees every tenant at /api/admin/tenants).
    #[arg(long)]
    pub global_owner: bool,

    /// Also create a tenant with this name, owned by the user.
    #[arg(long)]
    pub tenant: Option<String>,

    /// The password. When omitted a random one is generated and printed once.
    #[arg(long, env = "CLOUDSPEND_NEW_USER_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}
