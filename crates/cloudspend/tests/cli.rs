//! The binary as an operator runs it: `demo`, `migrate`, `user create`, `serve`.

use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cloudspend");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `cloudspend` process with only the environment the test gives it, killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("CLOUDSPEND_MASTER_KEY")
        .env_remove("CLOUDSPEND_PREVIOUS_MASTER_KEY")
        .env_remove("CLOUDSPEND_BIND")
        .env("CLOUDSPEND_LOG", "warn");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run cloudspend");
    assert!(
        out.status.success(),
        "cloudspend failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn wait_healthy(base: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("cloudspend exited early with {status}");
        }
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cloudspend did not become healthy at {base}");
}

async fn login(base: &str, email: &str, password: &str) -> String {
    let client = reqwest::Client::new();
    let reply: Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["token"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {reply}"))
        .to_string()
}

async fn get_json(base: &str, path: &str, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn temp_dir() -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("cloudspend-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn demo_serves_on_embedded_sqlite_with_a_demo_login_and_keeps_it_across_restarts() {
    let dir = temp_dir();
    for round in 0..2 {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = command(&dir)
            .arg("demo")
            .env("CLOUDSPEND_BIND", format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        wait_healthy(&base, &mut child).await;
        let running = Running(child);
        let token = login(&base, "demo@cloudspend.local", "cloudspend-demo").await;
        let (status, me) = get_json(&base, "/api/me", &token).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["user"]["email"], "demo@cloudspend.local");
        assert_eq!(
            me["tenants"].as_array().unwrap().len(),
            1,
            "round {round}: demo tenant created twice?"
        );
        drop(running);
    }
    assert!(
        dir.join("data/cloudspend.db").exists(),
        "demo database not under ./data"
    );
    assert!(dir.join("data/master.key").exists());

    // The demo tenant has 13 months of costs (synthetic, plus the FOCUS sample), instances and CPU.
    let store = cloudspend_store::connect(&format!(
        "sqlite://{}",
        dir.join("data/cloudspend.db").display()
    ))
    .await
    .unwrap();
    let (user, _) = store
        .credentials_by_email("demo@cloudspend.local")
        .await
        .unwrap()
        .unwrap();
    let (tenant, _) = store.tenants_of(user.id).await.unwrap().remove(0);
    let today = chrono::Utc::now().date_naive();
    let costs = store
        .daily_costs(
            tenant.id,
            today - chrono::Duration::days(800),
            today + chrono::Duration::days(1),
        )
        .await
        .unwrap();
    let days: std::collections::BTreeSet<_> = costs.iter().map(|r| r.day).collect();
    assert!(days.len() >= 395, "{} days of costs", days.len());
    assert!(
        costs
            .iter()
            .any(|r| r.source == cloudspend_core::records::CostSource::Cur),
        "FOCUS sample rows loaded"
    );
    let instances = store.instances(tenant.id).await.unwrap();
    assert_eq!(instances.len(), 8);
    let cpu = store
        .metric_points(
            tenant.id,
            &instances[0].instance_id,
            "CPUUtilization",
            chrono::Utc::now() - chrono::Duration::days(15),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    assert!(cpu.len() >= 300, "two weeks of hourly CPU");
}

#[tokio::test]
async fn serve_refuses_to_start_without_a_valid_master_key() {
    let dir = temp_dir();
    let out = command(&dir)
        .arg("serve")
        .env("DATABASE_URL", "sqlite://./data/x.db")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CLOUDSPEND_MASTER_KEY"), "{stderr}");
    let out = command(&dir)
        .args(["serve", "--master-key", "abc"])
        .env("DATABASE_URL", "sqlite://./data/x.db")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("32 bytes"));
    // The example key in .env.example is in every copy of the repository.
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.env.example"))
            .unwrap();
    let published = example
        .lines()
        .find_map(|l| l.strip_prefix("CLOUDSPEND_MASTER_KEY="))
        .expect("the example sets a key");
    let out = command(&dir)
        .args(["serve", "--master-key", published])
        .env("DATABASE_URL", "sqlite://./data/x.db")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("published in .env.example"), "{stderr}");
}

/// Seals `plain` for `tenant` under `key` (hex), as a server running with that key would.
fn sealed(key: &str, tenant: cloudspend_core::TenantId, plain: &str) -> String {
    cloudspend_secrets::MasterKey::parse(key)
        .unwrap()
        .seal(tenant, &secrecy::SecretString::from(plain.to_string()))
}

fn opens(key: &str, tenant: cloudspend_core::TenantId, ciphertext: &str) -> Option<String> {
    use secrecy::ExposeSecret;
    cloudspend_secrets::MasterKey::parse(key)
        .unwrap()
        .open(tenant, ciphertext)
        .ok()
        .map(|s| s.expose_secret().to_string())
}

#[tokio::test]
async fn rotate_master_key_reseals_every_secret_once_and_names_those_it_cannot_open() {
    use cloudspend_core::connection::*;
    use cloudspend_store::{NewSubscription, NewUser};
    const OLD: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
    const NEW: &str = "f9e8d7c6b5a4938271605f4e3d2c1b0af9e8d7c6b5a4938271605f4e3d2c1b0a";
    const STRANGER: &str = "1122334455667788990011223344556677889900112233445566778899001122";
    let dir = temp_dir();
    let database_url = format!("sqlite://{}/cloudspend.db", dir.display());
    let store = cloudspend_store::connect(&database_url).await.unwrap();
    store.migrate().await.unwrap();
    let mut tenants = Vec::new();
    for n in 0..3 {
        let (_, tenant) = store
            .create_user_with_tenant(
                NewUser {
                    email: format!("owner{n}@example.com"),
                    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                    is_global_owner: false,
                },
                &format!("Tenant {n}"),
            )
            .await
            .unwrap();
        tenants.push(tenant.id);
    }
    let connect = |tenant, ciphertext: String| {
        let now = chrono::Utc::now();
        let connection = AwsConnection {
            display_name: "Production".into(),
            account_id: "123456789012".into(),
            account_type: AccountType::Linked,
            auth: ConnectionAuth::AccessKey {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_ciphertext: ciphertext,
            },
            regions: vec!["us-east-1".into()],
            cur: CurLocation::default(),
            status: ConnectionStatus::Connected,
            last_verified_at: None,
            last_error: None,
            warnings: vec![],
            created_at: now,
            updated_at: now,
        };
        let store = store.clone();
        async move { store.put_connection(tenant, &connection).await.unwrap() }
    };
    connect(tenants[0], sealed(OLD, tenants[0], "secret-zero")).await;
    connect(tenants[1], sealed(OLD, tenants[1], "secret-one")).await;
    store
        .create_subscription(
            tenants[1],
            NewSubscription {
                name: "ops".into(),
                channel: "webhook".into(),
                target: "https://hooks.example.com/x".into(),
                threshold_kind: "absolute".into(),
                threshold: "10".into(),
                frequency: "immediate".into(),
                secret_ciphertext: sealed(OLD, tenants[1], "signing-one"),
                created_by: None,
                created_at: chrono::Utc::now(),
            },
        )
        .await
        .unwrap();
    let rotate = |extra: &[&str]| {
        command(&dir)
            .arg("rotate-master-key")
            .args(extra)
            .env("DATABASE_URL", &database_url)
            .env("CLOUDSPEND_MASTER_KEY", NEW)
            .env("CLOUDSPEND_PREVIOUS_MASTER_KEY", OLD)
            .output()
            .unwrap()
    };
    let stdout = |out: &Output| String::from_utf8_lossy(&out.stdout).to_string();
    let before = store.sealed_secrets().await.unwrap();

    let dry = rotate(&["--dry-run"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        stdout(&dry).contains("3 secret(s) would be re-sealed"),
        "{}",
        stdout(&dry)
    );
    assert_eq!(
        store.sealed_secrets().await.unwrap(),
        before,
        "a dry run changes nothing"
    );

    let first = rotate(&[]);
    assert!(
        first.status.success(),
        "{}{}",
        stdout(&first),
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout(&first).starts_with("3 secret(s) re-sealed under the new key, 0 already"),
        "{}",
        stdout(&first)
    );
    let after = store.sealed_secrets().await.unwrap();
    let mut plain: Vec<String> = Vec::new();
    for secret in &after {
        assert_eq!(
            opens(OLD, secret.tenant, &secret.ciphertext),
            None,
            "still opens under the old key"
        );
        plain.push(opens(NEW, secret.tenant, &secret.ciphertext).expect("opens under the new key"));
    }
    plain.sort();
    assert_eq!(plain, ["secret-one", "secret-zero", "signing-one"]);

    let again = rotate(&[]);
    assert!(
        stdout(&again).starts_with("0 secret(s) re-sealed under the new key, 3 already under it"),
        "{}",
        stdout(&again)
    );
    assert_eq!(
        store.sealed_secrets().await.unwrap(),
        after,
        "a second run changes nothing"
    );

    // A secret sealed under some third key is named by tenant (never shown) and fails the run.
    let stranger_ciphertext = sealed(STRANGER, tenants[2], "secret-two");
    connect(tenants[2], stranger_ciphertext.clone()).await;
    let failed = rotate(&[]);
    assert!(!failed.status.success());
    let text = format!(
        "{}{}",
        stdout(&failed),
        String::from_utf8_lossy(&failed.stderr)
    );
    assert!(
        text.contains(&format!("AwsSecretAccessKey of tenant {}", tenants[2])),
        "{text}"
    );
    assert!(text.contains("open under neither key"), "{text}");
    assert!(
        !text.contains(&stranger_ciphertext) && !text.contains("secret-two"),
        "{text}"
    );

    // Wrong settings are named.
    let missing = command(&dir)
        .arg("rotate-master-key")
        .env("DATABASE_URL", &database_url)
        .env("CLOUDSPEND_MASTER_KEY", NEW)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("CLOUDSPEND_PREVIOUS_MASTER_KEY is not set")
    );
    let same = command(&dir)
        .arg("rotate-master-key")
        .env("DATABASE_URL", &database_url)
        .env("CLOUDSPEND_MASTER_KEY", NEW)
        .env("CLOUDSPEND_PREVIOUS_MASTER_KEY", NEW)
        .output()
        .unwrap();
    assert!(!same.status.success());
    assert!(String::from_utf8_lossy(&same.stderr).contains("same key"));
}

#[tokio::test]
async fn migrate_user_create_and_serve_on_postgres() {
    let database_url = cloudspend_store::testing::fresh_postgres_url().await;
    let dir = temp_dir();
    let migrated = run(command(&dir)
        .arg("migrate")
        .env("DATABASE_URL", &database_url));
    assert!(String::from_utf8_lossy(&migrated.stdout).contains("migrations applied"));
    assert!(!String::from_utf8_lossy(&migrated.stdout).contains("password"));

    let created = run(command(&dir)
        .args([
            "user",
            "create",
            "ops@example.com",
            "--global-owner",
            "--tenant",
            "Platform Ops",
        ])
        .env("DATABASE_URL", &database_url));
    let stdout = String::from_utf8_lossy(&created.stdout).to_string();
    assert!(stdout.contains("global owner"), "{stdout}");
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("generated password printed once")
        .to_string();
    let again = command(&dir)
        .args(["user", "create", "ops@example.com"])
        .env("DATABASE_URL", &database_url)
        .output()
        .unwrap();
    assert!(!again.status.success(), "duplicate user accepted");

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = command(&dir)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &database_url)
        .env("CLOUDSPEND_MASTER_KEY", "6b".repeat(16) + &"3f".repeat(16))
        .spawn()
        .unwrap();
    wait_healthy(&base, &mut child).await;
    let _running = Running(child);
    let token = login(&base, "ops@example.com", &password).await;
    let (status, tenants) = get_json(&base, "/api/admin/tenants", &token).await;
    assert_eq!(status, 200, "{tenants}");
    assert_eq!(tenants["tenants"][0]["name"], "Platform Ops");
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
}

/// The public legacy CUR sample (the repository's `tests/data`, gzipped as `import-cur` reads
/// it), whose lineItem/UnblendedCost column sums to 1.68230869740.
fn legacy_cur_sample() -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/cur/anonymized-legacy/sample-anonymous-aws-export-dataset.csv.gz");
    assert!(
        path.exists(),
        "the legacy CUR sample is missing at {}",
        path.display()
    );
    path
}

#[tokio::test]
async fn import_cur_loads_the_public_sample_exactly_and_twice_changes_nothing() {
    let database_url = cloudspend_store::testing::fresh_postgres_url().await;
    let dir = temp_dir();
    let created = run(command(&dir)
        .args([
            "user",
            "create",
            "finops@example.com",
            "--tenant",
            "Importers",
            "--password",
            "a long enough password",
        ])
        .env("DATABASE_URL", &database_url));
    let stdout = String::from_utf8_lossy(&created.stdout).to_string();
    let tenant = stdout
        .lines()
        .find_map(|l| l.strip_prefix("created tenant Importers ("))
        .and_then(|rest| rest.strip_suffix(')'))
        .expect("tenant id printed")
        .to_string();
    let sample = legacy_cur_sample();
    let store = cloudspend_store::connect(&database_url).await.unwrap();
    let tenant_id: cloudspend_core::TenantId = tenant.parse().unwrap();
    let from = chrono::NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
    let to = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    let mut snapshots = Vec::new();
    for _ in 0..2 {
        let out = run(command(&dir)
            .args(["import-cur", "--tenant", &tenant])
            .arg(&sample)
            .env("DATABASE_URL", &database_url));
        let printed = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(printed.contains("1.68 to the cent"), "{printed}");
        let rows = store.daily_costs(tenant_id, from, to).await.unwrap();
        let total: cloudspend_core::Money = rows.iter().map(|r| r.unblended).sum();
        assert_eq!(total.round_to_cents().to_string(), "1.68");
        // Each aggregated row is kept to the nano-unit, so the stored sum is within a few
        // billionths of the file's exact 1.68230869740, far inside a cent.
        let exact: cloudspend_core::Money = "1.6823086974".parse().unwrap();
        assert!(
            (total - exact).abs().nanos() <= rows.len() as i64,
            "{total} vs {exact}"
        );
        snapshots.push(rows);
    }
    assert_eq!(
        snapshots[0], snapshots[1],
        "importing the same file twice changed the rows"
    );

    let odd = dir.join("odd.csv");
    std::fs::write(&odd, "date,cost\n2024-01-01,1.00\n").unwrap();
    let refused = command(&dir)
        .args(["import-cur", "--tenant", &tenant])
        .arg(&odd)
        .env("DATABASE_URL", &database_url)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("lineItem/UnblendedCost") || stderr.contains("BilledCost"),
        "{stderr}"
    );
}

fn pg_dump() -> std::path::PathBuf {
    if let Ok(dir) = std::env::var("CLOUDSPEND_TEST_PG_BINDIR") {
        return Path::new(&dir).join("pg_dump");
    }
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin/pg_dump"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.pop().expect(
        "pg_dump not found: run the tests with scripts/test.sh (it sets CLOUDSPEND_TEST_PG_BINDIR)",
    )
}

#[tokio::test]
async fn an_access_key_secret_is_found_nowhere_but_as_ciphertext() {
    let moto = cloudspend_aws_access_moto_url();
    let database_url = cloudspend_store::testing::fresh_postgres_url().await;
    let dir = temp_dir();
    let log_path = dir.join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = command(&dir)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &database_url)
        .env("CLOUDSPEND_MASTER_KEY", "6b".repeat(16) + &"3f".repeat(16))
        .env("CLOUDSPEND_LOG", "trace")
        .env("CLOUDSPEND_SCHEDULER_POLL_SECONDS", "1")
        .env("AWS_ENDPOINT_URL", &moto)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_healthy(&base, &mut child).await;
    let running = Running(child);
    let client = reqwest::Client::new();
    let signup: Value = client
        .post(format!("{base}/api/auth/signup"))
        .json(&json!({"email": "keys@example.com", "password": "a long enough password", "tenant_name": "Keys Inc"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signup["token"].as_str().unwrap().to_string();
    let secret = format!("Zx{}Q9", uuid::Uuid::new_v4().simple());
    let connect = client
        .post(format!("{base}/api/tenants/connect"))
        .bearer_auth(&token)
        .json(&json!({"auth_method": "access_key", "access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": secret,
                      "region": "us-east-1", "athena_db": "cur_db", "athena_table": "cur_table"}))
        .send()
        .await
        .unwrap();
    assert_eq!(connect.status(), 200, "{}", connect.text().await.unwrap());
    // The scheduler runs the first collection with the decrypted key (at trace level).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, collections) = get_json(&base, "/api/collections", &token).await;
        let finished = collections["runs"]
            .as_array()
            .map_or(0, |r| r.iter().filter(|r| r["status"] != "running").count());
        if finished >= 3 || Instant::now() > deadline {
            assert!(finished >= 3, "collections did not run: {collections}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (_, shown) = get_json(&base, "/api/tenants/connection", &token).await;
    assert!(!shown.to_string().contains(&secret));
    drop(running);

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.len() > 1000, "trace logs were written");
    assert!(!logs.contains(&secret), "the secret appears in the logs");
    let dump = Command::new(pg_dump())
        .arg("--data-only")
        .arg(&database_url)
        .output()
        .expect("run pg_dump");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("v1:"), "the sealed secret is in the dump");
    assert!(
        !dump.contains(&secret),
        "the secret appears in clear in the database"
    );
}

fn cloudspend_aws_access_moto_url() -> String {
    std::env::var("CLOUDSPEND_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!("CLOUDSPEND_TEST_MOTO_URL is not set: this test needs the moto server; run scripts/test.sh")
    })
}
