use crate::time::Time;
use std::rc::Rc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use crate::error::ErrorKind;
use crate::functions::SinkFactory;
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
    let mut sink = env.instantiate(ErrorKind::Sink, name, parallelism, &**factory);
    let name = name.to_string();
    use timely::dataflow::operators::Probe;
    let stream = stream.probe_with(&env.probe);
    stream.sink(Pipeline, &name.clone(), move |(input, frontier)| {
        let Some(s) = sink.as_mut().filter(|_| !env.control.aborted()) else {
            input.for_each(|_cap, data| data.clear());
            if sink.is_some() {
                env.enter(|| drop(sink.take()));
            }
            return;
        };
        let mut failed = None;
        let ended = frontier.is_empty();
        env.enter(|| {
            input.for_each(|_cap, data| {
                if failed.is_some() {
                    data.clear();
                    return;
                }
                env.count(node, data.len());
                if let Err(e) = s.write(data) {
                    failed = Some(e);
                }
                data.clear();
            });
            if failed.is_none() && ended {
                if let Err(e) = s.close() {
                    failed = Some(e);
                }
            }
        });
        if failed.is_none() {
            failed = s.flush(env.control.abort_flag()).err();
        }
        if failed.is_none() && ended {
            match s.prepare_commit() {
                Ok(Some(commit)) => env.control.add_commit(&name, commit),
                Ok(None) => {}
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            env.fail(ErrorKind::Sink, &name, e);
            env.enter(|| drop(sink.take()));
        } else if ended {
            env.enter(|| drop(sink.take()));
        }
    });
}
