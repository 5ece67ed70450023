#!/usr/bin/env python3
"""Word count side by side: ferroflow, the plain-Python floor and the peers, on the
same generated input and the same UDFs (../shared/bench/wc_udfs.py).

    .venv/bin/python benches/wordcount.py [--sizes small,large] [--runs 3] [--no-peers]

Inputs are made with ../shared/bench/gen_words.py into bench-data/ (cached). Every
command runs under ../shared/bench/measure.py (wall time, peak RSS summed over the
process tree; medians), the systems' runs taken in turns (A B C, A B C, ...), after
byte-compiling ferroflow's sources as an install does. Bytewax and PyFlink run when
their virtualenvs exist (`bash ../shared/bench/setup_anchors.sh`). Prints one table
and writes bench-data/wordcount-results.json.
"""
import argparse
import json
import os
import subprocess

from harness import BENCH, DATA, FERROFLOW, HERE, PY, anchor, compile_sources, measure, measure_interleaved


def make_input(size):
    path = os.path.join(DATA, f"{size}.txt")
    if not os.path.exists(path):
        os.makedirs(DATA, exist_ok=True)
        subprocess.run([PY, os.path.join(BENCH, "gen_words.py"), "--size", size, path], check=True)
    counted = path + ".words"
    if not os.path.exists(counted):
        with open(path, encoding="utf-8") as f:
            n = sum(len(line.split()) for line in f)
        with open(counted, "w") as f:
            f.write(str(n))
    with open(counted) as f:
        return path, int(f.read())


def runs_of(label, size, runs):
    """Runs per system: PyFlink (a minute a run) and Bytewax on 20M words (over a
    minute) once; Bytewax on 2M words as often as ferroflow, as its time varies by up
    to 2x between runs on this box (6.5 to 12 s)."""
    if label.startswith("pyflink") or (label.startswith("bytewax") and size != "small"):
        return 1
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="small", help="comma-separated: small (2M words), large (20M)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-peers", action="store_true", help="skip Bytewax and PyFlink")
    a = ap.parse_args()
    compile_sources()
    results = {}
    bytewax = None if a.no_peers else anchor("bytewax")
    pyflink = None if a.no_peers else anchor("pyflink")

    for size in a.sizes.split(","):
        path, words = make_input(size)
        job = os.path.join(HERE, "jobs", "wordcount_job.py")
        systems = [
            ("ferroflow", [PY, os.path.join(HERE, "wordcount_ferroflow.py"), path]),
            ("floor (plain loop)", [PY, os.path.join(BENCH, "wordcount_pure.py"), path]),
            ("floor --emit-updates", [PY, os.path.join(BENCH, "wordcount_pure.py"), path, "--emit-updates"]),
            ("ferroflow built-in key_by(0).sum(1)", [PY, os.path.join(HERE, "wordcount_ferroflow.py"), path, "--builtin"]),
            ("ferroflow run -p 1", [FERROFLOW, "run", job, "-p", "1", "-", path]),
            ("ferroflow run -p 2", [FERROFLOW, "run", job, "-p", "2", "-", path]),
        ]
        if bytewax:
            systems.append(("bytewax 0.21.1 (1 worker)", [bytewax, os.path.join(BENCH, "wordcount_bytewax.py"), path]))
            systems.append(("bytewax 0.21.1 (2 processes)",
                            [bytewax, os.path.join(BENCH, "wordcount_bytewax.py"), path, "-p", "2"]))
        if pyflink and size == "small":
            systems.append(("pyflink 2.3.0 (thread, p=1)", [pyflink, os.path.join(BENCH, "wordcount_pyflink.py"), path,
                                                          "--exec-mode", "thread", "-p", "1", "--sink", "discard"]))
        measured = measure_interleaved([(f"{label} [{size}]", cmd, runs_of(label, size, a.runs)) for label, cmd in systems],
                                       words)
        for label, _ in systems:
            r = measured[f"{label} [{size}]"]
            if r:
                r["words_per_s"] = words / r["wall_s"]
            results[(size, label)] = r

    tiny, _ = make_input("tiny")
    startup = {"ferroflow": measure("start-up ferroflow", [FERROFLOW, "run", os.path.join(HERE, "jobs", "three_records.py")], 5)}
    if bytewax:
        startup["bytewax"] = measure("start-up bytewax", [bytewax, os.path.join(BENCH, "wordcount_bytewax.py"), tiny], 3)
    if pyflink:
        startup["pyflink"] = measure("start-up pyflink", [pyflink, os.path.join(BENCH, "wordcount_pyflink.py"), tiny,
                                                          "--exec-mode", "thread", "-p", "1", "--sink", "discard"], 1)

    print("\nword count, same UDFs (tokenize -> key_of -> reduce_count), running counts, medians\n")
    print(f"| {'system':34} | {'input':5} | {'wall s':>7} | {'M words/s':>9} | {'peak RSS MB':>11} | {'ferroflow / this':>16} |")
    print(f"|{'-' * 36}|{'-' * 7}|{'-' * 9}|{'-' * 11}|{'-' * 13}|{'-' * 18}|")
    for (size, label), r in results.items():
        if r is None:
            print(f"| {label:34} | {size:5} | {'failed':>7} | | | |")
            continue
        ff = results.get((size, "ferroflow"))
        ratio = f"{ff['words_per_s'] / r['words_per_s']:.2f}x" if ff else "-"
        print(f"| {label:34} | {size:5} | {r['wall_s']:7.2f} | {r['words_per_s'] / 1e6:9.2f} | {r['rss_mb']:11.0f} | {ratio:>16} |")
    for size in a.sizes.split(","):
        p1, p2 = results.get((size, "ferroflow run -p 1")), results.get((size, "ferroflow run -p 2"))
        if p1 and p2:
            print(f"\n-p 2 / -p 1 [{size}]: {p2['words_per_s'] / p1['words_per_s']:.2f}x")
        floor, builtin = results.get((size, "floor (plain loop)")), results.get((size, "ferroflow built-in key_by(0).sum(1)"))
        if floor and builtin:
            print(f"built-in / floor [{size}]: {builtin['words_per_s'] / floor['words_per_s']:.2f}x")
    print("\nstart-up + tear-down (ferroflow: `ferroflow run` of a 3-record job; peers: 10-line input)\n")
    for name, r in startup.items():
        print(f"| {name:10} | {('%.3f s' % r['wall_s']) if r else 'failed':>10} |")
    with open(os.path.join(DATA, "wordcount-results.json"), "w") as f:
        json.dump({"throughput": {f"{s}|{l}": r for (s, l), r in results.items()}, "startup": startup}, f, indent=1)


if __name__ == "__main__":
    main()
