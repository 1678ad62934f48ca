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

#[tokio::main]
async fn main() -> std::process::ExitCode {
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
