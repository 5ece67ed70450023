//! The in-memory backend: keys in one dense table, each state a column beside it.
//!
//! Memory is the point (the budget: 5M keys of a ValueState holding an int
//! within 1.5x a Python dict of the same). A map per key would cost a table per key; here
//! a key is one entry of a [`KeyedState`] (its 32-byte [`Key`] and 11 to 21 bytes of
//! index) and its position there is its slot in every state's column: a ValueState
//! without time-to-live costs one `Option<R>` per key (8 bytes for a pointer record).
//! A time-to-live adds an 8-byte stamp per key (per element for lists and maps). A key
//! whose state is all cleared leaves the table (its slot is refilled by the last key,
//! in every column), so keys that come and go do not pile up.
//!
//! State in another [`Namespace`] than the key's own (a window's) lives in a second
//! table of the same layout, whose entries are (namespace, key) pairs under one joint
//! encoding: the per-key table, the hot path, stays as it was, and a window's state
//! costs nothing until a window function uses it.

use std::collections::BTreeMap;

use super::keyed::KeyedState;
use super::{
    KeyedStateBackend, MapEntry, Namespace, StateDescriptor, StateId, StateKind, StateValue, TtlConfig, TtlUpdate,
    TtlVisibility,
};
use crate::error::{UdfError, UdfResult};
use crate::functions::WindowAggregate;
use crate::key::Key;
use crate::windows::TimeWindow;
use crate::windows::Window;

/// Keyed state in memory. See the module doc for its layout.
pub struct HeapBackend<R> {
    descriptors: Vec<StateDescriptor>,
    /// The default namespace: an entry per key.
    keyed: Table<R>,
    /// Every other namespace: an entry per (namespace, key), see [`joint_key`].
    scoped: Table<R>,
    /// The namespace accesses go to.
    namespace: Namespace,
    /// `namespace != Namespace::Key`, kept apart: one flag test on the per-key path.
    in_scoped: bool,
}

/// Entries (keys, or joint keys) and a column per state.
struct Table<R> {
    keys: KeyedState<()>,
    columns: Vec<Column<R>>,
    current: Option<Current>,
}

struct Current {
    key: Key,
    /// The key's slot, None while it has no state.
    slot: Option<usize>,
}

/// One state's values, by key slot (as long as the key table).
struct Column<R> {
    data: Data<R>,
    /// Single values' stamps by slot, only with a time-to-live (else empty).
    stamps: Vec<i64>,
    ttl: Option<TtlConfig>,
    /// Where incremental cleanup goes on.
    cursor: usize,
}

enum Data<R> {
    /// Value, reducing and aggregating state.
    Single(Vec<Option<R>>),
    List(Vec<Vec<(R, i64)>>),
    Map(Vec<BTreeMap<Key, (R, R, i64)>>),
}

fn no_key() -> UdfError {
    UdfError::new("keyed state was used outside a keyed context: there is no current key")
}

fn wrong_kind(d: &StateDescriptor, want: StateKind) -> UdfError {
    UdfError::internal(format!("state '{}' is a {} but was used as a {want}", d.name, d.kind))
}

/// Bytes a namespace takes at the start of a joint key (fixed, so the key's encoding
/// that follows is read back unambiguously).
const NAMESPACE_BYTES: usize = 17;

/// The entry of `key`'s state in namespace `ns` (not the default one) in the scoped
/// table: the namespace's fixed-size encoding, then the key's.
fn joint_key(ns: Namespace, key: &Key) -> Key {
    let mut bytes = Vec::with_capacity(NAMESPACE_BYTES + key.bytes().len());
    let (tag, a, b) = match ns {
        Namespace::Window(Window::Time(w)) => (1u8, w.start, w.end),
        Namespace::Window(Window::Global) => (2, 0, 0),
        Namespace::Key => (0, 0, 0),
    };
    bytes.push(tag);
    bytes.extend_from_slice(&a.to_le_bytes());
    bytes.extend_from_slice(&b.to_le_bytes());
    bytes.extend_from_slice(key.bytes());
    Key::from_encoded(&bytes)
}

/// The (namespace, key) a joint key stands for.
fn split_joint_key(joint: &Key) -> (Namespace, Key) {
    let bytes = joint.bytes();
    let int = |at: usize| i64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let ns = match bytes[0] {
        1 => Namespace::Window(Window::Time(TimeWindow { start: int(1), end: int(9) })),
        2 => Namespace::Window(Window::Global),
        _ => Namespace::Key,
    };
    (ns, Key::from_encoded(&bytes[NAMESPACE_BYTES..]))
}

impl<R> Default for HeapBackend<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R> Table<R> {
    fn new() -> Self {
        Table { keys: KeyedState::new(), columns: Vec::new(), current: None }
    }

    fn bytes_used(&self) -> usize {
        let columns: usize = self
            .columns
            .iter()
            .map(|c| {
                let data = match &c.data {
                    Data::Single(v) => v.len() * std::mem::size_of::<Option<R>>(),
                    Data::List(v) => v.len() * std::mem::size_of::<Vec<(R, i64)>>(),
                    Data::Map(v) => v.len() * std::mem::size_of::<BTreeMap<Key, (R, R, i64)>>(),
                };
                data + c.stamps.len() * 8
            })
            .sum();
        self.keys.bytes_used() + columns
    }

    #[inline]
    fn set_current(&mut self, key: Key) {
        let slot = self.keys.position(&key);
        self.current = Some(Current { key, slot });
    }
}

impl<R> HeapBackend<R> {
    pub fn new() -> Self {
        HeapBackend {
            descriptors: Vec::new(),
            keyed: Table::new(),
            scoped: Table::new(),
            namespace: Namespace::Key,
            in_scoped: false,
        }
    }

    /// Bytes of the key tables and the columns (not what records point to, nor the
    /// elements of lists and maps): what the layout costs per key.
    pub fn bytes_used(&self) -> usize {
        self.keyed.bytes_used() + self.scoped.bytes_used()
    }

    /// The table of the current namespace.
    #[inline]
    fn table(&mut self) -> &mut Table<R> {
        if self.in_scoped {
            &mut self.scoped
        } else {
            &mut self.keyed
        }
    }
}

impl<R> Column<R> {
    fn new(kind: StateKind, ttl: Option<TtlConfig>, slots: usize) -> Self {
        let data = match kind {
            StateKind::Value | StateKind::Reducing | StateKind::Aggregating => {
                Data::Single(std::iter::repeat_with(|| None).take(slots).collect())
            }
            StateKind::List => Data::List(std::iter::repeat_with(Vec::new).take(slots).collect()),
            StateKind::Map => Data::Map(std::iter::repeat_with(BTreeMap::new).take(slots).collect()),
        };
        let stamps = if ttl.is_some() && matches!(data, Data::Single(_)) { vec![i64::MIN; slots] } else { Vec::new() };
        Column { data, stamps, ttl, cursor: 0 }
    }

    fn push_empty(&mut self) {
        match &mut self.data {
            Data::Single(v) => v.push(None),
            Data::List(v) => v.push(Vec::new()),
            Data::Map(v) => v.push(BTreeMap::new()),
        }
        if self.ttl.is_some() && matches!(self.data, Data::Single(_)) {
            self.stamps.push(i64::MIN);
        }
    }

    fn swap_remove(&mut self, slot: usize) {
        match &mut self.data {
            Data::Single(v) => drop(v.swap_remove(slot)),
            Data::List(v) => drop(v.swap_remove(slot)),
            Data::Map(v) => drop(v.swap_remove(slot)),
        }
        if !self.stamps.is_empty() {
            self.stamps.swap_remove(slot);
        }
    }

    fn is_empty_at(&self, slot: usize) -> bool {
        match &self.data {
            Data::Single(v) => v[slot].is_none(),
            Data::List(v) => v[slot].is_empty(),
            Data::Map(v) => v[slot].is_empty(),
        }
    }

    fn clear_at(&mut self, slot: usize) {
        match &mut self.data {
            Data::Single(v) => v[slot] = None,
            Data::List(v) => v[slot] = Vec::new(),
            Data::Map(v) => v[slot] = BTreeMap::new(),
        }
    }

    /// The stamp a write at `now` gives.
    fn stamp(&self, now: i64) -> i64 {
        if self.ttl.is_some() {
            now
        } else {
            i64::MIN
        }
    }

    /// Removes what expired at `now` from `slot` (incremental cleanup).
    fn remove_expired(&mut self, slot: usize, now: i64) {
        let Some(ttl) = self.ttl else { return };
        match &mut self.data {
            Data::Single(v) => {
                if v[slot].is_some() && ttl.expired(self.stamps[slot], now) {
                    v[slot] = None;
                }
            }
            Data::List(v) => v[slot].retain(|(_, s)| !ttl.expired(*s, now)),
            Data::Map(v) => v[slot].retain(|_, (_, _, s)| !ttl.expired(*s, now)),
        }
    }
}

impl<R: Clone> Column<R> {
    /// A single value as a read sees it, with time-to-live applied (see [`TtlConfig`]).
    fn single_get(&mut self, slot: usize, now: i64) -> Option<R> {
        let Data::Single(values) = &mut self.data else { return None };
        let value = values[slot].as_ref()?;
        let Some(ttl) = self.ttl else { return Some(value.clone()) };
        if ttl.expired(self.stamps[slot], now) {
            let seen = (ttl.visibility == TtlVisibility::ReturnExpiredIfNotCleanedUp).then(|| value.clone());
            if ttl.on_read {
                values[slot] = None;
            }
            seen
        } else {
            if ttl.update == TtlUpdate::OnReadAndWrite {
                self.stamps[slot] = now;
            }
            Some(value.clone())
        }
    }

    fn single_set(&mut self, slot: usize, value: R, now: i64) {
        if let Data::Single(values) = &mut self.data {
            values[slot] = Some(value);
            if self.ttl.is_some() {
                self.stamps[slot] = now;
            }
        }
    }

    /// Visits a list's elements as a read sees them (per-element time-to-live).
    fn list_read(&mut self, slot: usize, now: i64, visit: &mut dyn FnMut(&R)) {
        let Data::List(lists) = &mut self.data else { return };
        let list = &mut lists[slot];
        let Some(ttl) = self.ttl else {
            list.iter().for_each(|(v, _)| visit(v));
            return;
        };
        let mut expired = false;
        for (v, s) in list.iter_mut() {
            if ttl.expired(*s, now) {
                expired = true;
                if ttl.visibility == TtlVisibility::ReturnExpiredIfNotCleanedUp {
                    visit(v);
                }
            } else {
                if ttl.update == TtlUpdate::OnReadAndWrite {
                    *s = now;
                }
                visit(v);
            }
        }
        if expired && ttl.on_read {
            list.retain(|(_, s)| !ttl.expired(*s, now));
        }
    }

    /// Visits a map's entries as a read sees them (per-entry time-to-live).
    fn map_read(&mut self, slot: usize, now: i64, visit: &mut dyn FnMut(&R, &R)) {
        let Data::Map(maps) = &mut self.data else { return };
        let map = &mut maps[slot];
        let Some(ttl) = self.ttl else {
            map.values().for_each(|(k, v, _)| visit(k, v));
            return;
        };
        let mut expired = false;
        for (k, v, s) in map.values_mut() {
            if ttl.expired(*s, now) {
                expired = true;
                if ttl.visibility == TtlVisibility::ReturnExpiredIfNotCleanedUp {
                    visit(k, v);
                }
            } else {
                if ttl.update == TtlUpdate::OnReadAndWrite {
                    *s = now;
                }
                visit(k, v);
            }
        }
        if expired && ttl.on_read {
            map.retain(|_, (_, _, s)| !ttl.expired(*s, now));
        }
    }

    /// One map entry as a read sees it.
    fn map_get(&mut self, slot: usize, key: &Key, now: i64) -> Option<R> {
        let Data::Map(maps) = &mut self.data else { return None };
        let map = &mut maps[slot];
        let (_, value, stamp) = map.get_mut(key)?;
        let Some(ttl) = self.ttl else { return Some(value.clone()) };
        if ttl.expired(*stamp, now) {
            let seen = (ttl.visibility == TtlVisibility::ReturnExpiredIfNotCleanedUp).then(|| value.clone());
            if ttl.on_read {
                map.remove(key);
            }
            seen
        } else {
            if ttl.update == TtlUpdate::OnReadAndWrite {
                *stamp = now;
            }
            Some(value.clone())
        }
    }

    /// `slot`'s value for a snapshot at `now`, None if it has none (or none left).
    fn snapshot_at(&self, slot: usize, now: i64) -> Option<StateValue<R>> {
        let drop_expired = self.ttl.filter(|t| t.full_snapshot);
        let live = |s: i64| drop_expired.is_none_or(|t| !t.expired(s, now));
        match &self.data {
            Data::Single(v) => {
                let stamp = self.stamps.get(slot).copied().unwrap_or(i64::MIN);
                let value = v[slot].as_ref().filter(|_| live(stamp))?;
                Some(StateValue::Single { value: value.clone(), stamp })
            }
            Data::List(v) => {
                let list: Vec<(R, i64)> = v[slot].iter().filter(|(_, s)| live(*s)).cloned().collect();
                (!list.is_empty()).then_some(StateValue::List(list))
            }
            Data::Map(v) => {
                let entries: Vec<MapEntry<R>> = v[slot]
                    .iter()
                    .filter(|(_, (_, _, s))| live(*s))
                    .map(|(key, (user_key, value, stamp))| MapEntry {
                        key: key.clone(),
                        user_key: user_key.clone(),
                        value: value.clone(),
                        stamp: *stamp,
                    })
                    .collect();
                (!entries.is_empty()).then_some(StateValue::Map(entries))
            }
        }
    }
}

impl<R: Clone> Table<R> {
    /// The current entry's slot, if it has state.
    fn slot(&self) -> UdfResult<Option<usize>> {
        Ok(self.current.as_ref().ok_or_else(no_key)?.slot)
    }

    /// The current entry's slot, giving it one (empty in every column) if it has none.
    fn slot_or_insert(&mut self) -> UdfResult<usize> {
        let current = self.current.as_mut().ok_or_else(no_key)?;
        if let Some(slot) = current.slot {
            return Ok(slot);
        }
        let slot = self.keys.len();
        self.keys.insert(current.key.clone(), ());
        current.slot = Some(slot);
        self.columns.iter_mut().for_each(Column::push_empty);
        Ok(slot)
    }

    /// Drops `slot`'s entry once no state of it holds anything.
    fn release_if_empty(&mut self, slot: usize) {
        if self.columns.iter().all(|c| c.is_empty_at(slot)) {
            self.remove_at(slot);
        }
    }

    /// Drops `slot`'s entry and whatever it holds (the last entry takes its slot).
    fn remove_at(&mut self, slot: usize) {
        let last = self.keys.len() - 1;
        self.keys.swap_remove_at(slot);
        self.columns.iter_mut().for_each(|c| c.swap_remove(slot));
        if let Some(current) = &mut self.current {
            if current.slot == Some(slot) {
                current.slot = None;
            } else if current.slot == Some(last) {
                current.slot = Some(slot);
            }
        }
    }

    fn cleanup_incrementally(&mut self, state: StateId, now: i64) {
        let Some(inc) = self.columns[state.0].ttl.and_then(|t| t.incremental) else { return };
        for _ in 0..inc.size {
            if self.keys.is_empty() {
                break;
            }
            let slot = self.columns[state.0].cursor % self.keys.len();
            self.columns[state.0].remove_expired(slot, now);
            let before = self.keys.len();
            self.release_if_empty(slot);
            // A released slot holds the last key now: it is checked next.
            if self.keys.len() == before {
                self.columns[state.0].cursor = slot + 1;
            }
        }
    }

    fn single_get(&mut self, state: StateId, now: i64) -> UdfResult<Option<R>> {
        let Some(slot) = self.slot()? else { return Ok(None) };
        let value = self.columns[state.0].single_get(slot, now);
        self.release_if_empty(slot);
        Ok(value)
    }

    fn single_set(&mut self, state: StateId, value: R, now: i64) -> UdfResult<()> {
        let slot = self.slot_or_insert()?;
        self.columns[state.0].single_set(slot, value, now);
        Ok(())
    }

    fn map_write(&mut self, state: StateId, entries: Vec<(Key, R, R)>, now: i64) -> UdfResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let slot = self.slot_or_insert()?;
        let column = &mut self.columns[state.0];
        let stamp = column.stamp(now);
        if let Data::Map(maps) = &mut column.data {
            for (key, user_key, value) in entries {
                maps[slot].insert(key, (user_key, value, stamp));
            }
        }
        Ok(())
    }

    fn list_write(&mut self, state: StateId, values: Vec<R>, replace: bool, now: i64) -> UdfResult<()> {
        if values.is_empty() && !replace {
            return Ok(());
        }
        let slot = if values.is_empty() {
            match self.slot()? {
                Some(slot) => slot,
                None => return Ok(()),
            }
        } else {
            self.slot_or_insert()?
        };
        let column = &mut self.columns[state.0];
        let stamp = column.stamp(now);
        if let Data::List(lists) = &mut column.data {
            if replace {
                lists[slot].clear();
            }
            lists[slot].extend(values.into_iter().map(|v| (v, stamp)));
        }
        self.release_if_empty(slot);
        Ok(())
    }

    /// Calls `out` with every entry's values, for a snapshot.
    fn snapshot(
        &self,
        descriptors: &[StateDescriptor],
        now: i64,
        out: &mut dyn FnMut(&StateDescriptor, &Key, StateValue<R>),
    ) {
        for slot in 0..self.keys.len() {
            let key = self.keys.entry_at(slot).0;
            for (d, c) in descriptors.iter().zip(&self.columns) {
                if let Some(value) = c.snapshot_at(slot, now) {
                    out(d, key, value);
                }
            }
        }
    }

    /// Puts back one snapshot entry of state `i` for `key` (an entry of this table).
    fn restore(&mut self, i: usize, key: Key, value: StateValue<R>) {
        let slot = match self.keys.position(&key) {
            Some(slot) => slot,
            None => {
                let slot = self.keys.len();
                self.keys.insert(key.clone(), ());
                self.columns.iter_mut().for_each(Column::push_empty);
                if let Some(current) = &mut self.current {
                    if current.key == key {
                        current.slot = Some(slot);
                    }
                }
                slot
            }
        };
        let column = &mut self.columns[i];
        match (value, &mut column.data) {
            (StateValue::Single { value, stamp }, Data::Single(v)) => {
                v[slot] = Some(value);
                if let Some(s) = column.stamps.get_mut(slot) {
                    *s = stamp;
                }
            }
            (StateValue::List(list), Data::List(v)) => v[slot] = list,
            (StateValue::Map(entries), Data::Map(v)) => {
                v[slot] = entries.into_iter().map(|e| (e.key, (e.user_key, e.value, e.stamp))).collect();
            }
            _ => {}
        }
        self.release_if_empty(slot);
    }
}

impl<R: Clone + 'static> HeapBackend<R> {
    /// [`KeyedStateBackend::merge_namespaces`] of a state of `kind` (List, Reducing or
    /// Aggregating); leaves the namespace at `target`.
    fn merge_into(
        &mut self,
        state: StateId,
        kind: StateKind,
        target: Namespace,
        sources: &[Namespace],
        merge: &mut dyn FnMut(&R, &R) -> UdfResult<R>,
        now: i64,
    ) -> UdfResult<()> {
        let sources = sources.iter().filter(|ns| **ns != target);
        if kind == StateKind::List {
            let mut moved = Vec::new();
            for ns in sources {
                self.set_current_namespace(*ns);
                moved.extend(self.list_get(state, now)?);
                self.clear(state, now)?;
            }
            self.set_current_namespace(target);
            return if moved.is_empty() { Ok(()) } else { self.list_add_all(state, moved, now) };
        }
        let mut merged: Option<R> = None;
        for ns in sources {
            self.set_current_namespace(*ns);
            if let Some(v) = self.access(state, &[kind], now)?.single_get(state, now)? {
                self.clear(state, now)?;
                merged = Some(match merged {
                    None => v,
                    Some(m) => merge(&m, &v)?,
                });
            }
        }
        self.set_current_namespace(target);
        let Some(merged) = merged else { return Ok(()) };
        let table = self.access(state, &[kind], now)?;
        let next = match table.single_get(state, now)? {
            Some(t) => merge(&t, &merged)?,
            None => merged,
        };
        table.single_set(state, next, now)
    }
}

impl<R: Clone> HeapBackend<R> {
    /// Checks that `state` is a registered state of kind `kind` (Value, Reducing and
    /// Aggregating are told apart, though they share a layout), then runs incremental
    /// cleanup for it; returns the current namespace's table.
    fn access(&mut self, state: StateId, kinds: &[StateKind], now: i64) -> UdfResult<&mut Table<R>> {
        let d = self
            .descriptors
            .get(state.0)
            .ok_or_else(|| UdfError::internal(format!("keyed state: no state with id {}", state.0)))?;
        if !kinds.contains(&d.kind) {
            return Err(wrong_kind(d, kinds[0]));
        }
        let table = self.table();
        table.cleanup_incrementally(state, now);
        Ok(table)
    }
}

impl<R: Clone + 'static> KeyedStateBackend<R> for HeapBackend<R> {
    fn register(&mut self, descriptor: &StateDescriptor) -> UdfResult<StateId> {
        if let Some(i) = self.descriptors.iter().position(|d| d.name == descriptor.name) {
            let known = &self.descriptors[i];
            if known.kind != descriptor.kind {
                return Err(UdfError::new(format!(
                    "state name '{}' is used for a {} and for a {}: each state of an operator needs its own name",
                    descriptor.name, known.kind, descriptor.kind
                )));
            }
            return Ok(StateId(i));
        }
        if let Some(ttl) = &descriptor.ttl {
            if ttl.ttl_ms < 1 {
                return Err(UdfError::new(format!(
                    "state '{}': a time-to-live must be at least 1 ms, not {} ms",
                    descriptor.name, ttl.ttl_ms
                )));
            }
        }
        for table in [&mut self.keyed, &mut self.scoped] {
            table.columns.push(Column::new(descriptor.kind, descriptor.ttl, table.keys.len()));
        }
        self.descriptors.push(descriptor.clone());
        Ok(StateId(self.descriptors.len() - 1))
    }

    fn descriptors(&self) -> &[StateDescriptor] {
        &self.descriptors
    }

    fn set_current_key(&mut self, key: Key) {
        if self.in_scoped {
            self.scoped.set_current(joint_key(self.namespace, &key));
        }
        self.keyed.set_current(key);
    }

    fn current_key(&self) -> Option<&Key> {
        self.keyed.current.as_ref().map(|c| &c.key)
    }

    fn set_current_namespace(&mut self, namespace: Namespace) {
        if namespace == self.namespace {
            return;
        }
        self.namespace = namespace;
        self.in_scoped = namespace != Namespace::Key;
        self.scoped.current = match (namespace, &self.keyed.current) {
            (Namespace::Key, _) | (_, None) => None,
            (ns, Some(c)) => {
                let joint = joint_key(ns, &c.key);
                let slot = self.scoped.keys.position(&joint);
                Some(Current { key: joint, slot })
            }
        };
    }

    fn current_namespace(&self) -> Namespace {
        self.namespace
    }

    fn key_count(&self) -> usize {
        self.keyed.keys.len()
    }

    fn namespace_count(&self) -> usize {
        self.scoped.keys.len()
    }

    fn clear_namespace(&mut self, key: &Key, namespace: Namespace) {
        let (table, entry) = match namespace {
            Namespace::Key => (&mut self.keyed, key.clone()),
            ns => {
                if self.scoped.keys.is_empty() {
                    return; // the common case: no window function kept state
                }
                (&mut self.scoped, joint_key(ns, key))
            }
        };
        if let Some(slot) = table.keys.position(&entry) {
            table.remove_at(slot);
        }
    }

    fn clear(&mut self, state: StateId, now: i64) -> UdfResult<()> {
        let kind = self.descriptors.get(state.0).map(|d| d.kind).unwrap_or(StateKind::Value);
        let table = self.access(state, &[kind], now)?;
        if let Some(slot) = table.slot()? {
            table.columns[state.0].clear_at(slot);
            table.release_if_empty(slot);
        }
        Ok(())
    }

    fn value(&mut self, state: StateId, now: i64) -> UdfResult<Option<R>> {
        self.access(state, &[StateKind::Value], now)?.single_get(state, now)
    }

    fn update(&mut self, state: StateId, value: R, now: i64) -> UdfResult<()> {
        self.access(state, &[StateKind::Value], now)?.single_set(state, value, now)
    }

    fn list_get(&mut self, state: StateId, now: i64) -> UdfResult<Vec<R>> {
        let table = self.access(state, &[StateKind::List], now)?;
        let Some(slot) = table.slot()? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        table.columns[state.0].list_read(slot, now, &mut |v| out.push(v.clone()));
        table.release_if_empty(slot);
        Ok(out)
    }

    fn list_add(&mut self, state: StateId, value: R, now: i64) -> UdfResult<()> {
        self.access(state, &[StateKind::List], now)?.list_write(state, vec![value], false, now)
    }

    fn list_add_all(&mut self, state: StateId, values: Vec<R>, now: i64) -> UdfResult<()> {
        self.access(state, &[StateKind::List], now)?.list_write(state, values, false, now)
    }

    fn list_update(&mut self, state: StateId, values: Vec<R>, now: i64) -> UdfResult<()> {
        self.access(state, &[StateKind::List], now)?.list_write(state, values, true, now)
    }

    fn map_get(&mut self, state: StateId, key: &Key, now: i64) -> UdfResult<Option<R>> {
        let table = self.access(state, &[StateKind::Map], now)?;
        let Some(slot) = table.slot()? else { return Ok(None) };
        let value = table.columns[state.0].map_get(slot, key, now);
        table.release_if_empty(slot);
        Ok(value)
    }

    fn map_put(&mut self, state: StateId, key: Key, user_key: R, value: R, now: i64) -> UdfResult<()> {
        self.access(state, &[StateKind::Map], now)?.map_write(state, vec![(key, user_key, value)], now)
    }

    fn map_put_all(&mut self, state: StateId, entries: Vec<(Key, R, R)>, now: i64) -> UdfResult<()> {
        self.access(state, &[StateKind::Map], now)?.map_write(state, entries, now)
    }

    fn map_remove(&mut self, state: StateId, key: &Key, now: i64) -> UdfResult<()> {
        let table = self.access(state, &[StateKind::Map], now)?;
        let Some(slot) = table.slot()? else { return Ok(()) };
        if let Data::Map(maps) = &mut table.columns[state.0].data {
            maps[slot].remove(key);
        }
        table.release_if_empty(slot);
        Ok(())
    }

    fn map_contains(&mut self, state: StateId, key: &Key, now: i64) -> UdfResult<bool> {
        Ok(self.map_get(state, key, now)?.is_some())
    }

    fn map_items(&mut self, state: StateId, now: i64) -> UdfResult<Vec<(R, R)>> {
        let table = self.access(state, &[StateKind::Map], now)?;
        let Some(slot) = table.slot()? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        table.columns[state.0].map_read(slot, now, &mut |k, v| out.push((k.clone(), v.clone())));
        table.release_if_empty(slot);
        Ok(out)
    }

    fn map_is_empty(&mut self, state: StateId, now: i64) -> UdfResult<bool> {
        let table = self.access(state, &[StateKind::Map], now)?;
        let Some(slot) = table.slot()? else { return Ok(true) };
        let mut seen = 0usize;
        table.columns[state.0].map_read(slot, now, &mut |_, _| seen += 1);
        table.release_if_empty(slot);
        Ok(seen == 0)
    }

    fn reducing_get(&mut self, state: StateId, now: i64) -> UdfResult<Option<R>> {
        self.access(state, &[StateKind::Reducing], now)?.single_get(state, now)
    }

    fn reducing_add(
        &mut self,
        state: StateId,
        value: R,
        reduce: &mut dyn FnMut(&R, &R) -> UdfResult<R>,
        now: i64,
    ) -> UdfResult<()> {
        let table = self.access(state, &[StateKind::Reducing], now)?;
        let next = match table.single_get(state, now)? {
            Some(acc) => reduce(&acc, &value)?,
            None => value,
        };
        table.single_set(state, next, now)
    }

    fn aggregating_get(&mut self, state: StateId, agg: &mut dyn WindowAggregate<R>, now: i64) -> UdfResult<Option<R>> {
        match self.access(state, &[StateKind::Aggregating], now)?.single_get(state, now)? {
            Some(acc) => Ok(Some(agg.get_result(&acc)?)),
            None => Ok(None),
        }
    }

    fn aggregating_add(
        &mut self,
        state: StateId,
        value: R,
        agg: &mut dyn WindowAggregate<R>,
        now: i64,
    ) -> UdfResult<()> {
        let table = self.access(state, &[StateKind::Aggregating], now)?;
        let acc = match table.single_get(state, now)? {
            Some(acc) => acc,
            None => agg.create_accumulator()?,
        };
        let next = agg.add(&value, acc)?;
        table.single_set(state, next, now)
    }

    fn merge_namespaces(
        &mut self,
        state: StateId,
        target: Namespace,
        sources: &[Namespace],
        merge: &mut dyn FnMut(&R, &R) -> UdfResult<R>,
        now: i64,
    ) -> UdfResult<()> {
        let d = self
            .descriptors
            .get(state.0)
            .ok_or_else(|| UdfError::internal(format!("keyed state: no state with id {}", state.0)))?;
        let kind = d.kind;
        if !matches!(kind, StateKind::List | StateKind::Reducing | StateKind::Aggregating) {
            return Err(UdfError::new(format!(
                "state '{}' is a {kind}, which cannot merge: merge_partitioned_state() takes a list, reducing or \
                 aggregating state",
                d.name
            )));
        }
        let before = self.namespace;
        let done = self.merge_into(state, kind, target, sources, merge, now);
        self.set_current_namespace(before);
        done
    }

    fn on_record(&mut self, now: i64) {
        for i in 0..self.descriptors.len() {
            if self.keyed.columns[i].ttl.and_then(|t| t.incremental).is_some_and(|inc| inc.every_record) {
                self.keyed.cleanup_incrementally(StateId(i), now);
                self.scoped.cleanup_incrementally(StateId(i), now);
            }
        }
    }

    fn snapshot(&self, now: i64, out: &mut dyn FnMut(&StateDescriptor, &Key, Namespace, StateValue<R>)) {
        self.keyed.snapshot(&self.descriptors, now, &mut |d, key, v| out(d, key, Namespace::Key, v));
        self.scoped.snapshot(&self.descriptors, now, &mut |d, joint, v| {
            let (ns, key) = split_joint_key(joint);
            out(d, &key, ns, v)
        });
    }

    fn restore(&mut self, name: &str, key: Key, namespace: Namespace, value: StateValue<R>) -> UdfResult<()> {
        let i = self.descriptors.iter().position(|d| d.name == name).ok_or_else(|| {
            UdfError::new(format!("a snapshot holds state '{name}', which the operator does not register"))
        })?;
        let kind = self.descriptors[i].kind;
        let fits = matches!(
            (&value, kind),
            (StateValue::Single { .. }, StateKind::Value | StateKind::Reducing | StateKind::Aggregating)
                | (StateValue::List(_), StateKind::List)
                | (StateValue::Map(_), StateKind::Map)
        );
        if !fits {
            return Err(UdfError::new(format!("a snapshot holds state '{name}' in another kind than its {kind}")));
        }
        match namespace {
            Namespace::Key => self.keyed.restore(i, key, value),
            ns => self.scoped.restore(i, joint_key(ns, &key), value),
        }
        Ok(())
    }

    fn for_each_key(&self, state: StateId, out: &mut dyn FnMut(&Key)) -> UdfResult<()> {
        // Keyed state lives in the key's own namespace: the keyed table.
        let table = &self.keyed;
        let column = table
            .columns
            .get(state.0)
            .ok_or_else(|| UdfError::internal(format!("keyed state: no state with id {}", state.0)))?;
        for slot in 0..table.keys.len() {
            if !column.is_empty_at(slot) {
                out(table.keys.entry_at(slot).0);
            }
        }
        Ok(())
    }
}
