//! The Athena collector: the tenant's CUR table queried in place, aggregated by Athena to the
//! same normalised [`CostRecord`]s the file import makes.
//!
//! Two queries per run: the table's columns from `information_schema` (so the aggregate query
//! names only columns the table has, see [`sql`]), then the aggregate query over the window,
//! pruned to the window's partitions. Each is started, polled with backoff up to
//! [`QueryOptions::timeout`] (and stopped when it runs over), and read page by page.
//!
//! What can go wrong is told apart, because each needs a different fix: a table that does not
//! exist ([`AthenaError::TableMissing`]), a table that is no CUR ([`AthenaError::UnknownSchema`]),
//! a query Athena failed ([`AthenaError::QueryFailed`], with Athena's reason), one that ran too
//! long ([`AthenaError::Timeout`]), an AWS error ([`AthenaError::Aws`]). A window with no rows is
//! not an error: its partition may not exist yet or the CUR not be delivered yet, so the result
//! is empty with a [`AthenaResult::note`] saying so.
//!
//! Not read here (yet): tags. The file import returns them beside the records; the Athena
//! query would need a second, per-resource query.

pub mod sql;

mod run;

use crate::format::Format;
use aws_sdk_athena::Client;
use aws_types::SdkConfig;
use chrono::NaiveDate;
use cloudspend_aws_access::{AwsError, RequestCounter};
use cloudspend_core::Money;
use cloudspend_core::records::{CostRecord, CostSource};
use run::Answer;
use rust_decimal::Decimal;
use sql::TableSchema;
use std::str::FromStr;
use std::time::Duration;

pub use sql::{ColumnKind, aggregate_query, columns_query};

/// The note on an empty result.
pub const NO_ROWS_NOTE: &str =
    "no rows for the window (partition missing or CUR not yet delivered)";

/// Where the tenant's CUR table is, from its connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AthenaLocation {
    pub database: String,
    pub table: String,
    pub workgroup: String,
    /// `s3://bucket/prefix/` for the query results; `None` when the workgroup sets (enforces)
    /// its own.
    pub output_location: Option<String>,
}

impl AthenaLocation {
    /// The connection validated these already; they are checked again because the database
    /// and table go into SQL text, where only `[A-Za-z0-9_]` is safe unquoted or quoted.
    /// Workgroups never reach SQL and may also hold `-` and `.` (as connection validation allows).
    pub fn validate(&self) -> Result<(), AthenaError> {
        let invalid = |field: &'static str, value: &str| AthenaError::InvalidName {
            field,
            value: value.to_string(),
        };
        let sql_name = |s: &str| {
            !s.is_empty()
                && s.len() <= 255
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        if !sql_name(&self.database) {
            return Err(invalid("database", &self.database));
        }
        if !sql_name(&self.table) {
            return Err(invalid("table", &self.table));
        }
        let workgroup_ok = !self.workgroup.is_empty()
            && self.workgroup.len() <= 128
            && self
                .workgroup
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !workgroup_ok {
            return Err(invalid("workgroup", &self.workgroup));
        }
        if let Some(output) = &self.output_location
            && (!output.starts_with("s3://")
                || output.len() <= 5
                || output.chars().any(char::is_control))
        {
            return Err(invalid("output location", output));
        }
        Ok(())
    }
}

/// How long to wait for Athena, and how much to ask for per page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryOptions {
    /// The first wait before asking whether a query is done; doubled after each ask...
    pub poll_initial: Duration,
    /// ... up to this.
    pub poll_max: Duration,
    /// The longest one query may run; then it is stopped and the run fails with a timeout.
    pub timeout: Duration,
    /// Rows per GetQueryResults page (Athena allows at most 1,000).
    pub page_size: i32,
}

impl Default for QueryOptions {
    fn default() -> Self {
        Self {
            poll_initial: Duration::from_millis(200),
            poll_max: Duration::from_secs(5),
            timeout: Duration::from_secs(600),
            page_size: 1000,
        }
    }
}

/// What a run brought back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AthenaResult {
    pub format: Format,
    /// One per (day, account, service, region, usage type, resource id, line item type), in that
    /// order, `source` `Cur`: the file import's records for the same data.
    pub records: Vec<CostRecord>,
    /// Rows the aggregate query returned (the header not counted).
    pub rows: usize,
    /// The columns query's id, then the aggregate query's: to find them in the Athena console.
    pub query_execution_ids: Vec<String>,
    /// Why there are no records, when there are none ([`NO_ROWS_NOTE`]).
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AthenaError {
    #[error(
        "the Athena {field} `{value}` is refused: names go into SQL, so only letters, digits and underscores are allowed"
    )]
    InvalidName { field: &'static str, value: String },

    #[error("the window is empty: `to` ({to}) must be after `from` ({from})")]
    EmptyWindow { from: NaiveDate, to: NaiveDate },

    #[error("the Athena table {database}.{table} does not exist: {hint}")]
    TableMissing {
        database: String,
        table: String,
        hint: String,
    },

    #[error(
        "the Athena table {database}.{table} is not a Cost and Usage Report: expected \
         line_item_usage_start_date and line_item_unblended_cost (legacy CUR, CUR 2.0) or \
         chargeperiodstart and billedcost (FOCUS); its columns include: {}",
        found.join(", ")
    )]
    UnknownSchema {
        database: String,
        table: String,
        found: Vec<String>,
    },

    #[error("Athena query {query_execution_id} {state}: {reason}")]
    QueryFailed {
        query_execution_id: String,
        state: String,
        reason: String,
    },

    #[error(
        "Athena query {query_execution_id} was still running after {}s and was stopped: the \
         window may be too large for one query, or the workgroup's queue too long; collect a \
         shorter window",
        waited.as_secs()
    )]
    Timeout {
        query_execution_id: String,
        waited: Duration,
    },

    #[error("Athena query {query_execution_id} answered in an unexpected shape: {message}")]
    UnexpectedResult {
        query_execution_id: String,
        message: String,
    },

    #[error(
        "Athena query {query_execution_id}, row {row}, column {column}: `{value}` is not {expected}"
    )]
    BadValue {
        query_execution_id: String,
        row: usize,
        column: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error(
        "Athena query {query_execution_id}, row {row}: one day, account, service, region, usage \
         type, resource and line item type holds line items in {currencies} currencies"
    )]
    MixedCurrency {
        query_execution_id: String,
        row: usize,
        currencies: String,
    },

    #[error(transparent)]
    Aws(#[from] AwsError),
}

const TABLE_MISSING_HINT: &str = "check the Athena database and table names in the connection (Athena \
    lower-cases them) and the region; the CUR's Athena integration (its CloudFormation stack or \
    Glue crawler) creates the table after the first report is delivered";

/// Collects `[from, to)` (to exclusive, as Cost Explorer counts) from the CUR table at
/// `location`. Every request is counted in `counter`.
#[tracing::instrument(skip_all, fields(database = %location.database, table = %location.table, %from, %to), err)]
pub async fn query_cur(
    config: &SdkConfig,
    location: &AthenaLocation,
    from: NaiveDate,
    to: NaiveDate,
    counter: &RequestCounter,
    opts: &QueryOptions,
) -> Result<AthenaResult, AthenaError> {
    let client = Client::from_conf(
        aws_sdk_athena::config::Builder::from(config)
            .interceptor(counter.clone())
            .build(),
    );
    query_cur_with_client(&client, location, from, to, opts).await
}

/// [`query_cur`] with a client already built (tests give a mocked one).
pub async fn query_cur_with_client(
    client: &Client,
    location: &AthenaLocation,
    from: NaiveDate,
    to: NaiveDate,
    opts: &QueryOptions,
) -> Result<AthenaResult, AthenaError> {
    location.validate()?;
    if to <= from {
        return Err(AthenaError::EmptyWindow { from, to });
    }
    let missing = || AthenaError::TableMissing {
        database: location.database.clone(),
        table: location.table.clone(),
        hint: TABLE_MISSING_HINT.to_string(),
    };
    let table_missing = |e: AthenaError| match &e {
        AthenaError::QueryFailed { reason, .. } if says_table_missing(reason) => missing(),
        _ => e,
    };

    let columns_sql = columns_query(&location.database, &location.table);
    let columns = run::run(client, location, &columns_sql, opts)
        .await
        .map_err(table_missing)?;
    let schema = read_schema(&columns, location)?.ok_or_else(missing)?;
    tracing::debug!(format = %schema.format, "CUR table recognised");

    let sql = aggregate_query(&schema, &location.database, &location.table, from, to);
    let answer = run::run(client, location, &sql, opts)
        .await
        .map_err(table_missing)?;
    let records = read_records(&answer)?;
    tracing::info!(format = %schema.format, rows = answer.rows.len(), "Athena CUR query done");
    Ok(AthenaResult {
        format: schema.format,
        rows: answer.rows.len(),
        note: records.is_empty().then(|| NO_ROWS_NOTE.to_string()),
        records,
        query_execution_ids: vec![columns.id, answer.id],
    })
}

/// Athena says a missing table as `TABLE_NOT_FOUND: ... Table '...' does not exist` and a
/// missing database as `SCHEMA_NOT_FOUND: Schema '...' does not exist`.
fn says_table_missing(reason: &str) -> bool {
    let lower = reason.to_ascii_lowercase();
    // Not any "does not exist": a CUR file replaced mid-query fails with "The specified key
    // does not exist", which a re-run fixes.
    let names_table = ["table", "schema", "database"]
        .iter()
        .any(|w| lower.contains(w));
    lower.contains("table_not_found")
        || lower.contains("schema_not_found")
        || (names_table && lower.contains("does not exist"))
}

/// The table's schema from the columns query; `Ok(None)` when information_schema knows no
/// such table (it answers no rows rather than failing).
fn read_schema(
    answer: &Answer,
    location: &AthenaLocation,
) -> Result<Option<TableSchema>, AthenaError> {
    if answer.rows.is_empty() {
        return Ok(None);
    }
    let name = answer
        .column("column_name")
        .ok_or_else(|| AthenaError::UnexpectedResult {
            query_execution_id: answer.id.clone(),
            message: format!("no column_name in the header {:?}", answer.header),
        })?;
    let data_type = answer.column("data_type");
    let cell = |row: &[Option<String>], i: Option<usize>| {
        i.and_then(|i| row.get(i))
            .and_then(|c| c.as_deref())
            .unwrap_or("")
            .to_string()
    };
    let columns: Vec<(String, String)> = answer
        .rows
        .iter()
        .map(|row| (cell(row, Some(name)), cell(row, data_type)))
        .collect();
    match TableSchema::detect(columns.iter().map(|(n, t)| (n.as_str(), t.as_str()))) {
        Some(schema) => Ok(Some(schema)),
        None => Err(AthenaError::UnknownSchema {
            database: location.database.clone(),
            table: location.table.clone(),
            found: columns.into_iter().take(12).map(|(n, _)| n).collect(),
        }),
    }
}

/// Maps the aggregate query's rows by header name (never position) into records.
fn read_records(answer: &Answer) -> Result<Vec<CostRecord>, AthenaError> {
    let id = &answer.id;
    if answer.rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut index = [0usize; sql::RESULT_COLUMNS.len()];
    for (slot, name) in index.iter_mut().zip(sql::RESULT_COLUMNS) {
        *slot = answer
            .column(name)
            .ok_or_else(|| AthenaError::UnexpectedResult {
                query_execution_id: id.clone(),
                message: format!("no `{name}` column in the header {:?}", answer.header),
            })?;
    }
    let [
        day_i,
        account_i,
        service_i,
        region_i,
        usage_type_i,
        resource_i,
        lit_i,
        unblended_i,
        amortized_i,
        usage_i,
        currency_i,
        currencies_i,
    ] = index;

    let mut records = Vec::with_capacity(answer.rows.len());
    for (n, row) in answer.rows.iter().enumerate() {
        // Row numbers as the Athena console shows them: the header is row 1.
        let row_no = n + 2;
        let cell = |i: usize| row.get(i).and_then(|c| c.as_deref());
        let text = |i: usize| cell(i).unwrap_or("").to_string();
        let bad = |column: &'static str, value: Option<&str>, expected: &'static str| {
            AthenaError::BadValue {
                query_execution_id: id.clone(),
                row: row_no,
                column,
                value: value.unwrap_or("NULL").to_string(),
                expected,
            }
        };
        let money = |i: usize, column: &'static str| {
            cell(i)
                .and_then(|v| Money::from_str(v).ok())
                .ok_or_else(|| bad(column, cell(i), "a decimal amount"))
        };
        let day = cell(day_i)
            .and_then(|v| v.get(..10))
            .and_then(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
            .ok_or_else(|| bad("day", cell(day_i), "a date"))?;
        let usage_amount = match cell(usage_i) {
            None | Some("") => None,
            Some(v) => Some(
                Decimal::from_str(v)
                    .map_err(|_| bad("usage_amount", Some(v), "a decimal number"))?
                    .normalize()
                    .to_string(),
            ),
        };
        let currencies = cell(currencies_i).unwrap_or("1");
        if currencies
            .parse::<u64>()
            .map_err(|_| bad("currencies", Some(currencies), "a count"))?
            > 1
        {
            return Err(AthenaError::MixedCurrency {
                query_execution_id: id.clone(),
                row: row_no,
                currencies: currencies.to_string(),
            });
        }
        let currency = text(currency_i);
        records.push(CostRecord {
            day,
            source: CostSource::Cur,
            account_id: text(account_i),
            service: text(service_i),
            region: text(region_i),
            usage_type: text(usage_type_i),
            resource_id: text(resource_i),
            line_item_type: text(lit_i),
            unblended: money(unblended_i, "unblended")?,
            amortized: money(amortized_i, "amortized")?,
            usage_amount,
            currency: if currency.is_empty() {
                "USD".to_string()
            } else {
                currency
            },
            // A CUR line item is the bill itself, not Cost Explorer's provisional estimate.
            estimated: false,
        });
    }
    // The file import's order, so the two paths compare equal.
    records.sort_by(|a, b| a.natural_key().cmp(&b.natural_key()));
    Ok(records)
}
