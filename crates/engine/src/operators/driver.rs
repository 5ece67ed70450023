//! One driver for every operator's lifecycle: the operators supply hooks
//! ([`OperatorLogic`] with [`UnaryInput`] or [`BinaryInput`]), the driver runs the loop
//! they all shared.
//!
//! # What the driver owns
//!
//! On each activation it
//! 1. drains and drops the input if the job was aborted or the logic is gone (it failed,
//!    ended, or was never made: `make` returned `None`, having failed the job or because
//!    the operator does not run on this worker);
//! 2. enters the batch scope ([`OpEnv::enter`], the GIL for Python) once, and inside it
//!    hands each batch to `on_batch` (stopping at the first error, or at an abort between
//!    batches), then calls `on_end` if every input's frontier is empty, else `on_frontier`;
//! 3. calls `after_scope` outside the scope (blocking output: a sink's flush);
//! 4. on the first error fails the job once ([`OpEnv::fail`], in the operator's name or the
//!    one the [`Failure`] names) and drops the logic; after `on_end` drops it too. The logic
//!    is always dropped inside the scope, so user functions it holds are released with the
//!    GIL held. `on_end` therefore runs at most once (unless it asks, with
//!    [`Cx::end_later`], to run again: waiting for something besides its input), and
//!    nothing runs after a failure.
//!
//! Records emitted with [`Cx::give`] are counted for the plan node the operator was built
//! with ([`OpEnv::count`]; side outputs' records are not); a logic that stands for
//! several nodes (a fused chain, key_by fused with reduce) counts the inner ones itself.
//!
//! # Time, timers, emitting later
//!
//! `on_frontier` runs on every activation whose input has not ended: timely activates an
//! operator when its input frontier moves, and [`Cx::wake_after`] asks for an activation
//! at a processing time. It is the timer hook: [`Cx::watermark`] and
//! [`Cx::processing_time`] read event time and processing time from the frontier (see
//! [`crate::time`]). An operator that emits later than its input (windows, process
//! functions with timers) keeps output capabilities itself: `make` receives the output's
//! initial [`Capability`]; put it in a [`timely::dataflow::operators::CapabilitySet`],
//! downgrade it as the frontier moves, and give at a retained capability with
//! [`Cx::give`] (any [`CapabilityTrait`]). Dropping the logic drops what it holds.
//!
//! # Shapes
//!
//! - [`unary`]: one input (any pact: a pipeline, or [`super::by_key`] for keyed operators,
//!   see `with_key_pact!`), one output. Like timely's `unary_frontier`.
//! - [`binary`]: two inputs with their own pacts, one output (connect / co-process).
//!   `on_end` runs once both inputs have ended; [`Cx::watermark`] is the least of the two.
//! - [`unary_outputs`], [`binary_outputs`]: the same with any number of outputs of one
//!   record type, fixed when the dataflow is built (a window's late records, as many
//!   side outputs as the plan reads of a process function): `make` gets one capability
//!   per output, and [`Cx::give_to`] picks the output.
//! - [`sink`]: one input, no output (its output type is `()`).
//! - [`source`]: no input, one output, run by a [`SourceLogic`] (`poll` instead of
//!   batches and frontiers): sources have no input frontier, are woken by their own
//!   activator, hold their capabilities, and decide themselves when they end. The same
//!   rules hold: abort drops the logic (after [`SourceLogic::on_abort`]), the first
//!   failure fails the job once, and the logic is dropped inside the scope.
//! - [`unary_detached`]: an output not connected to the input (the timestamp assigner,
//!   whose output times are only the capabilities it holds).
//!
//! # Cost
//!
//! Hooks are called statically (the logic is a type parameter, not a trait object), once
//! per batch; nothing is allocated per record. A [`Failure`] allocates, only on error.
//! The output sessions are made once per activation; the side outputs' in a `Vec`,
//! which allocates only if there are any.
//!
//! Tested directly in `crates/engine/tests/driver.rs`.

use std::rc::Rc;
use std::time::Duration;

use timely::communication::Pull;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::channels::Message;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{InputHandleCore, OutputBuilder, OutputBuilderSession};
use timely::dataflow::operators::{Capability, CapabilityTrait, InputCapability};
use timely::dataflow::{Scope, Stream};
use timely::progress::frontier::{Antichain, AntichainRef, MutableAntichain};
use timely::scheduling::Activator;

use crate::checkpoint::coordinator::Checkpoints;
use crate::checkpoint::restore::Restore;
use crate::error::{ErrorKind, UdfError, UdfResult};
use crate::operators::OpEnv;
use crate::time::{self, Time};

/// Why a hook stopped: the job fails with this error, in the operator's name and error
/// kind unless it names others (a fused operator reports each step in its own name).
#[derive(Debug)]
pub struct Failure {
    kind: Option<ErrorKind>,
    operator: Option<String>,
    err: UdfError,
}

impl Failure {
    /// A failure reported as `operator`'s, of `kind`.
    pub fn of(kind: ErrorKind, operator: &str, err: UdfError) -> Self {
        Failure { kind: Some(kind), operator: Some(operator.to_string()), err }
    }
}

impl From<UdfError> for Failure {
    /// A failure in the operator's own name and kind.
    fn from(err: UdfError) -> Self {
        Failure { kind: None, operator: None, err }
    }
}

/// One output's buffer, as the driver builds it.
type OutputPort<O> = OutputBuilder<Time, CapacityContainerBuilder<Vec<O>>>;

/// One output's session during an activation.
type OutputSession<'a, O> = OutputBuilderSession<'a, Time, CapacityContainerBuilder<Vec<O>>>;

/// What a hook may do during one activation: read time, emit to the operator's
/// outputs (all of one record type; output 0 is the main one, the others side outputs).
pub struct Cx<'a, O: Clone + 'static> {
    pub env: &'a OpEnv,
    frontiers: &'a [MutableAntichain<Time>],
    /// The main output (none for a sink), then the side outputs: apart, so that an
    /// operator without side outputs allocates nothing per activation.
    main: Option<OutputSession<'a, O>>,
    side: Vec<OutputSession<'a, O>>,
    node: Option<usize>,
    activator: &'a Activator,
    /// Set by [`Cx::end_later`].
    end_postponed: bool,
}

impl<'a, O: Clone + 'static> Cx<'a, O> {
    /// Sends `data` (left empty) at `cap` on the main output, counting it for the
    /// operator's plan node.
    #[inline]
    pub fn give(&mut self, cap: &impl CapabilityTrait<Time>, data: &mut Vec<O>) {
        self.give_to(0, cap, data);
    }

    /// Sends `data` (left empty) at `cap` on output `output`. Only the main output's
    /// records are counted for the operator's node: a side output's are not its results.
    #[inline]
    pub fn give_to(&mut self, output: usize, cap: &impl CapabilityTrait<Time>, data: &mut Vec<O>) {
        if output == 0 {
            if let Some(node) = self.node {
                self.env.count(node, data.len());
            }
        }
        let out = match output {
            0 => self.main.as_mut(),
            i => self.side.get_mut(i - 1),
        };
        out.expect("give to an output the operator does not have").session(cap).give_container(data);
        data.clear();
    }

    /// Input `i`'s frontier.
    pub fn frontier(&self, i: usize) -> AntichainRef<'_, Time> {
        self.frontiers[i].frontier()
    }

    /// The frontier of all inputs together: the times any of them may still send.
    pub fn input_frontier(&self) -> Antichain<Time> {
        let mut all = Antichain::new();
        for f in self.frontiers {
            all.extend(f.frontier().iter().copied());
        }
        all
    }

    /// Whether every input has ended.
    pub fn ended(&self) -> bool {
        self.frontiers.iter().all(|f| f.is_empty())
    }

    /// The event-time watermark of all inputs (see [`time::watermark`]): `i64::MAX` once
    /// they ended, `None` while every partition is idle.
    pub fn watermark(&self) -> Option<i64> {
        self.frontiers.iter().filter_map(|f| time::watermark(f.frontier())).min()
    }

    /// Processing time now (the wall clock, or the frontier's with manual processing
    /// time): the least over the inputs.
    pub fn processing_time(&self) -> i64 {
        self.frontiers.iter().map(|f| self.env.processing_time(f.frontier())).min().unwrap_or(i64::MAX)
    }

    /// Asks for an activation (so an `on_frontier` call) after `delay`: a processing-time timer.
    pub fn wake_after(&self, delay: Duration) {
        self.activator.activate_after(delay);
    }

    /// What activates this operator (for others to wake it: see [`OpEnv::source_watchers`]).
    pub fn activator(&self) -> &Activator {
        self.activator
    }

    /// From `on_end`: the operator has not finished ending (it waits for something
    /// other than its input, such as the sinks passing its last watermark): the logic
    /// is kept and `on_end` runs again after `delay`.
    pub fn end_later(&mut self, delay: Duration) {
        self.end_postponed = true;
        self.activator.activate_after(delay);
    }
}

/// The lifecycle hooks every driven operator has; all have defaults, for an operator
/// that only maps batches and holds no state.
pub trait OperatorLogic<O: Clone + 'static> {
    /// The input frontier may have moved, or a wake-up asked for with [`Cx::wake_after`]
    /// came: fire what is due (timers, windows) and downgrade held capabilities.
    /// Not called once every input has ended (`on_end` is).
    fn on_frontier(&mut self, _cx: &mut Cx<'_, O>) -> Result<(), Failure> {
        Ok(())
    }

    /// Every input has ended: fire what is pending, flush, close the user functions.
    /// Called once (again only after [`Cx::end_later`]); the logic is dropped after.
    fn on_end(&mut self, _cx: &mut Cx<'_, O>) -> Result<(), Failure> {
        Ok(())
    }

    /// After each activation's scope, outside it: blocking work that must not hold the
    /// batch scope (for Python, the GIL), such as a sink's flush. `ended`: `on_end` ran
    /// (and did not postpone the end).
    fn after_scope(&mut self, _env: &OpEnv, _ended: bool) -> Result<(), Failure> {
        Ok(())
    }

    /// Checkpoints (issue 13): appends this operator's state to `out` (with
    /// [`crate::checkpoint::state_io::StateWriter::from_vec`]). Called inside the batch
    /// scope once every input batch of the checkpoint's segment, and none after it, has
    /// been handed to the logic; what was emitted before went out in that segment.
    /// Default: no state, nothing written.
    fn snapshot(&mut self, _out: &mut Vec<u8>) -> UdfResult<()> {
        Ok(())
    }

    /// Checkpoints (issue 13): restores the state [`OperatorLogic::snapshot`] wrote, once,
    /// before any batch, inside the batch scope. `from` holds the section of every worker
    /// that wrote the checkpoint (more or fewer than now after a rescale): a keyed
    /// operator keeps the keys [`Restore::owns`]. Default: no state, so only empty
    /// sections are accepted.
    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        restore_nothing(from)
    }
}

/// The default `restore` of an operator without state.
fn restore_nothing(from: &Restore<'_>) -> UdfResult<()> {
    if from.non_empty().next().is_none() {
        Ok(())
    } else {
        Err(UdfError::internal("state restored into an operator that keeps none"))
    }
}

/// Moves each of `caps` up to the least segment of `frontier` (an empty frontier moves
/// nothing). An operator that emits at capabilities it holds calls this before emitting:
/// output caused by input of segment s must not go out in an earlier segment held over
/// from its last activation, or a checkpoint would count it before its cause.
pub fn follow_segment<'c>(caps: impl IntoIterator<Item = &'c mut Capability<Time>>, frontier: AntichainRef<'_, Time>) {
    let Some(segment) = time::least_segment(frontier) else { return };
    for cap in caps {
        if cap.time().segment < segment {
            let moved = cap.time().in_segment(segment);
            cap.downgrade(&moved);
        }
    }
}

/// What a source's [`SourceLogic::poll`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polled {
    /// It goes on; it asked for its next activation itself ([`Cx::wake_after`]) or
    /// waits for a waker.
    Going,
    /// It has ended: the logic is dropped.
    Ended,
}

/// A source: no input, woken by its own activator (or a waker from another thread);
/// it holds its output capabilities and decides itself when it ends. The driver gives
/// it the rules of [`OperatorLogic`]: abort drops it, the first failure fails the job
/// once and drops it, and it is dropped inside the batch scope.
pub trait SourceLogic<O: Clone + 'static> {
    /// Before the batch scope is entered: `Some(delay)` to be activated again after
    /// `delay` without polling (flow control, which must not take the scope to wait).
    fn wait(&mut self, _env: &OpEnv) -> Option<Duration> {
        None
    }

    /// Inside the batch scope: hands on what is ready ([`Cx::give`] at a capability the
    /// logic holds) and asks for its next activation. [`Cx`]'s time readings mean
    /// nothing here: a source has no input.
    /// `checkpoints`: where to deliver the position when the source moves to the next
    /// segment ([`Slot::deliver`]); `None` when the job takes no checkpoints.
    fn poll(&mut self, cx: &mut Cx<'_, O>, checkpoints: Option<&mut Slot>) -> Result<Polled, Failure>;

    /// The job was aborted: let go of threads and connections (inside the scope; the
    /// logic is dropped next).
    fn on_abort(&mut self) {}

    /// As [`OperatorLogic::snapshot`]: the positions to resume from, called when the
    /// source moves to the next segment, after the last record of the one it leaves.
    fn snapshot(&mut self, _out: &mut Vec<u8>) -> UdfResult<()> {
        Ok(())
    }

    /// As [`OperatorLogic::restore`]: a source seeks to the positions it snapshotted
    /// (after a rescale, the old readers' pending splits are dealt to the new ones).
    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        restore_nothing(from)
    }
}

/// An operator with one input.
pub trait UnaryInput<I, O: Clone + 'static>: OperatorLogic<O> {
    /// A batch that arrived at `cap`'s time. `data` may be left with anything: the
    /// driver does not read it again.
    fn on_batch(&mut self, cx: &mut Cx<'_, O>, cap: &InputCapability<Time>, data: &mut Vec<I>) -> Result<(), Failure>;
}

/// An operator with two inputs (connect, co-process).
pub trait BinaryInput<I1, I2, O: Clone + 'static>: OperatorLogic<O> {
    /// A batch of the first input.
    fn on_first(&mut self, cx: &mut Cx<'_, O>, cap: &InputCapability<Time>, data: &mut Vec<I1>) -> Result<(), Failure>;
    /// A batch of the second input.
    fn on_second(&mut self, cx: &mut Cx<'_, O>, cap: &InputCapability<Time>, data: &mut Vec<I2>)
        -> Result<(), Failure>;
}

/// The operator's name and kind for failures, and the node it counts emitted records for.
pub struct OpInfo {
    pub name: String,
    pub kind: ErrorKind,
    pub node: Option<usize>,
}

impl OpInfo {
    /// A user-function operator (`ErrorKind::Udf`) counting what it emits for `node`.
    pub fn udf(name: &str, node: Option<usize>) -> Self {
        OpInfo { name: name.to_string(), kind: ErrorKind::Udf, node }
    }
}

/// Hands each batch of `input` to `on_batch`, stopping at the first failure or abort.
fn feed<I, O: Clone + 'static, P, F>(
    input: &mut InputHandleCore<Time, Vec<I>, P>,
    cx: &mut Cx<'_, O>,
    mut on_batch: F,
) -> Result<(), Failure>
where
    P: Pull<Message<Time, Vec<I>>>,
    F: FnMut(&mut Cx<'_, O>, &InputCapability<Time>, &mut Vec<I>) -> Result<(), Failure>,
{
    let env = cx.env;
    let mut result = Ok(());
    input.for_each(|cap, data| {
        if result.is_err() || env.control.aborted() {
            data.clear();
            return;
        }
        result = on_batch(cx, &cap, data);
        if result.is_err() {
            data.clear();
        }
    });
    result
}

fn drain<I, P: Pull<Message<Time, Vec<I>>>>(input: &mut InputHandleCore<Time, Vec<I>, P>) {
    input.for_each(|_cap, data| data.clear());
}

/// One activation (see the module doc). `inputs(Some(..))` feeds the batches to the
/// logic, `inputs(None)` drains them.
fn activate<O: Clone + 'static, L: OperatorLogic<O>>(
    info: &OpInfo,
    logic: &mut Option<L>,
    slot: &mut Option<Slot>,
    mut cx: Cx<'_, O>,
    inputs: &mut impl FnMut(Option<(&mut L, &mut Cx<'_, O>)>) -> Result<(), Failure>,
) {
    let env = cx.env;
    let aborted = env.control.aborted();
    let Some(l) = logic.as_mut().filter(|_| !aborted) else {
        let _ = inputs(None);
        if logic.is_some() {
            env.enter(|| *logic = None);
        }
        return;
    };
    let ended = cx.ended();
    // Checkpoints whose segment the whole input has passed, before any later batch.
    // (Read only when checkpointing: no cost per activation otherwise.)
    let passed = match slot {
        Some(_) if !ended => cx.frontiers.iter().filter_map(|f| time::least_segment(f.frontier())).min(),
        _ => None,
    };
    let mut result = Ok(());
    env.enter(|| {
        if let (Some(slot), Some(passed)) = (slot.as_mut(), passed) {
            result = slot.snapshot_up_to(passed, |out| l.snapshot(out)).map_err(Failure::from);
            if result.is_err() {
                return;
            }
        }
        result = inputs(Some((&mut *l, &mut cx)));
        if result.is_ok() && !env.control.aborted() {
            result = if ended { l.on_end(&mut cx) } else { l.on_frontier(&mut cx) };
        }
    });
    let ended = ended && !cx.end_postponed;
    drop(cx);
    if result.is_ok() && !env.control.aborted() {
        result = l.after_scope(env, ended);
    }
    let finished = result.is_ok() && ended && !env.control.aborted();
    let done = match result {
        Err(f) => {
            let kind = f.kind.unwrap_or(info.kind);
            env.fail(kind, f.operator.as_deref().unwrap_or(&info.name), f.err);
            true
        }
        Ok(()) => ended || env.control.aborted(),
    };
    if done {
        // An operator that finished stands in later checkpoints with its state as it
        // ended: a sink's files still to commit (the job goes on elsewhere, and a
        // restore from a later checkpoint must commit them), for most nothing.
        drop_logic(info, env, logic, slot, finished, |l, out| l.snapshot(out));
    }
}

/// Makes an operator's logic and its place in checkpoints (restoring it first if the
/// job restores); a restore that failed the job drops the logic at once.
fn start_logic<L>(
    info: &OpInfo,
    env: &OpEnv,
    mut logic: Option<L>,
    restore: impl FnOnce(&mut L, &Restore<'_>) -> UdfResult<()>,
) -> (Option<L>, Option<Slot>) {
    let slot = logic.as_mut().and_then(|l| Slot::start(info, env, |from| restore(l, from)));
    if slot.is_none() && env.control.aborted() {
        env.enter(|| logic = None);
    }
    (logic, slot)
}

/// Drops the logic inside the batch scope and gives up its place in checkpoints. With
/// `finished` (it ended well), its last `snapshot` first stands in for it in every later
/// checkpoint; otherwise the job is failing and what it held does not matter.
fn drop_logic<L>(
    info: &OpInfo,
    env: &OpEnv,
    logic: &mut Option<L>,
    slot: &mut Option<Slot>,
    finished: bool,
    snapshot: impl FnOnce(&mut L, &mut Vec<u8>) -> UdfResult<()>,
) {
    let mut last = Vec::new();
    let mut result = Ok(());
    let mut snapshot = Some(snapshot);
    env.enter(|| {
        if let (true, Some(_), Some(l), Some(snapshot)) = (finished, slot.as_ref(), logic.as_mut(), snapshot.take()) {
            result = snapshot(l, &mut last);
        }
        *logic = None;
    });
    match (slot.take(), result) {
        (Some(slot), Ok(())) => slot.retire(last),
        (_, Err(e)) => env.fail(info.kind, &info.name, e),
        (None, Ok(())) => {}
    }
}

/// An operator's place in checkpoints: its plan node, and the checkpoints it has
/// delivered its section of.
pub struct Slot {
    node: u32,
    checkpoints: Rc<Checkpoints>,
    /// The last checkpoint delivered (checkpoint `c` covers segments `< c`).
    done: u64,
}

impl Slot {
    /// Registers operator `node` for checkpoints, if the job takes any; restores it
    /// first if the job restores (with `restore`, inside the batch scope).
    /// `None` when the job takes no checkpoints, or the restore failed (the job is then
    /// failed, in the operator's name).
    fn start(info: &OpInfo, env: &OpEnv, restore: impl FnOnce(&Restore<'_>) -> UdfResult<()>) -> Option<Slot> {
        let (Some(node), Some(checkpoints)) = (info.node, env.checkpoints.clone()) else { return None };
        let node = node as u32;
        if let Some(from) = checkpoints.restore_for(node, env.worker.index, env.worker.peers) {
            let mut result = Ok(());
            let mut restore = Some(restore);
            env.enter(|| {
                if let Some(restore) = restore.take() {
                    result = restore(&from);
                }
            });
            if let Err(e) = result {
                let message = format!("cannot restore from checkpoint {}: {}", checkpoints.restored_id(), e.message);
                env.fail(ErrorKind::System, &info.name, UdfError { message, ..e });
                return None;
            }
        }
        checkpoints.tracker.borrow_mut().register(node);
        Some(Slot { node, checkpoints, done: 0 })
    }

    /// Snapshots for every checkpoint up to `passed` not delivered yet (one snapshot
    /// stands for all: nothing ran in between).
    fn snapshot_up_to(&mut self, passed: u64, snapshot: impl FnOnce(&mut Vec<u8>) -> UdfResult<()>) -> UdfResult<()> {
        if passed <= self.done {
            return Ok(());
        }
        let mut out = Vec::new();
        self.checkpoints.begin_snapshot(passed);
        snapshot(&mut out)?;
        let mut tracker = self.checkpoints.tracker.borrow_mut();
        for c in self.done + 1..passed {
            tracker.deliver(c, self.node, out.clone());
        }
        tracker.deliver(passed, self.node, out);
        self.done = passed;
        Ok(())
    }

    /// A source moved to segment `segment`: `section` is its position for checkpoint
    /// `segment`.
    pub fn deliver(&mut self, segment: u64, section: Vec<u8>) {
        if segment > self.done {
            self.checkpoints.tracker.borrow_mut().deliver(segment, self.node, section);
            self.done = segment;
        }
    }

    /// The operator has finished: `last` stands for it in every later checkpoint.
    fn retire(self, last: Vec<u8>) {
        self.checkpoints.tracker.borrow_mut().retire(self.node, last);
    }
}

/// An operator under construction: its builder and the activator its timers use.
struct Shell<'s> {
    builder: OperatorBuilder<'s, Time>,
    activator: Activator,
}

impl<'s> Shell<'s> {
    fn new(info: &OpInfo, scope: Scope<'s, Time>) -> Self {
        let builder = OperatorBuilder::new(info.name.clone(), scope);
        let activator = scope.activator_for(builder.operator_info().address);
        Shell { builder, activator }
    }

    /// Adds `n` outputs, each connected to every input added so far, or with
    /// `connected` false to none (their times follow the capabilities the logic holds).
    fn outputs<O: Clone + 'static>(
        &mut self,
        n: usize,
        connected: bool,
    ) -> (Vec<OutputPort<O>>, Vec<Stream<'s, Time, Vec<O>>>) {
        let inputs = if connected { self.builder.shape().inputs() } else { 0 };
        (0..n)
            .map(|_| {
                let connection = (0..inputs).map(|i| (i, Antichain::from_elem(Default::default())));
                let (port, stream) = self.builder.new_output_connection::<Vec<O>, _>(connection);
                (OutputPort::from(port), stream)
            })
            .unzip()
    }

    /// Builds the operator: `make` gets the outputs' initial capabilities, then each
    /// activation runs [`activate`] with `inputs` feeding (or draining) the inputs.
    fn build<O, L>(
        self,
        ports: Vec<OutputPort<O>>,
        info: OpInfo,
        env: Rc<OpEnv>,
        make: impl FnOnce(Vec<Capability<Time>>) -> Option<L>,
        mut inputs: impl FnMut(Option<(&mut L, &mut Cx<'_, O>)>) -> Result<(), Failure> + 'static,
    ) where
        O: Clone + 'static,
        L: OperatorLogic<O> + 'static,
    {
        self.build_with(
            ports,
            info,
            env,
            |info, env, caps| start_logic(info, env, make(caps), |l, from| l.restore(from)),
            move |info, (logic, slot), cx| activate(info, logic, slot, cx, &mut inputs),
        );
    }

    /// Builds the operator: `make` gets the outputs' initial capabilities and makes the
    /// operator's state, then each activation runs `step` on it.
    fn build_with<O, S>(
        self,
        mut ports: Vec<OutputPort<O>>,
        info: OpInfo,
        env: Rc<OpEnv>,
        make: impl FnOnce(&OpInfo, &OpEnv, Vec<Capability<Time>>) -> S,
        mut step: impl FnMut(&OpInfo, &mut S, Cx<'_, O>) + 'static,
    ) where
        O: Clone + 'static,
        S: 'static,
    {
        let Shell { builder, activator } = self;
        builder.build(move |caps| {
            let mut logic = make(&info, &env, caps);
            move |frontiers| {
                let mut ports = ports.iter_mut().map(|p| p.activate());
                let main = ports.next();
                // Empty (no allocation) without side outputs.
                let side = ports.collect();
                let cx = Cx {
                    env: &env,
                    frontiers,
                    main,
                    side,
                    node: info.node,
                    activator: &activator,
                    end_postponed: false,
                };
                step(&info, &mut logic, cx);
            }
        });
    }
}

/// One activation of a source (see [`SourceLogic`]).
fn activate_source<O: Clone + 'static, L: SourceLogic<O>>(
    info: &OpInfo,
    logic: &mut Option<L>,
    slot: &mut Option<Slot>,
    mut cx: Cx<'_, O>,
) {
    let env = cx.env;
    if logic.is_none() {
        return;
    }
    if env.control.aborted() {
        env.enter(|| {
            if let Some(l) = logic.as_mut() {
                l.on_abort();
            }
            *logic = None;
        });
        return;
    }
    let Some(l) = logic.as_mut() else { return };
    if let Some(delay) = l.wait(env) {
        cx.wake_after(delay);
        return;
    }
    let mut result = Ok(Polled::Going);
    env.enter(|| result = l.poll(&mut cx, slot.as_mut()));
    drop(cx);
    match result {
        Ok(Polled::Going) => {}
        // Its position at the end stands for it in later checkpoints: a restore does
        // not read it again.
        Ok(Polled::Ended) => drop_logic(info, env, logic, slot, true, |l, out| l.snapshot(out)),
        Err(f) => {
            let kind = f.kind.unwrap_or(info.kind);
            env.fail(kind, f.operator.as_deref().unwrap_or(&info.name), f.err);
            env.enter(|| *logic = None);
        }
    }
}

/// A source with one output, run by `logic` (see [`SourceLogic`]). `make` gets the
/// output's initial capability and the operator's address (for activators and
/// wakers), and returns `None` if there is no logic on this worker.
pub fn source<'s, O, L>(
    scope: Scope<'s, Time>,
    info: OpInfo,
    env: Rc<OpEnv>,
    make: impl FnOnce(Capability<Time>, &[usize]) -> Option<L>,
) -> Stream<'s, Time, Vec<O>>
where
    O: Clone + 'static,
    L: SourceLogic<O> + 'static,
{
    let mut shell = Shell::new(&info, scope);
    let address = shell.builder.operator_info().address;
    let (ports, streams) = shell.outputs(1, true);
    shell.build_with(
        ports,
        info,
        env,
        |info, env, caps| start_logic(info, env, make(one(caps), &address), |l, from| l.restore(from)),
        |info, (logic, slot), cx| activate_source(info, logic, slot, cx),
    );
    one(streams)
}

/// The only element of what was made for one output.
fn one<T>(mut v: Vec<T>) -> T {
    debug_assert_eq!(v.len(), 1);
    v.pop().expect("one output")
}

/// An operator with one input and one output, run by `logic`. `make` gets the output's
/// initial capability (keep it only to emit later than the input) and returns `None`
/// if there is no logic on this worker (making it failed the job, or the operator does
/// not run here): the input is then drained.
pub fn unary<'s, I, O, P, L>(
    stream: Stream<'s, Time, Vec<I>>,
    pact: P,
    info: OpInfo,
    env: Rc<OpEnv>,
    make: impl FnOnce(Capability<Time>) -> Option<L>,
) -> Stream<'s, Time, Vec<O>>
where
    I: Clone + 'static,
    O: Clone + 'static,
    P: ParallelizationContract<Time, Vec<I>>,
    L: UnaryInput<I, O> + 'static,
{
    one(unary_outputs(stream, pact, 1, info, env, |caps| make(one(caps))))
}

/// [`unary`] with `outputs` outputs (a main one and side outputs, see [`Cx::give_to`];
/// as many as the plan reads, known when the dataflow is built): `make` gets their
/// initial capabilities in order, and they are returned in order.
pub fn unary_outputs<'s, I, O, P, L>(
    stream: Stream<'s, Time, Vec<I>>,
    pact: P,
    outputs: usize,
    info: OpInfo,
    env: Rc<OpEnv>,
    make: impl FnOnce(Vec<Capability<Time>>) -> Option<L>,
) -> Vec<Stream<'s, Time, Vec<O>>>
where
    I: Clone + 'static,
    O: Clone + 'static,
    P: ParallelizationContract<Time, Vec<I>>,
    L: UnaryInput<I, O> + 'static,
{
    unary_connected(stream, pact, outputs, true, info, env, make)
}

/// [`unary`] whose output is not connected to its input: the output's times are the
/// capabilities the logic holds, not its input's (a timestamp assigner, which sets the
/// watermark downstream itself). The logic must hold a capability while it may emit.
pub fn unary_detached<'s, I, O, P, L>(
    stream: Stream<'s, Time, Vec<I>>,
    pact: P,
    info: OpInfo,
    env: Rc<OpEnv>,
    make: impl FnOnce(Capability<Time>) -> Option<L>,
) -> Stream<'s, Time, Vec<O>>
where
    I: Clone + 'static,
    O: Clone + 'static,
    P: ParallelizationContract<Time, Vec<I>>,
    L: UnaryInput<I, O> + 'static,
{
    one(unary_connected(stream, pact, 1, false, info, env, |caps| make(one(caps))))
}

fn unary_connected<'s, I, O, P, L>(
    stream: Stream<'s, Time, Vec<I>>,
    pact: P,
    outputs: usize,
    connected: bool,
    info: OpInfo,
    env: Rc<OpEnv>,
    make: impl FnOnce(Vec<Capability<Time>>) -> Option<L>,
) -> Vec<Stream<'s, Time, Vec<O>>>
where
    I: Clone + 'static,
    O: Clone + 'static,
    P: ParallelizationContract<Time, Vec<I>>,
    L: UnaryInput<I, O> + 'static,
{
    let mut shell = Shell::new(&info, stream.scope());
    let mut input = shell.builder.new_input(stream, pact);
    let (ports, streams) = shell.outputs(outputs, connected);
    shell.build(ports, info, env, make, move |run| match run {
        Some((l, cx)) => feed(&mut input, cx, |cx, cap, data| l.on_batch(cx, cap, data)),
        None => {
            drain(&mut input);
            Ok(())
        }
    });
    streams
}

/// An operator with two inputs and one output (see [`unary`]).
pub fn binary<'s, I1, I2, O, P1, P2, L>(
    first: Stream<'s, Time, Vec<I1>>,
    second: Stream<'s, Time, Vec<I2>>,
    pacts: (P1, P2),
    info: OpInfo,
    env: Rc<OpEnv>,
    make: impl FnOnce(Capability<Time>) -> Option<L>,
) -> Stream<'s, Time, Vec<O>>
where
    I1: Clone + 'static,
    I2: Clone + 'static,
    O: Clone + 'static,
    P1: ParallelizationContract<Time, Vec<I1>>,
    P2: ParallelizationContract<Time, Vec<I2>>,
    L: BinaryInput<I1, I2, O> + 'static,
{
    one(binary_outputs(first, second, pacts, 1, info, env, |caps| make(one(caps))))
}

/// [`binary`] with `outputs` outputs (see [`unary_outputs`]).
pub fn binary_outputs<'s, I1, I2, O, P1, P2, L>(
    first: Stream<'s, Time, Vec<I1>>,
    second: Stream<'s, Time, Vec<I2>>,
    pacts: (P1, P2),
    outputs: usize,
    info: OpInfo,
    env: Rc<OpEnv>,
    make: impl FnOnce(Vec<Capability<Time>>) -> Option<L>,
) -> Vec<Stream<'s, Time, Vec<O>>>
where
    I1: Clone + 'static,
    I2: Clone + 'static,
    O: Clone + 'static,
    P1: ParallelizationContract<Time, Vec<I1>>,
    P2: ParallelizationContract<Time, Vec<I2>>,
    L: BinaryInput<I1, I2, O> + 'static,
{
    let mut shell = Shell::new(&info, first.scope());
    let mut input1 = shell.builder.new_input(first, pacts.0);
    let mut input2 = shell.builder.new_input(second, pacts.1);
    let (ports, streams) = shell.outputs(outputs, true);
    shell.build(ports, info, env, make, move |run| match run {
        Some((l, cx)) => {
            feed(&mut input1, cx, |cx, cap, data| l.on_first(cx, cap, data))?;
            feed(&mut input2, cx, |cx, cap, data| l.on_second(cx, cap, data))
        }
        None => {
            drain(&mut input1);
            drain(&mut input2);
            Ok(())
        }
    });
    streams
}

/// An operator with one input and no output (a sink; see [`unary`]): its logic's
/// output type is `()`, and it has none.
pub fn sink<'s, I, P, L>(
    stream: Stream<'s, Time, Vec<I>>,
    pact: P,
    info: OpInfo,
    env: Rc<OpEnv>,
    make: impl FnOnce() -> Option<L>,
) where
    I: Clone + 'static,
    P: ParallelizationContract<Time, Vec<I>>,
    L: UnaryInput<I, ()> + 'static,
{
    let none: Vec<Stream<'s, Time, Vec<()>>> = unary_outputs(stream, pact, 0, info, env, |_| make());
    debug_assert!(none.is_empty());
}
