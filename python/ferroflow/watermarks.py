"""Event time: where records' timestamps come from and how far behind them the
watermark stays (``WatermarkStrategy``), and which clock ``time_window`` follows
(``TimeCharacteristic``).

A watermark ``t`` says "no record with a timestamp at or below ``t`` is still to come";
event-time windows fire when it passes their end. Timestamps and watermarks are
milliseconds (ints).
"""

from __future__ import annotations

import enum

from ._nodes import AssignTimestamps
from ._plan import Udf, label_of, positional_arity, stub
from .functions import Function
from .windowing import to_millis

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, Union

    from .windowing import TimeSpan

__all__ = ["TimeCharacteristic", "TimestampAssigner", "WatermarkStrategy"]


class TimeCharacteristic(enum.Enum):
    """The clock ``time_window``/``time_window_all`` use, set with
    ``env.set_stream_time_characteristic``. ``ProcessingTime`` is the default (as in
    the Flink releases our legacy jobs were written for); ``IngestionTime`` is not
    supported."""

    ProcessingTime = "processing_time"
    IngestionTime = "ingestion_time"
    EventTime = "event_time"


class TimestampAssigner(Function):
    """Gives each record its event timestamp: implement ``extract_timestamp(value,
    record_timestamp)`` returning milliseconds (an int). ``record_timestamp`` is the
    timestamp the record already has, ``-2**63`` if none."""

    @stub
    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        raise NotImplementedError("implement extract_timestamp(value, record_timestamp)")


def _with_record_timestamp(extract: Callable) -> Callable:
    """An assigner taking only ``(value)`` gets called without the record's timestamp."""
    if positional_arity(extract) == 1:
        return lambda value, record_timestamp: extract(value)
    return extract


class WatermarkStrategy:
    """How a stream's timestamps and watermarks are made; pass it to
    ``assign_timestamps_and_watermarks`` or ``env.from_source``. Immutable: the
    ``with_*`` methods return a new strategy.

    Watermarks are made on each worker from the records it sees (after every batch):
    the highest timestamp so far, minus the allowed out-of-orderness, minus 1 ms."""

    __slots__ = ("_watermarks", "_max_out_of_orderness", "_assigner", "_idleness", "_field")

    def __init__(self, watermarks: str, max_out_of_orderness: int = 0, assigner: Any = None,
                 idleness: Optional[int] = None, field: Union[int, str, None] = None) -> None:
        # Use the static factories; this constructor is the strategies' common copy path.
        self._watermarks = watermarks
        self._max_out_of_orderness = max_out_of_orderness
        self._assigner = assigner
        self._idleness = idleness
        self._field = field

    @staticmethod
    def for_bounded_out_of_orderness(max_out_of_orderness: TimeSpan) -> "WatermarkStrategy":
        """Records may come up to ``max_out_of_orderness`` later than a record with a
        higher timestamp; the watermark stays that far behind the highest timestamp."""
        ms = to_millis(max_out_of_orderness, "for_bounded_out_of_orderness(): the out-of-orderness", minimum=0)
        return WatermarkStrategy("bounded", ms)

    @staticmethod
    def for_monotonous_timestamps() -> "WatermarkStrategy":
        """Timestamps only grow: the watermark follows the highest timestamp (minus 1 ms)."""
        return WatermarkStrategy("monotonous")

    @staticmethod
    def no_watermarks() -> "WatermarkStrategy":
        """Timestamps but no watermarks: event-time windows fire only at the end of a
        bounded input."""
        return WatermarkStrategy("none")

    def _replace(self, **changes: Any) -> "WatermarkStrategy":
        fields: Dict[str, Any] = {"watermarks": self._watermarks, "max_out_of_orderness": self._max_out_of_orderness,
                                  "assigner": self._assigner, "idleness": self._idleness, "field": self._field}
        fields.update(changes)
        return WatermarkStrategy(**fields)

    def with_timestamp_assigner(self, timestamp_assigner: Any) -> "WatermarkStrategy":
        """Where timestamps come from: a ``TimestampAssigner``, or a function of
        ``(value)`` or ``(value, record_timestamp)`` returning milliseconds. Without
        one, records keep the timestamps they have (e.g. from a ``TestSource``)."""
        _timestamp_udf(timestamp_assigner)  # fails here, at the user's call, if unusable
        return self._replace(assigner=timestamp_assigner, field=None)

    def with_timestamp_field(self, field: Union[int, str]) -> "WatermarkStrategy":
        """Timestamps read from a field of each record (an int index of a tuple or
        list, or a str key of a dict), in milliseconds: like ``key_by(0)``, it runs in
        Rust with no Python call per record (a ferroflow extension; PyFlink has only
        ``with_timestamp_assigner``)."""
        from ._aggregations import check_field

        return self._replace(assigner=None, field=check_field(field, "with_timestamp_field()", whole_ok=False))

    def with_idleness(self, idle_timeout: TimeSpan) -> "WatermarkStrategy":
        """A worker that saw no record for ``idle_timeout`` (processing time) stops
        holding the watermark back until records come again."""
        return self._replace(idleness=to_millis(idle_timeout, "with_idleness(): the idle timeout"))

    def _kind(self) -> AssignTimestamps:
        """The ``assign_timestamps`` node's kind (a fresh ``Udf`` per node, so that a
        strategy used twice gives each operator its own copies)."""
        bound = {"none": None, "monotonous": 0, "bounded": self._max_out_of_orderness}[self._watermarks]
        return AssignTimestamps(_timestamp_udf(self._assigner) if self._assigner is not None else None,
                                self._field, bound, self._idleness)

    def _label(self) -> str:
        what = {"bounded": f"bounded {self._max_out_of_orderness} ms", "monotonous": "monotonous",
                "none": "no watermarks"}[self._watermarks]
        if self._assigner is not None:
            what = f"{label_of(self._assigner)}, {what}"
        elif self._field is not None:
            what = f"field {self._field!r}, {what}"
        return what

    def __repr__(self) -> str:
        return f"WatermarkStrategy({self._label()}" + (f", idleness {self._idleness} ms)" if self._idleness else ")")


def _timestamp_udf(assigner: Any) -> Udf:
    return Udf(assigner, ("extract_timestamp", "extractTimestamp"), wrap=_with_record_timestamp)
