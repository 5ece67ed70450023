"""Time spans, instants and windows: ``Duration.of_seconds(5)``, ``Time.seconds(5)``,
``Instant``, ``TimeWindow``, ``GlobalWindow``."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    import datetime
    from typing import Any, Optional, Union


class _Span:
    """A span of whole milliseconds; ``Time`` and ``Duration`` differ only in their
    factory names (Flink's windowing ``Time`` and ``java.time.Duration``)."""

    __slots__ = ("_ms",)

    def __init__(self, milliseconds: int) -> None:
        self._ms = int(milliseconds)

    def to_milliseconds(self) -> int:
        return self._ms

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Span) and other._ms == self._ms

    def __hash__(self) -> int:
        return hash(self._ms)


class Time(_Span):
    """A span of time, as Flink's ``Time``: ``Time.milliseconds(50)``, ``Time.seconds(5)``."""

    __slots__ = ()

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

    toMilliseconds = _Span.to_milliseconds

    def __repr__(self) -> str:
        return f"Time.milliseconds({self._ms})"


class Duration(_Span):
    """A span of time, as PyFlink's ``Duration``: ``Duration.of_millis(500)``,
    ``Duration.of_seconds(1)``. May be negative (window offsets)."""

    __slots__ = ()

    @staticmethod
    def of_millis(n: int) -> "Duration":
        return Duration(n)

    @staticmethod
    def of_seconds(n: int) -> "Duration":
        return Duration(n * 1000)

    @staticmethod
    def of_minutes(n: int) -> "Duration":
        return Duration(n * 60_000)

    @staticmethod
    def of_hours(n: int) -> "Duration":
        return Duration(n * 3_600_000)

    @staticmethod
    def of_days(n: int) -> "Duration":
        return Duration(n * 86_400_000)

    def __repr__(self) -> str:
        return f"Duration.of_millis({self._ms})"


if TYPE_CHECKING:
    #: What every API call taking a span of time accepts.
    TimeSpan = Union[Duration, Time, datetime.timedelta, int]


def __getattr__(name: str) -> Any:
    """``TimeSpan`` is made when first asked for, so that importing ferroflow imports
    neither typing nor datetime."""
    if name == "TimeSpan":
        import datetime
        from typing import Union

        value = globals()[name] = Union[Duration, Time, datetime.timedelta, int]
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def to_millis(span: Any, what: str = "duration", minimum: Optional[int] = 1) -> int:
    """Milliseconds of a ``Duration``, a ``Time``, a ``timedelta`` or an int (already
    milliseconds), checked to be at least ``minimum`` (None: any value)."""
    if isinstance(span, _Span):
        ms = span.to_milliseconds()
    elif isinstance(span, int) and not isinstance(span, bool):
        ms = span
    else:
        import datetime  # only here: most spans are Durations, Times or ints

        if isinstance(span, datetime.timedelta):
            ms = span // datetime.timedelta(milliseconds=1)
        elif hasattr(span, "to_milliseconds"):
            ms = int(span.to_milliseconds())
        else:
            raise TypeError(f"{what} must be a Duration (e.g. Duration.of_seconds(5)), a Time, a timedelta or "
                            f"milliseconds, got {span!r}")
    if not -2**63 <= ms < 2**63:
        raise ValueError(f"{what} must fit in 64 bits of milliseconds, got {ms} ms")
    if minimum is not None and ms < minimum:
        rule = "positive" if minimum == 1 else "non-negative" if minimum == 0 else f"at least {minimum} ms"
        raise ValueError(f"{what} must be {rule}, got {ms} ms")
    return ms


class Instant:
    """A point in time at millisecond precision: ``Instant.of_epoch_milli(ms)`` (PyFlink's
    ``pyflink.common.Instant``, which watermark and timestamp APIs take)."""

    __slots__ = ("seconds", "nanos")

    def __init__(self, seconds: int, nanos: int) -> None:
        self.seconds = int(seconds)
        self.nanos = int(nanos)

    @staticmethod
    def of_epoch_milli(epoch_milli: int) -> "Instant":
        return Instant(epoch_milli // 1000, epoch_milli % 1000 * 1_000_000)

    def to_epoch_milli(self) -> int:
        return self.seconds * 1000 + self.nanos // 1_000_000

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Instant) and (self.seconds, self.nanos) == (other.seconds, other.nanos)

    def __hash__(self) -> int:
        return hash((self.seconds, self.nanos))

    def __repr__(self) -> str:
        return f"Instant<{self.seconds}, {self.nanos}>"


class Window:
    """A window; ``max_timestamp()`` is the last millisecond it covers. The base class of
    ``TimeWindow``, ``CountWindow`` and ``GlobalWindow``, as in PyFlink."""

    __slots__ = ()

    def max_timestamp(self) -> int:  # pragma: no cover - every window overrides it
        raise NotImplementedError


class TimeWindow(Window):
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


class CountWindow(Window):
    """PyFlink's window of a count assigner, numbered ``id``; it covers all of time. ferroflow's
    count windows are global windows with a count trigger, so functions receive a
    ``GlobalWindow``; this class is here for the type annotations of PyFlink scripts
    (``WindowFunction[tuple, tuple, str, CountWindow]``)."""

    __slots__ = ("id",)

    def __init__(self, id: int) -> None:
        self.id = id

    def max_timestamp(self) -> int:
        return 2**63 - 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CountWindow) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"CountWindow(id={self.id})"


class GlobalWindow(Window):
    """The single window of ``GlobalWindows`` (and so of count windows)."""

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
