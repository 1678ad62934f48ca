//! The month-end forecast the dashboard and the budget show: one method, stated in words.
//!
//! Days before today are actual spend; today is never final (Cost Explorer's figure for it is
//! a partial estimate), so it and every later day of the month are forecast at the run rate:
//! the average of the last 7 final days before it (estimated days still move), or of the last
//! 7 days as they are when none is final.

use std::collections::BTreeMap;

use chrono::{Datelike, Days, NaiveDate};
use cloudspend_core::Money;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthForecast {
    /// YYYY-MM
    pub month: String,
    /// The month's spend so far, today's partial figure included.
    pub month_to_date: Money,
    pub forecast: Money,
    pub method: String,
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
    if end < today {
        return MonthForecast {
            month,
            month_to_date,
            forecast: sum(start, end),
            method: "the month is over: actual cost".into(),
        };
    }
    if totals.range(start..=last_day.min(today)).next().is_none() {
        return MonthForecast {
            month,
            month_to_date,
            forecast: month_to_date,
            method: "no cost data for this month yet".into(),
        };
    }
    // The first day taken at the run rate rather than as spent.
    let cutoff = (last_day + Days::new(1)).min(today);
    let actual = sum(start, cutoff - Days::new(1));
    let remaining = (end - cutoff).num_days() + 1;
    let before = |days: u64| totals.range(cutoff - Days::new(days)..cutoff).rev();
    let finals: Vec<Money> = before(14)
        .filter(|(_, (_, estimated))| !estimated)
        .take(7)
        .map(|(_, (a, _))| *a)
        .collect();
    let recent: Vec<Money> = if finals.is_empty() {
        before(7).map(|(_, (a, _))| *a).collect()
    } else {
        finals
    };
    let rate = Money::from_nanos(
        recent.iter().map(|m| m.nanos()).sum::<i64>() / recent.len().max(1) as i64,
    );
    let forecast = (actual + Money::from_nanos(rate.nanos() * remaining)).round_to_cents();
    let today_note = if cutoff == today {
        " (today included: its figure is still partial)"
    } else {
        ""
    };
    MonthForecast {
        month,
        month_to_date,
        forecast,
        method: format!(
            "spend to {} ({}) plus the average of the last {} final day{} ({}) for each of the {} day{} left{}",
            cutoff - Days::new(1),
            actual.round_to_cents(),
            recent.len(),
            if recent.len() == 1 { "" } else { "s" },
            rate.round_to_cents(),
            remaining,
            if remaining == 1 { "" } else { "s" },
            today_note
        ),
    }
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
        // 280 + 3 spent through the 29th, then today at the $10 run rate.
        assert_eq!(f.forecast, m("293"));
        assert!(
            f.method.contains("for each of the 1 day left"),
            "{}",
            f.method
        );
        assert!(f.method.contains("today included"), "{}", f.method);
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
}
