//! Cost and Usage Report collector: Athena queries built from the table's real columns, and CUR/FOCUS file import. No SQL.
//!
//! Not built yet: this crate is a placeholder until its issue lands, so the workspace layout
//! already shows where the work goes.
