//! Canonical key encoding straight from Python objects (no intermediate value model).

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString, PyTuple};

use ferroflow_engine::key::{Key, KeyEncoder, KeyValue, Scalar};

use crate::record::{describe, type_name};

/// Encodes `obj` as a key, or says which part of it cannot be one.
pub fn encode_key(obj: &Bound<'_, PyAny>, enc: &mut KeyEncoder) -> Result<(), String> {
    if obj.is_none() {
        enc.none();
    } else if let Ok(s) = obj.cast::<PyString>() {
        enc.str(&s.to_cow().map_err(|e| e.to_string())?);
    } else if let Ok(b) = obj.cast_exact::<PyBool>() {
        enc.bool(b.is_true());
    } else if let Ok(i) = obj.cast::<PyInt>() {
        encode_int(i, enc)?;
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        enc.float(f.value());
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        enc.bytes(b.as_bytes());
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        enc.begin_tuple(t.len());
        for item in t.iter() {
            encode_key(&item, enc)?;
        }
    } else if obj.hasattr("__index__").unwrap_or(false) && !obj.is_instance_of::<PyFloat>() {
        // Integer-like objects such as numpy.int64.
        let i = obj.call_method0("__index__").map_err(|e| e.to_string())?;
        let i = i.cast::<PyInt>().map_err(|e| e.to_string())?;
        encode_int(i, enc)?;
    } else {
        return Err(format!(
            "keys must be str, int, float, bool, None, bytes or tuples of these; got {} {}",
            type_name(obj),
            describe(obj)
        ));
    }
    Ok(())
}

fn encode_int(i: &Bound<'_, PyInt>, enc: &mut KeyEncoder) -> Result<(), String> {
    match i.extract::<i64>() {
        Ok(v) => enc.int(v),
        Err(_) => {
            let bits: usize = i.call_method0("bit_length").and_then(|b| b.extract()).map_err(|e| e.to_string())?;
            let len = bits / 8 + 1;
            let kwargs = [("signed", true)].into_py_dict(i.py()).map_err(|e| e.to_string())?;
            let bytes = i.call_method("to_bytes", (len, "little"), Some(&kwargs)).map_err(|e| e.to_string())?;
            let bytes = bytes.cast::<PyBytes>().map_err(|e| e.to_string())?;
            enc.big_int(bytes.as_bytes());
        }
    }
    Ok(())
}

/// The key of `obj`, reusing `enc`'s buffer.
pub fn key_of(obj: &Bound<'_, PyAny>, enc: &mut KeyEncoder) -> Result<Key, String> {
    // An exact str, the common key, straight from its UTF-8 (cached by CPython for
    // ASCII strings) without the encoder's buffer.
    if let Ok(s) = obj.cast_exact::<PyString>() {
        if let Ok(text) = s.to_str() {
            return Ok(Key::of_str(text));
        }
    }
    enc.clear();
    encode_key(obj, enc)?;
    Ok(enc.finish())
}

use pyo3::types::IntoPyDict;

/// The Python value a key that is one value encodes (an int, str or bytes comes back
/// as an equal object of its type); None for a tuple key. Keyed state can then keep a
/// key's encoding alone.
pub fn scalar_object<'py>(py: Python<'py>, key: &Key) -> PyResult<Option<Bound<'py, PyAny>>> {
    key.scalar().map(|s| scalar_to_py(py, s)).transpose()
}

/// The Python value any key encodes, tuples included (`apply_to_keyed_state` hands
/// keys to the user's function this way): an object equal to the key the stream had
/// (`True` comes back as 1, `2.0` as 2, an int-like object as an int).
pub fn key_object<'py>(py: Python<'py>, key: &Key) -> PyResult<Bound<'py, PyAny>> {
    fn build<'py>(py: Python<'py>, v: &KeyValue<'_>) -> PyResult<Bound<'py, PyAny>> {
        match v {
            KeyValue::Scalar(s) => scalar_to_py(py, *s),
            KeyValue::Tuple(items) => {
                let items = items.iter().map(|i| build(py, i)).collect::<PyResult<Vec<_>>>()?;
                Ok(PyTuple::new(py, items)?.into_any())
            }
        }
    }
    let value = key
        .value()
        .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("internal error: a key that no encoder wrote"))?;
    build(py, &value)
}

fn scalar_to_py<'py>(py: Python<'py>, s: Scalar<'_>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match s {
        Scalar::None => py.None().into_bound(py),
        Scalar::Int(i) => i.into_pyobject(py)?.into_any(),
        Scalar::BigInt(b) => {
            let kwargs = [("signed", true)].into_py_dict(py)?;
            py.get_type::<PyInt>().call_method("from_bytes", (PyBytes::new(py, b), "little"), Some(&kwargs))?
        }
        Scalar::Float(f) => PyFloat::new(py, f).into_any(),
        Scalar::Str(s) => PyString::new(py, s).into_any(),
        Scalar::Bytes(b) => PyBytes::new(py, b).into_any(),
    })
}
