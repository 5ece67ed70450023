//! The timely operators a plan is built from. Each one enters the [`BatchScope`] once
//! per activation and calls user functions record by record inside it.

mod assign;
mod connect;
pub mod driver;
mod fan_out;
mod iterate;
pub(crate) mod keyed;
mod partition;
mod process;
mod sink;
mod source;
mod transform;
mod window;

pub use assign::assign_timestamps;
pub use connect::{co_transform, co_transform_keyed};
pub use fan_out::{own_copy, own_keyed_copy};
pub use iterate::iterate;
pub use keyed::{by_key, key_by, key_reduce, reduce, unkey, KeyNode, Keyed, RollingReduce};
pub use partition::{rebalance, spread};
pub use process::{process_connected, process_keyed, process_plain, Process, ProcessStreams};
pub use sink::sink;
pub use source::source;
pub use transform::transform_chain;
pub use window::window;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::clock::Clock;
use crate::control::JobControl;
use crate::error::{ErrorKind, JobError, UdfError, UdfResult};
use crate::functions::{BatchScope, WorkerContext};
use crate::record::Record;

/// What every operator of one worker shares.
pub struct OpEnv {
    pub control: Arc<JobControl>,
    pub scope: Arc<dyn BatchScope>,
    pub worker: WorkerContext,
    /// Which workers share this process (records to them are not encoded).
    pub locality: crate::exchange::Locality,
    pub clock: Arc<dyn Clock>,
    /// Processing time comes from testing sources through the frontier, not the clock.
    pub manual_processing_time: bool,
    /// Most records a source hands on per activation.
    pub batch_size: usize,
    /// Operators may share records ([`crate::ExecConfig::object_reuse`]).
    pub object_reuse: bool,
    /// The job's execution mode and end-of-input rules, resolved ([`crate::Plan::semantics`]).
    pub semantics: crate::semantics::Semantics,
    /// Records emitted per plan node, by this worker.
    pub counts: Rc<RefCell<Vec<u64>>>,
    /// What to do when the job is cancelled (sources let go of threads and connections).
    pub cancel_hooks: RefCell<Vec<Box<dyn FnOnce()>>>,
    /// The progress of every sink: sources stay a bounded number of epochs ahead of it,
    /// so a fast source cannot flood a slower worker (timely has no backpressure).
    pub probe: timely::dataflow::operators::probe::Handle<crate::time::Time>,
    /// Source nodes whose partition on this worker has ended, and who to wake then
    /// (timestamp assigners, whose partition's watermark goes to "finished").
    pub ended_sources: RefCell<std::collections::HashSet<usize>>,
    pub source_watchers: RefCell<Vec<(usize, timely::scheduling::Activator)>>,
    /// This worker's side of checkpointing, when the job takes checkpoints.
    pub checkpoints: Option<Rc<crate::checkpoint::coordinator::Checkpoints>>,
}

/// [`Record::make_all_private`], failing with the record that cannot be copied.
pub fn own_records<R: Record>(records: &mut [R]) -> UdfResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    R::make_all_private(records).map_err(|(i, why)| copy_failed(&records[i], why))
}

fn copy_failed<R: Record>(record: &R, why: String) -> UdfError {
    UdfError::new(format!("cannot copy the record: {why}")).with_record(record.describe())
}

/// Source batches per epoch.
pub const BATCHES_PER_EPOCH: u64 = 16;
/// Epochs a source may run ahead of what the sinks have completed.
pub const EPOCHS_AHEAD: u64 = 8;

impl OpEnv {
    /// The environment of worker `worker` of a job of `nodes` plan nodes, with the
    /// defaults of a plain run (the system clock, the default batch size, records
    /// copied, no checkpoints); `execute` and tests that run operators by hand set
    /// what differs with struct update syntax.
    pub fn for_worker(
        control: Arc<JobControl>,
        scope: Arc<dyn BatchScope>,
        worker: WorkerContext,
        nodes: usize,
    ) -> Self {
        let count = worker.peers;
        OpEnv {
            control,
            scope,
            worker,
            locality: crate::exchange::Locality { first: 0, count },
            clock: Arc::new(crate::clock::SystemClock),
            manual_processing_time: false,
            batch_size: crate::execute::DEFAULT_BATCH,
            object_reuse: false,
            semantics: Default::default(),
            counts: Rc::new(RefCell::new(vec![0; nodes])),
            cancel_hooks: RefCell::new(Vec::new()),
            probe: timely::dataflow::operators::probe::Handle::new(),
            ended_sources: RefCell::new(Default::default()),
            source_watchers: RefCell::new(Vec::new()),
            checkpoints: None,
        }
    }

    pub(crate) fn fail(&self, kind: ErrorKind, operator: &str, err: UdfError) {
        self.control.fail(JobError::from_udf(kind, operator, err).on_worker(self.worker.index));
    }

    /// This worker as seen by an operator running on `parallelism` workers, or None if
    /// the operator does not run here.
    pub(crate) fn context_for(&self, parallelism: Option<usize>) -> Option<WorkerContext> {
        match parallelism {
            Some(p) if p < self.worker.peers => {
                (self.worker.index < p).then(|| WorkerContext { peers: p, ..self.worker.clone() })
            }
            _ => Some(self.worker.clone()),
        }
    }

    /// Runs the cancel hooks, inside the batch scope.
    pub(crate) fn run_cancel_hooks(&self) {
        let hooks: Vec<_> = self.cancel_hooks.borrow_mut().drain(..).collect();
        if !hooks.is_empty() {
            let mut hooks = Some(hooks);
            self.enter(|| {
                for hook in hooks.take().into_iter().flatten() {
                    hook();
                }
            });
        }
    }

    /// Processing time now: the wall clock, or with manual processing time, what the
    /// frontier `frontier` implies.
    pub(crate) fn processing_time(
        &self,
        frontier: timely::progress::frontier::AntichainRef<'_, crate::time::Time>,
    ) -> i64 {
        if self.manual_processing_time {
            crate::time::processing_time(frontier)
        } else {
            self.clock.now_ms()
        }
    }

    /// Whether every sink has finished with epochs before `epoch` (no sink: yes).
    pub(crate) fn sinks_passed(&self, epoch: u64) -> bool {
        self.probe.with_frontier(|f| crate::time::least_epoch(f).is_none_or(|e| e >= epoch))
    }

    /// The partition of source `node` on this worker has ended.
    pub(crate) fn source_ended(&self, node: usize) {
        self.ended_sources.borrow_mut().insert(node);
        for (watched, activator) in self.source_watchers.borrow().iter() {
            if *watched == node {
                activator.activate();
            }
        }
    }

    pub(crate) fn has_source_ended(&self, node: usize) -> bool {
        self.ended_sources.borrow().contains(&node)
    }

    /// Makes `records` their next holder's own unless object reuse is on (see
    /// [`Record::make_private`]): called wherever a record may have become reachable
    /// from two places.
    pub(crate) fn own<R: Record>(&self, records: &mut [R]) -> UdfResult<()> {
        if self.object_reuse {
            return Ok(());
        }
        own_records(records)
    }

    /// [`OpEnv::own`] of one record.
    #[inline]
    pub(crate) fn own_one<R: Record>(&self, record: &mut R) -> UdfResult<()> {
        if self.object_reuse {
            return Ok(());
        }
        record.make_private().map_err(|why| copy_failed(record, why))
    }

    pub(crate) fn count(&self, node: usize, n: usize) {
        self.counts.borrow_mut()[node] += n as u64;
    }

    /// Runs `work` inside the batch scope (for Python: holding the GIL).
    pub(crate) fn enter(&self, mut work: impl FnMut()) {
        self.scope.enter(&mut work);
    }

    /// Makes a per-worker instance of a user function, failing the job if that raises.
    /// An operator restricted to `parallelism` workers gets no instance beyond them,
    /// and its functions see `parallelism` as the worker count.
    pub(crate) fn instantiate<T: ?Sized>(
        &self,
        kind: ErrorKind,
        operator: &str,
        parallelism: Option<usize>,
        make: &(dyn Fn(&WorkerContext) -> crate::error::UdfResult<Box<T>> + Send + Sync),
    ) -> Option<Box<T>> {
        let ctx = self.context_for(parallelism)?;
        let mut made = None;
        self.enter(|| match make(&ctx) {
            Ok(f) => made = Some(f),
            Err(e) => self.fail(kind, operator, e),
        });
        made
    }
}
