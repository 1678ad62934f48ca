//! Event-level evaluation of the cost detector: a labelled event counts as found when any reported
//! event overlaps it by at least one day; a reported event overlapping no label is a false alert.

use chrono::NaiveDate;

use crate::cost::{Config, detect};
use crate::synthetic::LabelledSeries;

pub type Event = (NaiveDate, NaiveDate);

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
