"""Keyed state: descriptors, time-to-live settings and the state interfaces, with
``pyflink.datastream.state``'s names.

A function applied to a keyed stream gets its state in ``open(runtime_context)``::

    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.LONG()))

Descriptors only describe a state (its name, its kind, its reduce or aggregate
function, its TTL); the engine owns the values, per key. Type information is accepted
and kept for PyFlink scripts but not used: state holds Python objects as they are.
"""

from __future__ import annotations

import abc
import enum

from ._plan import RuntimeContext, find_method
from .windowing import Time, to_millis

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

    from .windowing import TimeSpan

__all__ = [
    "State", "ValueState", "AppendingState", "MergingState", "ListState", "MapState", "ReducingState",
    "AggregatingState", "StateDescriptor", "ValueStateDescriptor", "ListStateDescriptor", "MapStateDescriptor",
    "ReducingStateDescriptor", "AggregatingStateDescriptor", "StateTtlConfig",
]

# -- the state interfaces (the engine implements them) ------------------------------------------


class State(abc.ABC):
    """Base of the keyed state interfaces: each call sees the state of the key of the
    record (or timer) being processed."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Removes the current key's value."""


class ValueState(State):
    """One value per key."""

    @abc.abstractmethod
    def value(self) -> Any:
        """The current key's value, or None if it has none (or it expired)."""

    @abc.abstractmethod
    def update(self, value: Any) -> None:
        """Sets the current key's value."""


class AppendingState(State):
    """State that values are added to and read back as one result."""

    @abc.abstractmethod
    def get(self) -> Any:
        """The current key's result (None if nothing was added)."""

    @abc.abstractmethod
    def add(self, value: Any) -> None:
        """Adds ``value`` to the current key's state."""


class MergingState(AppendingState):
    """Appending state that the engine can merge (session windows' per-window state)."""


class ListState(MergingState):
    """A list per key."""

    @abc.abstractmethod
    def get(self) -> Iterable[Any]:
        """The current key's elements (empty if none)."""

    @abc.abstractmethod
    def add(self, value: Any) -> None:
        """Appends ``value``."""

    @abc.abstractmethod
    def add_all(self, values: List[Any]) -> None:
        """Appends every element of ``values``."""

    @abc.abstractmethod
    def update(self, values: List[Any]) -> None:
        """Replaces the current key's elements by ``values``."""

    def __iter__(self) -> Iterator[Any]:
        return iter(self.get())


class ReducingState(MergingState):
    """One value per key, combined with each added value by the descriptor's reduce
    function."""


class AggregatingState(MergingState):
    """An accumulator per key, updated by the descriptor's ``AggregateFunction``;
    ``get()`` returns its ``get_result``."""


class MapState(State):
    """A dict per key."""

    @abc.abstractmethod
    def get(self, key: Any) -> Any:
        """The value under ``key``, or None."""

    @abc.abstractmethod
    def put(self, key: Any, value: Any) -> None:
        """Sets ``key`` to ``value``."""

    @abc.abstractmethod
    def put_all(self, dict_value: Dict[Any, Any]) -> None:
        """Sets every key of ``dict_value``."""

    @abc.abstractmethod
    def remove(self, key: Any) -> None:
        """Removes ``key`` (nothing if absent)."""

    @abc.abstractmethod
    def contains(self, key: Any) -> bool:
        """Whether ``key`` is there."""

    @abc.abstractmethod
    def items(self) -> Iterable[Tuple[Any, Any]]:
        """The ``(key, value)`` pairs."""

    @abc.abstractmethod
    def keys(self) -> Iterable[Any]:
        """The keys."""

    @abc.abstractmethod
    def values(self) -> Iterable[Any]:
        """The values."""

    @abc.abstractmethod
    def is_empty(self) -> bool:
        """Whether the current key's dict is empty."""

    def __getitem__(self, key: Any) -> Any:
        return self.get(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __delitem__(self, key: Any) -> None:
        self.remove(key)

    def __contains__(self, key: Any) -> bool:
        return self.contains(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())


# -- time to live -------------------------------------------------------------------------------


class _UpdateType(enum.Enum):
    """When a value's time to live starts again."""

    #: TTL is off: values never expire.
    Disabled = 0
    #: On creation and on every write.
    OnCreateAndWrite = 1
    #: On creation, on every write and on every read.
    OnReadAndWrite = 2


class _StateVisibility(enum.Enum):
    """Whether an expired value that is still stored may be read."""

    ReturnExpiredIfNotCleanedUp = 0
    NeverReturnExpired = 1


class _TtlTimeCharacteristic(enum.Enum):
    """The clock TTL follows: processing time only (as Flink)."""

    ProcessingTime = 0


class _CleanupStrategies:
    """How expired values are removed besides being hidden on read (``StateTtlConfig.CleanupStrategies``)."""

    class Strategies(enum.Enum):
        FULL_STATE_SCAN_SNAPSHOT = 0
        INCREMENTAL_CLEANUP = 1
        ROCKSDB_COMPACTION_FILTER = 2

    class IncrementalCleanupStrategy:
        """Check ``cleanup_size`` keys per state access (and per record if asked)."""

        def __init__(self, cleanup_size: int, run_cleanup_for_every_record: bool) -> None:
            self._cleanup_size = cleanup_size
            self._run_cleanup_for_every_record = run_cleanup_for_every_record

        def get_cleanup_size(self) -> int:
            return self._cleanup_size

        def run_cleanup_for_every_record(self) -> bool:
            return self._run_cleanup_for_every_record

        def __repr__(self) -> str:
            return f"IncrementalCleanupStrategy({self._cleanup_size}, {self._run_cleanup_for_every_record})"

    class RocksdbCompactFilterCleanupStrategy:
        """Accepted for PyFlink scripts; ferroflow has no RocksDB backend, so it changes nothing."""

        def __init__(self, query_time_after_num_entries: int, periodic_compaction_time: Any = None) -> None:
            self._query_time_after_num_entries = query_time_after_num_entries
            self._periodic_compaction_time = periodic_compaction_time

        def get_query_time_after_num_entries(self) -> int:
            return self._query_time_after_num_entries

        def get_periodic_compaction_time(self) -> Any:
            return self._periodic_compaction_time

    def __init__(self, strategies: Dict[Any, Any], is_cleanup_in_background: bool) -> None:
        self._strategies = dict(strategies)
        self._is_cleanup_in_background = is_cleanup_in_background

    def is_cleanup_in_background(self) -> bool:
        return self._is_cleanup_in_background

    def in_full_snapshot(self) -> bool:
        return self.Strategies.FULL_STATE_SCAN_SNAPSHOT in self._strategies

    def get_incremental_cleanup_strategy(self) -> Optional["_CleanupStrategies.IncrementalCleanupStrategy"]:
        """The incremental strategy if one was asked for (or, as in Flink, the default
        one when cleanup in background is on)."""
        found = self._strategies.get(self.Strategies.INCREMENTAL_CLEANUP)
        if found is None and self._is_cleanup_in_background:
            return self.IncrementalCleanupStrategy(5, False)
        return found

    def get_rocksdb_compact_filter_cleanup_strategy(self) -> Optional[Any]:
        return self._strategies.get(self.Strategies.ROCKSDB_COMPACTION_FILTER)


def _positive_int(n: Any, what: str) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{what} must be an int >= 1, got {n!r}")
    return n


class _TtlBuilder:
    """``StateTtlConfig.new_builder(ttl)``: settings, then ``build()``."""

    def __init__(self, ttl: TimeSpan) -> None:
        self._ttl = _ttl_of(ttl)
        self._update_type = _UpdateType.OnCreateAndWrite
        self._state_visibility = _StateVisibility.NeverReturnExpired
        self._ttl_time_characteristic = _TtlTimeCharacteristic.ProcessingTime
        self._is_cleanup_in_background = True
        self._strategies: Dict[Any, Any] = {}

    def set_update_type(self, update_type: _UpdateType) -> "_TtlBuilder":
        """When the time to live starts again (``StateTtlConfig.UpdateType``)."""
        if not isinstance(update_type, _UpdateType):
            raise TypeError(f"set_update_type() takes a StateTtlConfig.UpdateType, got {update_type!r}")
        if update_type is _UpdateType.Disabled:
            raise ValueError("set_update_type(UpdateType.Disabled): to keep values forever, do not call "
                             "enable_time_to_live() on the descriptor")
        self._update_type = update_type
        return self

    def update_ttl_on_create_and_write(self) -> "_TtlBuilder":
        return self.set_update_type(_UpdateType.OnCreateAndWrite)

    def update_ttl_on_read_and_write(self) -> "_TtlBuilder":
        return self.set_update_type(_UpdateType.OnReadAndWrite)

    def set_state_visibility(self, state_visibility: _StateVisibility) -> "_TtlBuilder":
        """Whether expired values not yet removed may be read (``StateTtlConfig.StateVisibility``)."""
        if not isinstance(state_visibility, _StateVisibility):
            raise TypeError(f"set_state_visibility() takes a StateTtlConfig.StateVisibility, got {state_visibility!r}")
        self._state_visibility = state_visibility
        return self

    def return_expired_if_not_cleaned_up(self) -> "_TtlBuilder":
        return self.set_state_visibility(_StateVisibility.ReturnExpiredIfNotCleanedUp)

    def never_return_expired(self) -> "_TtlBuilder":
        return self.set_state_visibility(_StateVisibility.NeverReturnExpired)

    def set_ttl_time_characteristic(self, ttl_time_characteristic: _TtlTimeCharacteristic) -> "_TtlBuilder":
        """Processing time is the only clock TTL follows (as in Flink)."""
        if not isinstance(ttl_time_characteristic, _TtlTimeCharacteristic):
            raise TypeError("set_ttl_time_characteristic() takes StateTtlConfig.TtlTimeCharacteristic.ProcessingTime, "
                            f"got {ttl_time_characteristic!r}")
        self._ttl_time_characteristic = ttl_time_characteristic
        return self

    def use_processing_time(self) -> "_TtlBuilder":
        return self.set_ttl_time_characteristic(_TtlTimeCharacteristic.ProcessingTime)

    def cleanup_full_snapshot(self) -> "_TtlBuilder":
        """Leaves expired values out of full snapshots (once checkpoints exist)."""
        self._strategies[_CleanupStrategies.Strategies.FULL_STATE_SCAN_SNAPSHOT] = None
        return self

    def cleanup_incrementally(self, cleanup_size: int, run_cleanup_for_every_record: bool) -> "_TtlBuilder":
        """Checks ``cleanup_size`` keys for expired values on every state access, and
        also on every record if ``run_cleanup_for_every_record``."""
        size = _positive_int(cleanup_size, "cleanup_incrementally(): the cleanup size")
        if not isinstance(run_cleanup_for_every_record, bool):
            raise TypeError("cleanup_incrementally(): run_cleanup_for_every_record must be a bool, "
                            f"got {run_cleanup_for_every_record!r}")
        self._strategies[_CleanupStrategies.Strategies.INCREMENTAL_CLEANUP] = \
            _CleanupStrategies.IncrementalCleanupStrategy(size, run_cleanup_for_every_record)
        return self

    def cleanup_in_rocksdb_compact_filter(self, query_time_after_num_entries: int,
                                          periodic_compaction_time: Any = None) -> "_TtlBuilder":
        """Accepted for PyFlink scripts: ferroflow has no RocksDB backend, so it changes nothing."""
        n = _positive_int(query_time_after_num_entries, "cleanup_in_rocksdb_compact_filter(): the entry count")
        self._strategies[_CleanupStrategies.Strategies.ROCKSDB_COMPACTION_FILTER] = \
            _CleanupStrategies.RocksdbCompactFilterCleanupStrategy(n, periodic_compaction_time)
        return self

    def disable_cleanup_in_background(self) -> "_TtlBuilder":
        """Removes expired values only when they are read (and in full snapshots if asked)."""
        self._is_cleanup_in_background = False
        return self

    def set_ttl(self, ttl: TimeSpan) -> "_TtlBuilder":
        self._ttl = _ttl_of(ttl)
        return self

    def build(self) -> "StateTtlConfig":
        return StateTtlConfig(self._update_type, self._state_visibility, self._ttl_time_characteristic, self._ttl,
                              _CleanupStrategies(self._strategies, self._is_cleanup_in_background))


def _ttl_of(ttl: Any) -> Time:
    """A positive time to live as a ``Time`` (``Time``, ``Duration``, timedelta or ms)."""
    return Time.milliseconds(to_millis(ttl, "StateTtlConfig: the time to live"))


class StateTtlConfig:
    """How long a state's values live after they were last written (or read):
    ``StateTtlConfig.new_builder(Time.seconds(10)).update_ttl_on_read_and_write().build()``,
    then ``descriptor.enable_time_to_live(config)``. Time to live follows processing
    time (a ``TestSource``'s manual clock under one)."""

    UpdateType = _UpdateType
    StateVisibility = _StateVisibility
    TtlTimeCharacteristic = _TtlTimeCharacteristic
    CleanupStrategies = _CleanupStrategies
    Builder = _TtlBuilder

    def __init__(self, update_type: _UpdateType, state_visibility: _StateVisibility,
                 ttl_time_characteristic: _TtlTimeCharacteristic, ttl: Time, cleanup_strategies: _CleanupStrategies) -> None:
        self._update_type = update_type
        self._state_visibility = state_visibility
        self._ttl_time_characteristic = ttl_time_characteristic
        self._ttl = ttl
        self._cleanup_strategies = cleanup_strategies

    @staticmethod
    def new_builder(ttl: TimeSpan) -> _TtlBuilder:
        """A builder for values living ``ttl`` (a ``Time``, ``Duration``, timedelta or ms; > 0)."""
        return _TtlBuilder(ttl)

    def get_update_type(self) -> _UpdateType:
        return self._update_type

    def get_state_visibility(self) -> _StateVisibility:
        return self._state_visibility

    def get_ttl(self) -> Time:
        return self._ttl

    def get_ttl_time_characteristic(self) -> _TtlTimeCharacteristic:
        return self._ttl_time_characteristic

    def is_enabled(self) -> bool:
        return self._update_type is not _UpdateType.Disabled

    def get_cleanup_strategies(self) -> _CleanupStrategies:
        return self._cleanup_strategies

    def __repr__(self) -> str:
        return (f"StateTtlConfig(update_type={self._update_type.name}, state_visibility={self._state_visibility.name}, "
                f"ttl={self._ttl!r})")


# -- descriptors ------------------------------------------------------------------------------------


class StateDescriptor:
    """Names a keyed state and says its kind. Within one function, a name stands for
    one state: using it again with another kind is an error when the job starts."""

    #: The state's kind, as errors name it ("value", "list"...).
    _kind = ""

    def __init__(self, name: str, type_info: Any = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{type(self).__name__}() takes a non-empty str name, got {name!r}")
        self.name = name
        #: Accepted (PyFlink's Types...) and kept; state holds Python objects whatever it says.
        self.type_info = type_info
        self._ttl_config: Optional[StateTtlConfig] = None

    def get_name(self) -> str:
        return self.name

    def enable_time_to_live(self, ttl_config: StateTtlConfig) -> None:
        """Lets values expire as ``ttl_config`` says (see ``StateTtlConfig``)."""
        if not isinstance(ttl_config, StateTtlConfig):
            raise TypeError("enable_time_to_live() takes a StateTtlConfig, e.g. "
                            f"StateTtlConfig.new_builder(Time.seconds(10)).build(), got {ttl_config!r}")
        self._ttl_config = ttl_config

    def get_ttl_config(self) -> Optional[StateTtlConfig]:
        """The time-to-live settings, or None (values never expire)."""
        return self._ttl_config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class ValueStateDescriptor(StateDescriptor):
    """A ``ValueState``: ``runtime_context.get_state(ValueStateDescriptor(name, type_info))``."""

    _kind = "value"

    def __init__(self, name: str, value_type_info: Any = None) -> None:
        super().__init__(name, value_type_info)


class ListStateDescriptor(StateDescriptor):
    """A ``ListState``: ``runtime_context.get_list_state(ListStateDescriptor(name, elem_type_info))``."""

    _kind = "list"

    def __init__(self, name: str, elem_type_info: Any = None) -> None:
        super().__init__(name, elem_type_info)
        self.elem_type_info = elem_type_info


class MapStateDescriptor(StateDescriptor):
    """A ``MapState``: ``runtime_context.get_map_state(MapStateDescriptor(name, key_type_info,
    value_type_info))``. Map keys follow Python's ``==`` and ``hash``."""

    _kind = "map"

    def __init__(self, name: str, key_type_info: Any = None, value_type_info: Any = None) -> None:
        super().__init__(name, (key_type_info, value_type_info))
        self.key_type_info = key_type_info
        self.value_type_info = value_type_info


class ReducingStateDescriptor(StateDescriptor):
    """A ``ReducingState``: each ``add(v)`` stores ``reduce_function(current, v)``; the
    function is a ``ReduceFunction`` or a plain ``f(value1, value2)``."""

    _kind = "reducing"

    def __init__(self, name: str, reduce_function: Any, type_info: Any = None) -> None:
        super().__init__(name, type_info)
        if find_method(reduce_function, ("reduce",)) is None and not callable(reduce_function):
            raise TypeError("ReducingStateDescriptor() takes a ReduceFunction or a function f(value1, value2), "
                            f"got {reduce_function!r}")
        self._reduce_function = reduce_function

    def get_reduce_function(self) -> Any:
        return self._reduce_function


class AggregatingStateDescriptor(StateDescriptor):
    """An ``AggregatingState``: an ``AggregateFunction``'s accumulator per key
    (``create_accumulator``, ``add``, ``get_result``; ``merge`` for merging windows)."""

    _kind = "aggregating"

    def __init__(self, name: str, agg_function: Any, state_type_info: Any = None) -> None:
        super().__init__(name, state_type_info)
        missing = [m for m in ("create_accumulator", "add", "get_result")
                   if find_method(agg_function, (m, _java_name(m))) is None]
        if missing:
            raise TypeError(f"AggregatingStateDescriptor() takes an AggregateFunction; {type(agg_function).__name__} "
                            "does not implement " + ", ".join(f"{m}()" for m in missing))
        self._agg_function = agg_function

    def get_agg_function(self) -> Any:
        return self._agg_function


def _java_name(name: str) -> str:
    """``create_accumulator`` -> ``createAccumulator`` (talk-era method names)."""
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)



# -- the engine's side: a keyed runtime context ---------------------------------------------


_GETTERS = {
    "get_state": ValueStateDescriptor,
    "get_list_state": ListStateDescriptor,
    "get_map_state": MapStateDescriptor,
    "get_reducing_state": ReducingStateDescriptor,
    "get_aggregating_state": AggregatingStateDescriptor,
}


def _ttl_settings(config: Optional[StateTtlConfig]) -> Any:
    """A TTL config as the engine reads it (see ``StateStore`` in the binding): None,
    or (ttl ms, restart on read, return expired, incremental (size, every record) or
    None, full snapshot)."""
    if config is None or not config.is_enabled():
        return None
    cleanup = config.get_cleanup_strategies()
    incremental = cleanup.get_incremental_cleanup_strategy()
    return (config.get_ttl().to_milliseconds(),
            config.get_update_type() is _UpdateType.OnReadAndWrite,
            config.get_state_visibility() is _StateVisibility.ReturnExpiredIfNotCleanedUp,
            None if incremental is None else (incremental.get_cleanup_size(),
                                              incremental.run_cleanup_for_every_record()),
            cleanup.in_full_snapshot())


def _registered_with_abcs(engine: Any) -> None:
    """Makes the engine's state classes count as ``ValueState``... for ``isinstance``."""
    for impl, interface in ((engine.ValueStateImpl, ValueState), (engine.ListStateImpl, ListState),
                            (engine.MapStateImpl, MapState), (engine.ReducingStateImpl, ReducingState),
                            (engine.AggregatingStateImpl, AggregatingState)):
        interface.register(impl)


class KeyedRuntimeContext(RuntimeContext):
    """The runtime context of a function on a keyed stream: its state getters return
    state objects of the engine, scoped to the key being processed."""

    _abcs_done = False

    def __init__(self, index: int, count: int, store: Any, task_name: str = "") -> None:
        super().__init__(index, count, task_name)
        self._store = store
        if not KeyedRuntimeContext._abcs_done:
            from . import _engine

            _registered_with_abcs(_engine)
            KeyedRuntimeContext._abcs_done = True

    def _check(self, getter: str, descriptor: Any) -> Any:
        want = _GETTERS[getter]
        if not isinstance(descriptor, want):
            raise TypeError(f"{getter}() takes a {want.__name__}, got {descriptor!r}")
        return descriptor

    def get_state(self, state_descriptor: Any) -> ValueState:
        d = self._check("get_state", state_descriptor)
        return self._store.value_state(d.name, _ttl_settings(d.get_ttl_config()))

    def get_list_state(self, state_descriptor: Any) -> ListState:
        d = self._check("get_list_state", state_descriptor)
        return self._store.list_state(d.name, _ttl_settings(d.get_ttl_config()))

    def get_map_state(self, state_descriptor: Any) -> MapState:
        d = self._check("get_map_state", state_descriptor)
        return self._store.map_state(d.name, _ttl_settings(d.get_ttl_config()))

    def get_reducing_state(self, state_descriptor: Any) -> ReducingState:
        d = self._check("get_reducing_state", state_descriptor)
        assert isinstance(d, ReducingStateDescriptor)
        f = d.get_reduce_function()
        reduce = find_method(f, ("reduce",)) or f
        return self._store.reducing_state(d.name, _ttl_settings(d.get_ttl_config()), reduce)

    def state_of(self, state_descriptor: StateDescriptor) -> State:
        """The state object ``state_descriptor`` describes, from the getter of its kind
        (how ``apply_to_keyed_state`` makes the state it hands over)."""
        for getter, kind in _GETTERS.items():
            if isinstance(state_descriptor, kind):
                state: State = getattr(self, getter)(state_descriptor)
                return state
        raise TypeError(f"not a state descriptor: {state_descriptor!r}")

    def get_aggregating_state(self, state_descriptor: Any) -> AggregatingState:
        d = self._check("get_aggregating_state", state_descriptor)
        assert isinstance(d, AggregatingStateDescriptor)
        f = d.get_agg_function()
        methods = [find_method(f, (m, _java_name(m))) for m in ("create_accumulator", "add", "get_result", "merge")]
        functions = (methods[0], methods[1], methods[2], methods[3])
        return self._store.aggregating_state(d.name, _ttl_settings(d.get_ttl_config()), functions)
