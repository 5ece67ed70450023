"""Keyed state in co-map and co-flat-map functions of keyed connected streams
(``a.connect(b).key_by(k1, k2).map(CoMapFunction)``): state obtained in ``open()`` is
scoped to each record's key and shared by both inputs' records of that key, as in
Flink; checked against plain-Python models at 1 worker, 2 threads and 2 processes.
Without ``key_by`` such state is the usual "keyed stream" error at start."""

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferroflow import _nodes
from ferroflow import CoFlatMapFunction, CoMapFunction, JobExecutionException
from ferroflow.state import MapStateDescriptor, ValueStateDescriptor
from conftest import JOB_SETTINGS, bag, make_env, run


def by_first(record):
    return record[0]


class RunningCount(CoMapFunction):
    """One ValueState counter per key, bumped by the records of both inputs."""

    def open(self, runtime_context):
        self.index = runtime_context.get_index_of_this_subtask()
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def bump(self, side, value):
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        return side, value[0], value[1], n, self.index

    def map1(self, value):
        return self.bump("L", value)

    def map2(self, value):
        return self.bump("R", value)


def check_running_count(out, lefts, rights):
    """The model: each key's outputs number 1..n (n: the key's records on both
    inputs), every record goes out once, and each key stays on one worker."""
    assert bag((s, k, v) for s, k, v, _, _ in out) == bag(
        [("L", k, v) for k, v in lefts] + [("R", k, v) for k, v in rights])
    counts, workers = {}, {}
    for _, key, _, n, index in out:
        counts.setdefault(key, []).append(n)
        assert workers.setdefault(key, index) == index, f"key {key!r} on two workers"
    sizes = Counter(k for k, _ in lefts + rights)
    assert {k: sorted(ns) for k, ns in counts.items()} == {k: list(range(1, n + 1)) for k, n in sizes.items()}
    return workers


def test_value_state_counts_each_key_across_both_inputs(env, parallelism):
    lefts = [(k % 7, i) for i, k in enumerate(range(60))]
    rights = [(k % 5, -i) for i, k in enumerate(range(40))]
    connected = env.from_collection(lefts).connect(env.from_collection(rights))
    out = run(env, connected.key_by(by_first, by_first).map(RunningCount()))
    workers = check_running_count(out, lefts, rights)
    if parallelism > 1:
        assert len(set(workers.values())) == parallelism, "keys spread over every worker"
    if parallelism == 1:
        # One reader per input: each input's records of a key come in order.
        for side in "LR":
            for key in range(7):
                ns = [n for s, k, _, n, _ in out if s == side and k == key]
                assert ns == sorted(ns)


def test_connecting_two_keyed_streams_shares_state_too(env, parallelism):
    lefts = [("a", 1), ("b", 2), ("a", 3)]
    rights = [("a", 10), ("c", 20), ("b", 30), ("a", 40)]
    first = env.from_collection(lefts).key_by(by_first)
    second = env.from_collection(rights).key_by(by_first)
    check_running_count(run(env, first.connect(second).map(RunningCount())), lefts, rights)


@JOB_SETTINGS
@given(lefts=st.lists(st.tuples(st.integers(-3, 3), st.integers()), max_size=25),
       rights=st.lists(st.tuples(st.sampled_from([-3, 0, 2, 9, 1.0, True]), st.text(max_size=2)), max_size=25))
def test_value_state_count_matches_the_model(parallelism, lefts, rights):
    """Keys compare as key_by compares them (1 == 1.0 == True: one key, one count)."""
    env = make_env(parallelism)
    connected = env.from_collection(lefts).connect(env.from_collection(rights))
    out = run(env, connected.key_by(by_first, by_first).map(RunningCount()))
    check_running_count(out, lefts, rights)


class ItemCounts(CoFlatMapFunction):
    """A MapState per key (item -> times seen), fed by both inputs: the first input's
    records name one item, the second's several (collector style), and an item seen
    for the first time on the second input is not reported."""

    def open(self, runtime_context):
        self.index = runtime_context.get_index_of_this_subtask()
        self.items = runtime_context.get_map_state(MapStateDescriptor("items"))

    def seen(self, item):
        n = (self.items.get(item) or 0) + 1
        self.items.put(item, n)
        return n

    def flat_map1(self, value):
        user, item = value
        yield user, item, self.seen(item), self.index

    def flatMap2(self, value, collector):
        user, items = value
        for item in items:
            n = self.seen(item)
            if n > 1:
                collector.collect((user, item, n, self.index))


def test_map_state_in_a_co_flat_map_is_per_key_and_shared(env, parallelism):
    lefts = [(f"u{i % 6}", "xyz"[i % 3]) for i in range(45)]
    rights = [(f"u{i % 4}", "xyw"[: 1 + i % 3]) for i in range(30)]
    connected = env.from_collection(lefts).connect(env.from_collection(rights))
    out = run(env, connected.key_by(by_first, by_first).flat_map(ItemCounts()))
    # The model: per (user, item), the counts that went out are 1..n minus a count
    # of 1 taken by the second input (which reports only repeats).
    sightings = Counter([(u, i) for u, i in lefts] + [(u, i) for u, items in rights for i in items])
    got = {}
    workers = {}
    for user, item, n, index in out:
        got.setdefault((user, item), []).append(n)
        assert workers.setdefault(user, index) == index, f"{user} on two workers"
    for pair, n in sightings.items():
        reported = sorted(got.pop(pair, []))
        assert set(reported) <= set(range(1, n + 1)) and len(reported) == len(set(reported))
        assert set(range(2, n + 1)) <= set(reported), f"{pair}: every repeat is reported"
    assert got == {}
    if parallelism > 1:
        assert len(set(workers.values())) == parallelism


class Stateless(CoMapFunction):
    def map1(self, value):
        return "L", value

    def map2(self, value):
        return "R", value


class Opened(Stateless):
    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))


def test_only_functions_with_open_take_the_process_operator():
    """The rule ``KeyedStream.map`` applies: ``open()`` may ask for state, so it runs on
    the keyed process operator; without it, on the cheaper co-transform."""
    env = make_env(1)
    keyed = env.from_collection([(1, 2)]).connect(env.from_collection([(1, 3)])).key_by(by_first, by_first)
    def kind(stream):
        return type(env._nodes[stream._node].kind)

    assert kind(keyed.map(Stateless())) is _nodes.CoTransform
    assert kind(keyed.map(Opened())) is _nodes.Process
    assert kind(keyed.flat_map(ItemCounts())) is _nodes.Process
    unkeyed = env.from_collection([1]).connect(env.from_collection([2]))
    assert type(env._nodes[unkeyed.map(Opened())._node].kind) is _nodes.CoTransform


class CountsInSelf(CoMapFunction):
    """No open(): the cheap path, still keyed (a per-object dict stands in for state)."""

    def __init__(self):
        self.counts = Counter()

    def map1(self, value):
        self.counts[value[0]] += 1
        return "L", value[0], value[1], self.counts[value[0]], 0

    def map2(self, value):
        self.counts[value[0]] += 1
        return "R", value[0], value[1], self.counts[value[0]], 0


def test_a_keyed_co_map_without_open_still_meets_each_key_on_one_worker(env, parallelism):
    lefts = [(k % 7, i) for i, k in enumerate(range(50))]
    rights = [(k % 3, i) for i, k in enumerate(range(20))]
    connected = env.from_collection(lefts).connect(env.from_collection(rights))
    check_running_count(run(env, connected.key_by(by_first, by_first).map(CountsInSelf())), lefts, rights)


@pytest.mark.parametrize("api", ["map", "flat_map"])
def test_state_without_key_by_is_the_keyed_stream_error(env, parallelism, api):
    connected = env.from_collection([(1, 2)]).connect(env.from_collection([(1, 3)]))
    func = Opened() if api == "map" else ItemCounts()
    getattr(connected, api)(func).add_sink(lambda x: None)
    with pytest.raises(JobExecutionException) as info:
        env.execute()
    text = str(info.value)
    assert f"co_{api} '{type(func).__name__}' (test_keyed_comap_state.py:" in text
    assert "state is only available on a keyed stream (a function applied after key_by())" in text


class FailsOnSecond(Opened):
    def map2(self, value):
        raise ValueError(f"cannot take {value}")


def test_an_error_in_a_stateful_co_map_names_operator_record_and_traceback(env, parallelism):
    connected = env.from_collection([(1, 2)]).connect(env.from_collection([(1, "boom")]))
    connected.key_by(by_first, by_first).map(FailsOnSecond()).add_sink(lambda x: None)
    with pytest.raises(JobExecutionException) as info:
        env.execute()
    text = str(info.value)
    assert "co_map 'FailsOnSecond' (test_keyed_comap_state.py:" in text
    assert "(1, 'boom')" in text and "ValueError: cannot take (1, 'boom')" in text and "in map2" in text


class Closes(Opened):
    closed = []

    def close(self):
        Closes.closed.append(True)


def test_close_is_called_on_the_stateful_path():
    env = make_env(1)
    Closes.closed.clear()
    connected = env.from_collection([(1, 2)]).connect(env.from_collection([(1, 3)]))
    assert sorted(run(env, connected.key_by(by_first, by_first).map(Closes()))) == [("L", (1, 2)), ("R", (1, 3))]
    assert Closes.closed == [True]
