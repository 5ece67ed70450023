"""Window joins of two streams, as Flink's Java API has them (PyFlink lacks them):

    first.join(second).where(k1).equal_to(k2).window(assigner).apply(join_function)
    first.co_group(second).where(k1).equal_to(k2).window(assigner).apply(co_group_function)

Built as Flink builds them, from operators the API already has: each side's records
are tagged with their side, the two streams are unioned and keyed (by ``k1`` for the
first side, ``k2`` for the second: keys are compared as ``key_by`` compares them, so
``1 == 1.0 == True``), windowed with ``assigner`` (and any trigger, evictor and allowed
lateness), and a window function splits each firing's records by side: ``join`` is
called for every pair (an inner join), ``co_group`` once per key and window with the
two lists (one may be empty).
"""

from __future__ import annotations

from . import _aggregations, _nodes
from ._plan import Collector, Udf, label_of, positional_arity
from .window import (ASSIGNERS, Evictor, Trigger, WindowAssigner, check_supported, checked_evictor,
                     checked_trigger)
from .windowing import to_millis

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Tuple

    from .datastream import DataStream
    from .windowing import TimeSpan

__all__ = ["JoinedStreams", "CoGroupedStreams"]

#: The tags of the two sides inside the unioned stream.
_FIRST, _SECOND = 0, 1


def _tag_first(value: Any) -> Tuple[int, Any]:
    return (_FIRST, value)


def _tag_second(value: Any) -> Tuple[int, Any]:
    return (_SECOND, value)


def _key_udf(key_selector: Any) -> Udf:
    """A side's key selector: a function, a ``KeySelector`` or a field (int index or str name)."""
    if _aggregations.is_field(key_selector):
        field = key_selector

        def by_field(value: Any) -> Any:
            return _aggregations.get_field(value, field)
        by_field.__qualname__ = f"field {field!r}"
        return Udf(by_field, ("get_key",))
    return Udf(key_selector, ("get_key", "getKey"))


class _SideKeys:
    """The unioned stream's key selector: the first side's selector for its records,
    the second side's for the others. Bound per worker like any function."""

    def __init__(self, first: Udf, second: Udf) -> None:
        self.first = first
        self.second = second

    def prepare(self, count: int) -> None:
        self.first.prepare(count)
        self.second.prepare(count)

    def keep_pristine(self) -> None:
        self.first.keep_pristine()
        self.second.keep_pristine()

    def renew(self) -> None:
        self.first.renew()
        self.second.renew()

    def bind(self, index: int, count: int) -> Tuple[Callable, Optional[Callable]]:
        key1, close1 = self.first.bind(index, count)
        key2, close2 = self.second.bind(index, count)

        def key(tagged: Tuple[int, Any]) -> Any:
            return key1(tagged[1]) if tagged[0] == _FIRST else key2(tagged[1])

        closers = [c for c in (close1, close2) if c is not None]

        def close() -> None:
            for c in closers:
                c()
        return key, (close if closers else None)


class _SplitBySide(Udf):
    """The window function: splits a firing's tagged records by side and calls the
    user's ``join`` per pair or ``co_group`` once, as the window operator's process
    callable ``(key, window, elements, watermark, processing_time) -> outputs``."""

    def __init__(self, fn: Any, method: str) -> None:
        self.method = method
        java = {"co_group": "coGroup"}.get(method, method)
        super().__init__(fn, (method, java))

    def resolve(self, obj: Any) -> Callable:
        call = super().resolve(obj)
        # The collector forms (Flink's FlatJoinFunction, coGroup(first, second, out)).
        collects = positional_arity(call) == 3

        def split(elements: List[Tuple[int, Any]]) -> Tuple[List[Any], List[Any]]:
            first = [v for side, v in elements if side == _FIRST]
            second = [v for side, v in elements if side == _SECOND]
            return first, second

        if self.method == "join":
            def join(key: Any, window: Any, elements: List[Any], watermark: int, processing_time: int) -> List[Any]:
                first, second = split(elements)
                collector = Collector()
                for a in first:
                    for b in second:
                        if collects:
                            call(a, b, collector)
                        else:
                            collector.out.append(call(a, b))
                return collector.out
            return join

        def co_group(key: Any, window: Any, elements: List[Any], watermark: int, processing_time: int) -> Any:
            first, second = split(elements)
            if collects:
                collector = Collector()
                call(first, second, collector)
                return collector.out
            return call(first, second)
        return co_group


class _TwoStreams:
    """``first.join(second)`` / ``first.co_group(second)``: give ``where(key1)``."""

    _method = ""

    def __init__(self, first: DataStream, second: DataStream) -> None:
        # The stream's own join()/co_group() checked that `second` is a stream of its environment.
        self._first = first
        self._second = second

    def where(self, key_selector: Any, key_type: Any = None) -> "_Where":
        """The first stream's key: a function, a ``KeySelector`` or a field (int or str)."""
        return _Where(self, _key_udf(key_selector), key_selector)


class _Where:
    """``...where(key1)``: give ``equal_to(key2)``."""

    def __init__(self, streams: _TwoStreams, key: Udf, selector: Any) -> None:
        self._streams = streams
        self._key = key
        self._selector = selector

    def equal_to(self, key_selector: Any, key_type: Any = None) -> "_EqualTo":
        """The second stream's key (compared with the first's as ``key_by`` compares keys)."""
        return _EqualTo(self, _key_udf(key_selector), key_selector)

    equalTo = equal_to


class _EqualTo:
    """``...equal_to(key2)``: give ``window(assigner)``."""

    def __init__(self, where: _Where, key: Udf, selector: Any) -> None:
        self._where = where
        self._key = key
        self._selector = selector

    def window(self, assigner: WindowAssigner) -> "WithWindow":
        """The windows pairs are made in (``ferroflow.window``'s assigners: event or processing time)."""
        return WithWindow(self, assigner)


class WithWindow:
    """A windowed join or co-group: optionally ``trigger``, ``evictor``,
    ``allowed_lateness``; then ``apply(function)``."""

    def __init__(self, equal_to: _EqualTo, assigner: WindowAssigner) -> None:
        streams = equal_to._where._streams
        if not isinstance(assigner, WindowAssigner):
            raise TypeError(f"{streams._method}(...).window() takes a window assigner, e.g. "
                            f"TumblingEventTimeWindows.of(Duration.of_seconds(5)), got {assigner!r}")
        check_supported(assigner, ASSIGNERS, f"{streams._method}(...).window()")
        self._streams = streams
        self._keys = (equal_to._where._key, equal_to._key)
        self._selectors = (equal_to._where._selector, equal_to._selector)
        self._assigner = assigner
        self._trigger: Optional[Trigger] = None
        self._evictor: Optional[Evictor] = None
        self._lateness = 0

    def trigger(self, trigger: Trigger) -> "WithWindow":
        """Fires the windows with ``trigger`` instead of the assigner's default."""
        self._trigger = checked_trigger(trigger, "trigger()", custom=False)
        return self

    def evictor(self, evictor: Evictor) -> "WithWindow":
        """Removes records (of either side) from a window when it fires."""
        self._evictor = checked_evictor(evictor, "evictor()", custom=False)
        return self

    def allowed_lateness(self, time: TimeSpan) -> "WithWindow":
        """Keeps event-time windows ``time`` after the watermark passed their end; a
        record arriving meanwhile fires the window again (with all its records)."""
        self._lateness = to_millis(time, "allowed_lateness()", minimum=0)
        return self

    def apply(self, function: Any, output_type: Any = None) -> DataStream:
        """Runs ``function`` on each window's records (see ``JoinedStreams`` and
        ``CoGroupedStreams``); returns the stream of its outputs."""
        method = self._streams._method
        udf = _SplitBySide(function, method)
        first, second = self._streams._first, self._streams._second
        tagged1 = first._derive(_nodes.Map(Udf(_tag_first, ("map",))), f"{method}: tag first input")
        tagged2 = second._derive(_nodes.Map(Udf(_tag_second, ("map",))), f"{method}: tag second input")
        union = tagged1.union(tagged2)
        label = f"{method} where {_describe(self._selectors[0])} equal_to {_describe(self._selectors[1])}"
        windowed = union._derive_keyed(_nodes.KeyBy(_SideKeys(*self._keys)), label).window(self._assigner)
        if self._trigger is not None:
            windowed.trigger(self._trigger)
        if self._evictor is not None:
            windowed.evictor(self._evictor)
        windowed.allowed_lateness(self._lateness)
        return windowed._build(method, udf, process=udf)._declare(output_type)

    # Flink's Java API names the same call `with` on older versions.
    with_ = apply


def _describe(selector: Any) -> str:
    return repr(selector) if _aggregations.is_field(selector) else label_of(selector)


class JoinedStreams(_TwoStreams):
    """``first.join(second).where(k1).equal_to(k2).window(assigner).apply(f)``: for each
    key and window, ``f.join(a, b)`` (or ``f(a, b)``) for every pair of a record ``a``
    of ``first`` and ``b`` of ``second``: an inner join, one output per pair."""

    _method = "join"


class CoGroupedStreams(_TwoStreams):
    """``first.co_group(second).where(k1).equal_to(k2).window(assigner).apply(f)``: for
    each key and window holding records of either stream, ``f.co_group(firsts,
    seconds)`` (or ``f(firsts, seconds)``) with both lists; it returns or yields outputs."""

    _method = "co_group"
