"""One of two scripts run in one process: same names as same_name_a.py, other behaviour.
Defines main() only."""

from ferroflow import MapFunction, StreamExecutionEnvironment

TAG = "B"


class Transform(MapFunction):
    def map(self, value):
        return f"{TAG}:{value + 100}"


def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.from_elements(1, 2, 3).key_by(lambda v: v).map(Transform()).print()
    env.execute("b")
