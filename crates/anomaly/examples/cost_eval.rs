//! The cost detector on labelled series from two independent generators, tune and report sets
//! apart (the procedure is in the crate README, "Cost detector: how it is judged").
//!
//! `cargo run -p cloudspend-anomaly --release --example cost_eval [-- --tune-only]`
//!
//! Prints, per set: recall per event kind, precision, recall, F1, false alerts (runs) per
//! series-year, flagged days outside every label per series-year, and alerts on planned changes,
//! with the planned days told to the detector (as the service does) and not told.

use chrono::{Datelike, NaiveDate};
use cloudspend_anomaly::eval::{EventKind, KindCounts, evaluate_kinds, evaluate_kinds_with};
use cloudspend_anomaly::synthetic::LabelledSeries;
use cloudspend_anomaly::{Config, billing, plain, synthetic};

/// The sets, fixed before any score was seen: tuning may look at the TUNE sets only. Round 1
/// reported on billing seed 9002, which has been seen since; round 2 tunes on billing seed 7001
/// as well and reports on billing seed 9003.
fn sets() -> Vec<(&'static str, bool, Vec<LabelledSeries>)> {
    let mut tune = synthetic::generate_with_leaks(101, 300, 400);
    tune.extend(synthetic::generate(102, 100, 400));
    vec![
        (
            "TUNE   synthetic seeds 101 (with leaks) + 102, 400 series",
            true,
            tune,
        ),
        (
            "TUNE   billing seed 7001, 400 bills",
            true,
            billing::generate(7001, 400, 365),
        ),
        (
            "REPORT synthetic seed 9001 (with leaks), 300 series",
            false,
            synthetic::generate_with_leaks(9001, 300, 400),
        ),
        (
            "SEEN   billing seed 9002 (round 1 report), 400 bills",
            false,
            billing::generate(9002, 400, 365),
        ),
        (
            "REPORT billing seed 9003, 400 bills",
            false,
            billing::generate(9003, 400, 365),
        ),
        (
            "TUNE   plain seed 7005, 300 series",
            true,
            plain::generate(7005, 300),
        ),
        (
            "REPORT plain seed 9005, 300 series",
            false,
            plain::generate(9005, 300),
        ),
    ]
}

fn row(name: &str, c: &KindCounts) {
    let kinds = [EventKind::Spike, EventKind::Shift, EventKind::Leak]
        .iter()
        .map(|&k| {
            let (l, f) = c.by_kind.get(&k).copied().unwrap_or_default();
            match c.recall_of(k) {
                Some(r) => format!("{:>6} {f:>3}/{l:<3} {r:.3}", k.as_str()),
                None => format!("{:>6} -", k.as_str()),
            }
        })
        .collect::<Vec<_>>()
        .join(" | ");
    println!(
        "  {name:<32} P {:.3} R {:.3} F1 {:.3} | false alerts/series-year {:.3} (days {:.3}) | planned {} alerted {} | {kinds}",
        c.total.precision(),
        c.total.recall(),
        c.total.f1(),
        c.total.false_alerts_per_series_year(),
        c.false_days_per_series_year(),
        c.planned,
        c.planned_alerts,
    );
}

fn main() {
    // `--tune-only` while tuning, so the report sets' scores are not seen before the choice.
    let tune_only = std::env::args().any(|a| a == "--tune-only");
    if std::env::args().any(|a| a == "--sweep") {
        return sweep();
    }
    if std::env::args().any(|a| a == "--explain") {
        let which = std::env::args()
            .nth(2)
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        return explain(which);
    }
    let config = Config::default();
    for (name, tune, set) in sets() {
        if tune_only && !tune {
            continue;
        }
        let events: usize = set.iter().map(|s| s.events.len()).sum();
        println!("{name}: {} series, {events} labelled events", set.len());
        row("planned told", &evaluate_kinds(&set, &config, true));
        row("planned untold", &evaluate_kinds(&set, &config, false));
        row(
            "same-weekday baseline",
            &evaluate_kinds_with(&set, same_weekday_baseline),
        );
    }
}

/// The tune set under neighbouring settings of the constants chosen on it.
fn sweep() {
    let tune: Vec<_> = sets().into_iter().filter(|s| s.1).collect();
    for (name, _, set) in tune {
        println!("{name}");
        sweep_one(&set);
    }
}

fn sweep_one(set: &[LabelledSeries]) {
    for sensitivity in [4.5, 5.0, 5.5] {
        for min_relative_spread in [0.01, 0.02, 0.03] {
            for (rise, noise) in [(0.0, 0.0), (0.10, 2.5), (0.15, 3.0)] {
                let config = Config {
                    sensitivity,
                    min_relative_spread,
                    drift_min_rise: rise,
                    drift_noise_factor: noise,
                    ..Config::default()
                };
                row(
                    &format!("k {sensitivity} floor {min_relative_spread} drift {rise}/{noise}"),
                    &evaluate_kinds(set, &config, true),
                );
            }
        }
    }
}

/// Where the tune set's false alerts and misses are (`--explain`).
fn explain(which: usize) {
    let (_, tune, set) = sets().swap_remove(which);
    assert!(tune, "only tune sets are explained");
    for s in &set {
        let report = cloudspend_anomaly::detect_planned(&s.points, &s.planned, &Config::default());
        let hit =
            |a: &(chrono::NaiveDate, chrono::NaiveDate),
             b: &(chrono::NaiveDate, chrono::NaiveDate)| a.0 <= b.1 && b.0 <= a.1;
        for a in &report.anomalies {
            let r = (a.first_day, a.last_day);
            if !s.events.iter().any(|l| hit(l, &r)) {
                println!(
                    "FALSE {} {:?} score {:.1} impact {} {:?}",
                    s.name, r, a.score, a.impact, s.traits
                );
            }
        }
        for (l, k) in s.events.iter().zip(&s.kinds) {
            if !report
                .anomalies
                .iter()
                .any(|a| hit(l, &(a.first_day, a.last_day)))
            {
                let d = report.days.iter().find(|d| d.day == l.0).unwrap();
                println!(
                    "MISS  {} {:?} {:?} actual {} expected {:?} upper {:?} {:?} {:?}",
                    s.name, k, l, d.actual, d.expected, d.upper, d.status, s.traits
                );
            }
        }
    }
}

/// The reference: a same-weekday robust baseline. A final day (not a 1st, not negative)
/// is flagged when it exceeds the median of the same weekday over the four weeks before by more
/// than four robust standard deviations (1.4826 x the median absolute deviation of the last 28
/// days from their own same-weekday medians) and clears the default minimum impact ($10 and 10%).
/// Planned changes are not told to it.
fn same_weekday_baseline(s: &LabelledSeries) -> Vec<NaiveDate> {
    let Some(start) = s.points.iter().map(|p| p.day).min() else {
        return Vec::new();
    };
    let n = s
        .points
        .iter()
        .map(|p| (p.day - start).num_days() as usize)
        .max()
        .unwrap_or(0)
        + 1;
    let mut x = vec![f64::NAN; n];
    for p in s.points.iter().filter(|p| !p.estimated) {
        let a = p.amount.nanos() as f64 / 1e9;
        let day = p.day;
        if a >= 0.0 && day.day() != 1 {
            let i = (day - start).num_days() as usize;
            x[i] = if x[i].is_nan() { a } else { x[i] + a };
        }
    }
    let median = |mut v: Vec<f64>| -> Option<f64> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let m = v.len() / 2;
        Some(if v.len() % 2 == 1 {
            v[m]
        } else {
            (v[m - 1] + v[m]) / 2.0
        })
    };
    let expected = |t: usize| -> Option<f64> {
        let v: Vec<f64> = (1..=4)
            .filter_map(|w| t.checked_sub(7 * w))
            .map(|i| x[i])
            .filter(|v| !v.is_nan())
            .collect();
        (v.len() >= 3).then(|| median(v)).flatten()
    };
    let mut out = Vec::new();
    for t in 56..n {
        let (Some(e), false) = (expected(t), x[t].is_nan()) else {
            continue;
        };
        let dev: Vec<f64> = (t - 28..t)
            .filter(|&i| !x[i].is_nan())
            .filter_map(|i| expected(i).map(|e| (x[i] - e).abs()))
            .collect();
        let Some(mad) = median(dev) else { continue };
        let sigma = (1.4826 * mad).max(0.01 * e);
        let impact = x[t] - e;
        if x[t] > e + 4.0 * sigma && impact >= 10.0 && (e <= 0.0 || impact >= 0.1 * e) {
            out.push(start + chrono::Days::new(t as u64));
        }
    }
    out
}
