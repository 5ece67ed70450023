use crate::time::Time;
use std::rc::Rc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{InputCapability, Probe};
use timely::dataflow::Stream;

use crate::error::ErrorKind;
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
    let info = driver::OpInfo { kind: ErrorKind::Sink, ..OpInfo::udf(name, None) };
    let name = name.to_string();
    driver::sink(stream, Pipeline, info, env, move || sink.map(|sink| SinkLogic { sink, node, name }));
}

struct SinkLogic<R> {
    sink: Box<dyn Sink<R>>,
    node: usize,
    name: String,
}

impl<R: Record> OperatorLogic<()> for SinkLogic<R> {
    fn on_end(&mut self, _cx: &mut Cx<'_, ()>) -> Result<(), Failure> {
        Ok(self.sink.close()?)
    }

    fn after_scope(&mut self, env: &OpEnv, ended: bool) -> Result<(), Failure> {
        self.sink.flush(env.control.abort_flag())?;
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
