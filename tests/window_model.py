"""A reference model of keyed windows in event time and processing time, in plain Python.

This is the second opinion the property tests (tests/test_event_time_model.py) check the
engine against. It is written from Flink's documented window semantics (the
``WindowOperator`` / ``EvictingWindowOperator`` contract: assigners, triggers, evictors,
allowed lateness, late data) and from the rules ferroflow adds for bounded inputs, not
from the engine's code. It favours being obviously right over being fast: inputs are a few
dozen records.

Feed it a list of input events and a window spec::

    result = run_model(
        [Record("a", "x", 3), Record("a", "y", 12), Watermark(9), Record("a", "z", 4)],
        WindowSpec(Tumbling(10)),
    )
    result.firings      # [Firing("a", TimeWindow(0, 10), ("x",)), Firing("a", TimeWindow(10, 20), ("y",))]
    result.late_dropped  # 1: "z" came after the watermark passed its window

The end of input is implied after the last event.

The rules
=========

Time
----
- The watermark ``W`` starts at "none" (``MIN_TIME``, Flink's ``Long.MIN_VALUE``) and only
  moves forward: a ``Watermark`` not above the current one is ignored. Every event is seen
  in order: a record sees the last watermark and processing time before it (in Flink the
  watermark travels in the stream; one non-parallel source keeps that order per key).
- Processing time (``clock``) is manual, as with ferroflow's testing source: it starts at
  ``processing_time_start`` and moves only at ``ProcessingTime`` events (a lower or equal
  reading is ignored).
- An event-time timer at ``t`` fires when the watermark advances to ``t`` or beyond. A
  timer registered at or below the current watermark therefore waits for the next
  advance (or the end).
- A processing-time timer at ``t`` fires once the clock reads ``t + 1`` or later (Flink
  delays processing-time timers by 1 ms, so a window ending at ``t + 1`` sees every record
  of processing time ``t``). Timers due at one advance fire in time order.

Windows
-------
- Tumbling ``[start, start + size)`` with ``start = t - (t - offset) mod size``
  (a floor modulo: right for negative times too). Sliding: every such window of length
  ``size`` whose start is ``offset`` plus a multiple of ``slide`` and that contains ``t``
  (none if ``t`` falls in a gap, ``slide > size``). Session: ``[t, t + gap)``, where
  ``gap`` may come from the record (dynamic gap); a new session merges with every open
  session of the key it overlaps *or touches* (``[0, 5)`` and ``[5, 9)`` merge), and
  their contents and trigger state merge too. Global: one window per key, never cleaned
  up, ``max_timestamp = MAX_TIME``. ``t`` is the record's timestamp for event-time
  assigners and the clock for processing-time ones.
- A window's ``max_timestamp`` is ``end - 1``. Its clean-up time is ``max_timestamp +
  allowed_lateness`` for event-time assigners (clean-up when the watermark reaches it) and
  ``max_timestamp`` for processing-time ones (clean-up when that processing-time timer
  fires). Allowed lateness only applies to event-time assigners. ``GlobalWindows`` are not
  event time (Flink's ``isEventTime()`` is false for them).
- A window is *late* when it is event time and its clean-up time ``<= W``. A record is
  added to each of its windows that is not late (for sessions: the window after merging;
  merging into an open session is never late). A record added to no window is *late* if
  event time and ``timestamp + allowed_lateness <= W``: it goes to the late side output
  when one was asked for, else it is dropped and counted (``late_dropped``). A record in
  no window that is not late (a gap between sliding windows) is dropped silently, as in
  Flink (``no_window``).
- Clean-up removes the window: its contents, trigger state and timers. Contents that
  never fired are lost (``discarded``).

Triggers (per key and window; the default is the assigner's: event time for event-time
assigners, processing time for processing-time ones, never for ``GlobalWindows``)
---------------------------------------------------------------------------------
- ``EventTimeTrigger``: fires when the watermark reaches ``max_timestamp``; a record
  added after that (allowed lateness) fires the window again at once.
- ``ProcessingTimeTrigger``: fires when the processing-time timer at ``max_timestamp``
  fires.
- ``CountTrigger(n)``: counts the records added to the window and fires on the n-th,
  restarting the count; merged sessions add their counts up (the merge itself never fires;
  the next record then fires if the sum reached n).
- ``ContinuousEventTimeTrigger(interval)``: like the event-time trigger, plus periodic
  firings while the window is open: the first periodic point is the first record's
  timestamp rounded down to the interval *with Java's truncating remainder* (as Flink
  computes it) plus the interval, capped at ``max_timestamp``; each periodic firing sets the
  next point ``interval`` later. Merged sessions keep the earliest pending point. One
  deliberate difference with Flink, taken from ferroflow's engine: if one watermark advance
  passes several periodic points of a window, it fires once for them and the next point is
  the first one above the new watermark (Flink fires once per point, identical firings,
  and never stops for a ``GlobalWindow`` at the final watermark).
- ``PurgingTrigger(inner)``: every firing of ``inner`` also purges the window's contents
  (FIRE_AND_PURGE). The window itself (trigger state, timers) stays until clean-up.

A firing hands out the window's contents in arrival order (also across merged sessions:
Flink leaves that order unspecified, ferroflow keeps arrival order), after the evictor.
A firing of a window without contents (purged, never filled) emits nothing.

Evictors (applied at each firing; evicted records leave the window for good)
---------------------------------------------------------------------------
- ``CountEvictor(n)``: keeps the last ``n`` records.
- ``TimeEvictor(span)``: keeps the records whose timestamp is ``> max - span``, ``max``
  being the largest timestamp in the window. Records without a timestamp: Flink's
  ``TimeEvictor`` does nothing when the window's first record has none.
- ``evict_after=True`` (Flink's ``doEvictAfter``): the firing hands out everything, the
  eviction happens after it (it only shows in later firings of the same window).

End of input (ferroflow's rule for bounded inputs, ``end_of_input="fire_pending"``)
-------------------------------------------------------------------------------------
1. The watermark becomes ``MAX_TIME``: every event-time timer fires (clean-up does not
   drop anything any more).
2. The clock becomes +infinity: every processing-time timer fires.
3. Every window holding records added since its last firing (or purge) fires once more
   with its (evicted) contents, and is purged: ``GlobalWindows`` without a trigger, partial
   counts, unfired processing-time windows all emit.

``end_of_input="flink"`` does only step 1 (Flink's final watermark; what is left is lost).

Where the outcome is not fixed
------------------------------
A processing-time timer registered when it is already due (``ProcessingTimeTrigger`` on an
event-time window whose ``max_timestamp`` the clock has passed) fires "as soon as possible"
in Flink; when exactly is up to the implementation. The model fires it at the next clock
advance and sets ``ModelResult.ambiguous`` when something that could tell the difference
happens in between (another record of the key, or a watermark firing a timer of that
window). Tests skip such inputs.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Hashable, Iterable, List, Optional, Set, Tuple, Union

#: Flink's Long.MIN_VALUE / Long.MAX_VALUE: "no watermark yet" / "end of input".
MIN_TIME = -(2**63)
MAX_TIME = 2**63 - 1
#: The clock at the end of input: later than every timer.
CLOCK_AT_END = math.inf

EVENT = "event"
PROCESSING = "processing"


# -- input events -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One input record: its key (what the key selector returns), its value, and its event
    timestamp in ms (``None``: the record has no timestamp)."""

    key: Hashable
    value: Any
    timestamp: Optional[int]


@dataclass(frozen=True)
class Watermark:
    time: int


@dataclass(frozen=True)
class ProcessingTime:
    """The (manual) processing-time clock now reads ``time``."""

    time: int


Event = Union[Record, Watermark, ProcessingTime]


# -- windows ----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class TimeWindow:
    start: int
    end: int

    @property
    def max_timestamp(self) -> int:
        return self.end - 1

    def touches(self, other: "TimeWindow") -> bool:
        """Overlap or adjacency: what makes two sessions one."""
        return self.start <= other.end and other.start <= self.end

    def cover(self, other: "TimeWindow") -> "TimeWindow":
        return TimeWindow(min(self.start, other.start), max(self.end, other.end))


class GlobalWindow:
    """The single window of ``GlobalWindows`` (one per key)."""

    max_timestamp = MAX_TIME
    start = None
    end = None

    def __repr__(self) -> str:
        return "GLOBAL"

    def __lt__(self, other: object) -> bool:  # only one kind of window per operator
        return False


GLOBAL = GlobalWindow()
Window = Union[TimeWindow, GlobalWindow]


# -- assigners --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tumbling:
    size: int
    offset: int = 0
    domain: str = EVENT

    def __post_init__(self) -> None:
        if self.size <= 0 or abs(self.offset) >= self.size:
            raise ValueError(f"tumbling windows need size > 0 and abs(offset) < size: {self}")

    def windows(self, t: int, value: Any) -> List[Window]:
        start = t - (t - self.offset) % self.size
        return [TimeWindow(start, start + self.size)]


@dataclass(frozen=True)
class Sliding:
    size: int
    slide: int
    offset: int = 0
    domain: str = EVENT

    def __post_init__(self) -> None:
        if self.size <= 0 or self.slide <= 0 or abs(self.offset) >= self.slide:
            raise ValueError(f"sliding windows need size > 0, slide > 0 and abs(offset) < slide: {self}")

    def windows(self, t: int, value: Any) -> List[Window]:
        # The latest window start at or before t, then back one slide at a time while the
        # window still reaches t.
        start = t - (t - self.offset) % self.slide
        found = []
        while start + self.size > t:
            found.append(TimeWindow(start, start + self.size))
            start -= self.slide
        return found


@dataclass(frozen=True)
class Session:
    """``gap`` (ms) or ``gap_fn(value) -> ms`` (a dynamic gap)."""

    gap: Optional[int] = None
    gap_fn: Optional[Callable[[Any], int]] = None
    domain: str = EVENT

    def __post_init__(self) -> None:
        if (self.gap is None) == (self.gap_fn is None):
            raise ValueError("a session assigner takes a gap or a gap function")
        if self.gap is not None and self.gap <= 0:
            raise ValueError(f"session windows need gap > 0: {self}")

    def windows(self, t: int, value: Any) -> List[Window]:
        gap = self.gap if self.gap is not None else self.gap_fn(value)
        if gap <= 0:
            raise ValueError(f"the dynamic session gap must be > 0, got {gap} for {value!r}")
        return [TimeWindow(t, t + gap)]


@dataclass(frozen=True)
class Global:
    domain: str = PROCESSING  # not event time, as Flink's GlobalWindows

    def windows(self, t: Any, value: Any) -> List[Window]:
        return [GLOBAL]


Assigner = Union[Tumbling, Sliding, Session, Global]


def is_event_time(assigner: Assigner) -> bool:
    return not isinstance(assigner, Global) and assigner.domain == EVENT


# -- triggers and evictors (configuration only; the behaviour is in _Operator) ----------------


@dataclass(frozen=True)
class EventTimeTrigger:
    pass


@dataclass(frozen=True)
class ProcessingTimeTrigger:
    pass


@dataclass(frozen=True)
class CountTrigger:
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("CountTrigger needs a count >= 1")


@dataclass(frozen=True)
class ContinuousEventTimeTrigger:
    interval: int

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("ContinuousEventTimeTrigger needs an interval > 0")


@dataclass(frozen=True)
class NeverTrigger:
    """``GlobalWindows``' default trigger."""


@dataclass(frozen=True)
class PurgingTrigger:
    inner: Any


@dataclass(frozen=True)
class CountEvictor:
    count: int
    evict_after: bool = False

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("CountEvictor needs a count >= 1")


@dataclass(frozen=True)
class TimeEvictor:
    span: int
    evict_after: bool = False

    def __post_init__(self) -> None:
        if self.span < 1:
            raise ValueError("TimeEvictor needs a span >= 1")


def default_trigger(assigner: Assigner) -> Any:
    if isinstance(assigner, Global):
        return NeverTrigger()
    return EventTimeTrigger() if is_event_time(assigner) else ProcessingTimeTrigger()


@dataclass(frozen=True)
class WindowSpec:
    assigner: Assigner
    trigger: Any = None  # None: the assigner's default
    evictor: Any = None
    allowed_lateness: int = 0
    late_output: bool = False  # side_output_late_data(tag) was called


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Firing:
    key: Hashable
    window: Window
    values: Tuple[Any, ...]

    def row(self) -> Tuple[Hashable, Optional[int], Optional[int], Tuple[Any, ...]]:
        """``(key, start, end, values)``; ``start``/``end`` are None for the global window."""
        return (self.key, self.window.start, self.window.end, self.values)


@dataclass
class ModelResult:
    firings: List[Firing] = field(default_factory=list)
    #: Late records handed to the late side output (only with ``late_output``).
    late: List[Record] = field(default_factory=list)
    #: Late records dropped (no late side output): the job's ``late_records_dropped``.
    late_dropped: int = 0
    #: Records in no window that were not late (gaps between sliding windows).
    no_window: int = 0
    #: (record, window) pairs cleaned up without ever being in a firing.
    discarded: int = 0
    #: Why the outcome depends on implementation-defined timing (empty: it does not).
    ambiguous: List[str] = field(default_factory=list)

    def rows(self) -> Counter:
        """The firings as a multiset of ``Firing.row()``: the order across keys and
        windows is not defined once keys are spread over workers."""
        return Counter(f.row() for f in self.firings)


def run_model(events: Iterable[Event], spec: WindowSpec, processing_time_start: int = 0,
              end_of_input: str = "fire_pending") -> ModelResult:
    """Runs ``events`` through one window operator, then ends the input."""
    op = _Operator(spec, processing_time_start)
    for e in events:
        if isinstance(e, Record):
            op.record(e)
        elif isinstance(e, Watermark):
            op.watermark(e.time)
        elif isinstance(e, ProcessingTime):
            op.processing_time(e.time)
        else:
            raise TypeError(f"not an input event: {e!r}")
    op.end(end_of_input)
    return op.result


# -- the operator -----------------------------------------------------------------------------


def _java_remainder(a: int, b: int) -> int:
    """``a % b`` as Java computes it (the sign of ``a``), for ``b > 0``."""
    r = abs(a) % b
    return r if a >= 0 else -r


@dataclass
class _Element:
    seq: int  # arrival order
    timestamp: Optional[int]
    value: Any


@dataclass
class _WindowState:
    elements: List[_Element] = field(default_factory=list)
    #: Records added since the last firing or purge (what the end of input still owes).
    fresh: int = 0
    #: CountTrigger's count.
    count: int = 0
    #: ContinuousEventTimeTrigger's next periodic point.
    next_fire: Optional[int] = None


class _Operator:
    def __init__(self, spec: WindowSpec, processing_time_start: int) -> None:
        self.spec = spec
        self.assigner = spec.assigner
        self.event_time = is_event_time(spec.assigner)
        self.lateness = spec.allowed_lateness if self.event_time else 0
        if self.lateness < 0:
            raise ValueError("allowed lateness cannot be negative")
        trigger = spec.trigger if spec.trigger is not None else default_trigger(spec.assigner)
        self.purging = False
        while isinstance(trigger, PurgingTrigger):
            self.purging = True
            trigger = trigger.inner
        self.trigger = trigger
        self.evictor = spec.evictor
        self.watermark_now = MIN_TIME
        self.clock: Union[int, float] = processing_time_start
        self.finishing = False
        self.next_seq = 0
        self.windows: Dict[Hashable, Dict[Window, _WindowState]] = {}
        # Timers: {(key, window): set of times}, one dict per domain.
        self.timers: Dict[str, Dict[Tuple[Hashable, Window], Set[int]]] = {EVENT: {}, PROCESSING: {}}
        # Key order of first appearance, to order timers of equal time deterministically.
        self.key_order: Dict[Hashable, int] = {}
        # (key, window) pairs with a processing-time timer that was due when registered.
        self.overdue: Set[Tuple[Hashable, Window]] = set()
        self.result = ModelResult()

    # ---- inputs ----

    def record(self, r: Record) -> None:
        self.key_order.setdefault(r.key, len(self.key_order))
        if self.event_time and r.timestamp is None:
            raise ValueError(f"event-time windows need record timestamps: {r!r}")
        seq = self.next_seq
        self.next_seq += 1
        t = r.timestamp if self.event_time else self.clock
        windows = self.assigner.windows(t, r.value)
        self._check_overdue_record(r.key, windows)
        added = False
        for window in windows:
            if isinstance(self.assigner, Session):
                window = self._merge_session(r.key, window)
                if window is None:
                    continue
            elif self._is_late(window):
                continue
            added = True
            self._add(r.key, window, _Element(seq, r.timestamp, r.value))
        if added:
            return
        if self.event_time and r.timestamp + self.lateness <= self.watermark_now:
            if self.spec.late_output:
                self.result.late.append(r)
            else:
                self.result.late_dropped += 1
        else:
            self.result.no_window += 1

    def watermark(self, t: int) -> None:
        if t <= self.watermark_now:
            return
        self._check_overdue_watermark(t)
        self.watermark_now = t
        self._fire_due(EVENT)

    def processing_time(self, t: int) -> None:
        if t <= self.clock:
            return
        self.clock = t
        self._fire_due(PROCESSING)
        self.overdue.clear()

    def end(self, policy: str) -> None:
        if policy not in ("fire_pending", "flink"):
            raise ValueError(f"unknown end-of-input policy {policy!r}")
        if policy == "flink":
            self.watermark(MAX_TIME)
            return
        self.finishing = True  # from here on, clean-up drops nothing
        self.watermark_now = MAX_TIME
        self._fire_due(EVENT)
        self.clock = CLOCK_AT_END
        self._fire_due(PROCESSING)
        for key, by_window in self.windows.items():
            for window, state in by_window.items():
                if state.fresh > 0:
                    self._emit(key, window, state)
                    state.elements = []
                    state.fresh = 0

    # ---- windows ----

    def _cleanup_time(self, window: Window) -> Optional[int]:
        """When the window goes (in the assigner's domain), None for never."""
        t = window.max_timestamp + self.lateness
        return None if t >= MAX_TIME else t

    def _is_late(self, window: Window) -> bool:
        cleanup = self._cleanup_time(window)
        return self.event_time and cleanup is not None and cleanup <= self.watermark_now

    def _add(self, key: Hashable, window: Window, element: _Element) -> None:
        state = self.windows.setdefault(key, {}).setdefault(window, _WindowState())
        state.elements.append(element)
        state.fresh += 1
        if self._trigger_on_element(key, window, state, element.timestamp):
            self._fire(key, window, state)
        cleanup = self._cleanup_time(window)
        if cleanup is not None:
            self._register(EVENT if self.event_time else PROCESSING, key, window, cleanup)

    def _merge_session(self, key: Hashable, new: TimeWindow) -> Optional[TimeWindow]:
        """The session the record at ``new`` ends up in, after merging the key's open
        sessions that ``new`` touches (directly or through each other); None if late."""
        open_sessions = list(self.windows.get(key, {}))
        group: List[TimeWindow] = []
        merged = new
        grew = True
        while grew:
            grew = False
            for w in open_sessions:
                if w not in group and w.touches(merged):
                    group.append(w)
                    merged = merged.cover(w)
                    grew = True
        if not group:
            return None if self._is_late(new) else new
        if group == [merged]:
            return merged  # inside an open session: nothing changes
        state = _WindowState()
        for w in group:
            old = self.windows[key].pop(w)
            self._drop_timers(key, w)
            state.elements += old.elements
            state.fresh += old.fresh
            state.count += old.count
            if old.next_fire is not None:
                state.next_fire = old.next_fire if state.next_fire is None else min(state.next_fire, old.next_fire)
            self.overdue.discard((key, w))
        state.elements.sort(key=lambda e: e.seq)
        self.windows[key][merged] = state
        self._trigger_on_merge(key, merged, state)
        return merged

    def _cleanup(self, key: Hashable, window: Window) -> None:
        state = self.windows[key].pop(window)
        if not self.windows[key]:
            del self.windows[key]
        self.result.discarded += state.fresh
        self._drop_timers(key, window)
        self.overdue.discard((key, window))

    # ---- firing ----

    def _fire(self, key: Hashable, window: Window, state: _WindowState) -> None:
        """The trigger said FIRE (and PURGE if purging)."""
        self._emit(key, window, state)
        if self.purging:
            state.elements = []
            state.fresh = 0

    def _emit(self, key: Hashable, window: Window, state: _WindowState) -> None:
        if not state.elements:
            return
        ev = self.evictor
        if ev is not None and not ev.evict_after:
            state.elements = self._evict(state.elements)
        self.result.firings.append(Firing(key, window, tuple(e.value for e in state.elements)))
        if ev is not None and ev.evict_after:
            state.elements = self._evict(state.elements)
        state.fresh = 0

    def _evict(self, elements: List[_Element]) -> List[_Element]:
        ev = self.evictor
        if isinstance(ev, CountEvictor):
            return elements[-ev.count:]
        if isinstance(ev, TimeEvictor):
            if not elements or elements[0].timestamp is None:
                return elements
            newest = max(e.timestamp for e in elements if e.timestamp is not None)
            return [e for e in elements if e.timestamp is not None and e.timestamp > newest - ev.span]
        raise TypeError(f"unknown evictor {ev!r}")

    # ---- triggers ----

    def _trigger_on_element(self, key: Hashable, window: Window, state: _WindowState,
                            timestamp: Optional[int]) -> bool:
        tr = self.trigger
        end = window.max_timestamp
        if isinstance(tr, EventTimeTrigger):
            if end <= self.watermark_now:
                return True  # a late (but allowed) record: fire again at once
            self._register(EVENT, key, window, end)
            return False
        if isinstance(tr, ProcessingTimeTrigger):
            self._register(PROCESSING, key, window, end)
            return False
        if isinstance(tr, CountTrigger):
            state.count += 1
            if state.count >= tr.count:
                state.count = 0
                return True
            return False
        if isinstance(tr, ContinuousEventTimeTrigger):
            if end <= self.watermark_now:
                return True
            self._register(EVENT, key, window, end)
            if state.next_fire is None:
                ts = MIN_TIME if timestamp is None else timestamp
                first = ts - _java_remainder(ts, tr.interval) + tr.interval
                state.next_fire = min(first, end)
                self._register(EVENT, key, window, state.next_fire)
            return False
        if isinstance(tr, NeverTrigger):
            return False
        raise TypeError(f"unknown trigger {tr!r}")

    def _trigger_on_timer(self, domain: str, key: Hashable, window: Window, state: _WindowState,
                          t: int) -> bool:
        tr = self.trigger
        end = window.max_timestamp
        if isinstance(tr, EventTimeTrigger):
            return domain == EVENT and t == end
        if isinstance(tr, ProcessingTimeTrigger):
            return domain == PROCESSING
        if isinstance(tr, ContinuousEventTimeTrigger) and domain == EVENT:
            if t == end:
                return True
            if state.next_fire == t:
                nxt = t + tr.interval
                if nxt <= self.watermark_now:  # this advance passed several points: fire once
                    nxt = t + ((self.watermark_now - t) // tr.interval + 1) * tr.interval
                state.next_fire = min(nxt, end)
                self._register(EVENT, key, window, state.next_fire)
                return True
        return False

    def _trigger_on_merge(self, key: Hashable, window: Window, state: _WindowState) -> None:
        tr = self.trigger
        end = window.max_timestamp
        if isinstance(tr, EventTimeTrigger) and end > self.watermark_now:
            self._register(EVENT, key, window, end)
        elif isinstance(tr, ProcessingTimeTrigger) and end > self.clock:
            self._register(PROCESSING, key, window, end)
        elif isinstance(tr, ContinuousEventTimeTrigger) and state.next_fire is not None:
            self._register(EVENT, key, window, state.next_fire)

    # ---- timers ----

    def _register(self, domain: str, key: Hashable, window: Window, t: int) -> None:
        self.timers[domain].setdefault((key, window), set()).add(t)
        if domain == PROCESSING and t < self.clock and not self.finishing:
            self.overdue.add((key, window))

    def _drop_timers(self, key: Hashable, window: Window) -> None:
        for timers in self.timers.values():
            timers.pop((key, window), None)

    def _is_due(self, domain: str, t: int) -> bool:
        return t <= self.watermark_now if domain == EVENT else t < self.clock

    def _fire_due(self, domain: str) -> None:
        """Fires the due timers of ``domain``, earliest first (ties: key order of first
        appearance, then window), including timers registered while doing so."""
        timers = self.timers[domain]
        while True:
            due = [(t, self.key_order[key], window, key) for (key, window), times in timers.items()
                   for t in times if self._is_due(domain, t)]
            if not due:
                return
            t, _, window, key = min(due, key=lambda d: (d[0], d[1], _window_order(d[2])))
            timers[(key, window)].discard(t)
            if not timers[(key, window)]:
                del timers[(key, window)]
            self._on_timer(domain, key, window, t)

    def _on_timer(self, domain: str, key: Hashable, window: Window, t: int) -> None:
        state = self.windows.get(key, {}).get(window)
        if state is None:
            return
        if self._trigger_on_timer(domain, key, window, state, t):
            self._fire(key, window, state)
        own_domain = EVENT if self.event_time else PROCESSING
        if domain == own_domain and t == self._cleanup_time(window) and not self.finishing:
            self._cleanup(key, window)

    # ---- ambiguity bookkeeping (see the module docs) ----

    def _ambiguous(self, why: str) -> None:
        self.result.ambiguous.append(why)

    def _check_overdue_record(self, key: Hashable, windows: List[Window]) -> None:
        """A record that may change a window with an overdue timer (for sessions: any
        record of the key, it may merge)."""
        for k, w in self.overdue:
            if k == key and (isinstance(self.assigner, Session) or w in windows):
                self._ambiguous(f"a record of key {key!r} for {w} arrived while its processing-time timer was overdue")
                return

    def _check_overdue_watermark(self, t: int) -> None:
        for key, window in self.overdue:
            if any(x <= t for x in self.timers[EVENT].get((key, window), ())):
                self._ambiguous(f"watermark {t} fires an event-time timer of {window} of key {key!r} "
                                "while its processing-time timer is overdue")


def _window_order(window: Window) -> Tuple[int, int]:
    if isinstance(window, GlobalWindow):
        return (MIN_TIME, MAX_TIME)
    return (window.start, window.end)


# -- helpers for the tests --------------------------------------------------------------------


def fold(values: Iterable[Any], fn: Callable[[Any, Any], Any]) -> Any:
    """A reduce over a window's values, for comparing ``reduce`` jobs with the model
    (meaningful for functions whose result does not depend on the order)."""
    it = iter(values)
    acc = next(it)
    for v in it:
        acc = fn(acc, v)
    return acc
