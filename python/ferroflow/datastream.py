"""Streams: ``DataStream`` and its keyed, windowed, split and iterative forms.

Every method records a node in the job's plan and returns the new stream; nothing
runs until ``env.execute()``.
"""

from __future__ import annotations

import os

from . import _aggregations, _nodes, _window_udfs
from ._plan import Udf, label_of
from ._process import CoProcessUdf, KeyedStep, ProcessUdf, opens
from .output_tag import OutputTag
from .typeinfo import _many_outputs, _one_output, converter_of, print_text
from .watermarks import TimeCharacteristic, WatermarkStrategy
from .window import (ASSIGNERS, CountEvictor, CountTrigger, Evictor, GlobalWindows, PurgingTrigger,
                     SlidingEventTimeWindows, SlidingProcessingTimeWindows, Trigger, TumblingEventTimeWindows,
                     TumblingProcessingTimeWindows, WindowAssigner, check_supported, checked_evictor, checked_trigger,
                     positive_count)
from .windowing import to_millis

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Tuple, Type, TypeVar, Union

    from ._collect import CloseableIterator
    from .broadcast import BroadcastConnectedStream
    from .connected import ConnectedStreams
    from .environment import StreamExecutionEnvironment
    from .execution_config import ExecutionConfig
    from .joins import CoGroupedStreams, JoinedStreams
    from .windowing import TimeSpan

    _U = TypeVar("_U", bound=Udf)
    _H = TypeVar("_H", bound="_RuntimeHints")

__all__ = ["DataStream", "KeyedStream", "WindowedStream", "AllWindowedStream", "SplitStream", "IterativeStream",
           "DataStreamSink", "WriteMode", "OutputTag", "PartitionedStream", "IntervalJoin", "IntervalJoined"]


class WriteMode:
    """Whether ``write_as_text`` may replace an existing file."""

    NO_OVERWRITE = "NO_OVERWRITE"
    OVERWRITE = "OVERWRITE"


class _RuntimeHints:
    """Flink's hints to its runtime (chaining, buffers, slots, max parallelism, hashes):
    accepted so that Flink and PyFlink scripts run unchanged, and ignored, since ferroflow
    runs all of a worker's operators in one thread and routes keys without key groups."""

    def set_uid_hash(self: _H, uid_hash: str) -> _H:
        return self

    def set_max_parallelism(self: _H, max_parallelism: int) -> _H:
        return self

    def set_buffer_timeout(self: _H, timeout_millis: int) -> _H:
        return self

    def start_new_chain(self: _H) -> _H:
        return self

    def disable_chaining(self: _H) -> _H:
        return self

    def slot_sharing_group(self: _H, slot_sharing_group: Any) -> _H:
        return self

    def set_description(self: _H, description: str) -> _H:
        return self


class DataStream(_RuntimeHints):
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

    # -- type information (ferroflow.typeinfo) ------------------------------------------------

    def get_type(self) -> Any:
        """The declared type of this stream's records (``type_info=``, ``output_type=``),
        kept through operators that pass records on (filter, key_by, partitionings,
        union, rolling reduce and aggregations). Undeclared: ``Types.STRING()`` for text
        sources, ``Types.LONG()`` for ``generate_sequence``, else
        ``Types.PICKLED_BYTE_ARRAY()`` (any Python object), as PyFlink says."""
        from .typeinfo import Types

        nodes = self._env._nodes
        node = nodes[self._node]
        while node.type_info is None and node.kind.KEEPS_TYPE and node.inputs:
            node = nodes[node.inputs[0]]
        if node.type_info is not None:
            return node.type_info
        if isinstance(node.kind, (_nodes.TextFile, _nodes.Socket)):
            return Types.STRING()
        if isinstance(node.kind, _nodes.Sequence):
            return Types.LONG()
        return Types.PICKLED_BYTE_ARRAY()

    def _declared(self) -> Any:
        """The type declared for this stream's records, or None."""
        return self._env._nodes[self._node].type_info

    def _declare(self, type_info: Any) -> "DataStream":
        """Records ``type_info`` (if not None) as this stream's type; returns the stream."""
        if type_info is not None:
            self._env._nodes[self._node].type_info = type_info
        return self

    def get_execution_environment(self) -> "StreamExecutionEnvironment":
        """The environment this stream belongs to."""
        return self._env

    def get_execution_config(self) -> "ExecutionConfig":
        return self._env.get_config()

    def force_non_parallel(self) -> "DataStream":
        """Runs the operator producing this stream on one worker (``set_parallelism(1)``)."""
        return self.set_parallelism(1)

    def project(self, *field_indexes: int) -> "DataStream":
        """The tuple of the given fields of each record (a tuple or a list): ``project(2, 0)``."""
        if not field_indexes or not all(isinstance(i, int) and not isinstance(i, bool) for i in field_indexes):
            raise TypeError(f"project() takes one or more field indexes (ints), got {field_indexes!r}")
        fields = tuple(field_indexes)
        return self.map(lambda value: tuple(value[i] for i in fields)).name(f"Projection{list(fields)}")

    def cache(self) -> "DataStream":
        """Refused: ferroflow does not keep a stream between jobs (one line says what to do)."""
        from .compat.unsupported import refuse

        refuse("DataStream.cache()", "cache")

    # -- stateless transformations ---------------------------------------------------

    def _then(self, kind: _nodes.NodeKind, func: Any) -> "DataStream":
        """A stream made by ``kind`` from this one, labelled after the user's ``func``."""
        return DataStream(self._env, self._env._add(kind, label_of(func), [self._node]))

    def map(self, func: Any, output_type: Any = None) -> "DataStream":
        """One output per record: ``func(value)`` or a ``MapFunction``. ``output_type``
        (``ferroflow.typeinfo``) is the stream's type: e.g. ``Types.ROW(...)`` makes the
        results ``Row`` values."""
        udf = Udf(func, ("map",), wrap=_one_output(output_type))
        return self._then(_nodes.Map(udf), func)._declare(output_type)

    def flat_map(self, func: Any, output_type: Any = None) -> "DataStream":
        """Zero or more outputs per record: ``func(value)`` returns an iterable (a
        generator is fine) or None; or a ``FlatMapFunction``, including the
        collector style ``flatMap(value, collector)``. ``output_type``: as for ``map``."""
        udf = Udf(func, ("flat_map", "flatMap"), collector_arity=1, wrap=_many_outputs(output_type))
        return self._then(_nodes.FlatMap(udf), func)._declare(output_type)

    def filter(self, func: Any) -> "DataStream":
        """Keeps the records for which ``func(value)`` is true."""
        return self._then(_nodes.Filter(Udf(func, ("filter",))), func)

    # -- batch UDFs: one Python call per batch ------------------------------------------

    def map_batch(self, func: Any, batch_format: str = "list") -> "DataStream":
        """One output per record, computed a batch at a time: ``func(batch)`` gets the
        records of one batch the engine hands the operator (up to the source batch size,
        ``FERROFLOW_BATCH_SIZE``, 128 by default) and returns their results, as many
        and in the same order (another count fails the job). Output ``i`` keeps record
        ``i``'s timestamp, so event-time windows after it work as after ``map``.

        ``batch_format`` says what ``func`` gets: ``"list"`` (a list of the records),
        ``"arrow"`` (a ``pyarrow.RecordBatch``) or ``"pandas"`` (a
        ``pandas.DataFrame``), built without a Python loop from records that are
        tuples (columns ``f0``, ``f1``...) or dicts (columns named by their keys) of
        ints, floats, strs, bools and None. A columnar ``func`` returns a
        ``RecordBatch``, ``Table`` or ``DataFrame`` (or a list of records): its rows
        become tuples or dicts, as the input records were."""
        udf = Udf(func, ("map_batch",))
        return self._then(_nodes.MapBatch(udf, _batch_format(batch_format)), func)

    def flat_map_batch(self, func: Any, batch_format: str = "list") -> "DataStream":
        """Any number of outputs per batch (Bytewax's ``flat_map_batch``):
        ``func(batch)`` returns an iterable (a generator is fine) or None. Every output
        takes the batch's greatest timestamp (none if no record has one): after a
        timestamp assigner, windows place the outputs with the batch's latest record,
        so an output is late only if the whole batch was. ``batch_format``: as for
        ``map_batch``."""
        udf = Udf(func, ("flat_map_batch",))
        return self._then(_nodes.FlatMapBatch(udf, _batch_format(batch_format)), func)

    def filter_batch(self, func: Any, batch_format: str = "list") -> "DataStream":
        """Keeps the records of a batch whose entry in ``func(batch)`` is true:
        ``func`` returns one truth value per record, in order (a list, or a NumPy bool
        array, pandas Series or pyarrow BooleanArray). Records keep their timestamps.
        ``batch_format``: as for ``map_batch``."""
        udf = Udf(func, ("filter_batch",))
        return self._then(_nodes.FilterBatch(udf, _batch_format(batch_format)), func)

    def key_by(self, key_selector: Any, key_type: Any = None) -> "KeyedStream":
        """Partitions the stream by key: ``key_selector(value)`` or a ``KeySelector``;
        or a field, read in Rust with no Python call per record: an int index (tuples,
        lists) or a str name (dict items, attributes), e.g. ``key_by(0)``,
        ``key_by("user")`` (see ``ferroflow._aggregations.get_field``). Keys must be
        str, int, float, bool, None, bytes or tuples of these. ``key_type`` is accepted
        (PyFlink) and changes nothing; the keyed stream keeps this stream's type."""
        if _aggregations.is_field(key_selector):
            field = _aggregations.check_field(key_selector, "key_by()")
            node = self._env._add(_nodes.KeyByField(field), _aggregations.label(field) or "*", [self._node])
            return KeyedStream(self._env, node)
        udf = Udf(key_selector, ("get_key", "getKey"))
        return KeyedStream(self._env, self._env._add(_nodes.KeyBy(udf), label_of(key_selector), [self._node]))

    def process(self, func: Any, output_type: Any = None) -> "DataStream":
        """The general operator: ``func.process_element(value, ctx)`` of a
        ``ProcessFunction`` yields (or returns an iterable of) outputs; ``ctx.timestamp()``
        is the record's timestamp and ``ctx.timer_service()`` reads the clocks. Timers
        and state need a keyed stream (``key_by(...).process(f)``). ``output_type``: as
        for ``map``."""
        udf = _wrapped(ProcessUdf(func), _many_outputs(output_type))
        return self._then(_nodes.Process(udf), func)._declare(output_type)

    def union(self, *streams: "DataStream") -> "DataStream":
        """Merges this stream with others (a stream unioned with itself appears twice)."""
        for s in streams:
            if not isinstance(s, DataStream) or s._env is not self._env:
                raise TypeError("union() takes streams of the same environment")
        node = self._env._add(_nodes.Union(), "", [self._node] + [s._node for s in streams])
        return DataStream(self._env, node)

    def _check_same_env(self, other: Any, method: str) -> None:
        if not isinstance(other, DataStream) or other._env is not self._env:
            raise TypeError(f"{method}() takes a stream of the same environment, got {other!r}")

    def _derive(self, kind: _nodes.NodeKind, label: str) -> "DataStream":
        """A stream made by ``kind`` from this one, labelled ``label`` (for API code
        outside this module that builds on streams, e.g. ``joins``)."""
        return DataStream(self._env, self._env._add(kind, label, [self._node]))

    def _derive_keyed(self, kind: _nodes.NodeKind, label: str) -> "KeyedStream":
        """A keyed stream made by the key_by ``kind`` from this one."""
        return KeyedStream(self._env, self._env._add(kind, label, [self._node]))

    def _combine(self, kind: _nodes.NodeKind, label: str, other: "DataStream", api: str) -> "DataStream":
        """A stream made by ``kind`` from this one and ``other`` (``connected``)."""
        return DataStream(self._env, self._env._add(kind, label, [self._node, other._node], api))

    def join(self, other_stream: "DataStream") -> "JoinedStreams":
        """A window join with ``other_stream`` (Flink's Java API):
        ``.where(k1).equal_to(k2).window(assigner).apply(join_function)`` calls
        ``join(a, b)`` for every pair of records of one key and window (an inner join);
        see ``ferroflow.joins``."""
        from .joins import JoinedStreams

        self._check_same_env(other_stream, "join")
        return JoinedStreams(self, other_stream)

    def co_group(self, other_stream: "DataStream") -> "CoGroupedStreams":
        """A window co-group with ``other_stream`` (Flink's Java API):
        ``.where(k1).equal_to(k2).window(assigner).apply(co_group_function)`` calls
        ``co_group(firsts, seconds)`` once per key and window with records on either
        side; see ``ferroflow.joins``."""
        from .joins import CoGroupedStreams

        self._check_same_env(other_stream, "co_group")
        return CoGroupedStreams(self, other_stream)

    coGroup = co_group

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
        node = self._env._add(_nodes.Iterate(max_wait_time_ms), "", [self._node])
        return IterativeStream(self._env, node)

    # -- connected streams and partitioning (Flink's partitioners) --------------------------

    def connect(self, other: Any) -> "Union[ConnectedStreams, BroadcastConnectedStream]":
        """This stream and ``other`` handled by one function with a method per input:
        ``connect(other).map(CoMapFunction)``, ``flat_map(CoFlatMapFunction)``,
        ``process(CoProcessFunction)``, after ``key_by(k1, k2)`` per key; see
        ``ferroflow.connected``. With a ``BroadcastStream`` (``broadcast(descriptor)``),
        ``process((Keyed)BroadcastProcessFunction)``; see ``ferroflow.broadcast``."""
        from .broadcast import BroadcastConnectedStream, BroadcastStream
        from .connected import ConnectedStreams

        if isinstance(other, BroadcastStream):
            self._check_same_env(other._stream, "connect")
            return BroadcastConnectedStream(self, other)

        self._check_same_env(other, "connect")
        return ConnectedStreams(self, other)

    def _partition(self, how: str, partitioner: Any = None, label: str = "") -> "PartitionedStream":
        api = "partition_custom" if how == "custom" else how
        return PartitionedStream(self._env, self._env._add(_nodes.Partition(how, partitioner), label, [self._node], api))

    def rebalance(self) -> "DataStream":
        """Deals the records round-robin to every worker of the next operator (evens
        out skewed partitions)."""
        return self._partition("rebalance")

    def shuffle(self) -> "DataStream":
        """Sends each record to a random worker of the next operator."""
        return self._partition("shuffle")

    def rescale(self) -> "DataStream":
        """Deals the records round-robin to the workers of the next operator that run
        in the same process (none of them crosses processes, so none is serialized);
        to all of them if none runs there. In one process, the same as ``rebalance``."""
        return self._partition("rescale")

    def forward(self) -> "DataStream":
        """Keeps each record on its worker (no exchange): the next operator must run
        on as many workers as this stream, or the job fails when it starts."""
        return self._partition("forward")

    def broadcast(self, *broadcast_state_descriptors: Any) -> Any:
        """Sends every record to every worker of the next operator. With
        ``MapStateDescriptor``s, a ``BroadcastStream`` to connect a stream to, whose
        function keeps those broadcast states (see ``ferroflow.broadcast``)."""
        if broadcast_state_descriptors:
            from .broadcast import broadcast_stream

            return broadcast_stream(self, broadcast_state_descriptors)
        return self._partition("broadcast")

    def partition_custom(self, partitioner: Any, key_selector: Any) -> "DataStream":
        """Sends each record to the worker ``partitioner(key, num_partitions)`` picks
        (a function or a ``Partitioner``'s ``partition``), ``key`` being
        ``key_selector(value)`` (a function or a ``KeySelector``) and
        ``num_partitions`` the next operator's worker count. A result outside
        ``0..num_partitions-1`` fails the job, naming the record."""
        custom = _CustomPartitioner(Udf(partitioner, ("partition",)), Udf(key_selector, ("get_key", "getKey")))
        return self._partition("custom", custom, label_of(partitioner))

    partitionCustom = partition_custom

    # -- event time -----------------------------------------------------------------------

    def assign_timestamps_and_watermarks(self, watermark_strategy: WatermarkStrategy) -> "DataStream":
        """Gives records their event timestamps and the stream its watermarks, as
        ``watermark_strategy`` says (replacing any watermarks from upstream)."""
        if not isinstance(watermark_strategy, WatermarkStrategy):
            raise TypeError("assign_timestamps_and_watermarks() takes a WatermarkStrategy, e.g. "
                            f"WatermarkStrategy.for_monotonous_timestamps(), got {watermark_strategy!r}")
        node = self._env._add(watermark_strategy._kind(), watermark_strategy._label(), [self._node])
        return DataStream(self._env, node)

    def get_side_output(self, output_tag: "OutputTag") -> "DataStream":
        """The side output ``output_tag`` of the operator that made this stream: the
        late records of a window given ``side_output_late_data(output_tag)`` (as they
        entered the window, with their timestamps), or what a process-style function
        (process functions of one, connected, broadcast or interval-joined streams;
        process window functions) yields as ``(output_tag, value)`` (with the timestamp
        its main outputs would have; any number of side outputs). A tag id names one side output of one
        type: asking again with the same id and another ``type_info`` is an error (as
        in PyFlink)."""
        if not isinstance(output_tag, OutputTag):
            raise TypeError(f"get_side_output() takes an OutputTag, got {output_tag!r}")
        kind = self._env._nodes[self._node].kind
        if isinstance(kind, _nodes.Process):
            return self._process_side_output(kind.sides, output_tag)
        registered = kind.late_output_tag if isinstance(kind, _nodes.Window) else None
        if registered == output_tag.tag_id:
            node_id = self._env._add(_nodes.SideOutput(output_tag.tag_id), output_tag.tag_id, [self._node])
            return DataStream(self._env, node_id)._typed_as(output_tag)
        if isinstance(kind, _nodes.Window) and _window_udfs.is_process_style(kind.then or kind.process):
            return self._process_side_output(kind.sides, output_tag)
        if registered is not None:
            why = f"its window sends late data to OutputTag({registered!r})"
        elif isinstance(kind, _nodes.Window):
            why = ("side outputs come from a process-style window function (a ProcessWindowFunction), or from "
                   "side_output_late_data(tag), called before the window function")
        else:
            why = ("side outputs come from a process function (process(), or process() of connected, broadcast "
                   "or interval-joined streams), or from a window's process function or side_output_late_data(tag)")
        raise ValueError(f"get_side_output({output_tag!r}): this stream has no such side output; {why}")

    def _process_side_output(self, sides: _nodes.SideTags, output_tag: "OutputTag") -> "DataStream":
        """The records a process function yields as ``(output_tag, value)``."""
        side = _nodes.ProcessSideOutput(sides.index(output_tag))
        node_id = self._env._add(side, output_tag.tag_id, [self._node], api="get_side_output")
        return DataStream(self._env, node_id)._typed_as(output_tag)

    def _typed_as(self, output_tag: "OutputTag") -> "DataStream":
        """This side output stream of the type of ``output_tag``: its records go through
        the type's conversion (a map after the side output, as in PyFlink)."""
        convert = converter_of(output_tag.type_info)
        stream = self
        if convert is not None:
            kind = _nodes.Map(Udf(convert, ("map",)))
            stream = DataStream(self._env, self._env._add(kind, output_tag.tag_id, [self._node], api="get_side_output"))
        return stream._declare(output_tag.type_info)

    # -- windows over the whole stream (one worker) ----------------------------------------

    def window_all(self, assigner: WindowAssigner) -> "AllWindowedStream":
        """Windows over the whole stream, not per key (``assigner``: see
        ``ferroflow.window``); the window operator runs on one worker."""
        return AllWindowedStream(self, assigner)

    def time_window_all(self, size: TimeSpan, slide: Optional[TimeSpan] = None) -> "AllWindowedStream":
        """Tumbling (or, with ``slide``, sliding) time windows over the whole stream, of
        event or processing time as ``env.set_stream_time_characteristic`` says."""
        return AllWindowedStream(self, _time_windows(self._env, size, slide))

    def count_window_all(self, size: int, slide: Optional[int] = None) -> "AllWindowedStream":
        """Windows of the last ``size`` records of the whole stream, firing every
        ``slide`` records (default: every ``size``)."""
        return _count_windows(AllWindowedStream, self, size, slide)

    # -- sinks ---------------------------------------------------------------------------

    def _sink(self, kind: _nodes.Sink, label: str) -> "DataStreamSink":
        return DataStreamSink(self._env, self._env._add(kind, label, [self._node]))

    def print(self, sink_identifier: Optional[str] = None) -> "DataStreamSink":
        """Prints ``repr(record)`` per line on stdout, prefixed ``k> `` (the worker's
        1-based index) when the job runs with parallelism above 1. Lines from several
        workers never mix: each batch of whole lines is written at once.

        A stream of a declared type prints as PyFlink prints it (``typeinfo.print_text``):
        Java's ``toString`` (``(hi,1,30,7)`` for a tuple, ``true``, ``null``), ``+I[1,Flink]``
        for a row, ``str(record)`` for ``Types.PICKLED_BYTE_ARRAY()``."""
        declared = self._declared()
        if declared is None and self._env._prints_undeclared_as_pyflink:
            declared = self.get_type()  # PyFlink's: str() of a Python object, a text line as it is
        return self._sink(_nodes.Print(print_text(declared)), sink_identifier or "")

    def write_as_text(self, path: Union[str, "os.PathLike[str]"], write_mode: Any = None,
                      overwrite: Optional[bool] = None) -> "DataStreamSink":
        """Writes ``str(record)`` per line to ``path`` (with parallelism above 1, ``path``
        is a directory with one file per worker, named 1, 2, ...). An existing file is
        an error unless ``overwrite=True`` or ``WriteMode.OVERWRITE``.

        Each file is written under a hidden name (``.<name>.inprogress.<random>``, in
        the same directory) and renamed to its final name only when the whole job has
        succeeded; a failed or cancelled job removes it and leaves an overwritten file
        as it was."""
        if overwrite is None:
            if isinstance(write_mode, bool):
                overwrite = write_mode
            else:
                overwrite = str(getattr(write_mode, "name", write_mode)).upper() == "OVERWRITE"
        return self._sink(_nodes.WriteText(os.fspath(path), bool(overwrite)), os.fspath(path))

    def write_to_socket(self, host: str, port: int, serialization_schema: Any) -> "DataStreamSink":
        """Sends ``serialize(record)`` (bytes or str; no delimiter is added) to a TCP
        server at ``host:port``."""
        port = int(port)
        if not 0 < port < 65536:
            raise ValueError(f"port must be an int between 1 and 65535, got {port!r}")
        udf = Udf(serialization_schema, ("serialize",))
        return self._sink(_nodes.WriteSocket(str(host), port, udf.resolve(serialization_schema)), f"{host}:{port}")

    def add_sink(self, sink_func: Any) -> "DataStreamSink":
        """Calls ``sink_func(value)`` (or a ``SinkFunction``'s ``invoke``) for every record."""
        from .functions import DiscardingSink, TwoPhaseCommitSinkFunction

        if type(sink_func) is DiscardingSink:
            return self._sink(_nodes.Discard(), "DiscardingSink")
        if isinstance(sink_func, TwoPhaseCommitSinkFunction):
            udf = Udf(sink_func, ("invoke",), wrap=_two_phase_calls)
            return self._sink(_nodes.TwoPhaseSink(udf), label_of(sink_func))
        udf = Udf(sink_func, ("invoke",), wrap=_drop_context)
        return self._sink(_nodes.SinkFunction(udf), label_of(sink_func))

    def sink_to(self, sink: Any) -> "DataStreamSink":
        """Writes the stream to a sink of the connector API (PyFlink's ``sink_to``):
        a ``FileSink`` (``ferroflow.connectors.file_system``), a ``KafkaSink``
        (``ferroflow.connectors.kafka``) or a ``FixedPartitionedSink``
        (``ferroflow.connectors.partitioned``). A ``SinkFunction`` goes to ``add_sink()``."""
        from .connectors.file_system import FileSink
        from .connectors.kafka import KafkaSink, KafkaSinkBuilder
        from .connectors.partitioned import FixedPartitionedSink, _sink_to

        if isinstance(sink, KafkaSink):
            return self._sink(sink._kind(), sink._label())
        if isinstance(sink, KafkaSinkBuilder):
            raise TypeError("sink_to() takes a KafkaSink: call .build() on the KafkaSink builder first")

        if isinstance(sink, FixedPartitionedSink):
            return _sink_to(self, sink)
        if isinstance(sink, FileSink):
            from .typeinfo import java_text

            # A declared type is written as Java's toString, as Flink's string encoder does.
            text = java_text(self._declared())
            stream = self if text is None else self.map(text).name("Encoder.simple_string_encoder")
            return stream._sink(sink._kind(), sink._label())
        if isinstance(sink, FileSink.RowFormatBuilder):
            raise TypeError("sink_to() takes a FileSink: call .build() on the FileSink builder first")
        hint = "; a SinkFunction goes to add_sink()" if callable(getattr(sink, "invoke", None)) else ""
        raise TypeError(f"sink_to() takes a FileSink, a KafkaSink or a FixedPartitionedSink, got "
                        f"{type(sink).__name__}{hint}")

    def execute_and_collect(self, job_execution_name: Optional[str] = None,
                            limit: Optional[int] = None) -> Union["CloseableIterator", List[Any]]:
        """Runs the job (this stream and everything else added to the environment since
        the last ``execute()``, as ``execute()`` would) and returns an iterator over
        this stream's records as they come; close it (or use ``with``) to stop the job
        early. With ``limit``, returns the list of the first ``limit`` records (as
        PyFlink) and stops the job. A failing job raises its usual error from the
        iterator, after the records that came before. In a multi-process run the
        records arrive in process 0 (the others' iterators yield nothing); see
        ``ferroflow._collect``."""
        from ._collect import execute_and_collect

        return execute_and_collect(self, job_execution_name, limit)

    # Talk-era (Flink 1.5+) name of print().
    def output(self) -> "DataStreamSink":
        """Same as ``print()`` (the name Flink 1.5 gave it)."""
        return self.print()


def _wrapped(udf: _U, wrap: Optional[Callable[[Callable], Callable]]) -> _U:
    """``udf`` whose resolved callables ``wrap`` adapts (a declared output type's
    conversion); for the wrappers that take no ``wrap=`` argument of their own."""
    if wrap is not None:
        udf.wrap = wrap
    return udf


def _drop_context(invoke: Callable) -> Callable:
    """``invoke(value, context)`` gets a None context; ``invoke(value)`` runs as is."""
    from ._plan import positional_arity

    if positional_arity(invoke) == 2:
        return lambda value: invoke(value, None)
    return invoke


def _two_phase_calls(invoke: Callable) -> Any:  # a tuple where Udf expects a callable: the binding unpacks it
    """A ``TwoPhaseCommitSinkFunction``'s methods as the binding calls them:
    ``(invoke(txn, value, context), begin_transaction, pre_commit, commit, abort)``.
    Checked when the sink is added, so a missing one fails at the user's call."""
    from ._plan import find_method, positional_arity

    obj = invoke.__self__  # type: ignore[attr-defined]  # a bound method: resolved on the function object
    calls = []
    for name in ("begin_transaction", "pre_commit", "commit", "abort"):
        method = find_method(obj, (name,))
        if method is None:
            raise TypeError(f"{type(obj).__name__} must implement {name}() (a TwoPhaseCommitSinkFunction)")
        calls.append(method)
    if positional_arity(invoke) == 2:
        return (lambda txn, value, context: invoke(txn, value), *calls)
    return (invoke, *calls)


class DataStreamSink(_RuntimeHints):
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


def _batch_format(name: Any) -> str:
    """Checks a batch UDF's ``batch_format`` at the user's call (and that the library
    it needs is installed)."""
    if name not in ("list", "arrow", "pandas"):
        raise ValueError(f'batch_format must be "list", "arrow" or "pandas", got {name!r}')
    if name != "list":
        from importlib.util import find_spec

        for module in ("pyarrow", "pandas") if name == "pandas" else ("pyarrow",):
            if find_spec(module) is None:
                raise ImportError(f'batch_format="{name}" needs {module}: pip install {module}')
    return name


class KeyedStream(DataStream):
    """A stream partitioned by key. Operators that do not use keys (map, filter,
    print...) treat it as a plain stream."""

    def _stateful_step(self, func: Any, step: str, output_type: Any = None) -> DataStream:
        """A map/flat_map/filter whose function has ``open()``: a keyed process node, so
        its runtime context gives keyed state. A filter's or reduce's stream keeps this
        stream's type."""
        if step in ("filter", "reduce"):
            output_type = self._declared()
        wrap = None if step == "filter" else _many_outputs(output_type)
        kind = _nodes.Process(_wrapped(ProcessUdf(KeyedStep(func, step)), wrap))
        return DataStream(self._env, self._env._add(kind, label_of(func), [self._node], api=step))._declare(output_type)

    def map(self, func: Any, output_type: Any = None) -> DataStream:
        """As ``DataStream.map``; a ``MapFunction`` gets keyed state in ``open()``."""
        return self._stateful_step(func, "map", output_type) if opens(func) else super().map(func, output_type)

    def flat_map(self, func: Any, output_type: Any = None) -> DataStream:
        """As ``DataStream.flat_map``; a ``FlatMapFunction`` gets keyed state in ``open()``."""
        if opens(func):
            return self._stateful_step(func, "flat_map", output_type)
        return super().flat_map(func, output_type)

    def filter(self, func: Any) -> DataStream:
        """As ``DataStream.filter``; a ``FilterFunction`` gets keyed state in ``open()``."""
        return self._stateful_step(func, "filter") if opens(func) else super().filter(func)

    def interval_join(self, other: "KeyedStream") -> "IntervalJoin":
        """An interval join with ``other`` (keyed alike): ``.between(lower,
        upper).process(ProcessJoinFunction)`` is called with each pair of one key whose
        right timestamp is within ``[left.ts + lower, left.ts + upper]`` (event time;
        see ``IntervalJoin``)."""
        if not isinstance(other, KeyedStream) or other._env is not self._env:
            raise TypeError("interval_join() takes a keyed stream of the same environment (key_by() first), "
                            f"got {other!r}")
        return IntervalJoin(self, other)

    def process(self, func: Any, output_type: Any = None) -> DataStream:
        """The general operator of a keyed stream: a ``KeyedProcessFunction`` whose
        ``process_element(value, ctx)`` and ``on_timer(timestamp, ctx)`` yield outputs,
        with keyed state (``get_state(...)`` in ``open``) and per-key timers
        (``ctx.timer_service().register_event_time_timer(t)``...). Outputs of a record
        carry its timestamp, those of an event-time timer the timer's; every pending
        timer fires when a bounded input ends. ``output_type``: as for ``map``."""
        udf = _wrapped(ProcessUdf(func), _many_outputs(output_type))
        return self._then(_nodes.Process(udf), func)._declare(output_type)

    def reduce(self, func: Any) -> DataStream:
        """Rolling reduce: every record emits the updated value of its key (the first
        one unchanged): ``func(value1, value2)`` or a ``ReduceFunction`` (which gets
        keyed state in ``open()``). The result keeps this stream's type (its records
        converted to it, as PyFlink)."""
        if opens(func):
            return self._stateful_step(func, "reduce")
        return self._then(_nodes.Reduce(Udf(func, ("reduce",), wrap=_one_output(self._declared()))), func)

    # -- built-in rolling aggregations: run in Rust, see ferroflow/_aggregations.py -------

    def sum(self, field: Union[int, str, None] = None) -> DataStream:
        """Rolling sum of ``field`` per key: every record emits its key's first record
        with ``field`` replaced by the running sum (a key's first record goes out as
        it is). ``field`` is an int index (tuples, lists) or a str name (dict items,
        attributes); None (the default) sums the records themselves. Same results as
        ``reduce(lambda a, b: <a with field set to a.field + b.field>)``."""
        return self._aggregate("sum", field)

    def min(self, field: Union[int, str, None] = None) -> DataStream:
        """Rolling minimum of ``field`` per key: the key's first record with ``field``
        replaced by the smallest value so far (Flink's ``min``; ``min_by`` gives the
        whole record holding it). None (the default): the records themselves."""
        return self._aggregate("min", field)

    def max(self, field: Union[int, str, None] = None) -> DataStream:
        """Rolling maximum of ``field`` per key: the key's first record with ``field``
        replaced by the largest value so far (Flink's ``max``; ``max_by`` gives the
        whole record holding it). None (the default): the records themselves."""
        return self._aggregate("max", field)

    def min_by(self, field: Union[int, str, None] = None) -> DataStream:
        """Per key, the record with the smallest ``field`` so far, emitted for every
        record; on ties the earlier record stays (Flink's ``minBy``)."""
        return self._aggregate("min_by", field)

    def max_by(self, field: Union[int, str, None] = None) -> DataStream:
        """Per key, the record with the largest ``field`` so far, emitted for every
        record; on ties the earlier record stays (Flink's ``maxBy``)."""
        return self._aggregate("max_by", field)

    def count(self) -> DataStream:
        """Rolling count per key: every record emits ``(key, n)``, ``n`` being how
        many records of its key arrived so far (1 for the first) and ``key`` the
        value the key selector (or key field) gave."""
        env = self._env
        pairs = env._add(_aggregations.count_pairs(env._nodes[self._node].kind), "", [self._node])
        rekeyed = env._add(_nodes.KeyByField(0), "0", [pairs])
        return DataStream(env, env._add(_aggregations.count_sum(), "", [rekeyed], "count"))

    def _aggregate(self, op: str, field: Union[int, str, None]) -> DataStream:
        """A built-in rolling aggregation (see ``ferroflow/_aggregations.py``), run in Rust.
        Without a field: the environment's ``Semantics.aggregation_default_field``."""
        if field is None:
            field = self._env.get_semantics().aggregation_default_field
        kind = _aggregations.rolling(op, field, self._env._nodes[self._node].kind)
        return DataStream(self._env, self._env._add(kind, _aggregations.label(kind.field), [self._node], op))

    # Java-style names for talk-era scripts.
    minBy = min_by
    maxBy = max_by

    def window(self, assigner: WindowAssigner) -> "WindowedStream":
        """Windows per key (``assigner``: see ``ferroflow.window``); give the result a
        window function (``reduce``, ``aggregate``, ``process``, ``apply``)."""
        return WindowedStream(self, assigner)

    def time_window(self, size: TimeSpan, slide: Optional[TimeSpan] = None) -> "WindowedStream":
        """Tumbling (or, with ``slide``, sliding) time windows per key, of event or
        processing time as ``env.set_stream_time_characteristic`` says (default:
        processing time)."""
        return WindowedStream(self, _time_windows(self._env, size, slide))

    def count_window(self, size: int, slide: Optional[int] = None) -> "WindowedStream":
        """Windows of the last ``size`` records per key, firing every ``slide`` records
        (default: every ``size``). At the end of a bounded input a window holding
        records that arrived since it last fired fires once more."""
        return _count_windows(WindowedStream, self, size, slide)


class IntervalJoin:
    """``left.interval_join(right)``: say the bounds with ``between(lower, upper)``.

    The join itself (how records wait for their pairs, and when they go) is
    ``ferroflow.interval_join``."""

    def __init__(self, left: KeyedStream, right: KeyedStream) -> None:
        self._left = left
        self._right = right

    def between(self, lower_bound: Any, upper_bound: Any) -> "IntervalJoined":
        """Pairs whose right timestamp is within ``[left.ts + lower_bound, left.ts +
        upper_bound]`` (``Time``, ``Duration``, ``timedelta`` or ms; may be negative)."""
        lower = to_millis(lower_bound, "lower bound", minimum=None)
        upper = to_millis(upper_bound, "upper bound", minimum=None)
        if lower > upper:
            raise ValueError(f"between(): the lower bound ({lower} ms) is above the upper bound ({upper} ms)")
        return IntervalJoined(self._left, self._right, lower, upper)


class IntervalJoined:
    """An interval join with its bounds: ``process(ProcessJoinFunction)``."""

    def __init__(self, left: KeyedStream, right: KeyedStream, lower: int, upper: int) -> None:
        self._left = left
        self._right = right
        self._lower = lower
        self._upper = upper
        self._lower_inclusive = True
        self._upper_inclusive = True

    def lower_bound_exclusive(self) -> "IntervalJoined":
        """Excludes pairs exactly at ``left.ts + lower``."""
        self._lower_inclusive = False
        return self

    def upper_bound_exclusive(self) -> "IntervalJoined":
        """Excludes pairs exactly at ``left.ts + upper``."""
        self._upper_inclusive = False
        return self

    def process(self, func: Any, output_type: Any = None) -> DataStream:
        """``func.process_element(left, right, ctx)`` (a ``ProcessJoinFunction`` or a
        plain function) yields (or returns an iterable of) outputs for each pair;
        ``ctx.get_left_timestamp()``, ``get_right_timestamp()``, ``timestamp()``."""
        from .interval_join import _IntervalJoinFunction

        lower = self._lower + (0 if self._lower_inclusive else 1)
        upper = self._upper - (0 if self._upper_inclusive else 1)
        if lower > upper:
            raise ValueError("interval_join(): exclusive bounds leave no timestamp to join")
        join = _IntervalJoinFunction(func, lower, upper)
        udf = CoProcessUdf(join)
        return self._left._combine(_nodes.Process(udf), label_of(func), self._right, "interval_join")


def _time_windows(env: "StreamExecutionEnvironment", size: TimeSpan, slide: Optional[TimeSpan]) -> WindowAssigner:
    """``time_window``'s assigner: Flink's, following the time characteristic."""
    event_time = env.get_stream_time_characteristic() is TimeCharacteristic.EventTime
    size_ms = to_millis(size, "window size")
    if slide is None:
        return (TumblingEventTimeWindows if event_time else TumblingProcessingTimeWindows).of(size_ms)
    slide_ms = to_millis(slide, "window slide")
    return (SlidingEventTimeWindows if event_time else SlidingProcessingTimeWindows).of(size_ms, slide_ms)


if TYPE_CHECKING:
    _W = TypeVar("_W", bound="_Windows")


def _count_windows(cls: Type[_W], stream: DataStream, size: int, slide: Optional[int]) -> _W:
    """``count_window``, Flink's way: global windows with a purging count trigger, or,
    sliding, a count evictor keeping ``size`` and a count trigger every ``slide``.
    ``slide == size`` is the tumbling form: the same firings, and at the end of a
    bounded input only the records since the last firing."""
    positive_count(size, "count window size")
    if slide is not None:
        positive_count(slide, "count window slide")
    windowed = cls(stream, GlobalWindows.create())
    if slide is None or slide == size:
        return windowed.trigger(PurgingTrigger.of(CountTrigger.of(size)))
    return windowed.evictor(CountEvictor.of(size)).trigger(CountTrigger.of(slide))


class _Windows:
    """What windowed streams share: the window's settings, then one window function
    that makes the plan's ``window`` node."""

    #: Whether window functions get the key (keyed windows) or not (window_all).
    _keyed = True

    def __init__(self, stream: DataStream, assigner: WindowAssigner) -> None:
        if not isinstance(assigner, WindowAssigner):
            raise TypeError(f"{'window' if self._keyed else 'window_all'}() takes a window assigner, e.g. TumblingEventTimeWindows.of(Duration.of_seconds(5)) "
                            f"from ferroflow.window, got {assigner!r}")
        check_supported(assigner, ASSIGNERS, f"{'window' if self._keyed else 'window_all'}()")
        self._stream = stream
        self._env = stream._env
        self._assigner = assigner
        self._trigger: Optional[Trigger] = None
        self._evictor: Optional[Evictor] = None
        self._lateness = 0
        self._late_tag: Optional[OutputTag] = None

    # -- settings (each returns the windowed stream, for chaining) --------------------------

    def trigger(self: _W, trigger: Trigger) -> _W:
        """Fires the windows with ``trigger`` instead of the assigner's default: a
        built-in one, or your own ``Trigger`` subclass (see ``ferroflow.window``)."""
        self._trigger = checked_trigger(trigger, merging=self._assigner._is_merging())
        return self

    def evictor(self: _W, evictor: Evictor) -> _W:
        """Removes records from a window when it fires (``CountEvictor``, ``TimeEvictor``,
        or your own ``Evictor`` subclass)."""
        self._evictor = checked_evictor(evictor)
        return self

    def allowed_lateness(self: _W, time: TimeSpan) -> _W:
        """Keeps event-time windows for ``time`` after the watermark passed their end:
        a record arriving meanwhile is added and fires the window again. Later records
        are late (see ``side_output_late_data``). Default: 0."""
        self._lateness = to_millis(time, "allowed_lateness()", minimum=0)
        return self

    def side_output_late_data(self: _W, output_tag: OutputTag) -> _W:
        """Sends late records to the side output ``output_tag`` (read it with
        ``get_side_output`` on the window function's result) instead of dropping them
        (dropped records are counted in ``JobExecutionResult.late_records_dropped``)."""
        if not isinstance(output_tag, OutputTag):
            raise TypeError(f"side_output_late_data() takes an OutputTag, got {output_tag!r}")
        self._late_tag = output_tag
        return self

    # -- window functions -----------------------------------------------------------------

    def reduce(self, reduce_function: Any, window_function: Any = None, output_type: Any = None) -> DataStream:
        """One value per window (and key): the values combined by
        ``reduce_function(value1, value2)`` or a ``ReduceFunction``, as they arrive.
        With ``window_function``, that is called with the single reduced value (see
        ``apply`` and ``process`` for its forms). ``output_type`` (default: the input's
        type without a ``window_function``): as for ``DataStream.map``."""
        udf = _window_udfs.ReduceUdf(reduce_function)
        if window_function is None and output_type is None:
            output_type = self._stream._declared()
        return self._build("reduce", udf, window_function, reduce=udf, output_type=output_type)

    def aggregate(self, aggregate_function: Any, window_function: Any = None, accumulator_type: Any = None,
                  output_type: Any = None) -> DataStream:
        """One value per window (and key): ``get_result`` of an ``AggregateFunction``'s
        accumulator, built as values arrive. With ``window_function``, that is called
        with the single result (see ``apply`` and ``process`` for its forms)."""
        udf = _window_udfs.AggregateUdf(aggregate_function)
        if self._assigner._is_merging() and not _window_udfs.has_merge(aggregate_function):
            raise TypeError(f"aggregate(): session windows merge their accumulators, so "
                            f"{type(aggregate_function).__name__} must implement merge(acc_a, acc_b)")
        return self._build("aggregate", udf, window_function, aggregate=udf, output_type=output_type)

    def process(self, process_window_function: Any, output_type: Any = None) -> DataStream:
        """Calls a ``ProcessWindowFunction``'s ``process(key, context, elements)`` (all
        windows: ``ProcessAllWindowFunction.process(context, elements)``) once per
        firing; it returns an iterable of outputs (or takes a trailing collector).
        ``output_type``: as for ``DataStream.map``."""
        udf = _wrapped(_window_udfs.process_udf(process_window_function, self._keyed), _many_outputs(output_type))
        return self._build("process", udf, process=udf, output_type=output_type)

    def apply(self, window_function: Any, output_type: Any = None) -> DataStream:
        """Calls ``apply(key, window, values)`` of a ``WindowFunction`` or a plain function
        (all windows: ``apply(window, values)``) once per firing; it returns an
        iterable of outputs (or takes a trailing collector). ``output_type``: as for
        ``DataStream.map``."""
        udf = _wrapped(_window_udfs.apply_udf(window_function, self._keyed), _many_outputs(output_type))
        return self._build("apply", udf, process=udf, output_type=output_type)

    # -- built-in aggregations: one value per window, reduced in Rust (Flink's sum/min/...) --

    def sum(self, field: Union[int, str, None] = None) -> DataStream:
        """Per window, the window's first record with ``field`` replaced by the sum over
        the window (Flink's ``sum(position)``); None (the default) sums the records
        themselves. Same results as the equivalent ``reduce``, without a Python call
        per record."""
        return self._builtin("sum", field)

    def min(self, field: Union[int, str, None] = None) -> DataStream:
        """Per window, the first record with ``field`` replaced by the window's minimum."""
        return self._builtin("min", field)

    def max(self, field: Union[int, str, None] = None) -> DataStream:
        """Per window, the first record with ``field`` replaced by the window's maximum."""
        return self._builtin("max", field)

    def min_by(self, field: Union[int, str, None] = None) -> DataStream:
        """Per window, the record with the smallest ``field`` (the earlier one on ties)."""
        return self._builtin("min_by", field)

    def max_by(self, field: Union[int, str, None] = None) -> DataStream:
        """Per window, the record with the largest ``field`` (the earlier one on ties)."""
        return self._builtin("max_by", field)

    def _builtin(self, op: str, field: Union[int, str, None]) -> DataStream:
        if field is None:
            field = self._stream._env.get_semantics().aggregation_default_field
        field = _aggregations.check_field(field, f"{op}()")
        label = f"{op}({'' if field is None else repr(field)})"
        return self._build(label, None, builtin=_nodes.Aggregate(op, field), output_type=self._stream._declared())

    def _input(self) -> int:
        """The key_by node the window node reads."""
        return self._stream._node

    def _build(self, api_name: str, udf: Optional[Udf], window_function: Any = None, *,
               reduce: Optional[Udf] = None, builtin: Optional[_nodes.Aggregate] = None,
               aggregate: Optional[Udf] = None, process: Optional[Udf] = None,
               output_type: Any = None) -> DataStream:
        """The window node: the settings, and the window function (``udf``, which the
        label names) in the field of its kind (see ``_nodes.Window``); its stream is of
        ``output_type``, whose conversion the last function gets (``process`` and
        ``apply`` from the caller): a ``window_function``, or for a reduce or aggregate
        without one, a window function of its own (called per firing, not per record)."""
        then = None
        if window_function is not None:
            then = _wrapped(_window_udfs.window_function_udf(window_function, self._keyed),
                            _many_outputs(output_type))
        elif reduce is not None or aggregate is not None:
            then = _converting_window_function(output_type, self._keyed)
        kind = _nodes.Window(
            self._assigner._spec(),
            self._trigger._spec() if self._trigger is not None else None,
            self._evictor._spec() if self._evictor is not None else None,
            self._lateness,
            self._late_tag.tag_id if self._late_tag is not None else None,
            reduce=reduce, builtin=builtin, aggregate=aggregate, process=process, then=then)
        settings = [repr(x) for x in (self._assigner, self._trigger, self._evictor) if x is not None]
        label = f"{' + '.join(settings)} {api_name}" + (f" {label_of(udf.fn)}" if udf is not None else "")
        node = self._env._add(kind, label, [self._input()])
        if not self._keyed:
            self._env._nodes[node].parallelism = 1
        return DataStream(self._env, node)._declare(output_type)


class WindowedStream(_Windows):
    """A keyed stream cut into windows: optionally ``trigger``, ``evictor``,
    ``allowed_lateness``, ``side_output_late_data``; then a window function."""


def _converting_window_function(type_info: Any, keyed: bool) -> Optional[Udf]:
    """A window function emitting the window's one result (a reduce's or aggregate's)
    through ``type_info``'s conversion; None when there is nothing to convert."""
    convert = converter_of(type_info)
    if convert is None:
        return None
    if keyed:
        def converted(key: Any, window: Any, values: Any) -> List[Any]:
            return [convert(v) for v in values]
        return _window_udfs.apply_udf(converted, keyed)

    def converted_all(window: Any, values: Any) -> List[Any]:
        return [convert(v) for v in values]
    return _window_udfs.apply_udf(converted_all, keyed)


def _no_key(value: Any) -> None:
    """window_all's key: the same for every record."""
    return None  # noqa: RET501 - the key is None, said on purpose


class AllWindowedStream(_Windows):
    """A whole stream cut into windows (``window_all``), on one worker: optionally
    ``trigger``, ``evictor``, ``allowed_lateness``, ``side_output_late_data``; then a
    window function, which gets no key."""

    _keyed = False

    def _input(self) -> int:
        return self._env._add(_nodes.KeyBy(Udf(_no_key, ("get_key",))), "window_all", [self._stream._node])


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

            def keep_pristine(self) -> None:
                selector.keep_pristine()

            def renew(self) -> None:
                selector.renew()

            def bind(self, index: int, count: int):
                call, close = selector.bind(index, count)

                def keep(value: Any) -> bool:
                    chosen = call(value)
                    if isinstance(chosen, str):
                        return chosen in names
                    return not names.isdisjoint(chosen)
                return keep, close

        label = f"select {', '.join(sorted(names))}"
        node = self._env._add(_nodes.Filter(_Selected()), label, [self._node])
        return DataStream(self._env, node)


class IterativeStream(DataStream):
    """The head of a feedback loop (see ``DataStream.iterate``)."""

    def close_with(self, feedback_stream: DataStream) -> DataStream:
        """Sends ``feedback_stream`` back to the head of the loop; returns it."""
        if not isinstance(feedback_stream, DataStream) or feedback_stream._env is not self._env:
            raise TypeError("close_with() takes a stream of the same environment")
        kind = self._env._nodes[self._node].kind
        assert isinstance(kind, _nodes.Iterate)
        if kind.feedback is not None:
            raise ValueError("this iteration is already closed")
        if feedback_stream._node <= self._node:
            raise ValueError("close_with() needs a stream computed from the iteration")
        kind.feedback = feedback_stream._node
        return feedback_stream

    closeWith = close_with


class PartitionedStream(DataStream):
    """A stream spread by ``rebalance()``, ``shuffle()``... over the workers of the
    operator that reads it. As in Flink, partitioning is not an operator: it has no
    parallelism of its own."""

    def set_parallelism(self, parallelism: int) -> "DataStream":
        raise TypeError("set_parallelism(): a partitioning (rebalance(), forward()...) runs no operator of its own; "
                        "set the parallelism of the operator that reads it")


class _CustomPartitioner:
    """``partition_custom``'s function as the engine calls it: ``(value,
    num_partitions)`` to ``partitioner(key_selector(value), num_partitions)``. Bound
    per worker like any function."""

    def __init__(self, partitioner: Udf, key_selector: Udf) -> None:
        self.partitioner = partitioner
        self.key_selector = key_selector

    def prepare(self, count: int) -> None:
        self.partitioner.prepare(count)
        self.key_selector.prepare(count)

    def keep_pristine(self) -> None:
        self.partitioner.keep_pristine()
        self.key_selector.keep_pristine()

    def renew(self) -> None:
        self.partitioner.renew()
        self.key_selector.renew()

    def bind(self, index: int, count: int) -> Tuple[Callable, Optional[Callable]]:
        partition, close1 = self.partitioner.bind(index, count)
        key, close2 = self.key_selector.bind(index, count)

        def call(value: Any, num_partitions: int) -> Any:
            return partition(key(value), num_partitions)

        closers = [c for c in (close1, close2) if c is not None]

        def close() -> None:
            for c in closers:
                c()
        return call, (close if closers else None)
