//! Source factories for the built-in sources, for any [`Record`] type.

use std::collections::VecDeque;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::restore::Restore;
use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
use crate::connectors::positions::dealt_pieces;
use crate::connectors::sequence::sequence_share;
use crate::connectors::socket::SocketLines;
use crate::connectors::text::EncodingErrors;
use crate::connectors::text_file::{list_files, plan_shares_with, FileShare, LineReader, SPLIT_MIN_BYTES};
use crate::error::{UdfError, UdfResult};
use crate::functions::{SourceFactory, SourceReader, SourceStatus};
use crate::record::Record;

/// One record per line of a file, or of every file in a directory; each worker reads
/// its share. A missing path fails when the job starts, naming the path; a line that is
/// not UTF-8 is handled as `errors` says.
pub fn text_file<R: Record>(path: impl Into<PathBuf>, errors: EncodingErrors) -> SourceFactory<R> {
    text_file_split(path, errors, SPLIT_MIN_BYTES)
}

/// [`text_file`] splitting files from `split_min` bytes on (tests split small files).
#[doc(hidden)]
pub fn text_file_split<R: Record>(
    path: impl Into<PathBuf>,
    errors: EncodingErrors,
    split_min: u64,
) -> SourceFactory<R> {
    text_files_split(vec![path.into()], false, errors, split_min)
}

/// The lines of several files and directories (Flink's `FileSource` with its text line
/// format): every file of every path, one after the other, split across workers as
/// [`text_file`]'s; with `recursive`, directories are read with their sub-directories.
pub fn text_files<R: Record>(paths: Vec<PathBuf>, recursive: bool, errors: EncodingErrors) -> SourceFactory<R> {
    text_files_split(paths, recursive, errors, SPLIT_MIN_BYTES)
}

/// [`text_files`] splitting files from `split_min` bytes on (tests split small files).
#[doc(hidden)]
pub fn text_files_split<R: Record>(
    paths: Vec<PathBuf>,
    recursive: bool,
    errors: EncodingErrors,
    split_min: u64,
) -> SourceFactory<R> {
    Arc::new(move |ctx| {
        let mut files = Vec::new();
        for path in &paths {
            files.extend(list_files(path, recursive).map_err(|e| UdfError::new(e.to_string()))?);
        }
        let shares =
            plan_shares_with(&files, ctx.index, ctx.peers, split_min).map_err(|e| UdfError::new(e.to_string()))?;
        Ok(Box::new(TextFileReader {
            peers: ctx.peers,
            marked: shares.clone(),
            lines: LineReader::new(shares, errors),
            errors,
            split_min,
            buffer: Vec::new(),
        }) as Box<dyn SourceReader<R>>)
    })
}

struct TextFileReader {
    lines: LineReader,
    errors: EncodingErrors,
    /// Ranges from this many bytes on are cut among the readers of a rescaled restore.
    split_min: u64,
    /// How many readers the source has.
    peers: usize,
    buffer: Vec<String>,
    /// The byte ranges left at the last mark (see [`LineReader::remaining`]).
    marked: Vec<FileShare>,
}

impl<R: Record> SourceReader<R> for TextFileReader {
    fn poll(&mut self, max: usize, out: &mut Vec<R>) -> UdfResult<SourceStatus> {
        let more = self.lines.next_batch(max, &mut self.buffer).map_err(|e| UdfError::new(e.to_string()))?;
        R::from_lines(&mut self.buffer, out);
        self.buffer.clear();
        if !more {
            // At the end: nothing left, in every later checkpoint.
            self.marked.clear();
        }
        Ok(if more { SourceStatus::More } else { SourceStatus::Done })
    }

    fn mark_position(&mut self, _segment: u64) -> UdfResult<()> {
        self.marked = self.lines.remaining();
        Ok(())
    }

    /// The byte ranges left to read: `count`, then per range the path's bytes, start
    /// and end.
    fn snapshot(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        let mut w = StateWriter::<R>::from_vec(std::mem::take(out));
        w.u64(self.marked.len() as u64);
        for share in &self.marked {
            w.bytes(share.path.as_os_str().as_bytes());
            w.u64(share.start);
            w.u64(share.end);
        }
        *out = w.into_bytes();
        Ok(())
    }

    /// Each range is a piece of work on its own (a line belongs to the range its first
    /// byte is in, wherever the range is cut), so after a rescale every old reader's
    /// ranges, those from `split_min` bytes on cut in as many parts as there are new
    /// readers, are dealt to the new readers: no line is read twice or skipped.
    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        let peers = self.peers;
        let parts = if from.old_peers() == peers { 1 } else { peers };
        let split_min = self.split_min;
        let read = |section: &[u8]| -> Result<Vec<FileShare>, StateError> {
            let shares = read_shares::<R>(section)?;
            Ok(shares
                .into_iter()
                .flat_map(|s| cut_share(s, if parts > 1 { split_min } else { u64::MAX }, parts))
                .collect())
        };
        if let Some(shares) = dealt_pieces(from, peers, read)? {
            self.marked = shares.clone();
            self.lines = LineReader::new(shares, self.errors);
        }
        Ok(())
    }
}

/// `share` cut in `parts` contiguous byte ranges if it has `split_min` bytes or more.
fn cut_share(share: FileShare, split_min: u64, parts: usize) -> Vec<FileShare> {
    let len = share.end.saturating_sub(share.start);
    if len < split_min.max(1) || parts < 2 {
        return vec![share];
    }
    // Exact in u128; each cut lies within the share.
    let cut = |i: usize| share.start + u64::try_from(u128::from(len) * i as u128 / parts as u128).unwrap_or(len);
    (0..parts)
        .map(|i| FileShare { path: share.path.clone(), start: cut(i), end: cut(i + 1) })
        .filter(|s| s.start < s.end)
        .collect()
}

fn read_shares<R: Record>(section: &[u8]) -> Result<Vec<FileShare>, StateError> {
    let mut r = StateReader::<R>::new(section);
    let n = r.u64()?;
    let mut shares = Vec::new();
    for _ in 0..n {
        let path = Path::new(std::ffi::OsStr::from_bytes(r.bytes()?)).to_path_buf();
        let (start, end) = (r.u64()?, r.u64()?);
        shares.push(FileShare { path, start, end });
    }
    r.finish()?;
    Ok(shares)
}

/// The integers `start..=end`, split across workers in contiguous ranges.
pub fn sequence<R: Record>(start: i64, end: i64) -> SourceFactory<R> {
    Arc::new(move |ctx| {
        let range = sequence_share(start, end, ctx.index, ctx.peers);
        let ranges: VecDeque<_> = (!range.is_empty()).then(|| (*range.start(), *range.end())).into_iter().collect();
        Ok(Box::new(SequenceReader { marked: ranges.clone(), ranges, peers: ctx.peers }) as Box<dyn SourceReader<R>>)
    })
}

/// Inclusive ranges still to emit, in order; one, unless a restore after a rescale
/// dealt this reader several old readers' ranges.
struct SequenceReader {
    ranges: VecDeque<(i64, i64)>,
    /// `ranges` at the last mark.
    marked: VecDeque<(i64, i64)>,
    /// How many readers the source has.
    peers: usize,
}

impl<R: Record> SourceReader<R> for SequenceReader {
    fn poll(&mut self, max: usize, out: &mut Vec<R>) -> UdfResult<SourceStatus> {
        let Some(&(next, end)) = self.ranges.front() else {
            self.marked.clear();
            return Ok(SourceStatus::Done);
        };
        let last = next.saturating_add(max.saturating_sub(1) as i64).min(end);
        R::from_ints(next..=last, out);
        if last == end {
            self.ranges.pop_front();
        } else {
            self.ranges[0].0 = last + 1;
        }
        if self.ranges.is_empty() {
            // At the end: nothing left, in every later checkpoint.
            self.marked.clear();
            return Ok(SourceStatus::Done);
        }
        Ok(SourceStatus::More)
    }

    fn mark_position(&mut self, _segment: u64) -> UdfResult<()> {
        self.marked.clone_from(&self.ranges);
        Ok(())
    }

    /// The ranges left: `count`, then each one's first and last integer.
    fn snapshot(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        let mut w = StateWriter::<R>::from_vec(std::mem::take(out));
        w.u64(self.marked.len() as u64);
        for &(first, last) in &self.marked {
            w.i64(first);
            w.i64(last);
        }
        *out = w.into_bytes();
        Ok(())
    }

    /// After a rescale the old readers' ranges are dealt to the new ones.
    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        if let Some(ranges) = dealt_pieces(from, self.peers, read_ranges::<R>)? {
            self.ranges = ranges.into();
            self.marked.clone_from(&self.ranges);
        }
        Ok(())
    }
}

fn read_ranges<R: Record>(section: &[u8]) -> Result<Vec<(i64, i64)>, StateError> {
    let mut r = StateReader::<R>::new(section);
    let n = r.u64()?;
    let mut ranges = Vec::new();
    for _ in 0..n {
        let at = section.len() - r.remaining();
        let (first, last) = (r.i64()?, r.i64()?);
        if first > last {
            return Err(StateError::Corrupt { offset: at, what: format!("an empty range {first}..={last}") });
        }
        ranges.push((first, last));
    }
    r.finish()?;
    Ok(ranges)
}

/// Lines read from a TCP server (Flink's socketTextStream): runs on worker 0 and ends
/// when the server closes the connection. A line that is not UTF-8 is handled as
/// `errors` says.
///
/// Not replayable: what the server sent cannot be asked for again, so the reader keeps
/// no position (its snapshot writes nothing) and a restored job reads on from a new
/// connection. Lines sent between the checkpoint and the failure are lost: at-most-once.
pub fn socket_text<R: Record>(host: String, port: u16, delimiter: u8, errors: EncodingErrors) -> SourceFactory<R> {
    Arc::new(move |ctx| {
        let lines = SocketLines::connect(&host, port, delimiter, errors, ctx.waker.clone()).map_err(UdfError::new)?;
        Ok(Box::new(SocketReader { lines, buffer: Vec::new() }) as Box<dyn SourceReader<R>>)
    })
}

struct SocketReader {
    lines: SocketLines,
    buffer: Vec<String>,
}

impl<R: Record> SourceReader<R> for SocketReader {
    fn poll(&mut self, max: usize, out: &mut Vec<R>) -> UdfResult<SourceStatus> {
        let status = self.lines.poll(max, &mut self.buffer).map_err(UdfError::new)?;
        R::from_lines(&mut self.buffer, out);
        self.buffer.clear();
        Ok(status)
    }

    fn cancel(&mut self) {
        self.lines.cancel();
    }
}
