//! Turns a [`Plan`] into a timely dataflow on one worker.
//!
//! Chains of stateless steps are fused into one operator; keyed operators read their
//! input exchanged by key; a stream produced by a non-parallel source is spread
//! round-robin before a parallel consumer (Flink's rebalance).

use crate::time::Time;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Concatenate, ConnectLoop, Feedback};
use timely::dataflow::{Scope, Stream};

use crate::error::JobError;
use crate::exchange::Routed;
use crate::functions::TransformFactory;
use crate::operators::{self, Keyed, OpEnv};
use crate::plan::{NodeKind, Partitioning, Plan};
use crate::record::Record;

enum Built<'s, R: Record> {
    /// A materialised stream; `single` if only worker 0 produces it, `on`: the workers
    /// that produce it (`0..p`; None: all).
    Plain {
        stream: Stream<'s, Time, Vec<R>>,
        single: bool,
        on: Option<usize>,
    },
    Keyed(Stream<'s, Time, Vec<Routed<Keyed<R>>>>),
    /// A key_by on one worker whose only reader is a reduce: keyed inside the reduce
    /// (`operators::key_reduce`), as there is nothing to route.
    KeyPending {
        input: Stream<'s, Time, Vec<R>>,
        factory: crate::functions::KeyFactory<R>,
    },
    /// Stateless steps waiting to be fused with their only consumer.
    Chain {
        base: Stream<'s, Time, Vec<R>>,
        steps: Vec<(usize, String, TransformFactory<R>)>,
        parallelism: Option<usize>,
    },
    /// A partition node's input, spread for each reader as `how` says, over that
    /// reader's workers (Flink's partitioners are properties of an edge). `workers`:
    /// how many produce `stream` (forward must keep that number).
    Partitioned {
        stream: Stream<'s, Time, Vec<R>>,
        how: crate::plan::Partitioning<R>,
        workers: usize,
    },
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

/// Which nodes' output several operators read: with object reuse off, each of them
/// then reads through an operator giving it records of its own
/// ([`operators::own_copy`]). A window's late output reads another stream.
fn read_by_several<R>(plan: &Plan<R>, consumers: &[usize]) -> Vec<bool> {
    let mut readers = consumers.to_vec();
    for node in &plan.nodes {
        if let NodeKind::LateOutput | NodeKind::ProcessSideOutput(_) = node.kind {
            readers[node.inputs[0]] -= 1;
        }
    }
    readers.into_iter().map(|n| n > 1).collect()
}

/// For each KeyBy node, over how many workers its keys are spread: the parallelism of
/// the keyed operators reading it (they must agree).
fn key_routing<R>(plan: &Plan<R>) -> Result<Vec<Option<usize>>, JobError> {
    let mut route = vec![None; plan.nodes.len()];
    for node in &plan.nodes {
        let keyed_inputs = match &node.kind {
            NodeKind::Reduce(_) | NodeKind::Window { .. } => &node.inputs[..1],
            NodeKind::Process(_) if keyed_connect(plan, node) => &node.inputs[..],
            NodeKind::Process(_) if matches!(plan.nodes[node.inputs[0]].kind, NodeKind::KeyBy(_)) => &node.inputs[..1],
            NodeKind::CoTransform(_) if keyed_connect(plan, node) => &node.inputs[..],
            _ => &[],
        };
        let Some(p) = node.parallelism else { continue };
        for &k in keyed_inputs {
            match route[k] {
                Some(q) if q != p => {
                    return Err(JobError::plan(format!(
                        "{}: operators reading the same key_by() must have the same parallelism ({q} and {p})",
                        plan.nodes[k].name
                    )))
                }
                _ => route[k] = Some(p),
            }
        }
    }
    // Both sides of a keyed connect must spread keys alike, or a key's records would
    // meet on different workers.
    for node in plan.nodes.iter().filter(|n| matches!(n.kind, NodeKind::CoTransform(_) | NodeKind::Process(_))) {
        if keyed_connect(plan, node) && route[node.inputs[0]] != route[node.inputs[1]] {
            return Err(JobError::plan(format!(
                "{}: both key_by() of a connected stream must be read with the same parallelism",
                node.name
            )));
        }
    }
    Ok(route)
}

/// Whether a connect node (or a process node) reads two keyed streams (`connect(...).key_by(k1, k2)`).
fn keyed_connect<R>(plan: &Plan<R>, node: &crate::plan::Node<R>) -> bool {
    node.inputs.len() == 2 && node.inputs.iter().all(|&i| matches!(plan.nodes[i].kind, NodeKind::KeyBy(_)))
}

/// Builds the plan in `scope`. The plan must have passed [`Plan::validate`].
pub fn build<'s, R: Record>(scope: Scope<'s, Time>, plan: &Plan<R>, env: Rc<OpEnv>) -> Result<(), JobError> {
    let consumers = consumer_counts(plan);
    let shared = if env.object_reuse { vec![false; plan.nodes.len()] } else { read_by_several(plan, &consumers) };
    let route_to = key_routing(plan)?;
    let peers = env.worker.peers;
    let mut built: Vec<Built<'s, R>> = Vec::with_capacity(plan.nodes.len());
    // Loops waiting for their feedback stream: feedback node -> handle.
    let mut loops = HashMap::new();
    // The late records of each window node, for its `LateOutput` readers.
    let mut late_outputs = HashMap::new();
    // The side outputs of each process node, for its `ProcessSideOutput` readers.
    let mut side_outputs = HashMap::new();
    // The source whose partition on each worker feeds a node without an exchange.
    let mut pipeline_source: Vec<Option<usize>> = vec![None; plan.nodes.len()];
    // A reader that forward() cannot serve (the first one found); the job does not start.
    let forward_error: RefCell<Option<JobError>> = RefCell::new(None);

    // A plain stream for node `i`, as read by a consumer running on `consumer` workers
    // (None: all). `spread`: rebalance a single-worker stream first; a keyed consumer
    // need not, its exchange spreads it and keeps each key's records in order.
    let read = |built: &mut Vec<Built<'s, R>>, i: usize, consumer: Option<usize>, spread: bool| {
        if let Built::Chain { .. } = built[i] {
            let Built::Chain { base, steps, parallelism } = std::mem::replace(&mut built[i], Built::Nothing) else {
                unreachable!()
            };
            let stream = operators::transform_chain(base, steps, parallelism, env.clone());
            built[i] = Built::Plain { stream, single: parallelism == Some(1), on: parallelism };
        }
        let targets = consumer.map_or(peers, |p| p.min(peers));
        let name = &plan.nodes[i].name;
        match &built[i] {
            Built::Plain { stream, single, .. } => {
                let stream =
                    if shared[i] { operators::own_copy(stream.clone(), name, env.clone()) } else { stream.clone() };
                if targets < peers || (spread && *single && peers > 1) {
                    operators::rebalance(stream, name, targets, env.clone())
                } else {
                    stream
                }
            }
            Built::Keyed(stream) => {
                let stream = if shared[i] {
                    operators::own_keyed_copy(stream.clone(), name, env.clone())
                } else {
                    stream.clone()
                };
                let values = crate::with_key_pact!(peers, |pact| operators::unkey(stream, pact, name, env.clone()));
                if targets < peers {
                    operators::rebalance(values, name, targets, env.clone())
                } else {
                    values
                }
            }
            Built::Partitioned { stream, how, workers } => {
                let stream =
                    if shared[i] { operators::own_copy(stream.clone(), name, env.clone()) } else { stream.clone() };
                match how {
                    Partitioning::Forward => {
                        // A reader that would spread its input must run where it is.
                        if spread && targets != *workers && forward_error.borrow().is_none() {
                            *forward_error.borrow_mut() = Some(JobError::plan(format!(
                                "{name}: forward() keeps each record on its worker, so the operator reading it \
                                 must run on as many workers as its input ({workers}), not {targets}; \
                                 use rebalance(), rescale(), shuffle() or broadcast() to change the parallelism"
                            )));
                        }
                        stream
                    }
                    // One worker: nothing to spread (a custom partitioner still checks its results).
                    how if peers == 1 && !matches!(how, Partitioning::Custom(_)) => stream,
                    how => operators::spread(stream, how, name, targets, env.clone()),
                }
            }
            Built::KeyPending { .. } => unreachable!("a pending key_by has one reader, a reduce"),
            Built::Chain { .. } | Built::Nothing => unreachable!("validated plan"),
        }
    };
    let plain = |built: &mut Vec<Built<'s, R>>, i: usize, consumer: Option<usize>| read(built, i, consumer, true);
    // The stream a partition node `i` spreads, as it is before spreading (and how many
    // workers produce it), for a reader that partitions it anew; None if `i` is no
    // partition node.
    let unpartitioned = |built: &Vec<Built<'s, R>>, i: usize| match &built[i] {
        Built::Partitioned { stream, workers, .. } => {
            let stream = if shared[i] {
                operators::own_copy(stream.clone(), &plan.nodes[i].name, env.clone())
            } else {
                stream.clone()
            };
            Some((stream, *workers))
        }
        _ => None,
    };
    // A keyed stream as a keyed operator reads it.
    let keyed_input = |stream: &Stream<'s, Time, Vec<Routed<Keyed<R>>>>, i: usize| {
        if shared[i] {
            operators::own_keyed_copy(stream.clone(), &plan.nodes[i].name, env.clone())
        } else {
            stream.clone()
        }
    };

    for (id, node) in plan.nodes.iter().enumerate() {
        let name = node.name.as_str();
        pipeline_source[id] = match &node.kind {
            NodeKind::Source { parallel: true, .. } => Some(id),
            // Same workers, and no rebalance before it (its input is parallel).
            NodeKind::Transform(_) => node.inputs.first().and_then(|&i| {
                let same = plan.nodes[i].parallelism == node.parallelism;
                let parallel_input = matches!(
                    plan.nodes[i].kind,
                    NodeKind::Source { parallel: true, .. }
                        | NodeKind::Transform(_)
                        | NodeKind::AssignTimestamps { .. }
                );
                pipeline_source[i].filter(|_| same && parallel_input)
            }),
            NodeKind::AssignTimestamps { .. } => node.inputs.first().and_then(|&i| pipeline_source[i]),
            _ => None,
        };
        let result = match &node.kind {
            NodeKind::Source { factory, parallel } => Built::Plain {
                stream: operators::source(scope, id, name, factory, *parallel, node.parallelism, env.clone()),
                single: !*parallel || node.parallelism == Some(1),
                on: if *parallel { node.parallelism } else { Some(1) },
            },
            NodeKind::Transform(factory) => {
                let input = node.inputs[0];
                let step = (id, node.name.clone(), factory.clone());
                // Fuse into the input's chain when we are its only reader and run on
                // the same workers.
                let (base, mut steps) = match std::mem::replace(&mut built[input], Built::Nothing) {
                    Built::Chain { base, steps, parallelism }
                        if consumers[input] == 1 && parallelism == node.parallelism =>
                    {
                        (base, steps)
                    }
                    other => {
                        built[input] = other;
                        (plain(&mut built, input, node.parallelism), Vec::new())
                    }
                };
                steps.push(step);
                Built::Chain { base, steps, parallelism: node.parallelism }
            }
            NodeKind::KeyBy(factory) => {
                // Its exchange replaces a partitioning right before it (in Flink the
                // last partitioner of an edge decides).
                let input = match unpartitioned(&built, node.inputs[0]) {
                    Some((stream, _)) => stream,
                    None => read(&mut built, node.inputs[0], None, false),
                };
                let only_a_reduce_reads = consumers[id] == 1
                    && plan.nodes.iter().any(|n| n.inputs == [id] && matches!(n.kind, NodeKind::Reduce(_)));
                if peers == 1 && only_a_reduce_reads {
                    Built::KeyPending { input, factory: factory.clone() }
                } else {
                    let route_to = route_to[id].unwrap_or(peers);
                    Built::Keyed(operators::key_by(input, id, name, factory, route_to, env.clone()))
                }
            }
            NodeKind::Reduce(factory) => {
                let k = node.inputs[0];
                let stream = match &built[k] {
                    Built::KeyPending { input, factory: key_factory } => {
                        let key = operators::KeyNode { id: k, name: &plan.nodes[k].name, factory: key_factory };
                        operators::key_reduce(input.clone(), key, id, name, factory, node.parallelism, env.clone())
                    }
                    Built::Keyed(input) => {
                        let input = keyed_input(input, k);
                        crate::with_key_pact!(peers, |pact| {
                            operators::reduce(input, pact, id, name, factory, node.parallelism, env.clone())
                        })
                    }
                    _ => unreachable!("validated plan"),
                };
                Built::Plain { stream, single: false, on: node.parallelism }
            }
            NodeKind::Window { spec, function } => {
                let Built::Keyed(input) = &built[node.inputs[0]] else { unreachable!("validated plan") };
                let input = keyed_input(input, node.inputs[0]);
                let (stream, late) = crate::with_key_pact!(peers, |pact| {
                    operators::window(input, pact, id, name, spec, function, node.parallelism, env.clone())
                });
                late_outputs.insert(id, late);
                Built::Plain { stream, single: node.parallelism == Some(1), on: node.parallelism }
            }
            NodeKind::Process(factory) => {
                let input = node.inputs[0];
                let sides = plan.side_outputs(id);
                let streams = match (&built[input], node.inputs.get(1).map(|&b| &built[b])) {
                    // Connected streams: two keyed ones, or a keyed or plain one and a
                    // broadcast one (any plain stream as far as the engine is concerned).
                    (Built::Keyed(first), Some(Built::Keyed(second))) => {
                        let b = node.inputs[1];
                        let (first, second) = (keyed_input(first, input), keyed_input(second, b));
                        let (p, env) = (node.parallelism, env.clone());
                        if peers == 1 {
                            let pacts = (Pipeline, Pipeline);
                            operators::process_connected(first, second, pacts, true, id, name, factory, p, sides, env)
                        } else {
                            let pacts = (operators::by_key(), operators::by_key());
                            operators::process_connected(first, second, pacts, true, id, name, factory, p, sides, env)
                        }
                    }
                    (Built::Keyed(first), Some(_)) => {
                        let first = keyed_input(first, input);
                        let second = plain(&mut built, node.inputs[1], node.parallelism);
                        let (p, env) = (node.parallelism, env.clone());
                        if peers == 1 {
                            let pacts = (Pipeline, Pipeline);
                            operators::process_connected(first, second, pacts, true, id, name, factory, p, sides, env)
                        } else {
                            let pacts = (operators::by_key(), Pipeline);
                            operators::process_connected(first, second, pacts, true, id, name, factory, p, sides, env)
                        }
                    }
                    (_, Some(_)) => {
                        let first = plain(&mut built, input, node.parallelism);
                        let second = plain(&mut built, node.inputs[1], node.parallelism);
                        let (p, env) = (node.parallelism, env.clone());
                        operators::process_connected(
                            first,
                            second,
                            (Pipeline, Pipeline),
                            false,
                            id,
                            name,
                            factory,
                            p,
                            sides,
                            env,
                        )
                    }
                    (Built::Keyed(stream), _) => {
                        let stream = keyed_input(stream, input);
                        crate::with_key_pact!(peers, |pact| {
                            operators::process_keyed(
                                stream,
                                pact,
                                id,
                                name,
                                factory,
                                node.parallelism,
                                sides,
                                env.clone(),
                            )
                        })
                    }
                    _ => {
                        let stream = plain(&mut built, input, node.parallelism);
                        operators::process_plain(stream, id, name, factory, node.parallelism, sides, env.clone())
                    }
                };
                let mut streams = streams.into_iter();
                let stream = streams.next().expect("a process operator's main output");
                side_outputs.insert(id, streams.collect::<Vec<_>>());
                Built::Plain { stream, single: node.parallelism == Some(1), on: node.parallelism }
            }
            NodeKind::ProcessSideOutput(i) => {
                let process = node.inputs[0];
                let streams = side_outputs.get(&process).expect("validated plan: a process node's side output");
                Built::Plain {
                    stream: streams[*i - 1].clone(),
                    single: plan.nodes[process].parallelism == Some(1),
                    on: plan.nodes[process].parallelism,
                }
            }
            NodeKind::LateOutput => {
                let window = node.inputs[0];
                let stream = late_outputs.get(&window).cloned().expect("validated plan: a window node's late output");
                Built::Plain {
                    stream,
                    single: plan.nodes[window].parallelism == Some(1),
                    on: plan.nodes[window].parallelism,
                }
            }
            NodeKind::AssignTimestamps { assigner, watermarks, idleness_ms } => {
                // Runs where its input runs: no rebalance, so watermarks follow the
                // input's partitions.
                let input = read(&mut built, node.inputs[0], None, false);
                let (single, on) = match &built[node.inputs[0]] {
                    Built::Plain { single, on, .. } => (*single, *on),
                    _ => (false, None),
                };
                let active = on.is_none_or(|p| env.worker.index < p);
                let stream = operators::assign_timestamps(
                    input,
                    id,
                    name,
                    assigner.as_ref(),
                    *watermarks,
                    *idleness_ms,
                    active,
                    pipeline_source[id],
                    env.clone(),
                );
                Built::Plain { stream, single, on }
            }
            NodeKind::Union => {
                let inputs: Vec<_> = node.inputs.iter().map(|&i| plain(&mut built, i, None)).collect();
                Built::Plain { stream: scope.concatenate(inputs), single: false, on: None }
            }
            NodeKind::Iterate { feedback, max_wait } => {
                let input = plain(&mut built, node.inputs[0], None);
                let (handle, back) = scope.feedback::<Vec<R>>(crate::time::TimeSummary { epochs: 1 });
                if let Some(f) = feedback {
                    loops.insert(*f, handle);
                }
                Built::Plain {
                    stream: operators::iterate(input, back, id, name, *max_wait, env.clone()),
                    single: false,
                    on: None,
                }
            }
            NodeKind::Partition(how) => {
                let input = node.inputs[0];
                // Partitioning a partitioned stream: the last one decides, as in Flink.
                let (stream, workers) = match unpartitioned(&built, input) {
                    Some(before) => before,
                    None => {
                        let stream = read(&mut built, input, None, false);
                        let workers = match &built[input] {
                            Built::Plain { single: true, .. } => 1,
                            Built::Plain { on, .. } => on.map_or(peers, |p| p.min(peers)),
                            _ => peers,
                        };
                        (stream, workers)
                    }
                };
                Built::Partitioned { stream, how: how.clone(), workers }
            }
            NodeKind::CoTransform(factory) => {
                let (a, b) = (node.inputs[0], node.inputs[1]);
                let (p, env) = (node.parallelism, env.clone());
                let stream = match (&built[a], &built[b]) {
                    (Built::Keyed(first), Built::Keyed(second)) => {
                        let (first, second) = (keyed_input(first, a), keyed_input(second, b));
                        if peers == 1 {
                            let pacts = (Pipeline, Pipeline);
                            operators::co_transform_keyed(first, second, pacts, id, name, factory, p, env)
                        } else {
                            let pacts = (operators::by_key(), operators::by_key());
                            operators::co_transform_keyed(first, second, pacts, id, name, factory, p, env)
                        }
                    }
                    _ => {
                        let first = plain(&mut built, a, p);
                        let second = plain(&mut built, b, p);
                        operators::co_transform(first, second, id, name, factory, p, env)
                    }
                };
                Built::Plain { stream, single: p == Some(1), on: p }
            }
            NodeKind::Sink(factory) => {
                let input = plain(&mut built, node.inputs[0], node.parallelism);
                operators::sink(input, id, name, factory, node.parallelism, env.clone());
                Built::Nothing
            }
        };
        built.push(result);
        if let Some(handle) = loops.remove(&id) {
            plain(&mut built, id, None).connect_loop(handle);
        }
    }
    // Chains nobody reads still run (their UDFs may have side effects).
    for i in 0..built.len() {
        if matches!(built[i], Built::Chain { .. }) {
            plain(&mut built, i, None);
        }
    }
    if let Some(e) = forward_error.take() {
        return Err(e);
    }
    if let Some(f) = loops.keys().next() {
        return Err(JobError::plan(format!("{}: feedback stream was never built", plan.nodes[*f].name)));
    }
    Ok(())
}
