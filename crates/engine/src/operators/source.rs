use crate::time::Time;
use std::cell::RefCell;
use std::rc::Rc;

use timely::container::CapacityContainerBuilder;

use timely::dataflow::operators::generic::operator::source as timely_source;
use timely::dataflow::{Scope, Stream};

use crate::error::ErrorKind;
use crate::functions::{SourceFactory, SourceStatus, Waker, WorkerContext};
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
    let name_owned = name.to_string();
    let factory = factory.clone();
    timely_source::<_, CapacityContainerBuilder<Vec<R>>, _, _>(scope, name, move |cap, info| {
        let activator = scope.activator_for(info.address.clone());
        let sync = scope.worker().sync_activator_for(info.address.to_vec());
        let waker: Waker = std::sync::Arc::new(move || {
            let _ = sync.activate();
        });
        let mut reader = None;
        let here = if parallel { env.context_for(parallelism) } else { env.context_for(Some(1)) };
        if let Some(here) = here {
            let ctx = WorkerContext { waker: Some(waker), ..here };
            env.enter(|| match factory(&ctx) {
                Ok(r) => reader = Some(r),
                Err(e) => env.fail(ErrorKind::Source, &name_owned, e),
            });
        }
        let mut cap = reader.as_ref().map(|r| {
            let mut cap = cap;
            cap.downgrade(&source_time(r.as_ref(), 0));
            cap
        });
        if reader.is_none() {
            // No partition here: it is over before it began.
            env.source_ended(node);
        }
        // Shared with the worker's cancel hook, which stops the reader when the job is
        // cancelled even if this operator never runs again.
        let reader = Rc::new(RefCell::new(reader));
        let hook_reader = Rc::downgrade(&reader);
        env.cancel_hooks.borrow_mut().push(Box::new(move || {
            if let Some(r) = hook_reader.upgrade() {
                if let Some(mut r) = r.borrow_mut().take() {
                    r.cancel();
                }
            }
        }));
        let mut buffer = Vec::with_capacity(env.batch_size);
        let mut batches = 0u64;
        // A watermark or processing time this source moved to, not yet seen by the
        // sinks: the source waits for its epoch to complete, so every operator sees
        // each step (a step right before the end of input could otherwise be skipped).
        let mut unconfirmed: Option<Time> = None;
        let mut ended = false;
        move |output| {
            let mut slot = reader.borrow_mut();
            let (Some(c), Some(r)) = (&mut cap, slot.as_mut()) else { return };
            if let Some(t) = unconfirmed {
                if !env.sinks_passed(t.epoch) && !env.control.aborted() {
                    activator.activate_after(std::time::Duration::from_millis(1));
                    return;
                }
                unconfirmed = None;
            }
            if !ended {
                // Flow control: wait while the sinks are too many epochs behind.
                let now = *c.time();
                if now.epoch.checked_sub(super::EPOCHS_AHEAD).is_some_and(|limit| !env.sinks_passed(limit)) {
                    activator.activate_after(std::time::Duration::from_millis(1));
                    return;
                }
                if env.control.aborted() {
                    env.enter(|| r.cancel());
                    env.enter(|| drop(slot.take()));
                    cap = None;
                    return;
                }
                let mut status = SourceStatus::Done;
                env.enter(|| {
                    match r.poll(env.batch_size, &mut buffer) {
                        Ok(s) => status = s,
                        Err(e) => env.fail(ErrorKind::Source, &name_owned, e),
                    }
                    // The source may still hold what it gave (a collection's items).
                    if let Err(e) = env.own(&mut buffer) {
                        env.fail(ErrorKind::Source, &name_owned, e);
                        buffer.clear();
                    }
                    if !buffer.is_empty() {
                        env.count(node, buffer.len());
                        output.session(c).give_container(&mut buffer);
                        buffer.clear();
                    }
                });
                batches += 1;
                let mut next = source_time(r.as_ref(), now.epoch);
                if batches.is_multiple_of(super::BATCHES_PER_EPOCH) {
                    next.epoch += 1;
                }
                if status == SourceStatus::Idle {
                    // An idle source must not hold back the others' flow control: it keeps
                    // up with the busiest source of this process (and creeps on by itself,
                    // for sources in other processes), checking back every few ms.
                    next.epoch = next.epoch.max(env.control.source_epoch()).max(now.epoch + 1);
                    activator.activate_after(IDLE_RECHECK);
                }
                env.control.saw_source_epoch(next.epoch);
                if next != now {
                    let mut next = next.join(&now);
                    if (next.event, next.processing) != (now.event, now.processing) {
                        // A step of time in an epoch of its own: once the sinks have passed
                        // the epoch, everything downstream has seen the step.
                        next.epoch = next.epoch.max(now.epoch + 1);
                        unconfirmed = Some(next);
                    }
                    c.downgrade(&next);
                }
                match status {
                    SourceStatus::More => activator.activate(),
                    SourceStatus::Idle => {}
                    SourceStatus::Done => ended = true,
                }
            }
            if ended {
                if unconfirmed.is_some() {
                    // The last step of time must be seen first.
                    activator.activate();
                } else {
                    // Python objects held by the reader are released under the scope.
                    env.enter(|| drop(slot.take()));
                    cap = None;
                    env.source_ended(node);
                }
            }
        }
    })
}

/// How often an idle source moves its epoch on.
const IDLE_RECHECK: std::time::Duration = std::time::Duration::from_millis(5);

/// The time a source's next batch goes out at: its epoch, and the watermark and manual
/// processing time the reader reports (none: no watermark, not driving processing time).
fn source_time<R: 'static>(reader: &dyn crate::functions::SourceReader<R>, epoch: u64) -> Time {
    let start = Time::source_start();
    Time {
        epoch,
        event: reader.watermark().unwrap_or(start.event),
        processing: reader.processing_time().unwrap_or(start.processing),
    }
}
