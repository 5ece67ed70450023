"""The Nexmark source and queries: the native source makes the same events as the
JSON-lines file written from it (at 1 worker, 2 threads, 2 processes), and each query of
benches/nexmark/ferroflow_queries.py gives what the plain-Python reference gives on the
same events."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter

import pytest

from conftest import collect, make_env
from ferroflow import ProcessFunction, WatermarkStrategy
from ferroflow.connectors.nexmark import Auction, Bid, NexmarkSource, Person, event_from_dict, event_to_dict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benches", "nexmark"))
import ferroflow_queries as queries
import gen
import reference

#: Few events, at 100 events/s of event time: 50 s, so several windows of every query.
KNOBS = {"event_rate": 100, "out_of_order_group_size": 4}
EVENTS = 5000


def source() -> NexmarkSource:
    return NexmarkSource(EVENTS, **KNOBS)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def events_file(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("nexmark") / "events.jsonl")
    gen.generate(path, source())
    return path


@pytest.fixture(scope="module")
def events(events_file):
    return reference.read_events(events_file)


class WithTimestamp(ProcessFunction):
    def process_element(self, value, ctx):
        yield value, ctx.timestamp()


def test_file_holds_every_event_in_order(events):
    assert len(events) == EVENTS
    kinds = Counter(type(e) for e in events)
    # The generator's proportions: 1 person, 3 auctions and 46 bids in every 50 events.
    assert kinds == {Person: EVENTS // 50, Auction: 3 * EVENTS // 50, Bid: 46 * EVENTS // 50}
    assert [event_from_dict(event_to_dict(e)) for e in events[:100]] == events[:100]
    people = [e.id for e in events if type(e) is Person]
    assert people == list(range(1000, 1000 + EVENTS // 50))
    # Out-of-order groups of 4: never more than 3 events' time behind the latest.
    latest = 0
    for e in events:
        assert e.date_time >= latest - 3 * 10
        latest = max(latest, e.date_time)


def test_native_source_equals_file(env, events):
    out = collect(env.from_source(source(), WatermarkStrategy.no_watermarks(), "nexmark").process(WithTimestamp()))
    env.execute("nexmark")
    assert len(out) == EVENTS
    assert Counter(e for e, _ in out) == Counter(events)
    assert all(ts == e.date_time for e, ts in out)
    assert all(type(e).__module__ == "ferroflow.connectors.nexmark" for e, _ in out[:10])
    b = next(e for e, _ in out if type(e) is Bid)
    assert b.price == b[2] and isinstance(b.channel, str)


def test_file_source_equals_file(env, events_file, events):
    out = collect(queries.file_events(env, events_file).process(WithTimestamp()))
    env.execute("nexmark file")
    assert Counter(e for e, _ in out) == Counter(events)
    assert all(ts == e.date_time for e, ts in out)


@pytest.mark.parametrize("query", sorted(queries.QUERIES))
def test_query_equals_reference(env, events, query):
    out = collect(queries.build(env, query, source=source()))
    env.execute(f"nexmark {query}")
    expected = reference.QUERIES[query](events)
    if query == "q4":
        assert expected and reference.final_q4(out) == expected
    else:
        assert expected, f"{query}: the reference found nothing on these events"
        assert Counter(out) == Counter(expected)


def test_bad_knob_is_named():
    with pytest.raises(ValueError, match="hot_bidder_ratio must be an int >= 1"):
        NexmarkSource(10, hot_bidder_ratio=0)
    with pytest.raises(ValueError, match="events must be an int >= 0 or None"):
        NexmarkSource(-1)


def test_rate_paces_the_source():
    """rate= paces the source in wall-clock time: 200 events at 1000/s take 0.2 s."""
    env = make_env(1)
    out = collect(env.from_source(NexmarkSource(200, rate=1000), WatermarkStrategy.no_watermarks(), "paced"))
    started = time.monotonic()
    env.execute("paced")
    assert len(out) == 200
    assert time.monotonic() - started >= 0.15
