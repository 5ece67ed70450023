"""A job whose key selector returns a key ferroflow cannot use.

    ferroflow run bad_keys.py - KIND [PARALLELISM]

KIND: list, dict, set, object (an instance of a user class), nested (a tuple holding a list).
"""

import sys

from ferroflow import StreamExecutionEnvironment


class Point:
    def __init__(self, x):
        self.x = x

    def __repr__(self):
        return f"Point({self.x})"


KEYS = {
    "list": lambda v: [v, "k"],
    "dict": lambda v: {"k": v},
    "set": lambda v: {v},
    "object": lambda v: Point(v),
    "nested": lambda v: (v, [v]),
}

kind = sys.argv[1]
parallelism = int(sys.argv[2]) if len(sys.argv) > 2 else 1
make_key = KEYS[kind]


def bad_key(value):
    return make_key(value)


env = StreamExecutionEnvironment.get_execution_environment()
env.set_parallelism(parallelism)
env.from_collection([7, 8, 9]).key_by(bad_key).reduce(lambda a, b: a + b).print()  # KEY-BY-LINE
env.execute("bad keys")
