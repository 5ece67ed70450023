"""write_as_text(path, WriteMode.<--mode>) of three records."""

import sys

from org.apache.flink.api.java.utils import ParameterTool
from org.apache.flink.core.fs.FileSystem import WriteMode
from org.apache.flink.streaming.python.api.environment import PythonStreamExecutionEnvironment


def main():
    params = ParameterTool.fromArgs(sys.argv[1:])
    env = PythonStreamExecutionEnvironment.get_execution_environment()
    mode = getattr(WriteMode, params.get("mode", "NO_OVERWRITE"))
    env.from_elements("new 1", "new 2", "new 3").write_as_text(params.getRequired("output"), mode)
    env.execute("write", True)
