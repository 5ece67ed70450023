"""Window joins and co-groups (``stream.join(other)...``, ``stream.co_group(other)...``)
against a plain-Python model: per key and window, every pair (join) or both lists
(co_group). Keys compare as key_by compares them (1 == 1.0 == True), which a dict of
Python keys models. Run at 1 worker, 2 threads and 2 processes (the ``env`` fixture).

Joins on ``GlobalWindows`` without a trigger fire once, at the end of input, under
ferroflow's rule; under PyFlink's names (Flink's rule) they never fire."""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Tuple

import pytest
from conftest import JOB_SETTINGS, PARTIAL_WINDOWS, bag, fired_at_end, flink_semantics, make_env, run
from hypothesis import given, settings
from hypothesis import strategies as st
from window_model import Sliding, Tumbling

from ferroflow import CoGroupFunction, JobExecutionException, JoinFunction
from ferroflow.testing import ProcessingTime, TestSource, Timestamped, Watermark
from ferroflow.window import (CountTrigger, EventTimeSessionWindows, GlobalWindows, PurgingTrigger, SlidingEventTimeWindows,
                              TumblingEventTimeWindows, TumblingProcessingTimeWindows)

#: Keys that key_by takes as one (1 == 1.0 == True) next to distinct ones.
KEYS = ["a", "b", 1, 1.0, True, 2, (1, "x")]

# A record: (side, key, index, time); index makes every record distinct.
Rec = Tuple[int, Any, int, int]


def sides(env, events: List[Any]):
    """Both sides of a join from one TestSource (a job takes one manual clock)."""
    source = env.add_source(TestSource(events))
    return source.filter(lambda r: r[0] == 0), source.filter(lambda r: r[0] == 1)


def model(records: List[Rec], assigner, join: bool) -> Counter:
    """Per (window, key): each pair's indexes (join) or both sorted index lists (co_group)."""
    groups: Dict[Tuple[Any, Any], Tuple[List[int], List[int]]] = {}
    for side, key, index, t in records:
        for w in assigner.windows(t, None):
            groups.setdefault((w, key), ([], []))[side].append(index)
    out: Counter = Counter()
    for first, second in groups.values():
        if join:
            out.update((a, b) for a in first for b in second)
        else:
            out[(tuple(sorted(first)), tuple(sorted(second)))] += 1
    return out


def pair(a: Rec, b: Rec) -> Tuple[int, int]:
    return (a[2], b[2])


def groups(firsts: List[Rec], seconds: List[Rec]):
    yield (tuple(sorted(r[2] for r in firsts)), tuple(sorted(r[2] for r in seconds)))


def event_time_input(draw_blocks: List[List[Tuple[int, Any, int]]]) -> Tuple[List[Any], List[Rec]]:
    """Blocks of records shuffled within 10 ms steps, a watermark after each block
    (never behind a later record: nothing is late)."""
    events: List[Any] = []
    records: List[Rec] = []
    index = 0
    for block, items in enumerate(draw_blocks):
        for side, key, offset in items:
            r = (side, key, index, block * 10 + offset)
            index += 1
            records.append(r)
            events.append(Timestamped(r, r[3]))
        events.append(Watermark(block * 10 + 9))
    return events, records


RECORDS = st.lists(st.lists(st.tuples(st.integers(0, 1), st.sampled_from(KEYS), st.integers(0, 9)), max_size=6),
                   max_size=6)
ASSIGNERS = st.sampled_from([(TumblingEventTimeWindows.of(15), Tumbling(15)),
                             (TumblingEventTimeWindows.of(10), Tumbling(10)),
                             (SlidingEventTimeWindows.of(20, 5), Sliding(20, 5)),
                             (SlidingEventTimeWindows.of(10, 15), Sliding(10, 15))])


@pytest.mark.parametrize("join", [True, False], ids=["join", "co_group"])
@given(blocks=RECORDS, assigners=ASSIGNERS)
@settings(JOB_SETTINGS, max_examples=10)
def test_event_time_join_and_co_group_match_the_model(parallelism, join, blocks, assigners):
    assigner, reference = assigners
    env = make_env(parallelism)
    events, records = event_time_input(blocks)
    first, second = sides(env, events)
    connect = first.join(second) if join else first.co_group(second)
    result = connect.where(lambda r: r[1]).equal_to(lambda r: r[1]).window(assigner).apply(pair if join else groups)
    assert bag(run(env, result)) == model(records, reference, join)


@pytest.mark.parametrize("join", [True, False], ids=["join", "co_group"])
@given(steps=st.lists(st.lists(st.tuples(st.integers(0, 1), st.sampled_from(KEYS)), max_size=5), max_size=5),
       size=st.sampled_from([10, 25]))
@settings(JOB_SETTINGS, max_examples=8)
def test_processing_time_join_and_co_group_match_the_model(parallelism, join, steps, size):
    # The manual clock moves 10 ms between steps; a record's time is the clock when it arrives.
    events: List[Any] = []
    records: List[Rec] = []
    for step, items in enumerate(steps):
        events.append(ProcessingTime(step * 10))
        for side, key in items:
            r = (side, key, len(records), step * 10)
            records.append(r)
            events.append(r)
    env = make_env(parallelism)
    first, second = sides(env, events)
    connect = first.join(second) if join else first.co_group(second)
    result = (connect.where(lambda r: r[1]).equal_to(lambda r: r[1])
              .window(TumblingProcessingTimeWindows.of(size)).apply(pair if join else groups))
    assert bag(run(env, result)) == model(records, Tumbling(size), join)


@pytest.mark.flink_semantics(PARTIAL_WINDOWS)
def test_keys_compare_as_key_by_does_and_fields_select_keys(env):
    # Left keys are field 0 of tuples, right keys a dict's "k": 1, 1.0 and True meet.
    left = env.from_collection([(1, "l1"), ("x", "l2"), (2, "l3")])
    right = env.from_collection([{"k": 1.0, "v": "r1"}, {"k": True, "v": "r2"}, {"k": "y", "v": "r3"}])
    result = (left.join(right).where(0).equal_to("k").window(GlobalWindows.create())
              .apply(lambda a, b: (a[1], b["v"])))
    assert bag(run(env, result)) == bag(fired_at_end(env, [("l1", "r1"), ("l1", "r2")]))


class Pairs(JoinFunction):
    def open(self, runtime_context):
        self.suffix = "!"

    def join(self, first, second):
        return f"{first}{second}{self.suffix}"


class FlatPairs(JoinFunction):
    """Flink's FlatJoinFunction form: a collector, any number of outputs per pair."""

    def join(self, first, second, collector):
        for _ in range(2):
            collector.collect((first, second))


class Counts(CoGroupFunction):
    def co_group(self, first, second):
        return [(len(first), len(second))]


@pytest.mark.flink_semantics(PARTIAL_WINDOWS)
def test_function_objects_collector_form_and_co_group_class(env):
    left = env.from_collection(["a", "b"])
    right = env.from_collection(["a", "c"])
    window = GlobalWindows.create()
    joined = run(env, left.join(right).where(lambda v: v).equal_to(lambda v: v).window(window).apply(Pairs()))
    assert joined == fired_at_end(env, ["aa!"])
    env2 = env
    left = env2.from_collection(["a", "b"])
    right = env2.from_collection(["a", "c"])
    flat = run(env2, left.join(right).where(lambda v: v).equal_to(lambda v: v).window(window).apply(FlatPairs()))
    assert flat == fired_at_end(env, [("a", "a"), ("a", "a")])
    left = env2.from_collection(["a", "b", "b"])
    right = env2.from_collection(["a", "c"])
    counts = run(env2, left.co_group(right).where(lambda v: v).equal_to(lambda v: v).window(window).apply(Counts()))
    # every key with records on either side, once per window
    assert bag(counts) == bag(fired_at_end(env, [(1, 1), (2, 0), (0, 1)]))


def test_a_purging_count_trigger_splits_the_join_window(env):
    # Without the trigger the window holds all three records: pairs (0, 1) and (2, 1).
    # A purging count trigger of 2 fires and empties it at every second record (of
    # either side), so at most one pair can meet; which one depends on arrival order.
    events = [(0, "k", 0, 0), (1, "k", 1, 0), (0, "k", 2, 0)]
    first, second = sides(env, events)
    result = (first.join(second).where(lambda r: r[1]).equal_to(lambda r: r[1])
              .window(GlobalWindows.create()).trigger(PurgingTrigger.of(CountTrigger.of(2))).apply(pair))
    out = run(env, result)
    assert len(out) <= 1 and set(out) <= {(0, 1), (2, 1)}


def test_session_windows_join(env):
    events = [Timestamped((0, "k", 0, 1), 1), Timestamped((1, "k", 1, 4), 4), Timestamped((1, "k", 2, 30), 30)]
    first, second = sides(env, events)
    result = (first.join(second).where(lambda r: r[1]).equal_to(lambda r: r[1])
              .window(EventTimeSessionWindows.with_gap(5)).apply(pair))
    assert run(env, result) == [(0, 1)]


def failing_join(first, second):
    raise ValueError("no pairing today")


@pytest.mark.flink_semantics(PARTIAL_WINDOWS)
def test_an_exception_in_the_join_function_names_a_join_operator_and_the_call_site(env):
    left = env.from_collection([1])
    right = env.from_collection([1])
    result = left.join(right).where(lambda v: v).equal_to(lambda v: v).window(
        GlobalWindows.create()).apply(failing_join)  # the call site the error names
    if flink_semantics(env):  # the window never fires: the join function is not called
        assert run(env, result) == []
        return
    with pytest.raises(JobExecutionException) as info:
        run(env, result)
    assert "join" in info.value.operator and "test_api_joins.py:" in info.value.operator
    assert "failing_join" in info.value.operator
    assert "no pairing today" in info.value.detail


def failing_co_group(first, second):
    raise KeyError("lost")


@pytest.mark.flink_semantics(PARTIAL_WINDOWS)
def test_an_exception_in_the_co_group_function_names_a_co_group_operator(env):
    left = env.from_collection([1])
    right = env.from_collection([2])
    result = left.co_group(right).where(lambda v: v).equal_to(lambda v: v).window(
        GlobalWindows.create()).apply(failing_co_group)
    if flink_semantics(env):  # the window never fires: the co_group function is not called
        assert run(env, result) == []
        return
    with pytest.raises(JobExecutionException) as info:
        run(env, result)
    assert "co_group" in info.value.operator and "test_api_joins.py:" in info.value.operator
    assert "lost" in info.value.detail


def test_a_failing_key_selector_names_the_join_key_by(env):
    left = env.from_collection([1])
    right = env.from_collection([2])

    def bad_key(v):
        raise RuntimeError("no key")
    result = left.join(right).where(lambda v: v).equal_to(bad_key).window(
        GlobalWindows.create()).apply(pair)
    with pytest.raises(JobExecutionException) as info:
        run(env, result)
    assert "join where" in info.value.operator and "bad_key" in info.value.operator


def test_plan_time_errors():
    env = make_env(1)
    s = env.from_collection([1])
    with pytest.raises(TypeError, match="window assigner"):
        s.join(s).where(lambda v: v).equal_to(lambda v: v).window("10s")
    with pytest.raises(TypeError, match="same environment"):
        s.join(make_env(1).from_collection([1]))
    with pytest.raises(TypeError, match="trigger"):
        s.co_group(s).where(lambda v: v).equal_to(lambda v: v).window(TumblingEventTimeWindows.of(10)).trigger(3)
    with pytest.raises(TypeError, match="join"):
        s.join(s).where(lambda v: v).equal_to(lambda v: v).window(TumblingEventTimeWindows.of(10)).apply(42)


@pytest.mark.flink_semantics(PARTIAL_WINDOWS)
def test_self_join_pairs_every_record_with_every_record_of_its_key(env):
    s = env.from_collection([("k", 1), ("k", 2), ("j", 3)])
    result = (s.join(s).where(lambda r: r[0]).equal_to(lambda r: r[0]).window(GlobalWindows.create())
              .apply(lambda a, b: (a[1], b[1])))
    assert bag(run(env, result)) == bag(fired_at_end(env, [(1, 1), (1, 2), (2, 1), (2, 2), (3, 3)]))


def test_model_sanity():
    # The model on a hand-worked case, so the property tests compare with something right.
    recs = [(0, "k", 0, 1), (1, "k", 1, 9), (1, "k", 2, 11), (0, 1, 3, 2), (1, True, 4, 3)]
    assert model(recs, Tumbling(10), True) == Counter([(0, 1), (3, 4)])
    assert model(recs, Tumbling(10), False) == Counter([((0,), (1,)), ((), (2,)), ((3,), (4,))])
