use crate::time::Time;
use std::rc::Rc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::InputCapability;
use timely::dataflow::Stream;

use crate::error::ErrorKind;
use crate::error::{UdfError, UdfResult};
use crate::functions::{BatchShape, Transform, TransformFactory};
use crate::operators::driver::{self, Cx, Failure, OpInfo, OperatorLogic, UnaryInput};
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
    // Each step counts what it emits itself: the chain stands for several nodes.
    let info = OpInfo::udf(&op_name, None);
    driver::unary(stream, Pipeline, info, env.clone(), move |_cap| {
        let mut chain = Vec::with_capacity(steps.len());
        for (node, name, factory) in &steps {
            match env.instantiate(ErrorKind::Udf, name, parallelism, &**factory) {
                Some(f) => chain.push((*node, name.clone(), f)),
                None => {
                    // The steps made so far are user functions: released in the scope.
                    env.enter(|| chain.clear());
                    return None;
                }
            }
        }
        Some(Chain { chain, next: Vec::new() })
    })
}

struct Chain<R> {
    /// Each step's plan node, name and function.
    chain: Vec<(usize, String, Box<dyn Transform<R>>)>,
    /// The step's output, swapped with its input after each step.
    next: Vec<R>,
}

impl<R: Record> OperatorLogic<R> for Chain<R> {
    fn on_end(&mut self, _cx: &mut Cx<'_, R>) -> Result<(), Failure> {
        for (_node, name, step) in self.chain.iter_mut() {
            step.close().map_err(|e| Failure::of(ErrorKind::Udf, name, e))?;
        }
        Ok(())
    }
}

impl<R: Record> UnaryInput<R, R> for Chain<R> {
    fn on_batch(&mut self, cx: &mut Cx<'_, R>, cap: &InputCapability<Time>, data: &mut Vec<R>) -> Result<(), Failure> {
        let (env, next) = (cx.env, &mut self.next);
        for (node, name, step) in self.chain.iter_mut() {
            if let Some(shape) = step.batch_shape() {
                if env.control.aborted() {
                    return Ok(());
                }
                batch_step(env, &mut **step, shape, data, next).map_err(|e| Failure::of(ErrorKind::Udf, name, e))?;
                env.count(*node, next.len());
                std::mem::swap(data, next);
                continue;
            }
            next.reserve(data.len());
            for record in data.drain(..) {
                // A slow UDF must not delay a cancellation by a whole batch (the driver
                // drops the rest).
                if env.control.aborted() {
                    next.clear();
                    return Ok(());
                }
                // Outputs carry their input's timestamp (Flink's map/flat_map).
                let (ts, first) = (record.timestamp(), next.len());
                // Before the next call: a function may keep what it returned
                // and change it then (or return one object twice).
                let applied = step.apply(record, next).and_then(|()| env.own(&mut next[first..]));
                if ts != NO_TIME {
                    next[first..].iter_mut().for_each(|r| r.set_timestamp(ts));
                }
                if let Err(e) = applied {
                    next.clear();
                    return Err(Failure::of(ErrorKind::Udf, name, e));
                }
            }
            env.count(*node, next.len());
            std::mem::swap(data, next);
        }
        cx.give(cap, data);
        Ok(())
    }
}

/// One call of a batch step on the whole of `data` (emptied), its outputs in `next`
/// (empty on an error): counted and stamped as `shape` says, then made their
/// holder's own.
fn batch_step<R: Record>(
    env: &OpEnv,
    step: &mut dyn Transform<R>,
    shape: BatchShape,
    data: &mut Vec<R>,
    next: &mut Vec<R>,
) -> UdfResult<()> {
    if data.is_empty() {
        return Ok(());
    }
    let result = step.apply_batch(data, next).and_then(|()| stamp(shape, data, next));
    // The inputs go before the outputs are owned: a kept input is then not
    // reachable from two places, and needs no copy.
    data.clear();
    result.and_then(|()| env.own(next)).inspect_err(|_| next.clear())
}

/// Sets the timestamps of a batch step's outputs (`next`) from its inputs (`data`).
fn stamp<R: Record>(shape: BatchShape, data: &[R], next: &mut [R]) -> UdfResult<()> {
    match shape {
        BatchShape::OneToOne => {
            if next.len() != data.len() {
                return Err(UdfError::new(format!(
                    "the function returned {} results for a batch of {} records: a batch map returns one per record, in order",
                    next.len(),
                    data.len()
                ))
                .with_record(data[0].describe()));
            }
            for (out, input) in next.iter_mut().zip(data) {
                let ts = input.timestamp();
                if ts != NO_TIME {
                    out.set_timestamp(ts);
                }
            }
        }
        BatchShape::Subset => {}
        BatchShape::Any => {
            let ts = data.iter().map(Record::timestamp).filter(|&t| t != NO_TIME).max();
            if let Some(ts) = ts {
                next.iter_mut().for_each(|r| r.set_timestamp(ts));
            }
        }
    }
    Ok(())
}
