//! The month-end forecast the dashboard and the budget show: one method, stated in words.
//!
//! Days before today are actual spend; today is never final (Cost Explorer's figure for it is a
//! partial estimate), so it and every later day of the month are forecast by
//! [`cloudspend_anomaly::forecast::forecast_month`] made as of the day before: each day left is
//! priced at the series' recent level times its weekday's share, a fee on the 1st is not spread
//! over the month, and a ~90% interval comes from the errors the same method made on the series'
//! own past (backtested in the anomaly crate's README: mean absolute percentage error about half
//! the run rate's). With fewer than [`MIN_HISTORY_DAYS`] final days of history it is the run
//! rate, as nothing better is known. On the 1st (and whenever no earlier day of the month has
//! data) there is no final day to forecast from, so today's partial figure counts as spent.

use std::collections::BTreeMap;

use chrono::{Datelike, Days, NaiveDate};
use cloudspend_anomaly::CostPoint;
use cloudspend_anomaly::forecast::{MIN_HISTORY_DAYS, forecast_month};
use cloudspend_core::Money;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthForecast {
    /// YYYY-MM
    pub month: String,
    /// The month's spend so far, today's partial figure included.
    pub month_to_date: Money,
    pub forecast: Money,
    /// The ~90% interval around `forecast`; both equal it once the month is over.
    pub lower: Money,
    pub upper: Money,
    pub method: String,
}

/// Days of daily totals before the forecast day that the forecast reads: the interval looks at
/// the method's errors from each of the last 120 days over up to a month, each from the 14 final
/// days before it, and the weekday shares at 8 weeks. Every caller reads (at least) this much
/// from [`history_from`] and the forecast ignores anything older, so the dashboard and the budget
/// always agree.
pub const HISTORY_DAYS: u64 = 210;

/// The first day the forecast for the month of `last_day` may read.
pub fn history_from(last_day: NaiveDate) -> NaiveDate {
    days_before(month_start(last_day))
}

fn days_before(day: NaiveDate) -> NaiveDate {
    day.checked_sub_days(Days::new(HISTORY_DAYS))
        .unwrap_or(NaiveDate::MIN)
}

pub fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).expect("day 1 exists")
}

pub fn month_end(day: NaiveDate) -> NaiveDate {
    let next = if day.month() == 12 {
        NaiveDate::from_ymd_opt(day.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(day.year(), day.month() + 1, 1)
    }
    .expect("valid month");
    next - Days::new(1)
}

/// The forecast for the month of `last_day` (the last day a window shows), from daily totals
/// (`day -> (amount, estimated)`), as of `today`.
pub fn month_forecast(
    totals: &BTreeMap<NaiveDate, (Money, bool)>,
    last_day: NaiveDate,
    today: NaiveDate,
) -> MonthForecast {
    let start = month_start(last_day);
    let end = month_end(last_day);
    let month = format!("{:04}-{:02}", last_day.year(), last_day.month());
    let sum = |from: NaiveDate, to_inclusive: NaiveDate| -> Money {
        if to_inclusive < from {
            return Money::ZERO;
        }
        totals
            .range(from..=to_inclusive)
            .map(|(_, (a, _))| *a)
            .sum()
    };
    let month_to_date = sum(start, last_day.min(today));
    let exact = |forecast: Money, method: &str| MonthForecast {
        month: month.clone(),
        month_to_date,
        forecast,
        lower: forecast,
        upper: forecast,
        method: method.to_string(),
    };
    if end < today {
        return exact(sum(start, end), "the month is over: actual cost");
    }
    if totals.range(start..=last_day.min(today)).next().is_none() {
        return exact(month_to_date, "no cost data for this month yet");
    }
    // The first day forecast rather than taken as spent: today, or the day after the window.
    let cutoff = (last_day + Days::new(1)).min(today);
    let from_final_days = (cutoff > start)
        .then(|| cutoff - Days::new(1))
        .filter(|as_of| totals.range(start..=*as_of).next().is_some());
    let (as_of, partial_counted) = match from_final_days {
        Some(as_of) => (as_of, false),
        None => (last_day.min(today), true),
    };
    let history: Vec<CostPoint> = totals
        .range(days_before(as_of)..=as_of)
        .map(|(&day, &(amount, estimated))| CostPoint {
            day,
            amount,
            estimated,
        })
        .collect();
    let f = forecast_month(&history, as_of).expect("the month has a day up to as_of");
    // Spent is spent: the days left are not forecast below nothing (credits are not projected).
    let lower = f.lower.max(f.month_to_date);
    let upper = f.upper.max(lower);
    MonthForecast {
        month,
        month_to_date,
        forecast: f.total.round_to_cents(),
        lower: lower.round_to_cents(),
        upper: upper.round_to_cents(),
        method: method(&history, as_of, f, partial_counted),
    }
}

fn plural(n: u32, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// The forecast in words: what is counted as spent, how the days left are priced.
fn method(
    history: &[CostPoint],
    as_of: NaiveDate,
    f: cloudspend_anomaly::forecast::MonthForecast,
    partial_counted: bool,
) -> String {
    let left = plural(f.days_in_month - f.days_elapsed, "day");
    let spent = format!(
        "spend to {as_of} ({}){}",
        f.month_to_date.round_to_cents(),
        if partial_counted {
            ", today's partial figure counted as spent as no earlier day of the month has a figure"
        } else {
            ""
        }
    );
    let today = if partial_counted {
        ""
    } else {
        ", today included (its figure is partial)"
    };
    if usable_days(history, as_of) < MIN_HISTORY_DAYS {
        format!(
            "run rate, with under {MIN_HISTORY_DAYS} final days of history: {spent} over {} \
             times the {} of the month, for the {left} left{today}; 90% interval: half to one \
             and a half times the days left",
            plural(f.days_elapsed, "day"),
            plural(f.days_in_month, "day"),
        )
    } else {
        format!(
            "{spent} plus the {left} left{today}, each at the recent daily level times its \
             weekday's share, a fee on the 1st not spread over them; 90% interval from this \
             forecast's past errors on the series"
        )
    }
}

/// Days up to `as_of` the forecast's level may learn from, counted as
/// [`forecast_month`] counts them: final, not a 1st, not a credit; a day without data cost
/// nothing and counts.
fn usable_days(history: &[CostPoint], as_of: NaiveDate) -> usize {
    let Some(first) = history.first().map(|p| p.day) else {
        return 0;
    };
    first
        .iter_days()
        .take_while(|d| *d <= as_of)
        .filter(|d| {
            d.day() != 1
                && history
                    .binary_search_by_key(d, |p| p.day)
                    .map_or(true, |i| {
                        !history[i].estimated && history[i].amount >= Money::ZERO
                    })
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, day).unwrap()
    }

    fn m(s: &str) -> Money {
        s.parse().unwrap()
    }

    /// $10 a final day through the 28th, an estimated $3 on the 29th, a partial $1 today (30th).
    fn november() -> BTreeMap<NaiveDate, (Money, bool)> {
        let mut t: BTreeMap<_, _> = (1..=28).map(|day| (d(11, day), (m("10"), false))).collect();
        t.insert(d(11, 29), (m("3"), true));
        t.insert(d(11, 30), (m("1"), true));
        t
    }

    #[test]
    fn the_last_day_of_the_month_is_forecast_not_taken_as_complete() {
        let f = month_forecast(&november(), d(11, 30), d(11, 30));
        assert_eq!(f.month_to_date, m("284"));
        // 280 + 3 spent through the 29th, then today at the $10 level.
        assert_eq!(f.forecast, m("293"));
        assert!(f.method.contains("the 1 day left"), "{}", f.method);
        assert!(f.method.contains("today included"), "{}", f.method);
        assert!(f.lower <= f.forecast && f.forecast <= f.upper, "{f:?}");
        assert!(f.lower >= m("283"), "what is spent stays spent: {f:?}");
    }

    #[test]
    fn mid_month_the_rest_of_the_month_runs_at_the_final_days_rate() {
        let f = month_forecast(&november(), d(11, 20), d(11, 21));
        assert_eq!(f.month_to_date, m("200"));
        assert_eq!(f.forecast, m("300"));
    }

    #[test]
    fn a_month_that_is_over_is_its_actual_cost() {
        let f = month_forecast(&november(), d(11, 30), d(12, 2));
        assert_eq!(f.forecast, m("284"));
        assert_eq!(f.method, "the month is over: actual cost");
        let empty = month_forecast(&BTreeMap::new(), d(12, 1), d(12, 1));
        assert_eq!(empty.method, "no cost data for this month yet");
    }

    /// Weekdays $100, weekends $40 and a $600 fee on every 1st, final from 2026-01-01 through
    /// the day before `today`; today a partial, estimated $5.
    fn bill(today: NaiveDate) -> BTreeMap<NaiveDate, (Money, bool)> {
        let mut t: BTreeMap<_, _> = NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .iter_days()
            .take_while(|day| *day < today)
            .map(|day| {
                let usage = if day.weekday().num_days_from_monday() >= 5 {
                    40
                } else {
                    100
                };
                let fee = if day.day() == 1 { 600 } else { 0 };
                (
                    day,
                    (Money::from_nanos((usage + fee) * 1_000_000_000), false),
                )
            })
            .collect();
        t.insert(today, (m("5"), true));
        t
    }

    #[test]
    fn weekends_and_the_fee_on_the_1st_are_priced_where_the_run_rate_spread_them() {
        let today = d(6, 10);
        let f = month_forecast(&bill(today), today, today);
        // June 2026: 600 + 22 weekdays x 100 + 8 weekend days x 40, today priced as a weekday.
        assert_eq!(f.forecast, m("3120"));
        assert!(f.lower <= f.forecast && f.forecast <= f.upper, "{f:?}");
        assert!(f.upper - f.lower < m("600"), "{f:?}");
        assert!(f.method.contains("weekday"), "{}", f.method);
        assert!(f.method.contains("21 days left"), "{}", f.method);
        // The history a caller reads from `history_from` is all the forecast uses.
        let read: BTreeMap<_, _> = bill(today)
            .into_iter()
            .filter(|(day, _)| *day >= history_from(today))
            .collect();
        assert_eq!(month_forecast(&read, today, today), f);
    }

    #[test]
    fn on_the_1st_todays_partial_figure_counts_as_spent() {
        let today = d(7, 1);
        let f = month_forecast(&bill(today), today, today);
        assert_eq!(f.month, "2026-07");
        assert_eq!(f.month_to_date, m("5"));
        assert!(f.forecast > m("2000"), "{f:?}");
        assert!(f.method.contains("partial figure counted"), "{}", f.method);
    }
}
