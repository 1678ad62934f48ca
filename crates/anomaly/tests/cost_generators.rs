//! The cost detector on small slices of the three labelled generators (the full tune and report
//! sets are `examples/cost_eval.rs`): floors a little under the figures measured when written, so
//! a change that loses leaks, shifts or precision on any generator fails here first. Seeds are
//! the TUNE seeds: tests are not where report figures come from.

use cloudspend_anomaly::eval::{EventKind, KindCounts, evaluate_kinds};
use cloudspend_anomaly::synthetic::LabelledSeries;
use cloudspend_anomaly::{Config, billing, plain, synthetic};

fn counts(set: &[LabelledSeries]) -> KindCounts {
    evaluate_kinds(set, &Config::default(), true)
}

fn assert_floor(name: &str, c: &KindCounts, f1: f64, false_alerts: f64, leaks: f64) {
    assert!(c.total.labelled >= 50, "{name}: too few events {c:?}");
    assert!(
        c.total.f1() >= f1,
        "{name}: F1 {:.3} < {f1}: {c:?}",
        c.total.f1()
    );
    assert!(
        c.total.false_alerts_per_series_year() <= false_alerts,
        "{name}: {:.3} false alerts per series-year: {c:?}",
        c.total.false_alerts_per_series_year()
    );
    let leak = c.recall_of(EventKind::Leak).unwrap_or(1.0);
    assert!(leak >= leaks, "{name}: leak recall {leak:.3}: {c:?}");
    assert_eq!(
        c.planned_alerts, 0,
        "{name}: a planned change alerted: {c:?}"
    );
}

#[test]
fn synthetic_with_leaks_slice_keeps_its_figures() {
    let c = counts(&synthetic::generate_with_leaks(101, 120, 400));
    assert_floor("synthetic", &c, 0.95, 0.1, 0.9);
}

#[test]
fn billing_slice_keeps_its_figures() {
    let c = counts(&billing::generate(7001, 150, 365));
    assert_floor("billing", &c, 0.92, 0.3, 0.9);
}

#[test]
fn plain_slice_keeps_its_figures() {
    let c = counts(&plain::generate(7005, 150));
    assert_floor("plain", &c, 0.9, 0.2, 0.8);
}

#[test]
fn generators_are_deterministic() {
    let same = |a: &[LabelledSeries], b: &[LabelledSeries]| {
        a.iter()
            .zip(b)
            .all(|(x, y)| x.points == y.points && x.events == y.events && x.planned == y.planned)
    };
    assert!(same(
        &billing::generate(3, 5, 200),
        &billing::generate(3, 5, 200)
    ));
    assert!(same(&plain::generate(3, 5), &plain::generate(3, 5)));
    assert!(same(
        &synthetic::generate_with_leaks(3, 5, 200),
        &synthetic::generate_with_leaks(3, 5, 200)
    ));
}
