//! Window triggers and evictors written in Python (`Trigger` and `Evictor`
//! subclasses), adapted to the engine's [`TriggerFunction`] and [`EvictorFunction`].
//! Each call goes to the API's dispatcher (`window.TriggerUdf` / `EvictorUdf`), which
//! returns the decision and the timers the call set; the engine's window core keeps
//! the timers, purging and clean-up. A trigger's partitioned state is the window
//! operator's keyed state: the (key, window) of each call is set as its scope
//! ([`TriggerScope`]) around it.

use pyo3::prelude::*;
use pyo3::types::PyList;

use ferroflow_engine::functions::WorkerContext;
use ferroflow_engine::key::Key;
use ferroflow_engine::process::{lock, SharedContext, TriggerScope};
use ferroflow_engine::windows::event_time::{EvictorFunction, TriggerContext, TriggerFunction, TriggerResult, Window};
use ferroflow_engine::{UdfError, UdfResult};

use crate::errors::udf_error;
use crate::keys::key_object;
use crate::process::{Ns, StateStore};
use crate::record::{describe, PyRec};
use crate::udf::{BoundUdf, WindowObjects};

/// The dispatcher's operations (see `window.TriggerUdf`).
const ON_ELEMENT: u8 = 0;
const ON_EVENT_TIME: u8 = 1;
const ON_PROCESSING_TIME: u8 = 2;
const ON_MERGE: u8 = 3;
const CLEAR: u8 = 4;

/// One worker's copy of a user's trigger.
pub struct PyTrigger {
    f: BoundUdf,
    can_merge: bool,
    state: SharedContext<PyRec>,
    windows: WindowObjects,
}

impl PyTrigger {
    /// Binds the API's `TriggerUdf` for a worker, its state in the window operator's
    /// keyed state `state`.
    pub fn new(
        py: Python<'_>,
        udf: &Py<PyAny>,
        can_merge: bool,
        ctx: &WorkerContext,
        state: &SharedContext<PyRec>,
    ) -> UdfResult<PyTrigger> {
        let internal = |e: PyErr| UdfError::internal(format!("a trigger could not be set up: {e}"));
        let store = Py::new(py, StateStore { ctx: state.clone(), ns: Ns::Trigger }).map_err(internal)?;
        let f = BoundUdf::from_bind(py, udf.bind(py).call_method1("bind_trigger", (ctx.index, ctx.peers, store)))?;
        Ok(PyTrigger { f, can_merge, state: state.clone(), windows: WindowObjects::new(py).map_err(internal)? })
    }

    /// Calls the dispatcher for `key` and `ctx.window()` (the trigger's state scoped to
    /// them meanwhile), then applies the timers it set; returns its result code.
    fn call(
        &mut self,
        key: &Key,
        ctx: &mut dyn TriggerContext,
        (op, method): (u8, &str),
        merged: &[Window],
        args: (Option<&PyRec>, Option<i64>),
    ) -> UdfResult<Option<u8>> {
        let window = ctx.window();
        let (watermark, now) = (ctx.current_watermark(), ctx.current_processing_time());
        Python::attach(|py| {
            let w = self.windows.object(py, window.info())?;
            let element = args.0.map(|r| r.0.bind(py));
            lock(&self.state).trigger_scope =
                Some(TriggerScope { key: key.clone(), window, merged: merged.to_vec(), now });
            let result = self.f.call.bind(py).call1((op, &w, watermark, now, element, args.1));
            lock(&self.state).trigger_scope = None;
            let result = result.map_err(|e| {
                let mut err = udf_error(py, e, element);
                let key = key_object(py, key).map(|k| describe(&k)).unwrap_or_else(|_| format!("{key:?}"));
                err.message =
                    format!("in the trigger's {method}(), for key {key} and window {}:\n{}", describe(&w), err.message);
                err
            })?;
            let (code, timers): (Option<u8>, Vec<(u8, i64)>) = result.extract().map_err(|e| {
                UdfError::internal(format!("a trigger's dispatcher returned {}: {e}", describe(&result)))
            })?;
            for (timer, t) in timers {
                match timer {
                    0 => ctx.register_event_time_timer(t),
                    1 => ctx.delete_event_time_timer(t),
                    2 => ctx.register_processing_time_timer(t),
                    3 => ctx.delete_processing_time_timer(t),
                    other => return Err(UdfError::internal(format!("a trigger's dispatcher set timer kind {other}"))),
                }
            }
            Ok(code)
        })
    }

    fn decide(
        &mut self,
        key: &Key,
        ctx: &mut dyn TriggerContext,
        what: (u8, &str),
        args: (Option<&PyRec>, Option<i64>),
    ) -> UdfResult<TriggerResult> {
        match self.call(key, ctx, what, &[], args)? {
            Some(code @ 0..=3) => Ok(TriggerResult { fire: code & 1 != 0, purge: code & 2 != 0 }),
            other => Err(UdfError::internal(format!("a trigger's dispatcher decided {other:?}"))),
        }
    }
}

impl TriggerFunction<Key, PyRec> for PyTrigger {
    fn can_merge(&self) -> bool {
        self.can_merge
    }

    fn on_element(
        &mut self,
        key: &Key,
        value: &PyRec,
        timestamp: i64,
        ctx: &mut dyn TriggerContext,
    ) -> UdfResult<TriggerResult> {
        self.decide(key, ctx, (ON_ELEMENT, "on_element"), (Some(value), Some(timestamp)))
    }

    fn on_event_time(&mut self, key: &Key, time: i64, ctx: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        self.decide(key, ctx, (ON_EVENT_TIME, "on_event_time"), (None, Some(time)))
    }

    fn on_processing_time(&mut self, key: &Key, time: i64, ctx: &mut dyn TriggerContext) -> UdfResult<TriggerResult> {
        self.decide(key, ctx, (ON_PROCESSING_TIME, "on_processing_time"), (None, Some(time)))
    }

    fn on_merge(&mut self, key: &Key, merged: &[Window], ctx: &mut dyn TriggerContext) -> UdfResult<()> {
        self.call(key, ctx, (ON_MERGE, "on_merge"), merged, (None, None)).map(drop)
    }

    fn clear(&mut self, key: &Key, ctx: &mut dyn TriggerContext) -> UdfResult<()> {
        self.call(key, ctx, (CLEAR, "clear"), &[], (None, None)).map(drop)
    }

    /// What the user's `clear` left of a merged-away window's state goes.
    fn merged_away(&mut self, key: &Key, window: Window) -> UdfResult<()> {
        use ferroflow_engine::state::{KeyedStateBackend, Namespace};
        lock(&self.state).state.clear_namespace(key, Namespace::Window(window));
        Ok(())
    }

    fn close(&mut self) -> UdfResult<()> {
        self.f.close()
    }
}

/// One worker's copy of a user's evictor.
pub struct PyEvictor {
    f: BoundUdf,
    windows: WindowObjects,
}

impl PyEvictor {
    pub fn new(py: Python<'_>, udf: &Py<PyAny>, ctx: &WorkerContext) -> UdfResult<PyEvictor> {
        let windows =
            WindowObjects::new(py).map_err(|e| UdfError::internal(format!("an evictor could not be set up: {e}")))?;
        Ok(PyEvictor { f: BoundUdf::new(py, udf, ctx)?, windows })
    }
}

impl EvictorFunction<PyRec> for PyEvictor {
    fn evict(
        &mut self,
        after: bool,
        window: Window,
        elements: &[(i64, &PyRec)],
        watermark: i64,
        processing_time: i64,
    ) -> UdfResult<Vec<usize>> {
        Python::attach(|py| {
            let w = self.windows.object(py, window.info())?;
            let list = |items: Vec<Py<PyAny>>| {
                PyList::new(py, items).map_err(|e| UdfError::internal(format!("an evictor's input: {e}")))
            };
            let values = list(elements.iter().map(|(_, v)| v.0.clone_ref(py)).collect())?;
            let stamps: Vec<i64> = elements.iter().map(|(t, _)| *t).collect();
            let result = self.f.call.bind(py).call1((after, &w, values, stamps, watermark, processing_time));
            let result = result.map_err(|e| {
                let mut err = udf_error(py, e, None);
                let method = if after { "evict_after" } else { "evict_before" };
                err.message = format!("in the evictor's {method}(), for window {}:\n{}", describe(&w), err.message);
                err
            })?;
            if result.is_none() {
                return Ok((0..elements.len()).collect());
            }
            result
                .extract()
                .map_err(|e| UdfError::internal(format!("an evictor's dispatcher returned {}: {e}", describe(&result))))
        })
    }

    fn close(&mut self) -> UdfResult<()> {
        self.f.close()
    }
}
