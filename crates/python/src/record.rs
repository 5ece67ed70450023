//! Python objects as engine records, and the GIL as the engine's batch scope.

use pyo3::prelude::*;
use pyo3::types::PyString;

use ferroflow_engine::functions::BatchScope;
use ferroflow_engine::record::{describe_truncated, Record};

/// A Python object. Inside a process it moves between operators as a pointer.
pub struct PyRec(pub Py<PyAny>);

impl Clone for PyRec {
    /// Cloning takes a reference, which needs the GIL; the engine clones inside its
    /// batch scope, where taking it again is only a counter increment.
    fn clone(&self) -> Self {
        Python::attach(|py| PyRec(self.0.clone_ref(py)))
    }
}

impl Record for PyRec {
    fn from_lines(lines: &mut Vec<String>, out: &mut Vec<Self>) {
        Python::attach(|py| out.extend(lines.drain(..).map(|l| PyRec(PyString::new(py, &l).into_any().unbind()))));
    }

    fn from_ints(range: std::ops::RangeInclusive<i64>, out: &mut Vec<Self>) {
        Python::attach(|py| {
            out.extend(range.map(|i| PyRec(i.into_pyobject(py).map(|b| b.into_any().unbind()).unwrap_or_else(|e| match e {}))))
        });
    }

    fn describe(&self) -> String {
        Python::attach(|py| describe(self.0.bind(py)))
    }

    /// The compact codec (pickle only for types it does not know), once per batch.
    fn encode_batch<'a>(records: impl ExactSizeIterator<Item = &'a Self>, out: &mut Vec<u8>) -> Result<(), String> {
        Python::attach(|py| crate::codec::encode_batch_iter(py, records.map(|r| &r.0), out))
    }

    fn decode_batch(bytes: &[u8], out: &mut Vec<Self>) -> Result<(), String> {
        Python::attach(|py| crate::codec::decode_batch_into(py, bytes, out, PyRec).map(drop))
    }
}

/// `repr(obj)`, truncated, for error messages.
pub fn describe(obj: &Bound<'_, PyAny>) -> String {
    match obj.repr() {
        Ok(r) => describe_truncated(&r.to_string_lossy()),
        Err(_) => format!("<{} object with a failing __repr__>", type_name(obj)),
    }
}

pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".to_string())
}

/// Holds the GIL for a batch; keeps one Python thread state per worker thread.
pub struct GilScope;

impl BatchScope for GilScope {
    fn enter(&self, work: &mut dyn FnMut()) {
        Python::attach(|_py| work());
    }

    fn run_worker(&self, work: &mut dyn FnMut()) {
        // Attaching once and detaching keeps this thread's Python thread state alive,
        // so each later attach is cheap (a fresh one costs microseconds).
        let work = SameThread(work);
        Python::attach(|py| py.detach(move || {
            let w = work;
            (w.0)()
        }));
    }
}

/// `detach` wants a `Send` closure because it cannot know the closure stays on this
/// thread; it does (detach runs it right here), so the worker body needs no `Send`.
struct SameThread<'a>(&'a mut dyn FnMut());

// SAFETY: `Python::detach` runs its closure on the calling thread before returning;
// the wrapped reference never leaves this thread.
unsafe impl Send for SameThread<'_> {}
