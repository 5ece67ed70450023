//! Keyed windows: the timely operator around [`WindowCore`], which holds all window
//! semantics (assigners, triggers, evictors, lateness). This file only feeds it time
//! and records, and hands its firings to the window function.
//!
//! # Time
//!
//! The watermark is the input frontier's (see [`crate::time`]). Records are kept until
//! the frontier has passed their batch's time and are then processed in watermark
//! order, each batch after the watermark it was sent under (`min(batch watermark,
//! frontier watermark)`): so whether a record is late does not depend on when progress
//! news arrives, and results do not depend on the number of workers or processes. Windows
//! in processing time on the wall clock need no such ordering and take records at once.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::Stream;

use crate::checkpoint::restore::Restore;
use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
use crate::error::{ErrorKind, UdfError, UdfResult};
use crate::exchange::Routed;
use crate::functions::{Reducer, WindowAggregate, WindowApply, WindowContext, WorkerContext};
use crate::key::{Key, KeyMap};
use crate::operators::driver::{self, Cx, Failure, OpInfo, OperatorLogic, UnaryInput};
use crate::operators::keyed::open;
use crate::operators::{own_records, Keyed, OpEnv};
use crate::plan::{ApplyFactory, WindowFunction, WindowSpec};
use crate::process::{lock, ProcessContext, SharedContext};
use crate::record::Record;
use crate::state::snapshot::{read_keyed, write_keyed};
use crate::state::{KeyedStateBackend, Namespace};
use crate::time::{self, Time, NO_TIME};
use crate::windows::event_time::{
    AggregateFunction, Assigner, Contents, ElementOutcome, Evictor, Firing, Trigger, Window, WindowConfig, WindowCore,
};

/// The reduce or aggregate of a window, as the core's accumulator function.
enum Incremental<R> {
    /// `own_first`: a window's first value, which becomes its accumulator, is made the
    /// accumulator's own (object reuse off): the reduce may change it in place, while
    /// the record may still be in the window's elements (with an evictor).
    Reduce {
        f: Box<dyn Reducer<R>>,
        own_first: bool,
    },
    Aggregate(Box<dyn WindowAggregate<R>>),
}

impl<R: Record> AggregateFunction<R> for Incremental<R> {
    /// `None` until the first value (a reduce has no neutral element).
    type Acc = Option<R>;
    type Out = R;

    fn create_accumulator(&mut self) -> UdfResult<Option<R>> {
        match self {
            Incremental::Reduce { .. } => Ok(None),
            Incremental::Aggregate(a) => a.create_accumulator().map(Some),
        }
    }

    fn add(&mut self, value: &R, acc: Option<R>) -> UdfResult<Option<R>> {
        match (self, acc) {
            (Incremental::Reduce { f, own_first }, None) => {
                f.check_first(value)?;
                let mut acc = value.clone();
                if *own_first {
                    own_records(std::slice::from_mut(&mut acc))?;
                }
                Ok(Some(acc))
            }
            (Incremental::Reduce { f, .. }, Some(acc)) => f.reduce(&acc, value).map(Some),
            (Incremental::Aggregate(a), Some(acc)) => a.add(value, acc).map(Some),
            (Incremental::Aggregate(a), None) => {
                let acc = a.create_accumulator()?;
                a.add(value, acc).map(Some)
            }
        }
    }

    fn get_result(&mut self, acc: &Option<R>) -> UdfResult<R> {
        match (self, acc) {
            (Incremental::Reduce { .. }, Some(v)) => Ok(v.clone()),
            (Incremental::Aggregate(a), Some(acc)) => a.get_result(acc),
            (Incremental::Aggregate(a), None) => {
                let acc = a.create_accumulator()?;
                a.get_result(&acc)
            }
            (Incremental::Reduce { .. }, None) => Err(UdfError::new("reduce of an empty window")),
        }
    }

    fn merge(&mut self, a: Option<R>, b: Option<R>) -> UdfResult<Option<R>> {
        match (self, a, b) {
            (Incremental::Reduce { f, .. }, Some(a), Some(b)) => f.reduce(&a, &b).map(Some),
            (Incremental::Aggregate(f), Some(a), Some(b)) => f.merge(a, b).map(Some),
            (_, a, b) => Ok(a.or(b)),
        }
    }
}

impl<R: Record> Incremental<R> {
    fn close(&mut self) -> UdfResult<()> {
        match self {
            Incremental::Reduce { f, .. } => f.close(),
            Incremental::Aggregate(a) => a.close(),
        }
    }
}

/// The core and the user functions of one worker's window operator.
enum Core<R: Record> {
    /// The window function sees every value (`process`/`apply`).
    Values(WindowCore<Key, R>, Box<dyn WindowApply<R>>),
    /// Reduce or aggregate, optionally handed to a window function.
    Incremental(WindowCore<Key, R, Incremental<R>>, Option<Box<dyn WindowApply<R>>>),
}

type Fired<R> = Firing<Key, R, R>;

/// `$body` with `$c` bound to whichever window core `$core` holds (for the calls whose
/// result does not depend on the kind).
macro_rules! with_core {
    ($core:expr, $c:ident => $body:expr) => {
        match $core {
            Core::Values($c, _) => $body,
            Core::Incremental($c, _) => $body,
        }
    };
}

/// Firings of either kind of core, with aggregate results already a record.
fn values_firings<R: Record>(firings: Vec<Firing<Key, R, std::convert::Infallible>>) -> Vec<Fired<R>> {
    firings
        .into_iter()
        .map(|f| Firing {
            key: f.key,
            window: f.window,
            contents: match f.contents {
                Contents::Values(v) => Contents::Values(v),
                Contents::Aggregate(never) => match never {},
            },
            purged: f.purged,
            cause: f.cause,
        })
        .collect()
}

/// What became of a record, for either kind of core.
enum Outcome<R> {
    Fired(Vec<Fired<R>>),
    Late(R),
    Dropped,
}

impl<R: Record> Core<R> {
    fn element(&mut self, key: Key, ts: i64, value: R) -> UdfResult<Outcome<R>> {
        fn map<R, O>(
            o: ElementOutcome<Key, R, O>,
            fired: impl FnOnce(Vec<Firing<Key, R, O>>) -> Vec<Fired<R>>,
        ) -> Outcome<R> {
            match o {
                ElementOutcome::Assigned(f) => Outcome::Fired(fired(f)),
                ElementOutcome::Late(late) => Outcome::Late(late.value),
                ElementOutcome::Dropped(_) => Outcome::Dropped,
            }
        }
        Ok(match self {
            Core::Values(c, _) => map(c.on_element(key, ts, value)?, values_firings),
            Core::Incremental(c, _) => map(c.on_element(key, ts, value)?, |f| f),
        })
    }

    fn watermark(&mut self, wm: i64) -> UdfResult<Vec<Fired<R>>> {
        match self {
            Core::Values(c, _) => c.on_watermark(wm).map(values_firings),
            Core::Incremental(c, _) => c.on_watermark(wm),
        }
    }

    /// The clock reads `now`: fires the processing-time timers due, except in batch
    /// mode, where they wait for the end of input (Flink's batch rule).
    fn processing_time(&mut self, now: i64, batch: bool) -> UdfResult<Vec<Fired<R>>> {
        if batch {
            with_core!(self, c => c.set_clock(now));
            return Ok(Vec::new());
        }
        match self {
            Core::Values(c, _) => c.on_processing_time(now).map(values_firings),
            Core::Incremental(c, _) => c.on_processing_time(now),
        }
    }

    fn finish(&mut self) -> UdfResult<Vec<Fired<R>>> {
        match self {
            Core::Values(c, _) => c.finish().map(values_firings),
            Core::Incremental(c, _) => c.finish(),
        }
    }

    fn current(&self) -> (i64, i64) {
        with_core!(self, c => (c.watermark(), c.processing_time()))
    }

    fn has_windows(&self, key: &Key) -> bool {
        with_core!(self, c => c.has_windows(key))
    }

    fn late_dropped(&self) -> u64 {
        with_core!(self, c => c.stats().late_dropped)
    }

    fn next_processing_wakeup(&self) -> Option<i64> {
        with_core!(self, c => c.next_processing_wakeup())
    }

    fn is_event_time(&self) -> bool {
        with_core!(self, c => c.is_event_time())
    }

    /// The window function, if there is one (not a bare reduce or aggregate).
    fn window_function(&mut self) -> Option<&mut Box<dyn WindowApply<R>>> {
        match self {
            Core::Values(_, f) | Core::Incremental(_, Some(f)) => Some(f),
            Core::Incremental(_, None) => None,
        }
    }

    /// Windows the core cleared since the last call (see [`WindowCore::track_cleared`]).
    fn take_cleared(&mut self) -> Vec<(Key, Window)> {
        with_core!(self, c => c.take_cleared())
    }

    /// Calls the window function for one firing; outputs carry the window's
    /// `max_timestamp` as their event time. What the window function gets and what
    /// goes out are made their holder's own (`env.own`): a window that did not purge
    /// keeps its values and accumulator, and a record may be in several windows.
    fn emit(&mut self, env: &OpEnv, key_value: &R, firing: Fired<R>, out: &mut Vec<R>) -> UdfResult<()> {
        let (watermark, processing_time) = self.current();
        let ctx = WindowContext { window: firing.window.info(), watermark, processing_time };
        let first = out.len();
        let owned = |mut values: Vec<R>| env.own(&mut values).map(|()| values);
        match (self, firing.contents) {
            (Core::Values(_, f), Contents::Values(values)) => f.apply(key_value, &ctx, owned(values)?, out)?,
            (Core::Incremental(_, Some(f)), Contents::Aggregate(v)) => {
                f.apply(key_value, &ctx, owned(vec![v])?, out)?
            }
            (Core::Incremental(_, None), Contents::Aggregate(v)) => out.push(v),
            (Core::Incremental(_, Some(f)), Contents::Values(values)) => {
                f.apply(key_value, &ctx, owned(values)?, out)?
            }
            (_, Contents::Values(values)) => out.extend(values),
            (Core::Values(..), Contents::Aggregate(_)) => unreachable!("a values core has no aggregate"),
        }
        env.own(&mut out[first..])?;
        let ts = firing.window.max_timestamp();
        out[first..].iter_mut().for_each(|r| r.set_timestamp(ts));
        Ok(())
    }

    fn close(&mut self) -> UdfResult<()> {
        let functions = with_core!(self, c => c.close_functions());
        let rest = match self {
            Core::Values(_, f) => f.close(),
            Core::Incremental(inc, then) => {
                let a = inc.aggregate_mut().map_or(Ok(()), |a| a.close());
                let b = then.as_mut().map_or(Ok(()), |f| f.close());
                a.and(b)
            }
        };
        functions.and(rest)
    }
}

/// The engine's shorthand windows as core configurations (Flink's definitions).
fn config_of<R: Record>(
    spec: &WindowSpec<R>,
    ctx: &WorkerContext,
    state: &SharedContext<R>,
) -> UdfResult<WindowConfig<R>> {
    Ok(match spec {
        WindowSpec::ProcessingTime { size_ms, slide_ms } if size_ms == slide_ms => {
            WindowConfig::new(Assigner::tumbling_processing_time(*size_ms, 0))
        }
        WindowSpec::ProcessingTime { size_ms, slide_ms } => {
            WindowConfig::new(Assigner::sliding_processing_time(*size_ms, *slide_ms, 0))
        }
        // countWindow(n): GlobalWindows + PurgingTrigger(CountTrigger(n)).
        WindowSpec::Count { size, slide } if size == slide => {
            WindowConfig::new(Assigner::global()).trigger(Trigger::purging(Trigger::Count(*size as u64)))
        }
        // countWindow(n, s): GlobalWindows + CountEvictor(n) + CountTrigger(s).
        WindowSpec::Count { size, slide } => {
            WindowConfig::new(Assigner::global()).evictor(Evictor::Count(*size)).trigger(Trigger::Count(*slide as u64))
        }
        WindowSpec::Custom(make) => make(ctx, state)?,
    })
}

fn make_core<R: Record>(
    env: &OpEnv,
    name: &str,
    parallelism: Option<usize>,
    spec: &WindowSpec<R>,
    function: &WindowFunction<R>,
    state: &SharedContext<R>,
) -> Option<Core<R>> {
    let ctx = env.context_for(parallelism)?;
    let apply =
        |f: &ApplyFactory<R>| env.instantiate(ErrorKind::Udf, name, parallelism, &|w: &WorkerContext| f(w, state));
    let mut config = None;
    env.enter(|| match config_of(spec, &ctx, state) {
        Ok(c) => config = Some(c),
        Err(e) => env.fail(ErrorKind::Udf, name, e),
    });
    let mut config = config?;
    config.end_of_input = env.semantics.window_end_of_input();
    let own_first = !env.object_reuse;
    let core = match function {
        WindowFunction::Apply(f) => apply(f).map(|f| WindowCore::new(config).map(|c| Core::Values(c, f))),
        WindowFunction::Reduce(r) => env.instantiate(ErrorKind::Udf, name, parallelism, &**r).map(|f| {
            WindowCore::with_aggregate(config, Incremental::Reduce { f, own_first }).map(|c| Core::Incremental(c, None))
        }),
        WindowFunction::Aggregate(a) => env
            .instantiate(ErrorKind::Udf, name, parallelism, &**a)
            .map(|a| WindowCore::with_aggregate(config, Incremental::Aggregate(a)).map(|c| Core::Incremental(c, None))),
        WindowFunction::ReduceThen(r, then) => {
            let f = env.instantiate(ErrorKind::Udf, name, parallelism, &**r)?;
            let then = apply(then)?;
            Some(
                WindowCore::with_aggregate(config, Incremental::Reduce { f, own_first })
                    .map(|c| Core::Incremental(c, Some(then))),
            )
        }
        WindowFunction::AggregateThen(a, then) => {
            let a = env.instantiate(ErrorKind::Udf, name, parallelism, &**a)?;
            let then = apply(then)?;
            Some(
                WindowCore::with_aggregate(config, Incremental::Aggregate(a)).map(|c| Core::Incremental(c, Some(then))),
            )
        }
    }?;
    match core {
        Ok(mut c) if !env.object_reuse => {
            with_core!(&mut c, w => w.copy_values_with(Box::new(|v: &R| {
                let mut own = v.clone();
                own_records(std::slice::from_mut(&mut own))?;
                Ok(own)
            })));
            Some(c)
        }
        Ok(c) => Some(c),
        Err(e) => {
            env.fail(ErrorKind::Plan, name, UdfError::new(e));
            None
        }
    }
}

/// Keyed windows. Returns the window results and the late records (the side output).
/// Every pending window fires when the input ends, so a bounded job's results are
/// complete (see [`crate::windows::event_time`]).
#[allow(clippy::too_many_arguments)]
pub fn window<'s, R: Record, P: ParallelizationContract<Time, Vec<Routed<Keyed<R>>>>>(
    stream: Stream<'s, Time, Vec<Routed<Keyed<R>>>>,
    pact: P,
    node: usize,
    name: &str,
    spec: &WindowSpec<R>,
    function: &WindowFunction<R>,
    parallelism: Option<usize>,
    env: Rc<OpEnv>,
) -> (Stream<'s, Time, Vec<R>>, Stream<'s, Time, Vec<R>>) {
    let info = OpInfo::udf(name, Some(node));
    let name = name.to_string();
    let (spec, function) = (spec.clone(), function.clone());
    let outputs = driver::unary_outputs(stream, pact, 2, info, env.clone(), move |caps: Vec<_>| {
        let caps = caps.try_into().ok()?;
        // Keyed state of the window functions: the key is the firing window's.
        let state = ProcessContext::shared(true);
        let mut core = make_core(&env, &name, parallelism, &spec, &function, &state)?;
        // A window function is told when its window is cleared (`clear(context)`), and
        // its (and a user's trigger's) per-window state goes then.
        if core.window_function().is_some() || with_core!(&core, c => c.has_trigger_function()) {
            with_core!(&mut core, c => c.track_cleared());
        }
        lock(&state).merging_windows = with_core!(&core, c => c.is_merging());
        let manual = env.manual_processing_time;
        Some(WindowLogic {
            // Processing-time windows on the wall clock take records as they come.
            in_order: manual || core.is_event_time(),
            manual,
            core,
            caps,
            pending: BTreeMap::new(),
            key_values: KeyMap::default(),
            keyed: Vec::new(),
            out: Vec::new(),
            late: Vec::new(),
            reported_late: 0,
            name,
            state,
        })
    });
    let [main, late] = outputs.try_into().unwrap_or_else(|_| unreachable!("two outputs"));
    (main, late)
}

/// One worker's window operator.
struct WindowLogic<R: Record> {
    core: Core<R>,
    /// Output capabilities (results, late records) at the least epoch and processing
    /// time of the input frontier and at the window's own watermark: everything goes
    /// out "before" the watermark that made it, as in Flink, where results precede the
    /// watermark downstream (a second window never finds them late).
    caps: [Capability<Time>; 2],
    /// Records by the time of their batch, until the frontier passes it.
    pending: Pending<R>,
    /// Each key's value (what the window function gets), while it has windows.
    key_values: KeyMap<R>,
    /// Records take the window's watermark order (see "# Time").
    in_order: bool,
    manual: bool,
    keyed: Vec<Keyed<R>>,
    out: Vec<R>,
    late: Vec<R>,
    reported_late: u64,
    name: String,
    /// The window functions' keyed state, shared with the state objects they made.
    state: SharedContext<R>,
}

impl<R: Record> Drop for WindowLogic<R> {
    /// Releases the keyed state with the logic (inside the operator's scope), whoever
    /// still holds the context (a state object kept in the user's function object).
    fn drop(&mut self) {
        lock(&self.state).close();
    }
}

impl<R: Record> WindowLogic<R> {
    /// Processes the complete batches in watermark order, then fires what the
    /// frontier's watermark and processing time make due; with `ended`, every window.
    fn step(&mut self, cx: &mut Cx<'_, R>, ended: bool) -> UdfResult<()> {
        let env = cx.env;
        let WindowLogic { core: c, caps, pending, key_values, in_order, manual, out, late, state, .. } = self;
        let (in_order, manual) = (*in_order, *manual);
        let batch = env.semantics.batch();
        let frontier = cx.frontier(0);
        driver::follow_segment(caps.iter_mut(), frontier);
        // Batch mode ignores watermarks: windows fire at the end of input only.
        let wm_now = if batch { None } else { time::watermark(frontier) };
        let clock = env.processing_time(frontier);
        // Complete batches, by watermark: every batch processed later, complete or
        // not, was sent at a watermark at or above this one's.
        let mut ready: Vec<Time> = pending.keys().filter(|t| !in_order || !frontier.less_equal(t)).copied().collect();
        ready.sort_by_key(|t| (t.event, t.processing, t.epoch));
        // The same for manual processing time: the least still to come.
        let mut later_processing = vec![i64::MAX; ready.len()];
        for i in (0..ready.len().saturating_sub(1)).rev() {
            later_processing[i] = later_processing[i + 1].min(ready[i + 1].processing);
        }
        let at = &caps[0];
        if !manual {
            let fired = c.processing_time(clock, batch)?;
            emit_all(c, key_values, state, fired, at, cx, out)?;
        }
        for (t, later_processing) in ready.into_iter().zip(later_processing) {
            let group = pending.remove(&t).expect("listed");
            // The time the batch was sent under, as far as the whole input allows.
            // A batch from an idle partition says nothing about the watermark.
            let mut fired = match wm_now {
                Some(w) if t.event < crate::watermarks::IDLE => c.watermark(t.event.min(w))?,
                _ => Vec::new(),
            };
            if manual {
                fired.extend(c.processing_time(t.processing.min(clock).min(later_processing), batch)?);
            }
            emit_all(c, key_values, state, fired, at, cx, out)?;
            for (key, key_value, value) in group {
                let ts = value.timestamp();
                if ts == NO_TIME && c.is_event_time() {
                    return Err(UdfError::new(format!(
                        "record {} has no timestamp, so no event-time window can take it: \
                         call assign_timestamps_and_watermarks(...) before the window, \
                         or use a processing-time window",
                        value.describe()
                    )));
                }
                key_values.entry(key.clone()).or_insert(key_value);
                let kept = match c.element(key.clone(), ts, value)? {
                    Outcome::Fired(fired) => {
                        emit_all(c, key_values, state, fired, at, cx, out)?;
                        true
                    }
                    Outcome::Late(v) => {
                        late.push(v);
                        false
                    }
                    Outcome::Dropped => false,
                };
                // A record no window took may leave its key without windows.
                if !kept && !c.has_windows(&key) {
                    key_values.remove(&key);
                }
            }
            if !late.is_empty() {
                cx.give_to(1, &caps[1], late);
            }
        }
        if ended {
            let mut fired = c.finish()?;
            if batch {
                // Key by key, as Flink's batch mode fires each key's timers at its end.
                fired.sort_by(|a, b| a.key.bytes().cmp(b.key.bytes()));
            }
            emit_all(c, key_values, state, fired, at, cx, out)?;
            c.close()?;
        } else {
            if let Some(w) = wm_now {
                let fired = c.watermark(w)?;
                emit_all(c, key_values, state, fired, at, cx, out)?;
            }
            if manual {
                let fired = c.processing_time(clock, batch)?;
                emit_all(c, key_values, state, fired, at, cx, out)?;
            }
        }
        Ok(())
    }

    /// [`WindowLogic::step`], then counts and warns about the records dropped as late
    /// (even if the step failed: what it dropped before is counted).
    fn step_and_report(&mut self, cx: &mut Cx<'_, R>, ended: bool) -> Result<(), Failure> {
        let result = self.step(cx, ended);
        let late_now = self.core.late_dropped();
        if late_now > self.reported_late {
            let control = &cx.env.control;
            control.add_late_dropped(late_now - self.reported_late);
            if self.reported_late == 0 {
                control.warn(format!(
                    "{}: records behind the watermark were dropped; \
                     result.late_records_dropped counts them. Keep them with side_output_late_data(tag), \
                     or accept them with allowed_lateness(...)",
                    self.name
                ));
            }
            self.reported_late = late_now;
        }
        Ok(result?)
    }
}

impl<R: Record> OperatorLogic<R> for WindowLogic<R> {
    fn on_frontier(&mut self, cx: &mut Cx<'_, R>) -> Result<(), Failure> {
        self.step_and_report(cx, false)?;
        let env = cx.env;
        let frontier = cx.frontier(0);
        let next = Time {
            epoch: time::least_epoch(frontier).unwrap_or(u64::MAX),
            event: self.core.current().0,
            processing: time::processing_time(frontier),
            segment: time::least_segment(frontier).unwrap_or(u64::MAX),
        };
        for cap in self.caps.iter_mut() {
            if *cap.time() != next {
                cap.downgrade(&next);
            }
        }
        if !self.manual && !env.semantics.batch() {
            if let Some(at) = self.core.next_processing_wakeup() {
                let wait = at.saturating_sub(env.clock.now_ms()).max(1) as u64;
                cx.wake_after(Duration::from_millis(wait));
            }
        }
        Ok(())
    }

    fn on_end(&mut self, cx: &mut Cx<'_, R>) -> Result<(), Failure> {
        self.step_and_report(cx, true)
    }

    /// The section: the window core's state ([`WindowCore::snapshot`]: windows, their
    /// contents or accumulators, trigger state, timers, watermark and clock), each
    /// key's value, the batches still waiting for the frontier (keyed entries: meta
    /// the watermark and processing time they were sent under, values the key's value
    /// and the record), then the window function's keyed state.
    fn snapshot(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        let mut w = StateWriter::<R>::from_vec(std::mem::take(out));
        let result = write_state(&self.core, &self.key_values, &self.pending, &self.state, &mut w);
        *out = w.into_bytes();
        result
    }

    /// Keyed throughout: every old instance's section is read and the keys this
    /// instance owns are kept, so a rescale sends each key's windows, timers, waiting
    /// records and window state to the instance its records now reach.
    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        read_state(from, &mut self.core, &mut self.key_values, &mut self.pending, &self.state)
    }
}

impl<R: Record> UnaryInput<Routed<Keyed<R>>, R> for WindowLogic<R> {
    /// Keeps the batch until the frontier passes its time (see "# Time").
    fn on_batch(
        &mut self,
        _cx: &mut Cx<'_, R>,
        cap: &InputCapability<Time>,
        data: &mut Vec<Routed<Keyed<R>>>,
    ) -> Result<(), Failure> {
        open(data, &mut self.keyed)?;
        let Some(&t) = cap.stamp().iter().next() else { return Ok(()) };
        self.pending.entry(t).or_default().append(&mut self.keyed);
        Ok(())
    }
}

/// Records waiting for the frontier, by the time of their batch.
type Pending<R> = BTreeMap<Time, Vec<Keyed<R>>>;

/// [`WindowLogic`]'s snapshot (see [`OperatorLogic::snapshot`] there).
fn write_state<R: Record>(
    core: &Core<R>,
    key_values: &KeyMap<R>,
    pending: &Pending<R>,
    state: &SharedContext<R>,
    w: &mut StateWriter<R>,
) -> UdfResult<()> {
    with_core!(core, c => c.snapshot(w))?;
    w.keyed(key_values.iter())?;
    // In the order the batches will be processed (see `step`), so that batches merged
    // on restore (same watermark and processing time) keep it.
    let mut times: Vec<&Time> = pending.keys().collect();
    times.sort_by_key(|t| (t.event, t.processing, t.epoch));
    let mut entries = w.begin_keyed();
    for t in times {
        let mut meta = StateWriter::<R>::new();
        meta.i64(t.event);
        meta.i64(t.processing);
        for (key, key_value, value) in &pending[t] {
            entries.push_entry(key, meta.as_bytes(), [key_value.clone(), value.clone()])?;
        }
    }
    entries.finish()?;
    let now = core.current().1;
    write_keyed(&lock(state).state, now, w)?;
    Ok(())
}

/// [`WindowLogic`]'s restore: adds every old instance's section, keeping the keys
/// `from` says this instance owns.
fn read_state<R: Record>(
    from: &Restore<'_>,
    core: &mut Core<R>,
    key_values: &mut KeyMap<R>,
    pending: &mut Pending<R>,
    state: &SharedContext<R>,
) -> UdfResult<()> {
    let owns = |k: &Key| from.owns(k);
    for section in from.non_empty() {
        let mut r = StateReader::<R>::new(section);
        with_core!(&mut *core, c => c.restore(&mut r, owns))?;
        r.keyed(|key, value| {
            if owns(&key) {
                key_values.insert(key, value);
            }
            Ok::<_, StateError>(())
        })?;
        r.keyed_entries(|key, meta, values| {
            let mut m = StateReader::<R>::new(meta);
            let (event, processing) = (m.i64()?, m.i64()?);
            m.finish()?;
            let (Some(key_value), Some(value), None) = (values.next(), values.next(), values.next()) else {
                return Err(m.corrupt("a waiting record that is not a key's value and a record"));
            };
            if owns(&key) {
                // The earliest epoch and segment: it waits for the restored job's
                // frontier to pass the watermark it was sent under, as before.
                let t = Time { epoch: 0, event, processing, segment: 0 };
                pending.entry(t).or_default().push((key, key_value, value));
            }
            Ok(())
        })?;
        read_keyed(&mut r, &mut lock(state).state, &owns)?;
        r.finish()?;
    }
    Ok(())
}

/// Hands firings to the window function and sends the results at `cap` on the main
/// output.
fn emit_all<R: Record>(
    core: &mut Core<R>,
    key_values: &mut KeyMap<R>,
    state: &SharedContext<R>,
    firings: Vec<Fired<R>>,
    cap: &Capability<Time>,
    cx: &mut Cx<'_, R>,
    out: &mut Vec<R>,
) -> UdfResult<()> {
    let cleared = core.take_cleared();
    if firings.is_empty() && cleared.is_empty() {
        return Ok(());
    }
    let env = cx.env;
    let mut touched = Vec::with_capacity(firings.len() + cleared.len());
    for firing in firings {
        let key_value =
            key_values.get(&firing.key).ok_or_else(|| UdfError::internal("a window fired for an unknown key"))?;
        touched.push(firing.key.clone());
        let mut key_value = key_value.clone();
        env.own_one(&mut key_value)?;
        {
            // The window function's keyed state is the firing key's.
            let (watermark, processing_time) = core.current();
            let mut s = lock(state);
            s.set_key(firing.key.clone(), key_value.clone());
            s.window = Some(firing.window);
            s.timestamp = firing.window.max_timestamp();
            s.watermark = watermark;
            s.processing_time = processing_time;
            s.state.on_record(processing_time);
        }
        core.emit(env, &key_value, firing, out)?;
    }
    // Cleared windows: the window function's `clear` runs with the window's state
    // still there, then whatever the window's state still holds goes (Flink leaves
    // it to the function, and it leaks when the function forgets).
    for (key, window) in cleared {
        let key_value =
            key_values.get(&key).ok_or_else(|| UdfError::internal("a window was cleared for an unknown key"))?;
        let mut key_value = key_value.clone();
        env.own_one(&mut key_value)?;
        let (watermark, processing_time) = core.current();
        {
            let mut s = lock(state);
            s.set_key(key.clone(), key_value.clone());
            s.window = Some(window);
            s.timestamp = window.max_timestamp();
            s.watermark = watermark;
            s.processing_time = processing_time;
        }
        if let Some(f) = core.window_function() {
            f.clear(&key_value, &WindowContext { window: window.info(), watermark, processing_time })?;
        }
        lock(state).state.clear_namespace(&key, Namespace::Window(window));
        touched.push(key);
    }
    lock(state).window = None;
    // Keys without windows are forgotten, so state stays bounded by open windows.
    for key in touched {
        if !core.has_windows(&key) {
            key_values.remove(&key);
        }
    }
    cx.give(cap, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::closures::{ApplyFn, ReduceFn};
    use crate::key::key_of;
    use crate::record::Stamped;
    use crate::state::{StateDescriptor, StateKind, StateValue, TtlConfig};
    use crate::windows::event_time::{Assigner, WindowConfig};
    use crate::windows::TimeWindow;
    use proptest::prelude::*;

    type R = Stamped<String>;

    fn rec(s: &str, ts: i64) -> R {
        Stamped::at(s.to_string(), ts)
    }

    fn key(k: u8) -> Key {
        key_of(&i64::from(k))
    }

    /// A window operator's state, without the timely parts.
    struct Parts {
        core: Core<R>,
        key_values: KeyMap<R>,
        pending: Pending<R>,
        state: SharedContext<R>,
    }

    impl Parts {
        fn new(reduce: bool) -> Parts {
            let config = WindowConfig::new(Assigner::tumbling_event_time(10, 0));
            let core = if reduce {
                let f = Box::new(ReduceFn(|a: &R, b: &R| Ok(rec(&format!("{}+{}", a.value, b.value), a.ts.max(b.ts)))));
                let c = WindowCore::with_aggregate(config, Incremental::Reduce { f, own_first: false }).unwrap();
                Core::Incremental(c, None)
            } else {
                Core::Values(WindowCore::new(config).unwrap(), Box::new(ApplyFn(|_: &R, _: &WindowContext, v| Ok(v))))
            };
            Parts { core, key_values: KeyMap::default(), pending: BTreeMap::new(), state: ProcessContext::shared(true) }
        }

        fn snapshot(&self) -> Vec<u8> {
            let mut w = StateWriter::new();
            write_state(&self.core, &self.key_values, &self.pending, &self.state, &mut w).unwrap();
            w.into_bytes()
        }

        fn restored(reduce: bool, sections: &[&[u8]], worker: usize, peers: usize) -> UdfResult<Parts> {
            let mut p = Parts::new(reduce);
            let from = Restore::new(sections.to_vec(), worker, peers);
            read_state(&from, &mut p.core, &mut p.key_values, &mut p.pending, &p.state)?;
            Ok(p)
        }

        /// What can be compared: waiting records by (watermark, processing time), key
        /// values, state entries, and what every window fires at the end.
        #[allow(clippy::type_complexity)]
        fn observe(
            &mut self,
        ) -> (Vec<((i64, i64), Keyed<R>)>, Vec<(Key, R)>, Vec<(String, Key, Namespace, StateValue<R>)>, Vec<String>)
        {
            let mut pending: Vec<((i64, i64), Keyed<R>)> = Vec::new();
            let mut times: Vec<&Time> = self.pending.keys().collect();
            times.sort_by_key(|t| (t.event, t.processing, t.epoch));
            for t in times {
                pending.extend(self.pending[t].iter().map(|k| ((t.event, t.processing), k.clone())));
            }
            let mut key_values: Vec<(Key, R)> = self.key_values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            key_values.sort_by(|a, b| a.0.cmp(&b.0));
            let mut entries = Vec::new();
            lock(&self.state).state.snapshot(0, &mut |d, k, ns, v| entries.push((d.name.clone(), k.clone(), ns, v)));
            entries.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
            let mut fired: Vec<String> = self
                .core
                .finish()
                .unwrap()
                .into_iter()
                .map(|f| format!("{:?} {:?} {:?}", f.key, f.window, f.contents))
                .collect();
            fired.sort();
            (pending, key_values, entries, fired)
        }
    }

    #[derive(Clone, Debug)]
    enum In {
        /// A record taken into the windows.
        El(u8, i64),
        /// A batch still waiting: key, watermark, processing time, epoch.
        Wait(u8, i64, i64, u64),
        /// Window function state: key, window start (None: the key's own), which state.
        State(u8, Option<i64>, u8, i64),
    }

    fn input() -> impl Strategy<Value = In> {
        prop_oneof![
            (0u8..8, 0i64..40).prop_map(|(k, ts)| In::El(k, ts)),
            (0u8..8, 0i64..5, 0i64..3, 0u64..3).prop_map(|(k, w, p, e)| In::Wait(k, w, p, e)),
            (0u8..8, prop::option::of(0i64..4), 0u8..3, 0i64..100).prop_map(|(k, w, s, v)| In::State(k, w, s, v)),
        ]
    }

    /// Feeds `ins` to the parts of the instance (of `peers`) that owns each key.
    fn feed(parts: &mut [Parts], ins: &[In]) {
        let peers = parts.len();
        for (i, x) in ins.iter().enumerate() {
            let k = match x {
                In::El(k, _) | In::Wait(k, ..) | In::State(k, ..) => *k,
            };
            let p = &mut parts[(key(k).hash() % peers as u64) as usize];
            let kv = rec(&format!("key{k}"), 0);
            match *x {
                In::El(k, ts) => {
                    p.key_values.insert(key(k), kv);
                    assert!(matches!(p.core.element(key(k), ts, rec(&i.to_string(), ts)).unwrap(), Outcome::Fired(_)));
                }
                In::Wait(k, event, processing, epoch) => {
                    let t = Time { epoch, event, processing, segment: 1 };
                    p.pending.entry(t).or_default().push((key(k), kv, rec(&i.to_string(), event)));
                }
                In::State(k, window, which, v) => {
                    let mut s = lock(&p.state);
                    let b = &mut s.state;
                    let ttl = TtlConfig { full_snapshot: false, ..TtlConfig::new(1_000_000) };
                    let descriptors = [
                        StateDescriptor::new("count", StateKind::Value).with_ttl(ttl),
                        StateDescriptor::new("seen", StateKind::List),
                        StateDescriptor::new("by", StateKind::Map),
                    ];
                    let id = b.register(&descriptors[which as usize]).unwrap();
                    b.set_current_key(key(k));
                    b.set_current_namespace(match window {
                        Some(s) => Namespace::Window(Window::Time(TimeWindow { start: s * 10, end: s * 10 + 10 })),
                        None => Namespace::Key,
                    });
                    let value = rec(&v.to_string(), v);
                    match which {
                        0 => b.update(id, value, i as i64).unwrap(),
                        1 => b.list_add(id, value, i as i64).unwrap(),
                        _ => b.map_put(id, key_of(&(v % 5)), rec(&(v % 5).to_string(), 0), value, i as i64).unwrap(),
                    }
                    b.set_current_namespace(Namespace::Key);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Restored at the same parallelism, the waiting records, key values, window
        /// function state and windows are the snapshot's; at 3 instances from 2, every
        /// key's are on its owner only, and together they are the same.
        #[test]
        fn the_operator_state_round_trips_and_rescales(ins in prop::collection::vec(input(), 0..60), reduce: bool) {
            let mut one = [Parts::new(reduce)];
            feed(&mut one, &ins);
            let bytes = one[0].snapshot();
            let mut back = Parts::restored(reduce, &[&bytes], 0, 1).unwrap();
            let want = one[0].observe();
            prop_assert_eq!(back.observe(), want.clone());

            let mut two = [Parts::new(reduce), Parts::new(reduce)];
            feed(&mut two, &ins);
            let sections: Vec<Vec<u8>> = two.iter().map(Parts::snapshot).collect();
            let sections: Vec<&[u8]> = sections.iter().map(|s| &s[..]).collect();
            let mut union = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for w in 0..3 {
                let mut p = Parts::restored(reduce, &sections, w, 3).unwrap();
                let seen = p.observe();
                let owned = |k: &Key| k.hash() % 3 == w as u64;
                prop_assert!(seen.0.iter().all(|(_, (k, ..))| owned(k)));
                prop_assert!(seen.1.iter().all(|(k, _)| owned(k)));
                prop_assert!(seen.2.iter().all(|(_, k, ..)| owned(k)));
                union.0.extend(seen.0);
                union.1.extend(seen.1);
                union.2.extend(seen.2);
                union.3.extend(seen.3);
            }
            // Waiting records: each key's in its order.
            let by_key = |v: &[((i64, i64), Keyed<R>)]| {
                let mut v = v.to_vec();
                v.sort_by(|a, b| (&a.1.0, a.0).cmp(&(&b.1.0, b.0)));
                v
            };
            prop_assert_eq!(by_key(&union.0), by_key(&want.0));
            union.1.sort_by(|a, b| a.0.cmp(&b.0));
            prop_assert_eq!(union.1, want.1);
            union.2.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
            prop_assert_eq!(union.2, want.2);
            union.3.sort();
            prop_assert_eq!(union.3, want.3);
        }
    }

    #[test]
    fn corrupt_sections_are_errors() {
        let mut p = [Parts::new(false)];
        feed(&mut p, &[In::El(1, 3), In::Wait(2, 1, 0, 0), In::State(1, Some(0), 2, 7), In::State(3, None, 0, 1)]);
        let bytes = p[0].snapshot();
        for cut in 0..bytes.len() {
            let err = Parts::restored(false, &[&bytes[..cut]], 0, 1).err();
            assert!(cut == 0 || err.is_some(), "cut at {cut}");
            if let Some(e) = err {
                assert!(e.internal, "{e:?}");
            }
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x5a;
            let _ = Parts::restored(false, &[&bad], 0, 1);
        }
    }
}
