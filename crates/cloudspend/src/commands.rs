//! One function per subcommand.

use crate::cli::{Cli, Command, ServerArgs, UserCommand, UserCreateArgs};
use crate::master_key::MasterKey;
use anyhow::{Context, bail};
use cloudspend_api::{ApiConfig, AppState};
use cloudspend_core::validate;
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
            let Some(raw_key) = args.master_key.as_deref() else {
                bail!(
                    "CLOUDSPEND_MASTER_KEY is not set: it encrypts tenants' AWS secrets. Generate one with \
                     `openssl rand -hex 32` and set it in the environment or .env (or try `cloudspend demo`)"
                );
            };
            let _master_key = MasterKey::parse(raw_key)?;
            let store = open(&cli.database_url).await?;
            store.migrate().await.context("applying migrations")?;
            if store.backend() == cloudspend_store::Backend::Sqlite {
                tracing::warn!("serving from SQLite: fine for a first run; use PostgreSQL for anything shared");
            }
            serve(store, &args.server).await
        }
        Command::Demo(args) => demo(&cli.database_url, &args.server).await,
        Command::User(UserCommand::Create(args)) => create_user(&cli.database_url, args).await,
    }
}

async fn open(database_url: &str) -> anyhow::Result<Arc<dyn Store>> {
    cloudspend_store::connect(database_url)
        .await
        .with_context(|| format!("opening the database at {}", redact_url(database_url)))
}

fn api_config(server: &ServerArgs) -> ApiConfig {
    ApiConfig {
        token_ttl: Duration::from_secs(server.token_ttl_hours.max(1) * 3600),
        test_endpoints: server.test_endpoints,
        ..ApiConfig::default()
    }
}

async fn serve(store: Arc<dyn Store>, server: &ServerArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(server.bind)
        .await
        .with_context(|| format!("listening on {} (is another process using the port? set CLOUDSPEND_BIND)", server.bind))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "CloudSpend listening");
    let state = AppState::new(store, api_config(server));
    cloudspend_api::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM (what `docker stop` and Kubernetes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

async fn demo(database_url: &str, server: &ServerArgs) -> anyhow::Result<()> {
    if let Some(path) = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:")) {
        let folder = Path::new(path).parent().unwrap_or(Path::new("."));
        MasterKey::load_or_create(&folder.join("master.key"))?;
    }
    let store = open(database_url).await?;
    store.migrate().await.context("applying migrations")?;
    let created = ensure_demo_account(store.as_ref()).await?;
    let url = format!("http://{}", server.bind);
    println!();
    println!("  CloudSpend demo {}", if created { "(demo tenant created)" } else { "(existing demo data)" });
    println!("  URL:      {url}");
    println!("  Login:    {DEMO_EMAIL}");
    println!("  Password: {DEMO_PASSWORD}");
    println!("  Data:     {}", redact_url(database_url));
    println!("  Try:      curl -s {url}/healthz");
    println!("  Stop with ctrl-c.");
    println!();
    serve(store, server).await
}

/// Creates the demo user and tenant once; later runs find them and change nothing.
async fn ensure_demo_account(store: &dyn Store) -> anyhow::Result<bool> {
    if store.credentials_by_email(DEMO_EMAIL).await?.is_some() {
        return Ok(false);
    }
    let password_hash = cloudspend_api::auth::hash_password(DEMO_PASSWORD.to_string()).await?;
    let user = NewUser { email: DEMO_EMAIL.to_string(), password_hash, is_global_owner: false };
    match store.create_user_with_tenant(user, DEMO_TENANT).await {
        Ok(_) => Ok(true),
        // Another process started the demo at the same moment.
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

async fn create_user(database_url: &str, args: UserCreateArgs) -> anyhow::Result<()> {
    let email = validate::email("email", &args.email).map_err(|e| anyhow::anyhow!("{}", e.message))?;
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
    validate::password("password", &password).map_err(|e| anyhow::anyhow!("password {}", e.message))?;
    let password_hash = cloudspend_api::auth::hash_password(password.clone()).await?;
    let new_user = NewUser { email: email.clone(), password_hash, is_global_owner: args.global_owner };
    let user = match &args.tenant {
        Some(name) => {
            let name = validate::display_name("tenant", name).map_err(|e| anyhow::anyhow!("tenant {}", e.message))?;
            let (user, tenant) = store.create_user_with_tenant(new_user, &name).await?;
            println!("created tenant {} ({})", tenant.name, tenant.id);
            user
        }
        None => store.create_user(new_user).await?,
    };
    println!("created user {} ({}){}", user.email, user.id, if user.is_global_owner { " as global owner" } else { "" });
    if generated {
        println!("password: {password}   (shown once; log in and keep it somewhere safe)");
    }
    Ok(())
}

fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}
