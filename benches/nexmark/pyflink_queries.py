"""Nexmark q0-q5, q7, q8 on PyFlink 2.3's DataStream API in thread mode (run with the
PyFlink virtualenv's Python), over the JSON-lines file gen.py wrote.

    python pyflink_queries.py q1 events.jsonl [--check result.json [--digest]]

As a PyFlink user would write them: a ``FileSource`` of text lines, ``json.loads`` in a
``map`` (events stay dicts, pickled where they cross an exchange), Python functions for
every step, types declared for the tuples a step outputs. The queries that need event
time (q4, q5, q7, q8) stamp the events with a Python ``TimestampAssigner`` and bounded
out-of-orderness watermarks of 5 s, as ferroflow's; windows are Flink's, aligned on the
epoch. Semantics are reference.py's; q4 emits updates, as ferroflow's q4 does, and its
final answer is each category's last one.

The last step only counts the results (the timed run: ferroflow's discards them);
``--check FILE`` writes ``{"results": n}`` there when the job closes it, and with
``--digest`` also folds every result into the benchmark's order-independent checksum
(``result_check``), for the benchmark to compare with the reference.
"""
import argparse
import json
import os
import sys
import time

T0 = time.perf_counter()

from pyflink.common import Configuration, Duration, Types, WatermarkStrategy
from pyflink.common.time import Time
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import RuntimeExecutionMode, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import Sink
from pyflink.datastream.connectors.file_system import FileSource, StreamFormat
from pyflink.datastream.functions import (
    AggregateFunction, FlatMapFunction, KeyedProcessFunction, ProcessWindowFunction, RuntimeContext)
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor
from pyflink.datastream.window import SlidingEventTimeWindows, TumblingEventTimeWindows
from result_check import Tally, add_arguments

#: ferroflow_queries.OUT_OF_ORDERNESS_MS
OUT_OF_ORDERNESS_MS = 5000
Q3_STATES = ("OR", "ID", "CA")


class DateTime(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value["date_time"]


def with_event_time(events):
    strategy = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(OUT_OF_ORDERNESS_MS))
                .with_timestamp_assigner(DateTime()))
    return events.assign_timestamps_and_watermarks(strategy)


def is_bid(e):
    return e["type"] == "bid"


# -- q0-q2: stateless ---------------------------------------------------------------------

def q0(events):
    return events.filter(is_bid)


def q1(events):
    return events.filter(is_bid).map(
        lambda b: (b["auction"], b["bidder"], 0.908 * b["price"], b["date_time"], b["extra"]),
        output_type=Types.TUPLE([Types.LONG(), Types.LONG(), Types.DOUBLE(), Types.LONG(), Types.STRING()]))


def q2(events):
    return (events.filter(lambda e: e["type"] == "bid" and e["auction"] % 123 == 0)
            .map(lambda b: (b["auction"], b["price"]), output_type=Types.TUPLE([Types.LONG(), Types.LONG()])))


# -- q3: local item suggestion ------------------------------------------------------------

def q3_input(e):
    if e["type"] == "person":
        return e["state"].upper() in Q3_STATES
    return e["type"] == "auction" and e["category"] == 10


def person_or_seller(e):
    return e["id"] if e["type"] == "person" else e["seller"]


class Q3Join(KeyedProcessFunction):
    """The streaming inner join of people and their auctions (keyed by person id): each
    match is emitted once, when its second side arrives."""

    def open(self, runtime_context: RuntimeContext):
        self.person = runtime_context.get_state(ValueStateDescriptor("person", Types.PICKLED_BYTE_ARRAY()))
        self.auctions = runtime_context.get_list_state(ListStateDescriptor("auctions", Types.LONG()))

    def process_element(self, value, ctx):
        if value["type"] == "person":
            self.person.update(value)
            for a in self.auctions.get():
                yield (value["name"], value["city"], value["state"], a)
            self.auctions.clear()
        else:
            p = self.person.value()
            if p is None:
                self.auctions.add(value["id"])
            else:
                yield (p["name"], p["city"], p["state"], value["id"])


def q3(events):
    return (events.filter(q3_input).key_by(person_or_seller, key_type=Types.LONG())
            .process(Q3Join(), output_type=Types.TUPLE([Types.STRING(), Types.STRING(), Types.STRING(),
                                                        Types.LONG()])))


# -- q4: average closing price per category -----------------------------------------------

class ClosingPrice(KeyedProcessFunction):
    """Per auction: the highest bid made between its start and its expiry, emitted as
    (category, price) when the watermark passes the expiry (nothing if no such bid)."""

    def open(self, runtime_context: RuntimeContext):
        self.auction = runtime_context.get_state(ValueStateDescriptor("auction", Types.PICKLED_BYTE_ARRAY()))
        self.best = runtime_context.get_state(ValueStateDescriptor("best", Types.LONG()))
        self.early = runtime_context.get_list_state(
            ListStateDescriptor("early", Types.TUPLE([Types.LONG(), Types.LONG()])))

    def _offer(self, a, price, at):
        if a["date_time"] <= at <= a["expires"]:
            best = self.best.value()
            if best is None or price > best:
                self.best.update(price)

    def process_element(self, value, ctx):
        if value["type"] == "auction":
            self.auction.update(value)
            for price, at in self.early.get():
                self._offer(value, price, at)
            self.early.clear()
            ctx.timer_service().register_event_time_timer(value["expires"])
        else:
            a = self.auction.value()
            if a is None:
                self.early.add((value["price"], value["date_time"]))
            else:
                self._offer(a, value["price"], value["date_time"])

    def on_timer(self, timestamp, ctx):
        a, best = self.auction.value(), self.best.value()
        if a is not None and best is not None:
            yield (a["category"], best)
        self.auction.clear()
        self.best.clear()
        self.early.clear()


class Average(KeyedProcessFunction):
    """The running average per category: (category, average, closed auctions)."""

    def open(self, runtime_context: RuntimeContext):
        self.sum_count = runtime_context.get_state(
            ValueStateDescriptor("sum_count", Types.TUPLE([Types.LONG(), Types.LONG()])))

    def process_element(self, value, ctx):
        total, n = self.sum_count.value() or (0, 0)
        total, n = total + value[1], n + 1
        self.sum_count.update((total, n))
        yield (value[0], total / n, n)


def q4(events):
    closing = (with_event_time(events).filter(lambda e: e["type"] in ("auction", "bid"))
               .key_by(lambda e: e["id"] if e["type"] == "auction" else e["auction"], key_type=Types.LONG())
               .process(ClosingPrice(), output_type=Types.TUPLE([Types.LONG(), Types.LONG()])))
    return (closing.key_by(lambda c: c[0], key_type=Types.LONG())
            .process(Average(), output_type=Types.TUPLE([Types.LONG(), Types.DOUBLE(), Types.LONG()])))


# -- q5: hot items ------------------------------------------------------------------------

class Count(AggregateFunction):
    def create_accumulator(self):
        return 0

    def add(self, value, accumulator):
        return accumulator + 1

    def get_result(self, accumulator):
        return accumulator

    def merge(self, acc_a, acc_b):
        return acc_a + acc_b


class WithWindowEnd(ProcessWindowFunction):
    def process(self, key, context, elements):
        for n in elements:
            yield (context.window().end, key, n)


class Hottest(ProcessWindowFunction):
    def process(self, key, context, elements):
        elements = list(elements)
        most = max(n for _, _, n in elements)
        for end, auction, n in elements:
            if n == most:
                yield (end, auction, n)


def q5(events):
    triple = Types.TUPLE([Types.LONG(), Types.LONG(), Types.LONG()])
    counts = (with_event_time(events).filter(is_bid).key_by(lambda b: b["auction"], key_type=Types.LONG())
              .window(SlidingEventTimeWindows.of(Time.seconds(10), Time.seconds(2)))
              .aggregate(Count(), WithWindowEnd(), accumulator_type=Types.LONG(), output_type=triple))
    return (counts.key_by(lambda c: c[0], key_type=Types.LONG())
            .window(TumblingEventTimeWindows.of(Time.seconds(2)))
            .process(Hottest(), output_type=triple))


# -- q7: highest bid ----------------------------------------------------------------------

class TopBids(AggregateFunction):
    """The highest price and every bid at it."""

    def create_accumulator(self):
        return (-1, [])

    def add(self, value, accumulator):
        best, bids = accumulator
        if value["price"] > best:
            return (value["price"], [value])
        if value["price"] == best:
            bids.append(value)
        return accumulator

    def get_result(self, accumulator):
        return accumulator[1]

    def merge(self, acc_a, acc_b):
        if acc_a[0] != acc_b[0]:
            return max(acc_a, acc_b, key=lambda a: a[0])
        return (acc_a[0], acc_a[1] + acc_b[1])


class Emit(ProcessWindowFunction):
    def process(self, key, context, elements):
        for bids in elements:
            for b in bids:
                yield (b["auction"], b["price"], b["bidder"], b["date_time"], b["extra"])


def q7(events):
    return (with_event_time(events).filter(is_bid).key_by(lambda b: 0, key_type=Types.INT())
            .window(TumblingEventTimeWindows.of(Time.seconds(10)))
            .aggregate(TopBids(), Emit(), accumulator_type=Types.PICKLED_BYTE_ARRAY(),
                       output_type=Types.TUPLE([Types.LONG(), Types.LONG(), Types.LONG(), Types.LONG(),
                                                Types.STRING()])))


# -- q8: new users monitoring -------------------------------------------------------------

class NewSellers(ProcessWindowFunction):
    def process(self, key, context, elements):
        elements = list(elements)
        names = [e["name"] for e in elements if e["type"] == "person"]
        if names and any(e["type"] == "auction" for e in elements):
            for name in names:
                yield (key, name, context.window().start)


def q8(events):
    return (with_event_time(events).filter(lambda e: e["type"] in ("person", "auction"))
            .key_by(person_or_seller, key_type=Types.LONG())
            .window(TumblingEventTimeWindows.of(Time.seconds(10)))
            .process(NewSellers(), output_type=Types.TUPLE([Types.LONG(), Types.STRING(), Types.LONG()])))


QUERIES = {"q0": q0, "q1": q1, "q2": q2, "q3": q3, "q4": q4, "q5": q5, "q7": q7, "q8": q8}


# -- the checking step --------------------------------------------------------------------

class Check(FlatMapFunction):
    """Counts the results (and with ``digest``, sums their checksums); writes them to
    ``check`` on close. Emits nothing (a discarding sink follows)."""

    def __init__(self, query, check, digest):
        self.query, self.check, self.digest = query, check, digest

    def open(self, runtime_context: RuntimeContext):
        self.tally = Tally(self.query, self.digest)

    def flat_map(self, value):
        self.tally.add(value)
        return ()

    def close(self):
        self.tally.write(self.check)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(ap, QUERIES)
    args = ap.parse_args()

    # The embedded interpreter (thread mode, inside the JVM) sees this virtualenv's
    # packages and this directory only through PYTHONPATH.
    import site
    extra = [os.path.dirname(os.path.abspath(__file__))] + site.getsitepackages()
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(extra + ([old] if old else []))
    conf = Configuration()
    conf.set_string("python.execution-mode", "thread")
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_runtime_mode(RuntimeExecutionMode.STREAMING)
    env.set_parallelism(1)
    t_env = time.perf_counter()

    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), os.path.abspath(args.path)).build()
    events = env.from_source(source, WatermarkStrategy.no_watermarks(), "lines").map(json.loads)
    check = os.path.abspath(args.check) if args.check else None
    (QUERIES[args.query](events).flat_map(Check(args.query, check, args.digest))
     .sink_to(Sink("org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink")))
    res = env.execute(f"nexmark {args.query}")
    print(f"pyflink {args.query}: setup_s={t_env - T0:.2f} build+run_s={time.perf_counter() - t_env:.2f} "
          f"job_net_runtime_s={res.get_net_runtime() / 1000.0:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
