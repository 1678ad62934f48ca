//! The metric detector on NAB's real AWS CloudWatch files, scored with NAB's rules. The data is
//! read from the repository's `tests/data/nab-aws` (or `NAB_AWS_DIR`); when it is
//! missing these tests fail and say where they looked, they never pass by scoring nothing.

mod common;

use cloudspend_anomaly::context::{self, ContextConfig, Range};
use cloudspend_anomaly::csv::METRIC_LABEL_THRESHOLD;
use cloudspend_anomaly::metric;
use cloudspend_anomaly::nab::{self, PROFILES};
use common::nab_data::{self, corpus};

/// Measured 72.2 (standard, threshold optimised on the 17 files) for the default chosen over
/// seven NAB folders (`examples/nab_more.rs`). The floor was 75.0 for the earlier default, a
/// two-phase setting chosen on these 17 files alone (76.6 here, 50.9 on NAB's six other folders
/// at its threshold); it was lowered with the default, which trades 4.4 points on these files for
/// 10.6 on the others. Below NAB numenta's stored results on these files (73.4), which the README
/// says.
const STANDARD_FLOOR: f64 = 71.0;

fn standard(files: &[nab_data::NabFile], scores: &[Vec<f64>]) -> f64 {
    nab::score_corpus(&corpus(files, scores), &PROFILES[0].costs).normalized
}

#[test]
fn metric_detector_beats_the_rolling_mad_baseline_and_stays_above_its_floor() {
    let files = nab_data::load(&nab_data::default_dir());
    assert_eq!(files.len(), 17, "expected the 17 realAWSCloudwatch files");
    let ours: Vec<Vec<f64>> = files
        .iter()
        .map(|f| metric::score_series(&f.values))
        .collect();
    let baseline: Vec<Vec<f64>> = files
        .iter()
        .map(|f| metric::baseline_series(&f.values))
        .collect();
    let (ours, baseline) = (standard(&files, &ours), standard(&files, &baseline));
    assert!(
        ours > baseline + 20.0,
        "ours {ours:.1} vs baseline {baseline:.1}"
    );
    assert!(
        ours >= STANDARD_FLOOR,
        "standard score {ours:.1} fell below {STANDARD_FLOOR}"
    );
}

/// The label threshold is chosen over seven folders, not these 17 files: on them it must stay
/// within a point of their own optimum (71.5 against 72.2 when written).
#[test]
fn label_threshold_scores_near_the_optimum_of_these_files() {
    let files = nab_data::load(&nab_data::default_dir());
    let scores: Vec<Vec<f64>> = files
        .iter()
        .map(|f| metric::score_series(&f.values))
        .collect();
    let c = corpus(&files, &scores);
    let optimum = nab::score_corpus(&c, &PROFILES[0].costs).normalized;
    let at_label = nab::score_corpus_at(&c, &PROFILES[0].costs, METRIC_LABEL_THRESHOLD).normalized;
    assert!(
        (optimum - at_label).abs() < 1.0,
        "{at_label:.2} at the label threshold vs {optimum:.2}"
    );
}

/// Our contextual detector run as NAB runs contextOSE (the file's range, a rest period of 3% of
/// the file, CAD's rest level 0.75) must score like NAB's stored contextOSE results (72.1): a check that it implements
/// the same algorithm. Tie-breaks differ, so rows are not identical; 71.8 when written.
#[test]
fn context_detector_with_nabs_file_range_scores_like_stored_context_ose() {
    let dir = nab_data::default_dir();
    let files = nab_data::load(&dir);
    let ours: Vec<Vec<f64>> = files
        .iter()
        .map(|f| {
            let min = f.values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = f.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let config = ContextConfig {
                rest_period: nab::probationary_length(f.values.len()) / 5,
                base_threshold: 0.75,
                // CAD reads one quantisation.
                phases: 1,
                range: Range::Fixed { min, max },
                ..ContextConfig::default()
            };
            context::score_series_with(&f.values, config)
        })
        .collect();
    let stored: Vec<Vec<f64>> = files
        .iter()
        .map(|f| {
            nab_data::stored_column(&dir, "contextOSE", &f.name, 2)
                .unwrap_or_else(|| panic!("NAB's stored contextOSE results missing for {}", f.name))
        })
        .collect();
    let (ours, stored) = (standard(&files, &ours), standard(&files, &stored));
    assert!(
        (ours - stored).abs() < 1.0,
        "ours {ours:.1} vs stored {stored:.1}"
    );
}

#[test]
fn scorer_windows_match_nabs_stored_labels_and_numenta_rescores_as_measured() {
    let dir = nab_data::default_dir();
    let files = nab_data::load(&dir);
    for f in &files {
        let labels = f.nab_labels.as_ref().unwrap_or_else(|| {
            panic!(
                "NAB's stored labels (numenta results) missing for {}",
                f.name
            )
        });
        let ours: Vec<u8> = f
            .timestamps
            .iter()
            .map(|&t| u8::from(f.windows.iter().any(|&(a, b)| a <= t && t <= b)))
            .collect();
        assert_eq!(&ours, labels, "window rows of {}", f.name);
    }
    let numenta: Vec<Vec<f64>> = files
        .iter()
        .map(|f| {
            nab_data::stored_column(&dir, "numenta", &f.name, 2)
                .unwrap_or_else(|| panic!("NAB's stored numenta results missing for {}", f.name))
        })
        .collect();
    let c = corpus(&files, &numenta);
    let s: Vec<f64> = PROFILES
        .iter()
        .map(|p| nab::score_corpus(&c, &p.costs).normalized)
        .collect();
    // NAB's own 58-file threshold (config/thresholds.json, 0.5422) detects the same windows on
    // these files as the subset optimum (0.5473), with no FP between them: the same score.
    let at_nab = nab::score_corpus_at(&c, &PROFILES[0].costs, 0.542_187_690_734_863_4).normalized;
    assert!((s[0] - 73.4).abs() < 0.05, "{s:?}");
    assert!((at_nab - s[0]).abs() < 0.05, "{at_nab} vs {s:?}");
    assert!(
        (s[1] - 68.7).abs() < 0.05 && (s[2] - 76.7).abs() < 0.05,
        "{s:?}"
    );
    // The null detector (0.5 everywhere) is the zero of the normalisation.
    let null: Vec<Vec<f64>> = files.iter().map(|f| vec![0.5; f.values.len()]).collect();
    assert_eq!(standard(&files, &null), 0.0);
}
