"""Transformations: map, flat_map, filter, key_by, keyed reduce, union, name, and the
job result; plus the original suite's pipeline shapes (map chains, word count,
user-defined record classes)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, strategies as st

from ferroflow import (FerroflowError, FilterFunction, FlatMapFunction, JobExecutionException, KeySelector,
                       MapFunction, ReduceFunction, StreamExecutionEnvironment)
from conftest import JOB_SETTINGS, SubtaskTagger, bag, collect, make_env, per_key, run

# -- map ----------------------------------------------------------------------------------


def test_map_lambda(env, parallelism):
    out = run(env, env.from_collection(list(range(10))).map(lambda x: x * x))
    assert bag(out) == bag(x * x for x in range(10))
    if parallelism == 1:
        assert out == [x * x for x in range(10)]


def test_map_named_function_and_builtin(env):
    def shout(s):
        return s.upper() + "!"

    out = run(env, env.from_elements(1, 22, 333).map(repr).map(shout))
    assert bag(out) == bag(["1!", "22!", "333!"])


def test_map_builtin_type_as_function(env):
    """Plain callables include types used as functions: map(str), map(int), map(tuple)."""
    out = run(env, env.from_elements(1, 22).map(str).map(tuple))
    assert bag(out) == bag([("1",), ("2", "2")])


class AddOffset(MapFunction):
    def __init__(self, offset):
        self.offset = offset

    def map(self, value):
        return value + self.offset


def test_map_function_class(env):
    out = run(env, env.generate_sequence(1, 50).map(AddOffset(1000)))
    assert bag(out) == bag(range(1001, 1051))


def test_map_chain(env, parallelism):
    out = run(env, env.from_collection(list(range(1, 21)))
              .map(lambda x: x + 1)
              .map(lambda x: x * 2)
              .map(AddOffset(-2))
              .map(lambda x: (x, str(x))))
    expected = [((x + 1) * 2 - 2, str((x + 1) * 2 - 2)) for x in range(1, 21)]
    assert bag(out) == bag(expected)
    if parallelism == 1:
        assert out == expected


def test_map_chain_long_exact_total(env):
    # The original suite's map chain: many maps, exact total at the end.
    s = env.generate_sequence(1, 1000)
    for i in range(10):
        s = s.map(lambda x, i=i: x + i)
    out = run(env, s)
    assert len(out) == 1000
    assert sum(out) == sum(range(1, 1001)) + 1000 * sum(range(10))


def test_map_to_none_and_objects(env):
    out = run(env, env.from_elements(1, 2, 3).map(lambda x: None if x == 2 else {"v": x}))
    assert sorted(map(repr, out)) == sorted(["None", "{'v': 1}", "{'v': 3}"])


def test_map_rejects_non_function(env):
    s = env.from_elements(1)
    with pytest.raises(TypeError):
        s.map(42)
    with pytest.raises(TypeError):
        s.map(MapFunction())  # base class without map() implemented


# -- flat_map -----------------------------------------------------------------------------


def test_flat_map_ints(env, parallelism):
    out = run(env, env.from_collection([1, 2, 3]).flat_map(lambda x: [x] * x))
    assert bag(out) == bag([1, 2, 2, 3, 3, 3])
    if parallelism == 1:
        assert out == [1, 2, 2, 3, 3, 3]


def test_flat_map_lists(env):
    data = [[1, 2, 3], [], [4], [5, 6]]
    out = run(env, env.from_collection(data).flat_map(lambda xs: xs))
    assert bag(out) == bag([1, 2, 3, 4, 5, 6])


def test_flat_map_strings(env):
    out = run(env, env.from_elements("the quick", "brown fox jumps", "").flat_map(str.split))
    assert bag(out) == bag(["the", "quick", "brown", "fox", "jumps"])
    env2 = make_env(env.get_parallelism())
    chars = run(env2, env2.from_elements("ab", "c").flat_map(lambda s: s))  # a str is an iterable of chars
    assert bag(chars) == bag("abc")


def test_flat_map_generator(env):
    def explode(x):
        for i in range(x):
            yield (x, i)

    out = run(env, env.from_collection([0, 1, 2, 3]).flat_map(explode))
    assert bag(out) == bag((x, i) for x in range(4) for i in range(x))


def test_flat_map_tuple_set_none(env):
    out = run(env, env.from_elements(1, 2, 3).flat_map(
        lambda x: None if x == 1 else ((x, -x) if x == 2 else {x * 10})))
    assert bag(out) == bag([2, -2, 30])


class Splitter(FlatMapFunction):
    def flat_map(self, value):
        return value.split(",")


class CollectorSplitter(FlatMapFunction):
    def flatMap(self, value, collector):  # talk-era collector style
        for part in value.split(","):
            collector.collect(part.strip())


def test_flat_map_function_classes(env):
    out = run(env, env.from_elements("a,b", "c").flat_map(Splitter()))
    assert bag(out) == bag("abc")
    env2 = make_env(env.get_parallelism())
    out2 = run(env2, env2.from_elements("a, b", "c , d").flat_map(CollectorSplitter()))
    assert bag(out2) == bag("abcd")


def test_flat_map_non_iterable_fails(env):
    collect(env.from_elements(1, 2).flat_map(lambda x: 5))
    with pytest.raises(JobExecutionException) as info:
        env.execute("bad flat_map")
    assert info.value.record in ("1", "2")


def test_flat_map_large_fan_out(env):
    out = run(env, env.generate_sequence(1, 100).flat_map(lambda x: range(x)))
    assert len(out) == sum(range(1, 101))
    assert bag(out) == bag(i for x in range(1, 101) for i in range(x))


# -- filter -------------------------------------------------------------------------------


def test_filter(env, parallelism):
    out = run(env, env.from_collection(list(range(20))).filter(lambda x: x % 3 == 0))
    assert bag(out) == bag([0, 3, 6, 9, 12, 15, 18])
    if parallelism == 1:
        assert out == [0, 3, 6, 9, 12, 15, 18]


class Even(FilterFunction):
    def filter(self, value):
        return value % 2 == 0


def test_filter_function_class_and_truthiness(env):
    out = run(env, env.generate_sequence(1, 100).filter(Even()).filter(lambda x: x % 10))  # int truthiness
    assert bag(out) == bag(x for x in range(1, 101) if x % 2 == 0 and x % 10)


def test_filter_keeps_records_unchanged(env):
    data = [(1, "a"), (2, "b"), (3, "c")]
    out = run(env, env.from_collection(data).filter(lambda t: t[1] != "b"))
    assert bag(out) == bag([(1, "a"), (3, "c")])


def test_filter_all_and_none(env):
    s = env.from_collection(list(range(10)))
    everything = collect(s.filter(lambda x: True))
    nothing = collect(s.filter(lambda x: False))
    env.execute()
    assert bag(everything) == bag(range(10)) and nothing == []


# -- key_by and rolling reduce ------------------------------------------------------------


def rolling_model(records, key, fn):
    """Per-key rolling reduce in a plain-Python model: each record emits the key's updated value."""
    state = {}
    out = []
    for r in records:
        k = key(r)
        state[k] = r if k not in state else fn(state[k], r)
        out.append(state[k])
    return out


def test_keyed_reduce_rolling(env, parallelism):
    data = [("a", 1), ("b", 10), ("a", 2), ("c", 5), ("a", 3), ("b", 20)]
    out = run(env, env.from_collection(data).key_by(lambda t: t[0]).reduce(lambda x, y: (x[0], x[1] + y[1])))
    expected = [("a", 1), ("b", 10), ("a", 3), ("c", 5), ("a", 6), ("b", 30)]
    if parallelism == 1:
        assert out == expected
    else:
        assert_rolling_sum_per_key(out, data)


def test_reduce_results_of_plain_values_leave_the_garbage_collector(env):
    """A reduce's result is kept as state until the key's next update: a tuple of plain
    values is untracked by the garbage collector at once (freeing a tracked one once it
    is cold costs a cache miss); one holding a list stays tracked, so cycles through it
    are still collected."""
    import gc

    data = [("a", 1), ("a", 2), ("b", 3), ("b", 4)]
    out = run(env, env.from_collection(data).key_by(lambda t: t[0])
              .reduce(lambda x, y: (x[0], x[1] + y[1], [y[1]] if x[0] == "b" else None))
              .filter(lambda t: len(t) == 3)
              .map(lambda t: (t[0], gc.is_tracked(t))))
    assert sorted(out) == [("a", False), ("b", True)]


def assert_rolling_sum_per_key(out, data):
    """With parallelism > 1 the order in which a key's records reach its worker is not
    defined, but each key's outputs (in emission order) must be the rolling sums of a
    permutation of that key's inputs, and the last one the key's total."""
    outs = per_key(out, lambda t: t[0])
    ins = per_key(data, lambda t: t[0])
    assert set(outs) == set(ins)
    for k, values in ins.items():
        sums = [v for _, v in outs[k]]
        assert len(sums) == len(values)
        deltas = [sums[0]] + [b - a for a, b in zip(sums, sums[1:])]
        assert Counter(deltas) == Counter(v for _, v in values), k
        assert sums[-1] == sum(v for _, v in values)


class SumReducer(ReduceFunction):
    def reduce(self, value1, value2):
        return (value1[0], value1[1] + value2[1])


class ModKey(KeySelector):
    def __init__(self, m):
        self.m = m

    def get_key(self, value):
        return value[1] % self.m


def test_keyed_reduce_function_classes(env, parallelism):
    data = [(x % 3, x) for x in range(1, 31)]
    out = run(env, env.from_collection(data).key_by(ModKey(3)).reduce(SumReducer()))
    if parallelism == 1:
        assert out == rolling_model(data, lambda t: t[0], lambda a, b: (a[0], a[1] + b[1]))
    assert_rolling_sum_per_key(out, data)


def test_keyed_reduce_first_value_unchanged(env):
    calls = []

    def fn(a, b):
        calls.append((a, b))
        return a + b

    out = run(env, env.from_elements("x", "y", "z").key_by(lambda s: s).reduce(fn))
    assert bag(out) == bag(["x", "y", "z"])
    assert calls == []  # a single record per key is emitted as is, without calling reduce


def test_keyed_reduce_single_key_order(env, parallelism):
    data = list(range(1, 51))
    out = run(env, env.from_collection(data).key_by(lambda x: "k").reduce(lambda a, b: a + b))
    assert len(out) == 50
    assert out[-1] == sum(data)
    if parallelism == 1:
        assert out == [sum(data[:i + 1]) for i in range(50)]
    else:
        deltas = [out[0]] + [b - a for a, b in zip(out, out[1:])]
        assert sorted(deltas) == data


def test_keyed_reduce_count_per_key_order_defined(env):
    """Counting (a, 1) tuples: each key's outputs are (k, 1), (k, 2) ... (k, n) in order,
    whatever the arrival order."""
    words = ("a b c a b a d a " * 25).split()
    out = run(env, env.from_collection(words).map(lambda w: (w, 1))
              .key_by(lambda t: t[0]).reduce(lambda x, y: (x[0], x[1] + y[1])))
    groups = per_key(out, lambda t: t[0])
    expected = Counter(words)
    assert {k: [c for _, c in v] for k, v in groups.items()} == {k: list(range(1, n + 1)) for k, n in expected.items()}


def test_key_by_tuple_and_mixed_keys(env):
    data = [((1, "x"), 1), ((1, "x"), 2), ((1, "y"), 3), ((None, b"b", 2.5, True), 4), ((None, b"b", 2.5, True), 5)]
    out = run(env, env.from_collection(data).key_by(lambda t: t[0]).reduce(lambda a, b: (a[0], a[1] + b[1])))
    finals = {}
    for k, v in out:
        finals[k] = max(finals.get(k, 0), v)
    assert finals == {(1, "x"): 3, (1, "y"): 3, (None, b"b", 2.5, True): 9}
    assert len(out) == 5


def test_key_by_equal_numbers_are_one_key(env):
    """Keys compare as Python values: 1 == 1.0 == True."""
    out = run(env, env.from_collection([1, 1.0, True, 2]).key_by(lambda v: v).reduce(lambda a, b: a + b))
    assert len(out) == 4
    assert max(out) == 3  # 1 + 1.0 + True
    assert out.count(2) + out.count(2.0) >= 1


def test_key_by_routes_each_key_to_one_worker(env, parallelism):
    data = [f"key{i % 17}" for i in range(340)]
    out = run(env, env.from_collection(data).key_by(lambda k: k).map(SubtaskTagger()))
    assert bag(v for _, v in out) == bag(data)
    workers = {}
    for i, k in out:
        workers.setdefault(k, set()).add(i)
    assert all(len(w) == 1 for w in workers.values())
    if parallelism == 2:
        assert {next(iter(w)) for w in workers.values()} == {0, 1}  # 17 keys use both workers


def test_key_by_unsupported_key_fails(env):
    collect(env.from_elements([1, 2], [3]).key_by(lambda v: v).reduce(lambda a, b: a + b))
    with pytest.raises(JobExecutionException) as info:
        env.execute("list key")
    assert "key" in str(info.value).lower() or "key" in info.value.detail.lower()


_ROUTING_SCRIPT = r"""
import json
from ferroflow import StreamExecutionEnvironment, MapFunction
class Tag(MapFunction):
    def open(self, ctx): self.i = ctx.get_index_of_this_subtask()
    def map(self, v): return (v, self.i)
env = StreamExecutionEnvironment.get_execution_environment()
env.set_parallelism(2)
out = []
keys = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", 7, 8.5, (1, "t"), b"by"]
env.from_collection(keys).key_by(lambda k: k).map(Tag()).add_sink(out.append)
env.execute()
print(json.dumps(sorted([repr(k), i] for k, i in out)))
"""


def test_key_by_routing_is_stable_across_processes():
    """key_by routes by a stable hash: the same keys land on the same workers whatever
    Python's string hash seed."""
    results = []
    for seed in ("1", "2"):
        proc = subprocess.run([sys.executable, "-c", _ROUTING_SCRIPT], capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, PYTHONHASHSEED=seed))
        assert proc.returncode == 0, proc.stderr
        results.append(proc.stdout.strip().splitlines()[-1])
    assert results[0] == results[1]
    assert '"\'alpha\'"' in results[0]


def test_keyed_stream_non_keyed_ops(env):
    out = run(env, env.from_collection(list(range(10))).key_by(lambda x: x % 2).map(lambda x: -x).filter(lambda x: x < -4))
    assert bag(out) == bag([-5, -6, -7, -8, -9])


@JOB_SETTINGS
@given(records=st.lists(st.tuples(st.sampled_from(["a", "b", "c", 1, 2.5, (0, "t")]), st.integers(-50, 50)),
                        max_size=40))
def test_rolling_reduce_matches_model(parallelism, records):
    env = make_env(parallelism)
    out = run(env, env.from_collection(records).key_by(lambda t: t[0]).reduce(lambda x, y: (x[0], x[1] + y[1])))
    expected = rolling_model(records, lambda t: t[0], lambda x, y: (x[0], x[1] + y[1]))
    if parallelism == 1:
        assert out == expected
    else:
        assert bag(map(lambda t: t[0], out)) == bag(map(lambda t: t[0], expected))
        assert_rolling_sum_per_key(out, records)


@JOB_SETTINGS
@given(words=st.lists(st.text(alphabet="abcd", min_size=1, max_size=3), max_size=60))
def test_rolling_concat_per_key_is_a_prefix_chain(parallelism, words):
    """Non-commutative reduce (string concatenation): per key, each output extends the
    previous one by exactly one of the key's inputs."""
    env = make_env(parallelism)
    out = run(env, env.from_collection(words).key_by(lambda w: w[0]).reduce(lambda a, b: a + "|" + b))
    expected = rolling_model(words, lambda w: w[0], lambda a, b: a + "|" + b)
    if parallelism == 1:
        assert out == expected
    assert len(out) == len(words)
    for k, outs in per_key(out, lambda s: s[0]).items():
        parts = outs[-1].split("|")
        assert Counter(parts) == Counter(w for w in words if w[0] == k)
        assert outs == ["|".join(parts[:i + 1]) for i in range(len(parts))]


# -- union --------------------------------------------------------------------------------


def test_union_of_three_sources(env, tmp_path):
    p = tmp_path / "u.txt"
    p.write_text("t1\nt2\n")
    a = env.from_elements("e1", "e2", "e3")
    b = env.generate_sequence(1, 5).map(lambda x: str(x))
    c = env.read_text_file(str(p))
    out = run(env, a.union(b, c))
    assert bag(out) == bag(["e1", "e2", "e3", "1", "2", "3", "4", "5", "t1", "t2"])


def test_union_three_collections_exact_total(env):
    a = env.from_collection(list(range(0, 100)))
    b = env.from_collection(list(range(100, 250)))
    c = env.generate_sequence(250, 399)
    out = run(env, a.union(b).union(c))
    assert sorted(out) == list(range(400))


def test_union_with_itself_twice(env):
    a = env.from_elements(1, 2)
    out = run(env, a.union(a))
    assert bag(out) == bag([1, 1, 2, 2])


def test_union_no_args_and_then_keyed(env):
    a = env.from_elements(("x", 1), ("y", 2))
    b = env.from_elements(("x", 3))
    out = run(env, a.union().union(b).key_by(lambda t: t[0]).reduce(lambda p, q: (p[0], p[1] + q[1])))
    finals = {}
    for k, v in out:
        finals[k] = max(finals.get(k, 0), v)
    assert finals == {"x": 4, "y": 2} and len(out) == 3


def test_union_rejects_other_environment(env):
    other = make_env(1)
    with pytest.raises(TypeError):
        env.from_elements(1).union(other.from_elements(2))
    with pytest.raises(TypeError):
        env.from_elements(1).union([1, 2])


# -- name, job result -----------------------------------------------------------------------


def test_name_shows_in_operator_counts(env):
    s = env.from_elements("a b", "c").name("my-source")
    words = s.flat_map(str.split).name("tokenizer")
    assert words.get_name().count("tokenizer") == 1
    out = collect(words.filter(lambda w: w != "c").name("drop-c"))
    result = env.execute("named")
    assert bag(out) == bag(["a", "b"])
    counts = result.operator_counts

    def count_of(name):
        keys = [k for k in counts if name in k]
        assert len(keys) == 1, (name, list(counts))
        return counts[keys[0]]

    assert count_of("my-source") == 2
    assert count_of("tokenizer") == 3
    assert count_of("drop-c") == 2


def test_name_returns_the_stream(env):
    s = env.from_elements(1, 2)
    assert s.name("n") is s
    sink = s.add_sink(lambda v: None)
    assert sink.name("the sink") is sink


def test_execute_result(env, parallelism):
    out = collect(env.generate_sequence(1, 10).map(lambda x: x * 2).filter(lambda x: x > 10))
    result = env.execute("my job")
    assert sorted(out) == [12, 14, 16, 18, 20]
    assert result.job_name == "my job"
    assert result.get_job_name() == "my job"
    assert isinstance(result.net_runtime_ms, int) and result.net_runtime_ms >= 0
    assert result.get_net_runtime() == result.net_runtime_ms
    counts = list(result.operator_counts.items())
    assert len(counts) == 4
    # in plan order: source, map, filter, sink
    assert [c for _, c in counts] == [10, 10, 5, 5]
    assert counts[0][0].startswith("generate_sequence")
    assert counts[1][0].startswith("map")
    assert counts[2][0].startswith("filter")


def test_execute_default_job_name(env):
    collect(env.from_elements(1))
    result = env.execute()
    assert isinstance(result.job_name, str) and result.job_name


def test_execute_runtime_measures_job(env):
    import time

    def slow(x):
        time.sleep(0.02)
        return x

    collect(env.from_elements(1, 2, 3).map(slow))
    result = env.execute("slow")
    assert result.net_runtime_ms >= 20 * 3 // env.get_parallelism() - 5


def test_execute_without_sink_fails(env):
    env.from_elements(1).map(lambda x: x)
    with pytest.raises(FerroflowError):
        env.execute()


def test_set_parallelism_validates():
    e = StreamExecutionEnvironment.get_execution_environment()
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError):
            e.set_parallelism(bad)
    assert e.set_parallelism(2) is e
    assert e.get_parallelism() == 2


def test_environment_can_run_twice_independently():
    e1 = make_env(2)
    a = collect(e1.from_elements(1, 2, 3))
    e1.execute()
    e2 = make_env(2)
    b = collect(e2.from_elements(4))
    e2.execute()
    assert bag(a) == bag([1, 2, 3]) and b == [4]


def test_udf_exception_reports_operator_and_record(env):
    def explode(x):
        if x == 7:
            raise KeyError("seven")
        return x

    collect(env.generate_sequence(1, 10).map(explode).name("exploder"))
    with pytest.raises(JobExecutionException) as info:
        env.execute("failing")
    e = info.value
    assert "failing" in str(e)
    assert e.kind == "udf"
    assert "exploder" in e.operator
    assert e.record == "7"
    assert "KeyError" in e.detail and "seven" in e.detail


def test_udf_exception_detail_has_traceback(env):
    """The failing user function's traceback is in the exception (``detail``)."""
    def explode(x):
        raise KeyError("seven")  # the line the traceback must show

    collect(env.from_elements(7).map(explode))
    with pytest.raises(JobExecutionException) as info:
        env.execute("failing")
    detail = info.value.detail
    assert "Traceback" in detail
    assert "in explode" in detail
    assert 'raise KeyError("seven")' in detail
    assert detail.rstrip().endswith("KeyError: 'seven'")


# -- the original suite's pipeline shapes ------------------------------------------------------


def test_word_count(env, parallelism):
    text = ["Who's there?", "I think I hear them. Stand, ho! Who's there?", "", "who is there"]
    out = run(env, env.from_collection(text)
              .flat_map(lambda line: line.lower().split())
              .map(lambda w: (w.strip("?!.,"), 1))
              .key_by(lambda t: t[0])
              .reduce(lambda a, b: (a[0], a[1] + b[1])))
    expected = Counter(w.strip("?!.,") for line in text for w in line.lower().split())
    finals = {}
    for w, c in out:
        finals[w] = max(finals.get(w, 0), c)
    assert finals == dict(expected)
    assert bag(out) == bag((w, i) for w, n in expected.items() for i in range(1, n + 1))
    assert finals["there"] == 3 and finals["who's"] == 2


class Point:
    """A user-defined record class."""

    def __init__(self, name, x, y):
        self.name, self.x, self.y = name, x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.name, self.x, self.y) == (other.name, other.x, other.y)

    def __hash__(self):
        return hash((self.name, self.x, self.y))

    def __repr__(self):
        return f"Point({self.name!r}, {self.x}, {self.y})"


def test_user_defined_class_records(env):
    data = [Point("a", 1, 2), Point("b", 3, 4), Point("a", 10, 20)]
    out = run(env, env.from_collection(data)
              .map(lambda p: Point(p.name, p.x * 2, p.y))
              .filter(lambda p: p.x > 0)
              .key_by(lambda p: p.name)
              .reduce(lambda p, q: Point(p.name, p.x + q.x, p.y + q.y)))
    assert bag(out) == bag([Point("a", 2, 2), Point("b", 6, 4), Point("a", 22, 22)])
    assert all(type(p) is Point for p in out)


def test_user_defined_class_identity_preserved(env, parallelism):
    """Records are Python objects moved by reference inside the process: with object
    reuse on, the collection's own objects reach the sink; with it off (the default),
    equal copies, since the collection still holds its objects."""
    objs = [Point("p", i, i) for i in range(5)]
    env.get_config().enable_object_reuse()
    out = run(env, env.from_collection(objs))
    assert sorted(id(o) for o in out) == sorted(id(o) for o in objs)
    env = make_env(parallelism)
    copies = run(env, env.from_collection(objs))
    assert sorted(copies, key=lambda p: p.x) == objs and not {id(o) for o in copies} & {id(o) for o in objs}


DATA = os.path.join(os.path.dirname(__file__), "data")


def tokenize(line):
    import re

    return re.findall(r"[a-z]+", line.lower())


def test_word_count_text_file(env, parallelism):
    """The original suite's word count over a text file: exact totals."""
    out = run(env, env.read_text_file(os.path.join(DATA, "hamlet.txt"))
              .flat_map(tokenize)
              .map(lambda w: (w, 1))
              .key_by(lambda t: t[0])
              .reduce(lambda a, b: (a[0], a[1] + b[1])))
    assert len(out) == 88  # one rolling update per word
    finals = {}
    for w, c in out:
        finals[w] = max(finals.get(w, 0), c)
    assert len(finals) == 53
    assert finals["to"] == 13 and finals["the"] == 6 and finals["sleep"] == 4 and finals["and"] == 4
    with open(os.path.join(DATA, "hamlet.txt")) as f:
        expected = Counter(w for line in f for w in tokenize(line))
    assert finals == dict(expected)
    assert bag(out) == bag((w, i) for w, n in expected.items() for i in range(1, n + 1))


def test_keyed_reduce_per_key_order_from_non_parallel_source(env, parallelism):
    """Records of one key keep their source order on the way to the keyed operator when
    they all come from one source partition (Flink's guarantee for key_by right after a
    non-parallel source), so a rolling reduce is deterministic at any parallelism."""
    data = [(i % 3, i) for i in range(3000)]
    out = run(env, env.from_collection(data).key_by(lambda t: t[0]).reduce(lambda a, b: (a[0], a[1] + b[1])))
    expected = rolling_model(data, lambda t: t[0], lambda a, b: (a[0], a[1] + b[1]))
    if parallelism == 1:
        assert out == expected
    got = per_key(out, lambda t: t[0])
    want = per_key(expected, lambda t: t[0])
    assert got == want
