//! The parse spread over threads gives what one pass over the whole file gives: the same
//! records, totals, tags, and the same first error, whatever the block size and thread count,
//! and whether or not the sums are spilled to sorted runs on disk and merged back.
//! The yardstick is one thread with one block (the whole file read by the csv crate at once),
//! all in memory; tiny blocks put block ends inside quoted fields, between a `\r` and its
//! `\n`, and so on; tiny spill sizes write a run every few keys.

use cloudspend_collect_cur::{
    ImportError, ImportOptions, ImportResult, Progress, import_paths_with, import_reader_with,
};
use std::io::{Cursor, Write};
use std::path::PathBuf;

const HEADER: &str = "lineItem/UsageStartDate,lineItem/UsageAccountId,lineItem/ProductCode,\
lineItem/ResourceId,lineItem/LineItemDescription,lineItem/UnblendedCost,lineItem/CurrencyCode,\
lineItem/UsageAmount,pricing/unit,resourceTags/user:team";

fn serial(bytes: &[u8]) -> Result<ImportResult, ImportError> {
    let whole = ImportOptions {
        threads: 1,
        block_bytes: usize::MAX,
        spill_keys: usize::MAX,
    };
    import_reader_with(Cursor::new(bytes.to_vec()), whole, &mut |_| {})
}

/// Every thread count, block size and spill size tried (each printed by a failed assertion).
fn settings() -> Vec<ImportOptions> {
    let mut all = Vec::new();
    for threads in [1, 2, 3, 4] {
        for block_bytes in [1, 5, 16, 61, 256, 4096] {
            for spill_keys in [usize::MAX, 1, 4] {
                all.push(ImportOptions {
                    threads,
                    block_bytes,
                    spill_keys,
                });
            }
        }
    }
    all
}

/// Same outcome as the serial import for every setting: the result, or the error's text
/// (which names the line, the column and the value).
fn assert_same_as_serial(bytes: &[u8]) -> Result<ImportResult, String> {
    let expected = serial(bytes).map_err(|e| e.to_string());
    for options in settings() {
        let got = import_reader_with(Cursor::new(bytes.to_vec()), options, &mut |_| {})
            .map_err(|e| e.to_string());
        assert_eq!(got, expected, "{options:?}");
    }
    expected
}

/// A deterministic file: three days, seven resources, descriptions that hold line ends,
/// commas and doubled quotes, and a team tag that changes as the file goes on.
fn tricky_rows(rows: usize) -> Vec<String> {
    let mut state: u64 = 7;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    (0..rows)
        .map(|i| {
            let day = 1 + next(3);
            let resource = next(7);
            let description = match next(4) {
                0 => "\"two\nlines, \"\"quoted\"\"\"".to_string(),
                1 => "\"\"\"\"".to_string(),
                2 => "\"\n\"".to_string(),
                _ => "plain".to_string(),
            };
            let cost = format!("0.{:09}", next(1_000_000_000));
            let unit = ["Hrs", "GB-Mo"][(resource % 2) as usize];
            let team = if i % 5 == 0 {
                String::new()
            } else {
                format!("team-{}", i / 20)
            };
            format!(
                "2024-03-0{day}T00:00:00Z,111122223333,AmazonEC2,i-{resource},{description},{cost},USD,{usage},{unit},{team}",
                usage = next(100),
            )
        })
        .collect()
}

fn csv(rows: &[String], line_end: &str) -> Vec<u8> {
    let mut text = String::from(HEADER);
    text.push_str(line_end);
    for row in rows {
        text.push_str(&row.replace('\n', line_end));
        text.push_str(line_end);
    }
    text.into_bytes()
}

#[test]
fn blocks_cut_anywhere_give_the_serial_result() {
    let rows = tricky_rows(300);
    for line_end in ["\n", "\r\n"] {
        let result = assert_same_as_serial(&csv(&rows, line_end)).unwrap();
        assert_eq!(result.rows_read, 300);
        assert!(result.records.len() > 10, "{}", result.records.len());
        // The tag is the latest row's for the resource, wherever that row was parsed.
        let last_team = rows
            .iter()
            .rev()
            .find(|r| r.contains(",i-3,") && !r.ends_with(','))
            .and_then(|r| r.rsplit(',').next())
            .unwrap();
        assert_eq!(result.resource_tags["i-3"]["user:team"], last_team);
    }
}

#[test]
fn blank_lines_and_bare_carriage_returns_give_the_serial_result() {
    let rows = tricky_rows(40);
    let mut text = csv(&rows, "\n");
    text.extend_from_slice(b"\n\n");
    text.extend_from_slice(rows[0].replace('\n', " ").as_bytes());
    text.extend_from_slice(b"\n\n\n");
    assert_eq!(assert_same_as_serial(&text).unwrap().rows_read, 41);
    let old_mac = csv(&tricky_rows(30), "\r");
    assert_eq!(assert_same_as_serial(&old_mac).unwrap().rows_read, 30);
}

#[test]
fn a_quote_inside_an_unquoted_field_is_literal_in_every_block() {
    let rows: Vec<String> = (0..60)
        .map(|i| {
            format!(
                "2024-03-01,1,AmazonEC2,i-{},27\" screen {i},1.5,USD,1,Hrs,t{i}",
                i % 4
            )
        })
        .collect();
    let result = assert_same_as_serial(&csv(&rows, "\n")).unwrap();
    assert_eq!(result.resource_tags["i-1"]["user:team"], "t57");
}

#[test]
fn a_tag_set_again_in_a_later_block_keeps_the_later_value() {
    let mut rows = vec!["2024-03-01,1,AmazonEC2,i-a,x,1,USD,1,Hrs,first".to_string()];
    rows.extend((0..200).map(|i| format!("2024-03-01,1,AmazonEC2,i-{i},x,1,USD,1,Hrs,other")));
    rows.push("2024-03-02,1,AmazonEC2,i-a,x,1,USD,1,Hrs,last".to_string());
    rows.extend((0..50).map(|i| format!("2024-03-01,1,AmazonEC2,i-{i},x,1,USD,1,Hrs,")));
    let result = assert_same_as_serial(&csv(&rows, "\n")).unwrap();
    assert_eq!(result.resource_tags["i-a"]["user:team"], "last");
}

#[test]
fn the_first_bad_line_is_named_when_a_later_block_fails_too() {
    let mut rows = tricky_rows(200);
    rows[150] = rows[150].replacen("0.", "zero.", 1);
    rows[60] = rows[60].replacen("2024-03-0", "03/0", 1);
    let text = csv(&rows, "\n");
    let error = assert_same_as_serial(&text).unwrap_err();
    assert!(error.contains("is not a date"), "{error}");
    // Line 1 is the header; every row before holds as many lines as its line ends plus one.
    let line = 2 + rows[..60]
        .iter()
        .map(|r| r.matches('\n').count() + 1)
        .sum::<usize>();
    assert!(error.starts_with(&format!("line {line},")), "{error}");

    // The same lines with CRLF line ends: the same line numbers.
    let crlf = assert_same_as_serial(&csv(&rows, "\r\n")).unwrap_err();
    assert_eq!(crlf, error);
}

#[test]
fn a_currency_that_changes_between_blocks_is_named_at_its_first_line() {
    let key = "2024-03-01,1,AmazonEC2,i-k,x,1";
    let mut rows: Vec<String> = (0..120)
        .map(|i| format!("2024-03-01,1,AmazonEC2,i-{i},x,1,USD,1,Hrs,"))
        .collect();
    rows[3] = format!("{key},USD,1,Hrs,");
    rows[40] = format!("{key},EUR,1,Hrs,");
    rows[70] = format!("{key},USD,1,Hrs,");
    rows[100] = "2024-03-01,1,AmazonEC2,i-x,x,one,USD,1,Hrs,".to_string();
    let error = assert_same_as_serial(&csv(&rows, "\n")).unwrap_err();
    assert!(
        error.starts_with("line 42: currency EUR differs from USD"),
        "{error}"
    );
    // Without the earlier USD row, EUR comes first and the USD row after it is the one named.
    rows[3] = "2024-03-01,1,AmazonEC2,i-3,x,1,USD,1,Hrs,".to_string();
    let error = assert_same_as_serial(&csv(&rows, "\n")).unwrap_err();
    assert!(
        error.starts_with("line 72: currency USD differs from EUR"),
        "{error}"
    );
}

#[test]
fn a_row_with_too_few_fields_is_named_in_any_block() {
    let mut rows = tricky_rows(80);
    rows[33] = "2024-03-01,1,AmazonEC2".to_string();
    let error = assert_same_as_serial(&csv(&rows, "\n")).unwrap_err();
    assert!(
        error.contains("3 fields where the header has 10"),
        "{error}"
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn zip(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut buffer = Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut buffer);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    writer.start_file(name, options).unwrap();
    writer.write_all(bytes).unwrap();
    writer.finish().unwrap();
    buffer.into_inner()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cloudspend-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn gzip_and_zip_give_the_serial_result_as_streams_and_files() {
    let text = csv(&tricky_rows(150), "\n");
    let expected = serial(&text).unwrap();
    let dir = temp_dir("parallel-containers");
    for (name, bytes) in [
        ("report.csv.gz", gzip(&text)),
        ("report.zip", zip("report.csv", &text)),
        ("nested.zip", zip("report.csv.gz", &gzip(&text))),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        for options in settings() {
            let from_stream = import_reader_with(Cursor::new(bytes.clone()), options, &mut |_| {})
                .unwrap_or_else(|e| panic!("{name} {options:?}: {e}"));
            assert_eq!(from_stream.records, expected.records, "{name} {options:?}");
            assert_eq!(from_stream.resource_tags, expected.resource_tags);
            let from_file = import_paths_with(&[&path], options, &mut |_| {})
                .unwrap_or_else(|e| panic!("{name} {options:?}: {e}"));
            assert_eq!(from_file.records, expected.records, "{name} {options:?}");
            assert_eq!(from_file.total_unblended, expected.total_unblended);
        }
    }
    // A gzip cut short is refused whatever the threads, never imported in part.
    let gz = gzip(&text);
    for options in settings() {
        let cut = Cursor::new(gz[..gz.len() - 6].to_vec());
        let error = import_reader_with(cut, options, &mut |_| {}).unwrap_err();
        assert!(
            matches!(error, ImportError::Read { .. }),
            "{options:?}: {error}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn parts_of_one_report_sum_and_name_the_file_of_a_currency_change() {
    let dir = temp_dir("parallel-parts");
    let first = dir.join("part-1.csv");
    let second = dir.join("part-2.csv");
    std::fs::write(&first, csv(&tricky_rows(90), "\n")).unwrap();
    std::fs::write(&second, csv(&tricky_rows(70), "\r\n")).unwrap();
    let whole = ImportOptions {
        threads: 1,
        block_bytes: usize::MAX,
        spill_keys: usize::MAX,
    };
    let expected = import_paths_with(&[&first, &second], whole, &mut |_| {}).unwrap();
    assert_eq!(expected.rows_read, 160);
    for options in settings() {
        let mut last = Progress::default();
        let got = import_paths_with(&[&first, &second], options, &mut |p| last = p).unwrap();
        assert_eq!(got, expected, "{options:?}");
        assert_eq!(last.rows, 160, "{options:?}");
    }

    let mut rows = tricky_rows(70);
    rows[50] = rows[50].replace(",USD,", ",EUR,");
    std::fs::write(&second, csv(&rows, "\n")).unwrap();
    let serial_error = import_paths_with(&[&first, &second], whole, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(serial_error.contains("part-2.csv: line"), "{serial_error}");
    for options in settings() {
        let error = import_paths_with(&[&first, &second], options, &mut |_| {}).unwrap_err();
        assert_eq!(error.to_string(), serial_error, "{options:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
