//! Live AWS calls a tenant makes through the diagnostics (`/test-ec2`, `/test-cpu/{id}`,
//! `/test-cost`). They are recorded so they count in the tenant's AWS usage like a collection's
//! requests ([`crate::Store::aws_usage_since`] sums both), and so the billed one (`/test-cost`,
//! $0.01 a Cost Explorer request) is limited per tenant in the database, the same on every
//! replica, rather than per process.

use crate::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloudspend_core::TenantId;

/// The diagnostic endpoints that call AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagnosticEndpoint {
    TestEc2,
    TestCpu,
    TestCost,
}

impl DiagnosticEndpoint {
    /// The form stored in `diagnostic_calls.endpoint`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TestEc2 => "test-ec2",
            Self::TestCpu => "test-cpu",
            Self::TestCost => "test-cost",
        }
    }
}

/// At most `max_calls` calls of an endpoint since `since`, the call being admitted included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub since: DateTime<Utc>,
    pub max_calls: i64,
}

/// Whether a diagnostic call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Recorded under this id: finish it with the requests it made.
    Admitted(uuid::Uuid),
    /// The allowance is spent; nothing was recorded. A slot frees when the oldest call in the
    /// window leaves it, `oldest_in_window` + the window's length.
    Refused { oldest_in_window: DateTime<Utc> },
}

#[async_trait]
pub trait DiagnosticCalls {
    /// Records that a call of `endpoint` starts at `at`, unless `allowance` is spent. The call
    /// is recorded first and counted after, so concurrent calls near the limit may all be
    /// refused but never all admitted past it.
    async fn start_diagnostic_call(
        &self,
        tenant: TenantId,
        endpoint: DiagnosticEndpoint,
        at: DateTime<Utc>,
        allowance: Option<Allowance>,
    ) -> Result<Admission>;

    /// The AWS requests the call made (recorded whether or not it succeeded: AWS counts, and
    /// bills, failed requests too).
    async fn finish_diagnostic_call(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
        aws_requests: i64,
        ce_requests: i64,
    ) -> Result<()>;
}

/// The SQL of [`DiagnosticCalls`], the same text for both backends.
macro_rules! impl_diagnostic_calls {
    ($store:ident) => {
        #[async_trait::async_trait]
        impl $crate::diagnostics::DiagnosticCalls for $store {
            async fn start_diagnostic_call(
                &self,
                tenant: cloudspend_core::TenantId,
                endpoint: $crate::diagnostics::DiagnosticEndpoint,
                at: chrono::DateTime<chrono::Utc>,
                allowance: Option<$crate::diagnostics::Allowance>,
            ) -> $crate::Result<$crate::diagnostics::Admission> {
                use $crate::diagnostics::Admission;
                let id = uuid::Uuid::new_v4();
                sqlx::query(
                    "INSERT INTO diagnostic_calls (tenant_id, id, endpoint, called_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(endpoint.as_str())
                .bind($crate::micros(at))
                .execute(&self.pool)
                .await?;
                let Some(allowance) = allowance else {
                    return Ok(Admission::Admitted(id));
                };
                let (calls, oldest): (i64, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
                    "SELECT COUNT(*), MIN(called_at) FROM diagnostic_calls \
                     WHERE tenant_id = $1 AND endpoint = $2 AND called_at >= $3",
                )
                .bind(tenant.0)
                .bind(endpoint.as_str())
                .bind($crate::micros(allowance.since))
                .fetch_one(&self.pool)
                .await?;
                if calls <= allowance.max_calls {
                    return Ok(Admission::Admitted(id));
                }
                sqlx::query("DELETE FROM diagnostic_calls WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(Admission::Refused {
                    oldest_in_window: oldest.unwrap_or(at),
                })
            }

            async fn finish_diagnostic_call(
                &self,
                tenant: cloudspend_core::TenantId,
                id: uuid::Uuid,
                aws_requests: i64,
                ce_requests: i64,
            ) -> $crate::Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "UPDATE diagnostic_calls SET aws_requests = $3, ce_requests = $4 \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(aws_requests)
                .bind(ce_requests)
                .execute(&mut *tx)
                .await?;
                // The dashboard shows the month's AWS usage: a cached one no longer holds.
                sqlx::query("UPDATE tenants SET data_version = data_version + 1 WHERE id = $1")
                    .bind(tenant.0)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_diagnostic_calls;
