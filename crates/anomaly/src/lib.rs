//! Cost and metric anomaly detection: pure functions over daily series. No I/O.
//!
//! Not built yet: this crate is a placeholder until its issue lands, so the workspace layout
//! already shows where the work goes.
