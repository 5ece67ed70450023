//! The dataflow's timestamp: where a batch stands in four kinds of progress at once.
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
//! - `segment`: checkpoints (issue 13). A source emits at segment s until the job asks
//!   for a later one ([`crate::control::JobControl::request_segment`]), then moves on at
//!   a batch boundary, so checkpoint s is the cut "every segment up to s", and timely's
//!   progress tracking tells each operator when its input has passed it
//!   ([`least_segment`]). Feedback edges leave it alone.
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
    /// Last, so the derived `Ord` (map keys) orders as before within a segment.
    pub segment: u64,
}

impl Time {
    /// A time in segment 0 (see [`Time::in_segment`]).
    pub const fn new(epoch: u64, event: i64, processing: i64) -> Self {
        Time { epoch, event, processing, segment: 0 }
    }

    /// The same time in segment `segment`.
    pub const fn in_segment(self, segment: u64) -> Self {
        Time { segment, ..self }
    }

    /// The least time at or after both (coordinate-wise maximum).
    pub fn join(&self, other: &Time) -> Time {
        Time {
            epoch: self.epoch.max(other.epoch),
            event: self.event.max(other.event),
            processing: self.processing.max(other.processing),
            segment: self.segment.max(other.segment),
        }
    }

    /// The greatest time at or before both (coordinate-wise minimum).
    pub fn meet(&self, other: &Time) -> Time {
        Time {
            epoch: self.epoch.min(other.epoch),
            event: self.event.min(other.event),
            processing: self.processing.min(other.processing),
            segment: self.segment.min(other.segment),
        }
    }

    /// Where a source starts: epoch 0, no watermark, not driving processing time, segment 0.
    pub const fn source_start() -> Self {
        Time { epoch: 0, event: NO_TIME, processing: i64::MAX, segment: 0 }
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(e{}, wm {}, pt {}, s{})", self.epoch, self.event, self.processing, self.segment)
    }
}

impl PartialOrder for Time {
    #[inline]
    fn less_equal(&self, other: &Self) -> bool {
        self.epoch <= other.epoch
            && self.event <= other.event
            && self.processing <= other.processing
            && self.segment <= other.segment
    }
}

impl Timestamp for Time {
    type Summary = TimeSummary;
    fn minimum() -> Self {
        Time { epoch: 0, event: i64::MIN, processing: i64::MIN, segment: 0 }
    }
}

impl Refines<()> for Time {
    fn to_inner(_: ()) -> Self {
        Self::minimum()
    }
    fn to_outer(self) {}
    fn summarize(_: TimeSummary) {}
}

/// What a path does to a time: only feedback edges act, adding epochs (a record that
/// goes around a loop stays in its segment).
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

/// The least segment still in progress, `None` once the frontier is empty: every
/// segment below it is complete here (checkpoint s may be taken once this passes s).
pub fn least_segment(frontier: AntichainRef<'_, Time>) -> Option<u64> {
    frontier.iter().map(|t| t.segment).min()
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
        assert_eq!(s.results_in(&Time::new(4, 7, 9).in_segment(3)), Some(Time::new(5, 7, 9).in_segment(3)));
        assert_eq!(s.results_in(&Time::new(u64::MAX, 0, 0)), None);
    }

    #[test]
    fn segment_is_part_of_the_product_order() {
        let a = Time::new(1, 5, 0);
        assert!(a.less_equal(&a.in_segment(1)) && !a.in_segment(1).less_equal(&a));
        // A later segment at an earlier epoch: incomparable, as two sources may stand.
        let b = Time::new(0, 5, 0).in_segment(2);
        assert!(!a.less_equal(&b) && !b.less_equal(&a));
        assert!(Time::minimum().less_equal(&b) && Time::minimum().less_equal(&a));
        assert_eq!(a.join(&b), Time::new(1, 5, 0).in_segment(2));
        assert_eq!(Time::source_start().segment, 0);
        assert_eq!(format!("{:?}", Time::new(1, 2, 3).in_segment(4)), "(e1, wm 2, pt 3, s4)");
    }

    #[test]
    fn meet_is_the_greatest_lower_bound() {
        let a = Time::new(1, 9, 4).in_segment(3);
        let b = Time::new(2, 5, 7).in_segment(1);
        let m = a.meet(&b);
        assert_eq!(m, Time::new(1, 5, 4).in_segment(1));
        assert!(m.less_equal(&a) && m.less_equal(&b));
        assert_eq!(a.meet(&a), a);
        assert_eq!(a.meet(&b), b.meet(&a));
        // Any other lower bound of both is below the meet.
        let lower = Time::new(0, 5, 4).in_segment(1);
        assert!(lower.less_equal(&a) && lower.less_equal(&b) && lower.less_equal(&m));
    }

    #[test]
    fn least_segment_of_a_frontier() {
        let mut f = Antichain::new();
        f.insert(Time::new(3, 10, 0).in_segment(2));
        f.insert(Time::new(1, 10, 0).in_segment(5));
        assert_eq!(f.len(), 2, "incomparable: both stay");
        assert_eq!(least_segment(f.borrow()), Some(2));
        assert_eq!(least_epoch(f.borrow()), Some(1));
        assert_eq!(least_segment(Antichain::<Time>::new().borrow()), None);
        // Inserting a time below both leaves only it.
        f.insert(Time::new(0, 10, 0).in_segment(1));
        assert_eq!(f.elements(), &[Time::new(0, 10, 0).in_segment(1)]);
        assert_eq!(least_segment(f.borrow()), Some(1));
    }
}
