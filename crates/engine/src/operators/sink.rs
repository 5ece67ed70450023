use crate::time::Time;
use std::rc::Rc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{InputCapability, Probe};
use timely::dataflow::Stream;

use crate::checkpoint::coordinator::Checkpoints;
use crate::checkpoint::restore::Restore;
use crate::error::{ErrorKind, UdfResult};
use crate::functions::{Sink, SinkFactory};
use crate::operators::driver::{self, Cx, Failure, OpInfo, OperatorLogic, UnaryInput};
use crate::operators::OpEnv;
use crate::record::Record;

/// Hands each batch to the sink; closes it when the input ends and keeps its finished
/// output for the job to publish. The sink's blocking output (`flush`,
/// `prepare_commit`) runs outside the batch scope.
pub fn sink<'s, R: Record>(
    stream: Stream<'s, Time, Vec<R>>,
    node: usize,
    name: &str,
    factory: &SinkFactory<R>,
    parallelism: Option<usize>,
    env: Rc<OpEnv>,
) {
    let sink = env.instantiate(ErrorKind::Sink, name, parallelism, &**factory);
    let stream = stream.probe_with(&env.probe);
    // The node is the sink's place in checkpoints (it gives nothing, so counts nothing).
    let info = driver::OpInfo { kind: ErrorKind::Sink, ..OpInfo::udf(name, Some(node)) };
    let name = name.to_string();
    let checkpoints = env.checkpoints.clone();
    driver::sink(stream, Pipeline, info, env, move || {
        sink.map(|sink| SinkLogic { sink, node, name, checkpoints, committed: 0, waking: false })
    });
}

struct SinkLogic<R> {
    sink: Box<dyn Sink<R>>,
    node: usize,
    name: String,
    checkpoints: Option<Rc<Checkpoints>>,
    /// The newest checkpoint committed.
    committed: u64,
    /// Whether completed checkpoints wake it.
    waking: bool,
}

impl<R: Record> OperatorLogic<()> for SinkLogic<R> {
    fn on_frontier(&mut self, cx: &mut Cx<'_, ()>) -> Result<(), Failure> {
        if let (false, Some(c)) = (self.waking, self.checkpoints.as_ref()) {
            c.wake_on_complete(cx.activator().clone());
            self.waking = true;
        }
        Ok(())
    }

    fn on_end(&mut self, _cx: &mut Cx<'_, ()>) -> Result<(), Failure> {
        Ok(self.sink.close()?)
    }

    /// Pre-commits what was written for the checkpoint (two-phase commit, phase one).
    fn snapshot(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        let id = self.checkpoints.as_ref().map_or(0, |c| c.snapshot_id());
        self.sink.pre_commit(id, out)
    }

    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        let id = self.checkpoints.as_ref().map_or(0, |c| c.restored_id());
        self.committed = id;
        self.sink.restore(from, id)
    }

    fn after_scope(&mut self, env: &OpEnv, ended: bool) -> Result<(), Failure> {
        self.sink.flush(env.control.abort_flag())?;
        // Phase two: what a complete checkpoint covers becomes visible.
        if let Some(done) = self.checkpoints.as_ref().map(|c| c.completed()).filter(|d| *d > self.committed) {
            self.sink.commit_checkpoint(done)?;
            self.committed = done;
        }
        if ended {
            if let Some(commit) = self.sink.prepare_commit()? {
                env.control.add_commit(&self.name, commit);
            }
        }
        Ok(())
    }
}

impl<R: Record> UnaryInput<R, ()> for SinkLogic<R> {
    fn on_batch(
        &mut self,
        cx: &mut Cx<'_, ()>,
        _cap: &InputCapability<Time>,
        data: &mut Vec<R>,
    ) -> Result<(), Failure> {
        cx.env.count(self.node, data.len());
        self.sink.write(data)?;
        data.clear();
        Ok(())
    }
}
