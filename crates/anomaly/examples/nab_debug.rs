// Per-file diagnostics of the metric detector at a threshold (dev aid).
use std::{fs, path::Path};
use chrono::NaiveDateTime;
use cloudspend_anomaly::{metric, nab};
fn ts(s: &str) -> i64 { NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S%.f").unwrap().and_utc().timestamp() }
fn main() {
    let dir = Path::new("/work/shared/data/nab-aws");
    let thr: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0.9);
    let w: serde_json::Value = serde_json::from_str(&fs::read_to_string(dir.join("labels/combined_windows.json")).unwrap()).unwrap();
    let mut names: Vec<_> = fs::read_dir(dir.join("data")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for name in names {
        let text = fs::read_to_string(dir.join("data").join(&name)).unwrap();
        let rows: Vec<(i64, f64)> = text.lines().skip(1).map(|l| { let mut p = l.split(','); (ts(p.next().unwrap()), p.next().unwrap().parse().unwrap()) }).collect();
        let t: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let v: Vec<f64> = rows.iter().map(|r| r.1).collect();
        let s = metric::score_series(&v);
        let prob = nab::probationary_length(t.len());
        let wins: Vec<(usize, usize)> = w[&format!("realAWSCloudwatch/{name}")].as_array().unwrap().iter().map(|p| {
            let a = ts(p[0].as_str().unwrap()); let b = ts(p[1].as_str().unwrap());
            (t.iter().position(|&x| x == a).unwrap(), t.iter().position(|&x| x == b).unwrap()) }).collect();
        let det: Vec<usize> = (prob..t.len()).filter(|&i| s[i] >= thr).collect();
        let mut out = String::new();
        for &(a, b) in &wins {
            let first = det.iter().find(|&&i| i >= a && i <= b);
            out += &format!(" W[{a}-{b}]:{}", first.map_or("MISS".into(), |&i| format!("{:.2}", (i - a) as f64 / (b - a + 1) as f64)));
        }
        let fps: Vec<usize> = det.iter().copied().filter(|&i| !wins.iter().any(|&(a, b)| i >= a && i <= b)).collect();
        println!("{name:45} n={} {out} FP={} {:?}", t.len(), fps.len(), &fps[..fps.len().min(8)]);
    }
}
