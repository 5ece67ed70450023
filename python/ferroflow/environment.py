"""``StreamExecutionEnvironment``: where a job's sources are created and where it runs."""

from __future__ import annotations

import os
import time

from ._errors import CheckpointingWarning, FerroflowError, job_failed
from . import _nodes
from .checkpoint_config import CheckpointConfig, CheckpointingMode
from ._plan import Node, label_of
from .datastream import DataStream
from .execution_config import ExecutionConfig
from .execution_mode import RuntimeExecutionMode
from .functions import iterate_java_style, utf8_charset
from .semantics import Semantics
from .testing import TestSource
from .watermarks import TimeCharacteristic, WatermarkStrategy

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

__all__ = ["StreamExecutionEnvironment", "JobExecutionResult"]

#: Jobs this process has run (the launcher uses it to tell whether a script ran one).
_jobs_run = 0
#: Jobs running now (the launcher passes a `-p` process's prints on only while one runs).
_jobs_running = 0
#: Whether this process has warned that checkpoints were asked for (see ``_warn_no_checkpoints``).
_warned_unresumable: set = set()


class JobExecutionResult:
    """What ``execute()`` returns once the job has finished."""

    def __init__(self, job_name: str, runtime_ms: int, counts: Dict[str, int], dropped: int,
                 warnings: List[str], late_dropped: int = 0) -> None:
        self.job_name = job_name
        self.net_runtime_ms = runtime_ms
        #: Records each operator emitted (sinks: records received), by operator name.
        self.operator_counts = counts
        #: Records iterations dropped because they were still circulating at their time limit.
        self.dropped_records = dropped
        #: Records windows dropped because they were late (behind the watermark plus the
        #: allowed lateness) and no ``side_output_late_data`` was asked for.
        self.late_records_dropped = late_dropped
        self.warnings = warnings
        self.job_id = f"{abs(hash((job_name, runtime_ms, id(self)))):032x}"[:32]

    def get_job_name(self) -> str:
        return self.job_name

    def get_net_runtime(self) -> int:
        """Milliseconds the job ran."""
        return self.net_runtime_ms

    def get_job_id(self) -> str:
        return self.job_id

    @property
    def jobID(self) -> str:  # talk-era scripts print result.jobID
        return self.job_id

    def __repr__(self) -> str:
        return f"JobExecutionResult(job_name={self.job_name!r}, net_runtime_ms={self.net_runtime_ms})"


class StreamExecutionEnvironment:
    """Creates sources and runs the job. Get one with ``get_execution_environment()``."""

    #: Parallelism for environments that do not set their own (the launcher sets it).
    default_parallelism = 1
    #: Whether ``print()`` of a stream without a declared type shows it as PyFlink does
    #: (by ``DataStream.get_type()``: ``str(record)``) rather than ferroflow's ``repr``;
    #: the ``pyflink`` namespace's environment sets it.
    _prints_undeclared_as_pyflink = False

    def __init__(self) -> None:
        #: Every node this environment made; ids index it. Streams of a job that ran stay usable.
        self._nodes: List[Node] = []
        #: Nodes before this one belong to jobs that already ran (see ``_job_nodes``).
        self._job_start = 0
        self._parallelism: Optional[int] = None
        self._checkpoint_config = CheckpointConfig()
        self._restart_strategy: Any = None
        self._time_characteristic = TimeCharacteristic.ProcessingTime
        self._config = ExecutionConfig()
        self._runtime_mode = RuntimeExecutionMode.STREAMING
        self._semantics = Semantics()

    @classmethod
    def get_execution_environment(cls, *args: Any) -> "StreamExecutionEnvironment":
        """A new environment running on the embedded engine."""
        return cls()

    # -- settings -------------------------------------------------------------------------

    def get_config(self) -> ExecutionConfig:
        """The environment's ``ExecutionConfig`` (object reuse: ``enable_object_reuse()``)."""
        return self._config

    def set_parallelism(self, parallelism: int) -> "StreamExecutionEnvironment":
        """Worker threads the job runs on in this process."""
        if not isinstance(parallelism, int) or parallelism < 1:
            raise ValueError(f"parallelism must be an int >= 1, got {parallelism!r}")
        self._parallelism = parallelism
        return self

    def get_parallelism(self) -> int:
        """Workers the job runs on: this setting, else the launcher's (-p x -w), else 1."""
        if self._parallelism:
            return self._parallelism
        from . import _cluster

        cluster = _cluster.settings_from_env()
        if cluster is not None:
            return cluster.workers
        threads = os.environ.get(_cluster.ENV_THREADS)
        return int(threads) if threads else StreamExecutionEnvironment.default_parallelism

    def enable_checkpointing(self, interval: int, mode: Optional[CheckpointingMode] = None
                             ) -> "StreamExecutionEnvironment":
        """Checkpoints every ``interval`` ms, in ``mode`` (``CheckpointingMode.EXACTLY_ONCE``,
        the default; ``AT_LEAST_ONCE`` is accepted and runs as exactly-once, which
        guarantees more). Further settings: ``get_checkpoint_config()``. With
        checkpointing on, a job that fails restarts by its restart strategy (default:
        Flink's exponential delay, see ``ferroflow.restart_strategy``) from its latest
        checkpoint; see docs/fault_tolerance.md for what is exactly-once.

        A source that cannot resume from a checkpoint (a socket, an ``add_source``
        function without ``snapshot_state``) is named in a ``CheckpointingWarning`` when
        the job runs (once per process; silence it with ``warnings.filterwarnings``)."""
        self._checkpoint_config.set_checkpoint_interval(interval)
        if mode is not None:
            self._checkpoint_config.set_checkpointing_mode(mode)
        return self

    def get_checkpoint_config(self) -> CheckpointConfig:
        """The job's checkpointing settings (storage directory, timeout, retention...)."""
        return self._checkpoint_config

    def get_checkpoint_interval(self) -> int:
        """Milliseconds between checkpoints, or -1 when checkpointing is off."""
        return self._checkpoint_config.get_checkpoint_interval()

    def get_checkpointing_consistency_mode(self) -> CheckpointingMode:
        """The checkpointing mode (PyFlink 2's name; ``get_checkpointing_mode`` is the older one)."""
        return self._checkpoint_config.get_checkpointing_mode()

    get_checkpointing_mode = get_checkpointing_consistency_mode

    def set_restart_strategy(self, restart_strategy_configuration: Any) -> "StreamExecutionEnvironment":
        """What happens when the job fails: ``RestartStrategies.fixed_delay_restart(attempts,
        delay_ms)``, ``failure_rate_restart(...)``, ``exponential_delay_restart(...)`` or
        ``no_restart()``. Without one: no restart, or with checkpointing on Flink's
        default (exponential delay). See ``ferroflow.restart_strategy``."""
        from .restart_strategy import RestartStrategyConfiguration

        if not isinstance(restart_strategy_configuration, RestartStrategyConfiguration):
            raise TypeError("set_restart_strategy() takes one of RestartStrategies' strategies, e.g. "
                            f"RestartStrategies.fixed_delay_restart(3, 1000), got {restart_strategy_configuration!r}")
        self._restart_strategy = restart_strategy_configuration
        return self

    def get_restart_strategy(self) -> Any:
        """The strategy set by ``set_restart_strategy``, or None (the default applies)."""
        return self._restart_strategy

    def set_stream_time_characteristic(self, characteristic: TimeCharacteristic) -> "StreamExecutionEnvironment":
        """The clock ``time_window``/``time_window_all`` follow: ``TimeCharacteristic.EventTime``
        or ``ProcessingTime`` (the default). ``window(assigner)`` is not affected."""
        if not isinstance(characteristic, TimeCharacteristic):
            raise TypeError(f"set_stream_time_characteristic() takes a TimeCharacteristic, got {characteristic!r}")
        if characteristic is TimeCharacteristic.IngestionTime:
            raise ValueError("TimeCharacteristic.IngestionTime is not supported: use EventTime with "
                             "assign_timestamps_and_watermarks(), or ProcessingTime")
        self._time_characteristic = characteristic
        return self

    def get_stream_time_characteristic(self) -> TimeCharacteristic:
        """The clock ``time_window`` follows (see ``set_stream_time_characteristic``)."""
        return self._time_characteristic

    def set_runtime_mode(self, execution_mode: RuntimeExecutionMode) -> "StreamExecutionEnvironment":
        """``RuntimeExecutionMode.STREAMING`` (the default), ``BATCH`` (a bounded job's
        final results only: see ``RuntimeExecutionMode``) or ``AUTOMATIC`` (``BATCH``
        when every source is bounded)."""
        if not isinstance(execution_mode, RuntimeExecutionMode):
            raise TypeError("set_runtime_mode() takes RuntimeExecutionMode.STREAMING, BATCH or AUTOMATIC, "
                            f"got {execution_mode!r}")
        self._runtime_mode = execution_mode
        return self

    def get_runtime_mode(self) -> RuntimeExecutionMode:
        """The mode set with ``set_runtime_mode`` (``STREAMING`` by default)."""
        return self._runtime_mode

    def set_semantics(self, semantics: Semantics) -> "StreamExecutionEnvironment":
        """The options where ferroflow's behaviour and Flink's differ (see ``Semantics``;
        ``Semantics.flink()`` takes Flink's for all)."""
        if not isinstance(semantics, Semantics):
            raise TypeError(f"set_semantics() takes a ferroflow.Semantics, got {semantics!r}")
        self._semantics = semantics
        return self

    def get_semantics(self) -> Semantics:
        """The environment's ``Semantics`` (ferroflow's defaults unless set)."""
        return self._semantics

    def _use_flink_semantics(self) -> None:
        """Every ``Semantics`` option set to Flink's behaviour: the hook the ``pyflink``
        names call on the environment they make."""
        self._semantics = Semantics.flink()

    # -- plan -----------------------------------------------------------------------------

    def _add(self, kind: _nodes.NodeKind, label: str, inputs: List[int], api: Optional[str] = None) -> int:
        """Records an operator of ``kind`` reading ``inputs``; ``api`` (default: the
        kind's name) and ``label`` make its name. Returns its id."""
        node = Node(len(self._nodes), kind, label, inputs, api or kind.KIND)
        if inputs and kind.KEEPS_TYPE:
            node.type_info = self._nodes[inputs[0]].type_info
        self._nodes.append(node)
        return node.id

    def _source(self, kind: _nodes.Source, label: str, api: str) -> DataStream:
        return DataStream(self, self._add(kind, label, [], api))

    # -- sources --------------------------------------------------------------------------

    def from_collection(self, collection: Any, type_info: Any = None) -> DataStream:
        """A stream of the items of a list (or any iterable or iterator, read once),
        in order, from one worker. ``type_info`` (``ferroflow.typeinfo``) is the
        stream's type: e.g. ``Types.ROW_NAMED(["id", "name"], [...])`` makes the items
        ``Row`` values, so ``value.id`` works (converted here, once, for a list)."""
        if isinstance(collection, (str, bytes)):
            raise TypeError("from_collection() takes a list or an iterable of records, not a string")
        if hasattr(collection, "hasNext") and hasattr(collection, "next"):
            collection = iterate_java_style(collection)
        if not hasattr(collection, "__iter__"):
            raise TypeError(f"from_collection() takes a list or an iterable, got {type(collection).__name__}")
        from .typeinfo import converter_of

        convert = converter_of(type_info)
        if hasattr(collection, "__len__") and hasattr(collection, "__getitem__"):
            items: Any = list(collection) if convert is None else [convert(item) for item in collection]
            label = f"{len(items)} items"
        else:
            items = collection if convert is None else map(convert, collection)
            label = type(collection).__name__

        def make() -> Any:
            return iter(items)
        return self._source(_nodes.Collection(make), label, "from_collection")._declare(type_info)

    def from_elements(self, *elements: Any) -> DataStream:
        """A stream of the given records, in order, from one worker."""
        return self.from_collection(list(elements))

    def read_text_file(self, file_path: str, charset_name: str = "UTF-8",
                       encoding_errors: str = "strict") -> DataStream:
        """One record per line (newline stripped) of a file, or of every file in a
        directory. Workers read their share of the bytes in parallel.

        A line that is not valid UTF-8 fails the job with the file, the line number and
        the byte offset, unless ``encoding_errors`` (as Python's ``errors=``) says
        ``"replace"`` (U+FFFD in place of bad bytes) or ``"ignore"`` (bad bytes left out)."""
        utf8_charset(charset_name, "read_text_file()")
        path = os.fspath(file_path)
        path = path.removeprefix("file://")
        return self._source(_nodes.TextFile([path], False, _encoding_errors(encoding_errors)), path, "read_text_file")

    def read_json_lines(self, file_path: str, skip_malformed: bool = False) -> DataStream:
        """One dict (or list, or value) per line of JSON of a file or folder, read in
        parallel (``FileSource`` with ``JsonLinesFormat()``). A line that is not JSON
        fails the job naming the file and line, unless ``skip_malformed``."""
        from .connectors.file_formats import JsonLinesFormat

        return self._read_format(JsonLinesFormat(), file_path, skip_malformed, "read_json_lines")

    def read_csv(self, file_path: str, schema: Any = None, skip_malformed: bool = False) -> DataStream:
        """One ``Row`` per CSV row of a file or folder (``FileSource`` with
        ``CsvReaderFormat.for_schema(schema)``; default schema: a header line names
        the fields, all strings). A row that does not fit the schema fails the job
        naming the file and line, unless ``skip_malformed``."""
        from .connectors.file_formats import CsvReaderFormat, CsvSchema

        schema = CsvSchema.builder().set_use_header().build() if schema is None else schema
        return self._read_format(CsvReaderFormat.for_schema(schema), file_path, skip_malformed, "read_csv")

    def read_parquet(self, file_path: str, batches: bool = False, skip_malformed: bool = False) -> DataStream:
        """One ``Row`` per row of a Parquet file or folder, row groups read in parallel;
        with ``batches``, one ``pyarrow.RecordBatch`` per batch of rows instead."""
        from .connectors.file_formats import ParquetColumnarRowInputFormat, ParquetRecordBatchFormat

        fmt = ParquetRecordBatchFormat() if batches else ParquetColumnarRowInputFormat()
        return self._read_format(fmt, file_path, skip_malformed, "read_parquet")

    def _read_format(self, fmt: Any, file_path: str, skip_malformed: bool, api: str) -> DataStream:
        from .connectors.file_system import _file_path

        path = _file_path(file_path, api + "()")
        if skip_malformed:
            fmt.ignore_parse_errors()
        return self._source(fmt._source_kind([path], None), path, api)

    def generate_sequence(self, start: int, end: int) -> DataStream:
        """The integers ``start`` to ``end``, both included, produced in parallel."""
        start, end = _i64(start, "generate_sequence(): start"), _i64(end, "generate_sequence(): end")
        return self._source(_nodes.Sequence(start, end), f"{start}..{end}", "generate_sequence")

    def socket_text_stream(self, hostname: str, port: int, delimiter: str = "\n",
                           encoding_errors: str = "strict") -> DataStream:
        """Lines read from a TCP server at ``hostname:port``; the stream ends when the
        server closes the connection.

        A line that is not valid UTF-8 fails the job with the line number and byte
        offset in the stream, unless ``encoding_errors`` (as Python's ``errors=``) says
        ``"replace"`` (U+FFFD in place of bad bytes) or ``"ignore"`` (bad bytes left out)."""
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be an int between 1 and 65535, got {port!r}")
        if len(delimiter.encode()) != 1:
            raise ValueError("the delimiter must be a single ASCII character")
        kind = _nodes.Socket(str(hostname), port, delimiter, _encoding_errors(encoding_errors))
        return self._source(kind, f"{hostname}:{port}", "socket_text_stream")

    def add_source(self, source_func: Any, source_name: Optional[str] = None, type_info: Any = None) -> DataStream:
        """A source written in Python: a ``SourceFunction`` whose ``run(ctx)`` calls
        ``ctx.collect(x)``. It runs on one worker, on a thread of its own. Or a
        ``ferroflow.testing.TestSource``: records with timestamps, watermarks and
        processing-time markers. ``type_info``: the stream's type, as for
        ``from_collection``."""
        from .typeinfo import converter_of

        if isinstance(source_func, TestSource):
            stream = self._source(source_func._kind(), source_func._label(), "testing_source")
            if converter_of(type_info) is not None:
                raise TypeError(f"add_source(): a TestSource's records are given as they are; build them as "
                                f"{type_info!r} records rather than declaring type_info")
            return (stream.name(source_name) if source_name else stream)._declare(type_info)
        if not callable(getattr(source_func, "run", None)):
            raise TypeError(f"add_source() takes a SourceFunction with a run(ctx) method, got {type(source_func).__name__}")
        from .functions import ParallelSourceFunction

        parallel = isinstance(source_func, ParallelSourceFunction)
        runner = _SourceRunner(source_func, converter_of(type_info))
        return self._source(_nodes.FunctionSource(runner, parallel),
                            source_name or label_of(source_func), "add_source")._declare(type_info)

    def from_source(self, source: Any, watermark_strategy: WatermarkStrategy,
                    source_name: Optional[str] = None, type_info: Any = None) -> DataStream:
        """A source with its timestamps and watermarks: ``source`` is a ``FileSource``
        (``ferroflow.connectors.file_system``), a ``KafkaSource``
        (``ferroflow.connectors.kafka``: watermarks per partition, records stamped with
        the messages' timestamps), a ``FixedPartitionedSource`` or ``DynamicSource``
        (``ferroflow.connectors.partitioned``), a ``NexmarkSource``
        or ``NexmarkSource.from_json_lines(path)`` (``ferroflow.connectors.nexmark``:
        records stamped with their events' times),
        a ``TestSource``, a ``SourceFunction``,
        or what ``from_collection`` takes; ``watermark_strategy`` is applied to it (see
        ``DataStream.assign_timestamps_and_watermarks``); ``type_info``: the stream's
        type, as for ``from_collection``."""
        if not isinstance(watermark_strategy, WatermarkStrategy):
            raise TypeError("from_source() takes a WatermarkStrategy, e.g. WatermarkStrategy.no_watermarks(), "
                            f"got {watermark_strategy!r}")
        from .connectors.file_system import FileSource, FileSourceBuilder
        from .connectors.kafka import KafkaSource, KafkaSourceBuilder
        from .connectors.nexmark import NexmarkFileSource, NexmarkSource
        from .connectors.partitioned import _source_kind

        if isinstance(source, KafkaSource):
            # Timestamps and watermarks are made per partition, inside the source.
            strategy = watermark_strategy
            plain = strategy._watermarks == "none" and strategy._assigner is None and strategy._field is None
            kind = source._kind(None if plain else strategy._kind())
            stream = self._source(kind, source._label(), "from_source")
            stream._declare(type_info if type_info is not None else source._type_info())
            if source_name:
                stream.name(source_name)
            return stream
        partitioned = _source_kind(source, source_name or type(source).__name__)
        if partitioned is not None:
            stream = self._source(partitioned, source_name or label_of(source), "from_source")._declare(type_info)
        elif isinstance(source, (FileSourceBuilder, KafkaSourceBuilder)):
            raise TypeError("from_source() takes a built source: call .build() on the builder first")
        elif isinstance(source, (FileSource, NexmarkSource, NexmarkFileSource)):
            stream = self._source(source._kind(), source._label(), "from_source")._declare(type_info)
            if source_name:
                stream.name(source_name)
        elif isinstance(source, TestSource) or callable(getattr(source, "run", None)):
            stream = self.add_source(source, source_name, type_info)
        else:
            stream = self.from_collection(source, type_info)
            if source_name:
                stream.name(source_name)
        return stream.assign_timestamps_and_watermarks(watermark_strategy)

    # -- running --------------------------------------------------------------------------

    def execute(self, job_name: Optional[str] = None, local: Optional[bool] = None) -> JobExecutionResult:
        """Runs the job and blocks until it has finished.

        The job is what was added since the previous ``execute()`` (as in Flink): the
        environment starts empty afterwards, whether the job succeeded or failed. A
        stream made for an earlier job may still be read; its inputs then run again.

        The talk-era forms ``execute(local)`` and ``execute(name, local)`` are accepted;
        ``local`` only told Flink where to stage the script, so it changes nothing here.

        Raises ``JobExecutionException`` naming the operator, the record and the
        traceback if a user function fails; ``KeyboardInterrupt`` on Ctrl-C."""
        from . import _engine

        global _jobs_run, _jobs_running
        _jobs_run += 1
        if isinstance(job_name, bool):
            job_name = None
        name = job_name or "ferroflow job"
        job = self._job_nodes()
        if not any(isinstance(n.kind, _nodes.Sink) for n in job):
            if not job and self._job_start:
                raise FerroflowError("nothing to run: the previous execute() ran this environment's job, and each "
                                     "execute() runs what was added since (as in Flink); add a sink before execute()")
            raise FerroflowError("the job has no sink: add print(), write_as_text(), add_sink() ... before execute()")
        # The environment starts empty for the next job, whatever happens to this one.
        self._job_start = len(self._nodes)
        from . import _cluster

        try:
            cluster = _cluster.settings_from_env()
        except _cluster.ClusterConfigError as e:
            raise FerroflowError(str(e)) from None
        cluster_arg = None
        if cluster is None:
            workers = self.get_parallelism()
        else:
            workers = cluster.threads
            if self._parallelism and self._parallelism != cluster.workers and cluster.process == 0:  # said once
                import sys
                print(f"ferroflow: warning: set_parallelism({self._parallelism}) is ignored: the job runs on "
                      f"{cluster.processes} processes x {cluster.threads} worker(s)", file=sys.stderr)
            cluster_arg = (cluster.process, cluster.addresses, cluster.secret,
                           int(cluster.connect_timeout_s * 1000), _cluster.plan_fingerprint(job),
                           max(1, int(cluster.heartbeat_timeout_s * 1000)))
        from ._collect import cancel_token
        from ._plan import RuntimeContext
        from .restart_strategy import Restarts, cause_line, effective_strategy, restartable

        checkpoint = self._checkpoint_settings(name)
        if checkpoint is not None:
            _warn_unresumable(job)
        strategy = effective_strategy(self._restart_strategy, checkpoint is not None)
        supervised = bool(os.environ.get(_cluster.ENV_REPORT))
        if supervised:  # the -p supervisor restarts every process (see _cluster.Supervisor)
            _cluster.announce_restarts(strategy, checkpoint)
        restarts = Restarts(strategy)
        attempt = _cluster.attempt_number()
        functions = [f for n in job for f in _per_worker_functions(n.kind.fields())]
        if restarts.may_restart() and not supervised:
            for function in functions:
                function.keep_pristine()
        started = time.monotonic()
        while True:
            RuntimeContext._attempt_number = attempt
            for function in functions:
                function.prepare(workers)
            nodes, number = _engine_nodes(job)
            _jobs_running += 1
            try:
                summary = _engine.run_job(nodes, workers=workers, batch_size=_batch_size(), cluster=cluster_arg,
                                          object_reuse=self._config.is_object_reuse_enabled(), cancel=cancel_token(),
                                          checkpoint=checkpoint, runtime_mode=self._runtime_mode.name.lower(),
                                          semantics=self._semantics)
                break
            except _engine.JobFailed as failed:
                text, kind, operator, record, detail, worker, at_start = failed.args
                error = job_failed(f"job '{name}' failed: {text}", kind, operator, record, detail, worker)
            finally:
                _jobs_running -= 1
                self._flush_stdout()
            error.at_start = at_start
            delay = None if supervised or not restartable(error) else restarts.next_delay(cause_line(error))
            if delay is None:
                raise error from None
            time.sleep(delay / 1000)
            attempt += 1
            for function in functions:
                function.renew()
            if checkpoint is not None:
                checkpoint.restore_from = _cluster.restore_point(checkpoint)
        runtime_ms = int((time.monotonic() - started) * 1000)
        stopped_with = summary.get("stopped_with")
        if stopped_with is not None:
            import sys
            if os.environ.get(_cluster.ENV_PROCESS, "0") in ("", "0"):
                print(f"ferroflow: the job was stopped with a savepoint at {stopped_with}; resume it with "
                      f"`ferroflow run <script> -s {stopped_with}`", file=sys.stderr)
            return JobExecutionResult(name, runtime_ms, {}, 0, [], 0)
        counts = {n.name: summary["counts"][number[n.id]] for n in job}
        for warning in summary["warnings"]:
            import sys
            print(f"ferroflow: warning: {warning}", file=sys.stderr)
        return JobExecutionResult(name, runtime_ms, counts, summary["dropped"], summary["warnings"],
                                  summary.get("late_dropped", 0))

    def _checkpoint_settings(self, job_name: str) -> Any:
        """The engine's checkpoint settings for this job (None when checkpointing is off),
        with the checkpoint to start from (``ferroflow run --from-checkpoint``/``-s``);
        fails at once, in one line, if the storage directory cannot be written."""
        from . import _cluster, _engine

        restore = os.environ.get(_cluster.ENV_RESTORE) or None
        config = self._checkpoint_config
        if not config.is_checkpointing_enabled():
            if restore:
                raise FerroflowError(f"cannot start from the checkpoint {restore}: the job does not enable "
                                     "checkpointing (env.enable_checkpointing(interval))")
            return None
        settings = config._engine_settings(job_name, restore)
        try:
            _engine.checkpoint_probe_writable(settings.dir)
        except ValueError as e:
            raise FerroflowError(str(e)) from None
        _cluster.note_start_point(settings)
        return settings

    @staticmethod
    def _flush_stdout() -> None:
        import sys

        try:
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - best effort: a closed stdout must not fail the job
            pass

    def get_execution_plan(self) -> str:
        """The plan of the next ``execute()`` as JSON in Flink's shape (which Flink's plan
        visualizer reads): ``{"nodes": [{"id", "type", "pact", "contents", "parallelism",
        "predecessors": [{"id", "ship_strategy", "side"}]}]}``, ids counting from 1 in the
        order the operators were added."""
        import json

        job = self._job_nodes()
        position = {n.id: i + 1 for i, n in enumerate(job)}
        by_id = {n.id: n for n in job}
        nodes = []
        for n in job:
            pact = ("Data Source" if isinstance(n.kind, _nodes.Source)
                    else "Data Sink" if isinstance(n.kind, _nodes.Sink) else "Operator")
            entry: Dict[str, Any] = {"id": position[n.id], "type": n.api, "pact": pact, "contents": n.name,
                                     "parallelism": n.parallelism or self.get_parallelism()}
            if n.inputs:
                entry["predecessors"] = [{"id": position[i], "ship_strategy": _ship_strategy(by_id[i].kind),
                                          "side": "second"} for i in n.inputs]
            nodes.append(entry)
        return json.dumps({"nodes": nodes}, indent=2)

    def _job_nodes(self) -> List[Node]:
        """The nodes the next ``execute()`` runs, in plan order: those added since the
        last one, and the nodes of earlier jobs they read (with an iteration, its
        feedback). So each job runs once, as in Flink, where ``execute()`` clears the
        environment's transformations, and a stream of an earlier job can still be
        read: its inputs run again, its earlier sinks do not."""
        wanted = set()
        todo = list(range(self._job_start, len(self._nodes)))
        while todo:
            i = todo.pop()
            if i in wanted:
                continue
            wanted.add(i)
            node = self._nodes[i]
            todo.extend(node.inputs)
            if isinstance(node.kind, _nodes.Iterate) and node.kind.feedback is not None:
                todo.append(node.kind.feedback)
        return [self._nodes[i] for i in sorted(wanted)]


def _warn_unresumable(job: List[Any]) -> None:
    """Names, once per process, each source of a checkpointed job that cannot resume
    from a checkpoint. In a multi-process run only process 0 warns: every process runs
    the same script."""
    from ._cluster import ENV_PROCESS

    if os.environ.get(ENV_PROCESS, "0") not in ("", "0"):
        return
    import warnings

    for n in job:
        kind = n.kind
        if isinstance(kind, _nodes.Socket):
            why = "a socket cannot be read again: after a restart it reads on from what the server sends then " \
                  "(at-most-once)"
        elif isinstance(kind, _nodes.FunctionSource) and isinstance(kind.runner, _SourceRunner) \
                and not kind.runner.replayable():
            why = "its function has no snapshot_state(): after a restart it runs again from its start; " \
                  "implement snapshot_state/initialize_state (Flink's CheckpointedFunction) to resume"
        elif isinstance(kind, _nodes.PartitionedSource) and kind.parts.dynamic:
            why = "a DynamicSource keeps no state: after a restart each worker's partition is built anew; " \
                  "a FixedPartitionedSource resumes its parts"
        else:
            continue
        if n.name in _warned_unresumable:
            continue
        _warned_unresumable.add(n.name)
        warnings.warn(f"{n.name} cannot resume from a checkpoint: {why}", CheckpointingWarning, stacklevel=3)


def _batch_size() -> int:
    """Records per source batch: FERROFLOW_BATCH_SIZE, default 128."""
    raw = os.environ.get("FERROFLOW_BATCH_SIZE", "128")
    try:
        size = int(raw)
    except ValueError:
        raise FerroflowError(f"FERROFLOW_BATCH_SIZE must be a positive integer, got {raw!r}") from None
    if size < 1:
        raise FerroflowError(f"FERROFLOW_BATCH_SIZE must be a positive integer, got {raw!r}")
    return size


def _encoding_errors(value: str) -> str:
    """A text source's ``encoding_errors``: the names Python's ``errors=`` uses."""
    if value not in ("strict", "replace", "ignore"):
        raise ValueError(f"encoding_errors must be 'strict', 'replace' or 'ignore', got {value!r}")
    return value


def _i64(value: Any, what: str) -> int:
    """``value`` as an int the engine takes (64 bits, signed)."""
    value = int(value)
    if not -2**63 <= value < 2**63:
        raise ValueError(f"{what} must fit in 64 bits, got {value}")
    return value


def _per_worker_functions(fields: Dict[str, Any]) -> Iterable[Any]:
    """The API's wrappers of user functions in a node kind's fields (``Udf``, a source
    runner...; also inside a window's assigner spec): they copy the function per worker."""
    for value in fields.values():
        if isinstance(value, _nodes.Typed):
            yield from _per_worker_functions(value.fields())
        elif type(value).__module__.startswith("ferroflow.") and callable(getattr(value, "prepare", None)):
            yield value


class _SourceRunner:
    """Runs a SourceFunction as Flink does: ``open()``, ``run(ctx)``, then ``close()``;
    a parallel one on every worker, each with its own copy."""

    def __init__(self, function: Any, convert: Optional[Callable[[Any], Any]] = None) -> None:
        self.function = function
        #: A declared type's conversion of what the function collects (None: none).
        self.convert = convert
        self.copies: List[Any] = []
        self.running: Dict[int, Any] = {}
        self.pristine: Any = None

    def keep_pristine(self) -> None:
        """See ``Udf.keep_pristine``: a source's ``cancel()`` typically leaves it unable to run again."""
        import copy

        try:
            self.pristine = copy.deepcopy(self.function)
        except Exception:  # noqa: BLE001 - an object that cannot be copied is reused as it is
            self.pristine = None

    def renew(self) -> None:
        """See ``Udf.renew``."""
        import copy

        if self.pristine is not None:
            self.function = copy.deepcopy(self.pristine)
        self.running = {}

    def prepare(self, count: int) -> None:
        """Copies the function for workers 1.. before the job starts (pristine copies)."""
        import copy

        self.copies = []
        for _ in range(count - 1):
            try:
                self.copies.append(copy.deepcopy(self.function))
            except Exception:  # noqa: BLE001 - an object that cannot be copied is shared
                self.copies.append(self.function)

    def replayable(self) -> bool:
        """Whether the function can resume from a checkpoint (``snapshot_state``)."""
        return callable(getattr(self.function, "snapshot_state", None))

    def run_worker(self, ctx: Any, index: int, count: int, restored: Optional[Tuple[Any]] = None) -> None:
        """Called by the engine on the source's own thread. ``restored``: ``(state,)``
        when the job restores a checkpoint, handed to ``initialize_state`` first."""
        import copy

        from ._plan import RuntimeContext

        if index == 0:
            function = self.function
        elif index - 1 < len(self.copies):
            function = self.copies[index - 1]
        else:
            function = copy.deepcopy(self.function)
        if restored is not None:
            function.initialize_state(restored[0])
        # Only now may a checkpoint ask the function for its position (snapshot_worker).
        self.running[index] = function
        opener = getattr(function, "open", None)
        if callable(opener):
            opener(RuntimeContext(index, count))
        try:
            function.run(ctx if self.convert is None else _ConvertingContext(ctx, self.convert))
        finally:
            closer = getattr(function, "close", None)
            if callable(closer):
                closer()

    def snapshot_worker(self, index: int, checkpoint_id: int) -> Optional[Tuple[Any]]:
        """Called by the engine on the worker's thread (the source's paused, holding no
        checkpoint lock): ``(snapshot_state(checkpoint_id),)``, or None if the function
        has not started (its position is where it would start)."""
        function = self.running.get(index)
        if function is None:
            return None
        return (function.snapshot_state(checkpoint_id),)

    def cancel(self) -> None:
        for function in list(self.running.values()) or [self.function]:
            canceller = getattr(function, "cancel", None)
            if callable(canceller):
                canceller()


class _ConvertingContext:
    """A source context whose ``collect`` converts records to the source's declared type
    first (``add_source(type_info=...)``); everything else is the engine's context."""

    def __init__(self, ctx: Any, convert: Callable[[Any], Any]) -> None:
        self._ctx = ctx
        self._convert = convert

    def collect(self, element: Any) -> None:
        self._ctx.collect(self._convert(element))

    def collect_with_timestamp(self, element: Any, timestamp: int) -> None:
        self._ctx.collect_with_timestamp(self._convert(element), timestamp)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


def _route_side_outputs(value: Any, ctx: Any) -> Any:
    """The process function after a window whose side outputs are read: the binding
    routes each ``(output_tag, value)`` to its side output, the rest goes on."""
    return (value,)


def _engine_nodes(job: List[Node]) -> Tuple[List["_EngineNode"], Dict[int, int]]:
    """The nodes as the engine runs them, and each node's engine number (whose output
    and count stand for it). A window whose process-style function's side outputs are
    read is followed by a plain process node routing them (the window operator itself
    has only its late output): the window's readers and its ``get_side_output``
    streams read that node; its late output reads the window."""
    from ._process import ProcessUdf

    def routed(n: Node) -> bool:
        return isinstance(n.kind, _nodes.Window) and bool(n.kind.sides.tags)

    position: Dict[int, int] = {}  # id -> the engine number of the node itself
    number: Dict[int, int] = {}  # id -> the engine number of its (routed) output
    count = 0
    for n in job:
        position[n.id] = count
        number[n.id] = count + 1 if routed(n) else count
        count = number[n.id] + 1
    nodes: List[_EngineNode] = []
    for n in job:
        node = _EngineNode(n, number)
        if isinstance(n.kind, _nodes.SideOutput):
            node.inputs = [position[n.inputs[0]]]  # late records: the window's own output
        nodes.append(node)
        if isinstance(n.kind, _nodes.Window) and routed(n):
            kind = _nodes.Process(ProcessUdf(_route_side_outputs))
            kind.sides = n.kind.sides
            router = Node(n.id, kind, f"side outputs of {n.name}", [n.id], "route")
            router.parallelism = n.parallelism
            nodes.append(_EngineNode(router, position))
    return nodes, number


class _EngineNode:
    """A node as the binding reads it: ``kind`` (typed, see ``_nodes``), ``name``,
    ``inputs``, ``parallelism``."""

    __slots__ = ("kind", "name", "inputs", "parallelism")

    def __init__(self, node: Node, position: Dict[int, int]) -> None:
        # The engine numbers a job's nodes 0.. in plan order (``position``: id -> number).
        kind = node.kind
        if isinstance(kind, _nodes.Iterate) and kind.feedback is not None:
            kind = _nodes.Iterate(kind.max_wait_ms, position[kind.feedback])
        self.kind = kind
        self.name = node.name
        self.inputs = [position[i] for i in node.inputs]
        self.parallelism = node.parallelism


def _ship_strategy(upstream: _nodes.NodeKind) -> str:
    """How records go from ``upstream`` to the operator reading it, in Flink's plan words."""
    if isinstance(upstream, (_nodes.KeyBy, _nodes.KeyByField)):
        return "HASH"
    if isinstance(upstream, _nodes.Partition):
        return {"broadcast": "BROADCAST", "custom": "CUSTOM", "forward": "FORWARD", "shuffle": "SHUFFLE",
                "rescale": "RESCALE"}.get(upstream.how, "REBALANCE")
    return "FORWARD"
