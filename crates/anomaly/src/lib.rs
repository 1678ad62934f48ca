//! Cost and metric anomaly detection for CloudSpend: pure functions over daily cost series and
//! 5-minute metric series. It decides what is unusual, by how much money, and which services,
//! accounts, regions, usage types or resources caused it. It never does I/O, never touches the
//! database or AWS and never reads the clock: the caller passes series in and stores what comes
//! out, so every result is reproducible from its input. The one exception is [`csv`], whose
//! helpers read and write CSV over caller-supplied `Read` / `Write` for the offline CLI.
//!
//! Layout:
//! - [`cost`]: daily cost detection (weekly pattern, trend, 1st-of-month fees, credits, step
//!   changes, slow leaks, series billed on few days, estimated days, planned changes,
//!   per-subscription minimum impact) into anomaly events.
//! - [`root_cause`]: ranks the components of a series by their share of an anomaly's impact.
//! - [`metric`]: online detectors for CPU-style metric series (NAB format), score in [0, 1].
//! - [`context`]: the default metric detector, a contextual (sequence) anomaly detector after
//!   CAD OSE.
//! - [`nab`]: the Numenta Anomaly Benchmark scoring rules, re-implemented.
//! - [`forecast`]: month-end forecast of a cost series (weekday rhythm, fees on the 1st), with
//!   an interval.
//! - [`synthetic`]: a seeded generator of labelled daily cost series with the traps planted.
//! - [`billing`]: a second generator, from other assumptions (bills as sums of service lines
//!   shaped after public AWS billing samples), so the detector is judged on data it was not
//!   tuned on.
//! - [`plain`]: a third, plainest generator (short series, smaller events), for a third check.
//! - [`eval`]: event-level precision / recall / F1 and false alerts per series-year, per event
//!   kind (how a detection is matched to a label is documented there).
//! - [`csv`]: the `cloudspend anomalies detect` helpers.

pub mod billing;
pub mod context;
pub mod cost;
pub mod csv;
pub mod eval;
pub mod forecast;
pub mod metric;
pub mod nab;
pub mod plain;
pub mod root_cause;
pub mod synthetic;

pub use cost::{
    Anomaly, Config, CostPoint, DayResult, DayStatus, PLANNED_SETTLE_DAYS, SeriesReport,
    SeriesStatus, Severity, Thresholds, detect, detect_planned,
};
