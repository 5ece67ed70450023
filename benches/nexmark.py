"""Nexmark side by side: per query, events/s of ferroflow at -p 1 and -p 2 (native source
and the JSON-lines file), the plain-Python reference, Bytewax and PyFlink (when their
virtualenvs exist, ../shared/bench/setup_anchors.sh), the ratios, and events/s per core
next to Flink's published per-core figures.

    .venv/bin/python benches/nexmark.py [--events 1000000] [--queries q0,q1] [--runs 1] [--no-peers]

The events are generated once into bench-data/nexmark-<N>.jsonl (benches/nexmark/gen.py);
every system that reads a file reads that one. Each peer's timed run counts its results
(a sink as cheap as ferroflow's discarding one), and a second, untimed run also checksums
them (``digest``; ~1.5 us per result, a fifth of Bytewax's q0); both must equal the
plain-Python reference's on the same file: the benchmark exits non-zero, naming the
query and system, on any mismatch or failed peer run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import subprocess
import tempfile
from typing import Any, Dict, Iterable, List, Optional

import harness

NEXMARK = os.path.join(harness.HERE, "nexmark")
sys.path.insert(0, NEXMARK)
from result_check import Tally

#: Flink's Nexmark figures (Java, on Kafka and RocksDB), events/s per core.
FLINK_PER_CORE = {"q0": 155e3, "q1": 158e3, "q2": 175e3, "q3": 152e3, "q4": 34e3, "q5": 22e3, "q7": 12e3,
                  "q8": 146e3}
QUERIES = list(FLINK_PER_CORE)
#: The peers' scripts, run with their own virtualenvs' Python: (label, anchor, script).
PEERS = (("bytewax", "bytewax", "bytewax_queries.py"), ("pyflink", "pyflink", "pyflink_queries.py"))


def events_file(n: int) -> str:
    os.makedirs(harness.DATA, exist_ok=True)
    path = os.path.join(harness.DATA, f"nexmark-{n}.jsonl")
    if not os.path.exists(path):
        subprocess.run([harness.PY, os.path.join(NEXMARK, "gen.py"), "--events", str(n), "--out", path], check=True)
    return path


def digest(query: str, records: Iterable[Any]) -> Dict[str, int]:
    """A query's results counted and checksummed as the peers' scripts do it
    (``result_check.Tally``)."""
    tally = Tally(query)
    for r in records:
        tally.add(r)
    return tally.result()


def expected(path: str, queries: List[str]) -> Dict[str, Dict[str, int]]:
    """``digest`` of the plain-Python reference's result of each query over the file."""
    import reference

    events = reference.read_events(path)
    out = {}
    for q in queries:
        result = reference.QUERIES[q](events)
        out[q] = digest(q, [(c, avg, n) for c, (avg, n) in result.items()] if q == "q4" else result)
    return out


def check_peer(label: str, q: str, check: str, want: Dict[str, int]) -> Optional[str]:
    """Why the peer's run of ``q`` (which wrote ``check``) does not match the reference
    (None if it does): its count, and its checksum if it took one."""
    try:
        with open(check, encoding="utf-8") as f:
            got = json.load(f)
    except (OSError, ValueError):
        return f"{q} {label}: no result written to {check} (the run failed; see its output above)"
    finally:
        if os.path.exists(check):
            os.unlink(check)
    if any(got[k] != want[k] for k in got):
        return (f"{q} {label}: {got}; the reference has {want}: the query's semantics differ from "
                f"reference.py")
    return None


def verify_peer(label: str, py: str, script: str, q: str, path: str, want: Dict[str, int]) -> Optional[str]:
    """Runs the peer's query once more, untimed, with the checksum, and checks it."""
    fd, check = tempfile.mkstemp(suffix=f"-{q}-{label}.json")
    os.close(fd)
    os.unlink(check)
    print(f"-- {label} (checksum, untimed): {py} {script} {q} {path}", file=sys.stderr, flush=True)
    subprocess.run([py, script, q, path, "--check", check, "--digest"], stdout=sys.stderr, check=False)
    return check_peer(label, q, check, want)


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
    queries = args.queries.split(",")
    peers = [] if args.no_peers else [(label, py, os.path.join(NEXMARK, script))
                                      for label, name, script in PEERS if (py := harness.anchor(name))]
    want = expected(path, queries) if peers else {}
    mismatches = []
    rows = []
    for q in queries:
        systems = [
            ("ferroflow native -p1", [harness.FERROFLOW, "run", "-p", "1", job, "-", q, "--events", str(n)], args.runs),
            ("ferroflow native -p2", [harness.FERROFLOW, "run", "-p", "2", job, "-", q, "--events", str(n)], args.runs),
            ("ferroflow file -p1", [harness.FERROFLOW, "run", "-p", "1", job, "-", q, "--path", path], args.runs),
            ("ferroflow file -p2", [harness.FERROFLOW, "run", "-p", "2", job, "-", q, "--path", path], args.runs),
            ("python reference", [harness.PY, os.path.join(NEXMARK, "reference.py"), q, path], args.runs),
        ]
        checks = {}
        for label, py, script in peers:
            fd, checks[label] = tempfile.mkstemp(suffix=f"-{q}-{label}.json")
            os.close(fd)
            os.unlink(checks[label])
            systems.append((label, [py, script, q, path, "--check", checks[label]], 1))
        results = harness.measure_interleaved(systems)
        for label, py, script in peers:
            for why in (check_peer(label, q, checks[label], want[q]),
                        verify_peer(label, py, script, q, path, want[q])):
                if why:
                    print(f"CHECK FAILED {why}", file=sys.stderr, flush=True)
                    mismatches.append(why)
        rows.append((q, results))
    print()
    print(f"Nexmark, {n:,} events; events/s (per core); ratios of ferroflow -p1 (native | file)")
    head = ["query", "ff native p1", "ff native p2", "ff file p1", "ff file p2", "python", "bytewax", "pyflink",
            "p2/p1", "ff/python (native | file)", "ff file/bytewax", "ff file/pyflink", "Flink/core", "ff p1 vs Flink/core"]
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
                          fmt("ferroflow file -p2", 2), fmt("python reference"), fmt("bytewax"), fmt("pyflink"),
                          ratio("ferroflow native -p2", "ferroflow native -p1"),
                          (f"{ratio('ferroflow native -p1', 'python reference')} | "
                          f"{ratio('ferroflow file -p1', 'python reference')}"),
                          ratio("ferroflow file -p1", "bytewax"), ratio("ferroflow file -p1", "pyflink"),
                          f"{flink / 1e3:.0f}k",
                          "-" if not p1 else f"{p1 / flink:.2f}x"]))

    if mismatches:
        print(f"\n{len(mismatches)} peer run(s) did not give the reference's result:", file=sys.stderr)
        for why in mismatches:
            print(f"  {why}", file=sys.stderr)
        sys.exit(1)
    if peers:
        print(f"{' and '.join(label for label, _, _ in peers)}: every query's result count (timed run) and "
              f"checksum (untimed run) equal the plain-Python reference's")


if __name__ == "__main__":
    main()
