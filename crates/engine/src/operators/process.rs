//! The process operator: a [`Processor`] over a keyed stream (state and timers per
//! key, Flink's `KeyedProcessFunction`), a plain one (`ProcessFunction`: clocks, no
//! state, no timers), or two keyed streams connected (`KeyedCoProcessFunction`: both
//! inputs' records of a key reach the same state and timers, one backend and one timer
//! service per operator; the records of both are taken in watermark order together).
//! With a second input that is not keyed (a broadcast stream, Flink's
//! `(Keyed)BroadcastProcessFunction`), that input's records have no current key: keyed
//! state and timers are out of their reach, but they alone may change the broadcast
//! state (and visit every key's state: `apply_to_keyed_state`). It owns the function's
//! [`ProcessContext`] and moves it between calls: the current key (records and timers),
//! whether a broadcast element is processed, the timestamp, the watermark and the
//! processing time.
//!
//! # Time
//!
//! As the window operator (see `window.rs`): a batch is processed once the input
//! frontier has passed its time, in watermark order, after the watermark it was sent
//! under has fired the event-time timers it makes due; so what a function sees (its
//! watermark, which timers fired before a record) does not depend on the number of
//! workers or processes. Batches sent before any watermark exists are taken at once
//! (nothing can fire before them), so a stream without event time is not delayed.
//! Processing-time timers follow the wall clock (the operator asks to be woken for the
//! next one) or, with a testing source, its manual clock through the frontier.
//!
//! Event-time timers fire in timestamp order (equal timestamps in key order) once the
//! watermark reaches them; their outputs carry the timer's timestamp. Outputs of a
//! record carry its timestamp; outputs of a processing-time timer carry none. At the
//! end of a bounded input every remaining timer fires (event time first, then
//! processing time), as pending windows do, with the watermark at +infinity; timers
//! registered meanwhile fire too if they are not later than the last timer pending
//! when the input ended (so a timer that registers the next one ends instead of looping).
//! Pending processing-time timers are dropped instead with Flink's rule
//! ([`crate::semantics::Semantics::fire_processing_timers_at_end`]). In batch mode
//! watermarks are ignored, timers wait for the end, and a keyed operator takes its
//! records there key by key, each key's timers after its records ([`Process::by_key`]).

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::Stream;
use timely::progress::Antichain;

use crate::checkpoint::restore::Restore;
use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
use crate::error::{ErrorKind, UdfError, UdfResult};
use crate::exchange::Routed;
use crate::key::Key;
use crate::operators::driver::{self, Cx, Failure, OpInfo, OperatorLogic, UnaryInput};
use crate::operators::keyed::open;
use crate::operators::{Keyed, OpEnv};
use crate::process::{lock, Emit, ProcessContext, ProcessFactory, Processor, SharedContext};
use crate::record::Record;
use crate::state::{snapshot, KeyedStateBackend};
use timely::progress::Timestamp;

use crate::time::{self, Time, TimeDomain, NO_TIME};

/// A record waiting for its batch's turn: whether it came from the second input, its
/// key (encoding and value) on a keyed stream, the record.
type Entry<R> = (bool, Option<(Key, R)>, R);

/// The streams of a process operator: main output first, then side outputs
/// `1..=side_outputs` (as many as the plan reads, see [`crate::plan::Plan::side_outputs`]).
pub type ProcessStreams<'s, R> = Vec<Stream<'s, Time, Vec<R>>>;

/// `process(f)` on a keyed stream, with `side_outputs` side outputs.
#[allow(clippy::too_many_arguments)]
pub fn process_keyed<'s, R: Record, P: ParallelizationContract<Time, Vec<Routed<Keyed<R>>>>>(
    stream: Stream<'s, Time, Vec<Routed<Keyed<R>>>>,
    pact: P,
    node: usize,
    name: &str,
    factory: &ProcessFactory<R>,
    parallelism: Option<usize>,
    side_outputs: usize,
    env: Rc<OpEnv>,
) -> ProcessStreams<'s, R> {
    let info = OpInfo::udf(name, Some(node));
    let (name, factory) = (name.to_string(), factory.clone());
    driver::unary_outputs(stream, pact, 1 + side_outputs, info, env.clone(), move |caps| {
        Process::make(&env, &name, &factory, parallelism, true, caps)
    })
}

/// `process(f)` on two connected streams: two keyed ones (`connect(a, b).key_by(k1,
/// k2)`: `pacts` bring each key's records of both to one worker, see
/// `with_key_pact!`), or a keyed or plain one and a broadcast one (records `I1`, `I2`:
/// `Routed<Keyed<R>>` keyed, `R` plain). `keyed`: the first input is keyed.
#[allow(clippy::too_many_arguments)]
pub fn process_connected<'s, R, I1, I2, P1, P2>(
    first: Stream<'s, Time, Vec<I1>>,
    second: Stream<'s, Time, Vec<I2>>,
    pacts: (P1, P2),
    keyed: bool,
    node: usize,
    name: &str,
    factory: &ProcessFactory<R>,
    parallelism: Option<usize>,
    side_outputs: usize,
    env: Rc<OpEnv>,
) -> ProcessStreams<'s, R>
where
    R: Record,
    I1: Clone + 'static,
    I2: Clone + 'static,
    P1: ParallelizationContract<Time, Vec<I1>>,
    P2: ParallelizationContract<Time, Vec<I2>>,
    Process<R>: driver::BinaryInput<I1, I2, R>,
{
    let info = OpInfo::udf(name, Some(node));
    let (name, factory) = (name.to_string(), factory.clone());
    driver::binary_outputs(first, second, pacts, 1 + side_outputs, info, env.clone(), move |caps| {
        Process::make(&env, &name, &factory, parallelism, keyed, caps)
    })
}

/// `process(f)` on a plain stream.
pub fn process_plain<'s, R: Record>(
    stream: Stream<'s, Time, Vec<R>>,
    node: usize,
    name: &str,
    factory: &ProcessFactory<R>,
    parallelism: Option<usize>,
    side_outputs: usize,
    env: Rc<OpEnv>,
) -> ProcessStreams<'s, R> {
    let info = OpInfo::udf(name, Some(node));
    let (name, factory) = (name.to_string(), factory.clone());
    let pact = timely::dataflow::channels::pact::Pipeline;
    driver::unary_outputs(stream, pact, 1 + side_outputs, info, env.clone(), move |caps| {
        Process::make(&env, &name, &factory, parallelism, false, caps)
    })
}

/// The operator's logic (public only as the bound of [`process_connected`]).
pub struct Process<R: Record> {
    f: Box<dyn Processor<R>>,
    ctx: SharedContext<R>,
    keyed: bool,
    manual: bool,
    /// Where outputs go out (one per output: main, then side outputs): at the least
    /// epoch and processing time of the input frontier and at the operator's own
    /// watermark (as the window operator).
    anchors: Vec<Capability<Time>>,
    pending: BTreeMap<Time, Vec<Entry<R>>>,
    opened: Vec<Keyed<R>>,
    out: Vec<R>,
    /// Side outputs by index, as the function emits them, then sorted by output
    /// (`side_out[i - 1]` for side output `i`).
    side: Vec<(usize, R)>,
    side_out: Vec<Vec<R>>,
    /// The watermark applied so far.
    watermark: i64,
    /// Batch mode: watermarks are ignored, timers wait for the end, and a keyed
    /// operator takes its records key by key at the end (see [`Process::by_key`]).
    batch: bool,
    /// Whether processing-time timers pending at the end of input fire.
    processing_timers_at_end: bool,
}

impl<R: Record> Process<R> {
    /// The logic of a process operator on this worker (None if it does not run here, or
    /// making the function failed the job): what [`process_keyed`] and the others run,
    /// public for tests that drive it in a dataflow of their own.
    pub fn make(
        env: &OpEnv,
        name: &str,
        factory: &ProcessFactory<R>,
        parallelism: Option<usize>,
        keyed: bool,
        anchors: Vec<Capability<Time>>,
    ) -> Option<Self> {
        let ctx = ProcessContext::shared(keyed);
        let ctx_for = ctx.clone();
        let make = move |w: &crate::functions::WorkerContext| factory(w, &ctx_for);
        let f = env.instantiate(ErrorKind::Udf, name, parallelism, &make)?;
        let side_out = (1..anchors.len()).map(|_| Vec::new()).collect();
        Some(Process {
            f,
            ctx,
            keyed,
            manual: env.manual_processing_time,
            anchors,
            pending: BTreeMap::new(),
            opened: Vec::new(),
            out: Vec::new(),
            side: Vec::new(),
            side_out,
            watermark: NO_TIME,
            batch: env.semantics.batch(),
            processing_timers_at_end: env.semantics.processing_timers_at_end(),
        })
    }

    /// Processes the batches the frontier has passed and fires what became due; at the
    /// end (`ended`) all of it and every timer.
    fn step(&mut self, cx: &mut Cx<'_, R>, ended: bool) -> Result<(), Failure> {
        let frontier: Antichain<Time> = cx.input_frontier();
        driver::follow_segment(self.anchors.iter_mut(), frontier.borrow());
        // Batch mode ignores watermarks; a keyed operator holds every record until the end.
        let wm_now = if self.batch { None } else { cx.watermark() };
        let hold = self.batch && self.keyed && !ended;
        let clock = cx.processing_time();
        let manual = self.manual;
        let mut ready: Vec<Time> = self
            .pending
            .keys()
            .filter(|t| !hold && (ended || passed(&frontier, wm_now, t) || (!manual && t.event == NO_TIME)))
            .copied()
            .collect();
        ready.sort_by_key(|t| (t.event, t.processing, t.epoch));
        // With manual processing time, the least still to come after each batch.
        let mut later_processing = vec![i64::MAX; ready.len()];
        for i in (0..ready.len().saturating_sub(1)).rev() {
            later_processing[i] = later_processing[i + 1].min(ready[i + 1].processing);
        }
        if !manual {
            self.advance_processing(clock, cx.env)?;
        }
        if self.batch && self.keyed && ended {
            let mut entries = Vec::new();
            for t in ready.drain(..) {
                entries.extend(self.pending.remove(&t).expect("listed"));
            }
            self.by_key(entries, cx.env)?;
        }
        for (t, later) in ready.into_iter().zip(later_processing) {
            let group = self.pending.remove(&t).expect("listed");
            // The watermark the batch was sent under, as far as the whole input allows.
            // A batch from an idle partition says nothing about it.
            if let Some(w) = wm_now {
                if t.event < time::IDLE {
                    self.advance_event(t.event.min(w), cx.env)?;
                }
            }
            if manual {
                self.advance_processing(t.processing.min(clock).min(later), cx.env)?;
            }
            for (second, key, value) in group {
                self.element(second, key, value, cx.env)?;
            }
        }
        if ended {
            if !(self.batch && self.keyed) {
                self.fire_remaining(cx.env)?;
            }
        } else {
            if let Some(w) = wm_now {
                self.advance_event(w, cx.env)?;
            }
            if manual {
                self.advance_processing(clock, cx.env)?;
            }
        }
        if !self.out.is_empty() {
            cx.give(&self.anchors[0], &mut self.out);
        }
        if !self.side.is_empty() {
            // In the order emitted, per output; an index the plan reads no output of
            // is dropped (the binding drops tags nobody reads before that).
            for (i, r) in self.side.drain(..) {
                if let Some(out) = self.side_out.get_mut(i.wrapping_sub(1)) {
                    out.push(r);
                }
            }
            for (i, out) in self.side_out.iter_mut().enumerate() {
                if !out.is_empty() {
                    cx.give_to(i + 1, &self.anchors[i + 1], out);
                }
            }
        }
        if !ended {
            let next = Time {
                epoch: time::least_epoch(frontier.borrow()).unwrap_or(u64::MAX),
                event: self.watermark,
                processing: time::processing_time(frontier.borrow()),
                segment: time::least_segment(frontier.borrow()).unwrap_or(u64::MAX),
            };
            for anchor in self.anchors.iter_mut() {
                let next = next.join(anchor.time());
                if *anchor.time() != next {
                    anchor.downgrade(&next);
                }
            }
            if !manual && !self.batch {
                if let Some(at) = lock(&self.ctx).timers.next(TimeDomain::ProcessingTime) {
                    let wait = at.saturating_sub(cx.env.clock.now_ms()).max(1) as u64;
                    cx.wake_after(Duration::from_millis(wait));
                }
            }
        }
        Ok(())
    }

    /// Calls `process_element` (of the second input if `second`) for one record, its
    /// key and timestamp set.
    fn element(&mut self, second: bool, key: Option<(Key, R)>, value: R, env: &OpEnv) -> UdfResult<()> {
        let ts = value.timestamp();
        {
            let mut c = lock(&self.ctx);
            match key {
                Some((k, kv)) => {
                    c.set_key(k, kv);
                    let now = c.processing_time;
                    c.state.on_record(now);
                }
                None => {
                    // A broadcast input's record on a keyed operator: no key.
                    if self.keyed {
                        c.clear_key();
                    }
                    // The second input without keys is a broadcast stream: its calls
                    // may change broadcast state (and visit every key's state). Set
                    // here, not for keyed records, so their path pays nothing for it.
                    c.set_in_broadcast_element(second);
                }
            }
            c.timestamp = ts;
            c.domain = None;
        }
        let (first, first_side) = (self.out.len(), self.side.len());
        let mut emit = Emit { main: &mut self.out, side: &mut self.side };
        let done = if second {
            let done = self.f.process_second(value, &mut emit);
            lock(&self.ctx).set_in_broadcast_element(false);
            done
        } else {
            self.f.process(value, &mut emit)
        };
        if let Err(e) = done {
            self.out.truncate(first);
            self.side.truncate(first_side);
            return Err(self.for_key(e, if second { "process_element2" } else { "process_element" }));
        }
        self.stamp(first, first_side, ts, env)
    }

    /// Names the current key in an error of the function.
    fn for_key(&self, mut e: UdfError, what: &str) -> UdfError {
        if self.keyed {
            if let Some(k) = lock(&self.ctx).current_key() {
                e.message = format!("in {what}, for key {}:\n{}", k.describe(), e.message);
            }
        }
        e
    }

    fn advance_event(&mut self, wm: i64, env: &OpEnv) -> UdfResult<()> {
        if wm > self.watermark {
            self.watermark = wm;
            lock(&self.ctx).watermark = wm;
        }
        self.fire(TimeDomain::EventTime, self.watermark, env)
    }

    /// The clock reads `now`: fires the processing-time timers due, except in batch
    /// mode, where they wait for the end of input.
    fn advance_processing(&mut self, now: i64, env: &OpEnv) -> UdfResult<()> {
        let now = {
            let mut c = lock(&self.ctx);
            c.processing_time = c.processing_time.max(now);
            c.processing_time
        };
        if self.batch {
            return Ok(());
        }
        self.fire(TimeDomain::ProcessingTime, now, env)
    }

    /// Fires `domain`'s timers due at `time`, one at a time (a timer may register
    /// another that is due already).
    fn fire(&mut self, domain: TimeDomain, time: i64, env: &OpEnv) -> UdfResult<()> {
        if !self.keyed {
            return Ok(());
        }
        loop {
            let Some(timer) = lock(&self.ctx).timers.pop_due(domain, time) else { return Ok(()) };
            self.fire_timer(timer, env)?;
        }
    }

    /// Calls `on_timer` for `timer`, its key set.
    fn fire_timer(&mut self, timer: crate::timers::Timer<Key, R>, env: &OpEnv) -> UdfResult<()> {
        let domain = timer.domain;
        let ts = {
            let mut c = lock(&self.ctx);
            c.set_key(timer.key, timer.value);
            c.timestamp = timer.timestamp;
            c.domain = Some(domain);
            timer.timestamp
        };
        let (first, first_side) = (self.out.len(), self.side.len());
        let mut emit = Emit { main: &mut self.out, side: &mut self.side };
        if let Err(e) = self.f.on_timer(ts, domain, &mut emit) {
            self.out.truncate(first);
            self.side.truncate(first_side);
            let what = match domain {
                TimeDomain::EventTime => format!("on_timer (event-time timer at {ts})"),
                TimeDomain::ProcessingTime => format!("on_timer (processing-time timer at {ts})"),
            };
            return Err(self.for_key(e, &what));
        }
        let out_ts = if domain == TimeDomain::EventTime { ts } else { NO_TIME };
        self.stamp(first, first_side, out_ts, env)
    }

    /// Batch mode's end, on a keyed operator (Flink's sorted inputs): the broadcast
    /// input's records first, then each key's records (keys in the order of their
    /// encodings; a key's records by timestamp, ties in arrival order), each key's
    /// timers firing after its records ([`Process::end_key`]).
    fn by_key(&mut self, mut entries: Vec<Entry<R>>, env: &OpEnv) -> UdfResult<()> {
        entries.sort_by(|(_, a, x), (_, b, y)| match (a, b) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.bytes().cmp(b.bytes()).then(x.timestamp().cmp(&y.timestamp())),
        });
        let mut current: Option<Key> = None;
        for (second, key, value) in entries {
            if let Some((k, _)) = &key {
                if current.as_ref().is_some_and(|c| c != k) {
                    self.end_key(env)?;
                }
                current = Some(k.clone());
            }
            self.element(second, key, value, env)?;
        }
        self.end_key(env)
    }

    /// Batch mode: the current key's records are done. Its timers fire, event time
    /// then processing time, each in time order, with the watermark at +infinity;
    /// timers they register are dropped (Flink stops the timer service at a key's
    /// end, so a timer cannot loop).
    fn end_key(&mut self, env: &OpEnv) -> UdfResult<()> {
        self.watermark = i64::MAX;
        lock(&self.ctx).watermark = i64::MAX;
        let mut due = Vec::new();
        for domain in [TimeDomain::EventTime, TimeDomain::ProcessingTime] {
            lock(&self.ctx).timers.take_all(domain, &mut due);
            for timer in due.drain(..) {
                self.fire_timer(timer, env)?;
            }
        }
        {
            let mut c = lock(&self.ctx);
            c.timers.take_all(TimeDomain::EventTime, &mut due);
            c.timers.take_all(TimeDomain::ProcessingTime, &mut due);
            c.watermark = NO_TIME;
        }
        self.watermark = NO_TIME;
        Ok(())
    }

    /// Makes the outputs from `first` (main) and `first_side` their own and gives them
    /// timestamp `ts`.
    fn stamp(&mut self, first: usize, first_side: usize, ts: i64, env: &OpEnv) -> UdfResult<()> {
        let outs = &mut self.out[first..];
        env.own(outs)?;
        outs.iter_mut().for_each(|r| r.set_timestamp(ts));
        for (_, r) in &mut self.side[first_side..] {
            env.own_one(r)?;
            r.set_timestamp(ts);
        }
        Ok(())
    }

    /// The end of input: every timer pending now fires, and those registered meanwhile
    /// up to the last of them (see the module doc).
    fn fire_remaining(&mut self, env: &OpEnv) -> UdfResult<()> {
        let last = |c: &ProcessContext<R>, d| c.timers.iter().filter(|t| t.0 == d).map(|t| t.1).max();
        let (event_last, processing_last) = {
            let c = lock(&self.ctx);
            (last(&c, TimeDomain::EventTime), last(&c, TimeDomain::ProcessingTime))
        };
        // The watermark is now +infinity (as Flink's at the end of input).
        self.watermark = i64::MAX;
        lock(&self.ctx).watermark = i64::MAX;
        if let Some(e) = event_last {
            self.fire(TimeDomain::EventTime, e, env)?;
        }
        match processing_last {
            Some(p) if self.processing_timers_at_end => self.advance_processing(p, env)?,
            // Flink's streaming mode stops the timer service first: they never fire.
            _ => {}
        }
        Ok(())
    }
}

impl<R: Record> Drop for Process<R> {
    /// Releases state and timers with the logic (inside the operator's scope), whoever
    /// still holds the context (a state object kept in the user's function object).
    fn drop(&mut self) {
        lock(&self.ctx).close();
    }
}

impl<R: Record> OperatorLogic<R> for Process<R> {
    fn on_frontier(&mut self, cx: &mut Cx<'_, R>) -> Result<(), Failure> {
        self.step(cx, false)
    }

    fn on_end(&mut self, cx: &mut Cx<'_, R>) -> Result<(), Failure> {
        self.step(cx, true)?;
        Ok(self.f.close()?)
    }

    /// The context's state (watermark, keyed state, timers, broadcast state), then the
    /// records received but not yet processed (waiting for the watermark they were sent
    /// under): input the checkpoint has counted as delivered.
    fn snapshot(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        let mut w = StateWriter::<R>::from_vec(std::mem::take(out));
        let written = self.write_state(&mut w);
        *out = w.into_bytes();
        Ok(written?)
    }

    /// Keyed state, timers and queued keyed records: the keys this instance owns now.
    /// Broadcast state and the queued broadcast records that go with it: one old
    /// instance's copy ([`snapshot::copy_index`]). Queued records of a plain input: old
    /// instance `i`'s go to new instance `i % instances` ([`Restore::deals`]). The
    /// watermark: the least of the old instances'.
    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        let copy = snapshot::copy_index(from);
        let owns = |k: &Key| from.owns(k);
        let mut watermark: Option<i64> = None;
        // Queued records kept: (event, processing) time, their place among the
        // broadcast records of that time (see below), and the record.
        let mut queued: Vec<((i64, i64), (u64, bool), Entry<R>)> = Vec::new();
        for (i, section) in from.sections().iter().enumerate() {
            if section.is_empty() {
                continue;
            }
            let mut r = StateReader::<R>::new(section);
            let take_copy = copy == Some(i);
            let wm = lock(&self.ctx).restore(&mut r, &owns, take_copy)?;
            watermark = Some(watermark.map_or(wm, |w| w.min(wm)));
            let deals = from.deals(i);
            // Broadcast records of each time seen so far in this section, taken or not.
            let mut broadcasts: HashMap<(i64, i64), u64> = HashMap::new();
            r.keyed_entries(|key, meta, values| {
                let (Some(&flags), Some(event), Some(processing), 17) =
                    (meta.first(), meta.get(1..9), meta.get(9..17), meta.len())
                else {
                    return Err(StateError::Corrupt { offset: 0, what: "a queued record's meta".into() });
                };
                let (second, keyed) = (flags & 1 != 0, flags & 2 != 0);
                let int = |b: &[u8]| i64::from_le_bytes(b.try_into().expect("8 bytes"));
                let at = (int(event), int(processing));
                let broadcast = second && !keyed;
                let seen = broadcasts.entry(at).or_default();
                *seen += u64::from(broadcast);
                let place = (*seen, !broadcast);
                let keep = if keyed {
                    owns(&key)
                } else if broadcast {
                    take_copy
                } else {
                    deals
                };
                if !keep {
                    return Ok(());
                }
                let entry = match (keyed, values.next(), values.next(), values.next()) {
                    (true, Some(kv), Some(v), None) => (second, Some((key, kv)), v),
                    (false, Some(v), None, None) => (second, None, v),
                    _ => {
                        return Err(StateError::Corrupt { offset: 0, what: "a queued record of another shape".into() })
                    }
                };
                queued.push((at, place, entry));
                Ok(())
            })?;
            r.finish()?;
        }
        // Each old instance took a time's broadcast records and its own records in
        // some order; the broadcast records are the same on all of them. Records that
        // came after the n-th broadcast record on their instance stay after it (and
        // before the next), so every key sees the broadcast state it saw (a stable sort:
        // each instance's order is kept otherwise).
        queued.sort_by_key(|(at, place, _)| (*at, *place));
        for ((event, processing), _, entry) in queued {
            // Epoch and segment restart with the new run; event and processing time
            // keep the record waiting for the watermark it was sent under.
            self.pending.entry(Time::new(0, event, processing)).or_default().push(entry);
        }
        if let Some(w) = watermark {
            self.watermark = w;
            lock(&self.ctx).watermark = w;
        }
        Ok(())
    }
}

impl<R: Record> Process<R> {
    fn write_state(&self, w: &mut StateWriter<R>) -> Result<(), StateError> {
        lock(&self.ctx).snapshot(w)?;
        let mut out = w.begin_keyed();
        let plain = Key::from_encoded(&[]);
        let mut meta = [0u8; 17];
        for (t, group) in &self.pending {
            meta[1..9].copy_from_slice(&t.event.to_le_bytes());
            meta[9..17].copy_from_slice(&t.processing.to_le_bytes());
            for (second, key, value) in group {
                meta[0] = u8::from(*second) | u8::from(key.is_some()) << 1;
                match key {
                    Some((k, kv)) => out.push_entry(k, &meta, [kv.clone(), value.clone()])?,
                    None => out.push_entry(&plain, &meta, [value.clone()])?,
                }
            }
        }
        out.finish()
    }
}

impl<R: Record> UnaryInput<Routed<Keyed<R>>, R> for Process<R> {
    fn on_batch(
        &mut self,
        _cx: &mut Cx<'_, R>,
        cap: &InputCapability<Time>,
        data: &mut Vec<Routed<Keyed<R>>>,
    ) -> Result<(), Failure> {
        self.queue_keyed(false, cap, data)
    }
}

impl<R: Record> Process<R> {
    /// A keyed batch of input `second` (connected streams), queued for its turn.
    fn queue_keyed(
        &mut self,
        second: bool,
        cap: &InputCapability<Time>,
        data: &mut Vec<Routed<Keyed<R>>>,
    ) -> Result<(), Failure> {
        open(data, &mut self.opened)?;
        let at = self.pending.entry(batch_time(cap)).or_default();
        at.extend(self.opened.drain(..).map(|(k, kv, v)| (second, Some((k, kv)), v)));
        Ok(())
    }
}

impl<R: Record> driver::BinaryInput<Routed<Keyed<R>>, Routed<Keyed<R>>, R> for Process<R> {
    fn on_first(
        &mut self,
        _cx: &mut Cx<'_, R>,
        cap: &InputCapability<Time>,
        data: &mut Vec<Routed<Keyed<R>>>,
    ) -> Result<(), Failure> {
        self.queue_keyed(false, cap, data)
    }

    fn on_second(
        &mut self,
        _cx: &mut Cx<'_, R>,
        cap: &InputCapability<Time>,
        data: &mut Vec<Routed<Keyed<R>>>,
    ) -> Result<(), Failure> {
        self.queue_keyed(true, cap, data)
    }
}

impl<R: Record> Process<R> {
    /// A plain batch of input `second`, queued for its turn.
    fn queue_plain(&mut self, second: bool, cap: &InputCapability<Time>, data: &mut Vec<R>) {
        self.pending.entry(batch_time(cap)).or_default().extend(data.drain(..).map(|v| (second, None, v)));
    }
}

/// A keyed stream connected with a broadcast one (`KeyedBroadcastProcessFunction`).
impl<R: Record> driver::BinaryInput<Routed<Keyed<R>>, R, R> for Process<R> {
    fn on_first(
        &mut self,
        _cx: &mut Cx<'_, R>,
        cap: &InputCapability<Time>,
        data: &mut Vec<Routed<Keyed<R>>>,
    ) -> Result<(), Failure> {
        self.queue_keyed(false, cap, data)
    }

    fn on_second(
        &mut self,
        _cx: &mut Cx<'_, R>,
        cap: &InputCapability<Time>,
        data: &mut Vec<R>,
    ) -> Result<(), Failure> {
        self.queue_plain(true, cap, data);
        Ok(())
    }
}

/// A plain stream connected with a broadcast one (`BroadcastProcessFunction`).
impl<R: Record> driver::BinaryInput<R, R, R> for Process<R> {
    fn on_first(&mut self, _cx: &mut Cx<'_, R>, cap: &InputCapability<Time>, data: &mut Vec<R>) -> Result<(), Failure> {
        self.queue_plain(false, cap, data);
        Ok(())
    }

    fn on_second(
        &mut self,
        _cx: &mut Cx<'_, R>,
        cap: &InputCapability<Time>,
        data: &mut Vec<R>,
    ) -> Result<(), Failure> {
        self.queue_plain(true, cap, data);
        Ok(())
    }
}

impl<R: Record> UnaryInput<R, R> for Process<R> {
    fn on_batch(&mut self, _cx: &mut Cx<'_, R>, cap: &InputCapability<Time>, data: &mut Vec<R>) -> Result<(), Failure> {
        self.queue_plain(false, cap, data);
        Ok(())
    }
}

/// Whether the input frontier has passed a batch sent at `t`: no input can send at or
/// before it, and (with several inputs, whose sources' epochs and clocks differ, so a
/// frontier may be incomparable with `t` yet behind it in event time) the watermark of
/// all inputs has reached the one `t` was sent under. A batch from an idle partition
/// needs only the first.
fn passed(frontier: &Antichain<Time>, watermark: Option<i64>, t: &Time) -> bool {
    !frontier.less_equal(t) && (t.event >= time::IDLE || watermark.is_none_or(|w| w >= t.event))
}

/// The time a batch was sent at.
fn batch_time(cap: &InputCapability<Time>) -> Time {
    cap.stamp().iter().next().copied().unwrap_or_else(Time::minimum)
}
