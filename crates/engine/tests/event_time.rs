//! Event time end to end, on the dataflow (no Python): testing sources with explicit
//! watermarks and processing-time markers, timestamp assigners, keyed event-time windows
//! with late data, parallel sources whose partitions each make a watermark, idleness,
//! manual processing time, and the errors a job without timestamps gets. Results must
//! not depend on the number of workers or processes.
//!
//! Records are `Stamped<E>`: a small value type with the event timestamp beside it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use common::*;
use ferroflow_engine::cluster::{self, ClusterConfig};
use ferroflow_engine::connectors::testing::{TestEvent, TestingSource};
use ferroflow_engine::functions::closures::*;
use ferroflow_engine::functions::*;
use ferroflow_engine::key::key_of;
use ferroflow_engine::process::SharedContext;
use ferroflow_engine::record::{describe_truncated, BatchReadError, Stamped};
use ferroflow_engine::windows::event_time::{Assigner, WindowConfig};
use ferroflow_engine::ApplyFactory;
use ferroflow_engine::{
    start, ErrorKind, ExecConfig, JobError, JobSummary, NodeKind, Plan, Record, Running, RuntimeMode, Semantics,
    UdfResult, WatermarkSpec, WindowFunction, WindowSpec,
};

// ---------------------------------------------------------------- records

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum E {
    Int(i64),
    /// (key, value)
    Kv(i64, i64),
    /// A key value, as window functions receive it.
    Key(i64),
    /// What a window function saw: its key, window, values (in the order handed over)
    /// and the context's watermark and processing time.
    Fired {
        key: i64,
        start: i64,
        end: i64,
        values: Vec<i64>,
        watermark: i64,
        processing: i64,
    },
}

impl Record for E {
    fn from_lines(lines: &mut Vec<String>, out: &mut Vec<Self>) {
        out.extend(lines.drain(..).map(|l| E::Int(l.len() as i64)));
    }

    fn from_ints(range: std::ops::RangeInclusive<i64>, out: &mut Vec<Self>) {
        out.extend(range.map(E::Int));
    }

    fn describe(&self) -> String {
        describe_truncated(&format!("{self:?}"))
    }

    fn encode_batch<'a>(records: impl ExactSizeIterator<Item = &'a Self>, out: &mut Vec<u8>) -> Result<(), String> {
        encode_bincode_batch(records, out)
    }

    fn decode_batch(bytes: &[u8], out: &mut Vec<Self>) -> Result<(), BatchReadError> {
        decode_bincode_batch(bytes, out)
    }
}

type S = Stamped<E>;

fn kv(r: &S) -> (i64, i64) {
    match r.value {
        E::Kv(k, v) => (k, v),
        ref other => panic!("not a Kv: {other:?}"),
    }
}

/// A testing-source record: key `k`, value `v`, timestamp `ts`.
fn rec(k: i64, v: i64, ts: i64) -> TestEvent<S> {
    TestEvent::Record(Stamped::at(E::Kv(k, v), ts))
}

/// A testing-source record without a timestamp.
fn bare(k: i64, v: i64) -> TestEvent<S> {
    TestEvent::Record(Stamped::new(E::Kv(k, v)))
}

fn wm(t: i64) -> TestEvent<S> {
    TestEvent::Watermark(t)
}

fn pt(t: i64) -> TestEvent<S> {
    TestEvent::ProcessingTime(t)
}

// ---------------------------------------------------------------- user functions

/// A non-parallel source reading from the reader `make` builds.
fn single_source<Rd: SourceReader<S>>(make: impl Fn() -> Rd + Send + Sync + 'static) -> NodeKind<S> {
    NodeKind::Source { factory: reader_source(move |_ctx| Ok(make())), parallel: false }
}

fn testing_source(events: Vec<TestEvent<S>>) -> NodeKind<S> {
    single_source(move || TestingSource::new(events.clone(), 0))
}

fn vec_of(items: Vec<S>) -> NodeKind<S> {
    NodeKind::Source { factory: vec_source(items), parallel: false }
}

/// Keys `Kv(k, _)` by `k`; the key value is `Key(k)`.
fn by_k() -> KeyFactory<S> {
    key_by(|r: &S| {
        let k = kv(r).0;
        (key_of(&k), Stamped::new(E::Key(k)))
    })
}

/// A window function emitting one `Fired` per call.
fn fired() -> ApplyFactory<S> {
    Arc::new(|_ctx: &WorkerContext, _state: &SharedContext<S>| {
        Ok(Box::new(ApplyFn(|key: &S, ctx: &WindowContext, values: Vec<S>| {
            let E::Key(key) = key.value else { panic!("not a key: {key:?}") };
            let WindowInfo::Time(w) = ctx.window else { panic!("not a time window") };
            let values = values.iter().map(|v| kv(v).1).collect();
            Ok(vec![Stamped::new(E::Fired {
                key,
                start: w.start,
                end: w.end,
                values,
                watermark: ctx.watermark,
                processing: ctx.processing_time,
            })])
        })) as Box<dyn WindowApply<S>>)
    })
}

/// Sums the values of one key (the result has no timestamp of its own).
fn sum() -> ReduceFactory<S> {
    reducer(|a: &S, b: &S| {
        let ((k, x), (k2, y)) = (kv(a), kv(b));
        assert_eq!(k, k2, "reduce mixed keys");
        Stamped::new(E::Kv(k, x + y))
    })
}

fn custom(make: impl Fn() -> WindowConfig<S> + Send + Sync + 'static) -> WindowSpec<S> {
    WindowSpec::Custom(Arc::new(move |_ctx: &WorkerContext, _state: &_| Ok(make())))
}

fn tumbling(size: i64) -> WindowSpec<S> {
    custom(move || WindowConfig::new(Assigner::tumbling_event_time(size, 0)))
}

/// Timestamps from the value of `Kv(_, v)`.
fn ts_from_value() -> TimestampFactory<S> {
    Arc::new(|_ctx: &WorkerContext| Ok(Box::new(TimestampFn(|r: &S| Ok(kv(r).1))) as Box<dyn TimestampAssigner<S>>))
}

fn assign(assigner: Option<TimestampFactory<S>>, watermarks: WatermarkSpec, idleness_ms: Option<i64>) -> NodeKind<S> {
    NodeKind::AssignTimestamps { assigner, watermarks, idleness_ms }
}

fn bounded(bound_ms: i64) -> WatermarkSpec {
    WatermarkSpec::BoundedOutOfOrderness { bound_ms }
}

const WINDOW: &str = "window 'w' (test.py:7)";

/// A job around one keyed window:
/// source [-> assign] [-> map] -> key_by -> window -> sink [-> late output -> late sink],
/// the nodes added in that order (tests read `summary.counts` by position). The window
/// is named [`WINDOW`] and its function is [`fired`] unless [`WindowJob::reduce`] says otherwise.
struct WindowJob {
    source: NodeKind<S>,
    assigner: Option<NodeKind<S>>,
    map: Option<NodeKind<S>>,
    spec: WindowSpec<S>,
    function: WindowFunction<S>,
    late: Option<Out<S>>,
    manual_processing_time: bool,
}

fn window_job(source: NodeKind<S>, spec: WindowSpec<S>) -> WindowJob {
    WindowJob {
        source,
        assigner: None,
        map: None,
        spec,
        function: WindowFunction::Apply(fired()),
        late: None,
        manual_processing_time: false,
    }
}

impl WindowJob {
    /// A timestamp/watermark assigner (see [`assign`]) right after the source.
    fn assign(mut self, assigner: NodeKind<S>) -> Self {
        self.assigner = Some(assigner);
        self
    }

    /// A map between the assigner (or source) and the key_by.
    fn map(mut self, f: impl Fn(S) -> S + Clone + Send + Sync + 'static) -> Self {
        self.map = Some(NodeKind::Transform(map(f)));
        self
    }

    /// An incremental reduce instead of [`fired`].
    fn reduce(mut self, reducer: ReduceFactory<S>) -> Self {
        self.function = WindowFunction::Reduce(reducer);
        self
    }

    /// Late records go to a late output, collected in `late`.
    fn late_into(mut self, late: &Out<S>) -> Self {
        self.late = Some(late.clone());
        self
    }

    fn manual_processing_time(mut self) -> Self {
        self.manual_processing_time = true;
        self
    }

    /// The plan, its window results collected in `out`.
    fn collect_into(self, out: &Out<S>) -> Plan<S> {
        self.plan(sink(out))
    }

    /// The plan, its window results collected in `out` and logged in `log` (see [`logging_sink`]).
    fn log_into(self, out: &Out<S>, log: &Log) -> Plan<S> {
        self.plan(logging_sink(out, log))
    }

    fn plan(self, results: SinkFactory<S>) -> Plan<S> {
        let mut plan = Plan::new();
        plan.manual_processing_time = self.manual_processing_time;
        let mut last = plan.add("source", vec![], self.source);
        if let Some(a) = self.assigner {
            last = plan.add("assign_timestamps_and_watermarks", vec![last], a);
        }
        if let Some(m) = self.map {
            last = plan.add("map", vec![last], m);
        }
        let keyed = plan.add("key_by", vec![last], NodeKind::KeyBy(by_k()));
        let win = plan.add(WINDOW, vec![keyed], NodeKind::Window { spec: self.spec, function: self.function });
        plan.add("sink", vec![win], NodeKind::Sink(results));
        if let Some(late) = &self.late {
            let l = plan.add("late data", vec![win], NodeKind::LateOutput);
            plan.add("late sink", vec![l], NodeKind::Sink(sink(late)));
        }
        plan
    }
}

// ---------------------------------------------------------------- running

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Workers in this process, batch size.
    Workers(usize, usize),
    /// Two processes (threads of this test process talking over 127.0.0.1) of one
    /// worker each, batch size.
    Processes(usize),
}

const MODES: [Mode; 5] =
    [Mode::Workers(1, 1024), Mode::Workers(1, 1), Mode::Workers(2, 2), Mode::Workers(2, 1024), Mode::Processes(1024)];

/// Runs the plan `make` builds in `mode`. With two processes, `make` is called once per
/// process; the summaries must agree (every process reports the whole job's counts) and
/// the warnings are those of both.
fn run_in(mode: Mode, make: &dyn Fn() -> Plan<S>) -> Result<JobSummary, JobError> {
    match mode {
        Mode::Workers(workers, batch) => run_plan(make(), cfg_batch(workers, batch)),
        Mode::Processes(batch) => {
            let listeners: Vec<TcpListener> = (0..2).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
            let addresses: Vec<String> = listeners.iter().map(|l| l.local_addr().unwrap().to_string()).collect();
            drop(listeners);
            let secret = cluster::generate_secret();
            let runs: Vec<Running> = (0..2)
                .map(|p| {
                    let cluster = ClusterConfig::new(p, addresses.clone(), secret.clone())
                        .connect_timeout(Duration::from_secs(10));
                    let config =
                        ExecConfig { workers: 1, batch_size: batch, cluster: Some(cluster), ..ExecConfig::default() };
                    start(Arc::new(make()), config).unwrap()
                })
                .collect();
            let deadline = Instant::now() + HANG;
            while runs.iter().any(|r| !r.finished()) {
                if Instant::now() > deadline {
                    runs.iter().for_each(|r| r.control.cancel());
                    runs.into_iter().for_each(|r| drop(r.join()));
                    panic!("the 2-process job did not finish within {HANG:?} (hang)");
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let mut results: Vec<Result<JobSummary, JobError>> = runs.into_iter().map(|r| r.join()).collect();
            let second = results.pop().unwrap();
            let first = results.pop().unwrap();
            match (first, second) {
                (Ok(mut a), Ok(b)) => {
                    assert_eq!(
                        (&a.counts, a.dropped, a.late_dropped),
                        (&b.counts, b.dropped, b.late_dropped),
                        "the processes disagree"
                    );
                    for w in b.warnings {
                        if !a.warnings.contains(&w) {
                            a.warnings.push(w);
                        }
                    }
                    Ok(a)
                }
                // The process whose operator failed says why; the other one may only
                // have lost its peer.
                (Err(a), Err(b)) if a.operator.is_none() => Err(b),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
    }
}

fn run_ok_in(mode: Mode, make: &dyn Fn() -> Plan<S>) -> JobSummary {
    match run_in(mode, make) {
        Ok(s) => s,
        Err(e) => panic!("{mode:?}: the job failed: {e}"),
    }
}

fn run_err_in(mode: Mode, make: &dyn Fn() -> Plan<S>) -> JobError {
    match run_in(mode, make) {
        Ok(s) => panic!("{mode:?}: the job should fail: {s:?}"),
        Err(e) => e,
    }
}

/// Runs, in `mode`, the plan `make` builds around a fresh output; returns the summary
/// and what the output collected.
fn run_collecting(mode: Mode, make: impl Fn(&Out<S>) -> Plan<S>) -> (JobSummary, Out<S>) {
    let out = new_out();
    let summary = run_ok_in(mode, &|| make(&out));
    (summary, out)
}

/// Window firings per key, in the order the key's windows fired: (start, end, values).
/// Checks every output carries its window's max timestamp and each key stays on one
/// worker.
type PerKey = BTreeMap<i64, Vec<(i64, i64, Vec<i64>)>>;

fn per_key(out: &Out<S>) -> PerKey {
    let mut m: PerKey = BTreeMap::new();
    let mut owner = BTreeMap::new();
    for (worker, r) in out.lock().unwrap().iter() {
        let E::Fired { key, start, end, values, .. } = &r.value else { panic!("not a firing: {r:?}") };
        assert_eq!(r.ts, end - 1, "a window result must carry the window's max timestamp: {r:?}");
        assert_eq!(*owner.entry(*key).or_insert(*worker), *worker, "key {key} fired on two workers");
        m.entry(*key).or_default().push((*start, *end, values.clone()));
    }
    m
}

/// [`per_key`] with each firing's values sorted (for windows fed by several partitions).
fn per_key_sorted_values(out: &Out<S>) -> PerKey {
    let mut m = per_key(out);
    m.values_mut().for_each(|ws| ws.iter_mut().for_each(|w| w.2.sort()));
    m
}

/// (key, start, end, context watermark, context processing time) of each firing.
fn contexts(out: &Out<S>) -> Vec<(i64, i64, i64, i64, i64)> {
    let mut v: Vec<_> = values(out)
        .into_iter()
        .map(|r| match r.value {
            E::Fired { key, start, end, watermark, processing, .. } => (key, start, end, watermark, processing),
            other => panic!("not a firing: {other:?}"),
        })
        .collect();
    v.sort();
    v
}

/// (timestamp, key, value) of `Kv` records, sorted.
fn stamped_kvs(out: &Out<S>) -> Vec<(i64, i64, i64)> {
    let mut v: Vec<_> = values(out)
        .iter()
        .map(|r| {
            let (k, x) = kv(r);
            (r.ts, k, x)
        })
        .collect();
    v.sort();
    v
}

fn expect(rows: &[(i64, &[(i64, i64, &[i64])])]) -> PerKey {
    rows.iter().map(|(k, ws)| (*k, ws.iter().map(|(s, e, vs)| (*s, *e, vs.to_vec())).collect())).collect()
}

fn late_warning(summary: &JobSummary) -> Option<&String> {
    summary.warnings.iter().find(|w| w.starts_with(WINDOW) && w.contains("behind the watermark"))
}

// ---------------------------------------------------------------- every assigner, everywhere

/// Three keys, out of order, with watermarks, processing-time markers (meaningless
/// here: processing time is not manual) and one record that is late for 10 ms windows.
fn shared_events() -> Vec<TestEvent<S>> {
    vec![
        rec(1, 1, 1),
        rec(2, 10, 3),
        rec(1, 2, 7),
        rec(3, 100, 12),
        rec(1, 3, 4),
        wm(5),
        rec(1, 4, 9),
        rec(2, 11, 6),
        pt(100),
        rec(1, 5, 13),
        rec(2, 12, 15),
        wm(11),
        rec(1, 6, 2), // behind watermark 11
        rec(3, 101, 18),
        rec(2, 13, 21),
        wm(25),
        pt(200),
        rec(1, 7, 30),
    ]
}

/// The last watermark of [`shared_events`]: windows ending after it fire at the end of
/// input only.
const LAST_WATERMARK: i64 = 25;

struct Case {
    name: &'static str,
    spec: fn() -> WindowSpec<S>,
    want: PerKey,
    late_dropped: u64,
}

fn shared_cases() -> Vec<Case> {
    vec![
        Case {
            name: "tumbling 10",
            spec: || tumbling(10),
            want: expect(&[
                (1, &[(0, 10, &[1, 2, 3, 4]), (10, 20, &[5]), (30, 40, &[7])]),
                (2, &[(0, 10, &[10, 11]), (10, 20, &[12]), (20, 30, &[13])]),
                (3, &[(10, 20, &[100, 101])]),
            ]),
            late_dropped: 1,
        },
        Case {
            name: "sliding 10 / 5",
            spec: || custom(|| WindowConfig::new(Assigner::sliding_event_time(10, 5, 0))),
            want: expect(&[
                (
                    1,
                    &[
                        (-5, 5, &[1, 3]),
                        (0, 10, &[1, 2, 3, 4]),
                        (5, 15, &[2, 4, 5]),
                        (10, 20, &[5]),
                        (25, 35, &[7]),
                        (30, 40, &[7]),
                    ],
                ),
                (
                    2,
                    &[
                        (-5, 5, &[10]),
                        (0, 10, &[10, 11]),
                        (5, 15, &[11]),
                        (10, 20, &[12]),
                        (15, 25, &[12, 13]),
                        (20, 30, &[13]),
                    ],
                ),
                (3, &[(5, 15, &[100]), (10, 20, &[100, 101]), (15, 25, &[101])]),
            ]),
            late_dropped: 1,
        },
        Case {
            name: "session gap 5",
            spec: || custom(|| WindowConfig::new(Assigner::event_time_session(5))),
            // Key 1's session [1, 18) is still open at watermark 11: record 6 (ts 2) joins it.
            want: expect(&[
                (1, &[(1, 18, &[1, 2, 3, 4, 5, 6]), (30, 35, &[7])]),
                (2, &[(3, 11, &[10, 11]), (15, 20, &[12]), (21, 26, &[13])]),
                (3, &[(12, 17, &[100]), (18, 23, &[101])]),
            ]),
            late_dropped: 0,
        },
    ]
}

#[test]
fn event_time_windows_agree_at_one_and_two_workers_and_two_processes() {
    for case in shared_cases() {
        for mode in MODES {
            let what = format!("{} {mode:?}", case.name);
            let (summary, out) = run_collecting(mode, |out| {
                window_job(testing_source(shared_events()), (case.spec)()).collect_into(out)
            });
            assert_eq!(per_key(&out), case.want, "{what}");
            assert_eq!(summary.late_dropped, case.late_dropped, "{what}");
            assert_eq!(late_warning(&summary).is_some(), case.late_dropped > 0, "{what}: {:?}", summary.warnings);
            let firings: usize = case.want.values().map(Vec::len).sum();
            assert_eq!(summary.counts[2], firings as u64, "{what}: the window's output count");
            // A window fires once the watermark reaches its max timestamp, and not before;
            // the ones no watermark reached fire at the end of input (watermark +inf).
            for (key, start, end, watermark, _) in contexts(&out) {
                if end - 1 > LAST_WATERMARK {
                    assert_eq!(watermark, i64::MAX, "{what}: key {key} [{start}, {end}) fired before the end of input");
                } else {
                    assert!(watermark >= end - 1, "{what}: key {key} [{start}, {end}) fired at watermark {watermark}");
                }
            }
        }
    }
}

#[test]
fn incremental_reduce_results_carry_the_window_max_timestamp() {
    for mode in MODES {
        let (summary, out) = run_collecting(mode, |out| {
            window_job(testing_source(shared_events()), tumbling(10)).reduce(sum()).collect_into(out)
        });
        // (max timestamp, key, sum): the tumbling case above, summed.
        let want = vec![(9, 1, 10), (9, 2, 21), (19, 1, 5), (19, 2, 12), (19, 3, 201), (29, 2, 13), (39, 1, 7)];
        assert_eq!(stamped_kvs(&out), want, "{mode:?}");
        assert_eq!(summary.late_dropped, 1, "{mode:?}");
    }
}

/// Window results are stamped with their window's max timestamp, so they can be
/// windowed again in event time (Flink's "window of windows"): 10 ms sums per key,
/// then 10 ms (and 20 ms) sums of those over all keys. Nothing of the first level is
/// late for the second.
#[test]
fn window_results_can_be_windowed_again() {
    for (second, mode) in [10, 20].into_iter().flat_map(|s| MODES.map(|m| (s, m))).cycle().take(30) {
        {
            let what = format!("second window {second} ms, {mode:?}");
            let (summary, out) = run_collecting(mode, |out| {
                let mut plan = Plan::new();
                let src = plan.add("source", vec![], testing_source(shared_events()));
                let keyed = plan.add("key_by", vec![src], NodeKind::KeyBy(by_k()));
                let first = plan.add(
                    "per key",
                    vec![keyed],
                    NodeKind::Window { spec: tumbling(10), function: WindowFunction::Reduce(sum()) },
                );
                // All keys together: key 0 (the timestamp stays).
                let zero = plan.add(
                    "key 0",
                    vec![first],
                    NodeKind::Transform(map(|r: S| Stamped::at(E::Kv(0, kv(&r).1), r.ts))),
                );
                let all = plan.add("all keys", vec![zero], NodeKind::KeyBy(by_k()));
                let total = plan.add(
                    "total",
                    vec![all],
                    NodeKind::Window { spec: tumbling(second), function: WindowFunction::Reduce(sum()) },
                );
                plan.add("sink", vec![total], NodeKind::Sink(sink(out)));
                plan
            });
            // First level (see the reduce test): 31 at 9, 218 at 19, 13 at 29, 7 at 39.
            let want = if second == 10 {
                vec![(9, 0, 31), (19, 0, 218), (29, 0, 13), (39, 0, 7)]
            } else {
                vec![(19, 0, 249), (39, 0, 20)]
            };
            assert_eq!((stamped_kvs(&out), summary.late_dropped), (want, 1), "{what}: (results, late_dropped)");
        }
    }
}

// ---------------------------------------------------------------- lateness

fn late_events() -> Vec<TestEvent<S>> {
    vec![
        rec(1, 1, 1),
        wm(10),
        rec(1, 2, 3), // late: [0, 10) fired at watermark 10
        rec(1, 3, 12),
        rec(2, 4, 10), // on time: a timestamp at the watermark whose window is still open
        wm(20),
        rec(1, 5, 5),  // late
        rec(2, 6, 19), // late: [10, 20) fired at watermark 20
        rec(2, 7, 20),
    ]
}

/// Tumbling event-time windows of `size` whose late records go to a late output.
fn tumbling_with_late_output(size: i64) -> WindowSpec<S> {
    custom(move || WindowConfig::new(Assigner::tumbling_event_time(size, 0)).side_output_late_data())
}

#[test]
fn late_records_go_to_the_late_output_when_asked() {
    for mode in MODES {
        let late = new_out();
        let (summary, out) = run_collecting(mode, |out| {
            window_job(testing_source(late_events()), tumbling_with_late_output(10)).late_into(&late).collect_into(out)
        });
        let want = expect(&[(1, &[(0, 10, &[1]), (10, 20, &[3])]), (2, &[(10, 20, &[4]), (20, 30, &[7])])]);
        assert_eq!(per_key(&out), want, "{mode:?}");
        // Late records keep their own timestamps.
        assert_eq!(stamped_kvs(&late), vec![(3, 1, 2), (5, 1, 5), (19, 2, 6)], "{mode:?}");
        assert_eq!(summary.late_dropped, 0, "{mode:?}");
        assert_eq!(late_warning(&summary), None, "{mode:?}");
        assert_eq!(summary.counts[5], 3, "{mode:?}: the late output's count");
    }
}

#[test]
fn late_records_are_counted_and_warned_about_without_a_late_output() {
    for mode in MODES {
        let (summary, out) =
            run_collecting(mode, |out| window_job(testing_source(late_events()), tumbling(10)).collect_into(out));
        let want = expect(&[(1, &[(0, 10, &[1]), (10, 20, &[3])]), (2, &[(10, 20, &[4]), (20, 30, &[7])])]);
        assert_eq!(per_key(&out), want, "{mode:?}");
        assert_eq!(summary.late_dropped, 3, "{mode:?}");
        let warning =
            late_warning(&summary).unwrap_or_else(|| panic!("{mode:?}: no warning in {:?}", summary.warnings));
        assert!(warning.contains("side_output_late_data") && warning.contains("allowed_lateness"), "{warning}");
    }
}

#[test]
fn allowed_lateness_refires_the_window_until_its_cleanup() {
    let events = vec![
        rec(1, 1, 1),
        wm(10),        // [0, 10) fires: [1]
        rec(1, 2, 3),  // late but allowed (cleanup at 9 + 5): fires again at once
        rec(2, 20, 8), // another key's window [0, 10) never fired: it fires at once too
        wm(14),        // cleanup of [0, 10)
        rec(1, 3, 4),  // too late
        rec(1, 4, 12),
    ];
    for mode in MODES {
        let late = new_out();
        let (summary, out) = run_collecting(mode, |out| {
            let spec = custom(|| {
                WindowConfig::new(Assigner::tumbling_event_time(10, 0)).allowed_lateness(5).side_output_late_data()
            });
            window_job(testing_source(events.clone()), spec).late_into(&late).collect_into(out)
        });
        let want = expect(&[(1, &[(0, 10, &[1]), (0, 10, &[1, 2]), (10, 20, &[4])]), (2, &[(0, 10, &[20])])]);
        assert_eq!(per_key(&out), want, "{mode:?}");
        assert_eq!(stamped_kvs(&late), vec![(4, 1, 3)], "{mode:?}");
        // The re-firings happened on the late records, at watermark 10, before the end.
        let ctx = contexts(&out);
        assert_eq!(ctx.iter().filter(|c| c.1 == 0 && c.3 == 10).count(), 3, "{mode:?}: {ctx:?}");
        assert_eq!(summary.late_dropped, 0);
    }
    // Without a late output, the too-late record is counted; incremental functions re-fire too.
    for mode in MODES {
        let (summary, out) = run_collecting(mode, |out| {
            let spec = custom(|| WindowConfig::new(Assigner::tumbling_event_time(10, 0)).allowed_lateness(5));
            window_job(testing_source(events.clone()), spec).reduce(sum()).collect_into(out)
        });
        assert_eq!(stamped_kvs(&out), vec![(9, 1, 1), (9, 1, 3), (9, 2, 20), (19, 1, 4)], "{mode:?}");
        assert_eq!(summary.late_dropped, 1, "{mode:?}");
    }
}

// ---------------------------------------------------------------- timestamp assigners

/// `Kv(1, ts)` records, the timestamp in the value.
fn by_value(timestamps: &[i64]) -> Vec<S> {
    timestamps.iter().map(|&t| Stamped::new(E::Kv(1, t))).collect()
}

/// With a bound of 5 ms the watermark after the records so far is `max - 6`.
const OUT_OF_ORDER: [i64; 7] = [
    12, // watermark 6
    19, // watermark 13
    14, // = max - bound: on time; its window [10, 15) is still open (13 < 14)
    20, // watermark 14: [10, 15) fires
    14, // later than the bound by 1 ms: late
    15, // on time
    24, // watermark 18
];

#[test]
fn bounded_out_of_orderness_watermarks_trail_the_highest_timestamp_by_the_bound_plus_one() {
    // Batches of one record: each batch travels at the watermark of the records before it.
    for mode in [Mode::Workers(1, 1), Mode::Workers(2, 1), Mode::Processes(1)] {
        let late = new_out();
        let (summary, out) = run_collecting(mode, |out| {
            window_job(vec_of(by_value(&OUT_OF_ORDER)), tumbling_with_late_output(5))
                .assign(assign(Some(ts_from_value()), bounded(5), None))
                .late_into(&late)
                .collect_into(out)
        });
        let want = expect(&[(1, &[(10, 15, &[12, 14]), (15, 20, &[19, 15]), (20, 25, &[20, 24])])]);
        assert_eq!(per_key(&out), want, "{mode:?}");
        assert_eq!(stamped_kvs(&late), vec![(14, 1, 14)], "{mode:?}");
        assert_eq!(summary.late_dropped, 0, "{mode:?}");
        // [10, 15) fired at watermark 14, before the end; [20, 25) only at the end (18 < 24).
        let ctx = contexts(&out);
        assert_eq!((ctx[0].1, ctx[0].3), (10, 14), "{mode:?}: {ctx:?}");
        assert_eq!(ctx[2].3, i64::MAX, "{mode:?}: {ctx:?}");
    }
}

#[test]
fn without_watermarks_event_time_windows_fire_at_the_end_of_input_only() {
    for mode in [Mode::Workers(1, 1), Mode::Workers(2, 1), Mode::Workers(2, 1024)] {
        let (summary, out) = run_collecting(mode, |out| {
            window_job(vec_of(by_value(&OUT_OF_ORDER)), tumbling(5))
                .assign(assign(Some(ts_from_value()), WatermarkSpec::None, None))
                .collect_into(out)
        });
        let want = expect(&[(1, &[(10, 15, &[12, 14, 14]), (15, 20, &[19, 15]), (20, 25, &[20, 24])])]);
        assert_eq!(per_key(&out), want, "{mode:?}");
        assert_eq!(summary.late_dropped, 0, "{mode:?}");
        assert!(contexts(&out).iter().all(|c| c.3 == i64::MAX), "{mode:?}: {:?}", contexts(&out));
    }
}

#[test]
fn an_assigner_replaces_the_upstream_watermarks() {
    // Upstream watermarks far ahead of the records: without an assigner all are late.
    let events = vec![wm(1000), rec(1, 1, 5), rec(1, 2, 3), wm(2000), rec(1, 3, 7), rec(1, 4, 15)];
    for mode in [Mode::Workers(1, 1), Mode::Workers(2, 1)] {
        let (summary, out) =
            run_collecting(mode, |out| window_job(testing_source(events.clone()), tumbling(10)).collect_into(out));
        assert_eq!(per_key(&out), PerKey::new(), "{mode:?}");
        assert_eq!(summary.late_dropped, 4, "{mode:?}");

        // The assigner keeps the records' timestamps (no function) but makes its own
        // watermarks from them: nothing is late.
        let (summary, out) = run_collecting(mode, |out| {
            window_job(testing_source(events.clone()), tumbling(10))
                .assign(assign(None, bounded(0), None))
                .collect_into(out)
        });
        assert_eq!(per_key(&out), expect(&[(1, &[(0, 10, &[1, 2, 3]), (10, 20, &[4])])]), "{mode:?}");
        assert_eq!(summary.late_dropped, 0, "{mode:?}");
        // [0, 10) fired at the watermark the record at 15 made (14), not at upstream's 2000.
        let ctx = contexts(&out);
        assert_eq!(ctx[0].3, 14, "{mode:?}: {ctx:?}");
    }
}

/// A timestamp assigner that shifts the record's current timestamp (Flink's
/// `extract_timestamp(value, record_timestamp)`).
struct Shift(i64);

impl TimestampAssigner<S> for Shift {
    fn timestamp(&mut self, _record: &S, previous: i64) -> UdfResult<i64> {
        Ok(previous + self.0)
    }
}

#[test]
fn a_timestamp_assigner_sees_the_previous_timestamp() {
    let events = vec![rec(1, 1, 1), rec(1, 2, 8), rec(1, 3, 12)];
    let (_, out) = run_collecting(Mode::Workers(2, 1), |out| {
        let shift: TimestampFactory<S> =
            Arc::new(|_ctx: &WorkerContext| Ok(Box::new(Shift(5)) as Box<dyn TimestampAssigner<S>>));
        window_job(testing_source(events.clone()), tumbling(10))
            .assign(assign(Some(shift), bounded(0), None))
            .collect_into(out)
    });
    assert_eq!(per_key(&out), expect(&[(1, &[(0, 10, &[1]), (10, 20, &[2, 3])])]));
}

// ---------------------------------------------------------------- parallel sources

type Log = Arc<Mutex<Vec<String>>>;

fn new_log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

/// One source partition per worker: a testing source, optionally held back until
/// `gate` is set (and `delay` has passed since), optionally never ending (idle after
/// its events). Logs `<name> released` when the gate opens and sets `done` when its
/// events are out.
struct Partition {
    inner: TestingSource<S>,
    name: String,
    gate: Option<(Arc<AtomicBool>, Duration)>,
    gate_seen: Option<Instant>,
    done: Arc<AtomicBool>,
    endless: bool,
    /// After its events, stay open (polled, empty) until this is set.
    hold_open: Option<Arc<AtomicBool>>,
    log: Log,
}

impl SourceReader<S> for Partition {
    fn poll(&mut self, max: usize, out: &mut Vec<S>) -> UdfResult<SourceStatus> {
        if let Some((flag, delay)) = &self.gate {
            if !flag.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
                return Ok(SourceStatus::More);
            }
            let seen = *self.gate_seen.get_or_insert_with(Instant::now);
            if seen.elapsed() < *delay {
                std::thread::sleep(Duration::from_millis(1));
                return Ok(SourceStatus::More);
            }
            self.log.lock().unwrap().push(format!("{} released", self.name));
            self.gate = None;
        }
        if self.done.load(Ordering::SeqCst) {
            return Ok(self.after_events());
        }
        let status = self.inner.poll(max, out)?;
        if status == SourceStatus::Done {
            self.done.store(true, Ordering::SeqCst);
            if !out.is_empty() && (self.endless || self.hold_open.is_some()) {
                return Ok(SourceStatus::More);
            }
            return Ok(self.after_events());
        }
        Ok(status)
    }

    fn watermark(&self) -> Option<i64> {
        self.inner.watermark()
    }

    fn processing_time(&self) -> Option<i64> {
        self.inner.processing_time()
    }
}

impl Partition {
    fn after_events(&self) -> SourceStatus {
        if self.endless {
            // Nothing more, ever: never woken again.
            return SourceStatus::Idle;
        }
        match &self.hold_open {
            Some(flag) if !flag.load(Ordering::SeqCst) => {
                std::thread::sleep(Duration::from_millis(1));
                SourceStatus::More
            }
            _ => SourceStatus::Done,
        }
    }
}

struct PartitionSpec {
    events: Vec<TestEvent<S>>,
    /// Wait for the partition with this index to finish its events, then this long.
    after: Option<(usize, Duration)>,
    endless: bool,
    /// Stay open after the events until the partition with this index is done.
    hold_open_for: Option<usize>,
}

impl PartitionSpec {
    /// A partition that emits `events` at once and then ends.
    fn new(events: Vec<TestEvent<S>>) -> Self {
        PartitionSpec { events, after: None, endless: false, hold_open_for: None }
    }

    /// Starts `delay_ms` after partition `partition` has finished its events.
    fn after(mut self, partition: usize, delay_ms: u64) -> Self {
        self.after = Some((partition, Duration::from_millis(delay_ms)));
        self
    }

    /// Never ends: idle after its events.
    fn endless(mut self) -> Self {
        self.endless = true;
        self
    }
}

/// A parallel source: worker `i` runs `parts[i]` (2 workers).
fn partitions(parts: Vec<PartitionSpec>, log: &Log) -> NodeKind<S> {
    let done: Vec<Arc<AtomicBool>> = parts.iter().map(|_| Arc::new(AtomicBool::new(false))).collect();
    let parts = Arc::new(parts);
    let log = log.clone();
    NodeKind::Source {
        factory: reader_source(move |ctx| {
            assert_eq!(ctx.peers, parts.len(), "one partition per worker");
            let p = &parts[ctx.index];
            Ok(Partition {
                inner: TestingSource::new(p.events.clone(), 0),
                name: format!("partition {}", ctx.index),
                gate: p.after.map(|(i, delay)| (done[i].clone(), delay)),
                gate_seen: None,
                done: done[ctx.index].clone(),
                endless: p.endless,
                hold_open: p.hold_open_for.map(|i| done[i].clone()),
                log: log.clone(),
            })
        }),
        parallel: true,
    }
}

/// A sink that logs `fired <key> [start, end)` for each window result.
fn logging_sink(out: &Out<S>, log: &Log) -> SinkFactory<S> {
    let (out, log) = (out.clone(), log.clone());
    Arc::new(move |ctx: &WorkerContext| {
        let (out, log, index) = (out.clone(), log.clone(), ctx.index);
        Ok(Box::new(SinkFn(move |batch: &mut Vec<S>| {
            for r in batch.drain(..) {
                if let E::Fired { key, start, end, .. } = &r.value {
                    log.lock().unwrap().push(format!("fired {key} [{start}, {end})"));
                }
                out.lock().unwrap().push((index, r));
            }
            Ok(())
        })) as Box<dyn Sink<S>>)
    })
}

fn position(log: &Log, entry: &str) -> usize {
    let log = log.lock().unwrap();
    log.iter().position(|e| e == entry).unwrap_or_else(|| panic!("no {entry:?} in {log:?}"))
}

/// The log has `<partition> released` before `firing`: the window waited for the partition.
fn assert_fired_after_release(log: &Log, partition: &str, firing: &str) {
    let released = format!("{partition} released");
    assert!(position(log, &released) < position(log, firing), "{:?}", log.lock().unwrap());
}

/// Partition 0 races to watermark 100; partition 1 starts only after partition 0 has
/// finished, with a record at 3. The window's watermark is the minimum over partitions,
/// so [0, 10) waits for partition 1 and takes its record.
#[test]
fn the_window_watermark_is_the_minimum_over_source_partitions() {
    let (log, out) = (new_log(), new_out());
    let parts = vec![
        PartitionSpec::new(vec![rec(1, 1, 1), rec(1, 2, 2), wm(100), rec(1, 3, 150)]),
        PartitionSpec::new(vec![rec(1, 4, 3), wm(100), rec(1, 5, 160)]).after(0, 30),
    ];
    let plan = window_job(partitions(parts, &log), tumbling(10)).log_into(&out, &log);
    let summary = run_ok(plan, cfg(2));
    assert_eq!(per_key_sorted_values(&out), expect(&[(1, &[(0, 10, &[1, 2, 4]), (150, 160, &[3]), (160, 170, &[5])])]));
    assert_eq!(summary.late_dropped, 0);
    assert_fired_after_release(&log, "partition 1", "fired 1 [0, 10)");
}

/// The same with timestamp assigners on a parallel source: each partition's assigner
/// makes its own watermark.
#[test]
fn per_partition_assigners_hold_the_watermark_at_the_slowest_partition() {
    let (log, out) = (new_log(), new_out());
    let parts = vec![
        PartitionSpec::new(vec![bare(1, 1), bare(1, 2), bare(1, 50)]),
        PartitionSpec::new(vec![bare(1, 3), bare(1, 60)]).after(0, 30),
    ];
    let plan = window_job(partitions(parts, &log), tumbling(10))
        .assign(assign(Some(ts_from_value()), bounded(0), None))
        .log_into(&out, &log);
    let summary = run_ok(plan, cfg_batch(2, 1));
    assert_eq!(per_key_sorted_values(&out), expect(&[(1, &[(0, 10, &[1, 2, 3]), (50, 60, &[50]), (60, 70, &[60])])]));
    assert_eq!(summary.late_dropped, 0);
    assert_fired_after_release(&log, "partition 1", "fired 1 [0, 10)");
}

/// `sources::sequence` splits 0..=1999 in contiguous ranges, so at 2 workers one
/// partition is 1000 ms ahead of the other all along: with per-partition watermarks
/// and the minimum across them, nothing is late and every window is complete.
#[test]
fn a_sequence_split_across_workers_loses_nothing_to_lateness() {
    for (workers, batch) in [(1, 7), (2, 7), (2, 128)] {
        let out = new_out();
        let sequence =
            NodeKind::Source { factory: ferroflow_engine::connectors::sources::sequence(0, 1999), parallel: true };
        let stamp: TimestampFactory<S> = Arc::new(|_ctx: &WorkerContext| {
            Ok(Box::new(TimestampFn(|r: &S| match r.value {
                E::Int(i) => Ok(i),
                ref other => panic!("{other:?}"),
            })) as Box<dyn TimestampAssigner<S>>)
        });
        let plan = window_job(sequence, tumbling(100))
            .assign(assign(Some(stamp), bounded(0), None))
            .map(|r: S| match r.value {
                E::Int(i) => Stamped::at(E::Kv(i % 3, 1), r.ts),
                ref other => panic!("{other:?}"),
            })
            .reduce(sum())
            .collect_into(&out);
        let summary = run_ok(plan, cfg_batch(workers, batch));
        assert_eq!(summary.late_dropped, 0, "workers={workers} batch={batch}");
        let got = stamped_kvs(&out);
        assert_eq!(got.len(), 60, "workers={workers} batch={batch}: 20 windows x 3 keys");
        for (ts, key, count) in got {
            // Of the 100 timestamps of a window, those with this remainder mod 3.
            let start = ts + 1 - 100;
            let want = (start..=ts).filter(|i| i % 3 == key).count() as i64;
            assert_eq!(count, want, "workers={workers} batch={batch}: key {key} window ending {ts}");
        }
    }
}

// ---------------------------------------------------------------- idleness

/// A partition that emits `Kv(1, i)` at timestamp `i`, one per poll with a short pause,
/// for ever (until cancelled).
struct Ticker {
    next: i64,
    emitted: Arc<AtomicI64>,
}

impl SourceReader<S> for Ticker {
    fn poll(&mut self, _max: usize, out: &mut Vec<S>) -> UdfResult<SourceStatus> {
        std::thread::sleep(Duration::from_millis(1));
        out.push(Stamped::at(E::Kv(1, self.next), self.next));
        self.emitted.store(self.next, Ordering::SeqCst);
        self.next += 1;
        Ok(SourceStatus::More)
    }
}

/// Emits nothing and never ends (a partition without data). `waits`: it says `Idle`
/// (it has nothing and will call its waker when it has, which it never does), as
/// Python function sources and sockets do; otherwise it asks to be polled again.
struct Silent {
    waits: bool,
}

impl SourceReader<S> for Silent {
    fn poll(&mut self, _max: usize, _out: &mut Vec<S>) -> UdfResult<SourceStatus> {
        if self.waits {
            return Ok(SourceStatus::Idle);
        }
        std::thread::sleep(Duration::from_millis(1));
        Ok(SourceStatus::More)
    }
}

/// Worker 0 ticks, worker 1 is silent (`silent_waits`: saying `Idle`; otherwise polled
/// again and again, which keeps its epochs moving, see `an_idle_partition_does_not_stall_the_others`);
/// assigner with bound 0 and `idleness_ms`;
/// 50 ms tumbling windows. Returns the running job, its output and the ticker's
/// highest timestamp so far.
fn idle_partition_job(idleness_ms: Option<i64>, silent_waits: bool) -> (Running, Out<S>, Arc<AtomicI64>) {
    let out = new_out();
    let emitted = Arc::new(AtomicI64::new(-1));
    let e = emitted.clone();
    let source = NodeKind::Source {
        factory: Arc::new(move |ctx: &WorkerContext| {
            Ok(if ctx.index == 0 {
                Box::new(Ticker { next: 0, emitted: e.clone() }) as Box<dyn SourceReader<S>>
            } else {
                Box::new(Silent { waits: silent_waits })
            })
        }),
        parallel: true,
    };
    let plan = window_job(source, tumbling(50)).assign(assign(None, bounded(0), idleness_ms)).collect_into(&out);
    (start_2_workers_batch_1(plan), out, emitted)
}

/// Starts the plan at 2 workers, batches of 1, without waiting for it: for jobs that
/// do not end by themselves.
fn start_2_workers_batch_1(plan: Plan<S>) -> Running {
    start(Arc::new(plan), cfg_batch(2, 1)).unwrap()
}

/// Waits until `done()` or `limit` passed; true if `done()`.
fn wait_for(limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}

fn cancel(running: Running) {
    running.control.cancel();
    let err = running.join().expect_err("cancelled");
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err}");
}

fn has_window(out: &Out<S>, start: i64) -> bool {
    values(out).iter().any(|r| matches!(r.value, E::Fired { start: s, .. } if s == start))
}

/// Waits up to `limit` for a window starting at `start` to fire, takes the firings so
/// far and cancels the job. Returns whether the window fired, and the firings.
fn await_window_then_cancel(running: Running, out: &Out<S>, start: i64, limit: Duration) -> (bool, PerKey) {
    let fired = wait_for(limit, || has_window(out, start));
    let got = per_key(out);
    cancel(running);
    (fired, got)
}

#[test]
fn an_idle_partition_stops_holding_the_watermark_back() {
    // Without idleness, the silent partition holds the watermark at "none" for ever.
    let (running, out, emitted) = idle_partition_job(None, false);
    assert!(wait_for(Duration::from_secs(10), || emitted.load(Ordering::SeqCst) >= 100), "the ticker did not tick");
    std::thread::sleep(Duration::from_millis(50));
    assert!(values(&out).is_empty(), "a window fired while a partition held the watermark back: {:?}", values(&out));
    cancel(running);

    // With 200 ms of idleness, the silent partition is left out after 200 ms.
    let (running, out, _) = idle_partition_job(Some(200), false);
    let (fired, got) = await_window_then_cancel(running, &out, 0, Duration::from_secs(10));
    assert!(fired, "[0, 50) never fired: the idle partition still holds the watermark back");
    assert_eq!(got[&1][0], (0, 50, (0..50).collect::<Vec<_>>()));
}

/// Emits its first records, pauses (longer than the idleness timeout), then emits the
/// rest and ends.
struct Pausing {
    first: Vec<S>,
    rest: Vec<S>,
    pause: Duration,
    paused_at: Option<Instant>,
}

impl SourceReader<S> for Pausing {
    fn poll(&mut self, _max: usize, out: &mut Vec<S>) -> UdfResult<SourceStatus> {
        if !self.first.is_empty() {
            out.append(&mut self.first);
            self.paused_at = Some(Instant::now());
            return Ok(SourceStatus::More);
        }
        if self.paused_at.is_some_and(|t| t.elapsed() < self.pause) {
            std::thread::sleep(Duration::from_millis(1));
            return Ok(SourceStatus::More);
        }
        out.append(&mut self.rest);
        Ok(SourceStatus::Done)
    }
}

/// The only partition goes quiet for longer than the idleness timeout, then resumes:
/// its records after the pause are not behind any watermark, so nothing is late and
/// every window fires with all its records (Flink: the partition becomes active again).
#[test]
fn an_idle_partition_that_resumes_alone_loses_nothing() {
    for workers in [1, 2] {
        let out = new_out();
        let source = single_source(|| Pausing {
            first: by_value(&[1, 5]),
            rest: by_value(&[25, 26]),
            pause: Duration::from_millis(300),
            paused_at: None,
        });
        let plan = window_job(source, tumbling(20))
            .assign(assign(Some(ts_from_value()), bounded(0), Some(100)))
            .collect_into(&out);
        let summary = run_ok(plan, cfg(workers));
        assert_eq!(
            (per_key(&out), summary.late_dropped),
            (expect(&[(1, &[(0, 20, &[1, 5]), (20, 40, &[25, 26])])]), 0),
            "workers={workers}: (firings, late_dropped)"
        );
    }
}

/// Flow control keeps sources at most a few epochs ahead of the sinks; a partition
/// that is idle (its reader returned `Idle` and has nothing) must not hold the other
/// partitions back, with or without idleness: Python function sources and sockets
/// return `Idle` when they have no data.
#[test]
fn an_idle_partition_does_not_stall_the_others() {
    let (running, out, emitted) = idle_partition_job(Some(50), true);
    let progressed = wait_for(Duration::from_secs(10), || emitted.load(Ordering::SeqCst) >= 1000);
    let fired = wait_for(Duration::from_secs(2), || has_window(&out, 900));
    let reached = emitted.load(Ordering::SeqCst);
    cancel(running);
    assert!(progressed, "the active partition stalled at timestamp {reached}");
    assert!(fired, "window [900, 950) never fired");
}

/// Moves processing time with its first poll (no records), then pauses before the
/// records of a testing source: a source that is slow to start.
struct SlowStart {
    inner: TestingSource<S>,
    polls: usize,
    pause: Duration,
    since: Instant,
}

impl SourceReader<S> for SlowStart {
    fn poll(&mut self, max: usize, out: &mut Vec<S>) -> UdfResult<SourceStatus> {
        self.polls += 1;
        if self.polls > 1 && self.since.elapsed() < self.pause {
            std::thread::sleep(Duration::from_millis(1));
            return Ok(SourceStatus::More);
        }
        self.inner.poll(max, out)
    }

    fn watermark(&self) -> Option<i64> {
        self.inner.watermark()
    }

    fn processing_time(&self) -> Option<i64> {
        self.inner.processing_time()
    }
}

/// Manual processing time goes from 0 to 5 only, the idleness timeout is 1000 ms: the
/// source's only partition is never idle, so its watermark (24 after the record at 25)
/// fires [0, 20) before the end of input. The source starts slowly: processing time
/// moves to 5 before its first record.
#[test]
fn manual_processing_time_short_of_the_idleness_timeout_idles_nothing_on_a_slow_start() {
    for workers in [1, 2] {
        let out = new_out();
        let events = vec![pt(5), rec(1, 1, 1), rec(1, 2, 25), rec(1, 3, 26)];
        let source = single_source(move || SlowStart {
            inner: TestingSource::new(events.clone(), 0),
            polls: 0,
            pause: Duration::from_millis(30),
            since: Instant::now(),
        });
        let plan = window_job(source, tumbling(20))
            .assign(assign(None, bounded(0), Some(1000)))
            .manual_processing_time()
            .collect_into(&out);
        let summary = run_ok(plan, cfg_batch(workers, 1));
        assert_eq!(
            (per_key(&out), summary.late_dropped),
            (expect(&[(1, &[(0, 20, &[1]), (20, 40, &[2, 3])])]), 0),
            "workers={workers}: (firings, late_dropped)"
        );
        let ctx = contexts(&out);
        assert_eq!(ctx[0].3, 24, "workers={workers}: [0, 20) fired at the end of input, not at watermark 24: {ctx:?}");
    }
}

/// One partition, manual processing time 0..5, idleness 1000 ms: it is never idle, so
/// its watermark (24 after the record at 25) fires [0, 20) before the end of input.
/// (Were it idle, every partition would be idle and the watermark would stand still.)
/// One worker only; the slow-start case at 2 workers is
/// `manual_processing_time_short_of_the_idleness_timeout_idles_nothing_on_a_slow_start`.
#[test]
fn manual_processing_time_short_of_the_idleness_timeout_keeps_a_busy_partition_active() {
    let events = vec![pt(0), rec(1, 1, 1), rec(1, 2, 25), rec(1, 3, 26), pt(5), rec(1, 4, 27)];
    let mode = Mode::Workers(1, 1);
    let (_, out) = run_collecting(mode, |out| {
        window_job(testing_source(events.clone()), tumbling(20))
            .assign(assign(None, bounded(0), Some(1000)))
            .manual_processing_time()
            .collect_into(out)
    });
    assert_eq!(per_key(&out), expect(&[(1, &[(0, 20, &[1]), (20, 40, &[2, 3, 4])])]), "{mode:?}");
    let ctx = contexts(&out);
    assert_eq!((ctx[0].1, ctx[0].3), (0, 24), "{mode:?}: [0, 20) fired at the end, not at watermark 24: {ctx:?}");
}

/// With manual processing time, a partition is idle once the job's processing time is
/// the idleness timeout past its last record. Partition 1 has no records and stays
/// open; partition 0 keeps a record every 10 ms of processing time. Once processing
/// time passes 100, partition 1 is idle and partition 0's watermark fires the windows,
/// without the job ending.
#[test]
fn manual_processing_time_makes_a_silent_partition_idle() {
    let (log, out) = (new_log(), new_out());
    let mut busy = vec![];
    for i in 0..=30 {
        busy.push(pt(i * 10));
        busy.push(rec(1, i, i * 2));
    }
    let parts = vec![
        // Starts once partition 1 has reached processing time 300 (so partition 0's
        // records are processed at their own processing time).
        PartitionSpec::new(busy).after(1, 30).endless(),
        PartitionSpec::new(vec![pt(0), pt(300)]).endless(),
    ];
    let plan = window_job(partitions(parts, &log), tumbling(20))
        .assign(assign(None, bounded(0), Some(100)))
        .manual_processing_time()
        .log_into(&out, &log);
    let running = start_2_workers_batch_1(plan);
    let (fired, got) = await_window_then_cancel(running, &out, 40, Duration::from_secs(10));
    assert!(fired, "no window fired: the silent partition was never idle; {:?}", log.lock().unwrap());
    assert_eq!(got[&1][..3], [(0, 20, (0..10).collect()), (20, 40, (10..20).collect()), (40, 60, (20..30).collect())]);
}

/// A partition that has finished stops holding the watermark back (its watermark is
/// +infinity, as at the end of a bounded input), while the other partition runs on.
fn finished_partition_job(with_assigner: bool) -> (Running, Out<S>, Log) {
    let (log, out) = (new_log(), new_out());
    let (early, late) = if with_assigner {
        (vec![bare(1, 1), bare(1, 5)], vec![bare(1, 10), bare(1, 30), bare(1, 50)])
    } else {
        (vec![rec(1, 1, 1), rec(1, 5, 5), wm(4)], vec![rec(1, 10, 10), rec(1, 30, 30), rec(1, 50, 50), wm(49)])
    };
    let parts = vec![
        PartitionSpec::new(early),
        // Starts after partition 0 has finished; stays open.
        PartitionSpec::new(late).after(0, 30).endless(),
    ];
    let mut job = window_job(partitions(parts, &log), tumbling(20));
    if with_assigner {
        job = job.assign(assign(Some(ts_from_value()), bounded(0), None));
    }
    let plan = job.log_into(&out, &log);
    (start_2_workers_batch_1(plan), out, log)
}

#[test]
fn a_finished_source_partition_does_not_hold_the_watermark_back() {
    let (running, out, log) = finished_partition_job(false);
    let (fired, got) = await_window_then_cancel(running, &out, 20, Duration::from_secs(5));
    assert!(fired, "[20, 40) never fired: {:?}", log.lock().unwrap());
    assert_eq!(got[&1][..2], [(0, 20, vec![1, 5, 10]), (20, 40, vec![30])]);
}

#[test]
fn a_finished_partition_with_an_assigner_does_not_hold_the_watermark_back() {
    let (running, out, log) = finished_partition_job(true);
    let (fired, got) = await_window_then_cancel(running, &out, 20, Duration::from_secs(5));
    assert!(
        fired,
        "[20, 40) never fired: the finished partition's last watermark (4) holds it back; {:?}",
        log.lock().unwrap()
    );
    assert_eq!(got[&1][..2], [(0, 20, vec![1, 5, 10]), (20, 40, vec![30])]);
}

/// A partition that finished (watermark +infinity) and one that is idle: Flink's
/// valve then emits the finished partition's watermark, so every window fires.
/// (A finished partition's watermark is "finished", which counts even when every
/// other partition is idle; merely dropping its capability would leave only the idle
/// partition, an unknown watermark, and no firing.)
#[test]
fn a_finished_partition_and_an_idle_one_let_every_window_fire() {
    let (log, out) = (new_log(), new_out());
    let parts =
        vec![PartitionSpec::new(vec![rec(1, 1, 1), rec(1, 2, 5), rec(1, 3, 25)]), PartitionSpec::new(vec![]).endless()];
    let plan = window_job(partitions(parts, &log), tumbling(20))
        .assign(assign(None, bounded(0), Some(50)))
        .log_into(&out, &log);
    let running = start_2_workers_batch_1(plan);
    let (fired, got) = await_window_then_cancel(running, &out, 0, Duration::from_secs(3));
    assert!(fired, "[0, 20) never fired");
    assert_eq!(got[&1][0], (0, 20, vec![1, 2]));
}

// ---------------------------------------------------------------- manual processing time

fn processing_events() -> Vec<TestEvent<S>> {
    vec![
        pt(0),
        bare(1, 1),
        bare(2, 2),
        pt(5),
        bare(1, 3),
        pt(10), // [0, 10) fires before the next records, which go to [10, 20)
        bare(1, 4),
        bare(2, 5),
        pt(25), // [10, 20) fires
        bare(1, 6),
        bare(2, 7),
        pt(26),
    ]
}

#[test]
fn manual_processing_time_drives_processing_time_windows() {
    let specs: Vec<(&str, fn() -> WindowSpec<S>)> = vec![
        ("ProcessingTime", || WindowSpec::ProcessingTime { size_ms: 10, slide_ms: 10 }),
        ("custom tumbling", || custom(|| WindowConfig::new(Assigner::tumbling_processing_time(10, 0)))),
    ];
    for (name, spec) in specs {
        for mode in MODES {
            let what = format!("{name} {mode:?}");
            // The wall clock must not matter.
            let (summary, out) = run_collecting(mode, |out| {
                window_job(testing_source(processing_events()), spec()).manual_processing_time().collect_into(out)
            });
            let want = expect(&[
                (1, &[(0, 10, &[1, 3]), (10, 20, &[4]), (20, 30, &[6])]),
                (2, &[(0, 10, &[2]), (10, 20, &[5]), (20, 30, &[7])]),
            ]);
            assert_eq!(per_key(&out), want, "{what}");
            assert_eq!(summary.late_dropped, 0);
            // Fired when processing time passed their end (10, 25), the last at the end.
            let ctx: Vec<(i64, i64, i64)> = contexts(&out).into_iter().map(|c| (c.0, c.1, c.4)).collect();
            let want = vec![(1, 0, 10), (1, 10, 25), (1, 20, i64::MAX), (2, 0, 10), (2, 10, 25), (2, 20, i64::MAX)];
            assert_eq!(ctx, want, "{what}");
        }
    }
}

#[test]
fn manual_processing_time_drives_sliding_processing_time_windows() {
    for mode in [Mode::Workers(1, 1024), Mode::Workers(2, 1)] {
        let (_, out) = run_collecting(mode, |out| {
            let spec = WindowSpec::ProcessingTime { size_ms: 10, slide_ms: 5 };
            window_job(testing_source(processing_events()), spec).manual_processing_time().collect_into(out)
        });
        let want = expect(&[
            (1, &[(-5, 5, &[1]), (0, 10, &[1, 3]), (5, 15, &[3, 4]), (10, 20, &[4]), (20, 30, &[6]), (25, 35, &[6])]),
            (2, &[(-5, 5, &[2]), (0, 10, &[2]), (5, 15, &[5]), (10, 20, &[5]), (20, 30, &[7]), (25, 35, &[7])]),
        ]);
        assert_eq!(per_key(&out), want, "{mode:?}");
    }
}

// ---------------------------------------------------------------- errors

#[test]
fn a_record_without_a_timestamp_fails_an_event_time_window_naming_it() {
    for mode in [Mode::Workers(1, 1024), Mode::Workers(2, 1), Mode::Processes(1024)] {
        let out = new_out();
        let err = run_err_in(mode, &|| {
            window_job(testing_source(vec![rec(1, 1, 1), bare(1, 2), wm(5)]), tumbling(10)).collect_into(&out)
        });
        assert_eq!(err.operator.as_deref(), Some(WINDOW), "{mode:?}: {err}");
        assert_eq!(err.kind, ErrorKind::Udf, "{mode:?}: {err}");
        let text = err.to_string();
        assert!(text.contains(WINDOW), "{text}");
        assert!(text.contains("has no timestamp") && text.contains("Kv(1, 2)"), "{text}");
        assert!(text.contains("assign_timestamps_and_watermarks"), "{text}");
        assert!(values(&out).is_empty(), "{mode:?}: nothing fires after a failure: {:?}", values(&out));
    }
}

#[test]
fn processing_time_windows_take_records_without_timestamps() {
    let out = new_out();
    let plan =
        window_job(testing_source(processing_events()), WindowSpec::ProcessingTime { size_ms: 10, slide_ms: 10 })
            .reduce(sum())
            .manual_processing_time()
            .collect_into(&out);
    run_ok(plan, cfg(2));
    // Results are stamped with the window's max timestamp even in processing time.
    assert_eq!(stamped_kvs(&out), vec![(9, 1, 4), (9, 2, 2), (19, 1, 4), (19, 2, 5), (29, 1, 6), (29, 2, 7)]);
}

// ---------------------------------------------------------------- flow control

/// Many epochs of out-of-order records with watermarks, into windows that stay open for
/// long (sessions that never close before the end, 1000 ms tumbling): the window's held
/// capabilities must not stop the sources (flow control waits for the sinks' epochs),
/// and the results are complete.
#[test]
fn flow_control_keeps_running_with_windows_open_across_many_epochs() {
    const N: i64 = 20_000;
    let mut events = Vec::new();
    for i in 0..N {
        // Timestamps out of order by up to 9 ms; the watermark trails by 20.
        let ts = i + 10 - (i * 7) % 10;
        events.push(rec(i % 4, 1, ts));
        if i % 50 == 49 {
            events.push(wm(i - 20));
        }
    }
    let tumbling_windows: BTreeSet<(i64, i64)> = (0..N).map(|i| (i % 4, (i + 10 - (i * 7) % 10) / 1000)).collect();
    for (name, spec) in [
        ("tumbling 1000", tumbling(1000)),
        ("session 100", custom(|| WindowConfig::new(Assigner::event_time_session(100)))),
    ] {
        for workers in [1, 2] {
            let out = new_out();
            let plan = window_job(testing_source(events.clone()), spec.clone()).reduce(sum()).collect_into(&out);
            let t = Instant::now();
            let summary = run_ok(plan, cfg_batch(workers, 8));
            assert!(t.elapsed() < Duration::from_secs(15), "{name} workers={workers}: took {:?}", t.elapsed());
            assert_eq!(summary.late_dropped, 0, "{name} workers={workers}");
            let got = stamped_kvs(&out);
            let total: i64 = got.iter().map(|r| r.2).sum();
            assert_eq!(total, N, "{name} workers={workers}: every record in a window");
            // One session per key; one result per key and 1000 ms window.
            let want = if name.starts_with("session") { 4 } else { tumbling_windows.len() };
            assert_eq!(got.len(), want, "{name} workers={workers}");
        }
    }
}

// ---------------------------------------------------------------- batch mode and end-of-input options

/// Batch mode ignores watermarks: a record streaming drops as late is in its window,
/// every window fires at the end (watermark +infinity in its context), and a worker's
/// firings come key by key (keys in the order of their encodings).
#[test]
fn batch_mode_fires_every_event_time_window_at_the_end_with_no_late_records() {
    let events = vec![rec(1, 1, 1), rec(2, 2, 12), wm(30), rec(1, 3, 3), rec(2, 4, 25), rec(1, 5, 31)];
    for mode in MODES {
        let (summary, out) = run_collecting(mode, |out| {
            let mut plan = window_job(testing_source(events.clone()), tumbling(10)).collect_into(out);
            plan.semantics = Semantics { mode: RuntimeMode::Batch, ..Semantics::default() };
            plan
        });
        assert_eq!(summary.late_dropped, 0, "{mode:?}");
        let want = expect(&[(1, &[(0, 10, &[1, 3]), (30, 40, &[5])]), (2, &[(10, 20, &[2]), (20, 30, &[4])])]);
        assert_eq!(per_key(&out), want, "{mode:?}");
        assert!(contexts(&out).iter().all(|c| c.3 == i64::MAX), "{mode:?}: fired at the end: {:?}", contexts(&out));
        if let Mode::Workers(1, _) = mode {
            let keys: Vec<Vec<u8>> = values(&out)
                .iter()
                .map(|r| match r.value {
                    E::Fired { key, .. } => key_of(&key).bytes().to_vec(),
                    _ => unreachable!(),
                })
                .collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted);
        }
        // Streaming drops the two records behind watermark 30.
        let (summary, out) =
            run_collecting(mode, |out| window_job(testing_source(events.clone()), tumbling(10)).collect_into(out));
        assert_eq!(summary.late_dropped, 2, "{mode:?}");
        let want = expect(&[(1, &[(0, 10, &[1]), (30, 40, &[5])]), (2, &[(10, 20, &[2])])]);
        assert_eq!(per_key(&out), want, "{mode:?}");
    }
}

/// A count window's partial count at the end of input: fired with ferroflow's default,
/// dropped with Flink's rule (in both modes, as Flink: a global window has no timer).
#[test]
fn partial_count_windows_at_the_end_follow_the_option() {
    use ferroflow_engine::windows::event_time::Trigger;
    let events: Vec<_> =
        [(1, 1), (2, 2), (1, 3), (1, 4), (2, 5), (1, 6), (1, 7)].iter().map(|&(k, v)| bare(k, v)).collect();
    for mode in [RuntimeMode::Streaming, RuntimeMode::Batch] {
        for fire in [true, false] {
            let semantics = Semantics { mode, fire_partial_windows_at_end: fire, ..Semantics::default() };
            let (_, out) = run_collecting(Mode::Workers(2, 1), |out| {
                let count = || WindowConfig::new(Assigner::global()).trigger(Trigger::purging(Trigger::Count(2)));
                let mut plan =
                    window_job(testing_source(events.clone()), custom(count)).reduce(sum()).collect_into(out);
                plan.semantics = semantics;
                plan
            });
            let mut got: Vec<(i64, i64)> = values(&out).iter().map(kv).collect();
            got.sort();
            let mut want = vec![(1, 4), (1, 10), (2, 7)];
            if fire {
                want.push((1, 7));
            }
            want.sort();
            assert_eq!(got, want, "{mode:?} fire={fire}");
        }
    }
}

/// Processing-time windows whose end the clock never reaches: ferroflow fires them at
/// the end of input; Flink's streaming rule drops them; Flink's batch mode fires them.
#[test]
fn processing_time_windows_at_the_end_follow_the_option_and_the_mode() {
    let events = vec![pt(0), bare(1, 1), bare(1, 2), pt(5), bare(2, 3)];
    let spec = || custom(|| WindowConfig::new(Assigner::tumbling_processing_time(100, 0)));
    let cases = [
        (Semantics::default(), true),
        (Semantics::flink(), false),
        (Semantics { mode: RuntimeMode::Batch, ..Semantics::flink() }, true),
    ];
    for (semantics, fires) in cases {
        for mode in [Mode::Workers(1, 1024), Mode::Workers(2, 1)] {
            let (_, out) = run_collecting(mode, |out| {
                let mut plan =
                    window_job(testing_source(events.clone()), spec()).manual_processing_time().collect_into(out);
                plan.semantics = semantics;
                plan
            });
            let got = per_key(&out);
            let want = if fires { expect(&[(1, &[(0, 100, &[1, 2])]), (2, &[(0, 100, &[3])])]) } else { PerKey::new() };
            assert_eq!(got, want, "{semantics:?} {mode:?}");
        }
    }
}
