#!/usr/bin/env python3
"""Event-time windows side by side: ferroflow, the plain-Python reference and the peers,
1 s tumbling event-time windows, sum of value per key, on the same generated events and
the same UDFs (../shared/bench/win_udfs.py).

    .venv/bin/python benches/window.py [--events 2000000] [--runs 3] [--peer-runs 1]
                                       [--peers bytewax,pyflink | --no-peers]

The input is made with ../shared/bench/gen_events.py into bench-data/ (cached), with the
expected windows from ../shared/bench/window_reference.py beside it. Every command runs
under ../shared/bench/measure.py (wall time, peak RSS summed over the process tree;
medians) and writes every window it emits (reference, Bytewax: --out; PyFlink: its print
sink; ferroflow: --out), so the timed runs are the ones whose output
../shared/bench/verify_windows.py checks. Bytewax (1 worker) and PyFlink (thread mode,
p=1) run when their virtualenvs exist (`bash ../shared/bench/setup_anchors.sh`). Prints
one table and the targets, writes bench-data/window-results.json; exits 1 if a system
failed or its output differs from the reference.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

from harness import BENCH, DATA, HERE, PY, anchor, compile_sources, measure

OUT = os.path.join(DATA, "window-out")
TARGETS = [("reference", "plain-Python reference", 0.8), ("bytewax", "Bytewax 0.21.1, 1 worker", 8.0)]


def cached(path, cmd):
    """Make `path` with `cmd` (its "{out}" argument names the file to write) unless it
    exists; the file appears only once complete, so an interrupted run is not cached."""
    if not os.path.exists(path):
        os.makedirs(DATA, exist_ok=True)
        tmp = path + ".part"
        subprocess.run([tmp if arg == "{out}" else arg for arg in cmd], check=True)
        os.replace(tmp, path)
    return path


def make_input(events):
    """The events CSV and the reference's windows for it (key<TAB>start<TAB>sum)."""
    path = cached(os.path.join(DATA, f"events-{events}.csv"),
                  [PY, os.path.join(BENCH, "gen_events.py"), "{out}", "--events", str(events)])
    ref = cached(os.path.join(DATA, f"events-{events}.windows.tsv"),
                 [PY, os.path.join(BENCH, "window_reference.py"), path, "--out", "{out}"])
    return path, ref


def clear(path, as_dir=False):
    """A `before_run` for measure(): remove the previous run's output."""
    def run():
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.unlink(path)
        if as_dir:
            os.makedirs(path)
    return run


def verify(ref, out):
    """verify_windows.py's verdict line and whether it said OK."""
    p = subprocess.run([PY, os.path.join(BENCH, "verify_windows.py"), ref, out],
                       capture_output=True, text=True, check=False)
    line = (p.stdout.strip() or p.stderr.strip() or "no verdict").splitlines()[-1]
    return line, p.returncode == 0 and line.startswith("OK")


def systems(path, peers):
    """(key, label, command, output to verify, stdout file or None, output is a directory)."""
    ff = [PY, os.path.join(HERE, "window_ferroflow.py"), path]
    rows = [
        ("ferroflow", "ferroflow", ff + ["--out", os.path.join(OUT, "ferroflow.tsv")],
         os.path.join(OUT, "ferroflow.tsv"), None, False),
        ("ferroflow-p2", "ferroflow --parallelism 2 (threads)",
         ff + ["--parallelism", "2", "--out", os.path.join(OUT, "ferroflow-p2")],
         os.path.join(OUT, "ferroflow-p2"), None, False),
        ("ferroflow-builtin", "ferroflow built-in ts/key_by(0)/sum(2)",
         ff + ["--builtin", "--out", os.path.join(OUT, "ferroflow-builtin.tsv")],
         os.path.join(OUT, "ferroflow-builtin.tsv"), None, False),
        ("udf-loop", "plain loop calling the same UDFs",
         [PY, os.path.join(HERE, "window_udf_loop.py"), path, "--out", os.path.join(OUT, "udf-loop.tsv")],
         os.path.join(OUT, "udf-loop.tsv"), None, False),
        ("reference", "plain-Python reference",
         [PY, os.path.join(BENCH, "window_reference.py"), path, "--out", os.path.join(OUT, "reference.tsv")],
         os.path.join(OUT, "reference.tsv"), None, False),
    ]
    bytewax = anchor("bytewax") if "bytewax" in peers else None
    if bytewax:
        rows.append(("bytewax", "Bytewax 0.21.1, 1 worker",
                     [bytewax, os.path.join(BENCH, "window_bytewax.py"), path,
                      "--out", os.path.join(OUT, "bytewax", "windows")],
                     os.path.join(OUT, "bytewax"), None, True))
    pyflink = anchor("pyflink") if "pyflink" in peers else None
    if pyflink:
        rows.append(("pyflink", "PyFlink 2.3.0, thread mode, p=1",
                     [pyflink, os.path.join(BENCH, "window_pyflink.py"), path,
                      "--exec-mode", "thread", "-p", "1", "--sink", "print"],
                     os.path.join(OUT, "pyflink.txt"), os.path.join(OUT, "pyflink.txt"), False))
    for name in peers:
        if name not in ("bytewax", "pyflink"):
            sys.exit(f"unknown peer {name!r} (bytewax, pyflink)")
        if not anchor(name):
            print(f"-- {name}: no virtualenv under the anchors' home; skipped "
                  f"(bash {os.path.join(BENCH, 'setup_anchors.sh')})", file=sys.stderr)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=2_000_000, help="events in the input (default 2M)")
    ap.add_argument("--runs", type=int, default=3, help="runs of ferroflow and the reference (median)")
    ap.add_argument("--peer-runs", type=int, default=1, help="runs of Bytewax and PyFlink (median)")
    ap.add_argument("--peers", default="bytewax,pyflink", help="comma-separated: bytewax, pyflink")
    ap.add_argument("--no-peers", action="store_true", help="skip Bytewax and PyFlink")
    a = ap.parse_args()
    compile_sources()
    peers = [] if a.no_peers else [p for p in a.peers.split(",") if p]
    path, ref = make_input(a.events)
    os.makedirs(OUT, exist_ok=True)

    results = {}
    for key, label, cmd, out, stdout, as_dir in systems(path, peers):
        runs = a.peer_runs if key in ("bytewax", "pyflink") else a.runs
        r = measure(label, cmd, runs, stdout=stdout, before_run=clear(out, as_dir))
        if r:
            r["events_per_s"] = a.events / r["wall_s"]
            r["verdict"], r["ok"] = verify(ref, out)
            print(f"   {label}: {r['verdict']}", file=sys.stderr, flush=True)
        results[key] = (label, r)

    ff = results.get("ferroflow", (None, None))[1]
    print(f"\nevent-time windows, 1 s tumbling, sum per key, {a.events:,} events, same UDFs "
          f"(parse_event -> event_key -> sum_values), every window written and verified, medians\n")
    print(f"| {'system':36} | {'wall s':>7} | {'M events/s':>10} | {'peak RSS MB':>11} | {'output':8} | {'ferroflow / this':>16} |")
    print(f"|{'-' * 38}|{'-' * 9}|{'-' * 12}|{'-' * 13}|{'-' * 10}|{'-' * 18}|")
    for key, (label, r) in results.items():
        if r is None:
            print(f"| {label:36} | {'failed':>7} | {'':>10} | {'':>11} | {'':8} | {'':>16} |")
            continue
        ratio = f"{ff['events_per_s'] / r['events_per_s']:.2f}x" if ff else "-"
        print(f"| {label:36} | {r['wall_s']:7.2f} | {r['events_per_s'] / 1e6:10.3f} | {r['rss_mb']:11.0f} | "
              f"{'OK' if r['ok'] else 'MISMATCH':8} | {ratio:>16} |")
    print()
    ratios = {}
    for key, label, target in TARGETS:
        other = results.get(key, (None, None))[1]
        if other is None:
            status = "not run" if key not in results else f"{label} failed"
        elif not ff or not ff["ok"]:
            status = "ferroflow " + ("failed" if not ff else "output differs from the reference")
        else:
            ratios[key] = ff["events_per_s"] / other["events_per_s"]
            status = f"{ratios[key]:.2f}x: " + ("met" if ratios[key] >= target else "NOT met")
        print(f"ferroflow / {label}: {status} (target >= {target:g}x)")

    with open(os.path.join(DATA, "window-results.json"), "w") as f:
        json.dump({"events": a.events, "input": path,
                   "results": {label: r for label, r in results.values()},
                   "ratios": ratios}, f, indent=1)
    bad = [label for label, r in results.values() if r is None or not r["ok"]]
    if bad:
        print(f"\nfailed or wrong output: {', '.join(bad)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
