#!/usr/bin/env python3
"""ferroflow word count over the shared benchmark UDFs (../shared/bench/wc_udfs.py).

    python benches/wordcount_ferroflow.py INPUT [--out FILE] [--parallelism N]
                                          [--checkpoint-ms MS --checkpoint-root ROOT]

read_text_file -> flat_map(tokenize) -> key_by(key_of) -> reduce(reduce_count)
(a running count: every update goes on) -> DiscardingSink, or with --out the final
count per word written as 'word<TAB>count' for ../shared/bench/verify.py.
With --checkpoint-ms, a checkpoint every MS ms into a fresh directory under ROOT
(one per run, so benches/checkpoint.py can read each run's checkpoints).
"""
import argparse
import os
import sys
import tempfile
import time

T0 = time.perf_counter()
BENCH = os.environ.get("FERROFLOW_BENCH_DIR",
                       os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
sys.path.insert(0, BENCH)

from ferroflow import DiscardingSink, StreamExecutionEnvironment  # noqa: E402
from wc_udfs import key_of, reduce_count, tokenize  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("--out")
    ap.add_argument("--parallelism", type=int, default=1)
    ap.add_argument("--builtin", action="store_true",
                    help="key_by(0).sum(1) in Rust instead of the key_of/reduce_count UDFs")
    ap.add_argument("--checkpoint-ms", type=int, help="checkpoint every this many ms")
    ap.add_argument("--checkpoint-root", help="where each run makes its checkpoint storage directory")
    a = ap.parse_args()
    if (a.checkpoint_ms is None) != (a.checkpoint_root is None):
        ap.error("--checkpoint-ms and --checkpoint-root go together")
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(a.parallelism)
    if a.checkpoint_ms is not None:
        os.makedirs(a.checkpoint_root, exist_ok=True)
        env.enable_checkpointing(a.checkpoint_ms)
        env.get_checkpoint_config().set_checkpoint_storage_dir(tempfile.mkdtemp(prefix="run-", dir=a.checkpoint_root))
    words = env.read_text_file(a.input).flat_map(tokenize)
    counts = words.key_by(0).sum(1) if a.builtin else words.key_by(key_of).reduce(reduce_count)
    final = {}
    if a.out:
        counts.add_sink(lambda rec: final.__setitem__(rec[0], rec[1]))
    else:
        counts.add_sink(DiscardingSink())
    t1 = time.perf_counter()
    result = env.execute("word count")
    t2 = time.perf_counter()
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            for w in sorted(final):
                f.write(f"{w}\t{final[w]}\n")
    words = result.operator_counts[next(n for n in result.operator_counts if n.startswith("flat_map"))]
    print(f"ferroflow: words={words} startup_s={t1 - T0:.3f} compute_s={t2 - t1:.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
