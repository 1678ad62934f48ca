//! What CloudSpend concludes from the data it collected, and who it tells.
//!
//! - [`anomalies`]: runs the pure detector of `cloudspend-anomaly` over the tenant's daily
//!   rollups (total, per service, account and region), told the changes the tenant marked
//!   planned, ranks root causes from the cost rows behind each anomaly (with the CPU of
//!   instances the CUR names), and stores the result.
//! - [`forecast`]: the month-end forecast (weekday rhythm, month-start fees, a 90% interval)
//!   that the dashboard and [`budgets`] share.
//! - [`recommendations`]: idle and oversized running instances from their CPU, priced from the
//!   tenant's own CUR rows (or list prices where the CUR has none).
//! - [`alerts`]: which subscriptions an anomaly or a daily digest goes to, and the delivery
//!   worker (signed webhooks with retries, e-mail over SMTP).
//! - [`view`]: the JSON shapes the API, the webhooks and the browser all show.
//!
//! [`refresh`] runs all of it for a tenant; the collection runner calls it after every
//! successful run, so findings follow the data without a separate schedule.

pub mod alerts;
pub mod anomalies;
pub mod budgets;
pub mod egress;
pub mod forecast;
pub mod pricing;
pub mod recommendations;
pub mod view;

use chrono::{DateTime, Utc};
use cloudspend_core::TenantId;
use cloudspend_store::{Store, StoreError, StoredAnomaly};

/// What one [`refresh`] found.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// Anomalies stored for the first time by this pass.
    pub new_anomalies: Vec<StoredAnomaly>,
    pub recommendations: usize,
    /// Alert deliveries queued (immediate alerts and due digests).
    pub alerts_queued: u64,
}

/// What a collection changed, and so what needs recomputing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// Cost rows (Cost Explorer, CUR): everything.
    Costs,
    /// Inventory or CPU (EC2, CloudWatch): recommendations only.
    Usage,
}

/// Recomputes what `changed` affects: after a cost collection, [`refresh`]; after an inventory
/// or CPU collection, only the recommendations (anomalies and budgets read costs alone).
pub async fn refresh_after(
    store: &dyn Store,
    tenant: TenantId,
    changed: Changed,
    now: DateTime<Utc>,
) -> Result<Refreshed, StoreError> {
    match changed {
        Changed::Costs => refresh(store, tenant, now).await,
        Changed::Usage => {
            let recommendations = recommendations::compute(store, tenant, now).await?;
            store
                .replace_recommendations(tenant, &recommendations)
                .await?;
            Ok(Refreshed {
                recommendations: recommendations.len(),
                ..Refreshed::default()
            })
        }
    }
}

/// Re-detects anomalies, recomputes recommendations and queues alerts for the tenant.
pub async fn refresh(
    store: &dyn Store,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<Refreshed, StoreError> {
    let new_anomalies = anomalies::detect_and_store(store, tenant, now).await?;
    let recommendations = recommendations::compute(store, tenant, now).await?;
    store
        .replace_recommendations(tenant, &recommendations)
        .await?;
    let mut alerts_queued = alerts::enqueue_immediate(store, tenant, &new_anomalies, now).await?;
    alerts_queued += alerts::enqueue_digests(store, tenant, now).await?;
    alerts_queued += budgets::check(store, tenant, now).await?;
    Ok(Refreshed {
        new_anomalies,
        recommendations: recommendations.len(),
        alerts_queued,
    })
}
