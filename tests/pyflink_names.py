"""The API tests a second time, through PyFlink's names (issue 14).

The test files in ``FILES`` are collected twice: as written, and as a *pyflink pass*,
whose nodes read ``tests/test_api_windows.py::pyflink::test_x[p1]`` and carry the
``pyflink_names`` marker (``-m pyflink_names`` runs the pass alone, ``-m "not
pyflink_names"`` leaves it out). The pyflink pass imports the same file under another module
name (``test_api_windows[pyflink]``) with its imports rewritten, so no test is copied:

- ``from ferroflow... import Name`` takes ``Name`` from the PyFlink module that serves it
  (``ferroflow.compat.pyflink.MODULES``; the shortest module name when several do, e.g.
  ``pyflink.datastream`` over ``pyflink.datastream.functions``), where PyFlink's object is
  ferroflow's or a subclass of it (``StreamExecutionEnvironment``). Names PyFlink does not
  have (``ferroflow.testing``, ``FerroflowError``...) stay ferroflow's. The whole-module
  form (``import ferroflow``; ``ferroflow.X``) is left alone: the tests use it to check
  ferroflow's own namespace.
- ``from conftest import make_env`` gives ``make_pyflink_env``, and the ``env`` fixture
  is built from ``pyflink.datastream.StreamExecutionEnvironment`` (``TwoProcessEnvironment``
  on top of it for ``2proc``).

The pass runs at 1 worker and 2 processes (conftest's ``PYFLINK_PARALLELISMS``: the two
threads of ``p2`` add nothing that the names or the environment class could change, and
``2proc`` covers the crossing of workers) and leaves out hypothesis property tests (they
check the engine's logic against a model through the very same objects, and cost most
of these files' time) and the few tests in ``LEFT_OUT``. All are deselected, never
skipped, so the summary counts them. That keeps the pass near a minute of the suite.

A test whose expectation changes under Flink's semantics (which the pyflink environment
selects, docs/semantics.md) is marked ``@pytest.mark.flink_semantics(WHAT)`` with one of
conftest's ``PARTIAL_WINDOWS``, ``PROCESSING_TIME_AT_END``, ``SUM_FIELD_0``, ``PRINT_STR``, and asks
``conftest.flink_semantics(env)`` (or ``fired_at_end(env, records)``) what to expect;
``pytest -m flink_semantics --collect-only -q`` lists them. They are: count windows,
``GlobalWindows`` (with no trigger, a count trigger, an evictor) and window joins on
``GlobalWindows``, whose partial contents do not fire at the end of input; every
processing-time window (``time_window`` defaults to processing time, so most of
test_api_windows' time windows emit nothing under Flink's rule) and processing-time
trigger whose timer is pending at the end; ``sum()`` with no field (``sum(0)``);
``print()`` of a stream with no declared type (``str``, not ``repr``). PyFlink's
environment selects each (``_use_flink_semantics``, ``_prints_undeclared_as_pyflink``), so in
the pass they must pass with Flink's expectation.
"""

from __future__ import annotations

import ast
import importlib
import sys
import types
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import pytest

#: The test files that run through the pyflink names too: the in-process API tests (the
#: ``env`` fixture or ``make_env``). Left out: the model files that are hypothesis only
#: (test_event_time_model, test_state_model*), and the tests of subprocesses, the CLI,
#: the launcher and the legacy API, which do not build jobs with these names.
FILES = frozenset([
    "test_api_collect.py", "test_api_connect.py", "test_api_environment.py", "test_api_event_time.py",
    "test_api_functions.py", "test_api_iterate_split.py", "test_api_joins.py", "test_api_partitioning.py",
    "test_api_sinks.py", "test_api_sources.py", "test_api_transformations.py", "test_api_windows.py",
    "test_broadcast_state.py", "test_builtins.py", "test_checkpoint_api.py", "test_interval_join.py",
    "test_keyed_comap_state.py", "test_keyed_coprocess.py", "test_object_reuse.py",
    "test_operator_parallelism.py", "test_parallel_source.py", "test_process.py", "test_side_outputs.py",
    "test_state.py", "test_state_declarations.py", "test_window_builtins.py", "test_window_cascade.py",
    "test_window_state.py",
])

#: Tests the pass leaves out besides hypothesis ones, by "module::test", with why.
LEFT_OUT: Dict[str, str] = {
    "test_builtins::test_long_stream_matches_python_path":
        "a stress test of the built-in aggregations against the Python path (about 40 s of the pass's ~100 s "
        "on a busy 2-core machine); the names reach nothing in it that the other tests of the file do not",
}

#: Marker of every test of the pyflink pass (``-m "not pyflink_names"`` runs without it).
MARKER = "pyflink_names"
#: Marker of a test whose expectation follows Flink's semantics under the pyflink names.
FLINK_MARKER = "flink_semantics"
#: The name of the pass's node under the file's (``tests/test_api_windows.py::pyflink``).
NODE = "pyflink"
#: How the pass's module name differs from the file's own (``test_api_windows[pyflink]``).
SUFFIX = "[pyflink]"

#: conftest helpers a rewritten test module imports in place of ferroflow's.
CONFTEST_SWAPS = {"make_env": "make_pyflink_env"}


def original_module_name(name: str) -> str:
    """``test_api_windows`` for ``test_api_windows[pyflink]`` (and for itself)."""
    return name.removesuffix(SUFFIX)


def in_pass(node: Any) -> bool:
    """Whether a pytest node (item, module, or a ``request.node``) belongs to the pyflink pass."""
    return node.get_closest_marker(MARKER) is not None


# -- where each ferroflow object is served under PyFlink's names -----------------------------

_INDEX: Optional[Dict[str, List[str]]] = None


def _index() -> Dict[str, List[str]]:
    """name -> the pyflink modules that serve it from ferroflow (stand-ins for what
    ferroflow lacks are left out), shortest module name first."""
    global _INDEX
    if _INDEX is None:
        from ferroflow.compat import pyflink

        index: Dict[str, List[str]] = {}
        for module_name in sorted(pyflink.MODULES, key=lambda m: (len(m), m)):
            for name, source in pyflink.served_names(module_name).items():
                if name != "*" and not source.startswith("!"):
                    index.setdefault(name, []).append(module_name)
        _INDEX = index
    return _INDEX


def pyflink_module_for(name: str, value: Any) -> Optional[str]:
    """The PyFlink module that serves ``name`` as ``value`` (or as a subclass of it), or None.
    A name whose ferroflow source does not import (yet) is not served."""
    for module_name in _index().get(name, ()):
        try:
            served = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError):
            continue
        if served is value or (isinstance(served, type) and isinstance(value, type) and issubclass(served, value)):
            return module_name
    return None


# -- the rewrite -----------------------------------------------------------------------------

class _Rewriter(ast.NodeTransformer):
    """Splits each ``from ferroflow... import a, b`` into one import per source module."""

    def __init__(self) -> None:
        self.moved: Dict[str, str] = {}  # name -> pyflink module, for the report

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        module = node.module or ""
        if node.level:
            return node
        if module == "conftest":
            for alias in node.names:
                if alias.name in CONFTEST_SWAPS:
                    alias.asname = alias.asname or alias.name
                    alias.name = CONFTEST_SWAPS[alias.name]
            return node
        if module != "ferroflow" and not module.startswith("ferroflow."):
            return node
        source = importlib.import_module(module)
        groups: Dict[str, List[ast.alias]] = {}
        for alias in node.names:
            target = module
            if alias.name != "*" and hasattr(source, alias.name):
                target = pyflink_module_for(alias.name, getattr(source, alias.name)) or module
            if target != module:
                self.moved[alias.name] = target
            groups.setdefault(target, []).append(alias)
        if list(groups) == [module]:
            return node
        return [ast.copy_location(ast.ImportFrom(module=target, names=names, level=0), node)
                for target, names in groups.items()]


def rewrite(source: str, filename: str) -> Tuple[ast.Module, Dict[str, str]]:
    """The module's syntax tree with its ferroflow imports taken from the pyflink modules,
    and which names moved where. Line numbers are the file's own."""
    tree = ast.parse(source, filename)
    rewriter = _Rewriter()
    tree = ast.fix_missing_locations(rewriter.visit(tree))
    return tree, rewriter.moved


def import_rewritten(path: Path, config: pytest.Config) -> types.ModuleType:
    """Imports the test file ``path`` as ``<stem>[pyflink]`` with its imports rewritten (and
    pytest's assertion rewriting, so failures read as in the first pass)."""
    from ferroflow.compat.pyflink import real_pyflink

    installed = real_pyflink()
    if installed is not None:
        raise pytest.UsageError(f"the pyflink pass tests ferroflow's pyflink names, but apache-flink's pyflink is "
                                f"installed ({installed}); uninstall it or run with -m 'not {MARKER}'")
    source = path.read_text(encoding="utf-8")
    tree, _ = rewrite(source, str(path))
    try:
        from _pytest.assertion.rewrite import rewrite_asserts

        rewrite_asserts(tree, source.encode(), str(path), config)
    except ImportError:  # pragma: no cover - pytest moved it: plain asserts still fail the test
        pass
    name = path.stem + SUFFIX
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # before running it: pickle finds its classes by module name
    try:
        exec(compile(tree, str(path), "exec"), module.__dict__)  # noqa: S102 - the test file, as pytest imports it
    except BaseException:
        del sys.modules[name]
        raise
    return module


class PyflinkPass(pytest.Module):
    """A test file collected a second time, through the pyflink names: the ``pyflink``
    child of the file's own module node, so ``tests/test_x.py::pyflink::test_y`` names a
    test of the pass on the command line."""

    def _getobj(self) -> types.ModuleType:
        return import_rewritten(self.path, self.config)


class ApiModule(pytest.Module):
    """A test file of ``FILES``: its tests as written, then the pyflink pass of them."""

    def collect(self) -> List[Any]:
        first = list(super().collect())
        pyflink = PyflinkPass.from_parent(self, path=self.path, name=NODE, nodeid=f"{self.nodeid}::{NODE}")
        pyflink.add_marker(MARKER)
        return [*first, pyflink]


def make_module(module_path: Path, parent: pytest.Collector) -> Optional[pytest.Module]:
    """conftest's ``pytest_pycollect_makemodule``: the module node of a file in ``FILES``."""
    if module_path.name not in FILES:
        return None
    return ApiModule.from_parent(parent, path=module_path)


def deselected(items: Iterable[pytest.Item], parallelisms: Iterable[Any]) -> List[pytest.Item]:
    """The pass's items it leaves out: hypothesis tests, ``LEFT_OUT``, and parallelisms not
    in ``parallelisms``."""
    keep = {repr(p) for p in parallelisms}
    out = []
    for item in items:
        if not in_pass(item):
            continue
        function = getattr(item, "function", None)
        key = f"{original_module_name(item.module.__name__)}::{getattr(item, 'originalname', item.name)}"
        if getattr(function, "is_hypothesis_test", False) or key in LEFT_OUT:
            out.append(item)
            continue
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "parallelism" in callspec.params \
                and repr(callspec.params["parallelism"]) not in keep:
            out.append(item)
    return out
