"""The usual `if __name__ == "__main__": main()` form: main must run exactly once."""

from ferroflow import StreamExecutionEnvironment


def main():
    print("main called", flush=True)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_elements("guarded").print()
    env.execute("guarded main")


if __name__ == "__main__":
    main()
