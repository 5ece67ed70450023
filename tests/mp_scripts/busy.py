"""A job for tests/test_cluster_faults.py: run on two processes (-p 2), worker 1 spends
BUSY_S seconds in pure Python (holding the interpreter lock, never giving it up to the
engine) on its first record, then every record goes through, keyed across the two
processes. Prints "job finished" after a successful env.execute().

    ferroflow run busy.py -p 2 - BUSY_S
"""

import os
import sys
import time

from ferroflow import MapFunction, StreamExecutionEnvironment

busy_s = float(sys.argv[1])


class Busy(MapFunction):
    def open(self, runtime_context):
        self.index = runtime_context.get_index_of_this_subtask()
        self.done = False

    def map(self, value):
        if self.index == 1 and not self.done:
            self.done = True
            end = time.monotonic() + busy_s
            n = 0
            while time.monotonic() < end:
                n += 1
        return value


env = StreamExecutionEnvironment.get_execution_environment()
counted = env.generate_sequence(0, 999).map(Busy()).key_by(lambda v: v % 7).map(lambda v: 1)
counted.add_sink(lambda v: None)
env.execute("busy")
# os.write: every process says so (sys.stdout shows a -p run's lines outside a job once).
os.write(1, b"job finished\n")
