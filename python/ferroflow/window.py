"""Window assigners, triggers and evictors for ``keyed.window(...)`` and
``stream.window_all(...)``, with PyFlink's names:

    keyed.window(TumblingEventTimeWindows.of(Duration.of_seconds(1)))
         .trigger(CountTrigger.of(100)).allowed_lateness(Duration.of_seconds(5))

These objects only describe the window; the engine runs them (in Rust). Sizes, slides,
offsets, gaps and intervals take a ``Duration``, a ``Time``, a ``timedelta`` or an int
of milliseconds. Invalid settings fail here, at the call that makes them.
"""

from __future__ import annotations

from . import _nodes
from ._plan import Udf, label_of
from .windowing import GlobalWindow, TimeWindow, to_millis

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Optional, Tuple, Type, TypeVar

    from .windowing import TimeSpan

__all__ = [
    "WindowAssigner", "TumblingEventTimeWindows", "SlidingEventTimeWindows", "EventTimeSessionWindows",
    "TumblingProcessingTimeWindows", "SlidingProcessingTimeWindows", "ProcessingTimeSessionWindows",
    "GlobalWindows", "Trigger", "EventTimeTrigger", "ProcessingTimeTrigger", "CountTrigger",
    "ContinuousEventTimeTrigger", "ContinuousProcessingTimeTrigger", "PurgingTrigger", "Evictor",
    "CountEvictor", "TimeEvictor", "TimeWindow", "GlobalWindow",
]


def positive_count(n: Any, what: str) -> int:
    """``n`` checked to be an int >= 1 (a count of records)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{what} must be an int >= 1, got {n!r}")
    if n >= 2**63:
        raise ValueError(f"{what} must fit in 64 bits, got {n}")
    return n


# Each factory returns the class it is called on (TumblingEventTimeWindows.of -> TumblingEventTimeWindows).
if TYPE_CHECKING:
    _Tu = TypeVar("_Tu", bound="_Tumbling")
    _Sl = TypeVar("_Sl", bound="_Sliding")
    _Se = TypeVar("_Se", bound="_Session")
    _Co = TypeVar("_Co", bound="_Continuous")

# -- assigners -----------------------------------------------------------------------------


class WindowAssigner:
    """Puts each record in zero or more windows (base class of the assigners below)."""

    #: "event" or "processing"; None for GlobalWindows.
    _domain: Optional[str] = None

    def is_event_time(self) -> bool:
        """Whether the windows follow event time (the watermark)."""
        return self._domain == "event"

    def _is_merging(self) -> bool:
        """Session windows merge, and so need ``AggregateFunction.merge``."""
        return False

    def _spec(self) -> _nodes.AssignerSpec:  # pragma: no cover - every assigner overrides it
        raise NotImplementedError

    def _describe(self) -> str:  # pragma: no cover - every assigner overrides it
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"


class _Tumbling(WindowAssigner):
    """Back-to-back windows of ``size``, aligned on the epoch shifted by ``offset``."""

    def __init__(self, size: TimeSpan, offset: TimeSpan = 0) -> None:
        what = f"{type(self).__name__}.of()"
        self._size = to_millis(size, f"{what}: the size")
        self._offset = to_millis(offset, f"{what}: the offset", minimum=None)
        if abs(self._offset) >= self._size:
            raise ValueError(f"{what}: the offset must be smaller than the size (abs(offset) < size), "
                             f"got offset {self._offset} ms for size {self._size} ms")

    @classmethod
    def of(cls: Type[_Tu], size: TimeSpan, offset: TimeSpan = 0) -> _Tu:
        """Windows of ``size``; ``offset`` shifts their alignment (e.g. time zones)."""
        return cls(size, offset)

    def _spec(self) -> _nodes.TumblingSpec:
        return _nodes.TumblingSpec(self.is_event_time(), self._size, self._offset)

    def _describe(self) -> str:
        return f"size={self._size} ms" + (f", offset={self._offset} ms" if self._offset else "")


class TumblingEventTimeWindows(_Tumbling):
    """Tumbling windows of event time: ``TumblingEventTimeWindows.of(size[, offset])``."""

    _domain = "event"


class TumblingProcessingTimeWindows(_Tumbling):
    """Tumbling windows of processing time: ``TumblingProcessingTimeWindows.of(size[, offset])``."""

    _domain = "processing"


class _Sliding(WindowAssigner):
    """Windows of ``size`` starting every ``slide``: a record is in about size/slide
    of them (in none if ``slide > size`` leaves it in a gap)."""

    def __init__(self, size: TimeSpan, slide: TimeSpan, offset: TimeSpan = 0) -> None:
        what = f"{type(self).__name__}.of()"
        self._size = to_millis(size, f"{what}: the size")
        self._slide = to_millis(slide, f"{what}: the slide")
        self._offset = to_millis(offset, f"{what}: the offset", minimum=None)
        if abs(self._offset) >= self._slide:
            raise ValueError(f"{what}: the offset must be smaller than the slide (abs(offset) < slide), "
                             f"got offset {self._offset} ms for slide {self._slide} ms")

    @classmethod
    def of(cls: Type[_Sl], size: TimeSpan, slide: TimeSpan, offset: TimeSpan = 0) -> _Sl:
        """Windows of ``size``, one starting every ``slide``; ``offset`` shifts them."""
        return cls(size, slide, offset)

    def _spec(self) -> _nodes.SlidingSpec:
        return _nodes.SlidingSpec(self.is_event_time(), self._size, self._slide, self._offset)

    def _describe(self) -> str:
        return f"size={self._size} ms, slide={self._slide} ms" + (f", offset={self._offset} ms" if self._offset else "")


class SlidingEventTimeWindows(_Sliding):
    """Sliding windows of event time: ``SlidingEventTimeWindows.of(size, slide[, offset])``."""

    _domain = "event"


class SlidingProcessingTimeWindows(_Sliding):
    """Sliding windows of processing time: ``SlidingProcessingTimeWindows.of(size, slide[, offset])``."""

    _domain = "processing"


class MergingWindowAssigner(WindowAssigner):
    """An assigner whose windows merge (sessions): PyFlink's base class, for ``isinstance``
    checks and annotations."""

    def _is_merging(self) -> bool:
        return True


class SessionWindowTimeGapExtractor:
    """Gives a session window's gap per record, for ``with_dynamic_gap``: subclass it and
    return the gap in milliseconds from ``extract(element)`` (PyFlink's base class; any
    object with an ``extract`` method, or a plain function, does as well)."""

    def extract(self, element: Any) -> int:  # pragma: no cover - the user's subclass overrides it
        raise NotImplementedError(f"{type(self).__name__} must define extract(element) returning the gap in ms")


class _Session(MergingWindowAssigner):
    """Per key, records closer than the gap to each other form one window (a session)."""

    def __init__(self, gap: Optional[TimeSpan] = None, gap_extractor: Any = None) -> None:
        self._gap: Optional[int] = None
        self._gap_fn: Any = None
        if gap_extractor is not None:
            _gap_udf(gap_extractor)  # fails here, at the user's call, if unusable
            self._gap_fn = gap_extractor
        else:
            self._gap = to_millis(gap, f"{type(self).__name__}.with_gap(): the gap")

    @classmethod
    def with_gap(cls: Type[_Se], gap: TimeSpan) -> _Se:
        """Sessions that close after ``gap`` without a record of their key."""
        return cls(gap)

    @classmethod
    def with_dynamic_gap(cls: Type[_Se], extractor: Any) -> _Se:
        """Sessions whose gap each record sets: ``extractor(value)`` (or an object's
        ``extract(value)``) returns it in milliseconds (an int > 0)."""
        return cls(gap_extractor=extractor)

    def _spec(self) -> _nodes.SessionSpec:
        gap_fn = _gap_udf(self._gap_fn) if self._gap_fn is not None else None
        return _nodes.SessionSpec(self.is_event_time(), self._gap, gap_fn)

    def _describe(self) -> str:
        return f"gap={self._gap} ms" if self._gap_fn is None else f"gap={label_of(self._gap_fn)}"


def _gap_udf(extractor: Any) -> Udf:
    # A fresh Udf per window node: each operator gets its own per-worker copies.
    return Udf(extractor, ("extract",))


class EventTimeSessionWindows(_Session):
    """Session windows of event time: ``EventTimeSessionWindows.with_gap(gap)`` or
    ``.with_dynamic_gap(extractor)``."""

    _domain = "event"


class ProcessingTimeSessionWindows(_Session):
    """Session windows of processing time: ``ProcessingTimeSessionWindows.with_gap(gap)``
    or ``.with_dynamic_gap(extractor)``."""

    _domain = "processing"


class DynamicEventTimeSessionWindows(EventTimeSessionWindows):
    """PyFlink's name for event-time sessions with a per-record gap:
    ``DynamicEventTimeSessionWindows.with_dynamic_gap(extractor)``."""


class DynamicProcessingTimeSessionWindows(ProcessingTimeSessionWindows):
    """PyFlink's name for processing-time sessions with a per-record gap:
    ``DynamicProcessingTimeSessionWindows.with_dynamic_gap(extractor)``."""


class GlobalWindows(WindowAssigner):
    """One window per key holding all its records: ``GlobalWindows.create()``. It
    fires only through a trigger, and at the end of a bounded input."""

    @staticmethod
    def create() -> "GlobalWindows":
        return GlobalWindows()

    def _spec(self) -> _nodes.GlobalSpec:
        return _nodes.GlobalSpec()

    def _describe(self) -> str:
        return ""


# -- triggers --------------------------------------------------------------------------------


class Trigger:
    """Decides when a window fires (base class of the triggers below). Without one,
    a window uses its assigner's: event-time windows fire when the watermark passes
    their end, processing-time windows when the clock does, GlobalWindows never
    (except at the end of a bounded input)."""

    def _spec(self) -> _nodes.TriggerSpec:  # pragma: no cover - every trigger overrides it
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._spec().fields().items())
        return f"{type(self).__name__}({args})"


class EventTimeTrigger(Trigger):
    """Fires when the watermark passes the window's end (again at once for each
    record that is late but within the allowed lateness): ``EventTimeTrigger.create()``."""

    @staticmethod
    def create() -> "EventTimeTrigger":
        return EventTimeTrigger()

    def _spec(self) -> _nodes.TriggerSpec:
        return _nodes.EventTimeTriggerSpec()


class ProcessingTimeTrigger(Trigger):
    """Fires when the processing-time clock passes the window's end:
    ``ProcessingTimeTrigger.create()``."""

    @staticmethod
    def create() -> "ProcessingTimeTrigger":
        return ProcessingTimeTrigger()

    def _spec(self) -> _nodes.TriggerSpec:
        return _nodes.ProcessingTimeTriggerSpec()


class CountTrigger(Trigger):
    """Fires on every ``count``-th record of a window, keeping its contents:
    ``CountTrigger.of(count)`` (wrap it in ``PurgingTrigger`` to empty the window)."""

    def __init__(self, count: int) -> None:
        self._count = positive_count(count, "CountTrigger.of(): the count")

    @staticmethod
    def of(count: int) -> "CountTrigger":
        return CountTrigger(count)

    def _spec(self) -> _nodes.TriggerSpec:
        return _nodes.CountTriggerSpec(self._count)


class _Continuous(Trigger):
    """Fires every ``interval`` while the window is open, and at its end."""

    _spec_class: Type[Any] = _nodes.TriggerSpec

    def __init__(self, interval: TimeSpan) -> None:
        self._interval = to_millis(interval, f"{type(self).__name__}.of(): the interval")

    @classmethod
    def of(cls: Type[_Co], interval: TimeSpan) -> _Co:
        return cls(interval)

    def _spec(self) -> _nodes.TriggerSpec:
        spec: _nodes.TriggerSpec = self._spec_class(self._interval)
        return spec


class ContinuousEventTimeTrigger(_Continuous):
    """Fires every ``interval`` of event time (watermark) while the window is open,
    and when the watermark passes its end: ``ContinuousEventTimeTrigger.of(interval)``."""

    _spec_class = _nodes.ContinuousEventTimeTriggerSpec


class ContinuousProcessingTimeTrigger(_Continuous):
    """Fires every ``interval`` of processing time while the window is open:
    ``ContinuousProcessingTimeTrigger.of(interval)``."""

    _spec_class = _nodes.ContinuousProcessingTimeTriggerSpec


class PurgingTrigger(Trigger):
    """Another trigger whose every firing also empties the window:
    ``PurgingTrigger.of(CountTrigger.of(100))``."""

    def __init__(self, nested_trigger: Trigger) -> None:
        if not isinstance(nested_trigger, Trigger):
            raise TypeError(f"PurgingTrigger.of() takes a trigger (e.g. CountTrigger.of(10)), got {nested_trigger!r}")
        check_supported(nested_trigger, TRIGGERS, "PurgingTrigger.of()")
        self._inner = nested_trigger

    @staticmethod
    def of(nested_trigger: Trigger) -> "PurgingTrigger":
        return PurgingTrigger(nested_trigger)

    def _spec(self) -> _nodes.TriggerSpec:
        return _nodes.PurgingTriggerSpec(self._inner._spec())

    def __repr__(self) -> str:
        return f"PurgingTrigger({self._inner!r})"


# -- what the engine runs ----------------------------------------------------------------------

#: The assigners, triggers and evictors the engine implements (in Rust). A subclass's
#: own methods (a custom ``on_element``, ``assign_windows``...) would never be called,
#: so only these exact classes are taken.
ASSIGNERS = (TumblingEventTimeWindows, SlidingEventTimeWindows, EventTimeSessionWindows, TumblingProcessingTimeWindows,
             SlidingProcessingTimeWindows, ProcessingTimeSessionWindows, GlobalWindows, DynamicEventTimeSessionWindows,
             DynamicProcessingTimeSessionWindows)
TRIGGERS = (EventTimeTrigger, ProcessingTimeTrigger, CountTrigger, ContinuousEventTimeTrigger,
            ContinuousProcessingTimeTrigger, PurgingTrigger)


def check_supported(value: Any, supported: Tuple[type, ...], call: str) -> None:
    """Raises ``NotImplementedError`` at ``call`` (one line, naming what is supported)
    if ``value`` is a user-defined subclass rather than one of ``supported``."""
    if type(value) in supported:
        return
    names = ", ".join(c.__name__ for c in supported)
    kind = supported[0].__mro__[-2].__name__  # the base class: WindowAssigner, Trigger, Evictor
    raise NotImplementedError(f"{call}: custom {kind} classes such as {type(value).__name__} are not supported "
                              f"(the engine runs windows in Rust); use one of ferroflow.window's {names}")


# -- evictors --------------------------------------------------------------------------------


class Evictor:
    """Removes records from a window when it fires, before the window function sees
    them (or after, with ``do_evict_after=True``); base class of the evictors below.
    Removed records are gone from the window for later firings too."""

    _do_evict_after = False

    def _spec(self) -> _nodes.EvictorSpec:  # pragma: no cover - every evictor overrides it
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._spec().fields().items())
        return f"{type(self).__name__}({args})"


class CountEvictor(Evictor):
    """Keeps only the last ``max_count`` records of the window:
    ``CountEvictor.of(max_count[, do_evict_after])``."""

    def __init__(self, max_count: int, do_evict_after: bool = False) -> None:
        self._count = positive_count(max_count, "CountEvictor.of(): the count")
        self._do_evict_after = bool(do_evict_after)

    @staticmethod
    def of(max_count: int, do_evict_after: bool = False) -> "CountEvictor":
        return CountEvictor(max_count, do_evict_after)

    def _spec(self) -> _nodes.EvictorSpec:
        return _nodes.CountEvictorSpec(self._count, self._do_evict_after)


class TimeEvictor(Evictor):
    """Keeps only the records whose timestamp is within ``window_size`` of the
    window's newest record (those stamped after ``newest - window_size``):
    ``TimeEvictor.of(window_size[, do_evict_after])``."""

    def __init__(self, window_size: TimeSpan, do_evict_after: bool = False) -> None:
        self._window_size = to_millis(window_size, "TimeEvictor.of(): the window size")
        self._do_evict_after = bool(do_evict_after)

    @staticmethod
    def of(window_size: TimeSpan, do_evict_after: bool = False) -> "TimeEvictor":
        return TimeEvictor(window_size, do_evict_after)

    def _spec(self) -> _nodes.EvictorSpec:
        return _nodes.TimeEvictorSpec(self._window_size, self._do_evict_after)


EVICTORS = (CountEvictor, TimeEvictor)


def checked_trigger(trigger: Any) -> Trigger:
    """``trigger()``'s argument, checked to be a trigger the engine runs."""
    if not isinstance(trigger, Trigger):
        raise TypeError(f"trigger() takes a trigger, e.g. CountTrigger.of(10) from ferroflow.window, got {trigger!r}")
    check_supported(trigger, TRIGGERS, "trigger()")
    return trigger


def checked_evictor(evictor: Any) -> Evictor:
    """``evictor()``'s argument, checked to be an evictor the engine runs."""
    if not isinstance(evictor, Evictor):
        raise TypeError(f"evictor() takes an evictor, e.g. CountEvictor.of(10) from ferroflow.window, got {evictor!r}")
    check_supported(evictor, EVICTORS, "evictor()")
    return evictor
