//! The Athena SQL built for real CUR table schemas: the column lists in
//! `tests/data/cur-ddl` (AWS Well-Architected Labs' legacy CUR DDL, the Cloud Intelligence
//! Dashboards' CUR 2.0 and FOCUS tables).

use chrono::NaiveDate;
use cloudspend_collect_cur::Format;
use cloudspend_collect_cur::athena::sql::TableSchema;
use cloudspend_collect_cur::athena::{AthenaError, AthenaLocation, aggregate_query, columns_query};
use std::path::Path;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// `(column, type)` pairs of a DDL column list, with Glue types as information_schema shows
/// them. Missing data is a failure, never a skipped test.
fn ddl_columns(file: &str) -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/cur-ddl")
        .join(file);
    assert!(
        path.exists(),
        "{} is missing (the repository ships it in tests/data/cur-ddl)",
        path.display()
    );
    let mut reader = csv::Reader::from_path(&path).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), athena_type(&r[1]))
        })
        .collect()
}

/// Glue DDL type → information_schema `data_type`.
fn athena_type(glue: &str) -> String {
    match glue.to_ascii_lowercase().as_str() {
        "string" => "varchar".into(),
        "timestamp" => "timestamp(3)".into(),
        "map<string,string>" => "map(varchar, varchar)".into(),
        "map<string,double>" => "map(varchar, double)".into(),
        other => other.into(),
    }
}

fn schema(columns: &[(String, String)]) -> TableSchema {
    TableSchema::detect(columns.iter().map(|(n, t)| (n.as_str(), t.as_str())))
        .expect("a CUR schema")
}

fn legacy_columns() -> Vec<(String, String)> {
    let mut columns = ddl_columns("DERIVED_legacy_cur_columns_from_wa_labs_ddl.csv");
    // The DDL's PARTITIONED BY (year STRING, month STRING): information_schema lists them too.
    columns.push(("year".into(), "varchar".into()));
    columns.push(("month".into(), "varchar".into()));
    columns
}

fn query(columns: &[(String, String)], from: &str, to: &str) -> (Format, String) {
    let schema = schema(columns);
    (
        schema.format,
        aggregate_query(&schema, "cur", "cur_table", d(from), d(to)),
    )
}

#[test]
fn legacy_cur_table_is_recognised_and_pruned_by_year_and_month() {
    let (format, sql) = query(&legacy_columns(), "2026-09-15", "2026-11-01");
    assert_eq!(format, Format::LegacyCur);
    assert!(
        sql.contains(r#"("year" = '2026' AND "month" IN ('9', '09', '10'))"#),
        "{sql}"
    );
    assert!(sql.contains("FROM \"cur\".\"cur_table\""), "{sql}");
    // Typed literals on the timestamp column, [from, to).
    assert!(
        sql.contains("line_item_usage_start_date >= TIMESTAMP '2026-09-15 00:00:00' AND line_item_usage_start_date < TIMESTAMP '2026-11-01 00:00:00'"),
        "{sql}"
    );
    // Exact sums: DOUBLE costs cast to DECIMAL before summing, returned as text.
    assert!(
        sql.contains("CAST(line_item_unblended_cost AS DECIMAL(38,10))"),
        "{sql}"
    );
    assert!(
        sql.contains("CAST(SUM(unblended) AS VARCHAR) AS unblended"),
        "{sql}"
    );
    assert!(!sql.contains("SUM(line_item_unblended_cost)"), "{sql}");
    // The file import's candidates, in its order.
    assert!(
        sql.contains("COALESCE(NULLIF(NULLIF(TRIM(line_item_usage_account_id), ''), 'NULL'), NULLIF(NULLIF(TRIM(bill_payer_account_id), ''), 'NULL'), '') AS account_id"),
        "{sql}"
    );
    assert!(sql.contains("product_product_name"), "{sql}");
    assert!(sql.contains("regexp_replace(NULLIF(NULLIF(TRIM(line_item_availability_zone), ''), 'NULL'), '([0-9])[a-z]$', '$1')"), "{sql}");
    assert!(
        sql.contains(
            "COALESCE(NULLIF(NULLIF(TRIM(line_item_currency_code), ''), 'NULL'), 'USD') AS currency"
        ),
        "{sql}"
    );
    // This DDL has RI columns but no Savings Plan columns: no SP rule but the zero ones.
    assert!(
        sql.contains("WHEN 'DiscountedUsage' THEN COALESCE(ri_effective_cost, unblended)"),
        "{sql}"
    );
    assert!(!sql.contains("sp_effective_cost"), "{sql}");
    assert!(sql.contains("WHEN 'SavingsPlanNegation' THEN 0"), "{sql}");
    assert!(
        sql.contains("WHEN 'Fee' THEN CASE WHEN ri_arn IS NULL THEN unblended ELSE 0 END"),
        "{sql}"
    );
    assert!(
        sql.contains(
            "GROUP BY day, account_id, service, region, usage_type, resource_id, line_item_type"
        ),
        "{sql}"
    );
    // No map columns in a legacy table.
    assert!(!sql.contains("element_at"), "{sql}");
    println!("legacy CUR:\n{sql}");
}

#[test]
fn legacy_partitions_of_a_window_across_new_year() {
    let (_, sql) = query(&legacy_columns(), "2026-12-15", "2027-01-10");
    assert!(
        sql.contains(r#"(("year" = '2026' AND "month" IN ('12')) OR ("year" = '2027' AND "month" IN ('1', '01')))"#),
        "{sql}"
    );
}

#[test]
fn cid_legacy_table_without_partitions_or_currency_still_queries() {
    let columns = ddl_columns("DERIVED_legacy_cur_columns_from_cid.csv");
    let (format, sql) = query(&columns, "2026-11-01", "2026-12-01");
    assert_eq!(format, Format::LegacyCur);
    assert!(!sql.contains("\"year\""), "{sql}");
    assert!(sql.contains("'USD' AS currency"), "{sql}");
    // This one has Savings Plan columns.
    assert!(sql.contains("WHEN 'SavingsPlanRecurringFee' THEN COALESCE(sp_total_commitment - sp_used_commitment, unblended)"), "{sql}");
    // product_vcpu is absent here and never read anyway.
    assert!(!sql.contains("product_vcpu"), "{sql}");
}

#[test]
fn cur2_table_uses_the_product_map_and_billing_period() {
    let columns = ddl_columns("DERIVED_cur2_columns_from_cid.csv");
    let (format, sql) = query(&columns, "2026-11-20", "2027-01-01");
    assert_eq!(format, Format::Cur2);
    assert!(
        sql.contains(r#""billing_period" IN ('2026-11', '2026-12')"#),
        "{sql}"
    );
    assert!(!sql.contains("\"year\""), "{sql}");
    // Flattened column first, then the map key, then the product code: the file import's order.
    let service = sql
        .lines()
        .find(|l| l.trim_end().ends_with("AS service,"))
        .unwrap();
    let flat = service.find("product_product_name");
    let map = service
        .find("element_at(product, 'product_name')")
        .expect(service);
    let code = service.find("line_item_product_code").expect(service);
    assert!(
        flat.is_none(),
        "CID's CUR 2.0 has no product_product_name column: {service}"
    );
    assert!(map < code, "{service}");
    let region = sql
        .lines()
        .find(|l| l.trim_end().ends_with("AS region,"))
        .unwrap();
    assert!(region.contains("product_region_code"), "{region}");
    assert!(
        region.contains("element_at(product, 'region_code')"),
        "{region}"
    );
    assert!(region.contains("element_at(product, 'region')"), "{region}");
    // No line_item_currency_code in this table: the import's default.
    assert!(sql.contains("'USD' AS currency"), "{sql}");
    assert!(
        sql.contains("WHEN 'SavingsPlanCoveredUsage' THEN COALESCE(sp_effective_cost, unblended)"),
        "{sql}"
    );
    println!("CUR 2.0:\n{sql}");
}

#[test]
fn cur2_table_without_reservation_columns_falls_back_to_unblended() {
    let columns: Vec<(String, String)> = ddl_columns("DERIVED_cur2_columns_from_cid.csv")
        .into_iter()
        .filter(|(n, _)| !n.starts_with("reservation_"))
        .collect();
    let (_, sql) = query(&columns, "2026-11-01", "2026-11-02");
    assert!(!sql.contains("reservation_effective_cost"), "{sql}");
    assert!(
        !sql.contains("'DiscountedUsage'"),
        "DiscountedUsage takes the ELSE unblended branch: {sql}"
    );
    assert!(!sql.contains("'RIFee'"), "{sql}");
    assert!(sql.contains("ELSE unblended END"), "{sql}");
}

#[test]
fn focus_table_keeps_aws_rows_and_amortizes_with_effective_cost() {
    let columns = ddl_columns("DERIVED_focus_columns_from_cid.csv");
    let (format, sql) = query(&columns, "2026-11-01", "2026-11-08");
    assert_eq!(format, Format::Focus);
    assert!(sql.contains("chargeperiodstart >= TIMESTAMP '2026-11-01 00:00:00' AND chargeperiodstart < TIMESTAMP '2026-11-08 00:00:00'"), "{sql}");
    assert!(sql.contains(r#""billing_period" IN ('2026-11')"#), "{sql}");
    assert!(
        sql.contains("COALESCE(CAST(billedcost AS DECIMAL(38,10)), 0) AS unblended"),
        "{sql}"
    );
    assert!(
        sql.contains("CAST(effectivecost AS DECIMAL(38,10)) AS effective_cost"),
        "{sql}"
    );
    assert!(
        sql.contains("SUM(COALESCE(effective_cost, unblended))"),
        "{sql}"
    );
    assert!(
        sql.contains("lower(NULLIF(NULLIF(TRIM(providername), ''), 'NULL')) = 'aws'"),
        "{sql}"
    );
    assert!(sql.contains("AS line_item_type"), "{sql}");
    assert!(
        sql.contains("NULLIF(NULLIF(TRIM(chargecategory), ''), 'NULL')"),
        "{sql}"
    );
    // No x_usagetype column in CID's FOCUS table: usage type is empty, as in the file import.
    assert!(sql.contains("'' AS usage_type"), "{sql}");
    assert!(
        sql.contains(
            "COALESCE(NULLIF(NULLIF(TRIM(billingcurrency), ''), 'NULL'), 'USD') AS currency"
        ),
        "{sql}"
    );
    println!("FOCUS:\n{sql}");
}

#[test]
fn text_typed_columns_are_read_as_text() {
    // A CSV-backed table (OpenCSVSerde): every column is a string.
    let columns: Vec<(String, String)> = [
        "line_item_usage_start_date",
        "line_item_unblended_cost",
        "line_item_usage_account_id",
    ]
    .iter()
    .map(|n| (n.to_string(), "varchar".to_string()))
    .collect();
    let (format, sql) = query(&columns, "2026-11-01", "2026-11-02");
    assert_eq!(format, Format::LegacyCur);
    assert!(
        sql.contains(
            "CAST(NULLIF(NULLIF(TRIM(line_item_unblended_cost), ''), 'NULL') AS DECIMAL(38,10))"
        ),
        "{sql}"
    );
    assert!(
        sql.contains(
            "CAST(SUBSTR(TRIM(line_item_usage_start_date), 1, 10) AS DATE) >= DATE '2026-11-01'"
        ),
        "{sql}"
    );
    assert!(sql.contains("'' AS service"), "{sql}");
    assert!(
        sql.contains("CAST(NULL AS DECIMAL(38,10)) AS usage_amount"),
        "{sql}"
    );
}

#[test]
fn a_table_that_is_no_cur_is_not_recognised() {
    let columns = [("id", "bigint"), ("cost", "double")];
    assert!(TableSchema::detect(columns).is_none());
}

#[test]
fn columns_query_lists_the_table_in_information_schema() {
    assert_eq!(
        columns_query("CUR_db", "Cur_Table"),
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE table_schema = 'cur_db' AND table_name = 'cur_table'"
    );
}

fn location(database: &str, table: &str, workgroup: &str) -> AthenaLocation {
    AthenaLocation {
        database: database.into(),
        table: table.into(),
        workgroup: workgroup.into(),
        output_location: Some("s3://results-bucket/athena/".into()),
    }
}

#[test]
fn injected_names_are_refused_before_any_sql_is_built() {
    let err = location("cur", "x; DROP TABLE y", "primary")
        .validate()
        .unwrap_err();
    assert!(
        matches!(err, AthenaError::InvalidName { field: "table", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("`x; DROP TABLE y`"), "{err}");
    for bad in ["cur\"", "cur'", "cur.db", "", "c ur", "cur--"] {
        let err = location(bad, "t", "primary").validate().unwrap_err();
        assert!(
            matches!(
                err,
                AthenaError::InvalidName {
                    field: "database",
                    ..
                }
            ),
            "{bad}: {err:?}"
        );
    }
    assert!(location("cur", "t", "wg'; --").validate().is_err());
    let mut loc = location("cur", "t", "primary");
    loc.output_location = Some("http://evil/".into());
    assert!(loc.validate().is_err());
    // What connection validation accepts passes.
    assert!(
        location("cur_db", "cur_2024", "team-a.reports")
            .validate()
            .is_ok()
    );
    let mut loc = location("cur", "t", "primary");
    loc.output_location = None;
    assert!(loc.validate().is_ok());
}
