use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use crate::error::ErrorKind;
use crate::functions::{KeyFactory, ReduceFactory};
use crate::key::{Key, KeyMap};
use crate::operators::OpEnv;
use crate::record::Record;

/// A record with its key: the canonical encoding (routing, state) and the key value.
pub type Keyed<R> = (Key, R, R);

/// The exchange that sends each keyed record to the worker owning its key.
pub fn by_key<R: Record>() -> impl ParallelizationContract<u64, Vec<Keyed<R>>> {
    Exchange::new(|k: &Keyed<R>| k.0.hash())
}

/// Calls `$op` with the pact that brings each key to its owner: an exchange, or, on a
/// single worker, a plain pipeline that skips the per-record routing.
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

/// Computes each record's key. Consumers exchange the stream by key.
pub fn key_by<'s, R: Record>(
    stream: Stream<'s, u64, Vec<R>>,
    node: usize,
    name: &str,
    factory: &KeyFactory<R>,
    env: Rc<OpEnv>,
) -> Stream<'s, u64, Vec<Keyed<R>>> {
    let name = name.to_string();
    let factory = factory.clone();
    stream.unary_frontier::<CapacityContainerBuilder<Vec<Keyed<R>>>, _, _, _>(Pipeline, &name.clone(), move |_cap, _info| {
        let mut selector = env.instantiate(ErrorKind::Udf, &name, &*factory);
        let mut keyed = Vec::new();
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
                    keyed.reserve(data.len());
                    for record in data.drain(..) {
                        match sel.key(&record) {
                            Ok((key, key_value)) => keyed.push((key, key_value, record)),
                            Err(e) => {
                                env.fail(ErrorKind::Udf, &name, e);
                                broken = true;
                                break;
                            }
                        }
                    }
                    if broken {
                        data.clear();
                        keyed.clear();
                        return;
                    }
                    env.count(node, keyed.len());
                    output.session(&cap).give_container(&mut keyed);
                    keyed.clear();
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
    })
}

/// A keyed stream read by an operator that does not care about keys (Flink's
/// `key_by(...).map(...)`): partitioned by key, then plain values.
pub fn unkey<'s, R: Record, P: ParallelizationContract<u64, Vec<Keyed<R>>>>(
    stream: Stream<'s, u64, Vec<Keyed<R>>>,
    pact: P,
    name: &str,
) -> Stream<'s, u64, Vec<R>> {
    stream.unary::<CapacityContainerBuilder<Vec<R>>, _, _, _>(pact, &format!("values of {name}"), |_cap, _info| {
        let mut values = Vec::new();
        move |input, output| {
            input.for_each(|cap, data| {
                values.extend(data.drain(..).map(|(_k, _kv, v)| v));
                output.session(&cap).give_container(&mut values);
                values.clear();
            });
        }
    })
}

/// Rolling reduce: the first value of a key is emitted as it is; every later one
/// emits `reduce(previous, value)`, which becomes the key's state.
pub fn reduce<'s, R: Record, P: ParallelizationContract<u64, Vec<Keyed<R>>>>(
    stream: Stream<'s, u64, Vec<Keyed<R>>>,
    pact: P,
    node: usize,
    name: &str,
    factory: &ReduceFactory<R>,
    env: Rc<OpEnv>,
) -> Stream<'s, u64, Vec<R>> {
    let name = name.to_string();
    let factory = factory.clone();
    stream.unary_frontier::<CapacityContainerBuilder<Vec<R>>, _, _, _>(pact, &name.clone(), move |_cap, _info| {
        let mut reducer = env.instantiate(ErrorKind::Udf, &name, &*factory);
        let mut state: KeyMap<R> = KeyMap::default();
        let mut out = Vec::new();
        move |(input, frontier), output| {
            let Some(red) = reducer.as_mut().filter(|_| !env.control.aborted()) else {
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
                    out.reserve(data.len());
                    for (key, _key_value, value) in data.drain(..) {
                        // One lookup per record: update in place, insert only new keys.
                        match state.get_mut(&key) {
                            Some(acc) => match red.reduce(acc, &value) {
                                Ok(v) => {
                                    out.push(v.clone());
                                    *acc = v;
                                }
                                Err(e) => {
                                    env.fail(ErrorKind::Udf, &name, e);
                                    broken = true;
                                    break;
                                }
                            },
                            None => {
                                out.push(value.clone());
                                state.insert(key, value);
                            }
                        }
                    }
                    if broken {
                        data.clear();
                        out.clear();
                        return;
                    }
                    env.count(node, out.len());
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
                    state.clear();
                });
            }
        }
    })
}
