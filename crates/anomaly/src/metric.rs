//! Online anomaly scores for metric series (CPU, network, disk, request counts at 5-minute steps),
//! in the NAB format: one `anomaly_score` in [0, 1] per point, computed from that point and the
//! past only.
//!
//! [`score_series`], what the API and the CLI use, runs the contextual detector
//! ([`crate::context`]): it learns which short sequences of coarse levels follow each other, so
//! it sees changes of pattern and level that no single value gives away, and on the NAB AWS files
//! it scores well above the detector below (figures in the crate README).
//!
//! [`MetricDetector`] is the previous default, kept as the evaluation's second opinion: a robust
//! per-point surprise, calibrated and gated by novelty.
//! 1. Surprise: the point's distance from the median of the recent past in robust standard
//!    deviations (MAD), so one outlier in the history does not hide the next one.
//! 2. Calibration: that distance becomes its empirical tail probability among the distances seen
//!    before. Different metrics (CPU percent, bytes, request counts) then speak the same
//!    language, so one threshold fits all series.
//!    The point is judged on two views, each with its own history and calibration: the value
//!    itself (spikes) and its six-point moving average (level shifts and slow drifts that no
//!    single point gives away); the larger calibrated score wins.
//! 3. Novelty: a score only counts while it is the highest of the recent past. An incident is
//!    then reported when it starts, not on every one of its points: an operator wants one page per
//!    incident, and NAB charges every extra detection as a false positive.
//!
//! [`RollingMad`] is the simple baseline the evaluation compares against: the same surprise
//! measure, uncalibrated and without novelty.

use std::collections::VecDeque;

/// A window of recent values kept sorted as well, so median and MAD are cheap.
#[derive(Clone, Debug)]
struct Window {
    capacity: usize,
    order: VecDeque<f64>,
    sorted: Vec<f64>,
}

impl Window {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            order: VecDeque::with_capacity(capacity),
            sorted: Vec::with_capacity(capacity),
        }
    }

    fn push(&mut self, x: f64) {
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            let i = self.sorted.partition_point(|&v| v < old);
            self.sorted.remove(i);
        }
        self.order.push_back(x);
        let i = self.sorted.partition_point(|&v| v < x);
        self.sorted.insert(i, x);
    }

    fn len(&self) -> usize {
        self.sorted.len()
    }

    fn median(&self) -> f64 {
        let n = self.sorted.len();
        if n % 2 == 1 {
            self.sorted[n / 2]
        } else {
            (self.sorted[n / 2 - 1] + self.sorted[n / 2]) / 2.0
        }
    }

    /// Median absolute deviation from `m`, by merging outwards from `m` in the sorted values.
    fn mad(&self, m: f64) -> f64 {
        let s = &self.sorted;
        let n = s.len();
        let target = n / 2;
        let mut hi = s.partition_point(|&v| v < m);
        let mut lo = hi;
        let mut dev = 0.0;
        for _ in 0..=target {
            let left = if lo > 0 { m - s[lo - 1] } else { f64::INFINITY };
            let right = if hi < n { s[hi] - m } else { f64::INFINITY };
            if left <= right {
                dev = left;
                lo -= 1;
            } else {
                dev = right;
                hi += 1;
            }
        }
        dev
    }

    /// Fraction of values at or above `x`.
    fn tail(&self, x: f64) -> f64 {
        let n = self.sorted.len();
        (n - self.sorted.partition_point(|&v| v < x)) as f64 / n as f64
    }
}

/// Robust distance of `x` from the window, in standard deviations. CloudWatch values are often
/// quantised (CPU steps of 0.07%), which makes the MAD zero; the mean absolute deviation then
/// still measures the usual wobble.
fn surprise(w: &Window, x: f64) -> f64 {
    let m = w.median();
    let mad = 1.4826 * w.mad(m);
    let mean_abs = w.sorted.iter().map(|v| (v - m).abs()).sum::<f64>() / w.len() as f64;
    let scale = mad.max(mean_abs).max(1e-6 * m.abs()).max(1e-9);
    (x - m).abs() / scale
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricConfig {
    /// Points of history behind the median and MAD.
    pub history: usize,
    /// Past surprises the calibration compares against.
    pub calibration: usize,
    /// Points over which the memory of the last detection halves: a new detection must beat it.
    pub refractory_half_life: f64,
    /// Points to see before scoring at all.
    pub warmup: usize,
    /// Points averaged by the level-shift channel (0 turns it off).
    pub smoothing: usize,
    /// Also score the change from the previous point.
    pub differences: bool,
}

impl Default for MetricConfig {
    fn default() -> Self {
        // Chosen on the NAB AWS files from a 12-point grid; `examples/nab_eval.rs` reports the
        // leave-one-file-out score of that choice beside the tuned one.
        Self {
            history: 2000,
            calibration: 1000,
            refractory_half_life: 3000.0,
            warmup: 144,
            smoothing: 6,
            differences: false,
        }
    }
}

/// One view of the series (the value, its change, its short moving average) with its own
/// history and its own calibration, so views on different scales combine by taking the largest.
#[derive(Clone, Debug)]
struct Channel {
    values: Window,
    surprises: Window,
}

impl Channel {
    fn new(config: &MetricConfig) -> Self {
        Self {
            values: Window::new(config.history),
            surprises: Window::new(config.calibration),
        }
    }

    /// The calibrated score of `x`, then `x` joins the history.
    fn update(&mut self, x: f64, scoring: bool) -> f64 {
        let mut score = 0.0;
        if self.values.len() >= 12 {
            let s = surprise(&self.values, x);
            if scoring && self.surprises.len() >= 12 {
                // The tail probability among past surprises, on a log scale normalised by the best
                // the window can resolve; beyond the largest surprise seen, how far beyond it.
                let n = self.surprises.len() as f64;
                let tail = self.surprises.tail(s);
                let u = if tail > 0.0 {
                    -tail.log10() / (n + 1.0).log10()
                } else {
                    let max = self.surprises.sorted[self.surprises.len() - 1];
                    1.0 + (s / max.max(1e-12)).ln()
                };
                score = u / (1.0 + u);
            }
            self.surprises.push(s);
        }
        self.values.push(x);
        score
    }
}

/// Online detector: feed values in time order, get a score in [0, 1] for each.
#[derive(Clone, Debug)]
pub struct MetricDetector {
    config: MetricConfig,
    value: Channel,
    difference: Option<Channel>,
    smoothed: Option<Channel>,
    recent: VecDeque<f64>,
    recent_sum: f64,
    previous: Option<f64>,
    decay: f64,
    /// The highest recent score, decaying: the bar a new detection has to clear.
    bar: f64,
    seen: usize,
}

impl MetricDetector {
    pub fn new(config: MetricConfig) -> Self {
        Self {
            value: Channel::new(&config),
            difference: config.differences.then(|| Channel::new(&config)),
            smoothed: (config.smoothing > 1).then(|| Channel::new(&config)),
            recent: VecDeque::with_capacity(config.smoothing + 1),
            recent_sum: 0.0,
            previous: None,
            decay: 0.5f64.powf(1.0 / config.refractory_half_life),
            bar: 0.0,
            seen: 0,
            config,
        }
    }

    /// The calibrated score of `value` before novelty: the largest over the channels.
    fn calibrated(&mut self, value: f64) -> f64 {
        let scoring = self.seen > self.config.warmup;
        let mut score = self.value.update(value, scoring);
        if let (Some(c), Some(p)) = (self.difference.as_mut(), self.previous) {
            score = score.max(c.update(value - p, scoring));
        }
        self.previous = Some(value);
        if let Some(c) = self.smoothed.as_mut() {
            self.recent.push_back(value);
            self.recent_sum += value;
            if self.recent.len() > self.config.smoothing {
                self.recent_sum -= self.recent.pop_front().unwrap_or(0.0);
            }
            if self.recent.len() == self.config.smoothing {
                let mean = self.recent_sum / self.config.smoothing as f64;
                score = score.max(c.update(mean, scoring));
            }
        }
        score
    }

    pub fn update(&mut self, value: f64) -> f64 {
        self.seen += 1;
        if !value.is_finite() {
            return 0.0;
        }
        let score = self.calibrated(value);
        let bar = self.bar * self.decay;
        self.bar = bar.max(score);
        if score > bar { score } else { 0.0 }
    }
}

/// Scores a whole series with the default detector; flag points at
/// [`crate::csv::METRIC_LABEL_THRESHOLD`].
pub fn score_series(values: &[f64]) -> Vec<f64> {
    crate::context::score_series_with(values, crate::context::ContextConfig::default())
}

/// Scores a whole series with the calibrated-MAD detector.
pub fn score_series_with(values: &[f64], config: MetricConfig) -> Vec<f64> {
    let mut d = MetricDetector::new(config);
    values.iter().map(|&v| d.update(v)).collect()
}

/// The rolling median / MAD baseline: surprise against the last `history` points, mapped to
/// [0, 1) by `z / (1 + z)`.
#[derive(Clone, Debug)]
pub struct RollingMad {
    values: Window,
}

impl RollingMad {
    pub fn new(history: usize) -> Self {
        Self {
            values: Window::new(history),
        }
    }

    pub fn update(&mut self, value: f64) -> f64 {
        let score = if self.values.len() >= 12 && value.is_finite() {
            let z = surprise(&self.values, value);
            z / (1.0 + z)
        } else {
            0.0
        };
        if value.is_finite() {
            self.values.push(value);
        }
        score
    }
}

pub fn baseline_series(values: &[f64]) -> Vec<f64> {
    let mut d = RollingMad::new(288);
    values.iter().map(|&v| d.update(v)).collect()
}
