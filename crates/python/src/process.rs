//! Process functions and keyed state for Python: `KeyedProcessFunction` /
//! `ProcessFunction` adapted to the engine's [`Processor`], the context object they
//! receive (`ctx.timestamp()`, `get_current_key()`, `timer_service()`...), and the
//! state objects `open(runtime_context)` gets (`ValueState`, `ListState`, `MapState`,
//! `ReducingState`, `AggregatingState`), all reading the operator's
//! [`SharedContext`]: state and timers of the current key, which the operator sets
//! before each call.
//!
//! One context object per operator instance, reused for every call (no allocation per
//! record). State objects keep the shared context alive; once the job has ended an
//! access raises instead of reaching freed state. A map state's user keys are encoded
//! with the same [`KeyEncoder`] as stream keys (Python's `==` for numbers).

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple, PyType};

use ferroflow_engine::functions::{WindowAggregate, WorkerContext};
use ferroflow_engine::key::{Key, KeyEncoder};
use ferroflow_engine::process::{Emit, ProcessContext, ProcessFactory, Processor, SharedContext};
use ferroflow_engine::state::{
    IncrementalCleanup, KeyedStateBackend, Namespace, StateDescriptor, StateId, StateKind, TtlConfig, TtlUpdate,
    TtlVisibility,
};
use ferroflow_engine::time::{TimeDomain, NO_TIME};
use ferroflow_engine::{UdfError, UdfResult};

use crate::broadcast::BroadcastStateImpl;
use crate::errors::{engine_error, invalid_use, udf_error, UserRaised};
use crate::keys::{key_object, key_of};
use crate::record::PyRec;
use crate::udf::extend_from;

/// Locks the context for a Python call; an access from inside a state's own reduce or
/// aggregate function (the context is locked then) is an error, not a deadlock.
pub(crate) fn guard(ctx: &SharedContext<PyRec>) -> PyResult<MutexGuard<'_, ProcessContext<PyRec>>> {
    match ctx.try_lock() {
        Ok(g) => Ok(g),
        Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        Err(TryLockError::WouldBlock) => Err(invalid_use(
            "keyed state or timers were used inside a state's reduce or aggregate function, which cannot reach them",
        )),
    }
}

pub(crate) fn py_err(e: UdfError) -> PyErr {
    engine_error(e)
}

pub(crate) fn obj(py: Python<'_>, r: Option<PyRec>) -> Py<PyAny> {
    r.map_or_else(|| py.None(), |r| r.0)
}

// -- the context of process_element / on_timer -----------------------------------------------

/// `ctx` of `process_element(value, ctx)` and `on_timer(timestamp, ctx)`; also its own
/// `timer_service()`.
#[pyclass(module = "ferroflow._engine", frozen, name = "ProcessContext")]
pub struct PyProcessContext {
    ctx: SharedContext<PyRec>,
    /// `TimeDomain.EVENT_TIME` and `TimeDomain.PROCESSING_TIME`.
    domains: (Py<PyAny>, Py<PyAny>),
}

#[pymethods]
impl PyProcessContext {
    /// The record's event timestamp (the timer's in `on_timer`), None if it has none.
    fn timestamp(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let ts = guard(&self.ctx)?.timestamp;
        Ok(if ts == NO_TIME { py.None() } else { ts.into_pyobject(py)?.into_any().unbind() })
    }

    /// The key of the record or timer being processed.
    fn get_current_key(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let c = guard(&self.ctx)?;
        if !c.is_keyed() {
            return Err(invalid_use(
                "get_current_key(): a ProcessFunction on a plain stream has no key (use key_by() first)",
            ));
        }
        Ok(c.current_key().map_or_else(|| py.None(), |k| k.0.clone_ref(py)))
    }

    fn timer_service<'py>(slf: &Bound<'py, Self>) -> Bound<'py, Self> {
        slf.clone()
    }

    /// In `on_timer`: which clock fired the timer.
    fn time_domain(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(match guard(&self.ctx)?.domain {
            Some(TimeDomain::EventTime) => self.domains.0.clone_ref(py),
            Some(TimeDomain::ProcessingTime) => self.domains.1.clone_ref(py),
            None => py.None(),
        })
    }

    fn current_watermark(&self) -> PyResult<i64> {
        Ok(guard(&self.ctx)?.watermark)
    }

    fn current_processing_time(&self) -> PyResult<i64> {
        Ok(guard(&self.ctx)?.processing_time)
    }

    fn register_event_time_timer(&self, timestamp: i64) -> PyResult<()> {
        guard(&self.ctx)?.register_timer(TimeDomain::EventTime, timestamp).map_err(py_err)
    }

    fn register_processing_time_timer(&self, timestamp: i64) -> PyResult<()> {
        guard(&self.ctx)?.register_timer(TimeDomain::ProcessingTime, timestamp).map_err(py_err)
    }

    fn delete_event_time_timer(&self, timestamp: i64) -> PyResult<()> {
        guard(&self.ctx)?.delete_timer(TimeDomain::EventTime, timestamp).map_err(py_err)
    }

    fn delete_processing_time_timer(&self, timestamp: i64) -> PyResult<()> {
        guard(&self.ctx)?.delete_timer(TimeDomain::ProcessingTime, timestamp).map_err(py_err)
    }
}

// -- state ---------------------------------------------------------------------------------------

/// Makes the state objects of one operator instance (`runtime_context.get_state(...)`
/// goes here, see `ferroflow.state`), keyed or broadcast: in the key's own namespace,
/// or with `window` in the firing window's (a window function's
/// `context.window_state()`); and visits every key's state (`apply_to_keyed_state`).
/// Every process function gets one; a plain stream's only reaches broadcast state.
#[pyclass(module = "ferroflow._engine", frozen)]
pub struct StateStore {
    pub(crate) ctx: SharedContext<PyRec>,
    pub(crate) ns: Ns,
}

/// Which namespace a store's state objects reach within the current key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ns {
    /// The key's own.
    Key,
    /// The firing window's (a window function's `context.window_state()`).
    Window,
    /// The window a user's trigger runs for (its `ctx.get_partitioned_state()`).
    Trigger,
}

/// What a state object reads and writes through: the operator's context, and in
/// which namespace.
struct Scope {
    ctx: SharedContext<PyRec>,
    ns: Ns,
}

/// TTL settings as `ferroflow.state` hands them over: (ttl ms, restart on read,
/// return expired, incremental cleanup (size, every record) or None, full snapshot).
type TtlTuple = (i64, bool, bool, Option<(usize, bool)>, bool);

fn ttl_config(t: TtlTuple) -> TtlConfig {
    let (ttl_ms, on_read, return_expired, incremental, full_snapshot) = t;
    TtlConfig {
        update: if on_read { TtlUpdate::OnReadAndWrite } else { TtlUpdate::OnCreateAndWrite },
        visibility: if return_expired {
            TtlVisibility::ReturnExpiredIfNotCleanedUp
        } else {
            TtlVisibility::NeverReturnExpired
        },
        incremental: incremental.map(|(size, every_record)| IncrementalCleanup { size, every_record }),
        full_snapshot,
        ..TtlConfig::new(ttl_ms)
    }
}

impl StateStore {
    fn register(&self, name: &str, kind: StateKind, ttl: Option<TtlTuple>) -> PyResult<StateId> {
        let mut d = StateDescriptor::new(name, kind);
        if let Some(t) = ttl {
            d = d.with_ttl(ttl_config(t));
        }
        let mut c = guard(&self.ctx)?;
        if !c.is_keyed() {
            return Err(invalid_use("state is only available on a keyed stream (a function applied after key_by())"));
        }
        if self.ns == Ns::Window {
            c.check_window_scope().map_err(py_err)?;
        }
        c.state.register(&d).map_err(py_err)
    }

    fn scope(&self) -> Scope {
        Scope { ctx: self.ctx.clone(), ns: self.ns }
    }
}

#[pymethods]
impl StateStore {
    /// Whether the operator is keyed (keyed state and timers exist).
    #[getter]
    fn keyed(&self) -> PyResult<bool> {
        Ok(guard(&self.ctx)?.is_keyed())
    }

    /// The broadcast state `name` (a `MapStateDescriptor` given to `broadcast()`).
    fn broadcast_state(&self, name: &str) -> PyResult<BroadcastStateImpl> {
        BroadcastStateImpl::register(&self.ctx, name)
    }

    /// `ctx.apply_to_keyed_state(descriptor, function)` in `process_broadcast_element`:
    /// `function(key, state)` for every key holding keyed state `name`, that key
    /// current meanwhile, so that `state` (what `make_state()` returns: the
    /// descriptor's state object) reads and writes its state.
    fn apply_to_keyed_state(
        &self,
        py: Python<'_>,
        name: &str,
        make_state: &Bound<'_, PyAny>,
        function: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        // The keys first: the function may clear state, which moves keys in the table.
        let keys = guard(&self.ctx)?.keys_of_state(name).map_err(py_err)?;
        let state = make_state.call0()?;
        for key in keys {
            let key_obj = key_object(py, &key)?;
            guard(&self.ctx)?.set_key(key, rec(&key_obj));
            let done = function.call1((key_obj, &state));
            // Back to the broadcast element's own context: no current key.
            guard(&self.ctx)?.clear_key();
            done?;
        }
        Ok(())
    }

    /// The same store in the firing window's namespace (`context.window_state()`).
    fn window_scope(&self) -> StateStore {
        StateStore { ctx: self.ctx.clone(), ns: Ns::Window }
    }

    /// The same store at the key and window a user's trigger runs for
    /// (`ctx.get_partitioned_state()`).
    fn trigger_scope(&self) -> StateStore {
        StateStore { ctx: self.ctx.clone(), ns: Ns::Trigger }
    }

    /// How many (key, window) pairs hold per-window state on this worker now (for
    /// tests: the engine drops a window's state when the window is cleared).
    fn window_state_count(&self) -> PyResult<usize> {
        Ok(guard(&self.ctx)?.state.namespace_count())
    }

    #[pyo3(signature = (name, ttl))]
    fn value_state(&self, name: &str, ttl: Option<TtlTuple>) -> PyResult<ValueStateImpl> {
        Ok(ValueStateImpl { ctx: self.scope(), id: self.register(name, StateKind::Value, ttl)? })
    }

    #[pyo3(signature = (name, ttl))]
    fn list_state(&self, name: &str, ttl: Option<TtlTuple>) -> PyResult<ListStateImpl> {
        Ok(ListStateImpl { ctx: self.scope(), id: self.register(name, StateKind::List, ttl)? })
    }

    #[pyo3(signature = (name, ttl))]
    fn map_state(&self, name: &str, ttl: Option<TtlTuple>) -> PyResult<MapStateImpl> {
        let id = self.register(name, StateKind::Map, ttl)?;
        Ok(MapStateImpl { ctx: self.scope(), id, enc: Mutex::new(KeyEncoder::new()) })
    }

    #[pyo3(signature = (name, ttl, reduce))]
    fn reducing_state(&self, name: &str, ttl: Option<TtlTuple>, reduce: Py<PyAny>) -> PyResult<ReducingStateImpl> {
        Ok(ReducingStateImpl { ctx: self.scope(), id: self.register(name, StateKind::Reducing, ttl)?, reduce })
    }

    /// `functions`: the aggregate function's create_accumulator, add, get_result, merge (or None).
    #[pyo3(signature = (name, ttl, functions))]
    fn aggregating_state(
        &self,
        name: &str,
        ttl: Option<TtlTuple>,
        functions: (Py<PyAny>, Py<PyAny>, Py<PyAny>, Option<Py<PyAny>>),
    ) -> PyResult<AggregatingStateImpl> {
        let id = self.register(name, StateKind::Aggregating, ttl)?;
        let (create, add, get_result, merge) = functions;
        let agg = PyAggFns { create, add, get_result, merge, raised: UserRaised::default() };
        Ok(AggregatingStateImpl { ctx: self.scope(), id, agg: Mutex::new(agg) })
    }
}

/// Runs `f` with the backend (in the scope's namespace) and "now", converting engine
/// errors.
fn with_state<T>(
    scope: &Scope,
    f: impl FnOnce(&mut ferroflow_engine::state::HeapBackend<PyRec>, i64) -> UdfResult<T>,
) -> PyResult<T> {
    with_state_calling(scope, f)?.map_err(py_err)
}

/// [`with_state`] for an `f` that calls user functions back: its own error is left to
/// the caller (see [`UserRaised`]).
fn with_state_calling<T>(
    scope: &Scope,
    f: impl FnOnce(&mut ferroflow_engine::state::HeapBackend<PyRec>, i64) -> UdfResult<T>,
) -> PyResult<UdfResult<T>> {
    let mut c = guard(&scope.ctx)?;
    // One call of `f`, so that it is inlined (the per-record path of keyed state).
    let access = match scope.ns {
        Ns::Key => c.state_for_access(),
        Ns::Window => c.window_state_for_access(),
        Ns::Trigger => c.trigger_state_for_access(),
    };
    let (state, now) = access.map_err(py_err)?;
    let done = f(state, now);
    if scope.ns != Ns::Key {
        state.set_current_namespace(Namespace::Key);
    }
    Ok(done)
}

/// `merge_partitioned_state` of a trigger's state `id` (see
/// [`ProcessContext::merge_trigger_state`]); the merge function's own error is left
/// to the caller, as in [`with_state_calling`].
fn merge_trigger_state(
    scope: &Scope,
    id: StateId,
    merge: &mut dyn FnMut(&PyRec, &PyRec) -> UdfResult<PyRec>,
) -> PyResult<UdfResult<()>> {
    if scope.ns != Ns::Trigger {
        return Err(invalid_use("merging windows' state is only for a trigger's ctx.merge_partitioned_state()"));
    }
    Ok(guard(&scope.ctx)?.merge_trigger_state(id, merge))
}

pub(crate) fn rec(x: &Bound<'_, PyAny>) -> PyRec {
    PyRec::new(x.clone().unbind())
}

#[pyclass(module = "ferroflow._engine", frozen)]
pub struct ValueStateImpl {
    ctx: Scope,
    id: StateId,
}

#[pymethods]
impl ValueStateImpl {
    fn value(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(obj(py, with_state(&self.ctx, |s, now| s.value(self.id, now))?))
    }

    fn update(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = rec(value);
        with_state(&self.ctx, |s, now| s.update(self.id, v, now))
    }

    fn clear(&self) -> PyResult<()> {
        with_state(&self.ctx, |s, now| s.clear(self.id, now))
    }
}

fn records(values: &Bound<'_, PyAny>) -> PyResult<Vec<PyRec>> {
    values.try_iter()?.map(|v| v.map(|v| rec(&v))).collect()
}

pub(crate) fn list_of(py: Python<'_>, values: Vec<PyRec>) -> PyResult<Bound<'_, PyList>> {
    PyList::new(py, values.into_iter().map(|r| r.0))
}

#[pyclass(module = "ferroflow._engine", frozen)]
pub struct ListStateImpl {
    ctx: Scope,
    id: StateId,
}

#[pymethods]
impl ListStateImpl {
    /// The current key's elements, as a list (empty if none).
    fn get<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        list_of(py, with_state(&self.ctx, |s, now| s.list_get(self.id, now))?)
    }

    fn add(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = rec(value);
        with_state(&self.ctx, |s, now| s.list_add(self.id, v, now))
    }

    fn add_all(&self, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let vs = records(values)?;
        with_state(&self.ctx, |s, now| s.list_add_all(self.id, vs, now))
    }

    fn update(&self, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let vs = records(values)?;
        with_state(&self.ctx, |s, now| s.list_update(self.id, vs, now))
    }

    fn clear(&self) -> PyResult<()> {
        with_state(&self.ctx, |s, now| s.clear(self.id, now))
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.get(py)?.try_iter()?.into_any())
    }

    /// A trigger's `ctx.merge_partitioned_state(descriptor)` in `on_merge`: the
    /// merged windows' lists are appended to the new window's.
    fn merge_windows(&self) -> PyResult<()> {
        let mut unused = |_: &PyRec, _: &PyRec| Err(UdfError::internal("lists merge without a merge function"));
        merge_trigger_state(&self.ctx, self.id, &mut unused)?.map_err(py_err)
    }
}

#[pyclass(module = "ferroflow._engine", frozen)]
pub struct MapStateImpl {
    ctx: Scope,
    id: StateId,
    enc: Mutex<KeyEncoder>,
}

impl MapStateImpl {
    fn key(&self, k: &Bound<'_, PyAny>) -> PyResult<Key> {
        user_key(&self.enc, k, "MapState")
    }
}

/// A map state's (or broadcast state's, `what`) user key, encoded as stream keys are.
pub(crate) fn user_key(enc: &Mutex<KeyEncoder>, k: &Bound<'_, PyAny>, what: &str) -> PyResult<Key> {
    let mut enc = enc.lock().unwrap_or_else(|e| e.into_inner());
    key_of(k, &mut enc).map_err(|m| pyo3::exceptions::PyTypeError::new_err(format!("{what} key: {m}")))
}

/// `put_all(dict_value)`'s entries: (encoding, user key, value) each.
pub(crate) fn map_entries(
    enc: &Mutex<KeyEncoder>,
    dict_value: &Bound<'_, PyAny>,
    what: &str,
) -> PyResult<Vec<(Key, PyRec, PyRec)>> {
    let items = dict_value.call_method0("items")?;
    let mut entries = Vec::new();
    for item in items.try_iter()? {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        entries.push((user_key(enc, &k, what)?, rec(&k), rec(&v)));
    }
    Ok(entries)
}

/// `items()` as Python sees them: a list of (key, value) tuples.
pub(crate) fn pairs_of(py: Python<'_>, items: Vec<(PyRec, PyRec)>) -> PyResult<Bound<'_, PyList>> {
    let pairs = items.into_iter().map(|(k, v)| PyTuple::new(py, [k.0, v.0])).collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, pairs)
}

#[pymethods]
impl MapStateImpl {
    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let k = self.key(key)?;
        Ok(obj(py, with_state(&self.ctx, |s, now| s.map_get(self.id, &k, now))?))
    }

    fn put(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = self.key(key)?;
        let (uk, v) = (rec(key), rec(value));
        with_state(&self.ctx, |s, now| s.map_put(self.id, k, uk, v, now))
    }

    fn put_all(&self, dict_value: &Bound<'_, PyAny>) -> PyResult<()> {
        let entries = map_entries(&self.enc, dict_value, "MapState")?;
        with_state(&self.ctx, |s, now| s.map_put_all(self.id, entries, now))
    }

    fn remove(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = self.key(key)?;
        with_state(&self.ctx, |s, now| s.map_remove(self.id, &k, now))
    }

    fn contains(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = self.key(key)?;
        with_state(&self.ctx, |s, now| s.map_contains(self.id, &k, now))
    }

    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        list_of(py, with_state(&self.ctx, |s, now| s.map_keys(self.id, now))?)
    }

    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        list_of(py, with_state(&self.ctx, |s, now| s.map_values(self.id, now))?)
    }

    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        pairs_of(py, with_state(&self.ctx, |s, now| s.map_items(self.id, now))?)
    }

    fn is_empty(&self) -> PyResult<bool> {
        with_state(&self.ctx, |s, now| s.map_is_empty(self.id, now))
    }

    fn clear(&self) -> PyResult<()> {
        with_state(&self.ctx, |s, now| s.clear(self.id, now))
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

#[pyclass(module = "ferroflow._engine", frozen)]
pub struct ReducingStateImpl {
    ctx: Scope,
    id: StateId,
    reduce: Py<PyAny>,
}

#[pymethods]
impl ReducingStateImpl {
    fn get(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(obj(py, with_state(&self.ctx, |s, now| s.reducing_get(self.id, now))?))
    }

    /// A trigger's `ctx.merge_partitioned_state(descriptor)` in `on_merge`: the
    /// merged windows' values go into the new window's, reduced.
    fn merge_windows(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.reduce.bind(py);
        let mut raised = UserRaised::default();
        let mut reduce =
            |a: &PyRec, b: &PyRec| raised.catch(py, f.call1((a.0.bind(py), b.0.bind(py))).map(|r| rec(&r)));
        let done = merge_trigger_state(&self.ctx, self.id, &mut reduce)?;
        done.map_err(|e| raised.raise(e))
    }

    fn add(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = rec(value);
        let f = self.reduce.bind(py);
        let mut raised = UserRaised::default();
        let done = with_state_calling(&self.ctx, |s, now| {
            let mut reduce =
                |a: &PyRec, b: &PyRec| raised.catch(py, f.call1((a.0.bind(py), b.0.bind(py))).map(|r| rec(&r)));
            s.reducing_add(self.id, v, &mut reduce, now)
        })?;
        done.map_err(|e| raised.raise(e))
    }

    fn clear(&self) -> PyResult<()> {
        with_state(&self.ctx, |s, now| s.clear(self.id, now))
    }
}

/// An `AggregateFunction`'s methods, as the backend calls them, and what the last
/// one raised.
struct PyAggFns {
    create: Py<PyAny>,
    add: Py<PyAny>,
    get_result: Py<PyAny>,
    merge: Option<Py<PyAny>>,
    raised: UserRaised,
}

impl PyAggFns {
    fn call(
        f: &Py<PyAny>,
        raised: &mut UserRaised,
        args: impl for<'py> pyo3::call::PyCallArgs<'py>,
    ) -> UdfResult<PyRec> {
        Python::attach(|py| raised.catch(py, f.bind(py).call1(args).map(|r| rec(&r))))
    }
}

impl WindowAggregate<PyRec> for PyAggFns {
    fn create_accumulator(&mut self) -> UdfResult<PyRec> {
        Self::call(&self.create, &mut self.raised, ())
    }

    fn add(&mut self, value: &PyRec, acc: PyRec) -> UdfResult<PyRec> {
        let v = Python::attach(|py| value.0.clone_ref(py));
        Self::call(&self.add, &mut self.raised, (v, acc.0))
    }

    fn get_result(&mut self, acc: &PyRec) -> UdfResult<PyRec> {
        let a = Python::attach(|py| acc.0.clone_ref(py));
        Self::call(&self.get_result, &mut self.raised, (a,))
    }

    fn merge(&mut self, a: PyRec, b: PyRec) -> UdfResult<PyRec> {
        match &self.merge {
            Some(m) => Self::call(m, &mut self.raised, (a.0, b.0)),
            None => Err(UdfError::new("the aggregate function has no merge()")),
        }
    }
}

#[pyclass(module = "ferroflow._engine", frozen)]
pub struct AggregatingStateImpl {
    ctx: Scope,
    id: StateId,
    agg: Mutex<PyAggFns>,
}

#[pymethods]
impl AggregatingStateImpl {
    fn get(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut agg = self.agg.lock().unwrap_or_else(|e| e.into_inner());
        agg.raised = UserRaised::default();
        let done = with_state_calling(&self.ctx, |s, now| s.aggregating_get(self.id, &mut *agg, now))?;
        Ok(obj(py, done.map_err(|e| agg.raised.raise(e))?))
    }

    /// A trigger's `ctx.merge_partitioned_state(descriptor)` in `on_merge`: the
    /// merged windows' accumulators merge into the new window's (`merge()`).
    fn merge_windows(&self) -> PyResult<()> {
        let mut agg = self.agg.lock().unwrap_or_else(|e| e.into_inner());
        agg.raised = UserRaised::default();
        let done = {
            let agg = &mut *agg;
            let mut merge = |a: &PyRec, b: &PyRec| agg.merge(a.clone(), b.clone());
            merge_trigger_state(&self.ctx, self.id, &mut merge)?
        };
        done.map_err(|e| agg.raised.raise(e))
    }

    fn add(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = rec(value);
        let mut agg = self.agg.lock().unwrap_or_else(|e| e.into_inner());
        agg.raised = UserRaised::default();
        let done = with_state_calling(&self.ctx, |s, now| s.aggregating_add(self.id, v, &mut *agg, now))?;
        done.map_err(|e| agg.raised.raise(e))
    }

    fn clear(&self) -> PyResult<()> {
        with_state(&self.ctx, |s, now| s.clear(self.id, now))
    }
}

// -- the process function -------------------------------------------------------------------------

/// A worker's process function: `ProcessUdf.bind_process` (Python) returned its
/// `process_element`, `on_timer` and `close`, having called `open()` with a runtime
/// context whose state getters reach this operator's state.
pub struct PyProcessor {
    process: Py<PyAny>,
    on_timer: Option<Py<PyAny>>,
    close: Option<Py<PyAny>>,
    ctx: Py<PyProcessContext>,
    /// The `OutputTag` class, and the ids of the side outputs the plan reads (side
    /// output `i + 1` is `side_tags[i]`).
    tag_class: Py<PyType>,
    side_tags: Arc<Vec<String>>,
    /// `process_element2` of a `KeyedCoProcessFunction` (connected streams), else None.
    process2: Option<Py<PyAny>>,
}

impl PyProcessor {
    /// Moves the `(output_tag, value)` pairs among the outputs from `first` to their
    /// side output (dropping those for a tag nobody reads, as Flink does).
    fn route_side_outputs(&self, py: Python<'_>, out: &mut Emit<'_, PyRec>, first: usize) -> UdfResult<()> {
        let tag_class = self.tag_class.bind(py).as_type_ptr();
        let mut i = first;
        while i < out.main.len() {
            let tagged = match out.main[i].0.bind(py).cast_exact::<PyTuple>() {
                Ok(t) if t.len() == 2 => {
                    let tag = t.get_borrowed_item(0).map_err(|e| udf_error(py, e, None))?;
                    // A subtype test on the item's type, not `isinstance`: that also
                    // looks up `__class__` on every item that is no tag (~300
                    // instructions per record of a keyed (key, value) output).
                    // SAFETY: both are alive and the GIL is held.
                    let is_tag = unsafe { pyo3::ffi::PyType_IsSubtype(pyo3::ffi::Py_TYPE(tag.as_ptr()), tag_class) };
                    if is_tag != 0 {
                        let id: String =
                            tag.getattr("tag_id").and_then(|v| v.extract()).map_err(|e| udf_error(py, e, None))?;
                        let value = t.get_item(1).map_err(|e| udf_error(py, e, None))?;
                        Some((id, value.unbind()))
                    } else {
                        None
                    }
                }
                _ => None,
            };
            match tagged {
                Some((id, value)) => {
                    out.main.remove(i);
                    if let Some(index) = self.side_tags.iter().position(|t| *t == id) {
                        out.side.push((index + 1, PyRec::new(value)));
                    }
                }
                None => i += 1,
            }
        }
        Ok(())
    }
}

impl Processor<PyRec> for PyProcessor {
    fn process(&mut self, value: PyRec, out: &mut Emit<'_, PyRec>) -> UdfResult<()> {
        Python::attach(|py| {
            let x = value.0.bind(py);
            let result = self.process.bind(py).call1((x, self.ctx.bind(py))).map_err(|e| udf_error(py, e, Some(x)))?;
            let first = out.main.len();
            extend_from(py, &result, x, out.main)?;
            self.route_side_outputs(py, out, first)
        })
    }

    fn on_timer(&mut self, timestamp: i64, _domain: TimeDomain, out: &mut Emit<'_, PyRec>) -> UdfResult<()> {
        let Some(f) = &self.on_timer else { return Ok(()) };
        Python::attach(|py| {
            let result = f.bind(py).call1((timestamp, self.ctx.bind(py))).map_err(|e| udf_error(py, e, None))?;
            let ts = timestamp.into_pyobject(py).map_err(|e| udf_error(py, e.into(), None))?;
            let first = out.main.len();
            extend_from(py, &result, ts.as_any(), out.main)?;
            self.route_side_outputs(py, out, first)
        })
    }

    /// The second input's record: `process` with the second method in place of the
    /// first (two pointer swaps), so both inputs share one call path.
    fn process_second(&mut self, value: PyRec, out: &mut Emit<'_, PyRec>) -> UdfResult<()> {
        let Some(second) = self.process2.as_mut() else {
            return Err(UdfError::internal("a one-input process function was given a second input"));
        };
        std::mem::swap(&mut self.process, second);
        let done = self.process(value, out);
        std::mem::swap(&mut self.process, self.process2.as_mut().expect("just swapped"));
        done
    }

    fn close(&mut self) -> UdfResult<()> {
        match self.close.take() {
            Some(close) => Python::attach(|py| close.bind(py).call0().map(drop).map_err(|e| udf_error(py, e, None))),
            None => Ok(()),
        }
    }
}

/// The engine's factory for a `process` node: `udf` is the API's `ProcessUdf`,
/// `side_tags` the ids of the side outputs the plan reads, in index order.
pub fn process_factory(udf: Arc<Py<PyAny>>, side_tags: Vec<String>) -> ProcessFactory<PyRec> {
    let side_tags = Arc::new(side_tags);
    Arc::new(move |w: &WorkerContext, ctx: &SharedContext<PyRec>| {
        Python::attach(|py| {
            let internal = |e: PyErr| UdfError::internal(format!("a process function could not be set up: {e}"));
            let domain = py.import("ferroflow.time_domain").and_then(|m| m.getattr("TimeDomain")).map_err(internal)?;
            let domains = (
                domain.getattr("EVENT_TIME").map_err(internal)?.unbind(),
                domain.getattr("PROCESSING_TIME").map_err(internal)?.unbind(),
            );
            let store = Py::new(py, StateStore { ctx: ctx.clone(), ns: Ns::Key }).map_err(internal)?;
            let ctx_obj = Py::new(py, PyProcessContext { ctx: ctx.clone(), domains }).map_err(internal)?;
            // `bind_process` runs the user's `open()`, whose errors are the user's.
            let bound = udf
                .bind(py)
                .call_method1("bind_process", (w.index, w.peers, store))
                .map_err(|e| udf_error(py, e, None))?;
            type Bound4 = (Py<PyAny>, Option<Py<PyAny>>, Option<Py<PyAny>>, Option<Py<PyAny>>);
            let (process, on_timer, close, process2): Bound4 = bound
                .extract()
                .map_err(|e| UdfError::internal(format!("bind_process() did not return 4 callables: {e}")))?;
            let tag_class = py
                .import("ferroflow.output_tag")
                .and_then(|m| Ok(m.getattr("OutputTag")?.cast_into::<PyType>()?))
                .map_err(internal)?
                .unbind();
            let side_tags = side_tags.clone();
            Ok(Box::new(PyProcessor { process, on_timer, close, ctx: ctx_obj, tag_class, side_tags, process2 })
                as Box<dyn Processor<PyRec>>)
        })
    })
}
