use crate::time::Time;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use timely::dataflow::operators::Capability;
use timely::dataflow::{Scope, Stream};

use crate::checkpoint::restore::Restore;
use crate::error::{ErrorKind, UdfResult};
use crate::functions::{SourceFactory, SourceReader, SourceStatus, Waker, WorkerContext};
use crate::operators::driver::{self, Cx, Failure, OpInfo, Polled, Slot, SourceLogic};
use crate::operators::OpEnv;
use crate::record::Record;

/// A source partition. Non-parallel sources run on worker 0 only.
///
/// It hands on at most one batch per activation and re-activates itself while it has
/// more, so downstream operators run between batches and memory stays bounded.
pub fn source<'s, R: Record>(
    scope: Scope<'s, Time>,
    node: usize,
    name: &str,
    factory: &SourceFactory<R>,
    parallel: bool,
    parallelism: Option<usize>,
    env: Rc<OpEnv>,
) -> Stream<'s, Time, Vec<R>> {
    let info = OpInfo { kind: ErrorKind::Source, ..OpInfo::udf(name, Some(node)) };
    let name = name.to_string();
    let factory = factory.clone();
    let out = driver::source(scope, info, env.clone(), move |cap, address| {
        let sync = scope.worker().sync_activator_for(address.to_vec());
        let waker: Waker = std::sync::Arc::new(move || {
            let _ = sync.activate();
        });
        let mut reader = None;
        let here = if parallel { env.context_for(parallelism) } else { env.context_for(Some(1)) };
        if let Some(here) = here {
            let ctx = WorkerContext { waker: Some(waker), ..here };
            env.enter(|| match factory(&ctx) {
                Ok(r) => reader = Some(r),
                Err(e) => env.fail(ErrorKind::Source, &name, e),
            });
        }
        let Some(reader) = reader else {
            // No partition here: it is over before it began.
            env.source_ended(node);
            return None;
        };
        let mut cap = cap;
        cap.downgrade(&source_time(reader.as_ref(), Time::source_start()));
        // Shared with the worker's cancel hook, which stops the reader when the job is
        // cancelled even if this operator never runs again.
        let reader = Rc::new(RefCell::new(Some(reader)));
        let hook_reader = Rc::downgrade(&reader);
        env.cancel_hooks.borrow_mut().push(Box::new(move || {
            if let Some(r) = hook_reader.upgrade() {
                if let Some(mut r) = r.borrow_mut().take() {
                    r.cancel();
                }
            }
        }));
        Some(Partition {
            reader,
            cap,
            node,
            buffer: Vec::with_capacity(env.batch_size),
            batches: 0,
            unconfirmed: None,
            ended: false,
            completed: 0,
        })
    });
    out
}

/// One worker's partition of a source.
struct Partition<R> {
    /// `None` once the worker's cancel hook took it.
    reader: Rc<RefCell<Option<Box<dyn SourceReader<R>>>>>,
    cap: Capability<Time>,
    node: usize,
    buffer: Vec<R>,
    batches: u64,
    /// A watermark or processing time this source moved to, not yet seen by the
    /// sinks: the source waits for its epoch to complete, so every operator sees
    /// each step (a step right before the end of input could otherwise be skipped).
    unconfirmed: Option<Time>,
    /// The reader is done (the partition ends once its last step of time is seen).
    ended: bool,
    /// The newest complete checkpoint the reader was told of.
    completed: u64,
}

impl<R: Record> SourceLogic<R> for Partition<R> {
    fn wait(&mut self, env: &OpEnv) -> Option<Duration> {
        if env.checkpoints.is_some() && !self.ended {
            let segment = self.cap.time().segment;
            // Checkpoints: moving to the requested segment goes before flow control (a
            // source held by it would hold every other source's checkpoint back), and
            // nothing goes out in a segment until every operator has snapshotted the
            // checkpoint before it (see `checkpoint::coordinator`).
            if env.control.requested_segment() > segment {
                return None;
            }
            if segment > env.control.released_segment() {
                return Some(Duration::from_millis(1));
            }
        }
        if let Some(t) = self.unconfirmed {
            if !env.sinks_passed(t.epoch) {
                return Some(Duration::from_millis(1));
            }
            self.unconfirmed = None;
        }
        // Flow control: wait while the sinks are too many epochs behind.
        let now = *self.cap.time();
        let behind = now.epoch.checked_sub(super::EPOCHS_AHEAD).is_some_and(|limit| !env.sinks_passed(limit));
        (!self.ended && behind).then_some(Duration::from_millis(1))
    }

    fn poll(&mut self, cx: &mut Cx<'_, R>, checkpoints: Option<&mut Slot>) -> Result<Polled, Failure> {
        let env = cx.env;
        if self.ended {
            env.source_ended(self.node);
            return Ok(Polled::Ended);
        }
        let mut slot = self.reader.borrow_mut();
        let Some(r) = slot.as_mut() else { return Ok(Polled::Going) };
        if let Some(c) = env.checkpoints.as_ref() {
            let done = c.completed();
            if done > self.completed {
                r.checkpoint_complete(c.segment_of(done))?;
                self.completed = done;
            }
        }
        // Checkpoints: at this batch boundary, move on to the segment the job asks for
        // (jumping over any in between, which stay empty here), position marked first.
        let segment = env.control.requested_segment();
        if segment > self.cap.time().segment {
            r.mark_position(segment)?;
            drop(slot); // the reader, borrowed by the snapshot next
            if let Some(ck) = checkpoints {
                let mut position = Vec::new();
                SourceLogic::snapshot(self, &mut position)?;
                ck.deliver(segment, position);
            }
            let moved = self.cap.time().in_segment(segment);
            self.cap.downgrade(&moved);
            // Held in `wait` until the checkpoint is released.
            cx.wake_after(Duration::ZERO);
            return Ok(Polled::Going);
        }
        let status = r.poll(env.batch_size, &mut self.buffer)?;
        // The source may still hold what it gave (a collection's items).
        env.own(&mut self.buffer)?;
        cx.give(&self.cap, &mut self.buffer);
        self.batches += 1;
        let now = *self.cap.time();
        let mut next = source_time(r.as_ref(), now);
        if self.batches.is_multiple_of(super::BATCHES_PER_EPOCH) {
            next.epoch += 1;
        }
        if status == SourceStatus::Idle {
            // An idle source must not hold back the others' flow control: it keeps
            // up with the busiest source of this process (and creeps on by itself,
            // for sources in other processes), checking back every few ms.
            next.epoch = next.epoch.max(env.control.source_epoch()).max(now.epoch + 1);
            cx.wake_after(IDLE_RECHECK);
        }
        env.control.saw_source_epoch(next.epoch);
        if next != now {
            let mut next = next.join(&now);
            if (next.event, next.processing) != (now.event, now.processing) {
                // A step of time in an epoch of its own: once the sinks have passed
                // the epoch, everything downstream has seen the step.
                next.epoch = next.epoch.max(now.epoch + 1);
                self.unconfirmed = Some(next);
            }
            self.cap.downgrade(&next);
        }
        match status {
            SourceStatus::More => cx.wake_after(Duration::ZERO),
            SourceStatus::Idle => {}
            SourceStatus::Done if self.unconfirmed.is_some() => {
                // The last step of time must be seen first.
                self.ended = true;
                cx.wake_after(Duration::ZERO);
            }
            SourceStatus::Done => {
                env.source_ended(self.node);
                return Ok(Polled::Ended);
            }
        }
        Ok(Polled::Going)
    }

    /// The reader's position at the last mark (see [`SourceReader::snapshot`]).
    fn snapshot(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        match self.reader.borrow_mut().as_mut() {
            Some(r) => r.snapshot(out),
            None => Ok(()),
        }
    }

    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        match self.reader.borrow_mut().as_mut() {
            Some(r) => r.restore(from),
            None => Ok(()),
        }
    }

    fn on_abort(&mut self) {
        if let Some(r) = self.reader.borrow_mut().as_mut() {
            r.cancel();
        }
    }
}

/// How often an idle source moves its epoch on.
const IDLE_RECHECK: std::time::Duration = std::time::Duration::from_millis(5);

/// The time a source's next batch goes out at: `now`'s epoch and segment, and the
/// watermark and manual processing time the reader reports (none: no watermark, not
/// driving processing time).
fn source_time<R: 'static>(reader: &dyn crate::functions::SourceReader<R>, now: Time) -> Time {
    let start = Time::source_start();
    Time {
        event: reader.watermark().unwrap_or(start.event),
        processing: reader.processing_time().unwrap_or(start.processing),
        ..now
    }
}
