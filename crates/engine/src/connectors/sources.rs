//! Source factories for the built-in sources, for any [`Record`] type.

use std::path::PathBuf;
use std::sync::Arc;

use crate::connectors::sequence::sequence_share;
use crate::connectors::socket::SocketLines;
use crate::connectors::text::EncodingErrors;
use crate::connectors::text_file::{list_input_files, plan_shares, LineReader};
use crate::error::{UdfError, UdfResult};
use crate::functions::{SourceFactory, SourceReader, SourceStatus};
use crate::record::Record;

/// One record per line of a file, or of every file in a directory; each worker reads
/// its share. A missing path fails when the job starts, naming the path; a line that is
/// not UTF-8 is handled as `errors` says.
pub fn text_file<R: Record>(path: impl Into<PathBuf>, errors: EncodingErrors) -> SourceFactory<R> {
    let path = path.into();
    Arc::new(move |ctx| {
        let files = list_input_files(&path).map_err(|e| UdfError::new(e.to_string()))?;
        let shares = plan_shares(&files, ctx.index, ctx.peers).map_err(|e| UdfError::new(e.to_string()))?;
        Ok(Box::new(TextFileReader { lines: LineReader::new(shares, errors), buffer: Vec::new() })
            as Box<dyn SourceReader<R>>)
    })
}

struct TextFileReader {
    lines: LineReader,
    buffer: Vec<String>,
}

impl<R: Record> SourceReader<R> for TextFileReader {
    fn poll(&mut self, max: usize, out: &mut Vec<R>) -> UdfResult<SourceStatus> {
        let more = self.lines.next_batch(max, &mut self.buffer).map_err(|e| UdfError::new(e.to_string()))?;
        R::from_lines(&mut self.buffer, out);
        self.buffer.clear();
        Ok(if more { SourceStatus::More } else { SourceStatus::Done })
    }

    /// To record (issue 13, a later step): the file and byte offset the next line starts at.
    fn mark_position(&mut self, _segment: u64) -> UdfResult<()> {
        Ok(())
    }
}

/// The integers `start..=end`, split across workers in contiguous ranges.
pub fn sequence<R: Record>(start: i64, end: i64) -> SourceFactory<R> {
    Arc::new(move |ctx| {
        let range = sequence_share(start, end, ctx.index, ctx.peers);
        Ok(Box::new(SequenceReader { next: *range.start(), end: *range.end(), done: range.is_empty() })
            as Box<dyn SourceReader<R>>)
    })
}

struct SequenceReader {
    next: i64,
    end: i64,
    done: bool,
}

impl<R: Record> SourceReader<R> for SequenceReader {
    fn poll(&mut self, max: usize, out: &mut Vec<R>) -> UdfResult<SourceStatus> {
        if self.done {
            return Ok(SourceStatus::Done);
        }
        let last = self.next.saturating_add(max.saturating_sub(1) as i64).min(self.end);
        R::from_ints(self.next..=last, out);
        if last == self.end {
            self.done = true;
            Ok(SourceStatus::Done)
        } else {
            self.next = last + 1;
            Ok(SourceStatus::More)
        }
    }

    /// To record (issue 13, a later step): `next`, the first integer not yet emitted.
    fn mark_position(&mut self, _segment: u64) -> UdfResult<()> {
        Ok(())
    }
}

/// Lines read from a TCP server (Flink's socketTextStream): runs on worker 0 and ends
/// when the server closes the connection. A line that is not UTF-8 is handled as
/// `errors` says.
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
