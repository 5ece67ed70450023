"""``Semantics``: each option where ferroflow's behaviour and Flink's differ, both ways
(docs/semantics.md), at 1 worker, 2 threads and 2 processes (the ``env`` fixture)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from ferroflow import (KeyedProcessFunction, RuntimeExecutionMode, Semantics, StreamExecutionEnvironment, Time)
from ferroflow.testing import ProcessingTime, TestSource, Timestamped
from ferroflow.window import TumblingProcessingTimeWindows

from conftest import JOB_SETTINGS, bag, run

FERROFLOW, FLINK = Semantics(), Semantics.flink()


def test_the_defaults_are_ferroflows_and_flink_is_one_call():
    env = StreamExecutionEnvironment.get_execution_environment()
    assert env.get_semantics() == FERROFLOW
    assert (FERROFLOW.fire_partial_windows_at_end, FERROFLOW.fire_processing_timers_at_end,
            FERROFLOW.aggregation_default_field) == (True, True, None)
    env._use_flink_semantics()
    assert env.get_semantics() == FLINK
    assert (FLINK.fire_partial_windows_at_end, FLINK.fire_processing_timers_at_end,
            FLINK.aggregation_default_field) == (False, False, 0)
    assert env.set_semantics(Semantics(fire_partial_windows_at_end=False)) is env
    assert env.get_semantics() != FERROFLOW and env.get_semantics() != FLINK
    assert repr(FLINK) == ("Semantics(fire_partial_windows_at_end=False, fire_processing_timers_at_end=False, "
                           "aggregation_default_field=0)")


def test_bad_options_are_refused_at_the_call():
    with pytest.raises(TypeError, match=r"Semantics\(fire_partial_windows_at_end=...\) takes True or False, got 1"):
        Semantics(fire_partial_windows_at_end=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Semantics\(aggregation_default_field=...\) takes a field index"):
        Semantics(aggregation_default_field=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="set_semantics\\(\\) takes a ferroflow.Semantics"):
        StreamExecutionEnvironment.get_execution_environment().set_semantics("flink")  # type: ignore[arg-type]


# -- a count window's partial count at the end of input -----------------------------------------


def count_model(pairs, n, partial):
    """Per key, the sum of each full run of n values, and of the rest if ``partial``."""
    out, runs = [], {}
    for k, v in pairs:
        runs.setdefault(k, []).append(v)
        if len(runs[k]) == n:
            out.append((k, sum(runs.pop(k))))
    if partial:
        out.extend((k, sum(vs)) for k, vs in runs.items())
    return bag(out)


@JOB_SETTINGS
@given(st.lists(st.tuples(st.sampled_from("xyz"), st.integers(-9, 9)), max_size=30), st.integers(1, 4),
       st.booleans(), st.booleans())
def test_partial_count_windows_fire_at_the_end_only_with_ferroflows_default(env, pairs, n, flink, batch):
    env.set_semantics(FLINK if flink else FERROFLOW)
    env.set_runtime_mode(RuntimeExecutionMode.BATCH if batch else RuntimeExecutionMode.STREAMING)
    out = run(env, env.from_collection(pairs).key_by(lambda p: p[0]).count_window(n)
              .reduce(lambda a, b: (a[0], a[1] + b[1])))
    assert bag(out) == count_model(pairs, n, partial=not flink)


def test_pyflinks_tumbling_count_window_example(env):
    """PyFlink's windowing/tumbling_count_window.py prints (hi,4) (hello,6) (hello,12):
    hi's third element never fires (tests/data/pyflink_examples)."""
    data = [("hi", 1), ("hi", 3), ("hi", 5), ("hello", 2), ("hello", 4), ("hello", 5), ("hello", 7)]
    env._use_flink_semantics()
    out = run(env, env.from_collection(data).key_by(lambda p: p[0]).count_window(2)
              .reduce(lambda a, b: (a[0], a[1] + b[1])))
    assert bag(out) == bag([("hi", 4), ("hello", 6), ("hello", 12)])


# -- processing-time timers at the end of input --------------------------------------------------


def processing_job(env, semantics, mode=RuntimeExecutionMode.STREAMING):
    env.set_semantics(semantics)
    env.set_runtime_mode(mode)
    # The manual clock stops at 5: the windows ending at 100 never come due while the input runs.
    events = [("a", 1), ("b", 2), ProcessingTime(5), ("a", 3)]
    return (env.add_source(TestSource(events, processing_time_start=0)).key_by(lambda p: p[0])
            .window(TumblingProcessingTimeWindows.of(Time.milliseconds(100))).reduce(lambda a, b: (a[0], a[1] + b[1])))


def test_processing_time_windows_pending_at_the_end(env):
    assert bag(run(env, processing_job(env, FERROFLOW))) == bag([("a", 4), ("b", 2)])


def test_processing_time_windows_pending_at_the_end_with_flinks_rule(env):
    assert run(env, processing_job(env, FLINK)) == []


def test_flinks_batch_mode_fires_processing_time_windows_at_the_end(env):
    out = run(env, processing_job(env, FLINK, RuntimeExecutionMode.BATCH))
    assert bag(out) == bag([("a", 4), ("b", 2)])


class Later(KeyedProcessFunction):
    """A processing-time timer 1000 ms after each record and an event-time one 1 ms after."""

    def process_element(self, value, ctx):
        ctx.timer_service().register_processing_time_timer(ctx.timer_service().current_processing_time() + 1000)
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 1)
        return []

    def on_timer(self, timestamp, ctx):
        yield (ctx.get_current_key(), str(ctx.time_domain()))


@pytest.mark.parametrize("semantics", [FERROFLOW, FLINK], ids=["ferroflow", "flink"])
def test_process_functions_processing_time_timers_at_the_end(env, semantics):
    env.set_semantics(semantics)
    events = [Timestamped(("a", 1), 10), Timestamped(("b", 2), 20)]
    out = run(env, env.add_source(TestSource(events, processing_time_start=0)).key_by(lambda p: p[0])
              .process(Later()))
    want = [("a", "TimeDomain.EVENT_TIME"), ("b", "TimeDomain.EVENT_TIME")]
    if semantics.fire_processing_timers_at_end:
        want += [("a", "TimeDomain.PROCESSING_TIME"), ("b", "TimeDomain.PROCESSING_TIME")]
    assert bag(out) == bag(want)


# -- sum() (and min, max, min_by, max_by) without a field -------------------------------------------


def test_sum_without_a_field_sums_the_records_by_default(env):
    out = run(env, env.from_collection([1, 2, 3]).key_by(lambda x: x % 2).sum())
    assert bag(out) == bag([1, 2, 4])


def test_sum_without_a_field_sums_field_0_with_flinks_rule(env):
    env._use_flink_semantics()
    out = run(env, env.from_collection([(1, "a"), (2, "b"), (3, "a")]).key_by(lambda t: t[1]).sum())
    assert bag(out) == bag([(1, "a"), (2, "b"), (4, "a")])


def test_position_0_of_a_number_is_the_number_with_flinks_rule(env):
    env._use_flink_semantics()
    out = run(env, env.from_collection([1, 2, 3]).key_by(lambda x: x % 2).sum())
    assert bag(out) == bag([1, 2, 4])


@pytest.mark.parametrize("op,want", [("min", [(5, "a"), (2, "a")]), ("max", [(5, "a"), (5, "a")]),
                                     ("min_by", [(5, "a"), (2, "a")]), ("max_by", [(5, "a"), (5, "a")])])
def test_the_other_aggregations_take_the_default_field_too(env, op, want):
    env._use_flink_semantics()
    out = run(env, getattr(env.from_collection([(5, "a"), (2, "a")]).key_by(lambda t: t[1]), op)())
    assert out == want


def test_an_explicit_star_is_still_the_whole_record(env):
    env._use_flink_semantics()
    out = run(env, env.from_collection([1, 2, 3]).key_by(lambda x: 0).sum("*"))
    assert out == [1, 3, 6]


def test_a_windowed_sum_without_a_field_follows_the_option(env):
    env._use_flink_semantics()
    out = run(env, env.from_collection([(1, "a"), (2, "a"), (3, "a")]).key_by(lambda t: t[1]).count_window(3).sum())
    assert out == [(6, "a")]
