use crate::time::Time;
use std::rc::Rc;

use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::Stream;

use crate::checkpoint::restore::Restore;
use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
use crate::error::{ErrorKind, UdfError, UdfResult};
use crate::exchange::{decode_keyed, encode_keyed, partition, unpack, Routed};
use crate::functions::{KeyFactory, KeySelector, ReduceFactory, Reducer};
use crate::key::Key;
use crate::operators::driver::{self, Cx, Failure, OpInfo, OperatorLogic, UnaryInput};
use crate::operators::OpEnv;
use crate::record::Record;
use crate::rolling::{Number, RollingState};
use crate::state::KeyedState;

/// A record with its key: the canonical encoding (routing, state) and the key value.
pub type Keyed<R> = (Key, R, R);

/// The exchange that sends each batch to the worker it was partitioned for.
pub fn by_key<R: Record>() -> impl ParallelizationContract<Time, Vec<Routed<Keyed<R>>>> {
    Exchange::new(|routed: &Routed<Keyed<R>>| routed.0)
}

/// Calls `$op` with the pact that brings each key's batch to its owner: an exchange,
/// or, on a single worker, a plain pipeline.
#[macro_export]
macro_rules! with_key_pact {
    ($peers:expr, |$pact:ident| $op:expr) => {
        if $peers == 1 {
            let $pact = timely::dataflow::channels::pact::Pipeline;
            $op
        } else {
            let $pact = $crate::operators::by_key();
            $op
        }
    };
}

/// Computes each record's key and partitions the batch by the worker owning each key
/// (encoding only what goes to another process).
/// `route_to`: how many workers (the first ones) the keys are spread over: the job's
/// workers, or fewer when the keyed operator runs with a smaller parallelism.
pub fn key_by<'s, R: Record>(
    stream: Stream<'s, Time, Vec<R>>,
    node: usize,
    name: &str,
    factory: &KeyFactory<R>,
    route_to: usize,
    env: Rc<OpEnv>,
) -> Stream<'s, Time, Vec<Routed<Keyed<R>>>> {
    // Counted as keyed records, not as the routed batches it gives.
    let info = OpInfo::udf(name, None);
    let name = name.to_string();
    let factory = factory.clone();
    driver::unary(stream, Pipeline, info, env.clone(), move |_cap| {
        let selector = env.instantiate(ErrorKind::Udf, &name, None, &*factory)?;
        Some(KeyBy { selector, node, name, route_to, keyed: Vec::new(), routed: Vec::new() })
    })
}

struct KeyBy<R: Record> {
    selector: Box<dyn KeySelector<R>>,
    node: usize,
    name: String,
    route_to: usize,
    keyed: Vec<Keyed<R>>,
    routed: Vec<Routed<Keyed<R>>>,
}

impl<R: Record> OperatorLogic<Routed<Keyed<R>>> for KeyBy<R> {
    fn on_end(&mut self, _cx: &mut Cx<'_, Routed<Keyed<R>>>) -> Result<(), Failure> {
        Ok(self.selector.close()?)
    }
}

impl<R: Record> UnaryInput<R, Routed<Keyed<R>>> for KeyBy<R> {
    fn on_batch(
        &mut self,
        cx: &mut Cx<'_, Routed<Keyed<R>>>,
        cap: &InputCapability<Time>,
        data: &mut Vec<R>,
    ) -> Result<(), Failure> {
        let env = cx.env;
        key_batch(env, (self.node, &self.name), &mut *self.selector, data, &mut self.keyed)?;
        let peers = env.worker.peers;
        let route_to = self.route_to.clamp(1, peers) as u64;
        partition(
            &mut self.keyed,
            peers,
            env.locality,
            |k: &Keyed<R>| (k.0.hash() % route_to) as usize,
            encode_keyed::<R>,
            &mut self.routed,
        )
        .map_err(UdfError::new)?;
        cx.give(cap, &mut self.routed);
        Ok(())
    }
}

/// Keys `data` (emptied) into `keyed` and counts it for the key_by node `(id, name)`;
/// a selector's error is that node's.
fn key_batch<R: Record>(
    env: &OpEnv,
    (node, name): (usize, &str),
    sel: &mut dyn KeySelector<R>,
    data: &mut Vec<R>,
    keyed: &mut Vec<Keyed<R>>,
) -> Result<(), Failure> {
    keyed.reserve(data.len());
    sel.key_all(data, keyed).map_err(|e| Failure::of(ErrorKind::Udf, name, e))?;
    env.count(node, keyed.len());
    Ok(())
}

/// Opens the batches a keyed operator received into `out`: an error if one cannot be
/// decoded.
pub(crate) fn open<R: Record>(batches: &mut Vec<Routed<Keyed<R>>>, out: &mut Vec<Keyed<R>>) -> UdfResult<()> {
    for (_dest, batch) in batches.drain(..) {
        unpack(batch, decode_keyed::<R>, out)?;
    }
    Ok(())
}

/// A keyed stream read by an operator that does not care about keys (Flink's
/// `key_by(...).map(...)`): partitioned by key, then plain values.
pub fn unkey<'s, R: Record, P: ParallelizationContract<Time, Vec<Routed<Keyed<R>>>>>(
    stream: Stream<'s, Time, Vec<Routed<Keyed<R>>>>,
    pact: P,
    name: &str,
    env: Rc<OpEnv>,
) -> Stream<'s, Time, Vec<R>> {
    let info = OpInfo::udf(&format!("values of {name}"), None);
    driver::unary(stream, pact, info, env, |_cap| Some(Unkey { keyed: Vec::new(), values: Vec::new() }))
}

struct Unkey<R> {
    keyed: Vec<Keyed<R>>,
    values: Vec<R>,
}

impl<R: Record> OperatorLogic<R> for Unkey<R> {}

impl<R: Record> UnaryInput<Routed<Keyed<R>>, R> for Unkey<R> {
    fn on_batch(
        &mut self,
        cx: &mut Cx<'_, R>,
        cap: &InputCapability<Time>,
        data: &mut Vec<Routed<Keyed<R>>>,
    ) -> Result<(), Failure> {
        open(data, &mut self.keyed)?;
        self.values.extend(self.keyed.drain(..).map(|(_k, _kv, v)| v));
        cx.give(cap, &mut self.values);
        Ok(())
    }
}

/// How many records ahead a keyed operator asks for its state's slot: far enough for
/// the fetch to arrive, near enough to stay in cache (8 and 32 were slower on the word
/// count).
pub(crate) const PREFETCH_AHEAD: usize = 16;

/// A rolling reduce's keyed state and its loop over a batch, shared by [`reduce`] and
/// [`key_reduce`] (public for the checkpoint tests, which drive it without a dataflow).
pub struct RollingReduce<R: Record> {
    state: KeyedState<RollingState<R>>,
    /// Whether any key's state is a record (a running number needs no record fetched).
    holds_records: bool,
}

impl<R: Record> Default for RollingReduce<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// A rolling state's meta in a checkpoint: which kind, then a running number's bits.
const ROLLING_RECORD: u8 = 0;
const ROLLING_INT: u8 = 1;
const ROLLING_FLOAT: u8 = 2;

impl<R: Record> RollingReduce<R> {
    pub fn new() -> Self {
        RollingReduce { state: KeyedState::new(), holds_records: false }
    }

    /// How many keys hold state.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// `key`'s state, if it has one.
    pub fn get(&self, key: &Key) -> Option<&RollingState<R>> {
        self.state.get(key)
    }

    /// Appends every key's state to `w` as keyed entries: a record as the entry's value,
    /// a running number in its meta (no record).
    pub fn snapshot(&self, w: &mut StateWriter<R>) -> Result<(), StateError> {
        let mut out = w.begin_keyed();
        let mut meta = [0u8; 9];
        for i in 0..self.state.len() {
            let (key, state) = self.state.entry_at(i);
            match state {
                RollingState::Record(r) => out.push_entry(key, &[ROLLING_RECORD], [r.clone()])?,
                RollingState::Running { value } => {
                    let (tag, bits) = match *value {
                        Number::Int(n) => (ROLLING_INT, n.to_le_bytes()),
                        Number::Float(f) => (ROLLING_FLOAT, f.to_bits().to_le_bytes()),
                    };
                    meta[0] = tag;
                    meta[1..].copy_from_slice(&bits);
                    out.push_entry(key, &meta, [])?;
                }
            }
        }
        out.finish()
    }

    /// Takes the keys `from` says this instance owns from every old instance's section.
    pub fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        for section in from.non_empty() {
            let mut r = StateReader::<R>::new(section);
            r.keyed_entries(|key, meta, values| {
                if !from.owns(&key) {
                    return Ok(());
                }
                let bits = |m: &[u8]| m.try_into().ok().map(u64::from_le_bytes);
                let state = match (meta.split_first(), values.next(), values.next()) {
                    (Some((&ROLLING_RECORD, [])), Some(r), None) => RollingState::Record(r),
                    (Some((&ROLLING_INT, n)), None, None) if n.len() == 8 => {
                        RollingState::Running { value: Number::Int(bits(n).expect("8 bytes") as i64) }
                    }
                    (Some((&ROLLING_FLOAT, n)), None, None) if n.len() == 8 => {
                        RollingState::Running { value: Number::Float(f64::from_bits(bits(n).expect("8 bytes"))) }
                    }
                    _ => {
                        let what = "a rolling reduce's entry of another shape".to_string();
                        return Err(StateError::Corrupt { offset: 0, what });
                    }
                };
                self.holds_records |= state.record().is_some();
                self.state.insert(key, state);
                Ok(())
            })?;
            r.finish()?;
        }
        Ok(())
    }

    /// Folds `keyed` (emptied) into the state, appending what to emit to `out`: a key's
    /// first record as it is, then each `reduce(previous, value)` with the value's
    /// timestamp (as Flink). With `out` None (batch mode) nothing is emitted: see
    /// [`RollingReduce::finish`].
    pub fn fold(
        &mut self,
        env: &OpEnv,
        red: &mut dyn Reducer<R>,
        keyed: &mut Vec<Keyed<R>>,
        mut out: Option<&mut Vec<R>>,
    ) -> UdfResult<()> {
        if let Some(out) = out.as_deref_mut() {
            out.reserve(keyed.len());
        }
        let mut records = keyed.drain(..);
        while let Some((key, _key_value, value)) = records.next() {
            // In stages, each once the previous one's data has arrived: the index slot
            // of a key PREFETCH_AHEAD records ahead, its entry at half that distance,
            // and the state record (if it keeps one) at a quarter.
            let rest = records.as_slice();
            if let Some((ahead, _, _)) = rest.get(PREFETCH_AHEAD) {
                self.state.prefetch(ahead.hash());
            }
            if let Some((near, _, _)) = rest.get(PREFETCH_AHEAD / 2) {
                self.state.prefetch_entry(near.hash());
            }
            if self.holds_records {
                if let Some(acc) =
                    rest.get(PREFETCH_AHEAD / 4).and_then(|(next, _, _)| self.state.peek(next.hash())?.record())
                {
                    acc.prefetch();
                }
            }
            // One lookup per record: update in place, insert only new keys.
            let mut emit = match self.state.get_mut(&key) {
                Some(acc) => {
                    let mut v = red.update(&key, acc, &value)?;
                    self.holds_records |= acc.record().is_some();
                    v.set_timestamp(value.timestamp());
                    v
                }
                None => {
                    let first = red.start(&value)?;
                    self.holds_records |= first.record().is_some();
                    self.state.insert(key, first);
                    value
                }
            };
            if let Some(out) = out.as_deref_mut() {
                // The state holds what is emitted, and the next update may change it.
                env.own_one(&mut emit)?;
                out.push(emit);
            }
        }
        Ok(())
    }

    /// Batch mode's end: appends every key's final result to `out` (Flink's
    /// `BatchGroupedReduceOperator`: at timestamp `i64::MAX`), keys in the order of
    /// their encodings, and forgets them.
    pub fn finish(&mut self, red: &mut dyn Reducer<R>, out: &mut Vec<R>) -> UdfResult<()> {
        let mut order: Vec<usize> = (0..self.state.len()).collect();
        order.sort_by(|&a, &b| self.state.entry_at(a).0.bytes().cmp(self.state.entry_at(b).0.bytes()));
        out.reserve(order.len());
        for i in order {
            let (key, state) = self.state.entry_at(i);
            let mut result = red.result(key, state)?;
            result.set_timestamp(i64::MAX);
            out.push(result);
        }
        // Forgotten before the results go out, so they need no copy of their own.
        self.state = KeyedState::new();
        self.holds_records = false;
        Ok(())
    }
}

/// Rolling reduce: the first value of a key is emitted as it is; every later one
/// emits `reduce(previous, value)`, which becomes the key's state.
pub fn reduce<'s, R: Record, P: ParallelizationContract<Time, Vec<Routed<Keyed<R>>>>>(
    stream: Stream<'s, Time, Vec<Routed<Keyed<R>>>>,
    pact: P,
    node: usize,
    name: &str,
    factory: &ReduceFactory<R>,
    parallelism: Option<usize>,
    env: Rc<OpEnv>,
) -> Stream<'s, Time, Vec<R>> {
    let info = OpInfo::udf(name, Some(node));
    let name = name.to_string();
    let factory = factory.clone();
    driver::unary(stream, pact, info, env.clone(), move |cap| {
        let reducer = env.instantiate(ErrorKind::Udf, &name, parallelism, &*factory)?;
        let held = env.semantics.batch().then_some(cap);
        Some(Reduce { key: None, reducer, rolling: RollingReduce::new(), keyed: Vec::new(), out: Vec::new(), held })
    })
}

/// The plan node a [`key_reduce`] keys for: its id, name and key selector.
pub struct KeyNode<'a, R> {
    pub id: usize,
    pub name: &'a str,
    pub factory: &'a KeyFactory<R>,
}

/// `key_by` then a rolling reduce as one operator, for a job on one worker, where
/// there is nothing to route: each batch is keyed and folded in the same activation,
/// without a keyed batch handed between two operators. Errors and counts are reported
/// in each node's name, as with the two operators.
pub fn key_reduce<'s, R: Record>(
    stream: Stream<'s, Time, Vec<R>>,
    key: KeyNode<'_, R>,
    node: usize,
    name: &str,
    factory: &ReduceFactory<R>,
    parallelism: Option<usize>,
    env: Rc<OpEnv>,
) -> Stream<'s, Time, Vec<R>> {
    let (key_id, key_name, key_factory) = (key.id, key.name.to_string(), key.factory.clone());
    let info = OpInfo::udf(name, Some(node));
    let name = name.to_string();
    let factory = factory.clone();
    driver::unary(stream, Pipeline, info, env.clone(), move |cap| {
        let selector = env.instantiate(ErrorKind::Udf, &key_name, None, &*key_factory);
        let reducer = env.instantiate(ErrorKind::Udf, &name, parallelism, &*factory);
        let (selector, reducer) = match (selector, reducer) {
            (Some(s), Some(r)) => (s, r),
            made => {
                // What was made is a user function: released in the scope.
                let mut made = Some(made);
                env.enter(|| drop(made.take()));
                return None;
            }
        };
        let key = Some((key_id, key_name, selector));
        let held = env.semantics.batch().then_some(cap);
        Some(Reduce { key, reducer, rolling: RollingReduce::new(), keyed: Vec::new(), out: Vec::new(), held })
    })
}

/// A rolling reduce, reading a keyed stream or (`key`: the key_by node it stands for
/// too) keying its input itself.
struct Reduce<R: Record> {
    key: Option<(usize, String, Box<dyn KeySelector<R>>)>,
    reducer: Box<dyn Reducer<R>>,
    rolling: RollingReduce<R>,
    keyed: Vec<Keyed<R>>,
    out: Vec<R>,
    /// Batch mode: where the final results go out at the end, following the input's
    /// epochs meanwhile (the sinks' flow control waits for them).
    held: Option<Capability<Time>>,
}

impl<R: Record> Reduce<R> {
    fn fold(&mut self, cx: &mut Cx<'_, R>, cap: &InputCapability<Time>) -> Result<(), Failure> {
        if self.held.is_some() {
            return Ok(self.rolling.fold(cx.env, &mut *self.reducer, &mut self.keyed, None)?);
        }
        self.rolling.fold(cx.env, &mut *self.reducer, &mut self.keyed, Some(&mut self.out))?;
        cx.give(cap, &mut self.out);
        Ok(())
    }
}

impl<R: Record> OperatorLogic<R> for Reduce<R> {
    /// Batch mode: the held capability follows the input's epoch and segment (its
    /// watermark stays where it was: nothing goes out before the end).
    fn on_frontier(&mut self, cx: &mut Cx<'_, R>) -> Result<(), Failure> {
        if let Some(held) = self.held.as_mut() {
            let frontier = cx.frontier(0);
            let at = *held.time();
            let next = Time {
                epoch: crate::time::least_epoch(frontier).unwrap_or(at.epoch).max(at.epoch),
                segment: crate::time::least_segment(frontier).unwrap_or(at.segment).max(at.segment),
                ..at
            };
            if next != at {
                held.downgrade(&next);
            }
        }
        Ok(())
    }

    fn on_end(&mut self, cx: &mut Cx<'_, R>) -> Result<(), Failure> {
        if let Some(held) = self.held.take() {
            self.rolling.finish(&mut *self.reducer, &mut self.out)?;
            cx.env.own(&mut self.out)?;
            cx.give(&held, &mut self.out);
        }
        if let Some((_id, name, sel)) = self.key.as_mut() {
            sel.close().map_err(|e| Failure::of(ErrorKind::Udf, name, e))?;
        }
        Ok(self.reducer.close()?)
    }

    /// Each key's state (its last result, or a built-in aggregation's running number).
    fn snapshot(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        let mut w = StateWriter::<R>::from_vec(std::mem::take(out));
        let written = self.rolling.snapshot(&mut w);
        *out = w.into_bytes();
        Ok(written?)
    }

    /// The keys this instance owns now, from every old instance.
    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        self.rolling.restore(from)
    }
}

impl<R: Record> UnaryInput<Routed<Keyed<R>>, R> for Reduce<R> {
    fn on_batch(
        &mut self,
        cx: &mut Cx<'_, R>,
        cap: &InputCapability<Time>,
        data: &mut Vec<Routed<Keyed<R>>>,
    ) -> Result<(), Failure> {
        open(data, &mut self.keyed)?;
        self.fold(cx, cap)
    }
}

impl<R: Record> UnaryInput<R, R> for Reduce<R> {
    fn on_batch(&mut self, cx: &mut Cx<'_, R>, cap: &InputCapability<Time>, data: &mut Vec<R>) -> Result<(), Failure> {
        let (id, name, sel) = self.key.as_mut().expect("key_reduce keys its input");
        key_batch(cx.env, (*id, name), &mut **sel, data, &mut self.keyed)?;
        self.fold(cx, cap)
    }
}
