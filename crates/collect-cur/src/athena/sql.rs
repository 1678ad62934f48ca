//! Which export an Athena table holds, read from its columns, and the SQL built from them.
//!
//! Every peer's Athena collector breaks on schema drift: a column one CUR has and another lacks
//! (`product_vcpu`, `reservation_effective_cost`), CUR 2.0's map columns, FOCUS tables. So the
//! table's columns are read first and the aggregate query names only columns that exist; a
//! missing optional column becomes the constant the file import uses for an absent column
//! (`''`, `USD`, or the unblended cost for amortization).
//!
//! The rules are the file import's ([`crate::format`]), written in SQL: the same candidate
//! columns in the same order, empty and `NULL` cells as empty, the same amortization rule, the
//! same region-from-zone fallback, so an Athena run and a file import of the same data give the
//! same records. Amounts are summed as `DECIMAL(38,10)` (never `DOUBLE`) and returned as
//! `VARCHAR`, so they arrive as exact decimal strings.
//!
//! Names reach this module already checked ([`super::AthenaLocation::validate`]); column names
//! in the SQL are only ever the constants below, never text read from the table.

use crate::format::Format;
use chrono::{Datelike, Days, NaiveDate};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Amounts are cast to this before summing: CUR's Parquet tables store costs as `DOUBLE`, and a
/// `DOUBLE` sum drifts. Ten places keep every CUR amount (they have at most ten) and one more
/// than `Money`'s nano-unit.
const DECIMAL: &str = "DECIMAL(38,10)";

/// What the SQL needs to know about a column's type to read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// `varchar` (Glue `string`): CSV-backed tables have nothing else; empty means absent.
    Text,
    Number,
    Timestamp,
    TimestampWithZone,
    Date,
    Map,
    /// Anything else, or a type information_schema did not give: read with plain casts.
    Other,
}

impl ColumnKind {
    /// From an `information_schema.columns.data_type` (`varchar`, `double`, `timestamp(3)`,
    /// `map(varchar, varchar)`) or a Glue type (`string`, `map<string,string>`).
    pub fn of(data_type: &str) -> ColumnKind {
        let t = data_type.trim().to_ascii_lowercase();
        let base = t.split(['(', '<', ' ']).next().unwrap_or("");
        match base {
            "varchar" | "char" | "string" => ColumnKind::Text,
            "double" | "real" | "float" | "decimal" | "bigint" | "integer" | "int" | "smallint"
            | "tinyint" => ColumnKind::Number,
            "timestamp" if t.contains("with time zone") => ColumnKind::TimestampWithZone,
            "timestamp" => ColumnKind::Timestamp,
            "date" => ColumnKind::Date,
            "map" => ColumnKind::Map,
            _ => ColumnKind::Other,
        }
    }
}

/// A CUR or FOCUS table as information_schema describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    pub format: Format,
    /// Lower-cased column name (Athena lower-cases them) → kind. Partition columns included.
    columns: BTreeMap<String, ColumnKind>,
}

/// The columns that tell the formats apart; see [`TableSchema::detect`].
pub const LEGACY_OR_CUR2_REQUIRED: [&str; 2] =
    ["line_item_usage_start_date", "line_item_unblended_cost"];
pub const FOCUS_REQUIRED: [&str; 2] = ["chargeperiodstart", "billedcost"];

impl TableSchema {
    /// Recognises the export from `(column_name, data_type)` pairs.
    ///
    /// FOCUS has `chargeperiodstart` and `billedcost`. Legacy CUR and CUR 2.0 share the
    /// `line_item_*` names in Athena; CUR 2.0 alone has the `product` / `resource_tags` map
    /// columns (legacy CUR flattens them into `product_*` / `resource_tags_user_*`), and
    /// partitions by `billing_period` where legacy CUR uses `year` / `month`. `None` when the
    /// table is none of them.
    pub fn detect<'a>(
        columns: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<TableSchema> {
        let columns: BTreeMap<String, ColumnKind> = columns
            .into_iter()
            .map(|(name, data_type)| (name.trim().to_ascii_lowercase(), ColumnKind::of(data_type)))
            .collect();
        let has = |name: &str| columns.contains_key(name);
        let format = if FOCUS_REQUIRED.iter().all(|c| has(c)) {
            Format::Focus
        } else if LEGACY_OR_CUR2_REQUIRED.iter().all(|c| has(c)) {
            let maps = has("product") || has("resource_tags");
            let cur2_partitions = has("billing_period") && !(has("year") && has("month"));
            if maps || cur2_partitions {
                Format::Cur2
            } else {
                Format::LegacyCur
            }
        } else {
            return None;
        };
        Some(TableSchema { format, columns })
    }

    pub fn has(&self, name: &str) -> bool {
        self.columns.contains_key(name)
    }

    pub fn kind(&self, name: &str) -> Option<ColumnKind> {
        self.columns.get(name).copied()
    }

    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.keys().map(String::as_str)
    }
}

/// The query that lists a table's columns. `GetTableMetadata` would be one call less, but moto
/// (which the tests run against) does not implement it, and this works in every workgroup.
pub fn columns_query(database: &str, table: &str) -> String {
    format!(
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE table_schema = '{}' AND table_name = '{}'",
        database.to_ascii_lowercase(),
        table.to_ascii_lowercase()
    )
}

/// The header names the aggregate query returns, in order.
pub const RESULT_COLUMNS: [&str; 12] = [
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

/// One aggregate query over `[from, to)` (to exclusive, as Cost Explorer counts): one row per
/// (day, account, service, region, usage type, resource id, line item type) with exact sums.
/// `from < to` is the caller's to check.
pub fn aggregate_query(
    schema: &TableSchema,
    database: &str,
    table: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> String {
    let s = schema;
    let line = match schema.format {
        Format::LegacyCur | Format::Cur2 => cur_line(s),
        Format::Focus => focus_line(s),
    };
    let mut filters = Vec::new();
    filters.extend(partition_filter(s, from, to));
    filters.push(window_filter(s, line.start_column, from, to));
    filters.extend(line.row_filter.clone());

    let mut sql = String::from("SELECT\n");
    let _ = writeln!(sql, "  CAST(day AS VARCHAR) AS day,");
    sql.push_str("  account_id, service, region, usage_type, resource_id, line_item_type,\n");
    let _ = writeln!(sql, "  CAST(SUM(unblended) AS VARCHAR) AS unblended,");
    let _ = writeln!(
        sql,
        "  CAST(SUM({}) AS VARCHAR) AS amortized,",
        line.amortized
    );
    // Usage of two units (requests and GB under one key) has no meaningful sum.
    let _ = writeln!(
        sql,
        "  CASE WHEN COUNT(DISTINCT unit) > 1 THEN NULL ELSE CAST(SUM(usage_amount) AS VARCHAR) END AS usage_amount,"
    );
    sql.push_str("  MIN(currency) AS currency,\n");
    sql.push_str("  COUNT(DISTINCT currency) AS currencies\n");
    sql.push_str("FROM (\n  SELECT\n");
    let mut selected: Vec<String> = vec![
        format!("{} AS day", line.day),
        format!("{} AS account_id", line.account),
        format!("{} AS service", line.service),
        format!("{} AS region", line.region),
        format!("{} AS usage_type", line.usage_type),
        format!("{} AS resource_id", line.resource_id),
        format!("{} AS line_item_type", line.line_item_type),
        format!("COALESCE({}, 0) AS unblended", line.unblended),
        format!("{} AS usage_amount", line.usage_amount),
        format!("{} AS unit", line.unit),
        format!("{} AS currency", line.currency),
    ];
    selected.extend(
        line.amortization_inputs
            .iter()
            .map(|(alias, expr)| format!("{expr} AS {alias}")),
    );
    sql.push_str(
        &selected
            .iter()
            .map(|e| format!("    {e}"))
            .collect::<Vec<_>>()
            .join(",\n"),
    );
    let _ = write!(
        sql,
        "\n  FROM \"{}\".\"{}\"\n",
        database.to_ascii_lowercase(),
        table.to_ascii_lowercase()
    );
    let _ = writeln!(sql, "  WHERE {}", filters.join("\n    AND "));
    sql.push_str(") AS line_items\n");
    sql.push_str(
        "GROUP BY day, account_id, service, region, usage_type, resource_id, line_item_type",
    );
    sql
}

/// One line item, normalised: SQL expressions per field of the file import's rules.
struct Line {
    start_column: &'static str,
    day: String,
    account: String,
    service: String,
    region: String,
    usage_type: String,
    resource_id: String,
    line_item_type: String,
    unblended: String,
    usage_amount: String,
    unit: String,
    currency: String,
    /// `(alias, expression)` of the columns the amortization rule reads, present ones only.
    amortization_inputs: Vec<(&'static str, String)>,
    /// The amortized cost of one line, over the inner query's aliases.
    amortized: String,
    row_filter: Option<String>,
}

/// A text cell as the file import reads one: trimmed, with empty and FOCUS's bare `NULL` as
/// absent.
fn text_value(expr: &str) -> String {
    format!("NULLIF(NULLIF(TRIM({expr}), ''), 'NULL')")
}

impl TableSchema {
    /// A column read as text, or `None` when the table lacks it.
    fn text(&self, name: &str) -> Option<String> {
        Some(match self.kind(name)? {
            ColumnKind::Text => text_value(name),
            _ => text_value(&format!("CAST({name} AS VARCHAR)")),
        })
    }

    /// A key of a map column (CUR 2.0 `product['product_name']`); `element_at` is NULL for a
    /// missing key where `[]` would fail the query.
    fn map_key(&self, map: &str, key: &str) -> Option<String> {
        (self.kind(map)? == ColumnKind::Map)
            .then(|| text_value(&format!("element_at({map}, '{key}')")))
    }

    fn number(&self, name: &str) -> Option<String> {
        Some(match self.kind(name)? {
            ColumnKind::Text => format!("CAST({} AS {DECIMAL})", text_value(name)),
            _ => format!("CAST({name} AS {DECIMAL})"),
        })
    }

    /// The first non-empty of the candidates the table has, else `''`.
    fn first_text(&self, candidates: &[Option<String>]) -> String {
        let present: Vec<&str> = candidates.iter().flatten().map(String::as_str).collect();
        match present.as_slice() {
            [] => "''".to_string(),
            list => format!("COALESCE({}, '')", list.join(", ")),
        }
    }

    fn texts(&self, names: &[&str]) -> Vec<Option<String>> {
        names.iter().map(|n| self.text(n)).collect()
    }

    /// The UTC day of a start column. Text columns hold ISO dates first (`2026-11-01T00:00:00Z`,
    /// FOCUS `2026-11-01 00:00:00`).
    fn day(&self, name: &str) -> String {
        match self.kind(name) {
            Some(ColumnKind::Text) => format!("CAST(SUBSTR(TRIM({name}), 1, 10) AS DATE)"),
            Some(ColumnKind::TimestampWithZone) => {
                format!("CAST({name} AT TIME ZONE 'UTC' AS DATE)")
            }
            _ => format!("CAST({name} AS DATE)"),
        }
    }

    /// `availability_zone` minus its letter (`eu-west-1b` → `eu-west-1`), the region fallback.
    fn region_of_zone(&self, name: &str) -> Option<String> {
        self.text(name)
            .map(|zone| format!("regexp_replace({zone}, '([0-9])[a-z]$', '$1')"))
    }
}

fn cur_line(s: &TableSchema) -> Line {
    let mut service = s.texts(&["product_product_name"]);
    let mut region = s.texts(&["product_region_code", "product_region"]);
    service.push(s.map_key("product", "product_name"));
    region.push(s.map_key("product", "region_code"));
    region.push(s.map_key("product", "region"));
    service.extend(s.texts(&["line_item_product_code"]));
    region.push(s.region_of_zone("line_item_availability_zone"));

    // (alias, column): the inputs of AWS's amortized rule, see the crate documentation.
    let inputs: Vec<(&'static str, String)> = [
        ("ri_effective_cost", s.number("reservation_effective_cost")),
        (
            "sp_effective_cost",
            s.number("savings_plan_savings_plan_effective_cost"),
        ),
        ("ri_arn", s.text("reservation_reservation_a_r_n")),
        (
            "ri_unused_upfront",
            s.number("reservation_unused_amortized_upfront_fee_for_billing_period"),
        ),
        (
            "ri_unused_recurring",
            s.number("reservation_unused_recurring_fee"),
        ),
        (
            "sp_total_commitment",
            s.number("savings_plan_total_commitment_to_date"),
        ),
        (
            "sp_used_commitment",
            s.number("savings_plan_used_commitment"),
        ),
    ]
    .into_iter()
    .filter_map(|(alias, expr)| expr.map(|e| (alias, e)))
    .collect();
    let has = |alias: &str| inputs.iter().any(|(a, _)| *a == alias);

    let mut cases = Vec::new();
    if has("ri_effective_cost") {
        cases
            .push("WHEN 'DiscountedUsage' THEN COALESCE(ri_effective_cost, unblended)".to_string());
    }
    if has("sp_effective_cost") {
        cases.push(
            "WHEN 'SavingsPlanCoveredUsage' THEN COALESCE(sp_effective_cost, unblended)"
                .to_string(),
        );
    }
    cases.push("WHEN 'SavingsPlanNegation' THEN 0".to_string());
    cases.push("WHEN 'SavingsPlanUpfrontFee' THEN 0".to_string());
    if has("sp_total_commitment") && has("sp_used_commitment") {
        cases.push(
            "WHEN 'SavingsPlanRecurringFee' THEN COALESCE(sp_total_commitment - sp_used_commitment, unblended)"
                .to_string(),
        );
    }
    match (has("ri_unused_upfront"), has("ri_unused_recurring")) {
        (true, true) => cases.push(
            "WHEN 'RIFee' THEN CASE WHEN ri_unused_upfront IS NULL AND ri_unused_recurring IS NULL \
             THEN unblended ELSE COALESCE(ri_unused_upfront, 0) + COALESCE(ri_unused_recurring, 0) END"
                .to_string(),
        ),
        (true, false) => cases.push("WHEN 'RIFee' THEN COALESCE(ri_unused_upfront, unblended)".to_string()),
        (false, true) => cases.push("WHEN 'RIFee' THEN COALESCE(ri_unused_recurring, unblended)".to_string()),
        (false, false) => {}
    }
    if has("ri_arn") {
        cases
            .push("WHEN 'Fee' THEN CASE WHEN ri_arn IS NULL THEN unblended ELSE 0 END".to_string());
    }
    let amortized = format!("CASE line_item_type {} ELSE unblended END", cases.join(" "));

    Line {
        start_column: "line_item_usage_start_date",
        day: s.day("line_item_usage_start_date"),
        account: s.first_text(&s.texts(&["line_item_usage_account_id", "bill_payer_account_id"])),
        service: s.first_text(&service),
        region: s.first_text(&region),
        usage_type: s.first_text(&s.texts(&["line_item_usage_type"])),
        resource_id: s.first_text(&s.texts(&["line_item_resource_id"])),
        line_item_type: s.first_text(&s.texts(&["line_item_line_item_type"])),
        unblended: s
            .number("line_item_unblended_cost")
            .unwrap_or_else(|| "0".into()),
        usage_amount: s
            .number("line_item_usage_amount")
            .unwrap_or_else(|| format!("CAST(NULL AS {DECIMAL})")),
        unit: first_or_null(&s.texts(&["pricing_unit", "product_pricing_unit"])),
        currency: currency(s.text("line_item_currency_code")),
        amortization_inputs: inputs,
        amortized,
        row_filter: None,
    }
}

fn focus_line(s: &TableSchema) -> Line {
    let billed = s.number("billedcost").unwrap_or_else(|| "0".into());
    let mut region = s.texts(&["regionid"]);
    region.push(s.region_of_zone("availabilityzone"));
    let (inputs, amortized) = match s.number("effectivecost") {
        Some(effective) => (
            vec![("effective_cost", effective)],
            "COALESCE(effective_cost, unblended)".to_string(),
        ),
        None => (Vec::new(), "unblended".to_string()),
    };
    // Other providers' rows in a FOCUS table are skipped, as the file import skips them.
    let row_filter = s
        .text("providername")
        .map(|p| format!("(lower({p}) = 'aws' OR lower({p}) LIKE 'amazon web services%')"));
    Line {
        start_column: "chargeperiodstart",
        day: s.day("chargeperiodstart"),
        account: s.first_text(&s.texts(&["subaccountid", "billingaccountid"])),
        service: s.first_text(&s.texts(&["servicename", "x_servicecode"])),
        region: s.first_text(&region),
        // FOCUS 1.x has no usage type; AWS's FOCUS export adds it as an extension column.
        usage_type: s.first_text(&s.texts(&["x_usagetype"])),
        resource_id: s.first_text(&s.texts(&["resourceid"])),
        line_item_type: s.first_text(&s.texts(&["chargecategory"])),
        unblended: billed,
        usage_amount: s
            .number("consumedquantity")
            .unwrap_or_else(|| format!("CAST(NULL AS {DECIMAL})")),
        unit: first_or_null(&s.texts(&["consumedunit"])),
        currency: currency(s.text("billingcurrency")),
        amortization_inputs: inputs,
        amortized,
        row_filter,
    }
}

fn first_or_null(candidates: &[Option<String>]) -> String {
    match candidates.iter().flatten().next() {
        Some(expr) => expr.clone(),
        None => "CAST(NULL AS VARCHAR)".to_string(),
    }
}

fn currency(column: Option<String>) -> String {
    match column {
        Some(expr) => format!("COALESCE({expr}, 'USD')"),
        None => "'USD'".to_string(),
    }
}

/// `[from, to)` on the start column, typed so Athena can push it down to Parquet statistics.
fn window_filter(s: &TableSchema, column: &str, from: NaiveDate, to: NaiveDate) -> String {
    match s.kind(column) {
        Some(ColumnKind::Timestamp | ColumnKind::TimestampWithZone) => format!(
            "{column} >= TIMESTAMP '{from} 00:00:00' AND {column} < TIMESTAMP '{to} 00:00:00'"
        ),
        Some(ColumnKind::Date) => format!("{column} >= DATE '{from}' AND {column} < DATE '{to}'"),
        _ => {
            let day = s.day(column);
            format!("{day} >= DATE '{from}' AND {day} < DATE '{to}'")
        }
    }
}

/// The months `[from, to)` touches, as (year, month).
fn months(from: NaiveDate, to: NaiveDate) -> Vec<(i32, u32)> {
    let last = to.checked_sub_days(Days::new(1)).unwrap_or(to).max(from);
    let mut out = Vec::new();
    let (mut y, mut m) = (from.year(), from.month());
    while (y, m) <= (last.year(), last.month()) {
        out.push((y, m));
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    out
}

/// Partition pruning, so Athena reads (and bills) only the months of the window: `year` /
/// `month` for legacy CUR, `billing_period` (`2026-11`) for CUR 2.0 and CID's FOCUS tables.
fn partition_filter(s: &TableSchema, from: NaiveDate, to: NaiveDate) -> Option<String> {
    let months = months(from, to);
    if s.has("year") && s.has("month") && s.format != Format::Focus {
        let quoted = s.kind("year") == Some(ColumnKind::Text);
        let mut by_year: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for (y, m) in &months {
            let values = by_year.entry(*y).or_default();
            if quoted {
                // The CUR Athena integration writes `month=1`; hand-made tables often `month=01`.
                values.push(format!("'{m}'"));
                if *m < 10 {
                    values.push(format!("'{m:02}'"));
                }
            } else {
                values.push(m.to_string());
            }
        }
        let terms: Vec<String> = by_year
            .into_iter()
            .map(|(y, ms)| {
                let year = if quoted {
                    format!("'{y}'")
                } else {
                    y.to_string()
                };
                format!("(\"year\" = {year} AND \"month\" IN ({}))", ms.join(", "))
            })
            .collect();
        return Some(if terms.len() == 1 {
            terms[0].clone()
        } else {
            format!("({})", terms.join(" OR "))
        });
    }
    if s.has("billing_period") {
        let periods: Vec<String> = months
            .iter()
            .map(|(y, m)| format!("'{y}-{m:02}'"))
            .collect();
        return Some(format!("\"billing_period\" IN ({})", periods.join(", ")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn kinds_from_information_schema_and_glue_types() {
        assert_eq!(ColumnKind::of("varchar"), ColumnKind::Text);
        assert_eq!(ColumnKind::of("string"), ColumnKind::Text);
        assert_eq!(ColumnKind::of("double"), ColumnKind::Number);
        assert_eq!(ColumnKind::of("decimal(18,4)"), ColumnKind::Number);
        assert_eq!(ColumnKind::of("timestamp(3)"), ColumnKind::Timestamp);
        assert_eq!(
            ColumnKind::of("timestamp(3) with time zone"),
            ColumnKind::TimestampWithZone
        );
        assert_eq!(ColumnKind::of("map(varchar, varchar)"), ColumnKind::Map);
        assert_eq!(ColumnKind::of("map<string,string>"), ColumnKind::Map);
        assert_eq!(ColumnKind::of(""), ColumnKind::Other);
    }

    #[test]
    fn months_of_a_window_cross_years() {
        assert_eq!(months(d("2026-11-01"), d("2026-12-01")), vec![(2026, 11)]);
        assert_eq!(
            months(d("2026-11-30"), d("2027-01-02")),
            vec![(2026, 11), (2026, 12), (2027, 1)]
        );
        assert_eq!(months(d("2026-11-05"), d("2026-11-06")), vec![(2026, 11)]);
    }
}
