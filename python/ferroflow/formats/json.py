"""JSON rows (PyFlink's ``pyflink.datastream.formats.json``): a row is one JSON object
whose keys are the row type's field names (``f0``, ``f1``... for ``Types.ROW``)."""

from __future__ import annotations

import json as _json
from typing import Any, Optional

from ..functions import DeserializationSchema, SerializationSchema
from ..row import Row
from ._rows import field_names, row_type, to_row, truncated


def _plain(value: Any) -> Any:
    """A field value as JSON has it: nested rows become objects, bytes are refused by
    ``json`` itself (as Flink's JSON format has no bytes either)."""
    if isinstance(value, Row):
        names = value._fields if getattr(value, "_fields", None) else [f"f{i}" for i in range(len(value._values))]
        return {n: _plain(v) for n, v in zip(names, value._values)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class JsonRowSerializationSchema(SerializationSchema):
    """A row as a JSON object of its fields (UTF-8). Build with
    ``JsonRowSerializationSchema.builder().with_type_info(Types.ROW(...)).build()``."""

    def __init__(self, type_info: Any) -> None:
        self.type_info = row_type(type_info, "JsonRowSerializationSchema")
        self._names = field_names(self.type_info)
        self._to_row = to_row(self.type_info)

    class Builder:
        """PyFlink's builder: ``with_type_info(row_type)``, then ``build()``."""

        def __init__(self) -> None:
            self._type_info: Any = None

        def with_type_info(self, type_info: Any) -> "JsonRowSerializationSchema.Builder":
            self._type_info = type_info
            return self

        def build(self) -> "JsonRowSerializationSchema":
            if self._type_info is None:
                raise ValueError("JsonRowSerializationSchema.builder(): call with_type_info(row_type) before build()")
            return JsonRowSerializationSchema(self._type_info)

    @staticmethod
    def builder() -> "JsonRowSerializationSchema.Builder":
        return JsonRowSerializationSchema.Builder()

    def serialize(self, value: Any) -> bytes:
        row = self._to_row(value)
        obj = {n: _plain(v) for n, v in zip(self._names, row._values)}
        return _json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class JsonRowDeserializationSchema(DeserializationSchema):
    """A JSON object as a row of the declared type, by field name (a missing field is
    None, unless ``fail_on_missing_field()``). A message that is not such an object
    fails the job naming topic, partition and offset, or is skipped and counted with
    ``ignore_parse_errors()``. Build with
    ``JsonRowDeserializationSchema.builder().type_info(Types.ROW(...)).build()``."""

    def __init__(self, type_info: Any, fail_on_missing_field: bool = False, ignore_parse_errors: bool = False) -> None:
        self.type_info = row_type(type_info, "JsonRowDeserializationSchema")
        self.fail_on_missing_field = fail_on_missing_field
        self.ignore_parse_errors = ignore_parse_errors
        self._names = field_names(self.type_info)
        self._to_row = to_row(self.type_info)

    class Builder:
        """PyFlink's builder: ``type_info(row_type)``, optionally
        ``fail_on_missing_field()`` and ``ignore_parse_errors()``, then ``build()``."""

        def __init__(self) -> None:
            self._type_info: Any = None
            self._fail_on_missing = False
            self._ignore = False

        def type_info(self, type_info: Any) -> "JsonRowDeserializationSchema.Builder":
            self._type_info = type_info
            return self

        def json_schema(self, json_schema: str) -> "JsonRowDeserializationSchema.Builder":
            raise ValueError("JsonRowDeserializationSchema: json_schema() is not supported; declare the row "
                             "with type_info(Types.ROW_NAMED([...], [...]))")

        def fail_on_missing_field(self) -> "JsonRowDeserializationSchema.Builder":
            self._fail_on_missing = True
            return self

        def ignore_parse_errors(self) -> "JsonRowDeserializationSchema.Builder":
            self._ignore = True
            return self

        def build(self) -> "JsonRowDeserializationSchema":
            if self._type_info is None:
                raise ValueError("JsonRowDeserializationSchema.builder(): call type_info(row_type) before build()")
            return JsonRowDeserializationSchema(self._type_info, self._fail_on_missing, self._ignore)

    @staticmethod
    def builder() -> "JsonRowDeserializationSchema.Builder":
        return JsonRowDeserializationSchema.Builder()

    def get_produced_type(self) -> Any:
        return self.type_info

    def deserialize(self, message: Optional[bytes]) -> Any:
        if message is None:
            return None  # a tombstone: no row
        obj = _json.loads(message)
        if not isinstance(obj, dict):
            raise TypeError(f"not a JSON object: {truncated(message)}")
        if self.fail_on_missing_field:
            missing = [n for n in self._names if n not in obj]
            if missing:
                raise ValueError(f"the JSON object has no field {missing[0]!r}: {truncated(message)}")
        return self._to_row(obj)
