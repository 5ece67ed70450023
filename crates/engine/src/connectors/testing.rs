//! The testing source: records with explicit timestamps, interleaved with watermarks
//! and processing-time markers, so a test (ours or a user's) drives time exactly.
//!
//! A batch ends at every marker, so records before a marker travel at the old
//! watermark / processing time and records after it at the new one. Processing time
//! set by markers is the job's manual processing time (see [`crate::time`]): operators
//! see it once everything sent before the marker has been processed.

use std::collections::VecDeque;

use crate::checkpoint::restore::Restore;
use crate::checkpoint::state_io::{StateReader, StateWriter};
use crate::connectors::positions::single_position;
use crate::error::{UdfError, UdfResult};
use crate::functions::{SourceReader, SourceStatus};
use crate::record::Record;

/// One step of a testing source.
#[derive(Clone, Debug, PartialEq)]
pub enum TestEvent<R> {
    /// A record (its timestamp is in its metadata).
    Record(R),
    /// The source's watermark becomes this (a lower one is ignored).
    Watermark(i64),
    /// Manual processing time becomes this (a lower one is ignored).
    ProcessingTime(i64),
}

/// Replayable: its events are fixed when the job is built, so a position is how many
/// were taken, with the clocks they moved.
pub struct TestingSource<R> {
    events: VecDeque<TestEvent<R>>,
    watermark: Option<i64>,
    processing_time: i64,
    /// Events taken so far.
    taken: u64,
    /// `(taken, watermark, processing_time)` at the last mark.
    marked: Position,
}

type Position = (u64, Option<i64>, i64);

impl<R> TestingSource<R> {
    pub fn new(events: impl IntoIterator<Item = TestEvent<R>>, processing_time_start: i64) -> Self {
        TestingSource {
            events: events.into_iter().collect(),
            watermark: None,
            processing_time: processing_time_start,
            taken: 0,
            marked: (0, None, processing_time_start),
        }
    }
}

impl<R: Record> SourceReader<R> for TestingSource<R> {
    fn poll(&mut self, max: usize, out: &mut Vec<R>) -> UdfResult<SourceStatus> {
        let mut taken = 0;
        while taken < max {
            let event = self.events.pop_front();
            self.taken += u64::from(event.is_some());
            match event {
                Some(TestEvent::Record(r)) => {
                    out.push(r);
                    taken += 1;
                }
                Some(TestEvent::Watermark(t)) => {
                    let changed = self.watermark.is_none_or(|w| t > w);
                    if changed {
                        self.watermark = Some(t);
                        break;
                    }
                }
                Some(TestEvent::ProcessingTime(t)) => {
                    if t > self.processing_time {
                        self.processing_time = t;
                        break;
                    }
                }
                None => break,
            }
        }
        if self.events.is_empty() {
            // At the end, in every later checkpoint.
            self.marked = (self.taken, self.watermark, self.processing_time);
            return Ok(SourceStatus::Done);
        }
        Ok(SourceStatus::More)
    }

    fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    fn processing_time(&self) -> Option<i64> {
        Some(self.processing_time)
    }

    fn mark_position(&mut self, _segment: u64) -> UdfResult<()> {
        self.marked = (self.taken, self.watermark, self.processing_time);
        Ok(())
    }

    /// Events taken, whether there is a watermark, the watermark, processing time.
    fn snapshot(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        let (taken, watermark, processing_time) = self.marked;
        let mut w = StateWriter::<R>::from_vec(std::mem::take(out));
        w.u64(taken);
        w.bool(watermark.is_some());
        w.i64(watermark.unwrap_or(0));
        w.i64(processing_time);
        *out = w.into_bytes();
        Ok(())
    }

    /// A testing source runs on one worker: it resumes from the one position written.
    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        let Some(section) = single_position(from)? else { return Ok(()) };
        let mut r = StateReader::<R>::new(section);
        let taken = r.u64()?;
        let has_watermark = r.bool()?;
        let watermark = has_watermark.then_some(r.i64()?);
        let processing_time = r.i64()?;
        r.finish()?;
        let left = u64::try_from(self.events.len()).unwrap_or(u64::MAX);
        if taken > left {
            return Err(UdfError::internal(format!(
                "the checkpoint's testing source had taken {taken} events; this one has {left}"
            )));
        }
        self.events.drain(..taken as usize);
        self.taken = taken;
        self.watermark = watermark;
        self.processing_time = processing_time;
        self.marked = (taken, watermark, processing_time);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn batches_end_at_markers_that_move_time() {
        use TestEvent::*;
        let mut s = TestingSource::new(
            vec![Record(1), Record(2), Watermark(10), Record(3), Watermark(5), Record(4), ProcessingTime(7), Record(5)]
                .into_iter()
                .map(|e| match e {
                    Record(n) => Record(n.to_string()),
                    Watermark(t) => Watermark(t),
                    ProcessingTime(t) => ProcessingTime(t),
                }),
            0,
        );
        let mut out: Vec<String> = Vec::new();
        assert_eq!(s.poll(100, &mut out).unwrap(), SourceStatus::More);
        assert_eq!((out.clone(), s.watermark(), s.processing_time()), (strings(&["1", "2"]), Some(10), Some(0)));
        out.clear();
        // The lower watermark is ignored and does not end the batch.
        assert_eq!(s.poll(100, &mut out).unwrap(), SourceStatus::More);
        assert_eq!((out.clone(), s.watermark(), s.processing_time()), (strings(&["3", "4"]), Some(10), Some(7)));
        out.clear();
        assert_eq!(s.poll(100, &mut out).unwrap(), SourceStatus::Done);
        assert_eq!(out, vec!["5"]);
    }
}
