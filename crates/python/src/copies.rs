//! Records of their own (object reuse off, the default): whether anything besides its
//! holder can reach a part of a Python record that can change, and the copy that
//! replaces it when something can.
//!
//! The engine calls [`make_private`] wherever one record may have become reachable
//! from two places (see `Record::make_private`). Reference counts say where that
//! happened: an object only its holder refers to has a count of 1, so a record whose
//! mutable parts all have a count of 1 is its holder's alone and is passed on as it
//! is. Values that cannot change (str, int, float, bytes, None, bool, tuples and
//! frozensets of these, namedtuples, datetime and Decimal values, Enum members) need
//! no copy at all, so the common records cost a few type checks. The copy has `copy.deepcopy`'s semantics, as Flink's copy with object
//! reuse off is a deep copy by the record's serializer: deepcopy keeps the record's
//! types (a pickle round trip would need importable classes and fails on lambdas and
//! local classes) and keeps aliasing inside the record. Exact lists, dicts, sets and
//! tuples over values that cannot change are copied here in Rust (what deepcopy would
//! build, without its Python-level calls); anything else goes to `copy.deepcopy`.
//!
//! Objects of other classes count as their holder's when nothing else refers to
//! them: what they refer to inside is not looked at (that would mean materialising
//! their `__dict__`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// Deeper records are copied by `copy.deepcopy` (and taken as shared when checked).
const MAX_DEPTH: u32 = 48;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sharing {
    /// Cannot change: no copy ever needed.
    Immutable,
    /// Can change, and only its holder reaches it.
    Private,
    /// Can change, and something else reaches it (or we cannot tell).
    Shared,
}

/// Replaces `*obj` by a copy if a part of it that can change is reachable from
/// anywhere but `*obj` itself (held once, by the caller). The error is the reason
/// the copy failed, with what to do about it.
pub fn make_private(py: Python<'_>, obj: &mut Py<PyAny>) -> Result<(), String> {
    let p = obj.as_ptr();
    // SAFETY: `p` is alive (we hold `obj`) and the GIL is held.
    let sharing = unsafe { sharing(p, 0) };
    let shared = match sharing {
        Sharing::Immutable => return Ok(()),
        Sharing::Private => counts_unreliable(py),
        Sharing::Shared => true,
    };
    if shared {
        *obj = deep_copy(obj.bind(py)).map_err(copy_failed)?.unbind();
    }
    Ok(())
}

/// On a free-threaded Python reference counts are split between threads: a count
/// of 1 does not prove anything, so every record that can change is copied.
fn counts_unreliable(py: Python<'_>) -> bool {
    // PyOnceLock, not std's: the first call runs Python (an import), which may let
    // another worker thread take the GIL and wait here; std's lock would wait holding it.
    static FREE_THREADED: PyOnceLock<bool> = PyOnceLock::new();
    *FREE_THREADED.get_or_init(py, || free_threaded(py))
}

/// A free-threaded CPython build (`Py_GIL_DISABLED`), where reference counts prove
/// nothing (see also `builtins`' in-place updates); in doubt, say yes.
pub(crate) fn free_threaded(py: Python<'_>) -> bool {
    let flag = || -> PyResult<bool> {
        let v = py.import("sysconfig")?.call_method1("get_config_var", ("Py_GIL_DISABLED",))?;
        v.is_truthy()
    };
    flag().unwrap_or(true)
}

fn copy_failed(e: PyErr) -> String {
    format!(
        "{e}. Records that can change are copied so that no operator sees another's changes \
         (object reuse off, the default as in Flink): make this one copyable by copy.deepcopy, \
         or let operators share records with env.get_config().enable_object_reuse()"
    )
}

/// A deep copy of `obj`: built here for plain containers, else `copy.deepcopy`.
pub fn deep_copy<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let mut memo = Memo::default();
    // SAFETY: `obj` is alive and the GIL is held.
    if let Some(copied) = unsafe { copy_plain(obj.py(), obj.as_ptr(), &mut memo, 0) } {
        return copied;
    }
    static DEEPCOPY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    DEEPCOPY.import(obj.py(), "copy", "deepcopy")?.call1((obj,))
}

/// The values records are mostly made of: str, int, float, None, bool.
///
/// # Safety
/// `p` must be a live object of type `t`.
#[inline(always)]
unsafe fn is_scalar(p: *mut ffi::PyObject, t: *mut ffi::PyTypeObject) -> bool {
    t == &raw mut ffi::PyUnicode_Type
        || t == &raw mut ffi::PyLong_Type
        || t == &raw mut ffi::PyFloat_Type
        || p == ffi::Py_None()
        || t == &raw mut ffi::PyBool_Type
}

/// Whether objects of type `t` cannot change, or are what `copy.deepcopy` hands back
/// as they are (classes, functions, builtins, range, Ellipsis).
///
/// # Safety
/// `p` must be a live object of type `t`, with the GIL held.
#[inline]
unsafe fn is_atomic(p: *mut ffi::PyObject, t: *mut ffi::PyTypeObject) -> bool {
    is_scalar(p, t)
        || t == &raw mut ffi::PyBytes_Type
        || t == &raw mut ffi::PyComplex_Type
        || t == &raw mut ffi::PyRange_Type
        || p == ffi::Py_Ellipsis()
        || ffi::PyType_Check(p) != 0
        || ffi::PyFunction_Check(p) != 0
        || ffi::PyCFunction_Check(p) != 0
}

/// An exact tuple, or a subclass adding no state (a namedtuple).
///
/// # Safety
/// `t` must be a live type, with the GIL held.
#[inline]
pub(crate) unsafe fn is_plain_tuple(t: *mut ffi::PyTypeObject) -> bool {
    let tuple = &raw mut ffi::PyTuple_Type;
    t == tuple
        || (ffi::PyType_IsSubtype(t, tuple) != 0
            && (*t).tp_dictoffset == 0
            && (*t).tp_basicsize == (*tuple).tp_basicsize)
}

/// How `p` (held by one reference of its holder, at `depth` below the record) is shared.
///
/// # Safety
/// `p` must be a live object, with the GIL held; nothing here runs Python code.
unsafe fn sharing(p: *mut ffi::PyObject, depth: u32) -> Sharing {
    let t = ffi::Py_TYPE(p);
    // The common cases first, checked inline: this runs for every record a function
    // returns.
    if is_scalar(p, t) {
        return Sharing::Immutable;
    }
    let tuple = t == &raw mut ffi::PyTuple_Type;
    if !tuple && is_atomic(p, t) {
        return Sharing::Immutable;
    }
    if depth > MAX_DEPTH {
        return Sharing::Shared;
    }
    let alone = ffi::Py_REFCNT(p) == 1;
    if tuple || is_plain_tuple(t) {
        // A tuple of values that cannot change cannot change, however many hold it;
        // one holding a mutable part is shared when it is.
        let mut mutable = false;
        for i in 0..ffi::PyTuple_GET_SIZE(p) {
            let item = ffi::PyTuple_GET_ITEM(p, i);
            if is_scalar(item, ffi::Py_TYPE(item)) {
                continue;
            }
            match sharing(item, depth + 1) {
                Sharing::Immutable => {}
                Sharing::Private => mutable = true,
                Sharing::Shared => return Sharing::Shared,
            }
        }
        return match (mutable, alone) {
            (false, _) => Sharing::Immutable,
            (true, true) => Sharing::Private,
            (true, false) => Sharing::Shared,
        };
    }
    if t == &raw mut ffi::PyFrozenSet_Type {
        // Its items are hashable, which in practice means they cannot change.
        return if set_items(p, |item| sharing(item, depth + 1) == Sharing::Immutable) {
            Sharing::Immutable
        } else {
            Sharing::Shared
        };
    }
    let is_set = t == &raw mut ffi::PySet_Type;
    if !(t == &raw mut ffi::PyList_Type || t == &raw mut ffi::PyDict_Type || is_set) {
        // Objects of other classes: their insides are not looked at.
        return if is_known_value(t) {
            Sharing::Immutable
        } else if alone {
            Sharing::Private
        } else {
            Sharing::Shared
        };
    }
    if !alone {
        return Sharing::Shared;
    }
    let all_private = |s: Sharing| s != Sharing::Shared;
    if t == &raw mut ffi::PyList_Type {
        for i in 0..ffi::PyList_GET_SIZE(p) {
            if !all_private(sharing(ffi::PyList_GET_ITEM(p, i), depth + 1)) {
                return Sharing::Shared;
            }
        }
    } else if t == &raw mut ffi::PyDict_Type {
        let (mut pos, mut key, mut value) = (0, std::ptr::null_mut(), std::ptr::null_mut());
        while ffi::PyDict_Next(p, &mut pos, &mut key, &mut value) != 0 {
            if !all_private(sharing(key, depth + 1)) || !all_private(sharing(value, depth + 1)) {
                return Sharing::Shared;
            }
        }
    } else if is_set && !set_items(p, |item| all_private(sharing(item, depth + 1))) {
        return Sharing::Shared;
    }
    Sharing::Private
}

/// Objects of a class the checks above do not know that cannot change all the same,
/// and that `copy.deepcopy` may hand back as they are: the values of `datetime` and
/// `decimal` (their C types, which no Python class can pose as), and Enum members.
///
/// # Safety
/// `t` must be a live type, with the GIL held.
unsafe fn is_known_value(t: *mut ffi::PyTypeObject) -> bool {
    if (*t).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0 {
        let name = std::ffi::CStr::from_ptr((*t).tp_name).to_bytes();
        return matches!(
            name,
            b"datetime.datetime"
                | b"datetime.date"
                | b"datetime.time"
                | b"datetime.timedelta"
                | b"datetime.timezone"
                | b"decimal.Decimal"
        );
    }
    let meta = ffi::Py_TYPE(t.cast());
    meta != &raw mut ffi::PyType_Type && is_enum_meta(meta)
}

/// Whether `meta` is Enum's metaclass (or derives from it). Looked up in
/// `sys.modules` (never imported here: no Enum member exists before `enum` is).
///
/// # Safety
/// `meta` must be a live type, with the GIL held.
unsafe fn is_enum_meta(meta: *mut ffi::PyTypeObject) -> bool {
    static ENUM_META: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());
    let mut enum_meta = ENUM_META.load(Ordering::Relaxed);
    if enum_meta.is_null() {
        let name = ffi::PyUnicode_InternFromString(c"enum".as_ptr());
        let module = if name.is_null() { name } else { ffi::PyImport_GetModule(name) };
        let found = if module.is_null() { module } else { ffi::PyObject_GetAttrString(module, c"EnumMeta".as_ptr()) };
        if !found.is_null() && ffi::PyType_Check(found) != 0 {
            // Kept for good (one reference held, as the enum module holds it anyway).
            enum_meta = found.cast();
            ENUM_META.store(enum_meta, Ordering::Relaxed);
        } else if !found.is_null() {
            ffi::Py_DECREF(found);
        }
        for p in [name, module] {
            if !p.is_null() {
                ffi::Py_DECREF(p);
            }
        }
        if !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear();
        }
        if enum_meta.is_null() {
            return false;
        }
    }
    ffi::PyType_IsSubtype(meta, enum_meta) != 0
}

/// Whether `ok` holds for every item of the set or frozenset `p` (stops at the first
/// that fails). An iterator that cannot be made counts as failing.
///
/// # Safety
/// `p` must be a live set or frozenset, with the GIL held.
unsafe fn set_items(p: *mut ffi::PyObject, mut ok: impl FnMut(*mut ffi::PyObject) -> bool) -> bool {
    let iter = ffi::PyObject_GetIter(p);
    if iter.is_null() {
        ffi::PyErr_Clear();
        return false;
    }
    let mut all = true;
    loop {
        let item = ffi::PyIter_Next(iter);
        if item.is_null() {
            break;
        }
        all = ok(item);
        ffi::Py_DECREF(item);
        if !all {
            break;
        }
    }
    ffi::Py_DECREF(iter);
    if !ffi::PyErr_Occurred().is_null() {
        ffi::PyErr_Clear();
        return false;
    }
    all
}

/// Copies made so far of objects met more than once in one record (deepcopy's memo).
/// The first one, the record itself as a rule (it is copied because something else
/// holds it), is kept aside, so that copying a record allocates no map.
#[derive(Default)]
struct Memo<'py> {
    first: Option<(usize, Bound<'py, PyAny>)>,
    more: HashMap<usize, Bound<'py, PyAny>>,
}

impl<'py> Memo<'py> {
    fn get(&self, p: *mut ffi::PyObject) -> Option<&Bound<'py, PyAny>> {
        match &self.first {
            Some((q, copy)) if *q == p as usize => Some(copy),
            _ => self.more.get(&(p as usize)),
        }
    }

    fn insert(&mut self, p: *mut ffi::PyObject, copy: Bound<'py, PyAny>) {
        if self.first.is_none() {
            self.first = Some((p as usize, copy));
        } else {
            self.more.insert(p as usize, copy);
        }
    }
}

/// What `copy.deepcopy(p)` returns, built here when `p` is made of exact lists,
/// dicts, sets, tuples (and namedtuples) and frozensets over atomic values; None if
/// it holds anything else (the caller asks `copy.deepcopy`). `memo` maps containers
/// met more than once (their count is above 1) to their copy, as deepcopy's memo does,
/// so aliasing and cycles inside the record come out the same.
///
/// # Safety
/// `p` must be a live object, with the GIL held. No Python code runs here (hashing
/// atomic keys runs none), so nothing can change `p` while it is read.
unsafe fn copy_plain<'py>(
    py: Python<'py>,
    p: *mut ffi::PyObject,
    memo: &mut Memo<'py>,
    depth: u32,
) -> Option<PyResult<Bound<'py, PyAny>>> {
    let t = ffi::Py_TYPE(p);
    if is_atomic(p, t) {
        return Some(Ok(Bound::from_borrowed_ptr(py, p)));
    }
    if depth > MAX_DEPTH {
        return None;
    }
    let seen_twice = ffi::Py_REFCNT(p) > 1;
    if seen_twice {
        if let Some(done) = memo.get(p) {
            return Some(Ok(done.clone()));
        }
    }
    let remember = |memo: &mut Memo<'py>, copy: &Bound<'py, PyAny>| {
        if seen_twice {
            memo.insert(p, copy.clone());
        }
    };
    if t == &raw mut ffi::PyList_Type {
        let n = ffi::PyList_GET_SIZE(p);
        let out = match Bound::from_owned_ptr_or_err(py, ffi::PyList_New(n)) {
            Ok(o) => o,
            Err(e) => return Some(Err(e)),
        };
        remember(memo, &out);
        for i in 0..n {
            // Read each item again: the list is not ours, but nothing runs that could change it.
            let item = match copy_plain(py, ffi::PyList_GET_ITEM(p, i), memo, depth + 1)? {
                Ok(c) => c,
                Err(e) => return Some(Err(e)),
            };
            ffi::PyList_SET_ITEM(out.as_ptr(), i, item.into_ptr());
        }
        return Some(Ok(out));
    }
    if t == &raw mut ffi::PyDict_Type {
        let out = match Bound::from_owned_ptr_or_err(py, ffi::PyDict_New()) {
            Ok(o) => o,
            Err(e) => return Some(Err(e)),
        };
        remember(memo, &out);
        let (mut pos, mut key, mut value) = (0, std::ptr::null_mut(), std::ptr::null_mut());
        while ffi::PyDict_Next(p, &mut pos, &mut key, &mut value) != 0 {
            if sharing(key, depth + 1) != Sharing::Immutable {
                return None;
            }
            let v = match copy_plain(py, value, memo, depth + 1)? {
                Ok(c) => c,
                Err(e) => return Some(Err(e)),
            };
            if ffi::PyDict_SetItem(out.as_ptr(), key, v.as_ptr()) < 0 {
                return Some(Err(PyErr::fetch(py)));
            }
        }
        return Some(Ok(out));
    }
    if is_plain_tuple(t) {
        let n = ffi::PyTuple_GET_SIZE(p);
        let mut items = Vec::with_capacity(n as usize);
        let mut same = true;
        for i in 0..n {
            let item = ffi::PyTuple_GET_ITEM(p, i);
            let c = match copy_plain(py, item, memo, depth + 1)? {
                Ok(c) => c,
                Err(e) => return Some(Err(e)),
            };
            same &= c.as_ptr() == item;
            items.push(c);
        }
        // A cycle through this tuple made its copy already (deepcopy's rule too).
        if seen_twice {
            if let Some(done) = memo.get(p) {
                return Some(Ok(done.clone()));
            }
        }
        if same {
            return Some(Ok(Bound::from_borrowed_ptr(py, p)));
        }
        if t != &raw mut ffi::PyTuple_Type {
            return None; // a namedtuple with mutable items: its class rebuilds it
        }
        let out = match Bound::from_owned_ptr_or_err(py, ffi::PyTuple_New(n)) {
            Ok(o) => o,
            Err(e) => return Some(Err(e)),
        };
        for (i, item) in items.into_iter().enumerate() {
            ffi::PyTuple_SET_ITEM(out.as_ptr(), i as ffi::Py_ssize_t, item.into_ptr());
        }
        remember(memo, &out);
        return Some(Ok(out));
    }
    let is_set = t == &raw mut ffi::PySet_Type;
    if is_set || t == &raw mut ffi::PyFrozenSet_Type {
        // Items of values that cannot change are the copy's items as they are.
        if !set_items(p, |item| sharing(item, depth + 1) == Sharing::Immutable) {
            return None;
        }
        let new = if is_set { ffi::PySet_New(p) } else { ffi::PyFrozenSet_New(p) };
        let out = match Bound::from_owned_ptr_or_err(py, new) {
            Ok(o) => o,
            Err(e) => return Some(Err(e)),
        };
        remember(memo, &out);
        return Some(Ok(out));
    }
    if is_known_value(t) {
        return Some(Ok(Bound::from_borrowed_ptr(py, p)));
    }
    None
}
