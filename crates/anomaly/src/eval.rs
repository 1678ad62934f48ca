//! Event-level evaluation of the cost detector.
//!
//! How a detection is matched to a label:
//! - a labelled event is a window of days (a spike: its days; a level shift: its first day and
//!   the six after; a slow leak: every day it grows);
//! - it is **found** when any reported event (a run of consecutive anomalous days) overlaps the
//!   window by at least one day, so for a leak flagging any day of its growth counts;
//! - a reported event that overlaps no labelled window is a **false alert**; false alerts are
//!   given per series-year (series length in days / 365), and those inside the window after a
//!   planned change are counted apart as well (they are the "must not alert" cases);
//! - precision = reported events that overlap a label / reported events; recall = found /
//!   labelled; F1 their harmonic mean. A long run that covers two labels finds both.
//!
//! Runs, not days, are counted, because an operator is paged once per run; [`KindCounts`] also
//! keeps the flagged days outside any window, for a stricter reading.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::cost::{Config, detect, detect_planned};
use crate::synthetic::LabelledSeries;

pub type Event = (NaiveDate, NaiveDate);

/// What a labelled event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// One to a few days far above the usual.
    Spike,
    /// A new, higher level that stays.
    Shift,
    /// A cost growing a few percent a day for weeks.
    Leak,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Spike => "spike",
            EventKind::Shift => "level shift",
            EventKind::Leak => "slow leak",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EventCounts {
    pub labelled: usize,
    pub found: usize,
    pub reported: usize,
    pub false_alerts: usize,
    pub series_years: f64,
}

impl EventCounts {
    pub fn precision(&self) -> f64 {
        if self.reported == 0 {
            1.0
        } else {
            (self.reported - self.false_alerts) as f64 / self.reported as f64
        }
    }

    pub fn recall(&self) -> f64 {
        if self.labelled == 0 {
            1.0
        } else {
            self.found as f64 / self.labelled as f64
        }
    }

    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    pub fn false_alerts_per_series_year(&self) -> f64 {
        if self.series_years == 0.0 {
            0.0
        } else {
            self.false_alerts as f64 / self.series_years
        }
    }

    fn add(&mut self, o: &EventCounts) {
        self.labelled += o.labelled;
        self.found += o.found;
        self.reported += o.reported;
        self.false_alerts += o.false_alerts;
        self.series_years += o.series_years;
    }
}

fn overlaps(a: &Event, b: &Event) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// Counts for one series; `days` is its length, for the false-alert rate.
pub fn score_events(labels: &[Event], reported: &[Event], days: usize) -> EventCounts {
    EventCounts {
        labelled: labels.len(),
        found: labels
            .iter()
            .filter(|l| reported.iter().any(|r| overlaps(l, r)))
            .count(),
        reported: reported.len(),
        false_alerts: reported
            .iter()
            .filter(|r| !labels.iter().any(|l| overlaps(l, r)))
            .count(),
        series_years: days as f64 / 365.0,
    }
}

/// Runs the detector over every series and sums the counts.
pub fn evaluate(set: &[LabelledSeries], config: &Config) -> EventCounts {
    let mut total = EventCounts::default();
    for s in set {
        let report = detect(&s.points, config);
        let reported: Vec<Event> = report
            .anomalies
            .iter()
            .map(|a| (a.first_day, a.last_day))
            .collect();
        total.add(&score_events(&s.events, &reported, s.points.len()));
    }
    total
}

/// Counts over a labelled set, overall and per event kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KindCounts {
    pub total: EventCounts,
    /// (labelled, found) per kind.
    pub by_kind: BTreeMap<EventKind, (usize, usize)>,
    /// Planned changes in the set, and reported events that overlap a planned change's window
    /// and no label (already counted in `total.false_alerts`).
    pub planned: usize,
    pub planned_alerts: usize,
    /// Flagged days outside every labelled window.
    pub false_days: usize,
    pub series: usize,
}

impl KindCounts {
    pub fn recall_of(&self, kind: EventKind) -> Option<f64> {
        self.by_kind
            .get(&kind)
            .filter(|(l, _)| *l > 0)
            .map(|&(l, f)| f as f64 / l as f64)
    }

    pub fn false_days_per_series_year(&self) -> f64 {
        if self.total.series_years == 0.0 {
            0.0
        } else {
            self.false_days as f64 / self.total.series_years
        }
    }
}

/// Runs the detector over every series, telling it the planned changes when `tell_planned` (as
/// the service does once a tenant marks a change planned), and counts per event kind.
pub fn evaluate_kinds(set: &[LabelledSeries], config: &Config, tell_planned: bool) -> KindCounts {
    evaluate_kinds_with(set, |s| {
        let planned: &[NaiveDate] = if tell_planned { &s.planned } else { &[] };
        detect_planned(&s.points, planned, config)
            .days
            .iter()
            .filter(|d| d.anomalous)
            .map(|d| d.day)
            .collect()
    })
}

/// Counts per event kind for any detector that flags days (consecutive flagged days are one
/// reported event, as [`crate::cost::detect`] merges them).
pub fn evaluate_kinds_with(
    set: &[LabelledSeries],
    flagged_days: impl Fn(&LabelledSeries) -> Vec<NaiveDate>,
) -> KindCounts {
    let mut out = KindCounts::default();
    for s in set {
        let days = flagged_days(s);
        let mut reported: Vec<Event> = Vec::new();
        for &d in &days {
            match reported.last_mut() {
                Some(last) if last.1.succ_opt() == Some(d) => last.1 = d,
                _ => reported.push((d, d)),
            }
        }
        out.total
            .add(&score_events(&s.events, &reported, s.points.len()));
        for (event, kind) in s.events.iter().zip(&s.kinds) {
            let entry = out.by_kind.entry(*kind).or_default();
            entry.0 += 1;
            entry.1 += usize::from(reported.iter().any(|r| overlaps(event, r)));
        }
        out.planned += s.planned.len();
        out.planned_alerts += reported
            .iter()
            .filter(|r| !s.events.iter().any(|l| overlaps(l, r)))
            .filter(|r| s.quiet.iter().any(|q| overlaps(q, r)))
            .count();
        out.false_days += days
            .iter()
            .filter(|&&d| !s.events.iter().any(|l| l.0 <= d && d <= l.1))
            .count();
        out.series += 1;
    }
    out
}
