use cloudspend_anomaly::{Config, detect, eval, synthetic};
fn main() {
    let set = synthetic::generate(7, 300, 400);
    let cfg = Config::default();
    let c = eval::evaluate(&set, &cfg);
    println!("{c:?} p={:.3} r={:.3} f1={:.3} fa/sy={:.3}", c.precision(), c.recall(), c.f1(), c.false_alerts_per_series_year());
    let verbose = std::env::args().nth(1).is_some();
    for s in &set {
        let r = detect(&s.points, &cfg);
        let rep: Vec<_> = r.anomalies.iter().map(|a| (a.first_day, a.last_day)).collect();
        let e = eval::score_events(&s.events, &rep, s.points.len());
        if verbose && (e.false_alerts > 0 || e.found < e.labelled) {
            println!("{} {:?}\n  labels {:?}\n  reported {:?}", s.name, s.traits, s.events, r.anomalies.iter().map(|a| (a.first_day, a.last_day, a.impact.to_string(), a.impact_percent.map(|p| p.round()), a.score.round())).collect::<Vec<_>>());
        }
    }
}
