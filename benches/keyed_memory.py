#!/usr/bin/env python3
"""Keyed state's memory side by side: a running count over many distinct keys in
ferroflow and the same count in a plain Python dict, each in its own process.

    .venv/bin/python benches/keyed_memory.py [--keys 5000000] [--passes 2] [--parallelism 1]

Records are `(f"k{i % keys}", 1)` for i below keys * passes: every key is new in the
first pass and updated in the next ones. Each variant runs in a fresh interpreter
(this script with --variant) and its peak RSS is the kernel's (ru_maxrss from wait4):

- built-in: ferroflow's `key_by(0).sum(1)`, against `collections.Counter`;
- reduce: ferroflow's `key_by(0).reduce(lambda a, b: (a[0], a[1] + b[1]))`, against
  a dict holding what the same lambda returns (the state a Python program keeps);
- value state: a KeyedProcessFunction whose ValueState holds an int count per key
  (emitting (key, count) per record), against a dict of the same key -> int.

The ferroflow jobs make their records with a Python `map` and drop the results in a
DiscardingSink. Prints one table with each ratio and the 1.5x target; exits 1 if a
variant failed or missed the target.
"""
import argparse
import os
import subprocess
import sys
import time

TARGET = 1.5
# (variant, what it is, its baseline variant)
VARIANTS = [
    ("counter", "collections.Counter", None),
    ("builtin", "ferroflow key_by(0).sum(1)", "counter"),
    ("dict_reduce", "dict of the reduce's results", None),
    ("reduce", "ferroflow key_by(0).reduce(lambda)", "dict_reduce"),
    ("dict_int", "dict of key -> int", None),
    ("value_state", "ferroflow ValueState[int] in process", "dict_int"),
]


def add(a, b):
    return (a[0], a[1] + b[1])


def value_state_counter():
    """A KeyedProcessFunction keeping an int count per key in a ValueState (imported
    only by the variant that uses it: the others must not pay for ferroflow's import)."""
    from ferroflow.functions import KeyedProcessFunction
    from ferroflow.state import ValueStateDescriptor

    class Count(KeyedProcessFunction):
        def open(self, runtime_context):
            self.count = runtime_context.get_state(ValueStateDescriptor("count"))

        def process_element(self, value, ctx):
            count = self.count.value()
            count = value[1] if count is None else count + value[1]
            self.count.update(count)
            yield value[0], count

    return Count()


def run_variant(name, keys, passes, parallelism):
    """Runs one variant in this process; prints how many keys its state holds."""
    n = keys * passes
    if name == "counter":
        from collections import Counter
        state = Counter()
        for i in range(n):
            rec = (f"k{i % keys}", 1)
            state[rec[0]] += rec[1]
        print(len(state))
        return
    if name == "dict_reduce":
        state = {}
        for i in range(n):
            rec = (f"k{i % keys}", 1)
            prev = state.get(rec[0])
            state[rec[0]] = rec if prev is None else add(prev, rec)
        print(len(state))
        return
    if name == "dict_int":
        state = {}
        for i in range(n):
            rec = (f"k{i % keys}", 1)
            prev = state.get(rec[0])
            state[rec[0]] = rec[1] if prev is None else prev + rec[1]
        print(len(state))
        return
    from ferroflow import DiscardingSink, StreamExecutionEnvironment
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(parallelism)
    records = env.generate_sequence(0, n - 1).map(lambda i: (f"k{i % keys}", 1)).key_by(0)
    if name == "value_state":
        counts = records.process(value_state_counter())
    else:
        counts = records.sum(1) if name == "builtin" else records.reduce(add)
    counts.add_sink(DiscardingSink())
    result = env.execute(f"keyed memory ({name})")
    emitted = next((c for op, c in result.operator_counts.items()
                    if op.startswith(("sum", "reduce")) or "'Count'" in op), None)
    if emitted != n:
        sys.exit(f"{name}: the keyed operator emitted {emitted} records, expected {n}")
    print(keys)


def measure(name, keys, passes, parallelism):
    """Peak RSS in MB and wall seconds of one variant in a child process."""
    cmd = [sys.executable, os.path.abspath(__file__), "--variant", name, "--keys", str(keys),
           "--passes", str(passes), "--parallelism", str(parallelism)]
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0 or out.strip() != str(keys):
        print(f"{name}: failed (exit {child.returncode}, printed {out.strip()!r})", file=sys.stderr)
        return None
    return usage.ru_maxrss / 1024, wall  # ru_maxrss is in KiB on Linux


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=5_000_000)
    ap.add_argument("--passes", type=int, default=2, help="records per key")
    ap.add_argument("--parallelism", type=int, default=1, help="ferroflow's worker threads")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.variant:
        run_variant(a.variant, a.keys, a.passes, a.parallelism)
        return
    results = {}
    for name, _, _ in VARIANTS:
        print(f"-- {name}", file=sys.stderr, flush=True)
        results[name] = measure(name, a.keys, a.passes, a.parallelism)
    print(f"\nrunning count, {a.keys:,} distinct keys x {a.passes} records each, ferroflow parallelism "
          f"{a.parallelism}, Python {sys.version.split()[0]}\n")
    print(f"| {'variant':36} | {'peak RSS MB':>11} | {'wall s':>6} | {'/ its baseline':>14} | target | {'/ Counter':>9} |")
    print(f"|{'-' * 38}|{'-' * 13}|{'-' * 8}|{'-' * 16}|--------|{'-' * 11}|")
    ok = True
    for name, what, base in VARIANTS:
        r = results[name]
        if r is None:
            print(f"| {what:36} | {'failed':>11} | {'':>6} | {'':>14} |        | {'':>9} |")
            ok = False
            continue
        ratio, verdict = "", ""
        if base:
            b = results[base]
            if b is None:
                ok = False
            else:
                x = r[0] / b[0]
                ratio, verdict = f"{x:.2f}x", ("met" if x <= TARGET else "MISSED")
                ok &= x <= TARGET
        counter = results["counter"]
        vs_counter = f"{r[0] / counter[0]:.2f}x" if counter else ""
        print(f"| {what:36} | {r[0]:11.0f} | {r[1]:6.1f} | {ratio:>14} | {verdict:6} | {vs_counter:>9} |")
    print(f"\ntarget: ferroflow's peak RSS <= {TARGET}x its baseline's (a reduce keeps the tuples its "
          "function returns, as the dict beside it does; a Counter, a dict of ints and a ValueState of ints keep ints)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
