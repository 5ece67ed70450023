"""The smallest job: three records through a map to print()."""

from ferroflow import StreamExecutionEnvironment

env = StreamExecutionEnvironment.get_execution_environment()
env.from_elements(1, 2, 3).map(lambda x: x * 10).print()
env.execute("three records")
