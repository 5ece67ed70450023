"""Files as a source and a sink, built as in PyFlink's
``pyflink.datastream.connectors.file_system``::

    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), "in/", "more.txt") \\
        .process_static_file_set().build()
    lines = env.from_source(source, WatermarkStrategy.no_watermarks(), "files")

    lines.sink_to(FileSink.for_row_format("out/", Encoder.simple_string_encoder())
                  .with_output_file_config(OutputFileConfig.builder().with_part_prefix("p").build())
                  .with_rolling_policy(RollingPolicy.default_rolling_policy(part_size=1 << 20))
                  .build())

``FileSource`` reads every line of its files once, split across workers (large files by
byte ranges); folders are read with their sub-folders, skipping names that start with
``.`` or ``_``. Under checkpoints it resumes where the checkpoint left it.

``FileSink`` writes ``<base>/<bucket>/<prefix>-<uid>-<worker>-<counter><suffix>`` files
(the bucket by default ``yyyy-MM-dd--HH`` of the local clock, as Flink's). A file is
written hidden and becomes visible when the checkpoint after it completes; without
checkpoints, when the job has succeeded (as Flink's BATCH mode; a failed job leaves
nothing). The engine side is ``connectors/sinks.rs`` (``part_files``).
"""

from __future__ import annotations

import os

from .. import _nodes
from ..functions import Encoder, utf8_charset
from ..windowing import to_millis

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional

__all__ = ["FileSource", "FileSourceBuilder", "StreamFormat", "FileSink", "OutputFileConfig", "RollingPolicy",
           "DefaultRollingPolicy", "OnCheckpointRollingPolicy", "BucketAssigner"]


def _file_path(path: Any, what: str) -> str:
    """A local path from a str, a ``PathLike`` or a ``file://`` URI, or an ``s3://``
    URL (object storage, docs/connectors.md); other schemes fail."""
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"{what} takes paths as str, got {path!r}")
    if text.startswith("file://"):
        return text[len("file://"):]
    scheme = text.split("://", 1)[0] if "://" in text else ""
    if scheme == "s3":
        if not text[len("s3://"):].split("/", 1)[0]:
            raise ValueError(f"{what}: no bucket in {text!r}; write s3://<bucket>/<key>")
        return text
    if scheme:
        raise ValueError(f"{what}: only local paths, file:// URIs and s3:// URLs are supported, got {text!r}")
    return text


# -- the source ---------------------------------------------------------------------------


class StreamFormat:
    """How a ``FileSource`` reads a file's bytes: ``StreamFormat.text_line_format()``, one
    record per line (``\\n`` or ``\\r\\n`` stripped)."""

    def __init__(self, charset_name: str = "UTF-8") -> None:
        self.charset_name = utf8_charset(charset_name, "StreamFormat.text_line_format()")

    @staticmethod
    def text_line_format(charset_name: str = "UTF-8") -> "StreamFormat":
        """Lines of UTF-8 text (the only charset supported); a line that is not valid
        UTF-8 fails the job naming the file, the line and the byte offset."""
        return StreamFormat(charset_name)

    def _source_kind(self, paths: List[str], monitor_ms: Optional[int]) -> _nodes.Source:
        return _nodes.TextFile(list(paths), True, "strict", monitor_ms)

    def __repr__(self) -> str:
        return f"StreamFormat.text_line_format({self.charset_name!r})"


class FileSourceBuilder:
    """Settings of a ``FileSource``; ``build()`` makes it."""

    def __init__(self, stream_format: Any, paths: List[str]) -> None:
        self._format = stream_format
        self._paths = paths
        self._monitor_ms: Optional[int] = None

    def process_static_file_set(self) -> "FileSourceBuilder":
        """Reads the files there when the job starts, then ends (the default)."""
        self._monitor_ms = None
        return self

    def monitor_continuously(self, discovery_interval: Any) -> "FileSourceBuilder":
        """Lists the paths every ``discovery_interval`` (a ``Duration``, a ``timedelta``
        or ms) and reads each new file once, whole, on the worker its path's hash
        names; the source never ends. Files being written should appear under their
        name only when complete (write them hidden, ``.name`` or ``_name``, then
        rename). Under checkpoints the files read so far are part of the checkpoint."""
        ms = to_millis(discovery_interval, "discovery interval")
        if ms < 1:
            raise ValueError(f"monitor_continuously() needs a positive interval, got {discovery_interval!r}")
        self._monitor_ms = ms
        return self

    def set_file_enumerator(self, file_enumerator: Any) -> "FileSourceBuilder":
        """Not supported: raises ``NotImplementedError``."""
        raise NotImplementedError("FileSource set_file_enumerator() is not supported: files are listed "
                                  "recursively, skipping names that start with '.' or '_', and large ones are split")

    def set_split_assigner(self, split_assigner: Any) -> "FileSourceBuilder":
        """Not supported: raises ``NotImplementedError``."""
        raise NotImplementedError("FileSource set_split_assigner() is not supported: each worker reads "
                                  "its own share of the files")

    def build(self) -> "FileSource":
        """The source. Every local path must exist now: a missing one raises
        ``FileNotFoundError`` naming it (``s3://`` paths are listed when the job starts)."""
        for path in self._paths:
            if not path.startswith("s3://") and not os.path.exists(path):
                raise FileNotFoundError(f"FileSource: no such file or directory: {path}")
        return FileSource(self._format, list(self._paths), self._monitor_ms)


class FileSource:
    """The lines of files and folders, read in parallel; pass it to
    ``env.from_source(source, watermark_strategy, source_name)``. Build one with
    ``FileSource.for_record_stream_format(StreamFormat.text_line_format(), *paths)``."""

    def __init__(self, stream_format: Any, paths: List[str], monitor_ms: Optional[int] = None) -> None:
        self._format = stream_format
        self._paths = paths
        self._monitor_ms = monitor_ms

    @staticmethod
    def for_record_stream_format(stream_format: StreamFormat, *paths: Any) -> FileSourceBuilder:
        """A builder for a source reading ``paths`` (files, or folders read with their
        sub-folders) with ``stream_format``: ``StreamFormat.text_line_format()``,
        ``CsvReaderFormat.for_schema(schema)`` or ``JsonLinesFormat()``
        (``connectors.file_formats``)."""
        from .file_formats import CsvReaderFormat, JsonLinesFormat

        if not isinstance(stream_format, (StreamFormat, CsvReaderFormat, JsonLinesFormat)):
            raise TypeError("for_record_stream_format() takes a StreamFormat first, e.g. "
                            "StreamFormat.text_line_format(), CsvReaderFormat.for_schema(schema) or JsonLinesFormat(), "
                            f"got {stream_format!r}")
        if not paths:
            raise ValueError("for_record_stream_format() needs at least one path after the format")
        return FileSourceBuilder(stream_format, [_file_path(p, "FileSource") for p in paths])

    @staticmethod
    def for_bulk_file_format(bulk_format: Any, *paths: Any) -> FileSourceBuilder:
        """A builder for a source reading Parquet files with ``bulk_format``:
        ``ParquetColumnarRowInputFormat()`` (``Row``s), ``AvroParquetReaders
        .for_generic_record(schema)`` (dicts) or ``ParquetRecordBatchFormat()``
        (``pyarrow.RecordBatch`` records), from ``connectors.file_formats``."""
        from .file_formats import AvroParquetReaders, ParquetColumnarRowInputFormat, ParquetRecordBatchFormat

        parquet = (ParquetColumnarRowInputFormat, ParquetRecordBatchFormat, type(AvroParquetReaders.for_generic_record()))
        if not isinstance(bulk_format, parquet):
            raise TypeError("for_bulk_file_format() takes a Parquet format first (ParquetColumnarRowInputFormat(), "
                            f"AvroParquetReaders.for_generic_record(schema), ParquetRecordBatchFormat()), got {bulk_format!r}; "
                            "ORC and Avro files are not supported")
        if not paths:
            raise ValueError("for_bulk_file_format() needs at least one path after the format")
        return FileSourceBuilder(bulk_format, [_file_path(p, "FileSource") for p in paths])

    def _kind(self) -> _nodes.Source:
        kind: _nodes.Source = self._format._source_kind(self._paths, self._monitor_ms)
        return kind

    def _label(self) -> str:
        return ", ".join(self._paths)

    def __repr__(self) -> str:
        return f"FileSource({self._format!r}, {self._paths!r})"


# -- the sink -----------------------------------------------------------------------------


class BucketAssigner:
    """Which directory under a ``FileSink``'s base path records go to:
    ``BucketAssigner.date_time_bucket_assigner()`` (the default: one per hour of the
    clock when they are written) or ``base_path_bucket_assigner()`` (the base path)."""

    def __init__(self, bucket: Optional[Callable[[int], str]], description: str) -> None:
        self._bucket = bucket
        self._description = description

    @staticmethod
    def base_path_bucket_assigner() -> "BucketAssigner":
        """Every file directly in the base path."""
        return BucketAssigner(None, "BucketAssigner.base_path_bucket_assigner()")

    @staticmethod
    def date_time_bucket_assigner(format_str: str = "yyyy-MM-dd--HH",
                                  timezone_id: Optional[str] = None) -> "BucketAssigner":
        """A directory named by the time records are written, formatted with the Java
        pattern ``format_str`` (letters ``yyyy``, ``yy``, ``MM``, ``dd``, ``HH``, ``mm``,
        ``ss``; text in single quotes is literal) in ``timezone_id`` (e.g. ``"UTC"``,
        ``"Europe/Paris"``, ``"GMT-08:00"``; None: the local time zone)."""
        buckets = _DateTimeBuckets(_strftime_pattern(format_str), _time_zone(timezone_id))
        return BucketAssigner(buckets, f"BucketAssigner.date_time_bucket_assigner({format_str!r}, {timezone_id!r})")

    def __repr__(self) -> str:
        return self._description


#: Java ``DateTimeFormatter`` letters a bucket pattern may use, as ``strftime`` fields.
_PATTERN_LETTERS = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}


def _strftime_pattern(pattern: str) -> str:
    """The ``strftime`` format of a Java date-time pattern; an unsupported letter raises
    ``ValueError`` naming it."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"date_time_bucket_assigner() takes a non-empty pattern such as 'yyyy-MM-dd--HH', "
                         f"got {pattern!r}")
    out: List[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "'":
            end = pattern.find("'", i + 1)
            if end < 0:
                raise ValueError(f"date_time_bucket_assigner(): unclosed quote in {pattern!r}")
            out.append(pattern[i + 1:end].replace("%", "%%") if end > i + 1 else "'")
            i = end + 1
        elif c.isascii() and c.isalpha():
            run = len(pattern[i:]) - len(pattern[i:].lstrip(c))
            field = _PATTERN_LETTERS.get(c * run)
            if field is None:
                raise ValueError(f"date_time_bucket_assigner(): {c * run!r} in {pattern!r} is not supported "
                                 f"(supported: {', '.join(_PATTERN_LETTERS)})")
            out.append(field)
            i += run
        else:
            out.append("%%" if c == "%" else c)
            i += 1
    return "".join(out)


def _time_zone(timezone_id: Optional[str]) -> Any:
    """A ``tzinfo`` for a Java zone id (None: local time, returned as None)."""
    if timezone_id is None:
        return None
    import datetime

    text = str(timezone_id)
    for head in ("GMT", "UTC", "UT", ""):
        rest = text[len(head):] if text.startswith(head) else None
        if rest is None:
            continue
        if rest in ("", "Z") and head:
            return datetime.timezone.utc
        if rest[:1] in ("+", "-") and len(rest) > 1:
            hours, _, minutes = rest[1:].partition(":")
            if hours.isdigit() and (minutes.isdigit() or not minutes):
                offset = datetime.timedelta(hours=int(hours), minutes=int(minutes or 0))
                return datetime.timezone(-offset if rest[0] == "-" else offset)
    try:
        import zoneinfo

        return zoneinfo.ZoneInfo(text)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise ValueError(f"date_time_bucket_assigner(): unknown time zone {timezone_id!r} (use e.g. 'UTC', "
                         "'Europe/Paris' or 'GMT-08:00')") from None


class _DateTimeBuckets:
    """The bucket for a time in ms since the epoch (called by the engine once per batch)."""

    def __init__(self, strftime: str, zone: Any) -> None:
        self.strftime = strftime
        self.zone = zone

    def __call__(self, now_ms: int) -> str:
        if self.zone is None:
            import time

            return time.strftime(self.strftime, time.localtime(now_ms / 1000))
        import datetime

        return datetime.datetime.fromtimestamp(now_ms / 1000, self.zone).strftime(self.strftime)


class RollingPolicy:
    """When a ``FileSink`` closes a part file and starts the next:
    ``RollingPolicy.default_rolling_policy(...)`` or ``on_checkpoint_rolling_policy()``.
    Every checkpoint closes the files too (so what it commits is whole)."""

    def __init__(self, part_size: Optional[int], rollover_interval: Optional[int],
                 inactivity_interval: Optional[int]) -> None:
        self.part_size = part_size
        self.rollover_interval = rollover_interval
        self.inactivity_interval = inactivity_interval

    @staticmethod
    def default_rolling_policy(part_size: int = 1024 * 1024 * 128, rollover_interval: Any = 60 * 1000,
                               inactivity_interval: Any = 60 * 1000) -> "DefaultRollingPolicy":
        """Closes a file before the next record once it holds more than ``part_size``
        bytes, was opened ``rollover_interval`` ago, or got nothing for
        ``inactivity_interval`` (ms, a ``Duration`` or a ``timedelta``). The times are
        checked as records come (not on a timer: a file that gets no more records waits
        for the next checkpoint or the job's end)."""
        if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1:
            raise ValueError(f"default_rolling_policy(): part_size must be a positive int of bytes, got {part_size!r}")
        return DefaultRollingPolicy(part_size, to_millis(rollover_interval, "rollover_interval"),
                                    to_millis(inactivity_interval, "inactivity_interval"))

    @staticmethod
    def on_checkpoint_rolling_policy() -> "OnCheckpointRollingPolicy":
        """Closes files only at checkpoints (and at the job's end)."""
        return OnCheckpointRollingPolicy(None, None, None)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(part_size={self.part_size}, rollover_interval={self.rollover_interval}, "
                f"inactivity_interval={self.inactivity_interval})")


class DefaultRollingPolicy(RollingPolicy):
    """``RollingPolicy.default_rolling_policy(...)``: by size and time."""


class OnCheckpointRollingPolicy(RollingPolicy):
    """``RollingPolicy.on_checkpoint_rolling_policy()``: at checkpoints only."""


class OutputFileConfig:
    """Part file names: ``<part_prefix>-<uid>-<worker>-<counter><part_suffix>``."""

    def __init__(self, part_prefix: str = "part", part_suffix: str = "") -> None:
        for what, value in (("part prefix", part_prefix), ("part suffix", part_suffix)):
            if not isinstance(value, str) or "/" in value or "\0" in value:
                raise ValueError(f"OutputFileConfig: the {what} must be a str without '/', got {value!r}")
        if not part_prefix or part_prefix[0] in "._":
            # Readers skip names starting with '.' or '_': the output would look empty.
            raise ValueError(f"OutputFileConfig: the part prefix must not be empty or start with '.' or '_' "
                             f"(readers skip such files as hidden), got {part_prefix!r}")
        self._prefix = part_prefix
        self._suffix = part_suffix

    @staticmethod
    def builder() -> "OutputFileConfig.OutputFileConfigBuilder":
        return OutputFileConfig.OutputFileConfigBuilder()

    def get_part_prefix(self) -> str:
        return self._prefix

    def get_part_suffix(self) -> str:
        return self._suffix

    def __repr__(self) -> str:
        return f"OutputFileConfig({self._prefix!r}, {self._suffix!r})"

    class OutputFileConfigBuilder:
        """``OutputFileConfig.builder().with_part_prefix(p).with_part_suffix(s).build()``."""

        def __init__(self) -> None:
            self.part_prefix = "part"
            self.part_suffix = ""

        def with_part_prefix(self, prefix: str) -> "OutputFileConfig.OutputFileConfigBuilder":
            self.part_prefix = prefix
            return self

        def with_part_suffix(self, suffix: str) -> "OutputFileConfig.OutputFileConfigBuilder":
            self.part_suffix = suffix
            return self

        def build(self) -> "OutputFileConfig":
            return OutputFileConfig(self.part_prefix, self.part_suffix)


class FileSink:
    """Part files under a base path; pass it to ``stream.sink_to(sink)``. Build one with
    ``FileSink.for_row_format(base_path, Encoder.simple_string_encoder())``.

    Files are written hidden (``.<name>.inprogress.<random>``), become pending
    (``.<name>.pending``) when they roll, and visible when the next checkpoint
    completes; without checkpoints, when the job has succeeded. With checkpoints the
    visible output is exactly-once across failures and restores."""

    def __init__(self, base_path: str, encoder: Any, config: OutputFileConfig, rolling: RollingPolicy,
                 buckets: BucketAssigner) -> None:
        self._base_path = base_path
        self._encoder = encoder
        self._config = config
        self._rolling = rolling
        self._buckets = buckets

    @staticmethod
    def for_row_format(base_path: Any, encoder: Encoder) -> "FileSink.RowFormatBuilder":
        """A builder for a sink writing each record with ``encoder`` under ``base_path``."""
        if not isinstance(encoder, Encoder):
            raise TypeError("for_row_format() takes an Encoder, e.g. Encoder.simple_string_encoder(), "
                            f"got {encoder!r}")
        return FileSink.RowFormatBuilder(_file_path(base_path, "FileSink"), encoder)

    @staticmethod
    def for_bulk_format(base_path: Any, writer_factory: Any) -> "FileSink.RowFormatBuilder":
        """A builder for a sink writing CSV with ``CsvBulkWriters.for_schema(schema)``
        (``connectors.file_formats``); Parquet, ORC and Avro writers are not supported."""
        from .file_formats import CsvBulkWriterFactory, ParquetBulkWriterFactory

        if not isinstance(writer_factory, (CsvBulkWriterFactory, ParquetBulkWriterFactory)):
            raise NotImplementedError("FileSink.for_bulk_format() supports CsvBulkWriters.for_schema(schema) and "
                                      "ParquetBulkWriters.for_row_type(row_type) (ORC and Avro writers are not "
                                      f"supported), got {writer_factory!r}")
        return FileSink.RowFormatBuilder(_file_path(base_path, "FileSink"), writer_factory)

    def _kind(self) -> _nodes.WriteFiles:
        r = self._rolling
        csv = getattr(self._encoder, "_csv", None)
        return _nodes.WriteFiles(self._base_path, self._config.get_part_prefix(), self._config.get_part_suffix(),
                                 r.part_size, r.rollover_interval, r.inactivity_interval, self._buckets._bucket,
                                 getattr(self._encoder, "_sink_format", "text"), csv() if csv else None,
                                 getattr(self._encoder, "_columns", None))

    def _label(self) -> str:
        return self._base_path

    def __repr__(self) -> str:
        return (f"FileSink({self._base_path!r}, {self._encoder!r}, {self._config!r}, {self._rolling!r}, "
                f"{self._buckets!r})")

    class RowFormatBuilder:
        """Settings of a row-format ``FileSink``; ``build()`` makes it."""

        def __init__(self, base_path: str, encoder: Any) -> None:
            self._base_path = base_path
            self._encoder = encoder
            self._config = OutputFileConfig()
            self._rolling: RollingPolicy = RollingPolicy.default_rolling_policy()
            self._buckets = BucketAssigner.date_time_bucket_assigner()

        def with_bucket_check_interval(self, interval: int) -> "FileSink.RowFormatBuilder":
            """Accepted for PyFlink's sake: the rolling policy is checked as records come
            and at every checkpoint, not on a timer."""
            to_millis(interval, "bucket check interval")
            return self

        def with_bucket_assigner(self, bucket_assigner: BucketAssigner) -> "FileSink.RowFormatBuilder":
            if not isinstance(bucket_assigner, BucketAssigner):
                raise TypeError("with_bucket_assigner() takes BucketAssigner.date_time_bucket_assigner(...) or "
                                f"BucketAssigner.base_path_bucket_assigner(), got {bucket_assigner!r}")
            self._buckets = bucket_assigner
            return self

        def with_output_file_config(self, output_file_config: OutputFileConfig) -> "FileSink.RowFormatBuilder":
            if not isinstance(output_file_config, OutputFileConfig):
                raise TypeError("with_output_file_config() takes OutputFileConfig.builder()...build(), "
                                f"got {output_file_config!r}")
            self._config = output_file_config
            return self

        def with_rolling_policy(self, rolling_policy: RollingPolicy) -> "FileSink.RowFormatBuilder":
            if not isinstance(rolling_policy, RollingPolicy):
                raise TypeError("with_rolling_policy() takes RollingPolicy.default_rolling_policy(...) or "
                                f"RollingPolicy.on_checkpoint_rolling_policy(), got {rolling_policy!r}")
            self._rolling = rolling_policy
            return self

        def enable_compact(self, strategy: Any, compactor: Any) -> "FileSink.RowFormatBuilder":
            """Not supported: raises ``NotImplementedError``."""
            raise NotImplementedError("FileSink enable_compact() is not supported: size the part files with "
                                      "RollingPolicy.default_rolling_policy(part_size=...)")

        def disable_compact(self) -> "FileSink.RowFormatBuilder":
            """No compaction (the only behaviour)."""
            return self

        def build(self) -> "FileSink":
            return FileSink(self._base_path, self._encoder, self._config, self._rolling, self._buckets)
