"""Time spans and windows: ``Time.seconds(5)``, ``TimeWindow``, ``GlobalWindow``."""

from __future__ import annotations

import datetime
from typing import Any, Union


class Time:
    """A span of time, as Flink's ``Time``: ``Time.milliseconds(50)``, ``Time.seconds(5)``."""

    __slots__ = ("_ms",)

    def __init__(self, milliseconds: int) -> None:
        self._ms = int(milliseconds)

    @staticmethod
    def milliseconds(n: int) -> "Time":
        return Time(n)

    @staticmethod
    def seconds(n: int) -> "Time":
        return Time(n * 1000)

    @staticmethod
    def minutes(n: int) -> "Time":
        return Time(n * 60_000)

    @staticmethod
    def hours(n: int) -> "Time":
        return Time(n * 3_600_000)

    @staticmethod
    def days(n: int) -> "Time":
        return Time(n * 86_400_000)

    def to_milliseconds(self) -> int:
        return self._ms

    toMilliseconds = to_milliseconds

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Time) and other._ms == self._ms

    def __hash__(self) -> int:
        return hash(self._ms)

    def __repr__(self) -> str:
        return f"Time.milliseconds({self._ms})"


Duration = Union[Time, datetime.timedelta, int]


def to_millis(span: Any, what: str = "duration") -> int:
    """Milliseconds of a ``Time``, a ``timedelta`` or an int (already milliseconds)."""
    if isinstance(span, Time):
        ms = span.to_milliseconds()
    elif isinstance(span, datetime.timedelta):
        ms = int(span.total_seconds() * 1000)
    elif isinstance(span, int) and not isinstance(span, bool):
        ms = span
    elif hasattr(span, "to_milliseconds"):
        ms = int(span.to_milliseconds())
    else:
        raise TypeError(f"{what} must be a Time (e.g. Time.seconds(5)), a timedelta or milliseconds, got {span!r}")
    if ms <= 0:
        raise ValueError(f"{what} must be positive, got {ms} ms")
    return ms


class TimeWindow:
    """A window over [start, end) in milliseconds."""

    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end

    def max_timestamp(self) -> int:
        return self.end - 1

    def get_start(self) -> int:
        return self.start

    def get_end(self) -> int:
        return self.end

    getStart = get_start
    getEnd = get_end
    maxTimestamp = max_timestamp

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimeWindow) and (self.start, self.end) == (other.start, other.end)

    def __hash__(self) -> int:
        return hash((self.start, self.end))

    def __repr__(self) -> str:
        return f"TimeWindow(start={self.start}, end={self.end})"


class GlobalWindow:
    """The single window of count windows."""

    _instance: "GlobalWindow | None" = None

    def __new__(cls) -> "GlobalWindow":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    @staticmethod
    def get() -> "GlobalWindow":
        return GlobalWindow()

    def max_timestamp(self) -> int:
        return 2**63 - 1

    def __repr__(self) -> str:
        return "GlobalWindow"
