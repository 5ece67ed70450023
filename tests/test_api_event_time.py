"""Event time through the DataStream API: watermark strategies, every window assigner,
triggers, evictors, allowed lateness and late side outputs, the window functions
(reduce, aggregate, process, apply) keyed and over the whole stream, and the
time characteristic of ``time_window``.

Time is driven exactly with ``ferroflow.testing.TestSource``. Expected values are
Flink's, worked out by hand in the comments, plus ferroflow's end-of-input rule: at the
end of a bounded input the watermark and the processing-time clock go to +infinity and
every window still holding records that arrived since it last fired fires once more
(GlobalWindows without trigger, partial counts included). Under PyFlink's names (the
pyflink pass, tests/pyflink_names.py) Flink's rule holds instead: only the final
watermark fires; the tests marked ``flink_semantics`` expect that there.

Record order inside one key's window is only defined with one worker (as in
test_api_windows.py), so order-sensitive checks are exact with parallelism 1 and
compare sizes otherwise.
"""

from __future__ import annotations

import datetime

import pytest

from ferroflow import (AggregateFunction, Duration, OutputTag, ProcessAllWindowFunction, ProcessWindowFunction,
                       StreamExecutionEnvironment, Time, TimeCharacteristic, TimestampAssigner, WatermarkStrategy,
                       WindowFunction)
from ferroflow.functions import AllWindowFunction, ReduceFunction
from ferroflow.testing import ProcessingTime, TestSource, Timestamped, Watermark
from ferroflow.window import (ContinuousEventTimeTrigger, ContinuousProcessingTimeTrigger, CountEvictor, CountTrigger,
                              EventTimeSessionWindows, EventTimeTrigger, GlobalWindow, GlobalWindows, PurgingTrigger,
                              ProcessingTimeSessionWindows, ProcessingTimeTrigger, SlidingEventTimeWindows,
                              SlidingProcessingTimeWindows, TimeEvictor, TimeWindow, Trigger,
                              TumblingEventTimeWindows, TumblingProcessingTimeWindows)
from conftest import (PARTIAL_WINDOWS, PROCESSING_TIME_AT_END, bag, collect, fired_at_end, flink_semantics, make_env,
                      run)

MIN_TS = -2**63
MAX_TS = 2**63 - 1
T, W, P = Timestamped, Watermark, ProcessingTime


def source(env, *events, **kwargs):
    return env.add_source(TestSource(list(events), **kwargs))


def keyed(env, *events, **kwargs):
    """A TestSource of (key, value) records keyed by key."""
    return source(env, *events, **kwargs).key_by(lambda kv: kv[0])


def sums(key, context, elements):
    """(key, window start, sum of values) of (key, value) records."""
    return [(key, context.window().start, sum(v for _, v in elements))]


def contents(key, context, elements):
    """(key, window start, window end, sorted values as a tuple)."""
    w = context.window()
    return [(key, w.start, w.end, tuple(sorted(v for _, v in elements)))]


def values_in_order(key, window, elements):
    return [[v for _, v in elements]]


def add_pairs(a, b):
    return (a[0], a[1] + b[1])


# == plan-time validation ===========================================================================


def test_duration_units_and_spans():
    assert Duration.of_millis(250).to_milliseconds() == 250
    assert Duration.of_seconds(3).to_milliseconds() == 3_000
    assert Duration.of_minutes(2).to_milliseconds() == 120_000
    assert Duration.of_hours(1).to_milliseconds() == 3_600_000
    assert Duration.of_days(1).to_milliseconds() == 86_400_000
    assert Duration.of_seconds(1) == Duration.of_millis(1000) == Time.seconds(1)
    assert Duration.of_millis(-5).to_milliseconds() == -5
    # every span form is accepted wherever a duration is taken
    for span in (Duration.of_seconds(2), Time.seconds(2), datetime.timedelta(seconds=2), 2000):
        assert repr(TumblingEventTimeWindows.of(span)) == "TumblingEventTimeWindows(size=2000 ms)"


@pytest.mark.parametrize("make, error, words", [
    (lambda: TumblingEventTimeWindows.of(0), ValueError, "size must be positive"),
    (lambda: TumblingEventTimeWindows.of(-1000), ValueError, "size must be positive"),
    (lambda: TumblingEventTimeWindows.of("1s"), TypeError, "size must be a Duration"),
    (lambda: TumblingEventTimeWindows.of(1000, 1000), ValueError, "abs(offset) < size"),
    (lambda: TumblingEventTimeWindows.of(1000, -1000), ValueError, "abs(offset) < size"),
    (lambda: TumblingProcessingTimeWindows.of(1000, Duration.of_seconds(2)), ValueError, "abs(offset) < size"),
    (lambda: SlidingEventTimeWindows.of(1000, 0), ValueError, "slide must be positive"),
    (lambda: SlidingEventTimeWindows.of(0, 100), ValueError, "size must be positive"),
    (lambda: SlidingEventTimeWindows.of(1000, 100, 100), ValueError, "abs(offset) < slide"),
    (lambda: SlidingProcessingTimeWindows.of(1000, 100, -150), ValueError, "abs(offset) < slide"),
    (lambda: EventTimeSessionWindows.with_gap(0), ValueError, "gap must be positive"),
    (lambda: ProcessingTimeSessionWindows.with_gap(Duration.of_millis(-1)), ValueError, "gap must be positive"),
    (lambda: EventTimeSessionWindows.with_dynamic_gap(5), TypeError, "extract()"),
    (lambda: CountTrigger.of(0), ValueError, "count must be an int >= 1"),
    (lambda: CountTrigger.of(2.5), ValueError, "count must be an int >= 1"),
    (lambda: ContinuousEventTimeTrigger.of(0), ValueError, "interval must be positive"),
    (lambda: ContinuousProcessingTimeTrigger.of(-1), ValueError, "interval must be positive"),
    (lambda: PurgingTrigger.of(5), TypeError, "takes a trigger"),
    (lambda: CountEvictor.of(0), ValueError, "count must be an int >= 1"),
    (lambda: TimeEvictor.of(0), ValueError, "window size must be positive"),
    (lambda: WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(-1)), ValueError, "non-negative"),
    (lambda: WatermarkStrategy.for_monotonous_timestamps().with_idleness(0), ValueError, "must be positive"),
    (lambda: WatermarkStrategy.no_watermarks().with_timestamp_assigner(42), TypeError, "extract_timestamp()"),
    (lambda: WatermarkStrategy.no_watermarks().with_timestamp_assigner(TimestampAssigner), TypeError, "instance"),
    (lambda: OutputTag(""), ValueError, "non-empty str"),
    (lambda: OutputTag(7), ValueError, "non-empty str"),
    (lambda: Timestamped("x", 1.5), TypeError, "int of milliseconds"),
    (lambda: Watermark("1000"), TypeError, "int of milliseconds"),
    (lambda: ProcessingTime(2**63), ValueError, "64 bits"),
    (lambda: TestSource("abc"), TypeError, "list of records"),
])
def test_invalid_settings_fail_when_made(make, error, words):
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)


def test_valid_edge_settings_are_accepted():
    TumblingEventTimeWindows.of(1000, 999)
    TumblingEventTimeWindows.of(1000, -999)
    SlidingEventTimeWindows.of(1000, 2000)  # slide > size: gaps between windows, as Flink allows
    SlidingEventTimeWindows.of(1000, 300, -299)
    WatermarkStrategy.for_bounded_out_of_orderness(0)
    OutputTag("late", type_info=object())


def test_window_settings_validation():
    env = StreamExecutionEnvironment.get_execution_environment()
    k = env.from_elements(("a", 1)).key_by(lambda kv: kv[0])
    with pytest.raises(TypeError, match="window assigner"):
        k.window(1000)
    with pytest.raises(TypeError, match=r"window_all\(\) takes a window assigner"):
        env.from_elements(1).window_all(CountTrigger.of(2))
    w = k.window(TumblingEventTimeWindows.of(1000))
    with pytest.raises(TypeError, match="takes a trigger"):
        w.trigger(CountEvictor.of(1))
    with pytest.raises(TypeError, match="takes an evictor"):
        w.evictor(CountTrigger.of(1))
    with pytest.raises(ValueError, match="allowed_lateness.*non-negative"):
        w.allowed_lateness(Duration.of_millis(-1))
    with pytest.raises(TypeError, match="OutputTag"):
        w.side_output_late_data("late")
    assert w.allowed_lateness(0) is w
    # the settings chain, and late data may be asked of any window (Flink allows it)
    k.window(GlobalWindows.create()).trigger(CountTrigger.of(2)).evictor(CountEvictor.of(1)) \
        .allowed_lateness(Time.seconds(1)).side_output_late_data(OutputTag("late")).reduce(add_pairs)
    k.window(TumblingProcessingTimeWindows.of(1000)).side_output_late_data(OutputTag("late")).reduce(add_pairs)


class EveryRecord(Trigger):
    """A user-defined trigger missing most of its methods."""

    def on_element(self, element, timestamp, window, ctx):
        return "FIRE"


def test_custom_trigger_evictor_or_assigner_fails_where_it_is_set():
    """An incomplete Trigger subclass, a subclass of a built-in trigger or evictor (its
    Rust logic would ignore the overrides) and a custom WindowAssigner fail at the call
    that sets them, in one line, not later at reduce() with a bare error. (Complete
    Trigger and Evictor subclasses run: tests/test_window_python_triggers.py.)"""
    env = StreamExecutionEnvironment.get_execution_environment()
    k = env.from_elements(("a", 1)).key_by(lambda kv: kv[0])
    w = k.window(TumblingEventTimeWindows.of(1000))
    with pytest.raises(TypeError) as info:
        w.trigger(EveryRecord())
    message = str(info.value)
    assert message.startswith("trigger(): ") and "EveryRecord" in message and "\n" not in message
    with pytest.raises(TypeError, match=r"PurgingTrigger\.of\(\): EveryRecord must implement"):
        PurgingTrigger.of(EveryRecord())
    with pytest.raises(TypeError, match=r"trigger\(\): Mine subclasses the built-in CountTrigger"):
        w.trigger(type("Mine", (CountTrigger,), {})(3))
    with pytest.raises(TypeError, match=r"evictor\(\): Mine subclasses the built-in CountEvictor"):
        w.evictor(type("Mine", (CountEvictor,), {})(3))
    with pytest.raises(NotImplementedError, match=r"window\(\): custom WindowAssigner.*GlobalWindows"):
        k.window(type("Mine", (GlobalWindows,), {})())
    with pytest.raises(NotImplementedError, match=r"window_all\(\): custom WindowAssigner"):
        env.from_elements(1).window_all(type("Mine", (GlobalWindows,), {})())
    # nothing was set: the window still builds with a supported trigger
    w.trigger(PurgingTrigger.of(CountTrigger.of(2))).reduce(add_pairs)


class Average(AggregateFunction):
    def create_accumulator(self):
        return (0, 0)

    def add(self, value, accumulator):
        return (accumulator[0] + value[1], accumulator[1] + 1)

    def get_result(self, accumulator):
        return accumulator[0] / accumulator[1]

    def merge(self, acc_a, acc_b):
        return (acc_a[0] + acc_b[0], acc_a[1] + acc_b[1])


class AverageWithoutMerge(AggregateFunction):
    def create_accumulator(self):
        return []

    def add(self, value, accumulator):
        accumulator.append(value[1])
        return accumulator

    def get_result(self, accumulator):
        return sum(accumulator) / len(accumulator)


def test_window_function_validation():
    env = StreamExecutionEnvironment.get_execution_environment()
    k = env.from_elements(("a", 1)).key_by(lambda kv: kv[0])
    tumbling = TumblingEventTimeWindows.of(1000)
    with pytest.raises(TypeError, match=r"AggregateFunction.*create_accumulator\(\), add\(\), get_result\(\)"):
        k.window(tumbling).aggregate(lambda a, b: a)
    with pytest.raises(TypeError, match="instance"):
        k.window(tumbling).aggregate(Average)
    with pytest.raises(TypeError, match=r"session windows.*merge\(acc_a, acc_b\)"):
        k.window(EventTimeSessionWindows.with_gap(1000)).aggregate(AverageWithoutMerge())
    k.window(tumbling).aggregate(AverageWithoutMerge())  # merge is only needed by sessions
    with pytest.raises(TypeError, match=r"process\(\)"):
        k.window(tumbling).process(WindowFunction())
    with pytest.raises(TypeError, match=r"apply\(\)"):
        k.window(tumbling).apply(object())
    with pytest.raises(TypeError, match=r"reduce\(\)"):
        k.window(tumbling).reduce(object())


def test_get_side_output_needs_the_registered_tag():
    env = StreamExecutionEnvironment.get_execution_environment()
    k = env.from_elements(("a", 1)).key_by(lambda kv: kv[0])
    plain = k.window(TumblingEventTimeWindows.of(1000)).reduce(add_pairs)
    with pytest.raises(ValueError, match="side_output_late_data"):
        plain.get_side_output(OutputTag("late"))
    with pytest.raises(ValueError, match="no such side output"):
        env.from_elements(1).map(str).get_side_output(OutputTag("late"))
    tagged = k.window(TumblingEventTimeWindows.of(1000)).side_output_late_data(OutputTag("late")).reduce(add_pairs)
    with pytest.raises(ValueError, match=r"OutputTag\('late'\)"):
        tagged.get_side_output(OutputTag("other"))
    with pytest.raises(TypeError, match="OutputTag"):
        tagged.get_side_output("late")
    tagged.get_side_output(OutputTag("late"))  # a tag with the same id is the same tag


def test_time_characteristic_setting():
    env = StreamExecutionEnvironment.get_execution_environment()
    assert env.get_stream_time_characteristic() is TimeCharacteristic.ProcessingTime
    assert env.set_stream_time_characteristic(TimeCharacteristic.EventTime) is env
    assert env.get_stream_time_characteristic() is TimeCharacteristic.EventTime
    with pytest.raises(ValueError, match="IngestionTime is not supported"):
        env.set_stream_time_characteristic(TimeCharacteristic.IngestionTime)
    with pytest.raises(TypeError):
        env.set_stream_time_characteristic("EventTime")


def test_watermark_strategy_validation_and_immutability():
    env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(TypeError, match="WatermarkStrategy"):
        env.from_elements(1).assign_timestamps_and_watermarks(lambda v: v)
    with pytest.raises(TypeError, match="WatermarkStrategy"):
        env.from_source([1, 2], None, "numbers")
    base = WatermarkStrategy.for_monotonous_timestamps()
    assert base.with_idleness(1000) is not base
    assert base.with_timestamp_assigner(lambda v: v) is not base
    assert repr(base) == "WatermarkStrategy(monotonous)"


def test_count_window_validation():
    k = StreamExecutionEnvironment.get_execution_environment().from_elements(1).key_by(lambda x: x)
    for bad in (lambda: k.count_window(0), lambda: k.count_window(3, 0), lambda: k.count_window_all(-1),
                lambda: k.time_window_all(0), lambda: k.time_window(1000, 0)):
        with pytest.raises(ValueError):
            bad()


# == event-time windows ===========================================================================


def test_tumbling_event_time_windows_fire_on_the_watermark(env):
    # [1000, 2000) holds a:1+2 and b:5 and fires at watermark 1999; a@2000 and a@2500 are
    # in [2000, 3000), which fires at the end of the input.
    out = run(env, keyed(env, T(("a", 1), 1000), T(("a", 2), 1500), T(("b", 5), 1999), T(("a", 3), 2000),
                         W(1999), T(("a", 4), 2500))
              .window(TumblingEventTimeWindows.of(Duration.of_seconds(1))).process(sums))
    assert bag(out) == bag([("a", 1000, 3), ("b", 1000, 5), ("a", 2000, 7)])


class Clocks(ProcessWindowFunction):
    def process(self, key, context, elements):
        w = context.window()
        yield (key, w.start, w.end, context.current_watermark(), context.current_processing_time(), len(elements))


def test_process_context_reports_window_and_clocks(env):
    """Fired by watermark 1999: the context's watermark is 1999; the processing time
    is the TestSource's manual clock (0). The last window fires at the end of the
    input, where the watermark is +infinity (Long.MAX_VALUE)."""
    out = run(env, keyed(env, T(("a", 1), 1000), W(1999), T(("a", 2), 2000))
              .window(TumblingEventTimeWindows.of(1000)).process(Clocks()))
    first, last = sorted(out)
    assert first == ("a", 1000, 2000, 1999, 0, 1)
    assert last[:4] == ("a", 2000, 3000, MAX_TS) and last[5] == 1


def test_without_watermarks_event_time_windows_fire_at_the_end(env):
    out = run(env, keyed(env, T(("a", 1), 5000), T(("a", 2), 100), T(("a", 4), 5999))
              .window(TumblingEventTimeWindows.of(1000)).process(Clocks()))
    assert sorted((k, s, e, wm, n) for k, s, e, wm, _, n in out) == [("a", 0, 1000, MAX_TS, 1),
                                                                   ("a", 5000, 6000, MAX_TS, 2)]


def test_tumbling_windows_with_offset(env):
    # offset 200: windows [-800, 200), [200, 1200); offset -200: [-200, 800), [800, 1800)
    plus = keyed(env, T(("a", 1), 100), T(("a", 2), 250), T(("a", 4), 1199)) \
        .window(TumblingEventTimeWindows.of(1000, 200)).process(contents)
    minus = keyed(env, T(("b", 1), 100), T(("b", 2), 900)) \
        .window(TumblingEventTimeWindows.of(Duration.of_seconds(1), Duration.of_millis(-200))).process(contents)
    out = run(env, plus.union(minus))
    assert bag(out) == bag([("a", -800, 200, (1,)), ("a", 200, 1200, (2, 4)),
                            ("b", -200, 800, (1,)), ("b", 800, 1800, (2,))])


def test_late_records_are_dropped_and_counted(env):
    # watermark 999 closes [0, 1000): a@500 arrives behind it (500 <= 999) and is dropped
    stream = keyed(env, T(("a", 1), 100), T(("a", 2), 900), W(999), T(("a", 4), 500), T(("a", 8), 1500)) \
        .window(TumblingEventTimeWindows.of(1000)).process(sums)
    out = collect(stream)
    result = env.execute("late")
    assert bag(out) == bag([("a", 0, 3), ("a", 1000, 8)])
    assert result.late_records_dropped == 1


LATE_EVENTS = [
    T(("a", 1), 100), T(("a", 2), 900),
    W(999),            # [0, 1000) fires: 3
    T(("a", 4), 500),  # within the allowed lateness (999 < 999 + 1000): added, fires again at once: 7
    W(1999),           # [0, 1000) is cleaned up (1999 >= 999 + 1000)
    T(("a", 8), 600),  # late: 600 + 1000 <= 1999
    T(("a", 16), 1500),  # [1000, 2000) is past its end but within lateness: added, fires at once: 16
]


def test_allowed_lateness_refires_and_late_records_go_to_the_side_output(env):
    late = OutputTag("late")
    result_stream = keyed(env, *LATE_EVENTS).window(TumblingEventTimeWindows.of(1000)) \
        .allowed_lateness(Duration.of_seconds(1)).side_output_late_data(late).process(sums)
    main = collect(result_stream)
    side = collect(result_stream.get_side_output(late))
    result = env.execute("lateness")
    assert bag(main) == bag([("a", 0, 3), ("a", 0, 7), ("a", 1000, 16)])
    assert side == [("a", 8)]
    assert result.late_records_dropped == 0


def test_allowed_lateness_without_side_output_counts_the_late_record(env):
    stream = keyed(env, *LATE_EVENTS).window(TumblingEventTimeWindows.of(1000)) \
        .allowed_lateness(1000).reduce(add_pairs)
    out = collect(stream)
    result = env.execute("lateness")
    assert bag(out) == bag([("a", 3), ("a", 7), ("a", 16)])
    assert result.late_records_dropped == 1


@pytest.mark.flink_semantics(PARTIAL_WINDOWS)
def test_late_side_output_keeps_timestamps(env):
    """Late records keep their timestamps in the side output: a TimeEvictor of 1000 ms
    over them (stamped 200 and 1300) keeps only the one stamped after 1300 - 1000. (A
    GlobalWindow, because they are behind the watermark downstream too.)"""
    late = OutputTag("late")
    windowed = keyed(env, T(("a", 1), 100), W(5000), T(("a", 2), 200), T(("a", 4), 1300)) \
        .window(TumblingEventTimeWindows.of(1000)).side_output_late_data(late).reduce(add_pairs)
    main = collect(windowed)
    again = collect(windowed.get_side_output(late).key_by(lambda kv: kv[0])
                    .window(GlobalWindows.create()).evictor(TimeEvictor.of(1000)).apply(values_in_order))
    env.execute("late again")
    assert main == [("a", 1)]
    assert again == fired_at_end(env, [[4]])


def test_sliding_event_time_windows(env):
    # size 2000, slide 1000: a@500 in [-1000, 1000) and [0, 2000); a@1500 in [0, 2000) and
    # [1000, 3000); a@2500 in [1000, 3000) and [2000, 4000)
    out = run(env, keyed(env, T(("a", 1), 500), T(("a", 2), 1500), T(("a", 4), 2500))
              .window(SlidingEventTimeWindows.of(Duration.of_seconds(2), Duration.of_seconds(1))).process(contents))
    assert bag(out) == bag([("a", -1000, 1000, (1,)), ("a", 0, 2000, (1, 2)), ("a", 1000, 3000, (2, 4)),
                            ("a", 2000, 4000, (4,))])


def test_sliding_windows_with_slide_larger_than_size_skip_records(env):
    # size 1000, slide 2000: windows [0, 1000), [2000, 3000)...; a@1500 is in none (not late)
    stream = keyed(env, T(("a", 1), 500), T(("a", 2), 1500), T(("a", 4), 2500)) \
        .window(SlidingEventTimeWindows.of(1000, 2000)).process(contents)
    out = collect(stream)
    result = env.execute("gaps")
    assert bag(out) == bag([("a", 0, 1000, (1,)), ("a", 2000, 3000, (4,))])
    assert result.late_records_dropped == 0


def test_event_time_session_windows(env):
    # gap 1000: a@0 + a@500 -> [0, 1500); a@2000 + a@2400 -> [2000, 3400); b@100 -> [100, 1100);
    # c@0 -> [0, 1000) and c@1000 -> [1000, 2000) touch, so they merge (Flink's intersects)
    out = run(env, keyed(env, T(("a", 1), 0), T(("a", 2), 500), T(("a", 4), 2000), T(("b", 16), 100),
                         T(("a", 8), 2400), T(("c", 1), 0), T(("c", 2), 1000))
              .window(EventTimeSessionWindows.with_gap(Duration.of_seconds(1))).process(contents))
    assert bag(out) == bag([("a", 0, 1500, (1, 2)), ("a", 2000, 3400, (4, 8)), ("b", 100, 1100, (16,)),
                            ("c", 0, 2000, (1, 2))])


def test_session_windows_fire_when_the_watermark_passes_them(env):
    # [0, 1500) ends at 1499: watermark 1499 fires it; a@1600 then starts a new session
    # (a@1400 would have been late) -> [1600, 2600) fires at the end
    out = run(env, keyed(env, T(("a", 1), 0), T(("a", 2), 500), W(1499), T(("a", 4), 1600))
              .window(EventTimeSessionWindows.with_gap(1000)).process(Clocks()))
    first, last = sorted(out)
    assert first == ("a", 0, 1500, 1499, 0, 2)
    assert last[:4] == ("a", 1600, 2600, MAX_TS) and last[5] == 1


def test_session_windows_with_dynamic_gap(env):
    # records (key, value, gap): a@0 gap 3000 -> [0, 3000); a@2500 gap 100 -> [2500, 2600),
    # inside it: merged [0, 3000); a@5000 gap 100 -> [5000, 5100)
    out = run(env, source(env, T(("a", 1, 3000), 0), T(("a", 2, 100), 2500), T(("a", 4, 100), 5000))
              .key_by(lambda r: r[0])
              .window(EventTimeSessionWindows.with_dynamic_gap(lambda r: r[2]))
              .apply(lambda key, window, rs: [(key, window.start, window.end, tuple(sorted(r[1] for r in rs)))]))
    assert bag(out) == bag([("a", 0, 3000, (1, 2)), ("a", 5000, 5100, (4,))])


def test_aggregate_on_session_windows_merges_accumulators(env):
    # a@0 -> [0, 1000), a@2000 -> [2000, 3000), then a@1000 -> [1000, 2000) touches both:
    # one session [0, 3000) averaging 2, 4, 6
    def with_window(key, window, results):
        return [(key, window.start, window.end, results)]

    out = run(env, keyed(env, T(("a", 2), 0), T(("a", 4), 2000), T(("a", 6), 1000))
              .window(EventTimeSessionWindows.with_gap(1000)).aggregate(Average(), window_function=with_window))
    assert out == [("a", 0, 3000, [4.0])]


def test_window_results_are_stamped_with_the_window_end_minus_one(env):
    """Results carry window.max_timestamp() (end - 1), so a second event-time window
    puts the [1000, 2000) result (stamped 1999) in [0, 2000), not in [2000, 4000)."""
    per_second = keyed(env, T(("a", 1), 100), T(("a", 2), 900), T(("a", 4), 1500), T(("a", 8), 2500)) \
        .window(TumblingEventTimeWindows.of(1000)).reduce(add_pairs)
    out = run(env, per_second.window_all(TumblingEventTimeWindows.of(2000))
              .apply(lambda window, rs: [(window.start, tuple(sorted(v for _, v in rs)))]))
    assert bag(out) == bag([(0, (3, 4)), (2000, (8,))])


# == timestamps and watermark strategies ==========================================================


class StampFromValue(TimestampAssigner):
    """Seconds in the value; records without timestamp get value * 1000, others their
    timestamp plus the value."""

    def extract_timestamp(self, value, record_timestamp):
        return value * 1000 if record_timestamp == MIN_TS else record_timestamp + value


def test_timestamp_assigner_sees_the_record_timestamp(env):
    # 5@995 -> 1000; 7@2000 -> 2007; 3 without timestamp -> 3000. map keeps timestamps.
    stamped = source(env, T(5, 995), T(7, 2000), 3).map(lambda v: v) \
        .assign_timestamps_and_watermarks(WatermarkStrategy.for_monotonous_timestamps()
                                          .with_timestamp_assigner(StampFromValue()))
    out = run(env, stamped.window_all(TumblingEventTimeWindows.of(1000))
              .apply(lambda window, values: [(window.start, tuple(sorted(values)))]))
    assert bag(out) == bag([(1000, (5,)), (2000, (7,)), (3000, (3,))])


def test_bounded_out_of_orderness_from_a_collection(env):
    """Out of order by at most 500 ms, so with a 500 ms bound nothing is late, however
    the records are batched: [0, 1000): 1+2+4, [1000, 2000): 8+16, [2000, 3000): 32+64."""
    records = [("a", 100, 1), ("a", 900, 2), ("a", 600, 4), ("a", 1200, 8), ("a", 1100, 16), ("a", 2500, 32),
               ("a", 2000, 64)]
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(500)) \
        .with_timestamp_assigner(lambda r: r[1])
    stream = env.from_collection(records).assign_timestamps_and_watermarks(strategy) \
        .key_by(lambda r: r[0]).window(TumblingEventTimeWindows.of(1000)) \
        .apply(lambda key, window, rs: [(window.start, sum(r[2] for r in rs))])
    out = collect(stream)
    result = env.execute("bounded")
    assert bag(out) == bag([(0, 7), (1000, 24), (2000, 96)])
    assert result.late_records_dropped == 0


def test_from_source_strategy_replaces_the_source_watermarks(env):
    """add_source(TestSource) keeps its watermarks: a@200 is late after watermark 5000.
    from_source with no_watermarks() replaces them: nothing is late."""
    events = [T(("a", 1), 100), W(5000), T(("a", 2), 200)]
    kept = source(env, *events).key_by(lambda kv: kv[0]).window(TumblingEventTimeWindows.of(1000)).reduce(add_pairs)
    replaced = env.from_source(TestSource(events), WatermarkStrategy.no_watermarks(), "events") \
        .map(lambda kv: ("b", kv[1])).key_by(lambda kv: kv[0]) \
        .window(TumblingEventTimeWindows.of(1000)).reduce(add_pairs)
    out = collect(kept.union(replaced))
    result = env.execute("replaced")
    assert bag(out) == bag([("a", 1), ("b", 3)])
    assert result.late_records_dropped == 1


def test_from_source_with_a_collection_and_an_assigner(env):
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(lambda r, ts: r[1])
    out = run(env, env.from_source([("a", 10), ("a", 20), ("a", 1010)], strategy, "readings")
              .key_by(lambda r: r[0]).window(TumblingEventTimeWindows.of(1000))
              .reduce(lambda x, y: (x[0], x[1] + y[1])))
    assert bag(out) == bag([("a", 30), ("a", 1010)])


# == global windows, triggers and evictors ========================================================


def check_firings(out, expected, parallelism):
    """Firings of one key, exact with one worker; with more, the record order inside a
    key is not defined, so only the sizes and the records."""
    if parallelism == 1:
        assert out == expected
    else:
        assert [len(w) for w in out] == [len(w) for w in expected]
        assert set(v for w in out for v in w) == set(v for w in expected for v in w)


@pytest.mark.flink_semantics(PARTIAL_WINDOWS)
def test_global_window_without_trigger_fires_everything_at_the_end(env):
    seen = []

    def record(key, window, values):
        seen.append(window is GlobalWindow.get())
        return [(key, tuple(sorted(v for _, v in values)))]

    out = run(env, keyed(env, ("a", 1), ("b", 2), ("a", 3)).window(GlobalWindows.create()).apply(record))
    assert bag(out) == bag(fired_at_end(env, [("a", (1, 3)), ("b", (2,))]))
    assert seen == fired_at_end(env, [True, True])


@pytest.mark.flink_semantics(PARTIAL_WINDOWS)
def test_count_trigger_fires_without_purging(env, parallelism):
    # fires at the 2nd and 4th record with everything so far; the 5th fires at the end
    out = run(env, keyed(env, *[("a", i) for i in range(1, 6)])
              .window(GlobalWindows.create()).trigger(CountTrigger.of(2)).apply(values_in_order))
    check_firings(out, [[1, 2], [1, 2, 3, 4]] + fired_at_end(env, [[1, 2, 3, 4, 5]]), parallelism)


@pytest.mark.flink_semantics(PARTIAL_WINDOWS)
def test_purging_count_trigger(env, parallelism):
    out = run(env, keyed(env, *[("a", i) for i in range(1, 6)])
              .window(GlobalWindows.create()).trigger(PurgingTrigger.of(CountTrigger.of(2))).apply(values_in_order))
    check_firings(out, [[1, 2], [3, 4]] + fired_at_end(env, [[5]]), parallelism)


@pytest.mark.flink_semantics(PARTIAL_WINDOWS)
def test_count_evictor_keeps_the_last_records(env, parallelism):
    # fires every 3 records; the evictor leaves the last 2 (also in the window's state):
    # [1,2,3] -> [2,3]; [2,3,4,5,6] -> [5,6]; at the end [5,6,7] -> [6,7]
    out = run(env, keyed(env, *[("a", i) for i in range(1, 8)])
              .window(GlobalWindows.create()).trigger(CountTrigger.of(3)).evictor(CountEvictor.of(2))
              .apply(values_in_order))
    check_firings(out, [[2, 3], [5, 6]] + fired_at_end(env, [[6, 7]]), parallelism)


def test_count_evictor_after_the_function(env, parallelism):
    # the function sees [1,2], then the window keeps [2]; then it sees [2,3,4] and keeps [4];
    # nothing arrived since the last firing, so nothing fires at the end
    out = run(env, keyed(env, *[("a", i) for i in range(1, 5)])
              .window(GlobalWindows.create()).trigger(CountTrigger.of(2)).evictor(CountEvictor.of(1, True))
              .apply(values_in_order))
    check_firings(out, [[1, 2], [2, 3, 4]], parallelism)


def test_time_evictor_keeps_the_newest_span(env):
    # newest timestamp 9000, window size 3000: only records stamped after 6000 stay
    out = run(env, keyed(env, T(("a", 1), 1000), T(("a", 2), 5000), T(("a", 3), 9000), T(("a", 4), 8500))
              .window(TumblingEventTimeWindows.of(10_000)).evictor(TimeEvictor.of(Duration.of_seconds(3)))
              .process(contents))
    assert out == [("a", 0, 10_000, (3, 4))]


def test_continuous_event_time_trigger(env):
    # window [0, 10000), interval 2000: first fire point 2000 (from a@500), then every
    # 2000 while the watermark passes them, and at 9999 (the window's end)
    out = run(env, keyed(env, T(("a", 1), 500), T(("a", 2), 1500), W(2000), T(("a", 4), 3000), W(4000),
                         T(("a", 8), 5000), W(6000), W(8000), W(9999))
              .window(TumblingEventTimeWindows.of(10_000)).trigger(ContinuousEventTimeTrigger.of(2000))
              .reduce(add_pairs))
    assert sorted(v for _, v in out) == [3, 7, 15, 15, 15]


def test_event_time_trigger_on_global_windows_fires_at_the_end(env):
    # a GlobalWindow ends at Long.MAX_VALUE: only the final watermark reaches it
    out = run(env, keyed(env, T(("a", 1), 1), W(10**12), T(("a", 2), 2))
              .window(GlobalWindows.create()).trigger(EventTimeTrigger.create()).reduce(add_pairs))
    assert out == [("a", 3)]


# == processing time (the TestSource's manual clock) ==============================================


@pytest.mark.flink_semantics(PROCESSING_TIME_AT_END)
def test_processing_time_windows_follow_the_manual_clock(env):
    # clock 0: a:1 -> [0, 1000); at 999 a:2 still goes to [0, 1000), which has not fired
    # (a timer at 999 fires once the clock reads 1000); at 1000 it fires; a:4 -> [1000, 2000)
    out = run(env, keyed(env, ("a", 1), P(999), ("a", 2), P(1000), ("a", 4))
              .window(TumblingProcessingTimeWindows.of(1000)).process(sums))
    assert bag(out) == bag([("a", 0, 3)] + fired_at_end(env, [("a", 1000, 4)]))


@pytest.mark.flink_semantics(PROCESSING_TIME_AT_END)
def test_processing_time_context_and_start(env):
    out = run(env, keyed(env, ("a", 1), P(6000), ("a", 2), processing_time_start=5000)
              .window(TumblingProcessingTimeWindows.of(1000)).process(Clocks()))
    assert len(out) == 1 + len(fired_at_end(env, ["[6000, 7000)"]))
    assert sorted(out)[0] == ("a", 5000, 6000, MIN_TS, 6000, 1)
    assert flink_semantics(env) or sorted(out)[1][:3] == ("a", 6000, 7000)


@pytest.mark.flink_semantics(PROCESSING_TIME_AT_END)
def test_sliding_processing_time_windows(env):
    # clock 0, size 1000, slide 500: [-500, 500) and [0, 1000)
    out = run(env, keyed(env, ("a", 1)).window(SlidingProcessingTimeWindows.of(1000, 500)).process(contents))
    assert bag(out) == bag(fired_at_end(env, [("a", -500, 500, (1,)), ("a", 0, 1000, (1,))]))


@pytest.mark.flink_semantics(PROCESSING_TIME_AT_END)
def test_processing_time_session_windows(env):
    # a@0 and a@500 -> [0, 1500), fired when the clock reads 1500; a@2000 -> [2000, 3000)
    out = run(env, keyed(env, ("a", 1), P(500), ("a", 2), P(2000), ("a", 4))
              .window(ProcessingTimeSessionWindows.with_gap(1000)).process(contents))
    assert bag(out) == bag([("a", 0, 1500, (1, 2))] + fired_at_end(env, [("a", 2000, 3000, (4,))]))


@pytest.mark.flink_semantics(PROCESSING_TIME_AT_END)
def test_continuous_processing_time_trigger(env):
    # clock 0: fire point 1000 (fires once the clock reads 1001), then 2000, 3000...; at
    # the end of input the pending point fires once with what came since.
    out = run(env, keyed(env, ("a", 1), P(1001), ("a", 2), P(1500), P(2001), ("a", 4))
              .window(GlobalWindows.create()).trigger(ContinuousProcessingTimeTrigger.of(1000)).reduce(add_pairs))
    assert sorted(v for _, v in out) == [1, 3] + fired_at_end(env, [7])


def test_processing_time_trigger_on_event_time_windows(env):
    # [0, 1000) of event time, fired by the clock reaching 1000 (timer at 999), with no
    # watermark at all
    out = run(env, keyed(env, T(("a", 1), 10), T(("a", 2), 20), P(1000))
              .window(TumblingEventTimeWindows.of(1000)).trigger(ProcessingTimeTrigger.create()).process(Clocks()))
    assert out == [("a", 0, 1000, MIN_TS, 1000, 2)]


# == window functions ============================================================================

SALES = [T(("apple", 3), 100), T(("pear", 1), 200), T(("apple", 5), 300), T(("pear", 2), 1200),
         T(("apple", 4), 1500)]


def test_aggregate_average(env):
    out = run(env, keyed(env, *SALES).window(TumblingEventTimeWindows.of(1000)).aggregate(Average()))
    assert bag(out) == bag([4.0, 1.0, 2.0, 4.0])


class Labelled(WindowFunction):
    def apply(self, key, window, values, collector):
        for v in values:
            collector.collect((key, window.start, v))


def test_aggregate_with_window_function(env):
    out = run(env, keyed(env, *SALES).window(TumblingEventTimeWindows.of(1000))
              .aggregate(Average(), window_function=Labelled()))
    assert bag(out) == bag([("apple", 0, 4.0), ("pear", 0, 1.0), ("pear", 1000, 2.0), ("apple", 1000, 4.0)])


class Summed(ReduceFunction):
    def reduce(self, value1, value2):
        return (value1[0], value1[1] + value2[1])


class WindowStart(ProcessWindowFunction):
    def process(self, key, context, elements):
        return [(key, context.window().start, e[1]) for e in elements]


def test_reduce_with_process_window_function(env):
    out = run(env, keyed(env, *SALES).window(TumblingEventTimeWindows.of(1000))
              .reduce(Summed(), window_function=WindowStart()))
    assert bag(out) == bag([("apple", 0, 8), ("pear", 0, 1), ("pear", 1000, 2), ("apple", 1000, 4)])


def test_reduce_with_plain_window_function(env):
    out = run(env, keyed(env, *SALES).window(TumblingEventTimeWindows.of(1000))
              .reduce(add_pairs, window_function=lambda key, window, values: [(window.end, values[0])]))
    assert bag(out) == bag([(1000, ("apple", 8)), (1000, ("pear", 1)), (2000, ("pear", 2)), (2000, ("apple", 4))])


class CollectorProcess(ProcessWindowFunction):
    def process(self, key, context, elements, out):
        out.collect((key, context.window().end, len(elements)))


def test_process_and_apply_forms(env):
    windowed = keyed(env, *SALES).window(TumblingEventTimeWindows.of(1000))
    a = windowed.process(CollectorProcess())
    b = windowed.apply(Labelled()).filter(lambda r: r[0] == "pear")
    c = windowed.process(lambda key, ctx, elements: [(key, ctx.window().start, "plain")])
    out = run(env, a.union(b, c))
    assert bag(out) == bag([("apple", 1000, 2), ("pear", 1000, 1), ("pear", 2000, 1), ("apple", 2000, 1),
                            ("pear", 0, ("pear", 1)), ("pear", 1000, ("pear", 2)),
                            ("apple", 0, "plain"), ("pear", 0, "plain"), ("pear", 1000, "plain"),
                            ("apple", 1000, "plain")])


# == windows over the whole stream =================================================================


class AllStarts(ProcessAllWindowFunction):
    def process(self, context, elements):
        yield (context.window().start, tuple(sorted(elements)))


class AllCount(AllWindowFunction):
    def apply(self, window, values):
        return [(window.start, len(values))]


def test_window_all_process_and_apply(env):
    stream = source(env, T(1, 100), T(2, 1100), T(3, 150))
    a = stream.window_all(TumblingEventTimeWindows.of(1000)).process(AllStarts())
    b = stream.window_all(TumblingEventTimeWindows.of(1000)).apply(AllCount())
    out = run(env, a.union(b))
    assert bag(out) == bag([(0, (1, 3)), (1000, (2,)), (0, 2), (1000, 1)])


def test_window_all_reduce_and_aggregate(env):
    class Mean(AggregateFunction):
        def create_accumulator(self):
            return [0, 0]

        def add(self, value, acc):
            return [acc[0] + value, acc[1] + 1]

        def get_result(self, acc):
            return acc[0] / acc[1]

    stream = source(env, *[T(v, ts) for v, ts in [(1, 0), (2, 10), (3, 1000), (6, 1500)]])
    a = stream.window_all(TumblingEventTimeWindows.of(1000)).reduce(lambda x, y: x + y)
    b = stream.window_all(TumblingEventTimeWindows.of(1000)).aggregate(
        Mean(), window_function=lambda window, results: [("mean", window.start, results[0])])
    out = run(env, a.union(b))
    assert bag(out) == bag([3, 9, ("mean", 0, 1.5), ("mean", 1000, 4.5)])


@pytest.mark.flink_semantics(PARTIAL_WINDOWS)
def test_count_window_all(env, parallelism):
    out = run(env, env.from_collection(list(range(1, 6))).count_window_all(2)
              .apply(lambda window, values: [list(values)]))
    expected = [[1, 2], [3, 4]] + fired_at_end(env, [[5]])
    if parallelism == 1:
        assert out == expected
    else:
        assert [len(w) for w in out] == [len(w) for w in expected]
        assert sorted(v for w in out for v in w) == [1, 2, 3, 4, 5][:sum(map(len, expected))]


def test_window_all_late_side_output(env):
    late = OutputTag("late-all")
    result_stream = source(env, T(1, 100), W(999), T(2, 200), T(4, 1000)) \
        .window_all(TumblingEventTimeWindows.of(1000)).side_output_late_data(late).reduce(lambda x, y: x + y)
    main = collect(result_stream)
    side = collect(result_stream.get_side_output(late))
    env.execute("all late")
    assert bag(main) == bag([1, 4])
    assert side == [2]


# == time_window / count_window shorthands =========================================================


TIMED = [T(("a", 1), 1000), T(("a", 2), 1500), T(("a", 4), 2000)]


def test_time_window_follows_event_time_characteristic(env):
    # event time: [1000, 2000) -> 3 and [2000, 3000) -> 4
    env.set_stream_time_characteristic(TimeCharacteristic.EventTime)
    out = run(env, keyed(env, *TIMED).time_window(Time.seconds(1)).reduce(add_pairs))
    assert bag(out) == bag([("a", 3), ("a", 4)])


@pytest.mark.flink_semantics(PROCESSING_TIME_AT_END)
def test_time_window_defaults_to_processing_time(env):
    # the TestSource's clock stays at 0: everything is in the processing-time window [0, 1000)
    out = run(env, keyed(env, *TIMED).time_window(Time.seconds(1)).reduce(add_pairs))
    assert out == fired_at_end(env, [("a", 7)])


def test_sliding_time_window_under_event_time(env):
    # size 2000, slide 1000: [0, 2000) -> 1+2, [1000, 3000) -> 1+2+4, [2000, 4000) -> 4
    env.set_stream_time_characteristic(TimeCharacteristic.EventTime)
    out = run(env, keyed(env, *TIMED).time_window(Duration.of_seconds(2), Duration.of_seconds(1))
              .apply(lambda key, window, values: [(window.start, sum(v for _, v in values))]))
    assert bag(out) == bag([(0, 3), (1000, 7), (2000, 4)])


def test_time_window_all_under_event_time(env):
    env.set_stream_time_characteristic(TimeCharacteristic.EventTime)
    out = run(env, source(env, T(1, 100), T(2, 1100), T(4, 900)).time_window_all(1000).reduce(lambda x, y: x + y))
    assert bag(out) == bag([5, 2])


@pytest.mark.flink_semantics(PARTIAL_WINDOWS)
def test_count_window_shorthand(env, parallelism):
    # count_window(2) fires and empties the window every 2 records; the 5th fires at the end
    out = run(env, keyed(env, *[("a", i) for i in range(1, 6)]).count_window(2).apply(values_in_order))
    check_firings(out, [[1, 2], [3, 4]] + fired_at_end(env, [[5]]), parallelism)


@pytest.mark.flink_semantics(PARTIAL_WINDOWS)
def test_count_window_sliding_shorthand(env, parallelism):
    # the last 3 records every 2, and at the end the last 3 again (7 arrived since)
    out = run(env, keyed(env, *[("a", i) for i in range(1, 8)]).count_window(3, 2).apply(values_in_order))
    check_firings(out, [[1, 2], [2, 3, 4], [4, 5, 6]] + fired_at_end(env, [[5, 6, 7]]), parallelism)


def test_empty_input_fires_nothing(env):
    stream = source(env, W(1000)).key_by(lambda kv: kv[0]).window(TumblingEventTimeWindows.of(1000)).reduce(add_pairs)
    out = collect(stream)
    result = env.execute("empty")
    assert out == []
    assert result.late_records_dropped == 0
