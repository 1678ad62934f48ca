//! EC2 inventory collector: DescribeInstances across a tenant's regions, mapped to core types. No SQL.
//!
//! Not built yet: this crate is a placeholder until its issue lands, so the workspace layout
//! already shows where the work goes.
