use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use crate::error::{ErrorKind, UdfResult};
use crate::functions::{Reducer, WindowApply, WindowInfo};
use crate::key::{Key, KeyMap};
use crate::exchange::Routed;
use crate::operators::keyed::open_batches;
use crate::operators::{Keyed, OpEnv};
use crate::plan::{WindowFunction, WindowSpec};
use crate::record::Record;
use crate::windows::{sliding_windows, CountWindowBuffer, TimeWindow};

/// What a window holds until it fires.
enum Contents<R> {
    /// Incremental reduce: the running value.
    Reduced(R),
    /// Window apply: every value, in arrival order.
    Values(Vec<R>),
}

enum Function<R> {
    Reduce(Box<dyn Reducer<R>>),
    Apply(Box<dyn WindowApply<R>>),
}

impl<R: Record> Function<R> {
    fn close(&mut self) -> UdfResult<()> {
        match self {
            Function::Reduce(r) => r.close(),
            Function::Apply(a) => a.close(),
        }
    }

    fn add(&mut self, contents: Option<Contents<R>>, value: R) -> UdfResult<Contents<R>> {
        Ok(match (self, contents) {
            (Function::Reduce(_), None) => Contents::Reduced(value),
            (Function::Reduce(r), Some(Contents::Reduced(acc))) => Contents::Reduced(r.reduce(&acc, &value)?),
            (_, Some(Contents::Values(mut vs))) => {
                vs.push(value);
                Contents::Values(vs)
            }
            (Function::Apply(_), _) => Contents::Values(vec![value]),
        })
    }

    fn fire(&mut self, key: &R, window: WindowInfo, contents: Contents<R>, out: &mut Vec<R>) -> UdfResult<()> {
        match (self, contents) {
            (_, Contents::Reduced(v)) => {
                out.push(v);
                Ok(())
            }
            (Function::Apply(f), Contents::Values(vs)) => f.apply(key, window, vs, out),
            (Function::Reduce(r), Contents::Values(vs)) => {
                let mut it = vs.into_iter();
                if let Some(first) = it.next() {
                    let mut acc = first;
                    for v in it {
                        acc = r.reduce(&acc, &v)?;
                    }
                    out.push(acc);
                }
                Ok(())
            }
        }
    }
}

/// Keyed windows in processing time or by count. Every pending window fires when the
/// input ends, so a bounded job's results are complete.
pub fn window<'s, R: Record, P: ParallelizationContract<u64, Vec<Routed<Keyed<R>>>>>(
    stream: Stream<'s, u64, Vec<Routed<Keyed<R>>>>,
    pact: P,
    node: usize,
    name: &str,
    spec: WindowSpec,
    function: &WindowFunction<R>,
    parallelism: Option<usize>,
    env: Rc<OpEnv>,
) -> Stream<'s, u64, Vec<R>> {
    let name = name.to_string();
    let (reduce_factory, apply_factory) = match function {
        WindowFunction::Reduce(f) => (Some(f.clone()), None),
        WindowFunction::Apply(f) => (None, Some(f.clone())),
    };
    let scope = stream.scope();
    stream.unary_frontier::<CapacityContainerBuilder<Vec<R>>, _, _, _>(pact, &name.clone(), move |_cap, info| {
        let activator = scope.activator_for(info.address.clone());
        let mut function = match (&reduce_factory, &apply_factory) {
            (Some(f), _) => env.instantiate(ErrorKind::Udf, &name, parallelism, &**f).map(Function::Reduce),
            (_, Some(f)) => env.instantiate(ErrorKind::Udf, &name, parallelism, &**f).map(Function::Apply),
            _ => None,
        };
        // Time windows, ordered by end so the earliest fires first: (end, key, start).
        let mut timed: BTreeMap<(i64, Key, i64), (R, Contents<R>)> = BTreeMap::new();
        let mut counted: KeyMap<(R, CountWindowBuffer<R>)> = KeyMap::default();
        let mut held: Option<Capability<u64>> = None;
        let mut function_done = false;
        let mut assigned = Vec::new();
        let mut keyed = Vec::new();
        let mut out = Vec::new();
        move |(input, frontier), output| {
            let Some(func) = function.as_mut().filter(|_| !env.control.aborted()) else {
                input.for_each(|_cap, data| data.clear());
                held = None;
                return;
            };
            let mut failed = None;
            env.enter(|| {
                let now = env.clock.now_ms();
                input.for_each(|cap, data| {
                    if failed.is_some() || !open_batches(&env, &name, data, &mut keyed) {
                        data.clear();
                        keyed.clear();
                        if failed.is_none() {
                            failed = Some(crate::error::UdfError::new("a batch from another process is corrupt"));
                        }
                        return;
                    }
                    if let Some(c) = cap.retain_least(0) {
                        if held.as_ref().is_none_or(|h| c.time() < h.time()) {
                            held = Some(c);
                        }
                    }
                    for (key, key_value, value) in keyed.drain(..) {
                        let result = match spec {
                            WindowSpec::ProcessingTime { size_ms, slide_ms } => {
                                sliding_windows(now, size_ms, slide_ms, 0, &mut assigned);
                                let mut r = Ok(());
                                for w in assigned.drain(..) {
                                    let slot = (w.end, key.clone(), w.start);
                                    let v = value.clone();
                                    let prev = timed.remove(&slot);
                                    let kv = prev.as_ref().map(|p| p.0.clone()).unwrap_or_else(|| key_value.clone());
                                    match func.add(prev.map(|p| p.1), v) {
                                        Ok(c) => {
                                            timed.insert(slot, (kv, c));
                                        }
                                        Err(e) => {
                                            r = Err(e);
                                            break;
                                        }
                                    }
                                }
                                r
                            }
                            WindowSpec::Count { size, slide } => {
                                let entry = counted
                                    .entry(key)
                                    .or_insert_with(|| (key_value, CountWindowBuffer::new(size, slide)));
                                match entry.1.push(value) {
                                    Some(contents) => fire_values(func, &entry.0, WindowInfo::Global, contents, &mut out),
                                    None => Ok(()),
                                }
                            }
                        };
                        if let Err(e) = result {
                            failed = Some(e);
                            break;
                        }
                    }
                });
                if failed.is_none() {
                    // Processing-time windows whose end has passed.
                    while let Some(entry) = timed.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        let ((end, _key, start), (kv, contents)) = entry.remove_entry();
                        let window = WindowInfo::Time(TimeWindow { start, end });
                        if let Err(e) = func.fire(&kv, window, contents, &mut out) {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                if failed.is_none() && frontier.is_empty() {
                    // End of input: everything pending fires, in a deterministic order.
                    for ((end, _key, start), (kv, contents)) in std::mem::take(&mut timed) {
                        if let Err(e) = func.fire(&kv, WindowInfo::Time(TimeWindow { start, end }), contents, &mut out) {
                            failed = Some(e);
                            break;
                        }
                    }
                    let mut keys: Vec<_> = std::mem::take(&mut counted).into_iter().collect();
                    keys.sort_by(|a, b| a.0.cmp(&b.0));
                    for (_key, (kv, mut buffer)) in keys {
                        if failed.is_some() {
                            break;
                        }
                        if let Some(contents) = buffer.flush() {
                            if let Err(e) = fire_values(func, &kv, WindowInfo::Global, contents, &mut out) {
                                failed = Some(e);
                            }
                        }
                    }
                }
                if failed.is_none() && frontier.is_empty() {
                    if let Err(e) = func.close() {
                        failed = Some(e);
                    }
                }
                if failed.is_none() && !out.is_empty() {
                    if let Some(h) = &held {
                        env.count(node, out.len());
                        output.session(h).give_container(&mut out);
                    }
                }
                out.clear();
                if frontier.is_empty() {
                    held = None;
                    function_done = true;
                } else if let (Some(h), Some(f)) = (held.as_mut(), frontier.frontier().first()) {
                    // Output may go at any later time: keep up with the input so
                    // this operator never holds the job's progress back.
                    if h.time() < f {
                        h.downgrade(f);
                    }
                }
                if let (false, Some(((end, _, _), _))) = (frontier.is_empty(), timed.first_key_value()) {
                    let wait = (*end - env.clock.now_ms()).max(1) as u64;
                    activator.activate_after(Duration::from_millis(wait));
                }
            });
            if function_done {
                env.enter(|| function = None);
            }
            if let Some(e) = failed {
                env.fail(ErrorKind::Udf, &name, e);
                function = None;
                held = None;
                env.enter(|| {
                    timed.clear();
                    counted.clear();
                });
            }
        }
    })
}

fn fire_values<R: Record>(
    func: &mut Function<R>,
    key_value: &R,
    window: WindowInfo,
    values: Vec<R>,
    out: &mut Vec<R>,
) -> UdfResult<()> {
    func.fire(key_value, window, Contents::Values(values), out)
}
