"""Process functions (issue 12 part C): ``KeyedStream.process(KeyedProcessFunction)``
with keyed state and timers, ``DataStream.process(ProcessFunction)``, their contexts,
and their errors. Time is driven exactly by ``ferroflow.testing.TestSource``; every
test runs at 1 worker, 2 threads and 2 processes (the ``env`` fixture)."""

from __future__ import annotations

import collections
import inspect

import pytest

from ferroflow import (JobExecutionException, KeyedProcessFunction, ListStateDescriptor, MapFunction, OutputTag,
                       ProcessFunction, SourceFunction, TimeDomain, TimerService, ValueStateDescriptor)
from ferroflow.testing import ProcessingTime, TestSource, Timestamped, Watermark

from conftest import bag, collect, run


def source(env, *events, **kwargs):
    return env.add_source(TestSource(list(events), **kwargs))


def site(method, text: str) -> str:
    """``(test_process.py:N, in name)``: where ``method`` makes the call containing
    ``text``, as a one-line misuse report names the user's refused call."""
    lines, first = inspect.getsourcelines(method)
    hits = [first + i for i, line in enumerate(lines) if text in line]
    assert len(hits) == 1, hits
    return f"(test_process.py:{hits[0]}, in {method.__name__})"


def failure(env, name: str) -> JobExecutionException:
    with pytest.raises(JobExecutionException) as info:
        env.execute(name)
    e = info.value
    assert str(e) == f"job '{name}' failed: {e.operator} raised an exception" + (
        f" on record {e.record}:" if e.record is not None else ":") + ("\n" if "\n" in e.detail else " ") + e.detail
    return e


class RunningCount(KeyedProcessFunction):
    """A running count per key in a ValueState."""

    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, value, ctx):
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        yield ctx.get_current_key(), n


def test_value_state_running_count_per_key(env):
    words = ["a", "b", "a", "c", "a", "b"] * 5
    out = run(env, env.from_collection(words).key_by(lambda w: w).process(RunningCount()))
    expected = []
    seen = {}
    for w in words:
        seen[w] = seen.get(w, 0) + 1
        expected.append((w, seen[w]))
    assert bag(out) == bag(expected)


WordAt = collections.namedtuple("WordAt", "word n")


class KeyReport(KeyedProcessFunction):
    """Reports each record with its current key and whether that key is the record's
    own first item (not an equal copy)."""

    def process_element(self, value, ctx):
        key = ctx.get_current_key()
        yield value, key, key is value[0]


def test_the_current_key_is_the_records_own_item_when_the_selector_returned_it(env):
    # Odd records are keyed by their own first item, even ones by a new str: both
    # kinds in one batch. A key that is an item stays that item, even when the record
    # crossed to another process.
    # Plain tuples and named tuples (which cross item by item too).
    records = [(w, i) if i % 4 < 2 else WordAt(w, i) for i, w in enumerate(["a", "bb", "a", "ccc", "dd"] * 20)]
    stream = env.from_collection(records).key_by(lambda r: r[0] if r[1] % 2 else r[0].upper() + "!")
    out = run(env, stream.process(KeyReport()))
    assert bag(out) == bag((r, r[0], True) if r[1] % 2 else (r, r[0].upper() + "!", False) for r in records)


class Swapped(tuple):
    """A tuple subclass that a pickle round trip gives back with its two items swapped."""

    def __reduce__(self):
        return Swapped, ((self[1], self[0]),)


def test_the_current_key_of_a_pickled_tuple_is_the_selectors_value(env):
    # A pickled tuple subclass may come back with its items in another order (this one
    # swaps them), so its key value crosses as it is, not as an item.
    records = [Swapped((f"k{i % 5}", f"v{i}")) for i in range(40)]
    out = run(env, env.from_collection(records).key_by(lambda r: r[0]).process(KeyReport()))
    assert len(out) == 40
    # Whichever way round the selector saw the records (a copy swaps them), it saw them
    # all alike: its keys are all k's or all v's.
    assert len({key[0] for _, key, _ in out}) == 1, sorted(key for _, key, _ in out)


class EventTimers(KeyedProcessFunction):
    """Registers an event-time timer 10 ms after each record (twice: it fires once);
    timers report (key, timer time, domain, watermark, the key's count then)."""

    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, value, ctx):
        self.count.update((self.count.value() or 0) + 1)
        service = ctx.timer_service()
        service.register_event_time_timer(ctx.timestamp() + 10)
        service.register_event_time_timer(ctx.timestamp() + 10)
        yield ("record", value, ctx.timestamp(), service.current_watermark())

    def on_timer(self, timestamp, ctx):
        yield ("timer", ctx.get_current_key(), timestamp, ctx.time_domain().name,
               ctx.timer_service().current_watermark(), self.count.value())


class Stamps(ProcessFunction):
    """Tags each record with the timestamp it carries."""

    def process_element(self, value, ctx):
        yield value, ctx.timestamp()


def test_event_time_timers_fire_once_in_order_with_their_timestamps(env):
    stream = source(env,
                    Timestamped(("a", 1), 100), Timestamped(("b", 1), 105), Timestamped(("a", 2), 103),
                    Watermark(112),
                    Timestamped(("b", 2), 120),
                    Watermark(115))
    out = run(env, stream.key_by(lambda r: r[0]).process(EventTimers()).process(Stamps()))
    records = [(v, ts) for v, ts in out if v[0] == "record"]
    timers = [(v, ts) for v, ts in out if v[0] == "timer"]
    # Records keep their timestamps and saw the watermark they were sent under.
    assert bag(records) == bag([(("record", ("a", 1), 100, -2**63), 100), (("record", ("b", 1), 105, -2**63), 105),
                                (("record", ("a", 2), 103, -2**63), 103), (("record", ("b", 2), 120, 112), 120)])
    # Watermark 112 fires a@110 (a's count 2; registered twice, fired once), 115 fires
    # a@113 and b@115 (b's count 2: its second record came before); the end fires b@130
    # with the watermark at +infinity.
    end = 2**63 - 1
    want = [(("timer", "a", 110, "EVENT_TIME", 112, 2), 110),
            (("timer", "a", 113, "EVENT_TIME", 115, 2), 113),
            (("timer", "b", 115, "EVENT_TIME", 115, 2), 115),
            (("timer", "b", 130, "EVENT_TIME", end, 2), 130)]
    assert sorted(timers, key=lambda t: t[1]) == want


class ProcessingTimers(KeyedProcessFunction):
    """A processing-time timer 50 ms after the clock per record; deleting it when the
    record says so."""

    def process_element(self, value, ctx):
        service = ctx.timer_service()
        at = service.current_processing_time() + 50
        service.register_processing_time_timer(at)
        if value[1] == "cancel":
            service.delete_processing_time_timer(at)
        return []

    def on_timer(self, timestamp, ctx):
        return [(ctx.get_current_key(), timestamp, ctx.time_domain() is TimeDomain.PROCESSING_TIME,
                 ctx.timer_service().current_processing_time())]


def test_processing_time_timers_follow_the_manual_clock_and_can_be_deleted(env):
    stream = source(env, ("a", "x"), ("b", "cancel"), ProcessingTime(60), ("c", "x"), ProcessingTime(200),
                    processing_time_start=0)
    out = run(env, stream.key_by(lambda r: r[0]).process(ProcessingTimers()))
    assert sorted(out) == [("a", 50, True, 60), ("c", 110, True, 200)]


class Boom(KeyedProcessFunction):
    def process_element(self, value, ctx):
        if value == 3:
            raise ValueError("no threes")
        if value == 1:
            ctx.timer_service().register_event_time_timer(1)
        yield value

    def on_timer(self, timestamp, ctx):
        raise KeyError("timer trouble")


def test_an_error_in_process_element_names_operator_key_record_and_traceback(env):
    collect(env.from_collection([2, 3]).key_by(lambda x: x * 10).process(Boom()).name("boom"))
    e = failure(env, "process error")
    assert e.operator.startswith("process 'boom' (test_process.py:") and e.record == "3"
    lines = e.detail.splitlines()
    assert lines[0] == "in process_element, for key 30:"
    assert lines[1] == "Traceback (most recent call last):" and e.detail.count("Traceback") == 1
    assert lines[-2:] == ['    raise ValueError("no threes")', "ValueError: no threes"]
    assert "ferroflow/" not in e.detail  # the user's frames only


def test_an_error_in_on_timer_names_the_key_and_the_timer(env):
    collect(env.from_collection([1]).key_by(lambda x: x * 10).process(Boom()))
    e = failure(env, "timer error")
    assert e.operator.startswith("process 'Boom' (test_process.py:") and e.record is None
    lines = e.detail.splitlines()
    assert lines[0] == "in on_timer (event-time timer at 1), for key 10:"
    assert lines[-2:] == ['    raise KeyError("timer trouble")', "KeyError: 'timer trouble'"]
    assert e.detail.count("Traceback") == 1 and "ferroflow/" not in e.detail


class Reused(KeyedProcessFunction):
    def open(self, runtime_context):
        runtime_context.get_state(ValueStateDescriptor("s"))
        runtime_context.get_list_state(ListStateDescriptor("s"))

    def process_element(self, value, ctx):
        return []


def test_a_state_name_reused_with_another_kind_fails_at_start(env):
    collect(env.from_collection([]).key_by(lambda x: x).process(Reused()).name("reuser"))
    e = failure(env, "reused")
    assert e.operator.startswith("process 'reuser' (test_process.py:") and e.record is None
    assert e.detail == ("state name 's' is used for a ValueState and for a ListState: each state of an operator "
                        f"needs its own name {site(Reused.open, 'get_list_state')}")


class PlainWithTimer(ProcessFunction):
    def process_element(self, value, ctx):
        ctx.timer_service().register_event_time_timer(5)
        return []


class PlainWithState(ProcessFunction):
    def open(self, runtime_context):
        runtime_context.get_state(ValueStateDescriptor("s"))

    def process_element(self, value, ctx):
        return []


def test_timers_and_state_on_a_plain_stream_are_clear_errors(env):
    collect(env.from_collection([1]).process(PlainWithTimer()))
    e = failure(env, "plain timer")
    assert e.operator.startswith("process 'PlainWithTimer' (test_process.py:") and e.record == "1"
    assert e.detail == ("timers are only available on keyed streams: call key_by() before process() to register "
                        f"timers {site(PlainWithTimer.process_element, 'register_event_time_timer')}")
    collect(env.from_collection([1]).process(PlainWithState()).name("stateful"))
    e = failure(env, "plain state")
    assert e.operator.startswith("process 'stateful' (test_process.py:") and e.record is None
    assert e.detail == ("get_state(ValueStateDescriptor('s')): state is only available on a keyed stream "
                        f"(a function applied after key_by()) {site(PlainWithState.open, 'get_state')}")


class Watermarks(ProcessFunction):
    def process_element(self, value, ctx):
        service = ctx.timer_service()
        yield value, ctx.timestamp(), service.current_watermark(), service.current_processing_time()


def test_plain_process_function_sees_timestamps_watermarks_and_the_clock(env):
    stream = source(env, Timestamped(1, 10), 2, Watermark(50), ProcessingTime(7), Timestamped(3, 60),
                    processing_time_start=5)
    out = run(env, stream.process(Watermarks()))
    assert bag(out) == bag([(1, 10, -2**63, 5), (2, None, -2**63, 5), (3, 60, 50, 7)])


def test_collector_style_process_element(env):
    class Java(KeyedProcessFunction):
        def processElement(self, value, ctx, out):
            out.collect((ctx.get_current_key(), value))

    out = run(env, env.from_collection([1, 2, 3]).key_by(lambda x: x % 2).process(Java()))
    assert bag(out) == bag([(1, 1), (0, 2), (1, 3)])


SMALL = OutputTag("small")
ODD = OutputTag("odd")
UNREAD = OutputTag("unread")


class Splitter(KeyedProcessFunction):
    """Main output: values >= 10; side outputs: small values, odd values (both may
    apply), and a tag nobody reads; timers send to a side output too."""

    def process_element(self, value, ctx):
        if value >= 10:
            yield value
        else:
            yield SMALL, value
        if value % 2:
            yield ODD, value
        yield UNREAD, value
        ctx.timer_service().register_event_time_timer(100)

    def on_timer(self, timestamp, ctx):
        yield SMALL, ("timer", ctx.get_current_key(), timestamp)


def test_side_outputs_of_a_keyed_process_function(env):
    values = [1, 12, 3, 14, 5, 16]
    main = env.from_collection(values).key_by(lambda v: v % 3).process(Splitter())
    small = main.get_side_output(SMALL)
    odd = main.get_side_output(ODD)
    got_main, got_small, got_odd = collect(main), collect(small), collect(odd)
    env.execute("side outputs")
    assert bag(got_main) == bag([12, 14, 16])
    assert bag(got_small) == bag([1, 3, 5, ("timer", 0, 100), ("timer", 1, 100), ("timer", 2, 100)])
    assert bag(got_odd) == bag([1, 3, 5])


def test_side_outputs_of_a_plain_process_function(env):
    class Plain(ProcessFunction):
        def process_element(self, value, ctx):
            yield (ODD, value) if value % 2 else value

    main = env.from_collection(range(6)).process(Plain())
    got_main, got_odd = collect(main), collect(main.get_side_output(ODD))
    env.execute("plain side outputs")
    assert sorted(got_main) == [0, 2, 4] and sorted(got_odd) == [1, 3, 5]


class NamedTag(OutputTag):
    """A tag of a subclass of OutputTag still names a side output."""


def test_only_pairs_led_by_an_output_tag_go_to_side_outputs(env):
    named = NamedTag("named")

    class Pairs(KeyedProcessFunction):
        def process_element(self, value, ctx):
            yield "odd", value  # a (str, value) pair stays in the main output
            yield (OutputTag, value)  # so does a pair led by the class, not a tag
            if value % 2:
                yield named, value

    main = env.from_collection([1, 2, 3]).key_by(lambda v: v).process(Pairs())
    got_main, got_named = collect(main), collect(main.get_side_output(NamedTag("named")))
    env.execute("pairs")
    assert bag(got_main) == bag([("odd", v) for v in (1, 2, 3)] + [(OutputTag, v) for v in (1, 2, 3)])
    assert bag(got_named) == bag([1, 3])


class Introspect(KeyedProcessFunction):
    def process_element(self, value, ctx):
        yield (isinstance(ctx, KeyedProcessFunction.Context), isinstance(ctx.timer_service(), TimerService),
               ctx.time_domain())

    def on_timer(self, timestamp, ctx):
        yield isinstance(ctx, KeyedProcessFunction.OnTimerContext), ctx.time_domain()


def test_contexts_are_the_declared_types(env):
    class Timer(Introspect):
        def process_element(self, value, ctx):
            ctx.timer_service().register_event_time_timer(1)
            yield from super().process_element(value, ctx)

    out = run(env, env.from_collection([1]).key_by(lambda x: x).process(Timer()))
    assert sorted(out, key=repr) == sorted([(True, True, None), (True, TimeDomain.EVENT_TIME)], key=repr)


class MapWithState(MapFunction):
    def open(self, runtime_context):
        runtime_context.get_state(ValueStateDescriptor("s"))

    def map(self, value):
        return value


def test_state_in_a_function_on_a_plain_stream_fails_at_start(env):
    collect(env.from_collection([1]).map(MapWithState()).name("plain map"))
    e = failure(env, "plain map state")
    assert e.operator.startswith("map 'plain map' (test_process.py:") and e.record is None
    assert e.detail == ("get_state(ValueStateDescriptor('s')): state is only available on a keyed stream "
                        f"(a function applied after key_by()) {site(MapWithState.open, 'get_state')}")


class SlowSource(SourceFunction):
    """Two records, a second apart: a wall-clock timer set by the first must fire in
    between (the operator asks to be woken for it)."""

    def run(self, ctx):
        import time

        ctx.collect("first")
        time.sleep(1.0)
        ctx.collect("second")


class WallClockTimer(KeyedProcessFunction):
    def process_element(self, value, ctx):
        if value == "first":
            ctx.timer_service().register_processing_time_timer(ctx.timer_service().current_processing_time() + 50)
        yield value

    def on_timer(self, timestamp, ctx):
        yield "timer"


def test_processing_time_timers_on_the_wall_clock_fire_while_the_input_is_quiet(env):
    out = run(env, env.add_source(SlowSource()).key_by(lambda v: 0).process(WallClockTimer()))
    assert out == ["first", "timer", "second"]
