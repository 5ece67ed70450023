//! `TwoPhaseCommitSinkFunction` (Flink's two-phase commit for Python sinks) on the
//! engine's [`Sink`] checkpoint hooks. The user's object holds no bookkeeping: this
//! sink keeps the open transaction and the pre-committed ones, and saves them (pickled)
//! in the checkpoint, so a restore can commit what the checkpoint covers and abort the
//! rest, on whichever worker the old section is dealt to.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;

use ferroflow_engine::checkpoint::restore::Restore;
use ferroflow_engine::functions::{Sink, SinkCommit};
use ferroflow_engine::{UdfError, UdfResult};

use crate::errors::udf_error;
use crate::record::PyRec;
use crate::udf::BoundUdf;

static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The section's format version (one byte before the pickle).
const VERSION: u8 = 1;

/// The user's methods, bound once per worker by the API (`datastream._two_phase_calls`).
struct Calls {
    invoke: Py<PyAny>,
    begin: Py<PyAny>,
    pre_commit: Py<PyAny>,
    commit: Py<PyAny>,
    abort: Py<PyAny>,
}

impl Calls {
    fn call(&self, py: Python<'_>, f: &Py<PyAny>, txn: &Py<PyAny>) -> UdfResult<()> {
        f.bind(py).call1((txn.bind(py),)).map(drop).map_err(|e| udf_error(py, e, None))
    }
}

pub struct TwoPhaseSink {
    f: BoundUdf,
    calls: Arc<Calls>,
    /// The transaction records go into; begun at the first need (after a restore).
    current: Option<Py<PyAny>>,
    /// Pre-committed, not yet committed: (checkpoint id, transaction), oldest first.
    pending: Vec<(u64, Py<PyAny>)>,
    /// Once the input ended: every transaction left to commit with the job's success.
    /// The sink then stands in later checkpoints with them (the job may go on
    /// elsewhere), so a restore from one commits them.
    finished: Option<Vec<Py<PyAny>>>,
}

impl TwoPhaseSink {
    pub fn new(f: BoundUdf) -> UdfResult<Self> {
        let calls = Python::attach(|py| {
            let (invoke, begin, pre_commit, commit, abort) = f.call.extract(py).map_err(|e| {
                UdfError::internal(format!("a two-phase-commit sink did not bind to its five methods: {e}"))
            })?;
            Ok::<_, UdfError>(Calls { invoke, begin, pre_commit, commit, abort })
        })?;
        Ok(TwoPhaseSink { f, calls: Arc::new(calls), current: None, pending: Vec::new(), finished: None })
    }

    fn current(&mut self, py: Python<'_>) -> UdfResult<Py<PyAny>> {
        if self.current.is_none() {
            let txn = self.calls.begin.bind(py).call0().map_err(|e| udf_error(py, e, None))?;
            self.current = Some(txn.unbind());
        }
        Ok(self.current.as_ref().expect("begun above").clone_ref(py))
    }
}

impl Sink<PyRec> for TwoPhaseSink {
    fn write(&mut self, batch: &mut Vec<PyRec>) -> UdfResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        Python::attach(|py| {
            let txn = self.current(py)?;
            let (invoke, txn, none) = (self.calls.invoke.bind(py), txn.bind(py), py.None());
            for r in batch.drain(..) {
                let x = r.0.bind(py);
                invoke.call1((txn, x, &none)).map_err(|e| udf_error(py, e, Some(x)))?;
            }
            Ok(())
        })
    }

    /// The user's `close()` waits for the last commit (see [`FinalCommit`]).
    fn close(&mut self) -> UdfResult<()> {
        Ok(())
    }

    /// Phase one: the open transaction is made durable and a new one begins; the
    /// section is `VERSION` and `pickle((pending, current))`.
    fn pre_commit(&mut self, id: u64, out: &mut Vec<u8>) -> UdfResult<()> {
        Python::attach(|py| {
            if let Some(finished) = &self.finished {
                // The input ended: nothing more is written; what the job's success will
                // commit is listed as pre-committed, with no open transaction.
                let pending: Vec<(u64, Py<PyAny>)> = finished.iter().map(|t| (id, t.clone_ref(py))).collect();
                return write_section(py, pending, None, out);
            }
            let txn = self.current(py)?;
            self.calls.call(py, &self.calls.pre_commit, &txn)?;
            self.pending.push((id, txn));
            self.current = None;
            let current = self.current(py)?;
            let pending: Vec<(u64, Py<PyAny>)> = self.pending.iter().map(|(i, t)| (*i, t.clone_ref(py))).collect();
            write_section(py, pending, Some(current), out)
        })
    }

    /// Phase two: checkpoint `id` completed.
    fn commit_checkpoint(&mut self, id: u64) -> UdfResult<()> {
        if !self.pending.iter().any(|(p, _)| *p <= id) {
            return Ok(());
        }
        Python::attach(|py| {
            while let Some(i) = self.pending.iter().position(|(p, _)| *p <= id) {
                self.calls.call(py, &self.calls.commit, &self.pending[i].1)?;
                // Dropped once committed: a failure before the next one retries only the rest.
                self.pending.remove(i);
            }
            Ok(())
        })
    }

    /// Checkpoint `id` completed: what its sections pre-committed up to it is committed
    /// (again, maybe: commit is idempotent); the rest, and the transactions that were
    /// open, are aborted.
    fn restore(&mut self, from: &Restore<'_>, id: u64) -> UdfResult<()> {
        let corrupt =
            |e: String| UdfError::internal(format!("a two-phase-commit sink's checkpoint section is unreadable: {e}"));
        Python::attach(|py| {
            let loads = LOADS.import(py, "pickle", "loads").map_err(|e| UdfError::internal(e.to_string()))?;
            for (old, section) in from.sections().iter().enumerate() {
                if !from.deals(old) || section.is_empty() {
                    continue;
                }
                if section[0] != VERSION {
                    return Err(corrupt(format!("version {}", section[0])));
                }
                let state = loads.call1((PyBytes::new(py, &section[1..]),)).map_err(|e| {
                    UdfError::new(format!(
                        "a two-phase-commit sink's transaction could not be unpickled: {}",
                        udf_error(py, e, None).message
                    ))
                })?;
                let (pending, current): (Vec<(u64, Py<PyAny>)>, Option<Py<PyAny>>) =
                    state.extract().map_err(|e: PyErr| corrupt(e.to_string()))?;
                for (p, txn) in &pending {
                    let f = if *p <= id { &self.calls.commit } else { &self.calls.abort };
                    self.calls.call(py, f, txn)?;
                }
                if let Some(txn) = current {
                    self.calls.call(py, &self.calls.abort, &txn)?;
                }
            }
            Ok(())
        })
    }

    /// The job's end: the open transaction is pre-committed, and it and every pending
    /// one are committed with the job's success.
    fn prepare_commit(&mut self) -> UdfResult<Option<Box<dyn SinkCommit>>> {
        Python::attach(|py| {
            let last = self.current(py)?;
            self.calls.call(py, &self.calls.pre_commit, &last)?;
            self.current = None;
            let pending: Vec<Py<PyAny>> = std::mem::take(&mut self.pending).into_iter().map(|(_, t)| t).collect();
            self.finished = Some(pending.iter().chain([&last]).map(|t| t.clone_ref(py)).collect());
            let close = self.f.take_close();
            Ok(Some(Box::new(FinalCommit { calls: self.calls.clone(), pending, last: Some(last), close })
                as Box<dyn SinkCommit>))
        })
    }
}

/// Appends the checkpoint section: `VERSION` and `pickle((pending, current))`.
fn write_section(
    py: Python<'_>,
    pending: Vec<(u64, Py<PyAny>)>,
    current: Option<Py<PyAny>>,
    out: &mut Vec<u8>,
) -> UdfResult<()> {
    let dumps = DUMPS.import(py, "pickle", "dumps").map_err(|e| UdfError::internal(e.to_string()))?;
    let bytes = dumps.call1(((pending, current), 5)).map_err(|e| {
        UdfError::new(format!(
            "a two-phase-commit sink's transactions must be picklable to be checkpointed: {}",
            udf_error(py, e, None).message
        ))
    })?;
    let bytes = bytes.cast::<PyBytes>().map_err(|e| UdfError::internal(e.to_string()))?;
    out.push(VERSION);
    out.extend_from_slice(bytes.as_bytes());
    Ok(())
}

/// A two-phase-commit sink's transactions at the job's end, committed with its success.
/// Dropped instead (the job failed), the last one is aborted: no checkpoint lists it, so
/// no restore would ever commit it; the pending ones are left to a restore.
struct FinalCommit {
    calls: Arc<Calls>,
    pending: Vec<Py<PyAny>>,
    last: Option<Py<PyAny>>,
    /// The user's `close()`, after the commits (or the abort).
    close: Option<Py<PyAny>>,
}

impl SinkCommit for FinalCommit {
    fn commit(mut self: Box<Self>) -> Result<(), String> {
        Python::attach(|py| {
            for txn in std::mem::take(&mut self.pending).iter().chain(self.last.as_ref()) {
                self.calls.call(py, &self.calls.commit, txn).map_err(|e| e.message)?;
            }
            self.last = None;
            match self.close.take() {
                Some(close) => close.bind(py).call0().map(drop).map_err(|e| udf_error(py, e, None).message),
                None => Ok(()),
            }
        })
    }
}

impl Drop for FinalCommit {
    fn drop(&mut self) {
        if self.last.is_none() && self.close.is_none() {
            return;
        }
        Python::attach(|py| {
            // The job failed already: a failing abort or close cannot add to that.
            if let Some(txn) = self.last.take() {
                let _ = self.calls.call(py, &self.calls.abort, &txn);
            }
            if let Some(close) = self.close.take() {
                let _ = close.bind(py).call0();
            }
        });
    }
}
