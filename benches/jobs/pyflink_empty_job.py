"""The PyFlink start-up benchmark's empty job (benches/pyflink_startup.py): PyFlink's names,
one record, no Python function, so what is timed is the system's start-up and tear-down.
Runs unchanged on PyFlink and on ferroflow."""
from pyflink.datastream import StreamExecutionEnvironment

env = StreamExecutionEnvironment.get_execution_environment()
env.from_collection([1]).print()
env.execute()
