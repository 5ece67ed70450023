"""``NexmarkSource.from_json_lines``: Nexmark events read from the JSON-lines file
``benches/nexmark/gen.py`` writes, parsed in the engine. Its records and timestamps are
what the generic JSON-lines source plus ``event_from_dict`` and a ``date_time``
timestamp assigner give (at 1 worker, 2 threads, 2 processes, the file cut into byte
ranges), queries on it give the plain-Python reference's results, a bad line fails
naming the file and line (or is skipped and counted), and an ``s3://`` object reads
as the local file does."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter

import pytest

from conftest import collect, make_env, run
from ferroflow import JobExecutionException, ProcessFunction, WatermarkStrategy
from ferroflow.connectors.nexmark import Auction, Bid, NexmarkFileSource, NexmarkSource, Person, event_to_dict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benches", "nexmark"))
import ferroflow_queries as queries
import gen
import reference

#: Enough events for a file over the engine's 1 MiB split size, so 2 workers read it
#: as byte ranges; 100 events/s of event time, so several windows of every query.
EVENTS = 8000
KNOBS = {"event_rate": 100, "out_of_order_group_size": 4}


@pytest.fixture(scope="module")
def events_file(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("nexmark-file") / "events.jsonl")
    gen.generate(path, NexmarkSource(EVENTS, **KNOBS))  # type: ignore[arg-type]
    assert os.path.getsize(path) > 1 << 20, "the file should be cut into byte ranges"
    return path


@pytest.fixture(scope="module")
def events(events_file):
    return reference.read_events(events_file)


class WithContext(ProcessFunction):
    """Each record with its timestamp and the worker that read it."""

    def open(self, runtime_context):
        self.worker = runtime_context.get_index_of_this_subtask()

    def process_element(self, value, ctx):
        yield value, ctx.timestamp(), self.worker


def read(env, path):
    source = NexmarkSource.from_json_lines(path)
    return env.from_source(source, WatermarkStrategy.no_watermarks(), "nexmark file").process(WithContext())


def test_records_and_timestamps_equal_the_generic_route(env, parallelism, events_file, events):
    out = collect(read(env, events_file))
    generic = collect(queries.generic_file_events(env, events_file).process(WithContext()))
    env.execute("nexmark from_json_lines")
    assert len(out) == EVENTS
    assert Counter(e for e, _, _ in out) == Counter(events)
    assert Counter((e, ts) for e, ts, _ in out) == Counter((e, ts) for e, ts, _ in generic)
    assert all(ts == e.date_time for e, ts, _ in out)
    assert {type(e) for e, _, _ in out} == {Person, Auction, Bid}
    b = next(e for e, _, _ in out if type(e) is Bid)
    assert b.price == b[2] and isinstance(b.channel, str) and isinstance(b.price, int)
    if parallelism > 1:
        # The file is cut into byte ranges: every worker reads part of it.
        assert {w for _, _, w in out} == set(range(2))


@pytest.mark.parametrize("query", ["q1", "q5", "q7"])
def test_query_on_the_file_equals_reference(env, events_file, events, query):
    """Windowed queries (q5, q7) need the watermarks the generic route gives."""
    out = collect(queries.build(env, query, path=events_file))
    env.execute(f"nexmark {query} from the file")
    expected = reference.QUERIES[query](events)
    assert expected, f"{query}: the reference found nothing on these events"
    assert Counter(out) == Counter(expected)


def test_a_bad_line_names_the_file_and_line_or_is_skipped(tmp_path, capfd):
    path = tmp_path / "bad.jsonl"
    good = [Bid(1, 2, 300, "c", "u", 5000, ""), Person(1000, "n", "e", "c", "x", "OR", 6000, "")]
    lines = [event_to_dict(good[0]), {"type": "bid", "auction": 1}, event_to_dict(good[1])]
    path.write_text("".join(json.dumps(d) + "\n" for d in lines))
    env = make_env(1)
    with pytest.raises(JobExecutionException) as e:
        run(env, read(env, str(path)))
    message = str(e.value)
    assert f"{path}: line 2: not a Nexmark event (a bid without its \"bidder\" field" in message, message
    assert "skip_malformed=True" in message
    env = make_env(1)
    source = NexmarkSource.from_json_lines(str(path), skip_malformed=True)
    got = run(env, env.from_source(source, WatermarkStrategy.no_watermarks()).process(WithContext()))
    assert [(e, ts) for e, ts, _ in got] == [(good[0], 5000), (good[1], 6000)]
    assert "Nexmark JSON lines source" in capfd.readouterr().err


def test_paths_are_checked_at_the_call(tmp_path):
    with pytest.raises(FileNotFoundError, match="NexmarkSource.from_json_lines: no such file or directory: .*nope"):
        NexmarkSource.from_json_lines(str(tmp_path / "nope.jsonl"))
    with pytest.raises(ValueError, match="only local paths"):
        NexmarkSource.from_json_lines("http://example.com/x.jsonl")
    source = NexmarkSource.from_json_lines(f"file://{tmp_path}", "s3://bucket/events.jsonl")
    assert isinstance(source, NexmarkFileSource)
    assert source.paths == [str(tmp_path), "s3://bucket/events.jsonl"]


def test_reads_an_s3_object(s3, monkeypatch, events_file, events):
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    s3.bucket("ferroflow-nexmark")
    import boto3

    from services.s3 import CREDENTIALS

    boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                 region_name=CREDENTIALS["AWS_DEFAULT_REGION"]).upload_file(events_file, "ferroflow-nexmark",
                                                                             "in/events.jsonl")
    env = make_env(2)
    out = run(env, read(env, "s3://ferroflow-nexmark/in/"))
    assert Counter((e, ts) for e, ts, _ in out) == Counter((e, e.date_time) for e in events)
