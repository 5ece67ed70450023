#!/usr/bin/env python3
"""The window benchmark's job as a plain Python loop calling the same UDFs
(../shared/bench/win_udfs.py: parse_event -> event_key -> sum_values, and the event's own
time as its timestamp) — the analogue of the word count's floor. The shared
`window_reference.py` inlines all of it instead, calling no UDF at all.

    python benches/window_udf_loop.py INPUT [--out PATH]
"""
import argparse
import os
import sys
import time

BENCH = os.environ.get("FERROFLOW_BENCH_DIR",
                       os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
sys.path.insert(0, BENCH)

from win_udfs import event_key, parse_event, sum_values  # noqa: E402


def timestamp(event):
    return event[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("--out")
    a = ap.parse_args()
    t0 = time.perf_counter()
    windows = {}
    with open(a.input) as f:
        for line in f:
            e = parse_event(line)
            ts = timestamp(e)
            w = (event_key(e), ts - ts % 1000)
            acc = windows.get(w)
            windows[w] = e if acc is None else sum_values(acc, e)
    t1 = time.perf_counter()
    if a.out:
        with open(a.out, "w") as f:
            for (k, start), e in sorted(windows.items()):
                f.write(f"{k}\t{start}\t{e[2]}\n")
    print(f"window_udf_loop: events windows={len(windows)} compute_s={t1 - t0:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
