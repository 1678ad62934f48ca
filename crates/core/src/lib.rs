//! Domain types shared by every CloudSpend crate, and the validation rules that guard them.
//!
//! This crate does no I/O: no database, no network, no clock reads except where a caller passes
//! one in. Everything that crosses a crate boundary (a tenant id, an amount of money, a cost
//! row, an instance) is defined here once, so the store, the collectors and the API agree on
//! what a value means.
//!
//! Layout:
//! - [`clock`]: where "now" comes from, pinned in tests.
//! - [`connection`]: a tenant's AWS connection (secrets only as ciphertext).
//! - [`ids`]: typed UUIDs for users, tenants and the rows they own.
//! - [`role`]: what a member of a tenant may do.
//! - [`money`]: exact amounts in integer nano-units (never floating point).
//! - [`records`]: the normalised rows collectors produce and the store keeps.
//! - [`validate`]: input rules (emails, passwords, names) with the field they apply to.

pub mod clock;
pub mod connection;
pub mod ids;
pub mod money;
pub mod records;
pub mod role;
pub mod validate;

pub use clock::Clock;
pub use ids::{AnomalyId, RunId, TenantId, UserId};
pub use money::Money;
pub use role::Role;
