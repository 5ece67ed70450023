"""The fastest word count with ferroflow's documented API (benches/batch_udfs.py): a
batch UDF counts a whole batch of lines with `collections.Counter` (the per-word
work in C, one Python call per batch), then the built-in keyed sum adds the
batches' counts up in Rust; every update goes to a discarding sink. With --out, the
final count per word as 'word<TAB>count' (for ../shared/bench/verify.py).

    ferroflow run benches/jobs/batch_wordcount.py [-p N] - INPUT [--out FILE]
"""
import sys
from collections import Counter

from ferroflow import DiscardingSink, StreamExecutionEnvironment


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
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(f"{w}\t{n}\n" for w, n in sorted(final.items()))


main()
