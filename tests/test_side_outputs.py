"""Side outputs (issue 12 part C): ``yield output_tag, value`` from every process-style
function PyFlink allows it in (ProcessFunction, KeyedProcessFunction and its
``on_timer``, CoProcessFunction, KeyedCoProcessFunction, (Keyed)BroadcastProcessFunction,
ProcessJoinFunction, ProcessWindowFunction, ProcessAllWindowFunction), any number of
them per operator, read with ``stream.get_side_output(tag)``; and the errors for streams
that have none. Every job runs at 1 worker, 2 threads and 2 processes."""

from __future__ import annotations

import pytest

from ferroflow import (BroadcastProcessFunction, CoMapFunction, CoProcessFunction, KeyedBroadcastProcessFunction,
                       KeyedCoProcessFunction, KeyedProcessFunction, MapStateDescriptor, OutputTag,
                       ProcessAllWindowFunction, ProcessFunction, ProcessJoinFunction, ProcessWindowFunction, Time,
                       WindowFunction)
from ferroflow.testing import TestSource, Timestamped, Watermark
from ferroflow.window import TumblingEventTimeWindows

from conftest import bag, collect

TAGS = [OutputTag(f"t{i}") for i in range(6)]
EVEN = OutputTag("even")
ODD = OutputTag("odd")
UNREAD = OutputTag("unread")


class SixWays(ProcessFunction):
    """Value v goes to side output t(v % 7) (6: the main output), and to a tag nobody reads."""

    def process_element(self, value, ctx):
        i = value % 7
        yield (TAGS[i], value) if i < 6 else value
        yield UNREAD, value


def test_six_side_outputs_of_one_process_function_each_get_their_records(env):
    values = list(range(70))
    main = env.from_collection(values).process(SixWays())
    got_main = collect(main)
    # Read in another order than the tags' numbers, t2 twice (both readers get all of it).
    order = [TAGS[4], TAGS[0], TAGS[2], TAGS[5], TAGS[1], TAGS[3], OutputTag("t2")]
    got = [collect(main.get_side_output(t)) for t in order]
    env.execute("six side outputs")
    assert bag(got_main) == bag(v for v in values if v % 7 == 6)  # no tagged pair leaks into it
    for tag, records in zip(order, got):
        i = int(tag.tag_id[1:])
        assert bag(records) == bag(v for v in values if v % 7 == i), tag


def test_a_side_output_can_feed_further_operators_and_be_read_twice(env):
    main = env.from_collection(list(range(10))).process(SixWays())
    first = collect(main.get_side_output(TAGS[1]).map(lambda v: v * 10))
    second = collect(main.get_side_output(TAGS[1]))
    env.execute("read twice")
    assert sorted(first) == [10, 80] and sorted(second) == [1, 8]


class Keyed(KeyedProcessFunction):
    """Records to EVEN / ODD by parity; each key's timer at 100 sends to ODD too."""

    def process_element(self, value, ctx):
        yield (EVEN if value % 2 == 0 else ODD), value
        ctx.timer_service().register_event_time_timer(100)

    def on_timer(self, timestamp, ctx):
        yield ODD, ("timer", ctx.get_current_key(), timestamp)
        yield "main", ctx.get_current_key()


def test_keyed_process_function_and_its_timers(env):
    main = env.from_collection([1, 2, 3, 4]).key_by(lambda v: v % 2).process(Keyed())
    got_main, got_even, got_odd = collect(main), collect(main.get_side_output(EVEN)), collect(main.get_side_output(ODD))
    env.execute("keyed")
    assert bag(got_main) == bag([("main", 0), ("main", 1)])
    assert bag(got_even) == bag([2, 4])
    assert bag(got_odd) == bag([1, 3, ("timer", 0, 100), ("timer", 1, 100)])


class Co(CoProcessFunction):
    def process_element1(self, value, ctx):
        yield EVEN, ("first", value, ctx.timestamp())
        yield value

    def process_element2(self, value, ctx):
        yield ODD, ("second", value)


def test_co_process_function(env):
    first = env.add_source(TestSource([Timestamped(1, 11), Timestamped(2, 12)]))
    main = first.connect(env.from_collection(["a", "b"])).process(Co())
    got_main, got_even, got_odd = collect(main), collect(main.get_side_output(EVEN)), collect(main.get_side_output(ODD))
    env.execute("co_process")
    assert bag(got_main) == bag([1, 2])
    assert bag(got_even) == bag([("first", 1, 11), ("first", 2, 12)])
    assert bag(got_odd) == bag([("second", "a"), ("second", "b")])


class KeyedCo(KeyedCoProcessFunction):
    def process_element1(self, value, ctx):
        yield EVEN, ("first", value)
        ctx.timer_service().register_event_time_timer(50)

    def process_element2(self, value, ctx):
        yield ODD, ("second", value)
        yield value

    def on_timer(self, timestamp, ctx):
        yield ODD, ("timer", ctx.get_current_key(), timestamp)


def test_keyed_co_process_function_and_its_timers(env):
    first = env.from_collection([("a", 1), ("b", 2)])
    second = env.from_collection([("a", 3)])
    main = first.connect(second).key_by(lambda r: r[0], lambda r: r[0]).process(KeyedCo())
    got_main, got_even, got_odd = collect(main), collect(main.get_side_output(EVEN)), collect(main.get_side_output(ODD))
    env.execute("keyed co_process")
    assert bag(got_main) == bag([("a", 3)])
    assert bag(got_even) == bag([("first", ("a", 1)), ("first", ("b", 2))])
    assert bag(got_odd) == bag([("second", ("a", 3)), ("timer", "a", 50), ("timer", "b", 50)])


RULES = MapStateDescriptor("rules")


class Broadcast(BroadcastProcessFunction):
    def process_element(self, value, ctx):
        yield EVEN, value

    def process_broadcast_element(self, value, ctx):
        ctx.get_broadcast_state(RULES).put(value, True)
        yield ODD, value


def test_broadcast_process_function_from_both_sides(env, parallelism):
    rules = env.from_collection(["r"]).broadcast(RULES)
    main = env.from_collection([1, 2]).connect(rules).process(Broadcast())
    got_main, got_even, got_odd = collect(main), collect(main.get_side_output(EVEN)), collect(main.get_side_output(ODD))
    env.execute("broadcast")
    assert got_main == []
    assert bag(got_even) == bag([1, 2])
    assert got_odd == ["r"] * parallelism  # every worker sees the broadcast element


class KeyedBroadcast(KeyedBroadcastProcessFunction):
    def process_element(self, value, ctx):
        yield EVEN, value
        ctx.timer_service().register_event_time_timer(7)

    def process_broadcast_element(self, value, ctx):
        yield ODD, value

    def on_timer(self, timestamp, ctx):
        yield ODD, ("timer", ctx.get_current_key(), timestamp)


def test_keyed_broadcast_process_function_from_both_sides_and_timers(env, parallelism):
    rules = env.from_collection(["r"]).broadcast(RULES)
    main = env.from_collection([1, 2]).key_by(lambda v: v).connect(rules).process(KeyedBroadcast())
    got_main, got_even, got_odd = collect(main), collect(main.get_side_output(EVEN)), collect(main.get_side_output(ODD))
    env.execute("keyed broadcast")
    assert got_main == []
    assert bag(got_even) == bag([1, 2])
    assert bag(got_odd) == bag(["r"] * parallelism + [("timer", 1, 7), ("timer", 2, 7)])


class Join(ProcessJoinFunction):
    def process_element(self, left, right, ctx):
        yield left[1] + right[1]
        yield ODD, (left[1], right[1], ctx.timestamp())


def test_process_join_function(env):
    left = env.add_source(TestSource([Timestamped(("a", "l"), 10), Watermark(20)])).key_by(lambda r: r[0])
    right = env.add_source(TestSource([Timestamped(("a", "r"), 12), Watermark(20)])).key_by(lambda r: r[0])
    main = left.interval_join(right).between(Time.milliseconds(0), Time.milliseconds(5)).process(Join())
    got_main, got_odd = collect(main), collect(main.get_side_output(ODD))
    env.execute("interval join")
    assert got_main == ["lr"]
    assert got_odd == [("l", "r", 12)]


class WindowSides(ProcessWindowFunction):
    def process(self, key, context, elements):
        values = list(elements)
        yield key, sum(values)
        for v in values:
            yield (EVEN if v % 2 == 0 else ODD), (key, v)


def test_process_window_function_read_after_the_main_output_got_a_reader(env):
    stream = env.from_collection([1, 2, 3, 4, 5, 6]).key_by(lambda v: v % 3).count_window(2).process(WindowSides())
    # The main output is read (and mapped) before get_side_output: it still gets no tagged pair.
    got_main = collect(stream.map(lambda kv: kv))
    got_even, got_odd = collect(stream.get_side_output(EVEN)), collect(stream.get_side_output(ODD))
    result = env.execute("process window function")
    # The window's count is of its results, not of what went to side outputs.
    assert [c for name, c in result.operator_counts.items() if name.startswith("window")] == [3]
    assert bag(got_main) == bag([(1, 5), (2, 7), (0, 9)])
    assert bag(got_even) == bag([(2, 2), (1, 4), (0, 6)])
    assert bag(got_odd) == bag([(1, 1), (0, 3), (2, 5)])


def test_a_window_function_with_no_side_output_read_keeps_its_pairs_in_the_main_output(env):
    stream = env.from_collection([1, 2]).key_by(lambda v: 0).count_window(2).process(WindowSides())
    got = collect(stream)
    env.execute("no side output read")
    assert bag(got) == bag([(0, 3), (ODD, (0, 1)), (EVEN, (0, 2))])  # as PyFlink: tags looked for once one is read


class AllWindowSides(ProcessAllWindowFunction):
    def process(self, context, elements):
        values = list(elements)
        yield ODD, (context.window().max_timestamp(), tuple(values))
        yield len(values)


def test_process_all_window_function_keeps_the_late_output_apart(env):
    events = [Timestamped(1, 1), Timestamped(2, 2), Watermark(20), Timestamped(3, 3), Timestamped(4, 25),
              Watermark(40)]
    late = OutputTag("late")
    windowed = (env.add_source(TestSource(events)).window_all(TumblingEventTimeWindows.of(Time.milliseconds(10))).side_output_late_data(late)
                .process(AllWindowSides()))
    got_main, got_odd, got_late = collect(windowed), collect(windowed.get_side_output(ODD)), \
        collect(windowed.get_side_output(late))
    env.execute("process all-window function")
    assert bag(got_main) == bag([2, 1])
    assert bag(got_odd) == bag([(9, (1, 2)), (29, (4,))])
    assert got_late == [3]


def test_a_window_function_given_to_reduce_may_have_side_outputs(env):
    class Sides(ProcessWindowFunction):
        def process(self, key, context, elements):
            (total,) = elements
            yield ODD, (key, total)

    stream = env.from_collection([1, 2, 3, 4]).key_by(lambda v: v % 2).count_window(2).reduce(
        lambda a, b: a + b, window_function=Sides())
    got_main, got_odd = collect(stream), collect(stream.get_side_output(ODD))
    env.execute("reduce then process window function")
    assert got_main == [] and bag(got_odd) == bag([(1, 4), (0, 6)])


def test_streams_that_cannot_have_side_outputs_say_so(env):
    with pytest.raises(ValueError, match="has no such side output; side outputs come from a process function"):
        env.from_collection([1]).map(lambda v: v).get_side_output(ODD)

    class Pairs(CoMapFunction):
        def map1(self, value):
            return value

        def map2(self, value):
            return value

    connected = env.from_collection([1]).connect(env.from_collection([2])).map(Pairs())
    with pytest.raises(ValueError, match="has no such side output"):
        connected.get_side_output(ODD)  # Flink's CoMapFunction has no side outputs either

    class Apply(WindowFunction):
        def apply(self, key, window, inputs):
            yield ODD, key

    applied = env.from_collection([1]).key_by(lambda v: v).count_window(1).apply(Apply())
    with pytest.raises(ValueError, match="process-style window function"):
        applied.get_side_output(ODD)


def test_a_tag_id_names_one_type(env):
    main = env.from_collection([1]).process(SixWays())
    main.get_side_output(OutputTag("x", "int"))
    main.get_side_output(OutputTag("x", "int"))  # the same id and type: the same side output
    with pytest.raises(ValueError, match="already read with type 'int', not 'str'"):
        main.get_side_output(OutputTag("x", "str"))
