"""Broadcast state (issue 12 part D): ``stream.broadcast(MapStateDescriptor)``,
``connect(broadcast_stream).process(BroadcastProcessFunction)`` and, on a keyed stream,
``KeyedBroadcastProcessFunction`` with keyed state and timers. Every worker sees every
broadcast element, so each keeps the same broadcast state; ``process_element`` may only
read it. Time is driven by ``TestSource`` (records of both inputs in watermark order);
every test runs at 1 worker, 2 threads and 2 processes."""

from __future__ import annotations

import pytest

from ferroflow import (BroadcastProcessFunction, JobExecutionException, KeyedBroadcastProcessFunction,
                       MapStateDescriptor, ValueStateDescriptor)
from ferroflow.testing import TestSource, Timestamped, Watermark

from conftest import bag, collect, run

LIMITS = MapStateDescriptor("limits")


class Limit(BroadcastProcessFunction):
    """Items above the limit their kind has in the broadcast state pass."""

    def open(self, runtime_context):
        self.worker = runtime_context.get_index_of_this_subtask()

    def process_element(self, value, ctx):
        kind, amount = value
        limit = ctx.get_broadcast_state(LIMITS).get(kind)
        if limit is not None and amount > limit:
            yield value, ctx.timestamp()

    def process_broadcast_element(self, value, ctx):
        kind, limit = value
        ctx.get_broadcast_state(LIMITS).put(kind, limit)
        yield ("rule", self.worker, kind, limit)


def test_every_worker_keeps_the_broadcast_state_and_filters_with_it(env, parallelism):
    rules = env.add_source(TestSource([Timestamped(("a", 5), 1), Timestamped(("b", 1), 2), Watermark(20),
                                       Timestamped(("a", 2), 25), Watermark(40)]))
    items = env.add_source(TestSource([Watermark(10), Timestamped(("a", 3), 11), Timestamped(("a", 7), 12),
                                       Timestamped(("b", 2), 13), Timestamped(("c", 9), 14), Watermark(30),
                                       Timestamped(("a", 3), 31), Watermark(40)]))
    out = run(env, items.connect(rules.broadcast(LIMITS)).process(Limit()))
    # Each rule reached every worker once.
    got_rules = [r for r in out if r[0] == "rule"]
    assert bag(got_rules) == bag(("rule", w, k, n) for w in range(parallelism) for k, n in
                                 [("a", 5), ("b", 1), ("a", 2)])
    # Items sent under watermark 10 saw the first two rules (sent before any); the one
    # sent under 30 also saw a's new limit (sent under 20).
    assert bag(r for r in out if r[0] != "rule") == bag([(("a", 7), 12), (("b", 2), 13), (("a", 3), 31)])


class Writer(BroadcastProcessFunction):
    def process_element(self, value, ctx):
        ctx.get_broadcast_state(LIMITS).put("x", value)
        yield value

    def process_broadcast_element(self, value, ctx):
        return ()


def test_writing_broadcast_state_from_process_element_fails_the_job(env):
    rules = env.from_collection([("a", 1)])
    collect(env.from_collection([1, 2]).connect(rules.broadcast(LIMITS)).process(Writer()).name("writer"))
    with pytest.raises(JobExecutionException) as info:
        env.execute("read-only")
    text = str(info.value) + info.value.detail
    assert "writer" in text and "read-only" in text and "'limits'" in text


class Unknown(BroadcastProcessFunction):
    def process_element(self, value, ctx):
        ctx.get_broadcast_state(MapStateDescriptor("other"))
        return ()

    def process_broadcast_element(self, value, ctx):
        return ()


def test_an_undeclared_descriptor_is_an_error_naming_the_declared_ones(env):
    rules = env.from_collection([("a", 1)])
    collect(env.from_collection([1]).connect(rules.broadcast(LIMITS)).process(Unknown()))
    with pytest.raises(JobExecutionException) as info:
        env.execute("unknown")
    assert "not a descriptor given to broadcast()" in str(info.value) + info.value.detail


def test_broadcast_takes_map_state_descriptors_and_functions_are_checked_at_the_call(env):
    stream = env.from_collection([1])
    with pytest.raises(TypeError, match="MapStateDescriptor"):
        stream.broadcast(ValueStateDescriptor("v"))
    connected = stream.connect(env.from_collection([2]).broadcast(LIMITS))
    with pytest.raises(TypeError, match="needs a keyed stream"):
        connected.process(Keyed())
    with pytest.raises(TypeError, match="process_broadcast_element"):
        connected.process(lambda value, ctx: [value])


class Keyed(KeyedBroadcastProcessFunction):
    """Counts each key's items in keyed state; an event-time timer 15 ms after each
    item reports the count with the key's limit (read-only broadcast state)."""

    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, value, ctx):
        self.count.update((self.count.value() or 0) + 1)
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 15)
        return ()

    def process_broadcast_element(self, value, ctx):
        ctx.get_broadcast_state(LIMITS).put(*value)
        return ()

    def on_timer(self, timestamp, ctx):
        key = ctx.get_current_key()
        yield key, timestamp, self.count.value(), ctx.get_broadcast_state(LIMITS).get(key)


def test_keyed_broadcast_has_keyed_state_timers_and_the_broadcast_state(env):
    rules = env.add_source(TestSource([Timestamped(("a", 5), 1), Watermark(50), Timestamped(("a", 6), 55),
                                       Watermark(100)]))
    items = env.add_source(TestSource([Timestamped(("a", 0), 10), Timestamped(("b", 0), 12), Watermark(30),
                                       Timestamped(("a", 0), 40), Watermark(100)]))
    keyed = items.key_by(lambda r: r[0])
    out = run(env, keyed.connect(rules.broadcast(LIMITS)).process(Keyed()))
    # Timers at 25 and 27 fire before the item sent under watermark 30 and before the
    # rule sent under 50 changed a's limit; a's timer at 55 fires after that rule.
    assert bag(out) == bag([("a", 25, 1, 5), ("b", 27, 1, None), ("a", 55, 2, 6)])


class TouchesKeyedState(KeyedBroadcastProcessFunction):
    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, value, ctx):
        return ()

    def process_broadcast_element(self, value, ctx):
        self.count.value()
        return ()


def test_keyed_state_is_out_of_reach_of_broadcast_elements(env):
    rules = env.from_collection([("a", 1)])
    keyed = env.from_collection([("a", 0)]).key_by(lambda r: r[0])
    collect(keyed.connect(rules.broadcast(LIMITS)).process(TouchesKeyedState()))
    with pytest.raises(JobExecutionException) as info:
        env.execute("keyed state on the broadcast side")
    assert "not in process_broadcast_element" in str(info.value) + info.value.detail
