"""Keyed state (issue 12 part B) through a KeyedProcessFunction: the five kinds with
their full method sets, isinstance against ``ferroflow.state``'s interfaces, and
time-to-live on the manual processing-time clock of ``ferroflow.testing.TestSource``.
Every test runs at 1 worker, 2 threads and 2 processes (the ``env`` fixture)."""

from __future__ import annotations

import pytest

from ferroflow import (AggregateFunction, AggregatingStateDescriptor, FilterFunction, FlatMapFunction,
                       KeyedProcessFunction, ListStateDescriptor, MapFunction, MapStateDescriptor, ReduceFunction,
                       ReducingStateDescriptor, StateTtlConfig, Time, ValueStateDescriptor, JobExecutionException)
from ferroflow.state import AggregatingState, ListState, MapState, ReducingState, ValueState
from ferroflow.testing import ProcessingTime, TestSource

from conftest import bag, collect, run


class Average(AggregateFunction):
    def create_accumulator(self):
        return (0, 0)

    def add(self, value, accumulator):
        return (accumulator[0] + value, accumulator[1] + 1)

    def get_result(self, accumulator):
        return accumulator[0] / accumulator[1]

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])


class AllKinds(KeyedProcessFunction):
    """Runs the operation each record names on its key's state and yields
    (key, operation, result)."""

    def open(self, runtime_context):
        self.value = runtime_context.get_state(ValueStateDescriptor("value"))
        self.list = runtime_context.get_list_state(ListStateDescriptor("list"))
        self.map = runtime_context.get_map_state(MapStateDescriptor("map"))
        self.reducing = runtime_context.get_reducing_state(ReducingStateDescriptor("sum", lambda a, b: a + b))
        self.aggregating = runtime_context.get_aggregating_state(AggregatingStateDescriptor("avg", Average()))
        # The same descriptor name and kind twice is the same state (Flink's get_state).
        self.value_again = runtime_context.get_state(ValueStateDescriptor("value"))

    def process_element(self, record, ctx):
        key, op, arg = record
        s = {"value": self.value, "list": self.list, "map": self.map, "sum": self.reducing,
             "avg": self.aggregating}[op.split(".")[0]]
        method = op.split(".")[1]
        if method == "types":
            result = [isinstance(self.value, ValueState), isinstance(self.list, ListState),
                      isinstance(self.map, MapState), isinstance(self.reducing, ReducingState),
                      isinstance(self.aggregating, AggregatingState)]
        elif method == "again":
            result = self.value_again.value()
        elif method == "iter":
            result = list(s)
        elif method == "getitem":
            result = s[arg]
        elif method == "setitem":
            s[arg[0]] = arg[1]
            result = None
        elif method == "delitem":
            del s[arg]
            result = None
        elif method == "in":
            result = arg in s
        elif arg is None:
            result = getattr(s, method)()
        else:
            result = getattr(s, method)(arg)
        if op in ("list.get", "map.keys", "map.values", "map.items"):
            result = list(result)
        yield key, op, result


OPS = [
    ("value.value", None, None), ("value.update", 5, None), ("value.value", None, 5), ("value.again", None, 5),
    ("value.clear", None, None), ("value.value", None, None),
    ("list.get", None, []), ("list.add", 1, None), ("list.add_all", [2, 3], None), ("list.get", None, [1, 2, 3]),
    ("list.iter", None, [1, 2, 3]), ("list.update", [9], None), ("list.get", None, [9]), ("list.clear", None, None),
    ("list.get", None, []),
    ("map.is_empty", None, True), ("map.put", ("x", 1), None), ("map.put_all", {"y": 2, 3: "three"}, None),
    ("map.get", "x", 1), ("map.get", "nope", None), ("map.contains", "y", True), ("map.contains", "z", False),
    ("map.in", 3.0, True), ("map.getitem", 3, "three"), ("map.setitem", ("z", 26), None),
    ("map.keys", None, None), ("map.remove", "x", None), ("map.delitem", "y", None),
    # In the order of the keys' encodings (the same on every worker and process).
    ("map.items", None, [("z", 26), (3, "three")]), ("map.values", None, [26, "three"]),
    ("map.is_empty", None, False), ("map.clear", None, None), ("map.is_empty", None, True),
    ("sum.get", None, None), ("sum.add", 4, None), ("sum.add", 6, None), ("sum.get", None, 10),
    ("sum.clear", None, None), ("sum.get", None, None),
    ("avg.get", None, None), ("avg.add", 1, None), ("avg.add", 2, None), ("avg.get", None, 1.5),
    ("avg.clear", None, None), ("avg.get", None, None),
    ("value.types", None, [True] * 5),
]


class Ops(AllKinds):
    """``map.put`` takes two arguments: the record carries them as a pair."""

    def process_element(self, record, ctx):
        key, op, arg = record
        if op == "map.put":
            self.map.put(*arg)
            yield key, op, None
            return
        yield from super().process_element(record, ctx)


def test_every_state_kind_and_method_per_key(env):
    records = [(key, op, arg) for key in ("k1", "k2") for op, arg, _ in OPS]
    out = run(env, env.from_collection(records).key_by(lambda r: r[0]).process(Ops()))
    by_key = {k: [r for r in out if r[0] == k] for k in ("k1", "k2")}
    for key in ("k1", "k2"):
        got = {}
        for _k, op, result in by_key[key]:
            got.setdefault(op, []).append(result)
        want = {}
        for op, _arg, result in OPS:
            want.setdefault(op, []).append(result)
        # map.keys: the order of the keys' encodings, checked as a set.
        got_keys = got.pop("map.keys")
        want.pop("map.keys")
        assert [sorted(map(repr, k)) for k in got_keys] == [sorted(map(repr, ["x", "y", 3, "z"]))]
        assert got == want, key


def ttl(ms, *, on_read=False, return_expired=False):
    builder = StateTtlConfig.new_builder(Time.milliseconds(ms))
    if on_read:
        builder = builder.update_ttl_on_read_and_write()
    if return_expired:
        # Background (incremental) cleanup would remove it before the read sees it.
        builder = builder.return_expired_if_not_cleaned_up().disable_cleanup_in_background()
    return builder.build()


class TtlValues(KeyedProcessFunction):
    """('w', v) writes, ('r', _) reads the three TTL flavours' values."""

    def open(self, runtime_context):
        plain = ValueStateDescriptor("write")
        plain.enable_time_to_live(ttl(100))
        on_read = ValueStateDescriptor("read")
        on_read.enable_time_to_live(ttl(100, on_read=True))
        expired = ListStateDescriptor("expired")
        expired.enable_time_to_live(ttl(100, return_expired=True))
        self.states = [runtime_context.get_state(plain), runtime_context.get_state(on_read),
                       runtime_context.get_list_state(expired)]

    def process_element(self, record, ctx):
        _key, op, v = record
        now = ctx.timer_service().current_processing_time()
        if op == "w":
            self.states[0].update(v)
            self.states[1].update(v)
            self.states[2].add(v)
            return
        yield now, self.states[0].value(), self.states[1].value(), list(self.states[2].get())


def test_time_to_live_on_the_manual_clock(env):
    k = "key"
    stream = env.add_source(TestSource([
        (k, "w", 1),                    # written at 0
        ProcessingTime(80), (k, "r", 0),  # alive; the on-read state restarts at 80
        ProcessingTime(150), (k, "r", 0),  # on-write ones expired at 100 (the list returns it once)
        ProcessingTime(179), (k, "r", 0),  # on-read still alive (restarted at 150)
        ProcessingTime(400), (k, "r", 0),  # all expired
    ], processing_time_start=0))
    out = run(env, stream.key_by(lambda r: r[0]).process(TtlValues()))
    assert out == [(80, 1, 1, [1]), (150, None, 1, [1]), (179, None, 1, []), (400, None, None, [])]


class CountingMap(MapFunction):
    def open(self, runtime_context):
        self.seen = runtime_context.get_state(ValueStateDescriptor("seen"))

    def map(self, value):
        n = (self.seen.value() or 0) + 1
        self.seen.update(n)
        return value, n


class FirstTwo(FilterFunction):
    def open(self, runtime_context):
        self.seen = runtime_context.get_state(ValueStateDescriptor("seen"))

    def filter(self, value):
        n = (self.seen.value() or 0) + 1
        self.seen.update(n)
        return n <= 2


class Distinct(FlatMapFunction):
    def open(self, runtime_context):
        self.seen = runtime_context.get_map_state(MapStateDescriptor("seen"))

    def flat_map(self, value):
        if value not in self.seen:
            self.seen[value] = True
            yield value


def test_keyed_state_in_map_filter_and_flat_map(env):
    words = ["a", "b", "a", "a", "c", "b"]
    keyed = env.from_collection(words).key_by(lambda w: w)
    counted = collect(keyed.map(CountingMap()))
    kept = collect(keyed.filter(FirstTwo()))
    distinct = collect(env.from_collection([(1, "x"), (1, "x"), (2, "x"), (1, "y")]).key_by(lambda r: r[0])
                       .flat_map(Distinct()))
    env.execute("keyed state in steps")
    assert bag(counted) == bag([("a", 1), ("b", 1), ("a", 2), ("a", 3), ("c", 1), ("b", 2)])
    assert bag(kept) == bag(["a", "b", "a", "c", "b"])
    assert bag(distinct) == bag([(1, "x"), (2, "x"), (1, "y")])


class SumAndCount(ReduceFunction):
    """A rolling sum that also counts, per key, how many records it reduced."""

    def open(self, runtime_context):
        self.calls = runtime_context.get_state(ValueStateDescriptor("calls"))

    def reduce(self, value1, value2):
        calls = (self.calls.value() or 0) + 1
        self.calls.update(calls)
        return value1[0], value1[1] + value2[1], calls


def test_keyed_state_in_a_rolling_reduce(env):
    records = [("a", 1, 0), ("b", 10, 0), ("a", 2, 0), ("a", 3, 0), ("b", 20, 0)]
    out = run(env, env.from_collection(records).key_by(lambda r: r[0]).reduce(SumAndCount()))
    assert bag(out) == bag([("a", 1, 0), ("b", 10, 0), ("a", 3, 1), ("a", 6, 2), ("b", 30, 1)])


class BadMap(MapFunction):
    def open(self, runtime_context):
        self.seen = runtime_context.get_state(ValueStateDescriptor("seen"))

    def map(self, value):
        raise ValueError("bad map")


def test_a_stateful_map_keeps_its_name_in_errors(env):
    collect(env.from_collection([1]).key_by(lambda v: v).map(BadMap()))
    with pytest.raises(JobExecutionException) as info:
        env.execute("bad map")
    assert "map 'BadMap'" in str(info.value) and "key 1" in str(info.value) + info.value.detail
