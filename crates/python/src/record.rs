//! Python objects as engine records, and the GIL as the engine's batch scope.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyString};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

static PICKLE_DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static PICKLE_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Records cross a process boundary pickled. (A faster per-batch codec replaces this
/// for multi-process runs.)
impl Serialize for PyRec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Python::attach(|py| {
            let dumps = PICKLE_DUMPS.import(py, "pickle", "dumps").map_err(serde::ser::Error::custom)?;
            let bytes = dumps.call1((self.0.bind(py), 5)).map_err(|e| {
                serde::ser::Error::custom(format!("cannot send a {} record to another process: {e}", type_name(self.0.bind(py))))
            })?;
            let bytes = bytes.cast::<PyBytes>().map_err(|e| serde::ser::Error::custom(e.to_string()))?;
            serializer.serialize_bytes(bytes.as_bytes())
        })
    }
}

impl<'de> Deserialize<'de> for PyRec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("pickled bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(v)
            }
        }
        let bytes = deserializer.deserialize_bytes(BytesVisitor)?;
        Python::attach(|py| {
            let loads = PICKLE_LOADS.import(py, "pickle", "loads").map_err(de::Error::custom)?;
            let obj = loads.call1((PyBytes::new(py, &bytes),)).map_err(de::Error::custom)?;
            Ok(PyRec(obj.unbind()))
        })
    }
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
