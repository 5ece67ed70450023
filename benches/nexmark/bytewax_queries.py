"""Nexmark q0-q5, q7, q8 on Bytewax 0.21 (run with the Bytewax virtualenv's Python), over
the JSON-lines file gen.py wrote.

    python bytewax_queries.py q1 events.jsonl [--check result.json [--digest]]

Semantics are reference.py's (windows aligned on the epoch, ``[start, end)``, every one
fired by the end of the input). Records stay the dicts ``json.loads`` makes (cheaper than
a class per event, so this favours Bytewax). Event time comes from ``EventClock`` with
the same 5 s of out-of-orderness as ferroflow's watermarks.

Where Bytewax has no operator for the query, it is written as a Bytewax user would:
q3's streaming join and q4's closing prices are ``stateful`` operators keyed by person
and auction. Bytewax has no event-time timers outside its windowing operators, so q4
closes every auction at the end of the input (``on_eof``): for a bounded input that is
the final answer the reference gives, and q4's per-category averages are then updated as
ferroflow's are.

The sink only counts the results (the timed run: ferroflow's discards them); ``--check
FILE`` writes ``{"results": n}`` there at the end, and with ``--digest`` also folds every
result into the benchmark's order-independent checksum (``result_check``), for the
benchmark to compare with the reference.
"""
import argparse
import json
from datetime import datetime, timedelta, timezone

import bytewax.operators as op
import bytewax.operators.windowing as win
from bytewax.connectors.files import FileSource
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulLogic
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from result_check import Tally, add_arguments

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: ferroflow_queries.OUT_OF_ORDERNESS_MS
OUT_OF_ORDERNESS = timedelta(milliseconds=5000)
Q3_STATES = ("OR", "ID", "CA")


def event_time(e):
    return EPOCH + timedelta(milliseconds=e["date_time"])


def clock(ts_getter=event_time):
    """Event time with bounded out-of-orderness, as ferroflow's watermarks: the watermark
    follows the events only. (Bytewax's default also advances it with the system time
    since the latest event, which on a replayed file closes windows early, or makes
    items late, whenever a step runs slower than event time.)"""
    return win.EventClock(ts_getter, wait_for_system_duration=OUT_OF_ORDERNESS, now_getter=_fixed_now,
                          to_system_utc=_never)


def _fixed_now():
    return EPOCH


def _never(timestamp):
    return None


def ms(wid, offset_ms):
    """The start (ms since the epoch) of window ``wid`` of a windower aligned on the epoch."""
    return wid * offset_ms


def is_bid(e):
    return e["type"] == "bid"


# -- q0-q2: stateless ---------------------------------------------------------------------

def q0(events):
    return op.filter("bids", events, is_bid)


def q1(events):
    bids = op.filter("bids", events, is_bid)
    return op.map("euro", bids, lambda b: (b["auction"], b["bidder"], 0.908 * b["price"], b["date_time"], b["extra"]))


def q2(events):
    kept = op.filter("mod123", events, lambda e: e["type"] == "bid" and e["auction"] % 123 == 0)
    return op.map("project", kept, lambda b: (b["auction"], b["price"]))


# -- q3: local item suggestion ------------------------------------------------------------

def q3_input(e):
    if e["type"] == "person":
        return e["state"].upper() in Q3_STATES
    return e["type"] == "auction" and e["category"] == 10


def person_or_seller(e):
    return str(e["id"] if e["type"] == "person" else e["seller"])


def q3_join(state, e):
    """State: the person, or the ids of their auctions seen before them."""
    if e["type"] == "person":
        pending = state if isinstance(state, list) else []
        return e, [(e["name"], e["city"], e["state"], a) for a in pending]
    if isinstance(state, dict):
        return state, [(state["name"], state["city"], state["state"], e["id"])]
    return (state or []) + [e["id"]], []


def q3(events):
    keyed = op.key_on("by_person", op.filter("q3_input", events, q3_input), person_or_seller)
    return op.map("unkey", op.stateful_flat_map("join", keyed, q3_join), lambda kv: kv[1])


# -- q4: average closing price per category -----------------------------------------------

class ClosingPrice(StatefulLogic):
    """Per auction: the highest bid between its start and its expiry, emitted as
    (category, price) at the end of the input."""

    def __init__(self):
        self.auction = None
        self.best = None
        self.early = []

    def _offer(self, price, at):
        a = self.auction
        if a["date_time"] <= at <= a["expires"] and (self.best is None or price > self.best):
            self.best = price

    def on_item(self, e):
        if e["type"] == "auction":
            self.auction = e
            for price, at in self.early:
                self._offer(price, at)
            self.early = []
        elif self.auction is None:
            self.early.append((e["price"], e["date_time"]))
        else:
            self._offer(e["price"], e["date_time"])
        return (), StatefulLogic.RETAIN

    def on_eof(self):
        if self.auction is not None and self.best is not None:
            return [(self.auction["category"], self.best)], StatefulLogic.DISCARD
        return (), StatefulLogic.DISCARD

    def snapshot(self):
        return (self.auction, self.best, self.early)


def running_average(state, closing):
    total, n = state or (0, 0)
    total, n = total + closing[1], n + 1
    return (total, n), (closing[0], total / n, n)


def q4(events):
    auctions_bids = op.filter("auctions_bids", events, lambda e: e["type"] in ("auction", "bid"))
    keyed = op.key_on("by_auction", auctions_bids, lambda e: str(e["id"] if e["type"] == "auction" else e["auction"]))
    closing = op.map("unkey", op.stateful("closing", keyed, lambda resume: ClosingPrice()), lambda kv: kv[1])
    by_category = op.key_on("by_category", closing, lambda c: str(c[0]))
    return op.map("unkey2", op.stateful_map("average", by_category, running_average), lambda kv: kv[1])


# -- q5: hot items ------------------------------------------------------------------------

def q5(events):
    bids = op.filter("bids", events, is_bid)
    windower = win.SlidingWindower(length=timedelta(seconds=10), offset=timedelta(seconds=2), align_to=EPOCH)
    counts = win.count_window("count", bids, clock(), windower, lambda b: str(b["auction"]))
    # (auction, (window id, count)) -> (window end, auction, count)
    with_end = op.map("with_end", counts.down, lambda kv: (ms(kv[1][0], 2000) + 10_000, int(kv[0]), kv[1][1]))
    by_end = op.key_on("by_end", with_end, lambda c: str(c[0]))
    ends = clock(lambda c: EPOCH + timedelta(milliseconds=c[0] - 1))
    per_end = win.collect_window("collect", by_end, ends,
                                 win.TumblingWindower(length=timedelta(seconds=2), align_to=EPOCH), ordered=False)
    return op.flat_map("hottest", per_end.down, lambda kv: hottest(kv[1][1]))


def hottest(counts):
    most = max(n for _, _, n in counts)
    return [c for c in counts if c[2] == most]


# -- q7: highest bid ----------------------------------------------------------------------

def top_bids(acc, b):
    best, bids = acc
    if b["price"] > best:
        return (b["price"], [b])
    if b["price"] == best:
        bids.append(b)
    return acc


def merge_top(a, b):
    if a[0] != b[0]:
        return max(a, b, key=lambda x: x[0])
    return (a[0], a[1] + b[1])


def q7(events):
    bids = op.key_on("one_key", op.filter("bids", events, is_bid), lambda b: "0")
    top = win.fold_window("top", bids, clock(), win.TumblingWindower(length=timedelta(seconds=10), align_to=EPOCH),
                          lambda: (-1, []), top_bids, merge_top, ordered=False)
    return op.flat_map("emit", top.down, lambda kv: [(b["auction"], b["price"], b["bidder"], b["date_time"],
                                                      b["extra"]) for b in kv[1][1][1]])


# -- q8: new users monitoring -------------------------------------------------------------

def new_sellers(kv):
    key, (wid, elements) = kv
    names = [e["name"] for e in elements if e["type"] == "person"]
    if names and any(e["type"] == "auction" for e in elements):
        return [(int(key), name, ms(wid, 10_000)) for name in names]
    return []


def q8(events):
    people_auctions = op.filter("people_auctions", events, lambda e: e["type"] in ("person", "auction"))
    keyed = op.key_on("by_person", people_auctions, person_or_seller)
    windows = win.collect_window("collect", keyed, clock(),
                                 win.TumblingWindower(length=timedelta(seconds=10), align_to=EPOCH), ordered=False)
    return op.flat_map("new_sellers", windows.down, new_sellers)


QUERIES = {"q0": q0, "q1": q1, "q2": q2, "q3": q3, "q4": q4, "q5": q5, "q7": q7, "q8": q8}


# -- the checking sink --------------------------------------------------------------------

class _CheckPart(StatelessSinkPartition):
    def __init__(self, query, check, digest):
        self.check = check
        self.tally = Tally(query, digest)

    def write_batch(self, items):
        for r in items:
            self.tally.add(r)

    def close(self):
        self.tally.write(self.check)


class CheckSink(DynamicSink):
    """Counts (and with ``digest``, checksums) the results; writes them to ``check``."""

    def __init__(self, query, check, digest):
        self.query, self.check, self.digest = query, check, digest

    def build(self, step_id, worker_index, worker_count):
        return _CheckPart(self.query, self.check, self.digest)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(ap, QUERIES)
    args = ap.parse_args()
    flow = Dataflow(f"nexmark_{args.query}")
    lines = op.input("lines", flow, FileSource(args.path, batch_size=1000))
    events = op.map("parse", lines, json.loads)
    op.output("out", QUERIES[args.query](events), CheckSink(args.query, args.check, args.digest))
    from bytewax._bytewax import cli_main

    cli_main(flow, workers_per_process=1)


if __name__ == "__main__":
    main()
