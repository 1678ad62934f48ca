//! An import whose sums are spilled to sorted runs, streamed into the store as `import-cur`
//! does it, stores what the import held in memory stores, on PostgreSQL (one COPY) and SQLite
//! (batches of upserts); a conflict that only the merge of the runs finds writes nothing.

use chrono::NaiveDate;
use cloudspend_collect_cur::{ImportOptions, import_paths_streamed, import_paths_with};
use cloudspend_core::TenantId;
use cloudspend_store::{NewUser, RollupDimension, Store, StoreError, upsert_daily_costs_from};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The repository's public test data (`tests/data`). Missing data is a failure, never a skipped
/// test.
fn data(relative: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(relative);
    assert!(
        path.exists(),
        "test data {relative} is missing (expected at {})",
        path.display()
    );
    path
}

async fn tenant(store: &Arc<dyn Store>, email: &str) -> TenantId {
    let (_, tenant) = store
        .create_user_with_tenant(
            NewUser {
                email: email.into(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                is_global_owner: false,
            },
            email,
        )
        .await
        .unwrap();
    tenant.id
}

/// Spills every few keys, on two threads with small blocks: dozens of runs for the sample.
fn spilling() -> ImportOptions {
    ImportOptions {
        threads: 2,
        block_bytes: 4096,
        spill_keys: 16,
    }
}

fn in_memory() -> ImportOptions {
    ImportOptions {
        spill_keys: usize::MAX,
        ..ImportOptions::default()
    }
}

/// Imports `paths` with `options` and writes the records as `import-cur` does.
async fn import_streamed(
    store: &Arc<dyn Store>,
    tenant: TenantId,
    paths: &[&Path],
    options: ImportOptions,
) -> Result<u64, StoreError> {
    let streamed = import_paths_streamed(paths, options, &mut |_| {}).expect("the files parse");
    let days = streamed.result.days.expect("the files have rows");
    let batches = streamed
        .records
        .batches(100)
        .map(|batch| batch.map_err(|e| e.to_string()));
    upsert_daily_costs_from(&**store, tenant, days, batches).await
}

async fn spilled_import_stores_what_the_in_memory_one_stores(store: Arc<dyn Store>) {
    let sample = data("cur/anonymized-legacy/sample-anonymous-aws-export-dataset.csv.gz");
    let streamed = tenant(&store, "streamed@example.com").await;
    let held = tenant(&store, "held@example.com").await;
    let bystander = tenant(&store, "bystander@example.com").await;

    let written = import_streamed(&store, streamed, &[&sample], spilling())
        .await
        .unwrap();
    let in_memory = import_paths_with(&[&sample], in_memory(), &mut |_| {}).unwrap();
    assert!(in_memory.records.len() > 200, "enough keys for many runs");
    let expected = store
        .upsert_daily_costs(held, &in_memory.records)
        .await
        .unwrap();
    assert_eq!(written, expected);
    assert_eq!(written, in_memory.records.len() as u64);

    let (first, last) = in_memory.days.unwrap();
    let to = last + chrono::Duration::days(1);
    let rows = |tenant| {
        let store = store.clone();
        async move { store.daily_costs(tenant, first, to).await.unwrap() }
    };
    assert_eq!(rows(streamed).await, rows(held).await);
    for dimension in RollupDimension::ALL {
        let rollups = |tenant| {
            let store = store.clone();
            async move {
                store
                    .cost_rollup_days(tenant, dimension, first, last, None)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            rollups(streamed).await,
            rollups(held).await,
            "{dimension:?}"
        );
    }
    assert!(rows(bystander).await.is_empty());

    // The same file again, spilled again: every row exists unchanged.
    assert_eq!(
        import_streamed(&store, streamed, &[&sample], spilling())
            .await
            .unwrap(),
        0
    );
}

async fn a_conflict_found_only_in_the_merge_of_runs_writes_nothing(store: Arc<dyn Store>) {
    let dir = std::env::temp_dir().join(format!("cloudspend-streamed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{:?}.csv", store.backend()));
    let mut csv = String::from(
        "lineItem/UsageStartDate,lineItem/UsageAccountId,lineItem/ProductCode,\
         lineItem/ResourceId,lineItem/UnblendedCost,lineItem/CurrencyCode\n",
    );
    // One key in USD early and in EUR late, with 40 other keys between them: with a spill every
    // 4 keys they sit in different runs, and no thread ever holds both.
    csv.push_str("2024-03-01,111122223333,AmazonEC2,i-k,1,USD\n");
    for i in 0..40 {
        csv.push_str(&format!("2024-03-02,111122223333,AmazonEC2,i-{i},1,USD\n"));
    }
    csv.push_str("2024-03-01,111122223333,AmazonEC2,i-k,1,EUR\n");
    std::fs::write(&path, csv).unwrap();
    let tenant = tenant(&store, "conflict@example.com").await;
    // A part spills between blocks: blocks of a line or two.
    let options = ImportOptions {
        threads: 1,
        block_bytes: 64,
        spill_keys: 4,
    };

    let error = import_streamed(&store, tenant, &[&path], options)
        .await
        .unwrap_err();
    let StoreError::Source(why) = &error else {
        panic!("expected the import's error, got {error}");
    };
    assert!(
        why.contains("line 43: currency EUR differs from USD"),
        "{why}"
    );
    let day = |d| NaiveDate::from_ymd_opt(2024, 3, d).unwrap();
    assert!(
        store
            .daily_costs(tenant, day(1), day(3))
            .await
            .unwrap()
            .is_empty(),
        "nothing written"
    );
    // In memory the import refuses the file with the same words.
    let whole = import_paths_with(&[&path], in_memory(), &mut |_| {}).unwrap_err();
    assert!(
        whole
            .to_string()
            .contains("line 43: currency EUR differs from USD"),
        "{whole}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(cloudspend_store::testing::fresh_postgres().await).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(cloudspend_store::testing::fresh_sqlite().await).await;
                }
            )*
        }
    };
}

on_both_backends!(
    spilled_import_stores_what_the_in_memory_one_stores,
    a_conflict_found_only_in_the_merge_of_runs_writes_nothing,
);
