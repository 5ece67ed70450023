"""Window triggers and evictors written in Python (``Trigger`` / ``Evictor``
subclasses, PyFlink's API): re-implementations of the built-in CountTrigger and
EventTimeTrigger give the built-ins' output on random inputs; a trigger with state and
timers, purging, session merging, processing time, evictors, and the errors. Each job
runs at 1 worker, 2 threads and 2 processes (the ``env`` fixture)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, strategies as st

from ferroflow import JobExecutionException, StreamExecutionEnvironment
from ferroflow.state import ListStateDescriptor, ReducingStateDescriptor, ValueStateDescriptor
from ferroflow.testing import ProcessingTime, TestSource, Timestamped, Watermark
from ferroflow.window import (CountEvictor, CountTrigger, EventTimeSessionWindows, EventTimeTrigger, Evictor,
                              GlobalWindows, PurgingTrigger, TimestampedValue, Trigger, TriggerResult,
                              TumblingEventTimeWindows, TumblingProcessingTimeWindows)
from conftest import JOB_SETTINGS, bag, make_env, run

T, W, P = Timestamped, Watermark, ProcessingTime


def keyed(env, events):
    return env.add_source(TestSource(list(events))).key_by(lambda kv: kv[0])


def contents(key, window, elements):
    """(key, window start, window end, values in arrival order)."""
    start = getattr(window, "start", None)
    end = getattr(window, "end", None)
    return [(key, start, end, tuple(v for _, v in elements))]


def same_firings(got, want, parallelism):
    """Exact with one worker; with more, the order of a key's records within a batch
    is not defined, so each firing is compared by its window and size, and the values
    seen overall."""
    if parallelism == 1:
        assert got == want
    else:
        assert bag((k, s, e, len(v)) for k, s, e, v in got) == bag((k, s, e, len(v)) for k, s, e, v in want)
        assert {x for *_, v in got for x in v} == {x for *_, v in want for x in v}


# -- re-implementations of the built-ins -----------------------------------------------------


class PyCountTrigger(Trigger):
    """CountTrigger.of(n), its count in partitioned state (merged for sessions)."""

    def __init__(self, n):
        self.n = n
        self.count = ReducingStateDescriptor("count", lambda a, b: a + b)

    def on_element(self, element, timestamp, window, ctx):
        count = ctx.get_partitioned_state(self.count)
        count.add(1)
        if count.get() >= self.n:
            count.clear()
            return TriggerResult.FIRE
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def can_merge(self):
        return True

    def on_merge(self, window, ctx):
        ctx.merge_partitioned_state(self.count)

    def clear(self, window, ctx):
        ctx.get_partitioned_state(self.count).clear()


class PyEventTimeTrigger(Trigger):
    """EventTimeTrigger.create()."""

    def on_element(self, element, timestamp, window, ctx):
        if window.max_timestamp() <= ctx.get_current_watermark():
            return TriggerResult.FIRE
        ctx.register_event_time_timer(window.max_timestamp())
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx):
        return TriggerResult.FIRE if time == window.max_timestamp() else TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def can_merge(self):
        return True

    def on_merge(self, window, ctx):
        if window.max_timestamp() > ctx.get_current_watermark():
            ctx.register_event_time_timer(window.max_timestamp())

    def clear(self, window, ctx):
        ctx.delete_event_time_timer(window.max_timestamp())


ASSIGNERS = {
    "tumbling": lambda: TumblingEventTimeWindows.of(10),
    "session": lambda: EventTimeSessionWindows.with_gap(4),
    "global": GlobalWindows.create,
}

events = st.lists(st.one_of(
    st.tuples(st.sampled_from("abc"), st.integers(0, 50)).map(lambda kt: T((kt[0], kt[1]), kt[1])),
    st.integers(0, 60).map(W)), max_size=25)


@JOB_SETTINGS
@given(events=events, n=st.integers(1, 3), purge=st.booleans(), assigner=st.sampled_from(sorted(ASSIGNERS)))
def test_a_python_count_trigger_fires_as_the_builtin(parallelism, events, n, purge, assigner):
    def job(trigger):
        env = make_env(parallelism)
        return run(env, keyed(env, events).window(ASSIGNERS[assigner]()).trigger(trigger).apply(contents))
    builtin = job(PurgingTrigger.of(CountTrigger.of(n)) if purge else CountTrigger.of(n))
    python = job(PurgingTrigger.of(PyCountTrigger(n)) if purge else PyCountTrigger(n))
    same_firings(python, builtin, parallelism)


@JOB_SETTINGS
@given(events=events, lateness=st.integers(0, 6), assigner=st.sampled_from(["tumbling", "session"]))
def test_a_python_event_time_trigger_fires_as_the_builtin(parallelism, events, lateness, assigner):
    def job(trigger):
        env = make_env(parallelism)
        windows = keyed(env, events).window(ASSIGNERS[assigner]()).allowed_lateness(lateness)
        return run(env, windows.trigger(trigger).apply(contents))
    same_firings(job(PyEventTimeTrigger()), job(EventTimeTrigger.create()), parallelism)


# -- state and timers ------------------------------------------------------------------------


class ThreeOrTenMs(Trigger):
    """Fires (and purges) on every 3rd record of a window, or 10 ms of event time after
    the first record since the last firing, whichever comes first."""

    def __init__(self):
        self.count = ValueStateDescriptor("count")
        self.deadline = ValueStateDescriptor("deadline")

    def on_element(self, element, timestamp, window, ctx):
        count, deadline = ctx.get_partitioned_state(self.count), ctx.get_partitioned_state(self.deadline)
        n = (count.value() or 0) + 1
        if n == 3:
            self.clear(window, ctx)
            return TriggerResult.FIRE_AND_PURGE
        count.update(n)
        if deadline.value() is None:
            deadline.update(timestamp + 10)
            ctx.register_event_time_timer(timestamp + 10)
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx):
        if ctx.get_partitioned_state(self.deadline).value() == time:
            self.clear(window, ctx)
            return TriggerResult.FIRE_AND_PURGE
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def clear(self, window, ctx):
        deadline = ctx.get_partitioned_state(self.deadline)
        if deadline.value() is not None:
            ctx.delete_event_time_timer(deadline.value())
        deadline.clear()
        ctx.get_partitioned_state(self.count).clear()


def test_a_trigger_with_state_and_timers(env, parallelism):
    out = run(env, keyed(env, [
        T(("a", 1), 1), T(("b", 5), 5), T(("a", 2), 2), T(("a", 3), 3),  # a: 3rd record fires
        W(4), T(("a", 4), 20), T(("b", 6), 6),
        W(16),  # b: 10 ms after 5 fires [5, 6]
        T(("a", 5), 25), W(30),  # a: 10 ms after 20 fires [4, 5]
        T(("a", 6), 40), W(200),  # a: its deadline (50) fires [6]
    ]).window(TumblingEventTimeWindows.of(100)).trigger(ThreeOrTenMs()).apply(contents))
    by = sorted((k, tuple(sorted(v))) for k, _, _, v in out)
    assert by == [("a", (1, 2, 3)), ("a", (4, 5)), ("a", (6,)), ("b", (5, 6))]


class PurgeOnZero(Trigger):
    """PURGE (no firing) on a record of value 0, FIRE at the window's end."""

    def on_element(self, element, timestamp, window, ctx):
        ctx.register_event_time_timer(window.max_timestamp())
        return TriggerResult.PURGE if element[1] == 0 else TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx):
        return TriggerResult.FIRE

    def on_processing_time(self, time, window, ctx):
        return TriggerResult.CONTINUE


def test_purge_empties_the_window_without_firing(env):
    out = run(env, keyed(env, [T(("a", 1), 1), T(("a", 2), 2), W(3), T(("a", 0), 4), W(5), T(("a", 7), 6),
                              T(("b", 0), 1), W(50)])
              .window(TumblingEventTimeWindows.of(10)).trigger(PurgeOnZero()).apply(contents))
    # a's 1 and 2 went with the purge; b's window was purged empty: nothing fires for it
    assert out == [("a", 0, 10, (7,))]


class FireOnClock(Trigger):
    """Fires 5 ms of processing time after a window's first record."""

    def __init__(self):
        self.armed = ValueStateDescriptor("armed")

    def on_element(self, element, timestamp, window, ctx):
        armed = ctx.get_partitioned_state(self.armed)
        if not armed.value():
            armed.update(True)
            ctx.register_processing_time_timer(ctx.get_current_processing_time() + 5)
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx):
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx):
        ctx.get_partitioned_state(self.armed).clear()
        return TriggerResult.FIRE_AND_PURGE


def test_processing_time_timers(env):
    source = env.add_source(TestSource([P(0), ("a", 1), P(3), ("a", 2), P(10), ("a", 3), P(12)],
                                       processing_time_start=0))
    out = run(env, source.key_by(lambda kv: kv[0]).window(TumblingProcessingTimeWindows.of(1000))
              .trigger(FireOnClock()).apply(contents))
    assert [v for *_, v in out] == [(1, 2), (3,)]


class CountToThreeSessions(PyCountTrigger):
    """PyCountTrigger(3) plus the session's end (merging state and timers)."""

    def __init__(self):
        super().__init__(3)
        self.seen = ListStateDescriptor("seen")

    def on_element(self, element, timestamp, window, ctx):
        ctx.get_partitioned_state(self.seen).add(element[1])
        ctx.register_event_time_timer(window.max_timestamp())
        return super().on_element(element, timestamp, window, ctx)

    def on_event_time(self, time, window, ctx):
        if time != window.max_timestamp():
            return TriggerResult.CONTINUE
        seen = sorted(ctx.get_partitioned_state(self.seen).get())
        return TriggerResult.FIRE if seen else TriggerResult.CONTINUE

    def on_merge(self, window, ctx):
        super().on_merge(window, ctx)
        ctx.merge_partitioned_state(self.seen)
        ctx.register_event_time_timer(window.max_timestamp())

    def clear(self, window, ctx):
        super().clear(window, ctx)
        ctx.get_partitioned_state(self.seen).clear()
        ctx.delete_event_time_timer(window.max_timestamp())


def test_sessions_merge_the_triggers_state(env):
    out = run(env, keyed(env, [T(("a", 1), 0), T(("a", 2), 10), W(2), T(("a", 3), 5), W(100)])
              .window(EventTimeSessionWindows.with_gap(5)).trigger(CountToThreeSessions()).apply(contents))
    # [0, 5) and [10, 15) hold 1 each; 5 bridges them: the merged count reaches 3 and
    # fires, then the session's end fires it again
    assert [(s, e, tuple(sorted(v))) for _, s, e, v in out] == [(0, 15, (1, 2, 3)), (0, 15, (1, 2, 3))]


def test_a_count_trigger_of_a_merging_window_merges_counts(env, parallelism):
    out = run(env, keyed(env, [T(("a", 1), 0), T(("a", 2), 10), W(2), T(("a", 3), 5), W(100)])
              .window(EventTimeSessionWindows.with_gap(5)).trigger(PurgingTrigger.of(PyCountTrigger(3)))
              .apply(contents))
    assert [(s, e, tuple(sorted(v))) for _, s, e, v in out] == [(0, 15, (1, 2, 3))]


# -- evictors --------------------------------------------------------------------------------


class KeepEven(Evictor):
    """Before the window function: removes the odd values from the list given."""

    def __init__(self):
        self.seen = []

    def evict_before(self, elements, size, window, evictor_context):
        assert size == len(elements) and all(isinstance(e, TimestampedValue) for e in elements)
        for e in list(elements):
            if e.get_value()[1] % 2:
                elements.remove(e)


class DropOldestAfter(Evictor):
    """After the window function: returns all but the oldest (by timestamp)."""

    def evict_after(self, elements, size, window, evictor_context):
        oldest = min(elements, key=lambda e: e.get_timestamp())
        return [e for e in elements if e is not oldest]


def test_an_evictor_removing_from_the_list(env):
    out = run(env, keyed(env, [T(("a", v), v) for v in range(1, 8)])
              .window(GlobalWindows.create()).trigger(CountTrigger.of(3)).evictor(KeepEven()).apply(contents))
    # [1,2,3] -> [2]; [2,4,5,6] -> [2,4,6]; at the end [2,4,6,7] -> [2,4,6]
    assert [v for *_, v in out] == [(2,), (2, 4, 6), (2, 4, 6)]


def test_an_evictor_after_the_function(env):
    out = run(env, keyed(env, [T(("a", v), v) for v in range(1, 6)])
              .window(GlobalWindows.create()).trigger(CountTrigger.of(2)).evictor(DropOldestAfter())
              .apply(contents))
    # the function sees [1,2]; then 1 goes: [2,3,4]; then 2 goes: at the end [3,4,5]
    assert [v for *_, v in out] == [(1, 2), (2, 3, 4), (3, 4, 5)]


def test_an_evictor_matches_count_evictor(env, parallelism):
    class LastTwo(Evictor):
        def evict_before(self, elements, size, window, evictor_context):
            del elements[:max(0, size - 2)]

    def job(evictor):
        return run(env, keyed(env, [T((k, v), v) for v in range(1, 9) for k in "ab"])
                   .window(GlobalWindows.create()).trigger(CountTrigger.of(3)).evictor(evictor).apply(contents))
    same_firings(job(LastTwo()), job(CountEvictor.of(2)), parallelism)


# -- errors ----------------------------------------------------------------------------------


class Raises(PyEventTimeTrigger):
    def on_element(self, element, timestamp, window, ctx):
        if element[1] == 2:
            raise ValueError("no twos")
        return super().on_element(element, timestamp, window, ctx)


def test_an_exception_names_the_operator_method_record_and_traceback(env):
    with pytest.raises(JobExecutionException) as info:
        run(env, keyed(env, [T(("a", 1), 1), T(("a", 2), 2)])
            .window(TumblingEventTimeWindows.of(10)).trigger(Raises()).apply(contents))
    message = str(info.value)
    for part in ("TumblingEventTimeWindows", "Raises()", "on_element()", "('a', 2)", "ValueError: no twos",
                 "raise ValueError"):
        assert part in message, message


class ReturnsString(PyEventTimeTrigger):
    def on_element(self, element, timestamp, window, ctx):
        return "FIRE"


def test_a_result_that_is_not_a_trigger_result(env):
    with pytest.raises(JobExecutionException, match=r"ReturnsString\.on_element\(\) must return a TriggerResult"):
        run(env, keyed(env, [T(("a", 1), 1)]).window(TumblingEventTimeWindows.of(10))
            .trigger(ReturnsString()).apply(contents))


class Incomplete(Trigger):
    def on_element(self, element, timestamp, window, ctx):
        return TriggerResult.FIRE


class NoMerge(PyEventTimeTrigger):
    def can_merge(self):
        return False


def test_settings_are_checked_at_the_call():
    env = StreamExecutionEnvironment.get_execution_environment()
    k = env.from_elements(("a", 1)).key_by(lambda kv: kv[0])
    w = k.window(TumblingEventTimeWindows.of(10))
    with pytest.raises(TypeError, match=r"trigger\(\): Incomplete must implement on_event_time\(\), "
                                        r"on_processing_time\(\)"):
        w.trigger(Incomplete())
    with pytest.raises(TypeError, match=r"PurgingTrigger\.of\(\): Incomplete must implement"):
        PurgingTrigger.of(Incomplete())
    with pytest.raises(TypeError, match=r"subclasses the built-in CountTrigger.*subclass Trigger"):
        w.trigger(type("Mine", (CountTrigger,), {})(3))
    with pytest.raises(TypeError, match=r"subclasses the built-in CountEvictor.*subclass Evictor"):
        w.evictor(type("Mine", (CountEvictor,), {})(3))
    with pytest.raises(TypeError, match=r"evictor\(\): Evictor must implement evict_before\(\)"):
        w.evictor(Evictor())
    sessions = k.window(EventTimeSessionWindows.with_gap(5))
    with pytest.raises(ValueError, match=r"NoMerge\.can_merge\(\) is False"):
        sessions.trigger(NoMerge())
    with pytest.raises(ValueError, match=r"can_merge\(\) is False"):
        sessions.trigger(PurgingTrigger.of(NoMerge()))
    sessions.trigger(PyEventTimeTrigger())
    joined = env.from_elements(("a", 1)).join(env.from_elements(("a", 2))).where(lambda x: x[0]) \
        .equal_to(lambda x: x[0]).window(TumblingEventTimeWindows.of(10))
    with pytest.raises(NotImplementedError, match="not supported on windowed joins"):
        joined.trigger(PyEventTimeTrigger())
    with pytest.raises(NotImplementedError, match="not supported on windowed joins"):
        joined.evictor(KeepEven())
    assert TriggerResult.FIRE_AND_PURGE.is_fire() and TriggerResult.FIRE_AND_PURGE.is_purge()
    assert not TriggerResult.CONTINUE.is_fire() and TriggerResult.PURGE.is_purge()


def test_window_all_with_a_python_trigger(env):
    out = run(env, env.add_source(TestSource([T(("a", v), v) for v in range(1, 6)]))
              .window_all(GlobalWindows.create()).trigger(PurgingTrigger.of(PyCountTrigger(2)))
              .apply(lambda window, elements: [tuple(sorted(v for _, v in elements))]))
    assert sorted(out) == [(1, 2), (3, 4), (5,)] or Counter(len(x) for x in out) == Counter([2, 2, 1])


#: (key, window) pairs holding state on a worker, as ForgetsToClear saw at each record.
HELD = []


class ForgetsToClear(PyEventTimeTrigger):
    """Keeps a value per window and never clears it; notes how many (key, window)
    pairs hold state on its worker at each record."""

    def on_element(self, element, timestamp, window, ctx):
        ctx.get_partitioned_state(ValueStateDescriptor("v")).update(element[1])
        HELD.append(ctx._runtime._store.window_state_count())
        return super().on_element(element, timestamp, window, ctx)


def test_a_triggers_state_goes_with_its_window(env):
    """Even when clear() leaves it, and without a window function to clear."""
    HELD.clear()
    events = [e for i in range(10) for e in (T(("a", i), i * 10), W(i * 10 + 9))]
    out = run(env, keyed(env, events).window(TumblingEventTimeWindows.of(10)).trigger(ForgetsToClear())
              .reduce(lambda a, b: a))
    assert sorted(out) == [("a", i) for i in range(10)]
    assert len(HELD) == 10 and max(HELD) == 1
