"""Built-in window aggregations (``window(...).sum(2)``) and timestamps read from a field
(``WatermarkStrategy.with_timestamp_field``): the Rust fast paths must give exactly what
the Python path gives on the same input (random streams, 1/2 workers and 2 processes)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ferroflow import WatermarkStrategy
from ferroflow.window import SlidingEventTimeWindows, TumblingEventTimeWindows

from conftest import PARALLELISMS, bag, make_env, run

EVENTS = st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 5000), st.integers(-50, 50)),
                  min_size=1, max_size=40)

PY_REDUCE = {
    "sum": lambda a, b: (a[0], a[1], a[2] + b[2]),
    "min": lambda a, b: (a[0], a[1], min(a[2], b[2])),
    "max": lambda a, b: (a[0], a[1], max(a[2], b[2])),
    "min_by": lambda a, b: b if b[2] < a[2] else a,
    "max_by": lambda a, b: b if b[2] > a[2] else a,
}


def windowed(env, events, fast: bool, assigner):
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(100)
    strategy = strategy.with_timestamp_field(1) if fast else strategy.with_timestamp_assigner(lambda e: e[1])
    stream = env.from_collection(events).assign_timestamps_and_watermarks(strategy)
    return stream.key_by(0) if fast else stream.key_by(lambda e: e[0])


@pytest.mark.parametrize("parallelism", PARALLELISMS, ids=lambda p: f"p{p}")
@pytest.mark.parametrize("op", sorted(PY_REDUCE))
@settings(max_examples=8, deadline=None)
@given(events=EVENTS, sliding=st.booleans())
def test_builtin_window_aggregations_equal_the_python_reduce(parallelism, op, events, sliding):
    assigner = SlidingEventTimeWindows.of(1000, 500) if sliding else TumblingEventTimeWindows.of(1000)
    env = make_env(parallelism)
    fast = run(env, getattr(windowed(env, events, True, assigner).window(assigner), op)(2))
    env = make_env(parallelism)
    slow = run(env, windowed(env, events, False, assigner).window(assigner).reduce(PY_REDUCE[op]))
    assert bag(fast) == bag(slow)


def test_timestamp_field_reads_the_field_and_refuses_non_ints(env):
    out = run(env, env.from_collection([("a", 1500), ("a", 200)])
              .assign_timestamps_and_watermarks(WatermarkStrategy.for_monotonous_timestamps().with_timestamp_field(1))
              .key_by(0).window(TumblingEventTimeWindows.of(1000)).apply(lambda k, w, vs: [(k, w.start, len(vs))]))
    # One batch: both go out before the watermark moves past 1500, so 200 is not late.
    assert sorted(out) == [("a", 0, 1), ("a", 1000, 1)]
    with pytest.raises(Exception, match="timestamp field must return milliseconds as an int"):
        run(env, env.from_collection([("a", "soon")])
            .assign_timestamps_and_watermarks(WatermarkStrategy.for_monotonous_timestamps().with_timestamp_field(1))
            .key_by(0).window(TumblingEventTimeWindows.of(1000)).sum(1))


def test_timestamp_field_must_be_a_field():
    with pytest.raises(TypeError, match="with_timestamp_field"):
        WatermarkStrategy.for_monotonous_timestamps().with_timestamp_field(1.5)
