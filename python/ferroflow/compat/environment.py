"""``PythonStreamExecutionEnvironment`` and the factory ``main(factory)`` receives."""

from __future__ import annotations

from collections.abc import Mapping

from ..datastream import DataStream
from ..environment import StreamExecutionEnvironment
from .errors import UnsupportedApiError
from .params import Configuration, ParameterTool

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, Optional, Tuple

__all__ = ["PythonStreamExecutionEnvironment", "PythonEnvironmentFactory"]

#: The Flink setting ``create_local_execution_environment(config)`` reads parallelism from.
PARALLELISM_KEY = "parallelism.default"

REMOTE_HINT = ("create_remote_execution_environment() is not supported: ferroflow has no JobManager to submit "
               "to, jobs run on the engine embedded in this process. Use get_execution_environment() "
               "(and set_parallelism(n) for more worker threads), and run the script with `ferroflow run`")

JAVA_SOURCE_HINT = ("add_java_source() takes a Java SourceFunction, and ferroflow has no JVM: write the source "
                    "in Python as a SourceFunction whose run(ctx) calls ctx.collect(record) and pass it to "
                    "add_source() (or create_python_source()); for Kafka, poll a Python Kafka client in run(ctx); "
                    "for newline-separated text over TCP use socket_text_stream(host, port)")


def _local_args(args: Tuple[Any, ...]) -> Tuple[Optional[int], Optional[Configuration]]:
    """``()``, ``(config)``, ``(parallelism)`` or ``(parallelism, config)``."""
    parallelism: Optional[int] = None
    rest = list(args)
    if rest and isinstance(rest[0], int) and not isinstance(rest[0], bool):
        parallelism = rest.pop(0)
    if len(rest) > 1:
        raise TypeError("create_local_execution_environment() takes (config) or (parallelism, config), "
                        f"got {len(args)} arguments")
    config: Optional[Configuration] = None
    if rest and rest[0] is not None:
        given = rest[0]
        if isinstance(given, Configuration):
            config = given
        elif isinstance(given, ParameterTool):  # the pre-PR prototype passed the ParameterTool itself
            config = given.getConfiguration()
        elif isinstance(given, Mapping):
            config = Configuration(given)
        else:
            raise TypeError(f"create_local_execution_environment() takes a Configuration, got {type(given).__name__}")
    if parallelism is None and config is not None and config.containsKey(PARALLELISM_KEY):
        parallelism = config.getInteger(PARALLELISM_KEY)
    return parallelism, config


class PythonStreamExecutionEnvironment(StreamExecutionEnvironment):
    """The talk-era environment: ferroflow's ``StreamExecutionEnvironment`` plus the
    names of the 2017 Python Streaming API (static factories, ``create_python_source``).

    ``execute()``, ``execute(local)``, ``execute(name)`` and ``execute(name, local)``
    all run the job in this process; ``local`` told Flink where to stage the script
    and changes nothing here."""

    def __init__(self, configuration: Optional[Configuration] = None) -> None:
        super().__init__()
        self._configuration = configuration or Configuration()

    @staticmethod
    def get_execution_environment(*args: Any) -> "PythonStreamExecutionEnvironment":
        """A new environment running on the embedded engine."""
        return PythonStreamExecutionEnvironment()

    @staticmethod
    def create_local_execution_environment(*args: Any) -> "PythonStreamExecutionEnvironment":
        """``(config)`` or ``(parallelism, config)``: a new environment running in this
        process; the parallelism comes from the argument, else from the config's
        ``parallelism.default``, else the default."""
        parallelism, config = _local_args(args)
        env = PythonStreamExecutionEnvironment(config)
        if parallelism is not None:
            env.set_parallelism(parallelism)
        return env

    @staticmethod
    def create_remote_execution_environment(*args: Any) -> "PythonStreamExecutionEnvironment":
        """Not supported: raises ``UnsupportedApiError`` (a script asking for a remote
        cluster would otherwise silently read and write local files instead)."""
        raise UnsupportedApiError(REMOTE_HINT)

    def get_configuration(self) -> Configuration:
        """The ``Configuration`` the environment was created with."""
        return self._configuration

    def create_python_source(self, source_func: Any, source_name: Optional[str] = None) -> DataStream:
        """A stream from a Python ``SourceFunction`` (``run(ctx)`` calling
        ``ctx.collect(x)``); the talk-era name of ``add_source``."""
        return self.add_source(source_func, source_name)

    def add_java_source(self, java_source: Any) -> DataStream:
        """Not supported (there is no JVM): raises ``UnsupportedApiError`` naming the
        Python replacements."""
        raise UnsupportedApiError(JAVA_SOURCE_HINT)


class PythonEnvironmentFactory:
    """What ``main(factory)`` receives (Flink 1.5-1.8): the environment factories as
    instance methods."""

    def get_execution_environment(self) -> PythonStreamExecutionEnvironment:
        """A new environment running on the embedded engine."""
        return PythonStreamExecutionEnvironment.get_execution_environment()

    def create_local_execution_environment(self, *args: Any) -> PythonStreamExecutionEnvironment:
        """``(config)`` or ``(parallelism, config)``; see
        ``PythonStreamExecutionEnvironment.create_local_execution_environment``."""
        return PythonStreamExecutionEnvironment.create_local_execution_environment(*args)

    def create_remote_execution_environment(self, *args: Any) -> PythonStreamExecutionEnvironment:
        """Not supported: raises ``UnsupportedApiError``."""
        return PythonStreamExecutionEnvironment.create_remote_execution_environment(*args)

    def __repr__(self) -> str:
        return "PythonEnvironmentFactory()"
