//! `cloudspend`: the HTTP service and its operator CLI in one binary.
//!
//! This crate only wires things together: it reads configuration (flags, environment, `.env`),
//! opens the store, and starts the API. Business rules live in the library crates.
//!
//! Layout:
//! - [`cli`]: the command line (clap), every setting with its environment variable.
//! - [`commands`]: one function per subcommand.
//! - [`demo_data`]: the demo tenant's synthetic costs, instances and CPU, and the FOCUS sample.

mod cli;
mod commands;
mod demo_data;
mod key_rotation;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run());
    // Work a shutdown cut off may sit on a blocking thread (a DNS lookup, a password hash):
    // dropping the runtime would wait for it without limit, past the grace period.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

async fn run() -> std::process::ExitCode {
    // `.env` first, so clap's `env` fallbacks see its values; real environment variables win.
    let dotenv = dotenvy::dotenv();
    let cli = cli::Cli::parse();
    cloudspend_api::telemetry::init_tracing();
    if let Err(err) = dotenv
        && !err.not_found()
    {
        tracing::warn!("ignoring .env: {err}");
    }
    match commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
