//! The Numenta Anomaly Benchmark scoring rules (NAB v1.1, `nab/sweeper.py`, `nab/optimizer.py`,
//! `nab/runner.py`), re-implemented so detectors can be compared without NAB's Python stack.
//!
//! * The first `min(floor(15% of rows), 750)` rows of each file are probationary: not scored.
//! * Inside a labelled window a detection is worth `tp * S(x) / S(-1)`, where
//!   `S(x) = 2 * sigmoid(-5x) - 1` and `x = -(right - i + 1) / width` runs from -1 at the left
//!   edge to ~0 at the right edge; only the best (earliest) detection of a window counts.
//! * A missed window costs `-fn`. Every detection outside a window costs `fp * S(d)` with `d` its
//!   distance past the previous window in window widths (`S` is -1 from 3 widths on, and with no
//!   previous window).
//! * The threshold is the one that maximises the corpus total (all files together), and the
//!   normalised score is `100 * (raw - null) / (perfect - null)`, with null = every window missed
//!   and perfect = every window caught at its left edge.
//!
//! Windows are entered on the row whose timestamp equals the window's start, as NAB does; NAB's
//! window files are built from row timestamps, so this always matches on its data.
//!
//! Cross-check against NAB (`tests/nab_aws.rs`, `examples/nab_eval.rs`): on the 17 AWS files our
//! windows cover exactly the rows NAB's stored results mark `label = 1`, and NAB's stored numenta
//! scores re-score to 73.4 / 68.7 / 76.7 (standard / low FP / low FN) with the threshold optimised
//! on these files, 73.4 / 65.8 / 76.7 at NAB's own 58-file thresholds. NAB publishes 70.1 / 63.1 /
//! 74.3 for numenta; that gap is the file set, not the rules: the published figure is the
//! normalised total over all 58 files (null and perfect included), and the AWS files are easier
//! for numenta than the corpus average. The low-FP difference between the two thresholds is
//! NAB's optimiser doing its job: the threshold that is best on 58 files is not the best on 17.

/// NAB's `CostMatrix` (the `tnWeight` it carries is unused by the scorer).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostMatrix {
    pub tp: f64,
    pub fp: f64,
    pub fn_: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub costs: CostMatrix,
}

/// NAB's `config/profiles.json`.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        costs: CostMatrix {
            tp: 1.0,
            fp: 0.11,
            fn_: 1.0,
        },
    },
    Profile {
        name: "reward_low_FP_rate",
        costs: CostMatrix {
            tp: 1.0,
            fp: 0.22,
            fn_: 1.0,
        },
    },
    Profile {
        name: "reward_low_FN_rate",
        costs: CostMatrix {
            tp: 1.0,
            fp: 0.11,
            fn_: 2.0,
        },
    },
];

const PROBATION_PERCENT: f64 = 0.15;

pub fn scaled_sigmoid(relative_position: f64) -> f64 {
    if relative_position >= 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * relative_position).exp()) - 1.0
    }
}

pub fn probationary_length(rows: usize) -> usize {
    ((PROBATION_PERCENT * rows as f64).floor()).min(PROBATION_PERCENT * 5000.0) as usize
}

/// One file: row timestamps (any monotonic unit), the detector's score per row, and the labelled
/// windows as inclusive (start, end) timestamps.
#[derive(Clone, Copy, Debug)]
pub struct ScoredFile<'a> {
    pub timestamps: &'a [i64],
    pub scores: &'a [f64],
    pub windows: &'a [(i64, i64)],
}

/// Where a row falls for scoring.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    Probationary,
    Outside,
    Window(usize),
}

#[derive(Clone, Copy, Debug)]
struct SweepPoint {
    score: f64,
    weight: f64,
    place: Place,
}

/// NAB's `calcSweepScore`: each row's weight if it were a detection. Window ids are offset by
/// `first_window` so a corpus can share one id space.
fn sweep(file: &ScoredFile<'_>, costs: &CostMatrix, first_window: usize) -> Vec<SweepPoint> {
    let ts = file.timestamps;
    let probation = probationary_length(ts.len());
    let max_tp = scaled_sigmoid(-1.0);
    let mut pending = file.windows.iter().enumerate().peekable();
    let mut current: Option<(usize, usize, f64, i64)> = None; // (id, right index, width, end)
    let mut previous: Option<(usize, f64)> = None; // (right index, width)
    let mut out = Vec::with_capacity(ts.len());
    for (i, (&t, &score)) in ts.iter().zip(file.scores).enumerate() {
        if current.is_none()
            && let Some(&(k, &(start, end))) = pending.peek()
            && t == start
        {
            pending.next();
            let right = ts.iter().position(|&x| x == end).unwrap_or(ts.len() - 1);
            current = Some((first_window + k, right, (right - i + 1) as f64, end));
        }
        let (weight, place) = match current {
            Some((id, right, width, _)) => {
                let position = -((right as f64 - i as f64 + 1.0) / width);
                (
                    scaled_sigmoid(position) * costs.tp / max_tp,
                    Place::Window(id),
                )
            }
            None => {
                let position = previous.map_or(3.0, |(right, width)| {
                    (i as f64 - right as f64).abs() / (width - 1.0)
                });
                (scaled_sigmoid(position) * costs.fp, Place::Outside)
            }
        };
        let place = if i >= probation {
            place
        } else {
            Place::Probationary
        };
        out.push(SweepPoint {
            score,
            weight,
            place,
        });
        if let Some((_, right, width, end)) = current
            && t == end
        {
            previous = Some((right, width));
            current = None;
        }
    }
    out
}

/// A corpus result for one profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CorpusScore {
    pub threshold: f64,
    pub raw: f64,
    pub normalized: f64,
    /// Windows counted (those with at least one scored row).
    pub windows: usize,
}

fn total_windows(files: &[ScoredFile<'_>]) -> usize {
    files.iter().map(|f| f.windows.len()).sum()
}

/// Raw and normalised scores at every distinct threshold, highest threshold first (NAB's
/// `calcScoreByThreshold` over the whole corpus).
pub fn scores_by_threshold(files: &[ScoredFile<'_>], costs: &CostMatrix) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    let mut first = 0;
    for f in files {
        points.extend(sweep(f, costs, first));
        first += f.windows.len();
    }
    points.retain(|p| p.place != Place::Probationary);
    points.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut window_part: Vec<Option<f64>> = vec![None; first];
    for p in &points {
        if let Place::Window(id) = p.place {
            window_part[id] = Some(-costs.fn_);
        }
    }
    let mut window_sum: f64 = window_part.iter().flatten().sum();
    let mut fp_sum = 0.0;
    let mut out = Vec::new();
    let mut threshold = 1.1;
    for p in &points {
        if p.score != threshold {
            out.push((threshold, window_sum + fp_sum));
            threshold = p.score;
        }
        match p.place {
            Place::Window(id) => {
                let part = window_part[id].get_or_insert(-costs.fn_);
                if p.weight > *part {
                    window_sum += p.weight - *part;
                    *part = p.weight;
                }
            }
            _ => fp_sum += p.weight,
        }
    }
    out.push((threshold, window_sum + fp_sum));
    out
}

fn normalize(raw: f64, windows: usize, costs: &CostMatrix) -> f64 {
    let null = -costs.fn_ * windows as f64;
    let perfect = costs.tp * windows as f64;
    100.0 * (raw - null) / (perfect - null)
}

/// NAB's optimiser: the threshold that maximises the corpus total (ties go to the higher one).
pub fn score_corpus(files: &[ScoredFile<'_>], costs: &CostMatrix) -> CorpusScore {
    let mut best = (1.1, f64::NEG_INFINITY);
    for (threshold, raw) in scores_by_threshold(files, costs) {
        if raw > best.1 {
            best = (threshold, raw);
        }
    }
    let windows = total_windows(files);
    CorpusScore {
        threshold: best.0,
        raw: best.1,
        normalized: normalize(best.1, windows, costs),
        windows,
    }
}

/// The corpus score at a fixed threshold (a detection is a score at or above it).
pub fn score_corpus_at(
    files: &[ScoredFile<'_>],
    costs: &CostMatrix,
    threshold: f64,
) -> CorpusScore {
    let table = scores_by_threshold(files, costs);
    // Entry k holds the score with every row scoring >= its threshold detected.
    let raw = table
        .iter()
        .rev()
        .find(|(t, _)| *t >= threshold)
        .map_or(table[0].1, |&(_, raw)| raw);
    let windows = total_windows(files);
    CorpusScore {
        threshold,
        raw,
        normalized: normalize(raw, windows, costs),
        windows,
    }
}

/// What a detector did on one file at a threshold: for diagnosis, not scoring.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileOutcome {
    /// Per labelled window: the weight of its best detection, `None` when missed (or when the
    /// window lies in the probationary period).
    pub windows: Vec<Option<f64>>,
    /// Row indices of detections outside every window (after the probationary period).
    pub false_positives: Vec<usize>,
    /// The file's raw score at the threshold.
    pub raw: f64,
}

pub fn file_outcome(file: &ScoredFile<'_>, costs: &CostMatrix, threshold: f64) -> FileOutcome {
    let mut out = FileOutcome {
        windows: vec![None; file.windows.len()],
        ..FileOutcome::default()
    };
    let mut scored = vec![false; file.windows.len()];
    for (i, p) in sweep(file, costs, 0).iter().enumerate() {
        match p.place {
            Place::Probationary => {}
            Place::Window(id) => {
                scored[id] = true;
                if p.score >= threshold {
                    let best = out.windows[id].get_or_insert(p.weight);
                    *best = best.max(p.weight);
                }
            }
            Place::Outside => {
                if p.score >= threshold {
                    out.false_positives.push(i);
                    out.raw += p.weight;
                }
            }
        }
    }
    for (w, s) in out.windows.iter().zip(scored) {
        if s {
            out.raw += w.unwrap_or(-costs.fn_);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file<'a>(ts: &'a [i64], scores: &'a [f64], windows: &'a [(i64, i64)]) -> ScoredFile<'a> {
        ScoredFile {
            timestamps: ts,
            scores,
            windows,
        }
    }

    #[test]
    fn sigmoid_matches_nab_reference_values() {
        assert!((scaled_sigmoid(-1.0) - 0.98661).abs() < 1e-5);
        assert!((scaled_sigmoid(-0.5) - 0.84828).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert_eq!(scaled_sigmoid(3.0), -1.0);
    }

    #[test]
    fn detection_at_left_edge_of_every_window_scores_100() {
        let ts: Vec<i64> = (0..1000).collect();
        let mut scores = vec![0.0; 1000];
        scores[500] = 1.0;
        scores[800] = 1.0;
        let windows = [(500, 549), (800, 849)];
        let s = score_corpus(&[file(&ts, &scores, &windows)], &PROFILES[0].costs);
        assert!((s.normalized - 100.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn detecting_nothing_scores_zero_and_false_positives_cost_fp_weight() {
        let ts: Vec<i64> = (0..1000).collect();
        let scores = vec![0.0; 1000];
        let windows = [(500, 549)];
        let s = score_corpus(&[file(&ts, &scores, &windows)], &PROFILES[0].costs);
        assert_eq!(s.normalized, 0.0);
        let mut noisy = scores.clone();
        noisy[300] = 1.0; // no window before it: a full false positive
        let s = score_corpus_at(&[file(&ts, &noisy, &windows)], &PROFILES[0].costs, 0.5);
        assert!((s.raw - (-1.0 - 0.11)).abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn probationary_rows_are_ignored_and_earlier_detection_scores_higher() {
        assert_eq!(probationary_length(4032), 604);
        assert_eq!(probationary_length(18050), 750);
        let ts: Vec<i64> = (0..1000).collect();
        let windows = [(500, 599)];
        let mut early = vec![0.0; 1000];
        early[510] = 1.0;
        early[10] = 1.0; // probationary: free
        let mut late = vec![0.0; 1000];
        late[590] = 1.0;
        let c = &PROFILES[0].costs;
        let e = score_corpus_at(&[file(&ts, &early, &windows)], c, 0.5).raw;
        let l = score_corpus_at(&[file(&ts, &late, &windows)], c, 0.5).raw;
        assert!(e > 0.9 && l < e && l > 0.0, "{e} {l}");
    }

    #[test]
    fn file_outcome_reports_caught_and_missed_windows_and_false_positives() {
        let ts: Vec<i64> = (0..1000).collect();
        let mut scores = vec![0.0; 1000];
        scores[520] = 0.9;
        scores[700] = 0.9;
        let windows = [(500, 599), (800, 849)];
        let f = file(&ts, &scores, &windows);
        let c = &PROFILES[0].costs;
        let o = file_outcome(&f, c, 0.5);
        assert!(
            o.windows[0].is_some_and(|w| w > 0.9) && o.windows[1].is_none(),
            "{o:?}"
        );
        assert_eq!(o.false_positives, [700]);
        assert!((o.raw - score_corpus_at(&[f], c, 0.5).raw).abs() < 1e-12);
    }
}
