//! `GET /api/dashboard` for a large tenant under 64 concurrent connections, and the same store
//! queries run directly against PostgreSQL for comparison.
//!
//! The tenant: 3 years x 200 services x 20 accounts x 10 regions of CUR rows (each service in
//! two accounts and two regions a day: 800 rows a day, 876,000 rows), written through the
//! store so the rollups are maintained exactly as in production.
//!
//! ```text
//! CLOUDSPEND_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench -p cloudspend-api --bench dashboard
//! ```
//! Prints p50/p90/p99/max latency and requests/s for: the same window again and again (served
//! from the version-checked cache after the first), 3,285 windows in rotation (each computed
//! from the rollups on its first request, which the p99 shows), and that computation's store
//! queries run directly. Client and server share the machine
//! (and its two cores), so the HTTP figures include the load generator's own cost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use cloudspend_api::{ApiConfig, AppState};
use cloudspend_core::Money;
use cloudspend_core::records::{CostRecord, CostSource};
use cloudspend_store::{AnomalyFilter, AnomalyStatus, RollupDimension, Store};

const CONNECTIONS: usize = 64;
const RUN: Duration = Duration::from_secs(20);
const WARM_UP: Duration = Duration::from_secs(2);
const DAYS: u64 = 3 * 365;
const SERVICES: usize = 200;
const ACCOUNTS: usize = 20;
const REGIONS: usize = 10;

fn rows_for(day: chrono::NaiveDate) -> Vec<CostRecord> {
    let mut rows = Vec::with_capacity(SERVICES * 4);
    let seed = day.to_epoch_days() as i64;
    for s in 0..SERVICES {
        for a in [s % ACCOUNTS, (s + 7) % ACCOUNTS] {
            for r in [s % REGIONS, (s + 3) % REGIONS] {
                // Deterministic, service-sized amounts with a daily wobble, to the nano.
                let base = 1_000_000_000i64 * (1 + (s as i64 % 37));
                let wobble =
                    (seed * 7919 + s as i64 * 104_729 + a as i64 * 31 + r as i64) % 1_000_000_007;
                let amount = Money::from_nanos(base + wobble);
                rows.push(CostRecord {
                    day,
                    source: CostSource::Cur,
                    account_id: format!("{:012}", 100_000_000_000u64 + a as u64),
                    service: format!("Service{s:03}"),
                    region: format!("region-{r}"),
                    usage_type: format!("Usage{s:03}"),
                    resource_id: String::new(),
                    line_item_type: "Usage".into(),
                    unblended: amount,
                    amortized: amount,
                    usage_amount: None,
                    currency: "USD".into(),
                    estimated: false,
                });
            }
        }
    }
    rows
}

struct Figures {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Figures {
    fn print(&mut self, label: &str) {
        self.latencies.sort();
        let n = self.latencies.len();
        let at = |q: f64| self.latencies[((q * n as f64) as usize).min(n - 1)];
        println!(
            "{label:<34} {n:>7} requests  {:>8.0} req/s  p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  errors {}",
            n as f64 / self.elapsed.as_secs_f64(),
            at(0.50).as_secs_f64() * 1e3,
            at(0.90).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            self.latencies[n - 1].as_secs_f64() * 1e3,
            self.errors
        );
    }
}

/// Runs `op` from `CONNECTIONS` tasks for `RUN` after a warm-up; collects every latency.
async fn hammer<F, Fut>(op: F) -> Figures
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let measure_from = start + WARM_UP;
    let stop = measure_from + RUN;
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            loop {
                let began = Instant::now();
                if began >= stop {
                    break;
                }
                let ok = op().await;
                if began >= measure_from {
                    latencies.push(began.elapsed());
                    if !ok {
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut figures = Figures {
        latencies: Vec::new(),
        errors: 0,
        elapsed: RUN,
    };
    for task in tasks {
        let (l, e) = task.await.unwrap();
        figures.latencies.extend(l);
        figures.errors += e;
    }
    figures
}

/// The n-th of 3,285 windows (30 to 32 days ending on one of the last 1,095 days), in
/// rotation: each is computed from the rollups on its first request (the p99 of this line),
/// served from the cache when it comes round again.
fn nth_window(n: usize) -> (chrono::NaiveDate, chrono::NaiveDate) {
    let today = Utc::now().date_naive();
    let to = today + Days::new(1) - Days::new((n % 1095) as u64);
    let from = to - Days::new(30 + ((n / 1095) % 3) as u64);
    (from, to)
}

/// The store calls the dashboard handler makes, in the same two concurrent groups.
async fn dashboard_queries(
    store: &dyn Store,
    tenant: cloudspend_core::TenantId,
    (from, to): (chrono::NaiveDate, chrono::NaiveDate),
) -> bool {
    let previous = from - Days::new(30);
    let first = tokio::try_join!(
        store.cost_rollup_days(tenant, RollupDimension::Total, previous, to, None),
        store.cost_rollup_totals(tenant, RollupDimension::Service, from, to),
        store.cost_rollup_totals(tenant, RollupDimension::Account, from, to),
        store.cost_rollup_totals(tenant, RollupDimension::Region, from, to),
    );
    let Ok((_, services, _, _)) = first else {
        return false;
    };
    let stacked: Vec<String> = services.iter().take(5).map(|t| t.key.clone()).collect();
    let filter = AnomalyFilter {
        status: Some(AnomalyStatus::Open),
        limit: 5,
        ..Default::default()
    };
    let since = Utc::now() - chrono::Duration::days(30);
    tokio::try_join!(
        store.cost_rollup_days(tenant, RollupDimension::Service, from, to, Some(&stacked)),
        store.instance_counts(tenant),
        store.recommendations(tenant),
        store.count_anomalies(tenant, AnomalyStatus::Open),
        store.anomalies(tenant, &filter),
        store.connection(tenant),
        store.collector_health(tenant),
        store.aws_usage_since(tenant, since),
    )
    .is_ok()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    std::env::var("CLOUDSPEND_TEST_POSTGRES_URL").expect(
        "set CLOUDSPEND_TEST_POSTGRES_URL to a PostgreSQL server (scripts/test.sh starts one)",
    );
    let store = cloudspend_store::testing::fresh_postgres().await;
    let (user, tenant) = store
        .create_user_with_tenant(
            cloudspend_store::NewUser {
                email: "bench@example.com".into(),
                password_hash: cloudspend_api::auth::hash_password("bench password 123".into())
                    .await
                    .unwrap(),
                is_global_owner: false,
            },
            "Large tenant",
        )
        .await
        .unwrap();
    let today = Utc::now().date_naive();
    let seeding = Instant::now();
    let mut rows_written = 0;
    let mut day = today - Days::new(DAYS);
    while day < today {
        let mut batch = Vec::new();
        for _ in 0..30 {
            if day >= today {
                break;
            }
            batch.extend(rows_for(day));
            day = day + Days::new(1);
        }
        rows_written += batch.len();
        store.upsert_daily_costs(tenant.id, &batch).await.unwrap();
    }
    let seed_time = seeding.elapsed();
    println!(
        "seeded {rows_written} cost rows ({DAYS} days x {SERVICES} services x {ACCOUNTS} accounts x {REGIONS} regions) \
         through the store in {:.1} s ({:.0} rows/s, rollups maintained on write)",
        seed_time.as_secs_f64(),
        rows_written as f64 / seed_time.as_secs_f64()
    );

    let (token, token_hash) = cloudspend_api::auth::new_token();
    store
        .create_token(cloudspend_store::NewToken {
            token_hash,
            user_id: user.id,
            tenant_id: Some(tenant.id),
            created_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::days(1),
            name: None,
        })
        .await
        .unwrap();
    let aws = cloudspend_aws_access::AwsAccess::from_env().await;
    let collections = cloudspend_collection::Collections::new(
        store.clone(),
        aws,
        None,
        cloudspend_collection::Settings::default(),
    );
    let state = AppState::new(store.clone(), ApiConfig::default(), collections);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(cloudspend_api::serve(
        listener,
        state,
        std::future::pending(),
    ));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .unwrap();
    let url = format!("http://{address}/api/dashboard");
    let check = client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert!(
        check.status().is_success(),
        "{}",
        check.text().await.unwrap()
    );
    let body: serde_json::Value = check.json().await.unwrap();
    println!(
        "dashboard: total {} over {} services, {} daily points",
        body["total"],
        body["top_services"].as_array().map_or(0, |a| a.len()),
        body["daily"].as_array().map_or(0, |a| a.len())
    );

    println!(
        "{CONNECTIONS} concurrent connections, {} s each after {} s warm-up:",
        RUN.as_secs(),
        WARM_UP.as_secs()
    );
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let next = move || counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut http = {
        let client = client.clone();
        let token = token.clone();
        let url = url.clone();
        hammer(move || {
            let request = client.get(&url).bearer_auth(&token);
            async move {
                match request.send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await
    };
    http.print("GET /api/dashboard, same window");
    let mut uncached = {
        let client = client.clone();
        let token = token.clone();
        let url = url.clone();
        let next = next.clone();
        hammer(move || {
            let (from, to) = nth_window(next());
            let request = client
                .get(format!("{url}?from={from}&to={to}"))
                .bearer_auth(&token);
            async move {
                match request.send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await
    };
    uncached.print("GET /api/dashboard, 3285 windows");
    let mut direct = {
        let store = store.clone();
        let tenant = tenant.id;
        let next = next.clone();
        hammer(move || {
            let store = store.clone();
            let window = nth_window(next());
            async move { dashboard_queries(store.as_ref(), tenant, window).await }
        })
        .await
    };
    direct.print("its store queries, direct (SQL)");
    let p = |f: &Figures, q: f64| {
        f.latencies[((q * f.latencies.len() as f64) as usize).min(f.latencies.len() - 1)]
    };
    println!(
        "uncached server overhead: p50 {:.2}x, p99 {:.2}x the bare SQL time (target: under 2x)",
        p(&uncached, 0.5).as_secs_f64() / p(&direct, 0.5).as_secs_f64(),
        p(&uncached, 0.99).as_secs_f64() / p(&direct, 0.99).as_secs_f64()
    );
    println!(
        "repeated dashboard p99 {:.2} ms (target: under 25 ms)",
        p(&http, 0.99).as_secs_f64() * 1e3
    );
}
