//! The Athena run against a mocked client: paging (which moto does not do), failures and
//! timeouts Athena reports and moto never does.

use aws_sdk_athena::Client;
use aws_sdk_athena::operation::get_query_execution::GetQueryExecutionOutput;
use aws_sdk_athena::operation::get_query_results::GetQueryResultsOutput;
use aws_sdk_athena::operation::start_query_execution::StartQueryExecutionOutput;
use aws_sdk_athena::operation::stop_query_execution::StopQueryExecutionOutput;
use aws_sdk_athena::types::{
    Datum, QueryExecution, QueryExecutionState, QueryExecutionStatus, ResultSet, Row,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use chrono::NaiveDate;
use cloudspend_aws_access::RequestCounter;
use cloudspend_collect_cur::Format;
use cloudspend_collect_cur::athena::{
    AthenaError, AthenaLocation, NO_ROWS_NOTE, QueryOptions, query_cur_with_client,
};
use cloudspend_core::Money;
use std::time::Duration;

const COLUMNS_ID: &str = "q-columns";
const AGGREGATE_ID: &str = "q-aggregate";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn location() -> AthenaLocation {
    AthenaLocation {
        database: "cur".into(),
        table: "cur2".into(),
        workgroup: "primary".into(),
        output_location: Some("s3://results/athena/".into()),
    }
}

fn fast() -> QueryOptions {
    QueryOptions {
        poll_initial: Duration::from_millis(1),
        poll_max: Duration::from_millis(4),
        timeout: Duration::from_secs(5),
        page_size: 1000,
    }
}

/// `None` is NULL (an empty Datum, as Athena sends it).
fn row(cells: &[Option<&str>]) -> Row {
    let mut b = Row::builder();
    for cell in cells {
        let datum = match cell {
            Some(v) => Datum::builder().var_char_value(*v).build(),
            None => Datum::builder().build(),
        };
        b = b.data(datum);
    }
    b.build()
}

fn text_row(cells: &[&str]) -> Row {
    row(&cells.iter().map(|c| Some(*c)).collect::<Vec<_>>())
}

fn page(rows: Vec<Row>, next: Option<&str>) -> GetQueryResultsOutput {
    GetQueryResultsOutput::builder()
        .result_set(ResultSet::builder().set_rows(Some(rows)).build())
        .set_next_token(next.map(str::to_string))
        .build()
}

/// StartQueryExecution: the columns query gets one id, the aggregate query the other.
fn start_rules() -> [Rule; 2] {
    [
        mock!(Client::start_query_execution)
            .match_requests(|r| {
                r.query_string()
                    .is_some_and(|q| q.contains("information_schema.columns"))
            })
            .then_output(|| {
                StartQueryExecutionOutput::builder()
                    .query_execution_id(COLUMNS_ID)
                    .build()
            }),
        mock!(Client::start_query_execution)
            .match_requests(|r| r.query_string().is_some_and(|q| q.contains("GROUP BY")))
            .then_output(|| {
                StartQueryExecutionOutput::builder()
                    .query_execution_id(AGGREGATE_ID)
                    .build()
            }),
    ]
}

fn execution(
    id: &str,
    state: QueryExecutionState,
    reason: Option<&str>,
) -> GetQueryExecutionOutput {
    let mut status = QueryExecutionStatus::builder().state(state);
    if let Some(reason) = reason {
        status = status.state_change_reason(reason);
    }
    GetQueryExecutionOutput::builder()
        .query_execution(
            QueryExecution::builder()
                .query_execution_id(id)
                .status(status.build())
                .build(),
        )
        .build()
}

fn succeeded(id: &'static str) -> Rule {
    mock!(Client::get_query_execution)
        .match_requests(move |r| r.query_execution_id() == Some(id))
        .then_output(move || execution(id, QueryExecutionState::Succeeded, None))
}

/// information_schema's answer for a small CUR 2.0 table.
fn columns_result() -> Rule {
    mock!(Client::get_query_results)
        .match_requests(|r| r.query_execution_id() == Some(COLUMNS_ID))
        .then_output(|| {
            let mut rows = vec![text_row(&["column_name", "data_type"])];
            for (name, data_type) in [
                ("line_item_usage_start_date", "timestamp(3)"),
                ("line_item_unblended_cost", "double"),
                ("line_item_usage_account_id", "varchar"),
                ("product", "map(varchar, varchar)"),
                ("billing_period", "varchar"),
            ] {
                rows.push(text_row(&[name, data_type]));
            }
            page(rows, None)
        })
}

fn client(rules: &[&Rule], counter: &RequestCounter) -> Client {
    let counter = counter.clone();
    mock_client!(aws_sdk_athena, RuleMode::MatchAny, rules, move |b| b
        .interceptor(counter.clone()))
}

/// The aggregate query's header, deliberately not in the query's column order: the reader
/// must go by name.
const HEADER: [&str; 12] = [
    "unblended",
    "day",
    "account_id",
    "service",
    "region",
    "usage_type",
    "resource_id",
    "line_item_type",
    "amortized",
    "usage_amount",
    "currency",
    "currencies",
];

fn data_row(day: &str, service: &str, unblended: &str, usage: Option<&str>) -> Row {
    row(&[
        Some(unblended),
        Some(day),
        Some("111122223333"),
        Some(service),
        Some("us-east-1"),
        Some(""),
        None,
        Some("Usage"),
        Some(unblended),
        usage,
        Some("USD"),
        Some("1"),
    ])
}

#[tokio::test]
async fn results_are_read_over_two_pages_with_the_header_only_on_the_first() {
    let [start_columns, start_aggregate] = start_rules();
    let page_1 = mock!(Client::get_query_results)
        .match_requests(|r| {
            r.query_execution_id() == Some(AGGREGATE_ID)
                && r.next_token().is_none()
                && r.max_results() == Some(1000)
        })
        .then_output(|| {
            page(
                vec![
                    text_row(&HEADER),
                    data_row(
                        "2026-11-01",
                        "Amazon Simple Storage Service",
                        "0.1234567891",
                        Some("3.5000000000"),
                    ),
                    data_row("2026-11-02", "AWS Lambda", "-0.0000000010", None),
                ],
                Some("page-2"),
            )
        });
    let page_2 = mock!(Client::get_query_results)
        .match_requests(|r| {
            r.query_execution_id() == Some(AGGREGATE_ID)
                && r.next_token() == Some("page-2")
                && r.max_results() == Some(1000)
        })
        .then_output(|| {
            page(
                vec![data_row(
                    "2026-11-01",
                    "Amazon Elastic Compute Cloud",
                    "12.0000000000",
                    Some("24"),
                )],
                None,
            )
        });
    let columns = columns_result();
    let (done_columns, done_aggregate) = (succeeded(COLUMNS_ID), succeeded(AGGREGATE_ID));
    let counter = RequestCounter::new();
    let client = client(
        &[
            &start_columns,
            &start_aggregate,
            &done_columns,
            &done_aggregate,
            &columns,
            &page_1,
            &page_2,
        ],
        &counter,
    );

    let result = query_cur_with_client(
        &client,
        &location(),
        d("2026-11-01"),
        d("2026-11-03"),
        &fast(),
    )
    .await
    .unwrap();

    assert_eq!(result.format, Format::Cur2);
    assert_eq!(result.rows, 3);
    assert_eq!(
        result.query_execution_ids,
        vec![COLUMNS_ID.to_string(), AGGREGATE_ID.to_string()]
    );
    assert_eq!(result.note, None);
    let summary: Vec<(String, &str, String, Option<&str>)> = result
        .records
        .iter()
        .map(|r| {
            (
                r.day.to_string(),
                r.service.as_str(),
                r.unblended.to_string(),
                r.usage_amount.as_deref(),
            )
        })
        .collect();
    // Sorted by key across pages; NULL usage stays None; tiny negative amounts are kept exactly.
    assert_eq!(
        summary,
        vec![
            (
                "2026-11-01".into(),
                "Amazon Elastic Compute Cloud",
                "12.00".into(),
                Some("24")
            ),
            (
                "2026-11-01".into(),
                "Amazon Simple Storage Service",
                "0.123456789".into(),
                Some("3.5")
            ),
            (
                "2026-11-02".into(),
                "AWS Lambda",
                "-0.000000001".into(),
                None
            ),
        ]
    );
    let s3 = &result.records[1];
    assert_eq!(s3.amortized, "0.1234567891".parse::<Money>().unwrap());
    assert_eq!(s3.account_id, "111122223333");
    assert_eq!(s3.resource_id, "", "NULL text is the empty string");
    assert_eq!(s3.currency, "USD");
    assert!(!s3.estimated);

    let counts = counter.counts();
    assert_eq!(counts.operation("StartQueryExecution"), 2, "{counts:?}");
    assert_eq!(
        counts.operation("GetQueryResults"),
        3,
        "one page of columns, two of results: {counts:?}"
    );
    assert_eq!(page_2.num_calls(), 1);
}

fn failed_aggregate(reason: &'static str) -> Rule {
    mock!(Client::get_query_execution)
        .match_requests(|r| r.query_execution_id() == Some(AGGREGATE_ID))
        .then_output(move || execution(AGGREGATE_ID, QueryExecutionState::Failed, Some(reason)))
}

async fn run_with_failed_aggregate(reason: &'static str) -> AthenaError {
    let [start_columns, start_aggregate] = start_rules();
    let (columns, done_columns, failed) = (
        columns_result(),
        succeeded(COLUMNS_ID),
        failed_aggregate(reason),
    );
    let client = client(
        &[
            &start_columns,
            &start_aggregate,
            &columns,
            &done_columns,
            &failed,
        ],
        &RequestCounter::new(),
    );
    query_cur_with_client(
        &client,
        &location(),
        d("2026-11-01"),
        d("2026-11-02"),
        &fast(),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn a_table_athena_cannot_find_is_table_missing_with_a_hint() {
    let err = run_with_failed_aggregate(
        "TABLE_NOT_FOUND: line 21:8: Table 'awsdatacatalog.cur.cur2' does not exist",
    )
    .await;
    match &err {
        AthenaError::TableMissing {
            database,
            table,
            hint,
        } => {
            assert_eq!((database.as_str(), table.as_str()), ("cur", "cur2"));
            assert!(hint.contains("database and table names"), "{hint}");
        }
        other => panic!("expected TableMissing, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("the Athena table cur.cur2 does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn any_other_failure_carries_athenas_reason() {
    let reason = "HIVE_BAD_DATA: Error parsing field value '' for field 3: For input string: \"\"";
    let err = run_with_failed_aggregate(reason).await;
    match &err {
        AthenaError::QueryFailed {
            query_execution_id,
            state,
            reason: got,
        } => {
            assert_eq!(query_execution_id, AGGREGATE_ID);
            assert_eq!(state, "failed");
            assert_eq!(got, reason);
        }
        other => panic!("expected QueryFailed, got {other:?}"),
    }
    // A file that vanished mid-query is not a missing table.
    let err =
        run_with_failed_aggregate("HIVE_CANNOT_OPEN_SPLIT: The specified key does not exist.")
            .await;
    assert!(matches!(err, AthenaError::QueryFailed { .. }), "{err:?}");
}

#[tokio::test]
async fn a_query_that_runs_too_long_is_stopped_and_times_out() {
    let [start_columns, _] = start_rules();
    let running = mock!(Client::get_query_execution)
        .then_output(|| execution(COLUMNS_ID, QueryExecutionState::Running, None));
    let stop = mock!(Client::stop_query_execution)
        .match_requests(|r| r.query_execution_id() == Some(COLUMNS_ID))
        .then_output(|| StopQueryExecutionOutput::builder().build());
    let counter = RequestCounter::new();
    let client = client(&[&start_columns, &running, &stop], &counter);
    let opts = QueryOptions {
        timeout: Duration::from_millis(60),
        ..fast()
    };

    let err = query_cur_with_client(
        &client,
        &location(),
        d("2026-11-01"),
        d("2026-11-02"),
        &opts,
    )
    .await
    .unwrap_err();

    assert!(
        matches!(&err, AthenaError::Timeout { query_execution_id, .. } if query_execution_id == COLUMNS_ID),
        "{err:?}"
    );
    assert_eq!(stop.num_calls(), 1);
    let polls = counter.counts().operation("GetQueryExecution");
    // 1, 2, 4, 4, ... ms within 60 ms: polled several times, with backoff, not spinning.
    assert!((2..=40).contains(&polls), "{polls} polls");
    assert!(err.to_string().contains("was stopped"), "{err}");
}

#[tokio::test]
async fn an_empty_information_schema_answer_is_table_missing() {
    let [start_columns, _] = start_rules();
    let done = succeeded(COLUMNS_ID);
    // Real Athena sends the header and no data rows for an unknown table.
    let header_only = mock!(Client::get_query_results)
        .then_output(|| page(vec![text_row(&["column_name", "data_type"])], None));
    let client = client(
        &[&start_columns, &done, &header_only],
        &RequestCounter::new(),
    );
    let err = query_cur_with_client(
        &client,
        &location(),
        d("2026-11-01"),
        d("2026-11-02"),
        &fast(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, AthenaError::TableMissing { .. }), "{err:?}");
}

#[tokio::test]
async fn a_table_that_is_no_cur_is_refused_with_its_columns() {
    let [start_columns, _] = start_rules();
    let done = succeeded(COLUMNS_ID);
    let other = mock!(Client::get_query_results).then_output(|| {
        page(
            vec![
                text_row(&["column_name", "data_type"]),
                text_row(&["order_id", "bigint"]),
            ],
            None,
        )
    });
    let client = client(&[&start_columns, &done, &other], &RequestCounter::new());
    let err = query_cur_with_client(
        &client,
        &location(),
        d("2026-11-01"),
        d("2026-11-02"),
        &fast(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, AthenaError::UnknownSchema { .. }), "{err:?}");
    assert!(
        err.to_string().contains("its columns include: order_id"),
        "{err}"
    );
}

#[tokio::test]
async fn a_header_only_aggregate_answer_is_an_empty_window_with_a_note() {
    let [start_columns, start_aggregate] = start_rules();
    let (columns, done_columns, done_aggregate) = (
        columns_result(),
        succeeded(COLUMNS_ID),
        succeeded(AGGREGATE_ID),
    );
    let empty = mock!(Client::get_query_results)
        .match_requests(|r| r.query_execution_id() == Some(AGGREGATE_ID))
        .then_output(|| page(vec![text_row(&HEADER)], None));
    let client = client(
        &[
            &start_columns,
            &start_aggregate,
            &columns,
            &done_columns,
            &done_aggregate,
            &empty,
        ],
        &RequestCounter::new(),
    );
    let result = query_cur_with_client(
        &client,
        &location(),
        d("2026-11-01"),
        d("2026-11-02"),
        &fast(),
    )
    .await
    .unwrap();
    assert!(result.records.is_empty());
    assert_eq!(result.rows, 0);
    assert_eq!(result.note.as_deref(), Some(NO_ROWS_NOTE));
}

#[tokio::test]
async fn two_currencies_under_one_key_are_refused() {
    let [start_columns, start_aggregate] = start_rules();
    let (columns, done_columns, done_aggregate) = (
        columns_result(),
        succeeded(COLUMNS_ID),
        succeeded(AGGREGATE_ID),
    );
    let mixed = mock!(Client::get_query_results)
        .match_requests(|r| r.query_execution_id() == Some(AGGREGATE_ID))
        .then_output(|| {
            let mut cells: Vec<Option<&str>> = vec![
                Some("1"),
                Some("2026-11-01"),
                Some("a"),
                Some("s"),
                Some("r"),
                Some("u"),
            ];
            cells.extend([
                Some("i"),
                Some("Usage"),
                Some("1"),
                None,
                Some("EUR"),
                Some("2"),
            ]);
            page(vec![text_row(&HEADER), row(&cells)], None)
        });
    let client = client(
        &[
            &start_columns,
            &start_aggregate,
            &columns,
            &done_columns,
            &done_aggregate,
            &mixed,
        ],
        &RequestCounter::new(),
    );
    let err = query_cur_with_client(
        &client,
        &location(),
        d("2026-11-01"),
        d("2026-11-02"),
        &fast(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, AthenaError::MixedCurrency { row: 2, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_injected_table_name_is_refused_before_any_request() {
    let counter = RequestCounter::new();
    let client = client(&[], &counter);
    let bad = AthenaLocation {
        table: "x; DROP TABLE y".into(),
        ..location()
    };
    let err = query_cur_with_client(&client, &bad, d("2026-11-01"), d("2026-11-02"), &fast())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AthenaError::InvalidName { field: "table", .. }),
        "{err:?}"
    );
    assert_eq!(counter.counts().requests, 0);
}
