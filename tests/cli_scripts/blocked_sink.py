"""Jobs whose sink blocks because nobody reads its output, for the Ctrl-C tests.

    ferroflow run blocked_sink.py - MODE [PARALLELISM] [PORT]

MODE:
  socket  write_to_socket to 127.0.0.1:PORT, whose listener never reads
  print   print() of an endless sequence (run with stdout on a pipe nobody reads)
"""
import sys
from ferroflow import SimpleStringSchema, StreamExecutionEnvironment

mode = sys.argv[1]
env = StreamExecutionEnvironment.get_execution_environment()
env.set_parallelism(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
lines = env.generate_sequence(0, 10 ** 15).map(lambda i: f"{'x' * 100} {i}\n")
if mode == "socket":
    lines.write_to_socket("127.0.0.1", int(sys.argv[3]), SimpleStringSchema())
elif mode == "print":
    lines.print()
else:
    raise SystemExit(f"unknown mode {mode!r}")
print("started", file=sys.stderr, flush=True)
env.execute("blocked")
