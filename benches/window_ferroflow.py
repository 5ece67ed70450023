#!/usr/bin/env python3
"""ferroflow event-time windows over the shared benchmark UDFs (../shared/bench/win_udfs.py):
the sum of value per key per 1 s tumbling event-time window.

    python benches/window_ferroflow.py INPUT [--out PATH] [--parallelism N]

read_text_file -> map(parse_event) -> assign_timestamps_and_watermarks(bounded
out-of-orderness 500 ms, the event's own timestamp) -> key_by(event_key)
-> window(TumblingEventTimeWindows.of(1 s)) -> reduce(sum_values, with a
ProcessWindowFunction that adds the window start) -> records (key, window_start_ms, sum)
-> DiscardingSink, or with --out 'key<TAB>window_start_ms<TAB>sum' lines for
../shared/bench/verify_windows.py (PATH is a file with parallelism 1, a directory with
one file per worker above 1). The input has no late events; any the engine drops are
reported on stderr.
"""
import argparse
import os
import sys
import time

T0 = time.perf_counter()
BENCH = os.environ.get("FERROFLOW_BENCH_DIR",
                       os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
sys.path.insert(0, BENCH)

from ferroflow import (DiscardingSink, Duration, StreamExecutionEnvironment, TimestampAssigner,  # noqa: E402
                       WatermarkStrategy)
from ferroflow.functions import ProcessWindowFunction  # noqa: E402
from ferroflow.window import TumblingEventTimeWindows  # noqa: E402
from win_udfs import event_key, parse_event, sum_values  # noqa: E402


class EventTime(TimestampAssigner):
    """The event's own time: field 1 of (key, ts_ms, value)."""

    def extract_timestamp(self, value, record_timestamp):
        return value[1]


class KeyWindowSum(ProcessWindowFunction):
    """The window's single reduced event -> (key, window start, sum)."""

    def process(self, key, context, elements):
        start = context.window().start
        return [(key, start, e[2]) for e in elements]


def tsv(rec):
    return f"{rec[0]}\t{rec[1]}\t{rec[2]}"


def start_tsv(rec):
    return f"{rec[0]}\t{rec[1] - rec[1] % 1000}\t{rec[2]}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("--out", help="write the windows here (default: a discarding sink)")
    ap.add_argument("--parallelism", type=int, default=1)
    ap.add_argument("--builtin", action="store_true",
                    help="timestamps, key and sum by field, in Rust: only parse_event is Python")
    a = ap.parse_args()
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(a.parallelism)
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(500))
    parsed = env.read_text_file(a.input).map(parse_event)
    if a.builtin:
        # (key, ts, value): the window's sum keeps its first event's ts, whose second
        # gives the window start.
        sums = parsed.assign_timestamps_and_watermarks(watermarks.with_timestamp_field(1)) \
            .key_by(0) \
            .window(TumblingEventTimeWindows.of(Duration.of_seconds(1))) \
            .sum(2)
        out = sums.map(start_tsv)
    else:
        sums = parsed.assign_timestamps_and_watermarks(watermarks.with_timestamp_assigner(EventTime())) \
            .key_by(event_key) \
            .window(TumblingEventTimeWindows.of(Duration.of_seconds(1))) \
            .reduce(sum_values, window_function=KeyWindowSum())
        out = sums.map(tsv)
    if a.out:
        out.write_as_text(a.out, overwrite=True)
    else:
        sums.add_sink(DiscardingSink())
    t1 = time.perf_counter()
    result = env.execute("windowed sum")
    t2 = time.perf_counter()
    counts = result.operator_counts
    events = next((c for n, c in counts.items() if n.startswith("map")), None)
    windows = next((c for n, c in counts.items() if n.startswith("window")), None)
    late = getattr(result, "late_records_dropped", None)
    print(f"ferroflow-window: p={a.parallelism} events={events} windows={windows} late_dropped={late} "
          f"startup_s={t1 - T0:.3f} compute_s={t2 - t1:.3f}", file=sys.stderr)
    if late:
        sys.exit(f"ferroflow-window: {late} events were late (the input has none)")


if __name__ == "__main__":
    main()
