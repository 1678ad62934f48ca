//! Per-file diagnosis on the NAB AWS files: for each detector at its corpus-optimal standard
//! threshold, where in each window it first fired and how many false positives it raised.
//! `cargo run -p cloudspend-anomaly --release --example nab_detail [DETECTOR...]`: `ours` (the
//! default), `mad` (the previous default), `baseline`, or a NAB detector with stored results.

#[path = "../tests/common/nab_data.rs"]
mod nab_data;

use cloudspend_anomaly::metric;
use cloudspend_anomaly::nab::{self, PROFILES};

fn main() {
    let dir = nab_data::default_dir();
    let files = nab_data::load(&dir);
    let mut wanted: Vec<String> = std::env::args().skip(1).collect();
    if wanted.is_empty() {
        wanted = vec!["ours".into(), "numenta".into()];
    }
    let costs = &PROFILES[0].costs;
    for det in &wanted {
        let scores: Vec<Vec<f64>> = files
            .iter()
            .map(|f| match det.as_str() {
                "ours" => metric::score_series(&f.values),
                "baseline" => metric::baseline_series(&f.values),
                "mad" => metric::score_series_with(&f.values, metric::MetricConfig::default()),
                other => nab_data::stored_column(&dir, other, &f.name, 2).expect("stored results"),
            })
            .collect();
        let c = nab_data::corpus(&files, &scores);
        let best = nab::score_corpus(&c, costs);
        println!(
            "== {det}: standard {:.1} at threshold {:.4}",
            best.normalized, best.threshold
        );
        for (f, sf) in files.iter().zip(&c) {
            let o = nab::file_outcome(sf, costs, best.threshold);
            let w: Vec<String> = o
                .windows
                .iter()
                .map(|w| w.map_or("miss".into(), |x| format!("{x:.2}")))
                .collect();
            println!(
                "  {:<42} raw {:>6.2}  windows [{}]  fp {} {:?}",
                f.name,
                o.raw,
                w.join(" "),
                o.false_positives.len(),
                &o.false_positives[..o.false_positives.len().min(8)]
            );
        }
    }
}
