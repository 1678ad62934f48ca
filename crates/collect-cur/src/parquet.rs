//! Parquet exports: CUR 2.0 and FOCUS from AWS Data Exports (Parquet is their default), and
//! legacy CUR's Athena-ready Parquet. Each row becomes the text cells a CSV export of the same
//! data would have, so one set of rules (format detection, amortisation, tags, exact sums)
//! serves both: a cost that Parquet stores as a double is written the shortest way that reads
//! back as the same double, which is how AWS printed it in the CSV.
//!
//! Parquet keeps its index at the end of the file, so it is read from a file (or bytes in
//! memory), a row group at a time: memory follows the row group, not the file.

use std::fs::File;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

/// A Parquet file's column names and its rows as text cells in that order.
pub(crate) struct ParquetRows {
    pub(crate) header: Vec<String>,
    rows: parquet::record::reader::RowIter<'static>,
}

impl ParquetRows {
    pub(crate) fn open(file: File) -> Result<Self, String> {
        let (header, rows) = guarded(|| {
            let reader = SerializedFileReader::new(file).map_err(describe)?;
            let header = reader
                .metadata()
                .file_metadata()
                .schema_descr()
                .root_schema()
                .get_fields()
                .iter()
                .map(|f| f.name().to_string())
                .collect();
            Ok((header, reader.into_iter()))
        })?;
        Ok(Self { header, rows })
    }

    /// The next row's cells into `record` (cleared first); `Ok(false)` at the end.
    pub(crate) fn next_into(&mut self, record: &mut csv::StringRecord) -> Result<bool, String> {
        let rows = &mut self.rows;
        let Some(row) = guarded(|| Ok(rows.next()))? else {
            return Ok(false);
        };
        let row = row.map_err(describe)?;
        record.clear();
        let mut cell = String::new();
        for (_, field) in row.get_column_iter() {
            cell.clear();
            write_cell(&mut cell, field);
            record.push_field(&cell);
        }
        Ok(true)
    }
}

/// Runs a step of the Parquet reader, turning a panic into an error. The parquet crate asserts
/// on some damaged files (a length past the end of a page) instead of returning an error, and a
/// damaged export must be refused with a reason, not crash the import.
fn guarded<T>(step: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the reader gave up".to_string());
        Err(format!(
            "not a readable Parquet file: it is damaged ({why})"
        ))
    })
}

fn describe(e: parquet::errors::ParquetError) -> String {
    format!("not a readable Parquet file: {e}")
}

/// One value as the CSV export writes it: empty for null, numbers in plain notation,
/// timestamps in RFC 3339 UTC, maps and structs as JSON (as Athena and CUR 2.0 CSV do).
fn write_cell(out: &mut String, field: &Field) {
    use std::fmt::Write;
    match field {
        Field::Null => {}
        Field::Str(s) => out.push_str(s),
        Field::Bytes(b) => out.push_str(&String::from_utf8_lossy(b.data())),
        // Display prints the shortest decimal that reads back as the same double, with no
        // exponent: 0.0000012 stays 0.0000012.
        Field::Double(x) => {
            let _ = write!(out, "{x}");
        }
        Field::Float(x) => {
            let _ = write!(out, "{x}");
        }
        Field::Date(days) => {
            if let Some(day) = NaiveDate::from_num_days_from_ce_opt(719_163 + days) {
                let _ = write!(out, "{day}");
            }
        }
        Field::TimestampMillis(ms) => push_timestamp(out, DateTime::from_timestamp_millis(*ms)),
        Field::TimestampMicros(us) => push_timestamp(out, DateTime::from_timestamp_micros(*us)),
        Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_) => {
            out.push_str(&field.to_json_value().to_string());
        }
        // Integers, booleans and decimals (exact, from their unscaled value and scale).
        other => match other.to_json_value() {
            serde_json::Value::String(s) => out.push_str(&s),
            value => {
                let _ = write!(out, "{value}");
            }
        },
    }
}

fn push_timestamp(out: &mut String, at: Option<DateTime<Utc>>) {
    if let Some(at) = at {
        out.push_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;

    const SCHEMA: &str = "message cur2 {
        REQUIRED BYTE_ARRAY line_item_usage_account_id (UTF8);
        OPTIONAL DOUBLE line_item_unblended_cost;
        OPTIONAL INT64 line_item_usage_start_date (TIMESTAMP(MILLIS,true));
        OPTIONAL group resource_tags (MAP) {
          REPEATED group key_value {
            REQUIRED BYTE_ARRAY key (UTF8);
            OPTIONAL BYTE_ARRAY value (UTF8);
          }
        }
    }";

    fn write(path: &std::path::Path) {
        let schema = Arc::new(parquet::schema::parser::parse_message_type(SCHEMA).unwrap());
        let file = File::create(path).unwrap();
        let mut writer =
            SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
                .unwrap();
        let mut group = writer.next_row_group().unwrap();
        let bytes = |s: &[&str]| s.iter().map(|v| ByteArray::from(*v)).collect::<Vec<_>>();
        // Column by column, three rows.
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&bytes(&["111", "222", "333"]), None, None)
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<DoubleType>()
            .write_batch(&[0.1, 0.0000012], Some(&[1, 0, 1]), None)
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<Int64Type>()
            .write_batch(
                &[1_725_148_800_000, 1_725_235_200_500, 0],
                Some(&[1, 1, 1]),
                None,
            )
            .unwrap();
        col.close().unwrap();
        // resource_tags: row 1 {team: a, env: null}, row 2 null, row 3 {} .
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(
                &bytes(&["user:team", "user:env"]),
                Some(&[2, 2, 0, 1]),
                Some(&[0, 1, 0, 0]),
            )
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&bytes(&["a"]), Some(&[3, 2, 0, 1]), Some(&[0, 1, 0, 0]))
            .unwrap();
        col.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn rows_read_as_the_csv_export_writes_them() {
        let path = std::env::temp_dir().join(format!("pq-{}.parquet", std::process::id()));
        write(&path);
        let mut rows = ParquetRows::open(File::open(&path).unwrap()).unwrap();
        assert_eq!(
            rows.header,
            [
                "line_item_usage_account_id",
                "line_item_unblended_cost",
                "line_item_usage_start_date",
                "resource_tags"
            ]
        );
        let mut record = csv::StringRecord::new();
        let mut got: Vec<Vec<String>> = Vec::new();
        while rows.next_into(&mut record).unwrap() {
            got.push(record.iter().map(str::to_string).collect::<Vec<_>>());
        }
        std::fs::remove_file(&path).unwrap();
        let tags: serde_json::Value = serde_json::from_str(&got[0][3]).unwrap();
        assert_eq!(
            tags,
            serde_json::json!({"user:team": "a", "user:env": null})
        );
        got[0][3] = String::new();
        assert_eq!(
            got,
            [
                ["111", "0.1", "2024-09-01T00:00:00Z", ""],
                ["222", "", "2024-09-02T00:00:00.500Z", ""],
                ["333", "0.0000012", "1970-01-01T00:00:00Z", "{}"],
            ]
        );
    }
}
