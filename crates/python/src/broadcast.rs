//! Broadcast state for Python: `ctx.get_broadcast_state(descriptor)` of a
//! `(Keyed)BroadcastProcessFunction`, a map held by the engine's process context
//! (operator state, one copy per worker: see `ferroflow_engine::state::operator`).
//! One object serves both sides; the engine refuses a write outside
//! `process_broadcast_element`. User keys are encoded as a map state's (Python's `==`
//! for numbers; str, int, float, bool, None, bytes and tuples of these).

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyList;

use ferroflow_engine::key::{Key, KeyEncoder};
use ferroflow_engine::process::SharedContext;
use ferroflow_engine::state::{BroadcastStateId, HeapOperatorState, OperatorStateBackend};
use ferroflow_engine::UdfResult;

use crate::process::{guard, list_of, map_entries, obj, pairs_of, py_err, rec, user_key};
use crate::record::PyRec;

/// How errors name a broadcast state's user keys.
const WHAT: &str = "broadcast state";

#[pyclass(module = "ferroflow._engine", frozen)]
pub struct BroadcastStateImpl {
    ctx: SharedContext<PyRec>,
    id: BroadcastStateId,
    enc: Mutex<KeyEncoder>,
}

impl BroadcastStateImpl {
    /// Registers broadcast state `name` (again: the same state) in the operator's context.
    pub fn register(ctx: &SharedContext<PyRec>, name: &str) -> PyResult<Self> {
        let id = guard(ctx)?.broadcast_for_read().and_then(|b| b.register_broadcast(name)).map_err(py_err)?;
        Ok(BroadcastStateImpl { ctx: ctx.clone(), id, enc: Mutex::new(KeyEncoder::new()) })
    }

    fn key(&self, k: &Bound<'_, PyAny>) -> PyResult<Key> {
        user_key(&self.enc, k, WHAT)
    }

    fn read<T>(&self, f: impl FnOnce(&mut HeapOperatorState<PyRec>) -> UdfResult<T>) -> PyResult<T> {
        let mut c = guard(&self.ctx)?;
        c.broadcast_for_read().and_then(f).map_err(py_err)
    }

    fn write<T>(&self, f: impl FnOnce(&mut HeapOperatorState<PyRec>) -> UdfResult<T>) -> PyResult<T> {
        let mut c = guard(&self.ctx)?;
        c.broadcast_for_write(self.id).and_then(f).map_err(py_err)
    }
}

#[pymethods]
impl BroadcastStateImpl {
    /// The value under `key`, or None.
    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let k = self.key(key)?;
        Ok(obj(py, self.read(|b| b.get(self.id, &k))?))
    }

    fn put(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = self.key(key)?;
        let (uk, v) = (rec(key), rec(value));
        self.write(|b| b.put(self.id, k, uk, v))
    }

    fn put_all(&self, dict_value: &Bound<'_, PyAny>) -> PyResult<()> {
        let entries = map_entries(&self.enc, dict_value, WHAT)?;
        self.write(|b| b.put_all(self.id, entries))
    }

    fn remove(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = self.key(key)?;
        self.write(|b| b.remove(self.id, &k))
    }

    fn clear(&self) -> PyResult<()> {
        self.write(|b| b.clear(self.id))
    }

    fn contains(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = self.key(key)?;
        self.read(|b| b.contains(self.id, &k))
    }

    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        list_of(py, self.read(|b| b.items(self.id))?.into_iter().map(|(k, _)| k).collect())
    }

    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        list_of(py, self.read(|b| b.items(self.id))?.into_iter().map(|(_, v)| v).collect())
    }

    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        pairs_of(py, self.read(|b| b.items(self.id))?)
    }

    /// Flink's name for `items()`.
    fn immutable_entries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.items(py)
    }

    fn is_empty(&self) -> PyResult<bool> {
        self.read(|b| b.is_empty(self.id))
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.get(py, key)
    }

    fn __setitem__(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.put(key, value)
    }

    fn __delitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        self.remove(key)
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.contains(key)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.keys(py)?.try_iter()?.into_any())
    }
}
