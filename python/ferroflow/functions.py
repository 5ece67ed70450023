"""Base classes for user functions, with Flink's DataStream method names.

Any plain callable works wherever a function is expected; subclass these to keep state
in ``self``, or to get ``open()``/``close()`` called on each worker (Flink's rich
functions). Each worker gets its own copy of a function object.

Talk-era (Java-style) method names are accepted too: ``flatMap(value, collector)``,
``getKey``, ``hasNext``/``next``...
"""

from __future__ import annotations

import abc

from ._plan import Collector, RuntimeContext, stub
from .time_domain import TimeDomain
from .timerservice import TimerService

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Iterable, Iterator, List, Optional

__all__ = [
    "Function", "MapFunction", "FlatMapFunction", "FilterFunction", "KeySelector", "ReduceFunction",
    "WindowFunction", "AllWindowFunction", "ProcessWindowFunction", "ProcessAllWindowFunction", "AggregateFunction",
    "OutputSelector", "SinkFunction", "TwoPhaseCommitSinkFunction", "DiscardingSink", "SourceFunction", "ParallelSourceFunction", "SourceContext",
    "SerializationSchema", "SimpleStringSchema", "Encoder", "Collector", "RuntimeContext", "ProcessFunction",
    "KeyedProcessFunction", "CoMapFunction", "CoFlatMapFunction", "CoProcessFunction", "KeyedCoProcessFunction",
    "BroadcastProcessFunction", "KeyedBroadcastProcessFunction", "ProcessJoinFunction", "JoinFunction",
    "CoGroupFunction", "TimerService", "TimeDomain", "Partitioner",
]


class _Subscriptable:
    """Lets a class be written with type parameters as PyFlink's generic classes are
    (``ProcessWindowFunction[tuple, tuple, str, TimeWindow]``, ``Context[TimeWindow]``).
    The parameters only document types: subscripting gives the class itself."""

    __slots__ = ()

    def __class_getitem__(cls, params: Any) -> Any:
        return cls


class Function(_Subscriptable):
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


class WindowContext(_Subscriptable):
    """What a process window function learns about the firing: the window, the
    clocks at the moment it fires, and (keyed windows) the key's state across its
    windows and the state of this window alone."""

    __slots__ = ("_window", "_watermark", "_processing_time", "_state", "_window_state")

    def __init__(self, window: Any, watermark: int, processing_time: int, state: Any = None,
                 window_state: Any = None) -> None:
        self._window = window
        self._watermark = watermark
        self._processing_time = processing_time
        self._state = state
        self._window_state = window_state

    def window(self) -> Any:
        """The ``TimeWindow`` (or ``GlobalWindow``) that fires."""
        return self._window

    def current_watermark(self) -> int:
        """The operator's event-time watermark (ms; ``-2**63`` before the first one)."""
        return self._watermark

    def current_processing_time(self) -> int:
        """The processing time (ms since the epoch; the manual clock under a ``TestSource``)."""
        return self._processing_time

    def global_state(self) -> RuntimeContext:
        """The firing key's state across all its windows: ``get_state(descriptor)`` and
        the other getters of ``RuntimeContext``, the same states ``open()`` gets (keyed
        windows only: ``window_all`` has no key)."""
        if self._state is None:
            from ._errors import InvalidUseError

            raise InvalidUseError("global_state(): state is only available on a keyed stream "
                                 "(window_all has no key: use key_by(...).window(...))")
        return self._state

    def window_state(self) -> RuntimeContext:
        """The firing key's state in this window only: the getters of ``global_state()``
        (``get_state(descriptor)``...), whose states are separate from the key's global
        ones even under the same name. It lives until the window is cleared (its
        clean-up time: end + allowed lateness in event time; or the end of the input),
        when ``clear(context)`` runs with it still readable and the engine then drops
        what is left. Keyed windows only, and not on merging (session) windows."""
        if self._window_state is None:
            from ._errors import InvalidUseError

            raise InvalidUseError("window_state(): state is only available on a keyed stream "
                                 "(window_all has no key: use key_by(...).window(...))")
        return self._window_state

    currentWatermark = current_watermark
    currentProcessingTime = current_processing_time
    globalState = global_state
    windowState = window_state

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

    @stub
    def clear(self, context: WindowContext) -> None:
        """Called once when the window is cleared (its clean-up time passed, or the
        input ended), with ``context.window_state()`` still readable: the place to
        release what the window kept elsewhere. Its per-window state is dropped right
        after, whatever is left in it."""


class ProcessAllWindowFunction(Function):
    """``ProcessWindowFunction`` for ``window_all``: implement ``process(context,
    elements)`` returning an iterable, or ``process(context, elements, collector)``."""

    Context = WindowContext

    @stub
    def process(self, context: WindowContext, elements: List[Any]) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement process(context, elements)")

    @stub
    def clear(self, context: WindowContext) -> None:
        """Called once when the window is cleared (its clean-up time passed, or the
        input ended)."""


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
    """Receives every record: implement ``invoke(value)`` (or ``invoke(value, context)``).

    Under checkpointing a plain sink is at-least-once: after a restore, the records
    since the checkpoint reach ``invoke`` again. For exactly-once output, write a
    ``TwoPhaseCommitSinkFunction``, or make the writes idempotent (see "the
    idempotent-sink pattern" in docs/fault_tolerance.md)."""

    @stub
    def invoke(self, value: Any, context: Any = None) -> None:
        raise NotImplementedError("implement invoke(value)")


class TwoPhaseCommitSinkFunction(Function):
    """A sink whose output becomes visible with checkpoints, exactly once (Flink's
    ``TwoPhaseCommitSinkFunction``, with snake_case names). Records go into a
    transaction (any picklable value naming it: a file name, a row id...):

    - ``begin_transaction() -> txn``: starts one; the next records go into it.
    - ``invoke(txn, value, context)``: writes one record into ``txn`` (``context`` is
      None; ``invoke(txn, value)`` works too).
    - ``pre_commit(txn)``: a checkpoint is taken: make ``txn`` durable, ready to
      commit. A new transaction begins after it.
    - ``commit(txn)``: the checkpoint completed: make ``txn`` visible. It must be
      idempotent: after a restore it may run again for a transaction already
      committed (the job may have failed between the commit and the next
      checkpoint).
    - ``abort(txn)``: throw ``txn`` away (a restore: what was written after the
      checkpoint restored). It may get a transaction that was pre-committed, and
      must do nothing harmful to one that is already gone.

    The transactions pre-committed and the open one are saved (pickled) with each
    checkpoint; a restore commits those the checkpoint covers and aborts the others,
    possibly on another worker than the one that began them. At the end of a job that
    succeeds, the open transaction is pre-committed and every transaction committed
    with the job's success; a failed job leaves them to a restore. Without
    checkpointing the whole job's output is one transaction per worker, committed
    when the job succeeds.
    """

    @stub
    def begin_transaction(self) -> Any:
        raise NotImplementedError("implement begin_transaction()")

    @stub
    def invoke(self, transaction: Any, value: Any, context: Any = None) -> None:
        raise NotImplementedError("implement invoke(transaction, value, context)")

    @stub
    def pre_commit(self, transaction: Any) -> None:
        raise NotImplementedError("implement pre_commit(transaction)")

    @stub
    def commit(self, transaction: Any) -> None:
        raise NotImplementedError("implement commit(transaction)")

    @stub
    def abort(self, transaction: Any) -> None:
        raise NotImplementedError("implement abort(transaction)")


class DiscardingSink(SinkFunction):
    """Drops every record, in the engine, without a Python call per record (Flink's
    DiscardingSink): for benchmarks and jobs run for their side effects."""

    def invoke(self, value: Any, context: Any = None) -> None:
        pass


class SourceContext:
    """What a ``SourceFunction.run`` emits into (the engine passes its own)."""

    def collect(self, value: Any) -> None:  # pragma: no cover - documentation only
        raise NotImplementedError

    def get_checkpoint_lock(self) -> Any:  # pragma: no cover - documentation only
        """A reentrant lock (Flink's checkpoint lock): a checkpoint never reads the
        source's position while ``run`` holds it. Hold it around each ``collect`` and
        the update of the position that goes with it."""
        raise NotImplementedError


class SourceFunction(Function):
    """A source written in Python: ``run(ctx)`` calls ``ctx.collect(x)`` for each record
    and returns when the source is done; ``cancel()`` asks it to stop early. It runs on
    a thread of its own, on one worker.

    To resume from a checkpoint instead of starting over, define the two methods of
    Flink's ``CheckpointedFunction`` (with PyFlink's snake_case names; a position
    instead of Flink's state contexts):

    - ``snapshot_state(checkpoint_id) -> position``: a picklable value from which
      ``run`` can resume; called on the worker's thread when the job takes a
      checkpoint (``checkpoint_id`` counts up).
    - ``initialize_state(position)``: called, only when the job restores a
      checkpoint, with the position ``snapshot_state`` returned, before ``open()`` and
      ``run()``; ``run`` then goes on from there.

    The position must cover exactly the records collected so far: update it together
    with each ``collect``, both under ``ctx.get_checkpoint_lock()``::

        def run(self, ctx):
            while self.offset < len(DATA):
                with ctx.get_checkpoint_lock():
                    ctx.collect(DATA[self.offset])
                    self.offset += 1

    Records collected but not yet taken by the job are saved with the position and
    emitted again on restore. A parallel source's positions restore at the same
    parallelism only (each worker's own); a non-parallel one at any. Without
    ``snapshot_state`` a restored job runs the source from its start again.
    """

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
    """Turns a record into bytes (or str): a Kafka sink's value or key (see
    ``KafkaRecordSerializationSchema``), ``write_to_socket``'s output."""

    @stub
    def serialize(self, value: Any) -> bytes:
        raise NotImplementedError("implement serialize(value)")


class DeserializationSchema(Function):
    """Turns bytes into a record: a Kafka source's values
    (``KafkaSource.builder().set_value_only_deserializer(schema)``). Implement
    ``deserialize(message)``; raising marks the message malformed (the job fails
    naming topic, partition and offset). ``isEndOfStream`` is the talk-era Kafka
    consumer's hook, kept for its scripts."""

    @stub
    def deserialize(self, message: bytes) -> Any:
        raise NotImplementedError("implement deserialize(message)")

    def isEndOfStream(self, next_element: Any) -> bool:
        """True to end the stream at ``next_element``; false by default."""
        return False


class SimpleStringSchema(SerializationSchema, DeserializationSchema):
    """Text in UTF-8: ``str(value)`` encoded, and bytes decoded."""

    def __init__(self, charset: str = "UTF-8") -> None:
        self.charset = utf8_charset(charset, "SimpleStringSchema()")

    def serialize(self, value: Any) -> bytes:
        return str(value).encode("utf-8")

    def deserialize(self, message: bytes) -> str:
        return message.decode("utf-8")


class ByteArraySchema(SerializationSchema, DeserializationSchema):
    """Bytes as they are (PyFlink's ``ByteArraySchema``): records are ``bytes``."""

    def serialize(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"ByteArraySchema writes bytes, got {type(value).__name__} {value!r:.60}")
        return bytes(value)

    def deserialize(self, message: bytes) -> bytes:
        return message


class RowFieldExtractorSchema(SerializationSchema):
    """Field ``field_index`` of a row, which must hold bytes, as the serialized form
    (PyFlink's ``RowFieldExtractorSchema``: one field for the key, another for the value)."""

    def __init__(self, field_index: int) -> None:
        if not isinstance(field_index, int) or isinstance(field_index, bool) or field_index < 0:
            raise ValueError(f"RowFieldExtractorSchema() takes a field index >= 0, got {field_index!r}")
        self.field_index = field_index

    def serialize(self, value: Any) -> bytes:
        try:
            field = value[self.field_index]
        except (IndexError, TypeError, KeyError):
            raise ValueError(f"RowFieldExtractorSchema({self.field_index}): the record has no field "
                             f"{self.field_index}: {value!r:.80}") from None
        if field is None:
            return None  # type: ignore[return-value]  # Kafka: no key / a tombstone
        if not isinstance(field, (bytes, bytearray, memoryview)):
            raise TypeError(f"RowFieldExtractorSchema({self.field_index}): field {self.field_index} must hold "
                            f"bytes, got {type(field).__name__} {field!r:.60}")
        return bytes(field)


class Encoder:
    """How a ``FileSink`` writes each record (PyFlink's ``Encoder``):
    ``Encoder.simple_string_encoder()`` writes ``str(record)`` and a newline."""

    def __init__(self, charset_name: str = "UTF-8") -> None:
        self.charset_name = utf8_charset(charset_name, "Encoder.simple_string_encoder()")

    @staticmethod
    def simple_string_encoder(charset_name: str = "UTF-8") -> "Encoder":
        """``str(record)`` and ``"\\n"`` per record, UTF-8 (the only charset supported)."""
        return Encoder(charset_name)

    def __repr__(self) -> str:
        return f"Encoder.simple_string_encoder({self.charset_name!r})"


def utf8_charset(charset_name: str, what: str) -> str:
    """``charset_name`` if it names UTF-8 (``"UTF-8"``, ``"utf8"``...): ferroflow reads
    and writes text in UTF-8 only. Anything else raises ``ValueError`` naming ``what``."""
    if str(charset_name).replace("-", "").replace("_", "").upper() != "UTF8":
        raise ValueError(f"{what}: only UTF-8 text is supported, got charset {charset_name!r}")
    return str(charset_name)


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


# -- process functions, connected streams and joins (issue 12: declared here, run by the engine) --


class _ProcessContext(_Subscriptable, abc.ABC):
    """What ``process_element`` learns about the record being processed."""

    @abc.abstractmethod
    def timestamp(self) -> Optional[int]:
        """The record's event timestamp (ms), or None if it has none."""

    @abc.abstractmethod
    def timer_service(self) -> TimerService:
        """The clocks, and timers (keyed streams only)."""


class _KeyedContext(_ProcessContext):
    """A process context on a keyed stream: also the current key."""

    @abc.abstractmethod
    def get_current_key(self) -> Any:
        """The key of the record (or timer) being processed."""


class _OnTimerContext(_KeyedContext):
    """What ``on_timer`` learns: the timer's key, clock and timestamp."""

    @abc.abstractmethod
    def time_domain(self) -> TimeDomain:
        """Whether an event-time or a processing-time timer fired."""


class ProcessFunction(Function):
    """The general operator of a plain stream (``stream.process(f)``): implement
    ``process_element(value, ctx)`` yielding (or returning an iterable of) outputs;
    ``yield output_tag, value`` sends to a side output."""

    Context = _ProcessContext

    @stub
    def process_element(self, value: Any, ctx: _ProcessContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement process_element(value, ctx)")


class KeyedProcessFunction(Function):
    """The general operator of a keyed stream (``keyed.process(f)``), with keyed state
    and timers: ``process_element(value, ctx)`` and ``on_timer(timestamp, ctx)`` yield
    outputs (``yield output_tag, value`` for a side output)."""

    Context = _KeyedContext
    OnTimerContext = _OnTimerContext

    @stub
    def process_element(self, value: Any, ctx: _KeyedContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement process_element(value, ctx)")

    def on_timer(self, timestamp: int, ctx: _OnTimerContext) -> Optional[Iterable[Any]]:
        """Called when a timer registered through ``ctx.timer_service()`` fires."""
        return None


class CoMapFunction(Function):
    """``connected.map(f)``: ``map1(value)`` for the first stream's records and
    ``map2(value)`` for the second's, one output each."""

    @stub
    def map1(self, value: Any) -> Any:
        raise NotImplementedError("implement map1(value)")

    @stub
    def map2(self, value: Any) -> Any:
        raise NotImplementedError("implement map2(value)")


class CoFlatMapFunction(Function):
    """``connected.flat_map(f)``: ``flat_map1(value)`` / ``flat_map2(value)`` return (or
    yield) zero or more outputs."""

    @stub
    def flat_map1(self, value: Any) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement flat_map1(value)")

    @stub
    def flat_map2(self, value: Any) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement flat_map2(value)")


class CoProcessFunction(Function):
    """``connected.process(f)`` on two plain streams: ``process_element1(value, ctx)``
    and ``process_element2(value, ctx)`` yield outputs."""

    Context = _ProcessContext

    @stub
    def process_element1(self, value: Any, ctx: _ProcessContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement process_element1(value, ctx)")

    @stub
    def process_element2(self, value: Any, ctx: _ProcessContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement process_element2(value, ctx)")


class KeyedCoProcessFunction(Function):
    """``connected.key_by(k1, k2).process(f)``: like ``CoProcessFunction``, with keyed
    state and timers that both inputs of a key share, and ``on_timer(timestamp, ctx)``."""

    Context = _KeyedContext
    OnTimerContext = _OnTimerContext

    @stub
    def process_element1(self, value: Any, ctx: _KeyedContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement process_element1(value, ctx)")

    @stub
    def process_element2(self, value: Any, ctx: _KeyedContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement process_element2(value, ctx)")

    def on_timer(self, timestamp: int, ctx: _OnTimerContext) -> Optional[Iterable[Any]]:
        """Called when a timer registered through ``ctx.timer_service()`` fires."""
        return None


class _BroadcastContextBase(_Subscriptable, abc.ABC):
    """What both sides of a broadcast connection learn: the record's timestamp and the clocks."""

    @abc.abstractmethod
    def timestamp(self) -> Optional[int]:
        """The record's event timestamp (ms), or None."""

    @abc.abstractmethod
    def current_processing_time(self) -> int:
        """The processing time (ms)."""

    @abc.abstractmethod
    def current_watermark(self) -> int:
        """The operator's event-time watermark (ms)."""


class _BroadcastContext(_BroadcastContextBase):
    """The broadcast side's context: broadcast state it may change."""

    @abc.abstractmethod
    def get_broadcast_state(self, state_descriptor: Any) -> Any:
        """The ``BroadcastState`` a ``MapStateDescriptor`` given to ``broadcast()`` names."""


class _ReadOnlyBroadcastContext(_BroadcastContextBase):
    """The other side's context: broadcast state it may only read."""

    @abc.abstractmethod
    def get_broadcast_state(self, state_descriptor: Any) -> Any:
        """A read-only view of the broadcast state ``state_descriptor`` names."""


class _KeyedBroadcastContext(_BroadcastContext):
    """The broadcast side of a keyed connection: may also visit every key's state."""

    @abc.abstractmethod
    def apply_to_keyed_state(self, state_descriptor: Any, function: Any) -> None:
        """Calls ``function(key, state)`` for every key holding ``state_descriptor``'s state."""


class _KeyedReadOnlyBroadcastContext(_ReadOnlyBroadcastContext):
    """The keyed side of a keyed broadcast connection: also the key and timers."""

    @abc.abstractmethod
    def timer_service(self) -> TimerService:
        """The clocks and the current key's timers."""

    @abc.abstractmethod
    def get_current_key(self) -> Any:
        """The key of the record being processed."""


class _KeyedBroadcastOnTimerContext(_KeyedReadOnlyBroadcastContext):
    """What ``on_timer`` of a ``KeyedBroadcastProcessFunction`` learns."""

    @abc.abstractmethod
    def time_domain(self) -> TimeDomain:
        """Whether an event-time or a processing-time timer fired."""


class BroadcastProcessFunction(Function):
    """``stream.connect(broadcast_stream).process(f)``: ``process_element(value, ctx)``
    reads the broadcast state, ``process_broadcast_element(value, ctx)`` may change it;
    both yield outputs."""

    Context = _BroadcastContext
    ReadOnlyContext = _ReadOnlyBroadcastContext

    @stub
    def process_element(self, value: Any, ctx: _ReadOnlyBroadcastContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement process_element(value, ctx)")

    @stub
    def process_broadcast_element(self, value: Any, ctx: _BroadcastContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement process_broadcast_element(value, ctx)")


class KeyedBroadcastProcessFunction(Function):
    """``keyed.connect(broadcast_stream).process(f)``: as ``BroadcastProcessFunction``,
    with keyed state and timers on the keyed side and ``on_timer(timestamp, ctx)``."""

    Context = _KeyedBroadcastContext
    ReadOnlyContext = _KeyedReadOnlyBroadcastContext
    OnTimerContext = _KeyedBroadcastOnTimerContext

    @stub
    def process_element(self, value: Any, ctx: _KeyedReadOnlyBroadcastContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement process_element(value, ctx)")

    @stub
    def process_broadcast_element(self, value: Any, ctx: _KeyedBroadcastContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement process_broadcast_element(value, ctx)")

    def on_timer(self, timestamp: int, ctx: _KeyedBroadcastOnTimerContext) -> Optional[Iterable[Any]]:
        """Called when a timer registered through ``ctx.timer_service()`` fires."""
        return None


class _ProcessJoinContext(_Subscriptable, abc.ABC):
    """What ``ProcessJoinFunction.process_element`` learns about the pair."""

    @abc.abstractmethod
    def get_left_timestamp(self) -> int:
        """The left record's event timestamp (ms)."""

    @abc.abstractmethod
    def get_right_timestamp(self) -> int:
        """The right record's event timestamp (ms)."""

    @abc.abstractmethod
    def timestamp(self) -> int:
        """The pair's timestamp: the larger of the two."""


class ProcessJoinFunction(Function):
    """``keyed.interval_join(other).between(lower, upper).process(f)``: called with each
    pair of records of one key whose timestamps are within the bounds;
    ``process_element(left, right, ctx)`` yields outputs."""

    Context = _ProcessJoinContext

    @stub
    def process_element(self, left: Any, right: Any, ctx: _ProcessJoinContext) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement process_element(left, right, ctx)")


class JoinFunction(Function):
    """``stream.join(other)...apply(f)``: ``join(first, second)`` returns one output per
    pair of records of one key and window (Flink's ``FlatJoinFunction`` form
    ``join(first, second, collector)`` works too)."""

    @stub
    def join(self, first: Any, second: Any) -> Any:
        raise NotImplementedError("implement join(first, second)")


class CoGroupFunction(Function):
    """``stream.co_group(other)...apply(f)``: ``co_group(first, second)`` gets the lists
    of both streams' records of one key and window (one may be empty) and returns (or
    yields) outputs; ``co_group(first, second, collector)`` works too."""

    @stub
    def co_group(self, first: List[Any], second: List[Any]) -> Optional[Iterable[Any]]:
        raise NotImplementedError("implement co_group(first, second)")


class Partitioner(Function):
    """``partition_custom``: ``partition(key, num_partitions)`` returns the index
    (``0`` to ``num_partitions - 1``) of the worker a record with ``key`` goes to."""

    @stub
    def partition(self, key: Any, num_partitions: int) -> int:
        raise NotImplementedError("implement partition(key, num_partitions)")
