import utils
from ferroflow import StreamExecutionEnvironment

SEEN = []
env = StreamExecutionEnvironment.get_execution_environment()
env.from_elements(utils.WHO).add_sink(SEEN.append)
env.execute()
with open(__file__ + ".out", "w") as f:
    f.write(SEEN[0])
