//! Cost Explorer collector: daily UnblendedCost and AmortizedCost, all pages, exact decimals. No SQL.
//!
//! Not built yet: this crate is a placeholder until its issue lands, so the workspace layout
//! already shows where the work goes.
