#!/usr/bin/env python3
"""Batch UDFs side by side, from one run:

(a) the fastest word count with ferroflow's documented API (read_text_file ->
    flat_map_batch(Counter of a batch of lines) -> key_by(0).sum(1),
    benches/jobs/batch_wordcount.py) against `collections.Counter` over the same file
    (../shared/bench/wordcount_counter.py), and ferroflow's per-record built-in word
    count (benches/wordcount_ferroflow.py --builtin) for reference; whole commands
    (start-up included) under ../shared/bench/measure.py, taken in turns, medians;
(b) Nexmark q1's currency conversion over bid tuples (benches/jobs/batch_q1.py): per
    record `map` against `map_batch` over lists, pyarrow and pandas, plus the job
    without the conversion (the ceiling of any map) and with records that are
    pyarrow RecordBatches; each job's execute() time, medians of runs taken in turns.

    .venv/bin/python benches/batch_udfs.py [--size small] [--runs 5] [--events 2000000]
                                           [--batch-size 1024]

(b) runs with FERROFLOW_BATCH_SIZE=--batch-size for every variant, and
OPENBLAS_NUM_THREADS=1 (NumPy's BLAS threads otherwise spin on the other core).
"""
import argparse
import json
import os
import statistics
import subprocess

from harness import BENCH, FERROFLOW, HERE, PY, compile_sources, measure_interleaved, paired_ratio
from wordcount import make_input

Q1_VARIANTS = [
    ("none", "no conversion: source -> sink (the ceiling)"),
    ("map", "map (per record)"),
    ("list", "map_batch, list"),
    ("arrow", "map_batch, batch_format=\"arrow\""),
    ("pandas", "map_batch, batch_format=\"pandas\""),
    ("columnar", "records are RecordBatches: map"),
]


def word_count(size, runs):
    path, words = make_input(size)
    job = os.path.join(HERE, "jobs", "batch_wordcount.py")
    systems = [
        ("collections.Counter", [PY, os.path.join(BENCH, "wordcount_counter.py"), path]),
        ("ferroflow flat_map_batch(Counter) -> sum, -p 1", [PY, job, path]),
        ("ferroflow flat_map_batch(Counter) -> sum, run -p 2", [FERROFLOW, "run", job, "-p", "2", "-", path]),
        ("ferroflow per record: built-in sum", [PY, os.path.join(HERE, "wordcount_ferroflow.py"), path, "--builtin"]),
    ]
    measured = measure_interleaved([(label, cmd, runs) for label, cmd in systems], words)
    counter = measured["collections.Counter"]
    print(f"\n(a) word count [{size}: {words / 1e6:.1f}M words], whole commands, medians of {runs}\n")
    print(f"| {'system':50} | {'wall s':>7} | {'M words/s':>9} | {'Counter / this (paired)':>23} |")
    print(f"|{'-' * 52}|{'-' * 9}|{'-' * 11}|{'-' * 25}|")
    for label, _ in systems:
        r = measured[label]
        if r is None:
            print(f"| {label:50} | {'failed':>7} | | |")
            continue
        ratio = f"{paired_ratio(counter, r):.2f}x" if counter else "-"
        print(f"| {label:50} | {r['wall_s']:7.2f} | {words / r['wall_s'] / 1e6:9.2f} | {ratio:>23} |")
    return measured


def q1(events, runs, batch_size):
    env = dict(os.environ, FERROFLOW_BATCH_SIZE=str(batch_size), OPENBLAS_NUM_THREADS="1")
    job = os.path.join(HERE, "jobs", "batch_q1.py")
    seconds = {v: [] for v, _ in Q1_VARIANTS}
    for _ in range(runs):
        for variant, _ in Q1_VARIANTS:
            out = subprocess.run([PY, job, variant, "--events", str(events)], env=env, check=True,
                                 capture_output=True, text=True).stdout
            seconds[variant].append(json.loads(out.strip().splitlines()[-1])["seconds"])
    med = {v: statistics.median(s) for v, s in seconds.items()}
    print(f"\n(b) Nexmark q1 conversion, {events / 1e6:.1f}M bids, batch size {batch_size}, "
          f"execute() seconds, medians of {runs}\n")
    print(f"| {'variant':46} | {'s':>6} | {'M bids/s':>8} | {'this / map':>10} |")
    print(f"|{'-' * 48}|{'-' * 8}|{'-' * 10}|{'-' * 12}|")
    for variant, label in Q1_VARIANTS:
        print(f"| {label:46} | {med[variant]:6.2f} | {events / med[variant] / 1e6:8.2f} | "
              f"{med['map'] / med[variant]:9.2f}x |")
    return med


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="small", help="word-count input: small (2M words) or large (20M)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--events", type=int, default=2_000_000, help="bids for (b)")
    ap.add_argument("--batch-size", type=int, default=1024, help="FERROFLOW_BATCH_SIZE for (b)")
    a = ap.parse_args()
    compile_sources()
    word_count(a.size, a.runs)
    q1(a.events, a.runs, a.batch_size)


if __name__ == "__main__":
    main()
