//! Python partitioned sources and sinks (`ferroflow.connectors.partitioned`) on the
//! engine's named splits (`connectors::splits`): each part is a split, read or written
//! by the worker its name's pinned hash picks, its state (pickled by the API's `_Parts`)
//! saved in checkpoints and handed on restore, at any parallelism, to its new owner.
//!
//! The API's `_Parts` object lists the parts (once per process) and calls the user's
//! methods; this module schedules the parts and keeps their states.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use ferroflow_engine::checkpoint::restore::Restore;
use ferroflow_engine::checkpoint::state_io::{StateReader, StateWriter};
use ferroflow_engine::connectors::splits::{owned_splits, split_owner, write_splits};
use ferroflow_engine::functions::{Sink, SourceReader, SourceStatus, Waker, WorkerContext};
use ferroflow_engine::operators::own_records;
use ferroflow_engine::{UdfError, UdfResult};

use crate::errors::udf_error;
use crate::record::PyRec;

/// How long a part that gave an empty batch and no `next_awake` waits before the next.
const EMPTY_PAUSE: Duration = Duration::from_millis(10);

/// A split's state tags: the part goes on from a pickled state, or it has ended.
const TAG_STATE: u8 = 0;
const TAG_ENDED: u8 = 1;

/// The split names this worker owns among `parts`.
fn owned(parts: Vec<String>, ctx: &WorkerContext) -> Vec<String> {
    parts.into_iter().filter(|p| split_owner(p.as_bytes(), ctx.peers) == ctx.index).collect()
}

/// `parts.method(*args)`; an exception is the user's (with their traceback).
fn call<'py>(
    parts: &Bound<'py, PyAny>,
    method: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
) -> UdfResult<Bound<'py, PyAny>> {
    parts.call_method1(method, args).map_err(|e| udf_error(parts.py(), e, None))
}

/// This worker's part names from the API's `_Parts` (its `parts()`: the user's `list_parts`).
fn listed(py: Python<'_>, parts: &Py<PyAny>, ctx: &WorkerContext) -> UdfResult<Vec<String>> {
    let names = call(parts.bind(py), "parts", ())?;
    let names: Vec<String> = names.extract().map_err(|e: PyErr| UdfError::internal(e.to_string()))?;
    Ok(owned(names, ctx))
}

/// Wakes the source's operator at a deadline, from a thread of its own (one per reader).
struct Alarm {
    shared: Arc<(Mutex<(Option<Instant>, bool)>, Condvar)>,
}

impl Alarm {
    fn start(waker: Waker) -> Alarm {
        let shared = Arc::new((Mutex::new((None::<Instant>, false)), Condvar::new()));
        let theirs = shared.clone();
        let _detached = std::thread::Builder::new().name("ferroflow part alarm".into()).spawn(move || {
            let (lock, cv) = &*theirs;
            let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if state.1 {
                    return;
                }
                match state.0 {
                    None => state = cv.wait(state).unwrap_or_else(|e| e.into_inner()),
                    Some(at) => {
                        let now = Instant::now();
                        if at <= now {
                            state.0 = None;
                            drop(state);
                            waker();
                            state = lock.lock().unwrap_or_else(|e| e.into_inner());
                        } else {
                            state = cv.wait_timeout(state, at - now).unwrap_or_else(|e| e.into_inner()).0;
                        }
                    }
                }
            }
        });
        Alarm { shared }
    }

    /// Wakes the operator at `at` (or earlier, if already set earlier).
    fn set(&self, at: Instant) {
        let (lock, cv) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        if state.0.is_none_or(|t| at < t) {
            state.0 = Some(at);
            cv.notify_all();
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        let (lock, cv) = &*self.shared;
        lock.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        cv.notify_all();
    }
}

/// One part being read.
struct SourcePart {
    name: String,
    /// The user's partition; None once it has ended (and was closed).
    reader: Option<Py<PyAny>>,
    /// Taken from `next_batch`, not yet emitted (kept in checkpoints with the state).
    pending: VecDeque<PyRec>,
    /// Not to be asked for a batch before this.
    awake: Option<Instant>,
}

/// A `FixedPartitionedSource` (or `DynamicSource`) on one worker.
pub struct PartitionedSource {
    parts: Py<PyAny>,
    ctx: WorkerContext,
    own: bool,
    dynamic: bool,
    /// Owned part names, and the states a restore found for them (pickles; None: ended).
    names: Vec<String>,
    restored: HashMap<String, Option<Vec<u8>>>,
    /// Splits of the checkpoint that `list_parts` no longer lists: kept as they were.
    unlisted: Vec<(Vec<u8>, Vec<u8>)>,
    /// Built at the first poll (after a restore).
    reading: Option<Vec<SourcePart>>,
    /// The first part to ask at the next poll (so every part gets its turn).
    next: usize,
    /// The splits at the last mark.
    marked: Vec<(Vec<u8>, Vec<u8>)>,
    alarm: Option<Alarm>,
}

impl PartitionedSource {
    pub fn new(py: Python<'_>, parts: Py<PyAny>, ctx: &WorkerContext, own: bool) -> UdfResult<Self> {
        let dynamic = parts.bind(py).getattr("dynamic").and_then(|d| d.is_truthy()).unwrap_or(false);
        let names = if dynamic { vec![format!("worker-{}", ctx.index)] } else { listed(py, &parts, ctx)? };
        Ok(PartitionedSource {
            parts,
            ctx: ctx.clone(),
            own,
            dynamic,
            names,
            restored: HashMap::new(),
            unlisted: Vec::new(),
            reading: None,
            next: 0,
            marked: Vec::new(),
            alarm: ctx.waker.clone().map(Alarm::start),
        })
    }

    fn build(&mut self, py: Python<'_>) -> UdfResult<()> {
        let parts = self.parts.bind(py);
        let mut reading = Vec::with_capacity(self.names.len());
        for name in &self.names {
            let (reader, pending) = match self.restored.remove(name) {
                Some(None) => (None, VecDeque::new()),
                Some(Some(section)) => {
                    let (state, pending) = read_part_state(name, &section)?;
                    let state = PyBytes::new(py, &state);
                    (Some(call(parts, "build", (name, state))?.unbind()), pending)
                }
                None if self.dynamic => {
                    (Some(call(parts, "build_worker", (self.ctx.index, self.ctx.peers))?.unbind()), VecDeque::new())
                }
                None => (Some(call(parts, "build", (name, py.None()))?.unbind()), VecDeque::new()),
            };
            reading.push(SourcePart { name: name.clone(), reader, pending, awake: None });
        }
        self.reading = Some(reading);
        Ok(())
    }

    /// The position of parts not built yet: the restored states (a part with none starts
    /// afresh again).
    fn unbuilt_marks(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut marked = Vec::new();
        for name in &self.names {
            match self.restored.get(name) {
                Some(Some(section)) => marked.push((name.as_bytes().to_vec(), section.clone())),
                Some(None) => marked.push((name.as_bytes().to_vec(), vec![TAG_ENDED])),
                None => {}
            }
        }
        marked
    }

    fn close_all(&mut self) {
        let Some(reading) = &mut self.reading else { return };
        Python::attach(|py| {
            for part in reading.iter_mut() {
                if let Some(r) = part.reader.take() {
                    let _ = r.bind(py).call_method0("close");
                }
            }
        });
    }
}

/// A split's state: a tag, then (for `TAG_STATE`) the pickle and the pending records.
fn read_part_state(name: &str, section: &[u8]) -> UdfResult<(Vec<u8>, VecDeque<PyRec>)> {
    let mut r = StateReader::<PyRec>::new(section);
    let tag = r.u8()?;
    if tag != TAG_STATE {
        return Err(UdfError::internal(format!("state is corrupt: part {name:?} has the tag {tag}")));
    }
    let state = r.bytes()?.to_vec();
    let mut pending = Vec::new();
    r.records(&mut pending)?;
    r.finish()?;
    Ok((state, pending.into()))
}

impl SourceReader<PyRec> for PartitionedSource {
    fn poll(&mut self, max: usize, out: &mut Vec<PyRec>) -> UdfResult<SourceStatus> {
        Python::attach(|py| {
            if self.reading.is_none() {
                self.build(py)?;
            }
            let parts = self.parts.bind(py).clone();
            let reading = self.reading.as_mut().expect("built above");
            let n = reading.len();
            let now = Instant::now();
            // `out` may hold records already: `max` counts this poll's.
            let limit = out.len() + max;
            let mut more = false;
            for k in 0..n {
                let part = &mut reading[(self.next + k) % n];
                if part.pending.is_empty() && part.reader.is_some() && part.awake.is_none_or(|t| t <= now) {
                    let reader = part.reader.as_ref().expect("checked").bind(py).clone();
                    let batch = call(&parts, "batch", (&reader,))?;
                    if batch.is_none() {
                        // The end: closed now, and "ended" in every later checkpoint.
                        part.reader = None;
                        reader.call_method0("close").map_err(|e| udf_error(py, e, None))?;
                        continue;
                    }
                    let mut got: Vec<PyRec> = Vec::new();
                    for item in batch.try_iter().map_err(|e| UdfError::internal(e.to_string()))? {
                        got.push(PyRec::new(item.map_err(|e| UdfError::internal(e.to_string()))?.unbind()));
                    }
                    if self.own {
                        own_records(&mut got)?;
                    }
                    let awake = call(&parts, "awake", (&reader,))?;
                    let awake: Option<f64> = awake.extract().map_err(|e: PyErr| UdfError::internal(e.to_string()))?;
                    part.awake = match awake {
                        Some(s) => Some(now + Duration::from_secs_f64(s.clamp(0.0, 1e9))),
                        None if got.is_empty() => Some(now + EMPTY_PAUSE),
                        None => None,
                    };
                    part.pending.extend(got);
                }
                let take = part.pending.len().min(limit - out.len());
                out.extend(part.pending.drain(..take));
                more |= !part.pending.is_empty() || (part.reader.is_some() && part.awake.is_none());
                if out.len() >= limit {
                    more = true;
                    break;
                }
            }
            self.next = (self.next + 1) % n.max(1);
            if more {
                return Ok(SourceStatus::More);
            }
            let wake = reading.iter().filter(|p| p.reader.is_some()).filter_map(|p| p.awake).min();
            match wake {
                None if reading.iter().all(|p| p.reader.is_none()) => {
                    // At the end, in every later checkpoint.
                    self.marked = self.names.iter().map(|n| (n.as_bytes().to_vec(), vec![TAG_ENDED])).collect();
                    Ok(SourceStatus::Done)
                }
                None => Ok(SourceStatus::More),
                Some(at) => match &self.alarm {
                    Some(alarm) => {
                        alarm.set(at);
                        Ok(SourceStatus::Idle)
                    }
                    None => Ok(SourceStatus::More),
                },
            }
        })
    }

    fn cancel(&mut self) {
        self.close_all();
    }

    /// Each part's `snapshot()` (or its restored state, before it was built) and the
    /// records it gave that were not emitted yet.
    fn mark_position(&mut self, _segment: u64) -> UdfResult<()> {
        if self.dynamic {
            return Ok(());
        }
        Python::attach(|py| {
            let parts = self.parts.bind(py);
            let mut marked = Vec::with_capacity(self.names.len());
            match &self.reading {
                None => marked = self.unbuilt_marks(),
                Some(reading) => {
                    for part in reading {
                        let mut w = StateWriter::<PyRec>::new();
                        match &part.reader {
                            None if part.pending.is_empty() => w.u8(TAG_ENDED),
                            None => {
                                return Err(UdfError::internal(format!(
                                    "part {:?} ended with records not emitted",
                                    part.name
                                )))
                            }
                            Some(reader) => {
                                let state = call(parts, "snapshot", (reader.bind(py),))?;
                                let state = state.cast::<PyBytes>().map_err(|e| UdfError::internal(e.to_string()))?;
                                w.u8(TAG_STATE);
                                w.bytes(state.as_bytes());
                                w.records(part.pending.iter())?;
                            }
                        }
                        marked.push((part.name.as_bytes().to_vec(), w.into_bytes()));
                    }
                }
            }
            self.marked = marked;
            Ok(())
        })
    }

    fn snapshot(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        if self.dynamic {
            return Ok(());
        }
        let splits = self.marked.iter().chain(&self.unlisted);
        write_splits::<PyRec>(out, splits.map(|(n, s)| (n.as_slice(), s.as_slice())).collect::<Vec<_>>().into_iter());
        Ok(())
    }

    /// Takes the parts this worker owns now from every old worker's section.
    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        if self.dynamic {
            return Ok(());
        }
        let peers = self.ctx.peers;
        let index = self.ctx.index;
        let Some(mine) = owned_splits::<PyRec>(from, |n| split_owner(n, peers) == index)? else { return Ok(()) };
        for (name, section) in mine {
            let name = String::from_utf8(name).map_err(|e| UdfError::internal(e.to_string()))?;
            if !self.names.contains(&name) {
                self.unlisted.push((name.into_bytes(), section));
                continue;
            }
            let ended = section.first() == Some(&TAG_ENDED);
            self.restored.insert(name, (!ended).then_some(section));
        }
        // A checkpoint before the first mark stands where the restore put the parts.
        self.marked = self.unbuilt_marks();
        Ok(())
    }
}

impl Drop for PartitionedSource {
    fn drop(&mut self) {
        // A job that stopped early: every part still open is closed.
        self.close_all();
    }
}

/// A `FixedPartitionedSink` on one worker: the parts it owns, which the routing before
/// it sends their items to.
pub struct PartitionedSink {
    parts: Py<PyAny>,
    names: Vec<String>,
    restored: HashMap<String, Vec<u8>>,
    unlisted: Vec<(Vec<u8>, Vec<u8>)>,
    ctx: WorkerContext,
    /// `{name: writer}` (a dict, for `_Parts.write`), built at the first need.
    writers: Option<Py<pyo3::types::PyDict>>,
    /// The states taken at the end of the input, which stand for the parts afterwards.
    last: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl PartitionedSink {
    pub fn new(py: Python<'_>, parts: Py<PyAny>, ctx: &WorkerContext) -> UdfResult<Self> {
        let names = listed(py, &parts, ctx)?;
        Ok(PartitionedSink {
            parts,
            names,
            restored: HashMap::new(),
            unlisted: Vec::new(),
            ctx: ctx.clone(),
            writers: None,
            last: None,
        })
    }

    fn writers<'py>(&mut self, py: Python<'py>) -> UdfResult<Bound<'py, pyo3::types::PyDict>> {
        if let Some(w) = &self.writers {
            return Ok(w.bind(py).clone());
        }
        let parts = self.parts.bind(py);
        let writers = pyo3::types::PyDict::new(py);
        for name in &self.names {
            let state = match self.restored.remove(name) {
                Some(s) => PyBytes::new(py, &s).into_any(),
                None => py.None().into_bound(py),
            };
            let writer = call(parts, "build", (name, state))?;
            writers.set_item(name, writer).map_err(|e| UdfError::internal(e.to_string()))?;
        }
        self.writers = Some(writers.clone().unbind());
        Ok(writers)
    }

    fn states(&mut self, py: Python<'_>) -> UdfResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let writers = self.writers(py)?;
        let parts = self.parts.bind(py);
        let mut out = Vec::with_capacity(self.names.len());
        for name in &self.names {
            let writer = writers.get_item(name).map_err(|e| UdfError::internal(e.to_string()))?;
            let writer = writer.ok_or_else(|| UdfError::internal(format!("part {name:?} has no writer")))?;
            let state = call(parts, "snapshot", (writer,))?;
            let state = state.cast::<PyBytes>().map_err(|e| UdfError::internal(e.to_string()))?;
            out.push((name.as_bytes().to_vec(), state.as_bytes().to_vec()));
        }
        out.extend(self.unlisted.iter().cloned());
        Ok(out)
    }
}

impl Sink<PyRec> for PartitionedSink {
    fn write(&mut self, batch: &mut Vec<PyRec>) -> UdfResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        Python::attach(|py| {
            let writers = self.writers(py)?;
            let items: Vec<Py<PyAny>> = batch.drain(..).map(|r| r.0).collect();
            call(self.parts.bind(py), "write", (writers, items))?;
            Ok(())
        })
    }

    /// A last state of every part, then `close()`.
    fn close(&mut self) -> UdfResult<()> {
        Python::attach(|py| {
            let states = self.states(py)?;
            self.last = Some(states);
            let writers = self.writers(py)?;
            for (_, writer) in writers.iter() {
                writer.call_method0("close").map_err(|e| udf_error(py, e, None))?;
            }
            Ok(())
        })
    }

    /// The parts' states (the items before were written: at-least-once).
    fn pre_commit(&mut self, _id: u64, out: &mut Vec<u8>) -> UdfResult<()> {
        let states = match &self.last {
            Some(last) => last.clone(),
            None => Python::attach(|py| self.states(py))?,
        };
        write_splits::<PyRec>(
            out,
            states.iter().map(|(n, s)| (n.as_slice(), s.as_slice())).collect::<Vec<_>>().into_iter(),
        );
        Ok(())
    }

    fn restore(&mut self, from: &Restore<'_>, _id: u64) -> UdfResult<()> {
        let (peers, index) = (self.ctx.peers, self.ctx.index);
        let Some(mine) = owned_splits::<PyRec>(from, |n| split_owner(n, peers) == index)? else { return Ok(()) };
        for (name, state) in mine {
            let name = String::from_utf8(name).map_err(|e| UdfError::internal(e.to_string()))?;
            if self.names.contains(&name) {
                self.restored.insert(name, state);
            } else {
                self.unlisted.push((name.into_bytes(), state));
            }
        }
        Ok(())
    }
}

impl Drop for PartitionedSink {
    fn drop(&mut self) {
        // A job that stopped early: the writers are closed (their state is the checkpoint's).
        if self.last.is_some() {
            return;
        }
        if let Some(writers) = self.writers.take() {
            Python::attach(|py| {
                for (_, writer) in writers.bind(py).iter() {
                    let _ = writer.call_method0("close");
                }
            });
        }
    }
}

/// `_engine.split_owner(name, workers)`: the worker that owns the part `name` (the
/// routing of a partitioned sink's items).
#[pyfunction(name = "split_owner")]
pub fn split_owner_of(name: &str, workers: usize) -> usize {
    split_owner(name.as_bytes(), workers)
}
