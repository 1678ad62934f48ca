//! One module per resource, each with `router() -> OpenApiRouter<AppState>`; merged in
//! [`crate::app`]. Registering a handler through `routes!` also documents it, so the OpenAPI
//! document covers every route by construction.

pub mod accounts;
pub mod actions;
pub mod admin;
pub mod alarms;
pub mod alerts;
pub mod budgets;
pub mod collections;
pub mod costs;
pub mod diagnostics;
pub mod health;
pub mod insights;
pub mod invitations;
pub mod members;
pub mod onboarding;
pub mod passwords;
pub mod tokens;
