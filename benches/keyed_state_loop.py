#!/usr/bin/env python3
"""The keyed-state benchmark's plain-Python sides (benches/keyed_state.py):

    python benches/keyed_state_loop.py count --records N [--digest]
    python benches/keyed_state_loop.py sessions --records N --out FILE

``count``: a loop calling the SAME process function as ferroflow's
(keyed_state_udfs.RunningCountLogic) with a dict for its ValueState, as an engine
with no overhead would: per record, make it, set the current key, run
``process_element`` and drop what it yields. ``sessions``: an independent reference of
the sessionization's semantics (no process function, no timers): a session ends when a
key's next event comes GAP_MS or more after its last one, or at the end of the input;
writes keyed_state_udfs.session_line per session.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from keyed_state_udfs import GAP_MS, RunningCountLogic, digest, key_of, make_event, make_record, session_line  # noqa: E402


class DictValueState:
    """A ValueState over a dict, read at the runtime context's current key."""

    def __init__(self, context):
        self.context = context
        self.values = {}

    def value(self):
        return self.values.get(self.context.key)

    def update(self, value):
        self.values[self.context.key] = value


class DictRuntimeContext:
    def __init__(self):
        self.key = None

    def get_state(self, descriptor):
        return DictValueState(self)


class RunningCount(RunningCountLogic):
    def descriptor(self, name):
        return name


def count(n, keep):
    context = DictRuntimeContext()
    fn = RunningCount()
    fn.open(context)
    process = fn.process_element
    for i in range(n):
        record = make_record(i)
        context.key = key_of(record)
        for out in process(record, None):
            if keep is not None:
                keep.append(out)


def sessions(n):
    open_sessions = {}
    done = []
    for i in range(n):
        key, ts = make_event(i)
        s = open_sessions.get(key)
        if s is not None and ts - s[1] < GAP_MS:
            s[1] = ts
            s[2] += 1
            continue
        if s is not None:
            done.append((key, s[0], s[1], s[2]))
        open_sessions[key] = [ts, ts, 1]
    done.extend((key, s[0], s[1], s[2]) for key, s in open_sessions.items())
    return done


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("job", choices=["count", "sessions"])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--digest", action="store_true", help="count: print the digest of what it emitted")
    ap.add_argument("--out", help="sessions: write them here")
    a = ap.parse_args()
    t0 = time.perf_counter()
    if a.job == "count":
        keep = [] if a.digest else None
        count(a.records, keep)
        if a.digest:
            print(digest(keep))
    else:
        done = sessions(a.records)
        if a.out:
            with open(a.out, "w") as f:
                f.write("".join(session_line(s) + "\n" for s in done))
    print(f"keyed-state-loop {a.job}: compute_s={time.perf_counter() - t0:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
