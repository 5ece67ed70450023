"""Type information: PyFlink's ``Types`` and its ``TypeInformation`` classes, without a JVM.

ferroflow's records are Python objects whatever their type, so a declared type is not
needed to run a job. It is accepted everywhere PyFlink takes one (``type_info=``,
``output_type=``, ``key_type=``, state descriptors, output tags) and honoured where it
changes what users see, as PyFlink's serializers would:

* ``Types.ROW([...])`` / ``Types.ROW_NAMED(names, [...])``: records become ``Row`` values
  (from tuples, lists, dicts or rows), named as declared (``f0``, ``f1``... for ``ROW``);
* ``Types.FLOAT()`` rounds to 32 bits (``110.1`` becomes ``110.0999984741211``),
  ``Types.DOUBLE()`` makes ints floats, ``Types.BIG_DEC()`` makes ``Decimal`` values;
  the same inside ``TUPLE``, ``ROW``, ``LIST``, ``MAP`` and arrays;
* everything else (``TUPLE`` of such fields, ``STRING``, ``INT``, ``PICKLED_BYTE_ARRAY``...)
  passes values through unchanged, at no cost;
* ``print()`` shows a typed stream as PyFlink does: Java's ``toString`` of the record
  (``(hi,1,30,7)`` for a tuple, ``true``, ``null``, ``1.0E10``), ``+I[1,Flink]`` for a row,
  ``str(value)`` for ``PICKLED_BYTE_ARRAY``.

The hooks the API uses (and a ``pyflink`` layer may use): ``converter_of(type_info)``,
the function a stream of that type passes its records through (None: nothing to do), and
``print_text(type_info)`` / ``java_text(type_info)``, how PyFlink's ``print()`` / a Java
string encoder shows them. Objects that are not ``TypeInformation`` (a stand-in label)
are accepted and kept but change nothing.
"""

from __future__ import annotations

import math
from enum import Enum
from struct import Struct

from .row import Row, RowKind, _make_row

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Sequence

    Converter = Callable[[Any], Any]
    Text = Callable[[Any], str]

__all__ = ["TypeInformation", "Types", "BasicType", "BasicTypeInfo", "InstantTypeInfo", "SqlTimeTypeInfo",
           "DateTypeInfo", "TimeTypeInfo", "TimestampTypeInfo", "LocalTimeTypeInfo", "PrimitiveArrayTypeInfo",
           "BasicArrayTypeInfo", "ObjectArrayTypeInfo", "PickledBytesTypeInfo", "RowTypeInfo", "TupleTypeInfo",
           "ListTypeInfo", "MapTypeInfo", "ExternalTypeInfo", "converter_of", "print_text", "java_text"]


# -- the hooks ------------------------------------------------------------------------------


def converter_of(type_info: Any) -> Optional[Converter]:
    """The function records of a stream declared ``type_info`` go through (what
    PyFlink's serializers do to them: rows made, floats rounded...), or None when they
    pass unchanged (no type, a type that changes nothing, or a foreign object)."""
    return type_info._converter() if isinstance(type_info, TypeInformation) else None


def print_text(type_info: Any) -> Optional[Text]:
    """How PyFlink's ``print()`` shows a record of a stream declared ``type_info``
    (after ``converter_of``'s conversion, which it applies), or None for a stream
    without a ``TypeInformation`` (ferroflow's own ``print()`` then shows ``repr``)."""
    if not isinstance(type_info, TypeInformation):
        return None
    return _after(type_info._converter(), type_info._print_text())


def java_text(type_info: Any) -> Optional[Text]:
    """Java's ``toString`` of a record of a stream declared ``type_info`` (what a Java
    string encoder, e.g. a ``FileSink`` with ``Encoder.simple_string_encoder()``, writes),
    or None for a stream without a ``TypeInformation``."""
    if not isinstance(type_info, TypeInformation):
        return None
    return _after(type_info._converter(), type_info._java_text())


def _after(convert: Optional[Converter], text: Text) -> Text:
    if convert is None:
        return text
    return lambda value: text(convert(value))


# -- the base class -----------------------------------------------------------------------------


class TypeInformation:
    """The type of a stream's records (PyFlink's base class). Only informs: see the
    module's docstring for what a declared type changes."""

    def get_java_type_info(self) -> Any:
        """PyFlink's Java object for this type: ferroflow has no JVM, so none."""
        from ._errors import InvalidUseError

        raise InvalidUseError(f"get_java_type_info(): ferroflow runs without a JVM, so {self!r} has no Java "
                              "form; pass the TypeInformation itself where a type is asked for")

    def need_conversion(self) -> bool:
        """Whether records of this type change on their way through a stream."""
        return self._converter() is not None

    def to_internal_type(self, obj: Any) -> Any:
        """``obj`` as a stream of this type carries it."""
        convert = self._converter()
        return obj if convert is None else convert(obj)

    def from_internal_type(self, obj: Any) -> Any:
        """Records are Python objects already: ``obj`` itself."""
        return obj

    # What a subclass says about its records (see the hooks above).

    def _converter(self) -> Optional[Converter]:
        return None

    def _java_text(self) -> Text:
        return _java_generic

    def _print_text(self) -> Text:
        return self._java_text()

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        # PyFlink's types are unhashable (__eq__ without __hash__); ours hash as they compare.
        return hash(repr(self))


# -- Java's toString --------------------------------------------------------------------------


def _java_generic(value: Any) -> str:
    """Java's ``toString`` of a value whose Java type is not declared (a Python object):
    ``null``, ``true``/``false``, Java's doubles, and ``str`` for the rest."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is float:
        return _java_double(value)
    return str(value)


def _nullable(text: Text) -> Text:
    return lambda value: "null" if value is None else text(value)


def _shortest(value: float, single: bool) -> str:
    """The shortest decimal digits that read back as ``value`` (as a 32-bit float if
    ``single``), as ``repr`` writes them."""
    if not single:
        return repr(value)
    target = _to_float32(value)
    for precision in range(9):
        text = f"{target:.{precision}e}"
        if _to_float32(float(text)) == target:
            return text
    return repr(value)  # pragma: no cover - 9 significant digits always read back


def _java_number(value: float, single: bool) -> str:
    """Java's ``Double.toString`` (``Float.toString`` if ``single``): plain between
    10^-3 and 10^7 with at least one decimal (``110.1``, ``3.0``), else ``1.0E10``."""
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    text = _shortest(value, single)
    sign = "-" if text.startswith("-") else ""
    mantissa, _, exp_text = text.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    if not digits:
        return sign + "0.0"
    # value = 0.<digits> x 10^(exponent + 1), with `exponent` the first digit's power of ten.
    exponent = (int(exp_text) if exp_text else 0) - len(fraction) + len(digits) - 1
    digits = digits.rstrip("0")
    if -3 <= exponent < 7:
        if exponent >= 0:
            whole = digits[:exponent + 1].ljust(exponent + 1, "0")
            return f"{sign}{whole}.{digits[exponent + 1:] or '0'}"
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent}"


def _java_double(value: Any) -> str:
    return _java_number(float(value), False) if isinstance(value, (int, float)) else str(value)


def _java_float(value: Any) -> str:
    return _java_number(float(value), True) if isinstance(value, (int, float)) else str(value)


def _java_bool(value: Any) -> str:
    return "true" if value else "false"


def _java_sequence(element: Text) -> Text:
    """``Arrays.toString`` / ``List.toString``: ``[1, 2, 3]``."""
    return lambda value: "[" + ", ".join(element(v) for v in value) + "]"


# -- basic types ------------------------------------------------------------------------------


class BasicType(Enum):
    """The basic types, by their Java class's name."""

    STRING = "String"
    BYTE = "Byte"
    BOOLEAN = "Boolean"
    SHORT = "Short"
    INT = "Integer"
    LONG = "Long"
    FLOAT = "Float"
    DOUBLE = "Double"
    CHAR = "Char"
    BIG_INT = "BigInteger"
    BIG_DEC = "BigDecimal"
    INSTANT = "Instant"


#: Java's ``float``: 32 bits.
_F32 = Struct("f")


def _to_float32(value: Any) -> Any:
    """``value`` rounded to the nearest 32-bit float (Java's ``float``), as a Python float."""
    if value is None:
        return None
    try:
        return _F32.unpack(_F32.pack(value))[0]
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")
    except Exception:  # noqa: BLE001 - struct.error or TypeError: not a number
        raise TypeError(f"Types.FLOAT() takes numbers, got {type(value).__name__} {value!r}") from None


def _to_double(value: Any) -> Any:
    return float(value) if type(value) is int else value


def _to_decimal(value: Any) -> Any:
    from decimal import Decimal

    return value if value is None or isinstance(value, Decimal) else Decimal(str(value))




class BasicTypeInfo(TypeInformation):
    """Primitive types (int, long, double, byte...), String, BigInteger and BigDecimal."""

    def __init__(self, basic_type: BasicType) -> None:
        self._basic_type = basic_type

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BasicTypeInfo) and self._basic_type == other._basic_type

    def __hash__(self) -> int:
        return hash(self._basic_type)

    def __repr__(self) -> str:
        return self._basic_type.value

    def _converter(self) -> Optional[Converter]:
        return {BasicType.FLOAT: _to_float32, BasicType.DOUBLE: _to_double,
                BasicType.BIG_DEC: _to_decimal}.get(self._basic_type)

    def _java_text(self) -> Text:
        if self._basic_type is BasicType.FLOAT:
            return _nullable(_java_float)
        if self._basic_type is BasicType.DOUBLE:
            return _nullable(_java_double)
        if self._basic_type is BasicType.BOOLEAN:
            return _nullable(_java_bool)
        return _nullable(str)

    @staticmethod
    def STRING_TYPE_INFO() -> "BasicTypeInfo":
        return BasicTypeInfo(BasicType.STRING)

    @staticmethod
    def BOOLEAN_TYPE_INFO() -> "BasicTypeInfo":
        return BasicTypeInfo(BasicType.BOOLEAN)

    @staticmethod
    def BYTE_TYPE_INFO() -> "BasicTypeInfo":
        return BasicTypeInfo(BasicType.BYTE)

    @staticmethod
    def SHORT_TYPE_INFO() -> "BasicTypeInfo":
        return BasicTypeInfo(BasicType.SHORT)

    @staticmethod
    def INT_TYPE_INFO() -> "BasicTypeInfo":
        return BasicTypeInfo(BasicType.INT)

    @staticmethod
    def LONG_TYPE_INFO() -> "BasicTypeInfo":
        return BasicTypeInfo(BasicType.LONG)

    @staticmethod
    def FLOAT_TYPE_INFO() -> "BasicTypeInfo":
        return BasicTypeInfo(BasicType.FLOAT)

    @staticmethod
    def DOUBLE_TYPE_INFO() -> "BasicTypeInfo":
        return BasicTypeInfo(BasicType.DOUBLE)

    @staticmethod
    def CHAR_TYPE_INFO() -> "BasicTypeInfo":
        return BasicTypeInfo(BasicType.CHAR)

    @staticmethod
    def BIG_INT_TYPE_INFO() -> "BasicTypeInfo":
        return BasicTypeInfo(BasicType.BIG_INT)

    @staticmethod
    def BIG_DEC_TYPE_INFO() -> "BasicTypeInfo":
        return BasicTypeInfo(BasicType.BIG_DEC)

    @staticmethod
    def INSTANT_TYPE_INFO() -> "InstantTypeInfo":
        return InstantTypeInfo(BasicType.INSTANT)


class InstantTypeInfo(BasicTypeInfo):
    """A point in time (PyFlink's ``Instant``); values pass through."""


# -- time types -----------------------------------------------------------------------------------


def _java_sql_time(value: Any) -> str:
    return value.strftime("%H:%M:%S") if hasattr(value, "strftime") else str(value)


def _java_sql_timestamp(value: Any) -> str:
    """``java.sql.Timestamp.toString``: ``2020-01-02 03:04:05.0``, the fraction without
    trailing zeros but at least one digit."""
    if not hasattr(value, "microsecond"):
        return str(value)
    fraction = f"{value.microsecond:06d}".rstrip("0") or "0"
    return f"{value.strftime('%Y-%m-%d %H:%M:%S')}.{fraction}"


def _java_local_time(value: Any) -> str:
    """``java.time.LocalTime.toString``: ``HH:mm``, then ``:ss`` and the fraction only
    when not zero."""
    if not hasattr(value, "microsecond"):
        return str(value)
    text = f"{value.hour:02d}:{value.minute:02d}"
    if value.second or value.microsecond:
        text += f":{value.second:02d}"
        if value.microsecond:
            text += f".{value.microsecond:06d}" if value.microsecond % 1000 else f".{value.microsecond // 1000:03d}"
    return text


def _java_local_date_time(value: Any) -> str:
    if not hasattr(value, "date"):
        return str(value)
    return f"{value.date().isoformat()}T{_java_local_time(value.time())}"


class SqlTimeTypeInfo(TypeInformation):
    """Factories of the SQL date, time and timestamp types."""

    @staticmethod
    def DATE() -> "DateTypeInfo":
        return DateTypeInfo()

    @staticmethod
    def TIME() -> "TimeTypeInfo":
        return TimeTypeInfo()

    @staticmethod
    def TIMESTAMP() -> "TimestampTypeInfo":
        return TimestampTypeInfo()


class _Singleton(TypeInformation):
    """A type without parameters: equal to every instance of its class."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self))

    def __hash__(self) -> int:
        return hash(type(self).__name__)

    def __repr__(self) -> str:
        return type(self).__name__


class DateTypeInfo(_Singleton):
    """A date (``datetime.date``)."""

    def _java_text(self) -> Text:
        return _nullable(str)


class TimeTypeInfo(_Singleton):
    """A time of day (``datetime.time``)."""

    def _java_text(self) -> Text:
        return _nullable(_java_sql_time)


class TimestampTypeInfo(_Singleton):
    """A date and time (``datetime.datetime``)."""

    def _java_text(self) -> Text:
        return _nullable(_java_sql_timestamp)


class LocalTimeTypeInfo(TypeInformation):
    """``java.time``'s local date, time and date-time."""

    class TimeType(Enum):
        LOCAL_DATE = 0
        LOCAL_TIME = 1
        LOCAL_DATE_TIME = 2

    def __init__(self, time_type: "LocalTimeTypeInfo.TimeType") -> None:
        self._time_type = time_type

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalTimeTypeInfo) and type(other) is type(self) and self._time_type == other._time_type

    def __hash__(self) -> int:
        return hash(self._time_type)

    def __repr__(self) -> str:
        return f"LocalTimeTypeInfo<{self._time_type.name}>"

    def _java_text(self) -> Text:
        kind = self._time_type
        if kind is LocalTimeTypeInfo.TimeType.LOCAL_TIME:
            return _nullable(_java_local_time)
        if kind is LocalTimeTypeInfo.TimeType.LOCAL_DATE_TIME:
            return _nullable(_java_local_date_time)
        return _nullable(str)


# -- arrays, lists and maps -------------------------------------------------------------------------


def _each(convert: Optional[Converter]) -> Optional[Converter]:
    """A list of ``convert``'s results for each element; None if ``convert`` is None."""
    if convert is None:
        return None
    element = convert
    return lambda value: None if value is None else [element(v) for v in value]


class _Elements(TypeInformation):
    """A type of elements of one type (arrays and lists)."""

    _NAME = ""

    def __init__(self, element_type: TypeInformation) -> None:
        self._element_type = element_type

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and self._element_type == other._element_type

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._element_type))

    def __repr__(self) -> str:
        return f"{self._NAME}<{self._element_type!r}>"

    def _converter(self) -> Optional[Converter]:
        return _each(converter_of(self._element_type))

    def _java_text(self) -> Text:
        return _nullable(_java_sequence(_field_text(self._element_type)))


class PrimitiveArrayTypeInfo(_Elements):
    """Arrays of a primitive type (``int[]``...); ``PRIMITIVE_ARRAY(BYTE())`` is ``bytes``."""

    _NAME = "PrimitiveArrayTypeInfo"

    def _java_text(self) -> Text:
        if self._element_type == BasicTypeInfo(BasicType.BYTE):
            # Java's byte[] holds signed bytes.
            return _nullable(lambda value: "[" + ", ".join(str(b - 256 if b > 127 else b) for b in value) + "]")
        return super()._java_text()


class BasicArrayTypeInfo(_Elements):
    """Arrays of a boxed basic type (``Integer[]``, ``String[]``...)."""

    _NAME = "BasicArrayTypeInfo"


class ObjectArrayTypeInfo(_Elements):
    """Arrays of any type."""

    _NAME = "ObjectArrayTypeInfo"


class ListTypeInfo(_Elements):
    """Lists of one type."""

    _NAME = "ListTypeInfo"

    def __init__(self, element_type: TypeInformation) -> None:
        super().__init__(element_type)
        self.elem_type = element_type  # PyFlink's attribute name


class MapTypeInfo(TypeInformation):
    """Maps (dicts) of one key and one value type."""

    def __init__(self, key_type_info: TypeInformation, value_type_info: TypeInformation) -> None:
        self._key_type_info = key_type_info
        self._value_type_info = value_type_info

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, MapTypeInfo) and self._key_type_info == other._key_type_info
                and self._value_type_info == other._value_type_info)

    def __hash__(self) -> int:
        return hash((self._key_type_info, self._value_type_info))

    def __repr__(self) -> str:
        return f"MapTypeInfo<{self._key_type_info!r}, {self._value_type_info!r}>"

    def _converter(self) -> Optional[Converter]:
        keys, values = converter_of(self._key_type_info), converter_of(self._value_type_info)
        if keys is None and values is None:
            return None
        k = keys or _same
        v = values or _same
        return lambda value: None if value is None else {k(a): v(b) for a, b in value.items()}

    def _java_text(self) -> Text:
        k, v = _field_text(self._key_type_info), _field_text(self._value_type_info)
        return _nullable(lambda value: "{" + ", ".join(f"{k(a)}={v(b)}" for a, b in value.items()) + "}")


def _same(value: Any) -> Any:
    return value


class PickledBytesTypeInfo(_Singleton):
    """Any Python object (PyFlink pickles it): what an undeclared stream carries.
    Values pass through; ``print()`` shows ``str(value)``."""

    def __repr__(self) -> str:
        return "PickledByteArrayTypeInfo"

    def _java_text(self) -> Text:
        return _java_generic

    def _print_text(self) -> Text:
        return str


class ExternalTypeInfo(TypeInformation):
    """A Table API type wrapping another; records are those of the wrapped type."""

    def __init__(self, type_info: TypeInformation) -> None:
        self._type_info = type_info

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExternalTypeInfo) and type(other) is type(self) and self._type_info == other._type_info

    def __hash__(self) -> int:
        return hash(self._type_info)

    def __repr__(self) -> str:
        return f"ExternalTypeInfo<{self._type_info!r}>"

    def _converter(self) -> Optional[Converter]:
        return converter_of(self._type_info)

    def _java_text(self) -> Text:
        return self._type_info._java_text()

    def _print_text(self) -> Text:
        return self._type_info._print_text()


# -- tuples and rows --------------------------------------------------------------------------------


def _field_text(type_info: Any) -> Text:
    """Java's ``toString`` of one field declared ``type_info`` (generic if not a type)."""
    return type_info._java_text() if isinstance(type_info, TypeInformation) else _java_generic


def _field_converters(field_types: List[Any]) -> Optional[List[Optional[Converter]]]:
    converters = [converter_of(t) for t in field_types]
    return converters if any(c is not None for c in converters) else None


class TupleTypeInfo(TypeInformation):
    """Tuples of fields of the given types. Records pass through unless a field's type
    converts its value (``FLOAT``, ``ROW``...); then the record becomes a tuple of the
    converted values."""

    def __init__(self, field_types: List[TypeInformation]) -> None:
        self._field_types = list(field_types)

    def get_field_types(self) -> List[TypeInformation]:
        return self._field_types

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TupleTypeInfo) and self._field_types == other._field_types

    def __hash__(self) -> int:
        return hash(tuple(self._field_types))

    def __repr__(self) -> str:
        return "TupleTypeInfo(" + ", ".join(str(t) for t in self._field_types) + ")"

    def _converter(self) -> Optional[Converter]:
        converters = _field_converters(self._field_types)
        if converters is None:
            return None
        described = repr(self)

        def to_tuple(value: Any) -> Any:
            if value is None:
                return None
            if not isinstance(value, (tuple, list, Row)):
                raise TypeError(f"a stream of {described} takes tuples, got {type(value).__name__} {value!r}")
            return tuple([x if c is None else c(x) for c, x in zip(converters, value)])
        return to_tuple

    def _java_text(self) -> Text:
        """Java's ``Tuple.toString``: ``(hi,1,30,7)``."""
        texts = [_field_text(t) for t in self._field_types]

        def text(value: Any) -> str:
            if not isinstance(value, (tuple, list, Row)):
                return _java_generic(value)
            return "(" + ",".join(t(x) for t, x in zip(texts, value)) + ")"
        return _nullable(text)


class RowTypeInfo(TypeInformation):
    """Rows of fields of the given types, named (``ROW_NAMED``) or not (``ROW``: named
    ``f0``, ``f1``... as Java's ``RowTypeInfo``). Records become ``Row`` values: from a
    row (by name when it has names), a tuple or list (by position), a dict or an
    object's attributes (by name)."""

    def __init__(self, field_types: List[TypeInformation], field_names: Optional[List[str]] = None) -> None:
        self._field_types = list(field_types)
        self._field_names = None if field_names is None else list(field_names)
        if self._field_names is not None and len(self._field_names) != len(self._field_types):
            raise ValueError(f"Types.ROW_NAMED() takes as many names as types, got {len(self._field_names)} names "
                             f"and {len(self._field_types)} types")

    def get_field_names(self) -> List[str]:
        """The fields' names (``f0``, ``f1``... when none were given)."""
        if self._field_names is not None:
            return self._field_names
        return [f"f{i}" for i in range(len(self._field_types))]

    def get_field_index(self, field_name: str) -> int:
        """The position of ``field_name``, or -1 (also for a row type without names)."""
        if self._field_names and field_name in self._field_names:
            return self._field_names.index(field_name)
        return -1

    def get_field_types(self) -> List[TypeInformation]:
        return self._field_types

    def __eq__(self, other: object) -> bool:
        # As PyFlink: the names do not count.
        return isinstance(other, RowTypeInfo) and self._field_types == other._field_types

    def __hash__(self) -> int:
        return hash(tuple(self._field_types))

    def __repr__(self) -> str:
        if self._field_names:
            return "RowTypeInfo(" + ", ".join(f"{n}: {t}" for n, t in zip(self._field_names, self._field_types)) + ")"
        return "RowTypeInfo(" + ", ".join(str(t) for t in self._field_types) + ")"

    def _converter(self) -> Optional[Converter]:
        names = self.get_field_names()
        converters = _field_converters(self._field_types)
        arity = len(names)
        described = repr(self)
        insert = RowKind.INSERT

        def to_row(value: Any) -> Any:
            if value is None:
                return None
            kind = insert
            values: Sequence[Any]
            if isinstance(value, Row):
                fields = getattr(value, "_fields", None)
                if converters is None and fields is names:
                    return value  # already a row of this type
                kind = value._row_kind
                values = value._values if fields is None or fields == names else value.get_fields_by_names(names)
            elif isinstance(value, (tuple, list)):
                values = value
            elif isinstance(value, dict):
                values = [value.get(n) for n in names]
            elif hasattr(value, "__dict__"):
                attributes = value.__dict__
                values = [attributes.get(n) for n in names]
            else:
                raise TypeError(f"a stream of {described} takes rows, tuples, lists or dicts, got "
                                f"{type(value).__name__} {value!r}")
            if len(values) != arity:
                raise ValueError(f"a stream of {described} takes {arity} fields, got {len(values)}: {value!r}")
            if converters is not None:
                values = [x if c is None else c(x) for c, x in zip(converters, values)]
            return _make_row(names, values, kind)
        return to_row

    def _java_text(self) -> Text:
        """Java's ``Row.toString``: ``+I[1, Flink]``."""
        texts = [_field_text(t) for t in self._field_types]

        def text(value: Any) -> str:
            if not isinstance(value, Row):
                return _java_generic(value)
            return f"{value._row_kind}[" + ", ".join(t(x) for t, x in zip(texts, value._values)) + "]"
        return _nullable(text)

    def _print_text(self) -> Text:
        """PyFlink's ``print()`` of a row stream: ``+I[1,Flink]``, fields as ``str``."""
        def text(value: Any) -> str:
            if not isinstance(value, Row):
                return str(value)
            return f"{value._row_kind}[" + ",".join(str(x) for x in value._values) + "]"
        return text


# -- Types --------------------------------------------------------------------------------------


class Types:
    """The type information of the common types, as PyFlink's ``Types``:
    ``Types.STRING()``, ``Types.ROW_NAMED(["id", "name"], [Types.INT(), Types.STRING()])``..."""

    @staticmethod
    def STRING() -> TypeInformation:
        """A str; may be None."""
        return BasicTypeInfo.STRING_TYPE_INFO()

    @staticmethod
    def BYTE() -> TypeInformation:
        """An int of one byte."""
        return BasicTypeInfo.BYTE_TYPE_INFO()

    @staticmethod
    def BOOLEAN() -> TypeInformation:
        """A bool (printed ``true``/``false``)."""
        return BasicTypeInfo.BOOLEAN_TYPE_INFO()

    @staticmethod
    def SHORT() -> TypeInformation:
        """An int of two bytes."""
        return BasicTypeInfo.SHORT_TYPE_INFO()

    @staticmethod
    def INT() -> TypeInformation:
        """An int of four bytes."""
        return BasicTypeInfo.INT_TYPE_INFO()

    @staticmethod
    def LONG() -> TypeInformation:
        """An int of eight bytes."""
        return BasicTypeInfo.LONG_TYPE_INFO()

    @staticmethod
    def FLOAT() -> TypeInformation:
        """A 32-bit float: values are rounded to 32 bits."""
        return BasicTypeInfo.FLOAT_TYPE_INFO()

    @staticmethod
    def DOUBLE() -> TypeInformation:
        """A 64-bit float (ints become floats)."""
        return BasicTypeInfo.DOUBLE_TYPE_INFO()

    @staticmethod
    def CHAR() -> TypeInformation:
        """A str of one character."""
        return BasicTypeInfo.CHAR_TYPE_INFO()

    @staticmethod
    def BIG_INT() -> TypeInformation:
        """An int of any size."""
        return BasicTypeInfo.BIG_INT_TYPE_INFO()

    @staticmethod
    def BIG_DEC() -> TypeInformation:
        """A ``decimal.Decimal`` (numbers become Decimals)."""
        return BasicTypeInfo.BIG_DEC_TYPE_INFO()

    @staticmethod
    def INSTANT() -> TypeInformation:
        """A point in time."""
        return BasicTypeInfo.INSTANT_TYPE_INFO()

    @staticmethod
    def SQL_DATE() -> TypeInformation:
        """A ``datetime.date``."""
        return SqlTimeTypeInfo.DATE()

    @staticmethod
    def SQL_TIME() -> TypeInformation:
        """A ``datetime.time``."""
        return SqlTimeTypeInfo.TIME()

    @staticmethod
    def SQL_TIMESTAMP() -> TypeInformation:
        """A ``datetime.datetime``."""
        return SqlTimeTypeInfo.TIMESTAMP()

    @staticmethod
    def PICKLED_BYTE_ARRAY() -> TypeInformation:
        """Any Python object: what a stream without a declared type carries."""
        return PickledBytesTypeInfo()

    @staticmethod
    def ROW(field_types: List[TypeInformation]) -> TypeInformation:
        """``Row`` values of fields of ``field_types``, named ``f0``, ``f1``..."""
        return RowTypeInfo(field_types)

    @staticmethod
    def ROW_NAMED(field_names: List[str], field_types: List[TypeInformation]) -> TypeInformation:
        """``Row`` values of fields named ``field_names``, of ``field_types``."""
        return RowTypeInfo(field_types, field_names)

    @staticmethod
    def TUPLE(field_types: List[TypeInformation]) -> TypeInformation:
        """Tuples of fields of ``field_types``."""
        return TupleTypeInfo(field_types)

    @staticmethod
    def PRIMITIVE_ARRAY(element_type: TypeInformation) -> TypeInformation:
        """An array of a primitive type (``Types.INT()``...); of ``Types.BYTE()``, bytes."""
        return PrimitiveArrayTypeInfo(element_type)

    @staticmethod
    def BASIC_ARRAY(element_type: TypeInformation) -> TypeInformation:
        """An array of a boxed basic type; may hold None."""
        return BasicArrayTypeInfo(element_type)

    @staticmethod
    def OBJECT_ARRAY(element_type: TypeInformation) -> TypeInformation:
        """An array of any type; may hold None."""
        return ObjectArrayTypeInfo(element_type)

    @staticmethod
    def MAP(key_type_info: TypeInformation, value_type_info: TypeInformation) -> TypeInformation:
        """A dict of ``key_type_info`` keys and ``value_type_info`` values."""
        return MapTypeInfo(key_type_info, value_type_info)

    @staticmethod
    def LIST(element_type_info: TypeInformation) -> TypeInformation:
        """A list of ``element_type_info`` elements."""
        return ListTypeInfo(element_type_info)


# -- a declared output type on a function's results (the API fuses these into its wrappers) ----------


if TYPE_CHECKING:
    Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


def _one_output(type_info: Any) -> Optional[Wrap]:
    """For ``Udf(wrap=...)``: a function returning one record (map, reduce) whose result
    goes through ``type_info``'s converter; None when there is nothing to convert, so an
    undeclared type costs nothing."""
    convert = converter_of(type_info)
    if convert is None:
        return None

    def wrap(call: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *args: convert(call(*args))
    return wrap


def _many_outputs(type_info: Any) -> Optional[Wrap]:
    """For ``Udf(wrap=...)``: a function returning an iterable of records (or None:
    flat_map, process functions, window functions) whose records go through
    ``type_info``'s converter; ``(output_tag, value)`` side outputs are left as they are."""
    convert = converter_of(type_info)
    if convert is None:
        return None
    from .output_tag import OutputTag

    def one(value: Any) -> Any:
        if type(value) is tuple and len(value) == 2 and isinstance(value[0], OutputTag):
            return value
        return convert(value)

    def wrap(call: Callable[..., Any]) -> Callable[..., Any]:
        def converted(*args: Any) -> Any:
            results = call(*args)
            return None if results is None else [one(value) for value in results]
        return converted
    return wrap
