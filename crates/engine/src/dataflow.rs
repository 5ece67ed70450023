//! Turns a [`Plan`] into a timely dataflow on one worker.
//!
//! Chains of stateless steps are fused into one operator; keyed operators read their
//! input exchanged by key; a stream produced by a non-parallel source is spread
//! round-robin before a parallel consumer (Flink's rebalance).

use std::collections::HashMap;
use std::rc::Rc;

use timely::dataflow::operators::{Concatenate, ConnectLoop, Feedback};
use timely::dataflow::{Scope, Stream};

use crate::error::JobError;
use crate::exchange::Routed;
use crate::functions::TransformFactory;
use crate::operators::{self, Keyed, OpEnv};
use crate::plan::{NodeKind, Plan};
use crate::record::Record;

enum Built<'s, R: Record> {
    /// A materialised stream; `single` if only worker 0 produces it.
    Plain { stream: Stream<'s, u64, Vec<R>>, single: bool },
    Keyed(Stream<'s, u64, Vec<Routed<Keyed<R>>>>),
    /// Stateless steps waiting to be fused with their only consumer.
    Chain { base: Stream<'s, u64, Vec<R>>, steps: Vec<(usize, String, TransformFactory<R>)> },
    /// Sinks have no output.
    Nothing,
}

/// How many times each node's output is read (a loop's feedback edge counts).
fn consumer_counts<R>(plan: &Plan<R>) -> Vec<usize> {
    let mut counts = vec![0; plan.nodes.len()];
    for node in &plan.nodes {
        for &i in &node.inputs {
            counts[i] += 1;
        }
        if let NodeKind::Iterate { feedback: Some(f), .. } = node.kind {
            counts[f] += 1;
        }
    }
    counts
}

/// Builds the plan in `scope`. The plan must have passed [`Plan::validate`].
pub fn build<'s, R: Record>(scope: Scope<'s, u64>, plan: &Plan<R>, env: Rc<OpEnv>) -> Result<(), JobError> {
    let consumers = consumer_counts(plan);
    let peers = env.worker.peers;
    let mut built: Vec<Built<'s, R>> = Vec::with_capacity(plan.nodes.len());
    // Loops waiting for their feedback stream: feedback node -> handle.
    let mut loops = HashMap::new();

    // A plain stream for node `i`, as read by a parallel consumer (`spread`: rebalance
    // a single-worker stream first; a keyed consumer need not, its exchange spreads it
    // and keeps each key's records in order).
    let read = |built: &mut Vec<Built<'s, R>>, i: usize, spread: bool| -> Stream<'s, u64, Vec<R>> {
        if let Built::Chain { .. } = built[i] {
            let Built::Chain { base, steps } = std::mem::replace(&mut built[i], Built::Nothing) else { unreachable!() };
            built[i] = Built::Plain { stream: operators::transform_chain(base, steps, env.clone()), single: false };
        }
        match &built[i] {
            Built::Plain { stream, single } if spread && *single && peers > 1 => {
                operators::rebalance(stream.clone(), &plan.nodes[i].name, env.clone())
            }
            Built::Plain { stream, .. } => stream.clone(),
            Built::Keyed(stream) => {
                crate::with_key_pact!(peers, |pact| operators::unkey(stream.clone(), pact, &plan.nodes[i].name, env.clone()))
            }
            Built::Chain { .. } | Built::Nothing => unreachable!("validated plan"),
        }
    };
    let plain = |built: &mut Vec<Built<'s, R>>, i: usize| read(built, i, true);

    for (id, node) in plan.nodes.iter().enumerate() {
        let name = node.name.as_str();
        let result = match &node.kind {
            NodeKind::Source { factory, parallel } => Built::Plain {
                stream: operators::source(scope, id, name, factory, *parallel, env.clone()),
                single: !*parallel,
            },
            NodeKind::Transform(factory) => {
                let input = node.inputs[0];
                let step = (id, node.name.clone(), factory.clone());
                // Fuse into the input's chain when we are its only reader.
                let (base, mut steps) = match std::mem::replace(&mut built[input], Built::Nothing) {
                    Built::Chain { base, steps } if consumers[input] == 1 => (base, steps),
                    other => {
                        built[input] = other;
                        (plain(&mut built, input), Vec::new())
                    }
                };
                steps.push(step);
                Built::Chain { base, steps }
            }
            NodeKind::KeyBy(factory) => {
                let input = read(&mut built, node.inputs[0], false);
                Built::Keyed(operators::key_by(input, id, name, factory, env.clone()))
            }
            NodeKind::Reduce(factory) => {
                let Built::Keyed(input) = &built[node.inputs[0]] else { unreachable!("validated plan") };
                let stream = crate::with_key_pact!(peers, |pact| {
                    operators::reduce(input.clone(), pact, id, name, factory, env.clone())
                });
                Built::Plain { stream, single: false }
            }
            NodeKind::Window { spec, function } => {
                let Built::Keyed(input) = &built[node.inputs[0]] else { unreachable!("validated plan") };
                let stream = crate::with_key_pact!(peers, |pact| {
                    operators::window(input.clone(), pact, id, name, *spec, function, env.clone())
                });
                Built::Plain { stream, single: false }
            }
            NodeKind::Union => {
                let inputs: Vec<_> = node.inputs.iter().map(|&i| plain(&mut built, i)).collect();
                Built::Plain { stream: scope.concatenate(inputs), single: false }
            }
            NodeKind::Iterate { feedback, max_wait } => {
                let input = plain(&mut built, node.inputs[0]);
                let (handle, back) = scope.feedback::<Vec<R>>(1);
                if let Some(f) = feedback {
                    loops.insert(*f, handle);
                }
                Built::Plain { stream: operators::iterate(input, back, id, name, *max_wait, env.clone()), single: false }
            }
            NodeKind::Sink(factory) => {
                let input = plain(&mut built, node.inputs[0]);
                operators::sink(input, id, name, factory, env.clone());
                Built::Nothing
            }
        };
        built.push(result);
        if let Some(handle) = loops.remove(&id) {
            plain(&mut built, id).connect_loop(handle);
        }
    }
    // Chains nobody reads still run (their UDFs may have side effects).
    for i in 0..built.len() {
        if matches!(built[i], Built::Chain { .. }) {
            plain(&mut built, i);
        }
    }
    if let Some(f) = loops.keys().next() {
        return Err(JobError::plan(format!("{}: feedback stream was never built", plan.nodes[*f].name)));
    }
    Ok(())
}
