"""Event-time and processing-time windows against the reference model
(tests/window_model.py): random out-of-order streams with watermarks, processing-time
markers and late records, every assigner, trigger and evictor, run as real jobs at 1
worker, 2 workers and 2 processes.

Each example builds one job: a non-parallel ``TestSource`` (records, explicit watermarks
and processing-time markers in a fixed order), ``key_by`` on the record's key, the window
under test, and a window function that reports ``(key, window start, window end, the
record ids)`` (``None`` bounds for the global window). The model gets the same events.

What can be compared exactly:
- Firings as a multiset: the order across keys and windows is not defined once keys are
  spread over workers. Inside one firing the records are in arrival order (one
  non-parallel source sends each key's records in order; merged sessions keep arrival
  order, a documented ferroflow choice); reduce/aggregate use order-insensitive functions.
- The late side output as a multiset, and ``late_records_dropped``.
- Inputs where the model reports an implementation-defined outcome (an overdue
  processing-time timer, see the model's docs) are skipped.

The model sees every watermark and marker on its own, in order, as a Flink operator does
(they travel in the stream). An engine whose window instance skipped an intermediate
watermark (one followed by no record of that instance's keys) could differ in two places:
how many identical firings ContinuousEventTimeTrigger makes (it fires once per watermark
advance), and whether a partial window (count or processing-time trigger) is cleaned up
by that watermark or fires at the end of input. Both would make results depend on timing
and on the number of workers, which issue 5 rules out, so the tests stay strict.
"""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Any, List, Optional, Tuple

from hypothesis import HealthCheck, assume, given, settings, strategies as st

import window_model as m
from conftest import collect, make_env
from ferroflow import Duration, GlobalWindow, OutputTag, Time, WatermarkStrategy
from ferroflow import testing as fft
from ferroflow.functions import AggregateFunction, ProcessAllWindowFunction, ProcessWindowFunction
from ferroflow.window import (ContinuousEventTimeTrigger, CountEvictor, CountTrigger, EventTimeSessionWindows,
                              EventTimeTrigger, GlobalWindows, ProcessingTimeSessionWindows, ProcessingTimeTrigger,
                              PurgingTrigger, SlidingEventTimeWindows, SlidingProcessingTimeWindows, TimeEvictor,
                              TumblingEventTimeWindows, TumblingProcessingTimeWindows)


def job_settings(examples: int) -> settings:
    """Each example runs one job (a few tens of ms; ~0.1 s with 2 processes), three times
    over (the parallelisms): about 190 examples in all keep the file near half a minute."""
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.filter_too_much])


EVENT, PROC = m.EVENT, m.PROCESSING
KEYS = ["a", "b", "c"]

# -- records --------------------------------------------------------------------------------------
#
# A record's value is (key, id, timestamp, 1 << id): ids are unique and in arrival order,
# and the bit lets order-insensitive reduce/aggregate functions name the exact set of
# records they saw (OR of the bits).


def value(key: Any, i: int, ts: Optional[int]) -> Tuple[Any, int, Optional[int], int]:
    return (key, i, ts, 1 << i)


def ids(values) -> Tuple[int, ...]:
    return tuple(v[1] for v in values)


def bits(values) -> int:
    out = 0
    for v in values:
        out |= v[3]
    return out


def gap_of(v) -> int:
    """The dynamic session gap of a record (ms, 1..9), a function of its id."""
    return 1 + (v[1] * 7) % 9


@st.composite
def streams(draw, timestamps: bool = True, clock: bool = True, watermark_lag=st.integers(-3, 15),
            max_records: int = 30) -> List[m.Event]:
    """Records of a few keys with timestamps that move forward with some disorder
    (``back``), watermarks that trail (or lead) the newest timestamp by ``lag``, and
    processing-time markers moving on by ``tick``. Watermarks and markers that go back
    (or stay) are in on purpose: they change nothing."""
    maybe_lag = st.one_of(st.none(), st.none(), watermark_lag)
    maybe_tick = st.one_of(st.none(), st.none(), st.integers(-3, 12)) if clock else st.none()
    steps = draw(st.lists(st.tuples(st.sampled_from(KEYS), st.integers(0, 4), st.integers(0, 12), maybe_lag,
                                    maybe_tick), max_size=max_records))
    front = draw(st.integers(-12, 12))
    now = 0
    events: List[m.Event] = []
    for i, (key, advance, back, lag, tick) in enumerate(steps):
        front += advance
        ts = front - back if timestamps else None
        events.append(m.Record(key, value(key, i, ts), ts))
        if lag is not None:
            events.append(m.Watermark(front - lag))
        if tick is not None:
            now += tick
            events.append(m.ProcessingTime(now))
    return events


def source_items(events: List[m.Event]) -> list:
    out = []
    for e in events:
        if isinstance(e, m.Record):
            out.append(e.value if e.timestamp is None else fft.Timestamped(e.value, e.timestamp))
        elif isinstance(e, m.Watermark):
            out.append(fft.Watermark(e.time))
        else:
            out.append(fft.ProcessingTime(e.time))
    return out


# -- window specs -----------------------------------------------------------------------------------

#: The API takes durations as Duration, Time, timedelta or int ms: every example picks one.
DURATION_FLAVOURS = [Duration.of_millis, Time.milliseconds, lambda n: datetime.timedelta(milliseconds=n),
                     lambda n: n]

lateness = st.sampled_from([0, 0, 1, 3, 7, 20])


@st.composite
def tumbling(draw, domain: str) -> m.Tumbling:
    size = draw(st.integers(1, 12))
    return m.Tumbling(size, draw(st.integers(-(size - 1), size - 1)), domain)


@st.composite
def sliding(draw, domain: str) -> m.Sliding:
    slide = draw(st.integers(1, 8))
    size = draw(st.integers(1, 4 * slide))  # at most 4 windows per record; slide > size leaves gaps
    return m.Sliding(size, slide, draw(st.integers(-(slide - 1), slide - 1)), domain)


def sessions(domain: str):
    return st.one_of(st.builds(lambda g: m.Session(gap=g, domain=domain), st.integers(1, 10)),
                     st.just(m.Session(gap_fn=gap_of, domain=domain)))


def triggers():
    """Any trigger (None: the assigner's default), purging or not."""
    base = st.one_of(st.none(), st.just(m.EventTimeTrigger()), st.just(m.ProcessingTimeTrigger()),
                     st.builds(m.CountTrigger, st.integers(1, 4)),
                     st.builds(m.ContinuousEventTimeTrigger, st.integers(1, 8)))

    def maybe_purging(t, purge):
        if not purge:
            return t
        return m.PurgingTrigger(t if t is not None else m.EventTimeTrigger())

    return st.builds(maybe_purging, base, st.booleans())


evictors = st.one_of(st.none(), st.none(),
                     st.builds(m.CountEvictor, st.integers(1, 4), st.booleans()),
                     st.builds(m.TimeEvictor, st.integers(1, 10), st.booleans()))


def base_trigger(t):
    """The trigger inside any PurgingTrigger wrappers."""
    while isinstance(t, m.PurgingTrigger):
        t = t.inner
    return t


def api_assigner(a: m.Assigner, dur):
    if isinstance(a, m.Tumbling):
        cls = TumblingEventTimeWindows if a.domain == EVENT else TumblingProcessingTimeWindows
        return cls.of(dur(a.size), dur(a.offset)) if a.offset else cls.of(dur(a.size))
    if isinstance(a, m.Sliding):
        cls = SlidingEventTimeWindows if a.domain == EVENT else SlidingProcessingTimeWindows
        if a.offset:
            return cls.of(dur(a.size), dur(a.slide), dur(a.offset))
        return cls.of(dur(a.size), dur(a.slide))
    if isinstance(a, m.Session):
        cls = EventTimeSessionWindows if a.domain == EVENT else ProcessingTimeSessionWindows
        return cls.with_gap(dur(a.gap)) if a.gap is not None else cls.with_dynamic_gap(a.gap_fn)
    assert isinstance(a, m.Global)
    return GlobalWindows.create()


def api_trigger(t, dur):
    if isinstance(t, m.PurgingTrigger):
        return PurgingTrigger.of(api_trigger(t.inner, dur))
    if isinstance(t, m.EventTimeTrigger):
        return EventTimeTrigger.create()
    if isinstance(t, m.ProcessingTimeTrigger):
        return ProcessingTimeTrigger.create()
    if isinstance(t, m.CountTrigger):
        return CountTrigger.of(t.count)
    if isinstance(t, m.ContinuousEventTimeTrigger):
        return ContinuousEventTimeTrigger.of(dur(t.interval))
    raise AssertionError(t)


def api_evictor(e, dur):
    if isinstance(e, m.CountEvictor):
        return CountEvictor.of(e.count, e.evict_after) if e.evict_after else CountEvictor.of(e.count)
    if isinstance(e, m.TimeEvictor):
        return TimeEvictor.of(dur(e.span), e.evict_after) if e.evict_after else TimeEvictor.of(dur(e.span))
    raise AssertionError(e)


# -- window functions -------------------------------------------------------------------------------


def bounds(window) -> Tuple[Optional[int], Optional[int]]:
    """(start, end) of a TimeWindow, (None, None) for the global window."""
    if isinstance(window, GlobalWindow):
        return (None, None)
    return (window.start, window.end)


class ReportWindow(ProcessWindowFunction):
    """(key, start, end, record ids in the order the window holds them)."""

    def process(self, key, context, elements):
        yield (key, *bounds(context.window()), ids(elements))


class ReportAllWindow(ProcessAllWindowFunction):
    def process(self, context, elements):
        yield (None, *bounds(context.window()), ids(elements))


def report_apply(key, window, inputs):
    """A plain function as ``apply``'s WindowFunction."""
    return [(key, *bounds(window), ids(inputs))]


def reduce_bits(a, b):
    """Order-insensitive reduce: the OR of the records' bits (key kept)."""
    return (a[0], -1, None, a[3] | b[3])


class CountAndBits(AggregateFunction):
    """Order-insensitive aggregate: (how many records, OR of their bits)."""

    def create_accumulator(self):
        return (0, 0)

    def add(self, value, accumulator):
        return (accumulator[0] + 1, accumulator[1] | value[3])

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return (a[0] + b[0], a[1] | b[1])


class ReportAggregate(ProcessWindowFunction):
    """The window function after reduce/aggregate: gets the single result."""

    def process(self, key, context, elements):
        (result,) = list(elements)
        yield (key, *bounds(context.window()), result)


FUNCTIONS = ["process", "apply", "reduce", "reduce+process", "aggregate", "aggregate+process"]


def expected_row(firing: m.Firing, function: str):
    """What the job's function emits for one model firing."""
    key, start, end, values = firing.row()
    if function in ("process", "apply"):
        return (key, start, end, ids(values))
    if function == "reduce":
        return (key, bits(values))
    if function == "reduce+process":
        return (key, start, end, bits(values))
    if function == "aggregate":
        return (len(values), bits(values))
    if function == "aggregate+process":
        return (key, start, end, (len(values), bits(values)))
    raise AssertionError(function)


def normalize_output(row, function: str):
    """A job's output row in the shape of ``expected_row``. A reduced value is
    ``(key, -1, None, bits)``, or the record itself in a window of one."""
    if function == "reduce":
        return (row[0], row[3])
    if function == "reduce+process":
        return row[:3] + (row[3][3],)
    if function == "aggregate+process":
        return row[:3] + (tuple(row[3]),)
    return row


# -- running a job ----------------------------------------------------------------------------------


def run_windows(parallelism, events: List[m.Event], spec: m.WindowSpec, dur, function: str = "process",
                window_all: bool = False, processing_time_start: int = 0):
    """Runs the job; returns (firing rows as a Counter, late values as a Counter, the
    job's late_records_dropped)."""
    env = make_env(parallelism)
    source = env.add_source(fft.TestSource(source_items(events), processing_time_start=processing_time_start))
    if window_all:
        windowed = source.window_all(api_assigner(spec.assigner, dur))
    else:
        windowed = source.key_by(lambda v: v[0]).window(api_assigner(spec.assigner, dur))
    if spec.trigger is not None:
        windowed = windowed.trigger(api_trigger(spec.trigger, dur))
    if spec.evictor is not None:
        windowed = windowed.evictor(api_evictor(spec.evictor, dur))
    if spec.allowed_lateness:
        windowed = windowed.allowed_lateness(dur(spec.allowed_lateness))
    tag = OutputTag("late")
    if spec.late_output:
        windowed = windowed.side_output_late_data(tag)
    if window_all:
        result = windowed.process(ReportAllWindow())
    elif function == "process":
        result = windowed.process(ReportWindow())
    elif function == "apply":
        result = windowed.apply(report_apply)
    elif function == "reduce":
        result = windowed.reduce(reduce_bits)
    elif function == "reduce+process":
        result = windowed.reduce(reduce_bits, window_function=ReportAggregate())
    elif function == "aggregate":
        result = windowed.aggregate(CountAndBits())
    elif function == "aggregate+process":
        result = windowed.aggregate(CountAndBits(), window_function=ReportAggregate())
    else:
        raise AssertionError(function)
    out = collect(result)
    late = collect(result.get_side_output(tag)) if spec.late_output else []
    job = env.execute("event time model")
    return (Counter(normalize_output(r, function) for r in out), Counter(late), job.late_records_dropped)


def check(parallelism, events, spec, dur, function: str = "process", window_all: bool = False,
          processing_time_start: int = 0) -> None:
    """Runs the job and the model on ``events`` and compares what they emit."""
    if window_all:
        events = [m.Record(None, e.value, e.timestamp) if isinstance(e, m.Record) else e for e in events]
    expected = m.run_model(events, spec, processing_time_start)
    assume(not expected.ambiguous)
    got, late, late_dropped = run_windows(parallelism, events, spec, dur, function, window_all,
                                          processing_time_start)
    want = Counter(expected_row(f, function) for f in expected.firings)
    assert got == want, (f"firings differ from the model\n  only in the job:   {sorted_repr(got - want)}\n"
                         f"  only in the model: {sorted_repr(want - got)}")
    assert late == Counter(r.value for r in expected.late), "late side output differs from the model"
    assert late_dropped == expected.late_dropped, "late_records_dropped differs from the model"


def sorted_repr(c: Counter) -> str:
    return repr(sorted(c.elements(), key=repr))


durations = st.sampled_from(DURATION_FLAVOURS)

# -- properties: every assigner and trigger ------------------------------------------------------------


@job_settings(30)
@given(events=streams(), assigner=st.one_of(tumbling(EVENT), sliding(EVENT)), trigger=triggers(),
       evictor=evictors, lateness=lateness, late_output=st.booleans(), dur=durations)
def test_event_time_tumbling_and_sliding(parallelism, events, assigner, trigger, evictor, lateness, late_output,
                                         dur):
    check(parallelism, events, m.WindowSpec(assigner, trigger, evictor, lateness, late_output), dur)


@job_settings(30)
@given(events=streams(), domain=st.sampled_from([EVENT, PROC]), data=st.data(), trigger=triggers(),
       evictor=evictors, lateness=lateness, late_output=st.booleans(), dur=durations)
def test_session_windows(parallelism, events, domain, data, trigger, evictor, lateness, late_output, dur):
    assigner = data.draw(sessions(domain), label="assigner")
    check(parallelism, events, m.WindowSpec(assigner, trigger, evictor, lateness, late_output), dur)


@job_settings(25)
@given(timestamps=st.booleans(), data=st.data(), assigner=st.one_of(tumbling(PROC), sliding(PROC)),
       trigger=triggers(), evictor=evictors, lateness=lateness, late_output=st.booleans(), dur=durations,
       start=st.integers(-20, 20))
def test_processing_time_windows(parallelism, timestamps, data, assigner, trigger, evictor, lateness, late_output,
                                 dur, start):
    """Processing-time assigners on the testing source's manual clock (starting at
    ``start``); records with or without timestamps (without: TimeEvictor keeps them all,
    as Flink's, which only evicts by timestamps it has)."""
    events = data.draw(streams(timestamps=timestamps), label="events")
    check(parallelism, events, m.WindowSpec(assigner, trigger, evictor, lateness, late_output), dur,
          processing_time_start=start)


@job_settings(20)
@given(events=streams(), trigger=triggers(), evictor=evictors, lateness=lateness, dur=durations)
def test_global_windows(parallelism, events, trigger, evictor, lateness, dur):
    """GlobalWindows: never late, fire through their trigger and at the end of input."""
    check(parallelism, events, m.WindowSpec(m.Global(), trigger, evictor, lateness, late_output=True), dur)


# -- window functions ---------------------------------------------------------------------------------


@job_settings(25)
@given(events=streams(), assigner=st.one_of(tumbling(EVENT), sliding(EVENT), sessions(EVENT), tumbling(PROC),
                                            sessions(PROC), st.just(m.Global())),
       trigger=st.sampled_from([None, m.CountTrigger(2), m.PurgingTrigger(m.CountTrigger(3))]),
       evictor=st.one_of(st.none(), st.builds(m.CountEvictor, st.integers(1, 3))),
       lateness=lateness, function=st.sampled_from(FUNCTIONS), dur=durations)
def test_window_functions(parallelism, events, assigner, trigger, evictor, lateness, function, dur):
    """reduce and aggregate (alone or with a window function), process and apply."""
    check(parallelism, events, m.WindowSpec(assigner, trigger, evictor, lateness), dur, function)


@job_settings(15)
@given(events=streams(), assigner=st.one_of(tumbling(EVENT), sliding(EVENT), sessions(EVENT), tumbling(PROC),
                                            st.just(m.Global())),
       trigger=triggers(), lateness=lateness, late_output=st.booleans(), dur=durations)
def test_window_all(parallelism, events, assigner, trigger, lateness, late_output, dur):
    """window_all: one window operator (parallelism 1) for the whole stream."""
    check(parallelism, events, m.WindowSpec(assigner, trigger, None, lateness, late_output), dur, window_all=True)


# -- late records -------------------------------------------------------------------------------------


@job_settings(20)
@given(events=streams(watermark_lag=st.integers(-20, 4), clock=False),
       assigner=st.one_of(tumbling(EVENT), sliding(EVENT), sessions(EVENT)),
       trigger=st.sampled_from([None, m.EventTimeTrigger(), m.PurgingTrigger(m.EventTimeTrigger())]),
       lateness=lateness, late_output=st.booleans(), dur=durations)
def test_late_records_are_counted_or_side_output(parallelism, events, assigner, trigger, lateness, late_output,
                                                 dur):
    """Watermarks running ahead of the records: many late records, each either in the
    late side output or counted in ``late_records_dropped`` (never both, never lost)."""
    check(parallelism, events, m.WindowSpec(assigner, trigger, None, lateness, late_output), dur)


# -- watermark strategies -------------------------------------------------------------------------------


@st.composite
def never_late_streams(draw, bound: int):
    """Records whose timestamp is never more than ``bound`` behind the newest before it:
    a bounded-out-of-orderness watermark (newest - bound - 1) never makes one late,
    whenever it is emitted. Plus upstream watermarks, which the strategy must replace."""
    steps = draw(st.lists(st.tuples(st.sampled_from(KEYS), st.integers(0, 6), st.integers(0, bound),
                                    st.one_of(st.none(), st.none(), st.none(), st.integers(0, 10**6))),
                          max_size=30))
    newest = draw(st.integers(-10, 10))
    events: List[m.Event] = []
    for i, (key, advance, back, upstream_watermark) in enumerate(steps):
        newest += advance
        ts = newest - back
        events.append(m.Record(key, value(key, i, ts), ts))
        if upstream_watermark is not None:
            events.append(m.Watermark(upstream_watermark))
    return events


@job_settings(25)
@given(data=st.data(), monotonous=st.booleans(), assigner=st.one_of(tumbling(EVENT), sliding(EVENT)),
       trigger=st.sampled_from([None, m.EventTimeTrigger(), m.PurgingTrigger(m.EventTimeTrigger()),
                                m.CountTrigger(2), m.PurgingTrigger(m.CountTrigger(3))]),
       evictor=st.one_of(st.none(), st.builds(m.CountEvictor, st.integers(1, 3))),
       lateness=lateness, from_source=st.booleans(), timestamps_in_values=st.booleans(), dur=durations)
def test_bounded_out_of_orderness_strategy(parallelism, data, monotonous, assigner, trigger, evictor, lateness,
                                           from_source, timestamps_in_values, dur):
    """``for_bounded_out_of_orderness(B)`` / ``for_monotonous_timestamps()`` on the
    single non-parallel testing source. The strategy emits ``newest - B - 1`` after every
    batch, and batches are up to the engine; the property is built so that the result does
    not depend on where the batches end:

    - no record is ever more than ``B`` behind the newest before it, so none is late,
      whatever watermark came before it, and no event-time window fires before all its
      records are in: each fires once, complete;
    - count triggers never see a clean-up before the end (a huge allowed lateness), as
      clean-up would drop a partial count at a batch-dependent moment;
    - no sessions (a session could fire, then merge with a later record) and no
      continuous or processing-time triggers (they fire at batch-dependent moments).

    The model gets the records, then the strategy's last watermark, then the end."""
    bound = 0 if monotonous else data.draw(st.integers(0, 15), label="bound")
    events = data.draw(never_late_streams(bound), label="events")
    if isinstance(base_trigger(trigger), m.CountTrigger):
        lateness = 10**9
    spec = m.WindowSpec(assigner, trigger, evictor, lateness)
    records = [e for e in events if isinstance(e, m.Record)]
    model_events: List[m.Event] = list(records)
    if records:
        model_events.append(m.Watermark(max(r.timestamp for r in records) - bound - 1))
    expected = m.run_model(model_events, spec)
    assert expected.late_dropped == 0 and not expected.ambiguous

    if monotonous:
        strategy = WatermarkStrategy.for_monotonous_timestamps()
    else:
        strategy = WatermarkStrategy.for_bounded_out_of_orderness(dur(bound) if bound else Duration.of_millis(0))
    if timestamps_in_values:
        # records without timestamps; the timestamp assigner reads them from the values
        for_source = [e.value if isinstance(e, m.Record) else fft.Watermark(e.time) for e in events]
        strategy = strategy.with_timestamp_assigner(lambda v, record_ts: v[2])
    else:
        # Timestamped records; the strategy keeps their timestamps
        for_source = source_items(events)
    env = make_env(parallelism)
    if from_source:
        stream = env.from_source(fft.TestSource(for_source), strategy, "test source")
    else:
        stream = env.add_source(fft.TestSource(for_source)).assign_timestamps_and_watermarks(strategy)
    windowed = stream.key_by(lambda v: v[0]).window(api_assigner(assigner, dur))
    if trigger is not None:
        windowed = windowed.trigger(api_trigger(trigger, dur))
    if evictor is not None:
        windowed = windowed.evictor(api_evictor(evictor, dur))
    if lateness:
        windowed = windowed.allowed_lateness(dur(lateness))
    out = collect(windowed.process(ReportWindow()))
    job = env.execute("watermark strategy model")
    want = Counter(expected_row(f, "process") for f in expected.firings)
    got = Counter(out)
    assert got == want, (f"firings differ from the model\n  only in the job:   {sorted_repr(got - want)}\n"
                         f"  only in the model: {sorted_repr(want - got)}")
    assert job.late_records_dropped == 0
