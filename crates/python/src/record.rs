//! Python objects as engine records, and the GIL as the engine's batch scope.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use ferroflow_engine::functions::BatchScope;
use ferroflow_engine::record::{describe_truncated, BatchReadError, Record};
use ferroflow_engine::time::NO_TIME;

/// Takes an exact tuple of values that refer to nothing (str, int, float, bytes,
/// None, bool, or tuples already so taken) off the garbage collector's lists, as
/// CPython's collector would when it next walked it; other objects are left alone.
///
/// For records kept in state: a reduce's (word, count) tuple lives until its key's next
/// update, and a tracked tuple's deallocation unlinks it from the collector's list,
/// touching two neighbours that by then are cold. With a large state that unlinking was
/// 8-17% of the word count's time; untracking the tuple while it is new costs a few ns.
#[inline]
pub fn untrack_if_acyclic(obj: &Bound<'_, PyAny>) {
    let p = obj.as_ptr();
    // SAFETY: `p` and its items are alive (we hold `obj`, a tuple holds its items) and
    // the GIL is held; an exact tuple cannot change, so it stays acyclic.
    unsafe {
        let tuple = &raw mut ffi::PyTuple_Type;
        if ffi::Py_TYPE(p) != tuple {
            return;
        }
        for i in 0..ffi::PyTuple_GET_SIZE(p) {
            let item = ffi::PyTuple_GET_ITEM(p, i);
            let t = ffi::Py_TYPE(item);
            if ffi::PyType_IS_GC(t) != 0 && (t != tuple || ffi::PyObject_GC_IsTracked(item) != 0) {
                return;
            }
        }
        ffi::PyObject_GC_UnTrack(p.cast());
    }
}

/// A Python object and its event timestamp (ms, `NO_TIME` if none). Inside a process
/// it moves between operators as a pointer.
pub struct PyRec(pub Py<PyAny>, pub i64);

impl PyRec {
    /// A record without a timestamp.
    #[inline]
    pub fn new(obj: Py<PyAny>) -> Self {
        PyRec(obj, NO_TIME)
    }
}

impl Clone for PyRec {
    /// Cloning takes a reference, which needs the GIL; the engine clones inside its
    /// batch scope, where taking it again is only a counter increment.
    fn clone(&self) -> Self {
        Python::attach(|py| PyRec(self.0.clone_ref(py), self.1))
    }
}

impl Record for PyRec {
    fn from_lines(lines: &mut Vec<String>, out: &mut Vec<Self>) {
        Python::attach(|py| out.extend(lines.drain(..).map(|l| PyRec::new(PyString::new(py, &l).into_any().unbind()))));
    }

    fn from_ints(range: std::ops::RangeInclusive<i64>, out: &mut Vec<Self>) {
        Python::attach(|py| {
            out.extend(
                range.map(|i| {
                    PyRec::new(i.into_pyobject(py).map(|b| b.into_any().unbind()).unwrap_or_else(|e| match e {}))
                }),
            )
        });
    }

    fn describe(&self) -> String {
        Python::attach(|py| describe(self.0.bind(py)))
    }

    /// The object's header: its reference count, type and first fields (a state
    /// tuple's items) are what the next operator step reads. And the 16 bytes before
    /// it: a tuple's collector header, read when the tuple is freed (replaced by the
    /// next update). With pymalloc's layout that header is on the line before the
    /// object's for a pair, and the miss on it was ~8% of a word count.
    #[inline]
    fn prefetch(&self) {
        let p = self.0.as_ptr().cast::<i8>();
        ferroflow_engine::state::prefetch_read(p);
        ferroflow_engine::state::prefetch_read(p.wrapping_sub(16));
    }

    /// A key that is one of a tuple's first items (`key_by(0)`, `key_by(lambda r:
    /// r[0])`), found by identity: it then crosses to another process as its index.
    /// Only for tuples the codec sends item by item (exact tuples and named tuples),
    /// so the receiver's item `i` is the sender's; a pickled tuple subclass could
    /// rebuild its items in another order.
    #[inline]
    fn item_index_of(&self, part: &Self) -> Option<u8> {
        let (t, p) = (self.0.as_ptr(), part.0.as_ptr());
        // SAFETY: we hold a reference to `t`; a tuple's size and items never change.
        unsafe {
            if ffi::Py_TYPE(t) != &raw mut ffi::PyTuple_Type
                && (ffi::PyTuple_Check(t) == 0 || !Python::attach(|py| travels_item_by_item(self.0.bind(py))))
            {
                return None;
            }
            let n = ffi::PyTuple_GET_SIZE(t).min(KEY_ITEMS_SCANNED);
            (0..n).find(|&i| ffi::PyTuple_GET_ITEM(t, i) == p).map(|i| i as u8)
        }
    }

    fn item(&self, index: u8) -> Option<Self> {
        Python::attach(|py| {
            let t = self.0.bind(py).cast::<PyTuple>().ok()?;
            t.get_item(index as usize).ok().map(|item| PyRec::new(item.unbind()))
        })
    }

    /// The compact codec (pickle only for types it does not know), once per batch,
    /// after the timestamps: a 0 byte if no record has one (the common case), else a 1
    /// byte, the record count (u32) and one i64 per record, little-endian.
    fn encode_batch<'a>(records: impl ExactSizeIterator<Item = &'a Self>, out: &mut Vec<u8>) -> Result<(), String> {
        let records: Vec<&PyRec> = records.collect();
        if records.iter().all(|r| r.1 == NO_TIME) {
            out.push(0);
        } else {
            out.push(1);
            out.extend_from_slice(&(records.len() as u32).to_le_bytes());
            out.reserve(records.len() * 8);
            for r in &records {
                out.extend_from_slice(&r.1.to_le_bytes());
            }
        }
        Python::attach(|py| crate::codec::encode_batch_iter(py, records.iter().map(|r| &r.0), out))
    }

    fn decode_batch(bytes: &[u8], out: &mut Vec<Self>) -> Result<(), BatchReadError> {
        let (&flag, rest) = bytes.split_first().ok_or("empty batch")?;
        let start = out.len();
        match flag {
            0 => Python::attach(|py| crate::codec::decode_batch_into(py, rest, out, PyRec::new).map(drop)),
            1 => {
                let (count, rest) = rest.split_at_checked(4).ok_or("truncated timestamps")?;
                let count = u32::from_le_bytes(count.try_into().map_err(|_| "bad count")?) as usize;
                let (stamps, batch) = rest.split_at_checked(count * 8).ok_or("truncated timestamps")?;
                Python::attach(|py| crate::codec::decode_batch_into(py, batch, out, PyRec::new).map(drop))?;
                if out.len() - start != count {
                    out.truncate(start);
                    return Err("timestamps and records disagree".into());
                }
                for (r, ts) in out[start..].iter_mut().zip(stamps.chunks_exact(8)) {
                    r.1 = i64::from_le_bytes(ts.try_into().unwrap_or([0; 8]));
                }
                Ok(())
            }
            other => Err(format!("unknown batch format {other}").into()),
        }
    }

    fn make_private(&mut self) -> Result<(), String> {
        Python::attach(|py| crate::copies::make_private(py, &mut self.0))
    }

    fn make_all_private(records: &mut [Self]) -> Result<(), (usize, String)> {
        Python::attach(|py| {
            for (i, r) in records.iter_mut().enumerate() {
                crate::copies::make_private(py, &mut r.0).map_err(|e| (i, e))?;
            }
            Ok(())
        })
    }

    fn timestamp(&self) -> i64 {
        self.1
    }

    fn set_timestamp(&mut self, ts: i64) {
        self.1 = ts;
    }
}

/// `repr(obj)`, truncated, for error messages.
pub fn describe(obj: &Bound<'_, PyAny>) -> String {
    match obj.repr() {
        Ok(r) => describe_truncated(&r.to_string_lossy()),
        Err(_) => format!("<{} object with a failing __repr__>", type_name(obj)),
    }
}

pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".to_string())
}

/// The last few tuple subclasses [`travels_item_by_item`] looked at, and its answers
/// (a stream's records are of one class or a few; each class is held, so its address
/// cannot be reused by another).
struct TupleClasses(Vec<(Py<pyo3::types::PyType>, bool)>);

/// How many classes [`TupleClasses`] remembers (Nexmark's stream has three).
const TUPLE_CLASSES_KEPT: usize = 4;

impl Drop for TupleClasses {
    /// At a thread's exit Python may be gone: the classes' references are left as they are.
    fn drop(&mut self) {
        self.0.drain(..).for_each(std::mem::forget);
    }
}

std::thread_local! {
    static TUPLE_CLASSES: std::cell::RefCell<TupleClasses> = const { std::cell::RefCell::new(TupleClasses(Vec::new())) };
}

/// Whether the codec sends this tuple subclass's instances as their items (a named
/// tuple), rather than pickled.
fn travels_item_by_item(t: &Bound<'_, PyAny>) -> bool {
    let cls = t.get_type();
    TUPLE_CLASSES.with(|known| {
        let mut known = known.borrow_mut();
        if let Some((_, answer)) = known.0.iter().find(|(c, _)| c.is(&cls)) {
            return *answer;
        }
        let answer = crate::codec::named_tuple_class(&cls).is_some();
        if known.0.len() == TUPLE_CLASSES_KEPT {
            known.0.remove(0);
        }
        known.0.push((cls.unbind(), answer));
        answer
    })
}

/// How far into a tuple [`PyRec::item_index_of`] looks for a key.
const KEY_ITEMS_SCANNED: ffi::Py_ssize_t = 16;

/// Holds the GIL for a batch; keeps one Python thread state per worker thread.
pub struct GilScope;

impl BatchScope for GilScope {
    fn enter(&self, work: &mut dyn FnMut()) {
        Python::attach(|_py| work());
    }

    fn run_worker(&self, work: &mut dyn FnMut()) {
        // Attaching once and detaching keeps this thread's Python thread state alive,
        // so each later attach is cheap (a fresh one costs microseconds).
        let work = SameThread(work);
        Python::attach(|py| {
            py.detach(move || {
                let w = work;
                (w.0)()
            })
        });
    }
}

/// `detach` wants a `Send` closure because it cannot know the closure stays on this
/// thread; it does (detach runs it right here), so the worker body needs no `Send`.
struct SameThread<'a>(&'a mut dyn FnMut());

// SAFETY: `Python::detach` runs its closure on the calling thread before returning;
// the wrapped reference never leaves this thread.
unsafe impl Send for SameThread<'_> {}
