//! The two-phase contextual detector (`ContextConfig::phases = 2`) against the default on the
//! NAB AWS files: tuned and held-out scores for every setting of the `nab_eval` grid, and the
//! configuration-and-threshold held-out figure with the phases axis added to that grid.
//! `cargo run -p cloudspend-anomaly --release --example nab_phases` (about a minute).
//!
//! Rest is applied to the raw scores here (one raw run serves the three rest levels); a check at
//! the start asserts that this gives exactly what the detector itself outputs.

#[path = "../tests/common/nab_data.rs"]
mod nab_data;

use cloudspend_anomaly::context::{self, ContextConfig, Range};
use cloudspend_anomaly::metric::{self, MetricConfig};
use cloudspend_anomaly::nab::{self, PROFILES, ScoredFile};
use nab_data::{NabFile, corpus};

type Scores = Vec<Vec<f64>>;

fn normalized(raw: f64, windows: usize, costs: &nab::CostMatrix) -> f64 {
    let null = -costs.fn_ * windows as f64;
    100.0 * (raw - null) / (costs.tp * windows as f64 - null)
}

/// Leave one file out over `candidates`: per fold, per profile (standard, low FP), the candidate
/// and threshold best on the other files, applied to the held-out one. With one candidate this is
/// the threshold-only held-out score.
fn held_out(files: &[NabFile], candidates: &[Scores]) -> [f64; 2] {
    let windows: usize = files.iter().map(|f| f.windows.len()).sum();
    let mut out = [0.0; 2];
    for (k, p) in PROFILES.iter().take(2).enumerate() {
        let mut raw = 0.0;
        for i in 0..files.len() {
            let mut best = (f64::NEG_INFINITY, 0, 0.0);
            for (ci, s) in candidates.iter().enumerate() {
                let c = corpus(files, s);
                let others: Vec<ScoredFile<'_>> = c
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, f)| *f)
                    .collect();
                let r = nab::score_corpus(&others, &p.costs);
                if r.raw > best.0 {
                    best = (r.raw, ci, r.threshold);
                }
            }
            let c = corpus(files, &candidates[best.1]);
            raw += nab::score_corpus_at(&[c[i]], &p.costs, best.2).raw;
        }
        out[k] = normalized(raw, windows, &p.costs);
    }
    out
}

/// `ContextDetector::update`'s rest, applied to raw scores.
fn rest(raw: &[f64], period: usize, base: f64) -> Vec<f64> {
    let mut resting = period;
    raw.iter()
        .map(|&r| {
            let s = if resting == 0 { r } else { 0.0 };
            resting = resting.saturating_sub(1);
            if r >= base {
                resting = period;
            }
            s
        })
        .collect()
}

fn main() {
    let files = nab_data::load(&nab_data::default_dir());
    let default = ContextConfig::default();
    let raw_default: Scores = files
        .iter()
        .map(|f| context::raw_series_with(&f.values, default))
        .collect();
    for (f, r) in files.iter().zip(&raw_default) {
        assert_eq!(
            rest(r, default.rest_period, default.base_threshold),
            context::score_series_with(&f.values, default),
            "rest applied to raw scores must match the detector on {}",
            f.name
        );
    }

    // The `nab_eval` grid, in its order, for one and for two phases.
    let bases = [0.7, 0.72, 0.75];
    let mut grid: [Vec<Scores>; 2] = [Vec::new(), Vec::new()];
    let points: usize = files.iter().map(|f| f.values.len()).sum();
    println!(
        "{:<48} {:>6} {:>6}   {:>6} {:>6}   (held: threshold held out; time: wall clock)",
        "setting", "std", "held", "low_FP", "held"
    );
    for (p, phases) in [1, 2].into_iter().enumerate() {
        for history in [1000, 2000] {
            for margin in [0.0, 0.05, 0.1] {
                let config = ContextConfig {
                    phases,
                    range: Range::Adaptive { history, margin },
                    ..default
                };
                let start = std::time::Instant::now();
                let raw: Scores = files
                    .iter()
                    .map(|f| context::raw_series_with(&f.values, config))
                    .collect();
                let per_point = start.elapsed().as_secs_f64() / points as f64;
                for base in bases {
                    let s: Scores = raw.iter().map(|r| rest(r, 120, base)).collect();
                    let c = corpus(&files, &s);
                    let tuned: Vec<f64> = PROFILES
                        .iter()
                        .take(2)
                        .map(|p| nab::score_corpus(&c, &p.costs).normalized)
                        .collect();
                    let h = held_out(&files, std::slice::from_ref(&s));
                    println!(
                        "{:<48} {:>6.1} {:>6.1}   {:>6.1} {:>6.1}   {:>4.0} us/point",
                        format!("phases {phases}, history {history}, margin {margin}, rest {base}"),
                        tuned[0],
                        h[0],
                        tuned[1],
                        h[1],
                        per_point * 1e6
                    );
                    grid[p].push(s);
                }
            }
        }
    }
    let mad: Vec<Scores> = [1000.0, 3000.0]
        .into_iter()
        .flat_map(|refractory_half_life| {
            [0, 6, 12].into_iter().flat_map(move |smoothing| {
                [false, true]
                    .into_iter()
                    .map(move |differences| MetricConfig {
                        refractory_half_life,
                        smoothing,
                        differences,
                        ..MetricConfig::default()
                    })
            })
        })
        .map(|c| {
            files
                .iter()
                .map(|f| metric::score_series_with(&f.values, c))
                .collect()
        })
        .collect();
    let report = |name: &str, candidates: Vec<Scores>| {
        let h = held_out(&files, &candidates);
        println!(
            "configuration and threshold held out, {name} ({} candidates): standard {:.1}, low FP {:.1}",
            candidates.len(),
            h[0],
            h[1]
        );
    };
    let one = grid[0].clone();
    report("nab_eval's grid", [one.clone(), mad.clone()].concat());
    report(
        "nab_eval's grid + two phases",
        [one.clone(), grid[1].clone(), mad.clone()].concat(),
    );
    let two_at_072: Vec<Scores> = grid[1].iter().skip(1).step_by(3).cloned().collect();
    report(
        "nab_eval's grid + two phases at rest 0.72 only",
        [one, two_at_072, mad].concat(),
    );
}
