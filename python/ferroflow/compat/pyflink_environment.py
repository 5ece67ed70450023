"""``pyflink.datastream.StreamExecutionEnvironment``: ferroflow's environment as a PyFlink
script expects it.

It is ferroflow's ``StreamExecutionEnvironment`` with two differences: Flink's semantics
where ferroflow's own defaults differ (docs/semantics.md), and PyFlink's methods that only
tune Flink's runtime (chaining, buffer timeouts, slot sharing, max parallelism) accepted
and ignored, ``add_jars``/``add_classpaths`` accepted and ignored with a notice (the
connectors the jars bring, Kafka's above all, are ferroflow's own), while those that need
Flink's JVM (``create_input``, ``set_python_requirements``...) refuse with one line saying
what to use instead."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Any, NoReturn, Optional

from ..environment import StreamExecutionEnvironment as _Environment
from .unsupported import refuse

__all__ = ["StreamExecutionEnvironment"]

_jar_notices: set = set()


def _ignored_jars(method: str) -> None:
    """Says once per process (on stderr) that ``method`` was ignored."""
    if method not in _jar_notices:
        _jar_notices.add(method)
        import sys

        print(f"ferroflow: {method}() ignored: ferroflow runs no Java; its Kafka and file connectors are built in "
              "(docs/pyflink.md)", file=sys.stderr, flush=True)

_NAME = "StreamExecutionEnvironment"


class StreamExecutionEnvironment(_Environment):
    """PyFlink's environment, run by ferroflow: the same API as
    ``ferroflow.StreamExecutionEnvironment``, with Flink's semantics selected
    (docs/semantics.md) so that a PyFlink script prints what it prints on PyFlink."""

    def __init__(self) -> None:
        super().__init__()
        self._use_flink_semantics()
        # print() of an undeclared stream shows str(value), as PyFlink's pickled type does.
        self._prints_undeclared_as_pyflink = True

    @classmethod
    def get_execution_environment(cls, configuration: Any = None) -> "StreamExecutionEnvironment":
        """A new environment on the embedded engine. A ``Configuration`` is accepted;
        its ``parallelism.default`` is honoured, other Flink settings have no effect."""
        env = cls()
        parallelism = _configured_parallelism(configuration)
        if parallelism is not None:
            env.set_parallelism(parallelism)
        return env

    # -- runtime tuning: accepted, no effect in ferroflow -------------------------------------

    def set_max_parallelism(self, max_parallelism: int) -> "StreamExecutionEnvironment":
        """Accepted for PyFlink scripts; ferroflow's key groups do not depend on it."""
        return self

    def get_max_parallelism(self) -> int:
        return -1  # Flink's "not set"

    def set_buffer_timeout(self, timeout_millis: int) -> "StreamExecutionEnvironment":
        """Accepted for PyFlink scripts; ferroflow sends batches as they fill or as input pauses."""
        return self

    def get_buffer_timeout(self) -> int:
        return 100  # Flink's default, what a script reading it back expects

    def disable_operator_chaining(self) -> "StreamExecutionEnvironment":
        """Accepted for PyFlink scripts; ferroflow always runs a worker's operators in one thread."""
        return self

    def is_chaining_enabled(self) -> bool:
        return True

    def register_slot_sharing_group(self, slot_sharing_group: Any) -> "StreamExecutionEnvironment":
        """Accepted for PyFlink scripts; ferroflow has no slots."""
        return self

    def set_default_local_parallelism(self, parallelism: int) -> "StreamExecutionEnvironment":
        self.set_parallelism(parallelism)
        return self

    def get_default_local_parallelism(self) -> int:
        return self.get_parallelism()

    def enable_changelog_state_backend(self, enabled: bool) -> "StreamExecutionEnvironment":
        """Accepted for PyFlink scripts; ferroflow's checkpoints do not use a changelog."""
        return self

    def is_changelog_state_backend_enabled(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing to release: ferroflow starts no cluster for the environment."""

    # -- jars: ignored, with a notice -------------------------------------------------------

    def add_jars(self, *jars_path: str) -> None:
        """Ignored: a PyFlink script adds the Kafka connector's jar here, and ferroflow's
        Kafka connector is built in; a Java connector it lacks still refuses at its use."""
        _ignored_jars("add_jars")

    def add_classpaths(self, *classpaths: str) -> None:
        """Ignored, as ``add_jars``."""
        _ignored_jars("add_classpaths")

    # -- what needs Flink's JVM: refused at the call ----------------------------------------

    def set_python_requirements(self, requirements_file_path: str, requirements_cache_dir: Optional[str] = None
                                ) -> NoReturn:
        refuse(f"{_NAME}.set_python_requirements()", "python_env")

    def add_python_archive(self, archive_path: str, target_dir: Optional[str] = None) -> NoReturn:
        refuse(f"{_NAME}.add_python_archive()", "python_env")

    def set_python_executable(self, python_exec: str) -> NoReturn:
        refuse(f"{_NAME}.set_python_executable()", "python_env")

    def add_python_file(self, file_path: str) -> NoReturn:
        refuse(f"{_NAME}.add_python_file()", "python_env")

    def execute_async(self, job_name: str = "Flink Streaming Job") -> NoReturn:
        refuse(f"{_NAME}.execute_async()", "execute_async")

    def create_input(self, input_format: Any, type_info: Any = None) -> NoReturn:
        refuse(f"{_NAME}.create_input()", "java_input")

    def set_state_backend(self, state_backend: Any) -> NoReturn:
        refuse(f"{_NAME}.set_state_backend()", "state_backend")

    def register_cached_file(self, file_path: str, name: str, executable: bool = False) -> NoReturn:
        refuse(f"{_NAME}.register_cached_file()", "python_env")


def _configured_parallelism(configuration: Any) -> Optional[int]:
    if configuration is None:
        return None
    get = getattr(configuration, "get_integer", None)
    if get is None:
        return None
    value = get("parallelism.default", -1)
    return value if isinstance(value, int) and value > 0 else None
