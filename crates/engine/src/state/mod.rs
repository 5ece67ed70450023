//! Keyed state: Flink's per-key state (PyFlink's Value, List, Map, Reducing and
//! Aggregating kinds), registered per operator by descriptor, with time-to-live.
//!
//! State is scoped by the record's [`Key`], the encoding whose stable hash also routes
//! the record, so a key's state lives on the worker its records reach. Values are
//! records (`R`: Python objects in the binding), kept as they are, never converted.
//!
//! An operator holds one [`KeyedStateBackend`]: it registers its descriptors when it
//! opens, sets the current key before each record or timer
//! ([`KeyedStateBackend::set_current_key`]), and its functions' state objects read and
//! write the current key's state through a [`StateId`]. [`HeapBackend`] keeps it all in
//! memory; an on-disk backend implements the same trait. Checkpoints (issue 13) walk
//! every entry with [`KeyedStateBackend::snapshot`] and put them back with
//! [`KeyedStateBackend::restore`]; [`snapshot`] writes them into a checkpoint section.
//!
//! Each value is scoped by (key, [`Namespace`]) as Flink's keyed state is: the key's
//! own namespace by default, or a window of the key for a window function's
//! `window_state()` ([`KeyedStateBackend::set_current_namespace`]).
//!
//! Time-to-live follows Flink's `StateTtlConfig` on processing time; the caller passes
//! "now" (ms) to every access, so tests drive it with a manual clock. See [`TtlConfig`].

mod heap;
mod keyed;
mod operator;
pub mod snapshot;

pub use heap::HeapBackend;
pub use keyed::{prefetch_read, KeyedState};
pub use operator::{BroadcastStateId, HeapOperatorState, OperatorStateBackend};

use std::fmt;

use crate::error::UdfResult;
use crate::functions::WindowAggregate;
use crate::key::Key;
use crate::windows::Window;

/// The kinds of keyed state, PyFlink's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateKind {
    Value,
    List,
    Map,
    Reducing,
    Aggregating,
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateKind::Value => "ValueState",
            StateKind::List => "ListState",
            StateKind::Map => "MapState",
            StateKind::Reducing => "ReducingState",
            StateKind::Aggregating => "AggregatingState",
        })
    }
}

/// What a function asks for in `get_state(descriptor)`: a name unique in its operator,
/// a kind and, optionally, a time-to-live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDescriptor {
    pub name: String,
    pub kind: StateKind,
    pub ttl: Option<TtlConfig>,
}

impl StateDescriptor {
    pub fn new(name: impl Into<String>, kind: StateKind) -> Self {
        StateDescriptor { name: name.into(), kind, ttl: None }
    }

    pub fn with_ttl(mut self, ttl: TtlConfig) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// Where within its key a state's value lives (Flink's namespace). Every registered
/// state has one value per key and namespace: the key's own ([`Namespace::Key`], what
/// `get_state` in `open()` and a window function's `global_state()` reach), and one per
/// window of the key (a window function's `window_state()`), which the window operator
/// drops with [`KeyedStateBackend::clear_namespace`] when the window is purged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    #[default]
    Key,
    Window(Window),
}

/// A registered state of one operator: an index into its backend's descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateId(pub usize);

/// When an entry's time-to-live restarts (Flink's `StateTtlConfig.UpdateType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TtlUpdate {
    /// Writes restart it (`update`, `add`, `put`...).
    #[default]
    OnCreateAndWrite,
    /// Reads of a live entry restart it too.
    OnReadAndWrite,
}

/// Whether a read may see an expired entry not yet removed (Flink's
/// `StateTtlConfig.StateVisibility`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TtlVisibility {
    #[default]
    NeverReturnExpired,
    ReturnExpiredIfNotCleanedUp,
}

/// Flink's incremental cleanup: each access to the state checks `size` more keys'
/// entries of it (a cursor walks every key in turn), and with `every_record` so does
/// each record the operator processes ([`KeyedStateBackend::on_record`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncrementalCleanup {
    pub size: usize,
    pub every_record: bool,
}

/// Flink's `StateTtlConfig` on processing time. An entry expires once
/// `last stamp + ttl_ms <= now` (Flink's rule). Expired entries are removed:
/// - on read (`on_read`, Flink always does it): a read that finds one removes it (and
///   returns it once more if the visibility allows);
/// - by `incremental` cleanup, see [`IncrementalCleanup`];
/// - never from memory by `full_snapshot`: a snapshot leaves them out, as Flink's full
///   snapshots do, and a restore from it starts without them.
///
/// List and map state have a time-to-live per element (per map entry), as in Flink:
/// `add` stamps only the element it adds, a read restarts (OnReadAndWrite) and removes
/// elements one by one. Value, reducing and aggregating state have one per key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TtlConfig {
    /// Time-to-live in ms (at least 1).
    pub ttl_ms: i64,
    pub update: TtlUpdate,
    pub visibility: TtlVisibility,
    pub on_read: bool,
    pub incremental: Option<IncrementalCleanup>,
    pub full_snapshot: bool,
}

impl TtlConfig {
    /// Flink's defaults for `StateTtlConfig.new_builder(ttl)`: restart on write, never
    /// return expired, removed on read; no background cleanup.
    pub fn new(ttl_ms: i64) -> Self {
        TtlConfig {
            ttl_ms,
            update: TtlUpdate::OnCreateAndWrite,
            visibility: TtlVisibility::NeverReturnExpired,
            on_read: true,
            incremental: None,
            full_snapshot: false,
        }
    }

    /// Whether an entry stamped at `stamp` has expired at `now`.
    #[inline]
    pub fn expired(&self, stamp: i64, now: i64) -> bool {
        stamp.saturating_add(self.ttl_ms) <= now
    }
}

/// One key's value of one state, as a snapshot carries it. Stamps are the processing
/// times their time-to-live runs from (`i64::MIN` for a state without one), so a
/// restore keeps each entry's expiry.
#[derive(Clone, Debug, PartialEq)]
pub enum StateValue<R> {
    /// Value, reducing (the reduced value) and aggregating (the accumulator) state.
    Single { value: R, stamp: i64 },
    /// Elements in order, each with its stamp.
    List(Vec<(R, i64)>),
    /// Entries: the user key's encoding, the user key, the value, its stamp.
    Map(Vec<MapEntry<R>>),
}

/// One entry of a map state: `key` is the encoding of `user_key` (what finds it).
#[derive(Clone, Debug, PartialEq)]
pub struct MapEntry<R> {
    pub key: Key,
    pub user_key: R,
    pub value: R,
    pub stamp: i64,
}

/// Where an operator's keyed state lives. Every access is for the current key
/// ([`KeyedStateBackend::set_current_key`]) and takes `now`, the processing time in ms
/// (only time-to-live reads it). Reads return owned values (clones of records), so an
/// on-disk backend can implement them. A `StateId` used with another kind's method is
/// an internal error (the binding holds one state object per descriptor).
pub trait KeyedStateBackend<R> {
    /// Registers `descriptor` and returns its id; registering a name again with the
    /// same kind returns the same id (Flink's `get_state` twice), with another kind is
    /// an error naming the name and both kinds. A time-to-live under 1 ms is an error.
    fn register(&mut self, descriptor: &StateDescriptor) -> UdfResult<StateId>;

    /// The registered descriptors, by id.
    fn descriptors(&self) -> &[StateDescriptor];

    /// Makes `key` the key later accesses are for.
    fn set_current_key(&mut self, key: Key);

    /// The current key, if one was set.
    fn current_key(&self) -> Option<&Key>;

    /// Makes `namespace` the one later accesses are for (with the current key); the
    /// default, [`Namespace::Key`], until changed.
    fn set_current_namespace(&mut self, namespace: Namespace);

    /// The namespace accesses are for.
    fn current_namespace(&self) -> Namespace;

    /// How many keys have state (of any descriptor) in the default namespace.
    fn key_count(&self) -> usize;

    /// How many (key, namespace) pairs other than the default have state: what window
    /// state is live.
    fn namespace_count(&self) -> usize;

    /// Drops every state `key` has in `namespace` (a purged window's), whatever the
    /// current key and namespace.
    fn clear_namespace(&mut self, key: &Key, namespace: Namespace);

    /// Clears the current key's state of `state` (any kind).
    fn clear(&mut self, state: StateId, now: i64) -> UdfResult<()>;

    /// ValueState `value()`.
    fn value(&mut self, state: StateId, now: i64) -> UdfResult<Option<R>>;
    /// ValueState `update(v)`.
    fn update(&mut self, state: StateId, value: R, now: i64) -> UdfResult<()>;

    /// ListState `get()`: empty when the key has none.
    fn list_get(&mut self, state: StateId, now: i64) -> UdfResult<Vec<R>>;
    /// ListState `add(v)`.
    fn list_add(&mut self, state: StateId, value: R, now: i64) -> UdfResult<()>;
    /// ListState `add_all(vs)`.
    fn list_add_all(&mut self, state: StateId, values: Vec<R>, now: i64) -> UdfResult<()>;
    /// ListState `update(vs)`: replaces the list (an empty one clears it).
    fn list_update(&mut self, state: StateId, values: Vec<R>, now: i64) -> UdfResult<()>;

    /// MapState `get(k)`; `key` is the user key's encoding.
    fn map_get(&mut self, state: StateId, key: &Key, now: i64) -> UdfResult<Option<R>>;
    /// MapState `put(k, v)`: `user_key` is kept for `keys()`/`items()`.
    fn map_put(&mut self, state: StateId, key: Key, user_key: R, value: R, now: i64) -> UdfResult<()>;
    /// MapState `put_all(entries)`: (encoding, user key, value) each.
    fn map_put_all(&mut self, state: StateId, entries: Vec<(Key, R, R)>, now: i64) -> UdfResult<()>;
    /// MapState `remove(k)`.
    fn map_remove(&mut self, state: StateId, key: &Key, now: i64) -> UdfResult<()>;
    /// MapState `contains(k)`: whether `get(k)` would return a value.
    fn map_contains(&mut self, state: StateId, key: &Key, now: i64) -> UdfResult<bool>;
    /// MapState `items()` (and `keys()`, `values()` from it), in the order of the user
    /// keys' encodings (deterministic on every worker and process).
    fn map_items(&mut self, state: StateId, now: i64) -> UdfResult<Vec<(R, R)>>;
    /// MapState `keys()`.
    fn map_keys(&mut self, state: StateId, now: i64) -> UdfResult<Vec<R>> {
        Ok(self.map_items(state, now)?.into_iter().map(|(k, _)| k).collect())
    }
    /// MapState `values()`.
    fn map_values(&mut self, state: StateId, now: i64) -> UdfResult<Vec<R>> {
        Ok(self.map_items(state, now)?.into_iter().map(|(_, v)| v).collect())
    }
    /// MapState `is_empty()`.
    fn map_is_empty(&mut self, state: StateId, now: i64) -> UdfResult<bool>;

    /// ReducingState `get()`.
    fn reducing_get(&mut self, state: StateId, now: i64) -> UdfResult<Option<R>>;
    /// ReducingState `add(v)`: `reduce(acc, v)` becomes the state (`v` alone at first).
    fn reducing_add(
        &mut self,
        state: StateId,
        value: R,
        reduce: &mut dyn FnMut(&R, &R) -> UdfResult<R>,
        now: i64,
    ) -> UdfResult<()>;

    /// AggregatingState `get()`: `get_result` of the accumulator, None without one.
    fn aggregating_get(&mut self, state: StateId, agg: &mut dyn WindowAggregate<R>, now: i64) -> UdfResult<Option<R>>;
    /// AggregatingState `add(v)`: the accumulator (`create_accumulator()` at first)
    /// becomes `add(v, acc)`.
    fn aggregating_add(
        &mut self,
        state: StateId,
        value: R,
        agg: &mut dyn WindowAggregate<R>,
        now: i64,
    ) -> UdfResult<()>;

    /// Flink's `mergeNamespaces` for merging windows: the current key's values of
    /// `state` (a List, Reducing or Aggregating state) in `sources` go into `target`
    /// and leave their namespaces: lists are appended (target's first, then each
    /// source's in order), single values combined with `merge(a, b)` (a reduce, or an
    /// aggregate's accumulator merge). The current namespace is left as it was. A state
    /// of another kind is an error saying it cannot merge.
    fn merge_namespaces(
        &mut self,
        state: StateId,
        target: Namespace,
        sources: &[Namespace],
        merge: &mut dyn FnMut(&R, &R) -> UdfResult<R>,
        now: i64,
    ) -> UdfResult<()>;

    /// Once per record the operator processes: incremental cleanup of the states that
    /// ask for it on every record.
    fn on_record(&mut self, now: i64);

    /// Calls `out` with every (descriptor, key, namespace, value) the backend holds,
    /// for a checkpoint. Entries of a state with `full_snapshot` cleanup that expired at
    /// `now` are left out (elements of lists and maps one by one).
    fn snapshot(&self, now: i64, out: &mut dyn FnMut(&StateDescriptor, &Key, Namespace, StateValue<R>));

    /// Puts back one entry [`Self::snapshot`] gave, under the descriptor named `name`,
    /// which must be registered first with the same kind. It replaces what the key had
    /// in `namespace`.
    fn restore(&mut self, name: &str, key: Key, namespace: Namespace, value: StateValue<R>) -> UdfResult<()>;

    /// Calls `out` with every key that holds a value of `state` in its own namespace
    /// (not a window's; Flink's `applyToKeyedState` visits them), in no particular order. Entries expired but not
    /// yet removed count: a read through the state applies time-to-live. It does not
    /// move the current key; a caller that changes state per key collects them first.
    fn for_each_key(&self, state: StateId, out: &mut dyn FnMut(&Key)) -> UdfResult<()>;
}
