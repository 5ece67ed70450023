//! Sources backed by Python: collections and iterators (pulled on the worker), and
//! `SourceFunction`s (whose `run(ctx)` loop runs on a thread of its own).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use pyo3::create_exception;
use pyo3::exceptions::PyBaseException;
use pyo3::prelude::*;

use ferroflow_engine::time::NO_TIME;
use pyo3::types::PyIterator;

use ferroflow_engine::checkpoint::restore::Restore;
use ferroflow_engine::checkpoint::state_io::{StateReader, StateWriter};
use ferroflow_engine::connectors::positions::{read_count, single_position, write_count};
use ferroflow_engine::functions::{SourceReader, SourceStatus, Waker};
use ferroflow_engine::operators::own_records;
use ferroflow_engine::{UdfError, UdfResult};

use crate::errors::udf_error;
use crate::record::PyRec;

create_exception!(
    _engine,
    SourceCancelled,
    PyBaseException,
    "Raised by ctx.collect() when the job stops, to end a source's run() loop."
);

/// A collection or iterator: the Python side's `make()` returns an iterator over it.
///
/// Replayable when `make()` gives the same items again (a list; an iterator only in a
/// fresh process that builds it anew): a position is how many items were taken.
pub struct IteratorSource {
    items: Py<PyIterator>,
    /// Make each item its own as it is taken (object reuse off): a generator may
    /// yield one object again and again, changing it in between.
    own: bool,
    /// Items taken so far, and at the last mark.
    taken: u64,
    marked: u64,
}

impl IteratorSource {
    pub fn new(items: Py<PyIterator>, own: bool) -> Self {
        IteratorSource { items, own, taken: 0, marked: 0 }
    }
}

impl SourceReader<PyRec> for IteratorSource {
    fn poll(&mut self, max: usize, out: &mut Vec<PyRec>) -> UdfResult<SourceStatus> {
        Python::attach(|py| {
            let mut items = self.items.bind(py).clone();
            for _ in 0..max {
                let Some(item) = items.next() else {
                    // At the end, in every later checkpoint.
                    self.marked = self.taken;
                    return Ok(SourceStatus::Done);
                };
                let mut item = PyRec::new(item.map_err(|e| udf_error(py, e, None))?.unbind());
                self.taken += 1;
                if self.own {
                    own_records(std::slice::from_mut(&mut item))?;
                }
                out.push(item);
            }
            Ok(SourceStatus::More)
        })
    }

    fn mark_position(&mut self, _segment: u64) -> UdfResult<()> {
        self.marked = self.taken;
        Ok(())
    }

    fn snapshot(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        write_count::<PyRec>(out, self.marked);
        Ok(())
    }

    /// Skips the items the checkpoint had taken (a collection runs on one worker).
    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        let Some(n) = read_count::<PyRec>(from)? else { return Ok(()) };
        Python::attach(|py| {
            let mut items = self.items.bind(py).clone();
            for taken in 0..n {
                match items.next() {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(udf_error(py, e, None)),
                    None => {
                        return Err(UdfError::internal(format!(
                            "the checkpoint had taken {n} items of the collection; it now has {taken}"
                        )))
                    }
                }
            }
            Ok(())
        })?;
        (self.taken, self.marked) = (n, n);
        Ok(())
    }
}

/// Records a `SourceFunction` handed to `ctx.collect`, waiting for the worker.
struct Buffer {
    records: Vec<PyRec>,
    finished: bool,
    error: Option<UdfError>,
    cancelled: bool,
}

struct Shared {
    buffer: Mutex<Buffer>,
    space: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes every waiting record and makes room for more.
    fn drain_into(&self, out: &mut Vec<PyRec>) {
        out.append(&mut self.lock().records);
        self.space.notify_all();
    }
}

/// Most records waiting between a Python source and its worker; `collect` blocks
/// (without the GIL) beyond this, so a fast source cannot outrun the job's memory.
const SOURCE_BUFFER: usize = 4096;

/// The `ctx` passed to `SourceFunction.run(ctx)`.
#[pyclass(module = "ferroflow._engine")]
pub struct SourceContext {
    shared: Arc<Shared>,
    waker: Option<Waker>,
    /// This worker's index among all workers of the job (for parallel sources).
    #[pyo3(get)]
    worker_index: usize,
    /// How many workers the job has.
    #[pyo3(get)]
    worker_count: usize,
    /// Copy each record that can change as it is collected (object reuse off): the
    /// source still holds it and may change it for the next one.
    own: bool,
    /// Flink's checkpoint lock (a reentrant `_thread.RLock`), see `get_checkpoint_lock`.
    checkpoint_lock: Py<PyAny>,
}

#[pymethods]
impl SourceContext {
    /// Emits one record.
    fn collect(&self, py: Python<'_>, record: Py<PyAny>) -> PyResult<()> {
        self.push(py, record, NO_TIME)
    }

    /// Emits `record` with an event timestamp (ms), which a window or a timestamp
    /// assigner (as `record_timestamp`) sees.
    fn collect_with_timestamp(&self, py: Python<'_>, record: Py<PyAny>, timestamp: i64) -> PyResult<()> {
        self.push(py, record, timestamp)
    }

    /// A reentrant lock a checkpoint takes to read the source's position: hold it
    /// around a `collect` and the position's update that goes with it.
    fn get_checkpoint_lock(&self, py: Python<'_>) -> Py<PyAny> {
        self.checkpoint_lock.clone_ref(py)
    }
}

impl SourceContext {
    /// Hands a record to the worker, waiting while the buffer is full.
    fn push(&self, py: Python<'_>, mut record: Py<PyAny>, timestamp: i64) -> PyResult<()> {
        if self.own {
            crate::copies::make_private(py, &mut record).map_err(pyo3::exceptions::PyTypeError::new_err)?;
        }
        let mut buffer = self.shared.lock();
        if buffer.records.len() >= SOURCE_BUFFER && !buffer.cancelled {
            drop(buffer);
            let shared = self.shared.clone();
            py.detach(move || {
                let guard = shared.lock();
                let _unused = shared
                    .space
                    .wait_while(guard, |b| b.records.len() >= SOURCE_BUFFER && !b.cancelled)
                    .unwrap_or_else(|e| e.into_inner());
            });
            buffer = self.shared.lock();
        }
        if buffer.cancelled {
            return Err(SourceCancelled::new_err("the job is stopping"));
        }
        let was_empty = buffer.records.is_empty();
        buffer.records.push(PyRec(record, timestamp));
        drop(buffer);
        if was_empty {
            if let Some(w) = &self.waker {
                w();
            }
        }
        Ok(())
    }
}

/// Runs `function.run(ctx)` on its own thread; the worker takes what it collected.
///
/// The thread starts at the first poll, so that a restore (which comes before) hands
/// the function its position first (`initialize_state`). A position is the function's
/// `snapshot_state`, taken while its `run` holds no checkpoint lock, plus the records
/// collected before it that the job had not taken yet (emitted again on restore).
pub struct FunctionSource {
    shared: Arc<Shared>,
    /// The API's `_SourceRunner`.
    function: Py<PyAny>,
    /// What the thread is started with; `None` once started.
    start: Option<Py<SourceContext>>,
    waker: Option<Waker>,
    index: usize,
    peers: usize,
    checkpoint_lock: Py<PyAny>,
    /// The function has `snapshot_state`: it can resume.
    replayable: bool,
    /// The position handed to `initialize_state` on start, if the job was restored.
    restored: Option<Py<PyAny>>,
    /// Records taken from the buffer while waiting for the checkpoint lock, emitted
    /// before the buffer's.
    carry: Vec<PyRec>,
    /// The position at the last mark; `None` if the function cannot resume.
    marked: Option<Marked>,
    /// Restored from a checkpoint taken after `run` had returned: it does not run again.
    finished: bool,
}

const TAG_START: u8 = 0;
const TAG_STATE: u8 = 1;
const TAG_FINISHED: u8 = 2;

/// A Python source's position.
enum Marked {
    /// The state (`None`: from the start or the restored one, as the function had not
    /// started) and the records collected but not emitted.
    At(Option<Py<PyAny>>, Vec<PyRec>),
    /// `run` returned and everything it collected was emitted.
    Finished,
}

impl FunctionSource {
    pub fn start(
        py: Python<'_>,
        function: Py<PyAny>,
        waker: Option<Waker>,
        (index, peers): (usize, usize),
        own: bool,
    ) -> UdfResult<FunctionSource> {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Buffer { records: Vec::new(), finished: false, error: None, cancelled: false }),
            space: Condvar::new(),
        });
        let internal = |e: PyErr| UdfError::internal(e.to_string());
        let checkpoint_lock =
            py.import("_thread").and_then(|m| m.getattr("RLock")?.call0()).map_err(internal)?.unbind();
        let replayable = function.bind(py).call_method0("replayable").and_then(|r| r.is_truthy()).map_err(internal)?;
        let ctx = Py::new(
            py,
            SourceContext {
                shared: shared.clone(),
                waker: waker.clone(),
                worker_index: index,
                worker_count: peers,
                own,
                checkpoint_lock: checkpoint_lock.clone_ref(py),
            },
        )
        .map_err(|e| udf_error(py, e, None))?;
        Ok(FunctionSource {
            shared,
            function,
            start: Some(ctx),
            waker,
            index,
            peers,
            checkpoint_lock,
            replayable,
            restored: None,
            carry: Vec::new(),
            marked: replayable.then(|| Marked::At(None, Vec::new())),
            finished: false,
        })
    }

    /// Starts `run` on its thread (at the first poll).
    fn spawn(&mut self, py: Python<'_>) -> UdfResult<()> {
        let Some(ctx) = self.start.take() else { return Ok(()) };
        let thread_shared = self.shared.clone();
        let thread_function = self.function.clone_ref(py);
        let restored = self.restored.as_ref().map(|s| s.clone_ref(py));
        let waker = self.waker.clone();
        let (index, peers) = (self.index, self.peers);
        std::thread::Builder::new()
            .name("ferroflow python source".to_string())
            .spawn(move || {
                let outcome = Python::attach(|py| {
                    let restored = restored.map(|s| (s,));
                    match thread_function.bind(py).call_method1("run_worker", (ctx, index, peers, restored)) {
                        Ok(_) => None,
                        Err(e) if e.is_instance_of::<SourceCancelled>(py) => None,
                        Err(e) => Some(udf_error(py, e, None)),
                    }
                });
                let mut buffer = thread_shared.lock();
                buffer.finished = true;
                buffer.error = outcome;
                drop(buffer);
                if let Some(w) = &waker {
                    w();
                }
            })
            .map_err(|e| UdfError::new(format!("cannot start the source thread: {e}")))?;
        Ok(())
    }

    /// Takes the checkpoint lock, waiting (without the GIL) while `run` holds it; the
    /// records it collects meanwhile move to `carry`, so it never waits for room while
    /// holding the lock. False if the source stopped first (then it holds no lock).
    fn take_checkpoint_lock(&mut self, py: Python<'_>) -> UdfResult<bool> {
        let lock = self.checkpoint_lock.bind(py);
        loop {
            let got = lock.call_method1("acquire", (false,)).and_then(|r| r.is_truthy());
            if got.map_err(|e| UdfError::internal(e.to_string()))? {
                return Ok(true);
            }
            {
                let buffer = self.shared.lock();
                if buffer.finished || buffer.cancelled {
                    return Ok(false);
                }
            }
            self.shared.drain_into(&mut self.carry);
            py.detach(|| std::thread::sleep(std::time::Duration::from_millis(1)));
        }
    }
}

impl SourceReader<PyRec> for FunctionSource {
    fn poll(&mut self, max: usize, out: &mut Vec<PyRec>) -> UdfResult<SourceStatus> {
        if self.finished {
            return Ok(SourceStatus::Done);
        }
        if self.start.is_some() {
            Python::attach(|py| self.spawn(py))?;
        }
        let carried = self.carry.len().min(max);
        out.extend(self.carry.drain(..carried));
        let mut buffer = self.shared.lock();
        let n = buffer.records.len().min(max - carried);
        out.extend(buffer.records.drain(..n));
        let left = buffer.records.len() + self.carry.len();
        self.shared.space.notify_all();
        if let Some(e) = buffer.error.take() {
            return Err(e);
        }
        Ok(if left > 0 {
            SourceStatus::More
        } else if buffer.finished {
            // At the end, in every later checkpoint.
            if self.marked.is_some() {
                self.marked = Some(Marked::Finished);
            }
            SourceStatus::Done
        } else {
            SourceStatus::Idle
        })
    }

    /// With the checkpoint lock held by this thread, asks the function for its position
    /// (`snapshot_state(segment)`: the checkpoint that completes the segments below
    /// `segment`) and keeps the records collected but not yet emitted.
    fn mark_position(&mut self, segment: u64) -> UdfResult<()> {
        if !self.replayable || matches!(self.marked, Some(Marked::Finished)) {
            return Ok(());
        }
        Python::attach(|py| {
            if self.start.is_some() {
                // Not started: it resumes where it would start.
                let restored = self.restored.as_ref().map(|s| s.clone_ref(py));
                self.marked = Some(Marked::At(restored, self.carry.clone()));
                return Ok(());
            }
            let locked = self.take_checkpoint_lock(py)?;
            let state = self.function.bind(py).call_method1("snapshot_worker", (self.index, segment));
            // Read under the lock too: `snapshot_state` covers exactly these.
            let mut pending = self.carry.clone();
            pending.extend(self.shared.lock().records.iter().cloned());
            if locked {
                let _ = self.checkpoint_lock.bind(py).call_method0("release");
            }
            let state = state.map_err(|e| udf_error(py, e, None))?;
            let state = if state.is_none() {
                self.restored.as_ref().map(|s| s.clone_ref(py))
            } else {
                Some(state.get_item(0).map_err(|e| UdfError::internal(e.to_string()))?.unbind())
            };
            self.marked = Some(Marked::At(state, pending));
            Ok(())
        })
    }

    /// A tag (0: from the start, 1: a state follows, 2: finished), the state (one
    /// record), the pending records.
    fn snapshot(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        let Some(marked) = &self.marked else { return Ok(()) };
        let mut w = StateWriter::<PyRec>::from_vec(std::mem::take(out));
        Python::attach(|py| -> UdfResult<()> {
            match marked {
                Marked::Finished => w.u8(TAG_FINISHED),
                Marked::At(state, pending) => {
                    w.u8(if state.is_some() { TAG_STATE } else { TAG_START });
                    if let Some(s) = state {
                        w.records([PyRec::new(s.clone_ref(py))].iter())?;
                    }
                    w.records(pending.iter())?;
                }
            }
            Ok(())
        })?;
        *out = w.into_bytes();
        Ok(())
    }

    /// A non-parallel source resumes from its one position; a parallel one from its
    /// own, at the same parallelism only (a position cannot be split or merged).
    fn restore(&mut self, from: &Restore<'_>) -> UdfResult<()> {
        if self.peers > 1 && !from.same_parallelism() && from.non_empty().next().is_some() {
            return Err(UdfError::internal(format!(
                "a parallel Python source checkpointed at {} workers cannot restore at {} (its positions are \
                 its workers' own)",
                from.old_peers(),
                from.peers()
            )));
        }
        let Some(section) = single_position(from)? else { return Ok(()) };
        let mut r = StateReader::<PyRec>::new(section);
        let mut state = Vec::new();
        match r.u8()? {
            TAG_FINISHED => {
                r.finish()?;
                self.finished = true;
                self.marked = Some(Marked::Finished);
                return Ok(());
            }
            TAG_START => {}
            TAG_STATE => {
                r.records(&mut state)?;
                if state.len() != 1 {
                    return Err(UdfError::internal(format!("a Python source's position holds {} states", state.len())));
                }
            }
            tag => return Err(UdfError::internal(format!("state is corrupt: a Python source's position tag {tag}"))),
        }
        let mut pending = Vec::new();
        r.records(&mut pending)?;
        r.finish()?;
        self.restored = state.pop().map(|s| s.0);
        Python::attach(|py| {
            let restored = self.restored.as_ref().map(|s| s.clone_ref(py));
            self.marked = Some(Marked::At(restored, pending.clone()));
        });
        self.carry = pending;
        Ok(())
    }

    fn cancel(&mut self) {
        let mut buffer = self.shared.lock();
        buffer.cancelled = true;
        buffer.records.clear();
        drop(buffer);
        self.shared.space.notify_all();
        Python::attach(|py| {
            if let Ok(cancel) = self.function.bind(py).getattr("cancel") {
                let _ = cancel.call0();
            }
        });
    }
}

impl Drop for FunctionSource {
    fn drop(&mut self) {
        // A source whose job ended while it was still running must stop too.
        let mut buffer = self.shared.lock();
        if !buffer.finished {
            buffer.cancelled = true;
        }
        drop(buffer);
        self.shared.space.notify_all();
    }
}
