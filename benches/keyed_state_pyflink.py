#!/usr/bin/env python3
"""PyFlink's running count per key (benches/keyed_state.py's peer): a
KeyedProcessFunction with a ValueState, the shared logic of keyed_state_udfs.py.

    python benches/keyed_state_pyflink.py --records N [-p 1] [--exec-mode thread|process]

NumberSequenceSource(0, N-1) -> map(make_record) -> key_by(key_of) -> process(RunningCount)
-> Java DiscardingSink (``--digest``: collected instead, printing keyed_state_udfs.digest
of them; a check, not timed). Types are declared (so records cross to Java as typed rows,
PyFlink's fast path). Run with the PyFlink virtualenv's Python.
"""
import argparse
import os
import sys
import time

T0 = time.perf_counter()
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from pyflink.common import Configuration, Types, WatermarkStrategy  # noqa: E402
from pyflink.datastream import RuntimeExecutionMode, StreamExecutionEnvironment  # noqa: E402
from pyflink.datastream.connectors.base import Sink  # noqa: E402
from pyflink.datastream.connectors.number_seq import NumberSequenceSource  # noqa: E402
from pyflink.datastream.functions import KeyedProcessFunction  # noqa: E402
from pyflink.datastream.state import ValueStateDescriptor  # noqa: E402

from keyed_state_udfs import RunningCountLogic, digest, key_of, make_record  # noqa: E402


class RunningCount(RunningCountLogic, KeyedProcessFunction):
    def descriptor(self, name):
        return ValueStateDescriptor(name, Types.LONG())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("-p", "--parallelism", type=int, default=1)
    ap.add_argument("--exec-mode", choices=["process", "thread"], default="thread")
    ap.add_argument("--digest", action="store_true")
    a = ap.parse_args()
    if a.exec_mode == "thread":
        # The interpreter embedded in the JVM sees this virtualenv only through PYTHONPATH.
        import site
        old = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join([HERE] + site.getsitepackages() + ([old] if old else []))
    conf = Configuration()
    conf.set_string("python.execution-mode", a.exec_mode)
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_runtime_mode(RuntimeExecutionMode.STREAMING)
    env.set_parallelism(a.parallelism)
    env.add_python_file(os.path.join(HERE, "keyed_state_udfs.py"))
    rec_t = Types.TUPLE([Types.STRING(), Types.LONG()])
    numbers = env.from_source(NumberSequenceSource(0, a.records - 1), WatermarkStrategy.no_watermarks(), "numbers")
    counts = numbers \
        .map(make_record, output_type=rec_t) \
        .key_by(key_of, key_type=Types.STRING()) \
        .process(RunningCount(), output_type=rec_t)
    if a.digest:
        with counts.execute_and_collect("keyed running count") as records:
            print(digest(records))
        return
    counts.sink_to(Sink("org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink"))
    t1 = time.perf_counter()
    res = env.execute("keyed running count")
    t2 = time.perf_counter()
    print(f"pyflink-keyed-state: p={a.parallelism} exec_mode={a.exec_mode} setup_s={t1 - T0:.2f} "
          f"run_s={t2 - t1:.2f} job_net_runtime_s={res.get_net_runtime() / 1000.0:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
