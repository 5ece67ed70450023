"""What the JSON and CSV row schemas share: the declared row type, its field names
and how each field's text or JSON value becomes the field's Python value."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, List, Optional

from ..typeinfo import BasicType, BasicTypeInfo, RowTypeInfo, TypeInformation, converter_of


def row_type(type_info: Any, what: str) -> RowTypeInfo:
    """``type_info`` if it is a row type (``Types.ROW``/``Types.ROW_NAMED``), else a
    ``TypeError`` naming ``what``."""
    if not isinstance(type_info, RowTypeInfo):
        raise TypeError(f"{what} takes a row type, e.g. Types.ROW([Types.INT(), Types.STRING()]), "
                        f"got {type_info!r}")
    return type_info


def to_row(type_info: RowTypeInfo) -> Callable[[Any], Any]:
    """Makes a ``Row`` of ``type_info`` from a tuple, list or dict (by field name)."""
    convert = converter_of(type_info)
    assert convert is not None  # a row type always converts
    return convert


def _to_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    raise ValueError(f"not a boolean: {text!r}")


def text_parser(field: TypeInformation) -> Callable[[str], Any]:
    """How a CSV field's text becomes a value of the field's type (str for types
    without a text form of their own)."""
    if isinstance(field, BasicTypeInfo):
        kind = field._basic_type
        if kind in (BasicType.INT, BasicType.LONG, BasicType.SHORT, BasicType.BYTE, BasicType.BIG_INT):
            return lambda t: int(t.strip())
        if kind in (BasicType.FLOAT, BasicType.DOUBLE):
            return lambda t: float(t.strip())
        if kind is BasicType.BIG_DEC:
            return lambda t: Decimal(t.strip())
        if kind is BasicType.BOOLEAN:
            return _to_bool
    return str


def field_names(type_info: RowTypeInfo) -> List[str]:
    return list(type_info.get_field_names())


def truncated(data: Optional[bytes], limit: int = 80) -> str:
    """``data`` shown for an error message, cut at ``limit`` bytes."""
    if data is None:
        return "None"
    return repr(data[:limit]) + ("..." if len(data) > limit else "")
