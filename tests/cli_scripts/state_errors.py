"""A job whose process function (or its state) fails on one record or timer.

    ferroflow run state_errors.py [-w 2 | -p 2] - CASE [--catch]

CASE picks the failure (see ``CASES`` at the bottom). The poisoned record is
``('kp', 'POISON-17')``, of key ``'kp'``; timers are registered for that key only.
--catch: catch ferroflow.JobExecutionException around env.execute() and print its
attributes as JSON on stdout (the in-process API), then exit 0.
"""

import json
import os
import sys

from ferroflow import (AggregateFunction, AggregatingStateDescriptor, BroadcastProcessFunction,
                       JobExecutionException, KeyedBroadcastProcessFunction, KeyedCoProcessFunction,
                       KeyedProcessFunction, ListStateDescriptor, MapFunction, MapStateDescriptor,
                       ProcessFunction, ReducingStateDescriptor, StreamExecutionEnvironment, ValueStateDescriptor)

args = sys.argv[1:]
case = args[0]
catch = "--catch" in args

POISON = "POISON-17"
RECORDS = [("k1", 1), ("k2", 2), ("kp", POISON), ("k3", 3)]
TIMER_AT = 4242


class UserBoom(Exception):
    pass


def explode(where):
    raise UserBoom(f"user code failed in {where}")  # RAISE-LINE


def poisoned(value):
    return value[1] == POISON


# -- element methods ---------------------------------------------------------------------------

class KeyedElement(KeyedProcessFunction):
    def process_element(self, value, ctx):
        if poisoned(value):
            explode("process_element")
        yield value


class PlainElement(ProcessFunction):
    def process_element(self, value, ctx):
        if poisoned(value):
            explode("process_element")
        yield value


class EventTimer(KeyedProcessFunction):
    def process_element(self, value, ctx):
        if poisoned(value):
            ctx.timer_service().register_event_time_timer(TIMER_AT)
        yield value

    def on_timer(self, timestamp, ctx):
        explode("on_timer")


class ProcessingTimer(EventTimer):
    def process_element(self, value, ctx):
        if poisoned(value):
            ctx.timer_service().register_processing_time_timer(TIMER_AT)
        yield value


class CoElement(KeyedCoProcessFunction):
    def process_element1(self, value, ctx):
        yield value

    def process_element2(self, value, ctx):
        if poisoned(value):
            explode("process_element2")
        yield value


class BroadcastElement(KeyedBroadcastProcessFunction):
    def process_element(self, value, ctx):
        if poisoned(value):
            explode("process_element")
        yield value

    def process_broadcast_element(self, value, ctx):
        ctx.get_broadcast_state(RULES).put(value, value)
        return ()


RULES = MapStateDescriptor("rules")


# -- state accesses --------------------------------------------------------------------------

class MapStateKey(KeyedProcessFunction):
    def open(self, runtime_context):
        self.seen = runtime_context.get_map_state(MapStateDescriptor("seen"))

    def process_element(self, value, ctx):
        self.seen.put(["a", "list"] if poisoned(value) else value[1], 1)  # STATE-LINE map
        yield value


class ListStateUpdate(KeyedProcessFunction):
    def open(self, runtime_context):
        self.items = runtime_context.get_list_state(ListStateDescriptor("items"))

    def process_element(self, value, ctx):
        self.items.update(17 if poisoned(value) else [value[1]])  # STATE-LINE list
        yield value


def user_reduce(a, b):
    if POISON in (a, b):
        explode("reduce")
    return a + b if isinstance(a, int) and isinstance(b, int) else b


class Reducing(KeyedProcessFunction):
    def open(self, runtime_context):
        self.total = runtime_context.get_reducing_state(ReducingStateDescriptor("total", user_reduce))

    def process_element(self, value, ctx):
        self.total.add(0)
        self.total.add(value[1])  # STATE-LINE reducing
        yield value


class UserAggregate(AggregateFunction):
    def create_accumulator(self):
        return 0

    def add(self, value, accumulator):
        if value == POISON:
            explode("add")
        return accumulator + value

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return a + b


class Aggregating(KeyedProcessFunction):
    def open(self, runtime_context):
        self.total = runtime_context.get_aggregating_state(AggregatingStateDescriptor("total", UserAggregate()))

    def process_element(self, value, ctx):
        self.total.add(value[1])  # STATE-LINE aggregating
        yield value


class Catching(KeyedProcessFunction):
    """Catches its own reduce function's exception inside process_element: the
    exception must be the user's, not a wrapper of ferroflow's."""

    def open(self, runtime_context):
        self.total = runtime_context.get_reducing_state(ReducingStateDescriptor("total", user_reduce))
        self.agg = runtime_context.get_aggregating_state(AggregatingStateDescriptor("agg", UserAggregate()))

    def process_element(self, value, ctx):
        caught = []
        for state in (self.total, self.agg):
            state.add(0)
            try:
                state.add(value[1])
            except UserBoom as e:
                caught.append(str(e))
        yield value[0], caught


class OpenFails(KeyedProcessFunction):
    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))
        explode("open")

    def process_element(self, value, ctx):
        yield value


# -- start-time errors -----------------------------------------------------------------------

class MapWithState(MapFunction):
    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def map(self, value):
        return value


class PlainWithState(ProcessFunction):
    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, value, ctx):
        yield value


class BroadcastWithKeyedState(BroadcastProcessFunction):
    def open(self, runtime_context):
        self.count = runtime_context.get_state(ValueStateDescriptor("count"))

    def process_element(self, value, ctx):
        yield value

    def process_broadcast_element(self, value, ctx):
        return ()


class Reused(KeyedProcessFunction):
    def open(self, runtime_context):
        self.a = runtime_context.get_state(ValueStateDescriptor("n"))
        self.b = runtime_context.get_list_state(ListStateDescriptor("n"))

    def process_element(self, value, ctx):
        yield value


class ReusedLater(KeyedProcessFunction):
    """Registers the second kind only when the poisoned record comes: the same
    error, at that record."""

    def open(self, runtime_context):
        self.ctx = runtime_context
        self.a = runtime_context.get_state(ValueStateDescriptor("n"))

    def process_element(self, value, ctx):
        if poisoned(value):
            self.ctx.get_map_state(MapStateDescriptor("n"))
        yield value


env = StreamExecutionEnvironment.get_execution_environment()
source = env.from_collection(RECORDS)
keyed = source.key_by(lambda r: r[0])

if case == "keyed_element":
    out = keyed.process(KeyedElement())  # OP-LINE keyed_element
elif case == "plain_element":
    out = source.process(PlainElement())  # OP-LINE plain_element
elif case == "event_timer":
    out = keyed.process(EventTimer())  # OP-LINE event_timer
elif case == "processing_timer":
    out = keyed.process(ProcessingTimer())  # OP-LINE processing_timer
elif case == "co_element":
    first = env.from_collection([("k1", 10), ("kp", 11)])
    out = first.connect(source).key_by(lambda r: r[0], lambda r: r[0]).process(CoElement())  # OP-LINE co_element
elif case == "broadcast_element":
    rules = env.from_collection(["r1"]).broadcast(RULES)
    out = keyed.connect(rules).process(BroadcastElement())  # OP-LINE broadcast_element
elif case == "map_state_key":
    out = keyed.process(MapStateKey())  # OP-LINE map_state_key
elif case == "list_state_update":
    out = keyed.process(ListStateUpdate())  # OP-LINE list_state_update
elif case == "reducing":
    out = keyed.process(Reducing())  # OP-LINE reducing
elif case == "aggregating":
    out = keyed.process(Aggregating())  # OP-LINE aggregating
elif case == "catching":
    out = keyed.process(Catching())  # OP-LINE catching
elif case == "open":
    out = keyed.process(OpenFails())  # OP-LINE open
elif case == "plain_map_state":
    out = source.map(MapWithState())  # OP-LINE plain_map_state
elif case == "plain_process_state":
    out = source.process(PlainWithState())  # OP-LINE plain_process_state
elif case == "broadcast_keyed_state":
    rules = env.from_collection(["r1"]).broadcast(RULES)
    out = source.connect(rules).process(BroadcastWithKeyedState())  # OP-LINE broadcast_keyed_state
elif case == "reused":
    out = keyed.process(Reused())  # OP-LINE reused
elif case == "reused_later":
    out = keyed.process(ReusedLater())  # OP-LINE reused_later
else:
    raise SystemExit(f"unknown case {case!r}")

out.print()


def report(line):
    """One line on stdout from every process (os.write: sys.stdout shows a -p run's lines
    outside a job once, from the first process)."""
    os.write(1, (line + "\n").encode())

if catch:
    try:
        env.execute("state job")
    except JobExecutionException as e:
        report(json.dumps({"type": type(e).__name__, "message": str(e), "kind": e.kind, "operator": e.operator,
                          "record": e.record, "detail": e.detail, "worker": e.worker}))
    else:
        report(json.dumps({"type": None}))
else:
    env.execute("state job")
