"""The plan's node kinds: the contract between the Python API and the binding.

Every operator of a plan is a ``_plan.Node`` (its display name, inputs, parallelism)
holding one *kind* from this module: which engine operator it is, with its settings
as typed fields. The API creates these and nothing else; the binding
(``crates/python/src/plan.rs``, ``node_kind``) dispatches on the class's ``KIND`` and
reads each field as an attribute of the type declared here. An object of any other
kind, or a field of another type, is ferroflow's bug, not the user's: the job fails
with an ``InternalError`` ("unknown node kind ..."). So the API checks every value a
user gave (ranges included: ints the binding reads as ``i64`` must fit) at the
user's call, with a message for them.

Adding a kind (a new operator):

1. here, a class deriving from ``Source``, ``Sink`` or ``NodeKind``, with ``KIND`` (the
   name ``plan.rs`` matches), ``__slots__`` naming its fields and an ``__init__``
   taking them, typed; user functions go in fields as ``Udf`` (``execute()`` prepares
   every field that is one, see ``fields``);
2. in ``plan.rs``, a struct with the same fields deriving ``FromPyObject`` (fields
   are read as attributes of the same names), and an arm of ``node_kind``'s match on
   ``KIND`` turning it into the engine's ``NodeKind``;
3. the API method that records it: ``env._add(TheKind(...), label, [input])``.

A window's assigner, trigger and evictor are typed the same way (``TumblingSpec``...,
read by ``plan.rs``'s ``window_config`` and ``trigger_of``).

Plain classes with ``__slots__`` rather than dataclasses: ``dataclasses`` imports
``inspect``, which ``import ferroflow`` avoids.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterator, List, Optional, Protocol, Tuple
    from typing import Union as AnyOf

    class PerWorker(Protocol):
        """A user function as the API wraps it (``_plan.Udf``, a source runner...):
        copied per worker before the job starts, bound on each worker."""

        def prepare(self, count: int) -> None: ...

        def keep_pristine(self) -> None: ...

        def renew(self) -> None: ...

    #: A record's field as the built-in aggregations read it: an index, a name, or
    #: None for the whole record (see ``_aggregations.get_field``).
    Field = AnyOf[int, str, None]

__all__ = ["NodeKind", "Source", "Sink", "Collection", "FunctionSource", "TextFile", "KafkaSource", "KafkaSink",
           "Sequence", "Nexmark", "NexmarkFiles", "Socket", "FormatFiles", "TestingSource", "PartitionedSource", "PartitionedSink",
           "Map", "Filter", "FlatMap", "MapBatch", "FilterBatch", "FlatMapBatch", "KeyBy", "KeyByField", "Reduce",
           "Aggregate", "CountPairs",
           "Window", "SideOutput", "AssignTimestamps", "Union", "Iterate", "Print", "Discard", "SinkFunction",
           "TwoPhaseSink",
           "WriteText", "WriteFiles", "WriteSocket", "Process", "ProcessSideOutput", "Typed", "AssignerSpec", "TumblingSpec", "SlidingSpec", "SessionSpec", "GlobalSpec",
           "TriggerSpec", "EventTimeTriggerSpec", "ProcessingTimeTriggerSpec", "CountTriggerSpec",
           "ContinuousEventTimeTriggerSpec", "ContinuousProcessingTimeTriggerSpec", "PurgingTriggerSpec",
           "CustomTriggerSpec", "EvictorSpec", "CountEvictorSpec", "TimeEvictorSpec", "CustomEvictorSpec",
           "Partition", "CoTransform"]


class Typed:
    """A value the binding reads by its ``KIND`` and typed fields (``__slots__``)."""

    __slots__ = ()
    #: The name the binding's match dispatches on.
    KIND = ""

    def fields(self) -> Dict[str, Any]:
        """The kind's fields by name."""
        names: Tuple[str, ...] = self.__slots__
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.fields().items())})"


class NodeKind(Typed):
    """What an operator is, as the engine builds it (base of every kind)."""

    __slots__ = ()
    #: Whether its records are its (first) input's, so its stream keeps that stream's
    #: declared type (``ferroflow.typeinfo``): filters, partitionings, key_by...
    KEEPS_TYPE = False


class Source(NodeKind):
    """A kind with no input. ``bounded``: whether it ends by itself (read by the
    binding: ``RuntimeExecutionMode.BATCH`` refuses a job with a source that need not
    end, and ``AUTOMATIC`` runs it streaming); a kind whose instances differ makes it
    a slot."""

    __slots__ = ()
    bounded = True


class Sink(NodeKind):
    """A kind with no output: a job needs at least one."""

    __slots__ = ()


# -- sources ---------------------------------------------------------------------------


class Collection(Source):
    """``from_collection``: the items of ``make()``'s iterator, from one worker."""

    KIND = "collection"
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Iterator[Any]]) -> None:
        self.make = make


class FunctionSource(Source):
    """``add_source``: a ``SourceFunction`` run by ``runner`` on a thread of its own,
    on every worker if ``parallel``, else on one."""

    KIND = "function_source"
    __slots__ = ("runner", "parallel")
    #: As Flink's ``SourceFunction``: it may run for ever.
    bounded = False

    def __init__(self, runner: PerWorker, parallel: bool) -> None:
        self.runner = runner
        self.parallel = parallel


class TextFile(Source):
    """``read_text_file`` and ``FileSource``: the lines of files or of directories' files
    (with ``recursive``, sub-directories' too), in parallel; ``encoding_errors`` is
    ``"strict"``, ``"replace"`` or ``"ignore"``."""

    KIND = "text_file"
    __slots__ = ("paths", "recursive", "encoding_errors", "monitor_ms")

    def __init__(self, paths: List[str], recursive: bool, encoding_errors: str,
                 monitor_ms: Optional[int] = None) -> None:
        self.paths = paths
        self.recursive = recursive
        self.encoding_errors = encoding_errors
        #: List the paths again every this many ms and read new files (never ends).
        self.monitor_ms = monitor_ms

    @property
    def bounded(self) -> bool:  # type: ignore[override]
        """Monitored folders never end."""
        return self.monitor_ms is None


class CsvSpec(Typed):
    """CSV settings (``CsvSchema``): one-character ``delimiter``, ``quote`` (None: no
    quoting) and ``escape`` (None: quotes doubled), ``header`` line, skip the first data
    row, ``comment`` character, ``null_value`` text, and ``columns`` as (name, type)
    with type ``"string"``, ``"int"``, ``"float"`` or ``"bool"`` (empty: all strings)."""

    #: Read by field as part of ``FormatFiles`` and ``WriteFiles``, never dispatched on.
    KIND = ""
    __slots__ = ("delimiter", "quote", "escape", "header", "skip_first_data_row", "comment", "null_value", "columns")

    def __init__(self, delimiter: str, quote: Optional[str], escape: Optional[str], header: bool,
                 skip_first_data_row: bool, comment: Optional[str], null_value: Optional[str],
                 columns: List[Tuple[str, str]]) -> None:
        self.delimiter = delimiter
        self.quote = quote
        self.escape = escape
        self.header = header
        self.skip_first_data_row = skip_first_data_row
        self.comment = comment
        self.null_value = null_value
        self.columns = columns


class FormatFiles(Source):
    """``FileSource`` with a record format: ``format`` is ``"json_lines"``, ``"csv"``
    (settings in ``csv``) or ``"parquet"``; records are dicts, or ``Row``s with
    ``rows``; with ``batch_rows`` (Parquet) each record is a ``pyarrow.RecordBatch``
    of up to that many rows. ``skip_malformed``: skip and count records that do not
    parse instead of failing. ``monitor_ms`` as ``TextFile``'s."""

    KIND = "format_files"
    __slots__ = ("paths", "recursive", "format", "csv", "rows", "batch_rows", "skip_malformed", "monitor_ms")

    def __init__(self, paths: List[str], recursive: bool, format: str, csv: Optional[CsvSpec], rows: bool,
                 batch_rows: Optional[int], skip_malformed: bool, monitor_ms: Optional[int]) -> None:
        self.paths = paths
        self.recursive = recursive
        self.format = format
        self.csv = csv
        self.rows = rows
        self.batch_rows = batch_rows
        self.skip_malformed = skip_malformed
        self.monitor_ms = monitor_ms

    @property
    def bounded(self) -> bool:  # type: ignore[override]
        """Monitored folders never end."""
        return self.monitor_ms is None


class KafkaSource(Source):
    """``KafkaSource`` (``ferroflow.connectors.kafka``): the partitions of ``topics`` (or
    of every topic ``topic_pattern(name)`` takes) spread over all workers. ``starting``:
    ``"earliest"``, ``"latest"``, ``"committed"`` (else earliest if
    ``reset_to_earliest``, otherwise latest) or ``"timestamp"`` (``starting_timestamp``
    ms); ``stopping`` (bounded): None, ``"latest"`` or ``"timestamp"``
    (``stopping_timestamp``). Values become records as ``value_format`` says:
    ``"string"`` (UTF-8), ``"bytes"``, or ``"call"``: ``deserialize(value)`` (None:
    no record; raising: a malformed message, skipped if ``skip_malformed``).
    ``watermarks``: the strategy as an ``AssignTimestamps`` kind, applied per
    partition in the source; records carry the messages' timestamps otherwise."""

    KIND = "kafka_source"
    __slots__ = ("bootstrap", "topics", "topic_pattern", "group_id", "starting", "starting_timestamp",
                 "reset_to_earliest", "stopping", "stopping_timestamp", "properties", "skip_malformed",
                 "value_format", "deserialize", "watermarks", "bounded")

    def __init__(self, bootstrap: str, topics: Optional[List[str]], topic_pattern: Optional[Callable[[str], bool]],
                 group_id: Optional[str], starting: str, starting_timestamp: int, reset_to_earliest: bool,
                 stopping: Optional[str], stopping_timestamp: int, properties: List[Tuple[str, str]],
                 skip_malformed: bool, value_format: str, deserialize: Optional[Callable[[Any], Any]],
                 watermarks: Optional["AssignTimestamps"]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.topic_pattern = topic_pattern
        self.group_id = group_id
        self.starting = starting
        self.starting_timestamp = starting_timestamp
        self.reset_to_earliest = reset_to_earliest
        self.stopping = stopping
        self.stopping_timestamp = stopping_timestamp
        self.properties = properties
        self.skip_malformed = skip_malformed
        self.value_format = value_format
        self.deserialize = deserialize
        self.watermarks = watermarks
        self.bounded = stopping is not None


class Sequence(Source):
    """``generate_sequence``: the ints ``start`` to ``end`` (both included, i64), in parallel."""

    KIND = "sequence"
    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end


class Nexmark(Source):
    """``NexmarkSource`` (``ferroflow.connectors.nexmark``): the Nexmark benchmark's
    events, made in parallel by the engine's generator as instances of the named tuples
    ``person``, ``auction`` and ``bid``; ``events`` None: unbounded; ``rate`` None: as
    fast as the job takes them (else events/s over all workers)."""

    KIND = "nexmark"
    __slots__ = ("events", "rate", "event_rate", "base_time", "out_of_order_group_size", "hot_seller_ratio",
                 "hot_auction_ratio", "hot_bidder_ratio", "hot_channel_ratio", "active_people",
                 "in_flight_auctions", "num_categories", "person", "auction", "bid", "bounded")

    def __init__(self, events: Optional[int], rate: Optional[int], event_rate: int, base_time: int,
                 out_of_order_group_size: int, hot_seller_ratio: int, hot_auction_ratio: int,
                 hot_bidder_ratio: int, hot_channel_ratio: int, active_people: int, in_flight_auctions: int,
                 num_categories: int, person: type, auction: type, bid: type) -> None:
        self.events = events
        self.rate = rate
        self.event_rate = event_rate
        self.base_time = base_time
        self.out_of_order_group_size = out_of_order_group_size
        self.hot_seller_ratio = hot_seller_ratio
        self.hot_auction_ratio = hot_auction_ratio
        self.hot_bidder_ratio = hot_bidder_ratio
        self.hot_channel_ratio = hot_channel_ratio
        self.active_people = active_people
        self.in_flight_auctions = in_flight_auctions
        self.num_categories = num_categories
        self.person = person
        self.auction = auction
        self.bid = bid
        self.bounded = events is not None


class NexmarkFiles(Source):
    """``NexmarkSource.from_json_lines`` (``ferroflow.connectors.nexmark``): Nexmark
    events read from the JSON-lines files and folders ``paths`` (local or ``s3://``)
    by the file source, as instances of the named tuples ``person``, ``auction`` and
    ``bid``. ``skip_malformed``: skip and count lines that are not events instead of
    failing."""

    KIND = "nexmark_files"
    __slots__ = ("paths", "skip_malformed", "person", "auction", "bid")

    def __init__(self, paths: List[str], skip_malformed: bool, person: type, auction: type, bid: type) -> None:
        self.paths = paths
        self.skip_malformed = skip_malformed
        self.person = person
        self.auction = auction
        self.bid = bid


class Socket(Source):
    """``socket_text_stream``: lines (ended by ``delimiter``, one ASCII character)
    read from a TCP server, on one worker."""

    KIND = "socket"
    __slots__ = ("host", "port", "delimiter", "encoding_errors")
    bounded = False

    def __init__(self, host: str, port: int, delimiter: str, encoding_errors: str) -> None:
        self.host = host
        self.port = port
        self.delimiter = delimiter
        self.encoding_errors = encoding_errors


class TestingSource(Source):
    """``ferroflow.testing.TestSource``: ``events`` in order, each
    ``("record", value, timestamp or None)``, ``("watermark", t)`` or
    ``("processing_time", t)``; the job runs on a manual processing-time clock
    starting at ``processing_time_start``."""

    __test__ = False  # not a pytest test class, despite its name
    KIND = "testing_source"
    __slots__ = ("events", "processing_time_start")

    def __init__(self, events: List[Tuple[Any, ...]], processing_time_start: int) -> None:
        self.events = events
        self.processing_time_start = processing_time_start


class PartitionedSource(Source):
    """``from_source`` of a ``FixedPartitionedSource`` or ``DynamicSource``
    (``connectors/partitioned.py``): ``parts`` lists the parts, builds their readers and
    pickles their states; each part is read by the worker its name's hash picks, a
    dynamic source's one partition per worker."""

    KIND = "partitioned_source"
    __slots__ = ("parts",)
    #: Parts may never end (a queue's shards).
    bounded = False

    def __init__(self, parts: Any) -> None:
        self.parts = parts

    def fingerprint(self) -> bytes:
        """The listed parts, which every process must agree on (``_cluster.plan_fingerprint``)."""
        result: bytes = self.parts.fingerprint()
        return result


# -- transformations -------------------------------------------------------------------


class Map(NodeKind):
    """One output per record: ``udf(value)``."""

    KIND = "map"
    __slots__ = ("udf",)

    def __init__(self, udf: PerWorker) -> None:
        self.udf = udf


class Filter(NodeKind):
    """The records for which ``udf(value)`` is true."""

    KIND = "filter"
    KEEPS_TYPE = True
    __slots__ = ("udf",)

    def __init__(self, udf: PerWorker) -> None:
        self.udf = udf


class FlatMap(NodeKind):
    """The items of the iterable ``udf(value)`` returns (None: nothing)."""

    KIND = "flat_map"
    __slots__ = ("udf",)

    def __init__(self, udf: PerWorker) -> None:
        self.udf = udf


class MapBatch(NodeKind):
    """One output per record, for a whole batch at once: ``udf(batch)`` returns as
    many results as the batch has records, in order. ``batch_format``: what ``udf``
    gets (``"list"``, ``"arrow"``: a pyarrow RecordBatch, ``"pandas"``: a DataFrame)."""

    KIND = "map_batch"
    __slots__ = ("udf", "batch_format")

    def __init__(self, udf: PerWorker, batch_format: str) -> None:
        self.udf = udf
        self.batch_format = batch_format


class FilterBatch(NodeKind):
    """The records of a batch whose entry in ``udf(batch)`` (one truth value per
    record) is true. ``batch_format``: as for ``MapBatch``."""

    KIND = "filter_batch"
    KEEPS_TYPE = True
    __slots__ = ("udf", "batch_format")

    def __init__(self, udf: PerWorker, batch_format: str) -> None:
        self.udf = udf
        self.batch_format = batch_format


class FlatMapBatch(NodeKind):
    """The items ``udf(batch)`` returns for a whole batch (any number; None:
    nothing). ``batch_format``: as for ``MapBatch``."""

    KIND = "flat_map_batch"
    __slots__ = ("udf", "batch_format")

    def __init__(self, udf: PerWorker, batch_format: str) -> None:
        self.udf = udf
        self.batch_format = batch_format


class KeyBy(NodeKind):
    """Partitions by ``udf(value)``."""

    KIND = "key_by"
    KEEPS_TYPE = True
    __slots__ = ("udf",)

    def __init__(self, udf: PerWorker) -> None:
        self.udf = udf


class KeyByField(NodeKind):
    """Partitions by a field of the record, read in Rust (``key_by(0)``)."""

    KIND = "key_by_field"
    KEEPS_TYPE = True
    __slots__ = ("field",)

    def __init__(self, field: Field) -> None:
        self.field = field


class Reduce(NodeKind):
    """Rolling reduce per key: ``udf(accumulated, value)``."""

    KIND = "reduce"
    KEEPS_TYPE = True
    __slots__ = ("udf",)

    def __init__(self, udf: PerWorker) -> None:
        self.udf = udf


class Aggregate(NodeKind):
    """A built-in rolling aggregation per key, in Rust (``_aggregations``): ``op`` is
    ``sum``, ``min``, ``max``, ``min_by`` or ``max_by`` of ``field``. ``what`` names it
    in errors (None: ``op(field)``); ``key_field``, the field index the stream is keyed
    by, lets ``(key, number)`` pairs keep a number per key. Also a window's built-in
    reduce (``Window.builtin``)."""

    KIND = "aggregate"
    KEEPS_TYPE = True
    __slots__ = ("op", "field", "what", "key_field")

    def __init__(self, op: str, field: Field, what: Optional[str] = None, key_field: Optional[int] = None) -> None:
        self.op = op
        self.field = field
        self.what = what
        self.key_field = key_field


class CountPairs(NodeKind):
    """``count()``'s first step: ``(key, 1)`` per record, the key read from ``field``
    or, when ``udf`` is given, returned by it."""

    KIND = "count_pairs"
    __slots__ = ("field", "udf")

    def __init__(self, field: Field = None, udf: Optional[PerWorker] = None) -> None:
        self.field = field
        self.udf = udf


class Window(NodeKind):
    """Windows per key: ``assigner``, ``trigger`` and ``evictor`` are the settings'
    specs (below, made by ``window.py``'s ``_spec()``; trigger and evictor None for the
    assigner's defaults), ``allowed_lateness`` in ms, late records to the side output
    ``late_output_tag`` (None: dropped). The window function is exactly one of
    ``reduce`` (a ``ReduceFunction``), ``builtin`` (``sum(2)`` and the like),
    ``aggregate`` (an ``_window_udfs.AggregateUdf``) or ``process`` (a process
    callable, see ``_window_udfs``); ``then``, a process callable, gets the result of
    ``reduce``, ``builtin`` or ``aggregate``."""

    KIND = "window"
    __slots__ = ("assigner", "trigger", "evictor", "allowed_lateness", "late_output_tag", "reduce", "builtin",
                 "aggregate", "process", "then", "sides")

    def __init__(self, assigner: AssignerSpec, trigger: Optional[TriggerSpec],
                 evictor: Optional[EvictorSpec], allowed_lateness: int, late_output_tag: Optional[str],
                 reduce: Optional[PerWorker] = None, builtin: Optional[Aggregate] = None,
                 aggregate: Optional[PerWorker] = None, process: Optional[PerWorker] = None,
                 then: Optional[PerWorker] = None) -> None:
        self.assigner = assigner
        self.trigger = trigger
        self.evictor = evictor
        self.allowed_lateness = allowed_lateness
        self.late_output_tag = late_output_tag
        self.reduce = reduce
        self.builtin = builtin
        self.aggregate = aggregate
        self.process = process
        self.then = then
        #: What a process-style window function yields as ``(output_tag, value)`` and
        #: the plan reads: routed by a process node after the window.
        self.sides = SideTags()


class SideOutput(NodeKind):
    """The late records of the window node it reads (``get_side_output(tag)``)."""

    KIND = "side_output"
    __slots__ = ("tag",)

    def __init__(self, tag: str) -> None:
        self.tag = tag


class AssignTimestamps(NodeKind):
    """Timestamps from ``assigner(value, record_timestamp)``, or from the record's
    ``field`` (in Rust), or kept as they are (both None); watermarks trail the
    highest timestamp by ``out_of_orderness`` ms (0: monotonous; None: no
    watermarks); ``idleness``: ms without records after which a worker stops holding
    the watermark back (None: never)."""

    KIND = "assign_timestamps"
    KEEPS_TYPE = True
    __slots__ = ("assigner", "field", "out_of_orderness", "idleness")

    def __init__(self, assigner: Optional[PerWorker], field: Field, out_of_orderness: Optional[int],
                 idleness: Optional[int]) -> None:
        self.assigner = assigner
        self.field = field
        self.out_of_orderness = out_of_orderness
        self.idleness = idleness


class Union(NodeKind):
    """Its inputs merged."""

    KIND = "union"
    KEEPS_TYPE = True
    __slots__ = ()


class Iterate(NodeKind):
    """The head of a feedback loop: its input and the stream of node ``feedback``
    (set by ``close_with``; None: not closed). Records still circulating
    ``max_wait_ms`` after the input ended are dropped (None or 0: no limit)."""

    KIND = "iterate"
    KEEPS_TYPE = True
    __slots__ = ("max_wait_ms", "feedback")

    def __init__(self, max_wait_ms: Optional[int], feedback: Optional[int] = None) -> None:
        self.max_wait_ms = max_wait_ms
        self.feedback = feedback


class Partition(NodeKind):
    """``rebalance()``, ``shuffle()``, ``rescale()``, ``forward()``, ``broadcast()`` or
    ``partition_custom()`` (``how``: ``"rebalance"``... ``"custom"``): its input, spread
    over the workers of each operator reading it. ``partitioner`` (custom only) is
    called ``(value, num_partitions)`` and returns the worker's index."""

    KIND = "partition"
    KEEPS_TYPE = True
    __slots__ = ("how", "partitioner")

    def __init__(self, how: str, partitioner: Optional[PerWorker] = None) -> None:
        self.how = how
        self.partitioner = partitioner


class CoTransform(NodeKind):
    """``connect(other)`` then ``map`` or ``flat_map``: two inputs (keyed when both are
    key_by nodes); ``udf`` binds to one callable per input. ``step``: ``"map"`` (one
    output each) or ``"flat_map"`` (an iterable or None). (``process`` on connected
    streams is a ``Process`` node with two inputs.)"""

    KIND = "co_transform"
    __slots__ = ("udf", "step")

    def __init__(self, udf: PerWorker, step: str) -> None:
        self.udf = udf
        self.step = step


# -- sinks -----------------------------------------------------------------------------


class Process(NodeKind):
    """``process(f)``: a ``KeyedProcessFunction`` after ``key_by`` (keyed state and
    timers), or a ``ProcessFunction`` on any other stream (the engine tells them apart
    by the input). ``udf`` is a ``_plan.ProcessUdf``."""

    KIND = "process"
    __slots__ = ("udf", "sides")

    def __init__(self, udf: PerWorker) -> None:
        self.udf = udf
        self.sides = SideTags()

    @property
    def side_tags(self) -> List[str]:
        """Ids of the side outputs read; side output ``i + 1`` is ``side_tags[i]``."""
        return self.sides.tags


class SideTags:
    """The side outputs of a process function (or of a process-style window function)
    that the plan reads (``get_side_output``), in the order first read: side output
    ``i + 1`` is ``tags[i]``, and the operator gets exactly these outputs."""

    __slots__ = ("tags", "types")

    def __init__(self) -> None:
        self.tags: List[str] = []
        #: The ``type_info`` each was first read with (a tag id names one type).
        self.types: List[Any] = []

    def index(self, tag: Any) -> int:
        """The side output of ``tag`` (an ``OutputTag``), numbered from 1, added if new.
        The same id with another type is an error (as in PyFlink)."""
        if tag.tag_id not in self.tags:
            self.tags.append(tag.tag_id)
            self.types.append(tag.type_info)
        i = self.tags.index(tag.tag_id)
        first = self.types[i]
        # By repr too: type labels without __eq__ (a PyFlink script's Types shim) that
        # say the same are the same.
        if tag.type_info != first and repr(tag.type_info) != repr(first):
            raise ValueError(f"get_side_output({tag!r}): this side output was already read with type "
                             f"{first!r}, not {tag.type_info!r}; a tag id names one side output, of one type")
        return i + 1

    def __repr__(self) -> str:
        return f"SideTags({self.tags!r})"


class ProcessSideOutput(NodeKind):
    """``get_side_output(tag)`` of a process function's stream: its side output
    ``index`` (``1..=len(side_tags)``); of a window's stream, its process-style
    window function's (see ``environment._engine_nodes``)."""

    KIND = "process_side_output"
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class Print(Sink):
    """``repr(record)`` per line on ``sys.stdout``; ``text(record)`` instead when given
    (a typed stream's print form, see ``typeinfo.print_text``)."""

    KIND = "print"
    __slots__ = ("text",)

    def __init__(self, text: Optional[Callable[[Any], str]] = None) -> None:
        self.text = text


class Discard(Sink):
    """Drops every record (``DiscardingSink``)."""

    KIND = "discard"
    __slots__ = ()


class SinkFunction(Sink):
    """``udf(value)`` per record (``add_sink``)."""

    KIND = "sink_function"
    __slots__ = ("udf",)

    def __init__(self, udf: PerWorker) -> None:
        self.udf = udf


class TwoPhaseSink(Sink):
    """A ``TwoPhaseCommitSinkFunction`` (``add_sink``): ``udf`` binds, per worker, to
    the tuple ``(invoke(txn, value, context), begin_transaction, pre_commit, commit,
    abort)``; the binding keeps the transactions and saves them with checkpoints."""

    KIND = "two_phase_sink"
    __slots__ = ("udf",)

    def __init__(self, udf: PerWorker) -> None:
        self.udf = udf


class PartitionedSink(Sink):
    """``sink_to`` of a ``FixedPartitionedSink``, after the routing of each item to its
    part's owner: ``parts`` builds this worker's writers and pickles their states."""

    KIND = "partitioned_sink"
    __slots__ = ("parts",)

    def __init__(self, parts: Any) -> None:
        self.parts = parts

    def fingerprint(self) -> bytes:
        """As ``PartitionedSource.fingerprint``."""
        result: bytes = self.parts.fingerprint()
        return result


class WriteText(Sink):
    """``str(record)`` per line to ``path`` (``write_as_text``)."""

    KIND = "write_text"
    __slots__ = ("path", "overwrite")

    def __init__(self, path: str, overwrite: bool) -> None:
        self.path = path
        self.overwrite = overwrite


class WriteFiles(Sink):
    """``FileSink``: ``str(record)`` per line into part files under ``path`` named
    ``<prefix>-<uid>-<worker>-<counter><suffix>``, rolled past ``part_size`` bytes or after
    ``rollover_interval``/``inactivity_interval`` ms (None: never), in the directory
    ``bucket(now_ms)`` names (None: ``path`` itself)."""

    KIND = "write_files"
    __slots__ = ("path", "prefix", "suffix", "part_size", "rollover_interval", "inactivity_interval", "bucket",
                 "format", "csv", "parquet")

    def __init__(self, path: str, prefix: str, suffix: str, part_size: Optional[int],
                 rollover_interval: Optional[int], inactivity_interval: Optional[int],
                 bucket: Optional[Callable[[int], str]], format: str = "text",
                 csv: Optional[CsvSpec] = None, parquet: Optional[List[Tuple[str, str]]] = None) -> None:
        #: ``"text"`` (``str(record)``), ``"json_lines"``, ``"csv"`` (settings in ``csv``)
        #: or ``"parquet"`` (columns in ``parquet``: name and ``"bool"``, ``"int32"``,
        #: ``"int64"``, ``"float32"``, ``"float64"``, ``"string"`` or ``"bytes"``).
        self.format = format
        self.csv = csv
        self.parquet = parquet
        self.path = path
        self.prefix = prefix
        self.suffix = suffix
        self.part_size = part_size
        self.rollover_interval = rollover_interval
        self.inactivity_interval = inactivity_interval
        self.bucket = bucket


class KafkaSink(Sink):
    """``KafkaSink`` (``ferroflow.connectors.kafka``): records to Kafka. ``value_format``
    ``"string"``: ``str(record)`` as UTF-8 to ``topic``; ``"call"``: ``serialize(record)``
    returns ``(topic, key, value, partition, timestamp)``, each None or of its type.
    ``delivery``: ``"none"``, ``"at_least_once"`` or ``"exactly_once"``."""

    KIND = "kafka_sink"
    __slots__ = ("bootstrap", "topic", "properties", "delivery", "transactional_id_prefix", "value_format",
                 "serialize")

    def __init__(self, bootstrap: str, topic: Optional[str], properties: List[Tuple[str, str]], delivery: str,
                 transactional_id_prefix: Optional[str], value_format: str,
                 serialize: Optional[Callable[[Any], Any]]) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.properties = properties
        self.delivery = delivery
        self.transactional_id_prefix = transactional_id_prefix
        self.value_format = value_format
        self.serialize = serialize


class WriteSocket(Sink):
    """``serialize(record)`` (bytes or str) to a TCP server (``write_to_socket``)."""

    KIND = "write_socket"
    __slots__ = ("host", "port", "serialize")

    def __init__(self, host: str, port: int, serialize: Callable[[Any], Any]) -> None:
        self.host = host
        self.port = port
        self.serialize = serialize


# -- a window's settings (fields of ``Window``; the binding's ``window_config`` reads them) --------


class AssignerSpec(Typed):
    """Which windows a record goes to; ``event_time`` False: processing time."""

    __slots__ = ()


class TumblingSpec(AssignerSpec):
    """Back-to-back windows of ``size`` ms, aligned on the epoch plus ``offset``."""

    KIND = "tumbling"
    __slots__ = ("event_time", "size", "offset")

    def __init__(self, event_time: bool, size: int, offset: int) -> None:
        self.event_time = event_time
        self.size = size
        self.offset = offset


class SlidingSpec(AssignerSpec):
    """Windows of ``size`` ms, one starting every ``slide`` ms (plus ``offset``)."""

    KIND = "sliding"
    __slots__ = ("event_time", "size", "slide", "offset")

    def __init__(self, event_time: bool, size: int, slide: int, offset: int) -> None:
        self.event_time = event_time
        self.size = size
        self.slide = slide
        self.offset = offset


class SessionSpec(AssignerSpec):
    """Sessions closed by a ``gap`` in ms, or by the gap ``gap_fn(value)`` returns."""

    KIND = "session"
    __slots__ = ("event_time", "gap", "gap_fn")

    def __init__(self, event_time: bool, gap: Optional[int], gap_fn: Optional[PerWorker]) -> None:
        self.event_time = event_time
        self.gap = gap
        self.gap_fn = gap_fn


class GlobalSpec(AssignerSpec):
    """One window per key."""

    KIND = "global"
    __slots__ = ()


class TriggerSpec(Typed):
    """When a window fires."""

    __slots__ = ()


class EventTimeTriggerSpec(TriggerSpec):
    KIND = "event_time"
    __slots__ = ()


class ProcessingTimeTriggerSpec(TriggerSpec):
    KIND = "processing_time"
    __slots__ = ()


class CountTriggerSpec(TriggerSpec):
    """Every ``count``-th record."""

    KIND = "count"
    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count


class ContinuousEventTimeTriggerSpec(TriggerSpec):
    """Every ``interval`` ms of event time, and at the window's end."""

    KIND = "continuous_event_time"
    __slots__ = ("interval",)

    def __init__(self, interval: int) -> None:
        self.interval = interval


class ContinuousProcessingTimeTriggerSpec(TriggerSpec):
    """Every ``interval`` ms of processing time, and at the window's end."""

    KIND = "continuous_processing_time"
    __slots__ = ("interval",)

    def __init__(self, interval: int) -> None:
        self.interval = interval


class PurgingTriggerSpec(TriggerSpec):
    """``inner``'s firings, each emptying the window."""

    KIND = "purging"
    __slots__ = ("inner",)

    def __init__(self, inner: TriggerSpec) -> None:
        self.inner = inner


class CustomTriggerSpec(TriggerSpec):
    """A user's ``Trigger`` subclass, run in Python: ``udf`` is its
    ``_window_udfs.TriggerUdf``; ``can_merge`` its ``can_merge()``."""

    KIND = "custom"
    __slots__ = ("udf", "can_merge")

    def __init__(self, udf: PerWorker, can_merge: bool) -> None:
        self.udf = udf
        self.can_merge = can_merge


class EvictorSpec(Typed):
    """Which records leave a window when it fires (after the window function if
    ``do_evict_after``)."""

    __slots__ = ()


class CountEvictorSpec(EvictorSpec):
    """Keeps the last ``count`` records."""

    KIND = "count"
    __slots__ = ("count", "do_evict_after")

    def __init__(self, count: int, do_evict_after: bool) -> None:
        self.count = count
        self.do_evict_after = do_evict_after


class TimeEvictorSpec(EvictorSpec):
    """Keeps the records within ``window_size`` ms of the newest."""

    KIND = "time"
    __slots__ = ("window_size", "do_evict_after")

    def __init__(self, window_size: int, do_evict_after: bool) -> None:
        self.window_size = window_size
        self.do_evict_after = do_evict_after


class CustomEvictorSpec(EvictorSpec):
    """A user's ``Evictor`` subclass, run in Python: ``udf`` is its
    ``_window_udfs.EvictorUdf``."""

    KIND = "custom"
    __slots__ = ("udf",)

    def __init__(self, udf: PerWorker) -> None:
        self.udf = udf
