//! Sums that outgrow memory. A part whose distinct keys reach `ImportOptions::spill_keys`
//! writes them, sorted by key, to a temporary file (a *run*) and starts afresh; at the end of the
//! import every part still in memory becomes a run too, and [`SpilledRecords`] merges the runs,
//! equal keys summed, into records in key order as they are read. Memory then holds at most
//! `spill_keys` keys per parse thread while parsing and one key per run while merging (runs are
//! merged 64 at a time), however many keys the export has. The runs take about 100 bytes per key on disk, in the temporary
//! folder (`TMPDIR`), and are gone when the import ends, however it ends: each file is unlinked
//! as soon as it is created.
//!
//! The records are those of the in-memory merge (`merge_into_records`), in the same order: keys
//! order by their strings either way, and equal keys are summed in the order their rows came.

use super::{Aggregator, Place, Sums, merge::record};
use crate::error::ImportError;
use chrono::{Datelike, NaiveDate};
use cloudspend_core::records::CostRecord;
use rust_decimal::Decimal;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

/// Run files are written and read through buffers of this size: large enough that the disk
/// sees big sequential transfers, small enough that a merge of dozens of runs stays small.
const BUFFER_BYTES: usize = 1 << 18;

/// The runs written so far, by any parse thread.
#[derive(Default)]
pub(crate) struct Runs {
    files: Mutex<Vec<File>>,
}

impl Runs {
    pub fn is_empty(&self) -> bool {
        self.files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_empty()
    }

    /// Writes the keys of `sums`, sorted, to a new run, and empties `sums` (its totals stay).
    pub fn spill(&self, sums: &mut Aggregator) -> Result<(), ImportError> {
        if sums.sums.is_empty() {
            return Ok(());
        }
        let file = write_run(sums).map_err(spill_error)?;
        // A poisoned lock means another thread panicked mid-push: its panic is what the import
        // reports, so the file list is still usable here.
        self.files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(file);
        Ok(())
    }

    /// The merge of every run. `paths` name the files imported together (by their index in
    /// [`Place::file`]), so that an error found in the merge names its file.
    pub fn into_records(self, paths: Option<&[String]>) -> Result<SpilledRecords, ImportError> {
        let mut files = self
            .files
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A huge export (tens of millions of keys) makes more runs than a process may hold
        // open: merge them a fan-in at a time into longer runs first.
        while files.len() > MAX_FAN_IN {
            let rest = files.split_off(MAX_FAN_IN);
            let merged = merge_runs(files).map_err(spill_error)?;
            files = rest;
            files.push(merged);
        }
        let mut merge = SpilledRecords::open(files).map_err(spill_error)?;
        merge.paths = paths.map(<[String]>::to_vec);
        Ok(merge)
    }
}

/// Runs merged at once: each holds an open file and a read buffer.
const MAX_FAN_IN: usize = 64;

/// One run with every key of `files`, in order, keys left unsummed: equal keys stay separate
/// records (in the order their rows came, as the heap pops them), and the final merge sums them
/// as it sums equal keys of different runs.
fn merge_runs(files: Vec<File>) -> io::Result<File> {
    let mut merge = SpilledRecords::open(files)?;
    let mut out = BufWriter::with_capacity(BUFFER_BYTES, anonymous_file()?);
    while let Some(Reverse(head)) = merge.heads.pop() {
        let r = &head.record;
        put_record(
            &mut out,
            r.day,
            r.dims.each_ref().map(String::as_str),
            &r.sums
                .with_strings(r.sums.currency.as_str(), r.sums.unit.as_deref()),
        )?;
        if let Some(record) = RunRecord::read(&mut merge.runs[head.run])? {
            merge.heads.push(Reverse(Head {
                record,
                run: head.run,
            }));
        }
    }
    out.into_inner().map_err(io::IntoInnerError::into_error)
}

fn spill_error(error: io::Error) -> ImportError {
    ImportError::Spill {
        folder: std::env::temp_dir().display().to_string(),
        source: error,
    }
}

/// A file in the temporary folder that is unlinked at once: it lives as long as the handle, so
/// nothing is left behind by an import that fails or is killed.
fn anonymous_file() -> io::Result<File> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let folder = std::env::temp_dir();
    loop {
        let name = format!(
            "cloudspend-import-{}-{}.run",
            std::process::id(),
            NEXT.fetch_add(1, AtomicOrdering::Relaxed)
        );
        let path = folder.join(name);
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The layout of a key in a run, all integers little-endian:
/// day (i32, days from the common era) | six dimension strings | currency | flags (u8: 1 = a
/// unit follows, 2 = a usage amount, 4 = mixed units) | [unit] | first place (file u32, block
/// u64, line u64) | unblended, amortized, [usage amount] (16-byte `Decimal::serialize`).
/// A string is its length (u32) and its UTF-8 bytes.
fn write_run(sums: &mut Aggregator) -> io::Result<File> {
    let ranks = sums.strings.ranks();
    let rank = |id: u32| ranks[id as usize];
    let mut keys: Vec<_> = sums.sums.drain().collect();
    // Strings rank in byte order, so this is the order of the strings themselves.
    keys.sort_unstable_by_key(|(key, _)| (key.day, key.dims.map(rank)));
    let mut out = BufWriter::with_capacity(BUFFER_BYTES, anonymous_file()?);
    let name = |id: u32| sums.strings.name(id);
    for (key, s) in &keys {
        let strings = s.with_strings(name(s.currency), s.unit.map(name));
        put_record(&mut out, key.day, key.dims.map(name), &strings)?;
    }
    drop(keys);
    // The table keeps its room for the next keys; the strings start afresh, so a part holds
    // only the strings of the keys it holds.
    sums.strings.ids.clear();
    sums.strings.names.clear();
    out.into_inner().map_err(io::IntoInnerError::into_error)
}

fn put_record(
    out: &mut impl Write,
    day: NaiveDate,
    dims: [&str; 6],
    s: &Sums<&str>,
) -> io::Result<()> {
    out.write_all(&day.num_days_from_ce().to_le_bytes())?;
    for dim in dims {
        put_str(out, dim)?;
    }
    put_str(out, s.currency)?;
    let flags = u8::from(s.unit.is_some())
        | u8::from(s.usage_amount.is_some()) << 1
        | u8::from(s.mixed_units) << 2;
    out.write_all(&[flags])?;
    if let Some(unit) = s.unit {
        put_str(out, unit)?;
    }
    out.write_all(&s.first.file.to_le_bytes())?;
    out.write_all(&s.first.block.to_le_bytes())?;
    out.write_all(&s.first.line.to_le_bytes())?;
    out.write_all(&s.unblended.serialize())?;
    out.write_all(&s.amortized.serialize())?;
    if let Some(usage) = s.usage_amount {
        out.write_all(&usage.serialize())?;
    }
    Ok(())
}

fn put_str(out: &mut impl Write, s: &str) -> io::Result<()> {
    let len = u32::try_from(s.len()).map_err(|_| io::Error::other("a cell over 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(s.as_bytes())
}

/// One key read back from a run. Its strings are read into the `String`s the record will own,
/// so a key costs no copies on its way to the store.
struct RunRecord {
    day: NaiveDate,
    dims: [String; 6],
    sums: Sums<String>,
}

impl RunRecord {
    fn key_cmp(&self, other: &RunRecord) -> Ordering {
        self.day
            .cmp(&other.day)
            .then_with(|| self.dims.cmp(&other.dims))
    }

    fn read(input: &mut BufReader<File>) -> io::Result<Option<RunRecord>> {
        if input.fill_buf()?.is_empty() {
            return Ok(None);
        }
        let day = i32::from_le_bytes(take(input)?);
        let day = NaiveDate::from_num_days_from_ce_opt(day)
            .ok_or_else(|| corrupt("a day out of range"))?;
        let mut dims: [String; 6] = Default::default();
        for dim in &mut dims {
            *dim = read_string(input)?;
        }
        let currency = read_string(input)?;
        let [flags] = take::<1>(input)?;
        let unit = if flags & 1 != 0 {
            Some(read_string(input)?)
        } else {
            None
        };
        let first = Place {
            file: u32::from_le_bytes(take(input)?),
            block: u64::from_le_bytes(take(input)?),
            line: u64::from_le_bytes(take(input)?),
        };
        let unblended = Decimal::deserialize(take(input)?);
        let amortized = Decimal::deserialize(take(input)?);
        let usage_amount = if flags & 2 != 0 {
            Some(Decimal::deserialize(take(input)?))
        } else {
            None
        };
        Ok(Some(RunRecord {
            day,
            dims,
            sums: Sums {
                first,
                unblended,
                amortized,
                usage_amount,
                unit,
                mixed_units: flags & 4 != 0,
                currency,
            },
        }))
    }
}

fn take<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
    let mut bytes = [0; N];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn read_string(input: &mut impl Read) -> io::Result<String> {
    let len = u32::from_le_bytes(take(input)?) as usize;
    let mut bytes = vec![0; len];
    input.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map_err(|_| corrupt("a string that is not UTF-8"))
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("run file damaged: {what}"),
    )
}

/// A run's next key, waiting its turn.
struct Head {
    record: RunRecord,
    run: usize,
}

impl Ord for Head {
    /// Key order, then equal keys in the order their rows came (earlier file, block, line).
    fn cmp(&self, other: &Self) -> Ordering {
        self.record
            .key_cmp(&other.record)
            .then_with(|| self.record.sums.first.cmp(&other.record.sums.first))
            .then_with(|| self.run.cmp(&other.run))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Head {}

/// The runs merged: one record per key, in key order, each read when it is asked for. After
/// the first error the merge goes on to the end without building records, so the error given
/// is the one a serial import would have met first (the earliest row), as in memory.
pub(crate) struct SpilledRecords {
    runs: Vec<BufReader<File>>,
    heads: BinaryHeap<Reverse<Head>>,
    paths: Option<Vec<String>>,
    done: bool,
}

impl SpilledRecords {
    /// The merge of `files`, each read from its start.
    fn open(files: Vec<File>) -> io::Result<SpilledRecords> {
        let mut merge = SpilledRecords {
            runs: Vec::with_capacity(files.len()),
            heads: BinaryHeap::with_capacity(files.len()),
            paths: None,
            done: false,
        };
        for mut file in files {
            file.seek(SeekFrom::Start(0))?;
            let mut run = BufReader::with_capacity(BUFFER_BYTES, file);
            if let Some(record) = RunRecord::read(&mut run)? {
                merge.heads.push(Reverse(Head {
                    record,
                    run: merge.runs.len(),
                }));
            }
            merge.runs.push(run);
        }
        Ok(merge)
    }

    /// Puts the next key of run `run`, if any, among the heads.
    fn refill(&mut self, run: usize) -> Result<(), ImportError> {
        if let Some(record) = RunRecord::read(&mut self.runs[run]).map_err(spill_error)? {
            self.heads.push(Reverse(Head { record, run }));
        }
        Ok(())
    }

    /// The earliest conflict between rows of the runs (a currency that changes within a key, a
    /// sum out of range), with where it is; `None` when the runs merge cleanly. For an import
    /// that failed on a row: a serial import would have stopped at an earlier conflict.
    pub fn first_row_error(mut self) -> Option<(Place, ImportError)> {
        loop {
            match self.next_record() {
                Ok(Some(_)) => {}
                Ok(None) | Err(MergeError::Other(_)) => return None,
                Err(MergeError::Row(place, error)) => return Some((place, error)),
            }
        }
    }

    fn next_record(&mut self) -> Result<Option<CostRecord>, MergeError> {
        let same = |s: &String| s.clone();
        let mut row_error: Option<(Place, ImportError)> = None;
        let mut out_of_range: Option<ImportError> = None;
        while let Some(Reverse(head)) = self.heads.pop() {
            self.refill(head.run).map_err(MergeError::Other)?;
            let mut key = head.record;
            while let Some(Reverse(next)) = self
                .heads
                .peek_mut()
                .filter(|next| next.0.record.key_cmp(&key).is_eq())
                .map(std::collections::binary_heap::PeekMut::pop)
            {
                self.refill(next.run).map_err(MergeError::Other)?;
                let later = next.record.sums.first;
                if let Err(e) = key.sums.combine(next.record.sums, true, &same)
                    && row_error.as_ref().is_none_or(|(place, _)| later < *place)
                {
                    row_error = Some((later, e));
                }
            }
            if row_error.is_some() || out_of_range.is_some() {
                continue;
            }
            match record(key.day, key.dims, &key.sums, &same) {
                Ok(record) => return Ok(Some(record)),
                Err(e) => out_of_range = Some(e),
            }
        }
        if let Some((place, error)) = row_error {
            return Err(MergeError::Row(place, error));
        }
        out_of_range.map_or(Ok(None), |e| Err(MergeError::Other(e)))
    }
}

enum MergeError {
    /// Rows that conflict, named by the later one's place.
    Row(Place, ImportError),
    Other(ImportError),
}

impl Iterator for SpilledRecords {
    type Item = Result<CostRecord, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = match self.next_record() {
            Ok(record) => record.map(Ok),
            Err(MergeError::Other(error)) => Some(Err(error)),
            Err(MergeError::Row(place, error)) => Some(Err(
                match self.paths.as_ref().and_then(|p| p.get(place.file as usize)) {
                    Some(path) => ImportError::InFile {
                        path: path.clone(),
                        source: Box::new(error),
                    },
                    None => error,
                },
            )),
        };
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{RowValues, merge_into_records};

    #[test]
    fn more_runs_than_the_fan_in_merge_in_stages_to_the_in_memory_result() {
        let mut whole = Aggregator::default();
        let mut part = Aggregator::default();
        let runs = Runs::default();
        let rows = 6 * MAX_FAN_IN as u64;
        for i in 0..rows {
            let resource = format!("r-{}", i % 50);
            let row = || RowValues {
                day: NaiveDate::from_ymd_opt(2024, 3, 1 + (i % 3) as u32).unwrap(),
                dims: [
                    "111",
                    "AmazonEC2",
                    "us-east-1",
                    "BoxUsage",
                    &resource,
                    "Usage",
                ],
                unblended: Decimal::new(i as i64 - 100, 3),
                amortized: Decimal::new(i as i64, 2),
                usage_amount: (i % 4 != 0).then_some(Decimal::ONE),
                unit: ["Hrs", "Hrs", "GB"][(i % 7 % 3) as usize],
                currency: "USD",
            };
            let place = Place {
                file: 0,
                block: i,
                line: i + 2,
            };
            whole.add(place, row()).unwrap();
            part.add(place, row()).unwrap();
            // A run per row: six times more runs than are merged at once.
            runs.spill(&mut part).unwrap();
        }
        assert_eq!(runs.files.lock().unwrap().len(), rows as usize);
        let expected = merge_into_records(None, vec![whole], 1).unwrap().records;
        let merged: Vec<CostRecord> = runs
            .into_records(None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(expected.len(), 150);
        assert_eq!(merged, expected);
    }
}
