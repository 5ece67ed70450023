//! Checkpoints of the keyed process operator in a dataflow (issue 13): a job whose
//! operator is snapshotted after a first part of its input, then cancelled, and a
//! second job restored from that snapshot and fed the rest, together emit what one
//! uninterrupted job emits: nothing lost, nothing twice. The snapshot catches records
//! still queued for their watermark, timers, keyed state and the watermark; restoring
//! at 1 and 3 instances what 2 wrote gives the same union of outputs.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::UnorderedInput;
use timely::dataflow::operators::{ActivateCapability, InputCapability, Inspect};

use common::V;
use ferroflow_engine::checkpoint::restore::Restore;
use ferroflow_engine::control::JobControl;
use ferroflow_engine::exchange::{Batch, Routed};
use ferroflow_engine::functions::{BatchScope, WorkerContext};
use ferroflow_engine::key::key_of;
use ferroflow_engine::operators::driver::{self, BinaryInput, Cx, Failure, OpInfo, OperatorLogic, UnaryInput};
use ferroflow_engine::operators::{Keyed, OpEnv, Process};
use ferroflow_engine::process::{lock, Emit, ProcessContext, ProcessFactory, Processor, SharedContext};
use ferroflow_engine::state::{KeyedStateBackend, OperatorStateBackend, StateDescriptor, StateId, StateKind};
use ferroflow_engine::time::{Time, TimeDomain};
use ferroflow_engine::UdfResult;

struct NoScope;

impl BatchScope for NoScope {
    fn enter(&self, work: &mut dyn FnMut()) {
        work();
    }
}

fn env(control: &Arc<JobControl>) -> Rc<OpEnv> {
    let worker = WorkerContext { index: 0, peers: 1, waker: None, checkpointing: Default::default() };
    Rc::new(OpEnv {
        batch_size: 16,
        object_reuse: true,
        ..OpEnv::for_worker(control.clone(), Arc::new(NoScope), worker, 1)
    })
}

/// A running sum per key in a ValueState; `KV(k, v)` adds `v` times the broadcast
/// state's factor, emits `KV(k, sum)` and registers an event-time timer at `v`, which
/// emits the key's sum when it fires.
struct Sum {
    ctx: SharedContext<V>,
    sum: StateId,
}

impl Sum {
    fn sum(&self) -> UdfResult<i64> {
        let mut c = lock(&self.ctx);
        let (s, now) = c.state_for_access()?;
        Ok(match s.value(self.sum, now)? {
            Some(V::I(n)) => n,
            _ => 0,
        })
    }
}

/// The broadcast state's factor (1 until a broadcast element sets one).
fn factor(c: &mut ProcessContext<V>) -> UdfResult<i64> {
    let b = c.broadcast_for_read()?;
    let id = b.register_broadcast("factor")?;
    Ok(match b.get(id, &key_of(&0i64))? {
        Some(V::I(f)) => f,
        _ => 1,
    })
}

impl Processor<V> for Sum {
    fn process(&mut self, value: V, out: &mut Emit<'_, V>) -> UdfResult<()> {
        let V::KV(k, v) = value else { panic!("not a KV") };
        let f = factor(&mut lock(&self.ctx))?;
        let sum = self.sum()? + v * f;
        let mut c = lock(&self.ctx);
        let (s, now) = c.state_for_access()?;
        s.update(self.sum, V::I(sum), now)?;
        c.register_timer(TimeDomain::EventTime, v)?;
        out.main.push(V::KV(k, sum));
        Ok(())
    }

    /// A broadcast element sets the factor (on every instance: it emits nothing, so a
    /// rescaled job emits what one instance does).
    fn process_second(&mut self, value: V, _out: &mut Emit<'_, V>) -> UdfResult<()> {
        let V::I(f) = value else { panic!("not an I") };
        let mut c = lock(&self.ctx);
        let b = c.broadcast_for_read()?;
        let id = b.register_broadcast("factor")?;
        c.broadcast_for_write(id)?.put(id, key_of(&0i64), V::I(0), V::I(f))
    }

    fn on_timer(&mut self, timestamp: i64, _domain: TimeDomain, out: &mut Emit<'_, V>) -> UdfResult<()> {
        let sum = self.sum()?;
        let key = lock(&self.ctx).current_key().cloned();
        out.main.push(V::S(format!("timer {key:?} at {timestamp}: {sum}")));
        Ok(())
    }
}

fn factory() -> ProcessFactory<V> {
    Arc::new(|_w: &WorkerContext, ctx: &SharedContext<V>| {
        let sum = lock(ctx).state.register(&StateDescriptor::new("sum", StateKind::Value))?;
        Ok(Box::new(Sum { ctx: ctx.clone(), sum }) as Box<dyn Processor<V>>)
    })
}

/// The process logic, snapshotted (and the job cancelled) at its first `on_frontier`
/// after `want` is set: every batch sent before has been handed to it by then.
struct Tap {
    inner: Process<V>,
    want: Rc<Cell<bool>>,
    taken: Rc<RefCell<Option<Vec<u8>>>>,
}

impl OperatorLogic<V> for Tap {
    fn on_frontier(&mut self, cx: &mut Cx<'_, V>) -> Result<(), Failure> {
        self.inner.on_frontier(cx)?;
        if self.want.replace(false) {
            let mut out = vec![7u8; 3];
            self.inner.snapshot(&mut out)?;
            assert_eq!(out[..3], [7, 7, 7], "snapshot appends");
            *self.taken.borrow_mut() = Some(out.split_off(3));
            cx.env.control.cancel();
        }
        Ok(())
    }

    fn on_end(&mut self, cx: &mut Cx<'_, V>) -> Result<(), Failure> {
        self.inner.on_end(cx)
    }
}

impl UnaryInput<Routed<Keyed<V>>, V> for Tap {
    fn on_batch(
        &mut self,
        cx: &mut Cx<'_, V>,
        cap: &InputCapability<Time>,
        data: &mut Vec<Routed<Keyed<V>>>,
    ) -> Result<(), Failure> {
        self.inner.on_batch(cx, cap, data)
    }
}

impl BinaryInput<Routed<Keyed<V>>, V, V> for Tap {
    fn on_first(
        &mut self,
        cx: &mut Cx<'_, V>,
        cap: &InputCapability<Time>,
        data: &mut Vec<Routed<Keyed<V>>>,
    ) -> Result<(), Failure> {
        <Process<V> as BinaryInput<Routed<Keyed<V>>, V, V>>::on_first(&mut self.inner, cx, cap, data)
    }

    fn on_second(&mut self, cx: &mut Cx<'_, V>, cap: &InputCapability<Time>, data: &mut Vec<V>) -> Result<(), Failure> {
        <Process<V> as BinaryInput<Routed<Keyed<V>>, V, V>>::on_second(&mut self.inner, cx, cap, data)
    }
}

/// A batch: its watermark coordinate, `(key, value)` records, and a broadcast factor
/// sent at the same time (to the operator with a broadcast input).
type Input = Vec<(i64, Vec<(i64, i64)>, Option<i64>)>;

enum Mode<'a> {
    /// The first part, then the rest: one uninterrupted job.
    Whole,
    /// The first part, a snapshot, cancelled.
    Snapshot,
    /// Restored as instance `.1` of `.2` from the sections, then the rest.
    Restore(&'a [Vec<u8>], usize, usize),
}

/// A batch as sent: watermark, the instance's keyed records, the broadcast factor.
type Sent = (i64, Vec<Routed<Keyed<V>>>, Option<i64>);

/// Runs the operator (with a broadcast input if `broadcast`) as one instance that gets the keys `mine` says; the first part's
/// batches go out at epoch 1, then the input holds watermark `hold` (batches above it
/// stay queued), the rest's at epoch 2 (watermarks at or above `hold`). Returns the
/// outputs and the snapshot taken.
fn run(
    broadcast: bool,
    (first, hold, rest): (&Input, i64, &Input),
    mode: Mode<'_>,
    mine: &dyn Fn(i64) -> bool,
) -> (Vec<V>, Option<Vec<u8>>) {
    let control = Arc::new(JobControl::new(1));
    let keep = |batch: &Vec<(i64, i64)>| -> Vec<Routed<Keyed<V>>> {
        let keyed: Vec<Keyed<V>> =
            batch.iter().filter(|(k, _)| mine(*k)).map(|&(k, v)| (key_of(&k), V::I(k), V::KV(k, v))).collect();
        vec![(0, Batch::Local(keyed))]
    };
    let first: Vec<Sent> = first.iter().map(|(w, b, f)| (*w, keep(b), f.filter(|_| broadcast))).collect();
    let rest: Vec<Sent> = rest.iter().map(|(w, b, f)| (*w, keep(b), f.filter(|_| broadcast))).collect();
    let (sections, worker, peers, restoring, snapshotting) = match mode {
        Mode::Whole => (Vec::new(), 0, 1, false, false),
        Mode::Snapshot => (Vec::new(), 0, 1, false, true),
        Mode::Restore(s, w, n) => (s.to_vec(), w, n, true, false),
    };
    let control2 = control.clone();
    let (out, taken) = timely::execute_directly(move |worker_| {
        let env = env(&control2);
        let seen: Rc<RefCell<Vec<V>>> = Rc::default();
        let want = Rc::new(Cell::new(false));
        let taken: Rc<RefCell<Option<Vec<u8>>>> = Rc::default();
        let (mut input, root, mut input2, root2) = worker_.dataflow::<Time, _, _>(|s| {
            let ((input, root), stream) = s.new_unordered_input::<CapacityContainerBuilder<Vec<Routed<Keyed<V>>>>>();
            let ((input2, root2), stream2) = s.new_unordered_input::<CapacityContainerBuilder<Vec<V>>>();
            let (want, taken, seen, sections) = (want.clone(), taken.clone(), seen.clone(), sections.clone());
            let env2 = env.clone();
            let make = move |caps| {
                let mut inner = Process::make(&env2, "p", &factory(), None, true, caps)?;
                if restoring {
                    let sections: Vec<&[u8]> = sections.iter().map(|s| s.as_slice()).collect();
                    inner.restore(&Restore::new(sections, worker, peers)).expect("restore");
                }
                Some(Tap { inner, want, taken })
            };
            let info = OpInfo::udf("p", Some(0));
            let outs = if broadcast {
                driver::binary_outputs(stream, stream2, (Pipeline, Pipeline), 1, info, env.clone(), make)
            } else {
                driver::unary_outputs(stream, Pipeline, 1, info, env.clone(), make)
            };
            for out in outs {
                let seen = seen.clone();
                out.inspect(move |x| seen.borrow_mut().push(x.clone()));
            }
            (input, root, input2, root2)
        });
        let (mut root, mut root2) = (root, root2);
        let mut send = |roots: (&ActivateCapability<Time>, &ActivateCapability<Time>), epoch: u64, batches: &[Sent]| {
            for (wm, b, f) in batches {
                let at = Time::new(epoch, *wm, i64::MIN);
                input.activate().session(&roots.0.delayed(&at)).give_iterator(b.iter().cloned());
                input2.activate().session(&roots.1.delayed(&at)).give_iterator(f.iter().map(|f| V::I(*f)));
            }
        };
        if !restoring {
            send((&root, &root2), 1, &first);
            root.downgrade(&Time::new(1, hold, i64::MIN));
            root2.downgrade(&Time::new(1, hold, i64::MIN));
            want.set(snapshotting);
            for _ in 0..10 {
                worker_.step();
            }
        }
        if !snapshotting {
            send((&root, &root2), 2, &rest);
        }
        drop((root, input, root2, input2));
        while worker_.step_or_park(Some(Duration::from_millis(1))) {}
        let out = seen.borrow().clone();
        let taken = taken.borrow_mut().take();
        (out, taken)
    });
    if !snapshotting {
        assert!(control.error().is_none(), "{:?}", control.error());
    }
    (out, taken)
}

fn batches(lo: i64) -> impl Strategy<Value = Input> {
    let records = prop::collection::vec((0i64..10, 0i64..120), 0..12);
    prop::collection::vec((lo..lo + 60, records, prop::option::of(-3i64..4)), 0..6)
}

fn sorted(mut v: Vec<V>) -> Vec<V> {
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(24) })]

    /// Snapshot, cancel, restore, feed the rest: the two jobs together emit what the
    /// uninterrupted one does. Written by 2 instances (each with its keys, and every
    /// broadcast element), restored into 1, 2 or 3: the same union.
    #[test]
    fn process_operator_restores_exactly_once(
        broadcast: bool,
        hold in 0i64..60,
        first in batches(0),
        rest in batches(60),
    ) {
        let input = (&first, hold, &rest);
        let all = |_: i64| true;
        let (whole, _) = run(broadcast, input, Mode::Whole, &all);
        let (before, taken) = run(broadcast, input, Mode::Snapshot, &all);
        let taken = taken.expect("a snapshot was taken");
        let (after, _) = run(broadcast, input, Mode::Restore(&[taken], 0, 1), &all);
        prop_assert_eq!(sorted([before, after].concat()), sorted(whole.clone()));

        let owner = |k: i64, n: u64| (key_of(&k).hash() % n) as usize;
        let mut before = Vec::new();
        let mut sections = Vec::new();
        for w in 0..2 {
            let (out, taken) = run(broadcast, input, Mode::Snapshot, &|k| owner(k, 2) == w);
            before.extend(out);
            sections.push(taken.expect("a snapshot was taken"));
        }
        for peers in 1..=3usize {
            let mut all_out = before.clone();
            for w in 0..peers {
                let mine = |k: i64| owner(k, peers as u64) == w;
                all_out.extend(run(broadcast, input, Mode::Restore(&sections, w, peers), &mine).0);
            }
            prop_assert_eq!(sorted(all_out), sorted(whole.clone()), "at {} instances", peers);
        }
    }
}
