//! Batch UDFs (`map_batch`, `filter_batch`, `flat_map_batch`): one Python call per
//! batch the engine hands the operator. The function gets a list of the records, or,
//! opted in, a `pyarrow.RecordBatch` / `pandas.DataFrame` built here from records that
//! are tuples or dicts of plain values (`columnar.rs`), with no Python loop.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use ferroflow_engine::functions::{BatchShape, Transform};
use ferroflow_engine::{UdfError, UdfResult};

use crate::columnar;
use crate::errors::udf_error;
use crate::record::PyRec;
use crate::udf::{extend_from, BoundUdf, Step};

/// What the function gets: `batch_format=` of the API.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum BatchFormat {
    List,
    Arrow,
    Pandas,
}

impl BatchFormat {
    pub fn parse(name: &str) -> Option<BatchFormat> {
        match name {
            "list" => Some(BatchFormat::List),
            "arrow" => Some(BatchFormat::Arrow),
            "pandas" => Some(BatchFormat::Pandas),
            _ => None,
        }
    }
}

pub struct PyBatchTransform {
    pub f: BoundUdf,
    pub step: Step,
    pub format: BatchFormat,
}

impl Transform<PyRec> for PyBatchTransform {
    /// Not called: the operator calls `apply_batch` (see `batch_shape`).
    fn apply(&mut self, input: PyRec, out: &mut Vec<PyRec>) -> UdfResult<()> {
        self.apply_batch(std::slice::from_ref(&input), out)
    }

    fn batch_shape(&self) -> Option<BatchShape> {
        Some(match self.step {
            Step::Map => BatchShape::OneToOne,
            Step::Filter => BatchShape::Subset,
            Step::FlatMap => BatchShape::Any,
        })
    }

    fn apply_batch(&mut self, input: &[PyRec], out: &mut Vec<PyRec>) -> UdfResult<()> {
        let Some(first) = input.first() else { return Ok(()) };
        Python::attach(|py| {
            let first = first.0.bind(py);
            let (arg, shape) = match self.format {
                BatchFormat::List => (PyList::new(py, input.iter().map(|r| r.0.bind(py))).map(Bound::into_any), None),
                BatchFormat::Arrow => columnar::to_record_batch(py, input).map(|(b, s)| (Ok(b), Some(s)))?,
                BatchFormat::Pandas => {
                    let (batch, s) = columnar::to_record_batch(py, input)?;
                    (batch.call_method0("to_pandas"), Some(s))
                }
            };
            let arg = arg.map_err(|e| udf_error(py, e, Some(first)))?;
            let result = self.f.call.bind(py).call1((arg,)).map_err(|e| udf_error(py, e, Some(first)))?;
            match self.step {
                Step::Filter => {
                    let keep =
                        mask(py, &result, input.len()).map_err(|e| e.with_record(crate::record::describe(first)))?;
                    out.extend(input.iter().zip(keep).filter(|(_, k)| *k).map(|(r, _)| r.clone()));
                    Ok(())
                }
                Step::Map | Step::FlatMap => match shape {
                    Some(shape) if columnar::is_table(py, &result) => columnar::rows(py, &result, shape, out)
                        .map_err(|e| e.with_record(crate::record::describe(first))),
                    _ => extend_from(py, &result, first, out),
                },
            }
        })
    }

    fn close(&mut self) -> UdfResult<()> {
        self.f.close()
    }
}

/// Which records a batch filter keeps: one truth value per record, from a list or
/// tuple (each item's truth), or anything NumPy reads as an array (a NumPy bool
/// array, a pandas Series, a pyarrow BooleanArray), converted in C.
fn mask(py: Python<'_>, result: &Bound<'_, PyAny>, n: usize) -> UdfResult<Vec<bool>> {
    let keep: Vec<bool> = if let Ok(list) = result.cast::<PyList>() {
        list.iter().map(|x| x.is_truthy()).collect::<PyResult<_>>().map_err(|e| udf_error(py, e, None))?
    } else if let Ok(tuple) = result.cast::<PyTuple>() {
        tuple.iter().map(|x| x.is_truthy()).collect::<PyResult<_>>().map_err(|e| udf_error(py, e, None))?
    } else {
        let bytes = py
            .import("numpy")
            .and_then(|np| {
                let bool_ = np.getattr("bool_")?;
                np.call_method1("asarray", (result, bool_))?.call_method0("tobytes")
            })
            .map_err(|_| {
                UdfError::new(format!(
                    "a batch filter returns a list of booleans or a NumPy bool array (one per record), got {}",
                    crate::record::type_name(result)
                ))
            })?;
        let bytes = bytes.cast::<PyBytes>().map_err(|e| UdfError::internal(format!("numpy tobytes(): {e}")))?;
        bytes.as_bytes().iter().map(|&b| b != 0).collect()
    };
    if keep.len() != n {
        return Err(UdfError::new(format!(
            "the function returned {} booleans for a batch of {n} records: a batch filter returns one per record, in order",
            keep.len()
        )));
    }
    Ok(keep)
}
