//! A tenant's AWS connection as CloudSpend stores it. Secrets appear here only as ciphertext.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    /// A management (payer) account: Cost Explorer and the CUR cover every linked account.
    Organization,
    /// A single member account.
    Linked,
}

impl AccountType {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Organization => "organization",
            AccountType::Linked => "linked",
        }
    }
}

impl FromStr for AccountType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "organization" => Ok(AccountType::Organization),
            "linked" => Ok(AccountType::Linked),
            other => Err(format!(
                "unknown account type `{other}`: expected organization or linked"
            )),
        }
    }
}

impl fmt::Display for AccountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How CloudSpend authenticates to the tenant's account.
#[derive(Clone, PartialEq, Eq)]
pub enum ConnectionAuth {
    /// STS AssumeRole on `role_arn` with the tenant's external ID (the recommended way).
    Role { role_arn: String },
    /// Long-lived access keys; the secret is stored only as AEAD ciphertext (base64).
    AccessKey {
        access_key_id: String,
        secret_ciphertext: String,
    },
}

impl ConnectionAuth {
    pub fn method(&self) -> &'static str {
        match self {
            ConnectionAuth::Role { .. } => "role",
            ConnectionAuth::AccessKey { .. } => "access_key",
        }
    }
}

impl fmt::Debug for ConnectionAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionAuth::Role { role_arn } => {
                f.debug_struct("Role").field("role_arn", role_arn).finish()
            }
            ConnectionAuth::AccessKey { access_key_id, .. } => f
                .debug_struct("AccessKey")
                .field("access_key_id", access_key_id)
                .finish_non_exhaustive(),
        }
    }
}

/// Where the tenant's Cost and Usage Report can be queried with Athena. Names here are
/// validated identifiers before they are stored (they end up in SQL).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CurLocation {
    pub cur_bucket: Option<String>,
    pub cur_prefix: Option<String>,
    pub athena_database: Option<String>,
    pub athena_table: Option<String>,
    pub athena_workgroup: Option<String>,
    pub athena_results_bucket: Option<String>,
    pub athena_results_prefix: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Every diagnostic step passed.
    Connected,
    /// Credentials work, but some optional step failed (see warnings).
    Degraded,
    /// The last verification or collection could not authenticate.
    Failed,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Degraded => "degraded",
            ConnectionStatus::Failed => "failed",
        }
    }
}

impl FromStr for ConnectionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "connected" => Ok(ConnectionStatus::Connected),
            "degraded" => Ok(ConnectionStatus::Degraded),
            "failed" => Ok(ConnectionStatus::Failed),
            other => Err(format!("unknown connection status `{other}`")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsConnection {
    pub display_name: String,
    pub account_id: String,
    pub account_type: AccountType,
    pub auth: ConnectionAuth,
    /// Regions to collect EC2 and CloudWatch data from; the first is the home region.
    pub regions: Vec<String>,
    pub cur: CurLocation,
    pub status: ConnectionStatus,
    pub last_verified_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Optional steps that failed at the last verification, in words a user can act on.
    pub warnings: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AwsConnection {
    pub fn home_region(&self) -> &str {
        self.regions
            .first()
            .map(String::as_str)
            .unwrap_or("us-east-1")
    }
}
