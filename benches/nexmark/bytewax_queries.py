"""Nexmark q0-q2 on Bytewax (run with the Bytewax virtualenv's Python), over the
JSON-lines file gen.py wrote, output discarded.

    python bytewax_queries.py q1 events.jsonl

Records stay the dicts ``json.loads`` makes (cheaper than a class per event, so this
favours Bytewax). q3-q8 are not written for Bytewax yet.
"""
import json
import sys

import bytewax.operators as op
from bytewax.connectors.files import FileSource
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition


class _NullPart(StatelessSinkPartition):
    def write_batch(self, items):
        pass


class NullSink(DynamicSink):
    def build(self, step_id, worker_index, worker_count):
        return _NullPart()


def is_bid(e):
    return e["type"] == "bid"


def q0(bids):
    return bids


def q1(bids):
    return op.map("euro", bids, lambda b: (b["auction"], b["bidder"], 0.908 * b["price"], b["date_time"], b["extra"]))


def q2(bids):
    kept = op.filter("mod123", bids, lambda b: b["auction"] % 123 == 0)
    return op.map("project", kept, lambda b: (b["auction"], b["price"]))


QUERIES = {"q0": q0, "q1": q1, "q2": q2}


def main():
    query, path = sys.argv[1], sys.argv[2]
    flow = Dataflow(f"nexmark_{query}")
    lines = op.input("lines", flow, FileSource(path, batch_size=1000))
    events = op.map("parse", lines, json.loads)
    bids = op.filter("bids", events, is_bid)
    op.output("out", QUERIES[query](bids), NullSink())
    from bytewax._bytewax import cli_main

    cli_main(flow, workers_per_process=1)


if __name__ == "__main__":
    main()
