//! File formats' records in Python: the engine's values (`connectors::formats::Value`)
//! as dicts, `Row`s, lists and scalars, Python records as values for the JSON lines and
//! CSV encoders, and Arrow record batches as `pyarrow.RecordBatch` (through the Arrow C
//! data interface: the batch's buffers are moved, not copied).

use std::sync::Arc;

use arrow_array::ffi::to_ffi;
use arrow_array::{Array, RecordBatch, StructArray};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use ferroflow_engine::connectors::formats::parquet::FromBatches;
use ferroflow_engine::connectors::formats::writers::ToValues;
use ferroflow_engine::connectors::formats::{FromValues, Value};
use ferroflow_engine::UdfError;

use crate::errors::udf_error;
use crate::record::{type_name, PyRec};

/// Values as records: maps as dicts, or, with `rows`, a top-level map as a named `Row`
/// and a top-level list as a positional one (nested values stay dicts and lists).
pub fn from_values(rows: bool) -> FromValues<PyRec> {
    Arc::new(move |values, out| {
        Python::attach(|py| {
            let make_row = if rows {
                Some(
                    py.import("ferroflow.row")
                        .and_then(|m| m.getattr("_make_row"))
                        .map_err(|e| udf_error(py, e, None))?,
                )
            } else {
                None
            };
            for v in values.drain(..) {
                let obj = match (&make_row, v) {
                    (Some(make), Value::Map(fields)) => {
                        let (names, items): (Vec<String>, Vec<Value>) = fields.into_iter().unzip();
                        let items = items.into_iter().map(|v| to_py(py, v)).collect::<PyResult<Vec<_>>>();
                        items.and_then(|items| make.call1((names, items))).map_err(|e| udf_error(py, e, None))?
                    }
                    (Some(make), Value::List(items)) => {
                        let items = items.into_iter().map(|v| to_py(py, v)).collect::<PyResult<Vec<_>>>();
                        items.and_then(|items| make.call1((py.None(), items))).map_err(|e| udf_error(py, e, None))?
                    }
                    (_, v) => to_py(py, v).map_err(|e| udf_error(py, e, None))?,
                };
                out.push(PyRec::new(obj.unbind()));
            }
            Ok(())
        })
    })
}

fn to_py(py: Python<'_>, v: Value) -> PyResult<Bound<'_, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
        Value::Int(i) => PyInt::new(py, i).into_any(),
        Value::Float(f) => PyFloat::new(py, f).into_any(),
        Value::Str(s) => PyString::new(py, &s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, &b).into_any(),
        Value::List(items) => {
            let items = items.into_iter().map(|v| to_py(py, v)).collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Map(fields) => {
            let d = PyDict::new(py);
            for (k, v) in fields {
                d.set_item(k, to_py(py, v)?)?;
            }
            d.into_any()
        }
    })
}

/// Records as values: dicts as maps, `Row`s as maps (named) or lists, lists and tuples
/// as lists, and plain values; anything else fails naming the record.
pub fn to_values() -> ToValues<PyRec> {
    Arc::new(|batch, out| {
        Python::attach(|py| {
            let row_class =
                py.import("ferroflow.row").and_then(|m| m.getattr("Row")).map_err(|e| udf_error(py, e, None))?;
            for r in batch {
                let x = r.0.bind(py);
                let v = from_py(x, &row_class).map_err(|why| {
                    UdfError::new(format!("cannot write {} to a JSON or CSV file: {why}", crate::record::describe(x)))
                })?;
                out.push(v);
            }
            Ok(())
        })
    })
}

fn from_py(x: &Bound<'_, PyAny>, row_class: &Bound<'_, PyAny>) -> Result<Value, String> {
    if x.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = x.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if x.is_instance_of::<PyInt>() {
        return x.extract::<i64>().map(Value::Int).map_err(|_| format!("the int {x} does not fit in 64 bits"));
    }
    if let Ok(f) = x.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = x.cast::<PyString>() {
        return Ok(Value::Str(s.to_string_lossy().into_owned()));
    }
    if let Ok(b) = x.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(d) = x.cast::<PyDict>() {
        let mut fields = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = k.str().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
            fields.push((key, from_py(&v, row_class)?));
        }
        return Ok(Value::Map(fields));
    }
    if x.is_instance_of::<PyList>() || x.is_instance_of::<PyTuple>() {
        let items = x.try_iter().map_err(|e| e.to_string())?;
        let items = items.map(|i| i.map_err(|e| e.to_string()).and_then(|i| from_py(&i, row_class)));
        return items.collect::<Result<Vec<_>, _>>().map(Value::List);
    }
    if x.is_instance(row_class).unwrap_or(false) {
        let values = x.getattr("_values").map_err(|e| e.to_string())?;
        let Value::List(items) = from_py(&values, row_class)? else { return Err("a Row without values".into()) };
        return match x.getattr("_fields") {
            Ok(names) if !names.is_none() => {
                let names: Vec<String> = names.extract().map_err(|e: PyErr| e.to_string())?;
                Ok(Value::Map(names.into_iter().zip(items).collect()))
            }
            _ => Ok(Value::List(items)),
        };
    }
    Err(format!("{} is not a dict, list, tuple, Row, str, int, float, bool, bytes or None", type_name(x)))
}

/// Record batches as `pyarrow.RecordBatch` records.
pub fn from_batches() -> FromBatches<PyRec> {
    Arc::new(|batches, out| {
        Python::attach(|py| {
            let import = py
                .import("pyarrow")
                .and_then(|pa| pa.getattr("RecordBatch"))
                .and_then(|rb| rb.getattr("_import_from_c"))
                .map_err(|e| {
                    UdfError::new(format!(
                        "record batches are handed to Python as pyarrow.RecordBatch, and pyarrow cannot be imported ({e}): pip install pyarrow"
                    ))
                })?;
            for batch in batches {
                out.push(PyRec::new(to_pyarrow(&import, batch).map_err(|e| udf_error(py, e, None))?.unbind()));
            }
            Ok(())
        })
    })
}

/// Moves `batch` into a `pyarrow.RecordBatch` through the C data interface.
pub(crate) fn to_pyarrow<'py>(import: &Bound<'py, PyAny>, batch: RecordBatch) -> PyResult<Bound<'py, PyAny>> {
    let data = StructArray::from(batch).into_data();
    let (array, schema) = to_ffi(&data)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("cannot export an Arrow batch: {e}")))?;
    let array = Box::new(array);
    let schema = Box::new(schema);
    // pyarrow moves both structures (their release callbacks become null), so
    // dropping the boxes afterwards frees nothing twice.
    import.call1((&*array as *const _ as usize, &*schema as *const _ as usize))
}
