//! Where "now" comes from. The rules that depend on the date (the month to date and its
//! forecast, the default report windows, the days an anomaly pass looks at) read it from a
//! [`Clock`] their caller owns, so a test can pin the date and hour and cover a month start, a
//! new year or a daylight-saving change instead of whatever day it happens to run on.

use chrono::{DateTime, NaiveDate, Utc};

/// The system clock, or one pinned to an instant (tests). All dates are UTC days: AWS bills
/// by UTC day, so no rule here depends on a time zone or its daylight-saving changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    fixed: Option<DateTime<Utc>>,
}

impl Clock {
    pub fn system() -> Self {
        Self { fixed: None }
    }

    /// A clock that always reads `at`.
    pub fn fixed(at: DateTime<Utc>) -> Self {
        Self { fixed: Some(at) }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.fixed.unwrap_or_else(Utc::now)
    }

    /// Today's UTC date.
    pub fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_reads_its_instant_and_the_system_clock_moves() {
        let at = "2026-12-05T14:53:00Z".parse::<DateTime<Utc>>().unwrap();
        let clock = Clock::fixed(at);
        assert_eq!(
            (clock.now(), clock.today().to_string()),
            (at, "2026-12-05".into())
        );
        assert!(Clock::system().now() > at - chrono::Duration::days(3650));
    }
}
