//! The per-key running sums. Memory grows with the number of distinct keys (day x account x
//! service x region x usage type x resource x line item type), never with the number of rows:
//! every string is interned once, and a key is a date plus six small integers.

use crate::error::ImportError;
use chrono::NaiveDate;
use cloudspend_core::Money;
use cloudspend_core::records::{CostRecord, CostSource};
use rust_decimal::Decimal;

/// Every row hashes its key and up to eight cells: SipHash's DoS resistance costs a tenth of
/// the import there, and foldhash's seeded hasher keeps the protection that matters.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// One row's contribution, already parsed.
pub(crate) struct RowValues<'a> {
    pub day: NaiveDate,
    /// account, service, region, usage type, resource id, line item type
    pub dims: [&'a str; 6],
    pub unblended: Decimal,
    pub amortized: Decimal,
    pub usage_amount: Option<Decimal>,
    pub unit: &'a str,
    pub currency: &'a str,
}

#[derive(Default)]
struct Interner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |s| s)
    }

    /// Each string's position in byte order, indexed by its id.
    fn ranks(&self) -> Vec<u32> {
        let mut by_name: Vec<u32> = (0..self.names.len() as u32).collect();
        by_name.sort_unstable_by(|&a, &b| self.names[a as usize].cmp(&self.names[b as usize]));
        let mut rank = vec![0; self.names.len()];
        for (position, id) in by_name.into_iter().enumerate() {
            rank[id as usize] = position as u32;
        }
        rank
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    day: NaiveDate,
    dims: [u32; 6],
}

struct Sums {
    unblended: Decimal,
    amortized: Decimal,
    usage_amount: Option<Decimal>,
    /// Usage of different units (requests and GB-hours under one key) has no meaningful sum.
    unit: Option<u32>,
    mixed_units: bool,
    currency: u32,
}

#[derive(Default)]
pub(crate) struct Aggregator {
    strings: Interner,
    sums: HashMap<Key, Sums>,
    pub total_unblended: Decimal,
    pub total_amortized: Decimal,
}

impl Aggregator {
    pub(crate) fn add(&mut self, line: u64, row: RowValues<'_>) -> Result<(), ImportError> {
        let overflow = |column: &str| ImportError::Overflow {
            line,
            column: column.to_string(),
        };
        self.total_unblended = self
            .total_unblended
            .checked_add(row.unblended)
            .ok_or_else(|| overflow("unblended cost"))?;
        self.total_amortized = self
            .total_amortized
            .checked_add(row.amortized)
            .ok_or_else(|| overflow("amortized cost"))?;

        let dims = row.dims.map(|d| self.strings.intern(d));
        let currency = self.strings.intern(row.currency);
        let unit = (!row.unit.is_empty()).then(|| self.strings.intern(row.unit));
        let key = Key { day: row.day, dims };
        let Some(sums) = self.sums.get_mut(&key) else {
            self.sums.insert(
                key,
                Sums {
                    unblended: row.unblended,
                    amortized: row.amortized,
                    usage_amount: row.usage_amount,
                    unit,
                    mixed_units: false,
                    currency,
                },
            );
            return Ok(());
        };
        if sums.currency != currency {
            return Err(ImportError::MixedCurrency {
                line,
                expected: self.strings.name(sums.currency).to_string(),
                found: row.currency.to_string(),
            });
        }
        sums.unblended = sums
            .unblended
            .checked_add(row.unblended)
            .ok_or_else(|| overflow("unblended cost"))?;
        sums.amortized = sums
            .amortized
            .checked_add(row.amortized)
            .ok_or_else(|| overflow("amortized cost"))?;
        sums.usage_amount = match (sums.usage_amount, row.usage_amount) {
            (Some(a), Some(b)) => Some(a.checked_add(b).ok_or_else(|| overflow("usage amount"))?),
            (a, b) => a.or(b),
        };
        match (sums.unit, unit) {
            (Some(a), Some(b)) if a != b => sums.mixed_units = true,
            (None, Some(b)) => sums.unit = Some(b),
            _ => {}
        }
        Ok(())
    }

    /// The aggregated rows in key order, so two imports of one file are identical.
    ///
    /// The order is that of the key's strings, but sorting a million rows by six strings each
    /// costs more than the parse: the strings are ranked once (there are few distinct ones) and
    /// the rows sorted by their ranks, which gives the same order.
    pub(crate) fn into_records(self) -> Result<Vec<CostRecord>, ImportError> {
        let rank = self.strings.ranks();
        let name = |id: u32| self.strings.name(id).to_string();
        let money = |value: Decimal, what: &str| {
            Money::from_decimal(value).map_err(|_| ImportError::OutOfRange {
                what: what.to_string(),
                value: value.to_string(),
            })
        };
        let mut entries: Vec<((NaiveDate, [u32; 6]), Key, Sums)> = self
            .sums
            .into_iter()
            .map(|(key, sums)| ((key.day, key.dims.map(|id| rank[id as usize])), key, sums))
            .collect();
        entries.sort_unstable_by_key(|entry| entry.0);
        let mut records = Vec::with_capacity(entries.len());
        for (_, key, sums) in entries {
            let [
                account_id,
                service,
                region,
                usage_type,
                resource_id,
                line_item_type,
            ] = key.dims.map(name);
            records.push(CostRecord {
                day: key.day,
                source: CostSource::Cur,
                account_id,
                service,
                region,
                usage_type,
                resource_id,
                line_item_type,
                unblended: money(sums.unblended, "unblended cost")?,
                amortized: money(sums.amortized, "amortized cost")?,
                usage_amount: if sums.mixed_units {
                    None
                } else {
                    sums.usage_amount.map(|u| u.normalize().to_string())
                },
                currency: name(sums.currency),
                // A CUR line item is the bill itself, not Cost Explorer's provisional estimate.
                estimated: false,
            });
        }
        Ok(records)
    }
}
