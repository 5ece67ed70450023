"""Nexmark q1's currency conversion (price * 0.908) over (auction, bidder, price,
date_time) bid tuples, per record and vectorised with batch UDFs
(benches/batch_udfs.py). Prints one JSON line: the variant, events, execute() seconds.

    python benches/jobs/batch_q1.py VARIANT [--events N]

VARIANT: none (source -> sink, the ceiling), map (per record), list (map_batch over a
list), arrow (map_batch, pyarrow.compute), pandas (map_batch, a DataFrame column),
columnar (the records are pyarrow RecordBatches of 1024 bids; plain map, object
reuse on). The bids
are made before the timed part (the same for every variant) and frozen out of the
garbage collector's sight (gc.freeze), so no variant pays for rescanning them.
"""
import argparse
import gc
import json
import time

from ferroflow import DiscardingSink, StreamExecutionEnvironment

RATE = 0.908  # dollars to euros, as Nexmark's q1


def to_euros(bid):
    """map UDF: one bid."""
    return (bid[0], bid[1], bid[2] * RATE, bid[3])


def to_euros_list(bids):
    """map_batch UDF, list format."""
    return [(b[0], b[1], b[2] * RATE, b[3]) for b in bids]


def to_euros_arrow(batch):
    """map_batch UDF, arrow format: columns f0..f3, price is f2."""
    import pyarrow.compute as pc

    return batch.set_column(2, "f2", pc.multiply(batch.column(2), RATE))


def to_euros_pandas(frame):
    """map_batch UDF, pandas format."""
    frame["f2"] = frame["f2"] * RATE
    return frame


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("variant", choices=["none", "map", "list", "arrow", "pandas", "columnar"])
    ap.add_argument("--events", type=int, default=2_000_000)
    a = ap.parse_args()
    n = a.events
    bids = [(i % 10_000, i % 50_021, 100 + i % 9_973, 1_700_000_000_000 + i) for i in range(n)]
    if a.variant == "columnar":
        import pyarrow as pa

        bids = [pa.RecordBatch.from_pylist([dict(zip(("f0", "f1", "f2", "f3"), b)) for b in bids[i:i + 1024]])
                for i in range(0, n, 1024)]
    if a.variant in ("arrow", "columnar"):
        import pyarrow.compute  # noqa: F401 - loaded before the timed part, as any import
    if a.variant == "pandas":
        import pandas  # noqa: F401
    gc.freeze()
    env = StreamExecutionEnvironment.get_execution_environment()
    if a.variant == "columnar":
        # The collection's RecordBatches would otherwise be copied as they are taken
        # (the list still holds them): they are never changed, as object reuse asks.
        env.get_config().enable_object_reuse()
    s = env.from_collection(bids)
    if a.variant == "map":
        s = s.map(to_euros)
    elif a.variant == "list":
        s = s.map_batch(to_euros_list)
    elif a.variant == "arrow":
        s = s.map_batch(to_euros_arrow, batch_format="arrow")
    elif a.variant == "pandas":
        s = s.map_batch(to_euros_pandas, batch_format="pandas")
    elif a.variant == "columnar":
        s = s.map(to_euros_arrow)
    s.add_sink(DiscardingSink())
    t0 = time.perf_counter()
    env.execute("q1")
    print(json.dumps({"variant": a.variant, "events": n, "seconds": time.perf_counter() - t0}))


main()
