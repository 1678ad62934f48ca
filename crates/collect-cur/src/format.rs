//! Which export a header belongs to, and where each normalised field comes from in it.
//!
//! Header names are matched case-insensitively, trimmed, with a UTF-8 byte-order mark dropped:
//! Athena lower-cases names and spreadsheet tools add BOMs, and neither changes what a column
//! means. Only two columns per format are required (the usage start and the cost); every other
//! field has a list of candidate columns, the first non-empty one wins, and a field with none
//! is the empty string (the `CostRecord` convention for "not broken down").

use crate::error::{ImportError, MissingColumns};
use std::collections::HashMap;
use std::fmt;

/// The export formats the importer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// Legacy CUR ("CUR 1.0") CSV: `lineItem/UnblendedCost`, `product/region`, `resourceTags/user:x`.
    LegacyCur,
    /// CUR 2.0 (Data Exports) CSV: snake_case `line_item_unblended_cost`, `product` and
    /// `resource_tags` map columns. Legacy CUR flattened by Athena (`line_item_*`,
    /// `product_*`, `resource_tags_user_*`) has the same names and is read by the same rules.
    Cur2,
    /// FinOps FOCUS 1.x CSV: `BilledCost`, `EffectiveCost`, `ChargePeriodStart`, `ProviderName`.
    Focus,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::LegacyCur, Format::Cur2, Format::Focus];

    pub fn label(self) -> &'static str {
        match self {
            Format::LegacyCur => "legacy CUR",
            Format::Cur2 => "CUR 2.0",
            Format::Focus => "FOCUS",
        }
    }

    /// The usage start column, then the cost column: what detection looks for.
    pub fn required_columns(self) -> [&'static str; 2] {
        match self {
            Format::LegacyCur => ["lineItem/UsageStartDate", "lineItem/UnblendedCost"],
            Format::Cur2 => ["line_item_usage_start_date", "line_item_unblended_cost"],
            Format::Focus => ["ChargePeriodStart", "BilledCost"],
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The format of a file from its header row. The first format whose required columns are all
/// present wins; a header that is none of them is refused with what each format lacked.
pub fn detect_format(header: &[String]) -> Result<Format, ImportError> {
    let index = HeaderIndex::new(header);
    let mut missing = Vec::new();
    for format in Format::ALL {
        let lacked: Vec<&'static str> = format
            .required_columns()
            .into_iter()
            .filter(|c| index.get(c).is_none())
            .collect();
        if lacked.is_empty() {
            return Ok(format);
        }
        missing.push((format, lacked));
    }
    Err(ImportError::UnknownFormat(MissingColumns {
        missing,
        found: header
            .iter()
            .take(8)
            .map(|h| clean(h).to_string())
            .collect(),
    }))
}

fn clean(name: &str) -> &str {
    name.trim_start_matches('\u{feff}').trim()
}

struct HeaderIndex {
    by_name: HashMap<String, usize>,
}

impl HeaderIndex {
    fn new(header: &[String]) -> Self {
        let mut by_name = HashMap::with_capacity(header.len());
        for (i, name) in header.iter().enumerate() {
            // The first of two same-named columns wins, as it would in a spreadsheet lookup.
            by_name.entry(clean(name).to_ascii_lowercase()).or_insert(i);
        }
        Self { by_name }
    }

    fn get(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    fn first_of(&self, names: &[&str]) -> Option<usize> {
        names.iter().find_map(|n| self.get(n))
    }

    fn all_of(&self, names: &[&str]) -> Vec<Source> {
        names
            .iter()
            .filter_map(|n| self.get(n))
            .map(Source::Column)
            .collect()
    }
}

/// Where one value of a row is read from.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    Column(usize),
    /// A key of a CUR 2.0 map column (`product['product_name']`).
    MapKey(usize, &'static str),
}

/// How amortized cost is derived. See the crate documentation for the rule.
#[derive(Clone, Debug, Default)]
pub(crate) struct CurAmortization {
    pub ri_effective_cost: Option<usize>,
    pub sp_effective_cost: Option<usize>,
    pub ri_arn: Option<usize>,
    pub ri_unused_upfront: Option<usize>,
    pub ri_unused_recurring: Option<usize>,
    pub sp_total_commitment: Option<usize>,
    pub sp_used_commitment: Option<usize>,
}

#[derive(Clone, Debug)]
pub(crate) enum Amortization {
    Cur(CurAmortization),
    /// FOCUS `EffectiveCost`; without the column, amortized = billed.
    Focus(Option<usize>),
}

#[derive(Clone, Debug)]
pub(crate) enum TagSource {
    None,
    /// One column per tag (`resourceTags/user:team`, `resource_tags_user_team`): (column, key).
    Columns(Vec<(usize, String)>),
    /// A JSON object (FOCUS `Tags`, CUR 2.0 `resource_tags` map).
    Map(usize),
}

/// The resolved column positions for one header.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub format: Format,
    pub names: Vec<String>,
    pub start: usize,
    pub unblended: usize,
    pub account: Vec<Source>,
    pub service: Vec<Source>,
    pub region: Vec<Source>,
    /// Fallback for region: the availability zone with its letter stripped.
    pub availability_zone: Option<usize>,
    pub usage_type: Vec<Source>,
    pub resource_id: Vec<Source>,
    pub line_item_type: Vec<Source>,
    pub usage_amount: Option<usize>,
    pub unit: Option<usize>,
    pub currency: Option<usize>,
    pub amortization: Amortization,
    /// FOCUS only: rows of other providers are skipped.
    pub provider: Option<usize>,
    pub tags: TagSource,
}

impl Layout {
    pub(crate) fn new(header: &[String]) -> Result<Layout, ImportError> {
        let format = detect_format(header)?;
        let ix = HeaderIndex::new(header);
        let names: Vec<String> = header.iter().map(|h| clean(h).to_string()).collect();
        let need = |name: &str| {
            ix.get(name)
                .expect("detect_format checked the required columns")
        };
        let [start, unblended] = format.required_columns().map(need);
        let layout = match format {
            Format::LegacyCur => Layout {
                format,
                start,
                unblended,
                account: ix.all_of(&["lineItem/UsageAccountId", "bill/PayerAccountId"]),
                service: ix.all_of(&["product/ProductName", "lineItem/ProductCode"]),
                region: ix.all_of(&["product/regionCode", "product/region"]),
                availability_zone: ix.get("lineItem/AvailabilityZone"),
                usage_type: ix.all_of(&["lineItem/UsageType"]),
                resource_id: ix.all_of(&["lineItem/ResourceId"]),
                line_item_type: ix.all_of(&["lineItem/LineItemType"]),
                usage_amount: ix.get("lineItem/UsageAmount"),
                unit: ix.get("pricing/unit"),
                currency: ix.get("lineItem/CurrencyCode"),
                amortization: Amortization::Cur(CurAmortization {
                    ri_effective_cost: ix.get("reservation/EffectiveCost"),
                    sp_effective_cost: ix.get("savingsPlan/SavingsPlanEffectiveCost"),
                    ri_arn: ix.get("reservation/ReservationARN"),
                    ri_unused_upfront: ix
                        .get("reservation/UnusedAmortizedUpfrontFeeForBillingPeriod"),
                    ri_unused_recurring: ix.get("reservation/UnusedRecurringFee"),
                    sp_total_commitment: ix.get("savingsPlan/TotalCommitmentToDate"),
                    sp_used_commitment: ix.get("savingsPlan/UsedCommitment"),
                }),
                provider: None,
                tags: prefixed_tags(&names, "resourceTags/"),
                names,
            },
            Format::Cur2 => {
                let product_map = ix.get("product");
                let mut service = ix.all_of(&["product_product_name"]);
                let mut region = ix.all_of(&["product_region_code", "product_region"]);
                if let Some(map) = product_map {
                    service.push(Source::MapKey(map, "product_name"));
                    region.push(Source::MapKey(map, "region_code"));
                    region.push(Source::MapKey(map, "region"));
                }
                service.extend(ix.all_of(&["line_item_product_code"]));
                Layout {
                    format,
                    start,
                    unblended,
                    account: ix.all_of(&["line_item_usage_account_id", "bill_payer_account_id"]),
                    service,
                    region,
                    availability_zone: ix.get("line_item_availability_zone"),
                    usage_type: ix.all_of(&["line_item_usage_type"]),
                    resource_id: ix.all_of(&["line_item_resource_id"]),
                    line_item_type: ix.all_of(&["line_item_line_item_type"]),
                    usage_amount: ix.get("line_item_usage_amount"),
                    unit: ix.first_of(&["pricing_unit", "product_pricing_unit"]),
                    currency: ix.get("line_item_currency_code"),
                    amortization: Amortization::Cur(CurAmortization {
                        ri_effective_cost: ix.get("reservation_effective_cost"),
                        sp_effective_cost: ix.get("savings_plan_savings_plan_effective_cost"),
                        ri_arn: ix.get("reservation_reservation_a_r_n"),
                        ri_unused_upfront: ix
                            .get("reservation_unused_amortized_upfront_fee_for_billing_period"),
                        ri_unused_recurring: ix.get("reservation_unused_recurring_fee"),
                        sp_total_commitment: ix.get("savings_plan_total_commitment_to_date"),
                        sp_used_commitment: ix.get("savings_plan_used_commitment"),
                    }),
                    provider: None,
                    tags: match ix.get("resource_tags") {
                        Some(map) => TagSource::Map(map),
                        None => prefixed_tags(&names, "resource_tags_"),
                    },
                    names,
                }
            }
            Format::Focus => Layout {
                format,
                start,
                unblended,
                account: ix.all_of(&["SubAccountId", "BillingAccountId"]),
                service: ix.all_of(&["ServiceName", "x_ServiceCode"]),
                region: ix.all_of(&["RegionId"]),
                availability_zone: ix.get("AvailabilityZone"),
                // FOCUS 1.x has no usage type; AWS's FOCUS export adds it as an extension column.
                usage_type: ix.all_of(&["x_UsageType"]),
                resource_id: ix.all_of(&["ResourceId"]),
                line_item_type: ix.all_of(&["ChargeCategory"]),
                usage_amount: ix.get("ConsumedQuantity"),
                unit: ix.get("ConsumedUnit"),
                currency: ix.get("BillingCurrency"),
                amortization: Amortization::Focus(ix.get("EffectiveCost")),
                provider: ix.get("ProviderName"),
                tags: ix.get("Tags").map_or(TagSource::None, TagSource::Map),
                names,
            },
        };
        Ok(layout)
    }

    pub(crate) fn column_name(&self, index: usize) -> String {
        self.names
            .get(index)
            .cloned()
            .unwrap_or_else(|| format!("#{}", index + 1))
    }
}

fn prefixed_tags(names: &[String], prefix: &str) -> TagSource {
    let columns: Vec<(usize, String)> = names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let head = name.get(..prefix.len())?;
            let key = name.get(prefix.len()..)?;
            (head.eq_ignore_ascii_case(prefix) && !key.is_empty()).then(|| (i, key.to_string()))
        })
        .collect();
    if columns.is_empty() {
        TagSource::None
    } else {
        TagSource::Columns(columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cols: &[&str]) -> Vec<String> {
        cols.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn detects_each_format_case_insensitively_and_through_a_bom() {
        let legacy = header(&[
            "\u{feff}identity/LineItemId",
            "lineItem/UsageStartDate",
            "lineItem/UnblendedCost",
        ]);
        assert_eq!(detect_format(&legacy).unwrap(), Format::LegacyCur);
        let athena = header(&["lineitem/usagestartdate", "LINEITEM/UNBLENDEDCOST"]);
        assert_eq!(detect_format(&athena).unwrap(), Format::LegacyCur);
        let cur2 = header(&[
            "line_item_usage_start_date",
            "line_item_unblended_cost",
            "product",
        ]);
        assert_eq!(detect_format(&cur2).unwrap(), Format::Cur2);
        let focus = header(&["BilledCost", " ChargePeriodStart "]);
        assert_eq!(detect_format(&focus).unwrap(), Format::Focus);
    }

    #[test]
    fn refuses_a_header_with_what_each_format_lacked() {
        let err = detect_format(&header(&["lineItem/UsageStartDate", "cost"])).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("not a CUR or FOCUS export: expected"),
            "{message}"
        );
        assert!(
            message.contains("lineItem/UnblendedCost for legacy CUR"),
            "{message}"
        );
        assert!(
            message.contains("ChargePeriodStart, BilledCost for FOCUS"),
            "{message}"
        );
        assert!(
            message.contains("first columns are: lineItem/UsageStartDate, cost"),
            "{message}"
        );
    }

    #[test]
    fn tag_columns_keep_their_key_after_the_prefix() {
        let names = header(&[
            "resourceTags/user:team",
            "resourceTags/",
            "lineItem/ResourceId",
        ]);
        match prefixed_tags(&names, "resourceTags/") {
            TagSource::Columns(cols) => assert_eq!(cols, vec![(0, "user:team".to_string())]),
            other => panic!("{other:?}"),
        }
    }
}
