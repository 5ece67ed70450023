//! Python callables adapted to the engine's function traits. The engine calls these
//! inside its batch scope, so the GIL is already held: `Python::attach` here only
//! bumps a counter.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use ferroflow_engine::functions::{
    CoContext, CoTransform, KeySelector, Partitioner, Reducer, Side, Sink, TimestampAssigner, Transform,
    WindowAggregate, WindowApply, WindowContext, WindowInfo, WorkerContext,
};
use ferroflow_engine::key::{Key, KeyEncoder};
use ferroflow_engine::{UdfError, UdfResult};

use crate::errors::udf_error;
use crate::keys::key_of;
use crate::record::PyRec;

/// A user function bound for one worker: the Python side's `Udf.bind(index, count)`
/// returns `(call, close)`, having called `open()` where the function has one.
pub struct BoundUdf {
    pub call: Py<PyAny>,
    close: Option<Py<PyAny>>,
}

impl BoundUdf {
    pub fn new(py: Python<'_>, udf: &Py<PyAny>, ctx: &WorkerContext) -> UdfResult<BoundUdf> {
        Self::from_bind(py, udf.bind(py).call_method1("bind", (ctx.index, ctx.peers)))
    }

    /// A window function, `udf.bind_window(index, peers, store)`: opened with a runtime
    /// context whose state getters reach `store` (the window operator's keyed state).
    /// Also returns its `clear(key, window, watermark, processing_time)`, if it has one.
    pub fn window(
        py: Python<'_>,
        udf: &Py<PyAny>,
        ctx: &WorkerContext,
        store: Py<PyAny>,
    ) -> UdfResult<(BoundUdf, Option<Py<PyAny>>)> {
        let bound = udf
            .bind(py)
            .call_method1("bind_window", (ctx.index, ctx.peers, store))
            .map_err(|e| udf_error(py, e, None))?;
        let (call, close, clear): (Py<PyAny>, Option<Py<PyAny>>, Option<Py<PyAny>>) = bound
            .extract()
            .map_err(|e| UdfError::internal(format!("bind_window() did not return (call, close, clear): {e}")))?;
        Ok((BoundUdf { call, close }, clear))
    }

    /// What a `bind`-like method of the API returned: `(call, close)`.
    pub fn from_bind(py: Python<'_>, bound: PyResult<Bound<'_, PyAny>>) -> UdfResult<BoundUdf> {
        let bound = bound.map_err(|e| udf_error(py, e, None))?;
        // `bind` is the API's own (it runs the user's `open()`, whose errors are the user's).
        let (call, close): (Py<PyAny>, Option<Py<PyAny>>) =
            bound.extract().map_err(|e| UdfError::internal(format!("bind() did not return (call, close): {e}")))?;
        Ok(BoundUdf { call, close })
    }

    /// The function's `close`, for a caller that runs it later itself.
    pub fn take_close(&mut self) -> Option<Py<PyAny>> {
        self.close.take()
    }

    pub fn close(&mut self) -> UdfResult<()> {
        match self.close.take() {
            Some(close) => Python::attach(|py| close.bind(py).call0().map(drop).map_err(|e| udf_error(py, e, None))),
            None => Ok(()),
        }
    }
}

/// What a stateless step does with its function's result.
#[derive(Clone, Copy)]
pub enum Step {
    Map,
    Filter,
    FlatMap,
}

pub struct PyTransform {
    pub f: BoundUdf,
    pub step: Step,
}

impl Transform<PyRec> for PyTransform {
    fn apply(&mut self, input: PyRec, out: &mut Vec<PyRec>) -> UdfResult<()> {
        Python::attach(|py| {
            let x = input.0.bind(py);
            let result = self.f.call.bind(py).call1((x,)).map_err(|e| udf_error(py, e, Some(x)))?;
            match self.step {
                Step::Map => out.push(PyRec::new(result.unbind())),
                Step::Filter => {
                    if result.is_truthy().map_err(|e| udf_error(py, e, Some(x)))? {
                        out.push(input);
                    }
                }
                Step::FlatMap => extend_from(py, &result, x, out)?,
            }
            Ok(())
        })
    }

    fn close(&mut self) -> UdfResult<()> {
        self.f.close()
    }
}

/// Appends every item of `result` (a list, tuple, generator or any iterable; None
/// means nothing).
pub fn extend_from(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    input: &Bound<'_, PyAny>,
    out: &mut Vec<PyRec>,
) -> UdfResult<()> {
    if result.is_none() {
        return Ok(());
    }
    if let Ok(list) = result.cast::<PyList>() {
        out.extend(list.iter().map(|x| PyRec::new(x.unbind())));
    } else if let Ok(tuple) = result.cast::<PyTuple>() {
        out.extend(tuple.iter().map(|x| PyRec::new(x.unbind())));
    } else {
        let iter = result.try_iter().map_err(|_| {
            UdfError::new(format!(
                "the function must return an iterable (a list, tuple or generator) or None, got {}",
                crate::record::type_name(result)
            ))
            .with_record(crate::record::describe(input))
        })?;
        for item in iter {
            out.push(PyRec::new(item.map_err(|e| udf_error(py, e, Some(input)))?.unbind()));
        }
    }
    Ok(())
}

pub struct PyKeySelector {
    pub f: BoundUdf,
    pub enc: KeyEncoder,
}

impl KeySelector<PyRec> for PyKeySelector {
    fn key(&mut self, record: &PyRec) -> UdfResult<(Key, PyRec)> {
        Python::attach(|py| {
            let x = record.0.bind(py);
            let k = self.f.call.bind(py).call1((x,)).map_err(|e| udf_error(py, e, Some(x)))?;
            let key =
                key_of(&k, &mut self.enc).map_err(|m| UdfError::new(m).with_record(crate::record::describe(x)))?;
            Ok((key, PyRec::new(k.unbind())))
        })
    }

    fn close(&mut self) -> UdfResult<()> {
        self.f.close()
    }
}

pub struct PyReducer {
    pub f: BoundUdf,
}

impl Reducer<PyRec> for PyReducer {
    fn reduce(&mut self, acc: &PyRec, value: &PyRec) -> UdfResult<PyRec> {
        Python::attach(|py| {
            let v = value.0.bind(py);
            let r = self.f.call.bind(py).call1((acc.0.bind(py), v)).map_err(|e| udf_error(py, e, Some(v)))?;
            // The result is kept as the key's state until its next update.
            crate::record::untrack_if_acyclic(&r);
            Ok(PyRec::new(r.unbind()))
        })
    }

    fn close(&mut self) -> UdfResult<()> {
        self.f.close()
    }
}

/// Windows as the API's objects: the `TimeWindow(start, end)` class and the
/// `GlobalWindow` object.
pub struct WindowObjects {
    pub time_window: Py<PyAny>,
    pub global_window: Py<PyAny>,
}

impl WindowObjects {
    pub fn new(py: Python<'_>) -> PyResult<WindowObjects> {
        let windowing = py.import("ferroflow.windowing")?;
        Ok(WindowObjects {
            time_window: windowing.getattr("TimeWindow")?.unbind(),
            global_window: windowing.getattr("GlobalWindow")?.call0()?.unbind(),
        })
    }

    pub fn clone_ref(&self, py: Python<'_>) -> WindowObjects {
        WindowObjects { time_window: self.time_window.clone_ref(py), global_window: self.global_window.clone_ref(py) }
    }

    /// `window` as the API's `TimeWindow` or `GlobalWindow`.
    pub fn object<'py>(&self, py: Python<'py>, window: WindowInfo) -> UdfResult<Bound<'py, PyAny>> {
        Ok(match window {
            WindowInfo::Time(tw) => {
                self.time_window.bind(py).call1((tw.start, tw.end)).map_err(|e| udf_error(py, e, None))?
            }
            WindowInfo::Global => self.global_window.bind(py).clone(),
        })
    }
}

pub struct PyWindowApply {
    pub f: BoundUdf,
    /// The function's `clear(key, window, watermark, processing_time)`, if it has one.
    pub clear: Option<Py<PyAny>>,
    pub windows: WindowObjects,
}

impl PyWindowApply {
    /// The window of `ctx` as the API's `TimeWindow` or `GlobalWindow`.
    fn window<'py>(&self, py: Python<'py>, ctx: &WindowContext) -> UdfResult<Bound<'py, PyAny>> {
        self.windows.object(py, ctx.window)
    }
}

impl WindowApply<PyRec> for PyWindowApply {
    /// Calls `f(key, window, values, watermark, processing_time)`.
    fn apply(&mut self, key: &PyRec, ctx: &WindowContext, values: Vec<PyRec>, out: &mut Vec<PyRec>) -> UdfResult<()> {
        Python::attach(|py| {
            let k = key.0.bind(py);
            let w = self.window(py, ctx)?;
            let values = PyList::new(py, values.into_iter().map(|v| v.0)).map_err(|e| udf_error(py, e, None))?;
            let args = (k, w.clone(), values, ctx.watermark, ctx.processing_time);
            let result = self.f.call.bind(py).call1(args).map_err(|e| {
                let mut err = udf_error(py, e, None);
                err.message = format!(
                    "in the window function, for key {} and window {}:\n{}",
                    crate::record::describe(k),
                    crate::record::describe(&w),
                    err.message
                );
                err
            })?;
            if result.is_none() {
                return Ok(());
            }
            extend_from(py, &result, k, out)
        })
    }

    /// Calls `clear(key, window, watermark, processing_time)`.
    fn clear(&mut self, key: &PyRec, ctx: &WindowContext) -> UdfResult<()> {
        let Some(clear) = &self.clear else { return Ok(()) };
        Python::attach(|py| {
            let k = key.0.bind(py);
            let w = self.window(py, ctx)?;
            clear.bind(py).call1((k, w.clone(), ctx.watermark, ctx.processing_time)).map(drop).map_err(|e| {
                let mut err = udf_error(py, e, None);
                err.message = format!(
                    "in the window function's clear(), for key {} and window {}:\n{}",
                    crate::record::describe(k),
                    crate::record::describe(&w),
                    err.message
                );
                err
            })
        })
    }

    fn close(&mut self) -> UdfResult<()> {
        self.f.close()
    }
}

/// Flink's `AggregateFunction` through the Python layer's dispatcher:
/// `f(0)` create, `f(1, value, acc)` add, `f(2, acc)` result, `f(3, a, b)` merge.
pub struct PyAggregate {
    pub f: BoundUdf,
}

impl PyAggregate {
    fn call<'py>(
        &self,
        py: Python<'py>,
        args: impl pyo3::call::PyCallArgs<'py>,
        what: &str,
        record: Option<&Bound<'py, PyAny>>,
    ) -> UdfResult<PyRec> {
        self.f.call.bind(py).call1(args).map(|r| PyRec::new(r.unbind())).map_err(|e| {
            let mut err = udf_error(py, e, record);
            err.message = format!("in the aggregate function's {what}():\n{}", err.message);
            err
        })
    }
}

impl WindowAggregate<PyRec> for PyAggregate {
    fn create_accumulator(&mut self) -> UdfResult<PyRec> {
        Python::attach(|py| self.call(py, (0,), "create_accumulator", None))
    }

    fn add(&mut self, value: &PyRec, acc: PyRec) -> UdfResult<PyRec> {
        Python::attach(|py| {
            let v = value.0.bind(py);
            self.call(py, (1, v, acc.0), "add", Some(v))
        })
    }

    fn get_result(&mut self, acc: &PyRec) -> UdfResult<PyRec> {
        Python::attach(|py| self.call(py, (2, acc.0.bind(py)), "get_result", None))
    }

    fn merge(&mut self, a: PyRec, b: PyRec) -> UdfResult<PyRec> {
        Python::attach(|py| self.call(py, (3, a.0, b.0), "merge", None))
    }

    fn close(&mut self) -> UdfResult<()> {
        self.f.close()
    }
}

/// Flink's `TimestampAssigner.extract_timestamp(value, record_timestamp)`.
pub struct PyTimestampAssigner {
    pub f: BoundUdf,
}

impl TimestampAssigner<PyRec> for PyTimestampAssigner {
    fn timestamp(&mut self, record: &PyRec, previous: i64) -> UdfResult<i64> {
        Python::attach(|py| {
            let x = record.0.bind(py);
            let ts = self.f.call.bind(py).call1((x, previous)).map_err(|e| udf_error(py, e, Some(x)))?;
            int_ms(&ts, "the timestamp assigner").map_err(|e| e.with_record(crate::record::describe(x)))
        })
    }

    fn close(&mut self) -> UdfResult<()> {
        self.f.close()
    }
}

/// Milliseconds from what a user function returned: an int (or anything with
/// `__index__`, e.g. numpy integers).
pub fn int_ms(value: &Bound<'_, PyAny>, what: &str) -> UdfResult<i64> {
    let not_bool = if value.is_instance_of::<pyo3::types::PyBool>() { None } else { Some(value) };
    not_bool.and_then(|v| v.extract::<i64>().ok()).ok_or_else(|| {
        UdfError::new(format!(
            "{what} must return milliseconds as an int, got {} {}",
            crate::record::type_name(value),
            crate::record::describe(value)
        ))
    })
}

/// `add_sink(fn)`: calls the function once per record.
pub struct PyFunctionSink {
    pub f: BoundUdf,
}

impl Sink<PyRec> for PyFunctionSink {
    fn write(&mut self, batch: &mut Vec<PyRec>) -> UdfResult<()> {
        Python::attach(|py| {
            let f = self.f.call.bind(py);
            for r in batch.drain(..) {
                let x = r.0.bind(py);
                f.call1((x,)).map_err(|e| udf_error(py, e, Some(x)))?;
            }
            Ok(())
        })
    }

    fn close(&mut self) -> UdfResult<()> {
        self.f.close()
    }
}

/// `print()`: `repr` of each record on the current `sys.stdout`, prefixed `k> `
/// (the worker's 1-based index) when the job runs on more than one worker. A batch
/// goes out as one `write` of whole lines, in the process's [`STDOUT_TURN`].
pub struct PrintSink {
    pub prefix: Option<String>,
    /// How a record is shown: `repr` when None, else this function's str (a typed
    /// stream's print form, `ferroflow.typeinfo.print_text`).
    pub text_of: Option<Arc<Py<PyAny>>>,
    pub text: String,
}

impl Sink<PyRec> for PrintSink {
    fn write(&mut self, batch: &mut Vec<PyRec>) -> UdfResult<()> {
        Python::attach(|py| {
            self.text.clear();
            for r in batch.drain(..) {
                let x = r.0.bind(py);
                let shown = match &self.text_of {
                    None => x.repr().map_err(|e| udf_error(py, e, None))?,
                    Some(f) => f.bind(py).call1((x,)).and_then(|s| s.str()).map_err(|e| udf_error(py, e, Some(x)))?,
                };
                if let Some(p) = &self.prefix {
                    self.text.push_str(p);
                }
                self.text.push_str(&shown.to_string_lossy());
                self.text.push('\n');
            }
            let stdout = py.import("sys").and_then(|s| s.getattr("stdout")).map_err(|e| udf_error(py, e, None))?;
            let _turn = STDOUT_TURN.take(py);
            stdout.call_method1("write", (self.text.as_str(),)).map_err(|e| udf_error(py, e, None))?;
            Ok(())
        })
    }

    fn close(&mut self) -> UdfResult<()> {
        Python::attach(|py| {
            if let Ok(stdout) = py.import("sys").and_then(|s| s.getattr("stdout")) {
                let _turn = STDOUT_TURN.take(py);
                let _ = stdout.call_method0("flush");
            }
        });
        Ok(())
    }
}

/// Print sinks write to `sys.stdout` one at a time. Python's text streams are not safe
/// for threads writing at once: while one worker's write blocks on a slow pipe (with
/// the GIL released), another worker's write corrupts the stream's pending buffer,
/// splicing and losing lines.
static STDOUT_TURN: Turn = Turn { busy: std::sync::Mutex::new(false), free: std::sync::Condvar::new() };

/// A lock that may be held across Python calls that release the GIL: it is waited
/// for with the GIL released, so a holder blocked in Python never deadlocks a waiter
/// that holds the GIL.
struct Turn {
    busy: std::sync::Mutex<bool>,
    free: std::sync::Condvar,
}

impl Turn {
    fn take(&'static self, py: Python<'_>) -> TurnGuard {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if *busy {
            drop(busy);
            py.detach(|| {
                let guard = self.busy.lock().unwrap_or_else(|e| e.into_inner());
                let mut busy = self.free.wait_while(guard, |b| *b).unwrap_or_else(|e| e.into_inner());
                *busy = true;
            });
        } else {
            *busy = true;
        }
        TurnGuard(self)
    }
}

struct TurnGuard(&'static Turn);

impl Drop for TurnGuard {
    fn drop(&mut self) {
        *self.0.busy.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.0.free.notify_one();
    }
}

/// A connected stream's function: the Python side binds it to one callable per input
/// (`_connected.CoUdf`); `step` says what their results are. (A `CoProcessFunction`
/// is a process operator with two inputs, see `process.rs`.)
pub struct PyCoTransform {
    pub f: BoundUdf,
    pub calls: [Py<PyAny>; 2],
    pub step: CoStep,
}

/// What a co-function returns: one output (`map1`) or an iterable (`flat_map1`).
#[derive(Clone, Copy)]
pub enum CoStep {
    Map,
    FlatMap,
}

impl PyCoTransform {
    pub fn new(f: BoundUdf, step: CoStep) -> UdfResult<Self> {
        let calls: (Py<PyAny>, Py<PyAny>) = Python::attach(|py| f.call.extract(py))
            .map_err(|e| UdfError::internal(format!("a co-function did not bind to two callables: {e}")))?;
        Ok(PyCoTransform { f, calls: [calls.0, calls.1], step })
    }
}

impl CoTransform<PyRec> for PyCoTransform {
    fn apply(&mut self, side: Side, input: PyRec, _ctx: &CoContext, out: &mut Vec<PyRec>) -> UdfResult<()> {
        Python::attach(|py| {
            let x = input.0.bind(py);
            let call = self.calls[if side == Side::First { 0 } else { 1 }].bind(py);
            let result = call.call1((x,)).map_err(|e| udf_error(py, e, Some(x)))?;
            match self.step {
                CoStep::Map => out.push(PyRec::new(result.unbind())),
                CoStep::FlatMap => extend_from(py, &result, x, out)?,
            }
            Ok(())
        })
    }

    fn close(&mut self) -> UdfResult<()> {
        self.f.close()
    }
}

/// `partition_custom`: the Python side folds the key selector in, so `f(value,
/// num_partitions)` returns the partition.
pub struct PyPartitioner {
    pub f: BoundUdf,
}

impl Partitioner<PyRec> for PyPartitioner {
    fn partition(&mut self, record: &PyRec, num_partitions: usize) -> UdfResult<i64> {
        Python::attach(|py| {
            let x = record.0.bind(py);
            let p = self.f.call.bind(py).call1((x, num_partitions)).map_err(|e| udf_error(py, e, Some(x)))?;
            p.extract::<i64>().map_err(|_| {
                UdfError::new(format!("the partitioner must return an int, got {}", crate::record::type_name(&p)))
                    .with_record(crate::record::describe(x))
            })
        })
    }

    fn close(&mut self) -> UdfResult<()> {
        self.f.close()
    }
}
