"""PyFlink's own state examples run on ferroflow and print what they print on PyFlink.

``state_access.py`` (a running sum in a ValueState with TTL) and ``event_time_timer.py``
(the same with event-time timers) ship in the apache-flink 2.3.0 wheel under
``pyflink/examples/datastream/``. Their licence lets us run them, not copy them here: the
``pyflink_examples`` fixture (tests/conftest.py, tests/pyflink_examples.py) downloads that
wheel with pip, checks its sha256 and extracts only these two files into
``~/.cache/ferroflow/pyflink-examples/``; no JVM and no PyFlink install is needed, and a
failed download fails the tests rather than skipping them (``FERROFLOW_PYFLINK_EXAMPLES``
names a local copy instead). Only the ``from pyflink... import`` lines are rewritten, to
ferroflow's modules (``IMPORTS``); the PyFlink namespace of issue 14 will make even that
unnecessary. What PyFlink printed is stored in tests/data/pyflink_<script>.out.

Output is compared per key, in order (each key's running values), exactly: the scripts
declare ``Types.FLOAT()``, which PyFlink and ferroflow honour (``110.1`` becomes
``110.0999984741211``, see ``ferroflow.typeinfo``). The ``k> `` prefixes of PyFlink's
print sink at parallelism 2 are left out.

The runs need issue 12's wiring (``KeyedStream.process``, keyed state and timers in the
engine); without it they fail, saying so first.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest
import pyflink_examples
from test_docs_event_time import PYTHON, ROOT, _clean_env

from ferroflow import KeyedStream, Time
from ferroflow._cluster import ENV_THREADS
from ferroflow.state import StateTtlConfig

DATA = os.path.join(ROOT, "tests", "data")
SCRIPTS = [os.path.splitext(f)[0] for f in pyflink_examples.SCRIPTS]

#: PyFlink module -> the ferroflow module that has the same names (for what these two
#: examples import). None: ferroflow has no such module yet; the names come from
#: STAND_INS.
IMPORTS: Dict[str, Optional[str]] = {
    "pyflink.common": "ferroflow",
    "pyflink.common.typeinfo": "ferroflow.typeinfo",
    "pyflink.common.watermark_strategy": "ferroflow.watermarks",
    "pyflink.datastream": "ferroflow",
    "pyflink.datastream.functions": "ferroflow.functions",
    "pyflink.datastream.state": "ferroflow.state",
}

#: Names the examples import that ferroflow lacks until issue 14 (the pyflink namespace).
KNOWN_MISSING: Set[Tuple[str, str]] = set()
STAND_IN_MODULE = "_pyflink_stand_ins"
STAND_INS = '''
"""Stand-ins for PyFlink names ferroflow does not have yet (issue 14)."""


class _TypeInformation:
    def __init__(self, name, args):
        self.name, self.args = name, args

    def __repr__(self):
        return "Types.%s(%s)" % (self.name, ", ".join(map(repr, self.args)))


class _Types:
    def __getattr__(self, name):
        return lambda *args: _TypeInformation(name, args)


Types = _Types()
'''

#: Whether this build has KeyedStream.process (the wiring of issue 12's state and timers).
WIRED = hasattr(KeyedStream, "process")


def script_source(examples: str, name: str) -> str:
    with open(os.path.join(examples, f"{name}.py"), encoding="utf-8") as f:
        return f.read()


def pyflink_imports(source: str) -> List[Tuple[str, str]]:
    """(module, name) of every ``from pyflink... import name``; fails on other forms."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] == "pyflink" for a in node.names), \
                f"line {node.lineno}: 'import pyflink...' is not handled by the rewrite"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pyflink":
            found += [(node.module, a.name) for a in node.names]
    return found


_FROM_PYFLINK = re.compile(r"^(\s*)from\s+(pyflink(?:\.\w+)*)\s+import\s+(.+)$", re.MULTILINE)


def rewrite(source: str) -> str:
    """``source`` with its ``from pyflink... import`` lines importing from ferroflow."""
    def one(m: "re.Match[str]") -> str:
        module = m.group(2)
        assert module in IMPORTS, f"{module} is not in IMPORTS"
        return f"{m.group(1)}from {IMPORTS[module] or STAND_IN_MODULE} import {m.group(3)}"
    out = _FROM_PYFLINK.sub(one, source)
    assert not _FROM_PYFLINK.search(out) and not re.search(r"^\s*import\s+pyflink", out, re.MULTILINE)
    return out


def expected_output(name: str) -> List[str]:
    with open(os.path.join(DATA, f"pyflink_{name}.out"), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#")]


_PREFIX = re.compile(r"^\d+> ")


def per_key(lines: List[str]) -> Dict[Any, List[Tuple[Any, ...]]]:
    """Printed ``(key, value...)`` tuples grouped by key, in order, without ``k> `` prefixes."""
    groups: Dict[Any, List[Tuple[Any, ...]]] = {}
    for line in lines:
        record = ast.literal_eval(_PREFIX.sub("", line))
        groups.setdefault(record[0], []).append(record)
    return groups


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_pyflink_import_exists_in_ferroflow(name, pyflink_examples):
    imports = pyflink_imports(script_source(pyflink_examples, name))
    assert imports, f"{name}.py imports nothing from pyflink?"
    missing = set()
    for module, attr in imports:
        target = IMPORTS.get(module)
        assert module in IMPORTS, f"{name}.py imports {attr} from {module}, which IMPORTS does not map"
        if target is None or not hasattr(importlib.import_module(target), attr):
            missing.add((module, attr))
    # When ferroflow gains one of these, move it out of KNOWN_MISSING (and its stand-in).
    assert missing <= KNOWN_MISSING, f"ferroflow lacks {sorted(missing - KNOWN_MISSING)}"


def test_the_ttl_builder_chain_of_the_examples():
    """The exact chain both examples build, with what each step set."""
    config = StateTtlConfig \
        .new_builder(Time.seconds(1)) \
        .set_update_type(StateTtlConfig.UpdateType.OnReadAndWrite) \
        .disable_cleanup_in_background() \
        .build()
    assert config.get_ttl() == Time.milliseconds(1000)
    assert config.get_update_type() is StateTtlConfig.UpdateType.OnReadAndWrite
    assert config.get_state_visibility() is StateTtlConfig.StateVisibility.NeverReturnExpired
    assert not config.get_cleanup_strategies().is_cleanup_in_background()
    assert config.get_cleanup_strategies().get_incremental_cleanup_strategy() is None


#: How the script runs: as ``python script.py`` on 1 worker, the same on 2 worker
#: threads (the launcher's thread setting), and as ``ferroflow run script.py -p 2``.
#: PyFlink ran it at parallelism 2.
WAYS = ["1worker", "2threads", "2proc"]


def command(way: str, script: str) -> Tuple[List[str], Dict[str, str]]:
    env = _clean_env()
    if way == "2threads":
        env[ENV_THREADS] = "2"
    if way == "2proc":
        return [os.path.join(os.path.dirname(PYTHON), "ferroflow"), "run", script, "-p", "2"], env
    return [PYTHON, script], env


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("name", SCRIPTS)
def test_pyflink_example_prints_what_pyflink_printed(name, way, tmp_path, pyflink_examples):
    source = rewrite(script_source(pyflink_examples, name))
    (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
    (tmp_path / f"{STAND_IN_MODULE}.py").write_text(STAND_INS, encoding="utf-8")
    cmd, env = command(way, f"{name}.py")
    r = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120, check=False)
    where = f"PyFlink's {name}.py on ferroflow ({way})"
    if not WIRED:
        where = ("needs issue 12's wiring (KeyedStream.process, keyed state and timers in the engine), "
                 f"absent from this build: {where}")
    assert r.returncode == 0, f"{where} failed:\n{r.stderr}"
    got = [line for line in r.stdout.splitlines() if line.strip()]
    want = expected_output(name)
    assert len(got) == len(want), f"{where} printed {len(got)} lines, PyFlink {len(want)}:\n{r.stdout}"
    got_keys, want_keys = per_key(got), per_key(want)
    assert sorted(got_keys) == sorted(want_keys), f"{where}: keys {sorted(got_keys)}, PyFlink's {sorted(want_keys)}"
    for key, records in want_keys.items():
        assert got_keys[key] == records, f"{where}: key {key!r} printed {got_keys[key]}, PyFlink {records}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
