"""``env.set_runtime_mode(RuntimeExecutionMode.BATCH)``: a bounded job's final results
only, as Flink's batch mode (see docs/semantics.md). Checked against plain models, at
1 worker, 2 threads and 2 processes (the ``env`` fixture)."""

from __future__ import annotations

import os
from collections import defaultdict

import pytest
from hypothesis import given, strategies as st

from ferroflow import (JobExecutionException, KeyedProcessFunction, RuntimeExecutionMode, SourceFunction,
                       StreamExecutionEnvironment, Time, WatermarkStrategy)
from ferroflow.testing import ProcessingTime, TestSource, Timestamped, Watermark
from ferroflow.window import TumblingEventTimeWindows

from conftest import JOB_SETTINGS, SubtaskTagger, bag, make_env, run

BATCH = RuntimeExecutionMode.BATCH

WORDS = os.path.join(os.path.dirname(__file__), "data", "pyflink_examples", "2.3.0", "word_count.py.out")


def batch(env):
    return env.set_runtime_mode(BATCH)


def key_order(key) -> tuple:
    """Where a str or int key comes in batch mode's output on one worker: the order of
    the keys' encodings (a str's: its UTF-8 length first; an int's: little-endian)."""
    if isinstance(key, str):
        data = key.encode()
        return (4, len(data), data)
    return (1, (key & (2**64 - 1)).to_bytes(8, "little"))


# -- settings ---------------------------------------------------------------------------------


def test_the_mode_is_a_runtime_execution_mode():
    env = StreamExecutionEnvironment.get_execution_environment()
    assert env.get_runtime_mode() is RuntimeExecutionMode.STREAMING
    assert env.set_runtime_mode(RuntimeExecutionMode.AUTOMATIC) is env
    assert env.get_runtime_mode() is RuntimeExecutionMode.AUTOMATIC
    with pytest.raises(TypeError, match="set_runtime_mode\\(\\) takes RuntimeExecutionMode.STREAMING, BATCH or "
                                        "AUTOMATIC, got 'batch'"):
        env.set_runtime_mode("batch")


# -- rolling aggregations ----------------------------------------------------------------------


@JOB_SETTINGS
@given(st.lists(st.tuples(st.sampled_from("abcdefg"), st.integers(-1000, 1000)), max_size=40))
def test_a_rolling_reduce_emits_each_keys_final_value_once(env, pairs):
    finals = {}
    for k, v in pairs:
        finals[k] = (k, finals[k][1] + v) if k in finals else (k, v)
    out = run(batch(env), env.from_collection(pairs).key_by(lambda p: p[0]).reduce(lambda a, b: (a[0], a[1] + b[1])))
    assert bag(out) == bag(finals.values())


@pytest.mark.parametrize("op", ["sum", "min", "max", "min_by", "max_by"])
@pytest.mark.parametrize("key_field", [True, False])
def test_built_in_aggregations_give_the_final_value_per_key(env, op, key_field):
    pairs = [("a", 3), ("b", 1), ("a", 1), (7, 2.5), ("a", 5), (7, -1), ("b", 4)]
    model = {}
    for k, v in pairs:
        if k not in model:
            model[k] = (k, v)
        elif op == "sum":
            model[k] = (k, model[k][1] + v)
        elif op in ("min", "min_by"):
            model[k] = (k, min(model[k][1], v))
        else:
            model[k] = (k, max(model[k][1], v))
    keyed = env.from_collection(pairs).key_by(0 if key_field else (lambda p: p[0]))
    out = run(batch(env), getattr(keyed, op)(1))
    assert bag(out) == bag(model.values())


def test_streaming_mode_still_emits_every_update(env):
    out = run(env, env.from_collection([("a", 1), ("a", 2), ("b", 3)]).key_by(0).sum(1))
    assert bag(out) == bag([("a", 1), ("a", 3), ("b", 3)])


def test_on_one_worker_keys_come_in_flinks_batch_order():
    """Flink's batch mode sorts keys by their serialized bytes: PyFlink's own word count
    (tests/data/pyflink_examples) prints (a,5) before (Be,1). The same words and counts,
    shuffled, come out in exactly its order."""
    with open(WORDS, encoding="utf-8") as f:
        lines = f.read().splitlines()[6:]
    counts = [(line[1:line.rindex(",")], int(line[line.rindex(",") + 1:-1])) for line in lines]
    words = [w for w, n in counts for _ in range(n)]
    words = words[1::2] + words[::2]
    env = batch(make_env(1))
    out = run(env, env.from_collection(words).map(lambda w: (w, 1)).key_by(lambda p: p[0])
              .reduce(lambda a, b: (a[0], a[1] + b[1])))
    assert out == counts
    assert [k for k, _ in out] == sorted((k for k, _ in out), key=key_order)


def test_each_worker_emits_its_keys_in_key_order(env):
    pairs = [(k, 1) for k in [5, "x", -3, "bb", 300, "a", 5, "x", "ccc", 7, "dd"]]
    out = run(batch(env), env.from_collection(pairs).key_by(0).sum(1).map(SubtaskTagger()))
    assert bag(r for _, r in out) == bag([(5, 2), ("x", 2), (-3, 1), ("bb", 1), (300, 1), ("a", 1), ("ccc", 1),
                                          (7, 1), ("dd", 1)])
    by_worker = defaultdict(list)
    for worker, (k, _) in out:
        by_worker[worker].append(k)
    for keys in by_worker.values():
        assert keys == sorted(keys, key=key_order)


# -- event time and processing time ----------------------------------------------------------


def test_windows_ignore_watermarks_and_fire_at_the_end(env):
    """Streaming drops (1, 3): the watermark passed its window. Batch has no late data."""
    events = [Timestamped(("a", 1), 1), Timestamped(("b", 2), 12), Watermark(30), Timestamped(("a", 3), 3),
              Timestamped(("a", 5), 31)]

    def job(e):
        return (e.add_source(TestSource(events)).key_by(lambda r: r[0])
                .window(TumblingEventTimeWindows.of(Time.milliseconds(10))).reduce(lambda x, y: (x[0], x[1] + y[1])))

    assert bag(run(batch(env), job(env))) == bag([("a", 4), ("b", 2), ("a", 5)])
    streaming = make_env(1)
    assert bag(run(streaming, job(streaming))) == bag([("a", 1), ("b", 2), ("a", 5)])


def test_watermark_strategies_only_assign_timestamps(env):
    class Ts:
        def extract_timestamp(self, value, previous):
            return value[1]

    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(Ts())
    data = [("a", 1), ("a", 25), ("a", 2), ("b", 15), ("a", 27)]
    out = run(batch(env), env.from_collection(data).assign_timestamps_and_watermarks(strategy).key_by(lambda r: r[0])
              .window(TumblingEventTimeWindows.of(Time.milliseconds(10))).reduce(lambda x, y: (x[0], x[1] + y[1])))
    assert bag(out) == bag([("a", 3), ("a", 52), ("b", 15)])


class Timers(KeyedProcessFunction):
    """Emits each record with the watermark it saw; registers an event-time timer 10
    after it and a processing-time timer 5 after the clock; timers emit the count."""

    def open(self, runtime_context):
        from ferroflow import ValueStateDescriptor
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, value, ctx):
        self.count.update((self.count.value() or 0) + 1)
        service = ctx.timer_service()
        service.register_event_time_timer(ctx.timestamp() + 10)
        service.register_processing_time_timer(service.current_processing_time() + 5)
        yield ("element", value[0], value[1], service.current_watermark())

    def on_timer(self, timestamp, ctx):
        # Registered at a key's end: dropped (Flink stops a key's timers then).
        ctx.timer_service().register_event_time_timer(timestamp + 1)
        yield ("timer", ctx.get_current_key(), str(ctx.time_domain()), timestamp, self.count.value())


def test_a_keyed_process_takes_each_key_with_its_timers_at_the_end(env):
    events = [Timestamped(("b", 1), 20), Timestamped(("a", 2), 5), Watermark(100), ProcessingTime(50),
              Timestamped(("a", 3), 1), Timestamped(("b", 4), 2)]
    out = run(batch(env), env.add_source(TestSource(events, processing_time_start=0))
              .key_by(lambda r: r[0]).process(Timers()))
    no_watermark = -2**63
    per_key = defaultdict(list)
    for r in out:
        per_key[r[1]].append(r)
    # Each key's records by timestamp, then its event-time timers, then processing-time ones.
    assert per_key["a"] == [("element", "a", 3, no_watermark), ("element", "a", 2, no_watermark),
                            ("timer", "a", "TimeDomain.EVENT_TIME", 11, 2),
                            ("timer", "a", "TimeDomain.EVENT_TIME", 15, 2),
                            ("timer", "a", "TimeDomain.PROCESSING_TIME", 55, 2)]
    assert per_key["b"] == [("element", "b", 4, no_watermark), ("element", "b", 1, no_watermark),
                            ("timer", "b", "TimeDomain.EVENT_TIME", 12, 2),
                            ("timer", "b", "TimeDomain.EVENT_TIME", 30, 2),
                            ("timer", "b", "TimeDomain.PROCESSING_TIME", 55, 2)]
    if env.get_parallelism() == 1:
        assert out == per_key["a"] + per_key["b"], "key by key"


# -- what batch mode refuses ----------------------------------------------------------------------


class Finite(SourceFunction):
    def run(self, ctx):
        for x in [("a", 1), ("a", 2)]:
            ctx.collect(x)

    def cancel(self):
        pass


def test_a_source_that_need_not_end_is_refused_in_one_line(env):
    batch(env).add_source(Finite()).key_by(0).sum(1).print()
    with pytest.raises(JobExecutionException) as info:
        env.execute("unbounded")
    message = str(info.value)
    assert "add_source 'Finite'" in message and "RuntimeExecutionMode.BATCH needs bounded sources" in message
    assert "\n" not in message


def test_batch_refuses_a_socket_at_submit():
    env = batch(make_env(1))
    env.socket_text_stream("127.0.0.1", 9).print()
    with pytest.raises(JobExecutionException, match="socket_text_stream .*RuntimeExecutionMode.BATCH needs "
                                                    "bounded sources"):
        env.execute("socket")


def test_automatic_is_batch_exactly_when_every_source_is_bounded(env):
    env.set_runtime_mode(RuntimeExecutionMode.AUTOMATIC)
    out = run(env, env.from_collection([("a", 1), ("a", 2)]).key_by(0).sum(1))
    assert out == [("a", 3)]
    env.set_runtime_mode(RuntimeExecutionMode.AUTOMATIC)
    out = run(env, env.add_source(Finite()).key_by(0).sum(1))
    assert bag(out) == bag([("a", 1), ("a", 3)]), "a SourceFunction runs streaming, as in Flink"


def test_checkpointing_is_refused(tmp_path):
    env = batch(make_env(1))
    env.enable_checkpointing(100)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path))
    env.from_collection([1, 2]).key_by(lambda x: x).sum().print()
    with pytest.raises(JobExecutionException, match="checkpointing does not apply to a job in "
                                                    "RuntimeExecutionMode.BATCH"):
        env.execute("checkpointed")
