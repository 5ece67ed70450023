"""User function objects: open(runtime_context)/close() once per worker, a deep copy
of the function object per worker, and the runtime context."""

from __future__ import annotations

import time

import pytest

from ferroflow import (FilterFunction, FlatMapFunction, KeySelector, MapFunction, OutputSelector, ReduceFunction,
                       RuntimeContext, SinkFunction, Time, WindowFunction)
from conftest import PARTIAL_WINDOWS, PROCESSING_TIME_AT_END, bag, collect, fired_at_end, make_env, run

#: Module-level, so every worker's copy of a function object writes to the same log.
LOG: list = []


class Rich:
    """Records open/close and any call made outside open..close."""

    KIND = "?"

    def open(self, runtime_context):
        self.index = runtime_context.get_index_of_this_subtask()
        self.closed = False
        LOG.append(("open", self.KIND, self.index, runtime_context.get_number_of_parallel_subtasks()))

    def touch(self):
        if getattr(self, "index", None) is None or getattr(self, "closed", False):
            LOG.append(("call outside open/close", self.KIND))

    def close(self):
        self.closed = True
        LOG.append(("close", self.KIND, self.index))


class RichMap(Rich, MapFunction):
    KIND = "map"

    def map(self, value):
        self.touch()
        return value


class RichFlatMap(Rich, FlatMapFunction):
    KIND = "flat_map"

    def flat_map(self, value):
        self.touch()
        return [value]


class RichFilter(Rich, FilterFunction):
    KIND = "filter"

    def filter(self, value):
        self.touch()
        return True


class RichKey(Rich, KeySelector):
    KIND = "key_by"

    def get_key(self, value):
        self.touch()
        return value % 4


class RichReduce(Rich, ReduceFunction):
    KIND = "reduce"

    def reduce(self, value1, value2):
        self.touch()
        return value1 + value2


class RichWindow(Rich, WindowFunction):
    KIND = "window apply"

    def apply(self, key, window, values):
        self.touch()
        return [sum(values)]


class RichSink(Rich, SinkFunction):
    KIND = "sink"

    def invoke(self, value):
        self.touch()
        OUT.append(value)


class RichSelector(Rich, OutputSelector):
    KIND = "select"

    def select(self, value):
        self.touch()
        return ["all"]


OUT: list = []
N = 40
TOTAL = sum(range(1, N + 1))


def _pipelines():
    """kind -> build(env) -> the stream to collect."""
    return {
        "map": lambda e: e.generate_sequence(1, N).map(RichMap()),
        "flat_map": lambda e: e.generate_sequence(1, N).flat_map(RichFlatMap()),
        "filter": lambda e: e.generate_sequence(1, N).filter(RichFilter()),
        "key_by": lambda e: e.generate_sequence(1, N).key_by(RichKey()).time_window(Time.days(36500))
        .reduce(lambda a, b: a + b),
        "reduce": lambda e: e.generate_sequence(1, N).key_by(lambda x: x % 4).reduce(RichReduce())
        .key_by(lambda x: 0).time_window(Time.days(36500)).reduce(max),
        "window reduce": lambda e: e.generate_sequence(1, N).key_by(lambda x: x % 4).count_window(100)
        .reduce(RichReduce()),
        "window apply": lambda e: e.generate_sequence(1, N).key_by(lambda x: x % 4)
        .time_window(Time.days(36500)).apply(RichWindow()),
        "select": lambda e: e.generate_sequence(1, N).split(RichSelector()).select("all"),
    }


PIPELINES = _pipelines()
KIND_OF = {"window reduce": "reduce"}
#: The pipelines whose last window is still open at the end of input (Flink's rules drop it).
AT_END = {"key_by": PROCESSING_TIME_AT_END, "reduce": PROCESSING_TIME_AT_END, "window apply": PROCESSING_TIME_AT_END,
          "window reduce": PARTIAL_WINDOWS}


@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.flink_semantics(AT_END[k])) if k in AT_END else k
                                  for k in [*PIPELINES, "sink"]])
def test_open_close_once_per_worker(kind, parallelism):
    """Every kind of user function object gets open(runtime_context) once per worker
    before its first call and close() once per worker after its last."""
    LOG.clear()
    OUT.clear()
    env = make_env(parallelism)
    if kind == "sink":
        env.generate_sequence(1, N).add_sink(RichSink())
        env.execute()
        out = list(OUT)
    else:
        out = run(env, PIPELINES[kind](env))
    # the job's output is right
    if kind in ("map", "flat_map", "filter", "select", "sink"):
        assert sorted(out) == list(range(1, N + 1))
    elif kind == "reduce":
        # the largest rolling value is the largest per-key total
        assert out == fired_at_end(env, [max(sum(x for x in range(1, N + 1) if x % 4 == k) for k in range(4))])
    else:
        assert sorted(out) == sorted(fired_at_end(env, (sum(x for x in range(1, N + 1) if x % 4 == k) for k in range(4))))
    label = KIND_OF.get(kind, kind)
    opens = sorted(e for e in LOG if e[0] == "open")
    closes = sorted(e for e in LOG if e[0] == "close")
    bad = [e for e in LOG if e[0] not in ("open", "close")]
    assert opens == [("open", label, i, parallelism) for i in range(parallelism)]
    assert closes == [("close", label, i) for i in range(parallelism)]
    assert bad == []


# -- one copy per worker -------------------------------------------------------------------------

COPIES: list = []


class SlowOpen(MapFunction):
    """Worker 1 opens slowly, so worker 0 is already processing when worker 1 gets to
    the next operator's function."""

    def open(self, runtime_context):
        if runtime_context.get_index_of_this_subtask() == 1:
            time.sleep(0.3)

    def map(self, value):
        return value


class CountingMap(MapFunction):
    def __init__(self):
        self.count = 0
        self.values = []

    def open(self, runtime_context):
        self.index = runtime_context.get_index_of_this_subtask()
        COPIES.append(("open", self.index, id(self), self.count, len(self.values)))

    def map(self, value):
        self.count += 1
        self.values.append(value)
        return value

    def close(self):
        COPIES.append(("close", self.index, id(self), self.count, sorted(self.values)))


def test_each_worker_gets_its_own_copy(parallelism):
    COPIES.clear()
    env = make_env(parallelism)
    out = run(env, env.generate_sequence(1, 1000).map(CountingMap()))
    assert sorted(out) == list(range(1, 1001))
    closes = [c for c in COPIES if c[0] == "close"]
    assert len(closes) == parallelism
    assert len({c[2] for c in closes}) == parallelism  # distinct objects
    assert sum(c[3] for c in closes) == 1000  # each copy counted only its own records
    assert sorted(v for c in closes for v in c[4]) == list(range(1, 1001))


def test_worker_copies_start_from_the_pristine_function(parallelism):
    """A worker's copy is a copy of the function as the user gave it, never of another
    worker's copy in the middle of its work."""
    COPIES.clear()
    env = make_env(parallelism)
    out = run(env, env.generate_sequence(1, 1000).map(SlowOpen()).map(CountingMap()))
    assert sorted(out) == list(range(1, 1001))
    opens = [c for c in COPIES if c[0] == "open"]
    closes = [c for c in COPIES if c[0] == "close"]
    assert [(c[3], c[4]) for c in opens] == [(0, 0)] * parallelism, opens
    assert sum(c[3] for c in closes) == 1000


def test_function_state_is_per_worker_for_sinks(parallelism):
    COPIES.clear()

    class CountingSink(SinkFunction):
        def __init__(self):
            self.values = []

        def open(self, runtime_context):
            self.index = runtime_context.get_index_of_this_subtask()

        def invoke(self, value):
            self.values.append(value)

        def close(self):
            COPIES.append((self.index, sorted(self.values)))

    env = make_env(parallelism)
    env.generate_sequence(1, 200).map(SlowOpen()).add_sink(CountingSink())
    env.execute()
    assert sorted(i for i, _ in COPIES) == list(range(parallelism))
    assert sorted(v for _, vs in COPIES for v in vs) == list(range(1, 201))


def test_runtime_context(parallelism):
    seen = []

    class Ctx(MapFunction):
        def open(self, runtime_context):
            assert isinstance(runtime_context, RuntimeContext)
            seen.append((runtime_context.get_index_of_this_subtask(),
                         runtime_context.get_number_of_parallel_subtasks(),
                         runtime_context.getIndexOfThisSubtask()))

        def map(self, value):
            return value

    env = make_env(parallelism)
    run(env, env.from_elements(1).map(Ctx()))
    assert sorted(seen) == [(i, parallelism, i) for i in range(parallelism)]


def test_plain_functions_are_shared_and_not_opened(parallelism):
    """Plain functions and lambdas are called as they are (no copy, no open)."""
    calls = []

    def f(x):
        calls.append(x)
        return x

    env = make_env(parallelism)
    out = run(env, env.generate_sequence(1, 50).map(f))
    assert bag(calls) == bag(range(1, 51)) == bag(out)


def test_open_exception_fails_job(parallelism):
    from ferroflow import JobExecutionException

    class BadOpen(MapFunction):
        def open(self, runtime_context):
            raise RuntimeError("cannot open")

        def map(self, value):
            return value

    env = make_env(parallelism)
    collect(env.from_elements(1, 2).map(BadOpen()))
    with pytest.raises(JobExecutionException) as info:
        env.execute()
    assert "cannot open" in info.value.detail
