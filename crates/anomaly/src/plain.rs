//! A third generator of labelled daily cost series, the plainest one: what a benchmark written
//! in an afternoon would hold. Short series (90 to 365 days), one level with a weekly rhythm on
//! some series, independent multiplicative noise of 3% to 15%, and events of the sizes an
//! operator would still call news: spikes of +30% to +200% for one to three days, level shifts
//! of +20% to +100% (window: the first day and six after), slow leaks of 1% to 5% a day for 10 to
//! 40 days, and planned changes (x0.5 to x2, told to the detector). Every event is at least
//! three noise standard deviations and $15 a day; no fees, credits or estimated days.
//!
//! It differs from [`crate::synthetic`] in its shorter series and smaller events (its spikes
//! start at three noise deviations, not 4.5 or 6) and from [`crate::billing`] in having none of
//! a bill's structure; the detector was tuned on neither of its seeds used for reporting.

use chrono::{Datelike, NaiveDate};
use cloudspend_core::Money;

use crate::cost::CostPoint;
use crate::eval::EventKind;
use crate::synthetic::{LabelledSeries, PLANNED_WINDOW_DAYS, Rng, SHIFT_WINDOW_DAYS, Traits};

pub fn start_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 2, 3).expect("valid date")
}

pub fn generate(seed: u64, n_series: usize) -> Vec<LabelledSeries> {
    (0..n_series)
        .map(|i| {
            let mut rng = Rng::new(
                seed.wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ (i as u64 + 7).wrapping_mul(0x1656_67B1),
            );
            series(&mut rng, format!("plain-{i:04}"))
        })
        .collect()
}

fn series(rng: &mut Rng, name: String) -> LabelledSeries {
    let n = 90 + rng.below(276);
    let level = (rng.range(20f64.ln(), 20_000f64.ln())).exp();
    let noise = rng.range(0.03, 0.15);
    let weekly = rng.chance(0.6);
    let weekend = rng.range(0.5, 0.9);
    let mut base: Vec<f64> = (0..n)
        .map(|t| {
            let dow = (start_day() + chrono::Days::new(t as u64))
                .weekday()
                .num_days_from_monday();
            level * if weekly && dow >= 5 { weekend } else { 1.0 }
        })
        .collect();
    let mut events: Vec<(usize, usize, EventKind)> = Vec::new();
    let mut planned = Vec::new();
    let mut blocked = vec![false; n];
    let mut claim = |s: usize, len: usize| {
        let span = s.saturating_sub(5)..(s + len + 5).min(n);
        if s < 35 || s + len > n || blocked[span.clone()].iter().any(|&b| b) {
            return false;
        }
        blocked[span].iter_mut().for_each(|b| *b = true);
        true
    };
    // Worth an alert: three noise deviations and $15 a day.
    let floor = |b: f64| (3.0 * noise).max(15.0 / b);
    let count = 1 + rng.below(3);
    for _ in 0..count {
        let kind = rng.below(4);
        let s = 35 + rng.below(n.saturating_sub(40).max(1));
        match kind {
            0 => {
                let len = 1 + rng.below(3);
                let rel = rng.range(0.3, 2.0);
                if rel >= floor(base[s]) && claim(s, len) {
                    base[s..s + len].iter_mut().for_each(|b| *b *= 1.0 + rel);
                    events.push((s, s + len - 1, EventKind::Spike));
                }
            }
            1 => {
                let rel = rng.range(0.2, 1.0);
                if rel >= floor(base[s]) && claim(s, SHIFT_WINDOW_DAYS) {
                    base[s..].iter_mut().for_each(|b| *b *= 1.0 + rel);
                    events.push((s, s + SHIFT_WINDOW_DAYS - 1, EventKind::Shift));
                }
            }
            2 => {
                let len = 10 + rng.below(31);
                let g = rng.range(0.01, 0.05);
                let fixed = rng.chance(0.5);
                let grown = (1.0 + g).powi(len as i32) - 1.0;
                if grown >= floor(base[s]) && claim(s, len) {
                    let end = if fixed { s + len } else { n };
                    for (t, b) in base.iter_mut().enumerate().take(end).skip(s) {
                        *b *= (1.0 + g).powi(((t - s + 1).min(len)) as i32);
                    }
                    events.push((s, s + len - 1, EventKind::Leak));
                }
            }
            _ => {
                let factor = if rng.chance(0.5) {
                    rng.range(1.3, 2.0)
                } else {
                    rng.range(0.5, 0.8)
                };
                if claim(s, PLANNED_WINDOW_DAYS) {
                    base[s..].iter_mut().for_each(|b| *b *= factor);
                    planned.push(s);
                }
            }
        }
    }
    events.sort_unstable_by_key(|e| e.0);
    let day = |t: usize| start_day() + chrono::Days::new(t as u64);
    let points = base
        .iter()
        .enumerate()
        .map(|(t, b)| {
            let x = (b * (1.0 + noise * rng.normal())).max(0.0);
            CostPoint::new(
                day(t),
                Money::from_nanos((x * 100.0).round() as i64 * 10_000_000),
            )
        })
        .collect();
    LabelledSeries {
        name,
        points,
        kinds: events.iter().map(|e| e.2).collect(),
        events: events
            .iter()
            .map(|&(a, b, _)| (day(a), day(b.min(n - 1))))
            .collect(),
        quiet: planned
            .iter()
            .map(|&p| (day(p), day((p + PLANNED_WINDOW_DAYS - 1).min(n - 1))))
            .collect(),
        planned: planned.into_iter().map(day).collect(),
        traits: Traits {
            weekly,
            ..Traits::default()
        },
    }
}
