"""CSV rows (PyFlink's ``pyflink.datastream.formats.csv`` serialization schemas): a
row is one line of delimited fields, in the row type's field order."""

from __future__ import annotations

import csv as _csv
import io
from typing import Any, List, Optional

from ..functions import DeserializationSchema, SerializationSchema
from ..row import Row
from ._rows import row_type, text_parser, to_row, truncated


class _Dialect:
    """The CSV options both builders share, with PyFlink's setter names."""

    def __init__(self, type_info: Any) -> None:
        self._type_info = type_info
        self.field_delimiter = ","
        self.quote_character: Optional[str] = '"'
        self.escape_character: Optional[str] = None
        self.null_literal: Optional[str] = None
        self.array_element_delimiter = ";"

    def set_field_delimiter(self, c: str) -> Any:
        self.field_delimiter = _one_char(c, "set_field_delimiter")
        return self

    def set_quote_character(self, c: str) -> Any:
        self.quote_character = _one_char(c, "set_quote_character")
        return self

    def disable_quote_character(self) -> Any:
        self.quote_character = None
        return self

    def set_escape_character(self, c: str) -> Any:
        self.escape_character = _one_char(c, "set_escape_character")
        return self

    def set_null_literal(self, s: str) -> Any:
        self.null_literal = s
        return self

    def set_array_element_delimiter(self, s: str) -> Any:
        self.array_element_delimiter = s
        return self

    def _options(self) -> dict:
        return {"delimiter": self.field_delimiter, "quotechar": self.quote_character,
                "quoting": _csv.QUOTE_MINIMAL if self.quote_character else _csv.QUOTE_NONE,
                "escapechar": self.escape_character, "lineterminator": "\n", "strict": True}


def _one_char(c: Any, what: str) -> str:
    if not isinstance(c, str) or len(c) != 1:
        raise ValueError(f"{what}() takes one character, got {c!r}")
    return c


class CsvRowSerializationSchema(SerializationSchema):
    """A row as one CSV line (no line end), fields in order. Build with
    ``CsvRowSerializationSchema.Builder(Types.ROW(...)).build()``."""

    def __init__(self, type_info: Any, options: Optional[dict] = None, null_literal: Optional[str] = None) -> None:
        self.type_info = row_type(type_info, "CsvRowSerializationSchema")
        self._options = options or _Dialect(type_info)._options()
        self._null = null_literal
        self._to_row = to_row(self.type_info)

    class Builder(_Dialect):
        """PyFlink's builder: ``Builder(row_type)``, the CSV setters, ``build()``."""

        def set_line_delimiter(self, delimiter: str) -> "CsvRowSerializationSchema.Builder":
            if delimiter not in ("\n", "\r", "\r\n", ""):
                raise ValueError(f"set_line_delimiter() takes \\n, \\r, \\r\\n or '', got {delimiter!r}")
            return self

        def build(self) -> "CsvRowSerializationSchema":
            return CsvRowSerializationSchema(self._type_info, self._options(), self.null_literal)

    def serialize(self, value: Any) -> bytes:
        row: Row = self._to_row(value)
        out = io.StringIO()
        fields = ["" if v is None and self._null is None else self._null if v is None else _text(v)
                  for v in row._values]
        _csv.writer(out, **self._options).writerow(fields)
        return out.getvalue().rstrip("\n").encode("utf-8")


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class CsvRowDeserializationSchema(DeserializationSchema):
    """One CSV line as a row of the declared type (each field parsed as its type: ints,
    floats, decimals, booleans ``true``/``false``; an empty field, or the null literal,
    is None). A line that does not parse fails the job naming topic, partition and
    offset, or is skipped and counted with ``set_ignore_parse_errors(True)``."""

    def __init__(self, type_info: Any, options: Optional[dict] = None, null_literal: Optional[str] = None,
                 ignore_parse_errors: bool = False, allow_comments: bool = False) -> None:
        self.type_info = row_type(type_info, "CsvRowDeserializationSchema")
        self._options = options or _Dialect(type_info)._options()
        self._null = null_literal
        self.ignore_parse_errors = ignore_parse_errors
        self._comments = allow_comments
        self._parsers = [text_parser(t) for t in self.type_info.get_field_types()]
        self._to_row = to_row(self.type_info)

    class Builder(_Dialect):
        """PyFlink's builder: ``Builder(row_type)``, the CSV setters,
        ``set_allow_comments``, ``set_ignore_parse_errors``, then ``build()``."""

        def __init__(self, type_info: Any) -> None:
            super().__init__(type_info)
            self._ignore = False
            self._comments = False

        def set_allow_comments(self, allow: bool = True) -> "CsvRowDeserializationSchema.Builder":
            self._comments = bool(allow)
            return self

        def set_ignore_parse_errors(self, ignore: bool = True) -> "CsvRowDeserializationSchema.Builder":
            self._ignore = bool(ignore)
            return self

        def build(self) -> "CsvRowDeserializationSchema":
            return CsvRowDeserializationSchema(self._type_info, self._options(), self.null_literal, self._ignore,
                                               self._comments)

    def get_produced_type(self) -> Any:
        return self.type_info

    def deserialize(self, message: Optional[bytes]) -> Any:
        if message is None:
            return None
        text = message.decode("utf-8").rstrip("\r\n")
        if self._comments and text.lstrip().startswith("#"):
            return None
        rows = list(_csv.reader([text], **self._options))
        if len(rows) != 1:
            raise ValueError(f"not one CSV line: {truncated(message)}")
        fields = rows[0]
        if len(fields) != len(self._parsers):
            raise ValueError(f"{len(fields)} fields where the row type has {len(self._parsers)}: "
                             f"{truncated(message)}")
        values: List[Any] = []
        for parse, f in zip(self._parsers, fields):
            if f == "" or (self._null is not None and f == self._null):
                values.append(None)
            else:
                values.append(parse(f))
        return self._to_row(values)
