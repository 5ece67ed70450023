//! The dataflow's timestamp: where a batch stands in three kinds of progress at once.
//!
//! - `epoch`: flow control (sources advance it every few batches and stay a bounded
//!   number of epochs ahead of the sinks) and iteration rounds (a feedback edge adds 1).
//! - `event`: the event-time watermark of the partition that sent the batch. A source
//!   or a timestamp assigner holds its capability at its current watermark, so an
//!   operator's input frontier tells the watermark of its whole input: the minimum over
//!   every partition, across exchanges and processes, computed by timely's progress
//!   tracking.
//! - `processing`: processing time when it is driven by a testing source (manual
//!   processing time); otherwise sources hold it at `i64::MAX` and it means nothing.
//!
//! Times are ordered as a product (each coordinate `<=`): a frontier is an antichain, and
//! the watermark it implies is the least `event` over its elements.

use std::fmt;

use serde::{Deserialize, Serialize};
use timely::order::PartialOrder;
use timely::progress::frontier::AntichainRef;
use timely::progress::timestamp::{PathSummary, Refines, Timestamp};

/// "No watermark yet", and the timestamp of records that have none (Flink's `Long.MIN_VALUE`).
pub const NO_TIME: i64 = i64::MIN;

/// The watermark of an idle partition: above every real watermark, below the end of
/// input (`i64::MAX`). Operators leave idle partitions out of the minimum and do not
/// advance while every partition is idle (Flink's stream status). Unlike Flink, a
/// partition that resumes after being idle does not hold the watermark back again
/// (timely capabilities only move forward); its records are late if they are behind.
pub const IDLE: i64 = i64::MAX - 1;

/// The watermark of a partition that has ended: above every real watermark, so it
/// holds nothing back (Flink's +infinity), but below [`IDLE`], so it still counts
/// when every other partition is idle (Flink's valve then emits +infinity too).
pub const FINISHED: i64 = IDLE - 1;

/// Which clock a window assigner, a trigger or a timer follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimeDomain {
    /// Record timestamps; progress is the watermark.
    EventTime,
    /// The operator's clock (the wall clock, or a testing source's manual clock).
    ProcessingTime,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Time {
    pub epoch: u64,
    pub event: i64,
    pub processing: i64,
}

impl Time {
    pub const fn new(epoch: u64, event: i64, processing: i64) -> Self {
        Time { epoch, event, processing }
    }

    /// The least time at or after both (coordinate-wise maximum).
    pub fn join(&self, other: &Time) -> Time {
        Time {
            epoch: self.epoch.max(other.epoch),
            event: self.event.max(other.event),
            processing: self.processing.max(other.processing),
        }
    }

    /// Where a source starts: epoch 0, no watermark, not driving processing time.
    pub const fn source_start() -> Self {
        Time { epoch: 0, event: NO_TIME, processing: i64::MAX }
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(e{}, wm {}, pt {})", self.epoch, self.event, self.processing)
    }
}

impl PartialOrder for Time {
    #[inline]
    fn less_equal(&self, other: &Self) -> bool {
        self.epoch <= other.epoch && self.event <= other.event && self.processing <= other.processing
    }
}

impl Timestamp for Time {
    type Summary = TimeSummary;
    fn minimum() -> Self {
        Time { epoch: 0, event: i64::MIN, processing: i64::MIN }
    }
}

impl Refines<()> for Time {
    fn to_inner(_: ()) -> Self {
        Self::minimum()
    }
    fn to_outer(self) {}
    fn summarize(_: TimeSummary) {}
}

/// What a path does to a time: only feedback edges act, adding epochs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimeSummary {
    pub epochs: u64,
}

impl PartialOrder for TimeSummary {
    fn less_equal(&self, other: &Self) -> bool {
        self.epochs <= other.epochs
    }
}

impl PathSummary<Time> for TimeSummary {
    fn results_in(&self, src: &Time) -> Option<Time> {
        Some(Time { epoch: src.epoch.checked_add(self.epochs)?, ..*src })
    }
    fn followed_by(&self, other: &Self) -> Option<Self> {
        Some(TimeSummary { epochs: self.epochs.checked_add(other.epochs)? })
    }
}

/// The watermark a frontier implies: the least `event` of its elements, leaving out
/// idle partitions ([`IDLE`]); `i64::MAX` once it is empty (the input
/// has ended); `None` while every partition is idle (the watermark stays where it is).
pub fn watermark(frontier: AntichainRef<'_, Time>) -> Option<i64> {
    if frontier.is_empty() {
        return Some(i64::MAX);
    }
    frontier.iter().map(|t| t.event).filter(|&e| e < IDLE).min()
}

/// Manual processing time a frontier implies (see [`watermark`]).
pub fn processing_time(frontier: AntichainRef<'_, Time>) -> i64 {
    frontier.iter().map(|t| t.processing).min().unwrap_or(i64::MAX)
}

/// The least epoch still in progress, `None` once the frontier is empty.
pub fn least_epoch(frontier: AntichainRef<'_, Time>) -> Option<u64> {
    frontier.iter().map(|t| t.epoch).min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use timely::progress::Antichain;

    #[test]
    fn product_order_agrees_with_ord() {
        let a = Time::new(1, 5, 0);
        let b = Time::new(2, 5, 0);
        let c = Time::new(0, 9, 0);
        assert!(a.less_equal(&b) && a <= b);
        assert!(!a.less_equal(&c) && !c.less_equal(&a));
    }

    #[test]
    fn frontier_watermark_is_the_least_event_time() {
        let mut f = Antichain::new();
        f.insert(Time::new(3, 10, i64::MAX));
        f.insert(Time::new(5, 4, i64::MAX));
        assert_eq!(watermark(f.borrow()), Some(4));
        assert_eq!(least_epoch(f.borrow()), Some(3));
        assert_eq!(watermark(Antichain::<Time>::new().borrow()), Some(i64::MAX));
        let idle = Antichain::from_elem(Time::new(0, IDLE, 0));
        assert_eq!(watermark(idle.borrow()), None);
    }

    #[test]
    fn feedback_adds_epochs_only() {
        let s = TimeSummary { epochs: 1 };
        assert_eq!(s.results_in(&Time::new(4, 7, 9)), Some(Time::new(5, 7, 9)));
        assert_eq!(s.results_in(&Time::new(u64::MAX, 0, 0)), None);
    }
}
