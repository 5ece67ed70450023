use crate::time::Time;
use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use crate::error::ErrorKind;
use crate::functions::{Transform, TransformFactory};
use crate::operators::OpEnv;
use crate::record::Record;
use crate::time::NO_TIME;

/// A fused chain of stateless steps (map → filter → flat_map ...): one operator,
/// one scope entry per batch, each step applied to the whole batch in turn.
pub fn transform_chain<'s, R: Record>(
    stream: Stream<'s, Time, Vec<R>>,
    steps: Vec<(usize, String, TransformFactory<R>)>,
    parallelism: Option<usize>,
    env: Rc<OpEnv>,
) -> Stream<'s, Time, Vec<R>> {
    let op_name = steps.iter().map(|s| s.1.as_str()).collect::<Vec<_>>().join(" -> ");
    stream.unary_frontier::<CapacityContainerBuilder<Vec<R>>, _, _, _>(Pipeline, &op_name, move |_cap, _info| {
        let mut chain: Vec<(usize, String, Box<dyn Transform<R>>)> = Vec::new();
        for (node, name, factory) in &steps {
            match env.instantiate(ErrorKind::Udf, name, parallelism, &**factory) {
                Some(f) => chain.push((*node, name.clone(), f)),
                None => break,
            }
        }
        let mut broken = chain.len() != steps.len();
        let mut closed = false;
        let mut next = Vec::new();
        move |(input, frontier), output| {
            if broken || env.control.aborted() {
                input.for_each(|_cap, data| data.clear());
                return;
            }
            env.enter(|| {
                input.for_each(|cap, data| {
                    if broken {
                        data.clear();
                        return;
                    }
                    for (node, name, step) in chain.iter_mut() {
                        next.reserve(data.len());
                        for record in data.drain(..) {
                            // A slow UDF must not delay a cancellation by a whole batch.
                            if env.control.aborted() {
                                broken = true;
                                break;
                            }
                            // Outputs carry their input's timestamp (Flink's map/flat_map).
                            let (ts, first) = (record.timestamp(), next.len());
                            // Before the next call: a function may keep what it returned
                            // and change it then (or return one object twice).
                            let applied = step.apply(record, &mut next).and_then(|()| env.own(&mut next[first..]));
                            if ts != NO_TIME {
                                next[first..].iter_mut().for_each(|r| r.set_timestamp(ts));
                            }
                            if let Err(e) = applied {
                                env.fail(ErrorKind::Udf, name, e);
                                broken = true;
                                break;
                            }
                        }
                        if broken {
                            data.clear();
                            next.clear();
                            return;
                        }
                        env.count(*node, next.len());
                        std::mem::swap(data, &mut next);
                    }
                    output.session(&cap).give_container(data);
                });
                if frontier.is_empty() && !closed && !broken {
                    closed = true;
                    for (_node, name, step) in chain.iter_mut() {
                        if let Err(e) = step.close() {
                            env.fail(ErrorKind::Udf, name, e);
                            break;
                        }
                    }
                    chain.clear();
                }
            });
        }
    })
}
