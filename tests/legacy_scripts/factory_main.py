"""Flink 1.5-1.8 style: main(factory), create_python_source, output().

Emits the squares of the even numbers 0..--count (default 20) that survive a filter."""

import sys

from org.apache.flink.api.common.functions import FilterFunction, MapFunction
from org.apache.flink.api.java.utils import ParameterTool
from org.apache.flink.streaming.api.functions.source import SourceFunction


class Numbers(SourceFunction):
    def __init__(self, count):
        self._running = True
        self._count = count

    def run(self, ctx):
        n = 0
        while self._running and n <= self._count:
            ctx.collect(n)
            n += 1

    def cancel(self):
        self._running = False


class Even(FilterFunction):
    def filter(self, value):
        return value % 2 == 0


class Square(MapFunction):
    def map(self, value):
        return ("square", value, value * value)


def main(factory):
    params = ParameterTool.fromArgs(sys.argv[1:])
    env = factory.get_execution_environment()
    env.set_parallelism(params.getInt("parallelism", 1))
    env.create_python_source(Numbers(params.getInt("count", 20))) \
        .filter(Even()) \
        .map(Square()) \
        .output()
    result = env.execute("factory job")
    print("job id: {}".format(result.jobID))
