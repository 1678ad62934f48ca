//! The per-key running sums. Memory grows with the number of distinct keys (day x account x
//! service x region x usage type x resource x line item type), never with the number of rows:
//! every string is interned once, and a key is a date plus six small integers. A part that
//! reaches the import's spill size is written to a sorted run on disk and starts afresh
//! (`spill.rs`).
//!
//! Each parse thread fills its own [`Aggregator`]; [`merge_into_records`] merges them in key
//! order as it builds the records, and [`Aggregator::absorb`] adds a finished file to the files
//! before it. Exact decimal sums do not depend on the order they are added in (cost lines need
//! far fewer than `Decimal`'s 28 digits), so the merged sums are those of a serial pass. What
//! does depend on order is the currency check, which is why each key remembers where it was
//! first seen.

use crate::error::ImportError;
use crate::import::error_line;
use chrono::NaiveDate;
use rust_decimal::Decimal;

/// Every row hashes its key and up to eight cells: SipHash's DoS resistance costs a tenth of
/// the import there, and foldhash's seeded hasher keeps the protection that matters.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::collections::hash_map::Entry;

mod merge;
pub(crate) use merge::merge_into_records;
mod spill;
pub(crate) use spill::{Runs, SpilledRecords};

/// Where a row is. The file (its position among the files imported together) and the block
/// order rows of different files and blocks (a file with bare `\r` line ends has every row on
/// line 1); the line is what an error names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Place {
    pub file: u32,
    pub block: u64,
    pub line: u64,
}

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

/// One key's running sums. `S` names a string: an interned id while a part is in memory, the
/// string itself in a run spilled to disk.
#[derive(Clone, Copy)]
struct Sums<S = u32> {
    /// Where this aggregator first saw the key: the merge needs it to tell which currency
    /// came first, and which line to name when another part of the file has another one.
    first: Place,
    unblended: Decimal,
    amortized: Decimal,
    usage_amount: Option<Decimal>,
    /// Usage of different units (requests and GB-hours under one key) has no meaningful sum.
    unit: Option<S>,
    mixed_units: bool,
    currency: S,
}

impl<S> Sums<S> {
    /// These sums with their strings (currency, unit) given another way.
    fn with_strings<T>(&self, currency: T, unit: Option<T>) -> Sums<T> {
        Sums {
            first: self.first,
            unblended: self.unblended,
            amortized: self.amortized,
            usage_amount: self.usage_amount,
            unit,
            mixed_units: self.mixed_units,
            currency,
        }
    }
}

impl<S: Clone + PartialEq> Sums<S> {
    /// Adds another part's sums for the same key; on a conflict the sums are left as good as
    /// they can be (the import fails anyway) and the error names the later part's first line.
    fn combine(
        &mut self,
        theirs: Sums<S>,
        theirs_later: bool,
        name: &dyn Fn(&S) -> String,
    ) -> Result<(), ImportError> {
        let (earlier, later) = if theirs_later || self.first <= theirs.first {
            (&*self, &theirs)
        } else {
            (&theirs, &*self)
        };
        let line = later.first.line;
        let mixed_currency =
            (earlier.currency != later.currency).then(|| ImportError::MixedCurrency {
                line,
                expected: name(&earlier.currency),
                found: name(&later.currency),
            });
        let (first, currency) = (earlier.first, earlier.currency.clone());
        let unit = earlier.unit.clone().or_else(|| later.unit.clone());
        let mixed_units = self.mixed_units
            || theirs.mixed_units
            || matches!((&self.unit, &theirs.unit), (Some(a), Some(b)) if a != b);
        (self.first, self.currency, self.unit, self.mixed_units) =
            (first, currency, unit, mixed_units);
        if let Some(error) = mixed_currency {
            return Err(error);
        }
        self.unblended = self
            .unblended
            .checked_add(theirs.unblended)
            .ok_or_else(|| overflow(line, "unblended cost"))?;
        self.amortized = self
            .amortized
            .checked_add(theirs.amortized)
            .ok_or_else(|| overflow(line, "amortized cost"))?;
        self.usage_amount = match (self.usage_amount, theirs.usage_amount) {
            (Some(a), Some(b)) => Some(
                a.checked_add(b)
                    .ok_or_else(|| overflow(line, "usage amount"))?,
            ),
            (a, b) => a.or(b),
        };
        Ok(())
    }
}

fn overflow(line: u64, column: &str) -> ImportError {
    ImportError::Overflow {
        line,
        column: column.to_string(),
    }
}

#[derive(Default)]
pub(crate) struct Aggregator {
    strings: Interner,
    sums: HashMap<Key, Sums>,
    pub total_unblended: Decimal,
    pub total_amortized: Decimal,
    /// The latest line added, named if the totals only overflow when parts are merged.
    last_line: u64,
}

impl Aggregator {
    /// Distinct keys held.
    pub(crate) fn len(&self) -> usize {
        self.sums.len()
    }

    pub(crate) fn add(&mut self, place: Place, row: RowValues<'_>) -> Result<(), ImportError> {
        let line = place.line;
        let too_big = |column: &str| overflow(line, column);
        self.last_line = self.last_line.max(line);
        self.total_unblended = self
            .total_unblended
            .checked_add(row.unblended)
            .ok_or_else(|| too_big("unblended cost"))?;
        self.total_amortized = self
            .total_amortized
            .checked_add(row.amortized)
            .ok_or_else(|| too_big("amortized cost"))?;

        let dims = row.dims.map(|d| self.strings.intern(d));
        let currency = self.strings.intern(row.currency);
        let unit = (!row.unit.is_empty()).then(|| self.strings.intern(row.unit));
        let key = Key { day: row.day, dims };
        let Some(sums) = self.sums.get_mut(&key) else {
            self.sums.insert(
                key,
                Sums {
                    first: place,
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
            .ok_or_else(|| too_big("unblended cost"))?;
        sums.amortized = sums
            .amortized
            .checked_add(row.amortized)
            .ok_or_else(|| too_big("amortized cost"))?;
        sums.usage_amount = match (sums.usage_amount, row.usage_amount) {
            (Some(a), Some(b)) => Some(a.checked_add(b).ok_or_else(|| too_big("usage amount"))?),
            (a, b) => a.or(b),
        };
        match (sums.unit, unit) {
            (Some(a), Some(b)) if a != b => sums.mixed_units = true,
            (None, Some(b)) => sums.unit = Some(b),
            _ => {}
        }
        Ok(())
    }

    /// Adds another part's sums to these. `other_is_later`: all of `other`'s lines come after
    /// this one's (a later file); otherwise the two parts' lines interleave (blocks of one file)
    /// and each key's first line decides which currency came first.
    ///
    /// Every part is merged even after a conflict, so the error returned is the one with the
    /// earliest line: a serial import would have stopped there (or earlier, at an error the
    /// caller already holds).
    pub(crate) fn absorb(
        &mut self,
        other: Aggregator,
        other_is_later: bool,
    ) -> Result<(), ImportError> {
        let mut errors = Errors::default();
        let line = self.last_line.max(other.last_line);
        self.last_line = line;
        match self.total_unblended.checked_add(other.total_unblended) {
            Some(total) => self.total_unblended = total,
            None => errors.keep(overflow(line, "unblended cost")),
        }
        match self.total_amortized.checked_add(other.total_amortized) {
            Some(total) => self.total_amortized = total,
            None => errors.keep(overflow(line, "amortized cost")),
        }
        let Aggregator { strings, sums, .. } = self;
        let ids: Vec<u32> = other
            .strings
            .names
            .iter()
            .map(|n| strings.intern(n))
            .collect();
        let id = |i: u32| ids[i as usize];
        sums.reserve(other.sums.len());
        for (key, theirs) in other.sums {
            let key = Key {
                day: key.day,
                dims: key.dims.map(id),
            };
            let theirs = Sums {
                currency: id(theirs.currency),
                unit: theirs.unit.map(id),
                ..theirs
            };
            match sums.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(theirs);
                }
                Entry::Occupied(slot) => {
                    let name = |id: &u32| strings.name(*id).to_string();
                    if let Err(e) = slot.into_mut().combine(theirs, other_is_later, &name) {
                        errors.keep(e);
                    }
                }
            }
        }
        errors.into_result()
    }
}

/// The error to report from a merge: the row error with the earliest line (a serial import
/// would have stopped there), else the first amount out of range in key order.
#[derive(Default)]
struct Errors {
    row: Option<ImportError>,
    out_of_range: Option<ImportError>,
}

impl Errors {
    fn keep(&mut self, error: ImportError) {
        match error_line(&error) {
            Some(line) => {
                if self
                    .row
                    .as_ref()
                    .and_then(error_line)
                    .is_none_or(|l| line < l)
                {
                    self.row = Some(error);
                }
            }
            None => {
                self.out_of_range.get_or_insert(error);
            }
        }
    }

    fn any(&self) -> bool {
        self.row.is_some() || self.out_of_range.is_some()
    }

    /// Those of a later key range.
    fn absorb(&mut self, later: Errors) {
        if let Some(e) = later.row {
            self.keep(e);
        }
        if let Some(e) = later.out_of_range {
            self.out_of_range.get_or_insert(e);
        }
    }

    fn into_result(self) -> Result<(), ImportError> {
        match self.row.or(self.out_of_range) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}
