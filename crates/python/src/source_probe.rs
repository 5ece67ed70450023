//! Test hook (`ferroflow._engine._SourceProbe`): drives one Python source reader by
//! hand (poll, mark, snapshot, restore) as the engine's source operator would, so
//! tests can check a source resumes from its checkpoint without a running job.

use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyIterator};

use ferroflow_engine::checkpoint::restore::Restore;
use ferroflow_engine::functions::{Checkpointing, SourceReader, SourceStatus, WorkerContext};
use ferroflow_engine::UdfError;

use crate::partitioned::PartitionedSource;
use crate::record::PyRec;
use crate::sources::{FunctionSource, IteratorSource};

pub(crate) fn failed(e: UdfError) -> PyErr {
    PyRuntimeError::new_err(if e.internal { format!("internal: {}", e.message) } else { e.message })
}

/// One source reader: a `_SourceRunner` (an `add_source` function), a partitioned
/// source's `_SourceParts`, or a collection's `make` (anything else), as worker `index`
/// of `peers`.
#[pyclass(module = "ferroflow._engine", unsendable)]
pub struct _SourceProbe {
    reader: Box<dyn SourceReader<PyRec>>,
    done: bool,
}

#[pymethods]
impl _SourceProbe {
    #[new]
    fn new(py: Python<'_>, source: Py<PyAny>, index: usize, peers: usize) -> PyResult<Self> {
        let reader: Box<dyn SourceReader<PyRec>> = if source.bind(py).hasattr("build_worker")? {
            // A partitioned source's `_SourceParts`.
            let ctx = WorkerContext { index, peers, waker: None, checkpointing: Checkpointing::Off };
            Box::new(PartitionedSource::new(py, source, &ctx, false).map_err(failed)?)
        } else if source.bind(py).hasattr("run_worker")? {
            Box::new(FunctionSource::start(py, source, None, (index, peers), false).map_err(failed)?)
        } else {
            let items = PyIterator::from_object(&source.bind(py).call0()?)?;
            Box::new(IteratorSource::new(items.unbind(), false))
        };
        Ok(_SourceProbe { reader, done: false })
    }

    /// Up to `n` records (fewer only if the source ends), waiting up to 10 s for them.
    fn poll(&mut self, py: Python<'_>, n: usize) -> PyResult<Vec<Py<PyAny>>> {
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while out.len() < n && !self.done {
            let before = out.len();
            match self.reader.poll(n - out.len(), &mut out).map_err(failed)? {
                SourceStatus::Done => self.done = true,
                SourceStatus::More => {}
                SourceStatus::Idle if out.len() == before => {
                    if Instant::now() > deadline {
                        return Err(PyTimeoutError::new_err("the source gave nothing for 10 s"));
                    }
                    py.detach(|| std::thread::sleep(Duration::from_millis(1)));
                }
                SourceStatus::Idle => {}
            }
        }
        Ok(out.into_iter().map(|r| r.0).collect())
    }

    /// Whether the source has ended.
    #[getter]
    fn done(&self) -> bool {
        self.done
    }

    fn mark(&mut self, segment: u64) -> PyResult<()> {
        self.reader.mark_position(segment).map_err(failed)
    }

    fn snapshot<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = Vec::new();
        self.reader.snapshot(&mut out).map_err(failed)?;
        Ok(PyBytes::new(py, &out))
    }

    /// Restores from every old reader's snapshot, as instance `index` of `peers` now.
    fn restore(&mut self, sections: Vec<Vec<u8>>, index: usize, peers: usize) -> PyResult<()> {
        let sections: Vec<&[u8]> = sections.iter().map(Vec::as_slice).collect();
        self.reader.restore(&Restore::new(sections, index, peers)).map_err(failed)
    }

    fn cancel(&mut self) {
        self.reader.cancel();
    }
}
