//! Upgrading a database that holds the previous release's data, on both backends: the previous
//! release's migrations, its rows (`tests/data/previous-release-<backend>.sql`, plain SQL in the
//! encoding that release wrote, one row or more in every table), then today's `migrate()`, then
//! every row read back exactly through the [`Store`], and the new tables used.
//!
//! Moving "the previous release" forward when a release is cut: set [`PREVIOUS_RELEASE`] to the
//! newest migration version that release shipped, and make the fixtures hold what that release
//! writes (add the new tables' rows and columns to both files, in each backend's encoding). A
//! new migration must add rows to the fixtures for any table it creates: the test fails while a
//! table of the previous release's schema is empty, so a migration that breaks old rows is
//! caught before it is deployed. Migrations already applied somewhere are never edited (their
//! checksums would no longer match); fix forward with a new one.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use cloudspend_core::connection::{
    AccountType, AwsConnection, ConnectionAuth, ConnectionStatus, CurLocation,
};
use cloudspend_core::records::{CostRecord, CostSource, Instance, MetricPoint, RunStatus};
use cloudspend_core::{AnomalyId, Money, Role, TenantId, UserId};
use cloudspend_secrets::MasterKey;
use cloudspend_store::postgres::PgStore;
use cloudspend_store::sqlite::SqliteStore;
use cloudspend_store::*;
use secrecy::ExposeSecret;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;

/// The newest migration the previous (deployed) release shipped; later ones are this release's.
const PREVIOUS_RELEASE: i64 = 20261130000008;

/// The key the fixtures' sealed secrets were sealed under (test data, never a real key).
const FIXTURE_MASTER_KEY: &str = "0123456789abcdef0123456789abcdef00112233445566778899aabbccddeeff";

const ACME: TenantId = TenantId(Uuid::from_u128(0xaaaaaaaa_aaaa_4aaa_8aaa_aaaaaaaaaaaa));
const GLOBEX: TenantId = TenantId(Uuid::from_u128(0xbbbbbbbb_bbbb_4bbb_8bbb_bbbbbbbbbbbb));
const ANA: UserId = UserId(Uuid::from_u128(0x11111111_1111_4111_8111_111111111111));
const BEN: UserId = UserId(Uuid::from_u128(0x22222222_2222_4222_8222_222222222222));

fn at(text: &str) -> DateTime<Utc> {
    text.parse()
        .unwrap_or_else(|e| panic!("timestamp {text}: {e}"))
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn id(text: &str) -> Uuid {
    text.parse().unwrap()
}

fn migrations_of(backend: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(backend)
}

/// The previous release's migrations, copied from `migrations/<backend>` into a folder of their
/// own: the same files, so their checksums match those the embedded migrator holds.
async fn previous_release_migrator(backend: &str) -> sqlx::migrate::Migrator {
    let folder = std::env::temp_dir().join(format!(
        "cloudspend-previous-release-{backend}-{}",
        Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&folder).unwrap();
    let mut copied = 0;
    for entry in std::fs::read_dir(migrations_of(backend)).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let version: i64 = name
            .split('_')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("migration {name} does not start with its version"));
        if version <= PREVIOUS_RELEASE {
            std::fs::copy(&path, folder.join(&name)).unwrap();
            copied += 1;
        }
    }
    assert!(
        copied > 0,
        "no migration up to {PREVIOUS_RELEASE} in {backend}"
    );
    sqlx::migrate::Migrator::new(folder.as_path())
        .await
        .expect("read the previous release's migrations")
}

fn fixture(backend: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("previous-release-{backend}.sql"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Fails naming every table of the schema that the fixture leaves empty: rows a later migration
/// could break unseen.
fn assert_no_table_is_empty(counts: Vec<(String, i64)>) {
    assert!(counts.len() >= 19, "tables found: {counts:?}");
    let empty: Vec<&str> = counts
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(t, _)| t.as_str())
        .collect();
    assert!(
        empty.is_empty(),
        "the previous release's fixture has no rows in {empty:?}: add some"
    );
}

#[tokio::test]
async fn postgres_keeps_the_previous_releases_rows_through_every_migration() {
    let url = testing::fresh_postgres_url().await;
    let store = PgStore::connect(&url).await.unwrap();
    let pool = store.pool();
    previous_release_migrator("postgres")
        .await
        .run(pool)
        .await
        .expect("the previous release's migrations");
    sqlx::raw_sql(&fixture("postgres"))
        .execute(pool)
        .await
        .expect("the previous release's rows");
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut counts = Vec::new();
    for (table,) in tables {
        // A name from the catalog, not from input.
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .unwrap();
        counts.push((table, n));
    }
    assert_no_table_is_empty(counts);
    store.migrate().await.expect("today's migrations");
    check_upgraded(Arc::new(store)).await;
}

#[tokio::test]
async fn sqlite_keeps_the_previous_releases_rows_through_every_migration() {
    let path =
        std::env::temp_dir().join(format!("cloudspend-upgrade-{}.db", Uuid::new_v4().simple()));
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let pool = store.pool();
    previous_release_migrator("sqlite")
        .await
        .run(pool)
        .await
        .expect("the previous release's migrations");
    sqlx::raw_sql(&fixture("sqlite"))
        .execute(pool)
        .await
        .expect("the previous release's rows");
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite%' AND name <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut counts = Vec::new();
    for (table,) in tables {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .unwrap();
        counts.push((table, n));
    }
    assert_no_table_is_empty(counts);
    store.migrate().await.expect("today's migrations");
    check_upgraded(Arc::new(store)).await;
}

/// Everything the fixture holds, read back through today's store, then today's tables used.
async fn check_upgraded(store: Arc<dyn Store>) {
    users_tenants_and_memberships(&store).await;
    tokens(&store).await;
    connections_and_sealed_secrets(&store).await;
    costs_and_rollups(&store).await;
    instances_and_metrics(&store).await;
    anomalies_and_recommendations(&store).await;
    runs_and_jobs(&store).await;
    audit_entries(&store).await;
    budget_and_action_tokens(&store).await;
    subscriptions_and_deliveries(&store).await;
    the_new_tables_work(&store).await;
}

async fn users_tenants_and_memberships(store: &Arc<dyn Store>) {
    let (ana, hash) = store
        .credentials_by_email("ana@example.com")
        .await
        .unwrap()
        .expect("Ana logs in by e-mail");
    assert_eq!(
        ana,
        User {
            id: ANA,
            email: "ana@example.com".into(),
            is_global_owner: true,
            created_at: at("2026-11-01T09:00:00Z"),
        }
    );
    assert_eq!(
        hash,
        "$argon2id$v=19$m=19456,t=2,p=1$YW5hLXNhbHQ$YW5hLWhhc2gtb2YtaGVyLXBhc3N3b3Jk"
    );
    let ben = store.user_by_id(BEN).await.unwrap().unwrap();
    assert_eq!(ben.created_at, at("2026-11-02T10:30:00.123456Z"));
    assert!(!ben.is_global_owner);

    let acme = store.tenant(ACME).await.unwrap().unwrap();
    assert_eq!(
        acme,
        Tenant {
            id: ACME,
            name: "Acme".into(),
            external_id: "cs-acme0000000000000000000000000000acme000000000000000000000000001"
                .into(),
            created_at: at("2026-11-01T09:00:00Z"),
            data_version: 7,
        }
    );
    let ben_in: Vec<(TenantId, Role)> = store
        .tenants_of(BEN)
        .await
        .unwrap()
        .into_iter()
        .map(|(t, role)| (t.id, role))
        .collect();
    assert_eq!(ben_in, vec![(ACME, Role::Viewer), (GLOBEX, Role::Owner)]);
    let mut members: Vec<(String, Role, DateTime<Utc>)> = store
        .members(ACME)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.email, m.role, m.since))
        .collect();
    members.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        members,
        vec![
            (
                "ana@example.com".into(),
                Role::Owner,
                at("2026-11-01T09:00:00Z")
            ),
            (
                "ben@example.com".into(),
                Role::Viewer,
                at("2026-11-02T11:00:00Z")
            ),
        ]
    );
    // The last-owner rule still sees Ana as Acme's only owner.
    assert!(matches!(
        store.put_member(ACME, ANA, Role::Admin).await,
        Err(StoreError::LastOwner)
    ));
}

async fn tokens(store: &Arc<dyn Store>) {
    let session = store
        .token("aa00000000000000000000000000000000000000000000000000000000000001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.user.id, ANA);
    assert_eq!(session.tenant_id, Some(ACME));
    assert_eq!(session.name, None);
    assert_eq!(session.expires_at, at("2026-12-20T08:00:00Z"));
    assert_eq!(session.revoked_at, None);
    let revoked = store
        .token("bb00000000000000000000000000000000000000000000000000000000000003")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(at("2026-11-23T09:00:00Z")));
    let live = store
        .tokens_of(ANA, None, at("2026-11-30T12:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        live,
        vec![
            TokenSummary {
                token_hash: "aa00000000000000000000000000000000000000000000000000000000000002"
                    .into(),
                tenant_id: Some(ACME),
                name: Some("ci".into()),
                created_at: at("2026-11-21T08:00:00Z"),
                expires_at: at("2027-11-21T08:00:00Z"),
            },
            TokenSummary {
                token_hash: "aa00000000000000000000000000000000000000000000000000000000000001"
                    .into(),
                tenant_id: Some(ACME),
                name: None,
                created_at: at("2026-11-20T08:00:00Z"),
                expires_at: at("2026-12-20T08:00:00Z"),
            },
        ]
    );
}

async fn connections_and_sealed_secrets(store: &Arc<dyn Store>) {
    let sealed_key = "v1:AAECAwQFBgcICQoLmyUF5dwdgkGJf3IcF6HtwrF5hNtc0WvM4aAdjd1Mk0QpiQgOWAGAJXnA0NFapn4E7cSRIWoeVVM=";
    assert_eq!(
        store.connection(ACME).await.unwrap(),
        Some(AwsConnection {
            display_name: "Acme payer".into(),
            account_id: "123456789012".into(),
            account_type: AccountType::Organization,
            auth: ConnectionAuth::AccessKey {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_ciphertext: sealed_key.into(),
            },
            regions: vec!["us-east-1".into(), "eu-west-1".into()],
            cur: CurLocation {
                cur_bucket: Some("acme-cur".into()),
                cur_prefix: Some("cur/daily".into()),
                athena_database: Some("cur_db".into()),
                athena_table: Some("cur_table".into()),
                athena_workgroup: Some("primary".into()),
                athena_results_bucket: Some("acme-athena".into()),
                athena_results_prefix: Some("results/".into()),
            },
            status: ConnectionStatus::Degraded,
            last_verified_at: Some(at("2026-11-29T07:00:00.654321Z")),
            last_error: None,
            warnings: vec!["Athena: the results bucket is not writable".into()],
            created_at: at("2026-11-05T12:00:00Z"),
            updated_at: at("2026-11-29T07:00:00.654321Z"),
        })
    );
    let globex = store.connection(GLOBEX).await.unwrap().unwrap();
    assert_eq!(
        globex.auth,
        ConnectionAuth::Role {
            role_arn: "arn:aws:iam::210987654321:role/CloudSpendReadOnly".into()
        }
    );
    assert_eq!(globex.account_type, AccountType::Linked);
    let mut connected = store.connected_tenants().await.unwrap();
    connected.sort_by_key(|t| t.0);
    assert_eq!(connected, vec![ACME, GLOBEX]);

    // The secrets still open under the key they were sealed with, for their tenant.
    let key = MasterKey::parse(FIXTURE_MASTER_KEY).unwrap();
    let secrets = store.sealed_secrets().await.unwrap();
    let opened: Vec<(SealedSecretKind, String)> = secrets
        .iter()
        .map(|s| {
            assert_eq!(s.tenant, ACME);
            let clear = key
                .open(s.tenant, &s.ciphertext)
                .expect("opens after the upgrade");
            (s.kind, clear.expose_secret().to_string())
        })
        .collect();
    assert_eq!(
        opened,
        vec![
            (
                SealedSecretKind::AwsSecretAccessKey,
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into()
            ),
            (
                SealedSecretKind::AlertSigningSecret,
                "whsec-previous-release-signing-secret".into()
            ),
        ]
    );
}

fn cost(
    d: u32,
    source: CostSource,
    (usage_type, resource_id, line_item_type): (&str, &str, &str),
    service_region: (&str, &str),
    (unblended, amortized): (i64, i64),
    usage_amount: Option<&str>,
    estimated: bool,
) -> CostRecord {
    CostRecord {
        day: day(d),
        source,
        account_id: "123456789012".into(),
        service: service_region.0.into(),
        region: service_region.1.into(),
        usage_type: usage_type.into(),
        resource_id: resource_id.into(),
        line_item_type: line_item_type.into(),
        unblended: Money::from_nanos(unblended),
        amortized: Money::from_nanos(amortized),
        usage_amount: usage_amount.map(str::to_string),
        currency: "USD".into(),
        estimated,
    }
}

fn rollup(d: u32, key: &str, nanos: i64, estimated: bool) -> RollupDay {
    RollupDay {
        day: day(d),
        key: key.into(),
        amount: Money::from_nanos(nanos),
        estimated,
    }
}

async fn costs_and_rollups(store: &Arc<dyn Store>) {
    use CostSource::{Ce, Cur};
    let ec2 = ("AmazonEC2", "us-east-1");
    let none = ("", "", "");
    assert_eq!(
        store.daily_costs(ACME, day(1), day(30)).await.unwrap(),
        vec![
            cost(
                27,
                Ce,
                none,
                ec2,
                (12_345_678_901, 12_000_000_000),
                None,
                false
            ),
            cost(27, Ce, none, ("AmazonS3", "us-west-2"), (1, 1), None, false),
            cost(
                28,
                Ce,
                none,
                ec2,
                (5_000_000_000, 5_000_000_000),
                None,
                false
            ),
            cost(
                28,
                Cur,
                ("BoxUsage:t3.micro", "i-0aaa", "Usage"),
                ec2,
                (4_999_999_999, 4_999_999_999),
                Some("24"),
                false
            ),
            cost(
                28,
                Cur,
                ("EBS:VolumeUsage.gp3", "vol-0aaa", "Usage"),
                ec2,
                (333_333_333, 333_333_333),
                Some("0.2666666667"),
                false
            ),
            cost(
                29,
                Ce,
                none,
                ec2,
                (9_876_543_210, 9_876_543_210),
                None,
                true
            ),
            cost(
                29,
                Ce,
                ("", "", "Credit"),
                ec2,
                (-1_000_000_000, -1_000_000_000),
                None,
                false
            ),
        ]
    );
    let rollups = |dimension| {
        let store = store.clone();
        async move {
            store
                .cost_rollup_days(ACME, dimension, day(1), day(30), None)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        rollups(RollupDimension::Total).await,
        vec![
            rollup(27, "", 12_345_678_902, false),
            rollup(28, "", 5_333_333_332, false),
            rollup(29, "", 8_876_543_210, true),
        ]
    );
    assert_eq!(
        rollups(RollupDimension::Service).await,
        vec![
            rollup(27, "AmazonEC2", 12_345_678_901, false),
            rollup(27, "AmazonS3", 1, false),
            rollup(28, "AmazonEC2", 5_333_333_332, false),
            rollup(29, "AmazonEC2", 8_876_543_210, true),
        ]
    );
    assert_eq!(
        rollups(RollupDimension::Region).await,
        vec![
            rollup(27, "us-east-1", 12_345_678_901, false),
            rollup(27, "us-west-2", 1, false),
            rollup(28, "us-east-1", 5_333_333_332, false),
            rollup(29, "us-east-1", 8_876_543_210, true),
        ]
    );
    assert_eq!(
        store
            .cost_rollup_totals(ACME, RollupDimension::Account, day(1), day(30))
            .await
            .unwrap(),
        vec![RollupTotal {
            key: "123456789012".into(),
            amount: Money::from_nanos(26_555_555_444),
        }]
    );
    assert_eq!(
        store
            .cur_costs_by_resource(ACME, day(1), day(30))
            .await
            .unwrap(),
        vec![
            RollupTotal {
                key: "i-0aaa".into(),
                amount: Money::from_nanos(4_999_999_999)
            },
            RollupTotal {
                key: "vol-0aaa".into(),
                amount: Money::from_nanos(333_333_333)
            },
        ]
    );
    assert_eq!(
        store.resource_tags(ACME).await.unwrap(),
        BTreeMap::from([(
            "i-0aaa".to_string(),
            BTreeMap::from([
                ("env".to_string(), "prod".to_string()),
                ("team".to_string(), "web".to_string())
            ])
        )])
    );
    // Today's writes keep the old days' rollups right: Cost Explorer revises the 27th.
    store
        .replace_daily_costs(
            ACME,
            Ce,
            day(27),
            day(28),
            &[cost(
                27,
                Ce,
                none,
                ec2,
                (1_000_000_000, 1_000_000_000),
                None,
                false,
            )],
        )
        .await
        .unwrap();
    assert_eq!(
        rollups(RollupDimension::Total).await[0],
        rollup(27, "", 1_000_000_000, false)
    );
    assert_eq!(
        rollups(RollupDimension::Total).await[1..],
        [
            rollup(28, "", 5_333_333_332, false),
            rollup(29, "", 8_876_543_210, true),
        ]
    );
}

async fn instances_and_metrics(store: &Arc<dyn Store>) {
    let mut instances = store.instances(ACME).await.unwrap();
    instances.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    assert_eq!(
        instances,
        vec![
            Instance {
                account_id: "123456789012".into(),
                region: "us-east-1".into(),
                instance_id: "i-0aaa".into(),
                instance_type: "t3.micro".into(),
                state: "running".into(),
                launch_time: Some(at("2026-10-01T00:00:00Z")),
                availability_zone: "us-east-1a".into(),
                platform: "Linux/UNIX".into(),
                tags: BTreeMap::from([
                    ("Name".to_string(), "web".to_string()),
                    ("team".to_string(), "web".to_string())
                ]),
                last_seen_at: at("2026-11-30T06:00:00.123456Z"),
                volume_ids: vec![],
                state_since: None,
            },
            Instance {
                account_id: "123456789012".into(),
                region: "eu-west-1".into(),
                instance_id: "i-0bbb".into(),
                instance_type: "m5.large".into(),
                state: "stopped".into(),
                launch_time: None,
                availability_zone: "eu-west-1b".into(),
                platform: "Windows".into(),
                tags: BTreeMap::new(),
                last_seen_at: at("2026-11-30T06:00:00.123456Z"),
                volume_ids: vec!["vol-0bbb-root".into(), "vol-0bbb-data".into()],
                state_since: Some(at("2026-11-15T16:45:00Z")),
            },
        ]
    );
    let point = |hour: u32, average: f64, maximum: f64| MetricPoint {
        instance_id: "i-0aaa".into(),
        metric: "CPUUtilization".into(),
        period_seconds: 3600,
        timestamp: at(&format!("2026-11-29T{hour:02}:00:00Z")),
        average,
        maximum,
        unit: "Percent".into(),
    };
    assert_eq!(
        store
            .metric_points(
                ACME,
                "i-0aaa",
                "CPUUtilization",
                at("2026-11-29T00:00:00Z"),
                at("2026-11-29T02:00:00Z")
            )
            .await
            .unwrap(),
        vec![point(0, 1.25, 3.5), point(1, 0.0625, 0.125)],
        "the range's end is exclusive, as it was"
    );
    assert_eq!(
        store
            .instances_missing_metric(ACME, "CPUUtilization", at("2026-11-29T02:00:00Z"))
            .await
            .unwrap(),
        Vec::<String>::new()
    );
}

async fn anomalies_and_recommendations(store: &Arc<dyn Store>) {
    let acknowledged = store
        .anomaly(ACME, AnomalyId(id("a0000000-0000-4000-8000-00000000000a")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        acknowledged,
        StoredAnomaly {
            id: AnomalyId(id("a0000000-0000-4000-8000-00000000000a")),
            detection: NewAnomaly {
                series: "service:AmazonEC2".into(),
                first_day: day(27),
                last_day: day(27),
                expected: Money::from_nanos(5_000_000_000),
                lower: Money::from_nanos(4_000_000_000),
                upper: Money::from_nanos(6_000_000_000),
                actual: Money::from_nanos(12_345_678_901),
                impact: Money::from_nanos(7_345_678_901),
                impact_percent: 146.91357802,
                score: 8.5,
                severity: "high".into(),
                root_causes: json!([{"dimension": "usage_type", "key": "BoxUsage:t3.micro", "share": 1.0}]),
            },
            status: AnomalyStatus::Acknowledged,
            created_at: at("2026-11-28T06:00:00Z"),
            updated_at: at("2026-11-28T09:30:00.250Z"),
        }
    );
    assert_eq!(
        store
            .count_anomalies(ACME, AnomalyStatus::Open)
            .await
            .unwrap(),
        1
    );
    let listed: Vec<String> = store
        .anomalies(
            ACME,
            &AnomalyFilter {
                limit: 10,
                ..AnomalyFilter::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.detection.series)
        .collect();
    assert_eq!(listed, vec!["total", "service:AmazonEC2"]);
    assert_eq!(
        store.recommendations(ACME).await.unwrap(),
        vec![Recommendation {
            kind: "idle".into(),
            resource_id: "i-0aaa".into(),
            monthly_savings: Money::from_nanos(7_592_000_000),
            detail: json!({"instance_type": "t3.micro", "cpu_p95": 3.5, "cost_basis": "cur"}),
            computed_at: at("2026-11-30T06:00:00Z"),
        }]
    );
}

async fn runs_and_jobs(store: &Arc<dyn Store>) {
    let runs = store.runs(ACME, 10).await.unwrap();
    let summary: Vec<(&str, RunStatus, i64, i64, i64)> = runs
        .iter()
        .map(|r| {
            (
                r.collector.as_str(),
                r.status,
                r.aws_requests,
                r.ce_requests,
                r.retries,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("cloudwatch", RunStatus::Running, 0, 0, 0),
            ("costexplorer", RunStatus::Failed, 4, 4, 2),
            ("ec2", RunStatus::Succeeded, 3, 0, 1),
        ]
    );
    assert_eq!(runs[2].finished_at, Some(at("2026-11-30T11:00:02.500Z")));
    assert_eq!(
        runs[1].error.as_deref(),
        Some("ce:GetCostAndUsage failed: LimitExceededException: Rate exceeded")
    );
    assert_eq!(
        store
            .aws_usage_since(ACME, at("2026-11-30T00:00:00Z"))
            .await
            .unwrap(),
        AwsUsage {
            requests: 7,
            ce_requests: 4
        }
    );

    // A replica of today's release takes the due jobs: the dead replica's lease ran out at
    // 11:10, Cost Explorer is due; EC2 is not until 13:00.
    let now = at("2026-11-30T12:00:00Z");
    let mut leased: Vec<String> = store
        .lease_due_jobs(
            "new-host:1:cafe",
            now,
            std::time::Duration::from_secs(600),
            10,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.collector)
        .collect();
    leased.sort();
    assert_eq!(leased, vec!["cloudwatch", "costexplorer"]);
    // ... and marks the dead replica's run failed before running it again.
    assert_eq!(
        store
            .abandon_running_runs(ACME, "cloudwatch", now)
            .await
            .unwrap(),
        1
    );
    let cloudwatch = &store.runs(ACME, 10).await.unwrap()[0];
    assert_eq!(
        (cloudwatch.status, cloudwatch.finished_at),
        (RunStatus::Failed, Some(now))
    );
    assert!(
        store
            .complete_job(
                ACME,
                "cloudwatch",
                "new-host:1:cafe",
                now + Duration::hours(1)
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .complete_job(ACME, "ec2", "new-host:1:cafe", now)
            .await
            .unwrap(),
        "a job it never leased"
    );
}

async fn audit_entries(store: &Arc<dyn Store>) {
    let everything = AuditFilter::everything();
    let first = store.audit_page(ACME, &everything, None, 2).await.unwrap();
    let summary = |page: &AuditPage| -> Vec<(Uuid, AuditStatus)> {
        page.entries.iter().map(|e| (e.id, e.status)).collect()
    };
    // Newest first; the two entries of one instant in id order, highest first.
    assert_eq!(
        summary(&first),
        vec![
            (
                id("d0000000-0000-4000-8000-000000000003"),
                AuditStatus::Refused
            ),
            (
                id("d0000000-0000-4000-8000-000000000002"),
                AuditStatus::Succeeded
            ),
        ]
    );
    let second = store
        .audit_page(ACME, &everything, first.next, 2)
        .await
        .unwrap();
    assert_eq!(second.next, None);
    assert_eq!(
        second.entries,
        vec![AuditRecord {
            id: id("d0000000-0000-4000-8000-000000000001"),
            user_email: Some("ana@example.com".into()),
            action: "member.add".into(),
            // Written before outcomes were recorded: the column's default.
            status: AuditStatus::Ok,
            detail: json!({"email": "ben@example.com", "role": "viewer"}),
            at: at("2026-11-02T11:00:00Z"),
        }]
    );
    assert_eq!(
        first.entries[1].detail,
        json!({"instance_id": "i-0bbb", "action": "stop", "aws_request_id": "req-1"})
    );
    assert_eq!(first.entries[1].at, at("2026-11-15T16:44:59.123456Z"));
    assert_eq!(
        store.audit_counts(ACME, &everything).await.unwrap(),
        AuditCounts {
            total: 3,
            succeeded: 1,
            refused: 1,
            failed: 0,
            ok: 1
        }
    );
    let actions = AuditFilter {
        action: Some("action".into()),
        ..AuditFilter::everything()
    };
    assert_eq!(store.audit_counts(ACME, &actions).await.unwrap().total, 2);
    // The platform-wide entry is in no tenant's log, and retention still purges by age.
    assert_eq!(
        store.purge_audit(at("2026-11-02T00:00:00Z")).await.unwrap(),
        1
    );
    assert_eq!(
        store.audit_counts(ACME, &everything).await.unwrap().total,
        3
    );
}

async fn budget_and_action_tokens(store: &Arc<dyn Store>) {
    assert_eq!(
        store.budget(ACME).await.unwrap(),
        Some(Budget {
            amount: Money::from_nanos(1_000_000_000_000),
            currency: "USD".into(),
            actual_thresholds: vec![50, 80, 100],
            forecast_thresholds: vec![100],
            alerted: BudgetAlerted {
                month: "2026-11".into(),
                actual: vec![50],
                forecast: vec![],
            },
            updated_by: Some(ANA),
            updated_at: at("2026-11-10T10:00:00Z"),
        })
    );
    let used = store
        .action_token("ac00000000000000000000000000000000000000000000000000000000000001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used.used_at, Some(at("2026-11-15T16:44:59.123456Z")));
    assert_eq!(used.detail, json!({"monthly_cost": "70.08"}));
    let pending = "ac00000000000000000000000000000000000000000000000000000000000002";
    let token = store.action_token(pending).await.unwrap().unwrap();
    assert_eq!(
        (
            token.tenant_id,
            token.user_id,
            token.action.as_str(),
            token.expires_at
        ),
        (ACME, ANA, "stop", at("2026-11-30T12:05:00Z"))
    );
    let before_expiry = at("2026-11-30T12:04:00Z");
    assert!(
        !store
            .use_action_token(GLOBEX, pending, before_expiry)
            .await
            .unwrap(),
        "another tenant's token"
    );
    assert!(
        store
            .use_action_token(ACME, pending, before_expiry)
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_action_token(ACME, pending, before_expiry)
            .await
            .unwrap(),
        "used once"
    );
}

async fn subscriptions_and_deliveries(store: &Arc<dyn Store>) {
    let subscriptions = store.subscriptions(ACME).await.unwrap();
    assert_eq!(subscriptions.len(), 1);
    let hook = &subscriptions[0];
    assert_eq!(
        (
            hook.name.as_str(),
            hook.target.as_str(),
            hook.threshold.as_str(),
            hook.created_at
        ),
        (
            "Ops hook",
            "https://hooks.example.com/cloudspend",
            "100.00",
            at("2026-11-10T10:05:00Z")
        )
    );
    let delivered = id("f0000000-0000-4000-8000-000000000001");
    let claimed = id("f0000000-0000-4000-8000-000000000002");
    let retrying = id("f0000000-0000-4000-8000-000000000003");
    let deliveries = store.deliveries(ACME, 10).await.unwrap();
    let summary: Vec<(Uuid, DeliveryStatus, i64, Option<i64>)> = deliveries
        .iter()
        .map(|d| (d.id, d.status, d.attempts, d.response_code))
        .collect();
    assert_eq!(
        summary,
        vec![
            (claimed, DeliveryStatus::Pending, 1, None),
            (retrying, DeliveryStatus::Pending, 2, Some(502)),
            (delivered, DeliveryStatus::Delivered, 1, Some(200)),
        ]
    );
    assert_eq!(deliveries[0].payload, json!({"series": "total"}));

    // The previous release's claim holds until it runs out (12:01): today's deliverers do not
    // send it meanwhile, then take it over, and only the new claimer's outcome counts.
    let claim = |now: &str| {
        let store = store.clone();
        let now = at(now);
        async move {
            store
                .claim_due_deliveries("today:1", now, now + Duration::seconds(60), 10, 5)
                .await
                .unwrap()
        }
    };
    assert_eq!(claim("2026-11-30T12:00:30Z").await, vec![]);
    let taken = claim("2026-11-30T12:01:30Z").await;
    assert_eq!(
        taken.iter().map(|d| (d.id, d.attempts)).collect::<Vec<_>>(),
        vec![(claimed, 2)]
    );
    let outcome = DeliveryOutcome {
        status: DeliveryStatus::Delivered,
        next_attempt_at: at("2026-11-30T12:01:31Z"),
        response_code: Some(204),
        last_error: None,
        at: at("2026-11-30T12:01:31Z"),
    };
    assert!(
        !store
            .finish_delivery(ACME, claimed, "old-deliverer", outcome.clone())
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_delivery(ACME, claimed, "today:1", outcome)
            .await
            .unwrap()
    );
    let retried = claim("2026-11-30T12:30:00Z").await;
    assert_eq!(
        retried
            .iter()
            .map(|d| (d.id, d.attempts))
            .collect::<Vec<_>>(),
        vec![(retrying, 3)]
    );
}

async fn the_new_tables_work(store: &Arc<dyn Store>) {
    // An invitation into the old tenant, accepted by a new account.
    let now = at("2026-12-01T09:00:00Z");
    let invitation = store
        .create_invitation(
            ACME,
            NewInvitation {
                email: "cara@example.com".into(),
                role: Role::Admin,
                token_hash: "1d00000000000000000000000000000000000000000000000000000000000001"
                    .into(),
                invited_by: ANA,
                created_at: now,
                expires_at: now + Duration::days(7),
            },
        )
        .await
        .unwrap();
    let cara = store
        .create_user(NewUser {
            email: "cara@example.com".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$Y2FyYQ$Y2FyYQ".into(),
            is_global_owner: false,
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .accept_invitation(ACME, invitation.id, cara.id, now)
            .await
            .unwrap(),
        InvitationAccepted::Joined
    );
    assert_eq!(
        store.role_in(ACME, cara.id).await.unwrap(),
        Some(Role::Admin)
    );

    // A password reset for an old user revokes the old tokens.
    store
        .create_password_reset(NewPasswordReset {
            token_hash: "7e00000000000000000000000000000000000000000000000000000000000001".into(),
            user_id: ANA,
            created_at: now,
            expires_at: now + Duration::minutes(30),
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .reset_password(
                "7e00000000000000000000000000000000000000000000000000000000000001",
                "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3",
                now
            )
            .await
            .unwrap(),
        Some(ANA)
    );
    assert_eq!(store.tokens_of(ANA, None, now).await.unwrap(), vec![]);

    // A diagnostic call counts in the old tenant's AWS usage with its old runs.
    let admitted = store
        .start_diagnostic_call(
            ACME,
            DiagnosticEndpoint::TestCost,
            now,
            Some(Allowance {
                since: now - Duration::hours(1),
                max_calls: 1,
            }),
        )
        .await
        .unwrap();
    let Admission::Admitted(call) = admitted else {
        panic!("the first diagnostic call is admitted: {admitted:?}");
    };
    store
        .finish_diagnostic_call(ACME, call, 2, 1)
        .await
        .unwrap();
    assert_eq!(
        store
            .aws_usage_since(ACME, at("2026-11-30T00:00:00Z"))
            .await
            .unwrap(),
        AwsUsage {
            requests: 9,
            ce_requests: 5
        }
    );
}
