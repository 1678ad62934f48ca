//! Black-box tests of the HTTP API: each test starts the real server on port 0 against a fresh
//! PostgreSQL database and talks to it over HTTP.

mod accounts;
mod actions;
mod alerts;
mod audit;
mod aws;
mod common;
mod costs;
mod dump;
mod full_tenant;
mod http;
mod insights;
mod isolation;
mod members;
mod onboarding;
mod passwords;
