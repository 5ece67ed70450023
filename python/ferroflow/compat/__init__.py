"""Runs the 2017 Flink "Python Streaming API" scripts (the Flink Forward talk era) on ferroflow.

Those scripts import Java packages through Jython::

    from org.apache.flink.streaming.python.api.environment import PythonStreamExecutionEnvironment
    from org.apache.flink.api.common.functions import FlatMapFunction
    from org.apache.flink.streaming.api.windowing.time.Time import milliseconds

``ferroflow run script.py - ARGS`` makes those imports work (it calls ``install()``) and
calls the script's ``main()`` or ``main(factory)``. In your own Python program,
``import ferroflow.compat`` first: importing this package installs the import hook.

The hook is appended at the *end* of ``sys.meta_path``, so a real installed ``org`` or
``java`` package is still found first.
"""

from __future__ import annotations

from .environment import PythonEnvironmentFactory, PythonStreamExecutionEnvironment
from .errors import UnsupportedApiError
from .functions import DeserializationSchema, PythonIterator
from .javatypes import CheckpointingMode, NoSuchElementException, TimeUnit, WriteMode
from .params import Configuration, ParameterError, ParameterTool, Properties
from ._finder import MODULES, JavaPackageFinder

__all__ = [
    "install", "environment_factory", "PythonStreamExecutionEnvironment", "PythonEnvironmentFactory",
    "ParameterTool", "ParameterError", "Configuration", "Properties", "WriteMode", "CheckpointingMode",
    "TimeUnit", "PythonIterator", "DeserializationSchema", "NoSuchElementException", "UnsupportedApiError",
    "JavaPackageFinder", "MODULES",
]


def install() -> JavaPackageFinder:
    """Makes the Java-named modules of ``MODULES`` importable (idempotent): appends one
    ``JavaPackageFinder`` to the end of ``sys.meta_path`` and returns it."""
    from ._finder import install as _install

    return _install()


def environment_factory() -> PythonEnvironmentFactory:
    """The object a script's ``main(factory)`` receives (Flink 1.5-1.8 style)."""
    return PythonEnvironmentFactory()


install()
