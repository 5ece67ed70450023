"""``Row`` and ``RowKind``: PyFlink's record of named or positional fields.

A stream declared ``Types.ROW([...])`` or ``Types.ROW_NAMED([...], [...])`` carries
``Row`` values (see ``ferroflow.typeinfo``); users also build them by hand:

    Row(1, "a")                  # positional: <Row(1, 'a')>
    Row(id=1, name="a")          # named, in the order given: Row(id=1, name='a')
    Person = Row("id", "name")   # a row of names used as a factory
    Person(1, "a")               # Row(id=1, name='a')

Fields are read by position (``row[0]``), by name (``row["id"]``, ``row.id``), and as a
dict (``as_dict()``). Equality, hashing, ``repr`` and pickling behave as PyFlink 2.3's
``pyflink.common.Row``, so rows cross workers and processes unchanged (class, field
names and kind).
"""

from __future__ import annotations

from enum import Enum

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Sequence

__all__ = ["Row", "RowKind"]


class RowKind(Enum):
    """What a row means in a changelog: an insertion (the default), the old or new
    value of an update, or a deletion. ``str()`` gives Flink's short form (``+I``...)."""

    INSERT = 0
    UPDATE_BEFORE = 1
    UPDATE_AFTER = 2
    DELETE = 3

    def __str__(self) -> str:
        return _SHORT[self.value]


#: Flink's ``RowKind.shortString()`` per kind, by value.
_SHORT = ("+I", "-U", "+U", "-D")


def _make_row(fields: Optional[List[str]], values: Sequence[Any], row_kind: Optional[RowKind] = None) -> "Row":
    """A row of ``values`` named ``fields`` (None: positional), of ``row_kind``. What a
    pickled row is rebuilt with, so this name must stay importable."""
    row = Row(*values)
    if fields is not None:
        row._fields = fields
    if row_kind is not None:
        row._row_kind = row_kind
    return row


class Row:
    """A record of fields, read by position (``row[0]``), by name (``row["id"]``,
    ``row.id``) or as a dict (``as_dict()``). ``Row(*values)`` makes a positional row,
    ``Row(**named)`` a named one (fields in the order given); a row of names used as a
    function (``Row("id", "name")(1, "a")``) makes named rows. Each row also has a
    ``RowKind`` (``INSERT`` unless set)."""

    # Slots, not a __dict__: a row is small and the engine copies rows it may share
    # (object reuse off). An unset ``_fields`` means a positional row, as in PyFlink.
    __slots__ = ("_values", "_fields", "_row_kind", "_from_dict")

    _values: List[Any]
    _fields: List[str]
    _row_kind: RowKind
    _from_dict: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args and kwargs:
            raise ValueError("Row() takes positional values or named ones, not both")
        if kwargs:
            object.__setattr__(self, "_fields", list(kwargs))
            object.__setattr__(self, "_values", list(kwargs.values()))
            object.__setattr__(self, "_from_dict", True)
        else:
            object.__setattr__(self, "_values", list(args))
            object.__setattr__(self, "_from_dict", False)
        object.__setattr__(self, "_row_kind", RowKind.INSERT)

    # -- PyFlink's methods ---------------------------------------------------------------

    def as_dict(self, recursive: bool = False) -> Dict[str, Any]:
        """The fields as a dict by name; with ``recursive``, rows inside (also in lists
        and dicts) become dicts too. A positional row has no names: TypeError."""
        if not hasattr(self, "_fields"):
            raise TypeError("as_dict(): this Row has no field names (made as Row(*values)); "
                            "name them with Row(name=value, ...) or set_field_names([...])")
        if not recursive:
            return dict(zip(self._fields, self._values))
        return {name: _as_plain(value) for name, value in zip(self._fields, self._values)}

    def get_row_kind(self) -> RowKind:
        """The row's ``RowKind`` (``INSERT`` unless set)."""
        return self._row_kind

    def set_row_kind(self, row_kind: RowKind) -> None:
        """Sets the row's ``RowKind``."""
        self._row_kind = row_kind

    def set_field_names(self, field_names: List[str]) -> None:
        """Names the fields (in order), making a positional row a named one."""
        self._fields = field_names

    def get_fields_by_names(self, names: List[str]) -> List[Any]:
        """The values of the fields ``names``, in that order (all of them, in order, for
        a positional row)."""
        if not hasattr(self, "_fields") or names == self._fields:
            return self._values
        missing = [n for n in names if n not in self._fields]
        if missing:
            raise KeyError(f"Row has no fields {missing}; its fields are {self._fields}")
        return [self._values[self._fields.index(n)] for n in names]

    @staticmethod
    def of_kind(row_kind: RowKind, *args: Any, **kwargs: Any) -> "Row":
        """``Row(*args, **kwargs)`` of ``row_kind``."""
        row = Row(*args, **kwargs)
        row._row_kind = row_kind
        return row

    def _is_retract_msg(self) -> bool:
        return self._row_kind in (RowKind.UPDATE_BEFORE, RowKind.DELETE)

    def _is_accumulate_msg(self) -> bool:
        return self._row_kind in (RowKind.UPDATE_AFTER, RowKind.INSERT)

    # -- a row of names as a factory -------------------------------------------------------

    def __call__(self, *args: Any) -> "Row":
        """A new row of ``args`` whose field names are this row's values."""
        if len(args) > len(self._values):
            raise ValueError(f"{self!r} has {len(self._values)} fields, got {len(args)} values: {args!r}")
        return _make_row(self._values, args, self._row_kind)

    # -- access ------------------------------------------------------------------------------

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, (int, slice)):
            return self._values[item]
        try:
            return self._values[self._fields.index(item)]
        except AttributeError:
            raise KeyError(item) from None
        except ValueError:
            raise ValueError(item) from None

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, (int, slice)):
            self._values[key] = value
            return
        try:
            self._values[self._fields.index(key)] = value
        except AttributeError:
            raise KeyError(key) from None
        except ValueError:
            raise ValueError(key) from None

    def __getattr__(self, item: str) -> Any:
        # Only called when normal lookup failed: a field name, or an unset slot.
        if item.startswith("_"):
            raise AttributeError(item)
        try:
            return self._values[self._fields.index(item)]
        except (AttributeError, ValueError):
            raise AttributeError(f"Row has no field {item!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        if key not in Row.__slots__:
            raise AttributeError(f"cannot set {key!r} on a Row: set fields by index or name (row[{key!r}] = ...)")
        object.__setattr__(self, key, value)

    def __contains__(self, item: Any) -> bool:
        """A field name of a named row; a value of a positional row (as PyFlink)."""
        fields = getattr(self, "_fields", None)
        return item in (fields if fields is not None else self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    # -- identity --------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        # As PyFlink: named rows are equal when they hold the same values under the same
        # names, in any order; a named row never equals a positional one.
        if not isinstance(other, Row) or self.__class__ != other.__class__ or self._row_kind != other._row_kind:
            return False
        mine, theirs = getattr(self, "_fields", None), getattr(other, "_fields", None)
        if mine is None or theirs is None:
            return mine is None and theirs is None and self._values == other._values
        if mine == theirs:
            return self._values == other._values
        if sorted(mine) != sorted(theirs):
            return False
        return all(self._values[mine.index(n)] == other._values[theirs.index(n)] for n in mine)

    def __hash__(self) -> int:
        return hash(tuple(self._values))

    def __repr__(self) -> str:
        fields = getattr(self, "_fields", None)
        if fields is not None:
            return "Row(" + ", ".join(f"{k}={v!r}" for k, v in zip(fields, self._values)) + ")"
        return "<Row(" + ", ".join(repr(v) for v in self._values) + ")>"

    def __reduce__(self) -> Any:
        # Rebuilt by a module-level function, so a row pickles (between processes, in
        # checkpoints) with its field names and kind.
        return _make_row, (getattr(self, "_fields", None), tuple(self._values), self._row_kind)

    def __copy__(self) -> "Row":
        return _make_row(getattr(self, "_fields", None), self._values, self._row_kind)

    def __deepcopy__(self, memo: Dict[int, Any]) -> "Row":
        # What the engine's private copies (object reuse off) call: faster than the
        # generic __reduce__ path, same result.
        import copy

        fields = getattr(self, "_fields", None)
        return _make_row(None if fields is None else list(fields), copy.deepcopy(self._values, memo), self._row_kind)


def _as_plain(value: Any) -> Any:
    """``as_dict(recursive=True)``'s conversion of one value."""
    if isinstance(value, Row):
        return value.as_dict(True)
    if isinstance(value, list):
        return [_as_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_plain(v) for k, v in value.items()}
    return value
