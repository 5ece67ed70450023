//! The keyed window state machine behind event-time (and processing-time) windows:
//! Flink's `WindowOperator` / `EvictingWindowOperator` without the operator. Pure and
//! synchronous, no timely, no Python: the operator feeds it records, watermarks and clock
//! readings, and emits the [`Firing`]s it returns.
//!
//! # Model (Flink's)
//!
//! - An [`Assigner`] gives each record its windows; session windows merge with the key's
//!   open windows that overlap or touch the new one (their contents, accumulators and
//!   trigger state merge too).
//! - A [`Trigger`] decides when a window fires (default: the assigner's); an optional
//!   [`Evictor`] removes elements before the contents are handed out.
//! - Event time: the watermark only grows ([`WindowCore::on_watermark`]; a watermark not
//!   above the current one does nothing, as Flink forwards only advancing watermarks).
//!   An event-time timer at `t` fires when the watermark reaches `t`.
//! - Processing time: the clock only grows ([`WindowCore::on_processing_time`]);
//!   processing-time assigners use its latest reading. A processing-time timer at `t`
//!   fires once the clock reads `t + 1` or later (Flink also delays processing-time timers by
//!   1 ms); a timer registered in the past fires at the next `on_processing_time` call.
//! - Allowed lateness `L` (event-time assigners only): a window is *late* once
//!   `watermark >= max_timestamp + L` (Flink's `cleanupTime <= currentWatermark`); its
//!   state is cleaned up exactly then. A record is added to its windows that are not
//!   late; a late-but-allowed record re-fires its window at once under `EventTime`
//!   triggers. A record none of whose windows takes it is *late* when
//!   `timestamp + L <= watermark`: handed back for the late side output if
//!   [`WindowConfig::side_output_late_data`] was set, otherwise dropped and counted in
//!   [`WindowStats::late_dropped`]. A record that falls in no window at all (sliding
//!   windows with `slide > size`) and is not late is counted in
//!   [`WindowStats::no_window`] (Flink drops it silently).
//! - When a window is cleaned up (lateness passed) with elements that never fired (a
//!   count trigger that did not reach its count, a processing-time trigger on event-time
//!   windows), Flink drops them; so does the core, counting them in
//!   [`WindowStats::discarded`].
//! - Firing contents: [`Contents::Values`] (the window's values after eviction, in arrival
//!   order, also across merged sessions) or, with an [`AggregateFunction`],
//!   [`Contents::Aggregate`] (`get_result` of the accumulator; with an evictor the values
//!   are kept and aggregated at firing time, as Flink's evicting operator does). A FIRE
//!   on a window without contents (purged, never filled) emits nothing, as in Flink.
//!
//! # End of input
//!
//! [`WindowCore::finish`] is the end of a bounded input (call it instead of
//! `on_watermark(i64::MAX)`). It first raises the watermark to `i64::MAX`, firing every
//! event-time timer. Then, with the default [`EndOfInput::FirePending`]:
//! every processing-time timer fires as if the clock had reached +infinity, and finally
//! every window still holding elements that arrived since its last firing fires once
//! more, purging ([`Cause::EndOfInput`]), in (window end, key, window start) order. So
//! `GlobalWindows` without a trigger fire their whole contents once at the end, a
//! `CountTrigger`'s partial count fires, processing-time windows fire, as the engine's
//! count and processing-time windows already do. With [`EndOfInput::Flink`] only the
//! final watermark's firings happen (Flink: `GlobalWindows` without trigger and partial
//! counts emit nothing, and pending processing-time timers are not fired); with
//! [`EndOfInput::Timers`] (Flink's batch mode) processing-time timers fire too, as
//! if the clock had reached +infinity, and nothing else. What is left is dropped and
//! counted in [`WindowStats::discarded`]. Either way the core is empty afterwards.
//!
//! # Order
//!
//! Firings of one call come in a deterministic order: from `on_watermark` /
//! `on_processing_time` by timer (time, key, window start, window end) — for the
//! default triggers that is (window end, key, window start); from `on_element` by
//! (window end, window start).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::hash::Hash;

pub use super::assigners::{cover, touches, Assigner, GapFn, SessionGap, TimeDomain};
pub use super::triggers::{
    Evictor, EvictorFunction, Trigger, TriggerContext, TriggerFunction, TriggerResult, TriggerState,
};
use super::TimeWindow;
pub use super::Window;
use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
use crate::error::{UdfError, UdfResult};
use crate::key::{BuildKeyHasher, Key};
use crate::record::Record;

/// Incremental window aggregation, Flink's `AggregateFunction` (a reduce is an aggregate
/// with an optional accumulator, see [`Reduce`]). User code, so every call may fail.
pub trait AggregateFunction<V> {
    type Acc;
    type Out;
    fn create_accumulator(&mut self) -> UdfResult<Self::Acc>;
    fn add(&mut self, value: &V, acc: Self::Acc) -> UdfResult<Self::Acc>;
    fn get_result(&mut self, acc: &Self::Acc) -> UdfResult<Self::Out>;
    /// Merging windows (sessions) merge their accumulators, in window start order.
    fn merge(&mut self, a: Self::Acc, b: Self::Acc) -> UdfResult<Self::Acc>;
}

/// The aggregate of a core that hands out values ([`WindowCore::new`]); never called.
#[derive(Debug)]
pub enum NoAggregate {}

impl<V> AggregateFunction<V> for NoAggregate {
    type Acc = ();
    type Out = Infallible;
    fn create_accumulator(&mut self) -> UdfResult<()> {
        match *self {}
    }
    fn add(&mut self, _: &V, _: ()) -> UdfResult<()> {
        match *self {}
    }
    fn get_result(&mut self, _: &()) -> UdfResult<Infallible> {
        match *self {}
    }
    fn merge(&mut self, _: (), _: ()) -> UdfResult<()> {
        match *self {}
    }
}

/// Flink's `reduce(f)` as an aggregate: the first value is the accumulator, each next
/// one is folded in with `f(acc, value)`; merged windows reduce their two results.
pub struct Reduce<F>(pub F);

impl<V: Clone, F: FnMut(&V, &V) -> UdfResult<V>> AggregateFunction<V> for Reduce<F> {
    type Acc = Option<V>;
    type Out = V;
    fn create_accumulator(&mut self) -> UdfResult<Option<V>> {
        Ok(None)
    }
    fn add(&mut self, value: &V, acc: Option<V>) -> UdfResult<Option<V>> {
        Ok(Some(match acc {
            None => value.clone(),
            Some(a) => (self.0)(&a, value)?,
        }))
    }
    fn get_result(&mut self, acc: &Option<V>) -> UdfResult<V> {
        acc.clone().ok_or_else(|| UdfError::new("reduce of an empty window"))
    }
    fn merge(&mut self, a: Option<V>, b: Option<V>) -> UdfResult<Option<V>> {
        Ok(match (a, b) {
            (Some(a), Some(b)) => Some((self.0)(&a, &b)?),
            (a, b) => a.or(b),
        })
    }
}

/// What happens to pending windows at the end of a bounded input; see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndOfInput {
    /// Everything pending fires (the engine's rule for bounded jobs).
    #[default]
    FirePending,
    /// Only what Flink's final watermark fires.
    Flink,
    /// Every timer fires, event time then processing time (Flink's batch mode), but
    /// no window fires beyond what its timers fire.
    Timers,
}

/// How a [`WindowCore`] behaves. Build with [`WindowConfig::new`] and the setters.
/// `K` is the core's key type (only a user's trigger function names it).
#[derive(Debug)]
pub struct WindowConfig<V, K = Key> {
    pub assigner: Assigner<V>,
    /// `None`: the assigner's default trigger.
    pub trigger: Option<Trigger>,
    /// A user's trigger, in place of `trigger`.
    pub trigger_function: Option<Box<dyn TriggerFunction<K, V>>>,
    pub evictor: Option<Evictor>,
    /// A user's evictor, in place of `evictor`.
    pub evictor_function: Option<Box<dyn EvictorFunction<V>>>,
    /// Flink's `doEvictAfter`: evict after the contents are handed out, not before.
    pub evict_after: bool,
    /// Milliseconds, `>= 0`; ignored unless the assigner is in event time (as Flink).
    pub allowed_lateness: i64,
    /// Hand late records back ([`ElementOutcome::Late`]) instead of dropping them.
    pub late_output: bool,
    pub end_of_input: EndOfInput,
}

impl<V, K> WindowConfig<V, K> {
    pub fn new(assigner: Assigner<V>) -> Self {
        WindowConfig {
            assigner,
            trigger: None,
            trigger_function: None,
            evictor: None,
            evictor_function: None,
            evict_after: false,
            allowed_lateness: 0,
            late_output: false,
            end_of_input: EndOfInput::FirePending,
        }
    }

    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = Some(trigger);
        self
    }

    pub fn evictor(mut self, evictor: Evictor) -> Self {
        self.evictor = Some(evictor);
        self
    }

    /// A user's trigger decides when windows fire (see [`TriggerFunction`]).
    pub fn trigger_function(mut self, f: Box<dyn TriggerFunction<K, V>>) -> Self {
        self.trigger_function = Some(f);
        self
    }

    /// A user's evictor removes elements when windows fire (see [`EvictorFunction`]).
    pub fn evictor_function(mut self, f: Box<dyn EvictorFunction<V>>) -> Self {
        self.evictor_function = Some(f);
        self
    }

    /// Evict after the firing's contents are handed out (Flink's `doEvictAfter`).
    pub fn evict_after(mut self, after: bool) -> Self {
        self.evict_after = after;
        self
    }

    pub fn allowed_lateness(mut self, ms: i64) -> Self {
        self.allowed_lateness = ms;
        self
    }

    /// Flink's `side_output_late_data(tag)`: the tag is the operator's business.
    pub fn side_output_late_data(mut self) -> Self {
        self.late_output = true;
        self
    }

    pub fn end_of_input(mut self, policy: EndOfInput) -> Self {
        self.end_of_input = policy;
        self
    }
}

/// A window's contents as handed out by a firing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contents<V, O> {
    /// The values (after eviction), in arrival order.
    Values(Vec<V>),
    /// `get_result` of the window's accumulator.
    Aggregate(O),
}

/// Why a window fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// The trigger fired on a record (a count reached, or a late record re-firing).
    Element,
    /// An event-time timer at this time.
    EventTime(i64),
    /// A processing-time timer at this time.
    ProcessingTime(i64),
    /// [`WindowCore::finish`] with [`EndOfInput::FirePending`]: pending contents.
    EndOfInput,
}

/// One window firing: call the window function with these. Flink stamps the results
/// with `window.max_timestamp()` (their event time downstream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firing<K, V, O> {
    pub key: K,
    pub window: Window,
    pub contents: Contents<V, O>,
    /// The window's contents were purged after this firing (FIRE_AND_PURGE).
    pub purged: bool,
    pub cause: Cause,
}

/// A late record, handed back for the late side output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LateRecord<K, V> {
    pub key: K,
    pub timestamp: i64,
    pub value: V,
}

/// Why a record was dropped (it is counted in [`WindowStats`] either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Late, and no late side output: counted in `late_dropped`.
    Late,
    /// In no window and not late: counted in `no_window`.
    NoWindow,
}

/// What became of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElementOutcome<K, V, O> {
    /// Added to at least one window; these windows fired because of it (often none).
    Assigned(Vec<Firing<K, V, O>>),
    /// Late: send it to the late side output (counted in `late_side_output`).
    Late(LateRecord<K, V>),
    Dropped(DropReason),
}

impl<K, V, O> ElementOutcome<K, V, O> {
    /// The firings, if the record was assigned.
    pub fn firings(self) -> Vec<Firing<K, V, O>> {
        match self {
            ElementOutcome::Assigned(f) => f,
            _ => Vec::new(),
        }
    }
}

/// Counters: nothing leaves the core without being counted or handed out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Late records dropped (no side output).
    pub late_dropped: u64,
    /// Late records handed back for the side output.
    pub late_side_output: u64,
    /// Records that fell in no window (sliding windows with gaps).
    pub no_window: u64,
    /// (record, window) pairs that left a window without ever being in one of its
    /// firings: cleaned up after lateness unfired, or left at the end under
    /// [`EndOfInput::Flink`].
    pub discarded: u64,
    /// (record, window) pairs removed by the evictor.
    pub evicted: u64,
}

struct Elem<V> {
    seq: u64,
    ts: i64,
    value: V,
}

enum Stored<V, Acc> {
    Empty,
    Elements(Vec<Elem<V>>),
    Acc(Acc),
}

struct WinState<V, Acc> {
    contents: Stored<V, Acc>,
    /// Elements added since the window last fired (or was purged).
    fresh: u64,
    trigger: TriggerState,
}

impl<V, Acc> WinState<V, Acc> {
    fn new() -> Self {
        WinState { contents: Stored::Empty, fresh: 0, trigger: TriggerState::default() }
    }
}

type TimerSet<K> = BTreeSet<(i64, K, Window)>;

/// One key's open windows.
type KeyWindows<V, Acc> = BTreeMap<Window, WinState<V, Acc>>;

struct Timers<K> {
    event: TimerSet<K>,
    processing: TimerSet<K>,
}

/// The trigger context of one (key, window).
struct Ctx<'a, K> {
    key: &'a K,
    window: Window,
    watermark: i64,
    clock: i64,
    timers: &'a mut Timers<K>,
}

impl<K: Ord + Clone> TriggerContext for Ctx<'_, K> {
    fn window(&self) -> Window {
        self.window
    }
    fn current_watermark(&self) -> i64 {
        self.watermark
    }
    fn current_processing_time(&self) -> i64 {
        self.clock
    }
    fn register_event_time_timer(&mut self, time: i64) {
        self.timers.event.insert((time, self.key.clone(), self.window));
    }
    fn delete_event_time_timer(&mut self, time: i64) {
        self.timers.event.remove(&(time, self.key.clone(), self.window));
    }
    fn register_processing_time_timer(&mut self, time: i64) {
        self.timers.processing.insert((time, self.key.clone(), self.window));
    }
    fn delete_processing_time_timer(&mut self, time: i64) {
        self.timers.processing.remove(&(time, self.key.clone(), self.window));
    }
}

/// The core's trigger: a built-in one, or a user's [`TriggerFunction`] (which then
/// decides alone; `builtin` is unused). Built-in triggers are called statically, as
/// before: a user's trigger costs nothing to windows that do not use it.
struct Triggering<K, V> {
    builtin: Trigger,
    function: Option<Box<dyn TriggerFunction<K, V>>>,
}

/// What a trigger is asked about.
enum TriggerCall<'a, V> {
    Element(&'a V, i64),
    EventTime(i64),
    ProcessingTime(i64),
}

impl<K: Ord + Clone, V> Triggering<K, V> {
    fn call(
        &mut self,
        call: TriggerCall<'_, V>,
        ctx: &mut Ctx<'_, K>,
        state: &mut TriggerState,
    ) -> UdfResult<TriggerResult> {
        let key = ctx.key;
        match (&mut self.function, call) {
            (None, TriggerCall::Element(_, ts)) => Ok(self.builtin.on_element(ts, ctx, state)),
            (None, TriggerCall::EventTime(t)) => Ok(self.builtin.on_event_time(t, ctx, state)),
            (None, TriggerCall::ProcessingTime(t)) => Ok(self.builtin.on_processing_time(t, ctx, state)),
            (Some(f), TriggerCall::Element(v, ts)) => f.on_element(key, v, ts, ctx),
            (Some(f), TriggerCall::EventTime(t)) => f.on_event_time(key, t, ctx),
            (Some(f), TriggerCall::ProcessingTime(t)) => f.on_processing_time(key, t, ctx),
        }
    }

    /// `merged` went into `ctx.window()`, whose `state` is theirs merged.
    fn on_merge(&mut self, merged: &[Window], ctx: &mut Ctx<'_, K>, state: &mut TriggerState) -> UdfResult<()> {
        match &mut self.function {
            None => {
                self.builtin.on_merge(ctx, state);
                Ok(())
            }
            Some(f) => f.on_merge(ctx.key, merged, ctx),
        }
    }

    fn clear(&mut self, ctx: &mut Ctx<'_, K>, state: &mut TriggerState) -> UdfResult<()> {
        match &mut self.function {
            None => {
                self.builtin.clear(ctx, state);
                Ok(())
            }
            Some(f) => f.clear(ctx.key, ctx),
        }
    }
}

/// The core's evictor: a built-in one (applied before the window function, or after
/// with `after`) or a user's [`EvictorFunction`] (asked both before and after).
struct Evicting<V> {
    builtin: Option<Evictor>,
    after: bool,
    function: Option<Box<dyn EvictorFunction<V>>>,
}

impl<V> Evicting<V> {
    /// Evicts from `elems` of `window` before (`after == false`) or after the window
    /// function; returns how many went.
    fn evict(&mut self, after: bool, window: Window, elems: &mut Vec<Elem<V>>, clocks: (i64, i64)) -> UdfResult<u64> {
        let Some(f) = &mut self.function else {
            return Ok(match self.builtin {
                Some(e) if self.after == after => e.evict(elems, |x| x.ts) as u64,
                _ => 0,
            });
        };
        if elems.is_empty() {
            return Ok(0);
        }
        let view: Vec<(i64, &V)> = elems.iter().map(|e| (e.ts, &e.value)).collect();
        let keep = f.evict(after, window, &view, clocks.0, clocks.1)?;
        drop(view);
        if keep.windows(2).any(|p| p[0] >= p[1]) || keep.last().is_some_and(|&i| i >= elems.len()) {
            return Err(UdfError::internal(format!(
                "an evictor kept positions {keep:?} of {} elements (not ascending, or out of range)",
                elems.len()
            )));
        }
        let removed = (elems.len() - keep.len()) as u64;
        if removed > 0 {
            let mut kept = keep.into_iter().peekable();
            let mut i = 0;
            elems.retain(|_| {
                let stays = kept.peek() == Some(&i);
                if stays {
                    kept.next();
                }
                i += 1;
                stays
            });
        }
        Ok(removed)
    }
}

/// Keyed windows of one operator instance; see the module docs for the semantics.
///
/// `K` is the key (ordered: it orders firings and state), `V` the value, `A` the
/// aggregate ([`NoAggregate`] for a core handing out values).
///
/// If a user function (aggregate, dynamic gap) fails, the error is returned and the
/// core's state is unspecified: the job is expected to fail.
pub struct WindowCore<K, V, A: AggregateFunction<V> = NoAggregate> {
    assigner: Assigner<V>,
    trigger: Triggering<K, V>,
    evicting: Evicting<V>,
    lateness: i64,
    late_output: bool,
    end_of_input: EndOfInput,
    aggregate: Option<A>,
    /// Whether windows keep their elements (values mode, or an evictor) or an accumulator.
    keep_elements: bool,
    watermark: i64,
    clock: i64,
    next_seq: u64,
    /// Inside `finish`: clean-up timers leave state alone (it is all dropped at the end).
    finishing: bool,
    /// Per key (hashed: looked up for every record; anything ordered sorts first).
    windows: HashMap<K, KeyWindows<V, A::Acc>, BuildKeyHasher>,
    timers: Timers<K>,
    stats: WindowStats,
    scratch: Vec<Window>,
    /// Copies a record for each window after the first it falls in (see
    /// [`WindowCore::copy_values_with`]).
    copy: Option<CopyFn<V>>,
    /// The windows cleared since [`WindowCore::take_cleared`] last ran, if asked for
    /// ([`WindowCore::track_cleared`]).
    cleared: Option<Vec<(K, Window)>>,
}

/// Makes a value of its own out of a record (see [`WindowCore::copy_values_with`]).
pub type CopyFn<V> = Box<dyn FnMut(&V) -> UdfResult<V>>;

impl<K: Ord + Hash + Clone, V: Clone> WindowCore<K, V, NoAggregate> {
    /// A core whose firings hand out the window's values.
    pub fn new(config: WindowConfig<V, K>) -> Result<Self, String> {
        Self::build(config, None)
    }
}

impl<K: Ord + Hash + Clone, V: Clone, A: AggregateFunction<V>> WindowCore<K, V, A> {
    /// A core aggregating incrementally: firings hand out `get_result` of the accumulator.
    pub fn with_aggregate(config: WindowConfig<V, K>, aggregate: A) -> Result<Self, String> {
        Self::build(config, Some(aggregate))
    }

    fn build(config: WindowConfig<V, K>, aggregate: Option<A>) -> Result<Self, String> {
        config.assigner.validate()?;
        let trigger = config.trigger.unwrap_or_else(|| config.assigner.default_trigger());
        trigger.validate()?;
        if config.assigner.is_merging() && config.trigger_function.as_ref().is_some_and(|f| !f.can_merge()) {
            return Err("a merging window assigner (session windows) cannot be used with a trigger that does not \
                        support merging (its can_merge() is false)"
                .to_string());
        }
        if let Some(e) = &config.evictor {
            e.validate()?;
        }
        if config.allowed_lateness < 0 {
            return Err(format!("the allowed lateness cannot be negative, got {}", config.allowed_lateness));
        }
        let lateness = if config.assigner.is_event_time() { config.allowed_lateness } else { 0 };
        Ok(WindowCore {
            keep_elements: aggregate.is_none() || config.evictor.is_some() || config.evictor_function.is_some(),
            assigner: config.assigner,
            trigger: Triggering { builtin: trigger, function: config.trigger_function },
            evicting: Evicting {
                builtin: config.evictor,
                after: config.evict_after,
                function: config.evictor_function,
            },
            lateness,
            late_output: config.late_output,
            end_of_input: config.end_of_input,
            aggregate,
            watermark: i64::MIN,
            clock: i64::MIN,
            next_seq: 0,
            finishing: false,
            windows: HashMap::default(),
            timers: Timers { event: BTreeSet::new(), processing: BTreeSet::new() },
            stats: WindowStats::default(),
            scratch: Vec::new(),
            copy: None,
            cleared: None,
        })
    }

    /// A record that falls in several windows goes into each as a value of its own,
    /// made by `copy` (the first window takes the record itself): windows change their
    /// contents apart (a reduce that updates its accumulator in place). Without it,
    /// the windows hold clones.
    pub fn copy_values_with(&mut self, copy: CopyFn<V>) {
        self.copy = Some(copy);
    }

    /// Keep a list of the windows this core clears, all their state gone (Flink's
    /// `clearAllState`, which calls the window function's `clear`): at their clean-up
    /// time, and every window left at [`Self::finish`]. Windows merged into another
    /// are not cleared: their contents live on in the merged window.
    pub fn track_cleared(&mut self) {
        self.cleared.get_or_insert_with(Vec::new);
    }

    /// The windows cleared since the last call, in the order they went (at the end of
    /// input: by window end, key, window start). Empty unless [`Self::track_cleared`].
    pub fn take_cleared(&mut self) -> Vec<(K, Window)> {
        self.cleared.as_mut().map(std::mem::take).unwrap_or_default()
    }

    // ---- introspection ----

    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    pub fn processing_time(&self) -> i64 {
        self.clock
    }

    /// The built-in trigger (unused when a [`TriggerFunction`] was given).
    pub fn trigger(&self) -> &Trigger {
        &self.trigger.builtin
    }

    /// Whether a user's [`TriggerFunction`] decides (its state lives beside the core,
    /// dropped when a window is cleared: see [`Self::track_cleared`]).
    pub fn has_trigger_function(&self) -> bool {
        self.trigger.function.is_some()
    }

    /// Closes the user's trigger and evictor functions, if any (end of input).
    pub fn close_functions(&mut self) -> UdfResult<()> {
        let t = self.trigger.function.as_mut().map_or(Ok(()), |f| f.close());
        let e = self.evicting.function.as_mut().map_or(Ok(()), |f| f.close());
        t.and(e)
    }

    pub fn stats(&self) -> WindowStats {
        self.stats
    }

    /// Late records dropped (not sent to a side output).
    pub fn late_count(&self) -> u64 {
        self.stats.late_dropped
    }

    /// Open windows over all keys (with or without contents).
    pub fn open_windows(&self) -> usize {
        self.windows.values().map(|m| m.len()).sum()
    }

    /// Keys with at least one open window.
    pub fn open_keys(&self) -> usize {
        self.windows.len()
    }

    /// The open windows of `key`, ordered by start.
    pub fn windows_of(&self, key: &K) -> Vec<Window> {
        self.windows.get(key).map(|m| m.keys().copied().collect()).unwrap_or_default()
    }

    /// Whether `key` has an open window.
    pub fn has_windows(&self, key: &K) -> bool {
        self.windows.contains_key(key)
    }

    /// Whether windows live in event time (lateness and late data apply).
    pub fn is_event_time(&self) -> bool {
        self.assigner.is_event_time()
    }

    /// Whether windows merge (sessions).
    pub fn is_merging(&self) -> bool {
        self.assigner.is_merging()
    }

    /// The aggregate function, e.g. to close it (`None` for a values core).
    pub fn aggregate_mut(&mut self) -> Option<&mut A> {
        self.aggregate.as_mut()
    }

    /// Pending (event-time, processing-time) timers.
    pub fn pending_timers(&self) -> (usize, usize) {
        (self.timers.event.len(), self.timers.processing.len())
    }

    /// No window, no timer: nothing is held.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.timers.event.is_empty() && self.timers.processing.is_empty()
    }

    /// The earliest event-time timer: the next watermark at or above it (and above the
    /// current watermark) fires something.
    pub fn next_event_timer(&self) -> Option<i64> {
        self.timers.event.first().map(|t| t.0)
    }

    /// The earliest clock reading at which [`Self::on_processing_time`] fires something
    /// (a timer at `t` is due at `t + 1`); may be in the past (then: due now).
    pub fn next_processing_wakeup(&self) -> Option<i64> {
        self.timers.processing.first().map(|t| t.0.saturating_add(1))
    }

    /// The next wake-up in either domain, `(domain, time)` as in the two methods above,
    /// processing time first when both exist (only it needs a scheduled wake-up).
    pub fn next_timer(&self) -> Option<(TimeDomain, i64)> {
        self.next_processing_wakeup()
            .map(|t| (TimeDomain::ProcessingTime, t))
            .or_else(|| self.next_event_timer().map(|t| (TimeDomain::EventTime, t)))
    }

    // ---- input ----

    /// One record of `key` with event timestamp `timestamp`. Processing-time assigners
    /// use the clock of the last [`Self::on_processing_time`] call instead.
    ///
    /// Event-time assigners refuse `i64::MIN`, Flink's "no timestamp" marker.
    pub fn on_element(&mut self, key: K, timestamp: i64, value: V) -> UdfResult<ElementOutcome<K, V, A::Out>> {
        let event_time = self.assigner.is_event_time();
        if event_time && timestamp == i64::MIN {
            return Err(UdfError::new(
                "a record has no timestamp (i64::MIN) but the windows are in event time: assign timestamps and watermarks first",
            ));
        }
        let mut assigned = std::mem::take(&mut self.scratch);
        assigned.clear();
        self.assigner.assign(timestamp, self.clock, &value, &mut assigned)?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut firings = Vec::new();
        let mut accepted = false;
        for &window in &assigned {
            let window = if self.assigner.is_merging() {
                let Window::Time(tw) = window else { unreachable!("sessions are time windows") };
                match self.merge_session(&key, tw)? {
                    Some(w) => w,
                    None => continue,
                }
            } else if self.is_window_late(window) {
                continue;
            } else {
                window
            };
            let own = match (&mut self.copy, accepted) {
                (Some(copy), true) => copy(&value)?,
                _ => value.clone(),
            };
            accepted = true;
            self.add_to_window(&key, window, seq, timestamp, own, &mut firings)?;
        }
        self.scratch = assigned;
        if accepted {
            firings.sort_by_key(|f| (f.window.end(), f.window.start()));
            return Ok(ElementOutcome::Assigned(firings));
        }
        if event_time && timestamp.saturating_add(self.lateness) <= self.watermark {
            if self.late_output {
                self.stats.late_side_output += 1;
                Ok(ElementOutcome::Late(LateRecord { key, timestamp, value }))
            } else {
                self.stats.late_dropped += 1;
                Ok(ElementOutcome::Dropped(DropReason::Late))
            }
        } else {
            self.stats.no_window += 1;
            Ok(ElementOutcome::Dropped(DropReason::NoWindow))
        }
    }

    /// The watermark advanced to `watermark`: fires the event-time timers up to it and
    /// cleans up windows whose lateness has passed. A watermark not above the current
    /// one does nothing.
    pub fn on_watermark(&mut self, watermark: i64) -> UdfResult<Vec<Firing<K, V, A::Out>>> {
        let mut out = Vec::new();
        if watermark > self.watermark {
            self.watermark = watermark;
            self.fire_event_timers(&mut out)?;
        }
        Ok(out)
    }

    /// The clock reads `now` (a smaller reading than before is ignored): fires the
    /// processing-time timers before `now`.
    pub fn on_processing_time(&mut self, now: i64) -> UdfResult<Vec<Firing<K, V, A::Out>>> {
        self.clock = self.clock.max(now);
        let mut out = Vec::new();
        while let Some(first) = self.timers.processing.first() {
            if first.0 >= self.clock {
                break;
            }
            let (t, key, window) = self.timers.processing.pop_first().expect("peeked");
            self.on_timer(TimeDomain::ProcessingTime, t, key, window, &mut out)?;
        }
        Ok(out)
    }

    /// The clock reads `now` (a smaller reading is ignored), for processing-time
    /// assigners, without firing timers: a batch job's timers wait for the end.
    pub fn set_clock(&mut self, now: i64) {
        self.clock = self.clock.max(now);
    }

    /// End of input: see the module docs. Leaves the core empty (the watermark stays at
    /// `i64::MAX`, so later event-time records would be late).
    pub fn finish(&mut self) -> UdfResult<Vec<Firing<K, V, A::Out>>> {
        self.finishing = true;
        let mut out = Vec::new();
        let result = self.finish_inner(&mut out);
        self.finishing = false;
        if let Some(cleared) = &mut self.cleared {
            let mut left: Vec<(K, Window)> =
                self.windows.iter().flat_map(|(k, m)| m.keys().map(move |w| (k.clone(), *w))).collect();
            left.sort_by(|a, b| (a.1.end(), &a.0, a.1.start()).cmp(&(b.1.end(), &b.0, b.1.start())));
            cleared.extend(left);
        }
        for m in std::mem::take(&mut self.windows).into_values() {
            for st in m.into_values() {
                self.stats.discarded += st.fresh;
            }
        }
        self.timers.event.clear();
        self.timers.processing.clear();
        result.map(|()| out)
    }

    fn finish_inner(&mut self, out: &mut Vec<Firing<K, V, A::Out>>) -> UdfResult<()> {
        self.watermark = i64::MAX;
        self.fire_event_timers(out)?;
        if self.end_of_input == EndOfInput::Flink {
            return Ok(());
        }
        self.clock = i64::MAX;
        while let Some((t, key, window)) = self.timers.processing.pop_first() {
            self.on_timer(TimeDomain::ProcessingTime, t, key, window, out)?;
        }
        if self.end_of_input == EndOfInput::Timers {
            return Ok(());
        }
        let mut pending: Vec<(K, Window)> = Vec::new();
        for (key, m) in &self.windows {
            for (window, st) in m {
                if st.fresh > 0 {
                    pending.push((key.clone(), *window));
                }
            }
        }
        pending.sort_by(|a, b| (a.1.end(), &a.0, a.1.start()).cmp(&(b.1.end(), &b.0, b.1.start())));
        for (key, window) in pending {
            let st = self.windows.get_mut(&key).and_then(|m| m.get_mut(&window)).expect("listed");
            let clocks = (self.watermark, self.clock);
            if let Some(contents) =
                fire_contents(&mut self.aggregate, &mut self.evicting, &mut self.stats, (st, window, clocks), true)?
            {
                out.push(Firing { key, window, contents, purged: true, cause: Cause::EndOfInput });
            }
            st.contents = Stored::Empty;
            st.fresh = 0;
        }
        Ok(())
    }

    // ---- internals ----

    /// Flink's `cleanupTime`: `max_timestamp + lateness` in event time (saturating),
    /// `max_timestamp` in processing time; `i64::MAX` means never.
    fn cleanup_time(&self, window: Window) -> i64 {
        window.max_timestamp().saturating_add(self.lateness)
    }

    fn is_window_late(&self, window: Window) -> bool {
        self.assigner.is_event_time() && self.cleanup_time(window) <= self.watermark
    }

    fn register_cleanup(&mut self, key: &K, window: Window) {
        let t = self.cleanup_time(window);
        if t == i64::MAX {
            return;
        }
        let set = match self.assigner.domain() {
            TimeDomain::EventTime => &mut self.timers.event,
            TimeDomain::ProcessingTime => &mut self.timers.processing,
        };
        set.insert((t, key.clone(), window));
    }

    fn delete_cleanup(&mut self, key: &K, window: Window) {
        let t = self.cleanup_time(window);
        let set = match self.assigner.domain() {
            TimeDomain::EventTime => &mut self.timers.event,
            TimeDomain::ProcessingTime => &mut self.timers.processing,
        };
        set.remove(&(t, key.clone(), window));
    }

    fn fire_event_timers(&mut self, out: &mut Vec<Firing<K, V, A::Out>>) -> UdfResult<()> {
        while let Some(first) = self.timers.event.first() {
            if first.0 > self.watermark {
                break;
            }
            let (t, key, window) = self.timers.event.pop_first().expect("peeked");
            self.on_timer(TimeDomain::EventTime, t, key, window, out)?;
        }
        Ok(())
    }

    /// Flink's `WindowOperator.onEventTime` / `onProcessingTime`.
    fn on_timer(
        &mut self,
        domain: TimeDomain,
        t: i64,
        key: K,
        window: Window,
        out: &mut Vec<Firing<K, V, A::Out>>,
    ) -> UdfResult<()> {
        let Some(st) = self.windows.get_mut(&key).and_then(|m| m.get_mut(&window)) else {
            return Ok(()); // a timer of a window that is gone (not left behind normally)
        };
        let mut ctx = Ctx { key: &key, window, watermark: self.watermark, clock: self.clock, timers: &mut self.timers };
        let call = match domain {
            TimeDomain::EventTime => TriggerCall::EventTime(t),
            TimeDomain::ProcessingTime => TriggerCall::ProcessingTime(t),
        };
        let r = self.trigger.call(call, &mut ctx, &mut st.trigger)?;
        if r.fire {
            let clocks = (self.watermark, self.clock);
            if let Some(contents) =
                fire_contents(&mut self.aggregate, &mut self.evicting, &mut self.stats, (st, window, clocks), r.purge)?
            {
                let cause = match domain {
                    TimeDomain::EventTime => Cause::EventTime(t),
                    TimeDomain::ProcessingTime => Cause::ProcessingTime(t),
                };
                out.push(Firing { key: key.clone(), window, contents, purged: r.purge, cause });
            }
        }
        if r.purge {
            st.contents = Stored::Empty;
            st.fresh = 0;
        }
        if domain == self.assigner.domain() && t == self.cleanup_time(window) && !self.finishing {
            self.clear_window(&key, window)?;
        }
        Ok(())
    }

    /// Flink's `clearAllState`: the window, its trigger state and its timers go.
    fn clear_window(&mut self, key: &K, window: Window) -> UdfResult<()> {
        let Some(m) = self.windows.get_mut(key) else { return Ok(()) };
        let Some(mut st) = m.remove(&window) else { return Ok(()) };
        if m.is_empty() {
            self.windows.remove(key);
        }
        self.stats.discarded += st.fresh;
        if let Some(cleared) = &mut self.cleared {
            cleared.push((key.clone(), window));
        }
        let mut ctx = Ctx { key, window, watermark: self.watermark, clock: self.clock, timers: &mut self.timers };
        self.trigger.clear(&mut ctx, &mut st.trigger)?;
        self.delete_cleanup(key, window);
        Ok(())
    }

    /// Adds one record to one (not late) window and runs the trigger.
    fn add_to_window(
        &mut self,
        key: &K,
        window: Window,
        seq: u64,
        ts: i64,
        value: V,
        firings: &mut Vec<Firing<K, V, A::Out>>,
    ) -> UdfResult<()> {
        if !self.windows.contains_key(key) {
            self.windows.insert(key.clone(), BTreeMap::new());
        }
        let m = self.windows.get_mut(key).expect("inserted");
        let st = m.entry(window).or_insert_with(WinState::new);
        let mut unkept = None;
        if self.keep_elements {
            let elem = Elem { seq, ts, value };
            match &mut st.contents {
                Stored::Elements(v) => v.push(elem),
                _ => st.contents = Stored::Elements(vec![elem]),
            }
        } else {
            let agg = self.aggregate.as_mut().expect("aggregate mode");
            let acc = match std::mem::replace(&mut st.contents, Stored::Empty) {
                Stored::Acc(a) => a,
                _ => agg.create_accumulator()?,
            };
            st.contents = Stored::Acc(agg.add(&value, acc)?);
            // Not kept in the window: a user's trigger gets it from here.
            unkept = Some(value);
        }
        st.fresh += 1;
        let mut ctx = Ctx { key, window, watermark: self.watermark, clock: self.clock, timers: &mut self.timers };
        let r = if self.trigger.function.is_none() {
            self.trigger.builtin.on_element(ts, &mut ctx, &mut st.trigger)
        } else {
            let value = match (&unkept, &st.contents) {
                (Some(v), _) => v,
                (None, Stored::Elements(elems)) => &elems.last().expect("just added").value,
                _ => unreachable!("a record is either kept or aggregated"),
            };
            self.trigger.call(TriggerCall::Element(value, ts), &mut ctx, &mut st.trigger)?
        };
        if r.fire {
            let clocks = (self.watermark, self.clock);
            if let Some(contents) =
                fire_contents(&mut self.aggregate, &mut self.evicting, &mut self.stats, (st, window, clocks), r.purge)?
            {
                firings.push(Firing { key: key.clone(), window, contents, purged: r.purge, cause: Cause::Element });
            }
        }
        if r.purge {
            st.contents = Stored::Empty;
            st.fresh = 0;
        }
        self.register_cleanup(key, window);
        Ok(())
    }

    /// Flink's `MergingWindowSet.addWindow` + the operator's merge function: the window
    /// the record at `new` belongs to after merging, or `None` if it is late (its own
    /// window is late and touches no open window; a merge with an open window is never
    /// late, since open windows are not past their clean-up time).
    fn merge_session(&mut self, key: &K, new: TimeWindow) -> UdfResult<Option<Window>> {
        let existing: Vec<TimeWindow> = match self.windows.get(key) {
            Some(m) => m.keys().filter_map(Window::time).collect(),
            None => Vec::new(),
        };
        let mut merged_cover = new;
        let mut group: Vec<TimeWindow> = Vec::new();
        loop {
            let before = group.len();
            for w in &existing {
                if !group.contains(w) && touches(w, &merged_cover) {
                    group.push(*w);
                    merged_cover = cover(&merged_cover, w);
                }
            }
            if group.len() == before {
                break;
            }
        }
        if group.is_empty() {
            let w = Window::Time(new);
            return Ok(if self.is_window_late(w) { None } else { Some(w) });
        }
        if group.len() == 1 && group[0] == merged_cover {
            return Ok(Some(Window::Time(merged_cover))); // inside an open window
        }
        group.sort();
        let result = Window::Time(merged_cover);
        let mut merged: WinState<V, A::Acc> = WinState::new();
        let mut gone: Vec<(Window, TriggerState)> = Vec::with_capacity(group.len());
        for w in group {
            let w = Window::Time(w);
            let m = self.windows.get_mut(key).expect("listed");
            let st = m.remove(&w).expect("listed");
            merged.fresh += st.fresh;
            merged.trigger.merge_from(&st.trigger);
            gone.push((w, st.trigger));
            self.delete_cleanup(key, w);
            merged.contents = match (merged.contents, st.contents) {
                (a, Stored::Empty) => a,
                (Stored::Empty, b) => b,
                (Stored::Elements(mut a), Stored::Elements(b)) => {
                    a.extend(b);
                    Stored::Elements(a)
                }
                (Stored::Acc(a), Stored::Acc(b)) => {
                    Stored::Acc(self.aggregate.as_mut().expect("aggregate mode").merge(a, b)?)
                }
                _ => unreachable!("one core keeps either elements or accumulators"),
            };
        }
        if let Stored::Elements(v) = &mut merged.contents {
            v.sort_by_key(|e| e.seq);
        }
        // As Flink: the trigger merges first (a user's reads the merged-away windows'
        // state), then each merged-away window's trigger is cleared (its timers go;
        // its contents live on in the result).
        let mut ctx =
            Ctx { key, window: result, watermark: self.watermark, clock: self.clock, timers: &mut self.timers };
        let merged_windows: Vec<Window> = gone.iter().map(|(w, _)| *w).collect();
        self.trigger.on_merge(&merged_windows, &mut ctx, &mut merged.trigger)?;
        self.windows.entry(key.clone()).or_default().insert(result, merged);
        for (w, mut trigger_state) in gone {
            let mut ctx =
                Ctx { key, window: w, watermark: self.watermark, clock: self.clock, timers: &mut self.timers };
            self.trigger.clear(&mut ctx, &mut trigger_state)?;
            if let Some(f) = &mut self.trigger.function {
                f.merged_away(key, w)?;
            }
        }
        Ok(Some(result))
    }
}

/// The contents a firing hands out (after eviction), or `None` if the window holds
/// nothing. Marks the window as fired.
fn fire_contents<V: Clone, A: AggregateFunction<V>>(
    aggregate: &mut Option<A>,
    evicting: &mut Evicting<V>,
    stats: &mut WindowStats,
    (st, window, clocks): (&mut WinState<V, A::Acc>, Window, (i64, i64)),
    purge: bool,
) -> UdfResult<Option<Contents<V, A::Out>>> {
    let contents = match &mut st.contents {
        Stored::Empty => return Ok(None),
        Stored::Elements(elems) => {
            stats.evicted += evicting.evict(false, window, elems, clocks)?;
            if elems.is_empty() {
                return Ok(None);
            }
            match aggregate {
                None if purge => Contents::Values(std::mem::take(elems).into_iter().map(|e| e.value).collect()),
                None => Contents::Values(elems.iter().map(|e| e.value.clone()).collect()),
                Some(agg) => {
                    let mut acc = agg.create_accumulator()?;
                    for e in elems.iter() {
                        acc = agg.add(&e.value, acc)?;
                    }
                    Contents::Aggregate(agg.get_result(&acc)?)
                }
            }
        }
        Stored::Acc(acc) => Contents::Aggregate(aggregate.as_mut().expect("aggregate mode").get_result(acc)?),
    };
    if let Stored::Elements(elems) = &mut st.contents {
        stats.evicted += evicting.evict(true, window, elems, clocks)?;
    }
    st.fresh = 0;
    Ok(Some(contents))
}

// ---- checkpoints ----

/// An accumulator as records, for checkpoints (issue 13): the window operator's
/// accumulators are one record or none, a values core's are `()` (never stored).
pub trait AccRecord<V>: Sized {
    /// The record this accumulator holds, if any.
    fn record(&self) -> Option<&V>;
    /// The accumulator that [`AccRecord::record`] gave `v` for; `None` if none can be.
    fn from_record(v: Option<V>) -> Option<Self>;
}

impl<V> AccRecord<V> for () {
    fn record(&self) -> Option<&V> {
        None
    }
    fn from_record(v: Option<V>) -> Option<()> {
        v.is_none().then_some(())
    }
}

impl<V> AccRecord<V> for Option<V> {
    fn record(&self) -> Option<&V> {
        self.as_ref()
    }
    fn from_record(v: Option<V>) -> Option<Self> {
        Some(v)
    }
}

/// What a window stores, in a snapshot's meta.
const STORED_EMPTY: u8 = 0;
const STORED_ELEMENTS: u8 = 1;
const STORED_ACC: u8 = 2;

/// A window: kind (0 time, 1 global), then a time window's start and end.
pub fn write_window<V: Record>(w: &mut StateWriter<V>, window: &Window) {
    match window {
        Window::Time(t) => {
            w.u8(0);
            w.i64(t.start);
            w.i64(t.end);
        }
        Window::Global => w.u8(1),
    }
}

/// A window [`write_window`] wrote.
pub fn read_window<V: Record>(r: &mut StateReader<'_, V>) -> Result<Window, StateError> {
    match r.u8()? {
        0 => {
            let (start, end) = (r.i64()?, r.i64()?);
            if start > end {
                return Err(r.corrupt(format!("a window [{start}, {end}) ends before it starts")));
            }
            Ok(Window::Time(TimeWindow { start, end }))
        }
        1 => Ok(Window::Global),
        k => Err(r.corrupt(format!("window kind {k}"))),
    }
}

fn write_option<V: Record>(w: &mut StateWriter<V>, v: Option<i64>) {
    w.bool(v.is_some());
    w.i64(v.unwrap_or(0));
}

fn read_option<V: Record>(r: &mut StateReader<'_, V>) -> Result<Option<i64>, StateError> {
    let some = r.bool()?;
    let v = r.i64()?;
    Ok(some.then_some(v))
}

/// A timer's domain in a snapshot.
const EVENT: u8 = 0;
const PROCESSING: u8 = 1;

impl<V: Record, A: AggregateFunction<V>> WindowCore<Key, V, A>
where
    A::Acc: AccRecord<V>,
{
    /// Checkpoints: appends the core's state to `w`. The watermark, the clock and the
    /// next arrival number, then one keyed entry per key that has windows or timers:
    /// its meta holds each window (bounds, elements since the last firing, trigger
    /// state, what it stores: nothing, elements with their arrival numbers and
    /// timestamps, or an accumulator) and each timer (domain, time, window); its
    /// values are the windows' elements and accumulators in that order. Counters
    /// ([`WindowStats`]) are not part of it: they count this run's records.
    pub fn snapshot(&self, w: &mut StateWriter<V>) -> Result<(), StateError> {
        debug_assert!(!self.finishing, "a snapshot inside finish()");
        w.i64(self.watermark);
        w.i64(self.clock);
        w.u64(self.next_seq);
        let mut timers: HashMap<&Key, Vec<(u8, i64, Window)>, BuildKeyHasher> = HashMap::default();
        for (domain, set) in [(EVENT, &self.timers.event), (PROCESSING, &self.timers.processing)] {
            for (t, key, window) in set {
                timers.entry(key).or_default().push((domain, *t, *window));
            }
        }
        let no_windows = KeyWindows::new();
        let keys = self.windows.keys().chain(timers.keys().copied().filter(|k| !self.windows.contains_key(*k)));
        let mut entries = w.begin_keyed();
        let mut meta = Vec::new();
        let mut values: Vec<V> = Vec::new();
        for key in keys {
            let windows = self.windows.get(key).unwrap_or(&no_windows);
            let mut meta_w = StateWriter::<V>::from_vec(std::mem::take(&mut meta));
            meta_w.u64(windows.len() as u64);
            for (window, st) in windows {
                write_window(&mut meta_w, window);
                meta_w.u64(st.fresh);
                meta_w.u64(st.trigger.count);
                write_option(&mut meta_w, st.trigger.fire_timestamp);
                match &st.contents {
                    Stored::Empty => meta_w.u8(STORED_EMPTY),
                    Stored::Elements(elems) => {
                        meta_w.u8(STORED_ELEMENTS);
                        meta_w.u64(elems.len() as u64);
                        for e in elems {
                            meta_w.u64(e.seq);
                            meta_w.i64(e.ts);
                            values.push(e.value.clone());
                        }
                    }
                    Stored::Acc(acc) => {
                        meta_w.u8(STORED_ACC);
                        let record = acc.record();
                        meta_w.bool(record.is_some());
                        values.extend(record.cloned());
                    }
                }
            }
            let key_timers = timers.get(key).map_or(&[][..], |t| &t[..]);
            meta_w.u64(key_timers.len() as u64);
            for (domain, t, window) in key_timers {
                meta_w.u8(*domain);
                meta_w.i64(*t);
                write_window(&mut meta_w, window);
            }
            entries.push_entry(key, meta_w.as_bytes(), values.drain(..))?;
            meta = meta_w.into_bytes();
            meta.clear();
        }
        entries.finish()
    }

    /// Checkpoints: adds one old instance's [`WindowCore::snapshot`] to this core,
    /// keeping the keys `keep` says are this instance's (see
    /// [`crate::checkpoint::restore::Restore::owns`]). Call it for every old instance's
    /// section, on a core that has seen no input. The clocks only grow: the core takes
    /// the highest of the sections' (the same value when the parallelism is unchanged).
    pub fn restore(&mut self, r: &mut StateReader<'_, V>, keep: impl Fn(&Key) -> bool) -> Result<(), StateError> {
        self.watermark = self.watermark.max(r.i64()?);
        self.clock = self.clock.max(r.i64()?);
        self.next_seq = self.next_seq.max(r.u64()?);
        let next_seq = self.next_seq;
        let Self { windows, timers, keep_elements, .. } = self;
        let keep_elements = *keep_elements;
        r.keyed_entries(|key, meta, values| {
            if !keep(&key) {
                return Ok(());
            }
            let mut m = StateReader::<V>::new(meta);
            let n = m.u64()?;
            let mut key_windows = KeyWindows::new();
            for _ in 0..n {
                let window = read_window(&mut m)?;
                let fresh = m.u64()?;
                let count = m.u64()?;
                let fire_timestamp = read_option(&mut m)?;
                let contents = match m.u8()? {
                    STORED_EMPTY => Stored::Empty,
                    STORED_ELEMENTS if keep_elements => {
                        let n = m.u64()?;
                        // Each element takes 16 bytes of meta: a corrupt count fails below.
                        let mut elems = Vec::with_capacity((n as usize).min(m.remaining() / 16));
                        for _ in 0..n {
                            let (seq, ts) = (m.u64()?, m.i64()?);
                            if seq >= next_seq {
                                return Err(m.corrupt(format!("element number {seq} of {next_seq}")));
                            }
                            let value = values.next().ok_or_else(|| m.corrupt("fewer values than elements"))?;
                            elems.push(Elem { seq, ts, value });
                        }
                        Stored::Elements(elems)
                    }
                    STORED_ACC if !keep_elements => {
                        let value = if m.bool()? {
                            Some(values.next().ok_or_else(|| m.corrupt("an accumulator without its value"))?)
                        } else {
                            None
                        };
                        Stored::Acc(
                            A::Acc::from_record(value).ok_or_else(|| m.corrupt("an accumulator of another kind"))?,
                        )
                    }
                    k => {
                        return Err(
                            m.corrupt(format!("a window storing kind {k}, which this window core does not keep"))
                        )
                    }
                };
                let st = WinState { contents, fresh, trigger: TriggerState { count, fire_timestamp } };
                if key_windows.insert(window, st).is_some() {
                    return Err(m.corrupt("a window twice"));
                }
            }
            for _ in 0..m.u64()? {
                let (domain, t, window) = (m.u8()?, m.i64()?, read_window(&mut m)?);
                let set = match domain {
                    EVENT => &mut timers.event,
                    PROCESSING => &mut timers.processing,
                    d => return Err(m.corrupt(format!("timer domain {d}"))),
                };
                set.insert((t, key.clone(), window));
            }
            m.finish()?;
            if values.next().is_some() {
                return Err(StateError::Corrupt { offset: 0, what: "more values than a key's windows hold".into() });
            }
            if !key_windows.is_empty() && windows.insert(key, key_windows).is_some() {
                return Err(StateError::Corrupt { offset: 0, what: "a key in two sections".into() });
            }
            Ok(())
        })
    }
}
