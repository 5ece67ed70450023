"""Window assigners, triggers and evictors for ``keyed.window(...)`` and
``stream.window_all(...)``, with PyFlink's names:

    keyed.window(TumblingEventTimeWindows.of(Duration.of_seconds(1)))
         .trigger(CountTrigger.of(100)).allowed_lateness(Duration.of_seconds(5))

These objects only describe the window; the engine runs them (in Rust). Sizes, slides,
offsets, gaps and intervals take a ``Duration``, a ``Time``, a ``timedelta`` or an int
of milliseconds. Invalid settings fail here, at the call that makes them.

Triggers and evictors may also be your own, written in Python as in PyFlink: subclass
``Trigger`` (``on_element``, ``on_event_time``, ``on_processing_time``, returning a
``TriggerResult``; ``can_merge``/``on_merge`` for session windows; ``clear``) or
``Evictor`` (``evict_before``/``evict_after``). Only the windows that use one call
Python for it; the engine still keeps their timers, state and clean-up.
"""

from __future__ import annotations

import enum

from . import _nodes
from ._plan import RuntimeContext, Udf, find_method, label_of, stub
from .windowing import GlobalWindow, TimeWindow, to_millis

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar

    from .windowing import TimeSpan

__all__ = [
    "WindowAssigner", "TumblingEventTimeWindows", "SlidingEventTimeWindows", "EventTimeSessionWindows",
    "TumblingProcessingTimeWindows", "SlidingProcessingTimeWindows", "ProcessingTimeSessionWindows",
    "GlobalWindows", "Trigger", "EventTimeTrigger", "ProcessingTimeTrigger", "CountTrigger",
    "ContinuousEventTimeTrigger", "ContinuousProcessingTimeTrigger", "PurgingTrigger", "TriggerResult",
    "Evictor", "CountEvictor", "TimeEvictor", "TimestampedValue", "TimeWindow", "GlobalWindow",
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


class TriggerResult(enum.Enum):
    """What a trigger decides (PyFlink's ``TriggerResult``): ``FIRE`` calls the window
    function with the window's contents and keeps them, ``PURGE`` empties the window
    without firing, ``FIRE_AND_PURGE`` both, ``CONTINUE`` neither. Firing a window that
    holds nothing emits nothing."""

    CONTINUE = (False, False)
    FIRE_AND_PURGE = (True, True)
    FIRE = (True, False)
    PURGE = (False, True)

    def is_fire(self) -> bool:
        """Whether the window function runs."""
        fire: bool = self.value[0]
        return fire

    def is_purge(self) -> bool:
        """Whether the window's contents go."""
        purge: bool = self.value[1]
        return purge


class Trigger:
    """Decides when a window fires (base class of the triggers below). Without one,
    a window uses its assigner's: event-time windows fire when the watermark passes
    their end, processing-time windows when the clock does, GlobalWindows never
    (except at the end of a bounded input).

    Your own trigger subclasses this and implements ``on_element``,
    ``on_event_time`` and ``on_processing_time`` (each returns a ``TriggerResult``),
    ``clear`` (drop the window's timers and state) and, to work on session windows,
    ``can_merge`` (True) and ``on_merge``. One object serves every key and window of a
    worker, as in Flink: keep per-window data in ``ctx.get_partitioned_state(...)``,
    not in fields. The engine calls Python only for the windows that use it."""

    class TriggerContext:
        """What a trigger's methods get as ``ctx``: the clocks, timers of the window
        and state scoped to its key and window."""

        def get_current_processing_time(self) -> int:
            """Processing time now (ms)."""
            raise NotImplementedError

        def get_current_watermark(self) -> int:
            """The window operator's watermark (ms; the smallest int before the first one)."""
            raise NotImplementedError

        def register_processing_time_timer(self, time: int) -> None:
            """Calls ``on_processing_time(time, ...)`` once the clock passes ``time``."""
            raise NotImplementedError

        def register_event_time_timer(self, time: int) -> None:
            """Calls ``on_event_time(time, ...)`` once the watermark reaches ``time``."""
            raise NotImplementedError

        def delete_processing_time_timer(self, time: int) -> None:
            """Deletes the window's processing-time timer at ``time``, if it has one."""
            raise NotImplementedError

        def delete_event_time_timer(self, time: int) -> None:
            """Deletes the window's event-time timer at ``time``, if it has one."""
            raise NotImplementedError

        def get_partitioned_state(self, state_descriptor: Any) -> Any:
            """The state ``state_descriptor`` describes, for this key and window (it
            goes when the window is cleaned up)."""
            raise NotImplementedError

        def get_metric_group(self) -> Any:
            """Not available: ferroflow has no metric groups."""
            raise NotImplementedError

    class OnMergeContext(TriggerContext):
        """``on_merge``'s ``ctx``: also merges the merged windows' state."""

        def merge_partitioned_state(self, state_descriptor: Any) -> None:
            """Merges the state ``state_descriptor`` describes (a list, reducing or
            aggregating state) of the windows being merged into the new window's."""
            raise NotImplementedError

    @stub
    def on_element(self, element: Any, timestamp: int, window: Any, ctx: Any) -> TriggerResult:
        """Called for every record added to ``window``."""
        raise NotImplementedError

    @stub
    def on_processing_time(self, time: int, window: Any, ctx: Any) -> TriggerResult:
        """Called when a processing-time timer of ``window`` fires."""
        raise NotImplementedError

    @stub
    def on_event_time(self, time: int, window: Any, ctx: Any) -> TriggerResult:
        """Called when an event-time timer of ``window`` fires."""
        raise NotImplementedError

    def can_merge(self) -> bool:
        """Whether the trigger works on merging (session) windows; then it implements
        ``on_merge``."""
        return False

    @stub
    def on_merge(self, window: Any, ctx: Any) -> None:
        """Called when windows merged into ``window`` (sessions): re-register timers
        for it and ``ctx.merge_partitioned_state(...)`` the state."""
        raise NotImplementedError

    @stub
    def clear(self, window: Any, ctx: Any) -> None:
        """Called when ``window`` goes (clean-up time, or merged into another): delete
        its timers and state. Without it, the engine drops them anyway."""

    def _spec(self) -> _nodes.TriggerSpec:
        """A user's trigger (the built-ins override this)."""
        return _nodes.CustomTriggerSpec(TriggerUdf(self), bool(self.can_merge()))

    def __repr__(self) -> str:
        spec = self._spec()
        if isinstance(spec, _nodes.CustomTriggerSpec):
            return f"{type(self).__name__}()"
        args = ", ".join(f"{k}={v!r}" for k, v in spec.fields().items())
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
        self._inner = checked_trigger(nested_trigger, "PurgingTrigger.of()")

    @staticmethod
    def of(nested_trigger: Trigger) -> "PurgingTrigger":
        return PurgingTrigger(nested_trigger)

    def _spec(self) -> _nodes.TriggerSpec:
        inner = self._inner._spec()
        if isinstance(inner, _nodes.CustomTriggerSpec):
            # A user's trigger, purged here in Python (the methods below).
            return super()._spec()
        return _nodes.PurgingTriggerSpec(inner)

    # Only reached around a user's trigger (a built-in one is purged in Rust).
    def on_element(self, element: Any, timestamp: int, window: Any, ctx: Any) -> TriggerResult:
        return _purging(self._inner.on_element(element, timestamp, window, ctx))

    def on_event_time(self, time: int, window: Any, ctx: Any) -> TriggerResult:
        return _purging(self._inner.on_event_time(time, window, ctx))

    def on_processing_time(self, time: int, window: Any, ctx: Any) -> TriggerResult:
        return _purging(self._inner.on_processing_time(time, window, ctx))

    def can_merge(self) -> bool:
        return bool(self._inner.can_merge())

    def on_merge(self, window: Any, ctx: Any) -> None:
        self._inner.on_merge(window, ctx)

    def clear(self, window: Any, ctx: Any) -> None:
        if find_method(self._inner, ("clear",)) is not None:
            self._inner.clear(window, ctx)

    def __repr__(self) -> str:
        return f"PurgingTrigger({self._inner!r})"


def _purging(result: Any) -> Any:
    """``PurgingTrigger``: a firing also purges (anything else is checked later)."""
    return TriggerResult.FIRE_AND_PURGE if isinstance(result, TriggerResult) and result.is_fire() else result


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


class TimestampedValue:
    """A window's record as an evictor sees it: ``value`` and its event
    ``timestamp`` (None if it has none)."""

    __slots__ = ("value", "timestamp")

    def __init__(self, value: Any, timestamp: Optional[int] = None) -> None:
        self.value = value
        self.timestamp = timestamp

    def get_value(self) -> Any:
        return self.value

    def get_timestamp(self) -> Optional[int]:
        return self.timestamp

    def has_timestamp(self) -> bool:
        return self.timestamp is not None

    def __repr__(self) -> str:
        return f"TimestampedValue({self.value!r}, {self.timestamp!r})"


class Evictor:
    """Removes records from a window when it fires, before the window function sees
    them (or after, with ``do_evict_after=True``); base class of the evictors below.
    Removed records are gone from the window for later firings too.

    Your own evictor subclasses this and implements ``evict_before`` and/or
    ``evict_after(elements, size, window, evictor_context)``: ``elements`` is a list
    of the window's ``TimestampedValue``s in arrival order; remove the ones to evict
    from it (``del elements[i]``, ``elements.remove(e)``, ``elements[:] = kept``), or
    return the ones to keep. ``evictor_context`` has ``get_current_watermark()`` and
    ``get_current_processing_time()``."""

    _do_evict_after = False

    class EvictorContext:
        """What an evictor's methods get as ``evictor_context``."""

        def get_current_processing_time(self) -> int:
            raise NotImplementedError

        def get_current_watermark(self) -> int:
            raise NotImplementedError

        def get_metric_group(self) -> Any:
            """Not available: ferroflow has no metric groups."""
            raise NotImplementedError

    @stub
    def evict_before(self, elements: Any, size: int, window: Any, evictor_context: Any) -> Any:
        """Called when the window fires, before the window function."""

    @stub
    def evict_after(self, elements: Any, size: int, window: Any, evictor_context: Any) -> Any:
        """Called when the window fires, after the window function."""

    def _spec(self) -> _nodes.EvictorSpec:
        """A user's evictor (the built-ins override this)."""
        return _nodes.CustomEvictorSpec(EvictorUdf(self))

    def __repr__(self) -> str:
        spec = self._spec()
        if isinstance(spec, _nodes.CustomEvictorSpec):
            return f"{type(self).__name__}()"
        args = ", ".join(f"{k}={v!r}" for k, v in spec.fields().items())
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


_TRIGGER_METHODS = ("on_element", "on_event_time", "on_processing_time")


def _custom_subclass_of(value: Any, builtins: Tuple[type, ...], call: str, base: str, needs: str) -> None:
    """A user's class must derive from the base itself: a built-in's own methods live
    in Rust, so overriding some of them would silently not run."""
    for builtin in builtins:
        if isinstance(value, builtin):
            raise TypeError(f"{call}: {type(value).__name__} subclasses the built-in {builtin.__name__}, whose logic "
                            f"runs in Rust; subclass {base} and implement {needs} instead")


def checked_trigger(trigger: Any, call: str = "trigger()", merging: bool = False, custom: bool = True) -> Trigger:
    """``trigger()``'s argument: a built-in trigger, or (``custom``) a user's
    ``Trigger`` subclass implementing its methods; on ``merging`` (session) windows
    one that can merge."""
    if not isinstance(trigger, Trigger):
        raise TypeError(f"{call} takes a trigger, e.g. CountTrigger.of(10) from ferroflow.window, got {trigger!r}")
    if type(trigger) in TRIGGERS:
        if isinstance(trigger, PurgingTrigger):
            checked_trigger(trigger._inner, call, merging, custom)
        return trigger
    if not custom:
        raise NotImplementedError(f"{call}: custom triggers such as {type(trigger).__name__} are not supported on "
                                  "windowed joins and co-groups (they would see the join's internal records); "
                                  "use a built-in trigger from ferroflow.window")
    name = type(trigger).__name__
    needs = ", ".join(f"{m}()" for m in _TRIGGER_METHODS)
    _custom_subclass_of(trigger, TRIGGERS, call, "Trigger", needs)
    missing = [m for m in _TRIGGER_METHODS if find_method(trigger, (m,)) is None]
    if missing:
        raise TypeError(f"{call}: {name} must implement " + ", ".join(f"{m}()" for m in missing)
                        + " (each returns a TriggerResult)")
    if merging and not trigger.can_merge():
        raise ValueError(f"{call}: session windows merge, so their trigger must support merging, but "
                         f"{name}.can_merge() is False (return True and implement on_merge())")
    if merging and find_method(trigger, ("on_merge",)) is None:
        raise TypeError(f"{call}: {name}.can_merge() is True, so it must implement on_merge(window, ctx)")
    return trigger


_EVICTOR_METHODS = ("evict_before", "evict_after")


def checked_evictor(evictor: Any, call: str = "evictor()", custom: bool = True) -> Evictor:
    """``evictor()``'s argument: a built-in evictor, or (``custom``) a user's
    ``Evictor`` subclass implementing ``evict_before`` or ``evict_after``."""
    if not isinstance(evictor, Evictor):
        raise TypeError(f"{call} takes an evictor, e.g. CountEvictor.of(10) from ferroflow.window, got {evictor!r}")
    if type(evictor) in EVICTORS:
        return evictor
    if not custom:
        raise NotImplementedError(f"{call}: custom evictors such as {type(evictor).__name__} are not supported on "
                                  "windowed joins and co-groups (they would see the join's internal records); "
                                  "use a built-in evictor from ferroflow.window")
    needs = "evict_before() and/or evict_after()"
    _custom_subclass_of(evictor, EVICTORS, call, "Evictor", needs)
    if all(find_method(evictor, (m,)) is None for m in _EVICTOR_METHODS):
        raise TypeError(f"{call}: {type(evictor).__name__} must implement {needs}")
    return evictor


# -- how the window operator runs a user's trigger or evictor ----------------------------------

#: A ``TriggerResult`` as the engine reads it: bit 1 fire, bit 2 purge.
_RESULT_CODES = {(False, False): 0, (True, False): 1, (False, True): 2, (True, True): 3}

#: Timer operations as the engine applies them after each call (in order).
_REGISTER_EVENT, _DELETE_EVENT, _REGISTER_PROCESSING, _DELETE_PROCESSING = range(4)


def _timer_time(time: Any, method: str) -> int:
    if not isinstance(time, int) or isinstance(time, bool) or not -2**63 <= time < 2**63:
        raise TypeError(f"{method}() takes a time in ms (an int that fits in 64 bits), got {time!r}")
    return time


class _TriggerContext(Trigger.OnMergeContext):
    """The ``ctx`` of a user's trigger on one worker (``Trigger.TriggerContext`` and
    ``OnMergeContext``): reset before each call with the clocks; timers set meanwhile
    go to the engine with the call's result. State objects come from ``store``, the
    window operator's keyed state at the key and window the call is for."""

    def __init__(self, index: int, count: int, store: Any) -> None:
        from .state import KeyedRuntimeContext

        self._runtime = KeyedRuntimeContext(index, count, store)
        self._states: Dict[Tuple[type, str], Any] = {}
        self._watermark = 0
        self._now = 0
        self._ops: List[Tuple[int, int]] = []

    def _begin(self, watermark: int, now: int) -> None:
        self._watermark, self._now = watermark, now
        self._ops = []

    def get_current_processing_time(self) -> int:
        return self._now

    def get_current_watermark(self) -> int:
        return self._watermark

    def register_processing_time_timer(self, time: int) -> None:
        self._ops.append((_REGISTER_PROCESSING, _timer_time(time, "register_processing_time_timer")))

    def register_event_time_timer(self, time: int) -> None:
        self._ops.append((_REGISTER_EVENT, _timer_time(time, "register_event_time_timer")))

    def delete_processing_time_timer(self, time: int) -> None:
        self._ops.append((_DELETE_PROCESSING, _timer_time(time, "delete_processing_time_timer")))

    def delete_event_time_timer(self, time: int) -> None:
        self._ops.append((_DELETE_EVENT, _timer_time(time, "delete_event_time_timer")))

    def get_partitioned_state(self, state_descriptor: Any) -> Any:
        key = (type(state_descriptor), getattr(state_descriptor, "name", ""))
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = self._runtime.state_of(state_descriptor)
        return state

    def merge_partitioned_state(self, state_descriptor: Any) -> None:
        state = self.get_partitioned_state(state_descriptor)
        merge = getattr(state, "merge_windows", None)
        if merge is None:
            raise TypeError("merge_partitioned_state() takes a ListStateDescriptor, ReducingStateDescriptor or "
                            f"AggregatingStateDescriptor (states that can merge), got {state_descriptor!r}")
        merge()

    def get_metric_group(self) -> Any:
        raise NotImplementedError("get_metric_group(): ferroflow has no metric groups; count in state or in "
                                  "the window function instead")


class TriggerUdf(Udf):
    """A user's ``Trigger``, bound per worker into one dispatching callable for the
    binding's trigger adapter (``crates/python/src/triggers.rs``):
    ``call(op, window, watermark, processing_time, a, b) -> (result, timers)`` with op
    0 ``on_element(a, b)`` (element, timestamp), 1 ``on_event_time(b)``, 2
    ``on_processing_time(b)`` (the timer's time), 3 ``on_merge``, 4 ``clear``; ``result`` the
    ``TriggerResult``'s code (None for on_merge and clear), ``timers`` the timer
    operations of the call, in order. The trigger object is copied per worker."""

    def __init__(self, trigger: Any) -> None:
        super().__init__(trigger, ("on_element",))

    def bind_trigger(self, index: int, count: int, store: Any) -> Tuple[Callable, Optional[Callable]]:
        trigger, closer = self._open(index, RuntimeContext(index, count))
        ctx = _TriggerContext(index, count, store)
        name = type(trigger).__name__
        on_element, on_event_time, on_processing_time = (
            trigger.on_element, trigger.on_event_time, trigger.on_processing_time)
        clear = find_method(trigger, ("clear",))

        def decided(result: Any, method: str) -> int:
            code = _RESULT_CODES.get(result.value) if isinstance(result, TriggerResult) else None
            if code is None:
                raise TypeError(f"{name}.{method}() must return a TriggerResult (e.g. TriggerResult.FIRE), "
                                f"got {result!r}")
            return code

        def call(op: int, window: Any, watermark: int, now: int, a: Any = None, b: Any = None) -> Any:
            ctx._begin(watermark, now)
            if op == 0:
                code: Optional[int] = decided(on_element(a, b, window, ctx), "on_element")
            elif op == 1:
                code = decided(on_event_time(b, window, ctx), "on_event_time")
            elif op == 2:
                code = decided(on_processing_time(b, window, ctx), "on_processing_time")
            elif op == 3:
                trigger.on_merge(window, ctx)
                code = None
            else:
                if clear is not None:
                    clear(window, ctx)
                code = None
            return code, ctx._ops
        return call, closer


class _EvictorContext(Evictor.EvictorContext):
    """The ``evictor_context`` of a user's evictor: the clocks of the firing."""

    def __init__(self) -> None:
        self._watermark = 0
        self._now = 0

    def get_current_processing_time(self) -> int:
        return self._now

    def get_current_watermark(self) -> int:
        return self._watermark

    def get_metric_group(self) -> Any:
        raise NotImplementedError("get_metric_group(): ferroflow has no metric groups")


class EvictorUdf(Udf):
    """A user's ``Evictor``, bound per worker into the callable the binding's evictor
    adapter calls when a window fires: ``call(after, window, values, timestamps,
    watermark, processing_time)`` -> the positions of the elements that stay
    (ascending), or None when all stay. The evictor gets the elements as a list of
    ``TimestampedValue`` and removes the ones to evict from it, or returns the ones to
    keep (Flink's evictors remove them through the iterator)."""

    def __init__(self, evictor: Any) -> None:
        super().__init__(evictor, ("evict_before", "evict_after"))

    def bind(self, index: int, count: int) -> Tuple[Callable, Optional[Callable]]:
        evictor, closer = self._open(index, RuntimeContext(index, count))
        name = type(evictor).__name__
        methods = (find_method(evictor, ("evict_before",)), find_method(evictor, ("evict_after",)))
        ctx = _EvictorContext()

        def call(after: bool, window: Any, values: List[Any], timestamps: List[int], watermark: int,
                 now: int) -> Optional[List[int]]:
            method = methods[1 if after else 0]
            if method is None:
                return None
            ctx._watermark, ctx._now = watermark, now
            given = [TimestampedValue(v, None if t == -2**63 else t) for v, t in zip(values, timestamps)]
            elements = list(given)
            kept = method(elements, len(elements), window, ctx)
            if kept is None:
                kept = elements
            position = {id(e): i for i, e in enumerate(given)}
            stay = set()
            for e in kept:
                i = position.get(id(e))
                if i is None:
                    what = "evict_after" if after else "evict_before"
                    raise TypeError(f"{name}.{what}() can only remove elements, but kept {e!r}, which is not one "
                                    "of the TimestampedValues it was given")
                stay.add(i)
            return None if len(stay) == len(given) else sorted(stay)
        return call, closer
