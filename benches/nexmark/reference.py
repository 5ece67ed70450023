"""The Nexmark queries in plain Python over a list of events: what each ferroflow query
(``ferroflow_queries.py``) must produce, and the plain-Python speed the benchmark
compares with.

Semantics are Flink's Nexmark SQL over a bounded input, as the result stands at its
end. Where Flink's SQL emits updates (q3's join as matches arrive, q4's averages), the
final answer is compared: q3 as the multiset of matches, q4 as each category's last
average. Windows are Flink's: aligned on the epoch, ``[start, end)``, every one fired at
the end of the input.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Callable, Dict, Iterable, List, Tuple

from ferroflow.connectors.nexmark import Auction, Bid, Person, event_from_dict

Q3_STATES = ("OR", "ID", "CA")


def read_events(path: str) -> List[Any]:
    """The events of a JSON-lines file ``gen.py`` wrote, in file order."""
    with open(path, encoding="utf-8") as f:
        return [event_from_dict(json.loads(line)) for line in f if line.strip()]


def q0(events: Iterable[Any]) -> List[Any]:
    return [e for e in events if type(e) is Bid]


def q1(events: Iterable[Any]) -> List[Any]:
    return [(e.auction, e.bidder, 0.908 * e.price, e.date_time, e.extra) for e in events if type(e) is Bid]


def q2(events: Iterable[Any]) -> List[Any]:
    return [(e.auction, e.price) for e in events if type(e) is Bid and e.auction % 123 == 0]


def q3(events: Iterable[Any]) -> List[Any]:
    people: Dict[int, Person] = {}
    auctions: List[Auction] = []
    for e in events:
        if type(e) is Person and e.state.upper() in Q3_STATES:
            people[e.id] = e
        elif type(e) is Auction and e.category == 10:
            auctions.append(e)
    out = []
    for a in auctions:
        p = people.get(a.seller)
        if p is not None:
            out.append((p.name, p.city, p.state, a.id))
    return out


def q4(events: Iterable[Any]) -> Dict[int, Tuple[float, int]]:
    """Per category: (average closing price, auctions with a winning bid)."""
    events = list(events)
    auctions = {e.id: e for e in events if type(e) is Auction}
    best: Dict[int, int] = {}
    for b in events:
        if type(b) is Bid:
            a = auctions.get(b.auction)
            if a is not None and a.date_time <= b.date_time <= a.expires and b.price > best.get(a.id, -1):
                best[a.id] = b.price
    per_category: Dict[int, List[int]] = defaultdict(list)
    for auction_id, price in best.items():
        per_category[auctions[auction_id].category].append(price)
    return {c: (sum(prices) / len(prices), len(prices)) for c, prices in per_category.items()}


def q5(events: Iterable[Any], size: int = 10_000, slide: int = 2_000) -> List[Tuple[int, int, int]]:
    counts: Dict[int, Dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for b in events:
        if type(b) is Bid:
            t = b.date_time
            start = t - t % slide
            while start > t - size:
                counts[start + size][b.auction] += 1
                start -= slide
    out = []
    for end, per_auction in counts.items():
        most = max(per_auction.values())
        out.extend((end, auction, n) for auction, n in per_auction.items() if n == most)
    return out


def q7(events: Iterable[Any], size: int = 10_000) -> List[Tuple[int, int, int, int, str]]:
    top: Dict[int, Tuple[int, List[Bid]]] = {}
    for b in events:
        if type(b) is Bid:
            w = b.date_time - b.date_time % size
            price, bids = top.get(w, (-1, []))
            if b.price > price:
                top[w] = (b.price, [b])
            elif b.price == price:
                bids.append(b)
    return [(b.auction, b.price, b.bidder, b.date_time, b.extra) for _, bids in top.values() for b in bids]


def q8(events: Iterable[Any], size: int = 10_000) -> List[Tuple[int, str, int]]:
    people: Dict[Tuple[int, int], List[str]] = defaultdict(list)
    sellers = set()
    for e in events:
        if type(e) is Person:
            people[(e.id, e.date_time - e.date_time % size)].append(e.name)
        elif type(e) is Auction:
            sellers.add((e.seller, e.date_time - e.date_time % size))
    return [(pid, name, start) for (pid, start), names in people.items() if (pid, start) in sellers for name in names]


QUERIES: Dict[str, Callable[[Iterable[Any]], Any]] = {
    "q0": q0, "q1": q1, "q2": q2, "q3": q3, "q4": q4, "q5": q5, "q7": q7, "q8": q8,
}


def final_q4(updates: Iterable[Tuple[int, float, int]]) -> Dict[int, Tuple[float, int]]:
    """ferroflow's q4 updates reduced to each category's last one (the most auctions)."""
    last: Dict[int, Tuple[float, int]] = {}
    for category, average, n in updates:
        if n > last.get(category, (0.0, 0))[1]:
            last[category] = (average, n)
    return last


def main() -> None:
    """``python reference.py q1 events.jsonl``: one query over the file (what the
    benchmark times as the plain-Python row: reading the file, then the query)."""
    import sys

    query, path = sys.argv[1], sys.argv[2]
    result = QUERIES[query](read_events(path))
    print(f"{query}: {len(result)} results", file=sys.stderr)


if __name__ == "__main__":
    main()
