//! A contextual anomaly detector in the manner of CAD OSE, the "Contextual Anomaly Detector,
//! Open Source Edition" by Mikhail Smirnov (2016, <https://github.com/smirmik/CAD>), run in NAB
//! as `contextOSE`. The original is AGPL-3.0 and
//! this crate is Apache-2.0: this is our own implementation of the algorithm as described here
//! (our data structures and names), not a translation of its code. See the crate README.
//!
//! The idea: quantise each value to a few bits and learn, online, which *contexts* (a set of
//! facts at one step followed by a set of facts at the next) keep coming true.
//! - Facts: each value becomes `bits` sensor facts ("bit i of its level is 0/1"). Contexts that
//!   fully came true at a step are facts too ("context c fired"), so contexts over contexts
//!   describe longer sequences without a fixed lag.
//! - Learning: the first time a (previous step's facts, current sensor facts) transition is seen
//!   it is stored whole; while such new transitions arrive, smaller contexts are grown from the
//!   partial overlaps of stored transitions with what just happened, left overlaps of at most
//!   `max_left` facts. Each context counts how many of its right facts came true when its left
//!   half matched; the best of the matched ones predict the next sensor facts.
//! - Anomaly: zero when the prediction covered the new value's bits; otherwise half of (1 - the
//!   share of the left-matched contexts whose right half came true) plus (the share of candidate
//!   new contexts that really were new): an unfamiliar sequence the memory did not predict.
//! - Rest: after a raw score of `base_threshold` or more, scores are held at zero for
//!   `rest_period` points, so an incident is reported once.
//!
//! - Phases (two by default): a second memory reads the levels half a level higher and the two
//!   raw scores are averaged. A value near a level boundary flips between levels on noise alone,
//!   which the memory then sees as an unpredicted fact; a shifted quantisation rarely has a
//!   boundary at the same place, so such flips count half. It costs a second memory (about
//!   twice the time per point). See the README for its NAB figures and how the choice was made.
//!
//! The range, and why it is ours rather than CAD's: NAB hands every detector the minimum and
//! maximum of the whole file, which an online detector cannot know, and the levels (8 across the
//! range) decide what the memory can tell apart. [`Range::Adaptive`] uses the range seen so far;
//! when a value falls outside it, the range widens to the value plus `margin` of its span, and
//! the memory is rebuilt by replaying recent values at the new levels: the model is then the one
//! that range would have learned from the past, which is what the file's range gives CAD in NAB
//! once the largest values have arrived. [`Range::Fixed`] exists to cross-check this
//! implementation against NAB's stored `contextOSE` results.

mod memory;

use std::collections::VecDeque;

use memory::Memory;

/// Points of replay a detector earns per point it scores: the cap on what range changes may cost
/// (a steadily climbing series widens its range every few points).
const REPLAY_CREDIT_PER_POINT: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Range {
    /// Known in advance (NAB's file minimum and maximum: look-ahead, for cross-checks only).
    Fixed { min: f64, max: f64 },
    /// Learned online; see the module documentation.
    Adaptive {
        /// Past values kept for replay when the range widens.
        history: usize,
        /// Headroom added beyond a value that widened the range, as a share of the span.
        margin: f64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ContextConfig {
    /// Points scored zero after a raw score reaches `base_threshold` (and at the start).
    pub rest_period: usize,
    pub base_threshold: f64,
    /// Largest left overlap from which a new context is grown.
    pub max_left: usize,
    /// Fired contexts carried forward as facts, the most often fired first.
    pub max_active: usize,
    /// Bits per value: `2^bits` levels across the range.
    pub bits: u32,
    /// Quantisations averaged, each shifted by `1 / phases` of a level (see the module docs).
    pub phases: u32,
    pub range: Range,
}

impl Default for ContextConfig {
    fn default() -> Self {
        // CAD OSE's published defaults, one phase, resting from 0.72 with a range margin of 0.05
        // (history 1,000). NAB runs CAD with a rest period of 3% of the file (a fifth of its
        // probationary period): 120 points for a two-week file of 5-minute points. Chosen among
        // eight candidates (phases, rest level, margin) with its threshold by the highest pooled
        // score over seven NAB folders (`examples/nab_more.rs`); the README reports what that
        // procedure scores with each folder held out. The two-phase setting chosen earlier on the
        // AWS files alone scored higher there and lower on the other folders.
        Self {
            rest_period: 120,
            base_threshold: 0.72,
            max_left: 7,
            max_active: 15,
            bits: 3,
            phases: 1,
            range: Range::Adaptive {
                history: 1000,
                margin: 0.05,
            },
        }
    }
}

/// Online contextual detector: feed values in time order, get a score in [0, 1] for each.
#[derive(Clone, Debug)]
pub struct ContextDetector {
    config: ContextConfig,
    /// The range the levels are read against; `None` before the first value.
    bounds: Option<(f64, f64)>,
    /// One memory per phase.
    memories: Vec<Memory>,
    past: VecDeque<f64>,
    replay_credit: usize,
    /// Points left to hold at zero.
    resting: usize,
}

impl Default for ContextDetector {
    fn default() -> Self {
        Self::new(ContextConfig::default())
    }
}

impl ContextDetector {
    pub fn new(config: ContextConfig) -> Self {
        Self {
            config,
            bounds: match config.range {
                Range::Fixed { min, max } => Some((min, max)),
                Range::Adaptive { .. } => None,
            },
            memories: vec![Memory::default(); config.phases.max(1) as usize],
            past: VecDeque::new(),
            replay_credit: 0,
            // Nothing is reported before a rest period of learning.
            resting: config.rest_period,
        }
    }

    /// Sensor facts of `value` with the levels shifted up by `shift` (of a level): bit i of its
    /// level is fact `2i + bit`. A level above the range takes more bits (new facts, so never
    /// predicted); below it, a fact of its own.
    fn sensors(&self, value: f64, shift: f64) -> Vec<u32> {
        let (min, max) = self.bounds.unwrap_or((value, value));
        let top = f64::from((1u32 << self.config.bits) - 1);
        let step = if max > min { (max - min) / top } else { 1.0 };
        let level = ((value - min) / step + shift).floor();
        if level < 0.0 {
            return vec![u32::MAX >> 1];
        }
        let level = level.min(f64::from(u32::MAX >> 2)) as u32;
        let bits = self.config.bits.max(32 - level.leading_zeros());
        (0..bits).map(|i| 2 * i + ((level >> i) & 1)).collect()
    }

    /// The score before rest, averaged over the phases; `value` joins every memory.
    fn raw(&mut self, value: f64) -> f64 {
        let phases = self.memories.len();
        let mut sum = 0.0;
        for k in 0..phases {
            let sensors = self.sensors(value, k as f64 / phases as f64);
            let memory = &mut self.memories[k];
            let unpredicted = sensors
                .iter()
                .any(|f| memory.predicted.binary_search(f).is_err());
            let step = memory.step(&sensors, self.config.max_left, self.config.max_active);
            if unpredicted {
                sum += (1.0 - step.confirmed + step.novel) / 2.0;
            }
        }
        // One phase: `sum / 1.0` is the phase's score, bit for bit.
        sum / phases as f64
    }

    /// Widens the range to take `value` in and rebuilds the memory from the recent past.
    fn widen(&mut self, value: f64, margin: f64) {
        let (lo, hi) = match self.bounds {
            None => (value, value),
            Some((lo, hi)) => {
                let span = (hi - lo).max(1e-12);
                if value < lo {
                    (value - margin * span, hi)
                } else {
                    (lo, value + margin * span)
                }
            }
        };
        self.bounds = Some((lo, hi));
        self.memories
            .iter_mut()
            .for_each(|m| *m = Memory::default());
        let n = self.past.len().min(self.replay_credit);
        self.replay_credit -= n;
        let recent: Vec<f64> = self
            .past
            .iter()
            .skip(self.past.len() - n)
            .copied()
            .collect();
        for v in recent {
            self.raw(v);
        }
    }

    pub fn update(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let raw = self.learn(value);
        let score = if self.resting == 0 { raw } else { 0.0 };
        self.resting = self.resting.saturating_sub(1);
        if raw >= self.config.base_threshold {
            self.resting = self.config.rest_period;
        }
        score
    }

    /// The score before rest: the range first takes `value` in, then the memory.
    fn learn(&mut self, value: f64) -> f64 {
        if let Range::Adaptive { history, margin } = self.config.range {
            let outside = self.bounds.is_none_or(|(lo, hi)| value < lo || value > hi);
            self.replay_credit = (self.replay_credit + REPLAY_CREDIT_PER_POINT).min(history);
            if outside {
                self.widen(value, margin);
            }
            self.past.push_back(value);
            if self.past.len() > history {
                self.past.pop_front();
            }
        }
        self.raw(value)
    }
}

/// The scores before rest (`update` holds them at zero while resting), for evaluation.
pub fn raw_series_with(values: &[f64], config: ContextConfig) -> Vec<f64> {
    let mut d = ContextDetector::new(config);
    values
        .iter()
        .map(|&v| if v.is_finite() { d.learn(v) } else { 0.0 })
        .collect()
}

pub fn score_series_with(values: &[f64], config: ContextConfig) -> Vec<f64> {
    let mut d = ContextDetector::new(config);
    values.iter().map(|&v| d.update(v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sawtooth(n: usize) -> Vec<f64> {
        (0..n).map(|i| (i % 8) as f64).collect()
    }

    #[test]
    fn a_learned_pattern_scores_zero_and_a_break_in_it_is_flagged_once() {
        let mut values = sawtooth(1000);
        // The same values, out of order: only the sequence is unusual.
        values[700..708].copy_from_slice(&[7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]);
        let scores = score_series_with(&values, ContextConfig::default());
        assert!(scores[300..700].iter().all(|&s| s == 0.0));
        let flagged: Vec<usize> = (0..values.len()).filter(|&i| scores[i] >= 0.75).collect();
        assert_eq!(flagged.len(), 1, "{flagged:?}");
        assert!((700..708).contains(&flagged[0]), "{flagged:?}");
    }

    #[test]
    fn two_phases_also_learn_a_pattern_and_flag_a_break_in_it_once() {
        let mut values = sawtooth(1000);
        values[700..708].copy_from_slice(&[7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]);
        let config = ContextConfig {
            phases: 2,
            ..ContextConfig::default()
        };
        let scores = score_series_with(&values, config);
        assert!(scores[300..700].iter().all(|&s| s == 0.0));
        assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
        let flagged: Vec<usize> = (0..values.len()).filter(|&i| scores[i] >= 0.72).collect();
        assert_eq!(flagged.len(), 1, "{flagged:?}");
        assert!((700..708).contains(&flagged[0]), "{flagged:?}");
    }

    #[test]
    fn a_value_beyond_the_range_seen_is_flagged() {
        let mut values = sawtooth(600);
        values[500] = 40.0;
        let scores = score_series_with(&values, ContextConfig::default());
        assert!(scores[500] >= 0.75, "{}", scores[500]);
    }

    #[test]
    fn scores_are_deterministic_and_in_the_unit_interval() {
        let values: Vec<f64> = (0..2000)
            .map(|i| ((i * 7919) % 101) as f64 + if i % 500 == 499 { 300.0 } else { 0.0 })
            .collect();
        let a = score_series_with(&values, ContextConfig::default());
        let b = score_series_with(&values, ContextConfig::default());
        assert_eq!(a, b);
        assert!(a.iter().all(|s| (0.0..=1.0).contains(s)));
    }
}
