//! From a tenant's connection to an `SdkConfig`.

use crate::error::AwsError;
use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::identity::SharedIdentityCache;
use cloudspend_core::TenantId;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The HTTPS client every AWS call goes through: rustls with ring, the crypto library the
/// webhook and e-mail clients use too, so the build compiles one instead of also the SDK's
/// default aws-lc-rs. Certificates are checked against the system's roots.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Cost Explorer has a single endpoint, in us-east-1, whatever region the tenant works in.
pub const COST_EXPLORER_REGION: &str = "us-east-1";

/// Attempts per AWS request (first try included) unless configured otherwise: enough to ride out
/// a burst of throttling, bounded so a dead endpoint fails a collection in seconds.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Refresh assumed-role credentials this long before they expire, so no request is ever signed
/// with credentials that lapse in flight.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// How CloudSpend authenticates to one tenant's AWS account.
#[derive(Clone)]
pub enum TenantCredentials {
    /// Assume this role in the tenant's account. The external ID is the one CloudSpend issued
    /// to the tenant; it guards against the confused-deputy problem.
    Role {
        role_arn: String,
        external_id: String,
    },
    /// A long-lived key pair the tenant gave us, decrypted only in memory.
    AccessKey {
        access_key_id: String,
        secret_access_key: SecretString,
    },
    /// The server's own credentials from the default provider chain (environment / `.env`
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, profile, instance role).
    ServerDefault,
}

impl fmt::Debug for TenantCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Role {
                role_arn,
                external_id,
            } => f
                .debug_struct("Role")
                .field("role_arn", role_arn)
                .field("external_id", external_id)
                .finish(),
            Self::AccessKey { access_key_id, .. } => f
                .debug_struct("AccessKey")
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"[redacted]")
                .finish(),
            Self::ServerDefault => f.write_str("ServerDefault"),
        }
    }
}

/// Per-tenant `SdkConfig`s. Clone it freely: clones share the base config and the cache of
/// assumed-role credentials.
///
/// Endpoint override (tests point every client at the moto server): the one way is
/// [`AwsAccess::new`]'s `endpoint_url`, given to the config loader, where it beats an
/// `AWS_ENDPOINT_URL` in the environment; [`AwsAccess::from_env`] passes `AWS_ENDPOINT_URL`
/// through. Per-tenant configs inherit it from the base and never set one of their own (an
/// override set later with `SdkConfig::to_builder()` would lose to the environment variable).
#[derive(Clone)]
pub struct AwsAccess {
    base: SdkConfig,
    /// One AssumeRole provider and identity cache per (tenant, role, external id): every config
    /// for the tenant shares them, so credentials are fetched once per lifetime, not per call.
    /// A separate cache per tenant, because the SDK's shared lazy cache keeps only 64 partitions.
    roles: Arc<Mutex<HashMap<RoleKey, CachedRole>>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct RoleKey {
    tenant: TenantId,
    role_arn: String,
    external_id: String,
}

#[derive(Clone)]
struct CachedRole {
    provider: SharedCredentialsProvider,
    cache: SharedIdentityCache,
}

impl fmt::Debug for AwsAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsAccess")
            .field("region", &self.base.region())
            .field("endpoint_url", &self.base.endpoint_url())
            .finish_non_exhaustive()
    }
}

impl AwsAccess {
    /// Loads the server's base configuration once (default credential and region chain,
    /// standard retries with [`DEFAULT_MAX_ATTEMPTS`]). `endpoint_url` sends every AWS call to
    /// that endpoint (the moto server in tests); `None` uses AWS's own endpoints.
    pub async fn new(endpoint_url: Option<String>) -> Self {
        Self::with_max_attempts(endpoint_url, DEFAULT_MAX_ATTEMPTS).await
    }

    /// [`AwsAccess::new`] with `AWS_ENDPOINT_URL` from the environment as the endpoint override.
    pub async fn from_env() -> Self {
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|v| !v.trim().is_empty());
        Self::new(endpoint).await
    }

    /// [`AwsAccess::new`] with a different bound on attempts per request (at least 1).
    pub async fn with_max_attempts(endpoint_url: Option<String>, max_attempts: u32) -> Self {
        // The server's own region: AWS_REGION / the profile, else us-east-1 (where STS and Cost
        // Explorer answer). Not the SDK's full chain, whose last resort asks the EC2 instance
        // metadata service: off EC2 that only times out and logs a warning. Tenants' calls name
        // their region explicitly.
        let region = aws_config::meta::region::RegionProviderChain::first_try(
            aws_config::environment::EnvironmentVariableRegionProvider::new(),
        )
        .or_else(aws_config::profile::ProfileFileRegionProvider::new())
        .or_else(aws_types::region::Region::from_static("us-east-1"));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .region(region)
            .retry_config(retry_config(max_attempts))
            .timeout_config(timeout_config());
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        Self::from_base(loader.load().await)
    }

    /// Wraps an already loaded base configuration as is (tests, or callers with their own
    /// loader). Its credentials are the server's own and the principal that assumes roles.
    /// Make it with `aws_config`'s loader: a bare `SdkConfig::builder()` lacks the time source
    /// and sleep that assuming a role needs.
    pub fn from_base(base: SdkConfig) -> Self {
        Self {
            base,
            roles: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The base configuration (server's own credentials), e.g. for a health check.
    pub fn base(&self) -> &SdkConfig {
        &self.base
    }

    /// An `SdkConfig` for `tenant` in `region`. Cheap after the first call for a role: the
    /// provider is cached and the SDK refreshes the credentials before they expire. Makes no
    /// AWS call itself; a role that cannot be assumed surfaces as an [`AwsError`] of kind
    /// `Credentials` from the first request made with the config.
    pub async fn sdk_config(
        &self,
        tenant: TenantId,
        creds: &TenantCredentials,
        region: &str,
    ) -> Result<SdkConfig, AwsError> {
        let region = validate_region(region)?;
        let builder = self
            .base
            .to_builder()
            .region(Region::new(region.to_string()));
        let config = match creds {
            TenantCredentials::ServerDefault => builder.build(),
            TenantCredentials::AccessKey {
                access_key_id,
                secret_access_key,
            } => {
                if access_key_id.trim().is_empty() || secret_access_key.expose_secret().is_empty() {
                    return Err(AwsError::invalid_input(
                        "the access key pair is incomplete: give both the access key id and the secret",
                    ));
                }
                let credentials = Credentials::new(
                    access_key_id.trim(),
                    secret_access_key.expose_secret(),
                    None,
                    None,
                    "cloudspend-tenant-access-key",
                );
                builder
                    .credentials_provider(SharedCredentialsProvider::new(credentials))
                    .build()
            }
            TenantCredentials::Role {
                role_arn,
                external_id,
            } => {
                let role = self.role(tenant, role_arn, external_id).await?;
                builder
                    .credentials_provider(role.provider)
                    .identity_cache(role.cache)
                    .build()
            }
        };
        Ok(config)
    }

    async fn role(
        &self,
        tenant: TenantId,
        role_arn: &str,
        external_id: &str,
    ) -> Result<CachedRole, AwsError> {
        if !role_arn.starts_with("arn:aws") || !role_arn.contains(":role/") {
            return Err(AwsError::invalid_input(format!(
                "`{role_arn}` is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
            )));
        }
        let key = RoleKey {
            tenant,
            role_arn: role_arn.to_string(),
            external_id: external_id.to_string(),
        };
        if let Some(found) = self.roles.lock().expect("role cache poisoned").get(&key) {
            return Ok(found.clone());
        }
        // STS is regional; the base region (AWS_REGION) if the server has one, else us-east-1,
        // which always serves STS.
        let sts_region = self
            .base
            .region()
            .cloned()
            .unwrap_or_else(|| Region::new("us-east-1"));
        let provider = AssumeRoleProvider::builder(role_arn)
            .external_id(external_id)
            .session_name(session_name(tenant))
            // From the base config: keeps the endpoint override, retry policy and the server's
            // own credentials as the principal that assumes the role.
            .configure(&self.base)
            .region(sts_region)
            .build()
            .await;
        let built = CachedRole {
            provider: SharedCredentialsProvider::new(provider),
            cache: IdentityCache::lazy()
                .buffer_time(REFRESH_BEFORE_EXPIRY)
                .build(),
        };
        // Two first calls racing both build a provider (no AWS call yet); the first one stored wins.
        let mut roles = self.roles.lock().expect("role cache poisoned");
        Ok(roles.entry(key).or_insert(built).clone())
    }

    /// Forgets the cached role credentials of a tenant (after it disconnects or rotates its
    /// external ID), so the next config assumes the role afresh.
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.roles
            .lock()
            .expect("role cache poisoned")
            .retain(|key, _| key.tenant != tenant);
    }
}

/// The same configuration pointed at us-east-1, the only region that serves Cost Explorer.
pub fn cost_explorer_config(config: &SdkConfig) -> SdkConfig {
    config
        .to_builder()
        .region(Region::new(COST_EXPLORER_REGION))
        .build()
}

/// `cloudspend-<tenant uuid>`: 47 characters, inside STS's 64, and CloudTrail in the tenant's
/// account shows which CloudSpend tenant made each call.
fn session_name(tenant: TenantId) -> String {
    let name = format!("cloudspend-{}", tenant.0);
    debug_assert!(name.len() <= 64);
    name
}

fn retry_config(max_attempts: u32) -> RetryConfig {
    RetryConfig::standard().with_max_attempts(max_attempts.max(1))
}

fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        // An unreachable endpoint should fail a collection quickly, not hang it.
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(60))
        .build()
}

fn validate_region(region: &str) -> Result<&str, AwsError> {
    let ok = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && region.contains('-');
    if ok {
        Ok(region)
    } else {
        Err(AwsError::invalid_input(format!(
            "`{region}` is not an AWS region name (e.g. us-east-1)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_name_names_the_tenant_within_sts_limit() {
        let tenant = TenantId::new();
        let name = session_name(tenant);
        assert!(name.starts_with("cloudspend-"));
        assert!(name.ends_with(&tenant.to_string()));
        assert!(name.len() <= 64);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let creds = TenantCredentials::AccessKey {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: SecretString::from("very-secret"),
        };
        let shown = format!("{creds:?}");
        assert!(shown.contains("AKIAEXAMPLE"));
        assert!(!shown.contains("very-secret"));
    }

    #[test]
    fn cost_explorer_always_goes_to_us_east_1() {
        let tenant = SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .endpoint_url("http://moto:5000")
            .build();
        let ce = cost_explorer_config(&tenant);
        assert_eq!(ce.region().map(|r| r.as_ref()), Some("us-east-1"));
        assert_eq!(
            ce.endpoint_url(),
            Some("http://moto:5000"),
            "the endpoint override is kept"
        );
    }

    #[test]
    fn region_names_are_validated() {
        assert!(validate_region("eu-west-1").is_ok());
        assert!(validate_region("").is_err());
        assert!(validate_region("EU west").is_err());
    }
}
