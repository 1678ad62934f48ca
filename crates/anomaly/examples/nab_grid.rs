// Dev aid: standard NAB score of the metric detector over a few configurations.
use std::{fs, path::Path};
use chrono::NaiveDateTime;
use cloudspend_anomaly::{metric::{self, MetricConfig}, nab};
fn ts(s: &str) -> i64 { NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S%.f").unwrap().and_utc().timestamp() }
fn main() {
    let dir = Path::new("/work/shared/data/nab-aws");
    let w: serde_json::Value = serde_json::from_str(&fs::read_to_string(dir.join("labels/combined_windows.json")).unwrap()).unwrap();
    let mut names: Vec<_> = fs::read_dir(dir.join("data")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let files: Vec<(Vec<i64>, Vec<f64>, Vec<(i64, i64)>)> = names.iter().map(|name| {
        let text = fs::read_to_string(dir.join("data").join(name)).unwrap();
        let rows: Vec<(i64, f64)> = text.lines().skip(1).map(|l| { let mut p = l.split(','); (ts(p.next().unwrap()), p.next().unwrap().parse().unwrap()) }).collect();
        let wins = w[&format!("realAWSCloudwatch/{name}")].as_array().unwrap().iter().map(|p| (ts(p[0].as_str().unwrap()), ts(p[1].as_str().unwrap()))).collect();
        (rows.iter().map(|r| r.0).collect(), rows.iter().map(|r| r.1).collect(), wins)
    }).collect();
    for history in [576usize, 1000, 2000] { for cal in [300usize, 500, 700, 1000] { for hl in [150.0, 1000.0] {
        let cfg = MetricConfig { history, calibration: cal, refractory_half_life: hl, ..MetricConfig::default() };
        let scores: Vec<Vec<f64>> = files.iter().map(|f| metric::score_series_with(&f.1, cfg)).collect();
        let c: Vec<nab::ScoredFile> = files.iter().zip(&scores).map(|(f, s)| nab::ScoredFile { timestamps: &f.0, scores: s, windows: &f.2 }).collect();
        let r: Vec<String> = nab::PROFILES.iter().map(|p| { let s = nab::score_corpus(&c, &p.costs); format!("{:.1}@{:.3}", s.normalized, s.threshold) }).collect();
        println!("h={history} cal={cal} hl={hl}: {}", r.join(" "));
    }}}
}
