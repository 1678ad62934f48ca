//! One Athena query, start to last page: StartQueryExecution → GetQueryExecution polled with
//! backoff until it ends (StopQueryExecution when it takes too long) → GetQueryResults, every
//! page.

use super::{AthenaError, AthenaLocation, QueryOptions};
use aws_sdk_athena::Client;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};
use cloudspend_aws_access::AwsError;
use tokio::time::Instant;

/// A finished query's result: the header (Athena's first row) and the data rows, NULL as `None`.
#[derive(Debug)]
pub(crate) struct Answer {
    pub id: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl Answer {
    /// The position of a header name, case-insensitively.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    }
}

pub(crate) async fn run(
    client: &Client,
    location: &AthenaLocation,
    sql: &str,
    opts: &QueryOptions,
) -> Result<Answer, AthenaError> {
    let id = start(client, location, sql).await?;
    tracing::debug!(query_execution_id = %id, "Athena query started");
    wait(client, &id, opts).await?;
    fetch(client, id, opts.page_size).await
}

async fn start(
    client: &Client,
    location: &AthenaLocation,
    sql: &str,
) -> Result<String, AthenaError> {
    let mut request = client
        .start_query_execution()
        .query_string(sql)
        .query_execution_context(
            QueryExecutionContext::builder()
                .database(&location.database)
                .build(),
        )
        .work_group(&location.workgroup);
    // Without a location the workgroup's own (enforced or default) output location is used.
    if let Some(output) = &location.output_location {
        request = request.result_configuration(
            ResultConfiguration::builder()
                .output_location(output)
                .build(),
        );
    }
    let output = request
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("athena:StartQueryExecution", e))?;
    output
        .query_execution_id()
        .map(str::to_string)
        .ok_or_else(|| {
            AwsError::unexpected_response(
                "athena:StartQueryExecution",
                "no QueryExecutionId in the answer",
            )
            .into()
        })
}

/// Polls until the query ends: `poll_initial` doubling up to `poll_max`, at most `timeout`.
async fn wait(client: &Client, id: &str, opts: &QueryOptions) -> Result<(), AthenaError> {
    let started = Instant::now();
    let mut delay = opts.poll_initial;
    loop {
        let elapsed = started.elapsed();
        if elapsed >= opts.timeout {
            stop(client, id).await;
            return Err(AthenaError::Timeout {
                query_execution_id: id.to_string(),
                waited: opts.timeout,
            });
        }
        tokio::time::sleep(delay.min(opts.timeout - elapsed)).await;
        delay = (delay * 2).min(opts.poll_max);

        let output = client
            .get_query_execution()
            .query_execution_id(id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("athena:GetQueryExecution", e))?;
        let status = output.query_execution().and_then(|q| q.status());
        let state = status.and_then(|s| s.state());
        let reason = || {
            let athena = status.and_then(|s| s.athena_error());
            status
                .and_then(|s| s.state_change_reason())
                .or_else(|| athena.and_then(|e| e.error_message()))
                .unwrap_or("Athena gave no reason")
                .to_string()
        };
        match state {
            Some(QueryExecutionState::Succeeded) => return Ok(()),
            Some(QueryExecutionState::Failed) => {
                return Err(AthenaError::QueryFailed {
                    query_execution_id: id.to_string(),
                    state: "failed".into(),
                    reason: reason(),
                });
            }
            Some(QueryExecutionState::Cancelled) => {
                return Err(AthenaError::QueryFailed {
                    query_execution_id: id.to_string(),
                    state: "was cancelled".into(),
                    reason: reason(),
                });
            }
            // QUEUED, RUNNING, or a state newer than this SDK: keep waiting.
            _ => tracing::trace!(query_execution_id = %id, state = ?state, "Athena query not done"),
        }
    }
}

/// Best effort: a query left running keeps scanning (and billing) the tenant's data.
async fn stop(client: &Client, id: &str) {
    if let Err(e) = client
        .stop_query_execution()
        .query_execution_id(id)
        .send()
        .await
    {
        let e = AwsError::from_sdk("athena:StopQueryExecution", e);
        tracing::warn!(query_execution_id = %id, error = %e, "could not stop a timed-out Athena query");
    }
}

async fn fetch(client: &Client, id: String, page_size: i32) -> Result<Answer, AthenaError> {
    let mut pages = client
        .get_query_results()
        .query_execution_id(&id)
        .into_paginator()
        .page_size(page_size)
        .send();
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk("athena:GetQueryResults", e))?;
        let Some(result_set) = page.result_set() else {
            continue;
        };
        for row in result_set.rows() {
            let cells: Vec<Option<String>> = row
                .data()
                .iter()
                .map(|d| d.var_char_value().map(str::to_string))
                .collect();
            // A SELECT's first row, on the first page only, is the column names.
            if header.is_none() {
                header = Some(cells.into_iter().map(Option::unwrap_or_default).collect());
            } else {
                rows.push(cells);
            }
        }
    }
    Ok(Answer {
        id,
        header: header.unwrap_or_default(),
        rows,
    })
}
