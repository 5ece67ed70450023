"""Connected streams: ``connect(other)`` with ``map(CoMapFunction)``,
``flat_map(CoFlatMapFunction)``, ``process(CoProcessFunction)``, and
``key_by(k1, k2)`` for per-key meetings, at 1 worker, 2 threads and 2 processes."""

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferroflow import (CoFlatMapFunction, CoMapFunction, CoProcessFunction, JobExecutionException,
                       KeyedCoProcessFunction, BroadcastProcessFunction)
from ferroflow.testing import TestSource, Timestamped, Watermark
from conftest import JOB_SETTINGS, bag, make_env, run


class Tag(CoMapFunction):
    def map1(self, value):
        return ("first", value)

    def map2(self, value):
        return ("second", value)


def test_map_calls_map1_for_the_first_stream_and_map2_for_the_second(env, parallelism):
    first = env.from_collection([1, 2, 3])
    second = env.from_collection(["a", "b"])
    out = run(env, first.connect(second).map(Tag()))
    assert bag(out) == bag([("first", 1), ("first", 2), ("first", 3), ("second", "a"), ("second", "b")])
    # Each input's order is kept (one reader per input here: parallelism 1).
    if parallelism == 1:
        assert [v for s, v in out if s == "first"] == [1, 2, 3]


class Split(CoFlatMapFunction):
    def flat_map1(self, value):
        yield from value.split()

    def flat_map2(self, value):
        return [value] * value if value > 0 else None


class JavaStyle(CoFlatMapFunction):
    def flatMap1(self, value, collector):
        collector.collect(value.upper())

    def flatMap2(self, value, collector):
        for _ in range(value):
            collector.collect(value)


@pytest.mark.parametrize("func, want", [(Split(), ["a", "b", "c", 2, 2]), (JavaStyle(), ["A B", "C", 2, 2])],
                         ids=["modern", "collector"])
def test_flat_map_emits_what_each_method_yields(env, parallelism, func, want):
    out = run(env, env.from_collection(["a b", "c"]).connect(env.from_collection([2, 0])).flat_map(func))
    assert bag(out) == bag(want)


class Join(CoFlatMapFunction):
    """The usual keyed co-flat-map: remembers one side's value per key for the other."""

    def open(self, runtime_context):
        self.index = runtime_context.get_index_of_this_subtask()
        self.names = {}
        self.pending = {}

    def flat_map1(self, value):
        user, name = value
        self.names[user] = name
        for amount in self.pending.pop(user, []):
            yield (name, amount, self.index)

    def flat_map2(self, value):
        user, amount = value
        if user in self.names:
            yield (self.names[user], amount, self.index)
        else:
            self.pending.setdefault(user, []).append(amount)


def test_key_by_brings_each_keys_records_of_both_inputs_to_one_worker(env, parallelism):
    users = [(u, f"name{u}") for u in range(12)]
    payments = [(u % 12, amount) for u, amount in enumerate(range(100, 160))]
    connected = env.from_collection(users).connect(env.generate_sequence(0, 59).map(lambda i: payments[i]))
    out = run(env, connected.key_by(lambda u: u[0], lambda p: p[0]).flat_map(Join()))
    assert bag((n, a) for n, a, _ in out) == bag((f"name{u}", a) for u, a in payments)
    workers = {}
    for name, _, index in out:
        assert workers.setdefault(name, index) == index, f"{name} on two workers"
    if parallelism > 1:
        assert len(set(workers.values())) == parallelism


def test_connecting_two_keyed_streams_keys_the_connection(env, parallelism):
    first = env.from_collection([(u, f"name{u}") for u in range(8)]).key_by(lambda u: u[0])
    second = env.from_collection([(u % 8, u) for u in range(40)]).key_by(0)
    out = run(env, first.connect(second).flat_map(Join()))
    assert bag((n, a) for n, a, _ in out) == bag((f"name{u % 8}", u) for u in range(40))


class Stamps(CoProcessFunction):
    def process_element1(self, value, ctx):
        yield ("first", value, ctx.timestamp(), ctx.timer_service().current_watermark())

    def process_element2(self, value, ctx):
        yield ("second", value, ctx.timestamp(), ctx.timer_service().current_watermark())


def test_process_sees_timestamps_and_the_least_watermark_of_both_inputs(env, parallelism):
    first = env.add_source(TestSource([Timestamped("a", 10), Watermark(100), Timestamped("b", 150),
                                       Watermark(1000), Timestamped("c", 1001)]))
    second = env.add_source(TestSource([Timestamped("x", 5), Watermark(50), Timestamped("y", 60), ("z",)]))
    out = run(env, first.connect(second).process(Stamps()))
    assert {(s, v, ts) for s, v, ts, _ in out} == {
        ("first", "a", 10), ("first", "b", 150), ("first", "c", 1001),
        ("second", "x", 5), ("second", "y", 60), ("second", ("z",), None)}
    for side, value, ts, watermark in out:
        # Never past either input's watermark: the second's stays at 50 until it ends.
        assert watermark < 1000 or value == "c"
        if value in ("a", "x"):
            assert watermark == -2**63


class Echo(CoProcessFunction):
    def process_element1(self, value, ctx):
        yield value

    def process_element2(self, value, ctx):
        return [value, value]


def test_outputs_carry_their_inputs_timestamp(env, parallelism):
    """A timestamp-reading process after the connection sees each input's stamp."""
    first = env.add_source(TestSource([Timestamped(1, 111)]))
    second = env.add_source(TestSource([Timestamped(2, 222)]))

    class Read(CoProcessFunction):
        def process_element1(self, value, ctx):
            yield (value, ctx.timestamp())

        def process_element2(self, value, ctx):
            yield (value, ctx.timestamp())
    stamped = first.connect(second).process(Echo())
    out = run(env, stamped.connect(env.from_collection([])).process(Read()))
    assert sorted(out) == [(1, 111), (2, 222), (2, 222)]


class Timers(CoProcessFunction):
    def process_element1(self, value, ctx):
        ctx.timer_service().register_event_time_timer(5)

    def process_element2(self, value, ctx):
        return None


def test_timers_on_a_plain_connection_are_a_clear_error(env, parallelism):
    env.from_collection([1]).connect(env.from_collection([2])).process(Timers()).add_sink(lambda x: None)
    with pytest.raises(JobExecutionException) as info:
        env.execute()
    text = str(info.value)
    assert "co_process 'Timers'" in text and "timers are only available on keyed streams" in text


class Fails(CoMapFunction):
    def map1(self, value):
        return value

    def map2(self, value):
        raise ValueError(f"cannot take {value}")


def test_an_error_names_the_operator_the_record_and_the_traceback(env, parallelism):
    env.from_collection([1]).connect(env.from_collection(["boom"])).map(Fails()).add_sink(lambda x: None)
    with pytest.raises(JobExecutionException) as info:
        env.execute()
    text = str(info.value)
    assert "co_map 'Fails' (test_api_connect.py:" in text
    assert "'boom'" in text and "ValueError: cannot take boom" in text and "in map2" in text


def test_functions_are_checked_at_the_call(env):
    connected = env.from_collection([1]).connect(env.from_collection([2]))
    with pytest.raises(TypeError, match=r"map\(\) takes a CoMapFunction \(an object with map1\(value\) and map2"):
        connected.map(lambda x: x)
    with pytest.raises(TypeError, match="CoFlatMapFunction"):
        connected.flat_map(Tag())
    with pytest.raises(TypeError, match="pass an instance"):
        connected.map(Tag)
    with pytest.raises(TypeError, match="CoProcessFunction"):
        connected.process(Tag())
    with pytest.raises(TypeError, match="key_by"):
        connected.process(KeyedCoProcessFunction())
    with pytest.raises(TypeError, match="process_element1"):
        connected.key_by(lambda x: x, lambda x: x).process(KeyedCoProcessFunction())
    with pytest.raises(TypeError, match=r"connect\(other.broadcast\(map_state_descriptor\)\)"):
        connected.process(BroadcastProcessFunction())
    with pytest.raises(TypeError, match="same environment"):
        env.from_collection([1]).connect([2])


class Shared(CoMapFunction):
    """map1 and map2 share one object per worker."""

    def __init__(self):
        self.seen = 0

    def map1(self, value):
        self.seen += 1
        return self.seen

    def map2(self, value):
        self.seen += 1
        return self.seen


def test_both_methods_share_one_object():
    env = make_env(1)
    out = run(env, env.from_collection([1, 2]).connect(env.from_collection([3, 4])).map(Shared()))
    assert sorted(out) == [1, 2, 3, 4]


@JOB_SETTINGS
@given(lefts=st.lists(st.tuples(st.integers(0, 5), st.integers()), max_size=30),
       rights=st.lists(st.tuples(st.integers(0, 5), st.text(max_size=3)), max_size=30))
def test_keyed_co_flat_map_matches_a_model(parallelism, lefts, rights):
    """Per key, every output of side 2 sees exactly the side-1 records of its key that
    the function saw before it; counted per key, the totals match a model."""
    env = make_env(parallelism)

    class Count(CoFlatMapFunction):
        def open(self, runtime_context):
            self.counts = Counter()

        def flat_map1(self, value):
            self.counts[value[0]] += 1
            return [("L", value[0], self.counts[value[0]])]

        def flat_map2(self, value):
            return [("R", value[0], value[1])]
    out = run(env, env.from_collection(lefts).connect(env.from_collection(rights))
              .key_by(lambda t: t[0], lambda t: t[0]).flat_map(Count()))
    per_key_max = {}
    for side, k, n in out:
        if side == "L":
            per_key_max[k] = max(per_key_max.get(k, 0), n)
    assert per_key_max == dict(Counter(k for k, _ in lefts))
    assert bag((k, v) for s, k, v in out if s == "R") == bag(rights)
