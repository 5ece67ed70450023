"""Jobs for the multi-process tests (tests/test_multiprocess.py). Every process of a run
executes this same script.

    ferroflow run job.py [-p N | --addresses ...] - MODE [PID_DIR]

MODE:
  fail_on_worker_1  an endless parallel sequence through a map whose copy on worker 1
                    raises UserBoom on the 50th record it sees (worker 0 never fails)
  fail_busy_peer    for -p 2 -w 2 (needs PID_DIR): worker 2 (in process 1) raises
                    UserBoom on its 50th record, once worker 3 (also in process 1) is
                    inside a call that takes 1 s (a slow user function, e.g. one calling
                    a remote service)
  endless           an endless parallel sequence through a slow map, into a sink that
                    drops everything
  generators        records holding a generator object, keyed so that about half of
                    them go to a worker of the other process
  unrebuildable     like generators, with records that pickle but whose unpickling raises
                    (in the process they were sent to)
  small             a few records, printed (for the connection tests)

PID_DIR: each worker's map writes its process id to PID_DIR/worker-<index> when it
opens (and, once it has seen a record, PID_DIR/running-<index>).
After a successful env.execute() the script prints "job finished" on stdout.
"""

import os
import sys
import time

from ferroflow import MapFunction, StreamExecutionEnvironment

mode = sys.argv[1]
pid_dir = sys.argv[2] if len(sys.argv) > 2 else None


class UserBoom(Exception):
    pass


class Tracked(MapFunction):
    """Writes its pid files; fails (or is slow) as MODE says; in endless mode, sleeps a
    little per record so the job does not race ahead."""

    def open(self, runtime_context):
        self.index = runtime_context.get_index_of_this_subtask()
        self.seen = 0
        if pid_dir:
            with open(os.path.join(pid_dir, f"worker-{self.index}"), "w") as f:
                f.write(str(os.getpid()))

    def map(self, value):
        self.seen += 1
        if self.seen == 1 and pid_dir:
            with open(os.path.join(pid_dir, f"running-{self.index}"), "w") as f:
                f.write(str(os.getpid()))
        if mode == "fail_on_worker_1" and self.index == 1 and self.seen == 50:
            raise UserBoom(f"worker 1 refuses {value!r}")  # RAISE-LINE
        if mode == "fail_busy_peer" and self.index == 2 and self.seen == 50:
            deadline = time.monotonic() + 5
            while not os.path.exists(os.path.join(pid_dir, "running-3")) and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.05)
            raise UserBoom(f"worker 2 refuses {value!r}")  # RAISE-LINE
        if mode == "fail_busy_peer" and self.index == 3:
            time.sleep(1.0)
        if mode == "endless":
            time.sleep(0.001)
        return value


def refuse_to_rebuild():
    raise RuntimeError("this record refuses to be rebuilt")


class Unrebuildable:
    def __reduce__(self):
        return (refuse_to_rebuild, ())


env = StreamExecutionEnvironment.get_execution_environment()
if mode in ("fail_on_worker_1", "fail_busy_peer", "endless"):
    env.generate_sequence(0, 10 ** 15).map(lambda i: f"rec-{i}").map(Tracked()).add_sink(lambda v: None)
elif mode == "generators":
    (env.generate_sequence(0, 199)
        .map(lambda i: (i, (n for n in range(i))))
        .key_by(lambda t: t[0] % 16)
        .map(lambda t: (t[0], sum(t[1])))
        .add_sink(lambda v: None))
elif mode == "unrebuildable":
    (env.generate_sequence(0, 199)
        .map(lambda i: (i, Unrebuildable()))
        .key_by(lambda t: t[0] % 16)
        .add_sink(lambda v: None))
elif mode == "small":
    env.from_collection(["a", "b", "c", "d"]).map(Tracked()).print()
else:
    raise SystemExit(f"unknown mode {mode!r}")
env.execute(f"mp {mode}")
# os.write: every process says so (sys.stdout shows a -p run's lines outside a job once).
os.write(1, b"job finished\n")
