"""Defines Transform/Selector; same_name_b.py defines different classes with the same names."""

from org.apache.flink.api.common.functions import MapFunction
from org.apache.flink.api.java.functions import KeySelector
from org.apache.flink.streaming.python.api.environment import PythonStreamExecutionEnvironment

TAG = "a"


class Transform(MapFunction):
    def map(self, value):
        return (TAG, value * 10)


class Selector(KeySelector):
    def getKey(self, value):
        return value[1] % 3


def main():
    env = PythonStreamExecutionEnvironment.get_execution_environment()
    env.from_elements(1, 2, 3).map(Transform()).key_by(Selector()).print()
    env.execute()
