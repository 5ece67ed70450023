"""The interval join of two keyed streams (Flink's Java API; PyFlink lacks it):
``left.interval_join(right).between(lower, upper).process(ProcessJoinFunction)`` (the
builders, ``IntervalJoin`` and ``IntervalJoined``, are in ``ferroflow.datastream``) calls
``process_element(l, r, ctx)`` for each pair of one key with
``l.ts + lower <= r.ts <= l.ts + upper`` (``lower_bound_exclusive()`` /
``upper_bound_exclusive()`` make a bound strict). Event time only: records without a
timestamp fail the job, records behind the watermark are dropped (as in Flink).

Built on ``connect(...).key_by(...).process(KeyedCoProcessFunction)``: each side's
records wait in a keyed ``MapState`` (timestamp -> records) until the watermark passes
the last timestamp the other side could still match them at; an event-time timer then
removes them (one ms after Flink would, so that a record sent exactly at the watermark
still finds its pairs). A pair's timestamp is the larger of the two: a pair found when its later
record arrives goes out at once (that record's timestamp); one whose buffered record is
the later goes out when the watermark reaches that timestamp (a timer at it), since the
process operator stamps outputs with the current record's or timer's time.
"""

from __future__ import annotations

from ._errors import FerroflowError
from .functions import KeyedCoProcessFunction, ProcessJoinFunction, _ProcessJoinContext
from .state import MapStateDescriptor

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, List, Optional

class _JoinContext(_ProcessJoinContext):
    __slots__ = ("left", "right")

    def __init__(self) -> None:
        self.left = 0
        self.right = 0

    def get_left_timestamp(self) -> int:
        return self.left

    def get_right_timestamp(self) -> int:
        return self.right

    def timestamp(self) -> int:
        return max(self.left, self.right)

    getLeftTimestamp = get_left_timestamp
    getRightTimestamp = get_right_timestamp
    get_timestamp = timestamp


_LEFT, _RIGHT, _DUE = "__ferroflow_join_left__", "__ferroflow_join_right__", "__ferroflow_join_due__"


class _IntervalJoinFunction(KeyedCoProcessFunction):
    """The join as a keyed co-process function (see the module doc); ``lower`` and
    ``upper`` are inclusive bounds in ms."""

    def __init__(self, fn: Any, lower: int, upper: int) -> None:
        self.fn = fn
        self.lower = lower
        self.upper = upper
        self.call: Optional[Callable] = None
        self.ctx = _JoinContext()
        self._resolve(fn)  # fail at the call

    @staticmethod
    def _resolve(fn: Any) -> Callable:
        from ._plan import find_method

        call = find_method(fn, ("process_element", "processElement"))
        if call is None:
            if isinstance(fn, ProcessJoinFunction) or not callable(fn):
                raise TypeError("interval_join(...).process() takes a ProcessJoinFunction (an object with "
                                f"process_element(left, right, ctx)) or a function, got {type(fn).__name__}")
            call = fn
        return call

    def open(self, runtime_context: Any) -> None:
        opener = getattr(self.fn, "open", None)
        if callable(opener):
            opener(runtime_context)
        self.call = self._resolve(self.fn)
        self.left = runtime_context.get_map_state(MapStateDescriptor(_LEFT))
        self.right = runtime_context.get_map_state(MapStateDescriptor(_RIGHT))
        # Pairs waiting for the watermark to reach their (later, buffered) timestamp.
        self.due = runtime_context.get_map_state(MapStateDescriptor(_DUE))

    def close(self) -> None:
        closer = getattr(self.fn, "close", None)
        if callable(closer):
            closer()

    def _pair(self, left: Any, right: Any, left_ts: int, right_ts: int) -> Any:
        self.ctx.left = left_ts
        self.ctx.right = right_ts
        assert self.call is not None, "opened before the first record"
        return self.call(left, right, self.ctx) or ()

    def _arrive(self, value: Any, ctx: Any, is_left: bool) -> Iterator[Any]:
        ts = ctx.timestamp()
        if ts is None:
            raise FerroflowError("interval_join() needs event-time timestamps: assign them "
                                 "(assign_timestamps_and_watermarks) on both inputs")
        service = ctx.timer_service()
        if ts < service.current_watermark():
            return  # late: its pairs may have been cleaned up already (Flink drops it too)
        mine, other = (self.left, self.right) if is_left else (self.right, self.left)
        mine.put(ts, (mine.get(ts) or []) + [value])
        # The other side's timestamps that pair with ts: [ts + lower, ts + upper] seen
        # from the left, [ts - upper, ts - lower] from the right.
        low, high = (ts + self.lower, ts + self.upper) if is_left else (ts - self.upper, ts - self.lower)
        for other_ts, values in other.items():
            if low <= other_ts <= high:
                for o in values:
                    pair = (value, o, ts, other_ts) if is_left else (o, value, other_ts, ts)
                    if other_ts <= ts:
                        yield from self._pair(*pair)
                    else:
                        self.due.put(other_ts, (self.due.get(other_ts) or []) + [pair])
                        service.register_event_time_timer(other_ts)
        # Once the watermark is past the last timestamp the other side could pair with
        # this record at (a record sent at the watermark is not late), it goes.
        service.register_event_time_timer(max(high, ts) + 1)

    def process_element1(self, value: Any, ctx: Any) -> Iterator[Any]:
        return self._arrive(value, ctx, True)

    def process_element2(self, value: Any, ctx: Any) -> Iterator[Any]:
        return self._arrive(value, ctx, False)

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        pairs: List[Any] = self.due.get(timestamp) or []
        if pairs:
            self.due.remove(timestamp)
            for pair in pairs:
                yield from self._pair(*pair)
        # Drop what the watermark (now at timestamp) leaves nothing to pair with.
        for ts in [t for t in self.left if max(t + self.upper, t) + 1 <= timestamp]:
            self.left.remove(ts)
        for ts in [t for t in self.right if max(t - self.lower, t) + 1 <= timestamp]:
            self.right.remove(ts)

