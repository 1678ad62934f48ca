//! Parquet exports import to exactly what the CSV export of the same rows gives. The Parquet
//! files are written here with the parquet crate's own writer, typed as AWS Data Exports types
//! them: costs and usage as DOUBLE, times as TIMESTAMP(MILLIS), `product` and `resource_tags` as
//! MAP<STRING, STRING>.

use cloudspend_collect_cur::{
    Format, ImportError, ImportOptions, import_path, import_paths, import_paths_with, import_reader,
};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("cloudspend-{}-{name}", std::process::id()))
}

/// One column's values, one per row; `None` is null.
enum Column {
    Text(Vec<Option<&'static str>>),
    Double(Vec<Option<f64>>),
    Millis(Vec<Option<i64>>),
    /// INT64 with a DECIMAL annotation: the unscaled values.
    Unscaled(Vec<Option<i64>>),
    Map(Vec<Option<Vec<(&'static str, &'static str)>>>),
}

fn write_parquet(
    path: &Path,
    schema: &str,
    columns: Vec<Column>,
    compression: parquet::basic::Compression,
) {
    let schema = Arc::new(parquet::schema::parser::parse_message_type(schema).unwrap());
    let props = WriterProperties::builder()
        .set_compression(compression)
        .build();
    let mut writer = SerializedFileWriter::new(
        std::fs::File::create(path).unwrap(),
        schema,
        Arc::new(props),
    )
    .unwrap();
    let mut group = writer.next_row_group().unwrap();
    for column in columns {
        match column {
            Column::Text(values) => {
                let present: Vec<ByteArray> = values
                    .iter()
                    .flatten()
                    .map(|v| ByteArray::from(*v))
                    .collect();
                let defs: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
                let mut col = group
                    .next_column()
                    .unwrap()
                    .expect("a column per schema leaf");
                col.typed::<ByteArrayType>()
                    .write_batch(&present, Some(&defs), None)
                    .unwrap();
                col.close().unwrap();
            }
            Column::Double(values) => {
                let present: Vec<f64> = values.iter().flatten().copied().collect();
                let defs: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
                let mut col = group
                    .next_column()
                    .unwrap()
                    .expect("a column per schema leaf");
                col.typed::<DoubleType>()
                    .write_batch(&present, Some(&defs), None)
                    .unwrap();
                col.close().unwrap();
            }
            Column::Millis(values) | Column::Unscaled(values) => {
                let present: Vec<i64> = values.iter().flatten().copied().collect();
                let defs: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
                let mut col = group
                    .next_column()
                    .unwrap()
                    .expect("a column per schema leaf");
                col.typed::<Int64Type>()
                    .write_batch(&present, Some(&defs), None)
                    .unwrap();
                col.close().unwrap();
            }
            Column::Map(rows) => {
                // Two leaves, key then value. Definition levels: 0 null map, 1 empty map,
                // 2 an entry (its key), 3 a non-null value; repetition 1 for a row's later entries.
                let (mut keys, mut values) = (Vec::new(), Vec::new());
                let (mut key_defs, mut value_defs, mut reps) = (Vec::new(), Vec::new(), Vec::new());
                for row in &rows {
                    let empty_level = match row {
                        None => Some(0),
                        Some(entries) if entries.is_empty() => Some(1),
                        Some(_) => None,
                    };
                    if let Some(level) = empty_level {
                        key_defs.push(level);
                        value_defs.push(level);
                        reps.push(0);
                        continue;
                    }
                    for (i, (k, v)) in row.iter().flatten().enumerate() {
                        keys.push(ByteArray::from(*k));
                        values.push(ByteArray::from(*v));
                        key_defs.push(2);
                        value_defs.push(3);
                        reps.push(i16::from(i > 0));
                    }
                }
                let mut col = group
                    .next_column()
                    .unwrap()
                    .expect("a column per schema leaf");
                col.typed::<ByteArrayType>()
                    .write_batch(&keys, Some(&key_defs), Some(&reps))
                    .unwrap();
                col.close().unwrap();
                let mut col = group
                    .next_column()
                    .unwrap()
                    .expect("a column per schema leaf");
                col.typed::<ByteArrayType>()
                    .write_batch(&values, Some(&value_defs), Some(&reps))
                    .unwrap();
                col.close().unwrap();
            }
        }
    }
    group.close().unwrap();
    writer.close().unwrap();
}

const CUR2_SCHEMA: &str = "message cur2 {
    OPTIONAL INT64 line_item_usage_start_date (TIMESTAMP(MILLIS,true));
    OPTIONAL BYTE_ARRAY line_item_usage_account_id (UTF8);
    OPTIONAL BYTE_ARRAY line_item_line_item_type (UTF8);
    OPTIONAL BYTE_ARRAY line_item_product_code (UTF8);
    OPTIONAL BYTE_ARRAY line_item_usage_type (UTF8);
    OPTIONAL BYTE_ARRAY line_item_resource_id (UTF8);
    OPTIONAL BYTE_ARRAY line_item_availability_zone (UTF8);
    OPTIONAL DOUBLE line_item_usage_amount;
    OPTIONAL DOUBLE line_item_unblended_cost;
    OPTIONAL BYTE_ARRAY line_item_currency_code (UTF8);
    OPTIONAL BYTE_ARRAY pricing_unit (UTF8);
    OPTIONAL group product (MAP) {
        REPEATED group key_value { REQUIRED BYTE_ARRAY key (UTF8); OPTIONAL BYTE_ARRAY value (UTF8); }
    }
    OPTIONAL BYTE_ARRAY product_region_code (UTF8);
    OPTIONAL DOUBLE reservation_effective_cost;
    OPTIONAL DOUBLE savings_plan_savings_plan_effective_cost;
    OPTIONAL group resource_tags (MAP) {
        REPEATED group key_value { REQUIRED BYTE_ARRAY key (UTF8); OPTIONAL BYTE_ARRAY value (UTF8); }
    }
}";

/// tests/fixtures/cur2-with-maps.csv, typed as Data Exports writes it.
fn cur2_columns() -> Vec<Column> {
    const EC2: &str = "Amazon Elastic Compute Cloud";
    let hour = 3_600_000;
    let sep1 = 1_725_148_800_000; // 2024-09-01T00:00:00Z
    vec![
        Column::Millis(vec![
            Some(sep1),
            Some(sep1 + hour),
            Some(sep1 + 2 * hour),
            Some(sep1 + 24 * hour),
        ]),
        Column::Text(vec![Some("111122223333"); 4]),
        Column::Text(vec![
            Some("Usage"),
            Some("Usage"),
            Some("SavingsPlanCoveredUsage"),
            Some("Credit"),
        ]),
        Column::Text(vec![Some("AmazonEC2"); 4]),
        Column::Text(vec![
            Some("BoxUsage:m5.large"),
            Some("BoxUsage:m5.large"),
            Some("BoxUsage:m5.large"),
            None,
        ]),
        Column::Text(vec![Some("i-0aaa"), Some("i-0aaa"), Some("i-0bbb"), None]),
        Column::Text(vec![Some("us-east-1a"), Some("us-east-1a"), None, None]),
        Column::Double(vec![Some(1.0), Some(1.0), Some(1.0), None]),
        Column::Double(vec![Some(0.096), Some(0.096), Some(0.096), Some(-0.05)]),
        Column::Text(vec![Some("USD"); 4]),
        Column::Text(vec![Some("Hrs"), Some("Hrs"), Some("Hrs"), None]),
        Column::Map(vec![
            Some(vec![("product_name", EC2), ("region", "us-east-1")]),
            Some(vec![("product_name", EC2), ("region", "us-east-1")]),
            Some(vec![("product_name", EC2)]),
            Some(vec![]),
        ]),
        Column::Text(vec![Some("us-east-1"), Some("us-east-1"), None, None]),
        Column::Double(vec![None; 4]),
        Column::Double(vec![None, None, Some(0.061), None]),
        Column::Map(vec![
            Some(vec![("user_team", "core"), ("user_env", "prod")]),
            Some(vec![("user_team", "core")]),
            None,
            None,
        ]),
    ]
}

#[test]
fn a_cur2_parquet_export_imports_exactly_as_its_csv() {
    use parquet::basic::{Compression, GzipLevel};
    let csv = import_path(&fixture("cur2-with-maps.csv"), &mut |_| {}).unwrap();
    for (name, compression) in [
        ("snappy.parquet", Compression::SNAPPY),
        ("gzip.parquet", Compression::GZIP(GzipLevel::default())),
        ("plain.parquet", Compression::UNCOMPRESSED),
    ] {
        let path = temp(name);
        write_parquet(&path, CUR2_SCHEMA, cur2_columns(), compression);
        let size = std::fs::metadata(&path).unwrap().len();
        let mut last = None;
        let parquet = import_path(&path, &mut |p| last = Some(p)).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(parquet.format, Format::Cur2, "{name}");
        assert_eq!(parquet.records, csv.records, "{name}");
        assert_eq!(parquet.resource_tags, csv.resource_tags, "{name}");
        assert_eq!(
            (parquet.total_unblended, parquet.total_amortized),
            (csv.total_unblended, csv.total_amortized),
            "{name}"
        );
        assert_eq!((parquet.rows_read, parquet.days), (4, csv.days), "{name}");
        let last = last.expect("progress");
        assert_eq!((last.rows, last.bytes), (4, size), "{name}");
    }
    // Sanity: the CSV side is what the CUR 2.0 test expects, so the comparison means something.
    assert_eq!(csv.records.len(), 3);
    assert_eq!(csv.resource_tags["i-0aaa"]["user_env"], "prod");
}

#[test]
fn parquet_parts_of_one_report_are_summed_together() {
    let (a, b) = (temp("part-1.parquet"), temp("part-2.parquet"));
    write_parquet(
        &a,
        CUR2_SCHEMA,
        cur2_columns(),
        parquet::basic::Compression::SNAPPY,
    );
    write_parquet(
        &b,
        CUR2_SCHEMA,
        cur2_columns(),
        parquet::basic::Compression::SNAPPY,
    );
    let one = import_path(&a, &mut |_| {}).unwrap();
    let both = import_paths(&[&a, &b], &mut |_| {}).unwrap();
    // With every key spilled to a run of its own, the merge of runs gives the same.
    let spill_every_key = ImportOptions {
        spill_keys: 1,
        ..ImportOptions::default()
    };
    let spilled = import_paths_with(&[&a, &b], spill_every_key, &mut |_| {}).unwrap();
    assert_eq!(spilled, both);
    std::fs::remove_file(&a).unwrap();
    std::fs::remove_file(&b).unwrap();
    assert_eq!(both.records.len(), one.records.len());
    assert_eq!(
        both.total_unblended,
        one.total_unblended + one.total_unblended
    );
    for (x, y) in both.records.iter().zip(&one.records) {
        assert_eq!(x.unblended, y.unblended + y.unblended);
    }
}

#[test]
fn unreadable_or_unsuitable_parquet_is_refused_with_a_reason() {
    // Starts like Parquet, is not: refused, nothing imported, no panic.
    let broken = temp("broken.parquet");
    std::fs::write(&broken, b"PAR1 this is not really parquet PAR1").unwrap();
    let err = import_path(&broken, &mut |_| {}).unwrap_err();
    std::fs::remove_file(&broken).unwrap();
    assert!(matches!(err, ImportError::Parquet { .. }), "{err:?}");
    assert!(err.to_string().contains("nothing was imported"), "{err}");

    // Parquet from a stream cannot be read (its index is at the end): said so.
    let path = temp("stream.parquet");
    write_parquet(
        &path,
        CUR2_SCHEMA,
        cur2_columns(),
        parquet::basic::Compression::SNAPPY,
    );
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let err = import_reader(std::io::Cursor::new(bytes), &mut |_| {}).unwrap_err();
    assert!(matches!(err, ImportError::ParquetNeedsFile), "{err:?}");

    // A Parquet file that is no known export is refused with what each format lacked.
    let other = temp("other.parquet");
    write_parquet(
        &other,
        "message t { OPTIONAL BYTE_ARRAY name (UTF8); OPTIONAL DOUBLE amount; }",
        vec![
            Column::Text(vec![Some("x")]),
            Column::Double(vec![Some(1.0)]),
        ],
        parquet::basic::Compression::SNAPPY,
    );
    let err = import_path(&other, &mut |_| {}).unwrap_err();
    std::fs::remove_file(&other).unwrap();
    assert!(matches!(err, ImportError::UnknownFormat(_)), "{err:?}");
    assert!(
        err.to_string().contains("line_item_unblended_cost"),
        "{err}"
    );
}

#[test]
fn damaged_parquet_files_are_refused_never_a_panic_or_a_partial_import() {
    let path = temp("whole.parquet");
    write_parquet(
        &path,
        CUR2_SCHEMA,
        cur2_columns(),
        parquet::basic::Compression::SNAPPY,
    );
    let whole = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let damaged = temp("damaged.parquet");
    let mut cases: Vec<Vec<u8>> = (4..whole.len())
        .step_by(5)
        .map(|n| whole[..n].to_vec())
        .collect();
    for at in (4..whole.len() - 4).step_by(7) {
        let mut flipped = whole.clone();
        flipped[at] ^= 0x5a;
        cases.push(flipped);
    }
    let mut refused = 0;
    for bytes in &cases {
        std::fs::write(&damaged, bytes).unwrap();
        let outcome = std::panic::catch_unwind(|| import_path(&damaged, &mut |_| {}));
        match outcome.expect("the import panicked instead of returning an error") {
            Err(_) => refused += 1,
            // A flip in a spot nothing checks (a statistic, padding) may still read: then it
            // must read whole, like the intact file.
            Ok(result) => assert_eq!(result.rows_read, 4),
        }
    }
    std::fs::remove_file(&damaged).unwrap();
    assert!(refused > cases.len() / 2, "{refused} of {}", cases.len());
}

#[test]
fn a_focus_parquet_export_with_decimal_costs_imports_exactly_as_its_csv() {
    // FOCUS as Data Exports types it: costs DECIMAL (exact), Tags a map; one non-AWS row skipped.
    let csv_text = "ChargePeriodStart,ProviderName,SubAccountId,ServiceName,RegionId,ResourceId,\
ChargeCategory,BilledCost,EffectiveCost,BillingCurrency,Tags\n\
2024-09-18T22:00:00Z,AWS,111122223333,Amazon EC2,us-east-1,i-0aaa,Usage,0.1234567890,0.1000000000,USD,\
\"{\"\"team\"\":\"\"core\"\"}\"\n\
2024-09-18T23:00:00Z,AWS,111122223333,Amazon EC2,us-east-1,i-0aaa,Usage,0.0000000001,0.0000000001,USD,\n\
2024-09-19T00:00:00Z,AWS,111122223333,Amazon S3,us-east-1,,Credit,-5.2500000000,-5.2500000000,USD,\n\
2024-09-19T00:00:00Z,Microsoft,other,Virtual Machines,eastus,vm-1,Usage,9.0000000000,9.0000000000,USD,\n";
    let csv_path = temp("focus.csv");
    std::fs::write(&csv_path, csv_text).unwrap();
    let csv = import_path(&csv_path, &mut |_| {}).unwrap();
    std::fs::remove_file(&csv_path).unwrap();

    let path = temp("focus.parquet");
    let hour = 3_600_000;
    let start = 1_726_696_800_000; // 2024-09-18T22:00:00Z
    write_parquet(
        &path,
        "message focus {
            OPTIONAL INT64 ChargePeriodStart (TIMESTAMP(MILLIS,true));
            OPTIONAL BYTE_ARRAY ProviderName (UTF8);
            OPTIONAL BYTE_ARRAY SubAccountId (UTF8);
            OPTIONAL BYTE_ARRAY ServiceName (UTF8);
            OPTIONAL BYTE_ARRAY RegionId (UTF8);
            OPTIONAL BYTE_ARRAY ResourceId (UTF8);
            OPTIONAL BYTE_ARRAY ChargeCategory (UTF8);
            OPTIONAL INT64 BilledCost (DECIMAL(18,10));
            OPTIONAL INT64 EffectiveCost (DECIMAL(18,10));
            OPTIONAL BYTE_ARRAY BillingCurrency (UTF8);
            OPTIONAL group Tags (MAP) {
                REPEATED group key_value { REQUIRED BYTE_ARRAY key (UTF8); OPTIONAL BYTE_ARRAY value (UTF8); }
            }
        }",
        vec![
            Column::Millis(vec![Some(start), Some(start + hour), Some(start + 2 * hour), Some(start + 2 * hour)]),
            Column::Text(vec![Some("AWS"), Some("AWS"), Some("AWS"), Some("Microsoft")]),
            Column::Text(vec![Some("111122223333"), Some("111122223333"), Some("111122223333"), Some("other")]),
            Column::Text(vec![Some("Amazon EC2"), Some("Amazon EC2"), Some("Amazon S3"), Some("Virtual Machines")]),
            Column::Text(vec![Some("us-east-1"), Some("us-east-1"), Some("us-east-1"), Some("eastus")]),
            Column::Text(vec![Some("i-0aaa"), Some("i-0aaa"), None, Some("vm-1")]),
            Column::Text(vec![Some("Usage"), Some("Usage"), Some("Credit"), Some("Usage")]),
            Column::Unscaled(vec![Some(1_234_567_890), Some(1), Some(-52_500_000_000), Some(90_000_000_000)]),
            Column::Unscaled(vec![Some(1_000_000_000), Some(1), Some(-52_500_000_000), Some(90_000_000_000)]),
            Column::Text(vec![Some("USD"); 4]),
            Column::Map(vec![Some(vec![("team", "core")]), None, None, None]),
        ],
        parquet::basic::Compression::SNAPPY,
    );
    let parquet = import_path(&path, &mut |_| {}).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(parquet.format, Format::Focus);
    assert_eq!(parquet.records, csv.records);
    assert_eq!(parquet.resource_tags, csv.resource_tags);
    assert_eq!(parquet.total_unblended, csv.total_unblended);
    assert_eq!(parquet.rows_skipped, 1);
    // DECIMAL cells are read exactly (0.1234567890 + 0.0000000001), the sum rounded once to nanos.
    let ec2 = parquet
        .records
        .iter()
        .find(|r| r.service == "Amazon EC2")
        .unwrap();
    assert_eq!(ec2.unblended, "0.123456789".parse().unwrap());
    assert_eq!(parquet.resource_tags["i-0aaa"]["team"], "core");
}
