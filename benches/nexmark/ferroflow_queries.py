"""Nexmark queries q0-q5, q7, q8 (q6 skipped, as Flink's Nexmark does) written with
ferroflow's DataStream API and Python functions, as a user would.

Each ``qN(events)`` takes one stream of all events (``Person``, ``Auction``, ``Bid``
named tuples, stamped with their ``date_time`` and carrying watermarks) and returns the
query's result stream. Semantics follow Flink's Nexmark SQL (github.com/nexmark/nexmark,
``queries/qN.sql``); ``reference.py`` is the same in plain Python, and its docstrings
say where ferroflow's result is a final value where Flink's SQL emits updates.

Events come from the native source (``native_events``) or from the JSON-lines file
that ``gen.py`` writes (``file_events``: ``NexmarkSource.from_json_lines``;
``generic_file_events``: the generic JSON-lines source and ``event_from_dict``).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from ferroflow import StreamExecutionEnvironment, Time
from ferroflow.connectors.nexmark import Auction, Bid, NexmarkSource, Person, event_from_dict
from ferroflow.datastream import DataStream
from ferroflow.functions import AggregateFunction, KeyedProcessFunction, ProcessWindowFunction
from ferroflow.state import ListStateDescriptor, ValueStateDescriptor
from ferroflow.watermarks import TimestampAssigner, WatermarkStrategy
from ferroflow.windowing import Duration
from ferroflow.window import SlidingEventTimeWindows, TumblingEventTimeWindows

#: Bounded out-of-orderness of the watermarks (ms): enough for the generator's
#: out-of-order groups at the default event rate.
OUT_OF_ORDERNESS_MS = 5000


def watermarks() -> WatermarkStrategy:
    return WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(OUT_OF_ORDERNESS_MS))


def native_events(env: StreamExecutionEnvironment, source: NexmarkSource) -> DataStream:
    """The native source's events, with watermarks."""
    return env.from_source(source, watermarks(), "nexmark")


class _DateTime(TimestampAssigner):
    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return value.date_time  # type: ignore[no-any-return]


def file_events(env: StreamExecutionEnvironment, path: str) -> DataStream:
    """The events of a JSON-lines file ``gen.py`` wrote, parsed in the engine and
    stamped with ``date_time``, with watermarks."""
    return env.from_source(NexmarkSource.from_json_lines(path), watermarks(), "nexmark file")


def generic_file_events(env: StreamExecutionEnvironment, path: str) -> DataStream:
    """The same through the generic JSON-lines source: a dict per line made an event by
    ``event_from_dict`` (a Python call per event), stamped by a timestamp assigner."""
    return (env.read_json_lines(path).map(event_from_dict)
            .assign_timestamps_and_watermarks(watermarks().with_timestamp_assigner(_DateTime())))


def is_bid(e: Any) -> bool:
    return type(e) is Bid


# -- q0: passthrough -------------------------------------------------------------------

def q0(events: DataStream) -> DataStream:
    """Every bid as it is."""
    return events.filter(is_bid)


# -- q1: currency conversion -----------------------------------------------------------

def _to_euro(b: Bid) -> Tuple[int, int, float, int, str]:
    return (b.auction, b.bidder, 0.908 * b.price, b.date_time, b.extra)


def q1(events: DataStream) -> DataStream:
    """Bids with their price in euros: (auction, bidder, 0.908 * price, date_time, extra)."""
    return events.filter(is_bid).map(_to_euro)


# -- q2: selection ---------------------------------------------------------------------

def _q2_keep(e: Any) -> bool:
    return type(e) is Bid and e.auction % 123 == 0


def q2(events: DataStream) -> DataStream:
    """(auction, price) of the bids on auctions whose id is a multiple of 123."""
    return events.filter(_q2_keep).map(lambda b: (b.auction, b.price))


# -- q3: local item suggestion ---------------------------------------------------------

Q3_STATES = ("OR", "ID", "CA")


def _q3_input(e: Any) -> bool:
    if type(e) is Person:
        return e.state.upper() in Q3_STATES
    return type(e) is Auction and e.category == 10


def _person_or_seller(e: Any) -> int:
    return e.id if type(e) is Person else e.seller  # type: ignore[no-any-return]


class _Q3Join(KeyedProcessFunction):
    """The streaming inner join of people and their auctions (keyed by person id): each
    match is emitted once, when its second side arrives."""

    def open(self, runtime_context: Any) -> None:
        self.person = runtime_context.get_state(ValueStateDescriptor("person"))
        self.auctions = runtime_context.get_list_state(ListStateDescriptor("auctions"))

    def process_element(self, value: Any, ctx: Any) -> Iterable[Tuple[str, str, str, int]]:
        if type(value) is Person:
            self.person.update(value)
            for a in self.auctions.get():
                yield (value.name, value.city, value.state, a)
            self.auctions.clear()
        else:
            p = self.person.value()
            if p is None:
                self.auctions.add(value.id)
            else:
                yield (p.name, p.city, p.state, value.id)


def q3(events: DataStream) -> DataStream:
    """(name, city, state, auction id) of auctions in category 10 by sellers in OR, ID or CA."""
    return events.filter(_q3_input).key_by(_person_or_seller).process(_Q3Join())


# -- q4: average closing price per category --------------------------------------------

def _auction_or_bid(e: Any) -> bool:
    return type(e) is Auction or type(e) is Bid


def _auction_id(e: Any) -> int:
    return e.id if type(e) is Auction else e.auction  # type: ignore[no-any-return]


class _ClosingPrice(KeyedProcessFunction):
    """Per auction: the highest bid made between its start and its expiry, emitted as
    (category, price) when the watermark passes the expiry (nothing if no such bid)."""

    def open(self, runtime_context: Any) -> None:
        self.auction = runtime_context.get_state(ValueStateDescriptor("auction"))
        self.best = runtime_context.get_state(ValueStateDescriptor("best"))
        self.early = runtime_context.get_list_state(ListStateDescriptor("early"))

    def _offer(self, a: Auction, price: int, at: int) -> None:
        if a.date_time <= at <= a.expires:
            best = self.best.value()
            if best is None or price > best:
                self.best.update(price)

    def process_element(self, value: Any, ctx: Any) -> None:
        if type(value) is Auction:
            self.auction.update(value)
            for price, at in self.early.get():
                self._offer(value, price, at)
            self.early.clear()
            ctx.timer_service().register_event_time_timer(value.expires)
        else:
            a = self.auction.value()
            if a is None:
                self.early.add((value.price, value.date_time))
            else:
                self._offer(a, value.price, value.date_time)

    def on_timer(self, timestamp: int, ctx: Any) -> Iterable[Tuple[int, int]]:
        a, best = self.auction.value(), self.best.value()
        if a is not None and best is not None:
            yield (a.category, best)
        self.auction.clear()
        self.best.clear()
        self.early.clear()


class _Average(KeyedProcessFunction):
    """The running average per category: (category, average, closed auctions)."""

    def open(self, runtime_context: Any) -> None:
        self.sum_count = runtime_context.get_state(ValueStateDescriptor("sum_count"))

    def process_element(self, value: Tuple[int, int], ctx: Any) -> Iterable[Tuple[int, float, int]]:
        total, n = self.sum_count.value() or (0, 0)
        total, n = total + value[1], n + 1
        self.sum_count.update((total, n))
        yield (value[0], total / n, n)


def q4(events: DataStream) -> DataStream:
    """Updates (category, average closing price, auctions closed so far); the last per
    category (the highest count) is the query's final answer."""
    closing = events.filter(_auction_or_bid).key_by(_auction_id).process(_ClosingPrice())
    return closing.key_by(lambda c: c[0]).process(_Average())


# -- q5: hot items ---------------------------------------------------------------------

class _Count(AggregateFunction):
    def create_accumulator(self) -> int:
        return 0

    def add(self, value: Any, accumulator: int) -> int:
        return accumulator + 1

    def get_result(self, accumulator: int) -> int:
        return accumulator

    def merge(self, acc_a: int, acc_b: int) -> int:
        return acc_a + acc_b


class _WithWindowEnd(ProcessWindowFunction):
    def process(self, key: Any, context: Any, elements: List[int]) -> Iterable[Tuple[int, int, int]]:
        for n in elements:
            yield (context.window().end, key, n)


class _Hottest(ProcessWindowFunction):
    def process(self, key: Any, context: Any, elements: List[Tuple[int, int, int]]) -> Iterable[Tuple[int, int, int]]:
        most = max(n for _, _, n in elements)
        for end, auction, n in elements:
            if n == most:
                yield (end, auction, n)


def q5(events: DataStream) -> DataStream:
    """(window end, auction, bids) of the auctions with the most bids in each 10 s window
    sliding by 2 s."""
    counts = (events.filter(is_bid).key_by(lambda b: b.auction)
              .window(SlidingEventTimeWindows.of(Time.seconds(10), Time.seconds(2)))
              .aggregate(_Count(), _WithWindowEnd()))
    return (counts.key_by(lambda c: c[0])
            .window(TumblingEventTimeWindows.of(Time.seconds(2)))
            .process(_Hottest()))


# -- q7: highest bid -------------------------------------------------------------------

class _TopBids(AggregateFunction):
    """The highest price and every bid at it."""

    def create_accumulator(self) -> Tuple[int, List[Bid]]:
        return (-1, [])

    def add(self, value: Bid, accumulator: Tuple[int, List[Bid]]) -> Tuple[int, List[Bid]]:
        best, bids = accumulator
        if value.price > best:
            return (value.price, [value])
        if value.price == best:
            bids.append(value)
        return accumulator

    def get_result(self, accumulator: Tuple[int, List[Bid]]) -> List[Bid]:
        return accumulator[1]

    def merge(self, acc_a: Any, acc_b: Any) -> Any:
        if acc_a[0] != acc_b[0]:
            return max(acc_a, acc_b, key=lambda a: a[0])
        return (acc_a[0], acc_a[1] + acc_b[1])


class _Emit(ProcessWindowFunction):
    def process(self, key: Any, context: Any, elements: List[List[Bid]]) -> Iterable[Tuple[int, int, int, int, str]]:
        for bids in elements:
            for b in bids:
                yield (b.auction, b.price, b.bidder, b.date_time, b.extra)


def q7(events: DataStream) -> DataStream:
    """(auction, price, bidder, date_time, extra) of the highest bids of each 10 s
    tumbling window."""
    return (events.filter(is_bid).key_by(lambda b: 0)
            .window(TumblingEventTimeWindows.of(Time.seconds(10)))
            .aggregate(_TopBids(), _Emit()))


# -- q8: new users monitoring ----------------------------------------------------------

def _person_or_auction(e: Any) -> bool:
    return type(e) is Person or type(e) is Auction


class _NewSellers(ProcessWindowFunction):
    def process(self, key: Any, context: Any, elements: List[Any]) -> Iterable[Tuple[int, str, int]]:
        names = [e.name for e in elements if type(e) is Person]
        if names and any(type(e) is Auction for e in elements):
            for name in names:
                yield (key, name, context.window().start)


def q8(events: DataStream) -> DataStream:
    """(person id, name, window start) of people who joined and opened an auction in the
    same 10 s tumbling window."""
    return (events.filter(_person_or_auction).key_by(_person_or_seller)
            .window(TumblingEventTimeWindows.of(Time.seconds(10)))
            .process(_NewSellers()))


QUERIES: Dict[str, Callable[[DataStream], DataStream]] = {
    "q0": q0, "q1": q1, "q2": q2, "q3": q3, "q4": q4, "q5": q5, "q7": q7, "q8": q8,
}


def build(env: StreamExecutionEnvironment, query: str, events: Optional[DataStream] = None,
          source: Optional[NexmarkSource] = None, path: Optional[str] = None) -> DataStream:
    """The query's result stream over the native source or a JSON-lines file."""
    if events is None:
        events = native_events(env, source) if path is None else file_events(env, path)  # type: ignore[arg-type]
    return QUERIES[query](events)
