"""PyFlink's module names (``pyflink.common``, ``pyflink.datastream`` ...), served by ferroflow.

A PyFlink DataStream script runs unchanged: ``from pyflink.datastream import
StreamExecutionEnvironment`` gives ferroflow's classes under PyFlink's module layout
(``MODULES`` below says where each name comes from). A name PyFlink has and ferroflow
does not (the Table API, the JVM gateway, a connector not built yet) is served too, as a
stand-in that fails where it is used with one line naming it and what to use instead
(``ferroflow.compat.unsupported``).

How it coexists with a real ``apache-flink`` installation (docs/pyflink.md):

- ferroflow's wheel installs ``ferroflow-pyflink.pth``, which appends a small hook to the
  *end* of ``sys.meta_path``. ``python job.py`` therefore imports a real ``pyflink``
  package when one is installed, and ferroflow's names only when none is.
- ``ferroflow run job.py`` puts ferroflow's names first (``prefer_ferroflow()``) and, if a
  real ``pyflink`` is installed too, says so in one line on stderr.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
import types
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

from ._finder import ServedFinder, all_served

__all__ = ["MODULES", "find_spec", "prefer_ferroflow", "real_pyflink", "served_names"]

#: PyFlink module -> where its names come from: ``"ferroflow.module: Name Other"`` for names
#: ferroflow has, ``"!reason: Name Other"`` for names it does not (``unsupported.REASONS``
#: says why and what to use instead). A module with ``"!reason: *"`` serves every name as
#: such a stand-in. The names are PyFlink 2.3's public ones (each module's ``__all__``).
MODULES: Dict[str, Tuple[str, ...]] = {
    "pyflink": (),
    "pyflink.common": (
        "ferroflow.typeinfo: TypeInformation Types",
        "ferroflow.row: Row RowKind",
        "ferroflow.watermarks: WatermarkStrategy",
        "ferroflow.windowing: Duration Time Instant",
        "ferroflow.execution_config: ExecutionConfig",
        "ferroflow.environment: JobExecutionResult",
        "ferroflow.restart_strategy: RestartStrategies RestartStrategyConfiguration",
        "ferroflow.functions: SerializationSchema DeserializationSchema SimpleStringSchema ByteArraySchema Encoder",
        "ferroflow.compat.params: Configuration",
        ("!jvm: ConfigOption ConfigOptions TypeSerializer CompletableFuture InputDependencyConstraint JobClient "
         "JobID JobStatus AssignerWithPeriodicWatermarksWrapper"),
    ),
    "pyflink.common.typeinfo": ("ferroflow.typeinfo: TypeInformation Types",),
    "pyflink.common.types": ("ferroflow.row: Row RowKind",),
    "pyflink.common.time": ("ferroflow.windowing: Duration Time Instant",),
    "pyflink.common.watermark_strategy": ("ferroflow.watermarks: WatermarkStrategy TimestampAssigner",),
    "pyflink.common.serialization": (
        ("ferroflow.functions: SerializationSchema DeserializationSchema SimpleStringSchema ByteArraySchema "
         "RowFieldExtractorSchema Encoder"),
        "!bulk: BulkWriterFactory",
    ),
    "pyflink.common.configuration": ("ferroflow.compat.params: Configuration",),
    "pyflink.common.execution_config": ("ferroflow.execution_config: ExecutionConfig",),
    "pyflink.common.restart_strategy": (
        "ferroflow.restart_strategy: RestartStrategies RestartStrategyConfiguration",),
    "pyflink.common.job_execution_result": ("ferroflow.environment: JobExecutionResult",),
    "pyflink.datastream": (
        "ferroflow.compat.pyflink_environment: StreamExecutionEnvironment",
        "ferroflow.datastream: DataStream KeyedStream WindowedStream AllWindowedStream DataStreamSink OutputTag",
        "ferroflow.connected: ConnectedStreams",
        "ferroflow.broadcast: BroadcastStream BroadcastConnectedStream",
        ("ferroflow.functions: MapFunction CoMapFunction FlatMapFunction CoFlatMapFunction ReduceFunction "
         "FilterFunction ProcessFunction KeyedProcessFunction CoProcessFunction KeyedCoProcessFunction "
         "WindowFunction AllWindowFunction ProcessWindowFunction ProcessAllWindowFunction AggregateFunction "
         "BroadcastProcessFunction KeyedBroadcastProcessFunction RuntimeContext TimerService KeySelector "
         "Partitioner SourceFunction SinkFunction"),
        "ferroflow.checkpoint_config: CheckpointingMode CheckpointConfig ExternalizedCheckpointRetention",
        "ferroflow.execution_mode: RuntimeExecutionMode",
        "ferroflow.windowing: Window TimeWindow CountWindow GlobalWindow",
        "ferroflow.window: WindowAssigner MergingWindowAssigner TriggerResult Trigger",
        "ferroflow.time_domain: TimeDomain",
        "!async: AsyncDataStream AsyncFunction AsyncRetryPredicate AsyncRetryStrategy",
        ("!state_backend: StateBackend HashMapStateBackend EmbeddedRocksDBStateBackend CustomStateBackend "
         "PredefinedOptions"),
        ("!checkpoint_storage: CheckpointStorage JobManagerCheckpointStorage FileSystemCheckpointStorage "
         "CustomCheckpointStorage"),
        "!slots: SlotSharingGroup MemorySize",
    ),
    "pyflink.datastream.stream_execution_environment": (
        "ferroflow.compat.pyflink_environment: StreamExecutionEnvironment",),
    "pyflink.datastream.data_stream": (
        "ferroflow.datastream: DataStream KeyedStream WindowedStream AllWindowedStream DataStreamSink",
        "ferroflow.connected: ConnectedStreams",
        "ferroflow.broadcast: BroadcastStream BroadcastConnectedStream",
        "!jvm: CloseableIterator",
    ),
    "pyflink.datastream.functions": (
        ("ferroflow.functions: RuntimeContext MapFunction CoMapFunction FlatMapFunction CoFlatMapFunction "
         "ReduceFunction AggregateFunction KeySelector FilterFunction Partitioner SourceFunction SinkFunction "
         "ProcessFunction CoProcessFunction KeyedProcessFunction KeyedCoProcessFunction TimerService "
         "WindowFunction AllWindowFunction ProcessWindowFunction ProcessAllWindowFunction "
         "BroadcastProcessFunction KeyedBroadcastProcessFunction"),
        "!async: AsyncFunction AsyncFunctionDescriptor AsyncRetryPredicate AsyncRetryStrategy",
    ),
    "pyflink.datastream.window": (
        "ferroflow.windowing: Window TimeWindow CountWindow GlobalWindow",
        ("ferroflow.window: WindowAssigner MergingWindowAssigner TumblingProcessingTimeWindows "
         "TumblingEventTimeWindows SlidingProcessingTimeWindows SlidingEventTimeWindows "
         "ProcessingTimeSessionWindows EventTimeSessionWindows DynamicProcessingTimeSessionWindows "
         "DynamicEventTimeSessionWindows GlobalWindows TriggerResult Trigger EventTimeTrigger "
         "ProcessingTimeTrigger ContinuousEventTimeTrigger ContinuousProcessingTimeTrigger PurgingTrigger "
         "CountTrigger SessionWindowTimeGapExtractor"),
        ("!window_internals: CountTumblingWindowAssigner CountSlidingWindowAssigner NeverTrigger "
         "TimeWindowSerializer CountWindowSerializer GlobalWindowSerializer"),
    ),
    "pyflink.datastream.state": (
        ("ferroflow.state: ValueStateDescriptor ValueState ListStateDescriptor ListState MapStateDescriptor "
         "MapState ReducingStateDescriptor ReducingState AggregatingStateDescriptor AggregatingState "
         "StateTtlConfig"),
        "ferroflow.broadcast: ReadOnlyBroadcastState BroadcastState",
        "!operator_state: OperatorStateStore",
    ),
    "pyflink.datastream.output_tag": ("ferroflow.output_tag: OutputTag",),
    "pyflink.datastream.time_domain": ("ferroflow.time_domain: TimeDomain",),
    "pyflink.datastream.timerservice": ("ferroflow.timerservice: TimerService",),
    "pyflink.datastream.execution_mode": ("ferroflow.execution_mode: RuntimeExecutionMode",),
    "pyflink.datastream.checkpoint_config": ("ferroflow.checkpoint_config: CheckpointConfig",),
    "pyflink.datastream.checkpointing_mode": ("ferroflow.checkpoint_config: CheckpointingMode",),
    "pyflink.datastream.externalized_checkpoint_retention": (
        "ferroflow.checkpoint_config: ExternalizedCheckpointRetention",),
    "pyflink.datastream.state_backend": (
        ("!state_backend: StateBackend HashMapStateBackend EmbeddedRocksDBStateBackend CustomStateBackend "
         "PredefinedOptions"),),
    "pyflink.datastream.checkpoint_storage": (
        ("!checkpoint_storage: CheckpointStorage JobManagerCheckpointStorage FileSystemCheckpointStorage "
         "CustomCheckpointStorage"),),
    "pyflink.datastream.slot_sharing_group": ("!slots: SlotSharingGroup MemorySize",),
    "pyflink.datastream.connectors": (
        "ferroflow.connectors.kafka: DeliveryGuarantee",
        "!connector_base: Sink Source",
    ),
    "pyflink.datastream.connectors.file_system": (
        ("ferroflow.connectors.file_system: FileSource FileSourceBuilder StreamFormat FileSink OutputFileConfig "
         "RollingPolicy BucketAssigner"),
        ("!bulk: FileCompactor FileCompactStrategy StreamingFileSink BulkFormat FileEnumeratorProvider "
         "FileSplitAssignerProvider"),
    ),
    "pyflink.datastream.async_data_stream": ("!async: *",),
    "pyflink.datastream.async_retry_predicates": ("!async: *",),
    "pyflink.datastream.async_retry_strategies": ("!async: *",),
    "pyflink.datastream.connectors.number_seq": ("!connector_base: NumberSequenceSource",),
    "pyflink.datastream.connectors.kafka": (
        ("ferroflow.connectors.kafka: KafkaSource KafkaSourceBuilder KafkaOffsetsInitializer "
         "KafkaOffsetResetStrategy KafkaSink KafkaSinkBuilder KafkaRecordSerializationSchema "
         "KafkaRecordSerializationSchemaBuilder DeliveryGuarantee"),
        "!kafka: *",
    ),
    "pyflink.datastream.connectors.dynamic_kafka": ("!kafka: *",),
    "pyflink.datastream.connectors.elasticsearch": ("!connector: *",),
    "pyflink.datastream.connectors.pulsar": ("!connector: *",),
    "pyflink.datastream.connectors.cassandra": ("!connector: *",),
    "pyflink.datastream.connectors.jdbc": ("!connector: *",),
    "pyflink.datastream.connectors.kinesis": ("!connector: *",),
    "pyflink.datastream.connectors.rabbitmq": ("!connector: *",),
    "pyflink.datastream.connectors.hybrid_source": ("!connector: *",),
    "pyflink.datastream.formats": (),
    "pyflink.datastream.formats.json": (
        "ferroflow.formats.json: JsonRowSerializationSchema JsonRowDeserializationSchema",
        "!kafka: *",
    ),
    "pyflink.datastream.formats.csv": (
        "ferroflow.formats.csv: CsvRowSerializationSchema CsvRowDeserializationSchema",
        "ferroflow.connectors.file_formats: CsvReaderFormat CsvSchema CsvSchemaBuilder CsvBulkWriters",
        "!kafka: *",
    ),
    "pyflink.datastream.formats.avro": ("!kafka: *",),
    "pyflink.datastream.formats.parquet": (
        "ferroflow.connectors.file_formats: ParquetColumnarRowInputFormat AvroParquetReaders ParquetBulkWriters",
        "!bulk: *",
    ),
    "pyflink.datastream.formats.orc": ("!bulk: *",),
    "pyflink.table": ("!table: *",),
    "pyflink.table.expressions": ("!table: *",),
    "pyflink.table.udf": ("!table: *",),
    "pyflink.table.window": ("!table: *",),
    "pyflink.java_gateway": ("!jvm: *",),
}

SERVED: FrozenSet[str] = all_served(MODULES)


def _entries(module_name: str) -> List[Tuple[str, List[str]]]:
    """``MODULES[module_name]`` as (source or ``!reason``, names) pairs."""
    out = []
    for entry in MODULES.get(module_name, ()):
        source, _, names = entry.partition(":")
        out.append((source.strip(), names.split()))
    return out


def served_names(module_name: str) -> Dict[str, str]:
    """Every name ``module_name`` serves -> the ferroflow module it comes from, or
    ``!reason`` for a stand-in (``*`` names any attribute)."""
    return {name: source for source, names in _entries(module_name) for name in names}


def _fill(module: types.ModuleType) -> None:
    names = served_names(module.__name__)
    wildcard = names.pop("*", None)

    # PEP 562: each name is looked up on first use, so importing one module does not import
    # every ferroflow module its siblings' names come from.
    def resolve(name: str) -> Any:
        source = names.get(name, wildcard if not name.startswith("__") else None)
        if source is None:
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
        if source.startswith("!"):
            from .unsupported import stand_in

            value = stand_in(f"{module.__name__}.{name}", source[1:])
        else:
            value = getattr(importlib.import_module(source), name)
        setattr(module, name, value)
        return value

    module.__dict__["__getattr__"] = resolve
    module.__dict__["__all__"] = list(names)
    module.__doc__ = f"PyFlink's {module.__name__}, served by ferroflow (ferroflow.compat.pyflink; docs/pyflink.md)."


_FINDER = ServedFinder(SERVED, _fill, "ferroflow.compat.pyflink")


def _real_pyflink_loaded() -> bool:
    loaded = sys.modules.get("pyflink")
    return loaded is not None and getattr(loaded.__spec__, "loader", None) is not _FINDER


def find_spec(fullname: str, path: Optional[Sequence[str]] = None,
              target: Optional[types.ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
    """The spec of one of PyFlink's modules served by ferroflow, or None (another name, or
    a real ``pyflink`` package already imported: the two never mix)."""
    if fullname != "pyflink" and _real_pyflink_loaded():
        return None
    return _FINDER.find_spec(fullname, path, target)


def real_pyflink() -> Optional[str]:
    """Where an installed ``pyflink`` package (apache-flink) is, or None."""
    spec = importlib.machinery.PathFinder.find_spec("pyflink")
    if spec is None or not spec.submodule_search_locations:
        return None
    return next(iter(spec.submodule_search_locations))


class _FirstFinder:
    """Puts ferroflow's PyFlink names ahead of the path finder (``ferroflow run``). The first
    time a script imports ``pyflink`` while apache-flink is installed too, it says so."""

    ferroflow_pyflink_first = True

    @staticmethod
    def find_spec(fullname: str, path: Optional[Sequence[str]] = None,
                  target: Optional[types.ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname == "pyflink":
            from .._cluster import ENV_PROCESS

            installed = real_pyflink()
            if installed is not None and os.environ.get(ENV_PROCESS, "0") == "0":  # once in a -p run
                print(f"ferroflow: apache-flink's pyflink is installed too ({installed}); under `ferroflow run` "
                      "the job uses ferroflow's pyflink names (`python job.py` would use apache-flink's)",
                      file=sys.stderr)
        if fullname == "pyflink" or fullname.startswith("pyflink."):
            return find_spec(fullname, path, target)
        return None


def prefer_ferroflow() -> None:
    """Makes ``import pyflink`` give ferroflow's names in this process even if apache-flink
    is installed (``ferroflow run`` calls it before it runs a script)."""
    if not any(getattr(f, "ferroflow_pyflink_first", False) for f in sys.meta_path):
        sys.meta_path.insert(0, _FirstFinder())
