//! Month-end forecast of a daily cost series: what the month will total, with an interval.
//!
//! The run rate (month to date / days elapsed x days in the month) is wrong in predictable ways:
//! a month-start fee on the 1st is spread over every remaining day (early in the month it
//! overshoots by the fee times the remaining days over the elapsed ones), and weekends left in
//! the month are priced as weekdays. This model prices the days left one by one:
//!
//! * month total = month to date (as billed, credits and estimated days included) + the sum over
//!   the remaining days of level x weekday factor;
//! * weekday factors: median ratio of each weekday to its week's mean over up to eight recent
//!   weeks, kept only when they explain the weeks better than no pattern does;
//! * level: median of the last 14 de-seasonalised final days that are not 1sts nor credits;
//! * recurring credits are not projected (they are irregular); a 1st in the remaining days
//!   cannot occur (the month's 1st is past);
//! * interval (~90%): from the errors this same method made on the series' own past (the 90th
//!   percentile of its relative error over as many days as remain, from each of the last 120
//!   days) when there are at least 20 such origins, else from the recent spread (daily noise
//!   plus the level's own error); either is widened by a factor fitted on the cost tune sets.
//!   The backtest (`examples/forecast_eval.rs`) reports its coverage on the report sets.
//!
//! Pure like the rest of the crate: the caller passes the series and the day the forecast is made
//! on; days after it are ignored, so a forecast never looks ahead.

use chrono::{Datelike, NaiveDate};
use cloudspend_core::Money;
use serde::{Deserialize, Serialize};

use crate::cost::{CostPoint, to_f64, to_money};

/// A month-end forecast made on `as_of`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonthForecast {
    pub as_of: NaiveDate,
    /// Billed from the 1st to `as_of`, both included.
    pub month_to_date: Money,
    /// The month's expected total, and a ~90% interval around it.
    pub total: Money,
    pub lower: Money,
    pub upper: Money,
    pub days_elapsed: u32,
    pub days_in_month: u32,
}

/// Days of history (before `as_of`) the level needs; with less, the forecast is the run rate.
pub const MIN_HISTORY_DAYS: usize = 14;
const LEVEL_DAYS: usize = 14;
const SEASON_WEEKS: usize = 8;
/// z for a two-sided 90% interval.
const Z90: f64 = 1.645;
/// The spread-only interval (young series) as the noise alone gives it covers about two
/// forecasts in three on tidy series and fewer on bills: months also hold spikes, leaks, shifts,
/// credits and autocorrelated noise, which a fortnight's spread does not see. Widened by the
/// factor that made it cover 90% of the actual totals on the cost TUNE sets (3.98 when it was
/// the only interval), rounded.
const INTERVAL_INFLATION: f64 = 4.0;
/// Spread floor, as a share of the level: a fixed fee does not have zero uncertainty.
const MIN_RELATIVE_SPREAD: f64 = 0.02;

pub fn days_in_month(day: NaiveDate) -> u32 {
    let first = day.with_day(1).expect("day 1 exists");
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .expect("in range");
    (next - first).num_days() as u32
}

/// The run rate: month to date / days elapsed x days in the month.
pub fn run_rate(points: &[CostPoint], as_of: NaiveDate) -> Money {
    let (mtd, elapsed, days) = month_to_date(points, as_of);
    Money::from_nanos(((mtd.nanos() as i128 * days as i128) / elapsed as i128) as i64)
}

fn month_to_date(points: &[CostPoint], as_of: NaiveDate) -> (Money, u32, u32) {
    let first = as_of.with_day(1).expect("day 1 exists");
    let mtd = points
        .iter()
        .filter(|p| p.day >= first && p.day <= as_of)
        .map(|p| p.amount)
        .sum();
    (mtd, as_of.day(), days_in_month(as_of))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Daily amounts from `start` to `as_of` (sums of duplicate days; missing days are zero), and
/// which of them a baseline may use (final, not a 1st, not negative).
fn daily(points: &[CostPoint], as_of: NaiveDate) -> Option<(NaiveDate, Vec<f64>, Vec<bool>)> {
    let start = points.iter().map(|p| p.day).filter(|&d| d <= as_of).min()?;
    let n = (as_of - start).num_days() as usize + 1;
    let mut amount = vec![0.0; n];
    let mut estimated = vec![false; n];
    for p in points.iter().filter(|p| p.day <= as_of) {
        let i = (p.day - start).num_days() as usize;
        amount[i] += to_f64(p.amount);
        estimated[i] |= p.estimated;
    }
    let usable = (0..n)
        .map(|i| {
            let day = start + chrono::Days::new(i as u64);
            !estimated[i] && day.day() != 1 && amount[i] >= 0.0
        })
        .collect();
    Some((start, amount, usable))
}

/// Weekday factors (Monday first) from up to eight recent weeks, or all ones.
fn weekday_factors(start: NaiveDate, amount: &[f64], usable: &[bool]) -> [f64; 7] {
    let n = amount.len();
    let weeks = (n / 7).min(SEASON_WEEKS);
    if weeks < 3 {
        return [1.0; 7];
    }
    let mut ratios: [Vec<f64>; 7] = Default::default();
    for b in 0..weeks {
        let block = n - 7 * (b + 1)..n - 7 * b;
        let vals: Vec<f64> = block
            .clone()
            .filter(|&i| usable[i])
            .map(|i| amount[i])
            .collect();
        if vals.len() < 5 {
            continue;
        }
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        if mean <= 0.0 {
            continue;
        }
        for i in block.filter(|&i| usable[i]) {
            let dow = (start + chrono::Days::new(i as u64))
                .weekday()
                .num_days_from_monday() as usize;
            ratios[dow].push(amount[i] / mean);
        }
    }
    if ratios.iter().any(|r| r.len() < 2) {
        return [1.0; 7];
    }
    let mut season = [1.0; 7];
    for (s, r) in season.iter_mut().zip(ratios.iter_mut()) {
        *s = median(r).max(0.0);
    }
    let mean = season.iter().sum::<f64>() / 7.0;
    if mean <= 0.0 || season.contains(&0.0) {
        return [1.0; 7];
    }
    season.iter_mut().for_each(|s| *s /= mean);
    // Kept only when it explains the weeks better than no pattern does.
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for (d, r) in ratios.iter().enumerate() {
        for &x in r {
            with.push((x / season[d] - 1.0).abs());
            without.push((x - 1.0).abs());
        }
    }
    if median(&mut with) < 0.8 * median(&mut without) {
        season
    } else {
        [1.0; 7]
    }
}

/// The month-end forecast for the month of `as_of`, from the days up to `as_of` (later days are
/// ignored). `None` when no day up to `as_of` exists. With fewer than [`MIN_HISTORY_DAYS`]
/// usable days the total is the run rate, with an interval of +/- 50% of the remaining days'
/// share, since nothing better is known.
pub fn forecast_month(points: &[CostPoint], as_of: NaiveDate) -> Option<MonthForecast> {
    let (start, amount, usable) = daily(points, as_of)?;
    let (mtd, elapsed, days) = month_to_date(points, as_of);
    let remaining: Vec<NaiveDate> = (1..=(days - elapsed) as u64)
        .map(|k| as_of + chrono::Days::new(k))
        .collect();
    let n = amount.len();
    let dow = |i: usize| {
        (start + chrono::Days::new(i as u64))
            .weekday()
            .num_days_from_monday() as usize
    };
    let recent: Vec<usize> = (0..n)
        .rev()
        .filter(|&i| usable[i])
        .take(LEVEL_DAYS)
        .collect();
    let base = MonthForecast {
        as_of,
        month_to_date: mtd,
        total: mtd,
        lower: mtd,
        upper: mtd,
        days_elapsed: elapsed,
        days_in_month: days,
    };
    if remaining.is_empty() {
        return Some(base);
    }
    if recent.len() < MIN_HISTORY_DAYS.min(LEVEL_DAYS) {
        let total = run_rate(points, as_of);
        let rest = to_f64(total - mtd).max(0.0);
        return Some(MonthForecast {
            total,
            lower: to_money(to_f64(mtd) + 0.5 * rest),
            upper: to_money(to_f64(mtd) + 1.5 * rest),
            ..base
        });
    }
    let season = weekday_factors(start, &amount, &usable);
    let mut z: Vec<f64> = recent.iter().map(|&i| amount[i] / season[dow(i)]).collect();
    let level = median(&mut z.clone());
    let mut dev: Vec<f64> = z.iter_mut().map(|x| (*x - level).abs()).collect();
    let spread = (1.4826 * median(&mut dev)).max(MIN_RELATIVE_SPREAD * level.abs());
    let weights: Vec<f64> = remaining
        .iter()
        .map(|d| season[d.weekday().num_days_from_monday() as usize])
        .collect();
    let rest: f64 = weights.iter().map(|w| level * w).sum();
    // Independent daily noise, plus the level's own error, which every remaining day shares
    // (the standard error of a median is about 1.25 sigma / sqrt(n)).
    let daily_var: f64 = weights.iter().map(|w| (spread * w).powi(2)).sum();
    let level_sd = 1.25 * spread / (recent.len() as f64).sqrt() * weights.iter().sum::<f64>();
    let noise_half = Z90 * (daily_var + level_sd * level_sd).sqrt();
    // The errors this method made on the series' own past, when there is enough of it: they
    // see what the noise alone does not (autocorrelation, steps, credits).
    let past = past_errors(start, &amount, &usable, &season, remaining.len());
    let half = if past.len() >= MIN_PAST_ORIGINS {
        let mut abs: Vec<f64> = past.iter().map(|e| e.abs()).collect();
        abs.sort_by(f64::total_cmp);
        let q90 = abs[abs.len() * 9 / 10];
        PAST_INFLATION * noise_half.max(q90 * rest)
    } else {
        INTERVAL_INFLATION * noise_half
    };
    let total = to_f64(mtd) + rest;
    Some(MonthForecast {
        total: to_money(total),
        lower: to_money(total - half),
        upper: to_money(total + half),
        ..base
    })
}

/// Past forecast origins needed before their errors set the interval.
const MIN_PAST_ORIGINS: usize = 20;
/// How far back origins are taken.
const PAST_ORIGINS: usize = 120;
/// The interval from past errors, widened by the factor that makes it cover 90% of the actual
/// totals on the cost TUNE sets (`forecast_eval -- --tune`).
const PAST_INFLATION: f64 = 1.3;

/// Relative errors of this method's level x weekday factor over the `r` days that followed
/// each of the last [`PAST_ORIGINS`] days of the series (usable days only, as the level is).
fn past_errors(
    start: NaiveDate,
    amount: &[f64],
    usable: &[bool],
    season: &[f64; 7],
    r: usize,
) -> Vec<f64> {
    let n = amount.len();
    let dow = |i: usize| {
        (start + chrono::Days::new(i as u64))
            .weekday()
            .num_days_from_monday() as usize
    };
    let mut out = Vec::new();
    let last = n.saturating_sub(r);
    for o in last.saturating_sub(PAST_ORIGINS)..last {
        let mut z: Vec<f64> = (0..o)
            .rev()
            .filter(|&i| usable[i])
            .take(LEVEL_DAYS)
            .map(|i| amount[i] / season[dow(i)])
            .collect();
        if z.len() < LEVEL_DAYS {
            continue;
        }
        let level = median(&mut z);
        let (mut predicted, mut actual) = (0.0, 0.0);
        for j in (o..o + r).filter(|&j| usable[j]) {
            predicted += level * season[dow(j)];
            actual += amount[j];
        }
        if predicted > 0.0 {
            out.push((actual - predicted) / predicted);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// Weekdays 100, weekends 40, a 600 fee on every 1st, from 2024-01-01 to `end`.
    fn bill(end: NaiveDate) -> Vec<CostPoint> {
        day(2024, 1, 1)
            .iter_days()
            .take_while(|d| *d <= end)
            .map(|d| {
                let usage = if d.weekday().num_days_from_monday() >= 5 {
                    40.0
                } else {
                    100.0
                };
                let fee = if d.day() == 1 { 600.0 } else { 0.0 };
                CostPoint::new(d, to_money(usage + fee))
            })
            .collect()
    }

    fn month_total(points: &[CostPoint], y: i32, m: u32) -> Money {
        points
            .iter()
            .filter(|p| p.day.year() == y && p.day.month() == m)
            .map(|p| p.amount)
            .sum()
    }

    #[test]
    fn a_regular_bill_is_forecast_exactly_where_the_run_rate_overshoots_the_fee() {
        let points = bill(day(2024, 6, 30));
        let actual = month_total(&points, 2024, 6);
        let f = forecast_month(&points, day(2024, 6, 5)).unwrap();
        assert_eq!(f.total, actual);
        assert!(f.lower <= actual && actual <= f.upper);
        assert_eq!((f.days_elapsed, f.days_in_month), (5, 30));
        // The run rate spreads the 600 fee over the month: six times too much of it.
        let rr = run_rate(&points, day(2024, 6, 5));
        assert!(to_f64(rr) > to_f64(actual) * 1.5, "{rr}");
    }

    #[test]
    fn later_days_are_ignored() {
        let points = bill(day(2024, 6, 30));
        let cut: Vec<CostPoint> = points
            .iter()
            .copied()
            .filter(|p| p.day <= day(2024, 6, 12))
            .collect();
        assert_eq!(
            forecast_month(&points, day(2024, 6, 12)),
            forecast_month(&cut, day(2024, 6, 12))
        );
    }

    #[test]
    fn short_history_falls_back_to_the_run_rate() {
        let points = bill(day(2024, 1, 6));
        let f = forecast_month(&points, day(2024, 1, 6)).unwrap();
        assert_eq!(f.total, run_rate(&points, day(2024, 1, 6)));
        assert!(f.lower < f.total && f.total < f.upper);
        assert_eq!(forecast_month(&[], day(2024, 1, 6)), None);
    }

    #[test]
    fn on_the_last_day_the_forecast_is_the_month_to_date() {
        let points = bill(day(2024, 2, 29));
        let f = forecast_month(&points, day(2024, 2, 29)).unwrap();
        assert_eq!(f.total, month_total(&points, 2024, 2));
        assert_eq!((f.lower, f.upper), (f.total, f.total));
    }
}
