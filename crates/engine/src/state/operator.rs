//! Operator state: state of an operator instance, not of a key (Flink's operator
//! state). Its one kind so far is broadcast state: per descriptor name, a map whose
//! keys are [`Key`]s (the user keys' encodings, as a map state's) and whose values are
//! records, which `process_broadcast_element` fills on every instance alike (each sees
//! every broadcast element), so every parallel instance holds an identical copy.
//!
//! # Checkpoints (issue 13)
//!
//! Each instance snapshots its own copy ([`OperatorStateBackend::snapshot`]: every
//! registered name with its entries). Restoring at the same parallelism gives each
//! instance its copy back; at another parallelism, every new instance gets one copy
//! (any: they are identical; Flink hands instance `i` the copy of old instance
//! `i % old parallelism`) and [`OperatorStateBackend::restore`] puts it back, name by
//! name. Unlike keyed state, nothing is split by key hash.
//!
//! [`HeapOperatorState`] keeps each broadcast state as a map state of a
//! [`HeapBackend`] under one key (the instance's): the map machinery, its order and its
//! snapshot entries are keyed map state's.

use super::{HeapBackend, KeyedStateBackend, MapEntry, Namespace, StateDescriptor, StateId, StateKind, StateValue};
use crate::error::{UdfError, UdfResult};
use crate::key::{key_of, Key};

/// A registered broadcast state of one operator instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BroadcastStateId(pub usize);

/// Where an operator instance's operator state lives. Broadcast state has no time-to-live
/// (Flink's has none), so no access takes "now". Reads return owned values, so an
/// on-disk backend can implement them. Whether a caller may write (only
/// `process_broadcast_element` may) is the caller's rule, not the backend's.
pub trait OperatorStateBackend<R> {
    /// Registers the broadcast state `name` and returns its id; the same name again
    /// returns the same id.
    fn register_broadcast(&mut self, name: &str) -> UdfResult<BroadcastStateId>;

    /// The registered names, by id.
    fn broadcast_names(&self) -> Vec<&str>;

    /// `get(k)`; `key` is the user key's encoding.
    fn get(&mut self, state: BroadcastStateId, key: &Key) -> UdfResult<Option<R>>;
    /// `put(k, v)`: `user_key` is kept for `keys()`/`items()`.
    fn put(&mut self, state: BroadcastStateId, key: Key, user_key: R, value: R) -> UdfResult<()>;
    /// `put_all(entries)`: (encoding, user key, value) each.
    fn put_all(&mut self, state: BroadcastStateId, entries: Vec<(Key, R, R)>) -> UdfResult<()>;
    /// `remove(k)`.
    fn remove(&mut self, state: BroadcastStateId, key: &Key) -> UdfResult<()>;
    /// `contains(k)`.
    fn contains(&mut self, state: BroadcastStateId, key: &Key) -> UdfResult<bool>;
    /// `items()` in the order of the user keys' encodings (the same on every instance
    /// that holds the same entries).
    fn items(&mut self, state: BroadcastStateId) -> UdfResult<Vec<(R, R)>>;
    /// `is_empty()`.
    fn is_empty(&mut self, state: BroadcastStateId) -> UdfResult<bool>;
    /// `clear()`.
    fn clear(&mut self, state: BroadcastStateId) -> UdfResult<()>;

    /// Calls `out` with every registered name and its entries (none for an empty
    /// state), for a checkpoint: this instance's copy (see the module doc).
    fn snapshot(&self, out: &mut dyn FnMut(&str, Vec<MapEntry<R>>));

    /// Puts back the entries [`Self::snapshot`] gave for `name`, which must be
    /// registered first; they replace what the state held.
    fn restore(&mut self, name: &str, entries: Vec<MapEntry<R>>) -> UdfResult<()>;
}

/// Broadcast state in memory: see the module doc.
pub struct HeapOperatorState<R> {
    maps: HeapBackend<R>,
}

/// "now" for the map state underneath: it has no time-to-live, so any time will do.
const NOW: i64 = 0;

impl<R: Clone + 'static> Default for HeapOperatorState<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Clone + 'static> HeapOperatorState<R> {
    pub fn new() -> Self {
        let mut maps = HeapBackend::new();
        // One key for the whole instance: its maps are this key's map states.
        maps.set_current_key(key_of(&()));
        HeapOperatorState { maps }
    }

    /// The map state behind `state`, checked to be one of ours.
    fn id(&self, state: BroadcastStateId) -> UdfResult<StateId> {
        if state.0 < self.maps.descriptors().len() {
            Ok(StateId(state.0))
        } else {
            Err(UdfError::internal(format!("broadcast state: no state with id {}", state.0)))
        }
    }
}

impl<R: Clone + 'static> OperatorStateBackend<R> for HeapOperatorState<R> {
    fn register_broadcast(&mut self, name: &str) -> UdfResult<BroadcastStateId> {
        let StateId(i) = self.maps.register(&StateDescriptor::new(name, StateKind::Map))?;
        Ok(BroadcastStateId(i))
    }

    fn broadcast_names(&self) -> Vec<&str> {
        self.maps.descriptors().iter().map(|d| d.name.as_str()).collect()
    }

    fn get(&mut self, state: BroadcastStateId, key: &Key) -> UdfResult<Option<R>> {
        let id = self.id(state)?;
        self.maps.map_get(id, key, NOW)
    }

    fn put(&mut self, state: BroadcastStateId, key: Key, user_key: R, value: R) -> UdfResult<()> {
        let id = self.id(state)?;
        self.maps.map_put(id, key, user_key, value, NOW)
    }

    fn put_all(&mut self, state: BroadcastStateId, entries: Vec<(Key, R, R)>) -> UdfResult<()> {
        let id = self.id(state)?;
        self.maps.map_put_all(id, entries, NOW)
    }

    fn remove(&mut self, state: BroadcastStateId, key: &Key) -> UdfResult<()> {
        let id = self.id(state)?;
        self.maps.map_remove(id, key, NOW)
    }

    fn contains(&mut self, state: BroadcastStateId, key: &Key) -> UdfResult<bool> {
        let id = self.id(state)?;
        self.maps.map_contains(id, key, NOW)
    }

    fn items(&mut self, state: BroadcastStateId) -> UdfResult<Vec<(R, R)>> {
        let id = self.id(state)?;
        self.maps.map_items(id, NOW)
    }

    fn is_empty(&mut self, state: BroadcastStateId) -> UdfResult<bool> {
        let id = self.id(state)?;
        self.maps.map_is_empty(id, NOW)
    }

    fn clear(&mut self, state: BroadcastStateId) -> UdfResult<()> {
        let id = self.id(state)?;
        self.maps.clear(id, NOW)
    }

    fn snapshot(&self, out: &mut dyn FnMut(&str, Vec<MapEntry<R>>)) {
        let mut held: Vec<Vec<MapEntry<R>>> = self.maps.descriptors().iter().map(|_| Vec::new()).collect();
        self.maps.snapshot(NOW, &mut |d, _, _, value| {
            if let (StateValue::Map(entries), Some(i)) =
                (value, self.maps.descriptors().iter().position(|x| x.name == d.name))
            {
                held[i] = entries;
            }
        });
        for (d, entries) in self.maps.descriptors().iter().zip(held) {
            out(&d.name, entries);
        }
    }

    fn restore(&mut self, name: &str, entries: Vec<MapEntry<R>>) -> UdfResult<()> {
        let Some(i) = self.maps.descriptors().iter().position(|d| d.name == name) else {
            return Err(UdfError::new(format!(
                "a snapshot holds broadcast state '{name}', which the operator does not declare"
            )));
        };
        let id = StateId(i);
        self.maps.clear(id, NOW)?;
        if entries.is_empty() {
            return Ok(());
        }
        self.maps.restore(name, key_of(&()), Namespace::Key, StateValue::Map(entries))
    }
}
