"""A plain top-level script (no main) using the Java imports: key_by/getKey, a rolling
reduce, a count window with a collector-style WindowFunction, split/select with an
OutputSelector, checkpointing settings."""

import sys

from org.apache.flink.api.common.functions import ReduceFunction
from org.apache.flink.api.java.functions import KeySelector
from org.apache.flink.api.java.utils import ParameterTool
from org.apache.flink.streaming.api import CheckpointingMode
from org.apache.flink.streaming.api.collector.selector import OutputSelector
from org.apache.flink.streaming.api.functions.windowing import WindowFunction
from org.apache.flink.streaming.api.windowing.time import Time
from org.apache.flink.streaming.python.api.environment import PythonStreamExecutionEnvironment

WORDS = ["apple", "bean", "apple", "corn", "bean", "apple", "date", "corn", "apple"]


class FirstLetter(KeySelector):
    def getKey(self, value):
        return value[1][0]


class Add(ReduceFunction):
    def reduce(self, value1, value2):
        return (value1[0] + value2[0], value1[1])


class CountPerKey(WindowFunction):
    def apply(self, key, window, values, collector):
        collector.collect(("window", key, len(values)))


class ByLength(OutputSelector):
    def select(self, value):
        return ["long"] if len(value[1]) > 4 else ["short"]


params = ParameterTool.fromArgs(sys.argv[1:])
env = PythonStreamExecutionEnvironment.get_execution_environment() \
    .enable_checkpointing(1000, CheckpointingMode.EXACTLY_ONCE) \
    .set_parallelism(params.getInt("parallelism", 1))
ones = env.from_collection([(1, w) for w in WORDS])
keyed = ones.key_by(FirstLetter())
keyed.reduce(Add()).map(lambda v: ("rolling",) + v).print()
keyed.count_window(100, 100).apply(CountPerKey()).print()
# A time span from the Time module, as the talk-era scripts did (not used by a window
# here, since processing-time windows would make the output depend on timing).
assert Time.milliseconds(50).to_milliseconds() == 50
split = ones.split(ByLength())
split.select("long").map(lambda v: ("long", v[1])).print()
split.select("short", "long").map(lambda v: ("any", v[1])).print()
env.execute("toplevel job")
