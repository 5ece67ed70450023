//! Built-in keyed aggregations: `key_by(field)`, `sum`, `min`, `max`, `min_by`,
//! `max_by` and the pieces of `count()`.
//!
//! The semantics are written down (and implemented for every kind of record) in
//! `python/ferroflow/_aggregations.py`; this module is its fast path and must give
//! the same results. Exact tuples, lists and dicts (and bare numbers) are read and
//! built through the C API, and exact `int`s fitting in `i64` and `float`s are added
//! and compared in Rust, so the common case runs no Python bytecode and makes no
//! Python-level call per record. A record only the aggregate's state still holds is
//! updated in place instead of copied (see [`Field::set_in_place`]). Everything else
//! (other record types, ints beyond `i64` or an `i64` overflow, bool, Decimal, numpy
//! scalars, str...) goes to `_aggregations.py`'s `get_field` / `with_field` and to
//! Python's own `+`, `<` and `>`, so results always equal the equivalent `reduce`.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyInt, PyString};

use ferroflow_engine::functions::{
    update_record, KeyFactory, KeySelector, ReduceFactory, Reducer, TimestampAssigner, TimestampFactory, Transform,
    TransformFactory, WorkerContext,
};
use ferroflow_engine::key::{Key, KeyEncoder};
use ferroflow_engine::rolling::{Number, Rolling, RollingState};
use ferroflow_engine::{UdfError, UdfResult};

use crate::copies::free_threaded;
use crate::errors::udf_error;
use crate::keys::key_of;
use crate::record::{describe, type_name, PyRec};
use crate::udf::BoundUdf;

const MODULE: &str = "ferroflow._aggregations";
static GET_FIELD: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static WITH_FIELD: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static FIELD_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

// -- fields ----------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Access {
    /// The record itself.
    Whole,
    /// An item by position (tuples, lists); a dict item keyed by this int.
    Index(isize),
    /// A dict item or an attribute.
    Name,
}

/// The field an aggregation or key reads, as given in the plan.
struct Field {
    access: Access,
    /// The field as the user gave it (None, int or str), for the Python helpers.
    obj: Py<PyAny>,
}

impl Field {
    fn parse(obj: &Bound<'_, PyAny>, node: &str) -> PyResult<Field> {
        let access = if obj.is_none() {
            Access::Whole
        } else if let Ok(s) = obj.cast::<PyString>() {
            if s.to_cow()? == "*" {
                Access::Whole
            } else {
                Access::Name
            }
        } else if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
            Access::Index(
                obj.extract::<isize>()
                    .map_err(|_| PyValueError::new_err(format!("{node}: field index out of range")))?,
            )
        } else {
            return Err(PyValueError::new_err(format!(
                "{node}: a field is an int index or a str name, got {}",
                describe(obj)
            )));
        };
        let obj = if matches!(access, Access::Whole) { obj.py().None() } else { obj.clone().unbind() };
        Ok(Field { access, obj })
    }

    /// `repr` of the field for messages: `1`, `'price'`, or nothing for the record.
    fn text(&self, py: Python<'_>) -> String {
        match self.access {
            Access::Whole => String::new(),
            _ => describe(self.obj.bind(py)),
        }
    }

    /// The field's value in `rec` when a fast path applies, None when Python must tell
    /// (including when the field is missing: Python then raises the error).
    #[inline]
    fn get_fast<'py>(&self, rec: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
        let py = rec.py();
        let p = rec.as_ptr();
        // SAFETY: `p` is a live object (we hold `rec` and the GIL); the type checks come
        // before the type-specific accessors, and indexes are checked against the length.
        unsafe {
            match self.access {
                Access::Whole => Some(rec.clone()),
                Access::Index(i) => {
                    if ffi::PyTuple_CheckExact(p) != 0 {
                        let j = normalize(i, ffi::PyTuple_GET_SIZE(p))?;
                        Some(Bound::from_borrowed_ptr(py, ffi::PyTuple_GET_ITEM(p, j)))
                    } else if ffi::PyList_CheckExact(p) != 0 {
                        let j = normalize(i, ffi::PyList_GET_SIZE(p))?;
                        Some(Bound::from_borrowed_ptr(py, ffi::PyList_GET_ITEM(p, j)))
                    } else if ffi::PyDict_CheckExact(p) != 0 {
                        dict_get(py, p, self.obj.as_ptr())
                    } else if i == 0 && (ffi::PyLong_CheckExact(p) != 0 || ffi::PyFloat_CheckExact(p) != 0) {
                        // Flink: position 0 of a basic value is the value.
                        Some(rec.clone())
                    } else {
                        None
                    }
                }
                Access::Name => {
                    if ffi::PyDict_CheckExact(p) != 0 {
                        dict_get(py, p, self.obj.as_ptr())
                    } else {
                        None
                    }
                }
            }
        }
    }

    /// The field's value in `rec`; a `FieldError` if it has none.
    #[inline]
    fn get<'py>(&self, rec: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        match self.get_fast(rec) {
            Some(v) => Ok(v),
            None => {
                let py = rec.py();
                GET_FIELD.import(py, MODULE, "get_field")?.call1((rec, self.obj.bind(py)))
            }
        }
    }

    /// Sets the field of `rec` to `value` in place when no one else can see `rec`: an
    /// exact tuple, list or dict whose only reference is the caller's (the aggregate's
    /// state), and a new value that is an exact int or float (no GC tracking to fix).
    /// CPython reuses result tuples the same way (`zip`, `dict.items()`): nothing can
    /// tell the reused record from a new one. Returns false when it did nothing.
    #[inline]
    fn set_in_place(&self, rec: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> bool {
        let (p, v) = (rec.as_ptr(), value.as_ptr());
        // SAFETY: `rec` is alive and referenced once (by the caller, which lends it to
        // us with the GIL held), so changing it is unobservable; an old item is
        // released after the new one is stored, as `PyTuple_SetItem` does.
        unsafe {
            if ffi::Py_REFCNT(p) != 1 || (ffi::PyLong_CheckExact(v) == 0 && ffi::PyFloat_CheckExact(v) == 0) {
                return false;
            }
            match self.access {
                Access::Whole => false,
                Access::Index(i) if ffi::PyTuple_CheckExact(p) != 0 => {
                    let Some(j) = normalize(i, ffi::PyTuple_GET_SIZE(p)) else { return false };
                    let old = ffi::PyTuple_GET_ITEM(p, j);
                    ffi::Py_INCREF(v);
                    ffi::PyTuple_SET_ITEM(p, j, v);
                    ffi::Py_DECREF(old);
                    true
                }
                Access::Index(i) if ffi::PyList_CheckExact(p) != 0 => {
                    let Some(j) = normalize(i, ffi::PyList_GET_SIZE(p)) else { return false };
                    let old = ffi::PyList_GET_ITEM(p, j);
                    ffi::Py_INCREF(v);
                    ffi::PyList_SET_ITEM(p, j, v);
                    ffi::Py_DECREF(old);
                    true
                }
                _ if ffi::PyDict_CheckExact(p) != 0 => {
                    // The key is there (`get` found it): this replaces a value, no resize.
                    if ffi::PyDict_SetItem(p, self.obj.as_ptr(), v) < 0 {
                        ffi::PyErr_Clear();
                        return false;
                    }
                    true
                }
                _ => false,
            }
        }
    }

    /// A copy of `rec` with the field set to `value` (the field exists: `get` found it).
    #[inline]
    fn with<'py>(&self, rec: &Bound<'py, PyAny>, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = rec.py();
        let p = rec.as_ptr();
        // SAFETY: as in `get_fast`; new containers are filled completely before use.
        unsafe {
            match self.access {
                Access::Whole => return Ok(value),
                Access::Index(i) => {
                    if ffi::PyTuple_CheckExact(p) != 0 {
                        let n = ffi::PyTuple_GET_SIZE(p);
                        if let Some(j) = normalize(i, n) {
                            let out = Bound::from_owned_ptr_or_err(py, ffi::PyTuple_New(n))?;
                            for k in 0..n {
                                let item = if k == j { value.as_ptr() } else { ffi::PyTuple_GET_ITEM(p, k) };
                                ffi::Py_INCREF(item);
                                ffi::PyTuple_SET_ITEM(out.as_ptr(), k, item);
                            }
                            return Ok(out);
                        }
                    } else if ffi::PyList_CheckExact(p) != 0 {
                        let n = ffi::PyList_GET_SIZE(p);
                        if let Some(j) = normalize(i, n) {
                            let out = Bound::from_owned_ptr_or_err(py, ffi::PyList_New(n))?;
                            for k in 0..n {
                                let item = if k == j { value.as_ptr() } else { ffi::PyList_GET_ITEM(p, k) };
                                ffi::Py_INCREF(item);
                                ffi::PyList_SET_ITEM(out.as_ptr(), k, item);
                            }
                            return Ok(out);
                        }
                    } else if ffi::PyDict_CheckExact(p) != 0 {
                        return dict_with(py, p, self.obj.as_ptr(), &value);
                    } else if i == 0 && (ffi::PyLong_CheckExact(p) != 0 || ffi::PyFloat_CheckExact(p) != 0) {
                        return Ok(value);
                    }
                }
                Access::Name => {
                    if ffi::PyDict_CheckExact(p) != 0 {
                        return dict_with(py, p, self.obj.as_ptr(), &value);
                    }
                }
            }
        }
        WITH_FIELD.import(py, MODULE, "with_field")?.call1((rec, self.obj.bind(py), value))
    }
}

/// Python's index rule (negative counts from the end); None when out of range.
#[inline]
fn normalize(i: isize, len: isize) -> Option<isize> {
    let j = if i < 0 { i + len } else { i };
    (0..len).contains(&j).then_some(j)
}

/// `d[key]` for an exact dict, None if missing (or if looking it up raised: Python
/// then reports it properly).
unsafe fn dict_get<'py>(py: Python<'py>, d: *mut ffi::PyObject, key: *mut ffi::PyObject) -> Option<Bound<'py, PyAny>> {
    let v = ffi::PyDict_GetItemWithError(d, key);
    if v.is_null() {
        if !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear();
        }
        None
    } else {
        Some(Bound::from_borrowed_ptr(py, v))
    }
}

/// A copy of an exact dict with `key` set to `value`.
unsafe fn dict_with<'py>(
    py: Python<'py>,
    d: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let out = Bound::from_owned_ptr_or_err(py, ffi::PyDict_Copy(d))?;
    if ffi::PyDict_SetItem(out.as_ptr(), key, value.as_ptr()) < 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(out)
}

// -- numbers ---------------------------------------------------------------------------

/// An exact `int` fitting in `i64` or an exact `float` as the engine's [`Number`];
/// None for anything else (bool, int subclasses, big ints...): Python decides.
#[inline]
fn num(x: &Bound<'_, PyAny>) -> Option<Number> {
    // SAFETY: `x` is alive and the GIL is held.
    unsafe { num_ptr(x.as_ptr()) }
}

/// [`num`] of a borrowed pointer.
///
/// # Safety
/// `p` must point to a live object, with the GIL held.
#[inline]
unsafe fn num_ptr(p: *mut ffi::PyObject) -> Option<Number> {
    // An exact int only fails to convert by overflowing, which `overflow` reports
    // without setting an exception.
    if ffi::PyLong_CheckExact(p) != 0 {
        let mut overflow = 0;
        let v = ffi::PyLong_AsLongLongAndOverflow(p, &mut overflow);
        if overflow == 0 && (v != -1 || ffi::PyErr_Occurred().is_null()) {
            return Some(Number::Int(v));
        }
        if !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear();
        }
        None
    } else if ffi::PyFloat_CheckExact(p) != 0 {
        Some(Number::Float(ffi::PyFloat_AS_DOUBLE(p)))
    } else {
        None
    }
}

/// A new Python `int` or `float`.
fn number_obj(py: Python<'_>, n: Number) -> PyResult<Bound<'_, PyAny>> {
    // SAFETY: each returns a new reference or NULL with an exception set.
    unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            match n {
                Number::Int(v) => ffi::PyLong_FromLongLong(v),
                Number::Float(v) => ffi::PyFloat_FromDouble(v),
            },
        )
    }
}

fn new_int(py: Python<'_>, v: i64) -> PyResult<Bound<'_, PyAny>> {
    number_obj(py, Number::Int(v))
}

/// `x + y` as Python computes it: in Rust where [`Number::checked_add`] can, else Python's `+`.
#[inline]
fn add<'py>(x: &Bound<'py, PyAny>, y: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if let Some(sum) = num(x).zip(num(y)).and_then(|(a, b)| a.checked_add(b)) {
        return number_obj(x.py(), sum);
    }
    x.add(y)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Lt,
    Gt,
}

/// `x < y` or `x > y` as Python answers it (NaN compares false both ways).
#[inline]
fn compare(x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>, op: Cmp) -> PyResult<bool> {
    if let Some((a, b)) = num(x).zip(num(y)) {
        let exact = match op {
            Cmp::Lt => a.lt(b),
            Cmp::Gt => a.gt(b),
        };
        if let Ok(answer) = exact {
            return Ok(answer);
        }
    }
    match op {
        Cmp::Lt => x.lt(y),
        Cmp::Gt => x.gt(y),
    }
}

// -- errors ----------------------------------------------------------------------------

/// Why a record cannot be aggregated: Python raised (a missing field, a failing `+`
/// or `<`), or the field holds a value the aggregation refuses (see
/// [`Aggregate::check_value`]).
enum AggError {
    Py(PyErr),
    Refused(String),
}

impl From<PyErr> for AggError {
    fn from(e: PyErr) -> Self {
        AggError::Py(e)
    }
}

/// An error while aggregating `record`: a missing field or a refused value gets a
/// one-line message, anything else (a failing `+` or `<`) the exception as Python
/// shows it.
fn agg_error(py: Python<'_>, err: impl Into<AggError>, what: &str, record: &Bound<'_, PyAny>) -> UdfError {
    let err = match err.into() {
        AggError::Py(e) => e,
        AggError::Refused(why) => return UdfError::new(format!("{what}: {why}")).with_record(describe(record)),
    };
    let is_field_error = FIELD_ERROR
        .import(py, MODULE, "FieldError")
        .map(|cls| err.get_type(py).is_subclass(cls).unwrap_or(false))
        .unwrap_or(false);
    if is_field_error {
        let msg = err.value(py).str().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        return UdfError::new(format!("{what}: {msg}")).with_record(describe(record));
    }
    let mut e = udf_error(py, err, Some(record));
    e.message = format!("in {what}:\n{}", e.message);
    e
}

// -- key_by(field) ---------------------------------------------------------------------

/// `key_by(field)`: the key is the field's value, encoded like any key.
pub struct FieldKey {
    field: Arc<Field>,
    what: Arc<str>,
    enc: KeyEncoder,
}

impl KeySelector<PyRec> for FieldKey {
    fn key(&mut self, record: &PyRec) -> UdfResult<(Key, PyRec)> {
        Python::attach(|py| {
            let x = record.0.bind(py);
            let k = self.field.get(x).map_err(|e| agg_error(py, e, &self.what, x))?;
            let key = key_of(&k, &mut self.enc)
                .map_err(|m| UdfError::new(format!("{}: {m}", self.what)).with_record(describe(x)))?;
            Ok((key, PyRec::new(k.unbind())))
        })
    }
}

/// Plan node kind `KeyByField`: `field` is an int, a str or None.
pub fn field_key_factory(name: &str, field: &Bound<'_, PyAny>) -> PyResult<KeyFactory<PyRec>> {
    let py = field.py();
    let field = Arc::new(Field::parse(field, name)?);
    let what: Arc<str> = format!("key_by({})", field.text(py)).into();
    Ok(Arc::new(move |_ctx: &WorkerContext| {
        Ok(Box::new(FieldKey { field: field.clone(), what: what.clone(), enc: KeyEncoder::new() })
            as Box<dyn KeySelector<PyRec>>)
    }))
}

// -- rolling aggregations --------------------------------------------------------------

#[derive(Clone, Copy)]
enum Op {
    Sum,
    Min,
    Max,
    MinBy,
    MaxBy,
}

/// A rolling aggregation: `acc` is the key's previous output, `value` the new record.
pub struct Aggregate {
    op: Op,
    field: Arc<Field>,
    what: Arc<str>,
    /// Whether records the state alone holds may be updated in place (not on
    /// free-threaded Pythons, where reference counts are not that simple).
    in_place: bool,
    /// For `key_by(k).sum/min/max(f)` with `{k, f}` the two positions of a pair: those
    /// positions. Records shaped `(key, number)` then keep a number per key.
    pair: Option<Pair>,
}

/// The positions of the key and of the aggregated number in a 2-tuple.
#[derive(Clone, Copy)]
struct Pair {
    rolling: Rolling,
    key: isize,
    value: isize,
}

impl Pair {
    fn new(op: Op, key_field: Option<isize>, field: &Field) -> Option<Pair> {
        let rolling = match op {
            Op::Sum => Rolling::Sum,
            Op::Min => Rolling::Min,
            Op::Max => Rolling::Max,
            Op::MinBy | Op::MaxBy => return None,
        };
        let Access::Index(f) = field.access else { return None };
        let (key, value) = (normalize(key_field?, 2)?, normalize(f, 2)?);
        (key != value).then_some(Pair { rolling, key, value })
    }

    /// For an exact 2-tuple whose key is an exact str, int or bytes, the number in its
    /// other item. Two such keys that are equal as keys are equal values of one type,
    /// so a result may take its key from the latest record instead of the first (and
    /// a `True` or `1.0` after `1` leaves the fast path).
    #[inline]
    fn number(&self, rec: &Bound<'_, PyAny>) -> Option<Number> {
        let p = rec.as_ptr();
        // SAFETY: `rec` is alive with the GIL held; items are read after the exact
        // type and size checks.
        unsafe {
            if ffi::PyTuple_CheckExact(p) == 0 || ffi::PyTuple_GET_SIZE(p) != 2 {
                return None;
            }
            let key_type = ffi::Py_TYPE(ffi::PyTuple_GET_ITEM(p, self.key));
            let plain = [&raw mut ffi::PyUnicode_Type, &raw mut ffi::PyLong_Type, &raw mut ffi::PyBytes_Type];
            if !plain.contains(&key_type) {
                return None;
            }
            num_ptr(ffi::PyTuple_GET_ITEM(p, self.value))
        }
    }

    /// `(key, n)` (in the pair's order) with `rec`'s key item.
    fn build<'py>(&self, rec: &Bound<'py, PyAny>, n: Number) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: `rec` is an exact 2-tuple (`number` said so), alive with the GIL held.
        let key = unsafe { Bound::from_borrowed_ptr(rec.py(), ffi::PyTuple_GET_ITEM(rec.as_ptr(), self.key)) };
        self.make(&key, n)
    }

    /// `(key, n)` in the pair's order.
    fn make<'py>(&self, key: &Bound<'py, PyAny>, n: Number) -> PyResult<Bound<'py, PyAny>> {
        let py = key.py();
        let n = number_obj(py, n)?;
        // SAFETY: the new tuple is filled completely, each slot with a reference of its
        // own, before anyone sees it.
        unsafe {
            let out = Bound::from_owned_ptr_or_err(py, ffi::PyTuple_New(2))?;
            ffi::PyTuple_SET_ITEM(out.as_ptr(), self.key, key.clone().into_ptr());
            ffi::PyTuple_SET_ITEM(out.as_ptr(), self.value, n.into_ptr());
            Ok(out)
        }
    }
}

impl Aggregate {
    #[inline]
    fn step<'py>(&self, acc: &Bound<'py, PyAny>, value: &Bound<'py, PyAny>) -> Result<Bound<'py, PyAny>, AggError> {
        // The new record first, so that a missing field is reported on it.
        let v = self.field.get(value)?;
        let a = self.field.get(acc)?;
        Ok(match self.op {
            Op::Sum => {
                if num(&v).is_none() {
                    self.check_value(&v, value)?;
                }
                let s = add(&a, &v)?;
                drop(a);
                self.replace(acc, s)?
            }
            // Flink: keep acc while it holds the extreme, else take the new value
            // (also on ties).
            Op::Min => {
                if compare(&a, &v, Cmp::Lt)? {
                    acc.clone()
                } else {
                    self.replace(acc, v)?
                }
            }
            Op::Max => {
                if compare(&a, &v, Cmp::Gt)? {
                    acc.clone()
                } else {
                    self.replace(acc, v)?
                }
            }
            // Flink's min_by/max_by with first=True: the new record only if strictly better.
            Op::MinBy => {
                if compare(&v, &a, Cmp::Lt)? {
                    value.clone()
                } else {
                    acc.clone()
                }
            }
            Op::MaxBy => {
                if compare(&v, &a, Cmp::Gt)? {
                    value.clone()
                } else {
                    acc.clone()
                }
            }
        })
    }

    /// Refuses a field value the aggregation cannot take, in whichever record of its
    /// key it comes (a key's first record is emitted without meeting another, so it is
    /// checked on its own): `sum` adds numbers (`int`, `float` and every
    /// `numbers.Number`: bool, Decimal, Fraction, NumPy's), as Flink's sum takes numeric
    /// fields only; the others compare with `<`, which None (and whatever `<` refuses)
    /// cannot take.
    fn check_value(&self, v: &Bound<'_, PyAny>, record: &Bound<'_, PyAny>) -> Result<(), AggError> {
        if num(v).is_some() {
            return Ok(());
        }
        let refused = |why: &str| {
            let value = if v.is_none() { "None".to_string() } else { format!("{} (a {})", describe(v), type_name(v)) };
            AggError::Refused(match self.field.access {
                Access::Whole => format!("the record {value} {why}"),
                _ => format!("field {} of record {} is {value}, {why}", self.field.text(v.py()), describe(record)),
            })
        };
        match self.op {
            Op::Sum if is_number(v)? => Ok(()),
            Op::Sum => Err(refused(if matches!(self.field.access, Access::Whole) {
                "is not a number"
            } else {
                "not a number"
            })),
            _ if v.is_none() => Err(refused(if matches!(self.field.access, Access::Whole) {
                "cannot be compared"
            } else {
                "which cannot be compared"
            })),
            _ if v.is_exact_instance_of::<PyString>() => Ok(()),
            _ => compare(v, v, Cmp::Lt).map(drop).map_err(AggError::Py),
        }
    }

    /// [`Aggregate::check_value`] of `record`'s field (a missing field is an error too).
    fn check_record(&self, record: &Bound<'_, PyAny>) -> Result<(), AggError> {
        let v = self.field.get(record)?;
        self.check_value(&v, record)
    }
}

/// `isinstance(v, numbers.Number)`.
fn is_number(v: &Bound<'_, PyAny>) -> PyResult<bool> {
    static NUMBER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    v.is_instance(NUMBER.import(v.py(), "numbers", "Number")?)
}

impl Aggregate {
    /// `acc` with the field set to `value`: updated in place if it is ours alone (see
    /// [`Field::set_in_place`]), else a new record.
    #[inline]
    fn replace<'py>(&self, acc: &Bound<'py, PyAny>, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if self.in_place && self.field.set_in_place(acc, &value) {
            Ok(acc.clone())
        } else {
            self.field.with(acc, value)
        }
    }
}

impl Reducer<PyRec> for Aggregate {
    fn reduce(&mut self, acc: &PyRec, value: &PyRec) -> UdfResult<PyRec> {
        Python::attach(|py| {
            let v = value.0.bind(py);
            match self.step(acc.0.bind(py), v) {
                Ok(r) => Ok(PyRec::new(r.unbind())),
                Err(e) => Err(agg_error(py, e, &self.what, v)),
            }
        })
    }

    fn check_first(&mut self, first: &PyRec) -> UdfResult<()> {
        Python::attach(|py| {
            let x = first.0.bind(py);
            self.check_record(x).map_err(|e| agg_error(py, e, &self.what, x))
        })
    }

    fn start(&mut self, first: &PyRec) -> UdfResult<RollingState<PyRec>> {
        Python::attach(|py| {
            Ok(match self.pair.and_then(|pair| pair.number(first.0.bind(py))) {
                Some(value) => RollingState::Running { value },
                None => {
                    self.check_first(first)?;
                    RollingState::Record(first.clone())
                }
            })
        })
    }

    fn update(&mut self, key: &Key, state: &mut RollingState<PyRec>, value: &PyRec) -> UdfResult<PyRec> {
        use std::ops::ControlFlow::{Break, Continue};
        // Running (only with a pair): emit from the fast path (Break), or leave it with
        // the key's record.
        if let (RollingState::Running { value: acc }, Some(pair)) = (&mut *state, self.pair) {
            let left = Python::attach(|py| {
                let v = value.0.bind(py);
                // The pair's fast path: the record is `(key, number)` like the first one.
                if let Some(next) = pair.number(v).and_then(|n| pair.rolling.step(*acc, n)) {
                    *acc = next;
                    return pair
                        .build(v, next)
                        .map(|r| Break(PyRec::new(r.unbind())))
                        .map_err(|e| agg_error(py, e, &self.what, v));
                }
                // Otherwise leave it for good: the record the number stands for (the
                // first one, `(key, number)`, with the number replaced; its key, a str,
                // int or bytes, comes back from the key's encoding), then as any record.
                let first_key = crate::keys::scalar_object(py, key)
                    .map_err(|e| agg_error(py, e, &self.what, v))?
                    .ok_or_else(|| UdfError::internal(format!("{}: a running number's key is a tuple", self.what)))?;
                pair.make(&first_key, *acc)
                    .map(|record| Continue(PyRec::new(record.unbind())))
                    .map_err(|e| agg_error(py, e, &self.what, v))
            })?;
            match left {
                Continue(record) => *state = RollingState::Record(record),
                Break(emit) => return Ok(emit),
            }
        }
        update_record(self, state, value)
    }

    /// A running number's record: the first one, `(key, number)`, rebuilt from the
    /// key's encoding (batch mode's final result).
    fn result(&mut self, key: &Key, state: &RollingState<PyRec>) -> UdfResult<PyRec> {
        let (RollingState::Running { value }, Some(pair)) = (state, self.pair) else {
            return match state {
                RollingState::Record(r) => Ok(r.clone()),
                RollingState::Running { .. } => {
                    Err(UdfError::internal(format!("{}: a running number without a pair", self.what)))
                }
            };
        };
        Python::attach(|py| {
            let first_key = crate::keys::scalar_object(py, key)
                .map_err(|e| UdfError::internal(format!("{}: {e}", self.what)))?
                .ok_or_else(|| UdfError::internal(format!("{}: a running number's key is a tuple", self.what)))?;
            pair.make(&first_key, *value)
                .map(|record| PyRec::new(record.unbind()))
                .map_err(|e| UdfError::internal(format!("{}: {e:?}", self.what)))
        })
    }
}

/// Plan node kind `Aggregate` (`sum`, `min`, `max`, `min_by`, `max_by` and `count`'s
/// last step): `op` of `field` (int, str or None); `what` is how errors name the
/// operation (default `op(field)`), `key_field` the field index the stream is keyed by.
pub fn aggregate_factory(
    name: &str,
    op_name: &str,
    field: &Bound<'_, PyAny>,
    what: Option<String>,
    key_field: Option<isize>,
) -> PyResult<ReduceFactory<PyRec>> {
    let py = field.py();
    let op = match op_name {
        "sum" => Op::Sum,
        "min" => Op::Min,
        "max" => Op::Max,
        "min_by" => Op::MinBy,
        "max_by" => Op::MaxBy,
        other => return Err(PyValueError::new_err(format!("{name}: unknown aggregation '{other}'"))),
    };
    let field = Arc::new(Field::parse(field, name)?);
    let what: Arc<str> = match what {
        Some(w) => w.into(),
        None => format!("{op_name}({})", field.text(py)).into(),
    };
    let in_place = !free_threaded(py);
    let pair = Pair::new(op, key_field, &field);
    Ok(Arc::new(move |_ctx: &WorkerContext| {
        Ok(Box::new(Aggregate { op, field: field.clone(), what: what.clone(), in_place, pair })
            as Box<dyn Reducer<PyRec>>)
    }))
}

/// `WatermarkStrategy.with_timestamp_field(f)`: the timestamp is field `f` of the
/// record (an int of milliseconds), read in Rust.
pub fn field_timestamp_factory(name: &str, field: &Bound<'_, PyAny>) -> PyResult<TimestampFactory<PyRec>> {
    let field = Arc::new(Field::parse(field, name)?);
    Ok(Arc::new(move |_ctx: &WorkerContext| {
        Ok(Box::new(FieldTimestamp { field: field.clone() }) as Box<dyn TimestampAssigner<PyRec>>)
    }))
}

struct FieldTimestamp {
    field: Arc<Field>,
}

impl TimestampAssigner<PyRec> for FieldTimestamp {
    fn timestamp(&mut self, record: &PyRec, _previous: i64) -> UdfResult<i64> {
        Python::attach(|py| {
            let rec = record.0.bind(py);
            let value = self.field.get(rec).map_err(|e| udf_error(py, e, Some(rec)))?;
            crate::udf::int_ms(&value, "the timestamp field").map_err(|e| e.with_record(describe(rec)))
        })
    }
}

// -- count() -----------------------------------------------------------------------------

enum KeySource {
    Field(Arc<Field>),
    Udf(BoundUdf),
}

/// `count()`'s first step: each record becomes `(key, 1)`.
pub struct CountPairs {
    key: KeySource,
    what: Arc<str>,
}

impl Transform<PyRec> for CountPairs {
    fn apply(&mut self, input: PyRec, out: &mut Vec<PyRec>) -> UdfResult<()> {
        Python::attach(|py| {
            let x = input.0.bind(py);
            let k = match &self.key {
                KeySource::Field(f) => f.get(x).map_err(|e| agg_error(py, e, &self.what, x))?,
                KeySource::Udf(u) => u.call.bind(py).call1((x,)).map_err(|e| udf_error(py, e, Some(x)))?,
            };
            let one = new_int(py, 1).map_err(|e| udf_error(py, e, None))?;
            let pair = pyo3::types::PyTuple::new(py, [k, one]).map_err(|e| udf_error(py, e, None))?;
            out.push(PyRec::new(pair.into_any().unbind()));
            Ok(())
        })
    }

    fn close(&mut self) -> UdfResult<()> {
        match &mut self.key {
            KeySource::Udf(u) => u.close(),
            KeySource::Field(_) => Ok(()),
        }
    }
}

/// Plan node kind `CountPairs`: the key is `udf`'s (after `key_by(function)`) or, with
/// no `udf`, `field`'s (after `key_by(field)`).
pub fn count_pairs_factory(
    name: &str,
    field: &Bound<'_, PyAny>,
    udf: Option<Py<PyAny>>,
) -> PyResult<TransformFactory<PyRec>> {
    let what: Arc<str> = "count()".into();
    if let Some(udf) = udf {
        let udf = Arc::new(udf);
        return Ok(Arc::new(move |ctx: &WorkerContext| {
            let f = Python::attach(|py| BoundUdf::new(py, &udf, ctx))?;
            Ok(Box::new(CountPairs { key: KeySource::Udf(f), what: what.clone() }) as Box<dyn Transform<PyRec>>)
        }));
    }
    let field = Arc::new(Field::parse(field, name)?);
    Ok(Arc::new(move |_ctx: &WorkerContext| {
        Ok(Box::new(CountPairs { key: KeySource::Field(field.clone()), what: what.clone() })
            as Box<dyn Transform<PyRec>>)
    }))
}
