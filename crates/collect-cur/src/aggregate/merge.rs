//! The threads' sums merged in key order into records, on several threads.

use super::{Aggregator, Errors, Interner, Place, Sums, overflow};
use crate::error::{ImportError, money};
use chrono::NaiveDate;
use cloudspend_core::records::{CostRecord, CostSource};
use rust_decimal::Decimal;

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
            if let Err(e) = sums.combine(later.sums, true, &|r| name(*r)) {
                errors.keep(e);
            }
        }
        // After an error, keep merging to find the earliest one, but build nothing more.
        if errors.any() {
            continue;
        }
        let (day, dims) = key;
        match record(day, dims.map(name), &sums, &|r| name(*r)) {
            Ok(record) => records.push(record),
            Err(e) => errors.keep(e),
        }
    }
    (records, errors)
}

/// The record of one key: `dims` are account, service, region, usage type, resource id and line
/// item type. Shared with the merge of spilled runs, whose sums hold strings.
pub(super) fn record<S>(
    day: NaiveDate,
    dims: [String; 6],
    sums: &Sums<S>,
    name: &dyn Fn(&S) -> String,
) -> Result<CostRecord, ImportError> {
    let [
        account_id,
        service,
        region,
        usage_type,
        resource_id,
        line_item_type,
    ] = dims;
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
        currency: name(&sums.currency),
        // A CUR line item is the bill itself, not Cost Explorer's provisional estimate.
        estimated: false,
    })
}
