//! What a process function reaches while it runs (Flink's `KeyedProcessFunction` and
//! `ProcessFunction` contexts): the current record's timestamp and key, the clocks,
//! its timers, keyed state and broadcast state. The operator (`operators::process`) owns one
//! [`ProcessContext`] per instance, shared with the function as a [`SharedContext`]:
//! state objects the function made in `open()` read and write through it while the
//! operator calls the function, and the operator moves it (current key, timestamp,
//! watermark, clock) between calls. It is behind a mutex, not an `Rc`, because the
//! binding's state objects may outlive the job in the user's function object and be
//! dropped on another thread; the lock is never contended (one worker uses it).

use std::sync::{Arc, Mutex, MutexGuard};

use crate::checkpoint::state_io::{StateError, StateReader, StateWriter};
use crate::error::{UdfError, UdfResult};
use crate::functions::WorkerContext;
use crate::key::Key;
use crate::record::Record;
use crate::state::{
    snapshot, BroadcastStateId, HeapBackend, HeapOperatorState, KeyedStateBackend, Namespace, OperatorStateBackend,
    StateId,
};
use crate::time::{TimeDomain, NO_TIME};
use crate::timers::TimerService;
use crate::windows::Window;

/// One process function's view of the operator: see the module doc.
pub struct ProcessContext<R> {
    /// The keyed state (empty and unused on a plain stream).
    pub state: HeapBackend<R>,
    /// The broadcast state (Flink's operator state: this instance's copy; empty but
    /// for a `(Keyed)BroadcastProcessFunction`). Reach it through
    /// [`ProcessContext::broadcast_for_read`] / [`ProcessContext::broadcast_for_write`].
    /// A checkpoint takes it with [`OperatorStateBackend::snapshot`] beside the keyed
    /// state's [`KeyedStateBackend::snapshot`] (see `state::operator` for rescaling).
    pub broadcast: HeapOperatorState<R>,
    /// Whether `process_broadcast_element` is running: only it may change broadcast state.
    in_broadcast_element: bool,
    /// Pending timers: the key's encoding, and the key itself for `get_current_key()`.
    pub timers: TimerService<Key, R>,
    keyed: bool,
    /// The current key's value (during a keyed call).
    key_value: Option<R>,
    /// The current record's event timestamp, or the firing timer's (`NO_TIME`: none).
    pub timestamp: i64,
    /// The operator's event-time watermark (`NO_TIME` before the first one).
    pub watermark: i64,
    /// Processing time now (the wall clock, or a testing source's manual clock): what
    /// `current_processing_time()` says and what state time-to-live runs on.
    pub processing_time: i64,
    /// The domain of the timer firing, None in `process_element`.
    pub domain: Option<TimeDomain>,
    /// The window a window function is called for (its `window_state()`'s namespace),
    /// None outside those calls.
    pub window: Option<Window>,
    /// The window operator's windows merge (sessions): no per-window state there.
    pub merging_windows: bool,
    /// While a window's user trigger runs: its (key, window), the scope of its
    /// partitioned state (see [`ProcessContext::trigger_state_for_access`]).
    pub trigger_scope: Option<TriggerScope>,
    /// Set once the operator has ended: state and timers are no longer reachable.
    closed: bool,
}

/// What a window's user trigger is called for: its partitioned state is the key's, in
/// the window's namespace (also on merging windows, unlike a window function's
/// `window_state()`: `on_merge` merges the merged-away windows' into it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerScope {
    pub key: Key,
    pub window: Window,
    /// In `on_merge`: the windows merging into `window`.
    pub merged: Vec<Window>,
    /// Processing time now (state time-to-live runs on it).
    pub now: i64,
}

/// The context as the function and its state objects hold it.
pub type SharedContext<R> = Arc<Mutex<ProcessContext<R>>>;

/// The error of a timer used on a plain stream (Flink's message, in our words).
pub const TIMERS_NEED_KEYS: &str =
    "timers are only available on keyed streams: call key_by() before process() to register timers";

impl<R: Clone + 'static> ProcessContext<R> {
    /// A context for a keyed operator (state and timers) or a plain one.
    pub fn new(keyed: bool) -> Self {
        ProcessContext {
            state: HeapBackend::new(),
            broadcast: HeapOperatorState::new(),
            in_broadcast_element: false,
            timers: TimerService::new(),
            keyed,
            key_value: None,
            timestamp: NO_TIME,
            watermark: NO_TIME,
            processing_time: NO_TIME,
            domain: None,
            window: None,
            merging_windows: false,
            trigger_scope: None,
            closed: false,
        }
    }

    /// [`ProcessContext::new`], shared.
    pub fn shared(keyed: bool) -> SharedContext<R> {
        Arc::new(Mutex::new(Self::new(keyed)))
    }

    pub fn is_keyed(&self) -> bool {
        self.keyed
    }

    /// The key of the record or timer being processed (None on a plain stream).
    pub fn current_key(&self) -> Option<&R> {
        self.key_value.as_ref()
    }

    /// Makes `key` (encoding and value) the current key for state and timers.
    pub fn set_key(&mut self, key: Key, value: R) {
        self.state.set_current_key(key);
        self.key_value = Some(value);
    }

    /// No current key (a broadcast input's record on a keyed operator): keyed state
    /// and timers are out of reach until the next keyed record or timer.
    pub fn clear_key(&mut self) {
        self.key_value = None;
    }

    /// The state backend for an access at `now`, or why it cannot be reached.
    pub fn state_for_access(&mut self) -> UdfResult<(&mut HeapBackend<R>, i64)> {
        if self.closed {
            return Err(UdfError::new("keyed state was used after its job ended"));
        }
        if !self.keyed {
            return Err(UdfError::new(
                "keyed state is only available on a keyed stream (a function applied after key_by())",
            ));
        }
        if self.key_value.is_none() {
            return Err(UdfError::new(
                "keyed state has no current key here: it is reachable while a keyed record or a timer is processed \
                 (not in process_broadcast_element)",
            ));
        }
        let now = self.processing_time;
        Ok((&mut self.state, now))
    }

    /// The operator calls `process_broadcast_element` (`true`) or has returned from it.
    pub fn set_in_broadcast_element(&mut self, running: bool) {
        self.in_broadcast_element = running;
    }

    /// The broadcast state for a read (any call of the function may read it).
    pub fn broadcast_for_read(&mut self) -> UdfResult<&mut HeapOperatorState<R>> {
        if self.closed {
            return Err(UdfError::new("broadcast state was used after its job ended"));
        }
        Ok(&mut self.broadcast)
    }

    /// The broadcast state for a write to `state`: only `process_broadcast_element`
    /// may write, so that every instance, applying the same broadcast elements, keeps
    /// the same state.
    pub fn broadcast_for_write(&mut self, state: BroadcastStateId) -> UdfResult<&mut HeapOperatorState<R>> {
        if !self.closed && !self.in_broadcast_element {
            let names = self.broadcast.broadcast_names();
            let name = names.get(state.0).copied().unwrap_or("?");
            return Err(UdfError::new(format!(
                "broadcast state '{name}' is read-only outside process_broadcast_element (in process_element and \
                 on_timer): only process_broadcast_element may change it, so that every worker keeps the same state"
            )));
        }
        self.broadcast_for_read()
    }

    /// `apply_to_keyed_state(descriptor, f)` from `process_broadcast_element`: the keys
    /// that hold keyed state `name`, for the caller to make each current in turn
    /// ([`ProcessContext::set_key`]) and call `f` (then [`ProcessContext::clear_key`]).
    pub fn keys_of_state(&self, name: &str) -> UdfResult<Vec<Key>> {
        if self.closed {
            return Err(UdfError::new("keyed state was used after its job ended"));
        }
        if !self.keyed || !self.in_broadcast_element {
            return Err(UdfError::new(
                "apply_to_keyed_state() is only available in process_broadcast_element of a \
                 KeyedBroadcastProcessFunction",
            ));
        }
        let descriptors = self.state.descriptors();
        let Some(i) = descriptors.iter().position(|d| d.name == name) else {
            let known: Vec<&str> = descriptors.iter().map(|d| d.name.as_str()).collect();
            return Err(UdfError::new(format!(
                "apply_to_keyed_state(): no keyed state named '{name}' is registered (get it in open() first); \
                 registered: {known:?}"
            )));
        };
        let mut keys = Vec::new();
        self.state.for_each_key(crate::state::StateId(i), &mut |k| keys.push(k.clone()))?;
        Ok(keys)
    }

    /// Why state in the firing window's namespace (`window_state()`) cannot be
    /// reached now, if it cannot.
    pub fn check_window_scope(&self) -> UdfResult<Window> {
        if self.merging_windows {
            return Err(UdfError::new(
                "window_state(): per-window state is not supported on merging (session) windows, \
                 whose windows merge away; keep state in global_state() (per key) instead",
            ));
        }
        self.window.ok_or_else(|| {
            UdfError::new(
                "window_state() is only reachable while a window function runs for a window \
                 (in process() or clear()), not in open(), close() or a state kept from another call",
            )
        })
    }

    /// [`ProcessContext::state_for_access`] in the firing window's namespace; the
    /// caller sets the namespace back to [`Namespace::Key`] after the access.
    pub fn window_state_for_access(&mut self) -> UdfResult<(&mut HeapBackend<R>, i64)> {
        let window = self.check_window_scope()?;
        let (state, now) = self.state_for_access()?;
        state.set_current_namespace(Namespace::Window(window));
        Ok((state, now))
    }

    /// The state backend at the running trigger's key and window (see [`TriggerScope`]);
    /// the caller sets the namespace back to [`Namespace::Key`] after the access.
    pub fn trigger_state_for_access(&mut self) -> UdfResult<(&mut HeapBackend<R>, i64)> {
        if self.closed {
            return Err(UdfError::new("a trigger's state was used after its job ended"));
        }
        let Some(scope) = &self.trigger_scope else {
            return Err(UdfError::new(
                "a trigger's partitioned state is only reachable while the trigger runs (in on_element, \
                 on_event_time, on_processing_time, on_merge or clear), not from a state kept from another call",
            ));
        };
        self.state.set_current_key(scope.key.clone());
        self.state.set_current_namespace(Namespace::Window(scope.window));
        Ok((&mut self.state, scope.now))
    }

    /// `merge_partitioned_state` in a trigger's `on_merge`: `state` of the windows
    /// merging ([`TriggerScope::merged`]) goes into the trigger's window (Flink's
    /// `mergeNamespaces`), `merge` combining two values (a reduce, or an aggregate's
    /// accumulator merge).
    pub fn merge_trigger_state(
        &mut self,
        state: StateId,
        merge: &mut dyn FnMut(&R, &R) -> UdfResult<R>,
    ) -> UdfResult<()> {
        let Some(scope) = self.trigger_scope.clone() else {
            return Err(UdfError::new("merge_partitioned_state() is only reachable in a trigger's on_merge()"));
        };
        if self.closed {
            return Err(UdfError::new("a trigger's state was used after its job ended"));
        }
        let sources: Vec<Namespace> = scope.merged.iter().map(|w| Namespace::Window(*w)).collect();
        self.state.set_current_key(scope.key);
        let done = self.state.merge_namespaces(state, Namespace::Window(scope.window), &sources, merge, scope.now);
        self.state.set_current_namespace(Namespace::Key);
        done
    }

    /// Registers a timer for the current key (once per key, domain and timestamp).
    pub fn register_timer(&mut self, domain: TimeDomain, timestamp: i64) -> UdfResult<()> {
        let (key, value) = self.timer_key()?;
        let (key, value) = (key.clone(), value.clone());
        self.timers.register(domain, timestamp, key, value);
        Ok(())
    }

    /// Deletes the current key's timer, if there is one.
    pub fn delete_timer(&mut self, domain: TimeDomain, timestamp: i64) -> UdfResult<()> {
        // Borrowed, not cloned: a session-style function deletes a timer per record.
        self.timer_key()?;
        if let Some(key) = self.state.current_key() {
            self.timers.delete(domain, timestamp, key);
        }
        Ok(())
    }

    fn timer_key(&self) -> UdfResult<(&Key, &R)> {
        if !self.keyed {
            return Err(UdfError::new(TIMERS_NEED_KEYS));
        }
        if self.closed {
            return Err(UdfError::new("a timer was registered after its job ended"));
        }
        match (self.state.current_key(), &self.key_value) {
            (Some(k), Some(v)) => Ok((k, v)),
            _ => Err(UdfError::new("timers can only be registered while a record or a timer is processed")),
        }
    }

    /// The operator has ended: drops state and timers (so records they hold are
    /// released now, inside the operator's scope) and refuses later accesses.
    pub fn close(&mut self) {
        self.closed = true;
        self.state = HeapBackend::new();
        self.broadcast = HeapOperatorState::new();
        self.timers = TimerService::new();
        self.key_value = None;
    }
}

/// Checkpoints (issue 13): what the context holds that outlives a call, apart from
/// the operator's own queue: the watermark, keyed state, timers and broadcast state.
impl<R: Record> ProcessContext<R> {
    /// Appends the watermark, the keyed state (time-to-live applied at the context's
    /// processing time), the timers and this instance's broadcast state.
    pub fn snapshot(&self, w: &mut StateWriter<R>) -> Result<(), StateError> {
        w.i64(self.watermark);
        snapshot::write_keyed(&self.state, self.processing_time, w)?;
        self.timers.snapshot(w)?;
        snapshot::write_broadcast(&self.broadcast, w)
    }

    /// Reads one old instance's [`ProcessContext::snapshot`]: its keyed state and timers
    /// of the keys `owns` says are this instance's, and its broadcast state if
    /// `broadcast` (one copy is taken, see [`snapshot::copy_index`]). Returns that
    /// instance's watermark (the caller keeps the least of them).
    pub fn restore(
        &mut self,
        r: &mut StateReader<'_, R>,
        owns: &dyn Fn(&Key) -> bool,
        broadcast: bool,
    ) -> UdfResult<i64> {
        let watermark = r.i64()?;
        snapshot::read_keyed(r, &mut self.state, owns)?;
        self.timers.restore(r, owns)?;
        snapshot::read_broadcast(r, broadcast.then_some(&mut self.broadcast))?;
        Ok(watermark)
    }
}

/// Locks a shared context (never contended; a panic elsewhere does not poison it for us).
pub fn lock<R>(ctx: &SharedContext<R>) -> MutexGuard<'_, ProcessContext<R>> {
    ctx.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a process function's outputs go: the main output, and side outputs by index
/// (`1..`, as the plan's `ProcessSideOutput` nodes read them: the operator has as many
/// as the plan reads; other indices are dropped, as Flink drops records for a tag
/// nobody reads).
pub struct Emit<'a, R> {
    pub main: &'a mut Vec<R>,
    pub side: &'a mut Vec<(usize, R)>,
}

/// A process function, made per worker by a [`ProcessFactory`] with the context it
/// reads (keep it: state objects and timers go through it). The operator sets the
/// context before each call.
pub trait Processor<R>: 'static {
    /// One record (`process_element`; of the first input, `process_element1`, on
    /// connected streams).
    fn process(&mut self, value: R, out: &mut Emit<'_, R>) -> UdfResult<()>;

    /// One record of the second input of connected streams (`process_element2` of a
    /// `KeyedCoProcessFunction`): same context, state and timers as the first input's.
    fn process_second(&mut self, _value: R, _out: &mut Emit<'_, R>) -> UdfResult<()> {
        Err(UdfError::internal("a one-input process function was given a second input"))
    }

    /// A timer of the current key fired at `timestamp` (`on_timer`).
    fn on_timer(&mut self, _timestamp: i64, _domain: TimeDomain, _out: &mut Emit<'_, R>) -> UdfResult<()> {
        Ok(())
    }

    /// Called once when the input has ended and every timer has fired.
    fn close(&mut self) -> UdfResult<()> {
        Ok(())
    }
}

/// Makes a worker's process function around its context; registering state (in
/// `open()`) happens here, so a descriptor error fails the job when it starts.
pub type ProcessFactory<R> =
    Arc<dyn Fn(&WorkerContext, &SharedContext<R>) -> UdfResult<Box<dyn Processor<R>>> + Send + Sync>;
