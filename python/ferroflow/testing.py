"""A source that drives time exactly, for tests of event-time and processing-time
logic (yours and ours):

    env.add_source(TestSource([
        Timestamped(("a", 1), 1000),   # a record stamped 1000 ms
        ("b", 2),                       # a record without timestamp
        Watermark(1999),                # event time reaches 1999: windows ending at 2000 fire
        ProcessingTime(5000),           # the processing-time clock jumps to 5000
    ]))

Everything before a ``Watermark`` or ``ProcessingTime`` marker is sent before the marker
takes effect, and a ``ProcessingTime`` marker takes effect only once the records before
it are fully processed, so results do not depend on timing or on the number of workers.

A job with a ``TestSource`` runs on a manual processing-time clock: it starts at
``processing_time_start`` and moves only at ``ProcessingTime`` markers (to +infinity at
the end of the input). The source runs on one worker. Pass it to ``env.add_source``
(its watermarks are the stream's) or ``env.from_source`` (the strategy's replace them).
"""

from __future__ import annotations

from ._nodes import TestingSource

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Iterable, List, Optional, Tuple

__all__ = ["TestSource", "Timestamped", "Watermark", "ProcessingTime"]

_MIN, _MAX = -2**63, 2**63 - 1


def _millis(t: Any, what: str) -> int:
    """``t`` checked to be an int of milliseconds in the engine's range."""
    if not isinstance(t, int) or isinstance(t, bool):
        raise TypeError(f"{what} must be an int of milliseconds, got {t!r}")
    if not _MIN <= t <= _MAX:
        raise ValueError(f"{what} must fit in 64 bits, got {t}")
    return t


class Timestamped:
    """A record with an event timestamp (ms); ``None`` means no timestamp."""

    __slots__ = ("value", "timestamp")

    def __init__(self, value: Any, timestamp: Optional[int]) -> None:
        self.value = value
        self.timestamp = None if timestamp is None else _millis(timestamp, "Timestamped(): the timestamp")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timestamped) and (self.value, self.timestamp) == (other.value, other.timestamp)

    def __repr__(self) -> str:
        return f"Timestamped({self.value!r}, {self.timestamp!r})"


class Watermark:
    """The source's watermark becomes ``timestamp`` (a lower one than before is ignored)."""

    __slots__ = ("timestamp",)

    def __init__(self, timestamp: int) -> None:
        self.timestamp = _millis(timestamp, "Watermark(): the timestamp")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Watermark) and other.timestamp == self.timestamp

    def __repr__(self) -> str:
        return f"Watermark({self.timestamp})"


class ProcessingTime:
    """The job's processing-time clock becomes ``time`` (ms; a lower one is ignored)."""

    __slots__ = ("time",)

    def __init__(self, time: int) -> None:
        self.time = _millis(time, "ProcessingTime(): the time")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProcessingTime) and other.time == self.time

    def __repr__(self) -> str:
        return f"ProcessingTime({self.time})"


def _event(item: Any) -> Tuple[Any, ...]:
    """One item of a TestSource as the engine's ``testing_source`` node reads it."""
    if isinstance(item, Timestamped):
        return ("record", item.value, item.timestamp)
    if isinstance(item, Watermark):
        return ("watermark", item.timestamp)
    if isinstance(item, ProcessingTime):
        return ("processing_time", item.time)
    return ("record", item, None)


class TestSource:
    """Records, watermarks and processing-time markers, in the given order (see the
    module's documentation). Items that are not ``Timestamped``, ``Watermark`` or
    ``ProcessingTime`` are records without timestamp."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, events: Iterable[Any], processing_time_start: int = 0) -> None:
        if isinstance(events, (str, bytes)) or not hasattr(events, "__iter__"):
            raise TypeError(f"TestSource() takes a list of records and markers, got {type(events).__name__}")
        self.events: List[Tuple[Any, ...]] = [_event(e) for e in events]
        self.processing_time_start = _millis(processing_time_start, "TestSource(): processing_time_start")

    def _kind(self) -> TestingSource:
        """The plan's node kind for this source."""
        return TestingSource(list(self.events), self.processing_time_start)

    def _label(self) -> str:
        records = sum(1 for e in self.events if e[0] == "record")
        return f"{records} records, {len(self.events) - records} markers"

    def __repr__(self) -> str:
        return f"TestSource({self._label()})"
