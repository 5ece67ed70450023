"""Keyed state in window functions (issue 12 part B): a ``ProcessWindowFunction``,
``WindowFunction`` or the window function of ``reduce``/``aggregate`` gets keyed state
in ``open(runtime_context)``, scoped to the key whose window fires, and the same state
through ``Context.global_state()``; ``window_all`` functions get none. Every test
runs at 1 worker, 2 threads and 2 processes (the ``env`` fixture)."""

from __future__ import annotations

import pytest

from ferroflow import (AggregateFunction, JobExecutionException, ListStateDescriptor, ProcessWindowFunction,
                       ValueStateDescriptor, WindowFunction)
from ferroflow.functions import ProcessAllWindowFunction
from ferroflow.state import ValueState
from ferroflow.testing import TestSource, Timestamped, Watermark
from ferroflow.window import TumblingEventTimeWindows

from conftest import run

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


class WindowStateUser(ProcessWindowFunction):
    def process(self, key, context, elements):
        context.window_state()
        yield key


def test_window_state_is_not_implemented_yet(env):
    with pytest.raises(JobExecutionException, match="window_state\\(\\) is not implemented yet"):
        run(env, windows(env).process(WindowStateUser()))


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
