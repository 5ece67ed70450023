//! Test support shared by the integration tests: a small record type, closure-backed
//! factories, a collecting sink that remembers the worker, a settable clock, temp dirs,
//! and a runner that fails instead of hanging.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use ferroflow_engine::checkpoint::storage;
use ferroflow_engine::clock::Clock;
use ferroflow_engine::functions::closures::*;
use ferroflow_engine::functions::WindowContext;
use ferroflow_engine::functions::*;
use ferroflow_engine::key::Key;
use ferroflow_engine::process::SharedContext;
use ferroflow_engine::record::{describe_truncated, BatchReadError};
use ferroflow_engine::windows::event_time::{Contents, Firing, Window};
use ferroflow_engine::windows::TimeWindow;
use ferroflow_engine::ApplyFactory;
use ferroflow_engine::{start, ExecConfig, JobError, JobSummary, Plan, Record, UdfError, UdfResult};

/// A small record type for tests.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names)] // `KV` is key-value, not a kind of `V`
pub enum V {
    I(i64),
    S(String),
    /// (key, value)
    KV(i64, i64),
    /// What a window apply saw: the key value, the window (`None` for count windows),
    /// the values in the order they were handed over.
    Win {
        key: Box<V>,
        window: Option<(i64, i64)>,
        values: Vec<V>,
    },
}

impl Record for V {
    fn from_lines(lines: &mut Vec<String>, out: &mut Vec<Self>) {
        out.extend(lines.drain(..).map(V::S));
    }

    fn from_ints(range: std::ops::RangeInclusive<i64>, out: &mut Vec<Self>) {
        out.extend(range.map(V::I));
    }

    fn describe(&self) -> String {
        describe_truncated(&format!("{self:?}"))
    }

    fn encode_batch<'a>(records: impl ExactSizeIterator<Item = &'a Self>, out: &mut Vec<u8>) -> Result<(), String> {
        let records: Vec<&V> = records.collect();
        bincode::serialize_into(out, &records).map_err(|e| e.to_string())
    }

    fn decode_batch(bytes: &[u8], out: &mut Vec<Self>) -> Result<(), BatchReadError> {
        decode_bincode_batch(bytes, out)
    }
}

/// `Record::encode_batch` for a test record type: the batch as one bincode vector.
pub fn encode_bincode_batch<'a, R: Serialize + 'a>(
    records: impl ExactSizeIterator<Item = &'a R>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let records: Vec<&R> = records.collect();
    bincode::serialize_into(out, &records).map_err(|e| e.to_string())
}

/// `Record::decode_batch` for a test record type: the inverse of [`encode_bincode_batch`].
pub fn decode_bincode_batch<R: serde::de::DeserializeOwned>(
    bytes: &[u8],
    out: &mut Vec<R>,
) -> Result<(), BatchReadError> {
    out.extend(bincode::deserialize::<Vec<R>>(bytes).map_err(|e| e.to_string())?);
    Ok(())
}

impl V {
    pub fn int(&self) -> i64 {
        match self {
            V::I(i) => *i,
            other => panic!("not an int: {other:?}"),
        }
    }

    pub fn kv(&self) -> (i64, i64) {
        match self {
            V::KV(k, v) => (*k, *v),
            other => panic!("not a KV: {other:?}"),
        }
    }
}

pub fn kvs(pairs: &[(i64, i64)]) -> Vec<V> {
    pairs.iter().map(|&(k, v)| V::KV(k, v)).collect()
}

pub fn ints(xs: &[i64]) -> Vec<V> {
    xs.iter().map(|&x| V::I(x)).collect()
}

pub fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------- running jobs

pub fn cfg(workers: usize) -> ExecConfig {
    ExecConfig { workers, ..ExecConfig::default() }
}

pub fn cfg_batch(workers: usize, batch_size: usize) -> ExecConfig {
    ExecConfig { workers, batch_size, ..ExecConfig::default() }
}

/// (key, start, end, values, purged) of each firing of a window core holding its
/// values (the window-core tests' view of what fired).
pub fn show<K: Copy, O>(fs: &[Firing<K, i64, O>]) -> Vec<(K, i64, i64, Vec<i64>, bool)> {
    fs.iter()
        .map(|f| {
            let Contents::Values(v) = &f.contents else {
                unreachable!("a window core aggregating, not holding values")
            };
            (f.key, f.window.start(), f.window.end(), v.clone(), f.purged)
        })
        .collect()
}

/// The time window [start, end).
pub fn tw(start: i64, end: i64) -> Window {
    Window::Time(TimeWindow { start, end })
}

/// How long any test job may take before it counts as hung.
pub const HANG: Duration = Duration::from_secs(20);

/// Runs the plan; if it has not finished after [`HANG`], cancels it and panics, so a
/// hang shows up as a test failure instead of a stuck test run.
pub fn run_plan<R: Record>(plan: Plan<R>, config: ExecConfig) -> Result<JobSummary, JobError> {
    let running = start(Arc::new(plan), config)?;
    let deadline = Instant::now() + HANG;
    while !running.finished() {
        if Instant::now() > deadline {
            running.control.cancel();
            let _ = running.join();
            panic!("the job did not finish within {HANG:?} (hang)");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    running.join()
}

/// Runs the plan (configured to checkpoint into `store`) until checkpoint `id`, or a
/// later one, is complete, then cancels it; returns the latest complete checkpoint's
/// directory, to restore from. Fails if none comes within [`HANG`].
pub fn run_until_checkpoint<R: Record>(plan: Plan<R>, config: ExecConfig, store: &Path, id: u64) -> PathBuf {
    let running = start(Arc::new(plan), config).unwrap();
    let deadline = Instant::now() + HANG;
    while storage::find_latest(store).unwrap().found.is_none_or(|f| f.id < id) {
        assert!(Instant::now() < deadline, "no checkpoints");
        std::thread::sleep(Duration::from_millis(2));
    }
    running.control.cancel();
    let _ = running.join();
    storage::find_latest(store).unwrap().found.expect("a complete checkpoint").dir
}

pub fn run_ok<R: Record>(plan: Plan<R>, config: ExecConfig) -> JobSummary {
    let workers = config.workers;
    match run_plan(plan, config) {
        Ok(s) => s,
        Err(e) => panic!("workers={workers}: the job failed: {e:?}"),
    }
}

pub fn run_err<R: Record>(plan: Plan<R>, config: ExecConfig) -> JobError {
    let workers = config.workers;
    match run_plan(plan, config) {
        Ok(s) => panic!("workers={workers}: the job should fail but succeeded: {s:?}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- sinks

/// What a collecting sink received: (worker index, record), in arrival order per worker.
pub type Out<R> = Arc<Mutex<Vec<(usize, R)>>>;

pub fn new_out<R>() -> Out<R> {
    Arc::new(Mutex::new(Vec::new()))
}

/// A sink that records each record with the index of the worker it ran on.
pub fn sink<R: Record>(out: &Out<R>) -> SinkFactory<R> {
    let out = out.clone();
    Arc::new(move |ctx: &WorkerContext| {
        let out = out.clone();
        let index = ctx.index;
        Ok(Box::new(SinkFn(move |batch: &mut Vec<R>| {
            out.lock().unwrap().extend(batch.drain(..).map(|r| (index, r)));
            Ok(())
        })) as Box<dyn Sink<R>>)
    })
}

pub fn values<R: Clone>(out: &Out<R>) -> Vec<R> {
    out.lock().unwrap().iter().map(|(_, r)| r.clone()).collect()
}

pub fn sorted<R: Clone + Ord>(out: &Out<R>) -> Vec<R> {
    let mut v = values(out);
    v.sort();
    v
}

pub fn by_worker<R: Clone>(out: &Out<R>) -> BTreeMap<usize, Vec<R>> {
    let mut m: BTreeMap<usize, Vec<R>> = BTreeMap::new();
    for (w, r) in out.lock().unwrap().iter() {
        m.entry(*w).or_default().push(r.clone());
    }
    m
}

// ---------------------------------------------------------------- sources

/// A source over a fixed vector (use with `parallel: false`).
pub fn vec_source<R: Record + Sync>(items: Vec<R>) -> SourceFactory<R> {
    Arc::new(move |_ctx: &WorkerContext| Ok(Box::new(VecSource(items.clone().into_iter())) as Box<dyn SourceReader<R>>))
}

/// A parallel source: worker `w` of `p` emits, in order, the items with `part(item) % p == w`.
/// Use it so that all records of a key come from one worker, in order.
pub fn partitioned_source<R: Record + Sync>(items: Vec<R>, part: fn(&R) -> usize) -> SourceFactory<R> {
    Arc::new(move |ctx: &WorkerContext| {
        let mine: Vec<R> = items.iter().filter(|r| part(r) % ctx.peers == ctx.index).cloned().collect();
        Ok(Box::new(VecSource(mine.into_iter())) as Box<dyn SourceReader<R>>)
    })
}

/// Partition `V::KV` by key (non-negative keys).
pub fn part_by_key(v: &V) -> usize {
    v.kv().0.rem_euclid(1 << 20) as usize
}

/// A source made of a reader built by `make` (called on every worker that runs it).
pub fn reader_source<R: Record, S: SourceReader<R>>(
    make: impl Fn(&WorkerContext) -> UdfResult<S> + Send + Sync + 'static,
) -> SourceFactory<R> {
    Arc::new(move |ctx: &WorkerContext| Ok(Box::new(make(ctx)?) as Box<dyn SourceReader<R>>))
}

// ---------------------------------------------------------------- transforms

pub fn try_map<R: Record>(
    f: impl Fn(R) -> UdfResult<Option<R>> + Clone + Send + Sync + 'static,
) -> TransformFactory<R> {
    Arc::new(move |_ctx: &WorkerContext| Ok(Box::new(MapFn(f.clone())) as Box<dyn Transform<R>>))
}

pub fn map<R: Record>(f: impl Fn(R) -> R + Clone + Send + Sync + 'static) -> TransformFactory<R> {
    try_map(move |r| Ok(Some(f(r))))
}

pub fn filter<R: Record>(f: impl Fn(&R) -> bool + Clone + Send + Sync + 'static) -> TransformFactory<R> {
    try_map(move |r| Ok(f(&r).then_some(r)))
}

pub fn flat_map<R: Record>(f: impl Fn(R) -> Vec<R> + Clone + Send + Sync + 'static) -> TransformFactory<R> {
    Arc::new(move |_ctx: &WorkerContext| {
        let f = f.clone();
        Ok(Box::new(FlatMapFn(move |r| Ok(f(r)))) as Box<dyn Transform<R>>)
    })
}

pub fn try_key_by<R: Record>(f: impl Fn(&R) -> UdfResult<(Key, R)> + Clone + Send + Sync + 'static) -> KeyFactory<R> {
    Arc::new(move |_ctx: &WorkerContext| Ok(Box::new(KeyFn(f.clone())) as Box<dyn KeySelector<R>>))
}

pub fn key_by<R: Record>(f: impl Fn(&R) -> (Key, R) + Clone + Send + Sync + 'static) -> KeyFactory<R> {
    try_key_by(move |r| Ok(f(r)))
}

/// Keys `V::KV(k, _)` by `k`; the key value is `V::I(k)`.
pub fn key_by_k() -> KeyFactory<V> {
    key_by(|r: &V| {
        let k = r.kv().0;
        (ferroflow_engine::key::key_of(&k), V::I(k))
    })
}

pub fn try_reducer<R: Record>(f: impl Fn(&R, &R) -> UdfResult<R> + Clone + Send + Sync + 'static) -> ReduceFactory<R> {
    Arc::new(move |_ctx: &WorkerContext| Ok(Box::new(ReduceFn(f.clone())) as Box<dyn Reducer<R>>))
}

pub fn reducer<R: Record>(f: impl Fn(&R, &R) -> R + Clone + Send + Sync + 'static) -> ReduceFactory<R> {
    try_reducer(move |a, b| Ok(f(a, b)))
}

/// Sums the values of `V::KV`, keeping the key.
pub fn sum_kv() -> ReduceFactory<V> {
    reducer(|a: &V, b: &V| {
        let ((k, x), (k2, y)) = (a.kv(), b.kv());
        assert_eq!(k, k2, "reduce mixed keys");
        V::KV(k, x + y)
    })
}

pub fn try_apply<R: Record>(
    f: impl Fn(&R, WindowInfo, Vec<R>) -> UdfResult<Vec<R>> + Clone + Send + Sync + 'static,
) -> ApplyFactory<R> {
    Arc::new(move |_ctx: &WorkerContext, _state: &SharedContext<R>| {
        let f = f.clone();
        Ok(Box::new(ApplyFn(move |k: &R, ctx: &WindowContext, vs: Vec<R>| f(k, ctx.window, vs)))
            as Box<dyn WindowApply<R>>)
    })
}

/// A window apply that emits one `V::Win` describing its call.
pub fn describe_window() -> ApplyFactory<V> {
    try_apply(|key: &V, info: WindowInfo, values: Vec<V>| {
        let window = match info {
            WindowInfo::Global => None,
            WindowInfo::Time(w) => Some((w.start, w.end)),
        };
        Ok(vec![V::Win { key: Box::new(key.clone()), window, values }])
    })
}

// ---------------------------------------------------------------- clock

/// A clock tests set by hand.
pub struct TestClock(pub AtomicI64);

impl TestClock {
    pub fn at(ms: i64) -> Arc<TestClock> {
        Arc::new(TestClock(AtomicI64::new(ms)))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------- files

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ferroflow-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every line of the visible files in `dir` (not hidden: names starting with `.` or
/// `_` are a sink's uncommitted ones), sorted; none if `dir` does not exist.
pub fn visible_lines(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with('.') && !name.starts_with('_') {
            out.extend(std::fs::read_to_string(e.path()).unwrap().lines().map(String::from));
        }
    }
    out.sort();
    out
}

/// A UDF error carrying a record description, as bindings produce them.
pub fn udf_err(message: &str, record: &impl Record) -> UdfError {
    UdfError::new(message).with_record(record.describe())
}
