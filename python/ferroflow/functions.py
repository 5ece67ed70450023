"""Base classes for user functions, with Flink's DataStream method names.

Any plain callable works wherever a function is expected; subclass these to keep state
in ``self``, or to get ``open()``/``close()`` called on each worker (Flink's rich
functions). Each worker gets its own copy of a function object.

Talk-era (Java-style) method names are accepted too: ``flatMap(value, collector)``,
``getKey``, ``hasNext``/``next``...
"""

from __future__ import annotations

from ._plan import Collector, RuntimeContext, stub

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Iterable, Iterator, List, Optional

__all__ = [
    "Function", "MapFunction", "FlatMapFunction", "FilterFunction", "KeySelector", "ReduceFunction",
    "WindowFunction", "AllWindowFunction", "ProcessWindowFunction", "ProcessAllWindowFunction", "AggregateFunction",
    "OutputSelector", "SinkFunction", "DiscardingSink", "SourceFunction", "ParallelSourceFunction", "SourceContext",
    "SerializationSchema", "SimpleStringSchema", "Collector", "RuntimeContext",
]


class Function:
    """Base of all user function classes."""

    #: Tells ``_plan`` that a class is a function class (passed where an instance belongs).
    _ferroflow_function = True

    def open(self, runtime_context: RuntimeContext) -> None:
        """Called once on each worker before the first record."""

    def close(self) -> None:
        """Called once on each worker after the last record."""


class MapFunction(Function):
    """One output per input: implement ``map(value)``."""

    @stub
    def map(self, value: Any) -> Any:
        raise NotImplementedError("implement map(value)")


class FlatMapFunction(Function):
    """Zero or more outputs per input: implement ``flat_map(value)`` returning an
    iterable (a generator is fine), or ``flatMap(value, collector)`` calling
    ``collector.collect(x)``."""

    @stub
    def flat_map(self, value: Any) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement flat_map(value) or flatMap(value, collector)")


class FilterFunction(Function):
    """Keeps the records for which ``filter(value)`` is true."""

    @stub
    def filter(self, value: Any) -> bool:
        raise NotImplementedError("implement filter(value)")


class KeySelector(Function):
    """Extracts a record's key: implement ``get_key(value)`` (or ``getKey``).
    Keys must be str, int, float, bool, None, bytes or tuples of these."""

    @stub
    def get_key(self, value: Any) -> Any:
        raise NotImplementedError("implement get_key(value)")


class ReduceFunction(Function):
    """Combines two values of one key: implement ``reduce(value1, value2)``."""

    @stub
    def reduce(self, value1: Any, value2: Any) -> Any:
        raise NotImplementedError("implement reduce(value1, value2)")


class WindowFunction(Function):
    """Called with all values of a key's window when it fires: implement
    ``apply(key, window, values)`` returning an iterable, or
    ``apply(key, window, values, collector)``."""

    @stub
    def apply(self, key: Any, window: Any, values: List[Any]) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement apply(key, window, values)")


class AllWindowFunction(Function):
    """``WindowFunction`` for ``window_all``: implement ``apply(window, values)``
    returning an iterable, or ``apply(window, values, collector)``."""

    @stub
    def apply(self, window: Any, values: List[Any]) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement apply(window, values)")


class WindowContext:
    """What a process window function learns about the firing: the window, and the
    clocks at the moment it fires."""

    __slots__ = ("_window", "_watermark", "_processing_time")

    def __init__(self, window: Any, watermark: int, processing_time: int) -> None:
        self._window = window
        self._watermark = watermark
        self._processing_time = processing_time

    def window(self) -> Any:
        """The ``TimeWindow`` (or ``GlobalWindow``) that fires."""
        return self._window

    def current_watermark(self) -> int:
        """The operator's event-time watermark (ms; ``-2**63`` before the first one)."""
        return self._watermark

    def current_processing_time(self) -> int:
        """The processing time (ms since the epoch; the manual clock under a ``TestSource``)."""
        return self._processing_time

    currentWatermark = current_watermark
    currentProcessingTime = current_processing_time

    def __repr__(self) -> str:
        return (f"Context(window={self._window!r}, watermark={self._watermark}, "
                f"processing_time={self._processing_time})")


class ProcessWindowFunction(Function):
    """Called with all values of a key's window when it fires, plus a ``Context``
    (window, watermark, processing time): implement ``process(key, context, elements)``
    returning an iterable, or ``process(key, context, elements, collector)``."""

    Context = WindowContext

    @stub
    def process(self, key: Any, context: WindowContext, elements: List[Any]) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement process(key, context, elements)")


class ProcessAllWindowFunction(Function):
    """``ProcessWindowFunction`` for ``window_all``: implement ``process(context,
    elements)`` returning an iterable, or ``process(context, elements, collector)``."""

    Context = WindowContext

    @stub
    def process(self, context: WindowContext, elements: List[Any]) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement process(context, elements)")


class AggregateFunction(Function):
    """Incremental window aggregation through an accumulator: ``create_accumulator()``,
    ``add(value, accumulator)`` returning the new accumulator, ``get_result(accumulator)``,
    and ``merge(acc_a, acc_b)``, needed only by session windows (they merge)."""

    @stub
    def create_accumulator(self) -> Any:
        raise NotImplementedError("implement create_accumulator()")

    @stub
    def add(self, value: Any, accumulator: Any) -> Any:
        raise NotImplementedError("implement add(value, accumulator)")

    @stub
    def get_result(self, accumulator: Any) -> Any:
        raise NotImplementedError("implement get_result(accumulator)")

    @stub
    def merge(self, acc_a: Any, acc_b: Any) -> Any:
        raise NotImplementedError("implement merge(acc_a, acc_b): session windows merge their accumulators")


class OutputSelector(Function):
    """For ``split()``: ``select(value)`` returns the names of the outputs a record goes to."""

    @stub
    def select(self, value: Any) -> Iterable[str]:
        raise NotImplementedError("implement select(value)")


class SinkFunction(Function):
    """Receives every record: implement ``invoke(value)`` (or ``invoke(value, context)``)."""

    @stub
    def invoke(self, value: Any, context: Any = None) -> None:
        raise NotImplementedError("implement invoke(value)")


class DiscardingSink(SinkFunction):
    """Drops every record, in the engine, without a Python call per record (Flink's
    DiscardingSink): for benchmarks and jobs run for their side effects."""

    def invoke(self, value: Any, context: Any = None) -> None:
        pass


class SourceContext:
    """What a ``SourceFunction.run`` emits into (the engine passes its own)."""

    def collect(self, value: Any) -> None:  # pragma: no cover - documentation only
        raise NotImplementedError


class SourceFunction(Function):
    """A source written in Python: ``run(ctx)`` calls ``ctx.collect(x)`` for each record
    and returns when the source is done; ``cancel()`` asks it to stop early. It runs on
    a thread of its own, on one worker."""

    @stub
    def run(self, ctx: SourceContext) -> None:
        raise NotImplementedError("implement run(ctx)")

    def cancel(self) -> None:
        """Asks ``run`` to return soon."""


class ParallelSourceFunction(SourceFunction):
    """A source that runs on every worker, each reading its own share: ``run(ctx)``
    can use ``ctx.worker_index`` and ``ctx.worker_count`` (also given to ``open()``
    as the runtime context). Each worker gets its own copy of the object."""


class SerializationSchema(Function):
    """Turns a record into bytes (or str) for ``write_to_socket``."""

    @stub
    def serialize(self, value: Any) -> bytes:
        raise NotImplementedError("implement serialize(value)")


class SimpleStringSchema(SerializationSchema):
    """``str(value)`` encoded as UTF-8."""

    def serialize(self, value: Any) -> bytes:
        return str(value).encode("utf-8")


def iterate_java_style(source: Any) -> Iterator[Any]:
    """Drains an object with ``hasNext()``/``next()`` (the talk's ``PythonIterator``).
    Raising ``java.util.NoSuchElementException`` (or StopIteration) from ``next()``
    also ends it."""
    from ._java import NoSuchElementException

    while source.hasNext():
        try:
            yield source.next()
        except (NoSuchElementException, StopIteration):
            return
