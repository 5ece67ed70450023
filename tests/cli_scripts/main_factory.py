"""Flink 1.5-1.8 style: main(factory), the launcher passes the environment factory."""

from ferroflow import StreamExecutionEnvironment


def main(factory):
    print(f"main called with factory: {factory is not None}", flush=True)
    env = factory.get_execution_environment()
    print(f"environment: {isinstance(env, StreamExecutionEnvironment)}", flush=True)
    env.from_elements(3, 4).map(lambda x: x * x).print()
    env.execute("factory")
