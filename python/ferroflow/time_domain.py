"""``TimeDomain``: which clock fired a timer (as ``pyflink.datastream.time_domain``)."""

from __future__ import annotations

import enum

__all__ = ["TimeDomain"]


class TimeDomain(enum.Enum):
    """The clock a timer follows: ``EVENT_TIME`` (the watermark) or ``PROCESSING_TIME``
    (the wall clock, or a ``TestSource``'s manual clock)."""

    EVENT_TIME = 0
    PROCESSING_TIME = 1
