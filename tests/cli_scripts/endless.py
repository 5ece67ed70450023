"""Jobs that never end by themselves, for the Ctrl-C tests. Every record that reaches
the sink is printed (and flushed) as ``record <value>``.

    ferroflow run endless.py - MODE [PARALLELISM] [PORT]

MODE:
  source    a SourceFunction whose run() loops forever with small sleeps
  slow_map  an endless sequence through a map that prints "working on <value>" and
            sleeps 20 ms per record
  stuck     a map that prints "stuck" and then sleeps 30 s inside the user call
  socket    lines from a local server (127.0.0.1:PORT) that never closes
"""

import sys
import time

from ferroflow import SourceFunction, StreamExecutionEnvironment

mode = sys.argv[1]
parallelism = int(sys.argv[2]) if len(sys.argv) > 2 else 1


class Ticker(SourceFunction):
    def __init__(self):
        self.running = True

    def run(self, ctx):
        i = 0
        while self.running:
            ctx.collect(i)
            i += 1
            time.sleep(0.01)

    def cancel(self):
        self.running = False


def slow(value):
    print(f"working on {value}", flush=True)
    time.sleep(0.02)
    return value


def stuck(value):
    print("stuck", flush=True)
    time.sleep(30)
    return value


def show(value):
    print(f"record {value}", flush=True)


env = StreamExecutionEnvironment.get_execution_environment()
env.set_parallelism(parallelism)
if mode == "source":
    stream = env.add_source(Ticker())
elif mode == "slow_map":
    stream = env.generate_sequence(0, 10 ** 15).map(slow)
elif mode == "stuck":
    stream = env.from_collection([1, 2, 3]).map(stuck)
elif mode == "socket":
    stream = env.socket_text_stream("127.0.0.1", int(sys.argv[3]))
else:
    raise SystemExit(f"unknown mode {mode!r}")
stream.add_sink(show)
env.execute("endless")
