//! Source factories for the built-in sources, for any [`Record`] type.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use crate::checkpoint::restore::Restore;
use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
use crate::connectors::files::{files_source, Listing};
use crate::connectors::positions::dealt_pieces;
use crate::connectors::sequence::sequence_share;
use crate::connectors::socket::SocketLines;
use crate::connectors::text::EncodingErrors;
use crate::connectors::text_file::SPLIT_MIN_BYTES;
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
    let listing = Listing { paths, recursive, monitor: None };
    files_source(listing, crate::connectors::formats::text_lines(errors, split_min))
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
