//! Watermark generation: Flink's `WatermarkStrategy` without the operator around it.
//!
//! One generator per partition (per worker instance of a timestamp assigner). Pure: the
//! operator feeds it timestamps and processing-time readings and asks for the watermark.
//!
//! - Bounded out-of-orderness `b`: watermark = highest timestamp seen - `b` - 1 (Flink's
//!   `BoundedOutOfOrdernessWatermarks`); monotonous timestamps are `b = 0`. Flink emits it
//!   on a 200 ms timer; the engine emits it after every batch, so a job's watermarks
//!   depend on its input only.
//! - Idleness: a partition that saw no record for the idleness timeout (processing
//!   time) is idle: it stops holding the watermark back (see [`crate::time::IDLE`]).

use crate::plan::WatermarkSpec;
// The watermark values a generator reports are the timestamp's own (operators read
// them from frontiers too); re-exported here where generators are configured.
use crate::time::NO_TIME;
pub use crate::time::{FINISHED, IDLE};

#[derive(Clone, Debug)]
pub struct WatermarkGenerator {
    spec: WatermarkSpec,
    idleness_ms: Option<i64>,
    max_timestamp: i64,
    /// Processing time of the last record (or of the start).
    last_activity: i64,
    idle: bool,
    finished: bool,
}

impl WatermarkGenerator {
    pub fn new(spec: WatermarkSpec, idleness_ms: Option<i64>, now: i64) -> Self {
        WatermarkGenerator {
            spec,
            idleness_ms,
            max_timestamp: NO_TIME,
            last_activity: now,
            idle: false,
            finished: false,
        }
    }

    /// A record with timestamp `ts` passed at processing time `now`.
    pub fn on_event(&mut self, ts: i64, now: i64) {
        self.max_timestamp = self.max_timestamp.max(ts);
        self.last_activity = self.last_activity.max(now);
    }

    /// Checks the idleness timeout at processing time `now`; true once idle (for good,
    /// see [`IDLE`]).
    pub fn check_idle(&mut self, now: i64) -> bool {
        if self.last_activity == i64::MIN {
            // Started before processing time was known (manual time not yet set):
            // the timeout runs from the first reading.
            self.last_activity = now;
        }
        if let Some(limit) = self.idleness_ms {
            if !self.idle && now.saturating_sub(self.last_activity) >= limit {
                self.idle = true;
            }
        }
        self.idle
    }

    /// When [`WatermarkGenerator::check_idle`] would next turn true, if it can.
    pub fn idle_deadline(&self) -> Option<i64> {
        match (self.idle || self.finished, self.idleness_ms) {
            (false, Some(_)) if self.last_activity == i64::MIN => None,
            (false, Some(limit)) => Some(self.last_activity.saturating_add(limit)),
            _ => None,
        }
    }

    /// The highest timestamp seen ([`NO_TIME`] before any record).
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// Whether the partition went idle (for good).
    pub fn is_idle(&self) -> bool {
        self.idle
    }

    /// Whether the partition has ended.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Checkpoints: goes on from a snapshot's highest timestamp and idleness, so a
    /// restored job's watermark starts where it was. The idleness timeout, if not
    /// idle, runs from the generator's start (processing time moved on meanwhile).
    pub fn resume(&mut self, max_timestamp: i64, idle: bool) {
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
        self.idle |= idle;
    }

    /// The partition has ended: its watermark is [`FINISHED`] from now on.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// The current watermark ([`NO_TIME`] before any record, [`IDLE`] once idle,
    /// [`FINISHED`] once ended).
    pub fn watermark(&self) -> i64 {
        if self.finished {
            return FINISHED;
        }
        if self.idle {
            return IDLE;
        }
        match self.spec {
            WatermarkSpec::None => NO_TIME,
            WatermarkSpec::BoundedOutOfOrderness { bound_ms } if self.max_timestamp != NO_TIME => {
                self.max_timestamp.saturating_sub(bound_ms).saturating_sub(1).min(FINISHED - 1)
            }
            WatermarkSpec::BoundedOutOfOrderness { .. } => NO_TIME,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_out_of_orderness_trails_the_highest_timestamp() {
        let mut g = WatermarkGenerator::new(WatermarkSpec::BoundedOutOfOrderness { bound_ms: 100 }, None, 0);
        assert_eq!(g.watermark(), NO_TIME);
        g.on_event(1000, 0);
        assert_eq!(g.watermark(), 899);
        g.on_event(500, 0);
        assert_eq!(g.watermark(), 899, "an older record does not move it back");
        g.on_event(2000, 0);
        assert_eq!(g.watermark(), 1899);
    }

    #[test]
    fn monotonous_is_one_below_the_highest_timestamp() {
        let mut g = WatermarkGenerator::new(WatermarkSpec::BoundedOutOfOrderness { bound_ms: 0 }, None, 0);
        g.on_event(7, 0);
        assert_eq!(g.watermark(), 6);
    }

    #[test]
    fn no_watermarks_never_advance() {
        let mut g = WatermarkGenerator::new(WatermarkSpec::None, None, 0);
        g.on_event(7, 0);
        assert_eq!(g.watermark(), NO_TIME);
    }

    #[test]
    fn idleness_releases_after_the_timeout_of_silence() {
        let mut g = WatermarkGenerator::new(WatermarkSpec::BoundedOutOfOrderness { bound_ms: 0 }, Some(50), 1000);
        assert_eq!(g.idle_deadline(), Some(1050));
        assert!(!g.check_idle(1049));
        g.on_event(10, 1040);
        assert!(!g.check_idle(1080), "a record restarts the timeout");
        assert!(g.check_idle(1090));
        assert_eq!(g.watermark(), IDLE);
        assert_eq!(g.idle_deadline(), None);
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let mut g = WatermarkGenerator::new(WatermarkSpec::BoundedOutOfOrderness { bound_ms: i64::MAX }, None, 0);
        g.on_event(i64::MIN + 1, 0);
        assert_eq!(g.watermark(), i64::MIN);
        g.on_event(i64::MAX, 0);
        assert!(g.watermark() < IDLE);
    }
}
