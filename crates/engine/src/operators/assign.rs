use std::rc::Rc;
use std::time::Duration;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{CapabilitySet, InputCapability};
use timely::dataflow::Stream;

use crate::error::ErrorKind;
use crate::functions::{TimestampAssigner, TimestampFactory};
use crate::operators::driver::{self, Cx, Failure, OpInfo, OperatorLogic, UnaryInput};
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
    let info = OpInfo::udf(name, Some(node));
    let name = name.to_string();
    let assigner = assigner.cloned();
    driver::unary_detached(stream, Pipeline, info, env.clone(), move |cap| {
        if !active {
            // Nothing can come here: hold nothing back.
            return None;
        }
        let assigner = match assigner {
            Some(f) => Some(env.instantiate(ErrorKind::Udf, &name, None, &*f)?),
            None => None,
        };
        let mut held = CapabilitySet::new();
        held.insert(cap);
        Some(Assign {
            assigner,
            held,
            spec,
            idleness_ms,
            generator: None,
            emitted: time::NO_TIME,
            closing: None,
            watch: upstream_source,
            upstream_source,
        })
    })
}

/// One worker's timestamp assigner.
struct Assign<R> {
    assigner: Option<Box<dyn TimestampAssigner<R>>>,
    /// At (input epoch, watermark emitted, input processing time).
    held: CapabilitySet<Time>,
    spec: WatermarkSpec,
    idleness_ms: Option<i64>,
    /// Made at the first activation, at its processing time.
    generator: Option<WatermarkGenerator>,
    /// The watermark sent downstream so far.
    emitted: i64,
    /// Once the input ended: the time the last watermark is held at until the sinks pass it.
    closing: Option<Time>,
    /// The upstream source whose end wakes this operator, until registered for it.
    watch: Option<usize>,
    upstream_source: Option<usize>,
}

impl<R: Record> Assign<R> {
    /// The generator, made at the first activation's processing time; and the first
    /// activation asks to be woken when the upstream source's partition ends.
    fn start(&mut self, cx: &Cx<'_, R>) -> &mut WatermarkGenerator {
        if let Some(source) = self.watch.take() {
            cx.env.source_watchers.borrow_mut().push((source, cx.activator().clone()));
        }
        let (spec, idleness_ms) = (self.spec, self.idleness_ms);
        self.generator.get_or_insert_with(|| WatermarkGenerator::new(spec, idleness_ms, cx.processing_time()))
    }
}

impl<R: Record> OperatorLogic<R> for Assign<R> {
    fn on_frontier(&mut self, cx: &mut Cx<'_, R>) -> Result<(), Failure> {
        let env = cx.env;
        let upstream_ended = self.upstream_source.is_some_and(|s| env.has_source_ended(s));
        let generator = self.start(cx);
        if upstream_ended {
            // This worker's partition is over: it no longer holds the watermark back.
            generator.finish();
        }
        let clock = cx.processing_time();
        generator.check_idle(clock);
        let idle_deadline = generator.idle_deadline();
        let watermark = generator.watermark();
        self.emitted = self.emitted.max(watermark);
        let emitted = self.emitted;
        self.held.downgrade(cx.frontier(0).iter().map(|f| Time { event: emitted, ..*f }));
        if !env.manual_processing_time {
            if let Some(deadline) = idle_deadline {
                cx.wake_after(Duration::from_millis((deadline - clock).max(1) as u64));
            }
        }
        Ok(())
    }

    /// The last watermark must be seen downstream before the end of input, as Flink's
    /// final periodic watermark would be: it is held until the sinks have passed it.
    fn on_end(&mut self, cx: &mut Cx<'_, R>) -> Result<(), Failure> {
        let last = self.start(cx).watermark().max(self.emitted);
        if last > self.emitted || self.closing.is_some() {
            let held = &self.held;
            let at = *self.closing.get_or_insert_with(|| {
                let base = held.first().map(|c| *c.time()).expect("held");
                // In an epoch of its own, so the sinks passing it means seen.
                Time { event: last, epoch: base.epoch + 1, ..base }
            });
            if self.held.first().is_some_and(|c| *c.time() != at) {
                self.held.downgrade([at]);
                self.emitted = last;
            }
            if !cx.env.sinks_passed(at.epoch) {
                cx.end_later(Duration::from_millis(1));
                return Ok(());
            }
        }
        if let Some(a) = self.assigner.as_mut() {
            a.close()?;
        }
        Ok(())
    }
}

impl<R: Record> UnaryInput<R, R> for Assign<R> {
    fn on_batch(&mut self, cx: &mut Cx<'_, R>, cap: &InputCapability<Time>, data: &mut Vec<R>) -> Result<(), Failure> {
        let clock = cx.processing_time();
        self.start(cx);
        let Assign { assigner, held, generator, emitted, .. } = self;
        let generator = generator.as_mut().expect("started");
        if let Some(a) = assigner.as_mut() {
            for r in data.iter_mut() {
                let ts = a.timestamp(r, r.timestamp())?;
                r.set_timestamp(ts);
            }
        }
        for r in data.iter() {
            generator.on_event(r.timestamp(), clock);
        }
        let Some(at) = cap.stamp().iter().next().copied() else { return Ok(()) };
        let out_time = Time { event: *emitted, ..at };
        cx.give(&held.delayed(&out_time), data);
        // The watermark moves after every batch (not per activation, which would depend
        // on how many batches arrived together).
        if !generator.check_idle(clock) {
            *emitted = (*emitted).max(generator.watermark());
        }
        Ok(())
    }
}
