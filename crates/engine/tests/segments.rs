//! Checkpoint segments (issue 13, step 1): sources move to the segment the job asks for
//! at a batch boundary, marking their position first, and operators downstream see the
//! least segment of their input frontier advance. Nothing is lost or reordered across a
//! segment boundary, and a record's segment is exactly the one its source's marks say.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::{InputCapability, Probe};

use common::*;
use ferroflow_engine::control::JobControl;
use ferroflow_engine::functions::{SourceReader, SourceStatus, WorkerContext};
use ferroflow_engine::operators::driver::{self, Cx, Failure, OpInfo, OperatorLogic, UnaryInput};
use ferroflow_engine::operators::{self, OpEnv};
use ferroflow_engine::process::{Emit, ProcessFactory, Processor, SharedContext};
use ferroflow_engine::time::{least_segment, Time};
use ferroflow_engine::{NodeKind, Plan, UdfResult};

/// Each worker's reader emits `V::I(worker * STRIDE + i)` for `i` in `0..n`.
const STRIDE: i64 = 1_000_000;

/// Marks a reader received: (worker, segment, index of the next record).
type Marks = Arc<Mutex<Vec<(usize, u64, i64)>>>;

/// Where a reader finds the job's control (set after `start` in a planned job).
type ControlSlot = Arc<Mutex<Option<Arc<JobControl>>>>;

/// A reader that asks the job for segments itself once it has emitted given records,
/// so the requests fall at known points while it runs.
struct Segmented {
    worker: usize,
    next: i64,
    n: i64,
    /// (records emitted, segment to ask for then), in order.
    asks: Vec<(i64, u64)>,
    control: ControlSlot,
    marks: Marks,
    /// After its last record the reader does not end until this many observers have
    /// seen its last segment: a frontier may skip values on its way (progress news is
    /// batched), so the test holds the last one open to see it (for [`HANG`] at most,
    /// so a broken engine fails the test instead of hanging it).
    hold: Option<(Arc<AtomicUsize>, usize, Instant)>,
}

impl SourceReader<V> for Segmented {
    fn poll(&mut self, max: usize, out: &mut Vec<V>) -> UdfResult<SourceStatus> {
        let Some(control) = self.control.lock().unwrap().clone() else {
            // The job has not published its control yet: nothing to emit before it.
            return Ok(SourceStatus::More);
        };
        let last = (self.next + max as i64).min(self.n);
        out.extend((self.next..last).map(|i| V::I(self.worker as i64 * STRIDE + i)));
        self.next = last;
        while let Some(&(at, segment)) = self.asks.first() {
            if self.next < at {
                break;
            }
            control.request_segment(segment);
            self.asks.remove(0);
        }
        let held = self
            .hold
            .as_ref()
            .is_some_and(|(seen, needed, until)| seen.load(Ordering::SeqCst) < *needed && Instant::now() < *until);
        Ok(if self.next == self.n && !held { SourceStatus::Done } else { SourceStatus::More })
    }

    fn mark_position(&mut self, segment: u64) -> UdfResult<()> {
        self.marks.lock().unwrap().push((self.worker, segment, self.next));
        Ok(())
    }
}

fn segmented_source(
    n: i64,
    asks: Vec<(i64, u64)>,
    control: ControlSlot,
    marks: Marks,
    hold: Option<(Arc<AtomicUsize>, usize)>,
) -> impl Fn(&WorkerContext) -> UdfResult<Segmented> {
    move |ctx: &WorkerContext| {
        Ok(Segmented {
            worker: ctx.index,
            next: 0,
            n,
            asks: asks.clone(),
            control: control.clone(),
            marks: marks.clone(),
            hold: hold.clone().map(|(seen, needed)| (seen, needed, Instant::now() + HANG)),
        })
    }
}

/// What the observer saw on one worker.
#[derive(Default, Clone)]
struct Seen {
    /// The least segment of its input frontier, each time it changed.
    least: Vec<u64>,
    /// Every record with the segment of the batch it came in.
    records: Vec<(u64, i64)>,
}

impl Seen {
    fn note_frontier(&mut self, least: Option<u64>) {
        if let Some(s) = least {
            if self.least.last() != Some(&s) {
                self.least.push(s);
            }
        }
    }
}

/// Records the frontier's least segment and each batch's segment, and passes records on;
/// counts itself in `reached` once the least segment is `last`.
struct Observer {
    seen: Rc<RefCell<Seen>>,
    reached: Arc<AtomicUsize>,
    last: u64,
}

impl Observer {
    fn note(&mut self, least: Option<u64>) {
        let mut seen = self.seen.borrow_mut();
        let before = seen.least.last().copied();
        seen.note_frontier(least);
        if before != Some(self.last) && seen.least.last() == Some(&self.last) {
            self.reached.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl OperatorLogic<V> for Observer {
    fn on_frontier(&mut self, cx: &mut Cx<'_, V>) -> Result<(), Failure> {
        self.note(least_segment(cx.frontier(0)));
        Ok(())
    }
}

impl UnaryInput<V, V> for Observer {
    fn on_batch(&mut self, cx: &mut Cx<'_, V>, cap: &InputCapability<Time>, data: &mut Vec<V>) -> Result<(), Failure> {
        self.note(least_segment(cx.frontier(0)));
        let mut seen = self.seen.borrow_mut();
        let segment = cap.stamp().iter().map(|t| t.segment).min().expect("a batch has a time");
        assert!(segment >= *seen.least.last().unwrap_or(&0), "a batch below the frontier's least segment");
        seen.records.extend(data.iter().map(|v| (segment, v.int())));
        drop(seen);
        cx.give(cap, data);
        Ok(())
    }
}

fn op_env(control: &Arc<JobControl>, index: usize, peers: usize, batch_size: usize) -> Rc<OpEnv> {
    let worker = WorkerContext { index, peers, waker: None, checkpointing: Default::default() };
    let scope = Arc::new(ferroflow_engine::functions::NoScope);
    Rc::new(OpEnv { batch_size, object_reuse: true, ..OpEnv::for_worker(control.clone(), scope, worker, 2) })
}

/// Runs the engine's source operator over `Segmented` readers on `workers` workers,
/// exchanged into an observer (so it sees every source in its frontier), with the sinks'
/// flow control on. Returns each worker's observation and every mark.
fn observe(
    workers: usize,
    n: i64,
    asks: Vec<(i64, u64)>,
    through_process: bool,
) -> (Vec<Seen>, Vec<(usize, u64, i64)>) {
    let control = Arc::new(JobControl::new(2));
    let marks: Marks = Arc::default();
    let slot: ControlSlot = Arc::new(Mutex::new(Some(control.clone())));
    let last = asks.last().map_or(0, |a| a.1);
    let reached = Arc::new(AtomicUsize::new(0));
    let make = segmented_source(n, asks, slot, marks.clone(), Some((reached.clone(), workers)));
    let factory = reader_source(make);
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let env = op_env(&control, worker.index(), worker.peers(), 10);
        let seen: Rc<RefCell<Seen>> = Rc::default();
        worker.dataflow::<Time, _, _>(|scope| {
            let mut stream = operators::source(scope, 0, "segmented", &factory, true, None, env.clone());
            if through_process {
                // Emits at capabilities it holds (its anchors), not at its input's.
                let pass: ProcessFactory<V> = Arc::new(|_ctx: &WorkerContext, _state: &SharedContext<V>| {
                    Ok(Box::new(PassThrough) as Box<dyn Processor<V>>)
                });
                stream = operators::process_plain(stream, 0, "pass", &pass, None, 0, env.clone()).remove(0);
            }
            let exchange = Exchange::new(|v: &V| v.int() as u64);
            let observer = Observer { seen: seen.clone(), reached: reached.clone(), last };
            let out =
                driver::unary(stream, exchange, OpInfo::udf("observer", Some(1)), env.clone(), |_cap| Some(observer));
            out.probe_with(&env.probe);
        });
        while worker.step_or_park(Some(Duration::from_millis(1))) {}
        assert!(control.error().is_none(), "{:?}", control.error());
        let seen = seen.borrow().clone();
        seen
    })
    .expect("timely runs");
    let seen = guards.join().into_iter().map(|r| r.expect("worker ran")).collect();
    let marks = marks.lock().unwrap().clone();
    (seen, marks)
}

/// Every record arrived once, in the segment its source's marks put it in: record `i`
/// of worker `w` is in the highest segment marked at or before `i` (0 if none).
/// Through an operator that emits at its own capabilities, a record may go out in an
/// earlier segment than its source's (`exact` false), never a later one. Returns how
/// many did.
fn check_records(seen: &[Seen], marks: &[(usize, u64, i64)], workers: usize, n: i64, exact: bool, what: &str) -> usize {
    let mut all: Vec<(u64, i64)> = seen.iter().flat_map(|s| s.records.iter().copied()).collect();
    all.sort_by_key(|&(_, v)| v);
    let want: Vec<i64> = (0..workers as i64).flat_map(|w| (0..n).map(move |i| w * STRIDE + i)).collect();
    assert_eq!(all.iter().map(|&(_, v)| v).collect::<Vec<_>>(), want, "{what}: every record, once");
    let mut earlier = 0;
    for (segment, v) in all {
        let (w, i) = ((v / STRIDE) as usize, v % STRIDE);
        let expected = marks.iter().filter(|&&(mw, _, at)| mw == w && at <= i).map(|&(_, s, _)| s).max().unwrap_or(0);
        if exact {
            assert_eq!(segment, expected, "{what}: record {i} of worker {w} (marks {marks:?})");
        } else {
            assert!(segment <= expected, "{what}: record {i} of worker {w} in {segment} (marks {marks:?})");
        }
        earlier += usize::from(segment < expected);
    }
    earlier
}

/// Each worker's marks: strictly increasing segments at non-decreasing positions.
fn marks_by_worker(marks: &[(usize, u64, i64)]) -> BTreeMap<usize, Vec<(u64, i64)>> {
    let mut by: BTreeMap<usize, Vec<(u64, i64)>> = BTreeMap::new();
    for &(w, s, at) in marks {
        by.entry(w).or_default().push((s, at));
    }
    for ms in by.values() {
        assert!(ms.windows(2).all(|p| p[0].0 < p[1].0 && p[0].1 <= p[1].1), "marks out of order: {ms:?}");
    }
    by
}

#[test]
fn segments_advance_downstream_and_every_record_arrives() {
    let n = 1000;
    for workers in [1, 2] {
        let what = format!("workers={workers}");
        let (seen, marks) = observe(workers, n, vec![(250, 1), (500, 2), (750, 3)], false);
        assert_eq!(check_records(&seen, &marks, workers, n, true, &what), 0);
        let by = marks_by_worker(&marks);
        assert_eq!(by.len(), workers, "{what}: every source marked its position: {marks:?}");
        for ms in by.values() {
            assert_eq!(ms.last().map(|m| m.0), Some(3), "{what}: {marks:?}");
        }
        if workers == 1 {
            // One source: it asks and moves at its next batch boundary, every step seen.
            assert_eq!(marks, vec![(0, 1, 250), (0, 2, 500), (0, 3, 750)]);
        }
        for s in &seen {
            assert!(s.least.windows(2).all(|p| p[0] < p[1]), "{what}: least segment went back: {:?}", s.least);
            assert_eq!(s.least.first(), Some(&0), "{what}: {:?}", s.least);
            assert_eq!(s.least.last(), Some(&3), "{what}: {:?}", s.least);
            if workers == 1 {
                assert_eq!(s.least, vec![0, 1, 2, 3]);
            }
        }
    }
}

#[test]
fn a_source_jumps_over_segments_it_never_saw() {
    let n = 600;
    for workers in [1, 2] {
        let what = format!("workers={workers}");
        // Asked for 3 at once: 1 and 2 are empty, one mark serves them all.
        let (seen, marks) = observe(workers, n, vec![(200, 3)], false);
        assert_eq!(check_records(&seen, &marks, workers, n, true, &what), 0);
        let by = marks_by_worker(&marks);
        assert_eq!(by.len(), workers, "{what}: {marks:?}");
        for ms in by.values() {
            assert_eq!(ms.len(), 1, "{what}: one jump, one mark: {marks:?}");
            assert_eq!(ms[0].0, 3, "{what}: {marks:?}");
        }
        for s in &seen {
            assert_eq!(s.least, vec![0, 3], "{what}: no operator sees the skipped segments");
        }
    }
}

/// A process function passing records on (no timers): what it emits goes out at its anchors.
struct PassThrough;

impl Processor<V> for PassThrough {
    fn process(&mut self, value: V, out: &mut Emit<'_, V>) -> UdfResult<()> {
        out.main.push(value);
        Ok(())
    }
}

#[test]
fn an_operator_emitting_at_held_capabilities_follows_the_segments() {
    let n = 1000;
    for workers in [1, 2] {
        let what = format!("workers={workers}");
        let (seen, marks) = observe(workers, n, vec![(250, 1), (500, 2), (750, 3)], true);
        let earlier = check_records(&seen, &marks, workers, n, false, &what);
        if workers == 1 {
            // Its frontier learns of a move one batch late, so one batch per move goes out
            // in the segment before; anchors left from the activation before would make
            // it two (the operator must move them up before emitting).
            assert!(earlier <= 10 * marks.len(), "{what}: {earlier} records in an earlier segment");
        }
        for s in &seen {
            assert!(s.least.windows(2).all(|p| p[0] < p[1]), "{what}: least segment went back: {:?}", s.least);
            assert_eq!((s.least.first(), s.least.last()), (Some(&0), Some(&3)), "{what}: {:?}", s.least);
        }
        // Records of the last segment left in it: the anchors moved up before emitting.
        let last_mark: BTreeMap<usize, i64> = marks.iter().filter(|m| m.1 == 3).map(|m| (m.0, m.2)).collect();
        let late: Vec<(u64, i64)> = seen
            .iter()
            .flat_map(|s| s.records.iter().copied())
            .filter(|&(_, v)| last_mark.get(&((v / STRIDE) as usize)).is_some_and(|&at| v % STRIDE >= at + 100))
            .collect();
        assert!(!late.is_empty(), "{what}");
        if workers == 1 {
            assert!(late.iter().all(|&(s, _)| s == 3), "{what}: {late:?}");
        }
    }
}

#[test]
fn a_planned_job_keeps_every_record_across_segments() {
    let n = 3000;
    for workers in [1, 2] {
        let what = format!("workers={workers}");
        let (out, looped) = (new_out(), new_out());
        let slot: ControlSlot = Arc::default();
        let marks: Marks = Arc::default();
        let mut plan = Plan::new();
        let factory =
            reader_source(segmented_source(n, vec![(700, 1), (1400, 2), (2100, 3)], slot.clone(), marks.clone(), None));
        let src = plan.add("source", vec![], NodeKind::Source { factory, parallel: true });
        let pairs = plan.add("pairs", vec![src], NodeKind::Transform(map(|v: V| V::KV(v.int() % 7, 1))));
        let keyed = plan.add("key_by", vec![pairs], NodeKind::KeyBy(key_by_k()));
        let counted = plan.add("count", vec![keyed], NodeKind::Reduce(sum_kv()));
        plan.add("sink", vec![counted], NodeKind::Sink(sink(&out)));
        // A loop beside it: every record goes around twice (feedback keeps its segment).
        let rounds = plan.add("rounds", vec![src], NodeKind::Transform(map(|v: V| V::KV(v.int(), 2))));
        let head = plan.add("iterate", vec![rounds], NodeKind::Iterate { feedback: None, max_wait: None });
        let minus = plan.add("minus", vec![head], NodeKind::Transform(map(|v: V| V::KV(v.kv().0, v.kv().1 - 1))));
        let back = plan.add("again", vec![minus], NodeKind::Transform(filter(|v: &V| v.kv().1 > 0)));
        let exit = plan.add("exit", vec![minus], NodeKind::Transform(filter(|v: &V| v.kv().1 == 0)));
        plan.close_loop(head, back);
        plan.add("sink loop", vec![exit], NodeKind::Sink(sink(&looped)));
        let running = ferroflow_engine::start(Arc::new(plan), cfg(workers)).expect("starts");
        *slot.lock().unwrap() = Some(running.control.clone());
        let deadline = Instant::now() + HANG;
        while !running.finished() {
            assert!(Instant::now() < deadline, "{what}: hang");
            std::thread::sleep(Duration::from_millis(2));
        }
        let summary = running.join().unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let total = workers as i64 * n;
        assert_eq!(summary.counts[counted], total as u64, "{what}");
        let mut last: BTreeMap<i64, i64> = BTreeMap::new();
        for v in values(&out) {
            let (k, c) = v.kv();
            let e = last.entry(k).or_default();
            *e = (*e).max(c);
        }
        let mut want: BTreeMap<i64, i64> = BTreeMap::new();
        for w in 0..workers as i64 {
            for i in 0..n {
                *want.entry((w * STRIDE + i) % 7).or_default() += 1;
            }
        }
        assert_eq!(last, want, "{what}: final counts per key");
        let mut exits: Vec<i64> = values(&looped).iter().map(|v| v.kv().0).collect();
        exits.sort();
        let every: Vec<i64> = (0..workers as i64).flat_map(|w| (0..n).map(move |i| w * STRIDE + i)).collect();
        assert_eq!(exits, every, "{what}: every record left the loop once");
        let by = marks_by_worker(&marks.lock().unwrap());
        assert_eq!(by.len(), workers, "{what}");
        assert!(by.values().all(|ms| ms.last().map(|m| m.0) == Some(3)), "{what}: {by:?}");
    }
}
