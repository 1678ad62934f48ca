//! The parse spread over threads. The calling thread reads (and decompresses) the stream and
//! cuts it into blocks that end where a record ends; worker threads parse whole blocks, each
//! into a part of its own, and the caller merges the parts. Blocks travel over a bounded
//! channel, so memory holds a few blocks, never the file; the stream is still read to its end
//! on one thread, so a gzip trailer is checked as before.
//!
//! Where a record ends, found without parsing: with RFC 4180 quoting (a quoted field starts
//! with its quote, a quote inside is doubled) a newline ends a record when it is outside quotes.
//! A quote anywhere else (`5" screen` in an unquoted field) is taken literally by the csv crate
//! and would mislead that reckoning, so such a block, or one with no line end outside quotes at
//! all (bare `\r` line ends), is cut by the csv crate itself: slower, but exact.

use crate::error::ImportError;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

pub(crate) struct Block {
    /// Position in the stream: a block that fails stops the parse of the blocks after it.
    pub index: u64,
    /// The line (1-based, as an editor counts) that the block's first byte is on.
    pub first_line: u64,
    pub bytes: Vec<u8>,
}

impl Block {
    /// The line a record read from this block starts on. The csv crate places a record where
    /// the one before it ended, which is before the line ends it skips (the `\n` of a `\r\n`,
    /// blank lines): those are counted here, so a CRLF file gets its lines right too.
    pub fn line(&self, position: Option<&csv::Position>) -> u64 {
        let Some(position) = position else {
            return self.first_line;
        };
        let mut line = self.first_line + position.line().saturating_sub(1);
        let mut at = usize::try_from(position.byte()).unwrap_or(usize::MAX);
        while let Some(&byte @ (b'\r' | b'\n')) = self.bytes.get(at) {
            line += u64::from(byte == b'\n');
            at += 1;
        }
        line
    }
}

/// Cuts a stream into [`Block`]s of about `block_bytes`, each ending where a record ends.
pub(crate) struct Splitter<R> {
    reader: R,
    /// Read but not handed out yet; starts where a record starts.
    pending: Vec<u8>,
    /// The line `pending` starts on.
    line: u64,
    index: u64,
    block_bytes: usize,
    eof: bool,
    /// A read error, held back until the whole records read before it are handed out.
    error: Option<io::Error>,
}

impl<R: Read> Splitter<R> {
    pub fn new(reader: R, block_bytes: usize) -> Self {
        Self {
            reader,
            pending: Vec::new(),
            line: 1,
            index: 0,
            block_bytes: block_bytes.max(1),
            eof: false,
            error: None,
        }
    }

    /// The first record (empty for an empty stream); the blocks start after it.
    pub fn header(&mut self) -> Result<csv::StringRecord, csv::Error> {
        let mut want = self.block_bytes;
        loop {
            self.fill(want);
            let mut csv = headerless(&self.pending[..]);
            let mut header = csv::StringRecord::new();
            csv.read_record(&mut header)?;
            let end = usize::try_from(csv.position().byte()).unwrap_or(usize::MAX);
            drop(csv);
            if end < self.pending.len() || self.eof {
                self.line += newlines(&self.pending[..end]);
                self.pending.drain(..end);
                return Ok(header);
            }
            if let Some(error) = self.error.take() {
                return Err(error.into());
            }
            want = self.pending.len().saturating_mul(2);
        }
    }

    /// The next block, `None` at the end of the stream, or the read error after the blocks
    /// read before it.
    pub fn next_block(&mut self) -> Option<io::Result<Block>> {
        let mut want = self.block_bytes;
        loop {
            self.fill(want);
            if self.eof {
                let all = self.pending.len();
                return (all > 0).then(|| Ok(self.take(all)));
            }
            match record_end(&self.pending) {
                Some(cut) => return Some(Ok(self.take(cut))),
                None if self.error.is_some() => {
                    // The rest is a record cut short by the failure: not parsed, as a serial
                    // reader would not have parsed it either.
                    self.pending.clear();
                    return self.error.take().map(Err);
                }
                // One record larger than a block: read on until it ends.
                None => want = self.pending.len().saturating_mul(2),
            }
        }
    }

    /// Reads until `pending` holds `want` bytes, the stream ends or a read fails.
    fn fill(&mut self, want: usize) {
        while self.pending.len() < want && !self.eof && self.error.is_none() {
            let need = want - self.pending.len();
            match (&mut self.reader)
                .take(need as u64)
                .read_to_end(&mut self.pending)
            {
                Ok(n) if n < need => self.eof = true,
                Ok(_) => {}
                Err(e) => self.error = Some(e),
            }
        }
    }

    fn take(&mut self, cut: usize) -> Block {
        let tail = &self.pending[cut..];
        let mut rest = Vec::new();
        if !tail.is_empty() || !self.eof {
            rest.reserve(self.block_bytes.min(1 << 24) + tail.len());
            rest.extend_from_slice(tail);
        }
        let mut bytes = std::mem::replace(&mut self.pending, rest);
        bytes.truncate(cut);
        let block = Block {
            index: self.index,
            first_line: self.line,
            bytes,
        };
        self.index += 1;
        self.line += newlines(&block.bytes);
        block
    }
}

fn headerless(bytes: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes)
}

fn newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Where the last whole record in `buf` (which starts at a record) ends.
fn record_end(buf: &[u8]) -> Option<usize> {
    quoted_record_end(buf).or_else(|| csv_record_end(buf))
}

/// Just after the last newline outside quotes, walking the quotes only; `None` when there is
/// no such newline or a quote is not where RFC 4180 puts them.
fn quoted_record_end(buf: &[u8]) -> Option<usize> {
    let mut end = None;
    // Start of the stretch outside quotes being walked.
    let mut outside = 0;
    let mut quotes = memchr::memchr_iter(b'"', buf);
    while let Some(open) = quotes.next() {
        if open > 0 && !matches!(buf[open - 1], b',' | b'\n' | b'\r') {
            return None;
        }
        if let Some(newline) = memchr::memrchr(b'\n', &buf[outside..open]) {
            end = Some(outside + newline + 1);
        }
        loop {
            // Inside quotes up to the buffer's end: what is before the field still counts.
            let Some(close) = quotes.next() else {
                return end;
            };
            match buf.get(close + 1) {
                Some(b'"') => {
                    quotes.next();
                }
                Some(b',' | b'\n' | b'\r') => {
                    outside = close + 1;
                    break;
                }
                None => return end,
                Some(_) => return None,
            }
        }
    }
    memchr::memrchr(b'\n', &buf[outside..])
        .map(|newline| outside + newline + 1)
        .or(end)
}

/// Where the csv crate ends the last record but one: the last may be cut short by the buffer.
fn csv_record_end(buf: &[u8]) -> Option<usize> {
    let mut csv = headerless(buf);
    let mut record = csv::ByteRecord::new();
    let (mut before_last, mut last) = (None, None);
    while let Ok(true) = csv.read_byte_record(&mut record) {
        before_last = last;
        last = usize::try_from(csv.position().byte()).ok();
    }
    before_last
}

/// What the blocks came to.
pub(crate) struct Parsed<P> {
    /// One per thread, to be merged; their lines interleave.
    pub parts: Vec<P>,
    pub rows: u64,
    /// The error of the earliest block that failed. Every block before it was parsed.
    pub error: Option<ImportError>,
    /// Reading failed; every whole record read before was parsed.
    pub read_error: Option<io::Error>,
}

/// Parses every block with `parse` on `threads` threads (on this one if `threads` is 1),
/// calling `progress` with the rows done so far. After a block fails, no later block is
/// parsed, but the earlier ones all are, so the caller can name the first error in the file.
pub(crate) fn parse_blocks<R: Read, P: Default + Send>(
    splitter: &mut Splitter<R>,
    threads: usize,
    parse: &(dyn Fn(&Block, &mut P) -> Result<u64, ImportError> + Sync),
    progress: &mut dyn FnMut(u64),
) -> Parsed<P> {
    if threads <= 1 {
        let mut parsed = Parsed {
            parts: vec![P::default()],
            rows: 0,
            error: None,
            read_error: None,
        };
        while let Some(block) = splitter.next_block() {
            match block.map(|block| parse(&block, &mut parsed.parts[0])) {
                Ok(Ok(rows)) => parsed.rows += rows,
                Ok(Err(e)) => {
                    parsed.error = Some(e);
                    break;
                }
                Err(e) => {
                    parsed.read_error = Some(e);
                    break;
                }
            }
            progress(parsed.rows);
        }
        return parsed;
    }

    // The lowest index of a failed block; later blocks are skipped.
    let failed = AtomicU64::new(u64::MAX);
    let rows = AtomicU64::new(0);
    // A few blocks wait per thread: enough to keep the threads busy, and memory bounded.
    let (sender, receiver) = mpsc::sync_channel::<Block>(threads);
    // Held by the workers only, so if they all die the sender sees it instead of blocking.
    let receiver = Arc::new(Mutex::new(receiver));
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let receiver = Arc::clone(&receiver);
                let (failed, rows) = (&failed, &rows);
                scope.spawn(move || {
                    let mut part = P::default();
                    let mut error = None;
                    // Keep draining after a failure so the reader never waits on a full channel.
                    while let Some(block) = receiver.lock().ok().and_then(|r| r.recv().ok()) {
                        if block.index > failed.load(Ordering::Relaxed) {
                            continue;
                        }
                        match parse(&block, &mut part) {
                            Ok(n) => {
                                rows.fetch_add(n, Ordering::Relaxed);
                            }
                            Err(e) => {
                                failed.fetch_min(block.index, Ordering::Relaxed);
                                error = Some((block.index, e));
                            }
                        }
                    }
                    (part, error)
                })
            })
            .collect();
        drop(receiver);

        let mut read_error = None;
        while failed.load(Ordering::Relaxed) == u64::MAX {
            match splitter.next_block() {
                Some(Ok(block)) => {
                    if sender.send(block).is_err() {
                        break;
                    }
                }
                Some(Err(e)) => {
                    read_error = Some(e);
                    break;
                }
                None => break,
            }
            progress(rows.load(Ordering::Relaxed));
        }
        drop(sender);

        let mut parts = Vec::with_capacity(threads);
        let mut first_error: Option<(u64, ImportError)> = None;
        for worker in workers {
            let (part, error) = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            parts.push(part);
            if let Some((index, e)) = error
                && first_error.as_ref().is_none_or(|(i, _)| index < *i)
            {
                first_error = Some((index, e));
            }
        }
        Parsed {
            parts,
            rows: rows.load(Ordering::Relaxed),
            error: first_error.map(|(_, e)| e),
            read_error,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_end_at_newlines_outside_quotes() {
        let end = |s: &str| record_end(s.as_bytes());
        assert_eq!(end("a,b\nc,d\ne"), Some(8));
        assert_eq!(end("a,\"b\nc\"\nd"), Some(8));
        assert_eq!(
            end("a,\"b\"\"\nc\"\n\"d\ne"),
            Some(10),
            "doubled quote, open field"
        );
        assert_eq!(end("a,\"b\nc"), None, "a single record, not ended yet");
        assert_eq!(end("x\r\ny\r\n\"z"), Some(6));
        // A quote inside an unquoted field is literal: the csv crate decides.
        assert_eq!(end("5\" x,a\nb,\"c\nd\n"), Some(7));
        // Bare carriage returns: no newline at all.
        assert_eq!(end("a\rb\rc"), Some(4));
    }

    #[test]
    fn records_after_skipped_line_ends_get_their_own_line() {
        let block = Block {
            index: 0,
            first_line: 10,
            bytes: b"\n\r\nx,y\n".to_vec(),
        };
        let mut csv = headerless(&block.bytes);
        let mut record = csv::StringRecord::new();
        assert!(csv.read_record(&mut record).unwrap());
        assert_eq!(block.line(record.position()), 12);
    }
}
