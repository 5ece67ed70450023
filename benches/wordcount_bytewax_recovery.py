#!/usr/bin/env python3
"""Bytewax 0.21.1's word count (../shared/bench/wordcount_bytewax.py, the same flow and
UDFs) with its recovery on: state snapshots to SQLite every SNAPSHOT seconds, as its
documentation sets it up (`python -m bytewax.recovery DIR 1`, then `-r DIR -s SNAPSHOT
-b 0`), for benches/checkpoint.py. Runs in Bytewax's virtualenv.

    python benches/wordcount_bytewax_recovery.py INPUT ROOT [--snapshot-s 1]

Each run makes a fresh recovery directory under ROOT (one partition, 1 worker), which
benches/checkpoint.py reads afterwards (snapshot count and size).
"""
import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

T0 = time.perf_counter()
BENCH = os.environ.get("FERROFLOW_BENCH_DIR",
                       os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
sys.path.insert(0, BENCH)

from bytewax._bytewax import cli_main
from bytewax.recovery import RecoveryConfig, init_db_dir
from wordcount_bytewax import build_flow


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("root", help="where each run makes its recovery directory")
    ap.add_argument("--snapshot-s", type=float, default=1.0, help="snapshot (epoch) interval, seconds")
    a = ap.parse_args()
    os.makedirs(a.root, exist_ok=True)
    db_dir = Path(tempfile.mkdtemp(prefix="bytewax-", dir=a.root))
    init_db_dir(db_dir, 1)
    flow = build_flow(a.input, "running", None, 1000)
    t1 = time.perf_counter()
    cli_main(flow, workers_per_process=1, epoch_interval=timedelta(seconds=a.snapshot_s),
             recovery_config=RecoveryConfig(db_dir, backup_interval=timedelta(0)))
    t2 = time.perf_counter()
    print(f"bytewax recovery: setup_s={t1 - T0:.2f} run_s={t2 - t1:.2f} store={db_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
