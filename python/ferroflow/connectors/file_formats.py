"""Record formats of files, for ``FileSource`` and ``FileSink`` (PyFlink's
``pyflink.datastream.formats.csv`` and ``...parquet`` names, plus JSON lines)::

    schema = CsvSchema.builder().add_string_column("name").add_number_column("n") \\
        .set_column_separator(";").set_use_header().build()
    source = FileSource.for_record_stream_format(CsvReaderFormat.for_schema(schema), "in/").build()
    rows = env.from_source(source, WatermarkStrategy.no_watermarks(), "csv")   # Row(name=..., n=...)

    FileSource.for_record_stream_format(JsonLinesFormat(), "events.jsonl")      # dicts
    FileSource.for_bulk_file_format(ParquetColumnarRowInputFormat(), "t.parquet")  # Rows
    FileSource.for_bulk_file_format(ParquetRecordBatchFormat(), "t.parquet")   # pyarrow.RecordBatch

    stream.sink_to(FileSink.for_bulk_format("out/", CsvBulkWriters.for_schema(schema)).build())
    stream.sink_to(FileSink.for_row_format("out/", JsonLinesEncoder()).build())

The reading and writing is the engine's (``crates/engine/src/connectors/formats``);
these classes only hold settings. A record that does not parse fails the job naming
the file and line (or Parquet row group); a format's ``ignore_parse_errors()`` skips
such records instead, and each reader prints how many it skipped to stderr at its end.
"""

from __future__ import annotations

from .. import _nodes
from ..functions import Encoder

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple

__all__ = ["CsvSchema", "CsvSchemaBuilder", "CsvReaderFormat", "CsvBulkWriters", "CsvBulkWriterFactory",
           "JsonLinesFormat", "JsonLinesEncoder", "ParquetColumnarRowInputFormat", "AvroParquetReaders",
           "ParquetRecordBatchFormat", "ParquetBulkWriters", "ParquetBulkWriterFactory"]


def _char(value: Any, what: str) -> str:
    """One ASCII character (CSV settings are bytes in the engine)."""
    if not isinstance(value, str) or len(value) != 1 or not value.isascii():
        raise ValueError(f"CsvSchema: the {what} must be one ASCII character, got {value!r}")
    return value


class CsvSchema:
    """The columns and dialect of CSV files (PyFlink's ``CsvSchema``); build one with
    ``CsvSchema.builder()``. Without columns every field is a string, named by the
    header when there is one (records are then named ``Row``s; else positional)."""

    def __init__(self, columns: List[Tuple[str, str]], separator: str, quote: Optional[str],
                 escape: Optional[str], use_header: bool, skip_first_data_row: bool,
                 comment: Optional[str], null_value: Optional[str]) -> None:
        self._columns = columns
        self._separator = separator
        self._quote = quote
        self._escape = escape
        self._use_header = use_header
        self._skip_first_data_row = skip_first_data_row
        self._comment = comment
        self._null_value = null_value

    @staticmethod
    def builder() -> "CsvSchemaBuilder":
        return CsvSchemaBuilder()

    def get_column_names(self) -> List[str]:
        return [name for name, _ in self._columns]

    def size(self) -> int:
        return len(self._columns)

    def _spec(self) -> _nodes.CsvSpec:
        return _nodes.CsvSpec(self._separator, self._quote, self._escape, self._use_header,
                              self._skip_first_data_row, self._comment, self._null_value, list(self._columns))

    def __repr__(self) -> str:
        return (f"CsvSchema(columns={self._columns!r}, separator={self._separator!r}, quote={self._quote!r}, "
                f"use_header={self._use_header})")


def _number_kind(number_type: Any) -> str:
    """``"int"`` for integer types (DataTypes.BIGINT(), Types.INT()..., the default), else ``"float"``."""
    if number_type is None:
        return "int"
    text = str(number_type).upper()
    return "float" if any(t in text for t in ("DOUBLE", "FLOAT", "DECIMAL", "BIG_DEC")) else "int"


class CsvSchemaBuilder:
    """``CsvSchema.builder()``: columns in order, then the dialect; ``build()``."""

    def __init__(self) -> None:
        self._columns: List[Tuple[str, str]] = []
        self._separator = ","
        self._quote: Optional[str] = '"'
        self._escape: Optional[str] = None
        self._use_header = False
        self._skip_first_data_row = False
        self._comment: Optional[str] = None
        self._null_value: Optional[str] = None

    def _add(self, name: str, kind: str) -> "CsvSchemaBuilder":
        if not isinstance(name, str) or not name:
            raise ValueError(f"CsvSchema: a column name must be a non-empty str, got {name!r}")
        if name in (n for n, _ in self._columns):
            raise ValueError(f"CsvSchema: column {name!r} is added twice")
        self._columns.append((name, kind))
        return self

    def add_string_column(self, name: str) -> "CsvSchemaBuilder":
        return self._add(name, "string")

    def add_number_column(self, name: str, number_type: Any = None) -> "CsvSchemaBuilder":
        """A number: an int for integer types (the default, as PyFlink's BIGINT), a
        float for DOUBLE, FLOAT or DECIMAL."""
        return self._add(name, _number_kind(number_type))

    def add_boolean_column(self, name: str) -> "CsvSchemaBuilder":
        """``true``/``false`` (any case)."""
        return self._add(name, "bool")

    def add_array_column(self, name: str, separator: str = ";", element_type: Any = None) -> "CsvSchemaBuilder":
        """Not supported: raises ``NotImplementedError``."""
        raise NotImplementedError("CsvSchema add_array_column() is not supported: read the column as a string "
                                  "and split it in a map()")

    def set_column_separator(self, char: str) -> "CsvSchemaBuilder":
        self._separator = _char(char, "column separator")
        return self

    def set_quote_char(self, char: str) -> "CsvSchemaBuilder":
        self._quote = _char(char, "quote character")
        return self

    def disable_quote_char(self) -> "CsvSchemaBuilder":
        self._quote = None
        return self

    def set_escape_char(self, char: str) -> "CsvSchemaBuilder":
        """An escape character inside quoted fields (the default: quotes are doubled)."""
        self._escape = _char(char, "escape character")
        return self

    def disable_escape_char(self) -> "CsvSchemaBuilder":
        self._escape = None
        return self

    def set_use_header(self, use: bool = True) -> "CsvSchemaBuilder":
        """Each file's first line is a header: it is skipped (and names the fields when
        the schema has no columns)."""
        self._use_header = bool(use)
        return self

    def set_skip_first_data_row(self, skip: bool = True) -> "CsvSchemaBuilder":
        self._skip_first_data_row = bool(skip)
        return self

    def set_allow_comments(self, allow: bool = True) -> "CsvSchemaBuilder":
        """Lines starting with ``#`` are comments."""
        self._comment = "#" if allow else None
        return self

    def set_null_value(self, null_value: str) -> "CsvSchemaBuilder":
        """Fields with this text are None."""
        if not isinstance(null_value, str):
            raise TypeError(f"CsvSchema: the null value must be a str, got {null_value!r}")
        self._null_value = null_value
        return self

    def set_line_separator(self, separator: str) -> "CsvSchemaBuilder":
        """Lines end with ``\\n`` or ``\\r\\n``, read either way; only those are accepted."""
        if separator not in ("\n", "\r\n"):
            raise ValueError(f"CsvSchema: only '\\n' or '\\r\\n' line separators are supported, got {separator!r}")
        return self

    def build(self) -> CsvSchema:
        for what, value in (("quote", self._quote), ("escape", self._escape), ("comment", self._comment)):
            if value is not None and value == self._separator:
                raise ValueError(f"CsvSchema: the {what} character and the column separator are both {value!r}")
        return CsvSchema(list(self._columns), self._separator, self._quote, self._escape, self._use_header,
                         self._skip_first_data_row, self._comment, self._null_value)


class _RecordFormat:
    """A format a ``FileSource`` reads records with (the engine's ``FormatFiles`` kind)."""

    _format = ""

    def __init__(self) -> None:
        self._skip_malformed = False

    def ignore_parse_errors(self) -> Any:
        """Skip records that do not parse (and count them) instead of failing the job."""
        self._skip_malformed = True
        return self

    def _csv(self) -> Optional[_nodes.CsvSpec]:
        return None

    def _rows(self) -> bool:
        return True

    def _batch_rows(self) -> Optional[int]:
        return None

    def _source_kind(self, paths: List[str], monitor_ms: Optional[int]) -> _nodes.Source:
        return _nodes.FormatFiles(list(paths), True, self._format, self._csv(), self._rows(), self._batch_rows(),
                                  self._skip_malformed, monitor_ms)


class CsvReaderFormat(_RecordFormat):
    """CSV rows as ``Row``s (PyFlink's ``CsvReaderFormat``): ``for_schema(schema)``.
    A quoted field may hold newlines, so each file is read whole by one worker
    (files are dealt round-robin)."""

    _format = "csv"

    def __init__(self, schema: CsvSchema) -> None:
        super().__init__()
        if not isinstance(schema, CsvSchema):
            raise TypeError(f"CsvReaderFormat takes a CsvSchema (CsvSchema.builder()...build()), got {schema!r}")
        self._schema = schema

    @staticmethod
    def for_schema(schema: CsvSchema) -> "CsvReaderFormat":
        return CsvReaderFormat(schema)

    def _csv(self) -> Optional[_nodes.CsvSpec]:
        return self._schema._spec()

    def __repr__(self) -> str:
        return f"CsvReaderFormat.for_schema({self._schema!r})"


class JsonLinesFormat(_RecordFormat):
    """One JSON value per line, as dicts (and lists and plain values); blank lines are
    skipped. Large files are split across workers by byte ranges, as text is."""

    _format = "json_lines"

    def _rows(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "JsonLinesFormat()"


class ParquetColumnarRowInputFormat(_RecordFormat):
    """Parquet rows as named ``Row``s (PyFlink's ``ParquetColumnarRowInputFormat``;
    ``row_type`` and the other settings are accepted and not needed: the file's schema
    names the fields). Row groups are dealt across workers."""

    _format = "parquet"

    def __init__(self, row_type: Any = None, batch_size: int = 2048, is_utc_timestamp: bool = False,
                 is_case_sensitive: bool = True) -> None:
        super().__init__()

    def __repr__(self) -> str:
        return "ParquetColumnarRowInputFormat()"


class AvroParquetReaders:
    """``AvroParquetReaders.for_generic_record(schema)``: Parquet rows as dicts."""

    @staticmethod
    def for_generic_record(schema: Any = None) -> "_ParquetDicts":
        return _ParquetDicts()


class _ParquetDicts(_RecordFormat):
    _format = "parquet"

    def _rows(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "AvroParquetReaders.for_generic_record()"


class ParquetRecordBatchFormat(_RecordFormat):
    """Parquet read as whole Arrow record batches: each record is a
    ``pyarrow.RecordBatch`` of up to ``batch_size`` rows (of one row group), for
    vectorised work (needs pyarrow)."""

    _format = "parquet"

    def __init__(self, batch_size: int = 1024) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"ParquetRecordBatchFormat: batch_size must be a positive int, got {batch_size!r}")
        self._size = batch_size

    def _batch_rows(self) -> Optional[int]:
        return self._size

    def __repr__(self) -> str:
        return f"ParquetRecordBatchFormat({self._size})"


# -- writing ------------------------------------------------------------------------------


class JsonLinesEncoder(Encoder):
    """For ``FileSink.for_row_format``: each record as one line of JSON (dicts, lists,
    tuples, ``Row``s (named: objects), str, int, float, bool, None)."""

    _sink_format = "json_lines"

    def __init__(self) -> None:
        super().__init__("UTF-8")

    def __repr__(self) -> str:
        return "JsonLinesEncoder()"


class CsvBulkWriterFactory:
    """What ``CsvBulkWriters.for_schema(schema)`` makes, for ``FileSink.for_bulk_format``."""

    _sink_format = "csv"

    def __init__(self, schema: CsvSchema) -> None:
        self._schema = schema

    def _csv(self) -> Optional[_nodes.CsvSpec]:
        return self._schema._spec()

    def __repr__(self) -> str:
        return f"CsvBulkWriters.for_schema({self._schema!r})"


class CsvBulkWriters:
    """``CsvBulkWriters.for_schema(schema)``: each record (a ``Row``, tuple, list or
    dict, in the schema's column order) as one CSV line with the schema's separator and
    quoting; no header line."""

    @staticmethod
    def for_schema(schema: CsvSchema) -> CsvBulkWriterFactory:
        if not isinstance(schema, CsvSchema):
            raise TypeError(f"CsvBulkWriters.for_schema() takes a CsvSchema, got {schema!r}")
        return CsvBulkWriterFactory(schema)


def _parquet_kind(t: Any) -> str:
    """The Parquet column type of a field's ``Types.X()``; others raise ``ValueError``."""
    from ..typeinfo import Types

    kinds = ((Types.BOOLEAN(), "bool"), (Types.BYTE(), "int32"), (Types.SHORT(), "int32"), (Types.INT(), "int32"),
             (Types.LONG(), "int64"), (Types.BIG_INT(), "int64"), (Types.FLOAT(), "float32"),
             (Types.DOUBLE(), "float64"), (Types.STRING(), "string"), (Types.CHAR(), "string"),
             (Types.PRIMITIVE_ARRAY(Types.BYTE()), "bytes"))
    for info, kind in kinds:
        if t == info:
            return kind
    raise ValueError(f"ParquetBulkWriters: fields of type {t!r} cannot be written (supported: BOOLEAN, BYTE, SHORT, "
                     "INT, LONG, BIG_INT, FLOAT, DOUBLE, STRING, CHAR, PRIMITIVE_ARRAY(BYTE()))")


class ParquetBulkWriterFactory:
    """What ``ParquetBulkWriters.for_row_type(row_type)`` makes, for ``FileSink.for_bulk_format``."""

    _sink_format = "parquet"

    def __init__(self, columns: List[Tuple[str, str]]) -> None:
        self._columns = columns

    def __repr__(self) -> str:
        return f"ParquetBulkWriters.for_row_type({self._columns!r})"


class ParquetBulkWriters:
    """``ParquetBulkWriters.for_row_type(Types.ROW_NAMED(names, types))``: Parquet part
    files (snappy) with one column per field; each record is a ``Row`` (fields by name
    when named, else by position), a dict (by name) or a tuple or list (by position).
    A file is written out as row groups of up to 65536 rows and closed (its footer
    written) when it rolls."""

    @staticmethod
    def for_row_type(row_type: Any, hadoop_config: Any = None, utc_timestamp: bool = False) -> ParquetBulkWriterFactory:
        from ..typeinfo import RowTypeInfo

        if not isinstance(row_type, RowTypeInfo):
            raise TypeError("ParquetBulkWriters.for_row_type() takes Types.ROW_NAMED([...names], [...types]), "
                            f"got {row_type!r}")
        columns = [(name, _parquet_kind(t)) for name, t in zip(row_type.get_field_names(), row_type.get_field_types())]
        return ParquetBulkWriterFactory(columns)
