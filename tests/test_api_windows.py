"""Windows on keyed streams: time_window and count_window, with reduce and apply."""

from __future__ import annotations

import datetime
import time
from collections import Counter

import pytest
from hypothesis import given, strategies as st

from ferroflow import GlobalWindow, ReduceFunction, Time, TimeWindow, WindowFunction
from conftest import (JOB_SETTINGS, PARTIAL_WINDOWS, PROCESSING_TIME_AT_END, bag, fired_at_end, flink_semantics,
                      make_env, per_key, run)

#: time_window() is in processing time, and this file's inputs end long before its windows:
#: under Flink's semantics (the pyflink pass) those windows never fire.
processing_time_at_end = pytest.mark.flink_semantics(PROCESSING_TIME_AT_END)
partial_windows = pytest.mark.flink_semantics(PARTIAL_WINDOWS)

#: Far longer than any test, and aligned so that "now" is always inside one window:
#: windows start at multiples of the size since the epoch, and this size is > now.
HUGE = Time.days(365 * 100)

# -- Time -----------------------------------------------------------------------------------


def test_time_units():
    assert Time.milliseconds(250).to_milliseconds() == 250
    assert Time.seconds(3).to_milliseconds() == 3_000
    assert Time.minutes(10).to_milliseconds() == 600_000
    assert Time.hours(2).to_milliseconds() == 7_200_000
    assert Time.seconds(60) == Time.minutes(1)
    assert Time.milliseconds(1000) == Time.seconds(1)
    assert Time.minutes(1) != Time.seconds(59)


def test_window_size_validation(env):
    keyed = env.from_elements(1).key_by(lambda x: x)
    with pytest.raises(ValueError):
        keyed.time_window(Time.milliseconds(0))
    with pytest.raises(TypeError):
        keyed.time_window("10s")
    with pytest.raises(ValueError):
        keyed.count_window(0)
    with pytest.raises(ValueError):
        keyed.count_window(3, 0)


# -- time windows ------------------------------------------------------------------------------

SALES = [("apple", 3), ("pear", 1), ("apple", 4), ("plum", 10), ("pear", 2), ("apple", 5)]


@processing_time_at_end
def test_time_window_reduce(env):
    out = run(env, env.from_collection(SALES).key_by(lambda t: t[0])
              .time_window(HUGE).reduce(lambda a, b: (a[0], a[1] + b[1])))
    assert bag(out) == bag(fired_at_end(env, [("apple", 12), ("pear", 3), ("plum", 10)]))


@processing_time_at_end
def test_time_window_reduce_minutes(env):
    """Time.minutes(10): everything lands in one window per key (unless the test runs
    across a 10-minute boundary, then in two: the totals still hold). Under Flink's
    semantics only a window the boundary closed fires, at most one per key."""
    out = run(env, env.from_collection(SALES).key_by(lambda t: t[0])
              .time_window(Time.minutes(10)).reduce(lambda a, b: (a[0], a[1] + b[1])))
    totals = Counter()
    for k, v in out:
        totals[k] += v
    if flink_semantics(env):
        assert all(totals[k] <= v for k, v in {"apple": 12, "pear": 3, "plum": 10}.items()) and len(out) <= 3
        return
    assert totals == {"apple": 12, "pear": 3, "plum": 10}
    assert 3 <= len(out) <= 6


class Totals(ReduceFunction):
    def reduce(self, value1, value2):
        return (value1[0], value1[1] + value2[1])


@processing_time_at_end
def test_time_window_reduce_function_class_many_keys(env):
    data = [(f"k{i % 13}", i) for i in range(1000)]
    out = run(env, env.from_collection(data).key_by(lambda t: t[0]).time_window(HUGE).reduce(Totals()))
    expected = Counter()
    for k, v in data:
        expected[k] += v
    assert len(out) == len(fired_at_end(env, expected))
    assert dict(out) == dict(fired_at_end(env, expected.items()))


@processing_time_at_end
def test_time_window_accepts_timedelta_and_millis(env):
    keyed = env.from_collection(SALES).key_by(lambda t: t[0])
    a = keyed.time_window(datetime.timedelta(days=365 * 100)).reduce(lambda x, y: (x[0], x[1] + y[1]))
    b = keyed.time_window(HUGE.to_milliseconds()).reduce(lambda x, y: (x[0], x[1] + y[1]))
    out = run(env, a.union(b))
    assert bag(out) == bag(fired_at_end(env, [("apple", 12), ("pear", 3), ("plum", 10)] * 2))


@processing_time_at_end
def test_time_window_apply_function(env):
    def summarize(key, window, values):
        yield (key, sorted(v for _, v in values), type(window).__name__)

    out = run(env, env.from_collection(SALES).key_by(lambda t: t[0]).time_window(HUGE).apply(summarize))
    assert bag(map(repr, out)) == bag(map(repr, fired_at_end(env, [
        ("apple", [3, 4, 5], "TimeWindow"), ("pear", [1, 2], "TimeWindow"), ("plum", [10], "TimeWindow")])))


class WindowStats(WindowFunction):
    def apply(self, key, window, values, collector):
        collector.collect((key, len(values), sum(v for _, v in values), window.get_end() - window.get_start()))


@processing_time_at_end
def test_time_window_apply_window_function_with_collector(env):
    out = run(env, env.from_collection(SALES).key_by(lambda t: t[0]).time_window(HUGE).apply(WindowStats()))
    size = HUGE.to_milliseconds()
    assert bag(out) == bag(fired_at_end(env, [("apple", 3, 12, size), ("pear", 2, 3, size), ("plum", 1, 10, size)]))


@processing_time_at_end
def test_time_window_apply_window_bounds(env):
    seen = []

    def record_window(key, window, values):
        seen.append((key, window))
        return [len(values)]

    before = int(time.time() * 1000)
    out = run(env, env.from_elements(1, 2, 3, 4).key_by(lambda x: x % 2).time_window(Time.minutes(10)).apply(record_window))
    after = int(time.time() * 1000)
    if flink_semantics(env):  # only a window that a 10-minute boundary closed during the run fires
        assert sum(out) <= 4
    else:
        assert sum(out) == 4
    for key, w in seen:
        assert isinstance(w, TimeWindow)
        assert w.end - w.start == 600_000
        assert w.start % 600_000 == 0
        assert w.start <= after and w.end > before
        assert w.max_timestamp() == w.end - 1


@processing_time_at_end
def test_time_window_apply_values_keep_arrival_order_p1():
    env = make_env(1)
    data = [("k", i) for i in range(20)]
    out = run(env, env.from_collection(data).key_by(lambda t: t[0]).time_window(HUGE)
              .apply(lambda k, w, vs: [[v for _, v in vs]]))
    assert out == fired_at_end(env, [list(range(20))])


@processing_time_at_end
def test_time_window_apply_key_is_the_key_value(env):
    data = [((1, "a"), 1), ((1, "a"), 2), ((2, "b"), 3)]
    out = run(env, env.from_collection(data).key_by(lambda t: t[0]).time_window(HUGE)
              .apply(lambda key, w, vs: [(key, len(vs))]))
    assert bag(out) == bag(fired_at_end(env, [((1, "a"), 2), ((2, "b"), 1)]))


@processing_time_at_end
def test_time_window_sliding(env):
    """size = 2 * slide: every record falls in exactly two windows."""
    size = Time.days(365 * 200)
    slide = Time.days(365 * 100)
    out = run(env, env.from_collection(SALES).key_by(lambda t: t[0]).time_window(size, slide)
              .apply(lambda k, w, vs: [(k, sum(v for _, v in vs), w.start, w.end)]))
    assert bag((k, s) for k, s, _, _ in out) == bag(fired_at_end(env, [("apple", 12), ("pear", 3), ("plum", 10)] * 2))
    for k in {k for k, *_ in out}:
        windows = sorted((s, e) for kk, _, s, e in out if kk == k)
        assert len(windows) == 2
        (s1, e1), (s2, e2) = windows
        assert e1 - s1 == e2 - s2 == size.to_milliseconds()
        assert s2 - s1 == slide.to_milliseconds()


@processing_time_at_end
def test_time_window_sliding_reduce(env):
    out = run(env, env.from_collection(SALES).key_by(lambda t: t[0])
              .time_window(Time.days(365 * 200), Time.days(365 * 100)).reduce(lambda a, b: (a[0], a[1] + b[1])))
    assert bag(out) == bag(fired_at_end(env, [("apple", 12), ("pear", 3), ("plum", 10)] * 2))


@processing_time_at_end
def test_time_window_short_windows_conserve_totals(env):
    """Short windows fire while the job runs: however records are cut into windows,
    each key's window sums add up to its total, and each record is in one window.
    Under Flink's semantics the windows still open at the end are lost: at most the total."""
    n = 3000
    data = [(i % 5, 1) for i in range(n)]
    out = run(env, env.from_collection(data).key_by(lambda t: t[0])
              .time_window(Time.milliseconds(2)).reduce(lambda a, b: (a[0], a[1] + b[1])))
    totals = Counter()
    for k, v in out:
        totals[k] += v
    if flink_semantics(env):
        assert set(totals) <= set(range(5)) and all(v <= n // 5 for v in totals.values())
    else:
        assert totals == {k: n // 5 for k in range(5)}


def test_time_window_empty_input(env):
    out = run(env, env.from_collection([]).key_by(lambda x: x).time_window(HUGE).reduce(lambda a, b: a))
    assert out == []


@processing_time_at_end
def test_window_apply_exception_fails_job(env):
    from ferroflow import JobExecutionException

    def bad(key, window, values):
        raise ValueError("bad window")

    from conftest import collect
    collect(env.from_elements(1, 2).key_by(lambda x: x).time_window(HUGE).apply(bad))
    if flink_semantics(env):  # the window never fires, so its function is never called
        env.execute("bad window")
        return
    with pytest.raises(JobExecutionException) as info:
        env.execute("bad window")
    assert "bad window" in info.value.detail


# -- count windows ----------------------------------------------------------------------------


def count_window_model(values, size, slide, flink=False):
    """Flink's count_window(size, slide) on one key, plus ferroflow's end-of-input flush
    (not with ``flink``): fires every `slide` records with the last `size`; at the end,
    if records arrived since the last firing, the last `size` (tumbling: those since the
    last firing)."""
    fired = []
    since = 0
    for i in range(len(values)):
        since += 1
        if since == slide:
            since = 0
            fired.append(values[max(0, i + 1 - size):i + 1])
    if since and not flink:
        if slide == size:
            fired.append(values[len(values) - since:])
        else:
            fired.append(values[max(0, len(values) - size):])
    return fired


def test_count_window_model_examples():
    assert count_window_model(list(range(1, 8)), 3, 3) == [[1, 2, 3], [4, 5, 6], [7]]
    assert count_window_model(list(range(1, 8)), 3, 2) == [[1, 2], [2, 3, 4], [4, 5, 6], [5, 6, 7]]
    assert count_window_model(list(range(1, 7)), 3, 3) == [[1, 2, 3], [4, 5, 6]]
    assert count_window_model(list(range(1, 8)), 3, 3, flink=True) == [[1, 2, 3], [4, 5, 6]]
    assert count_window_model(list(range(1, 8)), 3, 2, flink=True) == [[1, 2], [2, 3, 4], [4, 5, 6]]


@partial_windows
def test_count_window_tumbling_apply(env, parallelism):
    data = [("a", i) for i in range(1, 8)] + [("b", i) for i in range(10, 12)]
    out = run(env, env.from_collection(data).key_by(lambda t: t[0]).count_window(3)
              .apply(lambda k, w, vs: [(k, [v for _, v in vs])]))
    groups = {k: [vs for _, vs in g] for k, g in per_key(out, lambda t: t[0]).items()}
    if flink_semantics(env):  # "a"'s [7] and "b"'s [10, 11] are partial
        assert [len(w) for w in groups["a"]] == [3, 3] and "b" not in groups
        assert parallelism > 1 or groups["a"] == [[1, 2, 3], [4, 5, 6]]
    elif parallelism == 1:
        assert groups == {"a": [[1, 2, 3], [4, 5, 6], [7]], "b": [[10, 11]]}
    else:
        # arrival order per key is not defined with 2 workers; the window sizes are
        assert [len(w) for w in groups["a"]] == [3, 3, 1]
        assert sorted(v for w in groups["a"] for v in w) == list(range(1, 8))
        assert groups["b"] in ([[10, 11]], [[11, 10]])


@partial_windows
def test_count_window_reduce(env):
    data = [(i % 2, i) for i in range(10)]  # key 0: 0 2 4 6 8, key 1: 1 3 5 7 9
    out = run(env, env.from_collection(data).key_by(lambda t: t[0]).count_window(2)
              .reduce(lambda a, b: (a[0], a[1] + b[1])))
    groups = per_key(out, lambda t: t[0])
    if flink_semantics(env):  # 2 + 2 per key; the fifth record's window is partial
        assert len(groups[0]) == 2 and len(groups[1]) == 2
        assert env.get_parallelism() > 1 or bag(out) == bag([(0, 2), (0, 10), (1, 4), (1, 12)])
        return
    assert len(groups[0]) == 3 and len(groups[1]) == 3  # 2 + 2 + 1 per key
    assert sum(v for _, v in groups[0]) == 20 and sum(v for _, v in groups[1]) == 25
    if env.get_parallelism() == 1:
        assert bag(out) == bag([(0, 2), (0, 10), (0, 8), (1, 4), (1, 12), (1, 9)])


def test_count_window_exact_multiple_has_no_extra_window(env):
    out = run(env, env.from_collection(list(range(12))).key_by(lambda x: "k").count_window(4)
              .apply(lambda k, w, vs: [len(vs)]))
    assert out == [4, 4, 4]


@partial_windows
def test_count_window_sliding(env, parallelism):
    data = list(range(1, 8))
    out = run(env, env.from_collection(data).key_by(lambda x: 0).count_window(3, 2)
              .apply(lambda k, w, vs: [list(vs)]))
    model = count_window_model(data, 3, 2, flink_semantics(env))
    if parallelism == 1:
        assert out == model
    else:
        assert [len(w) for w in out] == [len(w) for w in model]
        assert {v for w in out for v in w} == {v for w in model for v in w}


@partial_windows
def test_count_window_sliding_reduce(env, parallelism):
    out = run(env, env.from_collection(list(range(1, 8))).key_by(lambda x: 0).count_window(3, 2)
              .reduce(lambda a, b: a + b))
    expected = [3, 9, 15] + fired_at_end(env, [18])
    assert len(out) == len(expected)
    if parallelism == 1:
        assert out == expected


@partial_windows
def test_count_window_apply_gets_global_window_and_key(env):
    seen = []

    class Fn(WindowFunction):
        def apply(self, key, window, values, collector):
            collector.collect((key, window is GlobalWindow.get(), len(values)))

    out = run(env, env.from_elements("x", "y", "x").key_by(lambda s: s).count_window(5).apply(Fn()))
    assert bag(out) == bag(fired_at_end(env, [("x", True, 2), ("y", True, 1)]))


def test_count_window_size_one(env):
    out = run(env, env.generate_sequence(1, 20).key_by(lambda x: x % 3).count_window(1).reduce(lambda a, b: a + b))
    assert bag(out) == bag(range(1, 21))


@partial_windows
def test_count_window_many_keys_totals(env):
    n = 2000
    out = run(env, env.generate_sequence(0, n - 1).map(lambda x: (x % 7, x)).key_by(lambda t: t[0])
              .count_window(10).apply(lambda k, w, vs: [(k, len(vs), sum(v for _, v in vs))]))
    for k in range(7):
        mine = [(c, s) for kk, c, s in out if kk == k]
        count = len([x for x in range(n) if x % 7 == k])
        partial = fired_at_end(env, [count % 10] if count % 10 else [])
        assert sorted(c for c, _ in mine) == sorted([10] * (count // 10) + partial)
        if not flink_semantics(env):  # Flink's: the records of the partial window are not in any
            assert sum(s for _, s in mine) == sum(x for x in range(n) if x % 7 == k)


@JOB_SETTINGS
@given(keys=st.lists(st.sampled_from("abc"), max_size=40), size=st.integers(1, 5), slide=st.integers(1, 6),
       tumbling=st.booleans())
def test_count_window_matches_model(parallelism, keys, size, slide, tumbling):
    if tumbling:
        slide = size
    records = [(k, i) for i, k in enumerate(keys)]
    env = make_env(parallelism)
    out = run(env, env.from_collection(records).key_by(lambda t: t[0]).count_window(size, slide)
              .apply(lambda k, w, vs: [(k, [i for _, i in vs])]))
    got = {k: [w for _, w in g] for k, g in per_key(out, lambda t: t[0]).items()}
    model = {}
    for k in set(keys):
        model[k] = count_window_model([i for kk, i in records if kk == k], size, slide)
    if parallelism == 1:
        assert got == model
    else:
        assert set(got) == set(model)
        for k in model:
            assert [len(w) for w in got[k]] == [len(w) for w in model[k]]
            if tumbling:
                assert sorted(i for w in got[k] for i in w) == sorted(i for kk, i in records if kk == k)


@JOB_SETTINGS
@given(records=st.lists(st.tuples(st.integers(0, 4), st.integers(-100, 100)), max_size=50))
def test_time_window_reduce_matches_model(parallelism, records):
    env = make_env(parallelism)
    out = run(env, env.from_collection(records).key_by(lambda t: t[0]).time_window(HUGE)
              .reduce(lambda a, b: (a[0], a[1] + b[1])))
    expected = Counter()
    for k, v in records:
        expected[k] += v
    assert len(out) == len(expected)
    assert dict(out) == dict(expected)


@processing_time_at_end
def test_window_word_count(env):
    """The original suite's windowed word count: exact counts per word."""
    lines = ["a b c a", "b a", "c c c"]
    out = run(env, env.from_collection(lines).flat_map(str.split).map(lambda w: (w, 1))
              .key_by(lambda t: t[0]).time_window(HUGE)
              .reduce(lambda x, y: (x[0], x[1] + y[1])))
    assert bag(out) == bag(fired_at_end(env, [("a", 3), ("b", 2), ("c", 4)]))
