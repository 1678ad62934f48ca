//! CloudWatch CPU collector: batched GetMetricData, mapped to core metric points. No SQL.
//!
//! Not built yet: this crate is a placeholder until its issue lands, so the workspace layout
//! already shows where the work goes.
