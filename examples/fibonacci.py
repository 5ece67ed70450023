"""The Fibonacci iteration demo from the Flink Forward 2017 talk.

    ferroflow run examples/fibonacci.py [- --input FILE] [--count N] [--max-wait-ms MS]

Input: "<x>, <y>" pairs, one per line (from --input, or N generated pairs). Each pair
goes around a feedback loop, one Fibonacci step per round,
``(a, b, x, y, n) -> (a, b, y, x + y, n + 1)``, until the value reaches 100; the
output is ``((x, y), rounds)``: ``1, 1`` -> ``((1, 1), 10)``, ``10, 20`` -> ``((10, 20), 4)``.

A pair that never reaches 100 (``0, 0``) would circulate forever. The loop is opened
with ``iterate(max_wait_ms)``: records still circulating that long after the input
ended are dropped, ferroflow prints a warning, and the job ends normally.
"""

import argparse
import random

from ferroflow import StreamExecutionEnvironment

TARGET = 100


def parse(line):
    """"x, y" -> (x, y, x, y, 0): the original pair, the current pair, the rounds."""
    x, y = (int(part.strip()) for part in line.split(","))
    return (x, y, x, y, 0)


def step(value):
    """One Fibonacci step."""
    a, b, x, y, n = value
    return (a, b, y, x + y, n + 1)


def route(value):
    """Back into the loop until the value reaches the target."""
    return ["iterate"] if value[3] < TARGET else ["output"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", help='a file of "x, y" lines (default: generated pairs)')
    parser.add_argument("--count", type=int, default=20, help="how many pairs to generate")
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--max-wait-ms", type=int, default=5000,
                        help="drop pairs still iterating this long after the input ended")
    args = parser.parse_args()

    env = StreamExecutionEnvironment.get_execution_environment()
    if args.input:
        lines = env.read_text_file(args.input)
    else:
        rng = random.Random(args.seed)
        lines = env.from_collection([f"{rng.randrange(1, 50)}, {rng.randrange(1, 50)}" for _ in range(args.count)])

    pairs = lines.filter(lambda line: line.strip() != "").map(parse).name("parse")
    loop = pairs.iterate(args.max_wait_ms)
    stepped = loop.map(step).name("fibonacci step").split(route)
    loop.close_with(stepped.select("iterate"))
    stepped.select("output").map(lambda v: ((v[0], v[1]), v[4])).name("result").print()
    result = env.execute("fibonacci")
    if result.dropped_records:
        print(f"{result.dropped_records} pair(s) did not reach {TARGET} within {args.max_wait_ms} ms")


if __name__ == "__main__":
    main()
