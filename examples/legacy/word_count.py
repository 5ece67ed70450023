"""Word count from the Flink Forward 2017 talk ("Python Script - main" and "UDF").

Written as it was for the 2017 Flink Python Streaming API (in Python 3 syntax): Java
package imports, Java-style method names and a module-level main() that the launcher
calls. Runs unchanged on ferroflow:

    ferroflow run examples/legacy/word_count.py - --local [--input PATH] [--parallelism N]

The talk read /tmp/book.txt; this version reads --input, by default the bundled
examples/data/hamlet.txt. Prints (count, word) per word and 50 ms window.
"""

import os
import sys

from org.apache.flink.api.common.functions import FlatMapFunction, ReduceFunction
from org.apache.flink.api.java.functions import KeySelector
from org.apache.flink.api.java.utils import ParameterTool
from org.apache.flink.streaming.api.windowing.time.Time import milliseconds
from org.apache.flink.streaming.python.api.environment import PythonStreamExecutionEnvironment

DEFAULT_INPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "hamlet.txt")


class Tokenizer(FlatMapFunction):
    def flatMap(self, value, collector):
        for word in value.lower().split():
            collector.collect((1, word))


class Selector(KeySelector):
    def getKey(self, input):
        return input[1]


class Sum(ReduceFunction):
    def reduce(self, input1, input2):
        count1, word1 = input1
        count2, word2 = input2
        return (count1 + count2, word1)


def main():
    params = ParameterTool.fromArgs(sys.argv[1:])
    env = PythonStreamExecutionEnvironment.get_execution_environment()
    if params.has("parallelism"):
        env.set_parallelism(params.getInt("parallelism"))

    env.read_text_file(params.get("input", DEFAULT_INPUT)) \
        .flat_map(Tokenizer()) \
        .key_by(Selector()) \
        .time_window(milliseconds(50)) \
        .reduce(Sum()) \
        .print()

    env.execute(True)
