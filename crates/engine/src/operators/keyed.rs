use crate::time::Time;
use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use crate::error::{ErrorKind, UdfError, UdfResult};
use crate::exchange::{decode_keyed, encode_keyed, partition, unpack, Routed};
use crate::functions::{KeyFactory, KeySelector, ReduceFactory, Reducer};
use crate::key::Key;
use crate::operators::OpEnv;
use crate::record::Record;
use crate::rolling::RollingState;
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
    let name = name.to_string();
    let factory = factory.clone();
    stream.unary_frontier::<CapacityContainerBuilder<Vec<Routed<Keyed<R>>>>, _, _, _>(
        Pipeline,
        &name.clone(),
        move |_cap, _info| {
            let mut selector = env.instantiate(ErrorKind::Udf, &name, None, &*factory);
            let mut keyed = Vec::new();
            let mut routed = Vec::new();
            move |(input, frontier), output| {
                let Some(sel) = selector.as_mut().filter(|_| !env.control.aborted()) else {
                    input.for_each(|_cap, data| data.clear());
                    return;
                };
                let mut broken = false;
                env.enter(|| {
                    input.for_each(|cap, data| {
                        if broken {
                            data.clear();
                            return;
                        }
                        if !key_batch(&env, (node, &name), &mut **sel, data, &mut keyed) {
                            broken = true;
                            return;
                        }
                        let peers = env.worker.peers;
                        let sent = partition(
                            &mut keyed,
                            peers,
                            env.locality,
                            |k: &Keyed<R>| (k.0.hash() % route_to.clamp(1, peers) as u64) as usize,
                            encode_keyed::<R>,
                            &mut routed,
                        );
                        if let Err(e) = sent {
                            env.fail(ErrorKind::Udf, &name, UdfError::new(e));
                            broken = true;
                            keyed.clear();
                            routed.clear();
                            return;
                        }
                        output.session(&cap).give_container(&mut routed);
                        routed.clear();
                    });
                    if !broken && frontier.is_empty() {
                        if let Err(e) = sel.close() {
                            env.fail(ErrorKind::Udf, &name, e);
                        }
                        broken = true;
                    }
                });
                if broken {
                    env.enter(|| selector = None);
                }
            }
        },
    )
}

/// Keys `data` (emptied) into `keyed` and counts it for the key_by node `(id, name)`;
/// false, with the job failed in that node's name and both emptied, if the selector
/// raised.
fn key_batch<R: Record>(
    env: &OpEnv,
    (node, name): (usize, &str),
    sel: &mut dyn KeySelector<R>,
    data: &mut Vec<R>,
    keyed: &mut Vec<Keyed<R>>,
) -> bool {
    keyed.reserve(data.len());
    if let Err(e) = sel.key_all(data, keyed) {
        env.fail(ErrorKind::Udf, name, e);
        data.clear();
        keyed.clear();
        return false;
    }
    env.count(node, keyed.len());
    true
}

/// Opens the batches a keyed operator received; a batch that cannot be decoded fails
/// the job in `operator`'s name.
pub(crate) fn open_batches<R: Record>(
    env: &OpEnv,
    operator: &str,
    batches: &mut Vec<Routed<Keyed<R>>>,
    out: &mut Vec<Keyed<R>>,
) -> bool {
    for (_dest, batch) in batches.drain(..) {
        if let Err(e) = unpack(batch, decode_keyed::<R>, out) {
            env.fail(ErrorKind::Udf, operator, e.into());
            out.clear();
            return false;
        }
    }
    true
}

/// A keyed stream read by an operator that does not care about keys (Flink's
/// `key_by(...).map(...)`): partitioned by key, then plain values.
pub fn unkey<'s, R: Record, P: ParallelizationContract<Time, Vec<Routed<Keyed<R>>>>>(
    stream: Stream<'s, Time, Vec<Routed<Keyed<R>>>>,
    pact: P,
    name: &str,
    env: Rc<OpEnv>,
) -> Stream<'s, Time, Vec<R>> {
    let name = format!("values of {name}");
    stream.unary::<CapacityContainerBuilder<Vec<R>>, _, _, _>(pact, &name.clone(), move |_cap, _info| {
        let mut keyed = Vec::new();
        let mut values = Vec::new();
        move |input, output| {
            env.enter(|| {
                input.for_each(|cap, data| {
                    if open_batches(&env, &name, data, &mut keyed) {
                        values.extend(keyed.drain(..).map(|(_k, _kv, v)| v));
                        output.session(&cap).give_container(&mut values);
                        values.clear();
                    }
                });
            });
        }
    })
}

/// How many records ahead a keyed operator asks for its state's slot: far enough for
/// the fetch to arrive, near enough to stay in cache (8 and 32 were slower on the word
/// count).
pub(crate) const PREFETCH_AHEAD: usize = 16;

/// A rolling reduce's keyed state and its loop over a batch, shared by [`reduce`] and
/// [`key_reduce`].
struct RollingReduce<R: Record> {
    state: KeyedState<RollingState<R>>,
    /// Whether any key's state is a record (a running number needs no record fetched).
    holds_records: bool,
}

impl<R: Record> RollingReduce<R> {
    fn new() -> Self {
        RollingReduce { state: KeyedState::new(), holds_records: false }
    }

    /// [`RollingReduce::fold`] for the reduce node `(id, name)`, counting what it emits;
    /// false, with the job failed in the node's name and both vectors emptied, if the
    /// reducer raised.
    fn fold_batch(
        &mut self,
        env: &OpEnv,
        (node, name): (usize, &str),
        red: &mut dyn Reducer<R>,
        keyed: &mut Vec<Keyed<R>>,
        out: &mut Vec<R>,
    ) -> bool {
        if let Err(e) = self.fold(env, red, keyed, out) {
            env.fail(ErrorKind::Udf, name, e);
            keyed.clear();
            out.clear();
            return false;
        }
        env.count(node, out.len());
        true
    }

    /// Folds `keyed` (emptied) into the state, appending what to emit to `out`: a key's
    /// first record as it is, then each `reduce(previous, value)` with the value's
    /// timestamp (as Flink).
    fn fold(
        &mut self,
        env: &OpEnv,
        red: &mut dyn Reducer<R>,
        keyed: &mut Vec<Keyed<R>>,
        out: &mut Vec<R>,
    ) -> UdfResult<()> {
        out.reserve(keyed.len());
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
            // The state holds what is emitted, and the next update may change it.
            env.own_one(&mut emit)?;
            out.push(emit);
        }
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
    let name = name.to_string();
    let factory = factory.clone();
    stream.unary_frontier::<CapacityContainerBuilder<Vec<R>>, _, _, _>(pact, &name.clone(), move |_cap, _info| {
        let mut reducer = env.instantiate(ErrorKind::Udf, &name, parallelism, &*factory);
        let mut rolling = RollingReduce::new();
        let mut keyed = Vec::new();
        let mut out = Vec::new();
        move |(input, frontier), output| {
            let Some(red) = reducer.as_mut().filter(|_| !env.control.aborted()) else {
                input.for_each(|_cap, data| data.clear());
                return;
            };
            let mut broken = false;
            env.enter(|| {
                input.for_each(|cap, data| {
                    if broken || !open_batches(&env, &name, data, &mut keyed) {
                        data.clear();
                        broken = true;
                        return;
                    }
                    if !rolling.fold_batch(&env, (node, &name), &mut **red, &mut keyed, &mut out) {
                        broken = true;
                        return;
                    }
                    output.session(&cap).give_container(&mut out);
                    out.clear();
                });
                if !broken && frontier.is_empty() {
                    if let Err(e) = red.close() {
                        env.fail(ErrorKind::Udf, &name, e);
                    }
                    broken = true;
                }
            });
            if broken {
                env.enter(|| {
                    reducer = None;
                    rolling = RollingReduce::new();
                });
            }
        }
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
    let name = name.to_string();
    let factory = factory.clone();
    stream.unary_frontier::<CapacityContainerBuilder<Vec<R>>, _, _, _>(Pipeline, &name.clone(), move |_cap, _info| {
        let mut selector = env.instantiate(ErrorKind::Udf, &key_name, None, &*key_factory);
        let mut reducer = env.instantiate(ErrorKind::Udf, &name, parallelism, &*factory);
        let mut rolling = RollingReduce::new();
        let mut keyed = Vec::new();
        let mut out = Vec::new();
        move |(input, frontier), output| {
            let (Some(sel), Some(red)) = (selector.as_mut(), reducer.as_mut()) else {
                input.for_each(|_cap, data| data.clear());
                return;
            };
            if env.control.aborted() {
                input.for_each(|_cap, data| data.clear());
                return;
            }
            let mut broken = false;
            env.enter(|| {
                input.for_each(|cap, data| {
                    if broken {
                        data.clear();
                        return;
                    }
                    if !key_batch(&env, (key_id, &key_name), &mut **sel, data, &mut keyed) {
                        broken = true;
                        return;
                    }
                    if !rolling.fold_batch(&env, (node, &name), &mut **red, &mut keyed, &mut out) {
                        broken = true;
                        return;
                    }
                    output.session(&cap).give_container(&mut out);
                    out.clear();
                });
                if !broken && frontier.is_empty() {
                    if let Err(e) = sel.close() {
                        env.fail(ErrorKind::Udf, &key_name, e);
                    } else if let Err(e) = red.close() {
                        env.fail(ErrorKind::Udf, &name, e);
                    }
                    broken = true;
                }
            });
            if broken {
                env.enter(|| {
                    selector = None;
                    reducer = None;
                    rolling = RollingReduce::new();
                });
            }
        }
    })
}
