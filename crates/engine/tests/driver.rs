//! The lifecycle driver's rules (`operators::driver`), tested on a bare timely dataflow
//! with a hand-made `OpEnv`: a logic that records every hook the driver calls, and a
//! batch scope that records whether the logic was dropped inside it.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::UnorderedInput;
use timely::dataflow::operators::{Capability, InputCapability, Inspect};
use timely::dataflow::Stream;

use ferroflow_engine::control::JobControl;
use ferroflow_engine::functions::{BatchScope, WorkerContext};
use ferroflow_engine::operators::driver::{self, Cx, Failure, OpInfo, OperatorLogic, Polled, SourceLogic, UnaryInput};
use ferroflow_engine::operators::OpEnv;
use ferroflow_engine::time::Time;
use ferroflow_engine::{ErrorKind, JobError, UdfError};

/// Records whether work runs inside it, and how often it was entered.
#[derive(Default)]
struct Scope {
    inside: Arc<AtomicBool>,
    entered: AtomicUsize,
}

impl BatchScope for Scope {
    fn enter(&self, work: &mut dyn FnMut()) {
        let was = self.inside.swap(true, Ordering::SeqCst);
        self.entered.fetch_add(1, Ordering::SeqCst);
        work();
        self.inside.store(was, Ordering::SeqCst);
    }
}

#[derive(Debug, PartialEq, Eq, Clone)]
enum Event {
    Batch(Vec<u64>),
    Frontier,
    End,
    AfterScope {
        ended: bool,
    },
    Abort,
    Poll,
    /// The logic was dropped, inside the batch scope or not.
    Dropped {
        inside: bool,
    },
}

type Log = Rc<RefCell<Vec<Event>>>;

/// A logic that logs its hooks, passes batches on (records at or above 100 go to the
/// second output when there is one), and fails on the record `fail_on`.
struct Probe {
    log: Log,
    inside: Arc<AtomicBool>,
    fail_on: Option<u64>,
    /// How many times `on_end` postpones the end.
    postpone: usize,
    /// Output capabilities, held (while postponing, to keep the dataflow alive).
    held: Vec<Capability<Time>>,
    /// How many outputs it was built with: record `x` goes to output `x / 100`.
    outputs: usize,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.log.borrow_mut().push(Event::Dropped { inside: self.inside.load(Ordering::SeqCst) });
    }
}

impl OperatorLogic<u64> for Probe {
    fn on_frontier(&mut self, _cx: &mut Cx<'_, u64>) -> Result<(), Failure> {
        self.log.borrow_mut().push(Event::Frontier);
        Ok(())
    }

    fn on_end(&mut self, cx: &mut Cx<'_, u64>) -> Result<(), Failure> {
        self.log.borrow_mut().push(Event::End);
        if self.postpone > 0 {
            self.postpone -= 1;
            cx.end_later(Duration::from_millis(1));
        }
        Ok(())
    }

    fn after_scope(&mut self, _env: &OpEnv, ended: bool) -> Result<(), Failure> {
        assert!(!self.inside.load(Ordering::SeqCst), "after_scope runs outside the scope");
        self.log.borrow_mut().push(Event::AfterScope { ended });
        Ok(())
    }
}

impl UnaryInput<u64, u64> for Probe {
    fn on_batch(
        &mut self,
        cx: &mut Cx<'_, u64>,
        cap: &InputCapability<Time>,
        data: &mut Vec<u64>,
    ) -> Result<(), Failure> {
        assert!(self.inside.load(Ordering::SeqCst), "batches are handled inside the scope");
        self.log.borrow_mut().push(Event::Batch(data.clone()));
        if self.fail_on.is_some_and(|f| data.contains(&f)) {
            return Err(UdfError::new("boom").into());
        }
        for i in 1..self.outputs {
            let mut side: Vec<u64> = data.iter().copied().filter(|&x| x / 100 == i as u64).collect();
            cx.give_to(i, cap, &mut side);
        }
        data.retain(|&x| x < 100);
        cx.give(cap, data);
        Ok(())
    }
}

fn env(control: &Arc<JobControl>, scope: &Arc<Scope>) -> Rc<OpEnv> {
    let worker = WorkerContext { index: 0, peers: 1, waker: None, checkpointing: Default::default() };
    Rc::new(OpEnv {
        batch_size: 16,
        object_reuse: true,
        ..OpEnv::for_worker(control.clone(), scope.clone(), worker, 1)
    })
}

fn at(epoch: u64) -> Time {
    Time::new(epoch, i64::MIN, i64::MIN)
}

/// What one run saw.
struct Seen {
    log: Vec<Event>,
    error: Option<JobError>,
    /// Each output's records.
    outputs: Vec<Vec<u64>>,
    /// Records counted for the operator's node.
    counted: u64,
    entered: usize,
}

/// Runs a unary `Probe` with `outputs` outputs over `batches`, one epoch each;
/// the job is cancelled before batch `cancel_before`.
fn run(
    batches: &[&[u64]],
    fail_on: Option<u64>,
    postpone: usize,
    outputs: usize,
    cancel_before: Option<usize>,
) -> Seen {
    let control = Arc::new(JobControl::new(1));
    let scope = Arc::new(Scope::default());
    let batches: Vec<Vec<u64>> = batches.iter().map(|b| b.to_vec()).collect();
    let (control2, scope2) = (control.clone(), scope.clone());
    let (log, outputs, counted) = timely::execute_directly(move |worker| {
        let log: Log = Rc::default();
        let seen: Rc<RefCell<Vec<Vec<u64>>>> = Rc::new(RefCell::new(vec![Vec::new(); outputs]));
        let env = env(&control2, &scope2);
        let ((mut input, cap), _) = worker.dataflow::<Time, _, _>(|s| {
            let ((input, cap), stream) = s.new_unordered_input::<CapacityContainerBuilder<Vec<u64>>>();
            let mut probe =
                Probe { log: log.clone(), inside: scope2.inside.clone(), fail_on, postpone, held: Vec::new(), outputs };
            let keep = postpone > 0;
            let info = OpInfo::udf("probe", Some(0));
            let streams: Vec<Stream<'_, Time, Vec<u64>>> = if outputs != 1 {
                driver::unary_outputs(stream, Pipeline, outputs, info, env.clone(), |caps: Vec<Capability<Time>>| {
                    assert_eq!(caps.len(), outputs, "a capability per output");
                    probe.held.extend(caps.into_iter().filter(|_| keep));
                    Some(probe)
                })
            } else {
                vec![driver::unary(stream, Pipeline, info, env.clone(), |cap| {
                    probe.held.extend(Some(cap).filter(|_| keep));
                    Some(probe)
                })]
            };
            for (i, out) in streams.into_iter().enumerate() {
                let seen = seen.clone();
                out.inspect(move |x| seen.borrow_mut()[i].push(*x));
            }
            ((input, cap), ())
        });
        let mut cap = Some(cap);
        for (i, mut batch) in batches.into_iter().enumerate() {
            if cancel_before == Some(i) {
                control2.cancel();
            }
            let now = cap.take().expect("held");
            input.activate().session(&now).give_iterator(batch.drain(..));
            cap = Some(now.delayed(&at(i as u64 + 1)));
            for _ in 0..4 {
                worker.step();
            }
        }
        drop((cap, input));
        while worker.step_or_park(Some(Duration::from_millis(1))) {}
        let counted = env.counts.borrow()[0];
        let log = log.borrow().clone();
        let outputs = seen.borrow().clone();
        (log, outputs, counted)
    });
    Seen { log, error: control.error(), outputs, counted, entered: scope.entered.load(Ordering::SeqCst) }
}

fn count(log: &[Event], event: &Event) -> usize {
    log.iter().filter(|e| *e == event).count()
}

#[test]
fn a_clean_run_ends_once_and_drops_the_logic_inside_the_scope() {
    let seen = run(&[&[1, 2], &[3]], None, 0, 1, None);
    assert!(seen.error.is_none());
    assert_eq!(seen.outputs, vec![vec![1, 2, 3]]);
    assert_eq!(seen.counted, 3);
    assert_eq!(count(&seen.log, &Event::End), 1);
    assert_eq!(count(&seen.log, &Event::AfterScope { ended: true }), 1);
    // on_end, its after_scope, then the drop: nothing after.
    let n = seen.log.len();
    assert_eq!(seen.log[n - 3..], [Event::End, Event::AfterScope { ended: true }, Event::Dropped { inside: true }]);
    assert!(seen.log.contains(&Event::Frontier), "on_frontier runs while the input is open");
    assert!(seen.entered > 0);
}

#[test]
fn the_first_failure_fails_the_job_once_and_nothing_runs_after_it() {
    let seen = run(&[&[1], &[7, 8], &[9], &[10]], Some(7), 0, 1, None);
    let error = seen.error.expect("the job failed");
    assert_eq!(error.operator.as_deref(), Some("probe"));
    assert_eq!(error.kind, ErrorKind::Udf);
    assert!(error.message.contains("boom"), "{}", error.message);
    let failed_at = seen.log.iter().position(|e| *e == Event::Batch(vec![7, 8])).expect("saw the bad batch");
    // The logic goes right after the failing hook, inside the scope; later batches are drained.
    assert_eq!(seen.log[failed_at + 1..], [Event::Dropped { inside: true }]);
    assert_eq!(count(&seen.log, &Event::End), 0);
    assert_eq!(seen.outputs, vec![vec![1]]);
}

#[test]
fn an_abort_drains_the_input_and_drops_the_logic_inside_the_scope() {
    let seen = run(&[&[1], &[2], &[3]], None, 0, 1, Some(1));
    assert_eq!(seen.error.map(|e| e.kind), Some(ErrorKind::Cancelled));
    assert_eq!(seen.outputs, vec![vec![1]]);
    assert!(!seen.log.contains(&Event::Batch(vec![2])) && !seen.log.contains(&Event::Batch(vec![3])));
    assert_eq!(count(&seen.log, &Event::End), 0, "an aborted operator does not end");
    assert_eq!(seen.log.last(), Some(&Event::Dropped { inside: true }));
    assert_eq!(count(&seen.log, &Event::Dropped { inside: true }), 1);
}

#[test]
fn end_later_runs_on_end_again_and_after_scope_sees_the_real_end() {
    let seen = run(&[&[1]], None, 2, 1, None);
    assert!(seen.error.is_none());
    assert_eq!(count(&seen.log, &Event::End), 3);
    assert!(count(&seen.log, &Event::AfterScope { ended: false }) >= 2);
    assert_eq!(count(&seen.log, &Event::AfterScope { ended: true }), 1);
    assert_eq!(seen.log.last(), Some(&Event::Dropped { inside: true }));
}

#[test]
fn side_outputs_get_what_give_to_sends_and_only_the_main_output_is_counted() {
    let seen = run(&[&[1, 100, 2], &[200]], None, 0, 3, None);
    assert!(seen.error.is_none());
    assert_eq!(seen.outputs, vec![vec![1, 2], vec![100], vec![200]]);
    assert_eq!(seen.counted, 2);
}

#[test]
fn an_operator_has_as_many_outputs_as_it_is_built_with() {
    let seen = run(&[&[1, 601, 100, 2], &[300, 699, 200], &[400, 500]], None, 0, 7, None);
    assert!(seen.error.is_none());
    let want: Vec<Vec<u64>> = vec![vec![1, 2], vec![100], vec![200], vec![300], vec![400], vec![500], vec![601, 699]];
    assert_eq!(seen.outputs, want);
    assert_eq!(seen.counted, 2);
    let seen = run(&[&[1, 2]], None, 0, 1, None);
    assert_eq!(seen.outputs, vec![vec![1, 2]]);
}

/// A source emitting `0..n`, one record per activation, failing at `fail_at`.
struct Counter {
    log: Log,
    inside: Arc<AtomicBool>,
    cap: Capability<Time>,
    next: u64,
    n: u64,
    fail_at: Option<u64>,
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.log.borrow_mut().push(Event::Dropped { inside: self.inside.load(Ordering::SeqCst) });
    }
}

impl SourceLogic<u64> for Counter {
    fn poll(&mut self, cx: &mut Cx<'_, u64>, _checkpoints: Option<&mut driver::Slot>) -> Result<Polled, Failure> {
        assert!(self.inside.load(Ordering::SeqCst), "poll runs inside the scope");
        self.log.borrow_mut().push(Event::Poll);
        if self.next == self.n {
            return Ok(Polled::Ended);
        }
        if self.fail_at == Some(self.next) {
            return Err(Failure::of(ErrorKind::Source, "counter", UdfError::new("cannot read")));
        }
        cx.give(&self.cap, &mut vec![self.next]);
        self.next += 1;
        cx.wake_after(Duration::ZERO);
        Ok(Polled::Going)
    }

    fn on_abort(&mut self) {
        self.log.borrow_mut().push(Event::Abort);
    }
}

/// Runs a `Counter` source of `n` records; cancels the job after `cancel_after` records.
fn run_source(n: u64, fail_at: Option<u64>, cancel_after: Option<usize>) -> (Vec<Event>, Option<JobError>, Vec<u64>) {
    let control = Arc::new(JobControl::new(1));
    let scope = Arc::new(Scope::default());
    let control2 = control.clone();
    let (log, seen) = timely::execute_directly(move |worker| {
        let log: Log = Rc::default();
        let seen: Rc<RefCell<Vec<u64>>> = Rc::default();
        let (log2, seen2) = (log.clone(), seen.clone());
        let env = env(&control2, &scope);
        worker.dataflow::<Time, _, _>(|s| {
            let inside = scope.inside.clone();
            let info = OpInfo { kind: ErrorKind::Source, ..OpInfo::udf("counter", Some(0)) };
            let out = driver::source(s, info, env.clone(), move |cap, _address| {
                Some(Counter { log: log2, inside, cap, next: 0, n, fail_at })
            });
            out.inspect(move |x| seen2.borrow_mut().push(*x));
        });
        while worker.step_or_park(Some(Duration::from_millis(1))) {
            if cancel_after.is_some_and(|c| seen.borrow().len() >= c) {
                control2.cancel();
            }
        }
        let log = log.borrow().clone();
        let seen = seen.borrow().clone();
        (log, seen)
    });
    (log, control.error(), seen)
}

#[test]
fn a_source_ends_when_it_says_so_and_is_dropped_inside_the_scope() {
    let (log, error, seen) = run_source(3, None, None);
    assert!(error.is_none());
    assert_eq!(seen, vec![0, 1, 2]);
    assert_eq!(count(&log, &Event::Poll), 4);
    assert_eq!(log.last(), Some(&Event::Dropped { inside: true }));
}

#[test]
fn a_failing_source_fails_the_job_once_in_its_name_and_is_not_polled_again() {
    let (log, error, seen) = run_source(5, Some(2), None);
    let error = error.expect("the job failed");
    assert_eq!((error.kind, error.operator.as_deref()), (ErrorKind::Source, Some("counter")));
    assert_eq!(seen, vec![0, 1]);
    assert_eq!(log, vec![Event::Poll, Event::Poll, Event::Poll, Event::Dropped { inside: true }]);
}

#[test]
fn an_aborted_source_lets_go_inside_the_scope_and_is_not_polled_again() {
    let (log, error, seen) = run_source(1_000_000, None, Some(3));
    assert_eq!(error.map(|e| e.kind), Some(ErrorKind::Cancelled));
    assert!(seen.len() < 1_000_000);
    let n = log.len();
    assert_eq!(log[n - 2..], [Event::Abort, Event::Dropped { inside: true }]);
}
