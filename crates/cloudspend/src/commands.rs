//! One function per subcommand.

use crate::cli::{
    AnomaliesCommand, Cli, CollectArgs, Command, DetectArgs, ImportCurArgs, MasterKeyArgs,
    ServerArgs, UserCommand, UserCreateArgs,
};
use anyhow::{Context, bail};
use cloudspend_api::{ApiConfig, AppState};
use cloudspend_aws_access::AwsAccess;
use cloudspend_collection::{Collections, Collector, RunningCollections, Scheduler, Settings};
use cloudspend_core::records::RunStatus;
use cloudspend_core::validate;
use cloudspend_insights::alerts::{Deliverer, SmtpSettings};
use cloudspend_insights::egress::EgressPolicy;
use cloudspend_secrets::MasterKey;
use cloudspend_store::{NewUser, Store, StoreError, redact_url};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub const DEMO_EMAIL: &str = "demo@cloudspend.local";
pub const DEMO_PASSWORD: &str = "cloudspend-demo";
const DEMO_TENANT: &str = "Demo Company";

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate => {
            let store = open(&cli.database_url).await?;
            store.migrate().await.context("applying migrations")?;
            println!("migrations applied to {}", redact_url(&cli.database_url));
            Ok(())
        }
        Command::Serve(args) => {
            let Some(master_key) = server_master_key(&args.keys)? else {
                bail!(
                    "CLOUDSPEND_MASTER_KEY is not set: it encrypts tenants' AWS secrets. Generate one with \
                     `openssl rand -hex 32` and set it in the environment or .env (or try `cloudspend demo`)"
                );
            };
            let store = open(&cli.database_url).await?;
            store.migrate().await.context("applying migrations")?;
            if store.backend() == cloudspend_store::Backend::Sqlite {
                tracing::warn!(
                    "serving from SQLite: fine for a first run; use PostgreSQL for anything shared"
                );
            }
            serve(store, master_key, &args.server).await
        }
        Command::Demo(args) => demo(&cli.database_url, &args.server).await,
        Command::User(UserCommand::Create(args)) => create_user(&cli.database_url, args).await,
        Command::Collect(args) => collect(&cli.database_url, args).await,
        Command::ImportCur(args) => import_cur(&cli.database_url, args).await,
        Command::RotateMasterKey(args) => crate::key_rotation::run(&cli.database_url, &args).await,
        Command::Anomalies(AnomaliesCommand::Detect(args)) => detect_anomalies(args),
    }
}

/// The key printed in `.env.example` (and so in every copy of this repository): anyone can read
/// what it seals, so `serve` refuses it.
const PUBLISHED_MASTER_KEY: &str =
    "5f0c1e2d3a4b59687766a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The server's master key from the settings, holding the previous key too during a rotation;
/// `None` when CLOUDSPEND_MASTER_KEY is not set. The published example key is refused.
pub(crate) fn server_master_key(keys: &MasterKeyArgs) -> anyhow::Result<Option<MasterKey>> {
    let Some(raw) = keys.master_key.as_deref() else {
        if keys.previous_master_key.is_some() {
            bail!(
                "CLOUDSPEND_PREVIOUS_MASTER_KEY is set without CLOUDSPEND_MASTER_KEY: set the new key too"
            );
        }
        return Ok(None);
    };
    if raw.trim().eq_ignore_ascii_case(PUBLISHED_MASTER_KEY) {
        bail!(
            "CLOUDSPEND_MASTER_KEY is the example key published in .env.example: anyone could \
             decrypt the AWS secrets it seals. Generate your own with `openssl rand -hex 32`"
        );
    }
    let key = MasterKey::parse(raw).context("CLOUDSPEND_MASTER_KEY")?;
    let Some(previous) = previous_master_key(keys)? else {
        return Ok(Some(key));
    };
    if key.same_key_as(&previous) {
        bail!(
            "CLOUDSPEND_PREVIOUS_MASTER_KEY is the same key as CLOUDSPEND_MASTER_KEY: set the new key \
             in CLOUDSPEND_MASTER_KEY and the old one in CLOUDSPEND_PREVIOUS_MASTER_KEY"
        );
    }
    Ok(Some(key.with_previous(&previous)))
}

/// CLOUDSPEND_PREVIOUS_MASTER_KEY, when set.
pub(crate) fn previous_master_key(keys: &MasterKeyArgs) -> anyhow::Result<Option<MasterKey>> {
    keys.previous_master_key
        .as_deref()
        .map(MasterKey::parse)
        .transpose()
        .context("CLOUDSPEND_PREVIOUS_MASTER_KEY")
}

fn detect_anomalies(args: DetectArgs) -> anyhow::Result<()> {
    let input = std::fs::File::open(&args.input)
        .with_context(|| format!("opening {}", args.input.display()))?;
    let output = std::io::BufWriter::new(
        std::fs::File::create(&args.output)
            .with_context(|| format!("creating {}", args.output.display()))?,
    );
    let summary = if args.metric {
        cloudspend_anomaly::csv::detect_metric_csv(input, output)
    } else {
        cloudspend_anomaly::csv::detect_cost_csv(
            input,
            output,
            &cloudspend_anomaly::cost::Config::default(),
        )
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", args.input.display()))?;
    println!(
        "{} rows in {} series, {} anomalous rows{}",
        summary.rows,
        summary.series,
        summary.anomalous_rows,
        if summary.insufficient_history.is_empty() {
            String::new()
        } else {
            format!(
                "; insufficient history: {}",
                summary.insufficient_history.join(", ")
            )
        }
    );
    Ok(())
}

async fn import_cur(database_url: &str, args: ImportCurArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let tenant: cloudspend_core::TenantId = args
        .tenant
        .parse()
        .map_err(|_| anyhow::anyhow!("--tenant must be a tenant UUID, got `{}`", args.tenant))?;
    let store = open(database_url).await?;
    store.migrate().await.context("applying migrations")?;
    if store.tenant(tenant).await?.is_none() {
        bail!("no tenant {tenant}");
    }
    let started_at = chrono::Utc::now();
    let files = args.files.clone();
    let interactive = std::io::stderr().is_terminal();
    // Parsing is CPU-bound and streaming: keep it off the async runtime.
    let streamed = tokio::task::spawn_blocking(move || {
        let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
        let begun = std::time::Instant::now();
        let mut draw = |p: cloudspend_collect_cur::Progress| {
            if !interactive {
                return;
            }
            let secs = begun.elapsed().as_secs_f64().max(0.001);
            let percent = p
                .total_bytes
                .filter(|t| *t > 0)
                .map(|t| format!("{:5.1}% ", 100.0 * p.bytes as f64 / t as f64));
            eprint!(
                "\r{}{} rows, {:.1} MiB, {:.0} rows/s   ",
                percent.unwrap_or_default(),
                p.rows,
                p.bytes as f64 / 1_048_576.0,
                p.rows as f64 / secs
            );
        };
        let options = cloudspend_collect_cur::ImportOptions::default();
        let result = cloudspend_collect_cur::import_paths_streamed(&paths, options, &mut draw);
        if interactive {
            eprintln!();
        }
        result
    })
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let cloudspend_collect_cur::StreamedImport { result, records } = streamed;
    let written = match result.days {
        Some(days) => {
            if interactive {
                // The merge and the write show no progress of their own, and a large export
                // takes about as long to write as to read.
                eprintln!(
                    "read {} rows; writing the daily cost rows of {} to {} in one transaction...",
                    result.rows_read, days.0, days.1
                );
            }
            write_streamed(&*store, tenant, days, records).await?
        }
        None => 0,
    };
    store
        .upsert_resource_tags(tenant, &result.resource_tags, started_at)
        .await
        .context("writing the resources' tags")?;
    let (window_start, window_end) = match result.days {
        Some((first, last)) => (
            first.and_hms_opt(0, 0, 0).expect("midnight").and_utc(),
            (last + chrono::Duration::days(1))
                .and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc(),
        ),
        None => (started_at, started_at),
    };
    let run = store
        .start_run(cloudspend_store::NewRun {
            tenant_id: tenant,
            collector: "cur-import".into(),
            window_start,
            window_end,
            started_at,
        })
        .await?;
    store
        .finish_run(
            tenant,
            run,
            cloudspend_store::RunOutcome {
                status: RunStatus::Succeeded,
                finished_at: chrono::Utc::now(),
                rows_written: written as i64,
                aws_requests: 0,
                ce_requests: 0,
                retries: 0,
                error: None,
            },
        )
        .await?;
    println!(
        "imported {} ({}): {} rows read, {} skipped, {} daily cost rows new or changed, total unblended {} ({} to the cent){}",
        args.files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        result.format.label(),
        result.rows_read,
        result.rows_skipped,
        written,
        result.total_unblended,
        result.total_unblended.round_to_cents(),
        result
            .days
            .map(|(a, b)| format!(", days {a} to {b}"))
            .unwrap_or_default(),
    );
    Ok(())
}

/// Writes an import's records in one transaction as they are merged: the merge runs on a
/// blocking thread while the store writes the batches before it, and memory holds a few batches,
/// never the export. An error of the merge (a currency that changes within a key, found only
/// when spilled sums meet) is the import's error, and nothing is written.
async fn write_streamed(
    store: &dyn Store,
    tenant: cloudspend_core::TenantId,
    days: (chrono::NaiveDate, chrono::NaiveDate),
    records: cloudspend_collect_cur::CostRecords,
) -> anyhow::Result<u64> {
    let batches = records
        .batches(8192)
        .map(|batch| batch.map_err(|e| e.to_string()));
    match cloudspend_store::upsert_daily_costs_from(store, tenant, days, batches).await {
        Ok(written) => Ok(written),
        Err(StoreError::Source(why)) => bail!("{why}"),
        Err(e) => Err(e).context("writing the imported rows"),
    }
}

fn settings(server: &ServerArgs) -> Settings {
    let mut settings = Settings::default();
    for (collector, minutes) in [
        (Collector::Ec2, server.ec2_interval_minutes),
        (Collector::Cloudwatch, server.cloudwatch_interval_minutes),
        (
            Collector::CostExplorer,
            server.costexplorer_interval_minutes,
        ),
    ] {
        settings
            .intervals
            .insert(collector, Duration::from_secs(minutes.max(1) * 60));
    }
    settings.run_timeout = Duration::from_secs(server.collection_timeout_seconds.max(1));
    settings
}

/// The lease a replica takes on a job: longer than a run may last, so only a dead replica
/// ever loses one.
fn lease_for(server: &ServerArgs) -> anyhow::Result<Option<Duration>> {
    let Some(lease) = server.scheduler_lease_seconds else {
        return Ok(None);
    };
    if lease <= server.collection_timeout_seconds {
        bail!(
            "CLOUDSPEND_SCHEDULER_LEASE_SECONDS ({lease}) must be longer than \
             CLOUDSPEND_COLLECTION_TIMEOUT_SECONDS ({}): a run still going when its lease \
             expires would be started a second time by another replica",
            server.collection_timeout_seconds
        );
    }
    Ok(Some(Duration::from_secs(lease)))
}

pub(crate) async fn open(database_url: &str) -> anyhow::Result<Arc<dyn Store>> {
    cloudspend_store::connect(database_url)
        .await
        .with_context(|| format!("opening the database at {}", redact_url(database_url)))
}

fn audit_retention(server: &ServerArgs) -> Duration {
    Duration::from_secs(server.audit_retention_days.max(1) * 86_400)
}

fn api_config(server: &ServerArgs, egress: EgressPolicy) -> ApiConfig {
    ApiConfig {
        token_ttl: Duration::from_secs(server.token_ttl_hours.max(1) * 3600),
        test_endpoints: server.test_endpoints,
        platform_account_id: server.platform_account_id.clone(),
        require_external_id: server.require_external_id,
        template_url: server.template_url.clone(),
        smtp_configured: server.smtp_url.is_some(),
        trusted_proxy_hops: server.trusted_proxy_hops,
        audit_retention: audit_retention(server),
        egress,
        metrics_token_hash: server
            .metrics_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(cloudspend_api::auth::token_hash),
        max_in_flight: server.max_in_flight.max(1),
        request_timeout: Duration::from_secs(server.request_timeout_seconds.max(1)),
        ..ApiConfig::default()
    }
}

/// Where alerts may go: `CLOUDSPEND_WEBHOOK_ALLOW_INTERNAL` and `CLOUDSPEND_EGRESS_ALLOW`.
fn egress_policy(server: &ServerArgs) -> anyhow::Result<EgressPolicy> {
    let policy = EgressPolicy::public_only().with_internal_allowed(server.webhook_allow_internal);
    match &server.egress_allow {
        Some(list) => policy.with_allow_list(list).map_err(anyhow::Error::msg),
        None => Ok(policy),
    }
}

async fn serve(
    store: Arc<dyn Store>,
    master_key: MasterKey,
    server: &ServerArgs,
) -> anyhow::Result<()> {
    let lease = lease_for(server)?;
    let egress = egress_policy(server)?;
    let listener = TcpListener::bind(server.bind).await.with_context(|| {
        format!(
            "listening on {} (is another process using the port? set CLOUDSPEND_BIND)",
            server.bind
        )
    })?;
    let address = listener.local_addr()?;
    let aws = AwsAccess::from_env().await;
    let collections = Collections::new(
        store.clone(),
        aws,
        Some(master_key.clone()),
        settings(server),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = server.scheduler.then(|| {
        let mut scheduler = Scheduler::new(collections.clone());
        scheduler.poll_every = Duration::from_secs(server.scheduler_poll_seconds.max(1));
        if let Some(lease) = lease {
            scheduler.lease_for = lease;
        }
        scheduler
    });
    let running_collections = scheduler
        .as_ref()
        .map(Scheduler::running)
        .unwrap_or_default();
    let scheduler = scheduler.map(|scheduler| {
        let mut stop = stop_rx.clone();
        tokio::spawn(scheduler.run(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }))
    });
    // Alert deliveries: every replica may send; a delivery is claimed before it is sent.
    let deliverer = {
        let mut deliverer =
            Deliverer::new(store.clone(), master_key.clone()).with_egress(egress.clone());
        if let Some(url) = &server.smtp_url {
            let smtp = SmtpSettings {
                url: url.clone(),
                from: server.smtp_from.clone(),
            };
            deliverer = deliverer.with_smtp(&smtp).map_err(anyhow::Error::msg)?;
        }
        let mut stop = stop_rx.clone();
        tokio::spawn(deliverer.run(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }))
    };
    // Audit retention: every replica purges hourly (a DELETE by age; running it twice is harmless).
    let purger = {
        let store = store.clone();
        let retention = chrono::Duration::from_std(audit_retention(server))?;
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        match store.purge_audit(chrono::Utc::now() - retention).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(purged = n, "audit entries past retention removed"),
                            Err(err) => tracing::warn!(error = %err, "audit purge failed"),
                        }
                    }
                    changed = stop.changed() => {
                        if changed.is_err() || *stop.borrow() {
                            break;
                        }
                    }
                }
            }
        })
    };
    tracing::info!(%address, "CloudSpend listening");
    let mut state = AppState::new(store, api_config(server, egress), collections);
    // Invitations and password resets go out through the relay alert e-mail uses (checked
    // against the egress policy above, when the deliverer took it).
    if let Some(url) = &server.smtp_url {
        let mailer =
            cloudspend_api::mail::Mailer::new(url, &server.smtp_from, server.public_url.as_deref())
                .map_err(anyhow::Error::msg)?;
        state = state.with_mailer(mailer);
    }
    let mut signals = ShutdownSignals::listen();
    let requests = state.clone();
    let mut stop = stop_rx;
    let mut http = tokio::spawn(cloudspend_api::serve(listener, state, async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    }));
    tokio::select! {
        () = signals.next() => {}
        served = &mut http => {
            served.context("the HTTP server task")?.context("serving HTTP")?;
            bail!("the HTTP server stopped before any shutdown signal");
        }
    }
    let _ = stop_tx.send(true);
    let everything_finished = async move {
        let served = http.await;
        if let Some(scheduler) = scheduler {
            let _ = scheduler.await;
        }
        let _ = deliverer.await;
        let _ = purger.await;
        served
            .context("the HTTP server task")?
            .context("serving HTTP")
    };
    let grace = Duration::from_secs(server.shutdown_grace_seconds);
    drain(
        grace,
        &mut signals,
        everything_finished,
        &requests,
        &running_collections,
    )
    .await
}

/// After the first shutdown signal (the server has stopped accepting): waits for
/// `everything_finished` up to `grace`, or until a second signal. Past that the process exits 0
/// anyway: the orchestrator would kill it soon after, and an exit now says what it cut off.
async fn drain(
    grace: Duration,
    signals: &mut ShutdownSignals,
    everything_finished: impl std::future::Future<Output = anyhow::Result<()>>,
    requests: &AppState,
    collections: &RunningCollections,
) -> anyhow::Result<()> {
    tracing::info!(
        grace_seconds = grace.as_secs(),
        requests_in_flight = requests.requests_in_flight(),
        collections_running = collections.list().len(),
        "shutting down: accepting no more connections; requests in flight and running collections may finish"
    );
    tokio::select! {
        finished = everything_finished => {
            finished?;
            tracing::info!("stopped: everything in flight finished");
        }
        () = tokio::time::sleep(grace) => {
            log_cut_off("the shutdown grace period ran out", requests, collections);
        }
        () = signals.next() => log_cut_off("a second shutdown signal", requests, collections),
    }
    Ok(())
}

/// Names what the exit that follows cuts off. A request cut off gets its connection closed
/// (a load balancer retries it elsewhere). A collection cut off writes nothing of its window:
/// the window's one transaction is never committed. Its run stays recorded as running, and
/// its job leased, until the lease runs out; the replica that leases the job next marks the
/// run failed ("abandoned") and runs it again.
fn log_cut_off(why: &str, requests: &AppState, collections: &RunningCollections) {
    let collections = collections.list();
    tracing::warn!(
        requests_in_flight = requests.requests_in_flight(),
        collections_running = collections.len(),
        "{why}: exiting now, cutting off what is still running"
    );
    for (tenant, collector) in collections {
        tracing::warn!(
            %tenant,
            %collector,
            "collection cut off by the shutdown: nothing of its window is written; another \
             replica marks its run failed and runs it again once this one's lease runs out"
        );
    }
}

async fn collect(database_url: &str, args: CollectArgs) -> anyhow::Result<()> {
    let tenant: cloudspend_core::TenantId = args
        .tenant
        .parse()
        .map_err(|_| anyhow::anyhow!("--tenant must be a tenant UUID, got `{}`", args.tenant))?;
    let collectors = if args.only.is_empty() {
        Collector::ALL.to_vec()
    } else {
        args.only
            .iter()
            .map(|c| c.parse::<Collector>().map_err(anyhow::Error::msg))
            .collect::<Result<_, _>>()?
    };
    let master_key = server_master_key(&args.keys)?;
    let store = open(database_url).await?;
    store.migrate().await.context("applying migrations")?;
    if store.tenant(tenant).await?.is_none() {
        bail!("no tenant {tenant}");
    }
    let collections = Collections::new(
        store,
        AwsAccess::from_env().await,
        master_key,
        Settings::default(),
    );
    let mut failed = 0;
    for collector in collectors {
        let report = collections.run(tenant, collector).await?;
        println!(
            "{:<13} {:<9} rows={:<6} aws_requests={:<4} ce_requests={:<3} retries={}{}",
            collector.as_str(),
            match report.status {
                RunStatus::Succeeded => "succeeded",
                RunStatus::Failed => "FAILED",
                RunStatus::Running => "running",
            },
            report.rows_written,
            report.aws_requests,
            report.ce_requests,
            report.retries,
            report
                .error
                .map(|e| format!("\n  error: {e}"))
                .unwrap_or_default()
        );
        if report.status != RunStatus::Succeeded {
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} collector(s) failed");
    }
    Ok(())
}

/// Ctrl-c and SIGTERM (what `docker stop` and Kubernetes send). Listening starts when this is
/// made and goes on, so a second signal during the drain is caught however soon it follows the
/// first.
struct ShutdownSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                terminate: signal(SignalKind::terminate()).ok(),
                interrupt: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Resolves on the next signal.
    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = recv(&mut self.terminate) => {},
                () = recv(&mut self.interrupt) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn demo(database_url: &str, server: &ServerArgs) -> anyhow::Result<()> {
    let folder = match database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
    {
        Some(path) => Path::new(path)
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf(),
        None => Path::new("./data").to_path_buf(),
    };
    let master_key = load_or_create_key(&folder.join("master.key"))?;
    let store = open(database_url).await?;
    store.migrate().await.context("applying migrations")?;
    let created = ensure_demo_account(store.as_ref()).await?;
    let url = format!("http://{}", server.bind);
    println!();
    println!(
        "  CloudSpend demo {}",
        if created {
            "(demo tenant created)"
        } else {
            "(existing demo data)"
        }
    );
    println!("  URL:      {url}");
    println!("  Login:    {DEMO_EMAIL}");
    println!("  Password: {DEMO_PASSWORD}");
    println!("  Data:     {}", redact_url(database_url));
    println!("  Try:      curl -s {url}/healthz");
    println!("  Stop with ctrl-c.");
    println!();
    serve(store, master_key, server).await
}

/// The demo's key, kept next to its database (mode 0600) so restarts can read what earlier
/// runs encrypted.
fn load_or_create_key(path: &Path) -> anyhow::Result<MasterKey> {
    if path.exists() {
        let raw =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return MasterKey::parse(&raw).with_context(|| format!("the key in {}", path.display()));
    }
    let key = MasterKey::generate();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, key.to_hex())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(key)
}

/// Creates the demo user and tenant once; later runs find them and change nothing.
async fn ensure_demo_account(store: &dyn Store) -> anyhow::Result<bool> {
    if let Some((user, _)) = store.credentials_by_email(DEMO_EMAIL).await? {
        // Data older than a day is refreshed (upserts), so the demo always ends "today".
        if let Some((tenant, _)) = store.tenants_of(user.id).await?.into_iter().next() {
            let today = chrono::Utc::now().date_naive();
            if store
                .daily_costs(
                    tenant.id,
                    today - chrono::Duration::days(1),
                    today + chrono::Duration::days(1),
                )
                .await?
                .is_empty()
            {
                crate::demo_data::load(store, tenant.id).await?;
            }
        }
        return Ok(false);
    }
    let password_hash = cloudspend_api::auth::hash_password(DEMO_PASSWORD.to_string()).await?;
    let user = NewUser {
        email: DEMO_EMAIL.to_string(),
        password_hash,
        is_global_owner: false,
    };
    match store.create_user_with_tenant(user, DEMO_TENANT).await {
        Ok((_, tenant)) => {
            let rows = crate::demo_data::load(store, tenant.id).await?;
            tracing::info!(rows, "demo data loaded (synthetic, plus the FOCUS sample)");
            Ok(true)
        }
        // Another process started the demo at the same moment.
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

async fn create_user(database_url: &str, args: UserCreateArgs) -> anyhow::Result<()> {
    let email =
        validate::email("email", &args.email).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let store = open(database_url).await?;
    store.migrate().await.context("applying migrations")?;

    if let Some((existing, _)) = store.credentials_by_email(&email).await? {
        if args.global_owner && !existing.is_global_owner {
            store.set_global_owner(existing.id, true).await?;
            println!("{email} already existed; it is now the global owner");
            return Ok(());
        }
        bail!("a user with email {email} already exists");
    }

    let (password, generated) = match args.password {
        Some(p) => (p, false),
        None => (random_password(), true),
    };
    validate::password("password", &password)
        .map_err(|e| anyhow::anyhow!("password {}", e.message))?;
    let password_hash = cloudspend_api::auth::hash_password(password.clone()).await?;
    let new_user = NewUser {
        email: email.clone(),
        password_hash,
        is_global_owner: args.global_owner,
    };
    let user = match &args.tenant {
        Some(name) => {
            let name = validate::display_name("tenant", name)
                .map_err(|e| anyhow::anyhow!("tenant {}", e.message))?;
            let (user, tenant) = store.create_user_with_tenant(new_user, &name).await?;
            println!("created tenant {} ({})", tenant.name, tenant.id);
            user
        }
        None => store.create_user(new_user).await?,
    };
    println!(
        "created user {} ({}){}",
        user.email,
        user.id,
        if user.is_global_owner {
            " as global owner"
        } else {
            ""
        }
    );
    if generated {
        println!("password: {password}   (shown once; log in and keep it somewhere safe)");
    }
    Ok(())
}

fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}
