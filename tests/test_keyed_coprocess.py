"""``connect(a, b).key_by(k1, k2).process(KeyedCoProcessFunction)`` (issue 12 part D):
keyed state and timers shared by both inputs of a key, the keyed process context
(key, timestamp, timer service, side outputs), records of both inputs in watermark
order, errors naming the key; and a property test against a plain-Python model of
shared state and event-time timers. Every test runs at 1 worker, 2 threads and 2
processes."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferroflow import (JobExecutionException, KeyedCoProcessFunction, ListStateDescriptor,
                       OutputTag, ValueStateDescriptor)
from ferroflow.testing import TestSource, Timestamped, Watermark

from conftest import JOB_SETTINGS, bag, collect, make_env, run


class Balance(KeyedCoProcessFunction):
    """Deposits (first input) and withdrawals (second) of one account share a
    ValueState; an event-time timer at the end of time reports each account."""

    def open(self, runtime_context):
        self.balance = runtime_context.get_state(ValueStateDescriptor("balance"))
        self.seen = runtime_context.get_list_state(ListStateDescriptor("seen"))

    def process_element1(self, value, ctx):
        self.balance.update((self.balance.value() or 0) + value[1])
        self.seen.add(("in", value[1]))
        ctx.timer_service().register_event_time_timer(2**62)
        yield ctx.get_current_key(), "in", self.balance.value()

    def process_element2(self, value, ctx):
        self.balance.update((self.balance.value() or 0) - value[1])
        self.seen.add(("out", value[1]))
        ctx.timer_service().register_event_time_timer(2**62)
        yield ctx.get_current_key(), "out", self.balance.value()

    def on_timer(self, timestamp, ctx):
        yield ctx.get_current_key(), "final", self.balance.value(), tuple(sorted(self.seen.get()))


def test_both_inputs_of_a_key_share_state_and_timers(env):
    deposits = [(f"acct{i % 5}", i) for i in range(30)]
    withdrawals = [(f"acct{i % 3}", 2 * i) for i in range(20)]
    connected = env.from_collection(deposits).connect(env.from_collection(withdrawals))
    out = run(env, connected.key_by(lambda d: d[0], lambda w: w[0]).process(Balance()))
    finals = {r[0]: (r[2], r[3]) for r in out if r[1] == "final"}
    want: Dict[str, Tuple[int, Tuple[Any, ...]]] = {}
    for key in {d[0] for d in deposits + withdrawals}:
        ins = [("in", v) for k, v in deposits if k == key]
        outs = [("out", v) for k, v in withdrawals if k == key]
        want[key] = (sum(v for _, v in ins) - sum(v for _, v in outs), tuple(sorted(ins + outs)))
    assert finals == want
    # One timer per key (registered by every record of both inputs), and each record's
    # output saw the balance of its own key's records before it.
    assert len([r for r in out if r[1] == "final"]) == len(want)
    assert len(out) == len(deposits) + len(withdrawals) + len(want)


def test_connecting_two_keyed_streams_works_as_key_by_on_the_connection(env):
    a = env.from_collection([("x", 1), ("y", 2)]).key_by(lambda r: r[0])
    b = env.from_collection([("x", 10)]).key_by(lambda r: r[0])
    out = run(env, a.connect(b).process(Balance()))
    assert bag(r for r in out if r[1] == "final") == bag([("x", "final", -9, (("in", 1), ("out", 10))),
                                                         ("y", "final", 2, (("in", 2),))])


LATE = OutputTag("late")


class Expiring(KeyedCoProcessFunction):
    """Input 1 opens a key for 10 ms (an event-time timer closes it); input 2's records
    pass while the key is open and go to a side output otherwise."""

    def open(self, runtime_context):
        self.until = runtime_context.get_state(ValueStateDescriptor("until"))

    def process_element1(self, value, ctx):
        self.until.update(ctx.timestamp() + 10)
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 10)

    def process_element2(self, value, ctx):
        if self.until.value() is None:
            yield LATE, (value, ctx.timestamp(), ctx.timer_service().current_watermark())
        else:
            yield value, ctx.timestamp()

    def on_timer(self, timestamp, ctx):
        self.until.clear()
        yield ("closed", ctx.get_current_key(), timestamp, ctx.time_domain().name)


def test_timers_fire_between_records_of_both_inputs_in_watermark_order(env):
    opens = env.add_source(TestSource([Timestamped(("k", "open"), 100), Watermark(105), Watermark(120)]))
    uses = env.add_source(TestSource([Timestamped(("k", "use1"), 104), Watermark(108),
                                      Timestamped(("k", "use2"), 112), Watermark(130)]))
    main = opens.connect(uses).key_by(lambda r: r[0], lambda r: r[0]).process(Expiring())
    late = collect(main.get_side_output(LATE))
    out = run(env, main)
    # use1 (sent under no watermark) passes; the timer at 110 fires once both inputs'
    # watermarks passed it (120 and 130), before use2 (sent under 108 then, but taken
    # after the watermark 108 applies, which is before 110: it still passes).
    assert bag(out) == bag([(("k", "use1"), 104), (("k", "use2"), 112), ("closed", "k", 110, "EVENT_TIME")])
    assert late == []


def test_records_after_the_timer_go_to_the_side_output(env):
    opens = env.add_source(TestSource([Timestamped(("k", "open"), 100), Watermark(200)]))
    uses = env.add_source(TestSource([Watermark(150), Timestamped(("k", "use"), 160), Watermark(200)]))
    main = opens.connect(uses).key_by(lambda r: r[0], lambda r: r[0]).process(Expiring())
    late = collect(main.get_side_output(LATE))
    out = run(env, main)
    assert out == [("closed", "k", 110, "EVENT_TIME")]
    # The record sent under watermark 150 came after the timer at 110 fired.
    assert late == [(("k", "use"), 160, 150)]


class Boom(KeyedCoProcessFunction):
    def process_element1(self, value, ctx):
        yield value

    def process_element2(self, value, ctx):
        if value == 3:
            raise ValueError("no threes on the second input")
        yield value


def test_an_error_in_process_element2_names_operator_key_and_record(env):
    connected = env.from_collection([1, 2]).connect(env.from_collection([3]))
    collect(connected.key_by(lambda x: x * 10, lambda x: x * 10).process(Boom()).name("boom"))
    with pytest.raises(JobExecutionException) as info:
        env.execute("co-process error")
    text = str(info.value) + info.value.detail
    assert "boom" in text and "no threes" in text and "key 30" in text and "process_element2" in text
    assert "raise ValueError" in text


def test_a_keyed_co_process_function_needs_keyed_inputs(env):
    connected = env.from_collection([1]).connect(env.from_collection([2]))
    with pytest.raises(TypeError, match="needs keyed inputs"):
        connected.process(Boom())


def test_a_keyed_co_process_function_without_process_element2_is_refused_at_the_call(env):
    class KeyedHalf(KeyedCoProcessFunction):
        def process_element1(self, value, ctx):
            yield value

    connected = env.from_collection([1]).connect(env.from_collection([2])).key_by(lambda x: x, lambda x: x)
    with pytest.raises(TypeError, match="process_element2"):
        connected.process(KeyedHalf())


# -- the model -------------------------------------------------------------------------------

TIMER_AFTER = 20


class Ledger(KeyedCoProcessFunction):
    """Per key: a balance (first input adds, second subtracts) and a count, both in
    state; every record registers an event-time timer TIMER_AFTER after it; a timer
    reports (timestamp, balance, count)."""

    def open(self, runtime_context):
        self.balance = runtime_context.get_state(ValueStateDescriptor("balance"))
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def _apply(self, value, ctx, sign):
        self.balance.update((self.balance.value() or 0) + sign * value[1])
        self.count.update((self.count.value() or 0) + 1)
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + TIMER_AFTER)
        return ()

    def process_element1(self, value, ctx):
        return self._apply(value, ctx, 1)

    def process_element2(self, value, ctx):
        return self._apply(value, ctx, -1)

    def on_timer(self, timestamp, ctx):
        yield ctx.get_current_key(), (timestamp, self.balance.value(), self.count.value())


@st.composite
def inputs(draw) -> List[Any]:
    """One input's events: records at or after its watermark, and watermarks."""
    events: List[Any] = []
    watermark = 0
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.integers(0, 3)) == 0:
            watermark += draw(st.integers(1, 60))
            events.append(Watermark(watermark))
        else:
            ts = watermark + draw(st.integers(0, 60))
            events.append(Timestamped((draw(st.sampled_from(["a", "b", 3])), draw(st.integers(0, 9))), ts))
    return events


def ledger_model(first: List[Any], second: List[Any]) -> Dict[Any, List[Tuple[int, int, int]]]:
    """Records of both inputs in the order of the watermark each was sent under;
    before each, the timers its watermark passed fire (in timestamp, then key order);
    at the end all remaining timers fire."""
    merged = []
    for sign, events in ((1, first), (-1, second)):
        watermark = -2**63
        for e in events:
            if isinstance(e, Watermark):
                watermark = e.timestamp
            else:
                merged.append((watermark, sign, e))
    merged.sort(key=lambda m: m[0])  # stable: each input keeps its order
    balance: Dict[Any, int] = {}
    count: Dict[Any, int] = {}
    timers: set = set()
    out: Dict[Any, List[Tuple[int, int, int]]] = {}

    def fire(upto: float) -> None:
        for ts, key in sorted((t for t in timers if t[0] <= upto), key=lambda t: (t[0], repr(t[1]))):
            timers.discard((ts, key))
            out.setdefault(key, []).append((ts, balance[key], count[key]))

    for watermark, sign, e in merged:
        fire(watermark)
        key, value = e.value
        balance[key] = balance.get(key, 0) + sign * value
        count[key] = count.get(key, 0) + 1
        timers.add((e.timestamp + TIMER_AFTER, key))
    fire(float("inf"))
    return out


@JOB_SETTINGS
@given(first=inputs(), second=inputs())
def test_shared_state_and_timers_match_the_model(parallelism, first, second):
    env = make_env(parallelism)
    a = env.add_source(TestSource(first))
    b = env.add_source(TestSource(second))
    out = collect(a.connect(b).key_by(lambda r: r[0], lambda r: r[0]).process(Ledger()))
    env.execute("co-process model")
    got: Dict[Any, List[Tuple[int, int, int]]] = {}
    for key, row in out:
        got.setdefault(key, []).append(row)
    assert got == ledger_model(first, second)
