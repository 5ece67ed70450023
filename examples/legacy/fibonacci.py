"""The Fibonacci example of the 2017 Flink Python Streaming API (the version merged with
PR #3838, shown in the Flink Forward 2017 demo), in Python 3 syntax. Runs unchanged on
ferroflow:

    ferroflow run examples/legacy/fibonacci.py - --local [--input FILE] [--output FILE]

Input: "<x>, <y>" pairs, one per line, from --input, or 50 random pairs from a Python
source. Each pair goes around a feedback loop, one Fibonacci step per round, until the
value reaches TARGET_VAL. Output: ((x, y), rounds), e.g. ((1, 1), 10).

--parallelism N (not in the original) runs the job on N workers.
"""

import random
import sys

from org.apache.flink.api.common.functions import MapFunction
from org.apache.flink.api.java.utils import ParameterTool
from org.apache.flink.streaming.api.collector.selector import OutputSelector
from org.apache.flink.streaming.api.functions.source import SourceFunction
from org.apache.flink.streaming.python.api.environment import PythonStreamExecutionEnvironment

TARGET_VAL = 100
MAX_INT_START = 50


class Generator(SourceFunction):
    """Emits num_iters random "x, y" pairs."""

    def __init__(self, num_iters):
        self._running = True
        self._num_iters = num_iters

    def run(self, ctx):
        counter = 0
        while self._running and counter < self._num_iters:
            x = random.randrange(1, MAX_INT_START)
            y = random.randrange(1, MAX_INT_START)
            ctx.collect("{}, {}".format(x, y))
            counter += 1

    def cancel(self):
        self._running = False


class InPut(MapFunction):
    """"x, y" -> (x, y, x, y, 0): the original pair, the current pair, the rounds."""

    def map(self, value):
        num1, num2 = value.split(",")
        num1 = int(num1.strip())
        num2 = int(num2.strip())
        return (num1, num2, num1, num2, 0)


class Fib(MapFunction):
    """One Fibonacci step, counting the rounds."""

    def map(self, value):
        return (value[0], value[1], value[3], value[2] + value[3], value[4] + 1)


class StreamSelector(OutputSelector):
    """Back into the loop until the value reaches TARGET_VAL."""

    def select(self, value):
        return ["iterate"] if value[3] < TARGET_VAL else ["output"]


class OutPut(MapFunction):
    def map(self, value):
        return ((value[0], value[1]), value[4])


def main():
    _params = ParameterTool.fromArgs(sys.argv[1:])
    env = PythonStreamExecutionEnvironment.get_execution_environment()
    if _params.has("parallelism"):
        env.set_parallelism(_params.getInt("parallelism"))

    # Create the initial stream of pairs
    if _params.has("input"):
        input_stream = env.read_text_file(_params.get("input"))
    else:
        input_stream = env.create_python_source(Generator(num_iters=50))

    parsed = input_stream.map(InPut())

    # The feedback loop: the head shuts down 5 s after the input ended (ferroflow
    # also ends it as soon as nothing circulates)
    it = parsed.iterate(5000)

    step = it.map(Fib()).split(StreamSelector())
    it.close_with(step.select("iterate"))

    output = step.select("output").map(OutPut())
    if _params.has("output"):
        try:
            output.write_as_text(_params.get("output"))
        except Exception as e:
            print("Cannot write to {} ({}); printing to stdout instead".format(_params.get("output"), e),
                  file=sys.stderr)
            output.print()
    else:
        output.print()

    result = env.execute("Fibonacci Example (py)", True if _params.has("local") else False)
    print("Fibonacci job completed, job_id={}".format(result.jobID))
