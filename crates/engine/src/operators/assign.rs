use std::rc::Rc;
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::CapabilitySet;
use timely::dataflow::Stream;

use crate::error::ErrorKind;
use crate::functions::TimestampFactory;
use crate::operators::OpEnv;
use crate::plan::WatermarkSpec;
use crate::record::Record;
use crate::time::{self, Time};
use crate::watermarks::WatermarkGenerator;

/// Sets record timestamps and makes watermarks: Flink's `assignTimestampsAndWatermarks`.
///
/// The operator's output does not follow its input's times: it holds capabilities at
/// (input epoch, its own watermark, input processing time), so the watermark downstream
/// is the minimum of the generators' watermarks, replacing any from upstream. Each
/// batch goes out at the watermark from before it; the watermark then moves on.
/// `active`: whether this worker's instance can receive records at all (it runs where
/// its input runs); an inactive one holds nothing back. `upstream_source`: the source
/// whose partition on this worker feeds it without an exchange; once that partition
/// has ended, this instance's watermark is "finished" (Flink's +infinity).
#[allow(clippy::too_many_arguments)]
pub fn assign_timestamps<'s, R: Record>(
    stream: Stream<'s, Time, Vec<R>>,
    node: usize,
    name: &str,
    assigner: Option<&TimestampFactory<R>>,
    spec: WatermarkSpec,
    idleness_ms: Option<i64>,
    active: bool,
    upstream_source: Option<usize>,
    env: Rc<OpEnv>,
) -> Stream<'s, Time, Vec<R>> {
    let name = name.to_string();
    let scope = stream.scope();
    let mut builder = OperatorBuilder::new(name.clone(), scope);
    let info = builder.operator_info();
    // No connection from input to output: the held capabilities say what may come.
    let mut input = builder.new_input_connection(stream, Pipeline, []);
    let (output, result) = builder.new_output_connection::<Vec<R>, _>([]);
    let mut output = OutputBuilder::<_, CapacityContainerBuilder<Vec<R>>>::from(output);
    let activator = scope.activator_for(info.address.clone());
    if let Some(source) = upstream_source {
        env.source_watchers.borrow_mut().push((source, scope.activator_for(info.address)));
    }
    let manual_time = env.manual_processing_time;
    builder.build(move |mut caps| {
        let mut assigner = match assigner {
            Some(f) if active => env.instantiate(ErrorKind::Udf, &name, None, &**f).map(Some),
            _ => Some(None),
        };
        let mut held = CapabilitySet::new();
        if active && assigner.is_some() {
            held.insert(caps.pop().expect("one output"));
        }
        let mut generator: Option<WatermarkGenerator> = None;
        let mut emitted = time::NO_TIME;
        let mut closing: Option<Time> = None;
        move |frontiers| {
            let frontier = frontiers[0].frontier();
            if held.is_empty() || env.control.aborted() {
                input.for_each(|_cap, data| data.clear());
                held = CapabilitySet::new();
                return;
            }
            let generator = generator
                .get_or_insert_with(|| WatermarkGenerator::new(spec, idleness_ms, env.processing_time(frontier)));
            let mut output = output.activate();
            let mut failed = false;
            env.enter(|| {
                let clock = env.processing_time(frontier);
                input.for_each(|cap, data| {
                    if failed {
                        data.clear();
                        return;
                    }
                    if let Some(Some(a)) = assigner.as_mut() {
                        for r in data.iter_mut() {
                            match a.timestamp(r, r.timestamp()) {
                                Ok(ts) => r.set_timestamp(ts),
                                Err(e) => {
                                    env.fail(ErrorKind::Udf, &name, e);
                                    failed = true;
                                    data.clear();
                                    return;
                                }
                            }
                        }
                    }
                    for r in data.iter() {
                        generator.on_event(r.timestamp(), clock);
                    }
                    env.count(node, data.len());
                    let Some(at) = cap.stamp().iter().next().copied() else { return };
                    let out_time = Time { event: emitted, ..at };
                    output.session(&held.delayed(&out_time)).give_container(data);
                    // The watermark moves after every batch (not per activation, which
                    // would depend on how many batches arrived together).
                    if !generator.check_idle(clock) {
                        emitted = emitted.max(generator.watermark());
                    }
                });
            });
            if failed {
                held = CapabilitySet::new();
                env.enter(|| assigner = None);
                return;
            }
            if frontier.is_empty() {
                // The last watermark must be seen downstream before the end of input,
                // as Flink's final periodic watermark would be: hold it until the sinks
                // have passed it.
                let last = generator.watermark().max(emitted);
                if last > emitted || closing.is_some() {
                    let at = closing.get_or_insert_with(|| {
                        let base = held.first().map(|c| *c.time()).expect("held");
                        // In an epoch of its own, so the sinks passing it means seen.
                        Time { event: last, epoch: base.epoch + 1, ..base }
                    });
                    if held.first().is_some_and(|c| *c.time() != *at) {
                        held.downgrade([*at]);
                        emitted = last;
                    }
                    if !env.sinks_passed(at.epoch) && !env.control.aborted() {
                        activator.activate_after(Duration::from_millis(1));
                        return;
                    }
                }
                if let Some(Some(a)) = assigner.as_mut() {
                    let mut closed = Ok(());
                    env.enter(|| closed = a.close());
                    if let Err(e) = closed {
                        env.fail(ErrorKind::Udf, &name, e);
                    }
                }
                held = CapabilitySet::new();
                return;
            }
            if upstream_source.is_some_and(|s| env.has_source_ended(s)) {
                // This worker's partition is over: it no longer holds the watermark back.
                generator.finish();
            }
            let clock = env.processing_time(frontier);
            generator.check_idle(clock);
            emitted = emitted.max(generator.watermark());
            held.downgrade(frontier.iter().map(|f| Time { event: emitted, ..*f }));
            if !manual_time {
                if let Some(deadline) = generator.idle_deadline() {
                    activator.activate_after(Duration::from_millis((deadline - clock).max(1) as u64));
                }
            }
        }
    });
    result
}
