//! Detection speed: 10,000 daily series x 400 days on one core (target: under 1 s).
//! `cargo bench -p cloudspend-anomaly --bench detect`

use std::hint::black_box;
use std::time::Instant;

use cloudspend_anomaly::{Config, detect, metric, synthetic};

/// CPU time this thread has run, from Linux's schedstat: on a shared 2-core machine wall time
/// also counts the time other builds held the core.
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(s.split_whitespace().next()?.parse::<f64>().ok()? / 1e9)
}

fn main() {
    let (series, days) = (10_000, 400);
    let set = synthetic::generate(42, series, days);
    let config = Config::default();
    let mut best = f64::INFINITY;
    let mut best_cpu = f64::INFINITY;
    let mut anomalies = 0;
    for _ in 0..3 {
        let cpu = thread_cpu_seconds();
        let start = Instant::now();
        anomalies = set
            .iter()
            .map(|s| {
                black_box(detect(black_box(&s.points), &config))
                    .anomalies
                    .len()
            })
            .sum::<usize>();
        best = best.min(start.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (cpu, thread_cpu_seconds()) {
            best_cpu = best_cpu.min(b - a);
        }
    }
    // The target is judged on CPU time where Linux reports it: wall time on this shared machine
    // also counts the time other builds held the core.
    let judged = if best_cpu.is_finite() { best_cpu } else { best };
    let points = (series * days) as f64;
    println!(
        "cost detection: {series} series x {days} days on one core: {best_cpu:.3} s CPU, {best:.3} s wall \
         (best of 3), {:.0} ns/point, {:.0} series/s, {anomalies} events; target < 1 s: {}",
        judged / points * 1e9,
        series as f64 / judged,
        if judged < 1.0 { "met" } else { "MISSED" }
    );

    // Metric mode for scale: one NAB-sized file is ~4,000 points.
    let values: Vec<f64> = (0..100_000)
        .map(|i| 20.0 + ((i * 7919) % 97) as f64 / 10.0)
        .collect();
    let start = Instant::now();
    black_box(metric::score_series(black_box(&values)));
    let t = start.elapsed().as_secs_f64();
    println!(
        "metric detection: 100,000 points: {t:.3} s, {:.0} ns/point",
        t / 1e5 * 1e9
    );
}
