"""Connected streams (``first.connect(second)``), as PyFlink has them: one function with
a method per input, ``map1``/``map2`` (``CoMapFunction``), ``flat_map1``/``flat_map2``
(``CoFlatMapFunction``) or ``process_element1``/``process_element2``
(``CoProcessFunction``). One object serves both inputs on each worker, so what
``map1`` keeps in ``self`` ``map2`` sees. Outputs carry their input record's
timestamp; the operator's watermark is the least of both inputs'.

``key_by(key_selector1, key_selector2)`` partitions both inputs by key, so the records
of one key from either input meet on one worker (and, in order, in one function
object); connecting two keyed streams does the same. On keyed inputs a co-map or
co-flat-map function with ``open(runtime_context)`` gets keyed state there, shared by
both inputs' records of a key (it runs on the keyed co-process operator, as
``KeyedStream.map`` runs such functions on the keyed process operator).
"""

from __future__ import annotations

from . import _nodes
from ._plan import Udf, find_method, label_of, positional_arity, with_collector
from ._process import CoProcessUdf, KeyedCoStep, opens
from .functions import BroadcastProcessFunction, KeyedBroadcastProcessFunction, KeyedCoProcessFunction

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Optional, Tuple

    from .datastream import DataStream

__all__ = ["ConnectedStreams"]


class ConnectedStreams:
    """Two streams handled by one function with a method per input (``connect``)."""

    def __init__(self, first: "DataStream", second: "DataStream") -> None:
        self._env = first._env
        self.stream1 = first
        self.stream2 = second
        #: Both inputs keyed (as the engine sees it: both read key_by nodes): a key's
        #: records of either input meet on one worker.
        self._keyed = all(isinstance(self._env._nodes[s._node].kind, (_nodes.KeyBy, _nodes.KeyByField))
                          for s in (first, second))

    def key_by(self, key_selector1: Any, key_selector2: Any, key_type: Any = None) -> "ConnectedStreams":
        """Partitions the first input by ``key_selector1`` and the second by
        ``key_selector2`` (functions, ``KeySelector``s or fields, as ``key_by`` takes),
        so that records with equal keys (compared as ``key_by`` compares them) meet on
        the same worker."""
        return ConnectedStreams(self.stream1.key_by(key_selector1), self.stream2.key_by(key_selector2))

    def map(self, func: Any, output_type: Any = None) -> "DataStream":
        """One output per record: ``func.map1(value)`` for the first input's records,
        ``func.map2(value)`` for the second's (a ``CoMapFunction``). On keyed inputs
        its ``open(runtime_context)`` may get keyed state (``get_state(...)``), shared by
        both inputs' records of a key."""
        udf = CoUdf(func, "map", ("map1",), ("map2",), "CoMapFunction")
        return self._apply("co_map", udf, "map")._declare(output_type)

    def flat_map(self, func: Any, output_type: Any = None) -> "DataStream":
        """Zero or more outputs per record: ``func.flat_map1(value)`` /
        ``flat_map2(value)`` return an iterable (a generator is fine) or None; the
        collector style ``flatMap1(value, collector)`` works too (a
        ``CoFlatMapFunction``). On keyed inputs its ``open(runtime_context)`` may get
        keyed state, shared by both inputs' records of a key."""
        udf = CoUdf(func, "flat_map", ("flat_map1", "flatMap1"), ("flat_map2", "flatMap2"), "CoFlatMapFunction",
                    collector_arity=1)
        return self._apply("co_flat_map", udf, "flat_map")._declare(output_type)

    def process(self, func: Any, output_type: Any = None) -> "DataStream":
        """``func.process_element1(value, ctx)`` / ``process_element2(value, ctx)`` of a
        ``CoProcessFunction`` yield (or return an iterable of) outputs; ``ctx.timestamp()``
        is the record's timestamp and ``ctx.timer_service()`` reads the clocks.

        On keyed inputs a ``KeyedCoProcessFunction`` also gets keyed state (from
        ``open(runtime_context)``) and timers (``on_timer(timestamp, ctx)``), both
        shared by the two inputs' records of a key, the context of a
        ``KeyedProcessFunction`` (``get_current_key()``, side outputs with
        ``yield output_tag, value``), and the records of both inputs in watermark order."""
        if isinstance(func, KeyedCoProcessFunction):
            if not self._keyed:
                raise TypeError("process(): a KeyedCoProcessFunction needs keyed inputs: call "
                                "key_by(key_selector1, key_selector2) first, or pass a CoProcessFunction")
            udf = CoProcessUdf(func, "KeyedCoProcessFunction")
            return self.stream1._combine(_nodes.Process(udf), label_of(func), self.stream2, "process")._declare(output_type)
        if isinstance(func, (BroadcastProcessFunction, KeyedBroadcastProcessFunction)):
            raise TypeError(f"process({type(func).__name__}): a broadcast process function reads a broadcast "
                            "stream: stream.connect(other.broadcast(map_state_descriptor)).process(func)")
        # A process operator with two plain inputs (as a BroadcastProcessFunction's):
        # the engine's context (clocks, no timers) and side outputs.
        udf = CoProcessUdf(func, "CoProcessFunction")
        return self.stream1._combine(_nodes.Process(udf), label_of(func), self.stream2, "co_process")._declare(output_type)

    def _apply(self, api: str, udf: "CoUdf", step: str) -> "DataStream":
        if self._keyed and opens(udf.fn):
            # The rule KeyedStream.map uses: a function with open() may ask for keyed
            # state, which lives on the process operator; the others keep the
            # cheaper fused transform.
            stateful = CoProcessUdf(KeyedCoStep(udf, single=step == "map"), udf.kind)
            return self.stream1._combine(_nodes.Process(stateful), label_of(udf.fn), self.stream2, api)
        return self.stream1._combine(_nodes.CoTransform(udf, step), label_of(udf.fn), self.stream2, api)

    flatMap = flat_map
    keyBy = key_by


class CoUdf(Udf):
    """A co-function: per worker, one copy of the user's object (as any function
    object) whose two methods ``names1``/``names2`` (modern name first) it binds to,
    as the pair of callables the binding calls per input (see ``_nodes.CoTransform``)."""

    def __init__(self, fn: Any, api: str, names1: Tuple[str, ...], names2: Tuple[str, ...], kind: str,
                 collector_arity: Optional[int] = None) -> None:
        self.names = (names1, names2)
        self.api = api
        self.kind = kind
        super().__init__(fn, names1, collector_arity)

    def resolve(self, obj: Any) -> Any:
        calls = []
        for names in self.names:
            call = find_method(obj, names)
            if call is None:
                methods = " and ".join(f"{n[0]}(value)" for n in self.names)
                raise TypeError(f"connect(...).{self.api}() takes a {self.kind} (an object with {methods}), "
                                f"got {type(obj).__name__}")
            if self.collector_arity is not None and positional_arity(call) == self.collector_arity + 1:
                call = with_collector(call, self.collector_arity)
            calls.append(call)
        return tuple(calls)
