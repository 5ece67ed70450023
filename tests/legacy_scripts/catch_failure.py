"""A legacy script that catches its job's failure as the Java exception type."""

from org.apache.flink.api.common.functions import MapFunction
from org.apache.flink.runtime.client import JobExecutionException
from org.apache.flink.streaming.python.api.environment import PythonStreamExecutionEnvironment


class Invert(MapFunction):
    def map(self, value):
        return 10 // value


def main():
    env = PythonStreamExecutionEnvironment.get_execution_environment()
    env.from_elements(5, 2, 0, 1).map(Invert()).print()
    try:
        env.execute("failing job", True)
    except JobExecutionException as e:
        print("caught JobExecutionException: kind={} zero_division={} operator={}".format(
            e.kind, "ZeroDivisionError" in e.detail, "Invert" in (e.operator or "")))
    else:
        print("no failure")
