//! Secrets sealed under the master key, wherever the store keeps them (a connection's AWS secret
//! access key, an alert subscription's signing secret), listed and replaced for
//! `cloudspend rotate-master-key`. The store only moves ciphertext: nothing here can open it.

use crate::Result;
use async_trait::async_trait;
use cloudspend_core::TenantId;

/// Where a sealed secret lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SealedSecretKind {
    /// `aws_connections.secret_key_ciphertext`: a connection made with access keys.
    AwsSecretAccessKey,
    /// `alert_subscriptions.secret_ciphertext`: the key that signs a subscription's webhooks.
    AlertSigningSecret,
}

/// One stored ciphertext and the tenant it is bound to (the tenant id is the AEAD's associated
/// data, so it must be opened and sealed again for the same tenant).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SealedSecret {
    pub kind: SealedSecretKind,
    pub tenant: TenantId,
    pub ciphertext: String,
}

/// Every sealed secret, across tenants: an operator's command, never a tenant's request.
#[async_trait]
pub trait SealedSecrets {
    /// All sealed secrets of every tenant, by kind and tenant.
    async fn sealed_secrets(&self) -> Result<Vec<SealedSecret>>;

    /// Replaces `secret`'s ciphertext with `resealed` if the row still holds the one listed, and
    /// says whether it did. A tenant who stored a new secret meanwhile (reconnecting, a new
    /// subscription) keeps it: that one was sealed under the server's current key already.
    async fn reseal(&self, secret: &SealedSecret, resealed: &str) -> Result<bool>;
}

/// The SQL of [`SealedSecrets`], the same text for both backends.
macro_rules! impl_sealed_secrets {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl $crate::sealed::SealedSecrets for $store {
            async fn sealed_secrets(&self) -> $crate::Result<Vec<$crate::sealed::SealedSecret>> {
                use $crate::sealed::{SealedSecret, SealedSecretKind};
                let connections: Vec<(uuid::Uuid, String)> = sqlx::query_as(
                    "SELECT tenant_id, secret_key_ciphertext FROM aws_connections \
                     WHERE secret_key_ciphertext IS NOT NULL",
                )
                .fetch_all(&self.pool)
                .await?;
                let subscriptions: Vec<(uuid::Uuid, String)> =
                    sqlx::query_as("SELECT tenant_id, secret_ciphertext FROM alert_subscriptions")
                        .fetch_all(&self.pool)
                        .await?;
                let of = |kind: SealedSecretKind| {
                    move |(tenant, ciphertext): (uuid::Uuid, String)| SealedSecret {
                        kind,
                        tenant: cloudspend_core::TenantId(tenant),
                        ciphertext,
                    }
                };
                let mut all: Vec<SealedSecret> = connections
                    .into_iter()
                    .map(of(SealedSecretKind::AwsSecretAccessKey))
                    .chain(
                        subscriptions
                            .into_iter()
                            .map(of(SealedSecretKind::AlertSigningSecret)),
                    )
                    .collect();
                all.sort();
                Ok(all)
            }

            async fn reseal(
                &self,
                secret: &$crate::sealed::SealedSecret,
                resealed: &str,
            ) -> $crate::Result<bool> {
                use $crate::sealed::SealedSecretKind;
                let sql = match secret.kind {
                    SealedSecretKind::AwsSecretAccessKey => {
                        "UPDATE aws_connections SET secret_key_ciphertext = $1 \
                         WHERE tenant_id = $2 AND secret_key_ciphertext = $3"
                    }
                    SealedSecretKind::AlertSigningSecret => {
                        "UPDATE alert_subscriptions SET secret_ciphertext = $1 \
                         WHERE tenant_id = $2 AND secret_ciphertext = $3"
                    }
                };
                let done = sqlx::query(sql)
                    .bind(resealed)
                    .bind(secret.tenant.0)
                    .bind(&secret.ciphertext)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}
pub(crate) use impl_sealed_secrets;
