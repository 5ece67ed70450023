//! Window assigners for [`super::event_time::WindowCore`], Flink's: tumbling, sliding and
//! session windows in event time or processing time, and the single global window.
//!
//! Pure functions of (timestamp, processing time, value): no state, no timely. Session
//! windows are only *assigned* here (`[ts, ts + gap)`); merging them with a key's open
//! windows is done by the window core with [`touches`] and [`cover`].

use std::fmt;

use super::{sliding_windows, tumbling_window, TimeWindow, Window};
use crate::error::{UdfError, UdfResult};

// The clocks belong to time; assigners, triggers and windows name them here too.
pub use crate::time::TimeDomain;

/// Extracts a session gap (milliseconds, must be > 0) from a record: Flink's
/// `SessionWindowTimeGapExtractor`. A user function, so it may fail.
pub type GapFn<V> = Box<dyn FnMut(&V) -> UdfResult<i64>>;

/// The gap of session windows.
pub enum SessionGap<V> {
    /// `with_gap(gap)`.
    Static(i64),
    /// `with_dynamic_gap(extractor)`: each record opens `[ts, ts + extractor(record))`.
    Dynamic(GapFn<V>),
}

impl<V> fmt::Debug for SessionGap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionGap::Static(g) => write!(f, "Static({g})"),
            SessionGap::Dynamic(_) => write!(f, "Dynamic(..)"),
        }
    }
}

/// Flink's window assigners. Sizes, slides, offsets and gaps are milliseconds.
///
/// | Flink                                          | here                                                  |
/// |------------------------------------------------|-------------------------------------------------------|
/// | `TumblingEventTimeWindows.of(size[, offset])`  | [`Assigner::tumbling_event_time`]`(size, offset)`     |
/// | `SlidingEventTimeWindows.of(size, slide[, o])` | [`Assigner::sliding_event_time`]`(size, slide, o)`    |
/// | `EventTimeSessionWindows.withGap(gap)`         | [`Assigner::event_time_session`]`(gap)`               |
/// | `EventTimeSessionWindows.withDynamicGap(f)`    | [`Assigner::event_time_session_dynamic`]`(f)`         |
/// | `Tumbling/Sliding ProcessingTimeWindows`, `ProcessingTimeSessionWindows` | the `processing_time` constructors |
/// | `GlobalWindows.create()`                       | [`Assigner::global`]                                  |
pub enum Assigner<V> {
    Tumbling { domain: TimeDomain, size: i64, offset: i64 },
    Sliding { domain: TimeDomain, size: i64, slide: i64, offset: i64 },
    Session { domain: TimeDomain, gap: SessionGap<V> },
    Global,
}

impl<V> fmt::Debug for Assigner<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Assigner::Tumbling { domain, size, offset } => {
                write!(f, "Tumbling({domain:?}, size {size}, offset {offset})")
            }
            Assigner::Sliding { domain, size, slide, offset } => {
                write!(f, "Sliding({domain:?}, size {size}, slide {slide}, offset {offset})")
            }
            Assigner::Session { domain, gap } => write!(f, "Session({domain:?}, {gap:?})"),
            Assigner::Global => write!(f, "Global"),
        }
    }
}

impl<V> Assigner<V> {
    pub fn tumbling_event_time(size: i64, offset: i64) -> Self {
        Assigner::Tumbling { domain: TimeDomain::EventTime, size, offset }
    }

    pub fn sliding_event_time(size: i64, slide: i64, offset: i64) -> Self {
        Assigner::Sliding { domain: TimeDomain::EventTime, size, slide, offset }
    }

    pub fn event_time_session(gap: i64) -> Self {
        Assigner::Session { domain: TimeDomain::EventTime, gap: SessionGap::Static(gap) }
    }

    pub fn event_time_session_dynamic(gap: impl FnMut(&V) -> UdfResult<i64> + 'static) -> Self {
        Assigner::Session { domain: TimeDomain::EventTime, gap: SessionGap::Dynamic(Box::new(gap)) }
    }

    pub fn tumbling_processing_time(size: i64, offset: i64) -> Self {
        Assigner::Tumbling { domain: TimeDomain::ProcessingTime, size, offset }
    }

    pub fn sliding_processing_time(size: i64, slide: i64, offset: i64) -> Self {
        Assigner::Sliding { domain: TimeDomain::ProcessingTime, size, slide, offset }
    }

    pub fn processing_time_session(gap: i64) -> Self {
        Assigner::Session { domain: TimeDomain::ProcessingTime, gap: SessionGap::Static(gap) }
    }

    pub fn processing_time_session_dynamic(gap: impl FnMut(&V) -> UdfResult<i64> + 'static) -> Self {
        Assigner::Session { domain: TimeDomain::ProcessingTime, gap: SessionGap::Dynamic(Box::new(gap)) }
    }

    pub fn global() -> Self {
        Assigner::Global
    }

    /// Flink's `isEventTime()`: whether windows live in event time (lateness, late data,
    /// event-time clean-up). `GlobalWindows` is *not* event time, as in Flink.
    pub fn is_event_time(&self) -> bool {
        match self {
            Assigner::Tumbling { domain, .. } | Assigner::Sliding { domain, .. } | Assigner::Session { domain, .. } => {
                *domain == TimeDomain::EventTime
            }
            Assigner::Global => false,
        }
    }

    /// The domain windows are cleaned up in (event time for event-time assigners).
    pub fn domain(&self) -> TimeDomain {
        if self.is_event_time() {
            TimeDomain::EventTime
        } else {
            TimeDomain::ProcessingTime
        }
    }

    /// Whether assigned windows merge with a key's open windows (sessions).
    pub fn is_merging(&self) -> bool {
        matches!(self, Assigner::Session { .. })
    }

    /// Flink's `getDefaultTrigger()`.
    pub fn default_trigger(&self) -> super::triggers::Trigger {
        use super::triggers::Trigger;
        match self {
            Assigner::Global => Trigger::Never,
            _ if self.is_event_time() => Trigger::EventTime,
            _ => Trigger::ProcessingTime,
        }
    }

    /// The parameter checks Flink's constructors make.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Assigner::Tumbling { size, offset, .. } => {
                if *size <= 0 {
                    return Err(format!("tumbling windows need size > 0, got {size}"));
                }
                if offset.unsigned_abs() >= size.unsigned_abs() {
                    return Err(format!("tumbling windows need abs(offset) < size, got offset {offset}, size {size}"));
                }
            }
            Assigner::Sliding { size, slide, offset, .. } => {
                if *size <= 0 || *slide <= 0 {
                    return Err(format!("sliding windows need size > 0 and slide > 0, got size {size}, slide {slide}"));
                }
                if offset.unsigned_abs() >= slide.unsigned_abs() {
                    return Err(format!(
                        "sliding windows need abs(offset) < slide, got offset {offset}, slide {slide}"
                    ));
                }
            }
            Assigner::Session { gap: SessionGap::Static(gap), .. } if *gap <= 0 => {
                return Err(format!("session windows need gap > 0, got {gap}"));
            }
            _ => {}
        }
        Ok(())
    }

    /// Appends the windows of a record with timestamp `ts` arriving at processing time
    /// `now` to `out` (event-time assigners use `ts`, processing-time ones `now`).
    /// Sliding windows come latest start first (Flink's order); a sliding assigner with
    /// `slide > size` assigns nothing to timestamps in the gaps.
    pub fn assign(&mut self, ts: i64, now: i64, value: &V, out: &mut Vec<Window>) -> UdfResult<()> {
        let event = self.is_event_time();
        let t = if event { ts } else { now };
        match self {
            Assigner::Tumbling { size, offset, .. } => out.push(Window::Time(tumbling_window(t, *size, *offset))),
            Assigner::Sliding { size, slide, offset, .. } => {
                let from = out.len();
                let mut tmp = Vec::new();
                sliding_windows(t, *size, *slide, *offset, &mut tmp);
                out.extend(tmp.into_iter().map(Window::Time));
                debug_assert!(out[from..].iter().all(|w| w.time().is_some_and(|w| w.contains(t))));
            }
            Assigner::Session { gap, .. } => {
                let gap = match gap {
                    SessionGap::Static(g) => *g,
                    SessionGap::Dynamic(f) => {
                        let g = f(value)?;
                        if g <= 0 {
                            return Err(UdfError::new(format!("the dynamic session gap must be > 0, got {g}")));
                        }
                        g
                    }
                };
                out.push(Window::Time(session_window(t, gap)));
            }
            Assigner::Global => out.push(Window::Global),
        }
        Ok(())
    }
}

/// The session window a record at `t` opens: `[t, t + gap)`, the end saturating at `i64::MAX`.
pub fn session_window(t: i64, gap: i64) -> TimeWindow {
    TimeWindow { start: t, end: t.saturating_add(gap.max(0)) }
}

/// Flink's `TimeWindow.intersects`: whether two windows overlap *or touch*
/// (`[0, 5)` and `[5, 10)` merge into one session).
pub fn touches(a: &TimeWindow, b: &TimeWindow) -> bool {
    a.start <= b.end && a.end >= b.start
}

/// The smallest window covering both.
pub fn cover(a: &TimeWindow, b: &TimeWindow) -> TimeWindow {
    TimeWindow { start: a.start.min(b.start), end: a.end.max(b.end) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tw(start: i64, end: i64) -> Window {
        Window::Time(TimeWindow { start, end })
    }

    #[test]
    fn assigns_like_flink() {
        let mut out = Vec::new();
        let mut a = Assigner::<()>::tumbling_event_time(10, 3);
        a.assign(12, 999, &(), &mut out).unwrap();
        assert_eq!(out, vec![tw(3, 13)]);
        out.clear();
        let mut a = Assigner::<()>::sliding_event_time(10, 5, 0);
        a.assign(7, 999, &(), &mut out).unwrap();
        assert_eq!(out, vec![tw(5, 15), tw(0, 10)]);
        out.clear();
        let mut a = Assigner::<()>::sliding_processing_time(10, 5, 0);
        a.assign(7, 21, &(), &mut out).unwrap();
        assert_eq!(out, vec![tw(20, 30), tw(15, 25)]);
        out.clear();
        let mut a = Assigner::<i64>::event_time_session_dynamic(|v| Ok(*v));
        a.assign(100, 0, &7, &mut out).unwrap();
        assert_eq!(out, vec![tw(100, 107)]);
        assert!(a.assign(100, 0, &0, &mut out).is_err());
        out.clear();
        let mut a = Assigner::<()>::processing_time_session(4);
        a.assign(100, 50, &(), &mut out).unwrap();
        assert_eq!(out, vec![tw(50, 54)]);
        out.clear();
        Assigner::<()>::global().assign(1, 2, &(), &mut out).unwrap();
        assert_eq!(out, vec![Window::Global]);
        assert_eq!(Window::Global.max_timestamp(), i64::MAX);
    }

    #[test]
    fn validation_and_flags() {
        assert!(Assigner::<()>::tumbling_event_time(10, 10).validate().is_err());
        assert!(Assigner::<()>::tumbling_event_time(10, -9).validate().is_ok());
        assert!(Assigner::<()>::tumbling_event_time(0, 0).validate().is_err());
        assert!(Assigner::<()>::sliding_event_time(10, 5, 5).validate().is_err());
        assert!(Assigner::<()>::sliding_event_time(10, 0, 0).validate().is_err());
        assert!(Assigner::<()>::sliding_event_time(5, 10, 0).validate().is_ok());
        assert!(Assigner::<()>::event_time_session(0).validate().is_err());
        assert!(Assigner::<()>::event_time_session(1).is_merging());
        assert!(!Assigner::<()>::global().is_event_time());
        assert!(!Assigner::<()>::processing_time_session(3).is_event_time());
        assert!(touches(&TimeWindow { start: 0, end: 5 }, &TimeWindow { start: 5, end: 9 }));
        assert!(!touches(&TimeWindow { start: 0, end: 5 }, &TimeWindow { start: 6, end: 9 }));
    }
}
