//! A job's plan: the graph the user's program described, before it runs.
//!
//! Every worker (in every process) builds the same timely dataflow from the same plan,
//! in node order, so the plan must be deterministic. Node inputs always refer to
//! earlier nodes, except the feedback edge of an iteration.

use std::sync::Arc;
use std::time::Duration;

use crate::error::UdfResult;
use crate::functions::*;
use crate::process::SharedContext;
use crate::semantics::{RuntimeMode, Semantics};

/// Makes a worker's window function around the window operator's keyed context: state
/// it registers (in `open()`) is scoped to the key whose window fires, which the
/// operator sets before each call (see `operators::window`).
pub type ApplyFactory<R> =
    Arc<dyn Fn(&WorkerContext, &SharedContext<R>) -> UdfResult<Box<dyn WindowApply<R>>> + Send + Sync>;

/// Which windows a window node makes.
#[derive(Clone)]
pub enum WindowSpec<R> {
    /// Tumbling (`slide == size`) or sliding processing-time windows, sizes in ms.
    ProcessingTime { size_ms: i64, slide_ms: i64 },
    /// Flink's count windows: fire every `slide` elements of a key, over the last `size`.
    Count { size: usize, slide: usize },
    /// Any assigner, trigger, evictor and lateness (see [`crate::windows::event_time`]).
    Custom(WindowConfigFactory<R>),
}

impl<R> std::fmt::Debug for WindowSpec<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WindowSpec::ProcessingTime { size_ms, slide_ms } => write!(f, "ProcessingTime({size_ms}, {slide_ms})"),
            WindowSpec::Count { size, slide } => write!(f, "Count({size}, {slide})"),
            WindowSpec::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// What a window does with its contents when it fires.
#[derive(Clone)]
pub enum WindowFunction<R> {
    /// Incremental: one value per window.
    Reduce(ReduceFactory<R>),
    /// Incremental, Flink's `AggregateFunction`.
    Aggregate(AggregateFactory<R>),
    /// All the window's values at once (Flink's `process`/`apply`).
    Apply(ApplyFactory<R>),
    /// A reduce whose result is handed to a window function.
    ReduceThen(ReduceFactory<R>, ApplyFactory<R>),
    /// An aggregate whose result is handed to a window function.
    AggregateThen(AggregateFactory<R>, ApplyFactory<R>),
}

/// How an assigner makes watermarks from the timestamps it sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatermarkSpec {
    /// `WatermarkStrategy.no_watermarks()`.
    None,
    /// `for_bounded_out_of_orderness(bound)`; monotonous timestamps are a bound of 0.
    BoundedOutOfOrderness { bound_ms: i64 },
}

/// How a [`NodeKind::Partition`] node spreads its input over the workers of the
/// operator reading it (Flink's partitioners). The reader's parallelism decides the
/// number of partitions.
#[derive(Clone)]
pub enum Partitioning<R> {
    /// Round-robin over every worker of the reader.
    Rebalance,
    /// A random worker per record.
    Shuffle,
    /// Round-robin over the reader's workers in the sender's process (no encoding, no
    /// network); over all of them if none is in this process.
    Rescale,
    /// To the same worker: the reader must run on as many workers as the input.
    Forward,
    /// Every record to every worker.
    Broadcast,
    /// To the worker a user function picks (`partition_custom`).
    Custom(PartitionerFactory<R>),
}

impl<R> Partitioning<R> {
    /// Flink's name for it, as errors show it.
    pub fn name(&self) -> &'static str {
        match self {
            Partitioning::Rebalance => "rebalance",
            Partitioning::Shuffle => "shuffle",
            Partitioning::Rescale => "rescale",
            Partitioning::Forward => "forward",
            Partitioning::Broadcast => "broadcast",
            Partitioning::Custom(_) => "partition_custom",
        }
    }
}

pub enum NodeKind<R> {
    /// `parallel == false`: only worker 0 runs it (collections, Python sources).
    Source {
        factory: SourceFactory<R>,
        parallel: bool,
    },
    /// A stateless step; chains of them run fused in one operator.
    Transform(TransformFactory<R>),
    /// Partitions by key. Its consumers receive the stream exchanged by key.
    KeyBy(KeyFactory<R>),
    /// Rolling reduce on a `KeyBy` input: every input emits the updated value.
    Reduce(ReduceFactory<R>),
    Window {
        spec: WindowSpec<R>,
        function: WindowFunction<R>,
    },
    /// A process function (`process(f)`): on a `KeyBy` input with keyed state and
    /// timers, on any other input with neither; on two `KeyBy` inputs (connected
    /// streams) one function, state and timers for both; on a first input and a
    /// broadcast (any not keyed) second, keyed state and timers if the first is keyed.
    Process(crate::process::ProcessFactory<R>),
    /// Side output `i` (`1..`) of the `Process` node it reads: the process operator has
    /// as many side outputs as the highest `i` read (see [`Plan::side_outputs`]).
    ProcessSideOutput(usize),
    /// The late records of the `Window` node it reads (`side_output_late_data`).
    LateOutput,
    /// Sets record timestamps and makes watermarks (replacing any from upstream). Runs
    /// where its input runs.
    AssignTimestamps {
        assigner: Option<TimestampFactory<R>>,
        watermarks: WatermarkSpec,
        idleness_ms: Option<i64>,
    },
    /// Merges all inputs.
    Union,
    /// Opens a feedback loop: its output is its input plus what node `feedback` sends back.
    /// After the input ends, records still circulating after `max_wait` are dropped
    /// (and counted), so a loop that never converges cannot hang a bounded job.
    Iterate {
        feedback: Option<usize>,
        max_wait: Option<Duration>,
    },
    /// Its input, spread over the workers of whatever reads it as `Partitioning` says
    /// (a property of the edge to each reader, as in Flink).
    Partition(Partitioning<R>),
    /// Two inputs connected (`connect`): a function with one method per input. Keyed
    /// when both inputs are `KeyBy` nodes (a key's records of both meet on one worker).
    CoTransform(CoTransformFactory<R>),
    /// Where records leave the dataflow (print, files, sockets, user functions).
    Sink(SinkFactory<R>),
}

pub struct Node<R> {
    /// Shown in errors and metrics, e.g. `flat_map 'Tokenizer' (job.py:12)`.
    pub name: String,
    pub inputs: Vec<usize>,
    pub kind: NodeKind<R>,
    /// Run on workers `0..p` only (Flink's per-operator parallelism); None: every worker.
    pub parallelism: Option<usize>,
}

pub struct Plan<R> {
    pub nodes: Vec<Node<R>>,
    /// Processing time is driven by testing sources (their markers), not the wall clock.
    pub manual_processing_time: bool,
    /// The execution mode and end-of-input options, as set (see [`Plan::semantics`]).
    pub semantics: Semantics,
    /// Source nodes that need not end by themselves (a socket, a source function):
    /// batch mode refuses them, and `Automatic` runs them streaming.
    pub unbounded: Vec<usize>,
}

impl<R> Plan<R> {
    pub fn new() -> Self {
        Plan {
            nodes: Vec::new(),
            manual_processing_time: false,
            semantics: Semantics::default(),
            unbounded: Vec::new(),
        }
    }

    /// Marks source `id` as one that need not end (see [`Plan::unbounded`]).
    pub fn set_unbounded(&mut self, id: usize) {
        if !self.unbounded.contains(&id) {
            self.unbounded.push(id);
        }
    }

    /// The semantics the job runs with: `Automatic` resolved to batch when every
    /// source is bounded, else streaming (Flink's rule).
    pub fn semantics(&self) -> Semantics {
        let mode = match self.semantics.mode {
            RuntimeMode::Automatic if self.unbounded.is_empty() => RuntimeMode::Batch,
            RuntimeMode::Automatic => RuntimeMode::Streaming,
            mode => mode,
        };
        Semantics { mode, ..self.semantics }
    }

    /// Adds a node and returns its id.
    pub fn add(&mut self, name: impl Into<String>, inputs: Vec<usize>, kind: NodeKind<R>) -> usize {
        self.nodes.push(Node { name: name.into(), inputs, kind, parallelism: None });
        self.nodes.len() - 1
    }

    /// Runs node `id` on `parallelism` workers only (at most the job's workers).
    pub fn set_parallelism(&mut self, id: usize, parallelism: usize) {
        self.nodes[id].parallelism = Some(parallelism.max(1));
    }

    /// Closes the loop opened by `iterate` with the stream of node `feedback`.
    pub fn close_loop(&mut self, iterate: usize, feedback: usize) {
        if let NodeKind::Iterate { feedback: f, .. } = &mut self.nodes[iterate].kind {
            *f = Some(feedback);
        }
    }

    /// How many side outputs node `id` has: the highest index a `ProcessSideOutput`
    /// node reads of it (0 if none), so that its operator is built with exactly those.
    pub fn side_outputs(&self, id: usize) -> usize {
        let reads = |n: &Node<R>| match n.kind {
            NodeKind::ProcessSideOutput(i) if n.inputs.first() == Some(&id) => Some(i),
            _ => None,
        };
        self.nodes.iter().filter_map(reads).max().unwrap_or(0)
    }

    /// Checks the shape of the graph; the message names the node.
    /// The plan's shape, one line per node (kind, name without its source location,
    /// inputs): a checkpoint records it, and a restore into another plan names the
    /// first line that differs. Editing a job's code elsewhere keeps it.
    pub fn signature(&self) -> Vec<String> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(id, n)| {
                let kind = match &n.kind {
                    NodeKind::Source { .. } => "source",
                    NodeKind::Transform(_) => "transform",
                    NodeKind::KeyBy(_) => "key_by",
                    NodeKind::Reduce(_) => "reduce",
                    NodeKind::Window { .. } => "window",
                    NodeKind::Process(_) => "process",
                    NodeKind::ProcessSideOutput(_) => "side_output",
                    NodeKind::LateOutput => "late_output",
                    NodeKind::AssignTimestamps { .. } => "assign_timestamps",
                    NodeKind::Union => "union",
                    NodeKind::Iterate { .. } => "iterate",
                    NodeKind::Partition(p) => p.name(),
                    NodeKind::CoTransform(_) => "co_transform",
                    NodeKind::Sink(_) => "sink",
                };
                // `map 'f' (job.py:12)`: the location moves with unrelated edits.
                let name = match n.name.rfind(" (") {
                    Some(i) if n.name.ends_with(')') => &n.name[..i],
                    _ => n.name.as_str(),
                };
                format!("{id} {kind} {name} <- {:?}", n.inputs)
            })
            .collect()
    }

    pub fn validate(&self) -> Result<(), crate::error::JobError> {
        use crate::error::JobError;
        if self.semantics.mode == RuntimeMode::Batch {
            if let Some(&id) = self.unbounded.first() {
                return Err(JobError::plan(format!(
                    "{}: RuntimeExecutionMode.BATCH needs bounded sources and this one need not end; \
                     run it with RuntimeExecutionMode.STREAMING (or AUTOMATIC, which picks streaming here)",
                    self.nodes.get(id).map_or("a source", |n| n.name.as_str())
                )));
            }
        }
        for (id, node) in self.nodes.iter().enumerate() {
            for &input in &node.inputs {
                if input >= id {
                    return Err(JobError::plan(format!("{}: input {input} is not an earlier node", node.name)));
                }
            }
            let expected_inputs = match &node.kind {
                NodeKind::Source { .. } => Some(0),
                NodeKind::Union => None,
                NodeKind::CoTransform(_) => Some(2),
                NodeKind::Process(_) if node.inputs.len() == 2 => Some(2),
                _ => Some(1),
            };
            if let Some(n) = expected_inputs {
                if node.inputs.len() != n {
                    return Err(JobError::plan(format!("{} takes {n} input(s), got {}", node.name, node.inputs.len())));
                }
            }
            // Two inputs: both keyed (connected keyed streams), or the second is a
            // broadcast stream (not keyed) beside a keyed or plain first.
            if matches!(node.kind, NodeKind::Process(_))
                && node.inputs.len() == 2
                && !matches!(self.nodes[node.inputs[0]].kind, NodeKind::KeyBy(_))
                && matches!(self.nodes[node.inputs[1]].kind, NodeKind::KeyBy(_))
            {
                return Err(JobError::plan(format!(
                    "{}: a process function on connected streams needs both keyed, or the second one broadcast",
                    node.name
                )));
            }
            if matches!(node.kind, NodeKind::Reduce(_) | NodeKind::Window { .. })
                && !matches!(self.nodes[node.inputs[0]].kind, NodeKind::KeyBy(_))
            {
                return Err(JobError::plan(format!("{} needs a keyed stream: call key_by() first", node.name)));
            }
            match &node.kind {
                NodeKind::Iterate { feedback, .. } => match feedback {
                    None => {
                        return Err(JobError::plan(format!(
                            "{}: the iteration is never closed: call close_with(feedback_stream) on it",
                            node.name
                        )))
                    }
                    Some(f) if *f <= id || *f >= self.nodes.len() => {
                        return Err(JobError::plan(format!(
                            "{}: its feedback must come from inside the loop",
                            node.name
                        )))
                    }
                    Some(f) if matches!(self.nodes[*f].kind, NodeKind::Sink(_)) => {
                        return Err(JobError::plan(format!("{}: a sink cannot be a feedback stream", node.name)))
                    }
                    _ => {}
                },
                NodeKind::Window { spec, .. } => match spec {
                    WindowSpec::ProcessingTime { size_ms, slide_ms } if *size_ms <= 0 || *slide_ms <= 0 => {
                        return Err(JobError::plan(format!("{}: window size and slide must be positive", node.name)))
                    }
                    WindowSpec::Count { size, slide } if *size == 0 || *slide == 0 => {
                        return Err(JobError::plan(format!(
                            "{}: count window size and slide must be at least 1",
                            node.name
                        )))
                    }
                    _ => {}
                },
                NodeKind::ProcessSideOutput(i)
                    if !matches!(self.nodes[node.inputs[0]].kind, NodeKind::Process(_)) || *i == 0 =>
                {
                    return Err(JobError::plan(format!(
                        "{}: a side output comes from a process function, numbered from 1 (got {i})",
                        node.name
                    )))
                }
                NodeKind::LateOutput if !matches!(self.nodes[node.inputs[0]].kind, NodeKind::Window { .. }) => {
                    return Err(JobError::plan(format!("{}: late data comes from a window operator", node.name)))
                }
                NodeKind::AssignTimestamps {
                    watermarks: WatermarkSpec::BoundedOutOfOrderness { bound_ms }, ..
                } if *bound_ms < 0 => {
                    return Err(JobError::plan(format!("{}: the out-of-orderness bound must be >= 0 ms", node.name)))
                }
                NodeKind::AssignTimestamps { idleness_ms: Some(ms), .. } if *ms <= 0 => {
                    return Err(JobError::plan(format!("{}: the idleness timeout must be > 0 ms", node.name)))
                }
                _ => {}
            }
            if id > 0 {
                // Sinks produce no stream.
                for &input in &node.inputs {
                    if matches!(self.nodes[input].kind, NodeKind::Sink(_)) {
                        return Err(JobError::plan(format!("{}: a sink has no output stream", node.name)));
                    }
                }
            }
        }
        Ok(())
    }
}

impl<R> Default for Plan<R> {
    fn default() -> Self {
        Self::new()
    }
}
