//! A keyed state backend's whole content in a checkpoint section, and back: every
//! (descriptor, key, namespace) entry [`KeyedStateBackend::snapshot`] gives, with its
//! time-to-live stamps.
//!
//! The descriptors come first, in full (name, kind, time-to-live), and a restore
//! registers them before it puts the entries back: a function that asks for its state
//! only when it first runs (a window function's `window_state().get_state(...)` in
//! `process()`) finds it registered under the snapshot's descriptor, so the entries
//! restored before that call are there. A function that later asks for the same name
//! as another kind gets the backend's usual error naming both.
//!
//! | item | layout |
//! |---|---|
//! | descriptors | count `u64`; each: name str, kind `u8`, time-to-live (bool, then its fields) |
//! | entries | keyed entries (see [`super::state_io`]); meta: descriptor index `u32`, namespace, value shape; values: the records |
//! | namespace | `0`: the key's own; `1` and a window ([`crate::windows::event_time::write_window`]) |
//! | value shape | `0` single: stamp `i64` (1 value); `1` list: count `u64`, a stamp each; `2` map: count `u64`, each: user key encoding (bytes), stamp (2 values each: user key, value) |

use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
use crate::error::{UdfError, UdfResult};
use crate::key::Key;
use crate::record::Record;
use crate::state::{
    IncrementalCleanup, KeyedStateBackend, MapEntry, Namespace, StateDescriptor, StateKind, StateValue, TtlConfig,
    TtlUpdate, TtlVisibility,
};
use crate::windows::event_time::{read_window, write_window};

const KINDS: [StateKind; 5] =
    [StateKind::Value, StateKind::List, StateKind::Map, StateKind::Reducing, StateKind::Aggregating];

const SINGLE: u8 = 0;
const LIST: u8 = 1;
const MAP: u8 = 2;

fn write_descriptor<R: Record>(w: &mut StateWriter<R>, d: &StateDescriptor) {
    w.str(&d.name);
    w.u8(KINDS.iter().position(|k| *k == d.kind).expect("every kind is listed") as u8);
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
        let inc = t.incremental.unwrap_or(IncrementalCleanup { size: 0, every_record: false });
        w.u64(inc.size as u64);
        w.bool(inc.every_record);
        w.bool(t.full_snapshot);
    }
}

fn read_descriptor<R: Record>(r: &mut StateReader<'_, R>) -> Result<StateDescriptor, StateError> {
    let name = r.str()?.to_string();
    let kind = r.u8()?;
    let kind = *KINDS.get(kind as usize).ok_or_else(|| r.corrupt(format!("state kind {kind}")))?;
    let ttl = if r.bool()? {
        let ttl_ms = r.i64()?;
        let update = match r.u8()? {
            0 => TtlUpdate::OnCreateAndWrite,
            1 => TtlUpdate::OnReadAndWrite,
            u => return Err(r.corrupt(format!("time-to-live update kind {u}"))),
        };
        let visibility = match r.u8()? {
            0 => TtlVisibility::NeverReturnExpired,
            1 => TtlVisibility::ReturnExpiredIfNotCleanedUp,
            v => return Err(r.corrupt(format!("time-to-live visibility {v}"))),
        };
        let on_read = r.bool()?;
        let has_incremental = r.bool()?;
        let size = r.u64()? as usize;
        let every_record = r.bool()?;
        let full_snapshot = r.bool()?;
        let incremental = has_incremental.then_some(IncrementalCleanup { size, every_record });
        Some(TtlConfig { ttl_ms, update, visibility, on_read, incremental, full_snapshot })
    } else {
        None
    };
    Ok(StateDescriptor { name, kind, ttl })
}

/// Appends every entry of `backend` (as [`KeyedStateBackend::snapshot`] at `now` gives
/// them) to `w`. See the module doc for the layout.
pub fn write_backend<R: Record>(
    backend: &dyn KeyedStateBackend<R>,
    now: i64,
    w: &mut StateWriter<R>,
) -> Result<(), StateError> {
    let descriptors = backend.descriptors();
    w.u64(descriptors.len() as u64);
    for d in descriptors {
        write_descriptor(w, d);
    }
    let mut entries = w.begin_keyed();
    let mut meta = StateWriter::<R>::new();
    let mut result = Ok(());
    backend.snapshot(now, &mut |d, key, namespace, value| {
        if result.is_err() {
            return;
        }
        let index = descriptors.iter().position(|known| known.name == d.name).unwrap_or(usize::MAX);
        let mut m = StateWriter::<R>::from_vec(std::mem::take(&mut meta).into_bytes());
        m.u32(index as u32);
        match namespace {
            Namespace::Key => m.u8(0),
            Namespace::Window(window) => {
                m.u8(1);
                write_window(&mut m, &window);
            }
        }
        let values: Vec<R> = match value {
            StateValue::Single { value, stamp } => {
                m.u8(SINGLE);
                m.i64(stamp);
                vec![value]
            }
            StateValue::List(items) => {
                m.u8(LIST);
                m.u64(items.len() as u64);
                items.iter().for_each(|(_, stamp)| m.i64(*stamp));
                items.into_iter().map(|(v, _)| v).collect()
            }
            StateValue::Map(items) => {
                m.u8(MAP);
                m.u64(items.len() as u64);
                let mut values = Vec::with_capacity(2 * items.len());
                for e in items {
                    m.key(&e.key);
                    m.i64(e.stamp);
                    values.push(e.user_key);
                    values.push(e.value);
                }
                values
            }
        };
        result = entries.push_entry(key, m.as_bytes(), values);
        let mut bytes = m.into_bytes();
        bytes.clear();
        meta = StateWriter::from_vec(bytes);
    });
    result?;
    entries.finish()
}

/// Puts back what [`write_backend`] wrote into `backend` (a fresh one, or one that
/// holds other old instances' keys): registers the snapshot's descriptors, then
/// restores the entries whose key `keep` says is this instance's.
pub fn read_backend<R: Record>(
    r: &mut StateReader<'_, R>,
    keep: impl Fn(&Key) -> bool,
    backend: &mut dyn KeyedStateBackend<R>,
) -> UdfResult<()> {
    let n = r.u64()?;
    let mut names = Vec::new();
    for _ in 0..n {
        let d = read_descriptor(r)?;
        backend.register(&d).map_err(|e| {
            UdfError::new(format!("the checkpoint's {} '{}' does not fit this job: {}", d.kind, d.name, e.message))
        })?;
        names.push(d.name);
    }
    r.keyed_entries(|key, meta, values| {
        if !keep(&key) {
            return Ok(());
        }
        let mut m = StateReader::<R>::new(meta);
        let index = m.u32()? as usize;
        let name = names.get(index).ok_or_else(|| m.corrupt(format!("state number {index} of {}", names.len())))?;
        let namespace = match m.u8()? {
            0 => Namespace::Key,
            1 => Namespace::Window(read_window(&mut m)?),
            n => return Err(m.corrupt(format!("namespace kind {n}")).into()),
        };
        let missing = |m: &StateReader<'_, R>| m.corrupt("an entry with fewer values than its meta says");
        let value = match m.u8()? {
            SINGLE => StateValue::Single { stamp: m.i64()?, value: values.next().ok_or_else(|| missing(&m))? },
            LIST => {
                let n = m.u64()?;
                let mut items = Vec::with_capacity((n as usize).min(m.remaining() / 8));
                for _ in 0..n {
                    let stamp = m.i64()?;
                    items.push((values.next().ok_or_else(|| missing(&m))?, stamp));
                }
                StateValue::List(items)
            }
            MAP => {
                let n = m.u64()?;
                let mut items = Vec::with_capacity((n as usize).min(m.remaining() / 16));
                for _ in 0..n {
                    let (key, stamp) = (m.key()?, m.i64()?);
                    let user_key = values.next().ok_or_else(|| missing(&m))?;
                    let value = values.next().ok_or_else(|| missing(&m))?;
                    items.push(MapEntry { key, user_key, value, stamp });
                }
                StateValue::Map(items)
            }
            s => return Err(m.corrupt(format!("state value shape {s}")).into()),
        };
        m.finish()?;
        if values.next().is_some() {
            return Err(UdfError::from(StateError::Corrupt {
                offset: 0,
                what: format!("state '{name}' has more values than its meta says"),
            }));
        }
        backend.restore(name, key, namespace, value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::key_of;
    use crate::record::Stamped;
    use crate::state::HeapBackend;

    type R = Stamped<String>;

    fn rec(s: &str) -> R {
        Stamped::at(s.to_string(), 0)
    }

    /// A descriptor the function registers only when it first runs comes back with its
    /// time-to-live, and its entries are there before that call.
    #[test]
    fn descriptors_are_registered_from_the_checkpoint() {
        let ttl = TtlConfig {
            update: TtlUpdate::OnReadAndWrite,
            visibility: TtlVisibility::ReturnExpiredIfNotCleanedUp,
            incremental: Some(IncrementalCleanup { size: 3, every_record: true }),
            ..TtlConfig::new(50)
        };
        let lazy = StateDescriptor::new("lazy", StateKind::Reducing).with_ttl(ttl);
        let mut b = HeapBackend::<R>::new();
        let id = b.register(&lazy).unwrap();
        b.set_current_key(key_of(&1i64));
        b.reducing_add(id, rec("x"), &mut |a, _| Ok(a.clone()), 0).unwrap();
        let mut w = StateWriter::<R>::new();
        write_backend(&b, 0, &mut w).unwrap();
        let bytes = w.into_bytes();

        let mut fresh = HeapBackend::<R>::new();
        read_backend(&mut StateReader::new(&bytes), |_| true, &mut fresh).unwrap();
        assert_eq!(fresh.descriptors(), std::slice::from_ref(&lazy));
        let id = fresh.register(&lazy).unwrap();
        fresh.set_current_key(key_of(&1i64));
        assert_eq!(fresh.reducing_get(id, 10).unwrap(), Some(rec("x")));

        // The job now asks for that name as another kind: one line naming both.
        let mut other = HeapBackend::<R>::new();
        other.register(&StateDescriptor::new("lazy", StateKind::List)).unwrap();
        let err = read_backend(&mut StateReader::new(&bytes), |_| true, &mut other).unwrap_err();
        assert!(err.message.starts_with("the checkpoint's ReducingState 'lazy' does not fit this job"), "{err:?}");
    }
}
