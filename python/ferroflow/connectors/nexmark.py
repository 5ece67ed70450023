"""The Nexmark benchmark's events (people, auctions, bids), made by the engine.

``env.from_source(NexmarkSource(events=1_000_000), WatermarkStrategy.for_bounded_out_of_orderness(...),
"nexmark")`` is one stream of all events, in the generator's proportions (1 person, 3
auctions, 46 bids in every 50 events), as Flink's Nexmark source: each is a ``Person``,
an ``Auction`` or a ``Bid`` (named tuples: ``bid.price``), told apart with
``isinstance``. Every worker makes its share of the event ids; the events (ids, fields,
timestamps) are the same at any parallelism. Each record's timestamp is its event's
``date_time`` (ms since the epoch). See docs/connectors.md, "Nexmark".

``NexmarkSource.from_json_lines(path)`` reads the same records from the JSON-lines
form (``event_to_dict``, written by ``benches/nexmark/gen.py``), parsed in the engine.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, NamedTuple, Optional, Union

from .. import _nodes

__all__ = ["NexmarkSource", "NexmarkFileSource", "Person", "Auction", "Bid", "Event", "event_to_dict", "event_from_dict"]


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

    @staticmethod
    def from_json_lines(path: Any, *paths: Any, skip_malformed: bool = False) -> "NexmarkFileSource":
        """Nexmark events read from JSON-lines files (one ``event_to_dict`` object a
        line, as ``benches/nexmark/gen.py`` writes them), for ``env.from_source``: the
        same ``Person``, ``Auction`` and ``Bid`` records as ``event_from_dict`` makes,
        each stamped with its ``date_time``, parsed in the engine (no dict, no Python
        call per event). ``path``, ``*paths``: files or folders (read with their
        sub-folders, as ``FileSource``), local or ``s3://``; large files are split
        across workers by byte ranges, and a checkpointed job resumes where it was.
        A line that is not an event fails the job naming the file and line, unless
        ``skip_malformed``: then it is skipped and counted (on stderr)."""
        return NexmarkFileSource([path, *paths], skip_malformed)

    def _kind(self) -> _nodes.Nexmark:
        return _nodes.Nexmark(self.events, self.rate, self.event_rate, self.base_time, self.out_of_order_group_size,
                              self.hot_seller_ratio, self.hot_auction_ratio, self.hot_bidder_ratio,
                              self.hot_channel_ratio, self.active_people, self.in_flight_auctions,
                              self.num_categories, Person, Auction, Bid)

    def _label(self) -> str:
        return f"nexmark {self.events if self.events is not None else 'unbounded'} events"

    def __repr__(self) -> str:
        return f"NexmarkSource(events={self.events!r}, rate={self.rate!r})"


class NexmarkFileSource:
    """Nexmark events from JSON-lines files: made by ``NexmarkSource.from_json_lines``."""

    def __init__(self, paths: List[Any], skip_malformed: bool = False) -> None:
        from .file_system import _file_path

        if not isinstance(skip_malformed, bool):
            raise TypeError(f"NexmarkSource.from_json_lines: skip_malformed must be a bool, got {skip_malformed!r}")
        self.paths: List[str] = [_file_path(p, "NexmarkSource.from_json_lines") for p in paths]
        for p in self.paths:
            if not p.startswith("s3://") and not os.path.exists(p):
                raise FileNotFoundError(f"NexmarkSource.from_json_lines: no such file or directory: {p}")
        self.skip_malformed = skip_malformed

    def _kind(self) -> _nodes.NexmarkFiles:
        return _nodes.NexmarkFiles(self.paths, self.skip_malformed, Person, Auction, Bid)

    def _label(self) -> str:
        return f"nexmark {', '.join(self.paths)}"

    def __repr__(self) -> str:
        return f"NexmarkSource.from_json_lines({', '.join(map(repr, self.paths))}, skip_malformed={self.skip_malformed!r})"
