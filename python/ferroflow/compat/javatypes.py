"""Small Java types talk-era scripts import: ``WriteMode``, ``CheckpointingMode``,
``TimeUnit``, the static ``Time`` factories, ``NoSuchElementException``,
``Properties`` and ``JobExecutionException``."""

from __future__ import annotations

import enum

from .._errors import JobExecutionException
from ..checkpoint_config import CheckpointingMode
from .._java import NoSuchElementException
from ..windowing import Time
from .params import Properties

__all__ = [
    "WriteMode", "CheckpointingMode", "TimeUnit", "NoSuchElementException", "JobExecutionException", "Properties",
    "milliseconds", "seconds", "minutes", "hours", "days", "of",
]


class WriteMode(str, enum.Enum):
    """``FileSystem.WriteMode`` for ``write_as_text(path, mode)``. The members are also
    equal to the strings of ``ferroflow.WriteMode``."""

    NO_OVERWRITE = "NO_OVERWRITE"
    OVERWRITE = "OVERWRITE"

    def __str__(self) -> str:
        return self.value


class TimeUnit(enum.Enum):
    """``java.util.concurrent.TimeUnit``, for ``Time.of(size, unit)``. Values are
    nanoseconds per unit."""

    NANOSECONDS = 1
    MICROSECONDS = 1_000
    MILLISECONDS = 1_000_000
    SECONDS = 1_000_000_000
    MINUTES = 60_000_000_000
    HOURS = 3_600_000_000_000
    DAYS = 86_400_000_000_000

    def toMillis(self, duration: int) -> int:
        """``duration`` of this unit in whole milliseconds (rounded down, as Java does)."""
        return int(duration) * self.value // 1_000_000


# ``org.apache.flink.streaming.api.windowing.time.Time`` was a class whose static
# methods scripts imported as plain names; here they are module-level functions.

def milliseconds(n: int) -> Time:
    """A span of ``n`` milliseconds."""
    return Time.milliseconds(n)


def seconds(n: int) -> Time:
    """A span of ``n`` seconds."""
    return Time.seconds(n)


def minutes(n: int) -> Time:
    """A span of ``n`` minutes."""
    return Time.minutes(n)


def hours(n: int) -> Time:
    """A span of ``n`` hours."""
    return Time.hours(n)


def days(n: int) -> Time:
    """A span of ``n`` days."""
    return Time.days(n)


def of(size: int, unit: TimeUnit) -> Time:
    """A span of ``size`` ``unit``s: ``of(5, TimeUnit.SECONDS)``."""
    if not isinstance(unit, TimeUnit):
        raise TypeError(f"Time.of() takes a java.util.concurrent.TimeUnit, got {unit!r}")
    return Time(unit.toMillis(size))
