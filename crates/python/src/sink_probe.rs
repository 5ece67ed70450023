//! Test hook (`ferroflow._engine._SinkProbe`): drives one Python two-phase-commit sink
//! by hand (write, pre-commit, commit, restore, the job's end) as the engine's sink
//! operator does across checkpoints and restarts, so tests can check the order of the
//! user's calls against a model without timing a job's checkpoints.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use ferroflow_engine::checkpoint::restore::Restore;
use ferroflow_engine::functions::{Checkpointing, Sink, WorkerContext};

use crate::record::PyRec;
use crate::source_probe::failed;
use crate::two_phase::TwoPhaseSink;
use crate::udf::BoundUdf;

/// A `TwoPhaseSink` node's `udf` (`_plan.Udf`), bound as worker `index` of `peers`.
#[pyclass(module = "ferroflow._engine", unsendable)]
pub struct _SinkProbe {
    sink: TwoPhaseSink,
}

#[pymethods]
impl _SinkProbe {
    #[new]
    fn new(py: Python<'_>, udf: Py<PyAny>, index: usize, peers: usize) -> PyResult<Self> {
        let ctx = WorkerContext { index, peers, waker: None, checkpointing: Checkpointing::Off };
        let f = BoundUdf::new(py, &udf, &ctx).map_err(failed)?;
        Ok(_SinkProbe { sink: TwoPhaseSink::new(f).map_err(failed)? })
    }

    fn write(&mut self, records: Vec<Py<PyAny>>) -> PyResult<()> {
        let mut batch: Vec<PyRec> = records.into_iter().map(PyRec::new).collect();
        self.sink.write(&mut batch).map_err(failed)
    }

    /// Checkpoint `id` is taken: the sink's section.
    fn pre_commit<'py>(&mut self, py: Python<'py>, id: u64) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = Vec::new();
        self.sink.pre_commit(id, &mut out).map_err(failed)?;
        Ok(PyBytes::new(py, &out))
    }

    fn commit_checkpoint(&mut self, id: u64) -> PyResult<()> {
        self.sink.commit_checkpoint(id).map_err(failed)
    }

    /// Restores from checkpoint `id`'s sections, as instance `index` of `peers` now.
    fn restore(&mut self, sections: Vec<Vec<u8>>, id: u64, index: usize, peers: usize) -> PyResult<()> {
        let sections: Vec<&[u8]> = sections.iter().map(Vec::as_slice).collect();
        self.sink.restore(&Restore::new(sections, index, peers), id).map_err(failed)
    }

    /// The input ended: `succeed` commits as the job's success does; else the job failed
    /// after the sink ended, and its final output is dropped.
    fn finish(&mut self, py: Python<'_>, succeed: bool) -> PyResult<()> {
        self.sink.close().map_err(failed)?;
        let Some(commit) = self.sink.prepare_commit().map_err(failed)? else { return Ok(()) };
        if succeed {
            py.detach(|| commit.commit()).map_err(pyo3::exceptions::PyRuntimeError::new_err)?;
        } else {
            py.detach(move || drop(commit));
        }
        Ok(())
    }
}
