"""Prints N records of about 60 characters each: ``('W', 'w<i>-<j>', 'xxx...')``.

    ferroflow run print_lines.py - N [PARALLELISM]
"""
import sys

from ferroflow import StreamExecutionEnvironment

n = int(sys.argv[1])
env = StreamExecutionEnvironment.get_execution_environment()
if len(sys.argv) > 2:
    env.set_parallelism(int(sys.argv[2]))
env.generate_sequence(0, n // 10 - 1).flat_map(lambda i: [("W", f"w{i}-{j}", "x" * 40) for j in range(10)]).print()
env.execute("print lines")
