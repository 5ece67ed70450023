"""Streams: ``DataStream`` and its keyed, windowed, split and iterative forms.

Every method records a node in the job's plan and returns the new stream; nothing
runs until ``env.execute()``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Optional, Union

from . import _aggregations
from ._plan import Udf, label_of
from .windowing import GlobalWindow, Time, TimeWindow, to_millis

if TYPE_CHECKING:
    from .environment import StreamExecutionEnvironment

__all__ = ["DataStream", "KeyedStream", "WindowedStream", "SplitStream", "IterativeStream", "DataStreamSink", "WriteMode"]


class WriteMode:
    """Whether ``write_as_text`` may replace an existing file."""

    NO_OVERWRITE = "NO_OVERWRITE"
    OVERWRITE = "OVERWRITE"


class DataStream:
    """A stream of Python objects."""

    def __init__(self, env: "StreamExecutionEnvironment", node: int) -> None:
        self._env = env
        self._node = node

    # -- naming -----------------------------------------------------------------------

    def name(self, name: str) -> "DataStream":
        """Names the operator that produces this stream (shown in errors and metrics)."""
        self._env._nodes[self._node].custom_name = str(name)
        return self

    def get_name(self) -> str:
        return self._env._nodes[self._node].name

    def uid(self, uid: str) -> "DataStream":
        """Accepted for Flink compatibility; ferroflow identifies operators by position."""
        return self

    def set_parallelism(self, parallelism: int) -> "DataStream":
        """Runs the operator producing this stream on ``parallelism`` workers only (the
        first ones; at most the job's). Its functions see that many workers."""
        _set_parallelism(self._env, self._node, parallelism)
        return self

    # -- stateless transformations ---------------------------------------------------

    def _then(self, kind: str, udf: Any, label: Optional[str] = None, **params: Any) -> "DataStream":
        node = self._env._add(kind, label if label is not None else label_of(udf.fn), [self._node],
                              dict(params, udf=udf))
        return DataStream(self._env, node)

    def map(self, func: Any, output_type: Any = None) -> "DataStream":
        """One output per record: ``func(value)`` or a ``MapFunction``."""
        return self._then("map", Udf(func, ("map",)))

    def flat_map(self, func: Any, output_type: Any = None) -> "DataStream":
        """Zero or more outputs per record: ``func(value)`` returns an iterable (a
        generator is fine) or None; or a ``FlatMapFunction``, including the
        collector style ``flatMap(value, collector)``."""
        return self._then("flat_map", Udf(func, ("flat_map", "flatMap"), collector_arity=1))

    def filter(self, func: Any) -> "DataStream":
        """Keeps the records for which ``func(value)`` is true."""
        return self._then("filter", Udf(func, ("filter",)))

    def key_by(self, key_selector: Any, key_type: Any = None) -> "KeyedStream":
        """Partitions the stream by key: ``key_selector(value)`` or a ``KeySelector``;
        or a field, read in Rust with no Python call per record: an int index (tuples,
        lists) or a str name (dict items, attributes), e.g. ``key_by(0)``,
        ``key_by("user")`` (see ``ferroflow._aggregations.get_field``). Keys must be
        str, int, float, bool, None, bytes or tuples of these."""
        if _aggregations.is_field(key_selector):
            return KeyedStream(self._env, _aggregations.add_key_by_field(self, key_selector))
        udf = Udf(key_selector, ("get_key", "getKey"))
        node = self._env._add("key_by", label_of(key_selector), [self._node], {"udf": udf})
        return KeyedStream(self._env, node)

    def union(self, *streams: "DataStream") -> "DataStream":
        """Merges this stream with others (a stream unioned with itself appears twice)."""
        for s in streams:
            if not isinstance(s, DataStream) or s._env is not self._env:
                raise TypeError("union() takes streams of the same environment")
        node = self._env._add("union", "", [self._node] + [s._node for s in streams], {})
        return DataStream(self._env, node)

    def split(self, output_selector: Any) -> "SplitStream":
        """Routes each record to the outputs named by ``output_selector(value)`` (an
        iterable of names); pick them with ``select(*names)``. Operators applied to
        the split stream itself see every record."""
        return SplitStream(self._env, self._node, output_selector)

    def iterate(self, max_wait_time_ms: Optional[int] = None) -> "IterativeStream":
        """Opens a feedback loop; close it with ``close_with(feedback_stream)``.

        The loop ends by itself once nothing circulates. With ``max_wait_time_ms``,
        records still circulating that long after the input ended are dropped (with a
        warning and a count in the result), so a loop that never converges cannot
        hang a bounded job. Without it, such a loop runs until cancelled."""
        if max_wait_time_ms is not None and (not isinstance(max_wait_time_ms, int) or max_wait_time_ms < 0):
            raise ValueError(f"max_wait_time_ms must be a non-negative int, got {max_wait_time_ms!r}")
        node = self._env._add("iterate", "", [self._node], {"max_wait_ms": max_wait_time_ms, "feedback": None})
        return IterativeStream(self._env, node)

    # -- sinks ---------------------------------------------------------------------------

    def _sink(self, kind: str, label: str, params: dict) -> "DataStreamSink":
        return DataStreamSink(self._env, self._env._add(kind, label, [self._node], params))

    def print(self, sink_identifier: Optional[str] = None) -> "DataStreamSink":
        """Prints ``repr(record)`` per line on stdout, prefixed ``k> `` (the worker's
        1-based index) when the job runs with parallelism above 1."""
        return self._sink("print", sink_identifier or "", {})

    def write_as_text(self, path: Union[str, "os.PathLike[str]"], write_mode: Any = None,
                      overwrite: Optional[bool] = None) -> "DataStreamSink":
        """Writes ``str(record)`` per line to ``path`` (with parallelism above 1, ``path``
        is a directory with one file per worker, named 1, 2, ...). An existing file is
        an error unless ``overwrite=True`` or ``WriteMode.OVERWRITE``."""
        if overwrite is None:
            if isinstance(write_mode, bool):
                overwrite = write_mode
            else:
                overwrite = str(getattr(write_mode, "name", write_mode)).upper() == "OVERWRITE"
        return self._sink("write_text", os.fspath(path), {"path": os.fspath(path), "overwrite": bool(overwrite)})

    def write_to_socket(self, host: str, port: int, serialization_schema: Any) -> "DataStreamSink":
        """Sends ``serialize(record)`` (bytes or str; no delimiter is added) to a TCP
        server at ``host:port``."""
        udf = Udf(serialization_schema, ("serialize",))
        return self._sink("write_socket", f"{host}:{port}",
                          {"host": str(host), "port": int(port), "serialize": udf.resolve(serialization_schema)})

    def add_sink(self, sink_func: Any) -> "DataStreamSink":
        """Calls ``sink_func(value)`` (or a ``SinkFunction``'s ``invoke``) for every record."""
        from .functions import DiscardingSink

        if type(sink_func) is DiscardingSink:
            return self._sink("discard", "DiscardingSink", {})
        udf = Udf(sink_func, ("invoke",), wrap=_drop_context)
        return self._sink("sink_function", label_of(sink_func), {"udf": udf})

    # Talk-era (Flink 1.5+) name of print().
    def output(self) -> "DataStreamSink":
        """Same as ``print()`` (the name Flink 1.5 gave it)."""
        return self.print()


def _drop_context(invoke: Callable) -> Callable:
    """``invoke(value, context)`` gets a None context; ``invoke(value)`` runs as is."""
    from ._plan import positional_arity

    if positional_arity(invoke) == 2:
        return lambda value: invoke(value, None)
    return invoke


class DataStreamSink:
    """The end of a stream."""

    def __init__(self, env: "StreamExecutionEnvironment", node: int) -> None:
        self._env = env
        self._node = node

    def name(self, name: str) -> "DataStreamSink":
        self._env._nodes[self._node].custom_name = str(name)
        return self

    def uid(self, uid: str) -> "DataStreamSink":
        return self

    def set_parallelism(self, parallelism: int) -> "DataStreamSink":
        """Runs the sink on ``parallelism`` workers only, e.g. ``print().set_parallelism(1)``
        for one output without ``k> `` prefixes, or one file from ``write_as_text``."""
        _set_parallelism(self._env, self._node, parallelism)
        return self


def _set_parallelism(env: "StreamExecutionEnvironment", node: int, parallelism: int) -> None:
    if not isinstance(parallelism, int) or isinstance(parallelism, bool) or parallelism < 1:
        raise ValueError(f"parallelism must be an int >= 1, got {parallelism!r}")
    env._nodes[node].parallelism = parallelism


class KeyedStream(DataStream):
    """A stream partitioned by key. Operators that do not use keys (map, filter,
    print...) treat it as a plain stream."""

    def reduce(self, func: Any) -> DataStream:
        """Rolling reduce: every record emits the updated value of its key (the first
        one unchanged): ``func(value1, value2)`` or a ``ReduceFunction``."""
        return self._then("reduce", Udf(func, ("reduce",)))

    # -- built-in rolling aggregations: run in Rust, see ferroflow/_aggregations.py -------

    def sum(self, field: Union[int, str, None] = None) -> DataStream:
        """Rolling sum of ``field`` per key: every record emits its key's first record
        with ``field`` replaced by the running sum (a key's first record goes out as
        it is). ``field`` is an int index (tuples, lists) or a str name (dict items,
        attributes); None (the default) sums the records themselves. Same results as
        ``reduce(lambda a, b: <a with field set to a.field + b.field>)``."""
        return DataStream(self._env, _aggregations.add_aggregate(self, "sum", field))

    def min(self, field: Union[int, str, None] = None) -> DataStream:
        """Rolling minimum of ``field`` per key: the key's first record with ``field``
        replaced by the smallest value so far (Flink's ``min``; ``min_by`` gives the
        whole record holding it). None (the default): the records themselves."""
        return DataStream(self._env, _aggregations.add_aggregate(self, "min", field))

    def max(self, field: Union[int, str, None] = None) -> DataStream:
        """Rolling maximum of ``field`` per key: the key's first record with ``field``
        replaced by the largest value so far (Flink's ``max``; ``max_by`` gives the
        whole record holding it). None (the default): the records themselves."""
        return DataStream(self._env, _aggregations.add_aggregate(self, "max", field))

    def min_by(self, field: Union[int, str, None] = None) -> DataStream:
        """Per key, the record with the smallest ``field`` so far, emitted for every
        record; on ties the earlier record stays (Flink's ``minBy``)."""
        return DataStream(self._env, _aggregations.add_aggregate(self, "min_by", field))

    def max_by(self, field: Union[int, str, None] = None) -> DataStream:
        """Per key, the record with the largest ``field`` so far, emitted for every
        record; on ties the earlier record stays (Flink's ``maxBy``)."""
        return DataStream(self._env, _aggregations.add_aggregate(self, "max_by", field))

    def count(self) -> DataStream:
        """Rolling count per key: every record emits ``(key, n)``, ``n`` being how
        many records of its key arrived so far (1 for the first) and ``key`` the
        value the key selector (or key field) gave."""
        return DataStream(self._env, _aggregations.add_count(self))

    # Java-style names for talk-era scripts.
    minBy = min_by
    maxBy = max_by

    def time_window(self, size: Any, slide: Any = None) -> "WindowedStream":
        """Tumbling (or, with ``slide``, sliding) processing-time windows per key."""
        size_ms = to_millis(size, "window size")
        slide_ms = to_millis(slide, "window slide") if slide is not None else size_ms
        return WindowedStream(self, "processing_time", size_ms, slide_ms)

    def count_window(self, size: int, slide: Optional[int] = None) -> "WindowedStream":
        """Windows of ``size`` records per key, firing every ``slide`` records (default:
        every ``size``). At the end of a bounded input, a partly filled window fires."""
        for what, v in (("size", size), ("slide", slide)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"count window {what} must be an int >= 1, got {v!r}")
        return WindowedStream(self, "count", size, slide if slide is not None else size)


class WindowedStream:
    """A keyed stream cut into windows; give it a window function."""

    def __init__(self, keyed: KeyedStream, assigner: str, size: int, slide: int) -> None:
        self._keyed = keyed
        self._assigner = assigner
        self._size = size
        self._slide = slide

    def _window(self, function: str, udf: Udf) -> DataStream:
        env = self._keyed._env
        params = {"assigner": self._assigner, "size": self._size, "slide": self._slide,
                  "function": function, "udf": udf, "time_window": TimeWindow, "global_window": GlobalWindow()}
        label = f"{self._assigner.replace('_', ' ')} window {function} {label_of(udf.fn)}"
        return DataStream(env, env._add("window", label, [self._keyed._node], params))

    def reduce(self, func: Any) -> DataStream:
        """One value per key and window: the window's values combined with
        ``func(value1, value2)`` or a ``ReduceFunction``."""
        return self._window("reduce", Udf(func, ("reduce",)))

    def apply(self, window_function: Any) -> DataStream:
        """Calls ``apply(key, window, values)`` (returning an iterable) or
        ``apply(key, window, values, collector)`` once per key and window."""
        return self._window("apply", Udf(window_function, ("apply",), collector_arity=3))


class SplitStream(DataStream):
    """A stream whose records are routed to named outputs; see ``select``."""

    def __init__(self, env: "StreamExecutionEnvironment", node: int, selector: Any) -> None:
        super().__init__(env, node)
        self._selector = Udf(selector, ("select",))

    def select(self, *output_names: str) -> DataStream:
        """The records routed to any of ``output_names``."""
        names = frozenset(output_names)
        selector = self._selector

        class _Selected:
            # A filter that asks the selector; bound per worker like any function.
            def prepare(self, count: int) -> None:
                selector.prepare(count)

            def bind(self, index: int, count: int):
                call, close = selector.bind(index, count)

                def keep(value: Any) -> bool:
                    chosen = call(value)
                    if isinstance(chosen, str):
                        return chosen in names
                    return not names.isdisjoint(chosen)
                return keep, close

        label = f"select {', '.join(sorted(names))}"
        node = self._env._add("filter", label, [self._node], {"udf": _Selected()})
        return DataStream(self._env, node)


class IterativeStream(DataStream):
    """The head of a feedback loop (see ``DataStream.iterate``)."""

    def close_with(self, feedback_stream: DataStream) -> DataStream:
        """Sends ``feedback_stream`` back to the head of the loop; returns it."""
        if not isinstance(feedback_stream, DataStream) or feedback_stream._env is not self._env:
            raise TypeError("close_with() takes a stream of the same environment")
        params = self._env._nodes[self._node].params
        if params["feedback"] is not None:
            raise ValueError("this iteration is already closed")
        if feedback_stream._node <= self._node:
            raise ValueError("close_with() needs a stream computed from the iteration")
        params["feedback"] = feedback_stream._node
        return feedback_stream

    closeWith = close_with
