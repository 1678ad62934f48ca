//! File import against the real public exports in the repository's `tests/data` (each with its
//! PROVENANCE and licence) and small fixtures of our own.

use cloudspend_collect_cur::{
    Format, ImportError, ImportResult, Progress, import_path, import_paths, import_reader,
};
use cloudspend_core::Money;
use rust_decimal::Decimal;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The repository's public test data (`tests/data`). Missing data is a failure, never a skipped
/// test.
fn data(relative: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(relative);
    assert!(
        path.exists(),
        "test data {} is missing (expected at {})",
        relative,
        path.display()
    );
    path
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn import(path: &Path) -> ImportResult {
    import_path(path, &mut |_| {}).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn import_bytes(bytes: &[u8]) -> Result<ImportResult, ImportError> {
    import_reader(Cursor::new(bytes.to_vec()), &mut |_| {})
}

fn money(s: &str) -> Money {
    s.parse().unwrap()
}

/// An exact sum of one column, read with nothing but the csv crate and rust_decimal: the
/// yardstick the importer is held to.
fn column_sum(
    path: &Path,
    column: &str,
    keep: impl Fn(&csv::StringRecord, &csv::StringRecord) -> bool,
) -> Decimal {
    let file = std::fs::File::open(path).unwrap();
    let input: Box<dyn std::io::Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut reader = csv::Reader::from_reader(input);
    let header = reader.headers().unwrap().clone();
    let index = header.iter().position(|h| h == column).unwrap();
    let mut sum = Decimal::ZERO;
    for row in reader.records() {
        let row = row.unwrap();
        if keep(&header, &row) {
            let cell = &row[index];
            if !cell.is_empty() {
                sum += Decimal::from_str(cell).unwrap();
            }
        }
    }
    sum
}

fn record_total(result: &ImportResult) -> Money {
    result.records.iter().map(|r| r.unblended).sum()
}

#[test]
fn legacy_cur_sample_total_equals_the_files_unblended_sum_to_the_cent() {
    let path = data("cur/anonymized-legacy/sample-anonymous-aws-export-dataset.csv.gz");
    let expected = column_sum(&path, "lineItem/UnblendedCost", |_, _| true);
    // Known figure: 1,281 rows summing to 1.68230869740 USD.
    assert_eq!(expected, Decimal::from_str("1.68230869740").unwrap());

    let result = import(&path);
    assert_eq!(result.format, Format::LegacyCur);
    assert_eq!(result.rows_read, 1281);
    assert_eq!(result.rows_skipped, 0);
    assert_eq!(result.total_unblended.round_to_cents(), money("1.68"));
    assert_eq!(
        result.total_unblended.to_decimal(),
        expected.round_dp(9).normalize()
    );
    assert_eq!(
        record_total(&result).round_to_cents(),
        Money::from_decimal(expected).unwrap().round_to_cents()
    );
    assert!(
        (record_total(&result) - result.total_unblended)
            .abs()
            .nanos()
            <= result.records.len() as i64
    );
    // No reservations or Savings Plans in this account: amortized is unblended.
    assert_eq!(result.total_amortized, result.total_unblended);
    let days = result.days.unwrap();
    assert_eq!(
        (days.0.to_string(), days.1.to_string()),
        ("2023-11-01".into(), "2023-11-14".into())
    );

    let taxes: Vec<_> = result
        .records
        .iter()
        .filter(|r| r.line_item_type == "Tax")
        .collect();
    assert!(!taxes.is_empty(), "tax lines stay separable");
    assert!(
        result
            .records
            .iter()
            .all(|r| r.currency == "USD" && r.account_id == "123412340534")
    );
    let s3 = result
        .records
        .iter()
        .find(|r| r.service == "Amazon Simple Storage Service" && r.line_item_type == "Usage")
        .unwrap();
    assert!(!s3.region.is_empty() && !s3.usage_type.is_empty());
    assert!(result.records.len() < 1281, "rows sharing a key are summed");
}

#[test]
fn focus_sample_imports_aws_rows_with_tags_and_counts_the_rest() {
    let path = data("focus/focus_sample.csv.gz");
    let is_aws = |h: &csv::StringRecord, r: &csv::StringRecord| {
        let i = h.iter().position(|c| c == "ProviderName").unwrap();
        &r[i] == "AWS"
    };
    let expected = column_sum(&path, "BilledCost", is_aws);
    assert_eq!(expected, Decimal::from_str("18.00663861840").unwrap());
    let expected_effective = column_sum(&path, "EffectiveCost", is_aws);

    let result = import(&path);
    assert_eq!(result.format, Format::Focus);
    assert_eq!(result.rows_read, 1000);
    assert_eq!(result.rows_skipped, 58);
    assert_eq!(result.skipped_by_provider.get("Microsoft"), Some(&51));
    assert_eq!(result.skipped_by_provider.get("Oracle"), Some(&7));
    // Money keeps nano-units: the 10th decimal of the file's sum rounds away, cents never do.
    assert_eq!(
        result.total_unblended.to_decimal(),
        expected.round_dp(9).normalize()
    );
    assert_eq!(result.total_unblended.round_to_cents(), money("18.01"));
    assert_eq!(
        result.total_amortized.to_decimal(),
        expected_effective.round_dp(9).normalize()
    );
    let days = result.days.unwrap();
    assert_eq!(
        (days.0.to_string(), days.1.to_string()),
        ("2024-09-01".into(), "2024-09-30".into())
    );

    // 653 AWS rows carry tags: 619 on 561 resources, 34 without a resource id.
    assert_eq!(result.resource_tags.len(), 561);
    assert_eq!(result.tagged_rows_without_resource, 34);
    assert_eq!(result.unreadable_tag_cells, 0);
    let lb = "arn:ats:emastilmoalfamanling:us-test-2:586597448978:moalfamanler/app/tungsten-lonbmuenle-amf/l365455f461l4e4a";
    let tags = &result.resource_tags[lb];
    assert_eq!(tags["application"], "BrightLensMatrix");
    assert_eq!(tags["environment"], "dev");
    assert_eq!(tags["business_unit"], "ViennaAI");

    let credit: Vec<_> = result
        .records
        .iter()
        .filter(|r| r.line_item_type == "Credit")
        .collect();
    assert_eq!(credit.len(), 1);
    assert_eq!(credit[0].unblended, money("-2.6137"));
    let sqs = result
        .records
        .iter()
        .find(|r| r.service == "Amazon Simple Queue Service" && r.region == "us-west-2")
        .expect("an SQS row in us-west-2");
    assert_eq!(sqs.account_id.len(), 11);
    assert!(sqs.usage_amount.is_some());

    // The AWS-only extract of the same file gives the same records and tags.
    let aws_only = import(&data("focus/DERIVED_focus_sample_aws_only.csv.gz"));
    assert_eq!(aws_only.rows_read, 942);
    assert_eq!(aws_only.rows_skipped, 0);
    assert_eq!(aws_only.records, result.records);
    assert_eq!(aws_only.resource_tags, result.resource_tags);
}

#[test]
fn compressed_mock_exports_import_like_their_plain_files() {
    let cur1 = import(&data("cur/mock-cur1-cur2/cur_1_0/sample_billing_data.csv"));
    let cur1_zip = import(&data(
        "cur/mock-cur1-cur2/cur_1_0/MockTestReport-00001.csv.zip",
    ));
    assert_eq!(cur1.format, Format::LegacyCur);
    assert_eq!(cur1_zip.records, cur1.records);
    assert_eq!(cur1_zip.total_unblended, money("0.045152"));
    assert_eq!(cur1_zip.total_unblended, cur1.total_unblended);
    // No product/region column: the region is the availability zone without its letter.
    assert!(
        cur1.records.iter().all(|r| r.region == "eu-central-1"),
        "{:?}",
        cur1.records
    );
    let ec2: Vec<_> = cur1
        .records
        .iter()
        .filter(|r| r.service == "Amazon Elastic Compute Cloud")
        .collect();
    assert_eq!(ec2.len(), 2, "two instances, two resources");
    assert_eq!(ec2[0].usage_type, "BoxUsage:t3.micro");
    assert_eq!(ec2[0].usage_amount.as_deref(), Some("1"));

    let cur2 = import(&data(
        "cur/mock-cur1-cur2/cur_2_0/sample_billing_data_v2.csv",
    ));
    let cur2_gz = import(&data(
        "cur/mock-cur1-cur2/cur_2_0/MockTestReportV2-00001.csv.gz",
    ));
    assert_eq!(cur2.format, Format::Cur2);
    assert_eq!(cur2_gz.format, Format::Cur2);
    assert_eq!(cur2_gz.records, cur2.records);
    assert_eq!(cur2.total_unblended, money("0.108304"));
    assert_eq!(cur2.records.len(), 4);

    // The same containers through a bare reader (zip read as a stream).
    let bytes = std::fs::read(data(
        "cur/mock-cur1-cur2/cur_1_0/MockTestReport-00001.csv.zip",
    ))
    .unwrap();
    assert_eq!(import_bytes(&bytes).unwrap().records, cur1.records);
    let bytes = std::fs::read(data(
        "cur/mock-cur1-cur2/cur_2_0/MockTestReportV2-00001.csv.gz",
    ))
    .unwrap();
    assert_eq!(import_bytes(&bytes).unwrap().records, cur2.records);
}

#[test]
fn a_header_that_is_no_known_export_is_refused_with_the_missing_columns() {
    let err = import_path(&fixture("cost-explorer-download.csv"), &mut |_| {}).unwrap_err();
    let ImportError::UnknownFormat(missing) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(missing.missing.len(), 3);
    let message = err.to_string();
    for column in [
        "lineItem/UsageStartDate",
        "line_item_unblended_cost",
        "ChargePeriodStart",
        "BilledCost",
    ] {
        assert!(message.contains(column), "{message}");
    }
    assert!(
        message.contains("Service total($)"),
        "shows what the file has: {message}"
    );
}

#[test]
fn a_truncated_gzip_is_an_error_not_a_partial_import() {
    let bytes = std::fs::read(data(
        "cur/mock-cur1-cur2/cur_2_0/MockTestReportV2-00001.csv.gz",
    ))
    .unwrap();
    for cut in [bytes.len() - 4, bytes.len() / 2, 20] {
        let err = import_bytes(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(err, ImportError::Read { .. } | ImportError::Csv { .. }),
            "cut at {cut}: {err:?}"
        );
    }
    let dir = std::env::temp_dir().join(format!("cloudspend-cur-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let truncated = dir.join("truncated.csv.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = import_path(&truncated, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("truncated or corrupt"), "{err}");
    let zip = std::fs::read(data(
        "cur/mock-cur1-cur2/cur_1_0/MockTestReport-00001.csv.zip",
    ))
    .unwrap();
    let truncated_zip = dir.join("truncated.zip");
    std::fs::write(&truncated_zip, &zip[..zip.len() - 30]).unwrap();
    assert!(import_path(&truncated_zip, &mut |_| {}).is_err());
    assert!(import_bytes(&zip[..zip.len() / 2]).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn importing_the_same_file_twice_gives_identical_results() {
    for path in [
        data("cur/anonymized-legacy/sample-anonymous-aws-export-dataset.csv.gz"),
        data("focus/focus_sample.csv.gz"),
    ] {
        assert_eq!(import(&path), import(&path));
    }
}

#[test]
fn a_bad_amount_names_its_line_and_column() {
    let csv = "lineItem/UsageStartDate,lineItem/UnblendedCost\n\
               2024-01-01T00:00:00Z,1.00\n\
               2024-01-01T00:00:00Z,one dollar\n";
    let err = import_bytes(csv.as_bytes()).unwrap_err();
    let ImportError::BadNumber {
        line,
        column,
        value,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (*line, column.as_str(), value.as_str()),
        (3, "lineItem/UnblendedCost", "one dollar")
    );
    assert_eq!(
        err.to_string(),
        "line 3, column lineItem/UnblendedCost: `one dollar` is not a decimal number"
    );

    // CRLF line ends and blank lines: still the line an editor shows.
    let csv = "lineItem/UsageStartDate,lineItem/UnblendedCost\r\n\r\n\
               2024-01-01T00:00:00Z,1.00\r\n\r\n\
               2024-01-01T00:00:00Z,one dollar\r\n";
    assert!(matches!(
        import_bytes(csv.as_bytes()).unwrap_err(),
        ImportError::BadNumber { line: 5, .. }
    ));

    let csv = "lineItem/UsageStartDate,lineItem/UnblendedCost\n01/02/2024,1.00\n";
    assert!(matches!(
        import_bytes(csv.as_bytes()).unwrap_err(),
        ImportError::BadDate { line: 2, .. }
    ));
    let csv = "lineItem/UsageStartDate,lineItem/UnblendedCost\n,1.00\n";
    assert!(matches!(
        import_bytes(csv.as_bytes()).unwrap_err(),
        ImportError::MissingValue { line: 2, .. }
    ));
}

#[test]
fn a_row_with_too_few_fields_is_refused_with_its_line() {
    let csv = "lineItem/UsageStartDate,lineItem/UnblendedCost,lineItem/ProductCode\n\
               2024-01-01T00:00:00Z,1.00,AmazonEC2\n\
               2024-01-01T00:00:00Z,1.00\n";
    let err = import_bytes(csv.as_bytes()).unwrap_err();
    assert_eq!(err.to_string(), "line 3: 2 fields where the header has 3");
}

#[test]
fn odd_input_is_refused_not_panicked_on() {
    assert!(matches!(import_bytes(b"").unwrap_err(), ImportError::Empty));
    assert!(matches!(
        import_bytes(b"PAR1\0\0\0").unwrap_err(),
        ImportError::ParquetNeedsFile
    ));
    assert!(matches!(
        import_bytes(&[0xff, 0xfe, 0x00, 0x41]).unwrap_err(),
        ImportError::Csv { .. }
    ));
    let huge = "lineItem/UsageStartDate,lineItem/UnblendedCost\n2024-01-01,99999999999\n";
    assert!(matches!(
        import_bytes(huge.as_bytes()).unwrap_err(),
        ImportError::OutOfRange { .. }
    ));
    let header_only = import_bytes(b"BilledCost,ChargePeriodStart\n").unwrap();
    assert_eq!((header_only.records.len(), header_only.days), (0, None));
    let mixed = "lineItem/UsageStartDate,lineItem/UnblendedCost,lineItem/CurrencyCode\n\
                 2024-01-01,1,USD\n2024-01-01,1,EUR\n";
    assert!(matches!(
        import_bytes(mixed.as_bytes()).unwrap_err(),
        ImportError::MixedCurrency { line: 3, .. }
    ));
}

#[test]
fn cur_amortized_cost_follows_the_reservation_and_savings_plan_rules() {
    let result = import(&fixture("legacy-commitments.csv"));
    let amortized = |line_item_type: &str| {
        let rows: Vec<_> = result
            .records
            .iter()
            .filter(|r| r.line_item_type == line_item_type)
            .collect();
        assert_eq!(rows.len(), 1, "{line_item_type}");
        rows[0].amortized
    };
    assert_eq!(amortized("DiscountedUsage"), money("0.058"));
    assert_eq!(amortized("SavingsPlanCoveredUsage"), money("0.050"));
    assert_eq!(amortized("SavingsPlanNegation"), Money::ZERO);
    assert_eq!(amortized("SavingsPlanRecurringFee"), money("0.20"));
    assert_eq!(amortized("RIFee"), money("0.12"));
    assert_eq!(amortized("Fee"), Money::ZERO);
    assert_eq!(amortized("Usage"), money("0.023"));
    assert_eq!(amortized("Tax"), money("0.003"));
    assert_eq!(
        result.total_unblended.to_decimal(),
        Decimal::from_str("301.626").unwrap()
    );
    assert_eq!(result.total_amortized, money("0.454"));
    assert_eq!(result.resource_tags["i-ri"]["user:team"], "infra");
    assert!(result.records.iter().all(|r| r.service == "AmazonEC2"
        || r.service == "AmazonS3"
        || r.service == "ComputeSavingsPlans"));
}

#[test]
fn cur2_map_columns_give_service_region_and_tags() {
    let result = import(&fixture("cur2-with-maps.csv"));
    assert_eq!(result.format, Format::Cur2);
    assert_eq!(result.records.len(), 3);
    let usage = &result
        .records
        .iter()
        .find(|r| r.line_item_type == "Usage")
        .unwrap();
    assert_eq!(usage.service, "Amazon Elastic Compute Cloud");
    assert_eq!(usage.region, "us-east-1");
    assert_eq!(usage.unblended, money("0.192"));
    assert_eq!(usage.usage_amount.as_deref(), Some("2"));
    let covered = result
        .records
        .iter()
        .find(|r| r.line_item_type == "SavingsPlanCoveredUsage")
        .unwrap();
    assert_eq!(
        (covered.unblended, covered.amortized),
        (money("0.096"), money("0.061"))
    );
    let credit = result
        .records
        .iter()
        .find(|r| r.line_item_type == "Credit")
        .unwrap();
    assert_eq!(
        (credit.service.as_str(), credit.unblended),
        ("AmazonEC2", money("-0.05"))
    );
    assert_eq!(credit.day.to_string(), "2024-09-02");
    let tags = &result.resource_tags["i-0aaa"];
    assert_eq!(
        (tags["user_team"].as_str(), tags["user_env"].as_str()),
        ("core", "prod")
    );
}

#[test]
fn progress_reports_rows_and_bytes_up_to_the_file_size() {
    let path = data("focus/focus_sample.csv.gz");
    let size = std::fs::metadata(&path).unwrap().len();
    let mut seen: Vec<Progress> = Vec::new();
    let result = import_path(&path, &mut |p| seen.push(p)).unwrap();
    let last = seen.last().unwrap();
    assert_eq!(
        (last.rows, last.bytes, last.total_bytes),
        (1000, size, Some(size))
    );
    assert_eq!(result.bytes_read, size);
}

#[test]
fn parts_of_one_report_are_summed_together_before_they_are_stored() {
    let plain = data("cur/mock-cur1-cur2/cur_1_0/sample_billing_data.csv");
    let zipped = data("cur/mock-cur1-cur2/cur_1_0/MockTestReport-00001.csv.zip");
    let one = import(&plain);
    let mut last = Progress::default();
    let both = import_paths(&[&plain, &zipped], &mut |p| last = p).unwrap();
    assert_eq!(both.rows_read, 6);
    assert_eq!(both.records.len(), one.records.len(), "same keys, summed");
    assert_eq!(
        both.total_unblended,
        one.total_unblended + one.total_unblended
    );
    for (b, o) in both.records.iter().zip(&one.records) {
        assert_eq!(b.unblended, o.unblended + o.unblended);
    }
    let sizes =
        std::fs::metadata(&plain).unwrap().len() + std::fs::metadata(&zipped).unwrap().len();
    assert_eq!((last.rows, last.total_bytes), (6, Some(sizes)));

    let focus = data("focus/DERIVED_focus_sample_aws_only.csv.gz");
    let err = import_paths(&[&plain, &focus], &mut |_| {}).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("DERIVED_focus_sample_aws_only.csv.gz") && message.contains("two formats"),
        "{message}"
    );
}

#[test]
fn a_zip_holding_a_gzipped_csv_imports() {
    let gz = std::fs::read(data(
        "cur/mock-cur1-cur2/cur_2_0/MockTestReportV2-00001.csv.gz",
    ))
    .unwrap();
    let mut buffer = Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut buffer);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    writer.start_file("report-00001.csv.gz", options).unwrap();
    writer.write_all(&gz).unwrap();
    writer.finish().unwrap();
    let bytes = buffer.into_inner();

    let expected = import(&data(
        "cur/mock-cur1-cur2/cur_2_0/sample_billing_data_v2.csv",
    ));
    assert_eq!(import_bytes(&bytes).unwrap().records, expected.records);
    let dir = std::env::temp_dir().join(format!("cloudspend-cur-zipgz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("report.zip");
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(import(&path).records, expected.records);
    std::fs::remove_dir_all(&dir).ok();
}
