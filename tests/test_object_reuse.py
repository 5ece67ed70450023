"""Object reuse off (the default, as in Flink and PyFlink): no function sees another
function's changes to a record, and no change shows in a record already emitted.

Every test changes records in place where sharing would show: two operators reading
one stream, a reduce's state and what it emitted, windows that keep their values,
sinks, split/select, a loop's feedback, a stream unioned with itself, functions that
keep what they return, sources. ``env.get_config().enable_object_reuse()`` opts out.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import enum
import threading
from collections import OrderedDict, defaultdict

import pytest
from hypothesis import given, strategies as st

from ferroflow import (AggregateFunction, ExecutionConfig, JobExecutionException, SourceFunction,
                       StreamExecutionEnvironment)
from ferroflow.window import CountTrigger, GlobalWindows, SlidingEventTimeWindows
from ferroflow.watermarks import WatermarkStrategy
from conftest import JOB_SETTINGS, bag, collect, make_env, run


def bump(r):
    """The issue's map: changes its input in place."""
    r[2] += 100
    return r


def append_in_place(acc, value):
    """A reduce that appends to its accumulator and returns it."""
    acc.extend(value)
    return acc


def test_two_maps_reading_one_stream(env):
    s = env.from_collection([["A", 0, 1], ["B", 0, 1]])
    bumped = collect(s.map(bump))
    seen = collect(s.map(tuple))
    env.execute()
    assert sorted(bumped) == [["A", 0, 101], ["B", 0, 101]]
    assert sorted(seen) == [("A", 0, 1), ("B", 0, 1)]


def test_a_reduce_appending_to_its_accumulator(env):
    out = run(env, env.from_collection([[1], [2], [3]]).key_by(lambda r: "k").reduce(append_in_place))
    assert out == [[1], [1, 2], [1, 2, 3]]


def test_a_change_downstream_of_a_reduce_does_not_reach_its_state(env, monkeypatch):
    """The first record of a key is the state and is emitted: a map changing what it
    receives must not change what the next update starts from. (One record per batch,
    so that the map runs before the next update.)"""
    monkeypatch.setenv("FERROFLOW_BATCH_SIZE", "1")
    changed = (env.from_collection([[1], [2], [3]]).key_by(lambda r: "k").reduce(lambda a, b: a + b)
               .map(lambda r: (r.append("seen"), r)[1]))
    assert run(env, changed) == [[1, "seen"], [1, 2, "seen"], [1, 2, 3, "seen"]]


def test_built_in_aggregations_on_lists(env):
    """sum() updates the state's list in place when it alone holds it; the records it
    emitted stay as they were."""
    out = run(env, env.from_collection([["k", 1], ["k", 2], ["k", 3]]).key_by(0).sum(1))
    assert out == [["k", 1], ["k", 3], ["k", 6]]


def test_a_sink_that_changes_records(env):
    s = env.from_collection([[1], [2]])
    s.add_sink(lambda r: r.append("sunk"))
    assert sorted(run(env, s)) == [[1], [2]]


def test_split_select(env):
    split = env.from_collection([[1], [2]]).split(lambda r: ["a", "b"])
    a = collect(split.select("a").map(lambda r: r + ["a"]))
    b = collect(split.select("b").map(lambda r: (r.append("b"), r)[1]))
    c = collect(split.select("a"))
    env.execute()
    assert sorted(a) == [[1, "a"], [2, "a"]]
    assert sorted(b) == [[1, "b"], [2, "b"]]
    assert sorted(c) == [[1], [2]]


def test_a_stream_unioned_with_itself(env):
    s = env.from_collection([[1]])
    assert run(env, s.union(s).map(lambda r: (r.append(7), r)[1])) == [[1, 7], [1, 7]]


def test_a_loop_body_changing_its_records(env):
    """The body's output goes back around and to a sink: the record the sink got must
    not change on its next trip."""

    def step(r):
        r[0] += 1
        return r

    loop = env.from_collection([[0]]).iterate()
    body = loop.map(step)
    loop.close_with(body.filter(lambda r: r[0] < 3))
    assert sorted(run(env, body)) == [[1], [2], [3]]


def test_sliding_windows_reducing_in_place(env):
    """A record in two windows: each window reduces its own."""
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(lambda r: r[0] * 100)
    windows = (env.from_collection([[1], [2], [3]]).assign_timestamps_and_watermarks(strategy)
               .key_by(lambda r: "k").window(SlidingEventTimeWindows.of(1000, 500)).reduce(append_in_place))
    assert sorted(run(env, windows)) == [[1, 2, 3], [1, 2, 3]]


def test_a_window_firing_without_purging(env):
    """A count trigger fires without purging: the window keeps its values, and a window
    function changing them must not change the next firing's."""
    seen = []

    def process(key, context, values):
        seen.append([list(v) for v in values])
        for v in values:
            v.append(99)
        return [len(values)]

    windows = (env.from_collection([[1], [2], [3]]).key_by(lambda r: "k").window(GlobalWindows.create())
               .trigger(CountTrigger.of(1)).process(process))
    run(env, windows)
    assert seen == [[[1]], [[1], [2]], [[1], [2], [3]]]


class Collected(AggregateFunction):
    """An accumulator that is a list, handed out as the result itself."""

    def create_accumulator(self):
        return []

    def add(self, value, accumulator):
        accumulator.extend(value)
        return accumulator

    def get_result(self, accumulator):
        return accumulator


@pytest.mark.parametrize("reuse", [False, True], ids=["copies", "reuse"])
def test_a_window_result_that_is_its_accumulator(env, reuse):
    """The window keeps its accumulator after firing; the results it emitted must not
    change with it. With object reuse on they do (the results are the accumulator)."""
    if reuse:
        env.get_config().enable_object_reuse()
    windows = (env.from_collection([[1], [2], [3]]).key_by(lambda r: "k").window(GlobalWindows.create())
               .trigger(CountTrigger.of(1)).aggregate(Collected()))
    out = run(env, windows)
    assert sorted(out) == ([[1, 2, 3]] * 3 if reuse else [[1], [1, 2], [1, 2, 3]])


def test_a_function_keeping_what_it_returns(env):
    """Flink's reuse pattern: one output object, changed for every record."""

    class Reuse:
        def __init__(self):
            self.out = [None]

        def map(self, value):
            self.out[0] = value
            return self.out

    assert sorted(run(env, env.from_collection([1, 2, 3]).map(Reuse()))) == [[1], [2], [3]]


def test_flat_map_returning_one_object_twice(env):
    twice = env.from_collection([[1]]).flat_map(lambda r: [r, r]).map(lambda r: (r.append("x"), r)[1])
    assert run(env, twice) == [[1, "x"], [1, "x"]]


def test_records_of_a_flat_map_sharing_a_part(env):
    """Two records holding one list: a change to one must not show in the other."""
    meta = env.from_collection([{"tags": ["t"]}]).flat_map(lambda e: [("a", e["tags"]), ("b", e["tags"])])
    out = run(env, meta.map(lambda r: (r[1].append(r[0]), r)[1]))
    assert sorted(out) == [("a", ["t", "a"]), ("b", ["t", "b"])]


def test_the_collection_is_not_changed_by_the_job(env):
    data = [[1], [2]]
    run(env, env.from_collection(data).map(lambda r: (r.append(0), r)[1]))
    assert data == [[1], [2]]


def test_a_generator_yielding_one_object(env):
    def rows():
        row = {}
        for i in range(3):
            row["i"] = i
            yield row

    assert sorted(run(env, env.from_collection(rows())), key=lambda r: r["i"]) == [{"i": 0}, {"i": 1}, {"i": 2}]


class ReusingSource(SourceFunction):
    def run(self, ctx):
        row = [0]
        for i in range(3):
            row[0] = i
            ctx.collect(row)


def test_a_source_collecting_one_object(env):
    assert sorted(run(env, env.add_source(ReusingSource()))) == [[0], [1], [2]]


# -- what is not copied, and opting out ------------------------------------------------------


class Color(enum.Enum):
    RED = 1


def test_records_that_cannot_change_are_not_copied():
    """Tuples of str/int/float/bytes/None/bool, frozensets, namedtuples, datetime and
    Decimal values, Enum members: shared as they are."""
    from collections import namedtuple

    Point = namedtuple("Point", "x y")
    objs = [("a", 1, 2.5, b"x", None, True), frozenset({1, "a"}), Point(1, (2, 3)), "s", 7,
            (Color.RED, datetime.datetime(2024, 1, 2), datetime.date(2024, 1, 2), decimal.Decimal("1.5"))]
    env = make_env(1)
    s = env.from_collection(objs)
    a, b = collect(s), collect(s.map(lambda r: r))
    env.execute()
    assert [id(r) for r in a] == [id(r) for r in objs] == [id(r) for r in b]


@pytest.mark.parametrize("parallelism", [1, 2])
def test_copies_keep_types_and_aliasing(parallelism):
    """A copy is what copy.deepcopy makes: same types (dict subclasses too), shared
    parts inside the record shared the same way. (Not across processes, where the
    codec decides.)"""
    env = make_env(parallelism)
    inner = [1]
    record = {"pair": [inner, inner], "od": OrderedDict(a=[1]), "dd": defaultdict(list, a=[2]), "set": {1, 2},
              "t": ("x", [3])}
    s = env.from_collection([record])
    a = collect(s)
    changed = collect(s.map(lambda r: (r["pair"][0].append(2), r)[1]))
    env.execute()
    assert changed[0]["pair"] == [[1, 2], [1, 2]], "aliasing inside the record is kept"
    assert a[0] == record and inner == [1]
    assert type(a[0]["od"]) is OrderedDict and type(a[0]["dd"]) is defaultdict and a[0]["dd"].default_factory is list


@pytest.mark.parametrize("parallelism", [1, 2])
def test_copies_of_records_with_cycles(parallelism):
    env = make_env(parallelism)
    loop = [1]
    loop.append(loop)
    holder = {"t": (loop,)}
    s = env.from_collection([loop, holder])
    outs = [collect(s), collect(s)]
    env.execute()
    for out in outs:
        lists = [r for r in out if isinstance(r, list)]
        dicts = [r for r in out if isinstance(r, dict)]
        assert len(lists) == 1 and lists[0][1] is lists[0] and lists[0] is not loop
        assert len(dicts) == 1 and dicts[0]["t"][0][1] is dicts[0]["t"][0]


def test_object_reuse_can_be_enabled():
    env = StreamExecutionEnvironment.get_execution_environment()
    config = env.get_config()
    assert isinstance(config, ExecutionConfig) and not config.is_object_reuse_enabled()
    assert config.enable_object_reuse() is config and config.is_object_reuse_enabled()
    out = run(env, env.from_collection([[1], [2], [3]]).key_by(lambda r: "k").reduce(append_in_place))
    assert out == [[1, 2, 3]] * 3, "with object reuse the reduce's state is what it emitted"
    config.disable_object_reuse()
    assert not config.is_object_reuse_enabled()
    env = StreamExecutionEnvironment.get_execution_environment()
    assert not env.get_config().is_object_reuse_enabled(), "each environment has its own config"


def test_a_record_that_cannot_be_copied(env):
    s = env.from_collection([1]).map(lambda x: [threading.Lock()]).name("locks")
    s.add_sink(lambda r: None)
    s.add_sink(lambda r: None)
    with pytest.raises(JobExecutionException) as info:
        env.execute()
    err = info.value
    assert err.kind == "udf" and "locks" in str(err) and "_thread.lock" in err.record
    assert "cannot copy the record: TypeError: cannot pickle '_thread.lock' object" in str(err)
    assert "enable_object_reuse()" in str(err)


# -- property -------------------------------------------------------------------------------

LEAVES = st.one_of(st.integers(-5, 5), st.text("ab", max_size=2), st.none(), st.booleans())
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.text("xyz", max_size=1), inner, max_size=3),
    st.tuples(inner, inner),
    st.frozensets(LEAVES, max_size=3),
), max_leaves=12)


def scribble(value, mark):
    """Changes every list and dict inside ``value`` in place; returns ``value``."""
    if isinstance(value, list):
        for v in value:
            scribble(v, mark)
        value.append(mark)
    elif isinstance(value, dict):
        for v in value.values():
            scribble(v, mark)
        value[mark] = mark
    elif isinstance(value, tuple):
        for v in value:
            scribble(v, mark)
    return value


@JOB_SETTINGS
@given(records=st.lists(st.lists(VALUES, max_size=3), min_size=1, max_size=6))
def test_no_branch_sees_another_branchs_changes(parallelism, records):
    """Three readers of one stream, two of them scribbling over every list and dict of
    their records, then a rolling reduce that appends in place: each reader sees the
    records as they came, and every update as it was when emitted."""
    expected = copy.deepcopy(records)
    env = make_env(parallelism)
    s = env.from_collection(records)
    plain = collect(s)
    first = collect(s.map(lambda r: scribble(r, "first")))
    second = collect(s.map(lambda r: scribble(r, "second")))
    rolled = collect(s.key_by(lambda r: 0).reduce(append_in_place).map(lambda r: scribble(r, "after")))
    env.execute()
    assert bag(map(canon, plain)) == bag(map(canon, expected))
    for got, mark in ((first, "first"), (second, "second")):
        assert bag(map(canon, got)) == bag(canon(scribble(copy.deepcopy(r), mark)) for r in expected)
    assert len(rolled) == len(expected)
    assert sorted(map(len, rolled)) == sorted(len(r) + 1 for r in rolling_sums(expected)), \
        "an update changed after it was emitted"


def canon(value) -> str:
    """A text for ``value`` that does not depend on a set's iteration order."""
    if isinstance(value, list):
        return "[" + ",".join(map(canon, value)) + "]"
    if isinstance(value, tuple):
        return "(" + ",".join(map(canon, value)) + ")"
    if isinstance(value, dict):
        return "{" + ",".join(sorted(f"{canon(k)}:{canon(v)}" for k, v in value.items())) + "}"
    if isinstance(value, frozenset):
        return "frozenset{" + ",".join(sorted(map(canon, value))) + "}"
    return repr(value)


def rolling_sums(records):
    acc, out = None, []
    for r in records:
        acc = list(r) if acc is None else acc + list(r)
        out.append(acc)
    return out
