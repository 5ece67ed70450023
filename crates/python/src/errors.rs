//! Python exceptions as engine errors: the exception, the user's traceback, the record.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use ferroflow_engine::UdfError;

use crate::record::describe;

static FORMAT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Turns a Python exception raised by user code into a [`UdfError`], with the
/// traceback formatted as Python would print it, minus ferroflow's own frames.
pub fn udf_error(py: Python<'_>, err: PyErr, record: Option<&Bound<'_, PyAny>>) -> UdfError {
    let mut e = UdfError::new(format_exception(py, &err));
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
