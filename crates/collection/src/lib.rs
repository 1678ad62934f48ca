//! Running collections. A collection is: [`cloudspend_aws_access`] gives an `SdkConfig` for
//! the tenant → one collector crate fetches and maps the data → the store writes it in one
//! transaction per window → a `collection_runs` row records what happened (rows, AWS requests,
//! Cost Explorer requests at $0.01 each, retries, the error with its AWS code and a hint).
//!
//! This crate holds no SQL and builds no SDK client itself: it only puts the other crates'
//! pieces in order, decides the window each run covers, and turns failures into a recorded run
//! that leaves earlier rows untouched.
//!
//! Layout:
//! - [`collector`]: which collectors exist and how often each runs by default.
//! - [`runner`]: [`Collections`], one collection for one tenant now.
//! - [`scheduler`]: the loop in `serve` that leases due jobs (several replicas share them).

pub mod collector;
pub mod runner;
pub mod scheduler;

pub use collector::Collector;
pub use runner::{CollectionError, Collections, RunReport, Settings};
pub use scheduler::{RunningCollections, Scheduler};
