//! Keyed and broadcast state in a checkpoint section (issue 13), through
//! [`crate::checkpoint::state_io`]: the layout belongs to the state module, so every
//! operator that holds a [`KeyedStateBackend`] or an [`OperatorStateBackend`] writes it
//! the same way.
//!
//! Keyed state is the registered descriptors (name, kind, time-to-live), then one keyed
//! entry per (key, namespace, state): the entry's key is the record's key, so a restore
//! at another parallelism keeps the keys it owns ([`Restore::owns`]) without decoding
//! the values of the others; its meta holds the descriptor's index, the namespace and
//! the time-to-live stamps if the state has a time-to-live (and a map's user-key
//! encodings), see [`write_keyed`]; its values are the records (a list's elements, a
//! map's user keys and values in turn).
//!
//! Descriptors travel with the entries because a function may register a state after
//! `open()` (on its first record): a restore registers what the function has not yet,
//! and refuses a name the function now registers as another kind.
//!
//! Restore errors: a state name the function now registers as another kind comes from
//! the user's code having changed since the checkpoint, so it is the user's error
//! ([`UdfError::new`], one line naming both kinds: the driver fails the job without a
//! bug report). Everything else a restore finds wrong (a tag, count, index or window
//! out of range, a value of another shape than its state's kind) is corrupt bytes that
//! passed their checksum, ferroflow's bug ([`StateError::Corrupt`], internal).
//!
//! Broadcast state is identical on every instance: each writes its copy, a restore
//! reads them all (the layout is positional) and applies one ([`copy_index`]).

use super::{
    IncrementalCleanup, KeyedStateBackend, MapEntry, Namespace, OperatorStateBackend, StateDescriptor, StateKind,
    StateValue, TtlConfig, TtlUpdate, TtlVisibility,
};
use crate::checkpoint::restore::Restore;
use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
use crate::error::{UdfError, UdfResult};
use crate::key::Key;
use crate::record::Record;
use crate::windows::{TimeWindow, Window};

const NS_KEY: u8 = 0;
const NS_TIME_WINDOW: u8 = 1;
const NS_GLOBAL_WINDOW: u8 = 2;

const VALUE_SINGLE: u8 = 0;
const VALUE_LIST: u8 = 1;
const VALUE_MAP: u8 = 2;

fn kind_byte(kind: StateKind) -> u8 {
    match kind {
        StateKind::Value => 0,
        StateKind::List => 1,
        StateKind::Map => 2,
        StateKind::Reducing => 3,
        StateKind::Aggregating => 4,
    }
}

fn kind_of(b: u8) -> Option<StateKind> {
    Some(match b {
        0 => StateKind::Value,
        1 => StateKind::List,
        2 => StateKind::Map,
        3 => StateKind::Reducing,
        4 => StateKind::Aggregating,
        _ => return None,
    })
}

fn corrupt(what: impl Into<String>) -> StateError {
    StateError::Corrupt { offset: 0, what: what.into() }
}

fn write_descriptor<R: Record>(w: &mut StateWriter<R>, d: &StateDescriptor) {
    w.str(&d.name);
    w.u8(kind_byte(d.kind));
    w.bool(d.ttl.is_some());
    if let Some(t) = &d.ttl {
        w.i64(t.ttl_ms);
        w.u8(match t.update {
            TtlUpdate::OnCreateAndWrite => 0,
            TtlUpdate::OnReadAndWrite => 1,
        });
        w.u8(match t.visibility {
            TtlVisibility::NeverReturnExpired => 0,
            TtlVisibility::ReturnExpiredIfNotCleanedUp => 1,
        });
        w.bool(t.on_read);
        w.bool(t.incremental.is_some());
        if let Some(i) = &t.incremental {
            w.u64(i.size as u64);
            w.bool(i.every_record);
        }
        w.bool(t.full_snapshot);
    }
}

fn read_descriptor<R: Record>(r: &mut StateReader<'_, R>) -> Result<StateDescriptor, StateError> {
    let name = r.str()?.to_string();
    let kind = r.u8()?;
    let kind = kind_of(kind).ok_or_else(|| corrupt(format!("state '{name}' has kind {kind}, which is none")))?;
    let ttl = if r.bool()? {
        let ttl_ms = r.i64()?;
        let update = match r.u8()? {
            0 => TtlUpdate::OnCreateAndWrite,
            1 => TtlUpdate::OnReadAndWrite,
            b => return Err(corrupt(format!("state '{name}': time-to-live update type {b}"))),
        };
        let visibility = match r.u8()? {
            0 => TtlVisibility::NeverReturnExpired,
            1 => TtlVisibility::ReturnExpiredIfNotCleanedUp,
            b => return Err(corrupt(format!("state '{name}': time-to-live visibility {b}"))),
        };
        let on_read = r.bool()?;
        let incremental = if r.bool()? {
            let size = usize::try_from(r.u64()?).map_err(|_| corrupt("an incremental cleanup size"))?;
            Some(IncrementalCleanup { size, every_record: r.bool()? })
        } else {
            None
        };
        Some(TtlConfig { ttl_ms, update, visibility, on_read, incremental, full_snapshot: r.bool()? })
    } else {
        None
    };
    Ok(StateDescriptor { name, kind, ttl })
}

/// The entry meta's byte that says the namespace and the value's shape.
fn shape_byte(ns: Namespace, value: u8) -> u8 {
    let ns = match ns {
        Namespace::Key => NS_KEY,
        Namespace::Window(Window::Time(_)) => NS_TIME_WINDOW,
        Namespace::Window(Window::Global) => NS_GLOBAL_WINDOW,
    };
    ns << 2 | value
}

/// How many bytes a descriptor's index takes in an entry's meta: one while an operator
/// registers at most 256 states (always, in practice), else four.
fn index_width(descriptors: usize) -> usize {
    if descriptors <= 256 {
        1
    } else {
        4
    }
}

/// Writes every entry of `backend` (time-to-live applied at `now`, see
/// [`KeyedStateBackend::snapshot`]). After an error the section must be discarded.
///
/// An entry's meta: the descriptor's index, a byte for the namespace and the value's
/// shape, a time window's bounds, then per value what it needs: its time-to-live stamp
/// (only for a state with a time-to-live), and for a map entry first the user key's
/// encoding. A value state without time-to-live so costs two bytes of meta.
pub fn write_keyed<R: Record, B: KeyedStateBackend<R> + ?Sized>(
    backend: &B,
    now: i64,
    w: &mut StateWriter<R>,
) -> Result<(), StateError> {
    let descriptors = backend.descriptors();
    w.u32(descriptors.len() as u32);
    for d in descriptors {
        write_descriptor(w, d);
    }
    let width = index_width(descriptors.len());
    let mut entries = w.begin_keyed();
    let mut result = Ok(());
    let mut meta = Vec::new();
    backend.snapshot(now, &mut |d, key, ns, value| {
        if result.is_err() {
            return;
        }
        let index = descriptors.iter().position(|x| x.name == d.name).unwrap_or(u32::MAX as usize) as u32;
        let ttl = d.ttl.is_some();
        meta.clear();
        meta.extend_from_slice(&index.to_le_bytes()[..width]);
        let shape = match &value {
            StateValue::Single { .. } => VALUE_SINGLE,
            StateValue::List(_) => VALUE_LIST,
            StateValue::Map(_) => VALUE_MAP,
        };
        meta.push(shape_byte(ns, shape));
        if let Namespace::Window(Window::Time(w)) = ns {
            meta.extend_from_slice(&w.start.to_le_bytes());
            meta.extend_from_slice(&w.end.to_le_bytes());
        }
        let stamp = |meta: &mut Vec<u8>, s: i64| {
            if ttl {
                meta.extend_from_slice(&s.to_le_bytes());
            }
        };
        result = match value {
            StateValue::Single { value, stamp: s } => {
                stamp(&mut meta, s);
                entries.push_entry(key, &meta, [value])
            }
            StateValue::List(list) => {
                list.iter().for_each(|(_, s)| stamp(&mut meta, *s));
                entries.push_entry(key, &meta, list.into_iter().map(|(v, _)| v))
            }
            StateValue::Map(map) => {
                for e in &map {
                    meta.extend_from_slice(&(e.key.bytes().len() as u64).to_le_bytes());
                    meta.extend_from_slice(e.key.bytes());
                    stamp(&mut meta, e.stamp);
                }
                entries.push_entry(key, &meta, map.into_iter().flat_map(|e| [e.user_key, e.value]))
            }
        };
    });
    result?;
    entries.finish()
}

/// Reads what [`write_keyed`] wrote into `backend`, keeping the entries whose key
/// `owns` says are this instance's. A descriptor the backend lacks is registered; one
/// it has as another kind is the user's error naming both, anything else wrong is
/// internal (see the module doc).
pub fn read_keyed<R: Record, B: KeyedStateBackend<R> + ?Sized>(
    r: &mut StateReader<'_, R>,
    backend: &mut B,
    owns: &dyn Fn(&Key) -> bool,
) -> UdfResult<()> {
    let n = r.u32()?;
    let mut table = Vec::new();
    for _ in 0..n {
        let d = read_descriptor(r)?;
        match backend.descriptors().iter().find(|x| x.name == d.name) {
            Some(known) if known.kind != d.kind => {
                return Err(UdfError::new(format!(
                    "the checkpoint holds state '{}' as a {}, the function registers it as a {}",
                    d.name, d.kind, known.kind
                )));
            }
            Some(_) => {}
            None => {
                // Only what the backend itself refuses to register (a time-to-live under
                // 1 ms) fails here: no function registered that.
                backend.register(&d).map_err(|e| corrupt(format!("state '{}': {}", d.name, e.message)))?;
            }
        }
        table.push((d.name, d.kind, d.ttl.is_some()));
    }
    let width = index_width(table.len());
    r.keyed_entries(|key, meta, values| {
        if !owns(&key) {
            return Ok(());
        }
        let (Some(index), Some(&shape)) = (meta.get(..width), meta.get(width)) else {
            return Err(corrupt("an entry's meta is cut short").into());
        };
        let mut bytes = [0u8; 4];
        bytes[..width].copy_from_slice(index);
        let index = u32::from_le_bytes(bytes) as usize;
        let (name, kind, ttl) = table.get(index).ok_or_else(|| corrupt(format!("state index {index} of {}", n)))?;
        let mut m = StateReader::<R>::new(&meta[width + 1..]);
        let ns = match shape >> 2 {
            NS_KEY => Namespace::Key,
            NS_TIME_WINDOW => {
                let (start, end) = (m.i64()?, m.i64()?);
                if start > end {
                    return Err(corrupt(format!(
                        "state '{name}' in a window [{start}, {end}) that ends before it starts"
                    ))
                    .into());
                }
                Namespace::Window(Window::Time(TimeWindow { start, end }))
            }
            NS_GLOBAL_WINDOW => Namespace::Window(Window::Global),
            b => return Err(corrupt(format!("namespace tag {b}")).into()),
        };
        let stamp = |m: &mut StateReader<'_, R>| if *ttl { m.i64() } else { Ok(i64::MIN) };
        let fits = match kind {
            StateKind::Value | StateKind::Reducing | StateKind::Aggregating => VALUE_SINGLE,
            StateKind::List => VALUE_LIST,
            StateKind::Map => VALUE_MAP,
        };
        if shape & 3 != fits {
            return Err(corrupt(format!("{kind} '{name}' holds a value of shape {}", shape & 3)).into());
        }
        let value = match shape & 3 {
            VALUE_SINGLE => {
                let stamp = stamp(&mut m)?;
                let value = values.next().ok_or_else(|| corrupt(format!("state '{name}' without its value")))?;
                StateValue::Single { value, stamp }
            }
            VALUE_LIST => {
                let mut list = Vec::new();
                for v in &mut *values {
                    list.push((v, stamp(&mut m)?));
                }
                StateValue::List(list)
            }
            VALUE_MAP => {
                let mut map = Vec::new();
                while m.remaining() > 0 {
                    let key = Key::from_encoded(m.bytes()?);
                    let stamp = stamp(&mut m)?;
                    let (Some(user_key), Some(value)) = (values.next(), values.next()) else {
                        return Err(corrupt(format!("map state '{name}' lacks entries")).into());
                    };
                    map.push(MapEntry { key, user_key, value, stamp });
                }
                StateValue::Map(map)
            }
            b => return Err(corrupt(format!("state value tag {b}")).into()),
        };
        if values.next().is_some() {
            return Err(corrupt(format!("state '{name}' has more values than its entry says")).into());
        }
        m.finish()?;
        backend.restore(name, key, ns, value)
    })
}

/// Writes this instance's copy of the broadcast state: each registered name, then its
/// entries (the user key's encoding as the entry's key, user key and value as values).
pub fn write_broadcast<R: Record, B: OperatorStateBackend<R> + ?Sized>(
    backend: &B,
    w: &mut StateWriter<R>,
) -> Result<(), StateError> {
    let mut states = Vec::new();
    backend.snapshot(&mut |name, entries| states.push((name.to_string(), entries)));
    w.u32(states.len() as u32);
    for (name, entries) in states {
        w.str(&name);
        let mut out = w.begin_keyed();
        for e in entries {
            out.push_entry(&e.key, &[], [e.user_key, e.value])?;
        }
        out.finish()?;
    }
    Ok(())
}

/// Reads what [`write_broadcast`] wrote; puts it into `backend` if given (the copy
/// this instance takes, see [`copy_index`]), else only reads past it.
pub fn read_broadcast<R: Record, B: OperatorStateBackend<R> + ?Sized>(
    r: &mut StateReader<'_, R>,
    mut backend: Option<&mut B>,
) -> UdfResult<()> {
    let n = r.u32()?;
    for _ in 0..n {
        let name = r.str()?.to_string();
        let mut entries = Vec::new();
        r.keyed_entries(|key, meta, values| {
            let (Some(user_key), Some(value), None, true) =
                (values.next(), values.next(), values.next(), meta.is_empty())
            else {
                return Err(corrupt(format!("broadcast state '{name}' has an entry of another shape")));
            };
            // Broadcast state has no time-to-live: stamped as such.
            entries.push(MapEntry { key, user_key, value, stamp: i64::MIN });
            Ok(())
        })?;
        if let Some(b) = backend.as_deref_mut() {
            b.register_broadcast(&name)?;
            b.restore(&name, entries)?;
        }
    }
    Ok(())
}

/// Which old section's copy of state that every instance holds alike (broadcast state,
/// and whatever must stay consistent with it) this instance restores: its own when the
/// parallelism is unchanged, else Flink's rule, old copy `i % old instances`, among the
/// sections that hold anything (an instance that does not run writes none). None when
/// no section holds anything.
pub fn copy_index(from: &Restore<'_>) -> Option<usize> {
    if from.own().is_some_and(|s| !s.is_empty()) {
        return Some(from.worker());
    }
    let written: Vec<usize> = (0..from.sections().len()).filter(|&i| !from.sections()[i].is_empty()).collect();
    (!written.is_empty()).then(|| written[from.worker() % written.len()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::key_of;
    use crate::state::{HeapBackend, HeapOperatorState};
    use crate::Record;

    type B = HeapBackend<String>;

    #[test]
    fn descriptors_round_trip_with_every_ttl_setting() {
        let ttl = TtlConfig {
            ttl_ms: 17,
            update: TtlUpdate::OnReadAndWrite,
            visibility: TtlVisibility::ReturnExpiredIfNotCleanedUp,
            on_read: false,
            incremental: Some(IncrementalCleanup { size: 3, every_record: true }),
            full_snapshot: true,
        };
        for d in
            [StateDescriptor::new("a", StateKind::Aggregating), StateDescriptor::new("b", StateKind::Map).with_ttl(ttl)]
        {
            let mut w = StateWriter::<String>::new();
            write_descriptor(&mut w, &d);
            let bytes = w.into_bytes();
            let mut r = StateReader::<String>::new(&bytes);
            assert_eq!(read_descriptor(&mut r).unwrap(), d);
            r.finish().unwrap();
        }
    }

    #[test]
    fn a_state_of_another_kind_is_refused_by_name() {
        let mut b = B::new();
        let id = b.register(&StateDescriptor::new("count", StateKind::Value)).unwrap();
        b.set_current_key(key_of(&1i64));
        b.update(id, "x".into(), 0).unwrap();
        let mut w = StateWriter::new();
        write_keyed(&b, 0, &mut w).unwrap();
        let bytes = w.into_bytes();
        let mut fresh = B::new();
        fresh.register(&StateDescriptor::new("count", StateKind::List)).unwrap();
        let err = read_keyed(&mut StateReader::new(&bytes), &mut fresh, &|_| true).unwrap_err();
        assert_eq!(
            err.message,
            "the checkpoint holds state 'count' as a ValueState, the function registers it as a ListState"
        );
        assert!(!err.internal, "the user's function changed: the user's error");
        // Not registered yet: registered from the checkpoint.
        let mut lazy = B::new();
        read_keyed(&mut StateReader::new(&bytes), &mut lazy, &|_| true).unwrap();
        assert_eq!(lazy.descriptors(), b.descriptors());
        lazy.set_current_key(key_of(&1i64));
        assert_eq!(lazy.value(id, 0).unwrap(), Some("x".to_string()));
    }

    /// A reducing state the function registers only when it first runs (a window
    /// function's, in `process()`) comes back with its whole time-to-live, and its
    /// entries are there before that call.
    #[test]
    fn a_lazily_registered_state_comes_back_with_its_time_to_live() {
        let ttl = TtlConfig {
            update: TtlUpdate::OnReadAndWrite,
            visibility: TtlVisibility::ReturnExpiredIfNotCleanedUp,
            incremental: Some(IncrementalCleanup { size: 3, every_record: true }),
            ..TtlConfig::new(50)
        };
        let lazy = StateDescriptor::new("lazy", StateKind::Reducing).with_ttl(ttl);
        let mut b = B::new();
        let id = b.register(&lazy).unwrap();
        b.set_current_key(key_of(&1i64));
        b.reducing_add(id, "x".into(), &mut |a, _| Ok(a.clone()), 0).unwrap();
        let mut w = StateWriter::new();
        write_keyed(&b, 0, &mut w).unwrap();
        let bytes = w.into_bytes();
        let mut fresh = B::new();
        read_keyed(&mut StateReader::new(&bytes), &mut fresh, &|_| true).unwrap();
        assert_eq!(fresh.descriptors(), std::slice::from_ref(&lazy));
        let id = fresh.register(&lazy).unwrap();
        fresh.set_current_key(key_of(&1i64));
        assert_eq!(fresh.reducing_get(id, 10).unwrap(), Some("x".to_string()));
    }

    /// Every namespace, every shape, with and without time-to-live: what a backend
    /// snapshots reads back as itself, and a section costs two bytes of meta per plain
    /// value.
    #[test]
    fn every_namespace_and_shape_round_trips() {
        let mut b = B::new();
        let ids: Vec<_> = [
            StateDescriptor::new("v", StateKind::Value),
            StateDescriptor::new("vt", StateKind::Value).with_ttl(TtlConfig::new(100)),
            StateDescriptor::new("l", StateKind::List),
            StateDescriptor::new("lt", StateKind::List).with_ttl(TtlConfig::new(100)),
            StateDescriptor::new("m", StateKind::Map),
            StateDescriptor::new("mt", StateKind::Map).with_ttl(TtlConfig::new(100)),
        ]
        .iter()
        .map(|d| b.register(d).unwrap())
        .collect();
        let window = Window::Time(TimeWindow { start: -5, end: 10 });
        for (i, ns) in
            [Namespace::Key, Namespace::Window(window), Namespace::Window(Window::Global)].into_iter().enumerate()
        {
            for k in 0..3i64 {
                b.set_current_key(key_of(&k));
                b.set_current_namespace(ns);
                let now = k + i as i64;
                b.update(ids[0], format!("v{k}"), now).unwrap();
                b.update(ids[1], format!("vt{k}"), now).unwrap();
                b.list_add_all(ids[2], vec!["a".into(), "b".into()], now).unwrap();
                b.list_add(ids[3], format!("lt{k}"), now).unwrap();
                b.list_add(ids[3], format!("lt{k}'"), now + 1).unwrap();
                b.map_put(ids[4], key_of("x"), "x".into(), format!("{k}"), now).unwrap();
                b.map_put(ids[5], key_of(&k), format!("{k}"), "y".into(), now).unwrap();
            }
        }
        b.set_current_namespace(Namespace::Key);
        let entries = |b: &B| {
            let mut all = Vec::new();
            b.snapshot(0, &mut |d, k, ns, v| all.push(format!("{} {:?} {ns:?} {v:?}", d.name, k.bytes())));
            all.sort();
            all
        };
        let mut w = StateWriter::new();
        write_keyed(&b, 0, &mut w).unwrap();
        let bytes = w.into_bytes();
        let mut fresh = B::new();
        let mut r = StateReader::new(&bytes);
        read_keyed(&mut r, &mut fresh, &|_| true).unwrap();
        r.finish().unwrap();
        assert_eq!(entries(&fresh), entries(&b));
        assert_eq!(entries(&fresh).len(), 6 * 3 * 3);

        // One plain value per key: key, two bytes of meta, the value, three varints.
        let mut plain = B::new();
        let id = plain.register(&StateDescriptor::new("v", StateKind::Value)).unwrap();
        plain.set_current_key(key_of(&1i64));
        plain.update(id, "x".into(), 0).unwrap();
        let mut w = StateWriter::new();
        write_keyed(&plain, 0, &mut w).unwrap();
        let key_len = key_of(&1i64).bytes().len();
        let mut value = Vec::new();
        String::encode_batch(["x".to_string()].iter(), &mut value).unwrap();
        let descriptor = (8 + 1) + 1 + 1;
        let entries = 4 + (1 + key_len + 1 + 2 + 1) + (8 + 8 + value.len()) + 4;
        assert_eq!(w.len(), 4 + descriptor + entries);
    }

    /// Bytes that disagree with themselves are ferroflow's bug, never the user's: a
    /// value of another shape than its state's kind, a window that ends before it
    /// starts, a section cut anywhere.
    #[test]
    fn corrupt_keyed_state_is_an_internal_error() {
        let section = |ns: Namespace, shape: u8, window: &[i64]| {
            let mut w = StateWriter::<String>::new();
            w.u32(1);
            write_descriptor(&mut w, &StateDescriptor::new("v", StateKind::Value));
            let mut meta = vec![0, shape_byte(ns, shape)];
            window.iter().for_each(|b| meta.extend_from_slice(&b.to_le_bytes()));
            let mut entries = w.begin_keyed();
            entries.push_entry(&key_of(&1i64), &meta, ["x".to_string()]).unwrap();
            entries.finish().unwrap();
            w.into_bytes()
        };
        let inverted = Namespace::Window(Window::Time(TimeWindow { start: 10, end: 5 }));
        for (bytes, what) in [
            (section(Namespace::Key, VALUE_LIST, &[]), "ValueState 'v' holds a value of shape 1"),
            (section(inverted, VALUE_SINGLE, &[10, 5]), "a window [10, 5) that ends before it starts"),
        ] {
            let err = read_keyed(&mut StateReader::new(&bytes), &mut B::new(), &|_| true).unwrap_err();
            assert!(err.internal && err.message.contains(what), "{err:?}");
        }
        let fine = section(Namespace::Key, VALUE_SINGLE, &[]);
        read_keyed(&mut StateReader::new(&fine), &mut B::new(), &|_| true).unwrap();
        for cut in 0..fine.len() {
            let err = read_keyed(&mut StateReader::new(&fine[..cut]), &mut B::new(), &|_| true).unwrap_err();
            assert!(err.internal, "cut at {cut}: {err:?}");
        }
    }

    #[test]
    fn broadcast_state_is_read_past_or_applied() {
        let mut b = HeapOperatorState::<String>::new();
        let id = b.register_broadcast("rules").unwrap();
        b.put(id, key_of("k"), "k".into(), "v".into()).unwrap();
        let mut w = StateWriter::new();
        write_broadcast(&b, &mut w).unwrap();
        w.u8(9);
        let bytes = w.into_bytes();
        let mut r = StateReader::new(&bytes);
        read_broadcast::<String, HeapOperatorState<String>>(&mut r, None).unwrap();
        assert_eq!(r.u8().unwrap(), 9, "read past it");
        let mut fresh = HeapOperatorState::new();
        let mut r = StateReader::new(&bytes);
        read_broadcast(&mut r, Some(&mut fresh)).unwrap();
        let id = fresh.register_broadcast("rules").unwrap();
        assert_eq!(fresh.items(id).unwrap(), vec![("k".to_string(), "v".to_string())]);
    }

    #[test]
    fn one_copy_per_instance_from_the_sections_written() {
        let (a, b): (&[u8], &[u8]) = (b"a", b"b");
        assert_eq!(copy_index(&Restore::new(vec![a, b], 1, 2)), Some(1));
        assert_eq!(copy_index(&Restore::new(vec![a, b], 2, 3)), Some(0));
        assert_eq!(copy_index(&Restore::new(vec![&[], b, &[]], 0, 1)), Some(1));
        assert_eq!(copy_index(&Restore::new(vec![&[], &[]], 0, 2)), None);
    }
}
