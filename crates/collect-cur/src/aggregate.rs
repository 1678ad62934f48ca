//! The per-key running sums. Memory grows with the number of distinct keys (day x account x
//! service x region x usage type x resource x line item type), never with the number of rows:
//! every string is interned once, and a key is a date plus six small integers.
//!
//! Each parse thread fills its own [`Aggregator`]; [`Aggregator::absorb`] merges them. Exact
//! decimal sums do not depend on the order they are added in (cost lines need far fewer than
//! `Decimal`'s 28 digits), so the merged sums are those of a serial pass. What does depend on
//! order is the currency check, which is why each key remembers the line it was first seen on.

use crate::error::ImportError;
use crate::import::error_line;
use chrono::NaiveDate;
use cloudspend_core::Money;
use cloudspend_core::records::{CostRecord, CostSource};
use rust_decimal::Decimal;

/// Every row hashes its key and up to eight cells: SipHash's DoS resistance costs a tenth of
/// the import there, and foldhash's seeded hasher keeps the protection that matters.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::collections::hash_map::Entry;

/// Where a row is. The block orders rows of different blocks (a file with bare `\r` line ends
/// has every row on line 1); the line is what an error names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Place {
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

#[derive(Clone, Copy)]
struct Sums {
    /// Where this aggregator first saw the key: the merge needs it to tell which currency
    /// came first, and which line to name when another part of the file has another one.
    first: Place,
    unblended: Decimal,
    amortized: Decimal,
    usage_amount: Option<Decimal>,
    /// Usage of different units (requests and GB-hours under one key) has no meaningful sum.
    unit: Option<u32>,
    mixed_units: bool,
    currency: u32,
}

impl Sums {
    /// Adds another part's sums for the same key; on a conflict the sums are left as good as
    /// they can be (the import fails anyway) and the error names the later part's first line.
    fn combine(
        &mut self,
        theirs: Sums,
        theirs_later: bool,
        name: &dyn Fn(u32) -> String,
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
                expected: name(earlier.currency),
                found: name(later.currency),
            });
        let (first, currency) = (earlier.first, earlier.currency);
        let unit = earlier.unit.or(later.unit);
        let mixed_units = self.mixed_units
            || theirs.mixed_units
            || matches!((self.unit, theirs.unit), (Some(a), Some(b)) if a != b);
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
                    let name = |id: u32| strings.name(id).to_string();
                    if let Err(e) = slot.into_mut().combine(theirs, other_is_later, &name) {
                        errors.keep(e);
                    }
                }
            }
        }
        errors.into_result()
    }
}

/// What the parts of an import add up to.
pub(crate) struct Merged {
    /// One row per key, in key order, so two imports of one file are identical.
    pub records: Vec<CostRecord>,
    pub total_unblended: Decimal,
    pub total_amortized: Decimal,
}

/// A key with its strings replaced by their ranks, so that keys order as their strings do:
/// sorting a million rows by six strings each costs more than the parse, while there are few
/// distinct strings to rank.
#[derive(Clone, Copy)]
struct Ranked {
    key: (NaiveDate, [u32; 6]),
    /// Which of equal keys from different parts came first: the earlier files, then by
    /// where each part first saw the key.
    order: (bool, Place),
    /// Currency and unit are ranks too.
    sums: Sums,
}

/// Sums every part per key and builds the records, on `threads` threads: each part is ranked
/// and sorted on a thread of its own, then each thread merges one range of keys from all the
/// sorted parts. `earlier` holds the files before the last, whose lines all come first;
/// `parts` are the last file's, whose lines interleave. A currency that differs between
/// parts is found here, named by the line of the last file where it first differs.
pub(crate) fn merge_into_records(
    earlier: Option<Aggregator>,
    parts: Vec<Aggregator>,
    threads: usize,
) -> Result<Merged, ImportError> {
    let earlier_count = usize::from(earlier.is_some());
    let parts: Vec<Aggregator> = earlier.into_iter().chain(parts).collect();
    let mut errors = Errors::default();

    let mut total_unblended = Decimal::ZERO;
    let mut total_amortized = Decimal::ZERO;
    let last_line = parts.iter().map(|p| p.last_line).max().unwrap_or(0);
    for part in &parts {
        match total_unblended.checked_add(part.total_unblended) {
            Some(total) => total_unblended = total,
            None => errors.keep(overflow(last_line, "unblended cost")),
        }
        match total_amortized.checked_add(part.total_amortized) {
            Some(total) => total_amortized = total,
            None => errors.keep(overflow(last_line, "amortized cost")),
        }
    }

    let mut strings = Interner::default();
    let ids: Vec<Vec<u32>> = parts
        .iter()
        .map(|p| p.strings.names.iter().map(|n| strings.intern(n)).collect())
        .collect();
    let rank = strings.ranks();
    let mut names = vec![""; rank.len()];
    for (id, &r) in rank.iter().enumerate() {
        names[r as usize] = strings.name(id as u32);
    }
    let ranks: Vec<Vec<u32>> = ids
        .iter()
        .map(|ids| ids.iter().map(|&id| rank[id as usize]).collect())
        .collect();

    let runs: Vec<Vec<Ranked>> = std::thread::scope(|scope| {
        let sorting: Vec<_> = parts
            .into_iter()
            .zip(&ranks)
            .enumerate()
            .map(|(i, (part, ranks))| scope.spawn(move || part.ranked(ranks, i < earlier_count)))
            .collect();
        sorting.into_iter().map(join).collect()
    });

    // Key ranges of about equal size, cut at keys of the longest part.
    let threads = threads.max(1);
    let longest = runs
        .iter()
        .max_by_key(|run| run.len())
        .map_or(&[][..], |run| &run[..]);
    let pivots: Vec<_> = (1..threads)
        .filter_map(|i| longest.get(longest.len() * i / threads).map(|r| r.key))
        .collect();
    let ranges: Vec<Vec<&[Ranked]>> = (0..=pivots.len())
        .map(|i| {
            runs.iter()
                .map(|run| {
                    let from = i
                        .checked_sub(1)
                        .map_or(0, |p| run.partition_point(|r| r.key < pivots[p]));
                    let to = pivots
                        .get(i)
                        .map_or(run.len(), |pivot| run.partition_point(|r| r.key < *pivot));
                    &run[from..to]
                })
                .collect()
        })
        .collect();
    let built: Vec<(Vec<CostRecord>, Errors)> = std::thread::scope(|scope| {
        let building: Vec<_> = ranges
            .iter()
            .enumerate()
            .map(|(i, range)| {
                // The first range's records are what the others are appended to: room for
                // all of them now saves copying them all again when the vector would grow.
                let capacity = if i == 0 {
                    runs.iter().map(Vec::len).sum()
                } else {
                    range.iter().map(|run| run.len()).sum()
                };
                let names = &names;
                scope.spawn(move || build(range, names, capacity))
            })
            .collect();
        building.into_iter().map(join).collect()
    });

    // Freed before the records are put together, which is when memory peaks.
    drop(ranges);
    drop(runs);
    let mut records = Vec::new();
    for (mut part, part_errors) in built {
        errors.absorb(part_errors);
        if records.is_empty() {
            records = part;
        } else {
            records.append(&mut part);
        }
    }
    errors.into_result()?;
    Ok(Merged {
        records,
        total_unblended,
        total_amortized,
    })
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

impl Aggregator {
    fn ranked(self, ranks: &[u32], earlier: bool) -> Vec<Ranked> {
        let rank = |id: u32| ranks[id as usize];
        let mut run: Vec<Ranked> = self
            .sums
            .into_iter()
            .map(|(key, sums)| Ranked {
                key: (key.day, key.dims.map(rank)),
                order: (!earlier, sums.first),
                sums: Sums {
                    currency: rank(sums.currency),
                    unit: sums.unit.map(rank),
                    ..sums
                },
            })
            .collect();
        // Keys are unique within a part.
        run.sort_unstable_by_key(|r| r.key);
        run
    }
}

/// Merges sorted runs of keys, summing equal keys, into records.
fn build(runs: &[&[Ranked]], names: &[&str], capacity: usize) -> (Vec<CostRecord>, Errors) {
    let name = |rank: u32| names.get(rank as usize).copied().unwrap_or("").to_string();
    let mut records = Vec::with_capacity(capacity);
    let mut errors = Errors::default();
    let mut heads = vec![0; runs.len()];
    let mut group: Vec<Ranked> = Vec::with_capacity(runs.len());
    while let Some(key) = runs
        .iter()
        .zip(&heads)
        .filter_map(|(run, &head)| run.get(head).map(|r| r.key))
        .min()
    {
        group.clear();
        for (run, head) in runs.iter().zip(&mut heads) {
            if let Some(r) = run.get(*head).filter(|r| r.key == key) {
                group.push(*r);
                *head += 1;
            }
        }
        group.sort_unstable_by_key(|r| r.order);
        let mut sums = group[0].sums;
        for later in &group[1..] {
            if let Err(e) = sums.combine(later.sums, true, &name) {
                errors.keep(e);
            }
        }
        // After an error, keep merging to find the earliest one, but build nothing more.
        if errors.any() {
            continue;
        }
        match record(key, &sums, &name) {
            Ok(record) => records.push(record),
            Err(e) => errors.keep(e),
        }
    }
    (records, errors)
}

fn record(
    (day, dims): (NaiveDate, [u32; 6]),
    sums: &Sums,
    name: &dyn Fn(u32) -> String,
) -> Result<CostRecord, ImportError> {
    let money = |value: Decimal, what: &str| {
        Money::from_decimal(value).map_err(|_| ImportError::OutOfRange {
            what: what.to_string(),
            value: value.to_string(),
        })
    };
    let [
        account_id,
        service,
        region,
        usage_type,
        resource_id,
        line_item_type,
    ] = dims.map(name);
    Ok(CostRecord {
        day,
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
    })
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
