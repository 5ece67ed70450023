"""The Nexmark benchmark's events (people, auctions, bids), made by the engine.

``env.from_source(NexmarkSource(events=1_000_000), WatermarkStrategy.for_bounded_out_of_orderness(...),
"nexmark")`` is one stream of all events, in the generator's proportions (1 person, 3
auctions, 46 bids in every 50 events), as Flink's Nexmark source: each is a ``Person``,
an ``Auction`` or a ``Bid`` (named tuples: ``bid.price``), told apart with
``isinstance``. Every worker makes its share of the event ids; the events (ids, fields,
timestamps) are the same at any parallelism. Each record's timestamp is its event's
``date_time`` (ms since the epoch). See docs/connectors.md, "Nexmark".
"""

from __future__ import annotations

from typing import Any, Dict, NamedTuple, Optional, Union

from .. import _nodes

__all__ = ["NexmarkSource", "Person", "Auction", "Bid", "Event", "event_to_dict", "event_from_dict"]


class Person(NamedTuple):
    """A new person (Nexmark's ``Person``); ``date_time`` in ms since the epoch."""

    id: int
    name: str
    email_address: str
    credit_card: str
    city: str
    state: str
    date_time: int
    extra: str


class Auction(NamedTuple):
    """A new auction (Nexmark's ``Auction``): ``seller`` is a person id, prices in cents,
    ``date_time`` and ``expires`` in ms since the epoch."""

    id: int
    item_name: str
    description: str
    initial_bid: int
    reserve: int
    date_time: int
    expires: int
    seller: int
    category: int
    extra: str


class Bid(NamedTuple):
    """A bid (Nexmark's ``Bid``) on auction ``auction`` by person ``bidder``; ``price`` in
    cents, ``date_time`` in ms since the epoch."""

    auction: int
    bidder: int
    price: int
    channel: str
    url: str
    date_time: int
    extra: str


Event = Union[Person, Auction, Bid]

#: The JSON-lines form's ``type`` of each record class.
_TYPES: Dict[str, Any] = {"person": Person, "auction": Auction, "bid": Bid}
_NAMES = {cls: name for name, cls in _TYPES.items()}


def event_to_dict(event: Event) -> Dict[str, Any]:
    """The event as one JSON object: ``{"type": "bid", "auction": ..., ...}``."""
    d: Dict[str, Any] = {"type": _NAMES[type(event)]}
    d.update(event._asdict())
    return d


def event_from_dict(d: Dict[str, Any]) -> Event:
    """The event ``event_to_dict`` made ``d`` from."""
    cls = _TYPES.get(d.get("type", ""))
    if cls is None:
        raise ValueError(f"not a Nexmark event (its 'type' must be person, auction or bid): {d!r}")
    return cls(*(d[f] for f in cls._fields))


def _count(name: str, value: Any, optional: bool = False, least: int = 1) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value < 2 ** 63:
        hint = " or None" if optional else ""
        raise ValueError(f"NexmarkSource: {name} must be an int >= {least}{hint}, got {value!r}")
    return value


class NexmarkSource:
    """The Nexmark generator's events, for ``env.from_source``.

    ``events``: how many (None: never ends). ``rate``: events per second over all
    workers in wall-clock time (None: as fast as the job takes them). ``event_rate``:
    events per second of event time, the spacing of the timestamps (the generator's
    ``first_rate``). ``base_time``: the first event's timestamp (ms; fixed by default, so
    every run makes the same events). ``out_of_order_group_size``: events are shuffled in
    groups of this many (1: in timestamp order). The hot-key ratios, ``active_people``,
    ``in_flight_auctions`` and ``num_categories`` are the generator's (defaults as
    Flink's Nexmark)."""

    def __init__(self, events: Optional[int] = 100_000, *, rate: Optional[int] = None, event_rate: int = 10_000,
                 base_time: int = 1_672_531_200_000, out_of_order_group_size: int = 1, hot_seller_ratio: int = 4,
                 hot_auction_ratio: int = 2, hot_bidder_ratio: int = 4, hot_channel_ratio: int = 2,
                 active_people: int = 1000, in_flight_auctions: int = 100, num_categories: int = 5) -> None:
        self.events: Optional[int] = _count("events", events, optional=True, least=0)
        self.rate: Optional[int] = _count("rate", rate, optional=True)
        self.event_rate: int = _count("event_rate", event_rate)
        self.base_time: int = _count("base_time", base_time, least=0)
        self.out_of_order_group_size: int = _count("out_of_order_group_size", out_of_order_group_size)
        self.hot_seller_ratio: int = _count("hot_seller_ratio", hot_seller_ratio)
        self.hot_auction_ratio: int = _count("hot_auction_ratio", hot_auction_ratio)
        self.hot_bidder_ratio: int = _count("hot_bidder_ratio", hot_bidder_ratio)
        self.hot_channel_ratio: int = _count("hot_channel_ratio", hot_channel_ratio)
        self.active_people: int = _count("active_people", active_people)
        self.in_flight_auctions: int = _count("in_flight_auctions", in_flight_auctions)
        self.num_categories: int = _count("num_categories", num_categories)

    def _kind(self) -> _nodes.Nexmark:
        return _nodes.Nexmark(self.events, self.rate, self.event_rate, self.base_time, self.out_of_order_group_size,
                              self.hot_seller_ratio, self.hot_auction_ratio, self.hot_bidder_ratio,
                              self.hot_channel_ratio, self.active_people, self.in_flight_auctions,
                              self.num_categories, Person, Auction, Bid)

    def _label(self) -> str:
        return f"nexmark {self.events if self.events is not None else 'unbounded'} events"

    def __repr__(self) -> str:
        return f"NexmarkSource(events={self.events!r}, rate={self.rate!r})"
