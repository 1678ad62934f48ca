//! Per-tenant AWS access: turns a tenant's connection (an IAM role to assume with the tenant's
//! external ID, an access key pair, or the server's own default credentials) into an
//! [`SdkConfig`](aws_types::SdkConfig) that every collector's SDK client is built from, and the
//! pieces every collector shares: the [`AwsError`] type that keeps the AWS error code and says
//! what to do about it, and the [`RequestCounter`] that records what a collection cost in AWS
//! requests.
//!
//! This crate never touches the database and never decrypts anything: callers hand it
//! credentials already decrypted (in memory only, as [`secrecy::SecretString`]). It makes no AWS
//! call of its own except the STS AssumeRole the SDK issues to refresh a role's credentials.
//!
//! Layout:
//! - [`access`]: [`TenantCredentials`], [`AwsAccess`] (base config loaded once, per-tenant
//!   AssumeRole providers cached so a tenant costs one AssumeRole per credential lifetime, the
//!   retry policy and the endpoint override), [`cost_explorer_config`], [`https_client`] (the
//!   one HTTPS client every AWS call uses).
//! - [`error`]: [`AwsError`], [`ErrorKind`], hints.
//! - [`counter`]: [`RequestCounter`], an SDK interceptor counting requests, attempts and throttles.
//! - `testing` (feature `testing`): helpers for end-to-end tests against the moto server.

pub mod access;
pub mod counter;
pub mod error;
#[cfg(feature = "testing")]
pub mod testing;

pub use access::{
    AwsAccess, COST_EXPLORER_REGION, DEFAULT_MAX_ATTEMPTS, TenantCredentials, cost_explorer_config,
    https_client,
};
pub use counter::{RequestCounter, RequestCounts};
pub use error::{AwsError, ErrorKind};
