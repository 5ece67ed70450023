"""Built-in keyed aggregations: ``key_by(field)``, ``sum``, ``min``, ``max``,
``min_by``, ``max_by`` and ``count``.

The engine runs them in Rust (``crates/python/src/builtins.rs``): with ``int`` (fitting
in 64 bits) and ``float`` values and tuple, list or dict records no Python code runs
per record. Anything else goes through the functions below and Python's own
operators, so results are always those of the equivalent ``reduce``.

Semantics (Flink's ``KeyedStream`` aggregations, rolling like ``reduce``: every
record emits the updated aggregate of its key; a key's first record is emitted as
it is):

* A *field* is an ``int`` index or a ``str`` name; see :func:`get_field` for how it
  is found in a record. ``None`` (or Flink's ``"*"``) means the record itself, so
  ``sum()`` on a stream of numbers sums the numbers; Flink's position ``0`` of an
  atomic value (a number, a str) is also the value itself.
* ``sum(f)``: the previous aggregate with ``f`` replaced by ``previous.f + record.f``;
  the other fields stay those of the key's first record (as Flink). ``f`` must hold a
  number: an ``int``, ``float`` or any other ``numbers.Number`` (bool, Decimal,
  Fraction, NumPy numbers), as Flink sums numeric fields only.
* ``min(f)`` / ``max(f)``: the previous aggregate, with ``f`` replaced by
  ``record.f`` unless ``previous.f < record.f`` (``>`` for max); other fields are
  the first record's (as Flink).
* ``min_by(f)`` / ``max_by(f)``: the whole record holding the smallest (largest)
  ``f`` so far; on ties the earlier record stays (Flink's default ``first=True``).
  For these four, ``f`` must be comparable with ``<`` (numbers, str, tuples...; not
  None).
* Every record is checked, a key's (or a window's) first record too although it is
  emitted without meeting another: a missing field or a value the aggregation cannot
  take fails the job naming the operator, the record and the reason.
* ``count()``: ``(key, n)``, ``n`` being how many records of that key arrived so
  far (1 for the first). ``key`` is the key selector's value.

The result is always a new record (a copy of the previous aggregate with one field
replaced) except where the previous aggregate is emitted again unchanged (min/max
when it already holds the extreme, min_by/max_by when it stays): then it is the
same object, as with a ``reduce`` returning its first argument. One exception: for
``(key, number)`` pairs aggregated on the number, the engine keeps the number per
key and emits a new, equal ``(key, number)`` tuple every time (its number a new
``int`` or ``float`` object too).
"""

from __future__ import annotations

from collections.abc import Mapping

from ._nodes import Aggregate, CountPairs, KeyBy, KeyByField
from ._plan import Udf
from .row import Row

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, TypeVar, Union

    from ._nodes import NodeKind

    _T = TypeVar("_T")

__all__ = ["FieldError", "Field", "is_field", "check_field", "label", "get_field", "with_field",
           "rolling", "count_pairs", "count_sum"]

if TYPE_CHECKING:
    #: An aggregation's field: an index, a name, or None for the whole record.
    Field = Union[int, str, None]


def __getattr__(name: str) -> Any:
    """``Field`` is made when first asked for, so that importing ferroflow does not
    import typing."""
    if name == "Field":
        from typing import Union

        value = globals()[name] = Union[int, str, None]
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The aggregations a KeyedStream offers besides count().
OPS = ("sum", "min", "max", "min_by", "max_by")


class FieldError(LookupError):
    """A record lacks the field a built-in ``key_by`` or aggregation names."""


# -- plan time: the node kinds (what datastream.py records) -----------------------------


def is_field(selector: Any) -> bool:
    """True for what ``key_by`` takes as a field (an int index or a str name) rather
    than as a key selector function."""
    return isinstance(selector, str) or (isinstance(selector, int) and not isinstance(selector, bool))


def check_field(field: Any, what: str, whole_ok: bool = True) -> Field:
    """``field`` validated (TypeError otherwise); ``"*"`` becomes None (the record)."""
    if field is None or (isinstance(field, str) and field == "*"):
        if not whole_ok:
            raise TypeError(f"{what} takes a field index (int) or name (str), got None")
        return None
    if isinstance(field, bool) or not isinstance(field, (int, str)):
        raise TypeError(f"{what} takes a field index (int) or name (str), got {type(field).__name__} {field!r}")
    return field


def label(field: Field) -> str:
    """How a node's label shows ``field`` (empty for the record itself)."""
    return "" if field is None else str(field)


def rolling(op: str, field: Any, key: NodeKind) -> Aggregate:
    """The node kind of a rolling ``op`` (``sum``, ``min``, ``max``, ``min_by``,
    ``max_by``) over ``field``, on a stream keyed by ``key`` (its key_by node's kind)."""
    if op not in OPS:
        raise ValueError(f"unknown aggregation {op!r}")
    field = check_field(field, f"{op}()")
    # A key field index lets the engine keep (key, number) pairs as a number per key.
    key_field = key.field if isinstance(key, KeyByField) and isinstance(key.field, int) else None
    return Aggregate(op, field, key_field=key_field)


def count_pairs(key: NodeKind) -> CountPairs:
    """``count()``'s first node: ``(key, 1)`` per record, the key taken as ``key`` (the
    keyed stream's key_by node's kind) takes it (calling its function once more per
    record when it is a Python function). The pairs are then keyed by field 0 and
    summed on field 1 (``count_sum``)."""
    if isinstance(key, KeyByField):
        return CountPairs(field=key.field)
    if isinstance(key, KeyBy):
        # A fresh Udf: the engine binds (and opens) it per worker like any function.
        return CountPairs(udf=Udf(key.udf.fn, ("get_key", "getKey")))  # type: ignore[attr-defined]
    raise TypeError("count() needs a stream made by key_by()")  # pragma: no cover - every KeyedStream has one


def count_sum() -> Aggregate:
    """``count()``'s last node: the running sum of the pairs' 1s."""
    return Aggregate("sum", 1, what="count()", key_field=0)


# -- run-time helpers (the engine calls these for records its fast paths skip) -------------


def _atomic(record: Any) -> bool:
    """A value with no items: numbers, str, bytes and objects without ``__getitem__``."""
    return isinstance(record, (str, bytes, bytearray)) or not hasattr(type(record), "__getitem__")


def _kind(record: Any) -> str:
    n = None
    try:
        n = len(record)
    except Exception:  # noqa: BLE001 - any object's __len__ may raise; the message then has no count
        pass
    name = type(record).__name__
    return f"a {name} of {n} item{'s' if n != 1 else ''}" if n is not None and not isinstance(record, str) else f"a {name}"


def _missing(record: Any, field: Field, why: str = "") -> FieldError:
    try:
        text = repr(record)
    except Exception:  # noqa: BLE001 - a failing __repr__ must not hide the field error
        text = f"<{type(record).__name__}>"
    if len(text) > 200:
        text = text[:200] + "..."
    return FieldError(f"record {text} ({_kind(record)}) has no field {field!r}{why}")


def get_field(record: Any, field: Field) -> Any:
    """The value of ``field`` in ``record``:

    * ``None``: the record itself;
    * a dict or other mapping: ``record[field]`` (the field is the key, int or str);
    * an int field: ``record[field]`` for tuples, lists and other sequences (negative
      indexes count from the end, as in Python); for an atomic record (a number, a
      str, bytes, an object without items) only ``0``, meaning the record itself
      (Flink's rule for basic types);
    * a str field: the attribute of that name (objects, dataclasses, named tuples);
      plain tuples and lists have no named fields.

    Raises ``FieldError`` naming the record and the field when there is no such field.
    """
    if field is None:
        return record
    if isinstance(record, Mapping):
        try:
            return record[field]
        except KeyError:
            raise _missing(record, field) from None
    if isinstance(field, int):
        if _atomic(record):
            if field == 0:
                return record
            raise _missing(record, field)
        try:
            return record[field]
        except (IndexError, KeyError, TypeError):
            raise _missing(record, field) from None
    if isinstance(record, tuple) and hasattr(record, "_fields"):
        if field in record._fields:
            return getattr(record, field)
        raise _missing(record, field)
    if isinstance(record, (tuple, list)):
        raise _missing(record, field, f": a {type(record).__name__} record takes a field index (int)")
    try:
        return getattr(record, field)
    except AttributeError:
        raise _missing(record, field) from None


def _copy(obj: _T) -> _T:
    """``copy.copy(obj)``, importing copy on first use rather than at start-up."""
    import copy

    return copy.copy(obj)


def with_field(record: Any, field: Field, value: Any) -> Any:
    """A copy of ``record`` with ``field`` set to ``value`` (``record`` itself is not
    changed): a new tuple, list or dict; ``_replace`` for named tuples; for other
    objects a shallow ``copy.copy`` with the attribute or item set (frozen
    dataclasses too). ``field`` must exist (see :func:`get_field`)."""
    if field is None:
        return value
    if isinstance(record, Mapping):
        new: Any = record.copy() if type(record) is dict else _copy(record)
        new[field] = value
        return new
    if isinstance(field, int):
        if _atomic(record):
            return value
        if isinstance(record, tuple):
            if hasattr(record, "_replace") and hasattr(record, "_fields"):
                return record._replace(**{record._fields[field]: value})
            items = list(record)
            items[field] = value
            return tuple(items) if type(record) is tuple else type(record)(items)
        if type(record) is list:
            new = list(record)
        else:
            new = _copy(record)
        new[field] = value
        return new
    if isinstance(record, tuple) and hasattr(record, "_replace"):
        return record._replace(**{field: value})
    new = _copy(record)
    if isinstance(new, Row):  # a Row's fields are set by name, not as attributes
        new[field] = value
        return new
    try:
        setattr(new, field, value)
    except AttributeError:  # frozen dataclasses, read-only properties on a copy
        object.__setattr__(new, field, value)
    return new
