//! Records as Arrow columns and back, for batch UDFs in a columnar format: a batch of
//! tuples (columns `f0`, `f1`...) or dicts (columns named by the first record's keys)
//! of ints, floats, strs, bools and None becomes a `pyarrow.RecordBatch` built here
//! and handed over through the Arrow C data interface; a `RecordBatch`, `Table` or
//! `pandas.DataFrame` the function returns comes back the same way, its rows made
//! into tuples or dicts (as the input records were) here. No Python loop either way.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, NullArray, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Schema};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString, PyTuple};

use ferroflow_engine::{UdfError, UdfResult};

use crate::errors::udf_error;
use crate::record::{describe, type_name, PyRec};

/// What the input records were, hence what the output rows become.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RowShape {
    Tuple,
    Dict,
}

static RECORD_BATCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TABLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

const PLAIN: &str = "columnar batches (batch_format \"arrow\" or \"pandas\") take records that are tuples \
                     or dicts of ints, floats, strs, bools and None";

/// `records` as a `pyarrow.RecordBatch`, and their shape.
pub fn to_record_batch<'py>(py: Python<'py>, records: &[PyRec]) -> UdfResult<(Bound<'py, PyAny>, RowShape)> {
    let first = records[0].0.bind(py);
    let (shape, names): (RowShape, Vec<String>) = if let Ok(t) = first.cast::<PyTuple>() {
        (RowShape::Tuple, (0..t.len()).map(|i| format!("f{i}")).collect())
    } else if let Ok(d) = first.cast::<PyDict>() {
        let names = d.keys().iter().map(|k| k.extract::<String>()).collect::<PyResult<Vec<_>>>().map_err(|_| {
            UdfError::new(format!("{PLAIN}; a dict's keys must be strs (the column names)"))
                .with_record(describe(first))
        })?;
        (RowShape::Dict, names)
    } else {
        return Err(not_plain(first));
    };
    let mut cols: Vec<Col> = names.iter().map(|_| Col::Nulls(0)).collect();
    let keys: Vec<Bound<'py, PyString>> = names.iter().map(|n| PyString::new(py, n)).collect();
    for r in records {
        let x = r.0.bind(py);
        let mismatch = || {
            UdfError::new(format!("{PLAIN}, all of the first record's shape ({} fields)", names.len()))
                .with_record(describe(x))
        };
        match shape {
            RowShape::Tuple => {
                let t = x.cast::<PyTuple>().map_err(|_| not_plain(x))?;
                if t.len() != cols.len() {
                    return Err(mismatch());
                }
                for (i, (col, v)) in cols.iter_mut().zip(t.iter_borrowed()).enumerate() {
                    col.push(&v, &names[i]).map_err(|m| UdfError::new(m).with_record(describe(x)))?;
                }
            }
            RowShape::Dict => {
                let d = x.cast::<PyDict>().map_err(|_| not_plain(x))?;
                if d.len() != cols.len() {
                    return Err(mismatch());
                }
                for (i, col) in cols.iter_mut().enumerate() {
                    let v = d.get_item(&keys[i]).map_err(|e| udf_error(py, e, Some(x)))?.ok_or_else(mismatch)?;
                    col.push(&v, &names[i]).map_err(|m| UdfError::new(m).with_record(describe(x)))?;
                }
            }
        }
    }
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = names
        .iter()
        .zip(cols)
        .map(|(name, col)| {
            let array = col.finish();
            (Field::new(name, array.data_type().clone(), true), array)
        })
        .unzip();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| UdfError::internal(format!("cannot build an Arrow batch: {e}")))?;
    let import =
        RECORD_BATCH.import(py, "pyarrow", "RecordBatch").and_then(|rb| rb.getattr("_import_from_c")).map_err(|e| {
            UdfError::new(format!("batch_format \"arrow\" and \"pandas\" need pyarrow ({e}): pip install pyarrow"))
        })?;
    let batch = crate::files::to_pyarrow(&import, batch).map_err(|e| udf_error(py, e, None))?;
    Ok((batch, shape))
}

fn not_plain(x: &Bound<'_, PyAny>) -> UdfError {
    UdfError::new(format!("{PLAIN}, got {}", type_name(x))).with_record(describe(x))
}

/// One column being built: its type is its first value's (None leaves it open); an
/// int column meeting a float becomes a float column.
enum Col {
    Nulls(usize),
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Str(StringBuilder),
}

impl Col {
    fn kind(&self) -> &'static str {
        match self {
            Col::Nulls(_) => "None",
            Col::Bool(_) => "bool",
            Col::Int(_) => "int",
            Col::Float(_) => "float",
            Col::Str(_) => "str",
        }
    }

    fn push(&mut self, v: &Bound<'_, PyAny>, name: &str) -> Result<(), String> {
        if v.is_none() {
            match self {
                Col::Nulls(n) => *n += 1,
                Col::Bool(b) => b.append_null(),
                Col::Int(b) => b.append_null(),
                Col::Float(b) => b.append_null(),
                Col::Str(b) => b.append_null(),
            }
            return Ok(());
        }
        let nulls = if let Col::Nulls(n) = self { Some(*n) } else { None };
        if v.is_exact_instance_of::<PyBool>() {
            if let Some(n) = nulls {
                let mut b = BooleanBuilder::new();
                b.append_nulls(n);
                *self = Col::Bool(b);
            }
            if let Col::Bool(b) = self {
                b.append_value(v.is_truthy().unwrap_or(false));
                return Ok(());
            }
        } else if v.is_instance_of::<PyInt>() {
            let i: i64 = v.extract().map_err(|_| format!("{PLAIN}: column {name} has an int beyond 64 bits ({v})"))?;
            if let Some(n) = nulls {
                let mut b = Int64Builder::new();
                b.append_nulls(n);
                *self = Col::Int(b);
            }
            match self {
                Col::Int(b) => {
                    b.append_value(i);
                    return Ok(());
                }
                Col::Float(b) => {
                    b.append_value(i as f64);
                    return Ok(());
                }
                _ => {}
            }
        } else if v.is_instance_of::<PyFloat>() {
            let f: f64 = v.extract().unwrap_or(f64::NAN);
            match self {
                Col::Nulls(n) => {
                    let mut b = Float64Builder::new();
                    b.append_nulls(*n);
                    *self = Col::Float(b);
                }
                Col::Int(ints) => {
                    let done = ints.finish();
                    let mut b = Float64Builder::new();
                    b.extend(done.iter().map(|x| x.map(|i| i as f64)));
                    *self = Col::Float(b);
                }
                _ => {}
            }
            if let Col::Float(b) = self {
                b.append_value(f);
                return Ok(());
            }
        } else if let Ok(s) = v.cast::<PyString>() {
            let s = s.to_str().map_err(|e| format!("column {name}: {e}"))?;
            if let Some(n) = nulls {
                let mut b = StringBuilder::new();
                b.append_nulls(n);
                *self = Col::Str(b);
            }
            if let Col::Str(b) = self {
                b.append_value(s);
                return Ok(());
            }
        } else {
            return Err(format!("{PLAIN}, got a {} in column {name}", type_name(v)));
        }
        Err(format!("{PLAIN}: column {name} mixes {} and {} values", self.kind(), type_name(v)))
    }

    fn finish(self) -> ArrayRef {
        match self {
            Col::Nulls(n) => Arc::new(NullArray::new(n)),
            Col::Bool(mut b) => Arc::new(b.finish()),
            Col::Int(mut b) => Arc::new(b.finish()),
            Col::Float(mut b) => Arc::new(b.finish()),
            Col::Str(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Whether a function's result is a table whose rows are the outputs: a pyarrow
/// `RecordBatch` or `Table`, or a pandas `DataFrame`.
pub fn is_table(py: Python<'_>, result: &Bound<'_, PyAny>) -> bool {
    let is = |cell: &PyOnceLock<Py<PyAny>>, module: &str, name: &str| {
        cell.import(py, module, name).and_then(|cls| result.is_instance(cls)).unwrap_or(false)
    };
    is(&RECORD_BATCH, "pyarrow", "RecordBatch") || is(&TABLE, "pyarrow", "Table") || is_data_frame(py, result)
}

/// A pandas `DataFrame` (pandas is looked at only once something imported it).
fn is_data_frame(py: Python<'_>, result: &Bound<'_, PyAny>) -> bool {
    let pandas = py.import("sys").and_then(|sys| sys.getattr("modules")).and_then(|m| m.get_item("pandas"));
    pandas.and_then(|pd| pd.getattr("DataFrame")).and_then(|cls| result.is_instance(&cls)).unwrap_or(false)
}

/// Appends the rows of `table` (see [`is_table`]) as records of `shape`.
pub fn rows(py: Python<'_>, table: &Bound<'_, PyAny>, shape: RowShape, out: &mut Vec<PyRec>) -> UdfResult<()> {
    let batches: Vec<Bound<'_, PyAny>> = (|| -> PyResult<_> {
        if is_data_frame(py, table) {
            let rb = RECORD_BATCH.import(py, "pyarrow", "RecordBatch")?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("preserve_index", false)?;
            Ok(vec![rb.call_method("from_pandas", (table,), Some(&kwargs))?])
        } else if table.is_instance(TABLE.import(py, "pyarrow", "Table")?)? {
            table.call_method0("to_batches")?.try_iter()?.collect()
        } else {
            Ok(vec![table.clone()])
        }
    })()
    .map_err(|e| udf_error(py, e, None))?;
    for batch in batches {
        batch_rows(py, &batch, shape, out)?;
    }
    Ok(())
}

fn batch_rows(py: Python<'_>, batch: &Bound<'_, PyAny>, shape: RowShape, out: &mut Vec<PyRec>) -> UdfResult<()> {
    let mut array = FFI_ArrowArray::empty();
    let mut schema = FFI_ArrowSchema::empty();
    batch
        .call_method1("_export_to_c", (&mut array as *mut _ as usize, &mut schema as *mut _ as usize))
        .map_err(|e| udf_error(py, e, None))?;
    // SAFETY: pyarrow filled both structures (moving ownership to us) above.
    let data = unsafe { from_ffi(array, &schema) }
        .map_err(|e| UdfError::internal(format!("cannot import an Arrow batch from pyarrow: {e}")))?;
    let table = StructArray::from(data);
    let names: Vec<Bound<'_, PyString>> = table.fields().iter().map(|f| PyString::new(py, f.name())).collect();
    let readers = table
        .columns()
        .iter()
        .zip(table.fields())
        .map(|(c, f)| Reader::of(c.as_ref(), f.name()))
        .collect::<UdfResult<Vec<_>>>()?;
    out.reserve(table.len());
    for i in 0..table.len() {
        let values = readers.iter().map(|r| r.value(py, i));
        let row = match shape {
            RowShape::Tuple => PyTuple::new(py, values).map(Bound::into_any),
            RowShape::Dict => {
                let d = PyDict::new(py);
                names.iter().zip(values).try_for_each(|(k, v)| d.set_item(k, v)).map(|()| d.into_any())
            }
        };
        out.push(PyRec::new(row.map_err(|e| udf_error(py, e, None))?.unbind()));
    }
    Ok(())
}

/// A column read back as Python values.
enum Reader<'a> {
    Int(Box<dyn Fn(usize) -> i64 + 'a>, &'a dyn Array),
    UInt(&'a arrow_array::PrimitiveArray<UInt64Type>),
    Float(Box<dyn Fn(usize) -> f64 + 'a>, &'a dyn Array),
    Bool(&'a arrow_array::BooleanArray),
    Str(Box<dyn Fn(usize) -> &'a str + 'a>, &'a dyn Array),
    Null,
}

impl<'a> Reader<'a> {
    fn of(c: &'a dyn Array, name: &str) -> UdfResult<Reader<'a>> {
        macro_rules! int {
            ($t:ty) => {
                if let Some(a) = c.as_primitive_opt::<$t>() {
                    return Ok(Reader::Int(Box::new(move |i| a.value(i) as i64), c));
                }
            };
        }
        int!(Int64Type);
        int!(Int32Type);
        int!(Int16Type);
        int!(Int8Type);
        int!(UInt32Type);
        int!(UInt16Type);
        int!(UInt8Type);
        if let Some(a) = c.as_primitive_opt::<UInt64Type>() {
            return Ok(Reader::UInt(a));
        }
        if let Some(a) = c.as_primitive_opt::<Float64Type>() {
            return Ok(Reader::Float(Box::new(move |i| a.value(i)), c));
        }
        if let Some(a) = c.as_primitive_opt::<Float32Type>() {
            return Ok(Reader::Float(Box::new(move |i| f64::from(a.value(i))), c));
        }
        if let Some(a) = c.as_boolean_opt() {
            return Ok(Reader::Bool(a));
        }
        if let Some(a) = c.as_string_opt::<i32>() {
            return Ok(Reader::Str(Box::new(move |i| a.value(i)), c));
        }
        if let Some(a) = c.as_string_opt::<i64>() {
            return Ok(Reader::Str(Box::new(move |i| a.value(i)), c));
        }
        if let Some(a) = c.as_string_view_opt() {
            return Ok(Reader::Str(Box::new(move |i| a.value(i)), c));
        }
        if *c.data_type() == DataType::Null {
            return Ok(Reader::Null);
        }
        Err(UdfError::new(format!(
            "the function's result has column {name} of Arrow type {}, which ferroflow does not turn into Python \
             values (ints, floats, bools, strings): cast it",
            c.data_type()
        )))
    }

    fn value<'py>(&self, py: Python<'py>, i: usize) -> Bound<'py, PyAny> {
        let null = |a: &dyn Array| a.is_null(i);
        match self {
            Reader::Int(_, a) | Reader::Float(_, a) | Reader::Str(_, a) if null(*a) => py.None().into_bound(py),
            Reader::UInt(a) if a.is_null(i) => py.None().into_bound(py),
            Reader::Bool(a) if a.is_null(i) => py.None().into_bound(py),
            Reader::Int(f, _) => f(i).into_pyobject(py).map(Bound::into_any).unwrap_or_else(|e| match e {}),
            Reader::UInt(a) => a.value(i).into_pyobject(py).map(Bound::into_any).unwrap_or_else(|e| match e {}),
            Reader::Float(f, _) => PyFloat::new(py, f(i)).into_any(),
            Reader::Bool(a) => PyBool::new(py, a.value(i)).to_owned().into_any(),
            Reader::Str(f, _) => PyString::new(py, f(i)).into_any(),
            Reader::Null => py.None().into_bound(py),
        }
    }
}
