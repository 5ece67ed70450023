"""The import hooks that serve other systems' module names from ferroflow: the Java-named
modules of the talk era (``org.apache.flink...``, ``java.util``, below) and PyFlink's
(``pyflink.common``, ``pyflink.datastream``...: ``ferroflow.compat.pyflink``)."""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up; type checkers take it as True
if TYPE_CHECKING:
    from typing import Callable, Dict, FrozenSet, Iterable, Optional, Sequence, Tuple

# Java module name -> (ferroflow.compat submodule, names it provides). Every prefix of
# these names is served too, as an empty package.
MODULES: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "org.apache.flink.streaming.python.api.environment": ("environment", ("PythonStreamExecutionEnvironment",)),
    # The prototype package; the 2018 docs example still imported from it.
    "org.apache.flink.python.api.jython": ("environment", ("PythonStreamExecutionEnvironment",)),
    "org.apache.flink.api.common.functions": ("functions", (
        "Function", "MapFunction", "FlatMapFunction", "FilterFunction", "ReduceFunction", "RichFunction",
        "RichMapFunction", "RichFlatMapFunction", "RichFilterFunction", "RichReduceFunction")),
    "org.apache.flink.api.java.functions": ("functions", ("KeySelector",)),
    "org.apache.flink.streaming.api.functions.source": ("functions", ("SourceFunction", "RichSourceFunction")),
    "org.apache.flink.streaming.api.functions.sink": ("functions", ("SinkFunction", "RichSinkFunction")),
    "org.apache.flink.streaming.api.collector.selector": ("functions", ("OutputSelector",)),
    "org.apache.flink.streaming.api.functions.windowing": ("functions", ("WindowFunction", "RichWindowFunction")),
    "org.apache.flink.streaming.api.windowing.time.Time": ("javatypes", (
        "milliseconds", "seconds", "minutes", "hours", "days", "of")),
    "org.apache.flink.streaming.util.serialization": ("functions", (
        "SerializationSchema", "DeserializationSchema", "SimpleStringSchema")),
    "org.apache.flink.api.common.serialization": ("functions", (
        "SerializationSchema", "DeserializationSchema", "SimpleStringSchema")),
    "org.apache.flink.streaming.python.util": ("functions", ("PythonIterator",)),
    "org.apache.flink.api.java.utils": ("params", ("ParameterTool",)),
    "org.apache.flink.configuration": ("params", ("Configuration",)),
    "org.apache.flink.core.fs.FileSystem": ("javatypes", ("WriteMode",)),
    "org.apache.flink.streaming.api": ("javatypes", ("CheckpointingMode",)),
    "org.apache.flink.runtime.client": ("javatypes", ("JobExecutionException",)),
    "org.apache.flink.streaming.python.connectors": ("connectors", (
        "PythonFlinkKafkaConsumer09", "PythonFlinkKafkaProducer09")),
    "java.util": ("javatypes", ("NoSuchElementException", "Properties")),
    "java.util.concurrent": ("javatypes", ("TimeUnit",)),
}

def all_served(modules: Iterable[str]) -> FrozenSet[str]:
    """``modules`` and every parent package of theirs."""
    names = set()
    for name in modules:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            names.add(".".join(parts[:i]))
    return frozenset(names)


SERVED: FrozenSet[str] = all_served(MODULES)


# Not derived from importlib.abc.MetaPathFinder and Loader: the import system only
# calls find_spec, create_module and exec_module, and importing importlib.abc (which
# imports importlib.resources and pathlib) would cost every `ferroflow run`.
class ServedFinder:
    """Finds and loads the modules another system's scripts import (``served``, every
    one a package with an empty search path, so that only this finder resolves their
    submodules); ``fill(module)`` puts ferroflow's names into each. Meant to sit at the
    end of ``sys.meta_path``, so that any real module of the same name is found first."""

    def __init__(self, served: FrozenSet[str], fill: Callable[[types.ModuleType], None], origin: str) -> None:
        self._served = served
        self._fill = fill
        self._origin = origin

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: Optional[types.ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname not in self._served:
            return None
        # The finder is its own loader without subclassing importlib.abc.Loader, which
        # would import importlib.abc at start-up.
        spec = importlib.machinery.ModuleSpec(fullname, self, origin=self._origin,  # type: ignore[arg-type]
                                              is_package=True)
        spec.submodule_search_locations = []
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[types.ModuleType]:
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        self._fill(module)

    def __repr__(self) -> str:
        return f"<{self._origin} finder>"


def _fill_java(module: types.ModuleType) -> None:
    exported: Tuple[str, ...] = ()
    entry = MODULES.get(module.__name__)
    if entry is not None:
        source = importlib.import_module(f"ferroflow.compat.{entry[0]}")
        exported = entry[1]
        for attr in exported:
            setattr(module, attr, getattr(source, attr))
    module.__dict__["__all__"] = list(exported)
    module.__doc__ = (f"Stand-in for the Java package {module.__name__}, served by ferroflow.compat."
                      if exported else f"Parent package {module.__name__}, served by ferroflow.compat.")


class JavaPackageFinder(ServedFinder):
    """Serves the Java-named modules of ``MODULES`` (and their parent packages)."""

    #: Lets ``install()`` recognise a finder even from a reloaded copy of this module.
    ferroflow_compat_finder = True

    def __init__(self) -> None:
        super().__init__(SERVED, _fill_java, "ferroflow.compat")

    def __repr__(self) -> str:
        return "<ferroflow.compat Java-package finder>"


def install() -> JavaPackageFinder:
    """Appends the finder to ``sys.meta_path`` unless one is there already; returns it."""
    for finder in sys.meta_path:
        if getattr(finder, "ferroflow_compat_finder", False):
            return finder  # type: ignore[return-value]
    finder = JavaPackageFinder()
    sys.meta_path.append(finder)
    return finder
