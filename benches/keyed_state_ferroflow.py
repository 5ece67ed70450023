#!/usr/bin/env python3
"""ferroflow's side of the keyed-state benchmark (benches/keyed_state.py), on the
shared logic of keyed_state_udfs.py.

    python benches/keyed_state_ferroflow.py count --records N [--parallelism P] [--digest]
    python benches/keyed_state_ferroflow.py sessions --records N --out PATH

``count``: generate_sequence(0, N-1) -> map(make_record) -> key_by(key_of)
-> process(RunningCount: a KeyedProcessFunction with a ValueState) -> DiscardingSink;
checks that the process function emitted N records. ``--digest`` collects the records
instead and prints keyed_state_udfs.digest of them (a check, not timed).
``sessions``: generate_sequence -> map(make_event) -> monotonous event-time watermarks
(the event's own time) -> key_by(key_of) -> process(Sessionize: ValueState and an
event-time timer per key) -> session lines written to PATH; parallelism 1, so that each
key's events reach the process function in time order, as SessionizeLogic expects.
"""
import argparse
import os
import sys
import time

T0 = time.perf_counter()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ferroflow import DiscardingSink, StreamExecutionEnvironment, WatermarkStrategy  # noqa: E402
from ferroflow.functions import KeyedProcessFunction  # noqa: E402
from ferroflow.state import ValueStateDescriptor  # noqa: E402
from keyed_state_udfs import (RunningCountLogic, SessionizeLogic, digest, key_of, make_event,  # noqa: E402
                              make_record, session_line)


class RunningCount(RunningCountLogic, KeyedProcessFunction):
    def descriptor(self, name):
        return ValueStateDescriptor(name)


class Sessionize(SessionizeLogic, KeyedProcessFunction):
    def descriptor(self, name):
        return ValueStateDescriptor(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("job", choices=["count", "sessions"])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--parallelism", type=int, default=1)
    ap.add_argument("--digest", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    env = StreamExecutionEnvironment.get_execution_environment().set_parallelism(a.parallelism)
    numbers = env.generate_sequence(0, a.records - 1)
    if a.job == "count":
        counts = numbers.map(make_record).key_by(key_of).process(RunningCount())
        if a.digest:
            t1 = time.perf_counter()
            with counts.execute_and_collect("keyed running count") as records:
                print(digest(records))
            print(f"ferroflow-keyed-state count --digest: run_s={time.perf_counter() - t1:.2f}", file=sys.stderr)
            return
        counts.add_sink(DiscardingSink())
    else:
        if a.parallelism != 1 or not a.out:
            sys.exit("sessions: runs at parallelism 1 and needs --out")
        strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_field(1)
        sessions = numbers.map(make_event).assign_timestamps_and_watermarks(strategy) \
            .key_by(key_of).process(Sessionize())
        sessions.map(session_line).write_as_text(a.out, overwrite=True)
    t1 = time.perf_counter()
    result = env.execute(f"keyed state: {a.job}")
    t2 = time.perf_counter()
    fn = "RunningCount" if a.job == "count" else "Sessionize"
    emitted = next((c for op, c in result.operator_counts.items() if fn in op), None)
    print(f"ferroflow-keyed-state {a.job}: p={a.parallelism} process_emitted={emitted} "
          f"startup_s={t1 - T0:.3f} compute_s={t2 - t1:.3f}", file=sys.stderr)
    if a.job == "count" and emitted is not None and emitted != a.records:
        sys.exit(f"ferroflow-keyed-state: the process function emitted {emitted} records, expected {a.records}")


if __name__ == "__main__":
    main()
