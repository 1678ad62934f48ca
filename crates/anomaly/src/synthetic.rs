//! A deterministic, seeded generator of labelled daily cost series with the traps of real bills
//! planted: weekly seasonality, growth or decline, 1st-of-month fees, credits, planned step
//! changes, estimated last days and tiny noisy services. Only planted cost increases worth an
//! alert are labelled; everything else is a trap that must stay quiet (an upward step is labelled
//! once, on its first day: it is news once).
//!
//! The same seed always gives the same series (own PRNG, no platform-dependent randomness), so
//! tests and benches can assert on it.

use chrono::{Datelike, NaiveDate};
use cloudspend_core::Money;

use crate::cost::CostPoint;
use crate::eval::{Event, EventKind};

/// SplitMix64: tiny, fast, and good enough for test data; its output is fixed by the seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-12);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Which traps a series carries, so failures can be traced to one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Traits {
    pub tiny: bool,
    pub weekly: bool,
    pub trend_per_year: f64,
    pub first_of_month_fee: bool,
    pub credits: bool,
    pub step: Option<(NaiveDate, f64)>,
    pub estimated_tail: usize,
}

#[derive(Clone, Debug)]
pub struct LabelledSeries {
    pub name: String,
    pub points: Vec<CostPoint>,
    /// Anomaly events that should be reported: (first day, last day).
    pub events: Vec<Event>,
    /// What each of `events` is, in the same order.
    pub kinds: Vec<EventKind>,
    /// Days the tenant marked a planned change on (passed to [`crate::cost::detect_planned`]).
    pub planned: Vec<NaiveDate>,
    /// Windows after planned changes: an alert there is a false alert, counted apart.
    pub quiet: Vec<Event>,
    pub traits: Traits,
}

/// The first day of every generated series; a Monday, so weekday effects are easy to read.
pub fn start_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid date")
}

/// `n_series` series of `n_days` days each. Anomalies are planted with at least twice the default
/// minimum impact ($10) and well outside the noise, as an operator would label them.
pub fn generate(seed: u64, n_series: usize, n_days: usize) -> Vec<LabelledSeries> {
    (0..n_series)
        .map(|i| {
            let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0xA076_1D64_78BD_642F));
            series(&mut rng, format!("series-{i:05}"), n_days, false)
        })
        .collect()
}

/// Days a level shift may be found in (its first day and six after): a detector that needs a few
/// days to be sure of a new level still finds it, one that takes two weeks does not.
pub const SHIFT_WINDOW_DAYS: usize = 7;
/// Days after a planned change in which an alert is counted as crying wolf on a planned change.
pub const PLANNED_WINDOW_DAYS: usize = 14;

/// As [`generate`], with the events [`generate`] lacks: slow leaks (a cost growing 1% to 5% a
/// day for two to six weeks, then fixed or left running) and planned changes (steps up or down
/// that the tenant marked, which must not alert). Upward steps are labelled as level shifts over
/// [`SHIFT_WINDOW_DAYS`] instead of their first day. Series differ from [`generate`]'s from the
/// first leak or planned change on; the rest of the random sequence is the same.
pub fn generate_with_leaks(seed: u64, n_series: usize, n_days: usize) -> Vec<LabelledSeries> {
    (0..n_series)
        .map(|i| {
            let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0xA076_1D64_78BD_642F));
            series(&mut rng, format!("series-{i:05}"), n_days, true)
        })
        .collect()
}

fn series(rng: &mut Rng, name: String, n: usize, extended: bool) -> LabelledSeries {
    let start = start_day();
    let tiny = rng.chance(0.15);
    let level = if tiny {
        rng.range(0.2, 2.0)
    } else {
        (rng.range(20f64.ln(), 20_000f64.ln())).exp()
    };
    let noise = if tiny {
        rng.range(0.2, 0.5)
    } else {
        rng.range(0.02, 0.08)
    };
    let weekly = rng.chance(0.5);
    let weekend = rng.range(0.45, 0.85);
    let weekday_wobble: [f64; 5] = std::array::from_fn(|_| rng.range(0.95, 1.05));
    let trend_per_year = if rng.chance(0.5) {
        rng.range(-0.2, 0.8)
    } else {
        0.0
    };
    let fee = rng.chance(0.4).then(|| level * rng.range(0.5, 5.0));
    let credits = rng.chance(0.25);
    let step = (rng.chance(0.3) && n > 120 && level >= 100.0).then(|| {
        let day = 60 + rng.below(n - 120);
        // With leaks, smaller steps too: a +25% step is news on a bill.
        let factor = if rng.chance(0.7) {
            rng.range(if extended { 1.25 } else { 1.5 }, 2.5)
        } else {
            rng.range(0.4, 0.7)
        };
        (day, factor)
    });
    let estimated_tail = if rng.chance(0.4) { 1 + rng.below(3) } else { 0 };

    let mut amounts = Vec::with_capacity(n);
    for t in 0..n {
        let day = start + chrono::Days::new(t as u64);
        let dow = day.weekday().num_days_from_monday() as usize;
        let season = if !weekly {
            1.0
        } else if dow >= 5 {
            weekend
        } else {
            weekday_wobble[dow]
        };
        let growth = (1.0 + trend_per_year).powf(t as f64 / 365.0);
        let stepped = match step {
            Some((s, f)) if t >= s => f,
            _ => 1.0,
        };
        let base = level * season * growth * stepped;
        let mut x = base * (1.0 + noise * rng.normal()).max(0.0);
        if tiny && rng.chance(0.05) {
            // Tiny services spike all the time; never worth an alert.
            x = (x * rng.range(2.0, 5.0)).min(8.0);
        }
        if let (Some(f), 1) = (fee, day.day()) {
            x += f * growth;
        }
        amounts.push((x, base));
    }

    let mut events = Vec::new();
    let mut blocked = vec![false; n];
    if let Some((s, f)) = step {
        blocked[s.saturating_sub(3)..(s + 10).min(n)]
            .iter_mut()
            .for_each(|b| *b = true);
        // An upward step worth an alert is labelled once: the day it happened.
        if f > 1.0 {
            let last = if extended {
                s + SHIFT_WINDOW_DAYS - 1
            } else {
                s
            };
            events.push((s, last.min(n - 1), EventKind::Shift));
        }
    }
    if !tiny {
        let count = rng.below(4);
        for _ in 0..count {
            let max_len = if rng.chance(0.7) { 2 } else { 4 };
            let len = 1 + rng.below(max_len);
            let s = 30 + rng.below(n.saturating_sub(40 + len).max(1));
            if blocked[s.saturating_sub(3)..(s + len + 3).min(n)]
                .iter()
                .any(|&b| b)
            {
                continue;
            }
            blocked[s.saturating_sub(3)..(s + len + 3).min(n)]
                .iter_mut()
                .for_each(|b| *b = true);
            // With leaks, smaller spikes too: 4.5 noise standard deviations rather than 6.
            let rel = if extended {
                rng.range(0.2, 2.0).max(4.5 * noise)
            } else {
                rng.range(0.3, 2.0).max(6.0 * noise)
            };
            for (x, base) in &mut amounts[s..s + len] {
                let extra = (*base * rel).max(20.0);
                *x += extra;
            }
            events.push((s, s + len - 1, EventKind::Spike));
        }
    }
    let mut planned = Vec::new();
    if extended && !tiny {
        plant_leak(rng, &mut amounts, &mut blocked, &mut events, noise);
        if rng.chance(0.25) {
            plant_planned(rng, &mut amounts, &mut blocked, &mut planned);
        }
    }
    if credits {
        for _ in 0..1 + rng.below(3) {
            let t = 20 + rng.below(n.saturating_sub(30).max(1));
            if !blocked[t] {
                amounts[t].0 = -rng.range(0.5, 3.0) * amounts[t].1;
            }
        }
    }
    events.sort_unstable();
    let mut points: Vec<CostPoint> = amounts
        .iter()
        .enumerate()
        .map(|(t, &(x, _))| {
            let cents = (x * 100.0).round() as i64;
            CostPoint::new(
                start + chrono::Days::new(t as u64),
                Money::from_nanos(cents * 10_000_000),
            )
        })
        .collect();
    for p in points.iter_mut().rev().take(estimated_tail) {
        p.estimated = true;
        // Provisional amounts come in low (partial day) or, as a trap, high.
        let factor = if rng.chance(0.5) { 0.5 } else { 3.0 };
        p.amount = Money::from_nanos((p.amount.nanos() as f64 * factor) as i64);
    }
    // Events that start in the estimated tail cannot be judged yet.
    let last_final = n - estimated_tail;
    events.retain(|&(s, _, _)| s < last_final);
    let day = |t: usize| start + chrono::Days::new(t as u64);
    LabelledSeries {
        name,
        points,
        kinds: events.iter().map(|e| e.2).collect(),
        events: events
            .into_iter()
            .map(|(a, b, _)| (day(a), day(b.min(last_final - 1))))
            .collect(),
        quiet: planned
            .iter()
            .map(|&p| (day(p), day((p + PLANNED_WINDOW_DAYS - 1).min(n - 1))))
            .collect(),
        planned: planned.into_iter().map(day).collect(),
        traits: Traits {
            tiny,
            weekly,
            trend_per_year,
            first_of_month_fee: fee.is_some(),
            credits,
            step: step.map(|(s, f)| (day(s), f)),
            estimated_tail,
        },
    }
}

/// Free days `[s, s + len)` with three days' margin, claimed if free.
fn claim(blocked: &mut [bool], s: usize, len: usize) -> bool {
    let n = blocked.len();
    let span = s.saturating_sub(3)..(s + len + 3).min(n);
    if s + len > n || blocked[span.clone()].iter().any(|&b| b) {
        return false;
    }
    blocked[span].iter_mut().for_each(|b| *b = true);
    true
}

/// A slow leak on a third of the series: the cost grows `g` per day for two to six weeks; then
/// it is fixed (back to the usual level) or left running at the level it reached. Labelled over
/// the days it grows: flagging any of them finds it.
fn plant_leak(
    rng: &mut Rng,
    amounts: &mut [(f64, f64)],
    blocked: &mut [bool],
    events: &mut Vec<(usize, usize, EventKind)>,
    noise: f64,
) {
    let n = amounts.len();
    if !rng.chance(0.35) || n < 120 {
        return;
    }
    let len = 14 + rng.below(29);
    let g = rng.range(0.01, 0.05).max(noise / 4.0);
    let s = 45 + rng.below(n.saturating_sub(60 + len).max(1));
    let fixed = rng.chance(0.5);
    if !claim(blocked, s, len) {
        return;
    }
    let end = if fixed { s + len } else { n };
    for (t, (x, base)) in amounts.iter_mut().enumerate().take(end).skip(s) {
        let k = (t - s + 1).min(len) as f64;
        let extra = *base * ((1.0 + g).powf(k) - 1.0);
        *x += extra;
    }
    events.push((s, s + len - 1, EventKind::Leak));
}

/// A planned change (new workload, decommission, reserved capacity): a step of x0.4 to x3 that
/// the tenant marked on its first day.
fn plant_planned(
    rng: &mut Rng,
    amounts: &mut [(f64, f64)],
    blocked: &mut [bool],
    planned: &mut Vec<usize>,
) {
    let n = amounts.len();
    let p = 40 + rng.below(n.saturating_sub(60).max(1));
    let factor = if rng.chance(0.7) {
        rng.range(1.4, 3.0)
    } else {
        rng.range(0.4, 0.7)
    };
    if !claim(blocked, p, PLANNED_WINDOW_DAYS) {
        return;
    }
    for (x, base) in &mut amounts[p..] {
        *x *= factor;
        *base *= factor;
    }
    planned.push(p);
}
