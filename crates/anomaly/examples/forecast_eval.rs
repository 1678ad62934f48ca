//! Backtest of the month-end forecast against the run rate.
//!
//! `cargo run -p cloudspend-anomaly --release --example forecast_eval [-- --tune]`
//!
//! For every complete month of every evaluation series (the cost report sets of `cost_eval`,
//! and a series shaped like the demo tenant's bill), forecasts are made on days 5, 10, 15, 20
//! and 25 from the days up to then, and compared with the month's actual total: mean absolute
//! percentage error (months whose total is under $1 are left out: a percentage of nothing means
//! nothing) of our forecast and of the run rate, and how often the actual total falls inside our
//! ~90% interval. Events (spikes, leaks, shifts) are left in the series: forecasts meet them too.

use chrono::{Datelike, NaiveDate, Weekday};
use cloudspend_anomaly::CostPoint;
use cloudspend_anomaly::forecast::{forecast_month, run_rate};
use cloudspend_anomaly::synthetic::Rng;
use cloudspend_anomaly::{billing, synthetic};
use cloudspend_core::Money;

const DAYS: [u32; 5] = [5, 10, 15, 20, 25];

#[derive(Default, Clone, Copy)]
struct Tally {
    n: usize,
    ape_model: f64,
    ape_run_rate: f64,
    covered: usize,
    /// Sum of the interval's half-width over the actual total.
    width: f64,
}

fn to_f64(m: Money) -> f64 {
    m.nanos() as f64 / 1e9
}

/// The demo tenant's total bill as `crates/cloudspend/src/demo_data.rs` shapes it (eight
/// services over three accounts, weekends at 0.78 for compute and 0.92 otherwise, +/-4% noise,
/// 1.5% growth a month, a $175 support fee on the 1st, one $250 credit, its planted spikes and
/// S3 step), over 395 days; re-made here since this crate cannot depend on the binary's.
fn demo_like() -> Vec<CostPoint> {
    let services = [118.0, 46.0, 17.5, 7.2, 9.1, 3.8, 5.6, 11.2];
    let accounts = [1.0, 0.45, 0.3];
    let start = NaiveDate::from_ymd_opt(2025, 10, 31).expect("valid");
    let mut rng = Rng::new(20261130);
    (0..396u64)
        .map(|t| {
            let day = start + chrono::Days::new(t);
            let ago = 395 - t as i64;
            let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
            let growth = 1.0 + 0.015 * t as f64 / 30.0;
            let mut total = 0.0;
            for (a, scale) in accounts.iter().enumerate() {
                for (s, base) in services.iter().enumerate() {
                    let seasonal = match (weekend, s) {
                        (true, 0) => 0.78,
                        (true, _) => 0.92,
                        _ => 1.0,
                    };
                    let mut x =
                        base * scale * growth * seasonal * (1.0 + (rng.unit() - 0.5) * 0.08);
                    if a == 1 && s == 0 && (38..=40).contains(&ago) {
                        x *= 3.4;
                    }
                    if s == 2 && ago <= 60 {
                        x *= 1.6;
                    }
                    if a == 0 && s == 7 && ago == 9 {
                        x *= 6.0;
                    }
                    total += x;
                }
                if day.day() == 1 {
                    total += 100.0 * scale;
                }
            }
            if ago == 75 {
                total -= 250.0;
            }
            CostPoint::new(
                day,
                Money::from_nanos((total * 100.0).round() as i64 * 10_000_000),
            )
        })
        .collect()
}

/// Complete months of a series that has final amounts on every day of them.
fn months(points: &[CostPoint]) -> Vec<NaiveDate> {
    let (Some(first), Some(last)) = (
        points.iter().map(|p| p.day).min(),
        points.iter().filter(|p| !p.estimated).map(|p| p.day).max(),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut m = first.with_day(1).expect("day 1");
    if m < first {
        m = m
            .checked_add_months(chrono::Months::new(1))
            .expect("in range");
    }
    while let Some(next) = m.checked_add_months(chrono::Months::new(1)) {
        if next - chrono::Days::new(1) > last {
            break;
        }
        out.push(m);
        m = next;
    }
    out
}

fn backtest(series: &[Vec<CostPoint>]) -> [Tally; 5] {
    let mut tally = [Tally::default(); 5];
    for points in series {
        for month in months(points) {
            let actual: f64 = points
                .iter()
                .filter(|p| p.day.year() == month.year() && p.day.month() == month.month())
                .map(|p| to_f64(p.amount))
                .sum();
            if actual < 1.0 {
                continue;
            }
            for (k, &d) in DAYS.iter().enumerate() {
                let as_of = month.with_day(d).expect("day exists");
                let Some(f) = forecast_month(points, as_of) else {
                    continue;
                };
                let t = &mut tally[k];
                t.n += 1;
                t.ape_model += (to_f64(f.total) - actual).abs() / actual;
                t.ape_run_rate += (to_f64(run_rate(points, as_of)) - actual).abs() / actual;
                t.covered += usize::from(to_f64(f.lower) <= actual && actual <= to_f64(f.upper));
                t.width += (to_f64(f.upper) - to_f64(f.lower)) / 2.0 / actual;
            }
        }
    }
    tally
}

fn print(name: &str, tally: &[Tally; 5]) {
    println!("{name}");
    println!(
        "  day | forecasts | MAPE ours | MAPE run rate | 90% interval coverage | mean half-width"
    );
    let mut all = Tally::default();
    for (d, t) in DAYS.iter().zip(tally) {
        println!(
            "  {d:>3} | {:>9} | {:>8.2}% | {:>12.2}% | {:>6.1}% | {:>6.1}%",
            t.n,
            100.0 * t.ape_model / t.n as f64,
            100.0 * t.ape_run_rate / t.n as f64,
            100.0 * t.covered as f64 / t.n as f64,
            100.0 * t.width / t.n as f64
        );
        all.n += t.n;
        all.ape_model += t.ape_model;
        all.ape_run_rate += t.ape_run_rate;
        all.covered += t.covered;
        all.width += t.width;
    }
    println!(
        "  all | {:>9} | {:>8.2}% | {:>12.2}% | {:>6.1}% | {:>6.1}%",
        all.n,
        100.0 * all.ape_model / all.n as f64,
        100.0 * all.ape_run_rate / all.n as f64,
        100.0 * all.covered as f64 / all.n as f64,
        100.0 * all.width / all.n as f64
    );
}

/// `--tune`: on the cost TUNE sets only, how many times its half-width the interval would need
/// to cover 90% of the actual totals (the 90th percentile of |actual - forecast| / half-width).
fn tune(series: &[Vec<CostPoint>]) {
    let mut r = Vec::new();
    for points in series {
        for month in months(points) {
            let actual: f64 = points
                .iter()
                .filter(|p| p.day.year() == month.year() && p.day.month() == month.month())
                .map(|p| to_f64(p.amount))
                .sum();
            if actual < 1.0 {
                continue;
            }
            for &d in &DAYS {
                let as_of = month.with_day(d).expect("day exists");
                if let Some(f) = forecast_month(points, as_of) {
                    let half = to_f64(f.upper) - to_f64(f.total);
                    if half > 0.0 {
                        r.push((actual - to_f64(f.total)).abs() / half);
                    }
                }
            }
        }
    }
    r.sort_by(f64::total_cmp);
    println!(
        "{} forecasts: 90th percentile of |error| / half-width = {:.2}",
        r.len(),
        r[r.len() * 9 / 10]
    );
}

fn main() {
    let points = |set: Vec<synthetic::LabelledSeries>| -> Vec<Vec<CostPoint>> {
        set.into_iter().map(|s| s.points).collect()
    };
    if std::env::args().any(|a| a == "--tune") {
        let mut set = points(synthetic::generate_with_leaks(101, 300, 400));
        set.extend(points(synthetic::generate(102, 100, 400)));
        set.extend(points(billing::generate(7001, 400, 365)));
        return tune(&set);
    }
    print(
        "synthetic seed 9001 (300 series x 400 days)",
        &backtest(&points(synthetic::generate_with_leaks(9001, 300, 400))),
    );
    print(
        "billing seed 9003 (400 bills x up to 365 days)",
        &backtest(&points(billing::generate(9003, 400, 365))),
    );
    print("demo-like bill (395 days)", &backtest(&[demo_like()]));
}
