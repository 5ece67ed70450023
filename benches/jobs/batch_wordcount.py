"""The fastest word count with ferroflow's documented API (benches/batch_udfs.py): a
batch UDF counts a whole batch of lines with `collections.Counter` (the per-word
work in C, one Python call per batch), then the built-in keyed sum adds the
batches' counts up in Rust; every update goes to a discarding sink. With --out, the
final count per word as 'word<TAB>count' (for ../shared/bench/verify.py); under
`ferroflow run -p N`, each process writes the words it counted to FILE.p<process>.

    ferroflow run benches/jobs/batch_wordcount.py [-p N] - INPUT [--out FILE]
"""
import os
import sys
from collections import Counter

from ferroflow import DiscardingSink, StreamExecutionEnvironment

# Batches of 4096 lines, not 128: a batch's Counter then holds fewer (word, count)
# pairs per word, and fewer pairs cross to the other process at -p 2, until the
# Counter outgrows the cache. On the first box 1024 was best (20M words at -p 2:
# 2.7 s -> 2.2 s); on a later one 4096 was (-p 2 3.27 s -> 2.81 s, -p 1 5.13 s ->
# 4.45 s, against 1024). Per-record jobs gain nothing from it.
os.environ.setdefault("FERROFLOW_BATCH_SIZE", "4096")


def count_batch(lines):
    """flat_map_batch UDF: the (word, count) pairs of a batch of lines."""
    return Counter(" ".join(lines).lower().split()).items()


def main():
    args = sys.argv[1:]
    out = args[args.index("--out") + 1] if "--out" in args else None
    env = StreamExecutionEnvironment.get_execution_environment()
    counts = env.read_text_file(args[0]).flat_map_batch(count_batch).key_by(0).sum(1)
    if out is None:
        counts.add_sink(DiscardingSink())
        env.execute("batch word count")
        return
    final = {}
    counts.add_sink(lambda pair: final.__setitem__(pair[0], max(pair[1], final.get(pair[0], 0))))
    env.execute("batch word count")
    process = os.environ.get("FERROFLOW_PROCESS_ID")
    with open(out if process is None else f"{out}.p{process}", "w", encoding="utf-8") as f:
        f.writelines(f"{w}\t{n}\n" for w, n in sorted(final.items()))


main()
