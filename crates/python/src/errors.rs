//! Python exceptions as engine errors: the exception, the user's traceback, the record.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use ferroflow_engine::{UdfError, UdfResult};

use crate::record::describe;

static FORMAT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static INTERNAL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static INVALID_USE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Turns a Python exception raised by user code into a [`UdfError`], with the
/// traceback formatted as Python would print it, minus ferroflow's own frames. An
/// [`internal_error`] that went through the user's code stays ferroflow's bug.
pub fn udf_error(py: Python<'_>, err: PyErr, record: Option<&Bound<'_, PyAny>>) -> UdfError {
    let text = format_exception(py, &err);
    let mut e = if is_internal(py, &err) { UdfError::internal(text) } else { UdfError::new(text) };
    if let Some(r) = record {
        e = e.with_record(describe(r));
    }
    e
}

pub fn format_exception(py: Python<'_>, err: &PyErr) -> String {
    let formatted = (|| -> PyResult<String> {
        let format = FORMAT.import(py, "ferroflow._errors", "format_user_exception")?;
        // The traceback travels beside the exception value in a PyErr: pass both.
        format.call1((err.value(py), err.traceback(py)))?.extract::<String>()
    })();
    formatted.unwrap_or_else(|_| err.to_string())
}

/// An engine error met by a Python call into the engine (a state or timer method),
/// raised there: [`invalid_use`] for a misuse the message explains, ferroflow's
/// `InternalError` for a broken invariant (so the job still reports it as a bug when it
/// passes through the user's code).
pub fn engine_error(e: UdfError) -> PyErr {
    let class = if e.internal { (&INTERNAL, "InternalError") } else { (&INVALID_USE, "InvalidUseError") };
    raise_as(class, e.message)
}

/// `ferroflow.InvalidUseError`: the user's code called the API where it cannot work
/// (state outside a keyed stream...); an uncaught one fails the job with one line.
pub fn invalid_use(message: impl Into<String>) -> PyErr {
    raise_as((&INVALID_USE, "InvalidUseError"), message.into())
}

fn raise_as((cell, name): (&PyOnceLock<Py<PyAny>>, &str), message: String) -> PyErr {
    Python::attach(|py| match cell.import(py, "ferroflow._errors", name).and_then(|cls| cls.call1((&message,))) {
        Ok(exc) => PyErr::from_value(exc),
        Err(_) => PyRuntimeError::new_err(message),
    })
}

fn is_internal(py: Python<'_>, err: &PyErr) -> bool {
    INTERNAL
        .import(py, "ferroflow._errors", "InternalError")
        .and_then(|cls| err.value(py).is_instance(cls))
        .unwrap_or(false)
}

/// The Python exception of a user function the engine calls back while a binding
/// method runs (a `ReducingState`'s reduce function, an `AggregatingState`'s
/// `AggregateFunction`, called from `state.add()`). The engine's error only carries
/// text, so the exception itself is kept here and raised again, unchanged, once the
/// engine call returns: the user's own type and traceback, catchable in their code.
#[derive(Default)]
pub struct UserRaised(Option<PyErr>);

impl UserRaised {
    /// `result` of a user call, as the engine wants it; an exception is kept for [`Self::raise`].
    pub fn catch<T>(&mut self, py: Python<'_>, result: PyResult<T>) -> UdfResult<T> {
        result.map_err(|err| {
            let e = udf_error(py, err.clone_ref(py), None);
            self.0 = Some(err);
            e
        })
    }

    /// The exception for the engine's error `e`: the user's own when their function
    /// raised it, else the engine's (see [`engine_error`]).
    pub fn raise(&mut self, e: UdfError) -> PyErr {
        self.0.take().unwrap_or_else(|| engine_error(e))
    }
}
