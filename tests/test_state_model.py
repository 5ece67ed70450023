"""Property tests (hypothesis): a KeyedProcessFunction with a ValueState, a ListState,
a TTL'd ValueState and event-time timers, against a plain-Python model of keyed state,
timers and time-to-live, on streams the ``TestSource`` drives exactly (records,
watermarks, manual processing time). At 1 worker, 2 threads and 2 processes (the
``parallelism`` fixture). Compared per key: a key's outputs come in order from one
worker, while different keys' outputs interleave freely."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferroflow import KeyedProcessFunction, ListStateDescriptor, StateTtlConfig, Time, ValueStateDescriptor
from ferroflow.testing import ProcessingTime, TestSource, Timestamped, Watermark

from conftest import collect, make_env

TTL_MS = 30
TIMER_AFTER = 100


class Modelled(KeyedProcessFunction):
    """Per record (key, value, action): counts, appends to a list, writes the TTL'd
    value, and registers ("timer"), deletes ("delete") or clears ("clear")."""

    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))
        self.items = runtime_context.get_list_state(ListStateDescriptor("items"))
        last = ValueStateDescriptor("last")
        last.enable_time_to_live(StateTtlConfig.new_builder(Time.milliseconds(TTL_MS)).build())
        self.last = runtime_context.get_state(last)

    def process_element(self, record, ctx):
        key, value, action = record
        service = ctx.timer_service()
        previous = self.last.value()
        self.count.update((self.count.value() or 0) + 1)
        if action == "clear":
            self.items.clear()
        else:
            self.items.add(value)
        self.last.update(value)
        if action == "timer":
            service.register_event_time_timer(ctx.timestamp() + TIMER_AFTER)
        elif action == "delete":
            service.delete_event_time_timer(ctx.timestamp() + TIMER_AFTER)
        yield key, ("record", self.count.value(), list(self.items.get()), previous)

    def on_timer(self, timestamp, ctx):
        yield ctx.get_current_key(), ("timer", timestamp, self.count.value(), list(self.items.get()))


def model(events: List[Any]) -> Dict[Any, List[Any]]:
    """What the function emits per key, by Flink's rules."""
    count: Dict[Any, int] = {}
    items: Dict[Any, List[int]] = {}
    last: Dict[Any, Tuple[int, int]] = {}  # key -> (value, processing time written)
    timers: set = set()  # (timestamp, key)
    out: Dict[Any, List[Any]] = {}
    now = 0

    def fire(upto: float) -> None:
        for ts, key in sorted((t for t in timers if t[0] <= upto), key=lambda t: (t[0], repr(t[1]))):
            timers.discard((ts, key))
            out.setdefault(key, []).append(("timer", ts, count.get(key), list(items.get(key, []))))

    for e in events:
        if isinstance(e, Watermark):
            fire(e.timestamp)
        elif isinstance(e, ProcessingTime):
            now = max(now, e.time)
        else:
            key, value, action = e.value
            written = last.get(key)
            previous = written[0] if written is not None and written[1] + TTL_MS > now else None
            count[key] = count.get(key, 0) + 1
            if action == "clear":
                items[key] = []
            else:
                items.setdefault(key, []).append(value)
            last[key] = (value, now)
            if action == "timer":
                timers.add((e.timestamp + TIMER_AFTER, key))
            elif action == "delete":
                timers.discard((e.timestamp + TIMER_AFTER, key))
            out.setdefault(key, []).append(("record", count[key], list(items[key]), previous))
    fire(float("inf"))
    return out


@st.composite
def streams(draw) -> List[Any]:
    """Records with timestamps at or after the watermark (so no timer is due when it is
    registered), rising watermarks and processing times."""
    events: List[Any] = []
    watermark, clock = 0, 0
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.sampled_from(["record", "record", "record", "watermark", "clock"]))
        if kind == "record":
            key = draw(st.sampled_from(["a", "b", "c", 7]))
            action = draw(st.sampled_from(["timer", "timer", "delete", "clear", "none"]))
            ts = watermark + draw(st.integers(0, 150))
            events.append(Timestamped((key, draw(st.integers(0, 9)), action), ts))
        elif kind == "watermark":
            watermark += draw(st.integers(1, 150))
            events.append(Watermark(watermark))
        else:
            clock += draw(st.integers(1, 40))
            events.append(ProcessingTime(clock))
    return events


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=streams())
def test_keyed_state_timers_and_ttl_match_the_model(parallelism, events):
    env = make_env(parallelism)
    stream = env.add_source(TestSource(events, processing_time_start=0))
    out = collect(stream.key_by(lambda r: r[0]).process(Modelled()))
    env.execute("model")
    got: Dict[Any, List[Any]] = {}
    for key, row in out:
        got.setdefault(key, []).append(row)
    assert got == model(events)
