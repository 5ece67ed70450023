use std::rc::Rc;
use std::time::Duration;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{CapabilitySet, InputCapability};
use timely::dataflow::Stream;

use crate::checkpoint::restore::Restore;
use crate::checkpoint::state_io::{StateReader, StateWriter};
use crate::error::{ErrorKind, UdfError, UdfResult};
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
            restored: None,
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
    /// From a checkpoint: the highest timestamp seen and whether the partition was
    /// idle, for the generator made at the first activation.
    restored: Option<(i64, bool)>,
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
        if self.generator.is_none() {
            self.generator = Some(self.new_generator(cx.processing_time()));
        }
        self.generator.as_mut().expect("made")
    }

    /// The generator, started at processing time `now`, going on from a restore.
    fn new_generator(&self, now: i64) -> WatermarkGenerator {
        let mut g = WatermarkGenerator::new(self.spec, self.idleness_ms, now);
        if let Some((max_timestamp, idle)) = self.restored {
            g.resume(max_timestamp, idle);
        }
        g
    }

    /// What a restore gives the generator: the own instance's highest timestamp and
    /// idleness, or after a rescale (partitions are no longer the same) the least
    /// highest timestamp over the old instances that were neither idle nor ended, which
    /// is the watermark downstream had at the checkpoint (if all were, the highest of
    /// all). `None`: nothing to resume from.
    fn resumed(from: &Restore<'_>) -> UdfResult<Option<(i64, bool)>> {
        if let Some(own) = from.own() {
            return Ok(read_generator::<R>(own)?.map(|(ts, idle, _)| (ts, idle)));
        }
        let mut active: Option<i64> = None;
        let mut any: Option<i64> = None;
        for section in from.non_empty() {
            let Some((ts, idle, finished)) = read_generator::<R>(section)? else { continue };
            any = Some(any.map_or(ts, |a| a.max(ts)));
            if !idle && !finished {
                active = Some(active.map_or(ts, |a| a.min(ts)));
            }
        }
        Ok(active.or(any).map(|ts| (ts, false)))
    }
}

/// A section [`Assign`]'s snapshot wrote: `None` if its generator had not started,
/// else (highest timestamp, idle, ended).
fn read_generator<R: Record>(section: &[u8]) -> UdfResult<Option<(i64, bool, bool)>> {
    let mut r = StateReader::<R>::new(section);
    let generator = if r.bool()? { Some((r.i64()?, r.bool()?, r.bool()?)) } else { None };
    r.finish()?;
    Ok(generator)
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

    /// The generator's state: whether it started, its highest timestamp, whether it
    /// was idle or its partition ended. Unlike Flink, which restarts watermarks from
    /// nothing, a restored job goes on from its watermark: here watermarks follow the
    /// input alone (not a timer), so the same input after a restore gives the same
    /// watermarks, and so the same results, as a run that never failed.
    fn snapshot(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        let mut w = StateWriter::<R>::from_vec(std::mem::take(out));
        w.bool(self.generator.is_some());
        if let Some(g) = &self.generator {
            w.i64(g.max_timestamp());
            w.bool(g.is_idle());
            w.bool(g.is_finished());
        }
        *out = w.into_bytes();
        Ok(())
    }

    /// See [`Assign::resumed`]. Whether the partition ended is not restored: its
    /// source ends again after its own restore and says so.
    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        if self.generator.is_some() {
            return Err(UdfError::internal("a timestamp assigner restored after it started"));
        }
        self.restored = Self::resumed(from)?;
        if self.restored.is_some() {
            // Batches go out under the restored watermark from the first one on.
            self.emitted = self.emitted.max(self.new_generator(i64::MIN).watermark());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Stamped;
    use crate::time::NO_TIME;
    use proptest::prelude::*;

    type R = Stamped<String>;

    fn fresh(spec: WatermarkSpec, idleness_ms: Option<i64>) -> Assign<R> {
        Assign {
            assigner: None,
            held: CapabilitySet::new(),
            spec,
            idleness_ms,
            generator: None,
            emitted: NO_TIME,
            closing: None,
            restored: None,
            watch: None,
            upstream_source: None,
        }
    }

    const BOUNDED: WatermarkSpec = WatermarkSpec::BoundedOutOfOrderness { bound_ms: 5 };

    /// An instance that saw `timestamps` (and went idle, or ended, if asked).
    fn fed(timestamps: &[i64], idle: bool, finished: bool) -> Assign<R> {
        let mut a = fresh(BOUNDED, Some(100));
        let mut g = a.new_generator(0);
        timestamps.iter().for_each(|ts| g.on_event(*ts, 0));
        if idle {
            g.check_idle(1000);
        }
        if finished {
            g.finish();
        }
        a.emitted = g.watermark();
        a.generator = Some(g);
        a
    }

    fn snapshot(a: &mut Assign<R>) -> Vec<u8> {
        let mut out = Vec::new();
        a.snapshot(&mut out).unwrap();
        out
    }

    fn restore(sections: &[&[u8]], worker: usize, peers: usize) -> UdfResult<Assign<R>> {
        let mut a = fresh(BOUNDED, Some(100));
        a.restore(&Restore::new(sections.to_vec(), worker, peers))?;
        Ok(a)
    }

    proptest! {
        /// A restored instance emits its old watermark at once and then moves exactly as
        /// the instance that never stopped, on the same further timestamps.
        #[test]
        fn restored_watermarks_go_on_as_before(
            before in prop::collection::vec(-1000i64..1000, 0..20),
            after in prop::collection::vec(-1000i64..1000, 0..20),
            idle: bool,
        ) {
            let mut running = fed(&before, idle, false);
            let bytes = snapshot(&mut running);
            let back = restore(&[&bytes], 0, 1).unwrap();
            prop_assert_eq!(back.emitted, running.emitted);
            let mut g = back.new_generator(5000);
            let running = running.generator.as_mut().unwrap();
            for ts in after {
                g.on_event(ts, 5000);
                running.on_event(ts, 5000);
                prop_assert_eq!(g.watermark(), running.watermark());
            }
        }
    }

    #[test]
    fn a_rescale_starts_every_instance_at_the_watermark_downstream_had() {
        let mut old = [fed(&[100, 40], false, false), fed(&[70], false, false), fed(&[900], true, false)];
        old.iter_mut().for_each(|a| a.emitted = a.generator.as_ref().unwrap().watermark());
        let sections: Vec<Vec<u8>> = old.iter_mut().map(snapshot).collect();
        let sections: Vec<&[u8]> = sections.iter().map(|s| &s[..]).collect();
        // Downstream saw the least of the busy partitions': 70 - 5 - 1 (the idle one
        // held nothing back).
        for peers in [1, 2, 4] {
            for w in 0..peers {
                let a = restore(&sections, w, peers).unwrap();
                assert_eq!((a.restored, a.emitted), (Some((70, false)), 64), "{w} of {peers}");
            }
        }
        // All idle or ended: the highest of them.
        let mut quiet = [fed(&[10], true, false), fed(&[30], false, true)];
        let sections: Vec<Vec<u8>> = quiet.iter_mut().map(snapshot).collect();
        let a = restore(&[&sections[0], &sections[1]], 0, 1).unwrap();
        assert_eq!(a.restored, Some((30, false)));
        // The same parallelism keeps each instance's own, idleness included.
        let a = restore(&[&sections[0], &sections[1]], 0, 2).unwrap();
        assert_eq!((a.restored, a.emitted), (Some((10, true)), crate::watermarks::IDLE));
    }

    #[test]
    fn an_instance_that_never_started_restores_to_nothing() {
        let mut a = fresh(BOUNDED, None);
        let bytes = snapshot(&mut a);
        let back = restore(&[&bytes], 0, 1).unwrap();
        assert_eq!((back.restored, back.emitted), (None, NO_TIME));
        assert!(restore(&[], 0, 3).unwrap().restored.is_none());
    }

    #[test]
    fn corrupt_sections_are_internal_errors() {
        let bytes = snapshot(&mut fed(&[1, 2, 3], false, false));
        for cut in 0..bytes.len() {
            let err = restore(&[&bytes[..cut]], 0, 1).err();
            assert!(cut == 0 || err.is_some(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[0] = 7;
        let err = restore(&[&bad], 0, 1).err().expect("refused");
        assert!(err.internal, "{err:?}");
        let mut started = fed(&[], false, false);
        assert!(started.restore(&Restore::new(vec![&bytes], 0, 1)).is_err());
    }
}
