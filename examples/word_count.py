"""Word count, as in the Flink Forward 2017 talk, on ferroflow's DataStream API.

    ferroflow run examples/word_count.py [- --input FILE_OR_DIR] [- --window-ms N]

Reads text, splits it into words, and counts each word per processing-time window.
When the input ends, every open window fires, so a short input gives one line per
word: ``(count, word)``.
"""

import argparse
import os

from ferroflow import FlatMapFunction, KeySelector, ReduceFunction, StreamExecutionEnvironment, Time

HERE = os.path.dirname(os.path.abspath(__file__))


class Tokenizer(FlatMapFunction):
    """A line -> one (1, word) record per word."""

    def flat_map(self, value):
        for word in value.lower().split():
            yield (1, word)


class Selector(KeySelector):
    """Counts are kept per word."""

    def get_key(self, value):
        return value[1]


class Sum(ReduceFunction):
    """Adds up the counts of one word."""

    def reduce(self, value1, value2):
        count1, word = value1
        count2, _ = value2
        return (count1 + count2, word)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default=os.path.join(HERE, "data", "hamlet.txt"),
                        help="a text file or a folder of them (default: the bundled Hamlet soliloquy)")
    parser.add_argument("--window-ms", type=int, default=10_000, help="window size in milliseconds")
    args = parser.parse_args()

    env = StreamExecutionEnvironment.get_execution_environment()
    (env.read_text_file(args.input)
        .flat_map(Tokenizer())
        .key_by(Selector())
        .time_window(Time.milliseconds(args.window_ms))
        .reduce(Sum())
        .print())
    env.execute("word count")


if __name__ == "__main__":
    main()
