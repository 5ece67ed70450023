"""A job whose source cannot open its input.

    ferroflow run bad_input.py - file PATH
    ferroflow run bad_input.py - socket HOST PORT
"""

import sys

from ferroflow import StreamExecutionEnvironment

env = StreamExecutionEnvironment.get_execution_environment()
if sys.argv[1] == "file":
    lines = env.read_text_file(sys.argv[2])  # SOURCE-LINE-file
else:
    lines = env.socket_text_stream(sys.argv[2], int(sys.argv[3]))  # SOURCE-LINE-socket
lines.map(str.upper).print()
env.execute("bad input")
