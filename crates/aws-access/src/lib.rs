//! Per-tenant AWS SDK configuration: AssumeRole with the tenant's external ID, access keys, or the default chain; endpoint override for tests.
//!
//! Not built yet: this crate is a placeholder until its issue lands, so the workspace layout
//! already shows where the work goes.
