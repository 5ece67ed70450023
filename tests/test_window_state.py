"""Keyed state in window functions (issue 12 part B): a ``ProcessWindowFunction``,
``WindowFunction`` or the window function of ``reduce``/``aggregate`` gets keyed state
in ``open(runtime_context)``, scoped to the key whose window fires, and the same state
through ``Context.global_state()``; a ``ProcessWindowFunction`` also gets state per key
and window through ``Context.window_state()``, and ``clear(context)`` once per window
when the window is cleared, after which the engine drops that window's state;
``window_all`` functions get none. Every test runs at 1 worker, 2 threads and 2
processes (the ``env`` fixture).

What ``clear()`` saw cannot be an output (it returns nothing), so the functions here
append it to a file per worker (``Log``), which the test reads after the job: that also
works when the worker is in another process."""

from __future__ import annotations

import ast
import os
from collections import Counter

import pytest
from hypothesis import given, strategies as st

import window_model as m
from conftest import JOB_SETTINGS, collect, make_env, run
from ferroflow import (AggregateFunction, JobExecutionException, ListStateDescriptor, MapStateDescriptor,
                       ProcessWindowFunction, ReducingStateDescriptor, ValueStateDescriptor, WindowFunction)
from ferroflow.functions import ProcessAllWindowFunction
from ferroflow.state import AggregatingStateDescriptor, ValueState
from ferroflow.testing import TestSource, Timestamped, Watermark
from ferroflow.window import (EventTimeSessionWindows, SlidingEventTimeWindows, TumblingEventTimeWindows)
from test_event_time_model import lateness as latenesses, source_items, streams, tumbling, sliding, api_assigner

T, W = Timestamped, Watermark

#: Key "a": windows [0, 10) (2 records), [10, 20), [20, 30); key "b": [0, 10), [10, 20).
EVENTS = [T(("a", 1), 1), T(("b", 2), 2), T(("a", 3), 3), W(9), T(("a", 4), 11), T(("b", 5), 12), W(19),
          T(("a", 6), 25)]


def windows(env):
    return (env.add_source(TestSource(EVENTS)).key_by(lambda r: r[0])
            .window(TumblingEventTimeWindows.of(10)))


class CountFirings(ProcessWindowFunction):
    """Per firing: (key, window start, firings of this key so far, the same count read
    through global_state(), the window's sum)."""

    def open(self, runtime_context):
        self.firings = runtime_context.get_state(ValueStateDescriptor("firings"))

    def process(self, key, context, elements):
        n = (self.firings.value() or 0) + 1
        self.firings.update(n)
        again = context.global_state().get_state(ValueStateDescriptor("firings"))
        assert isinstance(again, ValueState)
        yield key, context.window().start, n, again.value(), sum(v for _, v in elements)


def test_global_state_counts_firings_per_key_across_windows(env):
    out = run(env, windows(env).process(CountFirings()))
    assert sorted(out) == [("a", 0, 1, 1, 4), ("a", 10, 2, 2, 4), ("a", 20, 3, 3, 6),
                           ("b", 0, 1, 1, 2), ("b", 10, 2, 2, 5)]


class Seen(WindowFunction):
    """``apply`` with a ListState: each firing yields every window start its key fired
    before (state persisting across firings of the same key)."""

    def open(self, runtime_context):
        self.starts = runtime_context.get_list_state(ListStateDescriptor("starts"))

    def apply(self, key, window, inputs):
        before = list(self.starts.get())
        self.starts.add(window.start)
        yield key, window.start, before


def test_state_persists_across_firings_of_a_key_in_apply(env):
    out = run(env, windows(env).apply(Seen()))
    assert sorted(out) == [("a", 0, []), ("a", 10, [0]), ("a", 20, [0, 10]), ("b", 0, []), ("b", 10, [0])]


class Total(AggregateFunction):
    def create_accumulator(self):
        return 0

    def add(self, value, accumulator):
        return accumulator + value[1]

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return a + b


class RunningTotal(ProcessWindowFunction):
    """The window function of reduce/aggregate: a running total per key over windows."""

    def open(self, runtime_context):
        self.total = runtime_context.get_state(ValueStateDescriptor("total"))

    def process(self, key, context, elements):
        (window_result,) = elements
        value = window_result if isinstance(window_result, int) else window_result[1]
        total = (self.total.value() or 0) + value
        self.total.update(total)
        yield key, context.window().start, total


def test_state_in_the_window_function_of_reduce_and_aggregate(env):
    want = [("a", 0, 4), ("a", 10, 8), ("a", 20, 14), ("b", 0, 2), ("b", 10, 7)]
    reduced = windows(env).reduce(lambda x, y: (x[0], x[1] + y[1]), window_function=RunningTotal())
    aggregated = windows(env).aggregate(Total(), window_function=RunningTotal())
    from conftest import collect

    out_reduced, out_aggregated = collect(reduced), collect(aggregated)
    env.execute("two windows")
    assert sorted(out_reduced) == want
    assert sorted(out_aggregated) == want


class AllWindowsWithState(ProcessAllWindowFunction):
    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process(self, context, elements):
        yield len(elements)


class AllWindowsGlobalState(ProcessAllWindowFunction):
    def process(self, context, elements):
        context.global_state()
        yield len(elements)


@pytest.mark.parametrize("function", [AllWindowsWithState(), AllWindowsGlobalState()],
                         ids=["open", "global_state"])
def test_window_all_has_no_keyed_state(env, function):
    stream = env.add_source(TestSource(EVENTS)).window_all(TumblingEventTimeWindows.of(10)).process(function)
    with pytest.raises(JobExecutionException, match="state is only available on a keyed stream"):
        run(env, stream)


class BadDescriptor(ProcessWindowFunction):
    def open(self, runtime_context):
        runtime_context.get_state(ListStateDescriptor("x"))

    def process(self, key, context, elements):
        yield key


class KindClash(ProcessWindowFunction):
    def open(self, runtime_context):
        runtime_context.get_state(ValueStateDescriptor("x"))
        runtime_context.get_list_state(ListStateDescriptor("x"))

    def process(self, key, context, elements):
        yield key


@pytest.mark.parametrize("function, message", [
    (BadDescriptor(), "get_state\\(\\) takes a ValueStateDescriptor"),
    (KindClash(), "state name 'x' is used for a ValueState and for a ListState"),
], ids=["wrong descriptor", "name reused with another kind"])
def test_state_errors_at_open_name_the_window_operator(env, function, message):
    with pytest.raises(JobExecutionException, match=message) as info:
        run(env, windows(env).process(function))
    assert "TumblingEventTimeWindows" in str(info.value)


class StatefulReduce:
    """A window's ReduceFunction asking for state (Flink refuses rich reduce functions there)."""

    def open(self, runtime_context):
        runtime_context.get_state(ValueStateDescriptor("x"))

    def reduce(self, a, b):
        return a


def test_a_windows_reduce_function_has_no_state(env):
    with pytest.raises(JobExecutionException, match="a window's reduce or aggregate function has no keyed state"):
        run(env, windows(env).reduce(StatefulReduce()))


# -- window_state() and clear() ---------------------------------------------------------------------


class Log:
    """Lines a function writes from its workers, one file per worker (workers may be
    in other processes), read back by the test as Python literals."""

    def __init__(self, directory):
        self.directory = str(directory)

    def write(self, runtime_context, entry):
        name = f"{os.getpid()}-{runtime_context.get_index_of_this_subtask()}"
        with open(os.path.join(self.directory, name), "a", encoding="utf-8") as f:
            f.write(repr(entry) + "\n")

    def read(self):
        out = []
        for name in sorted(os.listdir(self.directory)):
            with open(os.path.join(self.directory, name), encoding="utf-8") as f:
                out.extend(ast.literal_eval(line) for line in f)
        return out


class Firings(ProcessWindowFunction):
    """(key, window start, firings of this window so far, elements): the firings are
    counted in window_state(). ``clear`` logs (key, window start, the window's final
    count), read from window_state() there; ``close`` logs how many (key, window) pairs
    still hold state on the worker (the engine's count, through the store's test hook)."""

    def __init__(self, log):
        self.log = log

    def open(self, runtime_context):
        self.runtime_context = runtime_context
        self.store = runtime_context._store

    def count_firing(self, key, context):
        """This window's firings so far, this one included."""
        state = context.window_state()
        n = state.get_state(ValueStateDescriptor("n"))
        n.update((n.value() or 0) + 1)
        state.get_state(ValueStateDescriptor("key")).update(key)
        return n.value()

    def process(self, key, context, elements):
        yield key, context.window().start, self.count_firing(key, context), len(elements)

    def final_count(self, context):
        state = context.window_state()
        return (state.get_state(ValueStateDescriptor("key")).value(), context.window().start,
                state.get_state(ValueStateDescriptor("n")).value())

    def clear(self, context):
        self.log.write(self.runtime_context, self.final_count(context))

    def close(self):
        self.log.write(self.runtime_context, ("live", self.store.window_state_count()))


class PerWindowCount(Firings):
    """Counts each window's firings in window_state() and the key's firings in
    global_state(), both under the name "n" (two different states); ``clear`` logs
    ("clear", key, window start, the window's count)."""

    def process(self, key, context, elements):
        n = self.count_firing(key, context)
        total = context.global_state().get_state(ValueStateDescriptor("n"))
        total.update((total.value() or 0) + 1)
        yield key, context.window().start, n, total.value(), len(elements)

    def clear(self, context):
        self.log.write(self.runtime_context, ("clear", *self.final_count(context)))


#: Key "a": [0, 10) fires at W(9) and again for the late records 3 and 4 (allowed
#: lateness 10: it is cleaned up at W(19)); the record at 5 after W(19) is dropped.
#: [10, 20) fires at W(19) and is cleaned up at W(29). [20, 30) fires at W(29) and is
#: cleared at the end. Key "b": [0, 10) fires once.
LATE = [T(("a", 1), 1), T(("b", 1), 2), T(("a", 1), 2), W(9), T(("a", 1), 3), T(("a", 1), 4), T(("a", 1), 11), W(19),
        T(("a", 1), 5), T(("a", 1), 21), W(29)]


def test_window_state_counts_firings_per_window_and_lives_until_clear(env, tmp_path):
    log = Log(tmp_path)
    stream = (env.add_source(TestSource(LATE)).key_by(lambda r: r[0])
              .window(TumblingEventTimeWindows.of(10)).allowed_lateness(10).process(PerWindowCount(log)))
    out = run(env, stream)
    # (key, start, firings of this window, firings of the key, elements): the late
    # firings of [0, 10) see its count from the first firing.
    assert sorted(out) == [("a", 0, 1, 1, 2), ("a", 0, 2, 2, 3), ("a", 0, 3, 3, 4), ("a", 10, 1, 4, 1),
                           ("a", 20, 1, 5, 1), ("b", 0, 1, 1, 1)]
    entries = log.read()
    # clear() ran once per window, with the window's state still readable.
    assert Counter(e for e in entries if e[0] == "clear") == Counter(
        [("clear", "a", 0, 3), ("clear", "a", 10, 1), ("clear", "a", 20, 1), ("clear", "b", 0, 1)])
    # Nothing is left behind, though clear() did not clear anything.
    lives = [e[1] for e in entries if e[0] == "live"]
    assert lives and all(n == 0 for n in lives)


class AllKinds(ProcessWindowFunction):
    """Every kind of state per window, next to global ones of the same names; yields
    what each holds after this firing."""

    def process(self, key, context, elements):
        w, g = context.window_state(), context.global_state()
        items = [v for _, v in elements]
        for scope in (w, g):
            scope.get_list_state(ListStateDescriptor("seen")).add_all(items)
            scope.get_map_state(MapStateDescriptor("by_value")).put_all({v: key for v in items})
            scope.get_reducing_state(ReducingStateDescriptor("sum", lambda a, b: a + b)).add(sum(items))
            scope.get_aggregating_state(AggregatingStateDescriptor("count", Count())).add(len(items))
        report = []
        for scope in (w, g):
            report.append((sorted(scope.get_list_state(ListStateDescriptor("seen")).get()),
                           sorted(scope.get_map_state(MapStateDescriptor("by_value")).keys()),
                           scope.get_reducing_state(ReducingStateDescriptor("sum", lambda a, b: a + b)).get(),
                           scope.get_aggregating_state(AggregatingStateDescriptor("count", Count())).get()))
        yield (key, context.window().start) + tuple(report)


class Count(AggregateFunction):
    def create_accumulator(self):
        return 0

    def add(self, value, accumulator):
        return accumulator + value

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return a + b


def test_every_kind_of_state_is_kept_apart_per_window_per_key_and_from_global_state(env):
    # Sliding windows of 10 every 5: each record is in two windows of its key.
    events = [T(("a", 1), 1), T(("b", 2), 2), T(("a", 3), 7), W(9), T(("a", 4), 12), W(14), W(30)]
    stream = (env.add_source(TestSource(events)).key_by(lambda r: r[0])
              .window(SlidingEventTimeWindows.of(10, 5)).process(AllKinds()))
    out = run(env, stream)
    assert sorted(out) == [
        ("a", -5, ([1], [1], 1, 1), ([1], [1], 1, 1)),
        ("a", 0, ([1, 3], [1, 3], 4, 2), ([1, 1, 3], [1, 3], 5, 3)),
        ("a", 5, ([3, 4], [3, 4], 7, 2), ([1, 1, 3, 3, 4], [1, 3, 4], 12, 5)),
        ("a", 10, ([4], [4], 4, 1), ([1, 1, 3, 3, 4, 4], [1, 3, 4], 16, 6)),
        ("b", -5, ([2], [2], 2, 1), ([2], [2], 2, 1)),
        ("b", 0, ([2], [2], 2, 1), ([2, 2], [2], 4, 2)),
    ]


class ClearsWindowState(PerWindowCount):
    """``clear`` also clears one state itself (Flink's way): the rest goes anyway."""

    def clear(self, context):
        super().clear(context)
        context.window_state().get_state(ValueStateDescriptor("n")).clear()


def test_clear_runs_for_the_window_function_of_reduce_and_pending_windows_at_the_end(env, tmp_path):
    log = Log(tmp_path)
    events = [T(("a", 1), 1), T(("a", 2), 2), T(("b", 3), 15)]  # no watermark: all fire at the end
    stream = (env.add_source(TestSource(events)).key_by(lambda r: r[0]).window(TumblingEventTimeWindows.of(10))
              .reduce(lambda x, y: (x[0], x[1] + y[1]), window_function=ClearsWindowState(log)))
    assert sorted(run(env, stream)) == [("a", 0, 1, 1, 1), ("b", 10, 1, 1, 1)]
    entries = log.read()
    assert sorted(e for e in entries if e[0] == "clear") == [("clear", "a", 0, 1), ("clear", "b", 10, 1)]
    assert all(e[1] == 0 for e in entries if e[0] == "live")


class StateKeptFromProcess(ProcessWindowFunction):
    def process(self, key, context, elements):
        self.kept = context.window_state().get_state(ValueStateDescriptor("n"))
        yield key

    def close(self):
        kept = getattr(self, "kept", None)  # a worker may have had no window
        if kept is not None:
            kept.value()


class SessionWindowState(ProcessWindowFunction):
    def process(self, key, context, elements):
        context.window_state().get_state(ValueStateDescriptor("n"))
        yield key


class AllWindowsWindowState(ProcessAllWindowFunction):
    def process(self, context, elements):
        context.window_state()
        yield len(elements)


@pytest.mark.parametrize("make, message", [
    (lambda env: windows(env).process(StateKeptFromProcess()),
     "window_state\\(\\) is only reachable while a window function runs for a window"),
    (lambda env: (env.add_source(TestSource(EVENTS)).key_by(lambda r: r[0])
                  .window(EventTimeSessionWindows.with_gap(3)).process(SessionWindowState())),
     "not supported on merging \\(session\\) windows"),
    (lambda env: env.add_source(TestSource(EVENTS)).window_all(TumblingEventTimeWindows.of(10))
     .process(AllWindowsWindowState()),
     "window_state\\(\\): state is only available on a keyed stream"),
], ids=["outside a firing", "session windows", "window_all"])
def test_window_state_refused_where_there_is_no_window_to_scope_it(env, make, message):
    with pytest.raises(JobExecutionException, match=message):
        run(env, make(env))


@JOB_SETTINGS
@given(events=streams(clock=False), assigner=st.one_of(tumbling(m.EVENT), sliding(m.EVENT)), lateness=latenesses)
def test_per_window_state_agrees_with_the_window_model(parallelism, tmp_path_factory, events, assigner, lateness):
    """Against tests/window_model.py: each firing sees its window's count of firings
    so far (late firings included), and clear() runs once per window with the final
    count, whatever the disorder, watermarks and lateness; nothing is left behind."""
    model = m.run_model(events, m.WindowSpec(assigner, None, None, lateness, False))
    want, fired = Counter(), Counter()
    for f in model.firings:
        fired[(f.key, f.window.start)] += 1
        want[(f.key, f.window.start, fired[(f.key, f.window.start)], len(f.values))] += 1
    log = Log(tmp_path_factory.mktemp("log"))
    env = make_env(parallelism)
    stream = (env.add_source(TestSource(source_items(events))).key_by(lambda v: v[0])
              .window(api_assigner(assigner, lambda n: n)).allowed_lateness(lateness).process(Firings(log)))
    out = collect(stream)
    env.execute("per-window state")
    assert Counter(out) == want
    entries = log.read()
    assert Counter((k, s, n) for k, s, n in (e for e in entries if e[0] != "live")) == Counter(
        {(k, s, n): 1 for (k, s), n in fired.items()})
    assert all(e[1] == 0 for e in entries if e[0] == "live")
