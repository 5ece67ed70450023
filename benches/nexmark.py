"""Nexmark side by side: per query, events/s of ferroflow at -p 1 and -p 2 (native source
and the JSON-lines file), the plain-Python reference, Bytewax and PyFlink (when their
virtualenvs exist, ../shared/bench/setup_anchors.sh), the ratios, and events/s per core
next to Flink's published per-core figures.

    .venv/bin/python benches/nexmark.py [--events 1000000] [--queries q0,q1] [--runs 1] [--no-peers]

The events are generated once into bench-data/nexmark-<N>.jsonl (benches/nexmark/gen.py);
every system that reads a file reads that one.
"""

from __future__ import annotations

import argparse
import os
import sys

import harness

NEXMARK = os.path.join(harness.HERE, "nexmark")
sys.path.insert(0, NEXMARK)

#: Flink's Nexmark figures (Java, on Kafka and RocksDB), events/s per core.
FLINK_PER_CORE = {"q0": 155e3, "q1": 158e3, "q2": 175e3, "q3": 152e3, "q4": 34e3, "q5": 22e3, "q7": 12e3,
                  "q8": 146e3}
QUERIES = list(FLINK_PER_CORE)
BYTEWAX_QUERIES = ("q0", "q1", "q2")


def events_file(n: int) -> str:
    os.makedirs(harness.DATA, exist_ok=True)
    path = os.path.join(harness.DATA, f"nexmark-{n}.jsonl")
    if not os.path.exists(path):
        import subprocess

        subprocess.run([harness.PY, os.path.join(NEXMARK, "gen.py"), "--events", str(n), "--out", path], check=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--queries", default=",".join(QUERIES))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-peers", action="store_true", help="skip Bytewax and PyFlink")
    args = ap.parse_args()
    harness.compile_sources()
    n = args.events
    path = events_file(n)
    job = os.path.join(NEXMARK, "run_ferroflow.py")
    bytewax = None if args.no_peers else harness.anchor("bytewax")
    pyflink = None if args.no_peers else harness.anchor("pyflink")
    rows = []
    for q in args.queries.split(","):
        systems = [
            ("ferroflow native -p1", [harness.FERROFLOW, "run", "-p", "1", job, "-", q, "--events", str(n)], args.runs),
            ("ferroflow native -p2", [harness.FERROFLOW, "run", "-p", "2", job, "-", q, "--events", str(n)], args.runs),
            ("ferroflow file -p1", [harness.FERROFLOW, "run", "-p", "1", job, "-", q, "--path", path], args.runs),
            ("ferroflow file -p2", [harness.FERROFLOW, "run", "-p", "2", job, "-", q, "--path", path], args.runs),
            ("python reference", [harness.PY, os.path.join(NEXMARK, "reference.py"), q, path], args.runs),
        ]
        if bytewax and q in BYTEWAX_QUERIES:
            systems.append(("bytewax", [bytewax, os.path.join(NEXMARK, "bytewax_queries.py"), q, path], 1))
        results = harness.measure_interleaved(systems)
        rows.append((q, results))
    print()
    print(f"Nexmark, {n:,} events; events/s (per core); ratios of ferroflow -p1 (native | file)")
    head = ["query", "ff native p1", "ff native p2", "ff file p1", "ff file p2", "python", "bytewax", "pyflink",
            "p2/p1", "ff/python (native | file)", "ff file/bytewax", "Flink/core", "ff p1 vs Flink/core"]
    print(" | ".join(head))
    for q, r in rows:
        rate = {k: (n / v["wall_s"] if v else None) for k, v in r.items()}

        def fmt(k: str, cores: int = 1, rate: dict = rate) -> str:
            v = rate.get(k)
            return "-" if v is None else (f"{v / 1e3:.0f}k" + (f" ({v / cores / 1e3:.0f}k)" if cores > 1 else ""))

        def ratio(a: str, b: str, rate: dict = rate) -> str:
            x, y = rate.get(a), rate.get(b)
            return "-" if not x or not y else f"{x / y:.2f}x"

        p1 = rate.get("ferroflow native -p1")
        flink = FLINK_PER_CORE[q]
        print(" | ".join([q, fmt("ferroflow native -p1"), fmt("ferroflow native -p2", 2), fmt("ferroflow file -p1"),
                          fmt("ferroflow file -p2", 2), fmt("python reference"), fmt("bytewax"),
                          "-" if pyflink is None else "not written",
                          ratio("ferroflow native -p2", "ferroflow native -p1"),
                          (f"{ratio('ferroflow native -p1', 'python reference')} | "
                          f"{ratio('ferroflow file -p1', 'python reference')}"),
                          ratio("ferroflow file -p1", "bytewax"), f"{flink / 1e3:.0f}k",
                          "-" if not p1 else f"{p1 / flink:.2f}x"]))


if __name__ == "__main__":
    main()
