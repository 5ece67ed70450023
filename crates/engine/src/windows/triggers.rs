//! Flink's window triggers and evictors, as plain state machines over a
//! [`TriggerContext`] (timers and clocks of one key's window) and a small per-window
//! [`TriggerState`]. The window core drives them; they can also be tested alone.
//!
//! Timer rules (the core's, as Flink's timer service): an event-time timer at `t` fires
//! when a watermark `>= t` arrives; a processing-time timer at `t` fires once the clock
//! reads `t + 1` or later (Flink also delays processing-time timers by 1 ms, so every
//! record stamped `t` is in before a window ending at `t + 1` fires). Timers are
//! deduplicated per (time, key, window), like Flink's.

use std::fmt;

use super::Window;
use crate::error::UdfResult;

/// What a trigger decided: Flink's `TriggerResult` (`CONTINUE`, `FIRE`, `FIRE_AND_PURGE`;
/// `PURGE` alone is never produced by these triggers but is handled by the core).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TriggerResult {
    pub fire: bool,
    pub purge: bool,
}

impl TriggerResult {
    pub const CONTINUE: TriggerResult = TriggerResult { fire: false, purge: false };
    pub const FIRE: TriggerResult = TriggerResult { fire: true, purge: false };
    pub const FIRE_AND_PURGE: TriggerResult = TriggerResult { fire: true, purge: true };
    pub const PURGE: TriggerResult = TriggerResult { fire: false, purge: true };

    /// `PurgingTrigger`: FIRE becomes FIRE_AND_PURGE.
    fn purging(self) -> TriggerResult {
        if self.fire {
            TriggerResult::FIRE_AND_PURGE
        } else {
            self
        }
    }
}

/// The per-window state the triggers keep (Flink keeps it in partitioned state):
/// `CountTrigger`'s count and `ContinuousEventTimeTrigger`'s next fire timestamp.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TriggerState {
    pub count: u64,
    pub fire_timestamp: Option<i64>,
}

impl TriggerState {
    /// Merging windows merge trigger state as Flink's state descriptors do: counts add
    /// up (`Sum`), fire timestamps take the minimum (`Min`).
    pub fn merge_from(&mut self, other: &TriggerState) {
        self.count += other.count;
        self.fire_timestamp = match (self.fire_timestamp, other.fire_timestamp) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// What a trigger sees of its window: Flink's `Trigger.TriggerContext`.
pub trait TriggerContext {
    fn window(&self) -> Window;
    fn current_watermark(&self) -> i64;
    fn current_processing_time(&self) -> i64;
    fn register_event_time_timer(&mut self, time: i64);
    fn delete_event_time_timer(&mut self, time: i64);
    fn register_processing_time_timer(&mut self, time: i64);
    fn delete_processing_time_timer(&mut self, time: i64);
}

/// A trigger written by the user (Flink's `Trigger` subclass; a Python one through
/// the binding), for one worker: its decisions come from these calls, while the window
/// core keeps the rest in Rust (timers, purging, clean-up, merging, checkpoints). The
/// built-in [`Trigger`]s never go through it.
///
/// Each call is for one (key, window), the window being `ctx.window()`; timers set
/// through `ctx` belong to it. Per-window state is the implementation's business
/// (the binding keeps it in the window operator's keyed state, in the window's
/// namespace, which the operator drops when the window is cleaned up).
pub trait TriggerFunction<K, V> {
    /// Flink's `canMerge()`: whether it may run on merging (session) windows.
    fn can_merge(&self) -> bool;
    /// `value` (stamped `timestamp`) was added to the window.
    fn on_element(
        &mut self,
        key: &K,
        value: &V,
        timestamp: i64,
        ctx: &mut dyn TriggerContext,
    ) -> UdfResult<TriggerResult>;
    /// An event-time timer of the window at `time` fired.
    fn on_event_time(&mut self, key: &K, time: i64, ctx: &mut dyn TriggerContext) -> UdfResult<TriggerResult>;
    /// A processing-time timer of the window at `time` fired.
    fn on_processing_time(&mut self, key: &K, time: i64, ctx: &mut dyn TriggerContext) -> UdfResult<TriggerResult>;
    /// The windows `merged` merged into `ctx.window()`; they are still there (their
    /// state can be merged in), and each is cleared ([`Self::clear`]) right after.
    fn on_merge(&mut self, key: &K, merged: &[Window], ctx: &mut dyn TriggerContext) -> UdfResult<()>;
    /// The window is going away (its clean-up time, or merged into another): Flink's
    /// `clear`, which should delete its timers and state.
    fn clear(&mut self, key: &K, ctx: &mut dyn TriggerContext) -> UdfResult<()>;
    /// After [`Self::clear`] of a window merged into another: what state it still
    /// holds may go (a window cleaned up loses its state with the window operator's).
    fn merged_away(&mut self, _key: &K, _window: Window) -> UdfResult<()> {
        Ok(())
    }
    /// Called once when the input has ended.
    fn close(&mut self) -> UdfResult<()> {
        Ok(())
    }
}

impl<K, V> fmt::Debug for dyn TriggerFunction<K, V> + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TriggerFunction")
    }
}

/// An evictor written by the user (Flink's `Evictor`; a Python one through the
/// binding): called when a window fires, before the window function
/// (`evictBefore`) and after it (`evictAfter`), with the window's elements in arrival
/// order. What it evicts leaves the window for good.
pub trait EvictorFunction<V> {
    /// The positions in `elements` (`(timestamp, value)`, arrival order) that stay, in
    /// ascending order; `after`: Flink's `evictAfter` rather than `evictBefore`.
    fn evict(
        &mut self,
        after: bool,
        window: Window,
        elements: &[(i64, &V)],
        watermark: i64,
        processing_time: i64,
    ) -> UdfResult<Vec<usize>>;
    /// Called once when the input has ended.
    fn close(&mut self) -> UdfResult<()> {
        Ok(())
    }
}

impl<V> fmt::Debug for dyn EvictorFunction<V> + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EvictorFunction")
    }
}

/// Flink's built-in triggers.
///
/// - `EventTime` (`EventTimeTrigger`): fires when the watermark passes
///   `window.max_timestamp()`; an element arriving after that (allowed lateness) fires
///   the window again at once.
/// - `ProcessingTime` (`ProcessingTimeTrigger`): fires when the clock passes
///   `window.max_timestamp()`.
/// - `Count(n)` (`CountTrigger.of(n)`): fires on every n-th element of the window (the
///   count restarts after each firing; merged windows add their counts up).
/// - `ContinuousEventTime(interval)` (`ContinuousEventTimeTrigger.of(interval)`): fires
///   every `interval` of event time while the window is open, starting at the first
///   element's timestamp rounded down to the interval (Java `%`, as Flink), and at the
///   window's end like `EventTime`. One deliberate difference with Flink: when a single
///   watermark advance passes several periodic fire points of a window, it fires once
///   for them instead of once per point (the firings would be identical, since no element
///   can arrive during an advance); Flink's loop would emit `gap / interval` copies, which
///   for `GlobalWindows` and the final watermark (`i64::MAX`) never ends.
/// - `ContinuousProcessingTime(interval)` (`ContinuousProcessingTimeTrigger.of(interval)`):
///   fires every `interval` of processing time once the window has an element, the first
///   point being the clock at that element rounded down to the interval, plus the
///   interval; points are capped at the window's end. As for `ContinuousEventTime`, a
///   clock jump over several points fires once, and no point is set at `i64::MAX` (a
///   global window's end), so the end of input does not fire it twice.
/// - `Purging(inner)` (`PurgingTrigger.of(inner)`): every FIRE of `inner` becomes
///   FIRE_AND_PURGE.
/// - `Never` (`GlobalWindows`' default trigger): never fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    EventTime,
    ProcessingTime,
    Count(u64),
    ContinuousEventTime(i64),
    ContinuousProcessingTime(i64),
    Purging(Box<Trigger>),
    Never,
}

/// `ts - ts % interval + interval` (Java's truncating `%`, as Flink), capped at `max_ts`.
fn first_fire_timestamp(ts: i64, interval: i64, max_ts: i64) -> i64 {
    let (ts, interval) = (i128::from(ts), i128::from(interval));
    let aligned = ts - ts % interval;
    (aligned + interval).min(i128::from(max_ts)) as i64
}

/// The fire timestamp after a periodic firing at `time`: `time + interval`, capped at
/// `max_ts`; if that is already at or below the watermark (a watermark jump), the first
/// point `time + k * interval` above the watermark instead (see [`Trigger`]).
fn next_fire_timestamp(time: i64, interval: i64, max_ts: i64, watermark: i64) -> i64 {
    let (t, i, m, w) = (i128::from(time), i128::from(interval), i128::from(max_ts), i128::from(watermark));
    let mut next = t + i;
    if next <= w && next < m {
        next = t + ((w - t) / i + 1) * i;
    }
    next.min(m) as i64
}

impl Trigger {
    pub fn purging(inner: Trigger) -> Trigger {
        Trigger::Purging(Box::new(inner))
    }

    /// The parameter checks (Flink would accept a zero count or interval; here a count of
    /// 0 would fire on every element and an interval of 0 would never stop firing).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Trigger::Count(0) => Err("CountTrigger needs a count >= 1".to_string()),
            Trigger::ContinuousEventTime(i) if *i <= 0 => {
                Err(format!("ContinuousEventTimeTrigger needs an interval > 0, got {i}"))
            }
            Trigger::ContinuousProcessingTime(i) if *i <= 0 => {
                Err(format!("ContinuousProcessingTimeTrigger needs an interval > 0, got {i}"))
            }
            Trigger::Purging(inner) => inner.validate(),
            _ => Ok(()),
        }
    }

    pub fn on_element(&self, timestamp: i64, ctx: &mut impl TriggerContext, state: &mut TriggerState) -> TriggerResult {
        let max_ts = ctx.window().max_timestamp();
        match self {
            Trigger::EventTime => {
                if max_ts <= ctx.current_watermark() {
                    TriggerResult::FIRE
                } else {
                    ctx.register_event_time_timer(max_ts);
                    TriggerResult::CONTINUE
                }
            }
            Trigger::ProcessingTime => {
                ctx.register_processing_time_timer(max_ts);
                TriggerResult::CONTINUE
            }
            Trigger::Count(n) => {
                state.count += 1;
                if state.count >= *n {
                    state.count = 0;
                    TriggerResult::FIRE
                } else {
                    TriggerResult::CONTINUE
                }
            }
            Trigger::ContinuousEventTime(interval) => {
                if max_ts <= ctx.current_watermark() {
                    return TriggerResult::FIRE;
                }
                ctx.register_event_time_timer(max_ts);
                if state.fire_timestamp.is_none() {
                    let next = first_fire_timestamp(timestamp, *interval, max_ts);
                    state.fire_timestamp = Some(next);
                    ctx.register_event_time_timer(next);
                }
                TriggerResult::CONTINUE
            }
            Trigger::ContinuousProcessingTime(interval) => {
                if state.fire_timestamp.is_none() {
                    let next = first_fire_timestamp(ctx.current_processing_time(), *interval, max_ts);
                    state.fire_timestamp = Some(next);
                    ctx.register_processing_time_timer(next);
                }
                TriggerResult::CONTINUE
            }
            Trigger::Purging(inner) => inner.on_element(timestamp, ctx, state).purging(),
            Trigger::Never => TriggerResult::CONTINUE,
        }
    }

    pub fn on_event_time(&self, time: i64, ctx: &mut impl TriggerContext, state: &mut TriggerState) -> TriggerResult {
        let max_ts = ctx.window().max_timestamp();
        match self {
            Trigger::EventTime if time == max_ts => TriggerResult::FIRE,
            Trigger::ContinuousEventTime(interval) => {
                if time == max_ts {
                    return TriggerResult::FIRE;
                }
                if state.fire_timestamp == Some(time) {
                    let next = next_fire_timestamp(time, *interval, max_ts, ctx.current_watermark());
                    state.fire_timestamp = Some(next);
                    ctx.register_event_time_timer(next);
                    return TriggerResult::FIRE;
                }
                TriggerResult::CONTINUE
            }
            Trigger::Purging(inner) => inner.on_event_time(time, ctx, state).purging(),
            _ => TriggerResult::CONTINUE,
        }
    }

    // Every callback takes what Flink's does, even where no built-in trigger needs it.
    #[allow(clippy::only_used_in_recursion)]
    pub fn on_processing_time(
        &self,
        time: i64,
        ctx: &mut impl TriggerContext,
        state: &mut TriggerState,
    ) -> TriggerResult {
        match self {
            Trigger::ProcessingTime => TriggerResult::FIRE,
            Trigger::ContinuousProcessingTime(interval) if state.fire_timestamp == Some(time) => {
                let max_ts = ctx.window().max_timestamp();
                let next = next_fire_timestamp(time, *interval, max_ts, ctx.current_processing_time());
                if next > time && next < i64::MAX {
                    state.fire_timestamp = Some(next);
                    ctx.register_processing_time_timer(next);
                } else {
                    state.fire_timestamp = None;
                }
                TriggerResult::FIRE
            }
            Trigger::Purging(inner) => inner.on_processing_time(time, ctx, state).purging(),
            _ => TriggerResult::CONTINUE,
        }
    }

    /// After windows merged into `ctx.window()`, with `state` already merged
    /// ([`TriggerState::merge_from`]): re-registers the timers the merged window needs.
    pub fn on_merge(&self, ctx: &mut impl TriggerContext, state: &mut TriggerState) {
        let max_ts = ctx.window().max_timestamp();
        match self {
            Trigger::EventTime => {
                if max_ts > ctx.current_watermark() {
                    ctx.register_event_time_timer(max_ts);
                }
            }
            Trigger::ProcessingTime => {
                if max_ts > ctx.current_processing_time() {
                    ctx.register_processing_time_timer(max_ts);
                }
            }
            Trigger::ContinuousEventTime(_) => {
                if let Some(t) = state.fire_timestamp {
                    ctx.register_event_time_timer(t);
                }
            }
            Trigger::ContinuousProcessingTime(_) => {
                if let Some(t) = state.fire_timestamp {
                    ctx.register_processing_time_timer(t);
                }
            }
            Trigger::Purging(inner) => inner.on_merge(ctx, state),
            Trigger::Count(_) | Trigger::Never => {}
        }
    }

    /// The window is going away (cleaned up, or merged into another): drops its timers
    /// and state. (`ContinuousEventTime` also drops its end-of-window timer, which Flink
    /// leaves behind to fire on nothing.)
    pub fn clear(&self, ctx: &mut impl TriggerContext, state: &mut TriggerState) {
        let max_ts = ctx.window().max_timestamp();
        match self {
            Trigger::EventTime => ctx.delete_event_time_timer(max_ts),
            Trigger::ProcessingTime => ctx.delete_processing_time_timer(max_ts),
            Trigger::Count(_) => state.count = 0,
            Trigger::ContinuousEventTime(_) => {
                if let Some(t) = state.fire_timestamp.take() {
                    ctx.delete_event_time_timer(t);
                }
                ctx.delete_event_time_timer(max_ts);
            }
            Trigger::ContinuousProcessingTime(_) => {
                if let Some(t) = state.fire_timestamp.take() {
                    ctx.delete_processing_time_timer(t);
                }
            }
            Trigger::Purging(inner) => inner.clear(ctx, state),
            Trigger::Never => {}
        }
    }
}

/// Flink's evictors, applied when a window fires, before its contents are handed out
/// (Flink's default `doEvictAfter = false`; with `WindowConfig::evict_after`, after). Evicted elements leave the window's state
/// for good. Elements are in arrival order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evictor {
    /// `CountEvictor.of(n)`: keeps the last `n` elements.
    Count(usize),
    /// `TimeEvictor.of(span)`: keeps the elements with `timestamp > max_timestamp - span`,
    /// `max_timestamp` being the largest element timestamp in the window.
    Time(i64),
}

impl Evictor {
    /// Flink accepts `CountEvictor.of(0)` and `TimeEvictor.of(0)` (or a negative span):
    /// they evict every element, even the newest, and the window function is then called
    /// with nothing. Both are refused here, so a firing never hands out empty contents.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Evictor::Count(0) => Err("CountEvictor needs a count >= 1".to_string()),
            Evictor::Time(span) if *span <= 0 => Err(format!("TimeEvictor needs a span >= 1, got {span}")),
            _ => Ok(()),
        }
    }

    /// Removes the evicted items (keeping the order of the others); returns how many.
    pub fn evict<T>(&self, items: &mut Vec<T>, timestamp: impl Fn(&T) -> i64) -> usize {
        let before = items.len();
        match *self {
            Evictor::Count(n) => {
                if before > n {
                    items.drain(..before - n);
                }
            }
            // Flink's TimeEvictor leaves records without timestamps alone (it looks at
            // the first one).
            Evictor::Time(_) if items.first().is_some_and(|x| timestamp(x) == i64::MIN) => {}
            Evictor::Time(span) => {
                if let Some(max) = items.iter().map(&timestamp).max() {
                    let cutoff = max.saturating_sub(span);
                    items.retain(|x| timestamp(x) > cutoff);
                }
            }
        }
        before - items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::windows::TimeWindow;

    /// A context recording timers, for one window.
    struct Ctx {
        window: Window,
        watermark: i64,
        now: i64,
        event: Vec<i64>,
        processing: Vec<i64>,
    }

    impl Ctx {
        fn new(start: i64, end: i64) -> Self {
            Ctx {
                window: Window::Time(TimeWindow { start, end }),
                watermark: i64::MIN,
                now: 0,
                event: vec![],
                processing: vec![],
            }
        }
    }

    impl TriggerContext for Ctx {
        fn window(&self) -> Window {
            self.window
        }
        fn current_watermark(&self) -> i64 {
            self.watermark
        }
        fn current_processing_time(&self) -> i64 {
            self.now
        }
        fn register_event_time_timer(&mut self, t: i64) {
            if !self.event.contains(&t) {
                self.event.push(t);
            }
        }
        fn delete_event_time_timer(&mut self, t: i64) {
            self.event.retain(|x| *x != t);
        }
        fn register_processing_time_timer(&mut self, t: i64) {
            if !self.processing.contains(&t) {
                self.processing.push(t);
            }
        }
        fn delete_processing_time_timer(&mut self, t: i64) {
            self.processing.retain(|x| *x != t);
        }
    }

    #[test]
    fn event_time_trigger() {
        let (mut c, mut s) = (Ctx::new(0, 10), TriggerState::default());
        let t = Trigger::EventTime;
        assert_eq!(t.on_element(3, &mut c, &mut s), TriggerResult::CONTINUE);
        assert_eq!(c.event, vec![9]);
        assert_eq!(t.on_event_time(9, &mut c, &mut s), TriggerResult::FIRE);
        assert_eq!(t.on_event_time(12, &mut c, &mut s), TriggerResult::CONTINUE);
        c.watermark = 9;
        assert_eq!(t.on_element(3, &mut c, &mut s), TriggerResult::FIRE);
        t.clear(&mut c, &mut s);
        assert!(c.event.is_empty());
        let p = Trigger::purging(Trigger::EventTime);
        assert_eq!(p.on_event_time(9, &mut c, &mut s), TriggerResult::FIRE_AND_PURGE);
    }

    #[test]
    fn count_trigger_and_merge() {
        let (mut c, mut s) = (Ctx::new(0, 10), TriggerState::default());
        let t = Trigger::Count(2);
        assert_eq!(t.on_element(0, &mut c, &mut s), TriggerResult::CONTINUE);
        assert_eq!(t.on_element(0, &mut c, &mut s), TriggerResult::FIRE);
        assert_eq!(s.count, 0);
        assert_eq!(t.on_element(0, &mut c, &mut s), TriggerResult::CONTINUE);
        let mut other = TriggerState { count: 1, fire_timestamp: Some(7) };
        other.merge_from(&s);
        assert_eq!(other, TriggerState { count: 2, fire_timestamp: Some(7) });
        assert_eq!(t.on_event_time(9, &mut c, &mut s), TriggerResult::CONTINUE);
        assert!(c.event.is_empty() && c.processing.is_empty());
    }

    #[test]
    fn continuous_trigger() {
        let (mut c, mut s) = (Ctx::new(0, 100), TriggerState::default());
        let t = Trigger::ContinuousEventTime(10);
        assert_eq!(t.on_element(13, &mut c, &mut s), TriggerResult::CONTINUE);
        assert_eq!(s.fire_timestamp, Some(20));
        assert_eq!(c.event, vec![99, 20]);
        c.watermark = 20;
        assert_eq!(t.on_event_time(20, &mut c, &mut s), TriggerResult::FIRE);
        assert_eq!(s.fire_timestamp, Some(30));
        // A jump: one firing, then the first point past the watermark.
        c.watermark = 75;
        assert_eq!(t.on_event_time(30, &mut c, &mut s), TriggerResult::FIRE);
        assert_eq!(s.fire_timestamp, Some(80));
        c.watermark = 200;
        assert_eq!(t.on_event_time(80, &mut c, &mut s), TriggerResult::FIRE);
        assert_eq!(s.fire_timestamp, Some(99));
        assert_eq!(t.on_event_time(99, &mut c, &mut s), TriggerResult::FIRE);
        // (This fake context does not consume fired timers.)
        assert_eq!(c.event, vec![99, 20, 30, 80]);
        t.clear(&mut c, &mut s);
        assert_eq!(c.event, vec![20, 30, 80]);
        assert_eq!(s.fire_timestamp, None);
        // Negative timestamps round towards zero, as Java's `%`.
        assert_eq!(first_fire_timestamp(-3, 5, 100), 5);
        assert_eq!(first_fire_timestamp(-7, 5, 100), 0);
        assert_eq!(first_fire_timestamp(i64::MAX - 1, 5, i64::MAX), i64::MAX);
        assert_eq!(next_fire_timestamp(i64::MAX - 10, 3, i64::MAX, i64::MAX), i64::MAX);
    }

    #[test]
    fn processing_time_trigger() {
        let (mut c, mut s) = (Ctx::new(0, 10), TriggerState::default());
        let t = Trigger::ProcessingTime;
        assert_eq!(t.on_element(0, &mut c, &mut s), TriggerResult::CONTINUE);
        assert_eq!(c.processing, vec![9]);
        assert_eq!(t.on_processing_time(9, &mut c, &mut s), TriggerResult::FIRE);
        assert_eq!(t.on_event_time(9, &mut c, &mut s), TriggerResult::CONTINUE);
        c.now = 3;
        t.on_merge(&mut c, &mut s);
        t.clear(&mut c, &mut s);
        assert!(c.processing.is_empty());
    }

    #[test]
    fn evictors() {
        let mut v: Vec<i64> = vec![5, 1, 9, 7, 3];
        assert_eq!(Evictor::Count(2).evict(&mut v, |x| *x), 3);
        assert_eq!(v, vec![7, 3]);
        let mut v: Vec<i64> = vec![5, 1, 9, 7, 3];
        assert_eq!(Evictor::Time(4).evict(&mut v, |x| *x), 3);
        assert_eq!(v, vec![9, 7]);
        let mut v: Vec<i64> = vec![];
        assert_eq!(Evictor::Time(4).evict(&mut v, |x| *x), 0);
        assert!(Evictor::Count(0).validate().is_err());
        assert!(Evictor::Time(-1).validate().is_err());
        assert!(Evictor::Time(0).validate().is_err());
        assert!(Evictor::Time(1).validate().is_ok());
        assert!(Trigger::purging(Trigger::Count(0)).validate().is_err());
    }
}
