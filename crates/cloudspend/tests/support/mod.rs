//! Shared by the tests that run real `cloudspend serve` processes (replicas, outages): start a
//! replica with its own log file, stop it gracefully or with SIGKILL, read its JSON log, and run
//! a PostgreSQL cluster of the test's own that it may stop and restart.

#![allow(dead_code)] // each test file uses its own part of this module

use chrono::{Duration as Days, NaiveDate, Utc};
use cloudspend_core::TenantId;
use cloudspend_store::{NewUser, Store};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_cloudspend");
pub const MASTER_KEY: &str = "6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `cloudspend serve` process, killed (SIGKILL) when dropped.
pub struct Replica {
    pub name: String,
    pub base: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Replica {
    /// Starts `serve` on a free port against `database_url`, with the server's AWS endpoint at
    /// `aws_endpoint`, a JSON log at info level in `dir/<name>.log`, and `extra` environment.
    pub async fn start(
        name: &str,
        dir: &Path,
        database_url: &str,
        aws_endpoint: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir)
            .arg("serve")
            .env_remove("AWS_PROFILE")
            .env("DATABASE_URL", database_url)
            .env("CLOUDSPEND_BIND", format!("127.0.0.1:{port}"))
            .env("CLOUDSPEND_MASTER_KEY", MASTER_KEY)
            .env(
                "CLOUDSPEND_LOG",
                "info,sqlx=warn,aws_config=warn,aws_smithy_runtime=warn",
            )
            .env("CLOUDSPEND_LOG_FORMAT", "json")
            .env("CLOUDSPEND_SCHEDULER_POLL_SECONDS", "1")
            .env("AWS_ENDPOINT_URL", aws_endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start cloudspend serve");
        let mut replica = Self {
            name: name.to_string(),
            base,
            log,
            child: Some(child),
        };
        replica.wait_healthy().await;
        replica
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "replica {} exited early with {status}: {}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if let Ok(r) = reqwest::get(format!("{}/healthz", self.base)).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("replica {} did not become healthy", self.name);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no shutdown hook runs, leases stay as they were.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit (runs in flight finish first).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// SIGTERM, without waiting (see [`Replica::exit_within`]).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM");
    }

    /// Waits up to `limit` for new connections to be refused.
    pub async fn refuses_connections_within(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if reqwest::get(format!("{}/healthz", self.base))
                .await
                .is_err()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Waits for the process to exit, up to `limit`; kills it and fails after that.
    pub async fn exit_within(&mut self, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return (status, started.elapsed());
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not exit within {limit:?} of SIGTERM: {}",
                    self.name,
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The log as written so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines written so far.
    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// (tenant, collector) of every collection this replica finished, from its log.
    pub fn finished_runs(&self) -> Vec<(String, String)> {
        self.log_lines()
            .iter()
            .filter(|l| {
                matches!(
                    l["fields"]["message"].as_str(),
                    Some("collection succeeded" | "collection failed")
                )
            })
            .map(|l| {
                (
                    l["span"]["tenant"].as_str().unwrap_or_default().to_string(),
                    l["span"]["collector"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    }

    /// Resident set size in kilobytes (Linux /proc).
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tenant with a saved role connection to a moto account of its own, seeded through the store.
pub async fn seed_tenant(store: &Arc<dyn Store>, n: usize) -> (TenantId, String) {
    let user = NewUser {
        email: format!("owner{n}-{}@example.com", uuid::Uuid::new_v4().simple()),
        password_hash: "x".into(),
        is_global_owner: false,
    };
    let (_, tenant) = store
        .create_user_with_tenant(user, &format!("Tenant {n}"))
        .await
        .unwrap();
    let account = cloudspend_aws_access::testing::unique_account_id();
    let connection = cloudspend_aws_access::testing::role_connection(&account, &["us-east-1"]);
    store.put_connection(tenant.id, &connection).await.unwrap();
    (tenant.id, account)
}

/// A PostgreSQL cluster of the test's own (initdb in a temp dir, a free port), so that stopping
/// and restarting it disturbs no other test. Runs as the `postgres` user when we are root
/// (initdb and postgres refuse root), from `/` (that user may not enter our directory).
/// Needs CLOUDSPEND_TEST_PG_BINDIR, which scripts/test.sh sets.
pub struct PgCluster {
    bindir: PathBuf,
    dir: PathBuf,
    pub port: u16,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Whether the `postgres` user can reach into `dir` (every folder above it must let it pass).
fn postgres_can_enter(dir: &std::path::Path) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-x"])
        .arg(dir)
        .current_dir("/")
        .status()
        .is_ok_and(|s| s.success())
}

impl PgCluster {
    pub fn start() -> Self {
        let bindir = PathBuf::from(std::env::var("CLOUDSPEND_TEST_PG_BINDIR").unwrap_or_else(
            |_| {
                panic!(
                    "CLOUDSPEND_TEST_PG_BINDIR is not set: this test starts a PostgreSQL cluster \
                 of its own from those binaries; run it with scripts/test.sh"
                )
            },
        ));
        let dir = if is_root() && !postgres_can_enter(&std::env::temp_dir()) {
            // A TMPDIR in root's home (mode 700) is out of the postgres user's reach.
            let dir = PathBuf::from("/tmp")
                .join(format!("cloudspend-pg-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            dir
        } else {
            temp_dir("cloudspend-pg")
        };
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown the cluster dir to postgres");
            // The temp dir itself must be enterable by postgres.
            let _ = Command::new("chmod").arg("755").arg(&dir).status();
        }
        let cluster = Self {
            bindir,
            dir,
            port: free_port(),
        };
        cluster.run_pg(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        cluster.pg_ctl_start();
        cluster
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run_pg(&self, program: &str, args: &[&str]) {
        let exe = self.bindir.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .current_dir("/")
            .args(args)
            .output()
            .expect("run a PostgreSQL program");
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log").display().to_string();
        self.run_pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// Stops like a crash (`-m immediate`): connections die, open transactions are lost.
    pub fn stop(&self) {
        self.run_pg("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }

    pub fn start_again(&self) {
        self.pg_ctl_start();
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A new, empty database on this cluster (created with the cluster's own `psql`).
    pub fn database_url(&self, name: &str) -> String {
        let out = Command::new(self.bindir.join("psql"))
            .arg(self.admin_url())
            .args(["-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "CREATE DATABASE: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let exe = self.bindir.join("pg_ctl");
        let data = self.data();
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = cmd
            .current_dir("/")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs one SQL script with the cluster's `psql` and returns its unaligned, tuples-only output.
pub fn psql(database_url: &str, sql: &str) -> String {
    let bindir = std::env::var("CLOUDSPEND_TEST_PG_BINDIR").expect("CLOUDSPEND_TEST_PG_BINDIR");
    let out = Command::new(Path::new(&bindir).join("psql"))
        .arg(database_url)
        .args(["-v", "ON_ERROR_STOP=1", "-tA", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A `psql` session kept open (its transaction stays open until it is dropped or dies).
pub struct PsqlSession(Child);

impl PsqlSession {
    pub fn open(database_url: &str, script: &str) -> Self {
        use std::io::Write;
        let bindir = std::env::var("CLOUDSPEND_TEST_PG_BINDIR").expect("CLOUDSPEND_TEST_PG_BINDIR");
        let mut child = Command::new(Path::new(&bindir).join("psql"))
            .arg(database_url)
            .args(["-v", "ON_ERROR_STOP=1", "-q"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run psql");
        let stdin = child.stdin.as_mut().expect("psql stdin");
        stdin.write_all(script.as_bytes()).unwrap();
        stdin.flush().unwrap();
        Self(child)
    }
}

impl Drop for PsqlSession {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The service the cost pages below bill.
pub const SERVICE: &str = "Amazon Elastic Compute Cloud - Compute";

pub fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub fn days_ago(n: i64) -> NaiveDate {
    Utc::now().date_naive() - Days::days(n)
}

/// One GetCostAndUsage page: each of `days` has one EC2 group of `amount` in `account`.
pub fn cost_page(account: &str, days: &[NaiveDate], amount: &str) -> Value {
    let results: Vec<Value> = days
        .iter()
        .map(|d| {
            json!({
                "TimePeriod": {"Start": ymd(*d), "End": ymd(*d + Days::days(1))},
                "Total": {},
                "Groups": [{"Keys": [SERVICE, account], "Metrics": {
                    "UnblendedCost": {"Amount": amount, "Unit": "USD"},
                    "AmortizedCost": {"Amount": amount, "Unit": "USD"}}}],
                "Estimated": false
            })
        })
        .collect();
    json!({"GroupDefinitions": [], "ResultsByTime": results, "DimensionValueAttributes": []})
}
