"""Defines main() and nothing else runs: the launcher must call it (once)."""

import json
import sys

from ferroflow import MapFunction, StreamExecutionEnvironment

SUFFIX = "-from-main"


class Suffix(MapFunction):
    def map(self, value):
        return value + SUFFIX


def main():
    print("main called " + json.dumps(sys.argv[1:]), flush=True)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_elements("a", "b").map(Suffix()).print()
    env.execute("main only")
