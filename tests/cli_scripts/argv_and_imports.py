"""Prints its sys.argv and what it imported from its own folder as one JSON line,
then runs a job whose functions come from those imports."""

import json
import sys

import sibling_helper
import sibling_pkg
from sibling_pkg.tools import twice

from ferroflow import StreamExecutionEnvironment

print(json.dumps({"argv": sys.argv, "module": sibling_helper.NAME, "package": sibling_pkg.NAME}), flush=True)

env = StreamExecutionEnvironment.get_execution_environment()
env.from_elements("ab").map(sibling_helper.shout).map(twice).print()
env.execute("imports")
