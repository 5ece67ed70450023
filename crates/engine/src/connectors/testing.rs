//! The testing source: records with explicit timestamps, interleaved with watermarks
//! and processing-time markers, so a test (ours or a user's) drives time exactly.
//!
//! A batch ends at every marker, so records before a marker travel at the old
//! watermark / processing time and records after it at the new one. Processing time
//! set by markers is the job's manual processing time (see [`crate::time`]): operators
//! see it once everything sent before the marker has been processed.

use std::collections::VecDeque;

use crate::error::UdfResult;
use crate::functions::{SourceReader, SourceStatus};

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

pub struct TestingSource<R> {
    events: VecDeque<TestEvent<R>>,
    watermark: Option<i64>,
    processing_time: i64,
}

impl<R> TestingSource<R> {
    pub fn new(events: impl IntoIterator<Item = TestEvent<R>>, processing_time_start: i64) -> Self {
        TestingSource { events: events.into_iter().collect(), watermark: None, processing_time: processing_time_start }
    }
}

impl<R: 'static> SourceReader<R> for TestingSource<R> {
    fn poll(&mut self, max: usize, out: &mut Vec<R>) -> UdfResult<SourceStatus> {
        let mut taken = 0;
        while taken < max {
            match self.events.pop_front() {
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
        Ok(if self.events.is_empty() { SourceStatus::Done } else { SourceStatus::More })
    }

    fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    fn processing_time(&self) -> Option<i64> {
        Some(self.processing_time)
    }

    /// To record (issue 13, a later step): how many events were taken, with the
    /// watermark and processing time reached.
    fn mark_position(&mut self, _segment: u64) -> UdfResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_end_at_markers_that_move_time() {
        use TestEvent::*;
        let mut s = TestingSource::new(
            vec![Record(1), Record(2), Watermark(10), Record(3), Watermark(5), Record(4), ProcessingTime(7), Record(5)],
            0,
        );
        let mut out = Vec::new();
        assert_eq!(s.poll(100, &mut out).unwrap(), SourceStatus::More);
        assert_eq!((out.clone(), s.watermark(), s.processing_time()), (vec![1, 2], Some(10), Some(0)));
        out.clear();
        // The lower watermark is ignored and does not end the batch.
        assert_eq!(s.poll(100, &mut out).unwrap(), SourceStatus::More);
        assert_eq!((out.clone(), s.watermark(), s.processing_time()), (vec![3, 4], Some(10), Some(7)));
        out.clear();
        assert_eq!(s.poll(100, &mut out).unwrap(), SourceStatus::Done);
        assert_eq!(out, vec![5]);
    }
}
