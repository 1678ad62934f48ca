//! The offline evaluation helpers behind `cloudspend anomalies detect`: the crate's only I/O, and
//! only over the caller's `Read` / `Write`. The CSV is simple (no quoting): series names and
//! amounts never contain commas.
//!
//! Cost mode reads `series,day,amount[,estimated][,planned]` (any column order; amount a decimal
//! string, parsed exactly; `planned` true on the first day of a change the tenant planned, which
//! then does not alert: [`crate::cost::detect_planned`]) and writes `series,day,expected,lower,upper,score,anomaly`. Days that were not
//! scored (warm-up, estimated, credits) have empty expected/score fields when there was nothing
//! to expect, and `anomaly=false`.
//!
//! Metric mode reads NAB's `timestamp,value` and writes `timestamp,value,anomaly_score,label`,
//! label 1 when the score reaches [`METRIC_LABEL_THRESHOLD`].

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};

use chrono::NaiveDate;
use cloudspend_core::Money;

use crate::context::ContextDetector;
use crate::cost::{Config, CostPoint, SeriesStatus, detect_planned};

/// The NAB-optimal threshold (standard profile) of the default metric detector over seven NAB
/// folders pooled (0.7302, chosen with the configuration: `examples/nab_more.rs`), rounded down;
/// that example prints the pooled score at it next to the optimum's.
pub const METRIC_LABEL_THRESHOLD: f64 = 0.730;

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("reading or writing: {0}")]
    Io(#[from] std::io::Error),
    #[error("header lacks column `{0}`")]
    MissingColumn(&'static str),
    #[error("line {line}: {message}")]
    Row { line: usize, message: String },
}

/// What a run did, for the CLI to print.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CsvSummary {
    pub rows: usize,
    pub series: usize,
    pub insufficient_history: Vec<String>,
    pub anomalous_rows: usize,
}

fn column(header: &[&str], name: &'static str) -> Result<usize, CsvError> {
    header
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case(name))
        .ok_or(CsvError::MissingColumn(name))
}

fn row_error(line: usize, message: impl Into<String>) -> CsvError {
    CsvError::Row {
        line,
        message: message.into(),
    }
}

pub fn detect_cost_csv<R: Read, W: Write>(
    reader: R,
    mut writer: W,
    config: &Config,
) -> Result<CsvSummary, CsvError> {
    let mut lines = BufReader::new(reader).lines();
    let header_line = lines.next().transpose()?.unwrap_or_default();
    let header: Vec<&str> = header_line.split(',').collect();
    let (c_series, c_day, c_amount) = (
        column(&header, "series")?,
        column(&header, "day")?,
        column(&header, "amount")?,
    );
    let c_estimated = column(&header, "estimated").ok();
    let c_planned = column(&header, "planned").ok();
    // Per series: its days, and the days a planned change starts on.
    let mut series: BTreeMap<String, (Vec<CostPoint>, Vec<NaiveDate>)> = BTreeMap::new();
    let mut summary = CsvSummary::default();
    for (i, line) in lines.enumerate() {
        let line = line?;
        let line_no = i + 2;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |c: usize| {
            f.get(c)
                .copied()
                .ok_or_else(|| row_error(line_no, "too few columns"))
        };
        let day = NaiveDate::parse_from_str(get(c_day)?, "%Y-%m-%d")
            .map_err(|e| row_error(line_no, format!("day: {e}")))?;
        let amount: Money = get(c_amount)?
            .parse()
            .map_err(|e| row_error(line_no, format!("amount: {e}")))?;
        let flag = |column: Option<usize>, name: &str| match column.map(get).transpose()? {
            None | Some("" | "0" | "false" | "False" | "FALSE") => Ok(false),
            Some("1" | "true" | "True" | "TRUE") => Ok(true),
            Some(other) => Err(row_error(
                line_no,
                format!("{name}: `{other}` is not true/false"),
            )),
        };
        let estimated = flag(c_estimated, "estimated")?;
        let planned = flag(c_planned, "planned")?;
        let entry = series.entry(get(c_series)?.to_string()).or_default();
        entry.0.push(CostPoint {
            day,
            amount,
            estimated,
        });
        if planned {
            entry.1.push(day);
        }
        summary.rows += 1;
    }
    writeln!(writer, "series,day,expected,lower,upper,score,anomaly")?;
    let show = |m: Option<Money>| m.map(|m| m.to_string()).unwrap_or_default();
    for (name, (points, planned)) in &series {
        let report = detect_planned(points, planned, config);
        summary.series += 1;
        if let SeriesStatus::InsufficientHistory { .. } = report.status {
            summary.insufficient_history.push(name.clone());
        }
        for d in &report.days {
            summary.anomalous_rows += usize::from(d.anomalous);
            writeln!(
                writer,
                "{name},{},{},{},{},{},{}",
                d.day,
                show(d.expected),
                show(d.lower),
                show(d.upper),
                d.score.map(|s| format!("{s:.3}")).unwrap_or_default(),
                d.anomalous
            )?;
        }
    }
    writer.flush()?;
    Ok(summary)
}

pub fn detect_metric_csv<R: Read, W: Write>(
    reader: R,
    mut writer: W,
) -> Result<CsvSummary, CsvError> {
    let mut lines = BufReader::new(reader).lines();
    let header_line = lines.next().transpose()?.unwrap_or_default();
    let header: Vec<&str> = header_line.split(',').collect();
    let (c_ts, c_value) = (column(&header, "timestamp")?, column(&header, "value")?);
    let mut detector = ContextDetector::default();
    let mut summary = CsvSummary {
        series: 1,
        ..CsvSummary::default()
    };
    writeln!(writer, "timestamp,value,anomaly_score,label")?;
    for (i, line) in lines.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let (Some(ts), Some(raw)) = (f.get(c_ts), f.get(c_value)) else {
            return Err(row_error(i + 2, "too few columns"));
        };
        let value: f64 = raw
            .parse()
            .map_err(|e| row_error(i + 2, format!("value: {e}")))?;
        let score = detector.update(value);
        let label = u8::from(score >= METRIC_LABEL_THRESHOLD);
        summary.rows += 1;
        summary.anomalous_rows += usize::from(label);
        writeln!(writer, "{ts},{raw},{score:.6},{label}")?;
    }
    writer.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_csv_flags_a_spike_and_reports_short_series_as_insufficient() {
        let mut input = String::from("series,day,amount,estimated\n");
        let start = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
        for d in 0..40u64 {
            let day = start + chrono::Days::new(d);
            let amount = if d == 35 { "300.00" } else { "100.00" };
            input += &format!("total,{day},{amount},false\n");
        }
        input += "new-service,2024-04-10,5.5,\n";
        let mut out = Vec::new();
        let summary = detect_cost_csv(input.as_bytes(), &mut out, &Config::default()).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(summary.insufficient_history, ["new-service"]);
        assert_eq!(summary.anomalous_rows, 1);
        assert!(out.starts_with("series,day,expected,lower,upper,score,anomaly\n"));
        let spike = out.lines().find(|l| l.contains("2024-04-08")).unwrap();
        assert!(
            spike.starts_with("total,2024-04-08,100.00,") && spike.ends_with(",true"),
            "{spike}"
        );
        assert!(out.contains("new-service,2024-04-10,,,,,false"));
    }

    #[test]
    fn cost_csv_planned_column_silences_a_planned_step() {
        let start = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
        let csv = |with_planned: bool| {
            let mut input = String::from("series,day,amount,planned\n");
            for d in 0..80u64 {
                let day = start + chrono::Days::new(d);
                let amount = if d >= 50 { "300.00" } else { "100.00" };
                let planned = with_planned && d == 50;
                input += &format!("total,{day},{amount},{planned}\n");
            }
            let mut out = Vec::new();
            detect_cost_csv(input.as_bytes(), &mut out, &Config::default()).unwrap()
        };
        assert!(csv(false).anomalous_rows > 0);
        assert_eq!(csv(true).anomalous_rows, 0);
    }

    #[test]
    fn metric_csv_writes_nab_columns_with_a_label_per_row() {
        let mut input = String::from("timestamp,value\n");
        for i in 0..600 {
            let v = if i == 500 {
                95.0
            } else {
                10.0 + (i % 7) as f64 * 0.1
            };
            input += &format!(
                "2014-02-14 {:02}:{:02}:00,{v}\n",
                (i / 12) % 24,
                (i % 12) * 5
            );
        }
        let mut out = Vec::new();
        let summary = detect_metric_csv(input.as_bytes(), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(summary.rows, 600);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "timestamp,value,anomaly_score,label");
        assert!(lines[501].ends_with(",1"), "{}", lines[501]);
        assert_eq!(summary.anomalous_rows, 1);
    }
}
