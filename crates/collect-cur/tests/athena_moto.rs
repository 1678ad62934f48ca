//! End-to-end against the moto server (`scripts/test.sh` starts it and sets
//! CLOUDSPEND_TEST_MOTO_URL; without it these tests fail, they never skip).
//!
//! moto runs no SQL: each query takes the next preset result of its account (moto's
//! `/moto-api/static/athena/query-results`), rows exactly as given, header included, `{}` for
//! NULL. So every run presets two answers: information_schema's columns (the real column lists
//! of `tests/data/cur-ddl`), then the aggregate rows Athena computes for a small CUR, which is
//! also written as a CSV and imported by the file path. The two must give equal records.

use aws_sdk_athena::Client;
use chrono::NaiveDate;
use cloudspend_aws_access::RequestCounter;
use cloudspend_aws_access::testing::{self, role_in, unique_account_id};
use cloudspend_collect_cur::athena::{
    AthenaError, AthenaLocation, AthenaResult, NO_ROWS_NOTE, QueryOptions, query_cur,
};
use cloudspend_collect_cur::{Format, ImportResult, import_reader};
use cloudspend_core::TenantId;
use serde_json::{Value, json};
use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

const REGION: &str = "us-east-1";
const AGGREGATE_HEADER: [&str; 12] = [
    "day",
    "account_id",
    "service",
    "region",
    "usage_type",
    "resource_id",
    "line_item_type",
    "unblended",
    "amortized",
    "usage_amount",
    "currency",
    "currencies",
];

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// One result row as moto takes it: `None` is NULL (`{}`).
fn row(cells: &[Option<&str>]) -> Value {
    let data: Vec<Value> = cells
        .iter()
        .map(|c| match c {
            Some(v) => json!({ "VarCharValue": v }),
            None => json!({}),
        })
        .collect();
    json!({ "Data": data })
}

/// Queues Athena query results for `account_id`: the n-th query started there gets the n-th.
async fn preset_athena_results(account_id: &str, results: Vec<Vec<Value>>) {
    let results: Vec<Value> = results
        .into_iter()
        .map(|rows| json!({ "rows": rows, "column_info": [] }))
        .collect();
    let body = json!({ "account_id": account_id, "region": REGION, "results": results });
    moto_post("/moto-api/static/athena/query-results", body).await;
}

async fn moto_post(path: &str, body: Value) {
    let url = format!("{}{path}", testing::moto_url());
    let response = reqwest::Client::new()
        .post(&url)
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("moto at {url} did not answer ({e}): is moto_server running?"));
    let status = response.status();
    assert!(
        status.is_success(),
        "moto {path} answered {status}: {}",
        response.text().await.unwrap_or_default()
    );
}

/// information_schema's answer for a DDL column list in `tests/data/cur-ddl`, plus `extra`.
fn columns_answer(ddl_file: &str, extra: &[(&str, &str)]) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/cur-ddl")
        .join(ddl_file);
    assert!(
        path.exists(),
        "{} is missing (the repository ships it in tests/data/cur-ddl)",
        path.display()
    );
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let mut columns: Vec<(String, String)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let data_type = match r[1].to_ascii_lowercase().as_str() {
                "string" => "varchar".to_string(),
                "timestamp" => "timestamp(3)".to_string(),
                "map<string,string>" => "map(varchar, varchar)".to_string(),
                "map<string,double>" => "map(varchar, double)".to_string(),
                other => other.to_string(),
            };
            (r[0].to_string(), data_type)
        })
        .collect();
    columns.extend(extra.iter().map(|(n, t)| (n.to_string(), t.to_string())));
    let mut rows = vec![row(&[Some("column_name"), Some("data_type")])];
    rows.extend(columns.iter().map(|(n, t)| row(&[Some(n), Some(t)])));
    rows
}

/// The aggregate query's answer: the header, then rows in its column order.
fn aggregate_answer(rows: &[[Option<&str>; 12]]) -> Vec<Value> {
    let header: Vec<Option<&str>> = AGGREGATE_HEADER.iter().map(|h| Some(*h)).collect();
    let mut out = vec![row(&header)];
    out.extend(rows.iter().map(|r| row(r)));
    out
}

fn import_csv(csv: &str) -> ImportResult {
    import_reader(Cursor::new(csv.as_bytes().to_vec()), &mut |_| {}).unwrap()
}

struct Run {
    result: Result<AthenaResult, AthenaError>,
    /// The SQL of each query started, from GetQueryExecution.
    queries: Vec<String>,
    counter: RequestCounter,
}

async fn run(account: &str, table: &str, from: &str, to: &str) -> Run {
    let access = testing::aws_access().await;
    let config = access
        .sdk_config(TenantId::new(), &role_in(account), REGION)
        .await
        .unwrap();
    let location = AthenaLocation {
        database: "cur".into(),
        table: table.into(),
        workgroup: "primary".into(),
        output_location: Some("s3://cloudspend-athena-results/cur/".into()),
    };
    let counter = RequestCounter::new();
    let opts = QueryOptions {
        poll_initial: Duration::from_millis(20),
        ..QueryOptions::default()
    };
    let result = query_cur(&config, &location, d(from), d(to), &counter, &opts).await;
    let mut queries = Vec::new();
    if let Ok(result) = &result {
        let client = Client::new(&config);
        for id in &result.query_execution_ids {
            let execution = client
                .get_query_execution()
                .query_execution_id(id)
                .send()
                .await
                .unwrap();
            queries.push(
                execution
                    .query_execution()
                    .and_then(|q| q.query())
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    Run {
        result,
        queries,
        counter,
    }
}

const LEGACY_CSV: &str = "\
lineItem/UsageStartDate,lineItem/UsageAccountId,bill/PayerAccountId,lineItem/ProductCode,product/ProductName,product/region,lineItem/AvailabilityZone,lineItem/UsageType,lineItem/ResourceId,lineItem/LineItemType,lineItem/UnblendedCost,lineItem/UsageAmount,pricing/unit,lineItem/CurrencyCode,reservation/EffectiveCost
2026-11-01T00:00:00Z,111122223333,999988887777,AmazonEC2,Amazon Elastic Compute Cloud,us-east-1,us-east-1a,BoxUsage:t3.micro,i-0abc,Usage,0.0104,1,Hrs,USD,
2026-11-01T01:00:00Z,111122223333,999988887777,AmazonEC2,Amazon Elastic Compute Cloud,us-east-1,us-east-1a,BoxUsage:t3.micro,i-0abc,Usage,0.0104,1,Hrs,USD,
2026-11-01T02:00:00Z,111122223333,999988887777,AmazonEC2,Amazon Elastic Compute Cloud,us-east-1,us-east-1a,BoxUsage:m5.large,i-0def,DiscountedUsage,0,1,Hrs,USD,0.062
2026-11-01T00:00:00Z,,999988887777,AmazonS3,Amazon Simple Storage Service,,eu-west-1b,EUW1-TimedStorage-ByteHrs,my-bucket,Usage,0.00001605990,0.5,GB-Mo,USD,
2026-11-02T00:00:00Z,111122223333,999988887777,AmazonEC2,Amazon Elastic Compute Cloud,,,,,Tax,0.37,,,USD,
2026-11-02T00:00:00Z,111122223333,999988887777,AmazonEC2,Amazon Elastic Compute Cloud,,,,,Credit,-1.25,,,USD,
";

/// What Athena answers for LEGACY_CSV's lines (DOUBLE costs summed as DECIMAL(38,10)).
fn legacy_rows() -> Vec<[Option<&'static str>; 12]> {
    let ec2 = Some("Amazon Elastic Compute Cloud");
    vec![
        [
            Some("2026-11-02"),
            Some("111122223333"),
            ec2,
            Some(""),
            Some(""),
            Some(""),
            Some("Tax"),
            Some("0.3700000000"),
            Some("0.3700000000"),
            None,
            Some("USD"),
            Some("1"),
        ],
        [
            Some("2026-11-01"),
            Some("111122223333"),
            ec2,
            Some("us-east-1"),
            Some("BoxUsage:t3.micro"),
            Some("i-0abc"),
            Some("Usage"),
            Some("0.0208000000"),
            Some("0.0208000000"),
            Some("2.0000000000"),
            Some("USD"),
            Some("1"),
        ],
        [
            Some("2026-11-01"),
            Some("111122223333"),
            ec2,
            Some("us-east-1"),
            Some("BoxUsage:m5.large"),
            Some("i-0def"),
            Some("DiscountedUsage"),
            Some("0.0000000000"),
            Some("0.0620000000"),
            Some("1.0000000000"),
            Some("USD"),
            Some("1"),
        ],
        [
            Some("2026-11-01"),
            Some("999988887777"),
            Some("Amazon Simple Storage Service"),
            Some("eu-west-1"),
            Some("EUW1-TimedStorage-ByteHrs"),
            Some("my-bucket"),
            Some("Usage"),
            Some("0.0000160599"),
            Some("0.0000160599"),
            Some("0.5000000000"),
            Some("USD"),
            Some("1"),
        ],
        [
            Some("2026-11-02"),
            Some("111122223333"),
            ec2,
            Some(""),
            Some(""),
            Some(""),
            Some("Credit"),
            Some("-1.2500000000"),
            Some("-1.2500000000"),
            None,
            Some("USD"),
            Some("1"),
        ],
    ]
}

#[tokio::test]
async fn legacy_cur_table_gives_the_records_of_the_file_import() {
    let _moto_state = testing::shared().await;
    let account = unique_account_id();
    let columns = columns_answer(
        "DERIVED_legacy_cur_columns_from_wa_labs_ddl.csv",
        &[("year", "varchar"), ("month", "varchar")],
    );
    preset_athena_results(&account, vec![columns, aggregate_answer(&legacy_rows())]).await;

    let run = run(&account, "workshop_c_u_r", "2026-11-01", "2026-11-03").await;
    let athena = run.result.unwrap();
    let file = import_csv(LEGACY_CSV);

    assert_eq!(file.format, Format::LegacyCur);
    assert_eq!(athena.format, Format::LegacyCur);
    assert_eq!(athena.records, file.records);
    assert_eq!(athena.rows, 5);
    assert_eq!(athena.note, None);
    assert_eq!(athena.query_execution_ids.len(), 2);
    assert!(
        run.queries[0].contains("information_schema.columns"),
        "{}",
        run.queries[0]
    );
    assert!(
        run.queries[0].contains("table_name = 'workshop_c_u_r'"),
        "{}",
        run.queries[0]
    );
    let sql = &run.queries[1];
    assert!(
        sql.contains(r#"("year" = '2026' AND "month" IN ('11'))"#),
        "{sql}"
    );
    assert!(sql.contains("FROM \"cur\".\"workshop_c_u_r\""), "{sql}");
    assert!(sql.contains("TIMESTAMP '2026-11-03 00:00:00'"), "{sql}");
    let counts = run.counter.counts();
    assert_eq!(counts.operation("StartQueryExecution"), 2, "{counts:?}");
    assert_eq!(counts.operation("GetQueryResults"), 2, "{counts:?}");
}

const CUR2_CSV: &str = r#"line_item_usage_start_date,line_item_usage_account_id,bill_payer_account_id,line_item_product_code,product,line_item_availability_zone,line_item_usage_type,line_item_resource_id,line_item_line_item_type,line_item_unblended_cost,line_item_usage_amount,pricing_unit,savings_plan_savings_plan_effective_cost,savings_plan_total_commitment_to_date,savings_plan_used_commitment
2026-11-03T00:00:00.000Z,222233334444,222233334444,AmazonEC2,"{""product_name"": ""Amazon Elastic Compute Cloud"", ""region_code"": ""eu-central-1""}",eu-central-1a,EUC1-BoxUsage:c5.xlarge,i-0sp,SavingsPlanCoveredUsage,0.194,1,Hrs,0.121,,
2026-11-03T01:00:00.000Z,222233334444,222233334444,AmazonEC2,"{""product_name"": ""Amazon Elastic Compute Cloud"", ""region_code"": ""eu-central-1""}",eu-central-1a,EUC1-BoxUsage:c5.xlarge,i-0sp,SavingsPlanCoveredUsage,0.194,1,Hrs,0.121,,
2026-11-03T00:00:00.000Z,222233334444,222233334444,AmazonEC2,"{""product_name"": ""Amazon Elastic Compute Cloud"", ""region_code"": ""eu-central-1""}",eu-central-1a,EUC1-BoxUsage:c5.xlarge,i-0sp,SavingsPlanNegation,-0.194,1,Hrs,,,
2026-11-03T00:00:00.000Z,222233334444,222233334444,ComputeSavingsPlans,"{""product_name"": ""Savings Plans for AWS Compute usage""}",,ComputeSP:1yrNoUpfront,arn:aws:savingsplans::222233334444:savingsplan/sp-1,SavingsPlanRecurringFee,2.40,24,Hrs,,2.40,1.90
2026-11-04T00:00:00.000Z,222233334444,222233334444,AWSLambda,"{""product_name"": ""AWS Lambda"", ""region"": ""us-west-2""}",,USW2-Lambda,arn:aws:lambda:us-west-2:222233334444:function:f,Usage,0.0000002,1,Requests,,,
2026-11-04T05:00:00.000Z,222233334444,222233334444,AWSLambda,"{""product_name"": ""AWS Lambda"", ""region"": ""us-west-2""}",,USW2-Lambda,arn:aws:lambda:us-west-2:222233334444:function:f,Usage,0.000166667,10,Lambda-GB-Second,,,
"#;

fn cur2_rows() -> Vec<[Option<&'static str>; 12]> {
    let (acct, ec2) = (Some("222233334444"), Some("Amazon Elastic Compute Cloud"));
    vec![
        [
            Some("2026-11-03"),
            acct,
            ec2,
            Some("eu-central-1"),
            Some("EUC1-BoxUsage:c5.xlarge"),
            Some("i-0sp"),
            Some("SavingsPlanCoveredUsage"),
            Some("0.3880000000"),
            Some("0.2420000000"),
            Some("2.0000000000"),
            Some("USD"),
            Some("1"),
        ],
        [
            Some("2026-11-03"),
            acct,
            ec2,
            Some("eu-central-1"),
            Some("EUC1-BoxUsage:c5.xlarge"),
            Some("i-0sp"),
            Some("SavingsPlanNegation"),
            Some("-0.1940000000"),
            Some("0.0000000000"),
            Some("1.0000000000"),
            Some("USD"),
            Some("1"),
        ],
        [
            Some("2026-11-03"),
            acct,
            Some("Savings Plans for AWS Compute usage"),
            Some(""),
            Some("ComputeSP:1yrNoUpfront"),
            Some("arn:aws:savingsplans::222233334444:savingsplan/sp-1"),
            Some("SavingsPlanRecurringFee"),
            Some("2.4000000000"),
            Some("0.5000000000"),
            Some("24.0000000000"),
            Some("USD"),
            Some("1"),
        ],
        // Requests and GB-seconds under one key: no usage sum.
        [
            Some("2026-11-04"),
            acct,
            Some("AWS Lambda"),
            Some("us-west-2"),
            Some("USW2-Lambda"),
            Some("arn:aws:lambda:us-west-2:222233334444:function:f"),
            Some("Usage"),
            Some("0.0001668670"),
            Some("0.0001668670"),
            None,
            Some("USD"),
            Some("1"),
        ],
    ]
}

#[tokio::test]
async fn cur2_table_gives_the_records_of_the_file_import() {
    let _moto_state = testing::shared().await;
    let account = unique_account_id();
    let columns = columns_answer("DERIVED_cur2_columns_from_cid.csv", &[]);
    preset_athena_results(&account, vec![columns, aggregate_answer(&cur2_rows())]).await;

    let run = run(&account, "cur2", "2026-11-03", "2026-11-05").await;
    let athena = run.result.unwrap();
    let file = import_csv(CUR2_CSV);

    assert_eq!(file.format, Format::Cur2);
    assert_eq!(athena.format, Format::Cur2);
    assert_eq!(athena.records, file.records);
    assert_eq!(athena.records.len(), 4);
    let sql = &run.queries[1];
    assert!(sql.contains(r#""billing_period" IN ('2026-11')"#), "{sql}");
    assert!(sql.contains("element_at(product, 'product_name')"), "{sql}");
}

const FOCUS_CSV: &str = "\
BillingAccountId,SubAccountId,ProviderName,ServiceName,RegionId,AvailabilityZone,ResourceId,ChargeCategory,ChargePeriodStart,BilledCost,EffectiveCost,ConsumedQuantity,ConsumedUnit,BillingCurrency
999988887777,333344445555,AWS,Amazon Relational Database Service,us-east-2,,arn:aws:rds:us-east-2:333344445555:db:prod,Usage,2026-11-05 00:00:00,0.34,0.21,1,Hours,USD
999988887777,333344445555,AWS,Amazon Relational Database Service,us-east-2,,arn:aws:rds:us-east-2:333344445555:db:prod,Usage,2026-11-05 01:00:00,0.34,0.21,1,Hours,USD
999988887777,333344445555,AWS,Amazon Relational Database Service,,us-east-2c,arn:aws:rds:us-east-2:333344445555:db:replica,Usage,2026-11-05 00:00:00,0.17,NULL,1,Hours,USD
999988887777,,Amazon Web Services,AWS Support (Business),NULL,,,Purchase,2026-11-06 00:00:00,100,100,,,USD
999988887777,333344445555,Microsoft,Azure Virtual Machines,eastus,,vm1,Usage,2026-11-05 00:00:00,5.00,5.00,1,Hours,USD
";

fn focus_rows() -> Vec<[Option<&'static str>; 12]> {
    let rds = Some("Amazon Relational Database Service");
    vec![
        [
            Some("2026-11-05"),
            Some("333344445555"),
            rds,
            Some("us-east-2"),
            Some(""),
            Some("arn:aws:rds:us-east-2:333344445555:db:prod"),
            Some("Usage"),
            Some("0.6800000000"),
            Some("0.4200000000"),
            Some("2.0000000000"),
            Some("USD"),
            Some("1"),
        ],
        [
            Some("2026-11-05"),
            Some("333344445555"),
            rds,
            Some("us-east-2"),
            Some(""),
            Some("arn:aws:rds:us-east-2:333344445555:db:replica"),
            Some("Usage"),
            Some("0.1700000000"),
            Some("0.1700000000"),
            Some("1.0000000000"),
            Some("USD"),
            Some("1"),
        ],
        [
            Some("2026-11-06"),
            Some("999988887777"),
            Some("AWS Support (Business)"),
            Some(""),
            Some(""),
            Some(""),
            Some("Purchase"),
            Some("100.0000000000"),
            Some("100.0000000000"),
            None,
            Some("USD"),
            Some("1"),
        ],
    ]
}

#[tokio::test]
async fn focus_table_gives_the_records_of_the_file_import() {
    let _moto_state = testing::shared().await;
    let account = unique_account_id();
    let columns = columns_answer("DERIVED_focus_columns_from_cid.csv", &[]);
    preset_athena_results(&account, vec![columns, aggregate_answer(&focus_rows())]).await;

    let run = run(&account, "focus", "2026-11-01", "2026-12-01").await;
    let athena = run.result.unwrap();
    let file = import_csv(FOCUS_CSV);

    assert_eq!(file.format, Format::Focus);
    assert_eq!(file.rows_skipped, 1, "the Microsoft row");
    assert_eq!(athena.format, Format::Focus);
    assert_eq!(athena.records, file.records);
    assert_eq!(athena.records.len(), 3);
    let sql = &run.queries[1];
    assert!(
        sql.contains("lower(NULLIF(NULLIF(TRIM(providername), ''), 'NULL')) = 'aws'"),
        "{sql}"
    );
    assert!(sql.contains(r#""billing_period" IN ('2026-11')"#), "{sql}");
}

#[tokio::test]
async fn a_table_information_schema_does_not_know_is_table_missing() {
    let _moto_state = testing::shared().await;
    // No presets: moto answers the columns query with no rows, as Athena does for no table.
    let account = unique_account_id();
    let run = run(&account, "not_there", "2026-11-01", "2026-11-02").await;
    match run.result {
        Err(AthenaError::TableMissing {
            database,
            table,
            hint,
        }) => {
            assert_eq!((database.as_str(), table.as_str()), ("cur", "not_there"));
            assert!(!hint.is_empty());
        }
        other => panic!("expected TableMissing, got {other:?}"),
    }
    assert_eq!(
        run.counter.counts().operation("StartQueryExecution"),
        1,
        "no aggregate query on a missing table"
    );
}

#[tokio::test]
async fn a_window_without_rows_is_empty_with_a_note() {
    let _moto_state = testing::shared().await;
    let account = unique_account_id();
    let columns = columns_answer("DERIVED_cur2_columns_from_cid.csv", &[]);
    preset_athena_results(&account, vec![columns, aggregate_answer(&[])]).await;
    let athena = run(&account, "cur2", "2027-02-01", "2027-02-02")
        .await
        .result
        .unwrap();
    assert!(athena.records.is_empty());
    assert_eq!(athena.note.as_deref(), Some(NO_ROWS_NOTE));
}

#[tokio::test]
async fn queued_and_running_queries_are_polled_until_they_succeed() {
    // The transition setting is global to moto: no other test may run queries meanwhile.
    let _moto_state = testing::exclusive().await;
    let account = unique_account_id();
    let columns = columns_answer("DERIVED_focus_columns_from_cid.csv", &[]);
    preset_athena_results(&account, vec![columns, aggregate_answer(&focus_rows())]).await;
    moto_post(
        "/moto-api/state-manager/set-transition",
        json!({ "model_name": "athena::execution", "transition": { "progression": "manual", "times": 1 } }),
    )
    .await;

    let run = run(&account, "focus", "2026-11-01", "2026-12-01").await;

    // Reset before asserting, so a failure here cannot leave moto's queries stuck in QUEUED.
    moto_post(
        "/moto-api/state-manager/unset-transition",
        json!({ "model_name": "athena::execution" }),
    )
    .await;
    let athena = run.result.unwrap();
    assert_eq!(athena.records, import_csv(FOCUS_CSV).records);
    // Each query: QUEUED → RUNNING on the first poll, RUNNING → SUCCEEDED on the second.
    let counts = run.counter.counts();
    assert_eq!(counts.operation("GetQueryExecution"), 4, "{counts:?}");
}
