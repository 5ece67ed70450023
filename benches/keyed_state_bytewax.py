#!/usr/bin/env python3
"""Bytewax's running count per key (benches/keyed_state.py's peer): ``stateful_map``,
Bytewax's keyed state, counting as keyed_state_udfs.RunningCountLogic does.

    python benches/keyed_state_bytewax.py --records N

TestingSource(range(N), batch 1000) -> map(make_record) -> key_on(key_of)
-> stateful_map(count) -> (key, count) -> a sink that drops its batches; 1 worker.
Run with the Bytewax virtualenv's Python. ``--digest`` prints keyed_state_udfs.digest
of the emitted records instead of dropping them (a check, not timed).
"""
import argparse
import os
import sys
import time

T0 = time.perf_counter()
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bytewax.operators as op  # noqa: E402
from bytewax.dataflow import Dataflow  # noqa: E402
from bytewax.outputs import DynamicSink, StatelessSinkPartition  # noqa: E402
from bytewax.testing import TestingSource, run_main  # noqa: E402

from keyed_state_udfs import digest, key_of, make_record  # noqa: E402


class _Drop(StatelessSinkPartition):
    def __init__(self, keep):
        self.keep = keep

    def write_batch(self, items):
        if self.keep is not None:
            self.keep.extend(items)


class Drop(DynamicSink):
    def __init__(self, keep=None):
        self.keep = keep

    def build(self, step_id, worker_index, worker_count):
        return _Drop(self.keep)


def count(state, record):
    state = 1 if state is None else state + 1
    return state, state


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--digest", action="store_true")
    a = ap.parse_args()
    keep = [] if a.digest else None
    flow = Dataflow("keyed_running_count")
    nums = op.input("nums", flow, TestingSource(range(a.records), batch_size=1000))
    records = op.map("make_record", nums, make_record)
    keyed = op.key_on("key", records, key_of)
    counts = op.stateful_map("count", keyed, count)
    op.output("out", counts, Drop(keep))
    t1 = time.perf_counter()
    run_main(flow)
    t2 = time.perf_counter()
    if a.digest:
        print(digest(keep))
    print(f"bytewax-keyed-state: setup_s={t1 - T0:.2f} run_s={t2 - t1:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
