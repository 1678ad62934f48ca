//! The streaming import: bytes → (decompress) → CSV rows → parsed values → per-key sums.

use crate::aggregate::{Aggregator, Place, RowValues, Runs, SpilledRecords, merge_into_records};
use crate::blocks::{self, Block, Splitter};
use crate::error::{ImportError, money};
use crate::format::{Amortization, CurAmortization, Format, Layout, Source, TagSource};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use cloudspend_core::Money;
use cloudspend_core::records::CostRecord;
use rust_decimal::Decimal;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How an import spreads its parse over threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// Threads that parse blocks of the file; 1 parses on the calling thread. Each thread
    /// keeps sums of its own until the file ends, so with keys spread all over the file the
    /// sums can take up to this many times the memory of one set.
    pub threads: usize,
    /// About how many bytes of CSV a thread parses at a time (more for a longer record).
    pub block_bytes: usize,
    /// Distinct keys a thread holds in memory: at this many it writes them, sorted, to a
    /// temporary file and starts afresh, and the files are merged as the records are read
    /// ([`import_paths_streamed`]). Memory is bounded by this, not by the export's size.
    pub spill_keys: usize,
}

/// Beyond this, more threads cost memory (sums per thread) for little: merging the parts and
/// building the records stay serial.
const MAX_THREADS: usize = 4;

/// 7/8 of 2^16: the most keys a hash table of 2^16 slots takes before it doubles, so a thread's
/// sums never take more than about 8 MiB (2^16 slots of 129 bytes). A million-row export then
/// spills in runs of 57k keys; one of 100k rows does not spill on two threads.
const SPILL_KEYS: usize = 57_344;

impl Default for ImportOptions {
    /// The cores available, at most [`MAX_THREADS`]; 1 MiB blocks, big enough that handing a
    /// block to a thread costs nothing next to parsing it.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            threads: cores.min(MAX_THREADS),
            block_bytes: 1 << 20,
            spill_keys: SPILL_KEYS,
        }
    }
}

/// How far an import has got, for a progress bar. Sent about every [`PROGRESS_EVERY_ROWS`]
/// rows (when a block of rows is handed out) and once at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Data rows read so far (kept and skipped).
    pub rows: u64,
    /// Bytes read from the file as stored, i.e. compressed bytes for a `.gz` or `.zip`, so
    /// `bytes / total_bytes` is the fraction done.
    pub bytes: u64,
    /// The file's size when known ([`import_path`]); `None` for a bare reader.
    pub total_bytes: Option<u64>,
}

pub const PROGRESS_EVERY_ROWS: u64 = 16_384;

/// What one file held, aggregated to one [`CostRecord`] per natural key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportResult {
    pub format: Format,
    /// Data rows in the file (the header not counted), kept and skipped.
    pub rows_read: u64,
    /// FOCUS rows of another provider than AWS; see `skipped_by_provider`.
    pub rows_skipped: u64,
    pub skipped_by_provider: BTreeMap<String, u64>,
    /// One row per (day, account, service, region, usage type, resource, line item type), in
    /// that order; `source` is always `Cur`.
    pub records: Vec<CostRecord>,
    /// The exact sum of the kept rows' unblended cost, rounded once to the nano-unit. Each
    /// record is rounded once too, so `records` add up to this within a few nano-units.
    pub total_unblended: Money,
    pub total_amortized: Money,
    /// First and last usage day of the kept rows; `None` when the file has no data rows.
    pub days: Option<(NaiveDate, NaiveDate)>,
    /// Tags by resource id, merged over the file's rows (a later row's value wins for a key).
    /// `CostRecord` has no tags; this side map is how they reach the store.
    pub resource_tags: BTreeMap<String, BTreeMap<String, String>>,
    /// Rows that carried tags but no resource id, so their tags had nowhere to go.
    pub tagged_rows_without_resource: u64,
    /// Tag cells that were neither a JSON object nor a `{k=v, ...}` map: counted, not fatal,
    /// because tags never change an amount.
    pub unreadable_tag_cells: u64,
    pub bytes_read: u64,
}

/// Imports one export from a reader: plain CSV, gzip (several members are fine) or the first
/// entry of a zip, told apart by their magic bytes.
pub fn import_reader<R: Read>(
    reader: R,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportResult, ImportError> {
    import_reader_with(reader, ImportOptions::default(), progress)
}

/// [`import_reader`] with a choice of threads and block size.
pub fn import_reader_with<R: Read>(
    reader: R,
    options: ImportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportResult, ImportError> {
    let counted = Counting::new(reader);
    let bytes = counted.count.clone();
    let mut state = State::default();
    let mut sink = Sink {
        bytes: &bytes,
        base: Progress::default(),
        total_bytes: None,
        progress,
    };
    import_stream(counted, &mut sink, &mut state, options, 0)?;
    state.finish(options)?.collected()
}

/// Imports one export file: `.csv`, `.csv.gz`, `.zip` (holding one CSV, as CUR delivers them).
/// The container is recognised by its magic bytes, so a misnamed file still imports.
pub fn import_path(
    path: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportResult, ImportError> {
    let mut state = State::default();
    let options = ImportOptions::default();
    import_file(path, Progress::default(), progress, &mut state, options)?;
    state.finish(options)?.collected()
}

/// Imports the parts of one report together, as one result. A CUR delivery is split into
/// several files (`-00001.csv.gz`, `-00002.csv.gz`, ...) and one key (a resource on a day) can
/// have lines in more than one part: the parts must be summed together before they are
/// stored, or upserting part 2 would replace what part 1 wrote. All files must be of one
/// format; an error names the file. Progress counts rows and bytes across all files.
pub fn import_paths(
    paths: &[&Path],
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportResult, ImportError> {
    import_paths_with(paths, ImportOptions::default(), progress)
}

/// [`import_paths`] with a choice of threads and block size.
pub fn import_paths_with(
    paths: &[&Path],
    options: ImportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportResult, ImportError> {
    import_paths_streamed(paths, options, progress)?.collected()
}

/// [`import_paths_with`] for an export of any size: the records are not in the result but
/// come from [`StreamedImport::records`], in key order, as they are read. With more distinct
/// keys than `options.spill_keys` per thread they are merged from temporary files as they are
/// read, so memory stays flat however large the export; an error met in that merge (a currency
/// that changes within a key, a sum out of range) comes from the iterator, and the caller must
/// then drop what it wrote.
pub fn import_paths_streamed(
    paths: &[&Path],
    options: ImportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<StreamedImport, ImportError> {
    let total: u64 = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    // An error already named with its file (an earlier one's, found later) keeps that name.
    let in_file = |path: &Path| {
        let path = path.display().to_string();
        move |source| match source {
            named @ ImportError::InFile { .. } => named,
            source => ImportError::InFile {
                path,
                source: Box::new(source),
            },
        }
    };
    let mut state = State {
        paths: Some(paths.iter().map(|p| p.display().to_string()).collect()),
        ..State::default()
    };
    for (i, path) in paths.iter().enumerate() {
        if i > 0 {
            state
                .seal(options.spill_keys)
                .map_err(in_file(paths[i - 1]))?;
        }
        let base = Progress {
            rows: state.rows_read,
            bytes: state.bytes_read,
            total_bytes: Some(total),
        };
        import_file(path, base, progress, &mut state, options).map_err(in_file(path))?;
    }
    // A row error found as the last file's parts are merged in memory is that file's; the
    // merge of spilled runs names the file itself.
    state.finish(options).map_err(|e| match paths.last() {
        Some(path) if error_line(&e).is_some() => in_file(path)(e),
        _ => e,
    })
}

fn import_file(
    path: &Path,
    base: Progress,
    progress: &mut dyn FnMut(Progress),
    state: &mut State,
    options: ImportOptions,
) -> Result<(), ImportError> {
    let file = File::open(path).map_err(|source| ImportError::Read {
        bytes_read: 0,
        source,
    })?;
    let size = file.metadata().ok().map(|m| m.len());
    let total_bytes = base.total_bytes.or(size);
    let mut counted = Counting::new(file);
    let bytes = counted.count.clone();
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut counted, &mut magic).map_err(|e| read_error(&bytes, e))?;
    counted
        .seek(SeekFrom::Start(0))
        .map_err(|e| read_error(&bytes, e))?;
    bytes.store(0, Ordering::Relaxed);
    let mut sink = Sink {
        bytes: &bytes,
        base,
        total_bytes,
        progress,
    };
    if Container::of(&magic[..n]) == Container::Parquet {
        return import_parquet(
            counted.inner,
            size.unwrap_or(0),
            &mut sink,
            state,
            options.spill_keys,
        );
    }
    if Container::of(&magic[..n]) == Container::Zip {
        // A seekable file: read the central directory rather than trusting local headers.
        let mut archive = zip::ZipArchive::new(counted).map_err(|e| zip_error(e, &bytes))?;
        let index = single_csv_entry(&mut archive)?;
        let entry = archive.by_index(index).map_err(|e| zip_error(e, &bytes))?;
        import_stream(Box::new(entry), &mut sink, state, options, 1)
    } else {
        import_stream(counted, &mut sink, state, options, 0)
    }
}

/// Where rows and bytes are reported, offset by the files already imported.
struct Sink<'a> {
    bytes: &'a AtomicU64,
    base: Progress,
    total_bytes: Option<u64>,
    progress: &'a mut dyn FnMut(Progress),
}

impl Sink<'_> {
    fn report(&mut self, rows_in_file: u64) {
        (self.progress)(Progress {
            rows: self.base.rows + rows_in_file,
            bytes: self.base.bytes + self.bytes.load(Ordering::Relaxed),
            total_bytes: self.total_bytes,
        });
    }
}

/// Sniffs the container and imports what is inside. `depth` stops a zip inside a gzip inside
/// a zip... after one level of nesting (CUR zips may hold a `.csv.gz`).
fn import_stream<R: Read>(
    reader: R,
    sink: &mut Sink<'_>,
    state: &mut State,
    options: ImportOptions,
    depth: u8,
) -> Result<(), ImportError> {
    let (kind, prefix, rest) = sniff(reader).map_err(|e| read_error(sink.bytes, e))?;
    let stream = io::Cursor::new(prefix).chain(rest);
    match kind {
        Container::Plain => import_csv(stream, sink, state, options),
        Container::Parquet => Err(ImportError::ParquetNeedsFile),
        _ if depth > 1 => Err(ImportError::Zip(
            "archives nested more than two deep".into(),
        )),
        Container::Gzip => {
            let inner: Box<dyn Read + '_> = Box::new(flate2::read::MultiGzDecoder::new(stream));
            import_stream(inner, sink, state, options, depth + 1)
        }
        Container::Zip => {
            let mut stream = stream;
            match zip::read::read_zipfile_from_stream(&mut stream) {
                Ok(Some(entry)) => {
                    let inner: Box<dyn Read + '_> = Box::new(entry);
                    import_stream(inner, sink, state, options, depth + 1)
                }
                Ok(None) => Err(ImportError::Zip("the archive holds no file".into())),
                Err(e) => Err(zip_error(e, sink.bytes)),
            }
        }
    }
}

fn single_csv_entry<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
) -> Result<usize, ImportError> {
    let files: Vec<(usize, String)> = (0..archive.len())
        .filter_map(|i| {
            let name = archive.name_for_index(i)?.to_string();
            (!name.ends_with('/')).then_some((i, name))
        })
        .collect();
    let csvs: Vec<&(usize, String)> = files
        .iter()
        .filter(|(_, name)| {
            let lower = name.to_ascii_lowercase();
            lower.ends_with(".csv") || lower.ends_with(".csv.gz")
        })
        .collect();
    match (csvs.as_slice(), files.as_slice()) {
        ([(i, _)], _) => Ok(*i),
        ([], [(i, _)]) => Ok(*i),
        _ => Err(ImportError::Zip(format!(
            "expected one CSV file in the archive, found: {}",
            files
                .iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Container {
    Plain,
    Gzip,
    Zip,
    Parquet,
}

impl Container {
    fn of(magic: &[u8]) -> Container {
        match magic {
            [0x1f, 0x8b, ..] => Container::Gzip,
            [b'P', b'K', 3, 4] => Container::Zip,
            [b'P', b'A', b'R', b'1'] => Container::Parquet,
            _ => Container::Plain,
        }
    }
}

fn sniff<R: Read>(mut reader: R) -> io::Result<(Container, Vec<u8>, R)> {
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut reader, &mut magic)?;
    Ok((Container::of(&magic[..n]), magic[..n].to_vec(), reader))
}

fn read_up_to<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Counts the bytes read through it, shared with the progress reporter.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R> Counting<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            count: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

fn read_error(bytes: &AtomicU64, source: io::Error) -> ImportError {
    ImportError::Read {
        bytes_read: bytes.load(Ordering::Relaxed),
        source,
    }
}

fn zip_error(error: zip::result::ZipError, bytes: &AtomicU64) -> ImportError {
    match error {
        zip::result::ZipError::Io(source) => read_error(bytes, source),
        other => ImportError::Zip(other.to_string()),
    }
}

/// A malformed row, named by the line it starts on; `bytes_read` for an I/O error.
fn csv_error(error: csv::Error, line: u64, bytes_read: u64) -> ImportError {
    match error.into_kind() {
        csv::ErrorKind::Io(source) => ImportError::Read { bytes_read, source },
        csv::ErrorKind::Utf8 { err, .. } => ImportError::Csv {
            line,
            message: format!("field {} is not valid UTF-8", err.field() + 1),
        },
        other => ImportError::Csv {
            line,
            message: format!("{other:?}"),
        },
    }
}

fn csv_error_in(block: &Block, error: csv::Error) -> ImportError {
    let line = block.line(error.position());
    csv_error(error, line, 0)
}

/// The line a row error names, to find the one first in the file.
pub(crate) fn error_line(error: &ImportError) -> Option<u64> {
    match error {
        ImportError::Csv { line, .. }
        | ImportError::BadNumber { line, .. }
        | ImportError::BadDate { line, .. }
        | ImportError::MissingValue { line, .. }
        | ImportError::Overflow { line, .. }
        | ImportError::MixedCurrency { line, .. } => Some(*line),
        _ => None,
    }
}

fn import_csv<R: Read>(
    reader: R,
    sink: &mut Sink<'_>,
    state: &mut State,
    options: ImportOptions,
) -> Result<(), ImportError> {
    let bytes = sink.bytes;
    let mut splitter = Splitter::new(reader, options.block_bytes);
    let header: Vec<String> = splitter
        .header()
        .map_err(|e| {
            let line = e.position().map_or(1, csv::Position::line);
            csv_error(e, line, bytes.load(Ordering::Relaxed))
        })?
        .iter()
        .map(str::to_string)
        .collect();
    if header.iter().all(|h| h.trim().is_empty()) {
        return Err(ImportError::Empty);
    }
    let layout = Layout::new(&header)?;
    state.expect_format(layout.format)?;
    let (file, runs, spill_keys) = (state.file, &state.runs, options.spill_keys);
    let parse = |block: &Block, part: &mut Part| {
        let rows = part.block(&layout, header.len(), block, file)?;
        if part.sums.len() >= spill_keys {
            runs.spill(&mut part.sums)?;
        }
        Ok(rows)
    };
    let mut reported = 0;
    // Reads to the very end, so a compressed stream's trailer (gzip CRC and length) is checked.
    let parsed = blocks::parse_blocks(&mut splitter, options.threads, &parse, &mut |rows| {
        if rows / PROGRESS_EVERY_ROWS > reported / PROGRESS_EVERY_ROWS {
            sink.report(rows);
            reported = rows;
        }
    });
    if let Some(error) = parsed.error {
        // Rows before the failed one may conflict with rows in another thread's part (or an
        // earlier file): a serial import would have stopped at the first such row.
        let earlier = state.sealed.take().map(|part| part.sums);
        let sums: Vec<Aggregator> = parsed.parts.into_iter().map(|part| part.sums).collect();
        if !state.runs.is_empty() {
            return Err(earliest_of_runs(
                state,
                earlier.into_iter().chain(sums),
                error,
            ));
        }
        let conflict = merge_into_records(earlier, sums, options.threads)
            .err()
            .filter(
                |conflict| match (error_line(conflict), error_line(&error)) {
                    (Some(conflict), Some(error)) => conflict < error,
                    _ => false,
                },
            );
        return Err(conflict.unwrap_or(error));
    }
    if let Some(source) = parsed.read_error {
        return Err(read_error(bytes, source));
    }
    sink.report(parsed.rows);
    state.rows_read += parsed.rows;
    state.bytes_read += bytes.load(Ordering::Relaxed);
    state.parts = parsed.parts;
    Ok(())
}

/// `error`, met at a row of the file being read, or a conflict between rows before it that a
/// serial import would have stopped at first, when some sums are in runs: every part becomes a
/// run and the merge of the runs finds the earliest conflict. One in an earlier file is named
/// with that file.
fn earliest_of_runs(
    state: &mut State,
    sums: impl Iterator<Item = Aggregator>,
    error: ImportError,
) -> ImportError {
    let runs = std::mem::take(&mut state.runs);
    for mut sums in sums {
        if let Err(e) = runs.spill(&mut sums) {
            return e;
        }
    }
    let conflict = match runs.into_records(None) {
        Ok(records) => records.first_row_error(),
        Err(e) => return e,
    };
    let at = (state.file, error_line(&error).unwrap_or(u64::MAX));
    match conflict {
        Some((place, conflict)) if (place.file, place.line) < at => {
            let path = (place.file < state.file)
                .then(|| state.paths.as_ref()?.get(place.file as usize).cloned())
                .flatten();
            match path {
                Some(path) => ImportError::InFile {
                    path,
                    source: Box::new(conflict),
                },
                None => conflict,
            }
        }
        _ => error,
    }
}

/// A Parquet file: its rows, turned into the cells of the CSV export, go through the same
/// layout and row rules as a CSV's, on this thread. A row's "line" is its row number plus one,
/// where it would be in the CSV export (after the header).
fn import_parquet(
    file: File,
    size: u64,
    sink: &mut Sink<'_>,
    state: &mut State,
    spill_keys: usize,
) -> Result<(), ImportError> {
    let unreadable = |message| ImportError::Parquet { message };
    let mut rows = crate::parquet::ParquetRows::open(file).map_err(unreadable)?;
    let layout = Layout::new(&rows.header)?;
    state.expect_format(layout.format)?;
    let mut part = Part::default();
    let mut record = csv::StringRecord::new();
    let mut read: u64 = 0;
    while rows.next_into(&mut record).map_err(unreadable)? {
        read += 1;
        let place = Place {
            file: state.file,
            block: 0,
            line: read + 1,
        };
        part.row(&layout, place, &record)?;
        if part.sums.len() >= spill_keys {
            state.runs.spill(&mut part.sums)?;
        }
        if read.is_multiple_of(PROGRESS_EVERY_ROWS) {
            sink.report(read);
        }
    }
    sink.bytes.store(size, Ordering::Relaxed);
    sink.report(read);
    state.rows_read += read;
    state.bytes_read += size;
    state.parts = vec![part];
    Ok(())
}

/// The parts of one file, each a thread's, merged.
fn merge_parts(parts: Vec<Part>) -> Result<Part, ImportError> {
    let mut parts = parts.into_iter();
    let mut merged = parts.next().unwrap_or_default();
    let mut first_error: Option<ImportError> = None;
    for part in parts {
        if let Err(e) = merged.absorb(part, false)
            && first_error
                .as_ref()
                .is_none_or(|first| error_line(&e) < error_line(first))
        {
            first_error = Some(e);
        }
    }
    first_error.map_or(Ok(merged), Err)
}

/// What an import carries from file to file.
#[derive(Default)]
struct State {
    /// Set by the first file's header; later files must match.
    format: Option<Format>,
    /// The files before the last one, merged.
    sealed: Option<Part>,
    /// The last file's parts, one per thread: merged at the end, on as many threads, as the
    /// records are built.
    parts: Vec<Part>,
    /// Sorted sums written to temporary files by parts that reached `spill_keys`; when there
    /// are any, every part ends as a run and the records come from their merge.
    runs: Runs,
    /// The position of the file being read among those imported together ([`Place::file`]).
    file: u32,
    /// The files imported together, when they are named ([`import_paths_streamed`]).
    paths: Option<Vec<String>>,
    rows_read: u64,
    bytes_read: u64,
}

/// Tag values by resource id and key, each with the block it came from: within a block the
/// later row wins as it is read; across blocks the later block's value wins, whichever thread
/// read it.
type Tags = BTreeMap<String, BTreeMap<String, (u64, String)>>;

/// What the rows parsed by one thread add up to.
#[derive(Default)]
struct Part {
    sums: Aggregator,
    rows_skipped: u64,
    skipped_by_provider: BTreeMap<String, u64>,
    days: Option<(NaiveDate, NaiveDate)>,
    resource_tags: Tags,
    tagged_rows_without_resource: u64,
    unreadable_tag_cells: u64,
}

impl Part {
    /// Parses one block's rows; `width` is the header's.
    fn block(
        &mut self,
        layout: &Layout,
        width: usize,
        block: &Block,
        file: u32,
    ) -> Result<u64, ImportError> {
        // Flexible: the header is not in the block, so the field count is checked here.
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(&block.bytes[..]);
        let mut record = csv::StringRecord::new();
        let mut rows = 0;
        loop {
            match csv.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => return Ok(rows),
                // A block is in memory: no bytes are read here.
                Err(e) => return Err(csv_error_in(block, e)),
            }
            rows += 1;
            let line = block.line(record.position());
            if record.len() != width {
                return Err(ImportError::Csv {
                    line,
                    message: format!("{} fields where the header has {width}", record.len()),
                });
            }
            let place = Place {
                file,
                block: block.index,
                line,
            };
            self.row(layout, place, &record)?;
        }
    }

    /// Adds another part's rows. `other_is_later`: all its lines come after this part's (a
    /// later file); otherwise the lines interleave (blocks of one file) and line numbers
    /// decide which tag value and which currency came first. Counters just add up.
    fn absorb(&mut self, other: Part, other_is_later: bool) -> Result<(), ImportError> {
        let sums = self.absorb_all_but_sums(other, other_is_later);
        self.sums.absorb(sums, other_is_later)
    }

    /// [`Part::absorb`] without the sums, which come back.
    fn absorb_all_but_sums(&mut self, other: Part, other_is_later: bool) -> Aggregator {
        self.rows_skipped += other.rows_skipped;
        for (provider, rows) in other.skipped_by_provider {
            *self.skipped_by_provider.entry(provider).or_default() += rows;
        }
        self.days = match (self.days, other.days) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (mine, theirs) => mine.or(theirs),
        };
        for (resource, tags) in other.resource_tags {
            let mine = self.resource_tags.entry(resource).or_default();
            for (key, (block, value)) in tags {
                match mine.entry(key) {
                    Entry::Vacant(slot) => {
                        slot.insert((block, value));
                    }
                    Entry::Occupied(mut slot) => {
                        if other_is_later || block > slot.get().0 {
                            slot.insert((block, value));
                        }
                    }
                }
            }
        }
        self.tagged_rows_without_resource += other.tagged_rows_without_resource;
        self.unreadable_tag_cells += other.unreadable_tag_cells;
        other.sums
    }

    fn row(
        &mut self,
        layout: &Layout,
        place: Place,
        record: &csv::StringRecord,
    ) -> Result<(), ImportError> {
        let line = place.line;
        if let Some(provider) = layout.provider {
            let name = cell(record, provider);
            if !is_aws(name) {
                self.rows_skipped += 1;
                let label = if name.is_empty() { "(empty)" } else { name };
                *self
                    .skipped_by_provider
                    .entry(label.to_string())
                    .or_default() += 1;
                return Ok(());
            }
        }
        let day = parse_day(cell(record, layout.start)).ok_or_else(|| {
            let value = cell(record, layout.start).to_string();
            let column = layout.column_name(layout.start);
            if value.is_empty() {
                ImportError::MissingValue {
                    line,
                    column,
                    value,
                }
            } else {
                ImportError::BadDate {
                    line,
                    column,
                    value,
                }
            }
        })?;
        let number = |index: usize| -> Result<Option<Decimal>, ImportError> {
            parse_number(cell(record, index)).map_err(|value| ImportError::BadNumber {
                line,
                column: layout.column_name(index),
                value,
            })
        };
        // An empty cost cell is zero: AWS leaves some informational line items blank.
        let unblended = number(layout.unblended)?.unwrap_or_default();
        let line_item_type = first(record, &layout.line_item_type);
        let amortized = match &layout.amortization {
            Amortization::Cur(rules) => {
                cur_amortized(rules, record, &line_item_type, unblended, &number)?
            }
            Amortization::Focus(effective) => match effective {
                Some(i) => number(*i)?.unwrap_or(unblended),
                None => unblended,
            },
        };
        let usage_amount = match layout.usage_amount {
            Some(i) => number(i)?,
            None => None,
        };
        let account = first(record, &layout.account);
        let service = first(record, &layout.service);
        let mut region = first(record, &layout.region);
        if region.is_empty()
            && let Some(az) = layout.availability_zone
        {
            region = Cow::Borrowed(region_of_zone(cell(record, az)));
        }
        let usage_type = first(record, &layout.usage_type);
        let resource_id = first(record, &layout.resource_id);
        let currency = layout.currency.map_or("", |i| cell(record, i));
        let currency = if currency.is_empty() { "USD" } else { currency };
        let unit = layout.unit.map_or("", |i| cell(record, i));

        self.tags(layout, place.block, record, &resource_id);
        self.days = Some(match self.days {
            None => (day, day),
            Some((lo, hi)) => (lo.min(day), hi.max(day)),
        });
        self.sums.add(
            place,
            RowValues {
                day,
                dims: [
                    &account,
                    &service,
                    &region,
                    &usage_type,
                    &resource_id,
                    &line_item_type,
                ],
                unblended,
                amortized,
                usage_amount,
                unit,
                currency,
            },
        )
    }

    fn tags(&mut self, layout: &Layout, block: u64, record: &csv::StringRecord, resource_id: &str) {
        let mut found: Vec<(String, String)> = Vec::new();
        match &layout.tags {
            TagSource::None => return,
            TagSource::Columns(columns) => {
                for (i, key) in columns {
                    let value = cell(record, *i);
                    if !value.is_empty() {
                        found.push((key.clone(), value.to_string()));
                    }
                }
            }
            TagSource::Map(i) => {
                let raw = cell(record, *i);
                if raw.is_empty() {
                    return;
                }
                match parse_map(raw) {
                    Some(pairs) => found = pairs,
                    None => {
                        self.unreadable_tag_cells += 1;
                        return;
                    }
                }
            }
        }
        if found.is_empty() {
            return;
        }
        if resource_id.is_empty() {
            self.tagged_rows_without_resource += 1;
            return;
        }
        let tags = match self.resource_tags.get_mut(resource_id) {
            Some(tags) => tags,
            None => self
                .resource_tags
                .entry(resource_id.to_string())
                .or_default(),
        };
        tags.extend(found.into_iter().map(|(key, value)| (key, (block, value))));
    }
}

impl State {
    /// Merges the last file's parts into the earlier files', before the next file.
    /// The first file sets the format; later ones must match.
    fn expect_format(&mut self, format: Format) -> Result<(), ImportError> {
        match self.format {
            Some(first) if first != format => Err(ImportError::MixedFormats {
                first,
                this: format,
            }),
            _ => {
                self.format = Some(format);
                Ok(())
            }
        }
    }

    fn seal(&mut self, spill_keys: usize) -> Result<(), ImportError> {
        let file = merge_parts(std::mem::take(&mut self.parts))?;
        self.file += 1;
        let sealed = match &mut self.sealed {
            Some(sealed) => {
                sealed.absorb(file, true)?;
                sealed
            }
            None => self.sealed.insert(file),
        };
        if !self.runs.is_empty() || sealed.sums.len() >= spill_keys {
            self.runs.spill(&mut sealed.sums)?;
        }
        Ok(())
    }

    /// The result, and its records: merged in memory, or from the runs when there are any.
    fn finish(self, options: ImportOptions) -> Result<StreamedImport, ImportError> {
        let format = self.format.ok_or(ImportError::Empty)?;
        let mut file = Part::default();
        let last_file_sums: Vec<Aggregator> = self
            .parts
            .into_iter()
            .map(|part| file.absorb_all_but_sums(part, false))
            .collect();
        let (part, earlier_sums) = match self.sealed {
            Some(mut sealed) => {
                let sums = std::mem::take(&mut sealed.sums);
                sealed.absorb_all_but_sums(file, true);
                (sealed, Some(sums))
            }
            None => (file, None),
        };
        let (records, total_unblended, total_amortized) = if self.runs.is_empty() {
            let merged = merge_into_records(earlier_sums, last_file_sums, options.threads)?;
            (
                Records::Held(merged.records.into_iter()),
                merged.total_unblended,
                merged.total_amortized,
            )
        } else {
            let mut totals = Aggregator::default();
            for mut sums in earlier_sums.into_iter().chain(last_file_sums) {
                self.runs.spill(&mut sums)?;
                totals.absorb(sums, true)?;
            }
            (
                Records::Spilled(self.runs.into_records(self.paths.as_deref())?),
                totals.total_unblended,
                totals.total_amortized,
            )
        };
        let total_unblended = money(total_unblended, "the file's total unblended cost")?;
        let total_amortized = money(total_amortized, "the file's total amortized cost")?;
        let resource_tags = part
            .resource_tags
            .into_iter()
            .map(|(resource, tags)| {
                let tags = tags.into_iter().map(|(k, (_, v))| (k, v)).collect();
                (resource, tags)
            })
            .collect();
        let result = ImportResult {
            format,
            rows_read: self.rows_read,
            rows_skipped: part.rows_skipped,
            skipped_by_provider: part.skipped_by_provider,
            records: Vec::new(),
            total_unblended,
            total_amortized,
            days: part.days,
            resource_tags,
            tagged_rows_without_resource: part.tagged_rows_without_resource,
            unreadable_tag_cells: part.unreadable_tag_cells,
            bytes_read: self.bytes_read,
        };
        Ok(StreamedImport {
            result,
            records: CostRecords(records),
        })
    }
}

/// An import whose records are read one at a time ([`import_paths_streamed`]).
pub struct StreamedImport {
    /// Everything but the records: `result.records` is empty.
    pub result: ImportResult,
    pub records: CostRecords,
}

impl StreamedImport {
    /// The result with its records, all in memory.
    pub fn collected(self) -> Result<ImportResult, ImportError> {
        let records = self.records.collect::<Result<Vec<_>, _>>()?;
        Ok(ImportResult {
            records,
            ..self.result
        })
    }
}

/// An import's records, one per key in key order (day, account, service, region, usage type,
/// resource id, line item type), and at most one error, after which there are no more.
pub struct CostRecords(Records);

enum Records {
    Held(std::vec::IntoIter<CostRecord>),
    Spilled(SpilledRecords),
}

impl CostRecords {
    /// The records `size` at a time, for a writer that takes them in batches. An error ends
    /// them (the records of its batch are not given).
    pub fn batches(
        mut self,
        size: usize,
    ) -> impl Iterator<Item = Result<Vec<CostRecord>, ImportError>> {
        std::iter::from_fn(move || {
            let mut batch = Vec::with_capacity(size);
            for record in self.by_ref() {
                match record {
                    Ok(record) => batch.push(record),
                    Err(e) => return Some(Err(e)),
                }
                if batch.len() >= size {
                    break;
                }
            }
            (!batch.is_empty()).then_some(Ok(batch))
        })
    }
}

impl Iterator for CostRecords {
    type Item = Result<CostRecord, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Records::Held(records) => records.next().map(Ok),
            Records::Spilled(records) => records.next(),
        }
    }
}

/// AWS amortized cost, as Cost Explorer and the CUDOS dashboards compute it: usage covered by a
/// reservation or a Savings Plan costs its effective cost; the commitment's own fee lines cost
/// only their unused part; upfront payments are spread into the effective costs, so they count
/// zero here. Anything else is its unblended cost, as is any line whose column is absent.
fn cur_amortized(
    rules: &CurAmortization,
    record: &csv::StringRecord,
    line_item_type: &str,
    unblended: Decimal,
    number: &dyn Fn(usize) -> Result<Option<Decimal>, ImportError>,
) -> Result<Decimal, ImportError> {
    let column = |index: Option<usize>| -> Result<Option<Decimal>, ImportError> {
        match index {
            Some(i) => number(i),
            None => Ok(None),
        }
    };
    Ok(match line_item_type {
        "DiscountedUsage" => column(rules.ri_effective_cost)?.unwrap_or(unblended),
        "SavingsPlanCoveredUsage" => column(rules.sp_effective_cost)?.unwrap_or(unblended),
        "SavingsPlanNegation" | "SavingsPlanUpfrontFee" => Decimal::ZERO,
        "SavingsPlanRecurringFee" => {
            match (
                column(rules.sp_total_commitment)?,
                column(rules.sp_used_commitment)?,
            ) {
                (Some(total), Some(used)) => total - used,
                _ => unblended,
            }
        }
        "RIFee" => match (
            column(rules.ri_unused_upfront)?,
            column(rules.ri_unused_recurring)?,
        ) {
            (None, None) => unblended,
            (upfront, recurring) => upfront.unwrap_or_default() + recurring.unwrap_or_default(),
        },
        "Fee" if rules.ri_arn.is_some_and(|i| !cell(record, i).is_empty()) => Decimal::ZERO,
        _ => unblended,
    })
}

/// A cell, trimmed; FOCUS exports write missing values as a bare `NULL`, which means empty.
fn cell(record: &csv::StringRecord, index: usize) -> &str {
    let value = record.get(index).unwrap_or("").trim();
    if value == "NULL" { "" } else { value }
}

fn first<'r>(record: &'r csv::StringRecord, sources: &[Source]) -> Cow<'r, str> {
    for source in sources {
        match source {
            Source::Column(i) => {
                let value = cell(record, *i);
                if !value.is_empty() {
                    return Cow::Borrowed(value);
                }
            }
            Source::MapKey(i, key) => {
                let raw = cell(record, *i);
                if raw.is_empty() {
                    continue;
                }
                let found = parse_map(raw)
                    .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == key).map(|(_, v)| v))
                    .filter(|v| !v.is_empty());
                if let Some(value) = found {
                    return Cow::Owned(value);
                }
            }
        }
    }
    Cow::Borrowed("")
}

/// A map cell: a JSON object (how CUR 2.0 and FOCUS CSVs write maps) or Hive's `{k=v, k2=v2}`
/// (how an Athena result writes them). Non-string JSON values keep their JSON text.
fn parse_map(raw: &str) -> Option<Vec<(String, String)>> {
    if let Ok(object) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw) {
        return Some(
            object
                .into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => (k, s),
                    other => (k, other.to_string()),
                })
                .collect(),
        );
    }
    let inner = raw.strip_prefix('{')?.strip_suffix('}')?.trim();
    if inner.is_empty() {
        return Some(Vec::new());
    }
    inner
        .split(", ")
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn is_aws(provider: &str) -> bool {
    provider.eq_ignore_ascii_case("aws")
        || provider
            .get(..19)
            .is_some_and(|p| p.eq_ignore_ascii_case("amazon web services"))
}

/// `eu-central-1a` → `eu-central-1`; also local zones (`us-west-2-lax-1a`). A value that does
/// not end in digit + letter is kept as it is.
fn region_of_zone(zone: &str) -> &str {
    let bytes = zone.as_bytes();
    match bytes {
        [.., digit, letter] if digit.is_ascii_digit() && letter.is_ascii_lowercase() => {
            &zone[..zone.len() - 1]
        }
        _ => zone,
    }
}

/// Empty → `None`; otherwise an exact decimal (plain or scientific notation) or the cell back
/// as the error.
fn parse_number(value: &str) -> Result<Option<Decimal>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    Decimal::from_str(value)
        .or_else(|_| Decimal::from_scientific(value))
        .map(Some)
        .map_err(|_| value.to_string())
}

/// The UTC day a usage period starts. CUR writes `2023-11-01T00:00:00Z` (or `.000Z`), FOCUS
/// `2024-09-18 22:00:00` (UTC by the spec) or RFC 3339 with an offset.
fn parse_day(value: &str) -> Option<NaiveDate> {
    let date = value.get(..10).and_then(parse_ymd);
    let rest = value.get(10..).unwrap_or("");
    let utc_or_naive = !rest.get(1..).unwrap_or("").contains(['+', '-']);
    if let Some(date) = date
        && (rest.is_empty() || ((rest.starts_with('T') || rest.starts_with(' ')) && utc_or_naive))
    {
        return Some(date);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(value) {
        return Some(dt.with_timezone(&Utc).date_naive());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(dt) = DateTime::parse_from_str(value, format) {
            return Some(dt.with_timezone(&Utc).date_naive());
        }
    }
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|dt| dt.date())
}

/// `YYYY-MM-DD` exactly. Every line item has one, and chrono's format-string parser spent more
/// time on it than the rest of the row's fields together.
fn parse_ymd(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(5..7)?, digits(8..10)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_exactly() {
        let ymd = |s| parse_ymd(s).map(|d| d.to_string());
        assert_eq!(ymd("2024-02-29").as_deref(), Some("2024-02-29"));
        assert_eq!(ymd("0999-01-01").as_deref(), Some("0999-01-01"));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-011",
            "2024/01/01",
            "2024-01-0x",
            "",
            "2024-01-01T",
        ] {
            assert_eq!(ymd(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn usage_day_is_the_utc_date_of_the_start() {
        let day = |s| parse_day(s).map(|d| d.to_string());
        assert_eq!(
            day("2023-11-01T00:00:00.000Z").as_deref(),
            Some("2023-11-01")
        );
        assert_eq!(day("2024-09-18 22:00:00").as_deref(), Some("2024-09-18"));
        assert_eq!(day("2024-09-18").as_deref(), Some("2024-09-18"));
        assert_eq!(
            day("2024-09-18T23:30:00-02:00").as_deref(),
            Some("2024-09-19")
        );
        assert_eq!(
            day("2024-09-18 01:00:00+05:00").as_deref(),
            Some("2024-09-17")
        );
        assert_eq!(day("18/09/2024"), None);
        assert_eq!(day("2024-13-01T00:00:00Z"), None);
        assert_eq!(day(""), None);
    }

    #[test]
    fn numbers_are_exact_and_bad_ones_come_back() {
        assert_eq!(
            parse_number("0.00001605990").unwrap(),
            Some(Decimal::from_str("0.0000160599").unwrap())
        );
        assert_eq!(
            parse_number("1.2E-7").unwrap(),
            Some(Decimal::from_str("0.00000012").unwrap())
        );
        assert_eq!(parse_number("").unwrap(), None);
        assert_eq!(parse_number("$1.00").unwrap_err(), "$1.00");
    }

    #[test]
    fn zones_lose_their_letter() {
        assert_eq!(region_of_zone("eu-central-1a"), "eu-central-1");
        assert_eq!(region_of_zone("us-west-2-lax-1b"), "us-west-2-lax-1");
        assert_eq!(region_of_zone("us-east-1"), "us-east-1");
        assert_eq!(region_of_zone(""), "");
    }

    #[test]
    fn maps_read_as_json_or_hive() {
        let json = parse_map(r#"{"env": "dev", "n": 3}"#).unwrap();
        assert_eq!(
            json,
            vec![("env".into(), "dev".into()), ("n".into(), "3".into())]
        );
        let hive = parse_map("{product_name=Amazon S3, region=us-east-1}").unwrap();
        assert_eq!(hive[0], ("product_name".into(), "Amazon S3".into()));
        assert_eq!(parse_map("not a map"), None);
    }

    #[test]
    fn providers_that_count_as_aws() {
        assert!(is_aws("AWS"));
        assert!(is_aws("Amazon Web Services"));
        assert!(is_aws("Amazon Web Services, Inc."));
        assert!(!is_aws("Microsoft"));
        assert!(!is_aws(""));
    }
}
