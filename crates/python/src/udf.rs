//! Python callables adapted to the engine's function traits. The engine calls these
//! inside its batch scope, so the GIL is already held: `Python::attach` here only
//! bumps a counter.

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use ferroflow_engine::functions::{KeySelector, Reducer, Sink, Transform, WindowApply, WindowInfo, WorkerContext};
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
        let bound = udf.bind(py).call_method1("bind", (ctx.index, ctx.peers)).map_err(|e| udf_error(py, e, None))?;
        let (call, close): (Py<PyAny>, Option<Py<PyAny>>) = bound.extract().map_err(|e| udf_error(py, e, None))?;
        Ok(BoundUdf { call, close })
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
                Step::Map => out.push(PyRec(result.unbind())),
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
pub fn extend_from(py: Python<'_>, result: &Bound<'_, PyAny>, input: &Bound<'_, PyAny>, out: &mut Vec<PyRec>) -> UdfResult<()> {
    if result.is_none() {
        return Ok(());
    }
    if let Ok(list) = result.cast::<PyList>() {
        out.extend(list.iter().map(|x| PyRec(x.unbind())));
    } else if let Ok(tuple) = result.cast::<PyTuple>() {
        out.extend(tuple.iter().map(|x| PyRec(x.unbind())));
    } else {
        let iter = result.try_iter().map_err(|_| {
            UdfError::new(format!(
                "the function must return an iterable (a list, tuple or generator) or None, got {}",
                crate::record::type_name(result)
            ))
            .with_record(crate::record::describe(input))
        })?;
        for item in iter {
            out.push(PyRec(item.map_err(|e| udf_error(py, e, Some(input)))?.unbind()));
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
            let key = key_of(&k, &mut self.enc).map_err(|m| UdfError::new(m).with_record(crate::record::describe(x)))?;
            Ok((key, PyRec(k.unbind())))
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
            Ok(PyRec(r.unbind()))
        })
    }

    fn close(&mut self) -> UdfResult<()> {
        self.f.close()
    }
}

pub struct PyWindowApply {
    pub f: BoundUdf,
    /// `TimeWindow(start, end)` class and the count windows' `GlobalWindow` object.
    pub time_window: Py<PyAny>,
    pub global_window: Py<PyAny>,
}

impl WindowApply<PyRec> for PyWindowApply {
    fn apply(&mut self, key: &PyRec, window: WindowInfo, values: Vec<PyRec>, out: &mut Vec<PyRec>) -> UdfResult<()> {
        Python::attach(|py| {
            let k = key.0.bind(py);
            let w = match window {
                WindowInfo::Time(tw) => self.time_window.bind(py).call1((tw.start, tw.end)).map_err(|e| udf_error(py, e, None))?,
                WindowInfo::Global => self.global_window.bind(py).clone(),
            };
            let values = PyList::new(py, values.into_iter().map(|v| v.0)).map_err(|e| udf_error(py, e, None))?;
            let result = self.f.call.bind(py).call1((k, w.clone(), values)).map_err(|e| {
                let mut err = udf_error(py, e, None);
                err.message = format!(
                    "in the window function, for key {} and window {}:\n{}",
                    crate::record::describe(k),
                    crate::record::describe(&w),
                    err.message
                );
                err
            })?;
            extend_from(py, &result, k, out)
        })
    }

    fn close(&mut self) -> UdfResult<()> {
        self.f.close()
    }
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
/// (the worker's 1-based index) when the job runs on more than one worker.
pub struct PrintSink {
    pub prefix: Option<String>,
    pub text: String,
}

impl Sink<PyRec> for PrintSink {
    fn write(&mut self, batch: &mut Vec<PyRec>) -> UdfResult<()> {
        Python::attach(|py| {
            self.text.clear();
            for r in batch.drain(..) {
                let x = r.0.bind(py);
                let repr = x.repr().map_err(|e| udf_error(py, e, None))?;
                if let Some(p) = &self.prefix {
                    self.text.push_str(p);
                }
                self.text.push_str(&repr.to_string_lossy());
                self.text.push('\n');
            }
            let stdout = py.import("sys").and_then(|s| s.getattr("stdout")).map_err(|e| udf_error(py, e, None))?;
            stdout.call_method1("write", (self.text.as_str(),)).map_err(|e| udf_error(py, e, None))?;
            Ok(())
        })
    }

    fn close(&mut self) -> UdfResult<()> {
        Python::attach(|py| {
            if let Ok(stdout) = py.import("sys").and_then(|s| s.getattr("stdout")) {
                let _ = stdout.call_method0("flush");
            }
        });
        Ok(())
    }
}
