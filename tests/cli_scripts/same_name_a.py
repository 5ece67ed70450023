"""One of two scripts run in one process: same names as same_name_b.py, other behaviour.
Runs its job at top level."""

from ferroflow import MapFunction, StreamExecutionEnvironment

TAG = "A"


class Transform(MapFunction):
    def map(self, value):
        return f"{TAG}:{value * 2}"


def main():
    raise AssertionError("same_name_a.py runs its job at top level; main() must not be called")


env = StreamExecutionEnvironment.get_execution_environment()
env.set_parallelism(2)
env.from_elements(1, 2, 3).key_by(lambda v: v).map(Transform()).print()
env.execute("a")
