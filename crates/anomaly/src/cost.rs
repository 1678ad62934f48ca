//! Daily cost anomaly detection for one series (tenant total, or one service / account / region).
//!
//! The model is deliberately small and robust, because it runs over every series of every tenant
//! after each collection and must be explainable on a dashboard:
//!
//! * expected = level x weekday factor (+ the learned first-of-month charge on the 1st);
//! * level = median of the last 14 clean, de-seasonalised days, extrapolated by a trend only when
//!   the trend is larger than the noise;
//! * band = expected +/- `sensitivity` robust standard deviations (MAD of recent residuals);
//! * only increases are anomalies (a cost drop is good news, and AWS Cost Anomaly Detection treats
//!   it the same way); a day is anomalous when it is above the band *and* clears the
//!   subscription's minimum impact in money and in percent.
//!
//! Everything is computed online, from days strictly before the day being scored, so a result
//! never changes when later days arrive (except estimated days, which are not scored at all).
//! Anomalous days enter the history clamped to the band, so a spike does not raise the baseline
//! for the following weeks; a level that holds for `shift_confirm_days` is accepted as the new
//! normal by rescaling the history, so a planned step change is one event, not one a day. A run
//! of zero days is an outage, not a level: it leaves history, so the recovery is not news.
//!
//! Beside the daily band:
//!
//! * a weekly test ([`Config::drift_min_rise`]) finds slow leaks and modest level shifts, which
//!   the band's level follows up and so never sees: the last week's median against the level of
//!   two to six weeks before (see `Drift`);
//! * series billed on few days (a quarter or more zero days) are judged against their billed
//!   days, not against a median of zero;
//! * fees on the 1st are learned both as an amount and as a share of the month before;
//! * [`detect_planned`] takes the days a tenant marked a change planned: a week after each is
//!   not scored ([`DayStatus::Planned`]) and the baseline restarts from the new level.
//!
//! Speed (10,000 series x 400 days must take under a second on one core): the daily level comes
//! from a small sorted window moved by one day at a time; spread and trend are refreshed weekly
//! and the weekday factors every four weeks once eight weeks of history exist.

use std::collections::VecDeque;

use chrono::{Datelike, NaiveDate};
use cloudspend_core::Money;
use serde::{Deserialize, Serialize};

/// One day of one series, as collected. `estimated` mirrors Cost Explorer's `Estimated` flag: the
/// most recent days are provisional and will be replaced, so they are never scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostPoint {
    pub day: NaiveDate,
    pub amount: Money,
    pub estimated: bool,
}

impl CostPoint {
    pub fn new(day: NaiveDate, amount: Money) -> Self {
        Self {
            day,
            amount,
            estimated: false,
        }
    }
}

/// What a subscriber considers worth an alert, as AWS offers per monitor subscription: both
/// conditions must hold, so a noisy $2/day service cannot page anyone with a +300% day.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub min_impact: Money,
    pub min_percent: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            min_impact: Money::from_nanos(10_000_000_000),
            min_percent: 10.0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub thresholds: Thresholds,
    /// Half-width of the band in robust standard deviations.
    pub sensitivity: f64,
    /// Clean history days needed before a day is scored; two weeks so every weekday is seen twice.
    pub min_history_days: usize,
    /// Consecutive days beyond the band, same direction, that make a new level accepted.
    pub shift_confirm_days: usize,
    /// Floor of the relative spread: fixed daily fees have zero variance, but a 0.5% wobble on
    /// them is not a 10-sigma event.
    pub min_relative_spread: f64,
    /// Slow leaks and level shifts: the rise (fraction) a week's median must show over the level
    /// of two to six weeks before; 0 turns the test off.
    pub drift_min_rise: f64,
    /// ... and in robust relative standard deviations of that reference.
    pub drift_noise_factor: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            thresholds: Thresholds::default(),
            sensitivity: 4.5,
            min_history_days: 14,
            shift_confirm_days: 3,
            min_relative_spread: 0.03,
            drift_min_rise: 0.15,
            drift_noise_factor: 3.0,
        }
    }
}

/// Whether the series as a whole could be judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SeriesStatus {
    Scored,
    /// Too few final, non-credit days to learn a baseline; nothing was guessed.
    InsufficientHistory {
        days: usize,
        required: usize,
    },
}

/// Why a day was or was not scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayStatus {
    Scored,
    /// Not enough history yet.
    Warmup,
    /// Provisional amount: scored once it is final.
    Estimated,
    /// A negative day (credit or refund): neither scored nor used as history.
    Credit,
    /// The 1st of the month before any earlier 1st taught us the monthly fees.
    FirstOfMonthUnlearned,
    /// Within [`PLANNED_SETTLE_DAYS`] of a change the tenant marked planned: not scored; the
    /// baseline restarts from the level these days show.
    Planned,
}

/// Days after a planned change that are not scored: the new level is read from them, then the
/// history before the change is rescaled to it (as for a level the detector accepted itself).
pub const PLANNED_SETTLE_DAYS: usize = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DayResult {
    pub day: NaiveDate,
    pub actual: Money,
    /// `None` when there was no history at all to form an expectation.
    pub expected: Option<Money>,
    pub lower: Option<Money>,
    pub upper: Option<Money>,
    /// Deviation from expected in robust standard deviations (negative below expected).
    pub score: Option<f64>,
    pub status: DayStatus,
    pub anomalous: bool,
}

/// One anomaly event: consecutive anomalous days merged. Money fields are sums over its days, and
/// `impact == actual - expected` exactly.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub expected: Money,
    pub lower: Money,
    pub upper: Money,
    pub actual: Money,
    pub impact: Money,
    /// `None` when nothing (or a credit) was expected, where a percentage means nothing.
    pub impact_percent: Option<f64>,
    /// Highest daily score in the event.
    pub score: f64,
    pub severity: Severity,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesReport {
    pub status: SeriesStatus,
    /// One entry per calendar day from the first to the last input day.
    pub days: Vec<DayResult>,
    pub anomalies: Vec<Anomaly>,
}

const HISTORY: usize = 28;
const LEVEL_WINDOW: usize = 14;
const LOOKBACK: usize = 70;
const SEASON_WEEKS: usize = 8;
/// In-sample residuals understate the error of a forecast made from them.
const OUT_OF_SAMPLE_INFLATION: f64 = 3.0;
const MAD_TO_SIGMA: f64 = 1.4826;
/// Forecast errors kept for the spread: eight weeks, so the estimate is not itself noisy.
const ERROR_WINDOW: usize = 56;
const MIN_ERRORS: usize = 14;
const FIRST_OF_MONTH_MEMORY: usize = 3;
const SEASON_REFRESH_DAYS: usize = 28;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Final,
    Estimated,
    Credit,
}

struct Densified {
    start: NaiveDate,
    amount: Vec<Money>,
    kind: Vec<Kind>,
}

/// Sorts, sums duplicate days and fills missing days with zero: a day without cost rows is a
/// day nothing was charged.
fn densify(points: &[CostPoint]) -> Option<Densified> {
    let first = points.iter().map(|p| p.day).min()?;
    let last = points.iter().map(|p| p.day).max()?;
    let n = usize::try_from((last - first).num_days()).ok()? + 1;
    let mut amount = vec![Money::ZERO; n];
    let mut estimated = vec![false; n];
    for p in points {
        let i = (p.day - first).num_days() as usize;
        amount[i] += p.amount;
        estimated[i] |= p.estimated;
    }
    let kind = amount
        .iter()
        .zip(&estimated)
        .map(|(a, &e)| {
            if e {
                Kind::Estimated
            } else if a.is_negative() {
                Kind::Credit
            } else {
                Kind::Final
            }
        })
        .collect();
    Some(Densified {
        start: first,
        amount,
        kind,
    })
}

pub(crate) fn to_f64(m: Money) -> f64 {
    m.nanos() as f64 / 1e9
}

/// Rounded to the micro-unit: finer than any bill, coarse enough that float noise never shows.
pub(crate) fn to_money(x: f64) -> Money {
    let y = x * 1e6;
    // `f64::round` is a libm call on baseline x86-64, three per scored day. Below 2^53 the
    // integer cast truncates exactly and `y - t` is exact (Sterbenz), so rounding half away from
    // zero by hand gives the same integer; larger values and NaN take the general path.
    let micros = if y.abs() < 9.2e12 {
        let t = y as i64;
        let frac = y - t as f64;
        t + i64::from(frac >= 0.5) - i64::from(frac <= -0.5)
    } else {
        y.round().clamp(-9.2e12, 9.2e12) as i64
    };
    Money::from_nanos(micros * 1000)
}

/// Median; insertion sort for the short slices of the daily path, where it beats a selection
/// algorithm (detection speed is a product requirement).
fn median(v: &mut [f64]) -> f64 {
    debug_assert!(!v.is_empty());
    if v.len() > 16 {
        let mid = v.len() / 2;
        let upper = select_total(v, mid);
        return if v.len() % 2 == 1 {
            upper
        } else {
            (v[..mid].iter().copied().fold(f64::MIN, f64::max) + upper) / 2.0
        };
    }
    let n = v.len();
    insertion_sort(v);
    let mid = n / 2;
    if n % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// `*v.select_nth_unstable_by(k, f64::total_cmp).1`, on integer keys that order exactly as
/// `total_cmp` does (it compares these keys): integers compare faster. The k-th value in that
/// order is unique to the bit, and `v[..k]` ends up holding the same values (the same library
/// selection makes the same comparisons, so it even leaves them in the same order).
fn select_total(v: &mut [f64], k: usize) -> f64 {
    const MAX: usize = 64;
    if v.len() > MAX {
        return *v.select_nth_unstable_by(k, f64::total_cmp).1;
    }
    let key = |x: f64| {
        let b = x.to_bits() as i64;
        b ^ (((b >> 63) as u64) >> 1) as i64
    };
    let mut keys = [0i64; MAX];
    for (k, &x) in keys.iter_mut().zip(v.iter()) {
        *k = key(x);
    }
    let keys = &mut keys[..v.len()];
    keys.select_nth_unstable(k);
    for (x, &k) in v.iter_mut().zip(keys.iter()) {
        *x = f64::from_bits((k ^ (((k >> 63) as u64) >> 1) as i64) as u64);
    }
    v[k]
}

/// Whether `median(v) < bound`, exactly, in one pass and without reordering: cheaper than the
/// median itself when only the comparison matters.
fn median_is_below(v: &[f64], bound: f64) -> bool {
    let n = v.len();
    let k = n / 2;
    let (mut below, mut max_below, mut min_above) = (0, f64::NEG_INFINITY, f64::INFINITY);
    for &x in v {
        if x < bound {
            below += 1;
            max_below = max_below.max(x);
        } else {
            min_above = min_above.min(x);
        }
    }
    // Sorted, the median is v[k] (odd n) or the mean of v[k - 1] and v[k] (even n).
    if below > k {
        true
    } else if n % 2 == 1 || below < k {
        false
    } else {
        (max_below + min_above) / 2.0 < bound
    }
}

/// [`median_is_below`] over the values of `v` that are not NaN, false when fewer than `min`:
/// one pass, nothing copied (the weekly leak test asks it of every scored day).
fn valid_median_is_below(v: &[f64], min: usize, bound: f64) -> bool {
    let (mut n, mut below, mut max_below, mut min_above) = (0, 0, f64::NEG_INFINITY, f64::INFINITY);
    for &x in v {
        let valid = !x.is_nan();
        let is_below = x < bound;
        n += usize::from(valid);
        below += usize::from(is_below);
        if is_below {
            max_below = max_below.max(x);
        } else if valid {
            min_above = min_above.min(x);
        }
    }
    let k = n / 2;
    if n < min {
        false
    } else if below > k {
        true
    } else if n % 2 == 1 || below < k {
        false
    } else {
        (max_below + min_above) / 2.0 < bound
    }
}

/// Sorts exactly as the stepwise insertion sort below (ascending, equal values, zeros of either
/// sign included, in their original order) without its data-dependent loop exits: each value
/// goes straight to its place, counted as the values below it plus its equals before it. For
/// the daily path's short slices the mispredicted exits cost more than the n^2 comparisons.
fn insertion_sort(v: &mut [f64]) {
    const MAX: usize = 16;
    let n = v.len();
    if n > MAX || v.iter().any(|x| x.is_nan()) {
        return insertion_sort_stepwise(v);
    }
    let mut src = [0.0; MAX];
    src[..n].copy_from_slice(v);
    for (i, &x) in src[..n].iter().enumerate() {
        let below_or_equal_before = src[..i].iter().map(|&y| usize::from(y <= x)).sum::<usize>();
        let below_after = src[i + 1..n]
            .iter()
            .map(|&y| usize::from(y < x))
            .sum::<usize>();
        v[below_or_equal_before + below_after] = x;
    }
}

/// The reference: NaN stops an insertion where it stands, which counting would not reproduce.
fn insertion_sort_stepwise(v: &mut [f64]) {
    for i in 1..v.len() {
        let x = v[i];
        let mut j = i;
        while j > 0 && v[j - 1] > x {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
    }
}

/// How the history was rescaled when a new level was accepted.
#[derive(Clone, Copy)]
enum Shift {
    Scale(f64),
    Offset(f64),
}

/// The last `N` values of a stream in arrival order and sorted, so their median is a lookup
/// instead of a sort: one insert and at most one removal in a small sorted array per day.
/// Detection speed is a product requirement, and these medians were most of it.
#[derive(Clone)]
struct SortedWindow<const N: usize> {
    /// (day index, value), oldest first.
    order: VecDeque<(usize, f64)>,
    sorted: [f64; N],
    len: usize,
}

impl<const N: usize> SortedWindow<N> {
    fn new() -> Self {
        Self {
            order: VecDeque::with_capacity(N + 1),
            sorted: [0.0; N],
            len: 0,
        }
    }

    /// Adds the newest value, dropping the oldest when full. `x` must not be NaN.
    fn push(&mut self, day: usize, x: f64) {
        if self.len == N {
            return self.replace_oldest(day, x);
        }
        self.order.push_back((day, x));
        // Shifting by hand: for a handful of values a `memmove` call costs more than the move.
        let mut i = self.len;
        while i > 0 && self.sorted[i - 1] > x {
            self.sorted[i] = self.sorted[i - 1];
            i -= 1;
        }
        self.sorted[i] = x;
        self.len += 1;
    }

    /// `pop_oldest` then the insertion of `push`, in one pass (the window is full on almost
    /// every day, and the two passes were a tenth of detection). Every slot is written from a
    /// position computed by counting, so no loop exit depends on the data: the oldest value
    /// leaves the slot `partition_point` would find (the count of values below it), and `x`
    /// goes after every remaining value not above it, as the insertion from the end puts it.
    /// Values are never NaN (see `push`), so the counts are those positions.
    fn replace_oldest(&mut self, day: usize, x: f64) {
        let Some((_, old)) = self.order.pop_front() else {
            return;
        };
        self.order.push_back((day, x));
        let s = self.sorted;
        let n = self.len;
        let removed = s[..n].iter().filter(|&&v| v < old).count();
        let place = s[..n].iter().filter(|&&v| v <= x).count() - usize::from(old <= x);
        for (j, slot) in self.sorted[..n].iter_mut().enumerate() {
            // Slot j of the array without the oldest value, shifted past `x`'s place.
            let k = j - usize::from(j > place);
            let from = (k + usize::from(k >= removed)).min(n - 1);
            *slot = if j == place { x } else { s[from] };
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((_, x)) = self.order.pop_front() {
            let mut i = self.sorted[..self.len].partition_point(|&v| v < x);
            self.len -= 1;
            while i < self.len {
                self.sorted[i] = self.sorted[i + 1];
                i += 1;
            }
        }
    }

    /// Drops values of days before `oldest`.
    fn expire(&mut self, oldest: usize) {
        while self.order.front().is_some_and(|&(day, _)| day < oldest) {
            self.pop_oldest();
        }
    }

    fn median(&self) -> f64 {
        let (s, n) = (&self.sorted, self.len);
        if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        }
    }
}

/// The online state of one series. `clean[i]` is the day as history sees it: the actual amount,
/// clamped to the band when it was an outlier, NaN when it must not shape the baseline
/// (estimated, credit, first of month).
pub(crate) struct Model<'a> {
    config: &'a Config,
    start_dow: usize,
    clean: Vec<f64>,
    /// The final amounts as billed, NaN where `clean` is NaN by kind (not by outage).
    raw: Vec<f64>,
    season: [f64; 7],
    /// `1 / season`, multiplied rather than divided on the daily path.
    inverse: [f64; 7],
    /// The most recent `LEVEL_WINDOW` clean, de-seasonalised days within `LOOKBACK`. They depend
    /// on the weekday factors and on the history, so the window is rebuilt from `clean` when
    /// either changes (the weekly refresh, an accepted new level) and moves by one day otherwise.
    level_window: SortedWindow<LEVEL_WINDOW>,
    /// Clean (non-NaN) days among the last `LOOKBACK`: the history a forecast stands on.
    clean_in_lookback: usize,
    /// Robust standard deviation of de-seasonalised residuals, in money units.
    spread: f64,
    /// Trend of the de-seasonalised level, per day.
    slope: f64,
    refreshed_at: Option<usize>,
    season_at: Option<usize>,
    run_up: bool,
    /// Absolute forecast errors of the last scored days, de-seasonalised: the honest measure of
    /// how wrong our expectation tends to be (in-sample residuals flatter it).
    errors: VecDeque<f64>,
    /// Consecutive days beyond the band in one direction: (index, actual, expected).
    run: Vec<(usize, f64, f64)>,
}

/// The expectation for one day, before looking at its amount.
#[derive(Clone, Copy)]
pub(crate) struct Forecast {
    pub expected: f64,
    /// One robust standard deviation around `expected`.
    pub sigma: f64,
    /// Clean history days behind this forecast.
    pub history: usize,
}

impl<'a> Model<'a> {
    pub(crate) fn new(config: &'a Config, start: NaiveDate, n: usize) -> Self {
        Self {
            config,
            start_dow: start.weekday().num_days_from_monday() as usize,
            clean: Vec::with_capacity(n),
            raw: Vec::with_capacity(n),
            season: [1.0; 7],
            inverse: [1.0; 7],
            level_window: SortedWindow::new(),
            clean_in_lookback: 0,
            spread: 0.0,
            slope: 0.0,
            refreshed_at: None,
            season_at: None,
            run_up: false,
            errors: VecDeque::with_capacity(ERROR_WINDOW),
            run: Vec::new(),
        }
    }

    fn dow(&self, i: usize) -> usize {
        (self.start_dow + i) % 7
    }

    /// Most recent clean values first, de-seasonalised. This is the hot loop of detection: the
    /// weekday steps down instead of a modulo per day, and it multiplies by inverse factors.
    fn gather(&self, out: &mut [f64; HISTORY], days: &mut [usize; HISTORY]) -> usize {
        let t = self.clean.len();
        if t == 0 {
            return 0;
        }
        let inverse = &self.inverse;
        let mut dow = self.dow(t - 1);
        let mut m = 0;
        let from = t.saturating_sub(LOOKBACK);
        for (i, &c) in self.clean[from..t].iter().enumerate().rev() {
            if !c.is_nan() {
                out[m] = c * inverse[dow];
                days[m] = from + i;
                m += 1;
                if m == HISTORY {
                    break;
                }
            }
            dow = if dow == 0 { 6 } else { dow - 1 };
        }
        m
    }

    /// Level for the next day: the median of the recent de-seasonalised days, moved along the
    /// trend found at the last refresh.
    fn level(&self) -> f64 {
        let n1 = self.level_window.len;
        self.level_window.median() + self.slope * (n1 as f64 + 1.0) / 2.0
    }

    /// Refills the level window from `clean` after the weekday factors or the history changed;
    /// returns the de-seasonalised history it was built from, most recent first.
    fn rebuild_level_window(&mut self) -> ([f64; HISTORY], usize) {
        let (mut z, mut days) = ([0.0; HISTORY], [0; HISTORY]);
        let m = self.gather(&mut z, &mut days);
        let n1 = m.min(LEVEL_WINDOW);
        let w = &mut self.level_window;
        w.order.clear();
        w.order.extend((0..n1).rev().map(|j| (days[j], z[j])));
        w.sorted[..n1].copy_from_slice(&z[..n1]);
        insertion_sort(&mut w.sorted[..n1]);
        w.len = n1;
        (z, m)
    }

    /// Trend per day between the two halves of the history. Only a trend larger than the noise is
    /// kept: a noisy slope would move the expectation more than the lag of a plain median does.
    /// Computed weekly with the other slow-moving parts (the daily path is the speed budget).
    fn trend(&self, z: &[f64]) -> f64 {
        if z.len() < LEVEL_WINDOW + 7 {
            return 0.0;
        }
        // The level window holds exactly z[..LEVEL_WINDOW] here.
        let recent = self.level_window.median();
        let mut buf = [0.0; HISTORY];
        let n0 = z.len() - LEVEL_WINDOW;
        buf[..n0].copy_from_slice(&z[LEVEL_WINDOW..]);
        let older = median(&mut buf[..n0]);
        if (recent - older).abs() <= self.spread {
            return 0.0;
        }
        let recent_centre = (LEVEL_WINDOW as f64 + 1.0) / 2.0;
        let older_centre = LEVEL_WINDOW as f64 + (n0 as f64 + 1.0) / 2.0;
        (recent - older) / (older_centre - recent_centre)
    }

    fn refresh(&mut self) {
        let t = self.clean.len();
        // Weekday factors are medians over eight weeks: once that much history exists a weekly
        // re-estimate moves them by at most one week in eight, so every four weeks is enough
        // (it was half of the detection time).
        let full = 7 * SEASON_WEEKS;
        if self
            .season_at
            .is_none_or(|s| s < full || t >= s + SEASON_REFRESH_DAYS)
        {
            self.season = self.estimate_season();
            self.season_at = Some(t);
        }
        let inverse = self.season.map(|s| 1.0 / s);
        let (z, m) = if inverse.map(f64::to_bits) == self.inverse.map(f64::to_bits) {
            // Same factors over the same history (whoever edits `clean` rebuilds the window at
            // once), so the window that moved day by day already holds what a rebuild would put
            // there once past days are dropped; only the longer history is needed, for the
            // trend. Most refreshes keep the factors, and the rebuild was a tenth of detection.
            self.level_window.expire(t.saturating_sub(LOOKBACK));
            let (mut z, mut days) = ([0.0; HISTORY], [0; HISTORY]);
            let m = self.gather(&mut z, &mut days);
            (z, m)
        } else {
            self.inverse = inverse;
            self.rebuild_level_window()
        };
        if self.errors.len() >= MIN_ERRORS {
            // A sorted window here costs more per day than this weekly selection does.
            let mut e = [0.0; ERROR_WINDOW];
            let n = self.errors.len();
            for (slot, v) in e.iter_mut().zip(&self.errors) {
                *slot = *v;
            }
            self.spread = MAD_TO_SIGMA * median(&mut e[..n]);
        } else if m == 0 {
            self.spread = 0.0;
        } else {
            let level = self.level_window.median();
            let mut dev = [0.0; HISTORY];
            for (d, v) in dev.iter_mut().zip(&z[..m]) {
                *d = (v - level).abs();
            }
            self.spread = MAD_TO_SIGMA * OUT_OF_SAMPLE_INFLATION * median(&mut dev[..m]);
        }
        self.slope = self.trend(&z[..m]);
        self.refreshed_at = Some(t);
    }

    /// Weekday factors from up to eight recent weeks: each day's ratio to its week's mean, median
    /// per weekday. Kept only when they explain the data (a flat series gets all ones, so noise is
    /// not mistaken for a weekly pattern).
    fn estimate_season(&self) -> [f64; 7] {
        let t = self.clean.len();
        let weeks = (t / 7).min(SEASON_WEEKS);
        if weeks < 3 {
            return [1.0; 7];
        }
        let mut ratios = [[0.0f64; SEASON_WEEKS]; 7];
        let mut counts = [0usize; 7];
        for b in 0..weeks {
            let block = t - 7 * (b + 1)..t - 7 * b;
            let (sum, n) = block
                .clone()
                .map(|i| self.clean[i])
                .filter(|c| !c.is_nan())
                .fold((0.0, 0usize), |(s, n), c| (s + c, n + 1));
            if n < 5 || sum <= 0.0 {
                continue;
            }
            let mean = sum / n as f64;
            for i in block {
                let c = self.clean[i];
                if !c.is_nan() {
                    let d = self.dow(i);
                    ratios[d][counts[d]] = c / mean;
                    counts[d] += 1;
                }
            }
        }
        if counts.iter().any(|&c| c < 2) {
            return [1.0; 7];
        }
        let mut season = [1.0; 7];
        for d in 0..7 {
            let mut r = ratios[d];
            season[d] = median(&mut r[..counts[d]]).max(0.0);
        }
        let mean = season.iter().sum::<f64>() / 7.0;
        if mean <= 0.0 {
            return [1.0; 7];
        }
        season.iter_mut().for_each(|s| *s /= mean);
        if season.contains(&0.0) {
            return [1.0; 7];
        }
        let mut with = [0.0; 7 * SEASON_WEEKS];
        let mut without = [0.0; 7 * SEASON_WEEKS];
        let mut n = 0;
        for d in 0..7 {
            for &r in &ratios[d][..counts[d]] {
                with[n] = (r / season[d] - 1.0).abs();
                without[n] = (r - 1.0).abs();
                n += 1;
            }
        }
        if median_is_below(&with[..n], 0.8 * median(&mut without[..n])) {
            season
        } else {
            [1.0; 7]
        }
    }

    /// The expectation for the next day (index `clean.len()`), before its amount is known.
    pub(crate) fn forecast(&mut self) -> Option<Forecast> {
        let t = self.clean.len();
        if self.refreshed_at.is_none_or(|r| t >= r + 7) {
            self.refresh();
        }
        self.level_window.expire(t.saturating_sub(LOOKBACK));
        let m = self.clean_in_lookback.min(HISTORY);
        if m == 0 {
            return None;
        }
        let season = self.season[self.dow(t)];
        let level = self.level();
        let expected = level * season;
        let floor = self.config.min_relative_spread * expected.abs();
        let sigma = (self.spread * season).max(floor).max(1e-6);
        Some(Forecast {
            expected,
            sigma,
            history: m,
        })
    }

    /// Records the next day's amount: `Some(amount)` for a final day scored against `forecast`,
    /// `None` for a day history must ignore.
    pub(crate) fn push(&mut self, amount: Option<f64>, forecast: Option<&Forecast>) {
        self.raw.push(amount.unwrap_or(f64::NAN));
        let t = self.clean.len();
        let Some(x) = amount else {
            self.record(f64::NAN);
            return;
        };
        // While warming up the band is a guess; history takes the days as they are.
        let Some(f) = forecast.filter(|f| f.history >= self.config.min_history_days) else {
            self.record(x);
            return;
        };
        let band = self.config.sensitivity * f.sigma;
        let (lower, upper) = (f.expected - band, f.expected + band);
        let outside_up = x > upper;
        let outside_down = x < lower;
        // Outliers enter history at the band's edge: a spike must not raise next week's baseline.
        let kept = x.clamp(lower, upper);
        self.record(kept);
        if self.errors.len() == ERROR_WINDOW {
            self.errors.pop_front();
        }
        self.errors
            .push_back((kept - f.expected).abs() / self.season[self.dow(t)]);
        if outside_up || outside_down {
            if self.run.first().is_some_and(|_| self.run_up != outside_up) {
                self.run.clear();
            }
            self.run_up = outside_up;
            self.run.push((t, x, f.expected));
        } else {
            self.run.clear();
        }
        if self.run.len() >= self.config.shift_confirm_days.max(1) {
            let run = std::mem::take(&mut self.run);
            self.accept_new_level(&run);
        }
    }

    /// Appends day `clean.len()` to the history and keeps the incremental state in step.
    fn record(&mut self, c: f64) {
        let t = self.clean.len();
        self.clean.push(c);
        if !c.is_nan() {
            self.clean_in_lookback += 1;
            self.level_window.push(t, c * self.inverse[self.dow(t)]);
        }
        if t >= LOOKBACK && !self.clean[t - LOOKBACK].is_nan() {
            self.clean_in_lookback -= 1;
        }
    }

    /// A level that held for several days is the new normal: rescale the history so that the
    /// following days are judged against it (and the step is reported once, not every day).
    fn accept_new_level(&mut self, run: &[(usize, f64, f64)]) {
        // Days at zero are an outage (stopped account, failed export), not a new level: they
        // leave history, so the return to the usual amount is not reported as a new level.
        if run.iter().all(|&(_, x, _)| x == 0.0) {
            let t = self.clean.len();
            for &(i, _, _) in run {
                self.clean[i] = f64::NAN;
            }
            self.clean_in_lookback = self.clean[t.saturating_sub(LOOKBACK)..]
                .iter()
                .filter(|c| !c.is_nan())
                .count();
            let _ = self.rebuild_level_window();
            return;
        }
        let mut ratios: Vec<f64> = run.iter().map(|&(_, x, e)| x / e).collect();
        let all_positive = run.iter().all(|&(_, x, e)| x > 0.0 && e > 0.0);
        let ratio = if all_positive {
            median(&mut ratios)
        } else {
            f64::NAN
        };
        // A multiplicative shift keeps the weekly pattern; from or to (near) zero it cannot exist.
        let shift = if all_positive && (0.05..=20.0).contains(&ratio) {
            Shift::Scale(ratio)
        } else {
            let mut deltas: Vec<f64> = run.iter().map(|&(_, x, e)| x - e).collect();
            Shift::Offset(median(&mut deltas))
        };
        let start = run[0].0;
        for c in &mut self.clean[start.saturating_sub(LOOKBACK)..start] {
            if !c.is_nan() {
                *c = match shift {
                    Shift::Scale(r) => *c * r,
                    Shift::Offset(d) => (*c + d).max(0.0),
                };
            }
        }
        for &(i, x, _) in run {
            self.clean[i] = x;
        }
        match shift {
            Shift::Scale(r) => {
                self.spread *= r;
                self.slope *= r;
                self.errors.iter_mut().for_each(|e| *e *= r);
                let _ = self.rebuild_level_window();
            }
            Shift::Offset(_) => {
                self.errors.clear();
                // `refresh` rebuilds the level window only when the weekday factors change.
                let _ = self.rebuild_level_window();
                self.refresh();
            }
        }
    }
}

impl Model<'_> {
    /// After the settle days of a planned change: the history before it is rescaled to the level
    /// the settle days show, as for a level the detector accepted itself. `seen` holds (day,
    /// amount, what the level before the change expected of it).
    fn restart_after_planned(&mut self, seen: &[(usize, f64, f64)]) {
        if seen.is_empty() {
            return;
        }
        let clean_before = self.clean_in_lookback;
        self.accept_new_level(seen);
        // `accept_new_level` writes the seen days into history; they were recorded already.
        debug_assert_eq!(clean_before, self.clean_in_lookback);
        self.run.clear();
        // Forecast errors from before the change say little about the level after it: the
        // spread is read from the history again (in-sample, inflated) until new errors exist.
        self.errors.clear();
        self.refresh();
    }

    /// The usual amount around day `f` (a 1st of the month), from the final days a week either
    /// side as they were billed, on `f`'s weekday. Not from `clean`: a level accepted in the
    /// meantime rescales that history, which would move the fee learned by the change.
    fn typical_around(&self, f: usize) -> Option<f64> {
        let end = (f + 8).min(self.raw.len());
        let mut vals: Vec<f64> = (f.saturating_sub(7)..end)
            .filter(|&i| i != f && !self.raw[i].is_nan())
            .map(|i| self.raw[i] / self.season[self.dow(i)])
            .collect();
        (vals.len() >= 6).then(|| median(&mut vals) * self.season[self.dow(f)])
    }
}

/// Support plans, RI / Savings Plan fees and tax land on the 1st: the extra amount a 1st carries
/// over the days around it is learned from the last few months and added to that day's
/// expectation. Some fees are fixed (RI), others a share of last month's usage (tax, support):
/// both readings are kept, the extra as an amount and as a share of the month before, and a 1st
/// is judged against the more generous, so neither a fixed fee after a drop in usage nor a tax
/// after a month of growth alerts.
#[derive(Default)]
struct FirstOfMonth {
    /// 1sts whose following week is not complete yet: (index, amount).
    pending: Vec<(usize, f64)>,
    excess: VecDeque<f64>,
    /// The same extras divided by the median final day of the 28 days before their 1st.
    relative: VecDeque<f64>,
}

/// The median final day of the 28 days before day `f`, as billed.
fn month_before(model: &Model<'_>, f: usize) -> Option<f64> {
    let mut v: Vec<f64> = model.raw[f.saturating_sub(28)..f.min(model.raw.len())]
        .iter()
        .copied()
        .filter(|x| !x.is_nan())
        .collect();
    (v.len() >= 14).then(|| median(&mut v)).filter(|&m| m > 0.0)
}

/// (median, half-width): at least a quarter of the median, half of it while only one value is
/// known, as fees move from month to month.
fn spread_of(values: &VecDeque<f64>) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = values.iter().copied().collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mid = median(&mut v);
    let floor = if v.len() == 1 { 0.5 } else { 0.25 };
    Some((mid, ((hi - lo) / 2.0).max(floor * mid.abs())))
}

impl FirstOfMonth {
    fn learn(&mut self, model: &Model<'_>, t: usize) {
        if self.pending.is_empty() {
            return;
        }
        let (excess, relative) = (&mut self.excess, &mut self.relative);
        self.pending.retain(|&(f, x)| {
            if t < f + 8 {
                return true;
            }
            if let Some(typical) = model.typical_around(f) {
                if excess.len() == FIRST_OF_MONTH_MEMORY {
                    excess.pop_front();
                }
                excess.push_back(x - typical);
                if relative.len() == FIRST_OF_MONTH_MEMORY {
                    relative.pop_front();
                }
                relative.push_back(month_before(model, f).map_or(f64::NAN, |m| (x - typical) / m));
            }
            false
        });
    }

    /// (typical extra amount, extra band half-width) for the 1st at day `t`, once at least one
    /// 1st has been seen.
    fn expectation(&self, model: &Model<'_>, t: usize) -> Option<(f64, f64)> {
        let absolute = spread_of(&self.excess)?;
        let relative = month_before(model, t)
            .filter(|_| self.relative.iter().all(|r| !r.is_nan()))
            .and_then(|m| spread_of(&self.relative).map(|(mid, w)| (mid * m, w * m)));
        Some(match relative {
            Some(r) if r.0 + r.1 > absolute.0 + absolute.1 => r,
            _ => absolute,
        })
    }
}

/// Detects anomalies in one daily cost series. Pure: the same input always gives the same report.
pub fn detect(points: &[CostPoint], config: &Config) -> SeriesReport {
    detect_planned(points, &[], config)
}

/// [`detect`], told the days on which the tenant marked a change as planned (a new workload, a
/// migration, a purchase): from each such day, [`PLANNED_SETTLE_DAYS`] days are not scored
/// ([`DayStatus::Planned`]) and the baseline then restarts from the level they show, so the
/// planned change neither alerts nor leaves the days after it judged against the old level.
/// Days in `planned` outside the series are ignored. Still pure: marking a change planned later
/// and calling again gives the report as if it had been marked from the start.
pub fn detect_planned(
    points: &[CostPoint],
    planned: &[NaiveDate],
    config: &Config,
) -> SeriesReport {
    let required = config.min_history_days;
    let Some(d) = densify(points) else {
        return SeriesReport {
            status: SeriesStatus::InsufficientHistory { days: 0, required },
            days: Vec::new(),
            anomalies: Vec::new(),
        };
    };
    let n = d.amount.len();
    let k = config.sensitivity;
    let mut model = Model::new(config, d.start, n);
    let mut first_of_month = FirstOfMonth::default();
    let mut drift = Drift::new(n, config);
    let mut sporadic = Sporadic::default();
    let mut days = Vec::with_capacity(n);
    let mut usable_days = 0;
    let mut scorable = false;
    // The planned change being settled: (its first day, level before it, days seen since).
    let mut settling: Option<Settling> = None;
    for (t, date) in d.start.iter_days().take(n).enumerate() {
        let actual = d.amount[t];
        let x = to_f64(actual);
        let kind = d.kind[t];
        let is_first = date.day() == 1;
        first_of_month.learn(&model, t);
        let forecast = model.forecast();
        if planned.contains(&date) {
            if let Some((_, _, seen)) = settling.take() {
                model.restart_after_planned(&seen);
            }
            let level = forecast.map(|f| f.expected * model.inverse[model.dow(t)]);
            settling = Some((t, level, Vec::new()));
            model.run.clear();
            drift.rearm = t;
        }
        let in_settle = settling
            .as_ref()
            .is_some_and(|&(p, _, _)| t < p + PLANNED_SETTLE_DAYS);
        let history = forecast.map_or(0, |f| f.history);
        let monthly = if is_first {
            first_of_month.expectation(&model, t)
        } else {
            None
        };
        let (expected, sigma) = match (forecast, monthly) {
            (Some(f), Some((extra, width))) => (Some(f.expected + extra), f.sigma + width / k),
            (Some(f), None) => (Some(f.expected), f.sigma),
            (None, _) => (None, 0.0),
        };
        let status = match kind {
            Kind::Estimated => DayStatus::Estimated,
            Kind::Credit => DayStatus::Credit,
            Kind::Final if in_settle => DayStatus::Planned,
            Kind::Final if history < config.min_history_days => DayStatus::Warmup,
            Kind::Final if is_first && monthly.is_none() => DayStatus::FirstOfMonthUnlearned,
            Kind::Final => DayStatus::Scored,
        };
        scorable |= history >= config.min_history_days;
        let mut result = DayResult {
            day: date,
            actual,
            expected: expected.map(to_money),
            lower: expected.map(|e| to_money(e - k * sigma)),
            upper: expected.map(|e| to_money(e + k * sigma)),
            score: None,
            status,
            anomalous: false,
        };
        if let (DayStatus::Scored, Some(e)) = (status, expected) {
            let score = (x - e) / sigma;
            result.score = Some(score);
            result.anomalous =
                score > k && clears_thresholds(actual, to_money(e), &config.thresholds);
        }
        if kind == Kind::Final && !is_first {
            sporadic.push(x);
        }
        if kind == Kind::Final && !is_first && !in_settle {
            drift.push(t, x * model.inverse[model.dow(t)]);
        } else {
            drift.push(t, f64::NAN);
        }
        // A change the band reported is news already: the weekly test's reference restarts.
        if result.anomalous {
            drift.rearm = t + 1;
        }
        // A day worth less than the minimum impact cannot clear it over any expectation.
        if status == DayStatus::Scored
            && !is_first
            && actual >= config.thresholds.min_impact
            && let Some(reference) = drift.check(t)
        {
            let e = reference * model.season[model.dow(t)];
            if x > e && clears_thresholds(actual, to_money(e), &config.thresholds) {
                drift.rearm = t + 1;
                if !result.anomalous {
                    result.expected = Some(to_money(e));
                    result.lower = Some(to_money(e - k * sigma));
                    result.upper = Some(to_money(e + k * sigma));
                    result.score = Some((x - e) / sigma);
                    result.anomalous = true;
                }
            }
        }
        if status == DayStatus::Scored {
            match sporadic.usual_when_billed() {
                None => {}
                // Billed on few days, and too few of them yet to know what a billed day costs.
                Some(None) => result.anomalous = false,
                Some(Some((e, spread))) => {
                    // Judged against the days it was billed (a 1st also by the fees' rule).
                    let sigma = spread.max(config.min_relative_spread * e).max(1e-6);
                    let score = (x - e) / sigma;
                    let anomalous =
                        score > k && clears_thresholds(actual, to_money(e), &config.thresholds);
                    if is_first {
                        result.anomalous &= anomalous;
                    } else {
                        result.expected = Some(to_money(e));
                        result.lower = Some(to_money(e - k * sigma));
                        result.upper = Some(to_money(e + k * sigma));
                        result.score = Some(score);
                        result.anomalous = anomalous;
                    }
                }
            }
        }
        match kind {
            Kind::Final if is_first => {
                // The 1st is judged by its own rule and kept out of the weekday baseline.
                // A series' first day is often partial (data from mid-day, a fee not yet
                // charged): it does not teach the fees.
                if t > 0 {
                    first_of_month.pending.push((t, x));
                }
                model.push(None, None);
            }
            Kind::Final if in_settle => {
                usable_days += 1;
                if let Some((_, Some(level), seen)) = settling.as_mut() {
                    seen.push((t, x, *level * model.season[model.dow(t)]));
                }
                // Taken as it is, as in warm-up: the new level is what is being learned.
                model.push(Some(x), None);
            }
            Kind::Final => {
                usable_days += 1;
                model.push(Some(x), forecast.as_ref());
            }
            Kind::Estimated | Kind::Credit => model.push(None, None),
        }
        if let Some((p, _, seen)) = settling.as_ref()
            && t + 1 == p + PLANNED_SETTLE_DAYS
        {
            let seen = seen.clone();
            settling = None;
            model.restart_after_planned(&seen);
            // Fees on the 1st often move with the bill (support, tax): learned again.
            first_of_month = FirstOfMonth::default();
        }
        days.push(result);
    }
    let status = if scorable {
        SeriesStatus::Scored
    } else {
        SeriesStatus::InsufficientHistory {
            days: usable_days,
            required,
        }
    };
    let anomalies = merge_events(&days, &config.thresholds);
    SeriesReport {
        status,
        days,
        anomalies,
    }
}

/// A planned change being settled: its first day, the de-seasonalised level before it, and the
/// settle days seen so far as (day, amount, what the old level expected of it).
type Settling = (usize, Option<f64>, Vec<(usize, f64, f64)>);

/// Series billed on few days (a service used now and then, a job that runs weekly): the
/// weekday model's level is zero, so every billed day would alert. When a quarter or more of the
/// last eight weeks' final days were zero, a billed day is judged against the billed days.
#[derive(Default)]
struct Sporadic {
    recent: VecDeque<f64>,
    /// Days of `recent` above zero.
    billed: usize,
}

impl Sporadic {
    const WINDOW: usize = 56;

    fn push(&mut self, x: f64) {
        if self.recent.len() == Self::WINDOW && self.recent.pop_front().is_some_and(|old| old > 0.0)
        {
            self.billed -= 1;
        }
        self.recent.push_back(x);
        self.billed += usize::from(x > 0.0);
    }

    /// (median, robust standard deviation) of the billed days.
    /// `None` when the series is not sporadic, `Some(None)` when it is but fewer than five
    /// billed days are known.
    fn usual_when_billed(&self) -> Option<Option<(f64, f64)>> {
        // A quarter of zero days is enough: the weekday model's two-week median is zero as
        // soon as half of a fortnight is, which happens often at a quarter over eight weeks.
        if self.recent.len() < 14 || self.billed * 4 >= self.recent.len() * 3 {
            return None;
        }
        if self.billed < 5 {
            return Some(None);
        }
        let mut billed: Vec<f64> = self.recent.iter().copied().filter(|&x| x > 0.0).collect();
        let typical = median(&mut billed);
        let mut dev: Vec<f64> = billed.iter().map(|x| (x - typical).abs()).collect();
        // The out-of-sample inflation, as for the weekday model's in-sample spread.
        let spread = MAD_TO_SIGMA * OUT_OF_SAMPLE_INFLATION * median(&mut dev);
        Some(Some((typical, spread)))
    }
}

/// Slow leaks and modest level shifts stay inside the daily band: the band's level follows the
/// cost up (a median of two weeks, extended by the trend), so a cost growing 3% a day is always
/// only a little above what is expected of it. This test compares instead the last week with
/// the level of two to six weeks before, and alerts when the week rose clearly above it and is
/// still rising (above the week before it, and the day itself too): a plateau after a leak, a step that happened weeks
/// ago or steady growth (extrapolated from the weeks before the reference) does not fire. After
/// it fires, only days after the alert form a reference, so one change alerts once unless it
/// keeps growing (a leak left running alerts again about every month).
struct Drift {
    /// De-seasonalised final days, NaN for days that must not count (credits, estimated, 1sts,
    /// zero days: an outage is not a level).
    z: Vec<f64>,
    /// First day a reference may come from.
    rearm: usize,
    min_rise: f64,
    noise_factor: f64,
}

impl Drift {
    fn new(n: usize, config: &Config) -> Self {
        Self {
            z: Vec::with_capacity(n),
            rearm: 0,
            min_rise: config.drift_min_rise,
            noise_factor: config.drift_noise_factor,
        }
    }

    fn push(&mut self, t: usize, z: f64) {
        debug_assert_eq!(self.z.len(), t);
        self.z.push(if z > 0.0 { z } else { f64::NAN });
    }

    /// Median of the valid values of days `[from, to)` (clipped to the re-arm day, at most 28
    /// days), if at least `min` exist. On the stack: this runs every scored day.
    fn median_of(&self, from: isize, to: isize, min: usize) -> Option<f64> {
        let from = from.max(self.rearm as isize).max(0) as usize;
        let to = to.max(0) as usize;
        if from >= to {
            return None;
        }
        let mut v = [0.0; 28];
        let mut m = 0;
        for &z in self.z[from..to].iter().filter(|z| !z.is_nan()) {
            v[m] = z;
            m += 1;
        }
        (m >= min).then(|| median(&mut v[..m]))
    }

    /// The de-seasonalised level the last week rose from, when it is a leak or a shift.
    fn check(&self, t: usize) -> Option<f64> {
        if self.min_rise <= 0.0 {
            return None;
        }
        // The day itself must stand above the week before it by half the least bar: a change
        // is reported on a day that shows it. One pass without sorting; most days end here.
        let today = self.z[t];
        let half = 1.0 + self.min_rise / 2.0;
        let from = (t as isize - 13).max(self.rearm as isize).max(0) as usize;
        let to = t.saturating_sub(6);
        if today.is_nan() || !valid_median_is_below(&self.z[from.min(to)..to], 4, today / half) {
            return None;
        }
        let t = t as isize;
        let recent = self.median_of(t - 6, t + 1, 5)?;
        let previous = self.median_of(t - 13, t - 6, 4)?;
        // The bar is at least `min_rise`.
        if recent <= previous * half {
            return None;
        }
        // Growth (below) only raises what is expected, and the bar is at least `min_rise`: the
        // reference must be below the last week by that much, which one pass tells.
        let from = (t - 41).max(self.rearm as isize).max(0) as usize;
        let to = (t - 13).max(0) as usize;
        if !valid_median_is_below(
            &self.z[from.min(to)..to],
            20,
            recent / (1.0 + self.min_rise),
        ) {
            return None;
        }
        let reference = self.median_of(t - 41, t - 13, 20)?;
        if reference <= 0.0 {
            return None;
        }
        let from = (t - 41).max(self.rearm as isize).max(0) as usize;
        let mut dev = [0.0; 28];
        let mut m = 0;
        for &z in self.z[from..(t - 13) as usize]
            .iter()
            .filter(|z| !z.is_nan())
        {
            dev[m] = (z - reference).abs();
            m += 1;
        }
        let noise = MAD_TO_SIGMA * median(&mut dev[..m]) / reference;
        // Growth the series already had before the reference, carried over the 24 days between
        // the reference's middle and the last week's.
        let growth = self
            .median_of(t - 69, t - 41, 10)
            .filter(|&older| older > 0.0 && reference > older)
            .map_or(1.0, |older| (reference / older).powf(24.0 / 28.0));
        let expected = reference * growth;
        let bar = self.min_rise.max(self.noise_factor * noise);
        (recent > expected * (1.0 + bar) && recent > previous * (1.0 + bar / 2.0))
            .then_some(expected)
    }
}

fn percent(impact: Money, expected: Money) -> Option<f64> {
    (expected > Money::ZERO).then(|| impact.nanos() as f64 / expected.nanos() as f64 * 100.0)
}

fn clears_thresholds(actual: Money, expected: Money, t: &Thresholds) -> bool {
    let impact = actual - expected;
    impact >= t.min_impact && percent(impact, expected).is_none_or(|p| p >= t.min_percent)
}

/// Severity from how much money and how large a change, relative to what the subscriber said
/// matters: a doubling worth ten alerts' minimum is critical.
fn severity(impact: Money, percent: Option<f64>, t: &Thresholds) -> Severity {
    let times = impact.nanos() as f64 / (t.min_impact.nanos().max(1)) as f64;
    let pct = percent.unwrap_or(f64::INFINITY);
    if times >= 10.0 && pct >= 100.0 {
        Severity::Critical
    } else if times >= 5.0 && pct >= 50.0 {
        Severity::High
    } else if times >= 2.0 && pct >= 25.0 {
        Severity::Medium
    } else {
        Severity::Low
    }
}

fn merge_events(days: &[DayResult], t: &Thresholds) -> Vec<Anomaly> {
    let mut out: Vec<Anomaly> = Vec::new();
    let mut open = false;
    for d in days {
        if !d.anomalous {
            open = false;
            continue;
        }
        let (e, lo, hi) = (
            d.expected.unwrap_or(Money::ZERO),
            d.lower.unwrap_or(Money::ZERO),
            d.upper.unwrap_or(Money::ZERO),
        );
        let score = d.score.unwrap_or(0.0);
        match out.last_mut() {
            Some(a) if open => {
                a.last_day = d.day;
                a.expected += e;
                a.lower += lo;
                a.upper += hi;
                a.actual += d.actual;
                a.score = a.score.max(score);
            }
            _ => out.push(Anomaly {
                first_day: d.day,
                last_day: d.day,
                expected: e,
                lower: lo,
                upper: hi,
                actual: d.actual,
                impact: Money::ZERO,
                impact_percent: None,
                score,
                severity: Severity::Low,
            }),
        }
        open = true;
    }
    for a in &mut out {
        a.impact = a.actual - a.expected;
        a.impact_percent = percent(a.impact, a.expected);
        a.severity = severity(a.impact, a.impact_percent, t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIT: i64 = 1_000_000_000;

    fn day(d: u64) -> NaiveDate {
        // A Monday, so `d % 7 >= 5` is a weekend.
        NaiveDate::from_ymd_opt(2024, 1, 8).unwrap() + chrono::Days::new(d)
    }

    /// Deterministic +/-2% wobble so the series is not unrealistically flat.
    fn wobble(d: u64) -> f64 {
        [1.0, 1.02, 0.98, 1.01, 0.99, 1.015, 0.985][(d * 3 % 7) as usize]
    }

    fn series(days: u64, mut f: impl FnMut(u64) -> f64) -> Vec<CostPoint> {
        (0..days)
            .map(|d| CostPoint::new(day(d), to_money(f(d))))
            .collect()
    }

    fn events(points: &[CostPoint]) -> Vec<(NaiveDate, NaiveDate)> {
        detect(points, &Config::default())
            .anomalies
            .iter()
            .map(|a| (a.first_day, a.last_day))
            .collect()
    }

    #[test]
    fn median_is_below_agrees_with_the_median() {
        let mut rng = crate::synthetic::Rng::new(3);
        for n in 1..60 {
            let v: Vec<f64> = (0..n).map(|_| (rng.unit() * 8.0).floor()).collect();
            let m = median(&mut v.clone());
            for bound in [m - 0.5, m, m + 0.25, m + 0.5, m + 1.0] {
                assert_eq!(median_is_below(&v, bound), m < bound, "{v:?} {bound}");
            }
        }
    }

    #[test]
    fn valid_median_is_below_agrees_with_the_median_of_the_valid_values() {
        let mut rng = crate::synthetic::Rng::new(6);
        for _ in 0..5000 {
            let n = rng.below(12);
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    if rng.chance(0.3) {
                        f64::NAN
                    } else {
                        (rng.unit() * 8.0).floor()
                    }
                })
                .collect();
            let mut valid: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
            for bound in [2.5, 3.0, 4.0, 5.5] {
                let expected = valid.len() >= 3 && median(&mut valid) < bound;
                assert_eq!(
                    valid_median_is_below(&v, 3, bound),
                    expected,
                    "{v:?} {bound}"
                );
            }
        }
    }

    #[test]
    fn insertion_sort_places_values_as_the_stepwise_sort_does() {
        let mut rng = crate::synthetic::Rng::new(4);
        for _ in 0..20_000 {
            let n = rng.below(20);
            let v: Vec<f64> = (0..n)
                .map(|_| match rng.below(8) {
                    0 => 0.0,
                    1 => -0.0,
                    2 if rng.chance(0.1) => f64::NAN,
                    3 => f64::INFINITY,
                    _ => (rng.unit() * 6.0).floor() - 2.0,
                })
                .collect();
            let (mut fast, mut reference) = (v.clone(), v.clone());
            insertion_sort(&mut fast);
            insertion_sort_stepwise(&mut reference);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&reference), "{v:?}");
        }
    }

    #[test]
    fn to_money_rounds_as_f64_round_does() {
        let reference =
            |x: f64| Money::from_nanos(((x * 1e6).round().clamp(-9.2e12, 9.2e12) as i64) * 1000);
        let mut rng = crate::synthetic::Rng::new(9);
        let mut cases = vec![
            0.0, -0.0, 0.5e-6, -0.5e-6, 1.5e-6, -2.5e-6, 9.2e6, -9.2e6, 1e30,
        ];
        cases.extend([
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            // One ulp below 2.5 micro-units: the scaling's rounding decides whether it is a half.
            f64::from_bits(0.0000025f64.to_bits() - 1),
        ]);
        for _ in 0..100_000 {
            let scale = 10f64.powf(rng.range(-7.0, 8.0));
            cases.push(rng.range(-1.0, 1.0) * scale);
            // Exact halves of a micro-unit, where rounding direction matters.
            cases.push(
                (rng.below(1 << 30) as f64 + 0.5) / 1e6 * if rng.chance(0.5) { 1.0 } else { -1.0 },
            );
        }
        for x in cases {
            assert_eq!(to_money(x), reference(x), "{x:e}");
        }
    }

    #[test]
    fn level_window_median_matches_a_full_sort() {
        let mut rng = crate::synthetic::Rng::new(5);
        let mut w = SortedWindow::<LEVEL_WINDOW>::new();
        let mut recent = VecDeque::new();
        for day in 0..500 {
            let z = (rng.unit() * 20.0).floor();
            w.push(day, z);
            recent.push_back(z);
            if recent.len() > LEVEL_WINDOW {
                recent.pop_front();
            }
            let mut all: Vec<f64> = recent.iter().copied().collect();
            assert_eq!(w.median(), median(&mut all));
            all.sort_by(f64::total_cmp);
            assert_eq!(&w.sorted[..w.len], &all[..]);
        }
    }

    #[test]
    fn weekly_seasonality_is_not_an_anomaly_but_a_spike_on_a_quiet_weekend_is() {
        let weekly = |d: u64| if d % 7 >= 5 { 400.0 } else { 1000.0 } * wobble(d);
        assert_eq!(events(&series(120, weekly)), []);
        // 800 on a Saturday is below any weekday, yet double a Saturday.
        let spiked = series(120, |d| if d == 96 { 800.0 } else { weekly(d) });
        assert_eq!(events(&spiked), [(day(96), day(96))]);
    }

    #[test]
    fn steady_growth_is_not_an_anomaly() {
        let growing = series(400, |d| 1000.0 * 1.8f64.powf(d as f64 / 365.0) * wobble(d));
        assert_eq!(events(&growing), []);
    }

    #[test]
    fn first_of_month_fees_are_expected_once_learned() {
        let fees = series(300, |d| {
            if day(d).day() == 1 {
                100.0 + 2500.0
            } else {
                100.0 * wobble(d)
            }
        });
        let report = detect(&fees, &Config::default());
        assert!(report.anomalies.is_empty(), "{:?}", report.anomalies);
        let first = report
            .days
            .iter()
            .filter(|d| d.day.day() == 1)
            .collect::<Vec<_>>();
        assert_eq!(first[0].status, DayStatus::FirstOfMonthUnlearned);
        assert!(first[2..].iter().all(|d| d.status == DayStatus::Scored));
    }

    #[test]
    fn credits_are_not_scored_and_do_not_lower_the_baseline() {
        let credits = series(90, |d| {
            if d % 20 == 19 {
                -800.0
            } else {
                200.0 * wobble(d)
            }
        });
        let report = detect(&credits, &Config::default());
        assert!(report.anomalies.is_empty());
        let after = &report.days[40];
        assert_eq!(report.days[39].status, DayStatus::Credit);
        let expected = to_f64(after.expected.unwrap());
        assert!((expected - 200.0).abs() < 10.0, "{expected}");
    }

    #[test]
    fn a_step_change_that_stays_is_reported_once() {
        let step = series(200, |d| if d >= 100 { 3000.0 } else { 1000.0 } * wobble(d));
        let found = events(&step);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, day(100));
        // The daily band flags the first days, the weekly test the fourth.
        assert!(found[0].1 <= day(103), "{found:?}");
    }

    #[test]
    fn recovery_after_an_outage_is_not_a_new_level() {
        let outage = series(160, |d| {
            if (90..95).contains(&d) {
                0.0
            } else {
                800.0 * wobble(d)
            }
        });
        assert_eq!(events(&outage), []);
    }

    #[test]
    fn estimated_days_are_not_scored_until_final() {
        let mut points = series(60, |d| 500.0 * wobble(d));
        for p in points.iter_mut().rev().take(2) {
            p.estimated = true;
            p.amount = Money::from_nanos(5000 * UNIT);
        }
        let report = detect(&points, &Config::default());
        assert!(report.anomalies.is_empty());
        assert!(
            report.days[58..]
                .iter()
                .all(|d| d.status == DayStatus::Estimated && !d.anomalous)
        );
        // Once final, the same amount is an anomaly.
        points[58].estimated = false;
        assert_eq!(events(&points), [(day(58), day(58))]);
    }

    #[test]
    fn tiny_services_below_minimum_impact_are_ignored() {
        let tiny = series(90, |d| if d == 60 { 9.0 } else { 1.5 * wobble(d) });
        let report = detect(&tiny, &Config::default());
        assert!(
            report.days[60].score.unwrap() > 10.0,
            "statistically it is a spike"
        );
        assert!(report.anomalies.is_empty());
        // A subscription with a lower bar sees it.
        let mut config = Config::default();
        config.thresholds.min_impact = Money::from_nanos(5 * UNIT);
        assert_eq!(detect(&tiny, &config).anomalies.len(), 1);
    }

    #[test]
    fn small_percentage_increases_on_large_series_are_ignored() {
        // +8% of 100,000 is $8,000 but below the 10% minimum, even with a tight band.
        let big = series(90, |d| {
            if d == 60 {
                108_000.0
            } else {
                100_000.0 * (1.0 + (wobble(d) - 1.0) / 10.0)
            }
        });
        assert_eq!(events(&big), []);
    }

    #[test]
    fn short_series_report_insufficient_history() {
        let report = detect(&series(10, |_| 50.0), &Config::default());
        assert_eq!(
            report.status,
            SeriesStatus::InsufficientHistory {
                days: 10,
                required: 14
            }
        );
        assert!(
            report
                .days
                .iter()
                .all(|d| d.status == DayStatus::Warmup && !d.anomalous)
        );
        assert_eq!(
            detect(&[], &Config::default()).status,
            SeriesStatus::InsufficientHistory {
                days: 0,
                required: 14
            }
        );
    }

    #[test]
    fn consecutive_anomalous_days_merge_into_one_event_with_exact_money() {
        let points = series(80, |d| {
            if (50..53).contains(&d) {
                900.0
            } else {
                300.0 * wobble(d)
            }
        });
        let report = detect(&points, &Config::default());
        assert_eq!(report.anomalies.len(), 1);
        let a = report.anomalies[0];
        assert_eq!((a.first_day, a.last_day), (day(50), day(52)));
        assert_eq!(a.actual, Money::from_nanos(2700 * UNIT));
        assert_eq!(a.impact, a.actual - a.expected);
        let days_expected: Money = report.days[50..53]
            .iter()
            .map(|d| d.expected.unwrap())
            .sum();
        assert_eq!(a.expected, days_expected);
        assert!(a.lower < a.expected && a.expected < a.upper && a.upper < a.actual);
        assert_eq!(a.severity, Severity::Critical);
        assert!((a.impact_percent.unwrap() - 200.0).abs() < 5.0);
    }

    #[test]
    fn a_slow_leak_is_found_while_it_grows() {
        // 3% a day from day 120 for five weeks, on a series with a weekly rhythm.
        let leak = series(220, |d| {
            let grown = 1.03f64.powi((d as i32 - 119).clamp(0, 35));
            let weekly = if d % 7 >= 5 { 400.0 } else { 1000.0 };
            weekly * wobble(d) * grown
        });
        let found = events(&leak);
        assert!(
            found.iter().any(|&(a, b)| a <= day(154) && b >= day(120)),
            "{found:?}"
        );
        assert!(found.iter().all(|&(a, _)| a >= day(120)), "{found:?}");
    }

    #[test]
    fn a_modest_level_shift_inside_the_band_is_found_within_a_week() {
        // +25% on a series with 6% noise: inside the daily band, found by the weekly test.
        let mut rng = crate::synthetic::Rng::new(21);
        let shift = series(200, |d| {
            let level = if d >= 120 { 1250.0 } else { 1000.0 };
            level * (1.0 + 0.06 * rng.normal())
        });
        let found = events(&shift);
        assert!(
            found.iter().any(|&(a, b)| a <= day(126) && b >= day(120)),
            "{found:?}"
        );
        assert!(found.iter().all(|&(a, _)| a >= day(120)), "{found:?}");
    }

    #[test]
    fn a_planned_change_does_not_alert_and_the_baseline_restarts_from_it() {
        let step = series(200, |d| if d >= 100 { 3000.0 } else { 1000.0 } * wobble(d));
        assert_eq!(events(&step).len(), 1);
        let report = detect_planned(&step, &[day(100)], &Config::default());
        assert!(report.anomalies.is_empty(), "{:?}", report.anomalies);
        assert!(
            report.days[100..100 + PLANNED_SETTLE_DAYS]
                .iter()
                .all(|d| d.status == DayStatus::Planned)
        );
        // Judged against the new level: expected near 3000 a week after, and a spike on it found.
        let expected = to_f64(report.days[110].expected.unwrap());
        assert!((expected - 3000.0).abs() < 150.0, "{expected}");
        let spiked: Vec<CostPoint> = step
            .iter()
            .map(|p| {
                if p.day == day(150) {
                    CostPoint::new(p.day, to_money(6000.0))
                } else {
                    *p
                }
            })
            .collect();
        let found: Vec<_> = detect_planned(&spiked, &[day(100)], &Config::default())
            .anomalies
            .iter()
            .map(|a| (a.first_day, a.last_day))
            .collect();
        assert_eq!(found, [(day(150), day(150))]);
    }

    #[test]
    fn a_planned_day_outside_the_series_changes_nothing() {
        let points = series(120, |d| if d == 70 { 700.0 } else { 250.0 * wobble(d) });
        let plain = detect(&points, &Config::default());
        let told = detect_planned(&points, &[day(500)], &Config::default());
        assert_eq!(plain, told);
    }

    #[test]
    fn a_revised_estimate_leaves_no_stale_alert() {
        let mut points = series(90, |d| 500.0 * wobble(d));
        // Final but wrong (an early export), then revised to the usual amount.
        points[80].amount = to_money(4000.0);
        assert_eq!(events(&points), [(day(80), day(80))]);
        points[80].amount = to_money(500.0 * wobble(80));
        assert_eq!(events(&points), []);
    }

    #[test]
    fn a_series_that_is_zero_most_days_does_not_alert_on_its_usual_days() {
        let mut rng = crate::synthetic::Rng::new(8);
        let sporadic = series(300, |_| {
            if rng.chance(0.2) {
                rng.range(20.0, 60.0)
            } else {
                0.0
            }
        });
        assert_eq!(events(&sporadic), []);
    }

    #[test]
    fn results_for_past_days_do_not_change_when_later_days_arrive() {
        let points = series(120, |d| if d == 70 { 700.0 } else { 250.0 * wobble(d) });
        let full = detect(&points, &Config::default());
        let prefix = detect(&points[..80], &Config::default());
        assert_eq!(full.days[..80], prefix.days[..]);
    }
}
