//! Sources backed by Python: collections and iterators (pulled on the worker), and
//! `SourceFunction`s (whose `run(ctx)` loop runs on a thread of its own).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use pyo3::create_exception;
use pyo3::exceptions::PyBaseException;
use pyo3::prelude::*;

use ferroflow_engine::time::NO_TIME;
use pyo3::types::PyIterator;

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
pub struct IteratorSource {
    pub items: Py<PyIterator>,
    /// Make each item its own as it is taken (object reuse off): a generator may
    /// yield one object again and again, changing it in between.
    pub own: bool,
}

impl SourceReader<PyRec> for IteratorSource {
    fn poll(&mut self, max: usize, out: &mut Vec<PyRec>) -> UdfResult<SourceStatus> {
        Python::attach(|py| {
            let mut items = self.items.bind(py).clone();
            for _ in 0..max {
                let Some(item) = items.next() else { return Ok(SourceStatus::Done) };
                let mut item = PyRec::new(item.map_err(|e| udf_error(py, e, None))?.unbind());
                if self.own {
                    own_records(std::slice::from_mut(&mut item))?;
                }
                out.push(item);
            }
            Ok(SourceStatus::More)
        })
    }

    /// To record (issue 13, a later step): how many items were taken (a collection's index).
    fn mark_position(&mut self, _segment: u64) -> UdfResult<()> {
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
pub struct FunctionSource {
    shared: Arc<Shared>,
    function: Py<PyAny>,
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
        let ctx = Py::new(
            py,
            SourceContext {
                shared: shared.clone(),
                waker: waker.clone(),
                worker_index: index,
                worker_count: peers,
                own,
            },
        )
        .map_err(|e| udf_error(py, e, None))?;
        let thread_shared = shared.clone();
        let thread_function = function.clone_ref(py);
        std::thread::Builder::new()
            .name("ferroflow python source".to_string())
            .spawn(move || {
                let outcome = Python::attach(|py| {
                    match thread_function.bind(py).call_method1("run_worker", (ctx, index, peers)) {
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
        Ok(FunctionSource { shared, function })
    }
}

impl SourceReader<PyRec> for FunctionSource {
    fn poll(&mut self, max: usize, out: &mut Vec<PyRec>) -> UdfResult<SourceStatus> {
        let mut buffer = self.shared.lock();
        let n = buffer.records.len().min(max);
        out.extend(buffer.records.drain(..n));
        let left = buffer.records.len();
        self.shared.space.notify_all();
        if let Some(e) = buffer.error.take() {
            return Err(e);
        }
        Ok(if left > 0 {
            SourceStatus::More
        } else if buffer.finished {
            SourceStatus::Done
        } else {
            SourceStatus::Idle
        })
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
