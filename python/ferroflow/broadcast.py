"""Broadcast state, as Flink has it: ``stream.broadcast(MapStateDescriptor, ...)`` is a
``BroadcastStream``; ``other.connect(broadcast_stream).process(f)`` runs a
``BroadcastProcessFunction`` (or, on a keyed ``other``, a
``KeyedBroadcastProcessFunction``) on every worker of ``other``.

Every worker sees every broadcast element (the stream is broadcast), so the broadcast
state, a map per descriptor held by the engine for each operator instance (Flink's
operator state), is the same on every worker as long as only
``process_broadcast_element`` changes it: the engine refuses a write from
``process_element`` or ``on_timer``. The engine runs the function as a process operator
with two inputs (``_nodes.Process``): keyed state and timers for the keyed side, the
broadcast side's records without a key; there ``ctx.apply_to_keyed_state`` visits every
key's state.
"""

from __future__ import annotations

import abc

from . import _nodes
from ._errors import InvalidUseError
from ._plan import find_method, label_of, positional_arity, with_collector
from ._process import ProcessUdf
from .functions import (BroadcastProcessFunction, KeyedBroadcastProcessFunction, _KeyedBroadcastContext,
                        _KeyedBroadcastOnTimerContext)
from .state import KeyedRuntimeContext, MapStateDescriptor, StateDescriptor

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

    from .datastream import DataStream
    from .timerservice import TimerService

__all__ = ["BroadcastStream", "BroadcastConnectedStream", "BroadcastState", "ReadOnlyBroadcastState"]


class BroadcastStream:
    """A stream sent to every worker, with the broadcast state descriptors it fills
    (``stream.broadcast(descriptor, ...)``); connect a stream to it."""

    def __init__(self, stream: "DataStream", descriptors: Tuple[MapStateDescriptor, ...]) -> None:
        self._stream = stream
        self._descriptors = descriptors


class BroadcastConnectedStream:
    """A stream connected to a ``BroadcastStream`` (``stream.connect(broadcast_stream)``)."""

    def __init__(self, stream: "DataStream", broadcast: BroadcastStream) -> None:
        self._stream = stream
        self._broadcast = broadcast
        self._keyed = isinstance(stream._env._nodes[stream._node].kind, (_nodes.KeyBy, _nodes.KeyByField))

    def process(self, func: Any, output_type: Any = None) -> "DataStream":
        """``func.process_element(value, ctx)`` for the stream's records (broadcast state
        read-only: ``ctx.get_broadcast_state(descriptor)``) and
        ``func.process_broadcast_element(value, ctx)`` for the broadcast ones (read and
        write); both yield outputs (``yield output_tag, value`` for a side output). On a
        keyed stream a ``KeyedBroadcastProcessFunction`` also has keyed state (from
        ``open``), timers and ``on_timer(timestamp, ctx)`` on the keyed side."""
        if isinstance(func, KeyedBroadcastProcessFunction) and not self._keyed:
            raise TypeError("process(): a KeyedBroadcastProcessFunction needs a keyed stream: call key_by() "
                            "before connect(broadcast_stream), or pass a BroadcastProcessFunction")
        if isinstance(func, BroadcastProcessFunction) and self._keyed:
            raise TypeError("process(): a keyed stream connected to a broadcast stream takes a "
                            "KeyedBroadcastProcessFunction")
        udf = BroadcastProcessUdf(func, self._broadcast._descriptors, self._keyed)
        stream = self._stream._combine(_nodes.Process(udf), label_of(func), self._broadcast._stream, "process")
        return stream._declare(output_type)


class ReadOnlyBroadcastState(abc.ABC):
    """A broadcast state as ``process_element`` and ``on_timer`` see it: reads; a write
    raises (only ``process_broadcast_element`` may change it, so that every worker
    keeps the same state). Keys follow Python's ``==`` as a ``MapState``'s do: str,
    int, float, bool, None, bytes and tuples of these."""

    @abc.abstractmethod
    def get(self, key: Any) -> Any:
        """The value under ``key``, or None."""

    @abc.abstractmethod
    def contains(self, key: Any) -> bool:
        """Whether ``key`` has a value."""

    @abc.abstractmethod
    def keys(self) -> List[Any]:
        """The keys, in the same order on every worker."""

    @abc.abstractmethod
    def values(self) -> List[Any]:
        """The values, in the keys' order."""

    @abc.abstractmethod
    def items(self) -> List[Tuple[Any, Any]]:
        """The (key, value) pairs, in the keys' order."""

    @abc.abstractmethod
    def immutable_entries(self) -> List[Tuple[Any, Any]]:
        """Flink's name for ``items()``."""

    @abc.abstractmethod
    def is_empty(self) -> bool:
        """Whether it holds nothing."""

    def __contains__(self, key: Any) -> bool:
        return self.contains(key)

    def __getitem__(self, key: Any) -> Any:
        return self.get(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())


class BroadcastState(ReadOnlyBroadcastState):
    """A broadcast state as ``process_broadcast_element`` sees it: reads and writes.
    The engine holds it (operator state: one copy per worker, which a checkpoint
    snapshots)."""

    @abc.abstractmethod
    def put(self, key: Any, value: Any) -> None:
        """Sets the value under ``key``."""

    @abc.abstractmethod
    def put_all(self, dict_value: Dict[Any, Any]) -> None:
        """Sets every entry of ``dict_value``."""

    @abc.abstractmethod
    def remove(self, key: Any) -> None:
        """Removes ``key``'s value, if any."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Removes every entry."""

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __delitem__(self, key: Any) -> None:
        self.remove(key)


_impl_registered = False


def _register_impl() -> None:
    """Makes the engine's broadcast state count as a ``BroadcastState`` (and so a
    ``ReadOnlyBroadcastState``) for ``isinstance``: one object serves both sides."""
    global _impl_registered
    if not _impl_registered:
        from . import _engine

        BroadcastState.register(_engine.BroadcastStateImpl)
        _impl_registered = True


class _Context(_KeyedBroadcastContext, _KeyedBroadcastOnTimerContext):
    """``ctx`` of either side (one object per side and worker, reused): the engine's
    process context for the record (timestamp, clocks, key and timers on the keyed
    side), the broadcast states (the engine refuses writes but from
    ``process_broadcast_element``) and, on a keyed stream, every key's state."""

    __slots__ = ("_inner", "_states", "_store", "_runtime")

    def __init__(self, states: Dict[str, BroadcastState], store: Any, runtime: Any) -> None:
        self._inner: Any = None
        self._states = states
        self._store = store
        self._runtime = runtime

    def get_broadcast_state(self, state_descriptor: Any) -> Any:
        name = getattr(state_descriptor, "name", state_descriptor)
        try:
            return self._states[name]
        except KeyError:
            raise InvalidUseError(f"get_broadcast_state({state_descriptor!r}): not a descriptor given to "
                                 f"broadcast(); those are {sorted(self._states)}") from None

    def timestamp(self) -> Optional[int]:
        return self._inner.timestamp()

    def current_processing_time(self) -> int:
        return self._inner.current_processing_time()

    def current_watermark(self) -> int:
        return self._inner.current_watermark()

    def timer_service(self) -> "TimerService":
        return self._inner

    def get_current_key(self) -> Any:
        return self._inner.get_current_key()

    def time_domain(self) -> Any:
        return self._inner.time_domain()

    def apply_to_keyed_state(self, state_descriptor: Any, function: Callable[[Any, Any], Any]) -> None:
        """``function(key, state)`` for every key of this worker that holds
        ``state_descriptor``'s keyed state (registered in ``open()``): ``state`` reads
        and writes that key's state, so updates and ``clear()`` stick. Keys come back
        from their encoding: equal values (``True`` as 1, ``2.0`` as 2)."""
        runtime = self._runtime
        if not isinstance(runtime, KeyedRuntimeContext):
            raise InvalidUseError("apply_to_keyed_state() needs keyed state: use a KeyedBroadcastProcessFunction "
                                 "on a keyed stream (key_by() before connect(broadcast_stream))")
        if not isinstance(state_descriptor, StateDescriptor):
            raise TypeError(f"apply_to_keyed_state() takes a state descriptor, got {state_descriptor!r}")
        self._store.apply_to_keyed_state(state_descriptor.name, lambda: runtime.state_of(state_descriptor),
                                         function)


def _with_context(method: Callable, ctx: _Context) -> Callable:
    """``method(value, ctx)`` as the engine calls it, with ``ctx`` wrapping its context."""

    def call(value: Any, inner: Any) -> Any:
        ctx._inner = inner
        return method(value, ctx)
    return call


class BroadcastProcessUdf(ProcessUdf):
    """A ``(Keyed)BroadcastProcessFunction``: ``process_element`` for the first input,
    ``process_broadcast_element`` for the broadcast one, ``on_timer``; each worker's
    copy gets the broadcast states (the engine's, empty at the start)."""

    def __init__(self, fn: Any, descriptors: Tuple[MapStateDescriptor, ...], keyed: bool) -> None:
        super().__init__(fn)
        self.descriptors = descriptors
        self.keyed = keyed
        self._broadcast_method(fn)  # fail at plan time

    @staticmethod
    def _broadcast_method(obj: Any) -> Callable:
        call = find_method(obj, ("process_broadcast_element", "processBroadcastElement"))
        if call is None:
            raise TypeError("connect(broadcast_stream).process() takes a BroadcastProcessFunction or "
                            "KeyedBroadcastProcessFunction (process_element(value, ctx) and "
                            f"process_broadcast_element(value, ctx)), got {type(obj).__name__}")
        return with_collector(call, 2) if positional_arity(call) == 3 else call

    def methods_of(self, obj: Any, store: Any = None,
                   context: Any = None) -> Tuple[Callable, Optional[Callable], Optional[Callable]]:
        process, on_timer, _ = super().methods_of(obj)
        assert store is not None, "bound on a worker, with its state store"
        _register_impl()
        states: Dict[str, BroadcastState] = {d.name: store.broadcast_state(d.name) for d in self.descriptors}
        timer = None
        if on_timer is not None:
            timer = _with_context(on_timer, _Context(states, store, context))
        return (_with_context(process, _Context(states, store, context)), timer,
                _with_context(self._broadcast_method(obj), _Context(states, store, context)))


def broadcast_stream(stream: "DataStream", descriptors: Tuple[Any, ...]) -> BroadcastStream:
    """``stream.broadcast(descriptor, ...)``: checks the descriptors, spreads the stream
    to every worker."""
    for d in descriptors:
        if not isinstance(d, MapStateDescriptor):
            raise TypeError(f"broadcast() takes MapStateDescriptors (broadcast state is a map), got {d!r}")
    names = [d.name for d in descriptors]
    if len(set(names)) != len(names):
        raise ValueError(f"broadcast(): each descriptor needs its own name, got {names}")
    return BroadcastStream(stream._partition("broadcast"), tuple(descriptors))
